//! The signaling thread's loop: SIP/UDP datagrams, WebSocket events, the engine's outputs and
//! the core's timers in, the core's messages out to their sockets and connections, its events
//! to the metrics. The state the transport tasks share with it is [`Shared`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::debug;

use crate::b2bua::core::{Core, CoreConfig, Peer};
use crate::b2bua::types::ConnName;
use crate::metrics::{Metrics, TransportLabels};
use crate::sip::msg::SipMsg;
use crate::transport::limits::{ConnSlot, ConnTable};
use crate::transport::origin::OriginPolicy;

/// Test builds only (engine's `test-hooks`): a WebSocket message with exactly this text makes
/// the signaling core task panic (the dead-task fault test).
pub const TEST_PANIC_CORE: &str = "webrtc-phone test hook: panic the signaling core";
/// Test builds only: a WebSocket message with exactly this text makes the signaling core stop
/// taking events for [`TEST_STALL`] (the core queue test).
pub const TEST_STALL_CORE: &str = "webrtc-phone test hook: stall the signaling core";
/// How long [`TEST_STALL_CORE`] stalls the core.
pub const TEST_STALL: Duration = Duration::from_secs(2);

/// One message's place in its connection's queue to the core, given back when the core has
/// handled the message and drops it.
#[derive(Debug)]
pub struct CoreCredit(Arc<AtomicUsize>);

impl CoreCredit {
    /// A place taken in `queued`, given back on drop.
    pub fn new(queued: Arc<AtomicUsize>) -> CoreCredit {
        CoreCredit(queued)
    }
}

impl Drop for CoreCredit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

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

impl Shared {
    /// The shared state of a new signaling thread; `events` goes to its core loop.
    pub fn new(
        metrics: Arc<Metrics>,
        ws_ping_interval: Duration,
        ws_msg_rate: u32,
        allowed_origins: OriginPolicy,
        max_ws_per_ip: usize,
        events: mpsc::UnboundedSender<WsEvent>,
    ) -> Shared {
        #[allow(
            clippy::disallowed_methods,
            reason = "the driver's start: the origin of the coarse idle clock"
        )]
        let started = tokio::time::Instant::now();
        Shared {
            metrics,
            ws_ping_interval,
            ws_msg_rate,
            allowed_origins,
            ws_per_ip: ConnTable::new(max_ws_per_ip, usize::MAX),
            draining: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            events,
            started,
        }
    }

    /// SIGTERM/SIGINT came: new calls get 503 and /healthz says draining.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// A task died: /healthz says 503 until the process exits.
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// The signaling core's loop: owns the WebSocket connection table, the SIP/UDP socket and the
/// [`Core`]; everything SIP passes through here, one message at a time.
pub async fn run_core(
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
            metrics.record(ev);
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
        let text = include_bytes!("../../tests/fixtures/sipjs/invite-with-proxy-authorization.txt");
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
}
