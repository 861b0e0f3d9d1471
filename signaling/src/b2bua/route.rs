//! The static-route grammar of `OUTBOUND_ROUTE` (Sippy B2BUA `--static_route`), complete.
//!
//! ```text
//! route     = [ cld "@" ] hostport *( ";" name "=" value )
//! hostport  = host [ ":" port ] / "[" IPv6address "]" [ ":" port ] / "sip-ua" / "wss-ua"
//! ```
//!
//! Parsing is pure; [`StaticRoute::resolve`] turns the host into addresses once, at start-up.

use std::net::{IpAddr, SocketAddr};

/// What happens to the Request-URI user (the called number) on the outgoing leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cld {
    /// Bare `host`: the caller's CLD is kept.
    Keep,
    /// `@host`: the user part is removed.
    Remove,
    /// `cld@host`: the user part is forced.
    Set(String),
}

/// Where the outgoing leg goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A SIP/UDP next hop; `addrs` is filled by [`StaticRoute::resolve`].
    Host {
        host: String,
        port: u16,
        addrs: Vec<SocketAddr>,
    },
    /// Back to the source of the request.
    SipUa,
    /// Down the WebSocket named by the Request-URI host.
    WssUa,
}

/// How a challenge (401/407) from the far end is handled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RouteAuth {
    /// Challenges pass through to the caller (the default).
    #[default]
    PassThrough,
    /// `auth=user:pass`: the B2BUA answers challenges itself.
    Credentials { user: String, pass: String },
    /// `auth=nopass`: pass-through off, no credentials (the challenge fails the call).
    NoPass,
}

/// A seconds parameter where a negative value means "off" and 0 means "skip the route".
pub type Seconds = i64;

/// Every parameter of one route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteParams {
    /// `credit-time`: maximum call duration.
    pub credit_time: Option<Seconds>,
    /// `expires`: give up if not connected within this time.
    pub expires: Option<Seconds>,
    /// `np_expires`: no 180/183 or answer within this time.
    pub np_expires: Option<Seconds>,
    /// `nr_expires`: no provisional response at all within this time.
    pub nr_expires: Option<Seconds>,
    /// `hs_scodes`: final codes that stop hunting.
    pub hs_scodes: Vec<u16>,
    /// `forward_on_fail`: accounting flag.
    pub forward_on_fail: bool,
    pub auth: RouteAuth,
    /// `cli`: outgoing caller id; `Some("")` removes it.
    pub cli: Option<String>,
    /// `cnam`: outgoing display name (URL-decoded); `Some("")` removes it.
    pub cnam: Option<String>,
    /// `ash`: extra headers (URL-decoded `Name: Value`).
    pub ash: Vec<(String, String)>,
    /// `rtpp`: relay media for this route (default true).
    pub rtpp: bool,
    /// `op`: outbound proxy for this leg.
    pub op: Option<(String, u16)>,
    /// `po_proc`: pre-originate transforms, kept verbatim (accounting only).
    pub po_proc: Vec<String>,
    /// `gt`: group timeout and skip count (hunting between routes; no effect on a static route).
    pub gt: Option<(u32, u32)>,
    /// Any other parameter, kept verbatim (`bill-to`, `rid`, ...).
    pub other: Vec<(String, String)>,
}

/// One parsed static route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub cld: Cld,
    pub dest: Dest,
    pub params: RouteParams,
    /// Parameters that are accepted but only affect billing or hunting, which this gateway does
    /// not do; the caller logs them once.
    pub ignored: Vec<String>,
    /// The addresses of `op=`, filled by [`StaticRoute::resolve`].
    pub op_addrs: Vec<SocketAddr>,
}

/// Why a route string does not parse or resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("empty route")]
    Empty,
    #[error("empty host")]
    EmptyHost,
    #[error("bad port '{0}'")]
    BadPort(String),
    #[error("unterminated '[' in IPv6 host")]
    BadIpv6,
    #[error("parameter '{0}' has no '=' (write it as {0}=1)")]
    NoValue(String),
    #[error("parameter '{name}': bad value '{value}'")]
    BadValue { name: String, value: String },
    #[error("host '{host}' does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

