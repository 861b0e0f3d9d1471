//! The HTTPS and WSS listeners: TLS (rustls) in front of hyper's HTTP/1.1 server running the
//! axum router; and the optional plain-HTTP metrics listener. Connections are counted per
//! client address and in total from accept to close (WebSocket upgrades included), and refused
//! beyond the caps; the other limits (header size, TLS handshake time, idle time) close the
//! offending connection only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::services::ServeDir;
use tracing::{debug, warn};

use crate::metrics::{ConnLabels, RejectLabels};
use crate::transport::driver::Shared;
use crate::transport::limits::{ConnTable, Refusal};
use crate::transport::ws::{self, ConnHold, ListenerName};

/// Time a client has to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// An HTTP connection (not upgraded) with no traffic for this long is closed.
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head hyper buffers; a bigger one gets 431 and the connection closes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Connections open at once on the metrics listener (an operator's scraper needs one or two).
pub const METRICS_MAX_CONNS: usize = 16;

/// Listens on TCP `addr`, non-blocking (handed to tokio later). The error names the address.
pub fn listen(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    #[allow(
        clippy::disallowed_methods,
        reason = "transport binds the front door's listeners"
    )]
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on TCP {addr}: {e}"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

/// The router of the HTTPS port: the web root, `/ws`, `/healthz`, and `/metrics` unless
/// `metrics_elsewhere` (METRICS_ADDRESS is set: 404 here).
pub fn https_router(
    shared: Arc<Shared>,
    webroot: Option<PathBuf>,
    metrics_elsewhere: bool,
) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/ws", any(ws::upgrade));
    let router = if metrics_elsewhere {
        router.route("/metrics", any(not_found))
    } else {
        router.route("/metrics", get(metrics))
    };
    let router = match webroot.filter(|w| w.is_dir()) {
        Some(dir) => router.fallback_service(ServeDir::new(dir)),
        None => router.route("/", get(placeholder_index)),
    };
    router.with_state(shared)
}

/// The router of the WSS port: the same WebSocket endpoint on any path (the replaced
/// container's pages connect to `wss://host:9876` at `/`), plus `/healthz`.
pub fn wss_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(ws::upgrade)
        .with_state(shared)
}

/// The router of METRICS_ADDRESS: `/metrics` and `/healthz`, plain HTTP.
pub fn metrics_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(shared)
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_failed() {
        (StatusCode::SERVICE_UNAVAILABLE, "failed\n").into_response()
    } else if shared.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn placeholder_index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>webrtc-phone</title></head>",
        "<body><h1>webrtc-phone</h1><p>The gateway is running. The phone pages are not installed: ",
        "build them with <code>scripts/build.sh</code> or point <code>WEBROOT</code> at them.</p></body></html>"
    ))
}

/// Accepts connections until the task is dropped: TLS first when `acceptor` is given, plain
/// HTTP otherwise. A connection beyond `table`'s caps is closed at once and counted.
pub async fn serve(
    listener: TcpListener,
    name: &'static str,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    shared: Arc<Shared>,
    table: Arc<ConnTable>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; existing connections go on.
                warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match table.take(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::PerAddress => "per_ip_conn_limit",
                    Refusal::Total => "conn_limit",
                };
                shared
                    .metrics
                    .connections_rejected
                    .get_or_create(&RejectLabels { reason })
                    .inc();
                // Dropping the stream closes it: no TLS, no task, no buffer for this one.
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(handle_connection(
            tcp,
            peer,
            name,
            acceptor.clone(),
            router.clone(),
            shared.clone(),
            ConnHold(Arc::new(slot)),
        ));
    }
}

async fn handle_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    name: &'static str,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    shared: Arc<Shared>,
    hold: ConnHold,
) {
    let Some(acceptor) = acceptor else {
        return serve_http(tcp, peer, name, router, shared, hold).await;
    };
    let reject = |reason: &'static str| {
        shared
            .metrics
            .connections_rejected
            .get_or_create(&RejectLabels { reason })
            .inc();
    };
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(%peer, listener = name, error = %e, "TLS handshake failed");
            return reject("tls_handshake");
        }
        Err(_) => return reject("tls_handshake_timeout"),
    };
    serve_http(tls, peer, name, router, shared, hold).await;
}

/// HTTP/1.1 on one connection until it closes, is upgraded, or idles out.
async fn serve_http<T>(
    io: T,
    peer: SocketAddr,
    name: &'static str,
    router: Router,
    shared: Arc<Shared>,
    hold: ConnHold,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let reject = |reason: &'static str| {
        shared
            .metrics
            .connections_rejected
            .get_or_create(&RejectLabels { reason })
            .inc();
    };
    let labels = ConnLabels {
        listener: name,
        kind: "http",
    };
    let _guard = shared.metrics.track_connection(labels);
    let activity = Arc::new(AtomicU64::new(shared.clock_secs()));
    let io = TokioIo::new(ActivityIo {
        inner: io,
        activity: activity.clone(),
        shared: shared.clone(),
    });
    let svc = router.map_request(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(ListenerName(name));
        req.extensions_mut().insert(hold.clone());
        req
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(io, TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut shutting_down = false;
    loop {
        tokio::select! {
            res = &mut conn => {
                if let Err(e) = res {
                    debug!(%peer, listener = name, error = %e, "HTTP connection ended with an error");
                }
                break;
            }
            _ = tick.tick() => {
                let idle = shared.clock_secs().saturating_sub(activity.load(Ordering::Relaxed));
                if !shutting_down && idle >= HTTP_IDLE_TIMEOUT.as_secs() {
                    reject("http_idle");
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
            }
        }
    }
}

/// Records the time of the last read or write, for the idle timeout.
struct ActivityIo<T> {
    inner: T,
    activity: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl<T> ActivityIo<T> {
    fn touch(&self) {
        self.activity
            .store(self.shared.clock_secs(), Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
