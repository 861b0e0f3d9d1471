//! The command line and environment as given (clap): names and defaults are the replaced
//! container's. Validated into a [`super::Config`].

use std::path::PathBuf;

use clap::Parser;

/// Command line and environment, as given.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "webrtc-phone",
    version,
    about = "A gateway that turns any web browser into a SIP phone"
)]
pub struct Args {
    /// Registrar/proxy `host[:port]` (SIP/UDP) that REGISTER goes to. None: the demo PBX.
    #[arg(long, env = "OUTBOUND_PROXY", value_name = "OUTBOUND_PROXY")]
    pub outbound_proxy: Option<String>,
    /// Static route for browser calls (Sippy grammar). Default: the outbound proxy.
    #[arg(long, env = "OUTBOUND_ROUTE", value_name = "OUTBOUND_ROUTE")]
    pub outbound_route: Option<String>,
    /// HTTPS port: phone pages, /ws, /metrics, /healthz.
    #[arg(
        long,
        env = "HTTPS_PORT",
        value_name = "HTTPS_PORT",
        default_value_t = 443
    )]
    pub https_port: u16,
    /// Secure WebSocket port (SIP over WSS, as the replaced container).
    #[arg(
        long,
        env = "WSS_PORT",
        value_name = "WSS_PORT",
        default_value_t = 9876
    )]
    pub wss_port: u16,
    /// SIP/UDP port.
    #[arg(
        long,
        env = "SIP_PORT",
        value_name = "SIP_PORT",
        default_value_t = 5060
    )]
    pub sip_port: u16,
    /// Lowest RTP port.
    #[arg(
        long,
        env = "MIN_RTP_PORT",
        value_name = "MIN_RTP_PORT",
        default_value_t = 32000
    )]
    pub min_rtp_port: u16,
    /// Highest RTP port.
    #[arg(
        long,
        env = "MAX_RTP_PORT",
        value_name = "MAX_RTP_PORT",
        default_value_t = 34000
    )]
    pub max_rtp_port: u16,
    /// DBUG, INFO, WARN, ERR, CRIT or debug, info, warn, error (any case).
    #[arg(
        long,
        env = "RTPP_LOG_LEVEL",
        value_name = "RTPP_LOG_LEVEL",
        default_value = "INFO"
    )]
    pub log_level: String,
    /// 1 = performance mode: no debug-level or per-packet logging whatever the level.
    #[arg(
        long,
        env = "RTPP_NODEBUG",
        value_name = "RTPP_NODEBUG",
        default_value = "0"
    )]
    pub nodebug: String,
    /// Address to listen on.
    #[arg(
        long,
        alias = "bind-address",
        env = "BIND_ADDRESS",
        value_name = "BIND_ADDRESS",
        default_value = "0.0.0.0"
    )]
    pub bind: String,
    /// Address put in SDP and Via. Default: the bind address if specific, else the first
    /// non-loopback IPv4 address.
    #[arg(long, env = "ADVERTISE_ADDRESS", value_name = "ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// PEM certificate chain. Default: a self-signed certificate kept in the state dir.
    #[arg(long, env = "TLS_CERT", value_name = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS_CERT.
    #[arg(long, env = "TLS_KEY", value_name = "TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Where the generated certificate is kept.
    #[arg(long, env = "STATE_DIR", value_name = "STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Media reactor threads. Default: cores - 1, at least 1.
    #[arg(long, env = "MEDIA_THREADS", value_name = "MEDIA_THREADS")]
    pub media_threads: Option<usize>,
    /// Who may start calls: [[WSS]], [[PROXY]], addresses and CIDRs.
    #[arg(
        long,
        env = "ACCEPT_IPS",
        value_name = "ACCEPT_IPS",
        default_value = "[[WSS]],[[PROXY]]"
    )]
    pub accept_ips: String,
    /// Allowed codecs: payload types and [name/rate] entries.
    #[arg(
        long,
        env = "ALLOWED_PTS",
        value_name = "ALLOWED_PTS",
        default_value = "[G722/8000],[PCMU/8000],[PCMA/8000],[telephone-event/8000],[VP8/90000]"
    )]
    pub allowed_pts: String,
    /// Seconds calls in progress may take to finish after SIGTERM.
    #[arg(
        long,
        env = "DRAIN_TIMEOUT",
        value_name = "DRAIN_TIMEOUT",
        default_value_t = 30
    )]
    pub drain_timeout: u64,
    /// Media batching budget, µs: how long a busy media reactor may gather completions before
    /// it handles them (io_uring min-wait); 0 = wake for every completion.
    #[arg(
        long,
        env = "MEDIA_BATCH_US",
        value_name = "MEDIA_BATCH_US",
        default_value_t = engine::DEFAULT_BATCH_US
    )]
    pub media_batch_us: u32,
    /// Real-time priority of the media reactor threads: 1-99 puts them under SCHED_FIFO at
    /// that priority (needs CAP_SYS_NICE), so a packet preempts other work on its core; 0 =
    /// normal scheduling.
    #[arg(
        long,
        env = "MEDIA_PRIORITY",
        value_name = "MEDIA_PRIORITY",
        default_value_t = 0
    )]
    pub media_priority: u8,
    /// Seconds without media in either direction before a call is hung up.
    #[arg(
        long,
        env = "MEDIA_TIMEOUT",
        value_name = "MEDIA_TIMEOUT",
        default_value_t = 60
    )]
    pub media_timeout: u64,
    /// How a plain (SIP-side) leg learns where the far end's media comes from: `strict` (only
    /// from the IP address in its SDP; the port is learned from its first packet) or
    /// `heuristic` (rtpengine's: within 3 s after the SDP prefer the SDP address, then its IP,
    /// then the first sender; fixed after that; for peers whose SDP address is wrong).
    #[arg(
        long,
        env = "RTP_LATCHING",
        value_name = "RTP_LATCHING",
        default_value = "strict"
    )]
    pub rtp_latching: String,
    /// Seconds between WebSocket pings; a connection silent for two intervals is dead.
    #[arg(
        long,
        env = "WS_PING_INTERVAL",
        value_name = "WS_PING_INTERVAL",
        default_value_t = 20
    )]
    pub ws_ping_interval: u64,
    /// Most WebSocket connections open at once from one source address.
    #[arg(
        long,
        env = "MAX_WS_PER_IP",
        value_name = "MAX_WS_PER_IP",
        default_value_t = 64
    )]
    pub max_ws_per_ip: usize,
    /// Most SIP messages per second one WebSocket connection may send (bursts of twice that);
    /// a connection above it is closed.
    #[arg(
        long,
        env = "WS_MSG_RATE",
        value_name = "WS_MSG_RATE",
        default_value_t = 50
    )]
    pub ws_msg_rate: u32,
    /// Comma-separated Origin values allowed to open a WebSocket (exact match, e.g.
    /// `https://phone.example.com`); `*`: any origin. Empty: the page's own origin (an https
    /// Origin naming the host the request was sent to); requests without Origin are accepted.
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_name = "ALLOWED_ORIGINS",
        default_value = ""
    )]
    pub allowed_origins: String,
    /// Most TCP connections (HTTPS and WSS, before and after the WebSocket upgrade) open at
    /// once from one client address (IPv6: one /64); more are closed at once.
    #[arg(
        long,
        env = "MAX_CONNS_PER_IP",
        value_name = "MAX_CONNS_PER_IP",
        default_value_t = 256
    )]
    pub max_conns_per_ip: usize,
    /// Most TCP connections open at once in total; more are closed at once. Default: 10000,
    /// less when the file descriptor limit cannot hold that many beside the RTP ports.
    #[arg(long, env = "MAX_CONNS", value_name = "MAX_CONNS")]
    pub max_conns: Option<usize>,
    /// `ip:port` to serve /metrics (and /healthz) on, plain HTTP; the HTTPS port then answers
    /// 404 for /metrics. Default: /metrics on the HTTPS port.
    #[arg(long, env = "METRICS_ADDRESS", value_name = "METRICS_ADDRESS")]
    pub metrics_address: Option<String>,
    /// Directory of the phone pages. Default: `webroot/dist` beside the working directory, else
    /// `/usr/share/webrtc-phone/webroot`.
    #[arg(long, env = "WEBROOT", value_name = "WEBROOT")]
    pub webroot: Option<PathBuf>,
    /// SIP/UDP messages per second from one source address (bursts of twice that); more are
    /// dropped before parsing. IPv6 sources count per /64.
    #[arg(
        long,
        env = "SIP_UDP_RATE",
        value_name = "SIP_UDP_RATE",
        default_value_t = 100
    )]
    pub sip_udp_rate: u32,
    /// The same for the outbound proxy's and OUTBOUND_ROUTE's addresses.
    #[arg(
        long,
        env = "SIP_PROXY_RATE",
        value_name = "SIP_PROXY_RATE",
        default_value_t = 10000
    )]
    pub sip_proxy_rate: u32,
    /// Live SIP transactions at most; new requests beyond get 503.
    #[arg(
        long,
        env = "MAX_TRANSACTIONS",
        value_name = "MAX_TRANSACTIONS",
        default_value_t = 20000
    )]
    pub max_transactions: usize,
    /// Calls in progress at most (more: 503).
    #[arg(
        long,
        env = "MAX_CALLS",
        value_name = "MAX_CALLS",
        default_value_t = 5000
    )]
    pub max_calls: usize,
    /// Calls in progress on one WebSocket connection, as caller or callee (more: 486).
    #[arg(
        long,
        env = "MAX_CALLS_PER_WS",
        value_name = "MAX_CALLS_PER_WS",
        default_value_t = 4
    )]
    pub max_calls_per_ws: usize,
    /// Calls in progress from one client address, IPv6 per /64 (more: 486); the outbound
    /// proxy and route are exempt.
    #[arg(
        long,
        env = "MAX_CALLS_PER_IP",
        value_name = "MAX_CALLS_PER_IP",
        default_value_t = 64
    )]
    pub max_calls_per_ip: usize,
    /// Seconds an unanswered call may ring before the gateway ends it (408 to the caller,
    /// CANCEL to the callee).
    #[arg(
        long,
        env = "NO_ANSWER_TIMEOUT",
        value_name = "NO_ANSWER_TIMEOUT",
        default_value_t = 60
    )]
    pub no_answer_timeout: u64,
    /// Demo PBX bindings at most (more: 503).
    #[arg(
        long,
        env = "MAX_REGISTRATIONS",
        value_name = "MAX_REGISTRATIONS",
        default_value_t = 10000
    )]
    pub max_registrations: usize,
    /// `gateway` (the phone gateway: HTTPS, WSS, SIP) or `media` (the media engine driven over
    /// rtpengine's ng protocol at NG_LISTEN, with /metrics at METRICS_ADDRESS; no SIP).
    #[arg(long, env = "MODE", value_name = "MODE", default_value = "gateway")]
    pub mode: String,
    /// UDP `ip:port` of the ng control protocol (Kamailio's `rtpengine_sock`), MODE=media
    /// only. A specific address: replies must leave from the address Kamailio sent to.
    #[arg(long, env = "NG_LISTEN", value_name = "NG_LISTEN")]
    pub ng_listen: Option<String>,
    /// Seconds a call that was offered but never answered lives (rtpengine's offer-timeout).
    #[arg(
        long,
        env = "NG_OFFER_TIMEOUT",
        value_name = "NG_OFFER_TIMEOUT",
        default_value_t = 120
    )]
    pub ng_offer_timeout: u64,
}
