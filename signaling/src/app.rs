//! Wiring: binds every listener before serving (so a busy port stops start-up with the setting
//! named), runs the signaling thread's event loop, and drains on SIGTERM/SIGINT.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::b2bua::core::{Core, CoreConfig, CoreEvent, Peer};
use crate::config::{Config, ConfigError};
use crate::metrics::{
    ByLabels, CodeLabels, EventLabels, MalformedLabels, Metrics, RejectLabels, TransportLabels,
};
use crate::sip::txn::TimerValues;
use crate::tls::{self, TlsMaterial};
use crate::transport::{http, ws::ConnName};

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
    pub max_ws_per_ip: usize,
    pub ws_msg_rate: u32,
    pub allowed_origins: Vec<String>,
    /// Open WebSocket connections by source address (transport bookkeeping, not protocol
    /// state; touched once per connection open and close).
    ws_per_ip: std::sync::Mutex<HashMap<std::net::IpAddr, usize>>,
    draining: AtomicBool,
    events: mpsc::UnboundedSender<WsEvent>,
    started: tokio::time::Instant,
}

impl Shared {
    /// True once SIGTERM/SIGINT arrived: new calls get 503.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn send_event(&self, ev: WsEvent) {
        // The core outlives every transport task; a send after it stopped is moot.
        let _ = self.events.send(ev);
    }

    /// Takes one of `ip`'s WebSocket slots; `None` when it has MAX_WS_PER_IP open already.
    pub fn take_ws_slot(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<WsSlot> {
        let mut m = self.ws_per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_ws_per_ip {
            return None;
        }
        *n += 1;
        Some(WsSlot {
            shared: self.clone(),
            ip,
        })
    }

    /// Whole seconds since start: the coarse clock of idle timeouts.
    pub fn clock_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// One WebSocket connection's place in the per-address count, given back on drop.
pub struct WsSlot {
    shared: Arc<Shared>,
    ip: std::net::IpAddr,
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        let mut m = self
            .shared
            .ws_per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Everything bound and loaded, ready to serve.
pub struct Gateway {
    config: Config,
    tls: TlsMaterial,
    https: TcpListener,
    wss: TcpListener,
    sip_udp: UdpSocket,
    engine: engine::EngineHandle,
}

impl Gateway {
    /// Loads TLS material and binds every socket. Any failure names its setting.
    pub fn bind(config: Config) -> Result<Self, ConfigError> {
        let tls = tls::load(&config.tls, &config.state_dir, config.advertise)?;
        // Build the rustls configuration once here so a bad key fails start-up, not the first
        // connection.
        tls.server_config()?;
        let https = bind_tcp(
            SocketAddr::new(config.bind, config.https_port),
            "HTTPS_PORT",
        )?;
        let wss = bind_tcp(SocketAddr::new(config.bind, config.wss_port), "WSS_PORT")?;
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
        let engine = engine::Engine::start(engine::EngineConfig {
            shards: config.port_shards.clone(),
            bind: config.bind,
            advertise: config.advertise,
            media_timeout: config.media_timeout,
            latching: config.rtp_latching,
        })
        .map_err(|e| match e {
            engine::EngineError::Bind { .. } => ConfigError::new("MIN_RTP_PORT/MAX_RTP_PORT", e),
            other => ConfigError::new("MEDIA_THREADS", other),
        })?;
        Ok(Gateway {
            config,
            tls,
            https,
            wss,
            sip_udp,
            engine,
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
            sip_udp,
            engine,
        } = self;
        let metrics = Metrics::new_with_media(engine.stats_handles());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            metrics: metrics.clone(),
            ws_ping_interval: config.ws_ping_interval,
            max_ws_per_ip: config.max_ws_per_ip,
            ws_msg_rate: config.ws_msg_rate,
            allowed_origins: config.allowed_origins.clone(),
            ws_per_ip: std::sync::Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            events: events_tx,
            started: tokio::time::Instant::now(),
        });
        let acceptor = TlsAcceptor::from(tls.server_config()?);
        let https = tokio::net::TcpListener::from_std(https)?;
        let wss = tokio::net::TcpListener::from_std(wss)?;
        let sip_udp = tokio::net::UdpSocket::from_std(sip_udp)?;

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
            https = %https.local_addr()?,
            wss = %wss.local_addr()?,
            sip_udp = %sip_udp.local_addr()?,
            advertise = %config.advertise,
            rtp = format!("{}-{}", config.rtp_ports.start(), config.rtp_ports.end()),
            media_threads = config.media_threads,
            cert = %tls.cert_path.display(),
            cert_sha256 = %tls.fingerprint_sha256(),
            cert_generated = tls.generated_now,
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
        );
        let wss_router = http::wss_router(shared.clone());
        let tasks = [
            tokio::spawn(http::serve(
                https,
                "https",
                acceptor.clone(),
                https_router,
                shared.clone(),
            )),
            tokio::spawn(http::serve(
                wss,
                "wss",
                acceptor,
                wss_router,
                shared.clone(),
            )),
            tokio::spawn(core_task(
                events_rx,
                sip_udp,
                metrics.clone(),
                core_cfg,
                engine,
            )),
        ];

        let signal = wait_for_signal().await?;
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
                s = wait_for_signal() => {
                    warn!(signal = s?, "second signal: not waiting for calls any longer");
                    break;
                }
            }
        }
        let left = metrics.calls_active.get();
        if left > 0 {
            warn!(calls = left, "drain time over: hanging up the calls left");
            shared.send_event(WsEvent::HangUpAll);
            // Give the BYEs a moment to leave (over UDP the first copy goes at once).
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for t in tasks {
            t.abort();
        }
        info!("webrtc-phone stopped");
        Ok(())
    }
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
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
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

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
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
                Some(WsEvent::Message { conn, text }) => {
                    log_sip("received", &conn.0, &text);
                    metrics.sip_messages_received.get_or_create(&TransportLabels { transport: "ws" }).inc();
                    core.handle_message(clock(), Peer::Ws(conn), text.as_bytes());
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
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        log_sip("received", &from.to_string(), &String::from_utf8_lossy(data));
                    }
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
                    let text = String::from_utf8_lossy(&t.bytes).into_owned();
                    log_sip("sent", &conn.0, &text);
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
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        log_sip("sent", &to.to_string(), &String::from_utf8_lossy(&t.bytes));
                    }
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
fn log_sip(direction: &str, peer: &str, text: &str) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        debug!(peer, "SIP {direction}:\n{}", redact_credentials(text));
    }
}

/// Replaces the values of Authorization and Proxy-Authorization headers.
pub fn redact_credentials(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let name = line.split(':').next().unwrap_or_default().trim();
            if name.eq_ignore_ascii_case("Authorization")
                || name.eq_ignore_ascii_case("Proxy-Authorization")
            {
                format!("{name}: <redacted>\r\n")
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        let text = String::from_utf8_lossy(include_bytes!(
            "../tests/fixtures/sipjs/invite-with-proxy-authorization.txt"
        ))
        .into_owned();
        assert!(text.contains("response="));
        let r = redact_credentials(&text);
        assert!(!r.contains("response="), "{r}");
        assert!(r.contains("Proxy-Authorization: <redacted>"));
        assert!(r.contains("Call-ID:"));
    }
}
