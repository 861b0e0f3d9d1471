//! Wiring: raises the file descriptor limit, binds every listener before serving (so a busy
//! port stops start-up with the setting named), runs the signaling thread's event loop, drains
//! on SIGTERM/SIGINT, and stops the process with a failure when one of its tasks dies.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::b2bua::core::{Core, CoreConfig, CoreEvent, Peer};
use crate::config::{Config, ConfigError};
use crate::metrics::{
    ByLabels, CodeLabels, EventLabels, MalformedLabels, Metrics, RejectLabels, TransportLabels,
};
use crate::sip::msg::SipMsg;
use crate::sip::txn::TimerValues;
use crate::tls::{self, TlsMaterial};
use crate::transport::http;
use crate::transport::limits::{ConnSlot, ConnTable};
use crate::transport::origin::OriginPolicy;
use crate::transport::ws::{ConnName, CoreCredit};

/// Connections allowed in total when MAX_CONNS is not set and the file descriptor limit has
/// room for them.
pub const DEFAULT_MAX_CONNS: usize = 10_000;
/// Descriptors kept aside from MAX_CONNS's default besides the RTP ports: listeners, the
/// engine's rings and eventfds, certificate and web root files, logs.
const RESERVED_FDS: u64 = 256;

/// Test builds only (engine's `test-hooks`): a WebSocket message with exactly this text makes
/// the signaling core task panic (the dead-task fault test).
pub const TEST_PANIC_CORE: &str = "webrtc-phone test hook: panic the signaling core";
/// Test builds only: a WebSocket message with exactly this text makes the signaling core stop
/// taking events for [`TEST_STALL`] (the core queue test).
pub const TEST_STALL_CORE: &str = "webrtc-phone test hook: stall the signaling core";
/// How long [`TEST_STALL_CORE`] stalls the core.
pub const TEST_STALL: Duration = Duration::from_secs(2);

/// What the WebSocket tasks tell the signaling core.
#[derive(Debug)]
pub enum WsEvent {
    Opened {
        conn: ConnName,
        peer: SocketAddr,
        tx: mpsc::Sender<String>,
    },
    Message {
        conn: ConnName,
        text: String,
        /// Held until the core has handled the message: the connection's queue bound.
        credit: CoreCredit,
    },
    Closed {
        conn: ConnName,
    },
    /// SIGTERM/SIGINT: new calls get 503 from now on.
    Drain,
    /// The drain time is over: hang up every call.
    HangUpAll,
}

/// State shared by the transport tasks of the signaling thread.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub ws_ping_interval: Duration,
    pub ws_msg_rate: u32,
    pub allowed_origins: OriginPolicy,
    /// Open WebSocket connections by client address (IPv6: /64), MAX_WS_PER_IP each.
    ws_per_ip: Arc<ConnTable>,
    draining: AtomicBool,
    /// A task of the signaling thread died; the process is on its way out.
    failed: AtomicBool,
    events: mpsc::UnboundedSender<WsEvent>,
    started: tokio::time::Instant,
}

impl Shared {
    /// True once SIGTERM/SIGINT arrived: new calls get 503.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// True once a signaling task died: /healthz says 503 until the process exits.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn send_event(&self, ev: WsEvent) {
        // The core outlives every transport task; a send after it stopped is moot.
        let _ = self.events.send(ev);
    }

    /// Takes one of `ip`'s WebSocket slots; `None` when its address (IPv6: its /64) has
    /// MAX_WS_PER_IP open already.
    pub fn take_ws_slot(&self, ip: std::net::IpAddr) -> Option<ConnSlot> {
        self.ws_per_ip.take(ip).ok()
    }

    /// Whole seconds since start: the coarse clock of idle timeouts.
    pub fn clock_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

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
        let sip_udp =
            UdpSocket::bind(SocketAddr::new(config.bind, config.sip_port)).map_err(|e| {
                ConfigError::new(
                    "SIP_PORT",
                    format!("cannot bind UDP {}:{}: {e}", config.bind, config.sip_port),
                )
            })?;
        sip_udp
            .set_nonblocking(true)
            .map_err(|e| ConfigError::new("SIP_PORT", e))?;
        raise_receive_buffer(&sip_udp, SIP_RCVBUF);
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
        let shared = Arc::new(Shared {
            metrics: metrics.clone(),
            ws_ping_interval: config.ws_ping_interval,
            ws_msg_rate: config.ws_msg_rate,
            allowed_origins: config.allowed_origins.clone(),
            ws_per_ip: ConnTable::new(config.max_ws_per_ip, usize::MAX),
            draining: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            events: events_tx,
            started: tokio::time::Instant::now(),
        });
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
                tokio::spawn(core_task(
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
        shared.draining.store(true, Ordering::Relaxed);
        shared.send_event(WsEvent::Drain);
        let active = metrics.calls_active.get();
        info!(
            signal,
            calls = active,
            drain_timeout_s = config.drain_timeout.as_secs(),
            "shutting down: new calls get 503, calls in progress may finish"
        );
        let deadline = tokio::time::Instant::now() + config.drain_timeout;
        while metrics.calls_active.get() > 0 && tokio::time::Instant::now() < deadline {
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
        let ng = UdpSocket::bind(addr)
            .map_err(|e| ConfigError::new("NG_LISTEN", format!("cannot bind UDP {addr}: {e}")))?;
        ng.set_nonblocking(true)
            .map_err(|e| ConfigError::new("NG_LISTEN", e))?;
        raise_receive_buffer(&ng, SIP_RCVBUF);
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
        let shared = Arc::new(Shared {
            metrics: metrics.clone(),
            ws_ping_interval: config.ws_ping_interval,
            ws_msg_rate: config.ws_msg_rate,
            allowed_origins: config.allowed_origins.clone(),
            ws_per_ip: ConnTable::new(config.max_ws_per_ip, usize::MAX),
            draining: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            events: events_tx,
            started: tokio::time::Instant::now(),
        });
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
    })
    .map_err(|e| match e {
        engine::EngineError::Bind { .. } => ConfigError::new("MIN_RTP_PORT/MAX_RTP_PORT", e),
        other => ConfigError::new("MEDIA_THREADS", other),
    })
}

