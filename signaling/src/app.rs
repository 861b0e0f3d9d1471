//! Wiring: raises the file descriptor limit, binds every listener before serving (so a busy
//! port stops start-up with the setting named), runs the signaling thread's event loop, drains
//! on SIGTERM/SIGINT, and stops the process with a failure when one of its tasks dies.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::b2bua::core::CoreConfig;
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::sip::txn::TimerValues;
use crate::tls::{self, TlsMaterial};
pub use crate::transport::driver::{
    redact_credentials, Shared, WsEvent, TEST_PANIC_CORE, TEST_STALL, TEST_STALL_CORE,
};
use crate::transport::limits::ConnTable;
use crate::transport::{http, udp};

/// Connections allowed in total when MAX_CONNS is not set and the file descriptor limit has
/// room for them.
pub const DEFAULT_MAX_CONNS: usize = 10_000;
/// Descriptors kept aside from MAX_CONNS's default besides the RTP ports: listeners, the
/// engine's rings and eventfds, certificate and web root files, logs.
const RESERVED_FDS: u64 = 256;

/// Everything bound and loaded, ready to serve.
pub struct Gateway {
    config: Config,
    tls: TlsMaterial,
    https: TcpListener,
    wss: TcpListener,
    metrics_listener: Option<TcpListener>,
    sip_udp: UdpSocket,
    engine: engine::EngineHandle,
    /// The soft RLIMIT_NOFILE after raising it.
    nofile: u64,
    max_conns: usize,
}

impl Gateway {
    /// Loads TLS material and binds every socket. Any failure names its setting.
    pub fn bind(config: Config) -> Result<Self, ConfigError> {
        let nofile = raise_nofile_limit();
        let rtp = u64::from(*config.rtp_ports.end() - *config.rtp_ports.start()) + 1;
        let max_conns = match config.max_conns {
            Some(n) => {
                if n as u64 + rtp + RESERVED_FDS > nofile {
                    warn!(
                        max_conns = n,
                        nofile,
                        rtp_ports = rtp,
                        "MAX_CONNS and the RTP ports need more file descriptors than the limit: \
                         accepts will fail before MAX_CONNS is reached"
                    );
                }
                n
            }
            None => default_max_conns(nofile, rtp),
        };
        let tls = tls::load(&config.tls, &config.state_dir, config.advertise)?;
        // Build the rustls configuration once here so a bad key fails start-up, not the first
        // connection.
        tls.server_config()?;
        let https = bind_tcp(
            SocketAddr::new(config.bind, config.https_port),
            "HTTPS_PORT",
        )?;
        let wss = bind_tcp(SocketAddr::new(config.bind, config.wss_port), "WSS_PORT")?;
        let metrics_listener = config
            .metrics_address
            .map(|a| bind_tcp(a, "METRICS_ADDRESS"))
            .transpose()?;
        let sip_udp = udp::bind(SocketAddr::new(config.bind, config.sip_port))
            .map_err(|e| ConfigError::new("SIP_PORT", e))?;
        let engine = start_engine(&config)?;
        Ok(Gateway {
            config,
            tls,
            https,
            wss,
            metrics_listener,
            sip_udp,
            engine,
            nofile,
            max_conns,
        })
    }

