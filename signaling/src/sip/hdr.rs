//! Typed views of the header values the gateway reads and rewrites (RFC 3261 §20, §25):
//! name-addr / addr-spec with parameters (From, To, Contact, Route, Record-Route, Path), Via,
//! CSeq; plus the list splitting that comma-joined values need.

use std::fmt::{self, Write as _};

use super::method::Method;

/// Why a header value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {header}: {why}")]
pub struct HeaderError {
    pub header: &'static str,
    pub why: &'static str,
}

fn err(header: &'static str, why: &'static str) -> HeaderError {
    HeaderError { header, why }
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Splits a comma-separated header value into its elements, ignoring commas inside quoted
/// strings and `<...>`. Elements are trimmed; empty elements are kept so callers can refuse them.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' if !in_angle => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out
}

/// `;name[=value]` parameters, in order. Names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=b;c` (the leading `;` included or not). Refuses empty or non-token names.
    pub fn parse(s: &str, header: &'static str) -> Result<Self, HeaderError> {
        let mut out = Vec::new();
        let s = s.trim();
        if s.is_empty() {
            return Ok(Params(out));
        }
        let s = s.strip_prefix(';').unwrap_or(s);
        for item in split_outside_quotes(s, ';') {
            let item = item.trim();
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (item, None),
            };
            if !is_token(name) {
                return Err(err(header, "bad parameter name"));
            }
            if let Some(v) = value {
                let ok = if v.starts_with('"') {
                    parse_quoted(v).is_some_and(|(_, rest)| rest.trim().is_empty())
                } else {
                    !v.is_empty()
                        && v.bytes()
                            .all(|b| is_token_char(b) || b"[]:".contains(&b) || b >= 0x80)
                };
                if !ok {
                    return Err(err(header, "bad parameter value"));
                }
            }
            out.push((name.to_string(), value.map(str::to_string)));
        }
        Ok(Params(out))
    }

    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value of `name`, if it is present with a value.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (replacing) or adds `name`.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let v = value.map(str::to_string);
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = v,
            None => self.0.push((name.to_string(), v)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            f.write_char(';')?;
            f.write_str(n)?;
            if let Some(v) = v {
                f.write_char('=')?;
                f.write_str(v)?;
            }
        }
        Ok(())
    }
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quote, mut escaped, mut start) = (false, false, 0);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            c if c == sep && !in_quote => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses a quoted string at the start of `s`; returns its raw text (quotes included) and the
/// rest. `None` when the quotes do not balance.
fn parse_quoted(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[..=i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Checks a URI's shape: `scheme ":" rest`, no whitespace, no angle brackets.
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut sb = scheme.bytes();
    sb.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sb.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        && !rest.is_empty()
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'<' || b == b'>' || b == b'"')
}

/// Whether a SIP URI has a `?headers` part. A `?` in the user part (before the last `@`) is
/// legal user text, not a headers separator (RFC 4475 intmeth).
pub fn has_uri_headers(uri: &str) -> bool {
    let host_part = uri.rfind('@').map_or(uri, |i| &uri[i + 1..]);
    host_part.contains('?')
}

/// A SIP URI split into the parts the gateway rewrites: `sip:[user@]host[:port][;params][?headers]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sip` or `sips` (lower case).
    pub scheme: String,
    /// User part (with password if any), percent-escapes kept.
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// `?headers` part, verbatim without the `?`.
    pub headers: Option<String>,
}

impl SipUri {
    pub fn parse(s: &str) -> Option<Self> {
        let (scheme, rest) = s.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return None;
        }
        let (user, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(rest[..i].to_string()), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (hostpart, None),
        };
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], Params::parse(&hostpart[i..], "URI").ok()?),
            None => (hostpart, Params::default()),
        };
        let (host, port) = split_hostport(hostport)?;
        if host.is_empty() || user.as_deref() == Some("") {
            return None;
        }
        Some(SipUri {
            scheme,
            user,
            host: host.to_string(),
            port,
            params,
            headers,
        })
    }

    /// `host[:port]` as written in a URI (IPv6 in brackets).
    pub fn hostport(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Splits `host[:port]`, `[v6]:port`; the host keeps its brackets.
pub fn split_hostport(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        return match &s[end + 1..] {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.split_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
    .filter(|(h, _)| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    })
}

/// `[display-name] <uri> *(;param)` or `addr-spec *(;param)` (RFC 3261 §20.10, §25.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name as written (quoted string with its quotes, or tokens).
    pub display: Option<String>,
    pub uri: String,
    /// Whether the URI was in angle brackets (always printed with them).
    pub params: Params,
}

