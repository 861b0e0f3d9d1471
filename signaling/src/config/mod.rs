//! Configuration: flags and environment variables (clap), validated into a [`Config`].
//!
//! Names and defaults are the replaced container's, so a deployment moves over unchanged. Every
//! failure is one [`ConfigError`] that names the setting, printed as one line before anything is
//! served.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::b2bua::policy::AcceptList;
use crate::b2bua::route::{parse_hostport, RouteError, StaticRoute};
use crate::sdp::pts::PtFilter;
use crate::transport::origin::OriginPolicy;

mod args;

pub use args::Args;

/// What the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The phone gateway (and the ng node too when NG_LISTEN is set).
    Gateway,
    /// Only the media engine and its ng node.
    Media,
}

/// A bad setting: which one and why. Displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, reason: impl ToString) -> Self {
        ConfigError {
            setting,
            reason: reason.to_string(),
        }
    }
}

/// Log verbosity as RTPP_LOG_LEVEL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "dbug" | "debug" | "trace" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "err" | "error" | "crit" | "critical" => LogLevel::Error,
            _ => return None,
        })
    }
}

/// The registrar/proxy REGISTER goes to, resolved once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// Every address of `host`; a request or response from any of them is the proxy's.
    pub addrs: Vec<SocketAddr>,
}

/// Where TLS material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    Generated,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub proxy: Option<Proxy>,
    pub route: Option<StaticRoute>,
    pub https_port: u16,
    pub wss_port: u16,
    pub sip_port: u16,
    pub rtp_ports: std::ops::RangeInclusive<u16>,
    pub log_level: LogLevel,
    pub nodebug: bool,
    pub bind: IpAddr,
    pub advertise: IpAddr,
    pub tls: TlsSource,
    pub state_dir: PathBuf,
    pub media_threads: usize,
    pub port_shards: Vec<engine::ports::Shard>,
    pub accept_ips: AcceptList,
    pub allowed_pts: PtFilter,
    pub drain_timeout: Duration,
    pub media_timeout: Duration,
    pub media_batch_us: u32,
    pub media_priority: u8,
    pub rtp_latching: engine::Latching,
    pub ws_ping_interval: Duration,
    pub webroot: Option<PathBuf>,
    pub max_ws_per_ip: usize,
    pub ws_msg_rate: u32,
    pub limits: crate::b2bua::core::Limits,
    pub allowed_origins: OriginPolicy,
    pub max_conns_per_ip: usize,
    /// `None`: derived from the file descriptor limit at start-up.
    pub max_conns: Option<usize>,
    pub metrics_address: Option<SocketAddr>,
    pub mode: Mode,
    pub ng_listen: Option<SocketAddr>,
    pub ng_offer_timeout: Duration,
}

impl Config {
    /// True when no upstream is configured and the built-in demo PBX serves.
    pub fn is_demo_pbx(&self) -> bool {
        self.proxy.is_none() && self.route.is_none()
    }

    /// The effective log level: RTPP_NODEBUG=1 caps it at INFO.
    pub fn effective_log_level(&self) -> LogLevel {
        if self.nodebug {
            self.log_level.min(LogLevel::Info)
        } else {
            self.log_level
        }
    }

    /// Validates `args`. Resolves host names (the only IO besides reading the environment).
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let log_level = LogLevel::parse(&args.log_level).ok_or_else(|| {
            ConfigError::new(
                "RTPP_LOG_LEVEL",
                format!(
                    "'{}' is not one of DBUG, INFO, WARN, ERR, CRIT",
                    args.log_level
                ),
            )
        })?;
        let nodebug = match args.nodebug.trim() {
            "0" | "" => false,
            "1" => true,
            other => {
                return Err(ConfigError::new(
                    "RTPP_NODEBUG",
                    format!("'{other}' is not 0 or 1"),
                ))
            }
        };