    /// Serves until SIGTERM or SIGINT, drains, and returns.
    pub fn run(self) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.serve())
    }

    async fn serve(self) -> anyhow::Result<()> {
        let Gateway {
            config,
            tls,
            https,
            wss,
            metrics_listener,
            sip_udp,
            engine,
            nofile,
            max_conns,
        } = self;
        let metrics = Metrics::new_with_media(engine.stats_handles());
        // Unbounded for the few control events per connection (Opened, Closed) and per process
        // (Drain, HangUpAll), which must never be lost; each connection's messages are bounded
        // by its CORE_QUEUE credits.
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(
            metrics.clone(),
            config.ws_ping_interval,
            config.ws_msg_rate,
            config.allowed_origins.clone(),
            config.max_ws_per_ip,
            events_tx,
        ));
        let acceptor = TlsAcceptor::from(tls.server_config()?);
        let https = tokio::net::TcpListener::from_std(https)?;
        let wss = tokio::net::TcpListener::from_std(wss)?;
        let metrics_listener = metrics_listener
            .map(tokio::net::TcpListener::from_std)
            .transpose()?;
        let sip_udp = tokio::net::UdpSocket::from_std(sip_udp)?;
        let mut signals = Signals::new()?;

        if config.is_demo_pbx() {
            warn!(
                "neither OUTBOUND_PROXY nor OUTBOUND_ROUTE is set: running the built-in demo PBX \
                 (any user may register, no password check); do not expose it"
            );
        }
        if let Some(r) = config
            .route
            .as_ref()
            .filter(|r| r.dest == crate::b2bua::route::Dest::SipUa)
        {
            let _ = r;
            warn!("OUTBOUND_ROUTE destination sip-ua cannot carry a browser's call: such calls get 501");
        }
        if let Some(r) = &config.route {
            if !r.ignored.is_empty() {
                warn!(
                    params = r.ignored.join(","),
                    "OUTBOUND_ROUTE parameters for billing or route hunting are accepted and ignored"
                );
            }
        }
        if engine::TEST_HOOKS {
            warn!(
                "this build has the test-only fault hooks (cargo test); never run it in production"
            );
        }
        info!(
            media_threads = config.media_threads,
            "media batching: {}",
            engine.batching()
        );
        log_scheduling(engine.scheduling());
        info!(
            https = %https.local_addr()?,
            wss = %wss.local_addr()?,
            sip_udp = %sip_udp.local_addr()?,
            metrics = %match &metrics_listener {
                Some(l) => l.local_addr()?.to_string(),
                None => "https".to_string(),
            },
            advertise = %config.advertise,
            rtp = format!("{}-{}", config.rtp_ports.start(), config.rtp_ports.end()),
            media_threads = config.media_threads,
            cert = %tls.cert_path.display(),
            cert_sha256 = %tls.fingerprint_sha256(),
            cert_generated = tls.generated_now,
            nofile,
            max_conns,
            max_conns_per_ip = config.max_conns_per_ip,
            "webrtc-phone listening"
        );

        let core_cfg = CoreConfig {
            own_host: match config.advertise {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            },
            sip_port: sip_udp.local_addr()?.port(),
            proxy: config.proxy.as_ref().map(|p| p.addrs.clone()),
            timers: TimerValues::default(),
            route: config.route.clone(),
            accept: config.accept_ips.clone(),
            pts: config.allowed_pts.clone(),
            advertise: config.advertise,
            limits: config.limits.clone(),
        };
        let https_router = http::https_router(
            shared.clone(),
            config.webroot.clone().or_else(default_webroot),
            metrics_listener.is_some(),
        );
        let wss_router = http::wss_router(shared.clone());
        // HTTPS and WSS share one budget: a client is one client whichever port it uses.
        let conns = ConnTable::new(config.max_conns_per_ip, max_conns);
        let mut tasks = Tasks(vec![
            (
                "https",
                tokio::spawn(http::serve(
                    https,
                    "https",
                    Some(acceptor.clone()),
                    https_router,
                    shared.clone(),
                    conns.clone(),
                )),
            ),
            (
                "wss",
                tokio::spawn(http::serve(
                    wss,
                    "wss",
                    Some(acceptor),
                    wss_router,
                    shared.clone(),
                    conns,
                )),
            ),
            (
                "core",
                tokio::spawn(crate::transport::driver::run_core(
                    events_rx,
                    sip_udp,
                    metrics.clone(),
                    core_cfg,
                    engine,
                )),
            ),
        ]);
        if let Some(l) = metrics_listener {
            tasks.0.push((
                "metrics",
                tokio::spawn(http::serve(
                    l,
                    "metrics",
                    None,
                    http::metrics_router(shared.clone()),
                    shared.clone(),
                    ConnTable::new(http::METRICS_MAX_CONNS, http::METRICS_MAX_CONNS),
                )),
            ));
        }

        let signal = tokio::select! {
            s = signals.recv() => s,
            (name, res) = tasks.first_to_end() => return Err(task_died(&shared, name, res)),
        };
        shared.start_draining();
        shared.send_event(WsEvent::Drain);
        let active = metrics.calls_active.get();
        info!(
            signal,
            calls = active,
            drain_timeout_s = config.drain_timeout.as_secs(),
            "shutting down: new calls get 503, calls in progress may finish"
        );
        #[allow(
            clippy::disallowed_methods,
            reason = "the wiring's drain loop: waits for calls until the drain deadline"
        )]
        let (deadline, now) = (
            tokio::time::Instant::now() + config.drain_timeout,
            tokio::time::Instant::now,
        );
        while metrics.calls_active.get() > 0 && now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                s = signals.recv() => {
                    warn!(signal = s, "second signal: not waiting for calls any longer");
                    break;
                }
                (name, res) = tasks.first_to_end() => return Err(task_died(&shared, name, res)),
            }
        }
        let left = metrics.calls_active.get();
        if left > 0 {
            warn!(calls = left, "drain time over: hanging up the calls left");
            shared.send_event(WsEvent::HangUpAll);
            // Give the BYEs a moment to leave (over UDP the first copy goes at once).
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for (_, t) in tasks.0 {
            t.abort();
        }
        info!("webrtc-phone stopped");
        Ok(())
    }
}