/// The SIP/UDP socket's receive buffer: room for a burst of a flood's datagrams ahead of
/// the per-source limit (they are dropped there, cheaply, rather than by the kernel, which
/// cannot tell a flood's datagram from a peer's).
const SIP_RCVBUF: libc::c_int = 8 << 20;

/// Asks for `bytes` of receive buffer: beyond `net.core.rmem_max` when the process may
/// (SO_RCVBUFFORCE, CAP_NET_ADMIN), else up to it. Best effort: a smaller buffer only means
/// earlier kernel drops.
fn raise_receive_buffer(sock: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on a socket this function borrows, with a pointer to a live c_int
        // and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
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
    shared.failed.store(true, Ordering::Relaxed);
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

fn bind_tcp(addr: SocketAddr, setting: &'static str) -> Result<TcpListener, ConfigError> {
    let l = TcpListener::bind(addr)
        .map_err(|e| ConfigError::new(setting, format!("cannot listen on TCP {addr}: {e}")))?;
    l.set_nonblocking(true)
        .map_err(|e| ConfigError::new(setting, e))?;
    Ok(l)
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

/// The signaling core task: owns the WebSocket connection table, the SIP/UDP socket and the
/// [`Core`]; everything SIP passes through here, one message at a time.
async fn core_task(
    mut rx: mpsc::UnboundedReceiver<WsEvent>,
    sock: tokio::net::UdpSocket,
    metrics: Arc<Metrics>,
    cfg: CoreConfig,
    mut engine: engine::EngineHandle,
) {
    let mut core = Core::new(cfg);
    // SAFETY: the eventfd belongs to `engine`, a parameter of this function, which outlives
    // `notify` (a local, dropped first) and never closes or replaces the descriptor meanwhile.
    let registered = unsafe { tokio::io::unix::AsyncFd::register(NotifyFd(engine.notify_fd())) };
    let notify = match registered {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the media engine's notifications");
            return;
        }
    };
    let mut conns: HashMap<ConnName, (SocketAddr, mpsc::Sender<String>)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let deadline = core.poll_timeout();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timer => {
                core.handle_timeout(clock());
            }
            guard = notify.readable() => {
                if let Ok(mut g) = guard {
                    g.clear_ready();
                }
            }
            ev = rx.recv() => match ev {
                Some(WsEvent::Opened { conn, peer, tx }) => {
                    core.handle_ws_opened(&conn, peer.ip());
                    conns.insert(conn, (peer, tx));
                }
                Some(WsEvent::Message { conn, text, credit }) => {
                    if engine::TEST_HOOKS && text == TEST_PANIC_CORE {
                        panic!("test hook: the signaling core panics");
                    }
                    if engine::TEST_HOOKS && text == TEST_STALL_CORE {
                        tokio::time::sleep(TEST_STALL).await;
                    }
                    log_sip("received", &conn, text.as_bytes());
                    metrics.sip_messages_received.get_or_create(&TransportLabels { transport: "ws" }).inc();
                    core.handle_message(clock(), Peer::Ws(conn), text.as_bytes());
                    drop(credit);
                }
                Some(WsEvent::Closed { conn }) => {
                    core.handle_ws_closed(clock(), &conn);
                    conns.remove(&conn);
                }
                Some(WsEvent::Drain) => core.handle_drain(),
                Some(WsEvent::HangUpAll) => core.hang_up_all(clock()),
                None => return,
            },
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let data = &buf[..n];
                    log_sip("received", &from, data);
                    metrics.sip_messages_received.get_or_create(&TransportLabels { transport: "udp" }).inc();
                    core.handle_datagram(clock(), from, data);
                }
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux; nothing to do.
                    debug!(error = %e, "SIP/UDP receive error");
                }
            },
        }
        // Whatever woke the loop, the engine may have answered meanwhile: take its outputs
        // before flushing, so what they cause goes out now, not at the next wake-up.
        while let Some(out) = engine.try_recv() {
            core.handle_engine(clock(), out);
        }
        while let Some(t) = core.poll_transmit() {
            match t.to {
                Peer::Ws(conn) => {
                    log_sip("sent", &conn, &t.bytes);
                    let text = String::from_utf8_lossy(&t.bytes).into_owned();
                    match conns.get(&conn) {
                        // A full queue means a stuck client: dropping its message is what a
                        // lost datagram would be; the connection's own keepalive ends it.
                        Some((_, tx)) => {
                            let _ = tx.try_send(text);
                        }
                        None => debug!(%conn, "message for a closed WebSocket dropped"),
                    }
                }
                Peer::Udp(to) => {
                    log_sip("sent", &to, &t.bytes);
                    if let Err(e) = sock.send_to(&t.bytes, to).await {
                        debug!(%to, error = %e, "SIP/UDP send failed");
                    }
                }
            }
        }
        while let Some(ev) = core.poll_event() {
            match ev {
                CoreEvent::Rejected {
                    transport,
                    status,
                    reason,
                } => {
                    metrics
                        .sip_malformed
                        .get_or_create(&MalformedLabels {
                            transport,
                            action: "rejected",
                        })
                        .inc();
                    debug!(transport, status, reason, "malformed SIP request rejected");
                }
                CoreEvent::Dropped { transport, reason } => {
                    metrics
                        .sip_malformed
                        .get_or_create(&MalformedLabels {
                            transport,
                            action: "dropped",
                        })
                        .inc();
                    debug!(transport, reason, "SIP message dropped");
                }
                CoreEvent::Shed { reason } => {
                    metrics
                        .sip_dropped
                        .get_or_create(&RejectLabels { reason })
                        .inc();
                }
                CoreEvent::CallRefused { reason } => {
                    metrics
                        .calls_refused
                        .get_or_create(&RejectLabels { reason })
                        .inc();
                    debug!(reason, "call refused by a limit");
                }
                CoreEvent::Responded { status } => {
                    metrics
                        .sip_responses_sent
                        .get_or_create(&CodeLabels { code: status })
                        .inc();
                }
                CoreEvent::Registration {
                    aor,
                    conn,
                    status,
                    expires,
                } => {
                    if (200..300).contains(&status) && expires > 0 {
                        info!(%aor, %conn, status, expires, "registered");
                    } else if (200..300).contains(&status) {
                        info!(%aor, %conn, status, "unregistered");
                    } else {
                        info!(%aor, %conn, status, "registration failed");
                    }
                }
                CoreEvent::CallStarted { call_id, from, to } => {
                    metrics.calls_total.inc();
                    info!(%call_id, %from, %to, "call started");
                }
                CoreEvent::Media { event } => {
                    metrics
                        .media_events
                        .get_or_create(&EventLabels { event })
                        .inc();
                }
                CoreEvent::CallAnswered { id, setup } => {
                    metrics.call_setup.observe(setup.as_secs_f64());
                    info!(
                        session = id.0,
                        setup_ms = setup.as_millis() as u64,
                        "call answered"
                    );
                }
                CoreEvent::CallEnded(r) => {
                    metrics
                        .calls_ended
                        .get_or_create(&ByLabels { hung_up_by: r.by })
                        .inc();
                    // One line per call (A = the caller's leg, B = the callee's): packets each
                    // way, RTP lost and jitter (timestamp units) as each leg received them.
                    let m = r.media.unwrap_or_default();
                    let [a, b] = m.legs;
                    info!(
                        session = r.id.0,
                        call_id = %r.call_id,
                        from = %r.from,
                        to = %r.to,
                        outcome = r.outcome.as_str(),
                        status = r.status,
                        hung_up_by = r.by,
                        answered = r.answered,
                        duration_s = r.duration.as_secs_f64(),
                        media = r.media.is_some(),
                        a_in = a.packets_in,
                        a_out = a.packets_out,
                        a_lost = a.lost,
                        a_jitter = a.jitter,
                        b_in = b.packets_in,
                        b_out = b.packets_out,
                        b_lost = b.lost,
                        b_jitter = b.jitter,
                        "call ended"
                    );
                }
                CoreEvent::MediaStats { id, stats } => {
                    let [a, b] = stats.legs;
                    info!(
                        session = id.0,
                        a_in = a.packets_in,
                        a_out = a.packets_out,
                        a_lost = a.lost,
                        a_jitter = a.jitter,
                        b_in = b.packets_in,
                        b_out = b.packets_out,
                        b_lost = b.lost,
                        b_jitter = b.jitter,
                        "call media"
                    );
                }
            }
        }
        metrics.registrations.set(core.registration_count() as i64);
        metrics.calls_active.set(core.call_count() as i64);
        while let Some(cmd) = core.poll_command() {
            engine.send(cmd);
        }
    }
}