        let proxy = match args
            .outbound_proxy
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => {
                let s = s.strip_prefix("sip:").unwrap_or(s);
                let (host, port) =
                    parse_hostport(s).map_err(|e| ConfigError::new("OUTBOUND_PROXY", e))?;
                let port = port.unwrap_or(5060);
                let addrs =
                    resolve_host(&host, port).map_err(|e| ConfigError::new("OUTBOUND_PROXY", e))?;
                Some(Proxy { host, port, addrs })
            }
        };
        let route_text = args
            .outbound_route
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| proxy.as_ref().map(|p| format_hostport(&p.host, p.port)));
        let route = match route_text {
            None => None,
            Some(text) => {
                let mut r =
                    StaticRoute::parse(&text).map_err(|e| ConfigError::new("OUTBOUND_ROUTE", e))?;
                r.resolve(resolve_host)
                    .map_err(|e| ConfigError::new("OUTBOUND_ROUTE", e))?;
                Some(r)
            }
        };

        let bind: IpAddr = args.bind.trim().parse().map_err(|_| {
            ConfigError::new(
                "BIND_ADDRESS",
                format!("'{}' is not an IP address", args.bind),
            )
        })?;
        let advertise = match args
            .advertise_address
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => {
                let ip: IpAddr = s.parse().map_err(|_| {
                    ConfigError::new("ADVERTISE_ADDRESS", format!("'{s}' is not an IP address"))
                })?;
                if ip.is_unspecified() || ip.is_multicast() {
                    return Err(ConfigError::new(
                        "ADVERTISE_ADDRESS",
                        format!("{ip} cannot be reached"),
                    ));
                }
                ip
            }
            None if !bind.is_unspecified() => bind,
            None => first_non_loopback_ipv4().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        };

        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (None, None) => TlsSource::Generated,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "TLS_KEY",
                    "TLS_CERT is set but TLS_KEY is not",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "TLS_CERT",
                    "TLS_KEY is set but TLS_CERT is not",
                ))
            }
        };

        let media_threads = match args.media_threads {
            Some(0) => return Err(ConfigError::new("MEDIA_THREADS", "must be at least 1")),
            Some(n) if n > 1024 => {
                return Err(ConfigError::new(
                    "MEDIA_THREADS",
                    format!("{n} is more than 1024"),
                ))
            }
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
        };
        let rtp_ports = args.min_rtp_port..=args.max_rtp_port;
        let port_shards =
            engine::ports::plan_shards(rtp_ports.clone(), media_threads).map_err(|e| {
                let setting = match e {
                    engine::ports::PortPlanError::NoReactors => "MEDIA_THREADS",
                    engine::ports::PortPlanError::ZeroPort => "MIN_RTP_PORT",
                    _ => "MIN_RTP_PORT/MAX_RTP_PORT",
                };
                ConfigError::new(setting, e)
            })?;
        for (setting, port) in [
            ("HTTPS_PORT", args.https_port),
            ("WSS_PORT", args.wss_port),
            ("SIP_PORT", args.sip_port),
        ] {
            if port != 0 && rtp_ports.contains(&port) {
                return Err(ConfigError::new(
                    setting,
                    format!("{port} lies inside the RTP port range"),
                ));
            }
        }
        if args.https_port != 0 && args.https_port == args.wss_port {
            return Err(ConfigError::new(
                "WSS_PORT",
                format!("{} is also HTTPS_PORT", args.wss_port),
            ));
        }

        let accept_ips =
            AcceptList::parse(&args.accept_ips).map_err(|e| ConfigError::new("ACCEPT_IPS", e))?;
        let allowed_pts =
            PtFilter::parse(&args.allowed_pts).map_err(|e| ConfigError::new("ALLOWED_PTS", e))?;
        if args.ws_ping_interval == 0 {
            return Err(ConfigError::new(
                "WS_PING_INTERVAL",
                "must be at least 1 second",
            ));
        }
        if args.max_ws_per_ip == 0 {
            return Err(ConfigError::new("MAX_WS_PER_IP", "must be at least 1"));
        }
        if args.ws_msg_rate == 0 {
            return Err(ConfigError::new("WS_MSG_RATE", "must be at least 1"));
        }
        let allowed_origins = OriginPolicy::parse(&args.allowed_origins)
            .map_err(|e| ConfigError::new("ALLOWED_ORIGINS", e))?;
        if args.max_conns_per_ip == 0 {
            return Err(ConfigError::new("MAX_CONNS_PER_IP", "must be at least 1"));
        }
        let rtp_latching = match args.rtp_latching.trim().to_ascii_lowercase().as_str() {
            "strict" => engine::Latching::Strict,
            "heuristic" => engine::Latching::Heuristic {
                window: engine::DEFAULT_LEARNING_WINDOW,
            },
            _ => {
                return Err(ConfigError::new(
                    "RTP_LATCHING",
                    format!("'{}' is not strict or heuristic", args.rtp_latching),
                ))
            }
        };
        if args.max_conns == Some(0) {
            return Err(ConfigError::new("MAX_CONNS", "must be at least 1"));
        }
        let metrics_address = match args
            .metrics_address
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "METRICS_ADDRESS",
                    format!("'{s}' is not an ip:port address like 127.0.0.1:9090"),
                )
            })?),
        };
        if args.media_batch_us > engine::MAX_BATCH_US {
            return Err(ConfigError::new(
                "MEDIA_BATCH_US",
                format!("must be 0 (off) to {} microseconds", engine::MAX_BATCH_US),
            ));
        }
        if args.media_priority > 99 {
            return Err(ConfigError::new(
                "MEDIA_PRIORITY",
                "must be 0 (normal scheduling) or a SCHED_FIFO priority from 1 to 99",
            ));
        }
        if args.media_timeout == 0 {
            return Err(ConfigError::new(
                "MEDIA_TIMEOUT",
                "must be at least 1 second",
            ));
        }
        for (v, setting) in [
            (args.sip_udp_rate as usize, "SIP_UDP_RATE"),
            (args.sip_proxy_rate as usize, "SIP_PROXY_RATE"),
            (args.max_transactions, "MAX_TRANSACTIONS"),
            (args.max_calls, "MAX_CALLS"),
            (args.max_calls_per_ws, "MAX_CALLS_PER_WS"),
            (args.max_calls_per_ip, "MAX_CALLS_PER_IP"),
            (args.no_answer_timeout as usize, "NO_ANSWER_TIMEOUT"),
            (args.max_registrations, "MAX_REGISTRATIONS"),
        ] {
            if v == 0 {
                return Err(ConfigError::new(setting, "must be at least 1"));
            }
        }
        let mode = match args.mode.trim().to_ascii_lowercase().as_str() {
            "gateway" | "" => Mode::Gateway,
            "media" => Mode::Media,
            other => {
                return Err(ConfigError::new(
                    "MODE",
                    format!("'{other}' is not gateway or media"),
                ))
            }
        };
        let ng_listen = match args
            .ng_listen
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "NG_LISTEN",
                    format!("'{s}' is not an ip:port address like 127.0.0.1:2223"),
                )
            })?),
        };
        if mode == Mode::Media && ng_listen.is_none() {
            return Err(ConfigError::new(
                "NG_LISTEN",
                "MODE=media needs the ng address (e.g. 127.0.0.1:2223)",
            ));
        }
        if mode == Mode::Gateway && ng_listen.is_some() {
            return Err(ConfigError::new(
                "NG_LISTEN",
                "the ng node runs with MODE=media (the gateway drives its engine itself)",
            ));
        }
        if ng_listen.is_some_and(|a| a.ip().is_unspecified()) {
            return Err(ConfigError::new(
                "NG_LISTEN",
                "needs a specific address, not a wildcard: replies must leave from the \
                 address the request came to",
            ));
        }
        if ng_listen.is_some_and(|a| rtp_ports.contains(&a.port())) {
            return Err(ConfigError::new(
                "NG_LISTEN",
                "its port lies inside the RTP port range",
            ));
        }
        if args.ng_offer_timeout == 0 {
            return Err(ConfigError::new(
                "NG_OFFER_TIMEOUT",
                "must be at least 1 second",
            ));
        }
        let limits = crate::b2bua::core::Limits {
            sip_udp_rate: args.sip_udp_rate,
            sip_proxy_rate: args.sip_proxy_rate,
            max_transactions: args.max_transactions,
            max_calls: args.max_calls,
            max_calls_per_ws: args.max_calls_per_ws,
            max_calls_per_ip: args.max_calls_per_ip,
            no_answer_timeout: Duration::from_secs(args.no_answer_timeout),
            max_registrations: args.max_registrations,
        };

        Ok(Config {
            proxy,
            route,
            https_port: args.https_port,
            wss_port: args.wss_port,
            sip_port: args.sip_port,
            rtp_ports,
            log_level,
            nodebug,
            bind,
            advertise,
            tls,
            state_dir: args.state_dir.unwrap_or_else(default_state_dir),
            media_threads,
            port_shards,
            accept_ips,
            allowed_pts,
            drain_timeout: Duration::from_secs(args.drain_timeout),
            media_timeout: Duration::from_secs(args.media_timeout),
            media_batch_us: args.media_batch_us,
            media_priority: args.media_priority,
            rtp_latching,
            ws_ping_interval: Duration::from_secs(args.ws_ping_interval),
            webroot: args.webroot,
            max_ws_per_ip: args.max_ws_per_ip,
            ws_msg_rate: args.ws_msg_rate,
            allowed_origins,
            limits,
            max_conns_per_ip: args.max_conns_per_ip,
            max_conns: args.max_conns,
            metrics_address,
            mode,
            ng_listen,
            ng_offer_timeout: Duration::from_secs(args.ng_offer_timeout),
        })
    }
}

