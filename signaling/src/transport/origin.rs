//! Which web pages may open a SIP WebSocket: the `Origin` check of the upgrade (RFC 6455
//! §10.2). Browsers always send `Origin` on a WebSocket handshake, so the check stops other
//! sites' pages from using a visitor's browser as a SIP client; clients that are not browsers
//! (SIPp, the load generator) send none.

/// The `ALLOWED_ORIGINS` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// The default: the page's own origin, an `https` Origin whose host is the host the request
    /// was sent to (its `Host` header). The port may differ: the page is on HTTPS_PORT, the
    /// WebSocket may be on WSS_PORT. A request without Origin is accepted.
    SameHost,
    /// `*`: any Origin.
    Any,
    /// An explicit list of origins (`https://host[:port]`), matched exactly. A request without
    /// Origin is refused, as it always was with a list.
    List(Vec<String>),
}

impl OriginPolicy {
    /// Parses the setting: empty for [`OriginPolicy::SameHost`], `*`, or a comma-separated list.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(OriginPolicy::SameHost);
        }
        if s == "*" {
            return Ok(OriginPolicy::Any);
        }
        let list: Vec<String> = s
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        if let Some(bad) = list
            .iter()
            .find(|o| !(o.starts_with("https://") || o.starts_with("http://")))
        {
            return Err(format!(
                "'{bad}' is not an origin like https://host[:port] (or * for any)"
            ));
        }
        Ok(OriginPolicy::List(list))
    }

    /// Whether a handshake with these `Origin` and `Host` header values may open a WebSocket.
    pub fn is_allowed(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => {
                let origin = origin.unwrap_or("").trim().trim_end_matches('/');
                list.iter().any(|a| a == origin)
            }
            OriginPolicy::SameHost => match origin {
                None => true,
                Some(origin) => {
                    let origin_host = origin
                        .trim()
                        .strip_prefix("https://")
                        .map(|a| a.trim_end_matches('/'))
                        .and_then(authority_host);
                    match (origin_host, host.and_then(|h| authority_host(h.trim()))) {
                        (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
                        _ => false,
                    }
                }
            },
        }
    }
}

/// The host of `host[:port]` or `[v6]:port`; `None` when it is empty or has a path, user info
/// or a bad port.
fn authority_host(a: &str) -> Option<&str> {
    if a.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']')?;
        (&a[..end + 2], &rest[end + 1..])
    } else {
        match a.split_once(':') {
            Some((h, _)) => (h, &a[h.len()..]),
            None => (a, ""),
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    (!host.is_empty() && port_ok).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_host_is_the_default() {
        let p = OriginPolicy::parse("").unwrap();
        assert_eq!(p, OriginPolicy::SameHost);
        // The page on HTTPS_PORT, the WebSocket on WSS_PORT or on /ws of the same port
        // (tests/fixtures/sipjs/websocket-handshake.txt).
        assert!(p.is_allowed(Some("https://127.0.0.1:8443"), Some("127.0.0.1:8444")));
        assert!(p.is_allowed(Some("https://127.0.0.1:8443"), Some("127.0.0.1:8443")));
        assert!(p.is_allowed(Some("https://localhost:8443"), Some("localhost:9876")));
        assert!(p.is_allowed(Some("https://Phone.Example.com"), Some("phone.example.com")));
        assert!(p.is_allowed(Some("https://[::1]:8443"), Some("[::1]:9876")));
        // No Origin: not a browser.
        assert!(p.is_allowed(None, Some("127.0.0.1:8444")));
        assert!(p.is_allowed(None, None));
        for (origin, host) in [
            ("https://evil.example", Some("127.0.0.1:8444")),
            ("https://127.0.0.1.evil.example", Some("127.0.0.1:8444")),
            ("https://localhost:8443", Some("127.0.0.1:8444")),
            ("http://127.0.0.1:8443", Some("127.0.0.1:8444")),
            ("null", Some("127.0.0.1:8444")),
            ("https://127.0.0.1:8443", None),
            ("https://user@127.0.0.1", Some("127.0.0.1")),
            ("https://127.0.0.1:x", Some("127.0.0.1")),
            ("https://[::1]:8443", Some("[::2]:8443")),
            ("https://", Some("")),
        ] {
            assert!(!p.is_allowed(Some(origin), host), "{origin} {host:?}");
        }
    }

    #[test]
    fn star_allows_any() {
        let p = OriginPolicy::parse(" * ").unwrap();
        assert!(p.is_allowed(Some("https://evil.example"), Some("127.0.0.1")));
        assert!(p.is_allowed(None, None));
    }

    #[test]
    fn explicit_list_matches_exactly() {
        let p = OriginPolicy::parse("https://phone.example.com/, https://127.0.0.1:8443").unwrap();
        assert!(p.is_allowed(Some("https://phone.example.com"), Some("x")));
        assert!(p.is_allowed(Some("https://127.0.0.1:8443"), Some("x")));
        assert!(!p.is_allowed(Some("https://127.0.0.1:8444"), Some("127.0.0.1:8444")));
        assert!(!p.is_allowed(None, Some("phone.example.com")));
        assert!(OriginPolicy::parse("phone.example.com").is_err());
    }
}