/// MODE=media: the engine and its ng node, `/metrics` and `/healthz` at METRICS_ADDRESS; no
/// SIP, WSS or HTTPS. Bound before serving, like the gateway.
pub struct MediaNode {
    config: Config,
    ng: UdpSocket,
    metrics_listener: Option<TcpListener>,
    engine: engine::EngineHandle,
}

impl MediaNode {
    pub fn bind(config: Config) -> Result<Self, ConfigError> {
        raise_nofile_limit();
        let addr = config
            .ng_listen
            .ok_or_else(|| ConfigError::new("NG_LISTEN", "not set"))?;
        let ng = udp::bind(addr).map_err(|e| ConfigError::new("NG_LISTEN", e))?;
        let metrics_listener = config
            .metrics_address
            .map(|a| bind_tcp(a, "METRICS_ADDRESS"))
            .transpose()?;
        let engine = start_engine(&config)?;
        Ok(MediaNode {
            config,
            ng,
            metrics_listener,
            engine,
        })
    }

    /// Serves until SIGTERM or SIGINT. Calls end with the process, as with rtpengine.
    pub fn run(self) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.serve())
    }

    async fn serve(self) -> anyhow::Result<()> {
        let MediaNode {
            config,
            ng,
            metrics_listener,
            engine,
        } = self;
        let metrics = Metrics::new_with_media(engine.stats_handles());
        let (events_tx, _events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(
            metrics.clone(),
            config.ws_ping_interval,
            config.ws_msg_rate,
            config.allowed_origins.clone(),
            config.max_ws_per_ip,
            events_tx,
        ));
        let ng = tokio::net::UdpSocket::from_std(ng)?;
        let mut node_cfg = crate::media_node::NodeConfig::new(config.advertise);
        node_cfg.max_sessions = Some(config.limits.max_calls);
        node_cfg.offer_timeout = config.ng_offer_timeout;
        let node = crate::media_node::Node::new(node_cfg)
            .map_err(|e| anyhow::anyhow!("ng reply cache: {e}"))?;
        let mut signals = Signals::new()?;
        info!(
            ng = %ng.local_addr()?,
            metrics = %match &metrics_listener {
                Some(l) => l.local_addr()?.to_string(),
                None => "off".to_string(),
            },
            advertise = %config.advertise,
            rtp = format!("{}-{}", config.rtp_ports.start(), config.rtp_ports.end()),
            media_threads = config.media_threads,
            max_calls = config.limits.max_calls,
            "media batching: {}", engine.batching()
        );
        log_scheduling(engine.scheduling());
        info!("ng listening on {}", ng.local_addr()?);
        let mut tasks = Tasks(vec![(
            "ng",
            tokio::spawn(crate::transport::ng::serve(
                ng,
                node,
                engine,
                metrics.clone(),
            )),
        )]);
        if let Some(l) = metrics_listener {
            let l = tokio::net::TcpListener::from_std(l)?;
            tasks.0.push((
                "metrics",
                tokio::spawn(http::serve(
                    l,
                    "metrics",
                    None,
                    http::metrics_router(shared.clone()),
                    shared.clone(),
                    ConnTable::new(http::METRICS_MAX_CONNS, http::METRICS_MAX_CONNS),
                )),
            ));
        }
        let signal = tokio::select! {
            s = signals.recv() => s,
            (name, res) = tasks.first_to_end() => return Err(task_died(&shared, name, res)),
        };
        info!(
            signal,
            calls = metrics.ng_calls_active.get(),
            "media node stopping: its calls end with it"
        );
        for (_, t) in tasks.0 {
            t.abort();
        }
        info!("webrtc-phone media node stopped");
        Ok(())
    }
}