fn format_hostport(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `/var/lib/webrtc-phone` for root, else `$XDG_STATE_HOME/webrtc-phone` or
/// `~/.local/state/webrtc-phone`.
fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/webrtc-phone");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("webrtc-phone");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/webrtc-phone"),
        None => PathBuf::from("/tmp/webrtc-phone"),
    }
}

/// Resolves a host name or literal to its socket addresses (getaddrinfo): configuration's
/// job, once at start-up; the B2BUA gets the addresses.
pub fn resolve_host(host: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
    use std::net::ToSocketAddrs as _;
    let unresolvable = |reason: String| RouteError::Unresolvable {
        host: host.to_string(),
        reason,
    };
    #[allow(
        clippy::disallowed_methods,
        reason = "configuration resolves names once at start-up; nothing pure does"
    )]
    let found = (host.trim_start_matches('[').trim_end_matches(']'), port).to_socket_addrs();
    let mut addrs: Vec<SocketAddr> = found.map_err(|e| unresolvable(e.to_string()))?.collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(unresolvable("no address".into()));
    }
    Ok(addrs)
}

/// The first IPv4 address of an interface that is up and not loopback.
fn first_non_loopback_ipv4() -> Option<IpAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head` on success; freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        let up = ifa.ifa_flags & (libc::IFF_UP as u32) != 0;
        let lo = ifa.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0;
        let inet = !ifa.ifa_addr.is_null() && {
            // SAFETY: ifa_addr is not null, so it points to a sockaddr owned by the list.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            i32::from(family) == libc::AF_INET
        };
        if up && !lo && inet {
            // SAFETY: the family is AF_INET, so the sockaddr is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))));
            break;
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["webrtc-phone"];
        argv.extend_from_slice(extra);
        Config::from_args(Args::try_parse_from(argv).unwrap())
    }

    #[test]
    fn log_levels() {
        for (s, l) in [
            ("DBUG", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("Warn", LogLevel::Warn),
            ("ERR", LogLevel::Error),
            ("CRIT", LogLevel::Error),
            ("error", LogLevel::Error),
            ("debug", LogLevel::Debug),
        ] {
            assert_eq!(LogLevel::parse(s), Some(l), "{s}");
        }
        assert_eq!(LogLevel::parse("loud"), None);
    }

    #[test]
    fn defaults_run_the_demo_pbx() {
        let c = parse(&["--media-threads", "1"]).unwrap();
        assert!(c.is_demo_pbx());
        assert_eq!((c.https_port, c.wss_port, c.sip_port), (443, 9876, 5060));
        assert_eq!(c.rtp_ports, 32000..=34000);
        assert_eq!(c.tls, TlsSource::Generated);
        assert_eq!(c.drain_timeout, Duration::from_secs(30));
        assert_eq!(c.rtp_latching, engine::Latching::Strict);
        assert!(!c.advertise.is_unspecified());
        assert_eq!(c.allowed_origins, OriginPolicy::SameHost);
        assert_eq!((c.max_conns_per_ip, c.max_conns), (256, None));
        assert_eq!(c.metrics_address, None);
    }

    #[test]
    fn rtp_latching_modes() {
        let c = parse(&["--rtp-latching", "Heuristic"]).unwrap();
        assert_eq!(
            c.rtp_latching,
            engine::Latching::Heuristic {
                window: engine::DEFAULT_LEARNING_WINDOW
            }
        );
        let c = parse(&["--rtp-latching", "strict"]).unwrap();
        assert_eq!(c.rtp_latching, engine::Latching::Strict);
    }

    #[test]
    fn proxy_defaults_the_route() {
        let c = parse(&["--outbound-proxy", "localhost:5090"]).unwrap();
        let p = c.proxy.as_ref().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("localhost", 5090));
        assert!(p.addrs.iter().all(|a| a.ip().is_loopback()));
        assert!(c.route.is_some());
        assert!(!c.is_demo_pbx());
    }

    #[test]
    fn nodebug_caps_the_level() {
        let c = parse(&["--log-level", "DBUG", "--nodebug", "1"]).unwrap();
        assert_eq!(c.effective_log_level(), LogLevel::Info);
        let c = parse(&["--log-level", "DBUG"]).unwrap();
        assert_eq!(c.effective_log_level(), LogLevel::Debug);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--min-rtp-port", "34000", "--max-rtp-port", "32000"],
                "MIN_RTP_PORT/MAX_RTP_PORT",
            ),
            (
                &["--min-rtp-port", "40000", "--max-rtp-port", "40001"],
                "MIN_RTP_PORT/MAX_RTP_PORT",
            ),
            (
                &["--outbound-proxy", "no-such-host.invalid"],
                "OUTBOUND_PROXY",
            ),
            (
                &["--outbound-route", "pbx;forward_on_fail"],
                "OUTBOUND_ROUTE",
            ),
            (&["--allowed-pts", "[PCMU]"], "ALLOWED_PTS"),
            (&["--accept-ips", "everyone"], "ACCEPT_IPS"),
            (&["--log-level", "loud"], "RTPP_LOG_LEVEL"),
            (&["--nodebug", "yes"], "RTPP_NODEBUG"),
            (&["--bind", "localhost"], "BIND_ADDRESS"),
            (&["--advertise-address", "0.0.0.0"], "ADVERTISE_ADDRESS"),
            (&["--tls-cert", "/x"], "TLS_KEY"),
            (&["--media-threads", "0"], "MEDIA_THREADS"),
            (&["--media-batch-us", "20001"], "MEDIA_BATCH_US"),
            (&["--media-priority", "100"], "MEDIA_PRIORITY"),
            (&["--https-port", "33000"], "HTTPS_PORT"),
            (&["--https-port", "8443", "--wss-port", "8443"], "WSS_PORT"),
            (&["--max-ws-per-ip", "0"], "MAX_WS_PER_IP"),
            (&["--ws-msg-rate", "0"], "WS_MSG_RATE"),
            (&["--rtp-latching", "anyone"], "RTP_LATCHING"),
            (
                &["--allowed-origins", "phone.example.com"],
                "ALLOWED_ORIGINS",
            ),
            (&["--max-conns-per-ip", "0"], "MAX_CONNS_PER_IP"),
            (&["--max-conns", "0"], "MAX_CONNS"),
            (&["--metrics-address", "127.0.0.1"], "METRICS_ADDRESS"),
            (&["--metrics-address", "localhost:9090"], "METRICS_ADDRESS"),
        ];
        for (argv, setting) in cases {
            let e = parse(argv).unwrap_err();
            assert_eq!(e.setting, *setting, "{argv:?}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }
}