impl StaticRoute {
    /// Parses one route. Pure: the host is not resolved.
    pub fn parse(s: &str) -> Result<Self, RouteError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(RouteError::Empty);
        }
        let mut items = s.split(';');
        let head = items.next().unwrap_or_default();
        let (cld, hostport) = match head.rfind('@') {
            Some(i) if head[..i].is_empty() => (Cld::Remove, &head[i + 1..]),
            Some(i) => (Cld::Set(head[..i].to_string()), &head[i + 1..]),
            None => (Cld::Keep, head),
        };
        let dest = match hostport {
            "sip-ua" => Dest::SipUa,
            "wss-ua" => Dest::WssUa,
            _ => {
                let (host, port) = parse_hostport(hostport)?;
                Dest::Host {
                    host,
                    port: port.unwrap_or(5060),
                    addrs: Vec::new(),
                }
            }
        };
        let mut params = RouteParams {
            rtpp: true,
            ..RouteParams::default()
        };
        let mut ignored = Vec::new();
        for item in items {
            if item.is_empty() {
                continue;
            }
            let Some((name, value)) = item.split_once('=') else {
                return Err(RouteError::NoValue(item.to_string()));
            };
            let bad = || RouteError::BadValue {
                name: name.to_string(),
                value: value.to_string(),
            };
            let secs = || value.trim().parse::<i64>().map_err(|_| bad());
            match name {
                "credit-time" => params.credit_time = Some(secs()?),
                "expires" => params.expires = Some(secs()?),
                "np_expires" => params.np_expires = Some(secs()?),
                "nr_expires" => params.nr_expires = Some(secs()?),
                "hs_scodes" => {
                    params.hs_scodes = value
                        .split(',')
                        .map(|c| {
                            c.trim()
                                .parse::<u16>()
                                .ok()
                                .filter(|c| (100..700).contains(c))
                        })
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(bad)?;
                    ignored.push(name.to_string());
                }
                "forward_on_fail" => {
                    params.forward_on_fail = true;
                    ignored.push(name.to_string());
                }
                "auth" => {
                    params.auth = if value == "nopass" {
                        RouteAuth::NoPass
                    } else {
                        let (user, pass) = value.split_once(':').ok_or_else(bad)?;
                        RouteAuth::Credentials {
                            user: user.to_string(),
                            pass: pass.to_string(),
                        }
                    }
                }
                "cli" => params.cli = Some(value.to_string()),
                "cnam" => params.cnam = Some(url_decode(value).ok_or_else(bad)?),
                "ash" => {
                    let decoded = url_decode(value).ok_or_else(bad)?;
                    let (n, v) = decoded.split_once(':').ok_or_else(bad)?;
                    let n = n.trim();
                    if n.is_empty() || !n.bytes().all(is_token_char) || v.contains(['\r', '\n']) {
                        return Err(bad());
                    }
                    params.ash.push((n.to_string(), v.trim().to_string()));
                }
                "rtpp" => {
                    params.rtpp = match value {
                        "0" => false,
                        "1" => true,
                        _ => return Err(bad()),
                    }
                }
                "op" => {
                    let (h, p) = parse_hostport(value).map_err(|_| bad())?;
                    params.op = Some((h, p.unwrap_or(5060)));
                }
                "po_proc" => {
                    params.po_proc.push(value.to_string());
                    ignored.push(name.to_string());
                }
                "gt" => {
                    let (t, k) = value.split_once(',').ok_or_else(bad)?;
                    let t = t.trim().parse().map_err(|_| bad())?;
                    let k = k.trim().parse().map_err(|_| bad())?;
                    params.gt = Some((t, k));
                    ignored.push(name.to_string());
                }
                _ => {
                    if name.is_empty() {
                        return Err(bad());
                    }
                    if name.starts_with("bill-") {
                        ignored.push(name.to_string());
                    }
                    params.other.push((name.to_string(), value.to_string()));
                }
            }
        }
        Ok(StaticRoute {
            cld,
            dest,
            params,
            ignored,
            op_addrs: Vec::new(),
        })
    }

    /// Gives the destination host (and `op`) their addresses once, as the replaced system does
    /// at start-up. `resolve` is the caller's: configuration passes its name resolver
    /// (getaddrinfo, `config::resolve_host`), tests [`literal_host`]; this module stays pure.
    /// Fails when a host has no address.
    pub fn resolve(
        &mut self,
        mut resolve: impl FnMut(&str, u16) -> Result<Vec<SocketAddr>, RouteError>,
    ) -> Result<(), RouteError> {
        if let Dest::Host { host, port, addrs } = &mut self.dest {
            *addrs = resolve(host, *port)?;
        }
        if let Some((host, port)) = &self.params.op {
            self.op_addrs = resolve(host, *port)?;
        }
        Ok(())
    }
}