/// The engine's notification eventfd, for tokio's `AsyncFd` (the engine owns and closes it).
struct NotifyFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for NotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// The signaling thread's clock: read here, passed into the pure core as `now`.
fn clock() -> std::time::Instant {
    #[allow(clippy::disallowed_methods, reason = "the IO loop's one clock")]
    std::time::Instant::now()
}

/// Full SIP at debug level, with credentials redacted.
fn log_sip(direction: &str, peer: &dyn std::fmt::Display, bytes: &[u8]) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        match redact_credentials(bytes) {
            Some(text) => debug!(%peer, "SIP {direction}:\n{text}"),
            None => debug!(
                %peer,
                bytes = bytes.len(),
                "SIP {direction}: not a SIP message (not shown)"
            ),
        }
    }
}

/// Headers whose values are credentials (RFC 3261 §20.7, §20.28); neither has a compact form.
const CREDENTIAL_HEADERS: &[&str] = &["Authorization", "Proxy-Authorization"];

/// The message printed from its parsed form with the values of Authorization and
/// Proxy-Authorization replaced, so no spelling of them (folded lines, odd case or spacing)
/// slips through; `None` when the bytes do not parse as SIP, whose text must then not be shown.
pub fn redact_credentials(bytes: &[u8]) -> Option<String> {
    let mut msg = SipMsg::parse(bytes).ok()?;
    for h in &mut msg.headers {
        if CREDENTIAL_HEADERS
            .iter()
            .any(|c| h.name.eq_ignore_ascii_case(c))
        {
            h.value = "<redacted>".to_string();
        }
    }
    Some(String::from_utf8_lossy(&msg.to_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        let text = include_bytes!("../tests/fixtures/sipjs/invite-with-proxy-authorization.txt");
        assert!(String::from_utf8_lossy(text).contains("response="));
        let r = redact_credentials(text).unwrap();
        assert!(!r.contains("response="), "{r}");
        assert!(r.contains("Proxy-Authorization: <redacted>"));
        assert!(r.contains("Call-ID:"));
    }

    /// A folded Authorization header (RFC 3261 §7.3.1): the continuation lines, which start
    /// with a space or a tab, carry the digest response.
    #[test]
    fn folded_credentials_are_redacted() {
        let text = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/WSS a.invalid;branch=z9hG4bKfold\r\n\
            Max-Forwards: 70\r\n\
            To: <sip:alice@127.0.0.1>\r\n\
            From: <sip:alice@127.0.0.1>;tag=f1\r\n\
            Call-ID: fold1\r\n\
            CSeq: 2 REGISTER\r\n\
            authorization: Digest username=\"alice\", realm=\"127.0.0.1\",\r\n \
            nonce=\"n1\", uri=\"sip:127.0.0.1\",\r\n\t\
            response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=00000001, cnonce=\"c\"\r\n\
            Proxy-Authorization  :\r\n  Digest username=\"alice\", response=\"fedcba98\"\r\n\
            Content-Length: 0\r\n\r\n";
        assert!(text.contains("\r\n\tresponse="));
        let r = redact_credentials(text.as_bytes()).expect("the message parses");
        assert!(!r.contains("response="), "{r}");
        assert!(!r.contains("0123456789abcdef"), "{r}");
        assert!(!r.contains("fedcba98"), "{r}");
        assert!(r.contains("Authorization: <redacted>\r\n"), "{r}");
        assert!(r.contains("Proxy-Authorization: <redacted>\r\n"), "{r}");
        assert!(r.contains("Call-ID: fold1\r\n"), "{r}");
    }

    #[test]
    fn unparsable_text_is_not_shown() {
        let text = b"GARBAGE\r\nAuthorization: Digest response=\"secret\"\r\n\r\n";
        assert_eq!(redact_credentials(text), None);
    }

    #[test]
    fn max_conns_fits_the_descriptor_limit() {
        assert_eq!(default_max_conns(1 << 20, 2001), DEFAULT_MAX_CONNS);
        assert_eq!(default_max_conns(4096, 2001), 4096 - 2001 - 256);
        assert_eq!(default_max_conns(1024, 2001), 64);
    }
}