impl NameAddr {
    pub fn parse(s: &str, header: &'static str) -> Result<Self, HeaderError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(err(header, "empty"));
        }
        let (display, rest) = if s.starts_with('"') {
            let (q, rest) = parse_quoted(s).ok_or_else(|| err(header, "unbalanced quotes"))?;
            let rest = rest.trim_start();
            if !rest.starts_with('<') {
                return Err(err(header, "display name without <uri>"));
            }
            (Some(q.to_string()), rest)
        } else if let Some(i) = s.find('<') {
            let d = s[..i].trim();
            if !d.split_whitespace().all(is_token) {
                return Err(err(
                    header,
                    "display name is neither tokens nor a quoted string",
                ));
            }
            ((!d.is_empty()).then(|| d.to_string()), &s[i..])
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let end = inner.find('>').ok_or_else(|| err(header, "missing >"))?;
            let uri = &inner[..end];
            if !is_uri(uri) {
                return Err(err(header, "bad URI in <>"));
            }
            let params = Params::parse(&inner[end + 1..], header)?;
            return Ok(NameAddr {
                display,
                uri: uri.to_string(),
                params,
            });
        }
        // addr-spec form: parameters after the first ';' belong to the header (§20), and the
        // URI may have no '?', ',' or ';' of its own.
        let (uri, params) = match rest.find(';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let uri = uri.trim();
        if !is_uri(uri) || has_uri_headers(uri) {
            return Err(err(header, "bad addr-spec"));
        }
        Ok(NameAddr {
            display: None,
            uri: uri.to_string(),
            params: Params::parse(params, header)?,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Via value: `SIP/2.0/<transport> host[:port] *(;param)` (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport upper-cased (`UDP`, `WSS`, ...).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let (head, params) = match s.find(';') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        // sent-protocol allows LWS around the slashes: "SIP  /   2.0 /UDP".
        let mut parts = head.splitn(3, '/');
        let (name, version, rest) = (
            parts.next().unwrap_or_default().trim(),
            parts.next().unwrap_or_default().trim(),
            parts.next().unwrap_or_default().trim_start(),
        );
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(err("Via", "not SIP/2.0"));
        }
        let (transport, sent_by) = rest
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or_else(|| err("Via", "no sent-by"))?;
        if !is_token(transport) {
            return Err(err("Via", "bad transport"));
        }
        let (host, port) = split_hostport(sent_by).ok_or_else(|| err("Via", "bad sent-by"))?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_string(),
            port,
            params: Params::parse(params, "Via")?,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `CSeq: <number> <method>` (RFC 3261 §20.16; the number is below 2**31).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let mut it = s.split_whitespace();
        let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
            return Err(err("CSeq", "not <number> <method>"));
        };
        let seq = n
            .parse::<u32>()
            .ok()
            .filter(|n| *n < 1 << 31)
            .ok_or_else(|| err("CSeq", "bad number"))?;
        if !is_token(m) {
            return Err(err("CSeq", "bad method"));
        }
        Ok(CSeq {
            seq,
            method: Method::from(m),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_quotes_and_angles() {
        assert_eq!(
            split_list(r#""a, b" <sip:x@y;p=1,2>;q=1, <sip:z@w>"#),
            vec![r#""a, b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>"]
        );
        assert_eq!(split_list(";;,,;;,;"), vec![";;", "", ";;", ";"]);
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\"" <sip:jdrosen@example.com> ; tag = 98asjd8"#,
            "From",
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some(r#""J Rosenberg \\\"""#));
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse(
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "To",
        )
        .unwrap();
        assert_eq!(n.tag(), Some("1918181833n"));
        let n = NameAddr::parse(
            "Bob <sip:bob@x>;expires=600;+sip.instance=\"<urn:x>\"",
            "Contact",
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some("Bob"));
        assert_eq!(n.params.value("expires"), Some("600"));
        assert_eq!(
            n.to_string(),
            "Bob <sip:bob@x>;expires=600;+sip.instance=\"<urn:x>\""
        );
        for bad in [
            r#""unbalanced <sip:x@y>"#,
            "< sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:x@y",
            "",
            "Bell, Alexander <sip:x@y>",
        ] {
            assert!(NameAddr::parse(bad, "To").is_err(), "{bad}");
        }
    }

    #[test]
    fn via_with_lws() {
        let v = Via::parse("SIP  /   2.0 /UDP\t192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(
            (v.transport.as_str(), v.host.as_str(), v.port),
            ("UDP", "192.0.2.2", None)
        );
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(v.params.has("rport"));
        let v = Via::parse("SIP/2.0/WSS 8956d5f932e9.invalid;branch=z9hG4bK2b60").unwrap();
        assert_eq!(
            v.to_string(),
            "SIP/2.0/WSS 8956d5f932e9.invalid;branch=z9hG4bK2b60"
        );
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9:1]:5061;branch=z9hG4bKas").unwrap();
        assert_eq!((v.host.as_str(), v.port), ("[2001:db8::9:1]", Some(5061)));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(
            CSeq::parse("0009\r\n  INVITE".replace("\r\n", " ").as_str())
                .unwrap()
                .seq,
            9
        );
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }

    #[test]
    fn sip_uri_round_trip() {
        let u = SipUri::parse("sip:eadd28d0@8956d5f932e9.invalid;transport=ws").unwrap();
        assert_eq!(u.user.as_deref(), Some("eadd28d0"));
        assert_eq!(u.host, "8956d5f932e9.invalid");
        assert_eq!(u.params.value("transport"), Some("ws"));
        assert_eq!(
            u.to_string(),
            "sip:eadd28d0@8956d5f932e9.invalid;transport=ws"
        );
        let u = SipUri::parse("sip:[::1]:5090;lr").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", Some(5090)));
        assert!(SipUri::parse("tel:+123").is_none());
        assert!(SipUri::parse("sip:@x").is_none());
    }
}
