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

use crate::config::{Config, ConfigError};
use crate::metrics::{Metrics, TransportLabels};
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
}

/// State shared by the transport tasks of the signaling thread.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub ws_ping_interval: Duration,
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
    sip_udp: UdpSocket,
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
        Ok(Gateway {
            config,
            tls,
            https,
            wss,
            sip_udp,
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
        } = self;
        let metrics = Metrics::new();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            metrics: metrics.clone(),
            ws_ping_interval: config.ws_ping_interval,
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
        if let Some(r) = &config.route {
            if !r.ignored.is_empty() {
                warn!(
                    params = r.ignored.join(","),
                    "OUTBOUND_ROUTE parameters for billing or route hunting are accepted and ignored"
                );
            }
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
            tokio::spawn(udp_loop(sip_udp, metrics.clone())),
            tokio::spawn(core_loop(events_rx, metrics.clone())),
        ];

        let signal = wait_for_signal().await?;
        shared.draining.store(true, Ordering::Relaxed);
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
        }
        for t in tasks {
            t.abort();
        }
        info!("webrtc-phone stopped");
        Ok(())
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

/// SIP/UDP intake. Counts what arrives; the SIP stack consumes it.
async fn udp_loop(sock: tokio::net::UdpSocket, metrics: Arc<Metrics>) {
    let mut buf = vec![0u8; 65536];
    let udp = TransportLabels { transport: "udp" };
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                metrics.sip_messages_received.get_or_create(&udp).inc();
                debug!(%from, bytes = n, "SIP/UDP datagram");
            }
            Err(e) => {
                debug!(error = %e, "SIP/UDP receive error");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The signaling core: owns the WebSocket connection table.
async fn core_loop(mut rx: mpsc::UnboundedReceiver<WsEvent>, metrics: Arc<Metrics>) {
    let mut conns: HashMap<ConnName, (SocketAddr, mpsc::Sender<String>)> = HashMap::new();
    let ws = TransportLabels { transport: "ws" };
    while let Some(ev) = rx.recv().await {
        match ev {
            WsEvent::Opened { conn, peer, tx } => {
                conns.insert(conn, (peer, tx));
            }
            WsEvent::Message { conn, text } => {
                metrics.sip_messages_received.get_or_create(&ws).inc();
                debug!(%conn, bytes = text.len(), "SIP over WebSocket");
            }
            WsEvent::Closed { conn } => {
                conns.remove(&conn);
            }
        }
    }
}