/// Splits `host[:port]` or `[v6][:port]`.
pub fn parse_hostport(s: &str) -> Result<(String, Option<u16>), RouteError> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or(RouteError::BadIpv6)?;
        let host = &rest[..end];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(RouteError::BadIpv6);
        }
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or(RouteError::BadIpv6)?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(RouteError::EmptyHost);
    }
    if !host.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6())
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(RouteError::BadValue {
            name: "host".into(),
            value: host.into(),
        });
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| RouteError::BadPort(p.to_string()))?,
        ),
    };
    Ok((host.to_string(), port))
}

/// A host that is an IP literal (`127.0.0.1`, `::1`, `[::1]`), without name resolution: the
/// pure resolver for [`StaticRoute::resolve`] (tests, and literal-only configurations).
pub fn literal_host(host: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| vec![SocketAddr::new(ip, port)])
        .map_err(|_| RouteError::Unresolvable {
            host: host.to_string(),
            reason: "not an IP address (names are resolved by configuration)".into(),
        })
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Decodes `%XX` escapes (and `+` as space, as Python's `unquote_plus` does for these values).
fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_keeps_cld_and_defaults_port() {
        let r = StaticRoute::parse("pbx.example.net").unwrap();
        assert_eq!(r.cld, Cld::Keep);
        assert_eq!(
            r.dest,
            Dest::Host {
                host: "pbx.example.net".into(),
                port: 5060,
                addrs: vec![]
            }
        );
        assert!(r.params.rtpp);
        assert_eq!(r.params.auth, RouteAuth::PassThrough);
    }

    #[test]
    fn cld_forms() {
        assert_eq!(
            StaticRoute::parse("@10.0.0.1:5070").unwrap().cld,
            Cld::Remove
        );
        let r = StaticRoute::parse("echo@127.0.0.1:5090").unwrap();
        assert_eq!(r.cld, Cld::Set("echo".into()));
        assert!(matches!(r.dest, Dest::Host { port: 5090, .. }));
    }

    #[test]
    fn ipv6_and_internal_destinations() {
        let r = StaticRoute::parse("[::1]:5080").unwrap();
        assert!(matches!(r.dest, Dest::Host { ref host, port: 5080, .. } if host == "::1"));
        assert!(matches!(
            StaticRoute::parse("[::1]").unwrap().dest,
            Dest::Host { port: 5060, .. }
        ));
        assert_eq!(StaticRoute::parse("wss-ua").unwrap().dest, Dest::WssUa);
        assert_eq!(StaticRoute::parse("sip-ua").unwrap().dest, Dest::SipUa);
        assert_eq!(StaticRoute::parse("[::1"), Err(RouteError::BadIpv6));
    }

    #[test]
    fn all_parameters() {
        let r = StaticRoute::parse(
            "100@pbx:5061;credit-time=3600;expires=60;np_expires=10;nr_expires=5;hs_scodes=486,503;\
             forward_on_fail=1;auth=bob:s3cr%3At;cli=12345;cnam=John%20Doe;ash=X-Foo%3A%20bar;\
             ash=X-Baz%3Aq;rtpp=0;op=proxy.example:5070;po_proc=Nop[x];gt=10,2;bill-to=acme;rid=7",
        )
        .unwrap();
        let p = &r.params;
        assert_eq!(p.credit_time, Some(3600));
        assert_eq!(p.expires, Some(60));
        assert_eq!(p.np_expires, Some(10));
        assert_eq!(p.nr_expires, Some(5));
        assert_eq!(p.hs_scodes, vec![486, 503]);
        assert!(p.forward_on_fail);
        assert_eq!(
            p.auth,
            RouteAuth::Credentials {
                user: "bob".into(),
                pass: "s3cr%3At".into()
            }
        );
        assert_eq!(p.cli.as_deref(), Some("12345"));
        assert_eq!(p.cnam.as_deref(), Some("John Doe"));
        assert_eq!(
            p.ash,
            vec![("X-Foo".into(), "bar".into()), ("X-Baz".into(), "q".into())]
        );
        assert!(!p.rtpp);
        assert_eq!(p.op, Some(("proxy.example".into(), 5070)));
        assert_eq!(p.po_proc, vec!["Nop[x]".to_string()]);
        assert_eq!(p.gt, Some((10, 2)));
        assert_eq!(
            p.other,
            vec![
                ("bill-to".into(), "acme".into()),
                ("rid".into(), "7".into())
            ]
        );
        assert_eq!(
            r.ignored,
            vec!["hs_scodes", "forward_on_fail", "po_proc", "gt", "bill-to"]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(StaticRoute::parse(""), Err(RouteError::Empty));
        assert_eq!(
            StaticRoute::parse("pbx;forward_on_fail"),
            Err(RouteError::NoValue("forward_on_fail".into()))
        );
        assert!(matches!(
            StaticRoute::parse("pbx:99999"),
            Err(RouteError::BadPort(_))
        ));
        assert!(matches!(
            StaticRoute::parse("pbx:0"),
            Err(RouteError::BadPort(_))
        ));
        assert!(matches!(
            StaticRoute::parse("pbx;expires=soon"),
            Err(RouteError::BadValue { .. })
        ));
        assert!(matches!(
            StaticRoute::parse("pbx;auth=nocolon"),
            Err(RouteError::BadValue { .. })
        ));
        assert!(matches!(
            StaticRoute::parse("pbx;ash=NoColon"),
            Err(RouteError::BadValue { .. })
        ));
        assert!(matches!(
            StaticRoute::parse("pbx;hs_scodes=4x6"),
            Err(RouteError::BadValue { .. })
        ));
        assert!(matches!(
            StaticRoute::parse("pb x"),
            Err(RouteError::BadValue { .. })
        ));
        assert_eq!(StaticRoute::parse("@"), Err(RouteError::EmptyHost));
        assert_eq!(
            StaticRoute::parse("pbx;auth=nopass").unwrap().params.auth,
            RouteAuth::NoPass
        );
    }

    #[test]
    fn resolves_literals_and_leaves_names_to_configuration() {
        let mut r = StaticRoute::parse("127.0.0.1:5090").unwrap();
        r.resolve(literal_host).unwrap();
        assert!(
            matches!(&r.dest, Dest::Host { addrs, .. } if addrs == &["127.0.0.1:5090".parse().unwrap()])
        );
        let mut r = StaticRoute::parse("localhost").unwrap();
        assert!(matches!(
            r.resolve(literal_host),
            Err(RouteError::Unresolvable { .. })
        ));
        let seen = std::cell::RefCell::new(Vec::new());
        r.resolve(|h, p| {
            seen.borrow_mut().push((h.to_string(), p));
            Ok(vec![SocketAddr::new(IpAddr::from([127, 0, 0, 1]), p)])
        })
        .unwrap();
        assert_eq!(seen.into_inner(), vec![("localhost".to_string(), 5060)]);
    }
}