/// Starts the media engine as `config` lays it out; failures name their setting.
fn start_engine(config: &Config) -> Result<engine::EngineHandle, ConfigError> {
    engine::Engine::start(engine::EngineConfig {
        shards: config.port_shards.clone(),
        bind: config.bind,
        advertise: config.advertise,
        media_timeout: config.media_timeout,
        latching: config.rtp_latching,
        batch_us: config.media_batch_us,
        realtime_priority: config.media_priority,
    })
    .map_err(|e| match e {
        engine::EngineError::Bind { .. } => ConfigError::new("MIN_RTP_PORT/MAX_RTP_PORT", e),
        other => ConfigError::new("MEDIA_THREADS", other),
    })
}

/// The long-lived tasks of the signaling thread, by name. None of them ends on its own.
struct Tasks(Vec<(&'static str, JoinHandle<()>)>);

impl Tasks {
    /// Waits for the first task to end (return or panic).
    async fn first_to_end(&mut self) -> (&'static str, Result<(), JoinError>) {
        use std::future::Future as _;
        std::future::poll_fn(|cx| {
            for (name, handle) in &mut self.0 {
                if let std::task::Poll::Ready(res) = std::pin::Pin::new(handle).poll(cx) {
                    return std::task::Poll::Ready((*name, res));
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// A task died: /healthz says 503 from now on, one ERROR line names the task, and the error
/// makes the process exit non-zero (a supervisor restarts it; calls cannot go on without it).
fn task_died(shared: &Shared, name: &'static str, res: Result<(), JoinError>) -> anyhow::Error {
    shared.mark_failed();
    let how = match res {
        Ok(()) => "returned".to_string(),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text payload".to_string());
            format!("panicked: {msg}")
        }
        Err(e) => e.to_string(),
    };
    error!(task = %name, how = ?how, "a signaling task died: exiting");
    anyhow::anyhow!("the {name} task died ({how})")
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (every connection and RTP port is a
/// descriptor; the usual soft default of 1024 runs out long before the hard one). Returns the
/// soft limit in force afterwards.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "cannot read the file descriptor limit");
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from a struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            warn!(
                soft = lim.rlim_cur,
                hard = lim.rlim_max,
                error = %std::io::Error::last_os_error(),
                "cannot raise the file descriptor limit"
            );
        }
    }
    lim.rlim_cur
}

/// MAX_CONNS's default: [`DEFAULT_MAX_CONNS`], or what the descriptor limit leaves beside the
/// RTP ports (and a reserve) when that is less; at least 64.
fn default_max_conns(nofile: u64, rtp_ports: u64) -> usize {
    let room = nofile.saturating_sub(rtp_ports + RESERVED_FDS);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(64, DEFAULT_MAX_CONNS)
}

/// MEDIA_PRIORITY's outcome: one line when it was asked for, a WARN when it was refused.
fn log_scheduling(s: &engine::Scheduling) {
    match s {
        engine::Scheduling::Normal => {}
        engine::Scheduling::Realtime(_) => info!("media scheduling: {s}"),
        engine::Scheduling::Refused { .. } => {
            warn!(setting = "MEDIA_PRIORITY", "media scheduling: {s}")
        }
    }
}

fn bind_tcp(addr: SocketAddr, setting: &'static str) -> Result<TcpListener, ConfigError> {
    http::listen(addr).map_err(|e| ConfigError::new(setting, e))
}

/// `webroot/dist` under the working directory (a source checkout), else the installed path.
fn default_webroot() -> Option<std::path::PathBuf> {
    ["webroot/dist", "/usr/share/webrtc-phone/webroot"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_dir())
}

/// SIGTERM and SIGINT, caught from creation on: made before the listening line, so a
/// supervisor (or a test) that signals as soon as it sees that line never kills the process
/// with the default action.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_conns_fits_the_descriptor_limit() {
        assert_eq!(default_max_conns(1 << 20, 2001), DEFAULT_MAX_CONNS);
        assert_eq!(default_max_conns(4096, 2001), 4096 - 2001 - 256);
        assert_eq!(default_max_conns(1024, 2001), 64);
    }
}
