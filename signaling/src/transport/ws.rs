//! SIP over WebSocket (RFC 7118): the upgrade (the `sip` subprotocol is required and echoed),
//! and one task per connection that passes SIP text to the signaling core and writes what the
//! core sends back. Each connection is named `<uuid>.invalid`, the name SIP uses for it.

pub use crate::b2bua::types::ConnName;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::metrics::{ConnLabels, RejectLabels};
use crate::transport::driver::{CoreCredit, Shared, WsEvent};
use crate::transport::limits::ConnSlot;
use crate::transport::ws_policy::{CloseWhy, Received, Tick, Verdict, WsPolicy};

pub use crate::transport::ws_policy::{CORE_QUEUE, MAX_MESSAGE_BYTES};
/// Outbound messages queued for one connection before it counts as stuck and is closed.
pub const OUTBOUND_QUEUE: usize = 256;

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug)]
pub struct ListenerName(pub &'static str);

/// The connection's place in the connection counts, held by every request of the connection
/// and by the WebSocket it may become, so an upgraded connection keeps counting.
#[derive(Clone, Debug)]
pub struct ConnHold(pub Arc<ConnSlot>);

/// Whether the client offered the `sip` subprotocol.
pub fn offers_sip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "sip")
}

/// The upgrade handler of `/ws` (and of every path on the WSS port).
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Extension(ListenerName(listener)): Extension<ListenerName>,
    Extension(hold): Extension<ConnHold>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if !shared
        .allowed_origins
        .is_allowed(text(header::ORIGIN), text(header::HOST))
    {
        shared
            .metrics
            .connections_rejected
            .get_or_create(&RejectLabels { reason: "origin" })
            .inc();
        return (StatusCode::FORBIDDEN, "Origin not allowed\n").into_response();
    }
    if !offers_sip(&headers) {
        shared
            .metrics
            .connections_rejected
            .get_or_create(&RejectLabels {
                reason: "no_sip_subprotocol",
            })
            .inc();
        return (
            StatusCode::BAD_REQUEST,
            "SIP over WebSocket needs the 'sip' subprotocol (RFC 7118)\n",
        )
            .into_response();
    }
    let Some(slot) = shared.take_ws_slot(peer.ip()) else {
        shared
            .metrics
            .connections_rejected
            .get_or_create(&RejectLabels {
                reason: "per_ip_limit",
            })
            .inc();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSocket connections from this address\n",
        )
            .into_response();
    };
    // SIP messages are small: 8 KiB read and write buffers instead of tungstenite's 128 KiB
    // per connection (most of the gateway's memory per call at load).
    ws.protocols(["sip"])
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| run(socket, peer, listener, shared, (slot, hold)))
}

/// One connection's life. `_slots`: its places in the WebSocket and TCP connection counts.
async fn run(
    socket: WebSocket,
    peer: SocketAddr,
    listener: &'static str,
    shared: Arc<Shared>,
    _slots: (ConnSlot, ConnHold),
) {
    let name = ConnName::random();
    let _guard = shared.metrics.track_connection(ConnLabels {
        listener,
        kind: "websocket",
    });
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOUND_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    shared.send_event(WsEvent::Opened {
        conn: name.clone(),
        peer,
        tx,
    });
    debug!(conn = %name, %peer, listener, "WebSocket open");
    let (mut sink, mut stream) = socket.split();
    let interval = shared.ws_ping_interval;
    #[allow(
        clippy::disallowed_methods,
        reason = "a connection's IO task: its keep-alive ticks on the runtime's clock"
    )]
    let first = tokio::time::Instant::now() + interval;
    let mut ping = tokio::time::interval_at(first, interval);
    let mut policy = WsPolicy::new(clock(), shared.ws_msg_rate, interval);
    let reason = loop {
        tokio::select! {
            msg = stream.next() => {
                let received = match msg {
                    Some(Ok(Message::Text(t))) => Received::Text(t.as_str().to_owned()),
                    Some(Ok(Message::Binary(b))) => Received::Binary(b.to_vec()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Received::Control,
                    Some(Ok(Message::Close(_))) | None => break "closed by peer",
                    Some(Err(e)) if is_too_big(&e) => Received::TooBig,
                    Some(Err(e)) => {
                        debug!(conn = %name, error = %e, "WebSocket error");
                        break "error";
                    }
                };
                match policy.handle_message(clock(), received, queued.load(Ordering::Relaxed)) {
                    Verdict::Forward(text) => {
                        queued.fetch_add(1, Ordering::Relaxed);
                        let credit = CoreCredit::new(queued.clone());
                        shared.send_event(WsEvent::Message { conn: name.clone(), text, credit });
                        // The core runs on this thread: let it take the message before the
                        // next frame is read, so a burst from an honest client never piles up
                        // while the core is free (only a core that is stuck lets CORE_QUEUE fill).
                        tokio::task::yield_now().await;
                    }
                    Verdict::Answer(text) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break "write failed";
                        }
                    }
                    Verdict::Ignore => {}
                    Verdict::Close(why) => break close(&mut sink, &shared, why).await,
                }
            }
            out = rx.recv() => match out {
                Some(text) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break "write failed";
                    }
                }
                None => break close_by_gateway(&mut sink, &shared).await,
            },
            _ = ping.tick() => match policy.handle_tick(clock()) {
                Tick::SendPing => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        break "write failed";
                    }
                }
                Tick::Close(why) => break close(&mut sink, &shared, why).await,
            },
        }
    };
    info!(conn = %name, %peer, listener, reason, "WebSocket closed");
    shared.send_event(WsEvent::Closed { conn: name });
}

async fn close(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    shared: &Shared,
    why: CloseWhy,
) -> &'static str {
    let (code, text, metric) = why.parts();
    send_close(sink, shared, code, text, metric).await
}

async fn close_by_gateway(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    shared: &Shared,
) -> &'static str {
    send_close(sink, shared, 1000, "closed by gateway", "closed_by_core").await
}

async fn send_close(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    shared: &Shared,
    code: u16,
    why: &'static str,
    metric_reason: &'static str,
) -> &'static str {
    shared
        .metrics
        .connections_rejected
        .get_or_create(&RejectLabels {
            reason: metric_reason,
        })
        .inc();
    let frame = CloseFrame {
        code,
        reason: why.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
    why
}

/// The connection task's clock: read here, passed into the pure policy as `now`.
fn clock() -> std::time::Instant {
    #[allow(clippy::disallowed_methods, reason = "the WebSocket task's one clock")]
    std::time::Instant::now()
}

fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<tungstenite::Error>() {
            return matches!(t, tungstenite::Error::Capacity(_));
        }
        src = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_uuid_v4_invalid() {
        let a = ConnName::random();
        let b = ConnName::random();
        assert_ne!(a, b);
        assert_eq!(a.0.len(), 36 + ".invalid".len());
        assert!(a.0.ends_with(".invalid"));
        assert_eq!(&a.0[14..15], "4");
    }

    #[test]
    fn subprotocol_offer() {
        let mut h = HeaderMap::new();
        assert!(!offers_sip(&h));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, "chat, sip".parse().unwrap());
        assert!(offers_sip(&h));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, "sips".parse().unwrap());
        assert!(!offers_sip(&h));
    }
}
