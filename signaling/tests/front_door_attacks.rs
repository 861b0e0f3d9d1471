//! Attacks on the HTTPS/WSS front door of the real binary, from another loopback address
//! (127.0.0.66): connection floods before the WebSocket upgrade (per address and in total),
//! a file descriptor limit left low, and a WebSocket that floods a stalled signaling core.

#![allow(
    clippy::disallowed_methods,
    reason = "a test drives real sockets and processes and bounds its waits by the real clock"
)]

mod common;

use std::time::Duration;

use common::sipua::{self};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Whether the gateway closed `s` within `limit` (end of stream or reset) without sending a
/// byte. A connection the gateway keeps waits for our TLS ClientHello (or HTTP request) and
/// stays open.
async fn closed_by_gateway<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Opens `n` idle connections from the attacker's address, alternating between the gateway's
/// two TLS ports: TLS, then no request. The finished handshake shows the gateway accepted
/// each one, so they count before the next connection arrives.
async fn hold(ports: [u16; 2], n: usize) -> Vec<TlsStream<TcpStream>> {
    let mut held = Vec::new();
    for i in 0..n {
        held.push(tls_connect_from(ATTACKER, ports[i % 2]).await);
    }
    held
}

async fn metrics_text(port: u16) -> String {
    https_get(port, "/metrics", "").await.body
}

#[tokio::test]
async fn connections_per_address_are_capped_before_any_upgrade() {
    const PER_IP: usize = 6;
    const EXTRA: usize = 4;
    let dir = temp_dir("conn-per-ip");
    let mut cmd = command(&dir);
    cmd.env("MAX_CONNS_PER_IP", PER_IP.to_string());
    let gw = Gateway::start(cmd);
    let ports = [gw.https_port, gw.wss_port];

    // The attacker fills its share over both ports with connections that never send a request.
    let mut held = hold(ports, PER_IP).await;
    let t0 = tokio::time::Instant::now();
    let mut refused = 0;
    for i in 0..EXTRA {
        let mut s = tcp_connect_from(ATTACKER, ports[i % 2]).await.unwrap();
        if closed_by_gateway(&mut s, Duration::from_secs(2)).await {
            refused += 1;
        }
    }
    assert_eq!(
        refused,
        EXTRA,
        "connections beyond MAX_CONNS_PER_IP={PER_IP} from one address were kept open:\n{}",
        gw.log_text()
    );
    // The connections within the cap are still open (the time for a request head is 15 s).
    assert!(t0.elapsed() < Duration::from_secs(12));
    for s in &mut held {
        assert!(!closed_by_gateway(s, Duration::from_millis(50)).await);
    }
    // Another address is not affected.
    for port in ports {
        assert_eq!(https_get(port, "/healthz", "").await.status, 200);
    }
    let mut ws = sipua::connect(gw.https_port, "victim", "x", "127.0.0.1").await;
    assert_eq!(ws.register(600).await.unwrap_or(0), 200);
    let m = metrics_text(gw.https_port).await;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_connections_rejected_total{reason=\"per_ip_conn_limit\"}"
        ),
        Some(EXTRA as f64),
        "{m}"
    );

    // Closing its connections gives the attacker's slots back.
    drop(held);
    let mut again = false;
    for _ in 0..50 {
        let mut s = tcp_connect_from(ATTACKER, gw.https_port).await.unwrap();
        if !closed_by_gateway(&mut s, Duration::from_millis(200)).await {
            again = true;
            break;
        }
    }
    assert!(again, "the slots were not given back");
}

#[tokio::test]
async fn connections_are_capped_in_total() {
    const TOTAL: usize = 5;
    let dir = temp_dir("conn-total");
    let mut cmd = command(&dir);
    cmd.env("MAX_CONNS", TOTAL.to_string())
        .env("MAX_CONNS_PER_IP", "1000");
    let gw = Gateway::start(cmd);
    let ports = [gw.https_port, gw.wss_port];
    let held = hold(ports, TOTAL).await;
    // Beyond the total, every connection is closed at once, whatever its address.
    let mut extra = tcp_connect_from(ATTACKER, gw.wss_port).await.unwrap();
    assert!(
        closed_by_gateway(&mut extra, Duration::from_secs(2)).await,
        "a connection beyond MAX_CONNS={TOTAL} was kept open"
    );
    let mut victim = TcpStream::connect(("127.0.0.1", gw.https_port))
        .await
        .unwrap();
    assert!(closed_by_gateway(&mut victim, Duration::from_secs(2)).await);
    drop(held);
    // Until the gateway has seen the attacker's connections close, a new one is still refused.
    let mut status = None;
    let mut refused_while_closing = 0;
    for _ in 0..50 {
        status = try_https_status(gw.https_port, "/healthz").await;
        if status == Some(200) {
            break;
        }
        refused_while_closing += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Some(200), "connections are admitted again");
    let m = metrics_text(gw.https_port).await;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_connections_rejected_total{reason=\"conn_limit\"}"
        ),
        Some(f64::from(2 + refused_while_closing)),
        "{m}"
    );
}

/// "Max open files   <soft>   <hard>   files" of /proc/<pid>/limits.
fn nofile_of(pid: i32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (v[0], v[1])
}

#[tokio::test]
async fn the_file_descriptor_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = nofile_of(std::process::id() as i32);
    let soft = 1024.min(hard - 1);
    assert!(
        soft >= 512,
        "the hard limit {hard} is too low for this test"
    );
    let dir = temp_dir("nofile");
    let mut cmd = command(&dir);
    // Start the gateway with a soft limit below the hard one, as most systems do (1024).
    // SAFETY: the closure runs in the forked child before exec and calls only setrlimit,
    // which is async-signal-safe, on a struct it owns.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut gw = Gateway::start(cmd);
    assert_eq!(nofile_of(gw.pid()), (hard, hard));
    let line = gw.wait_for_log("webrtc-phone listening", Duration::from_secs(1));
    assert!(line.contains(&format!("nofile={hard}")), "{line}");
}

type Wss = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

async fn ws_connect_from(from: std::net::IpAddr, port: u16) -> Wss {
    let tls = tls_connect_from(from, port).await;
    let mut req = format!("wss://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// Test builds only: the text that makes the core stop taking events for 2 s
/// (signaling::app::TEST_STALL_CORE).
const STALL_CORE: &str = "webrtc-phone test hook: stall the signaling core";

#[tokio::test]
async fn a_connection_cannot_queue_without_bound_for_a_stalled_core() {
    let dir = temp_dir("core-queue");
    let mut cmd = command(&dir);
    // The message rate limit is not what stops this attacker.
    cmd.env("WS_MSG_RATE", "100000");
    let gw = Gateway::start(cmd);
    assert!(
        gw.log_text().contains("test-only fault hooks"),
        "the gateway binary lacks engine/test-hooks:\n{}",
        gw.log_text()
    );
    let mut victim = sipua::connect(gw.https_port, "victim", "x", "127.0.0.1").await;
    let mut attacker = ws_connect_from(ATTACKER, gw.https_port).await;
    attacker
        .send(Message::Text(STALL_CORE.into()))
        .await
        .unwrap();
    // While the core is stalled, the attacker sends far more than any browser has in flight.
    let junk = format!(
        "OPTIONS sip:x SIP/2.0\r\nX-Junk: {}\r\n\r\n",
        "j".repeat(1000)
    );
    let mut sent = 0;
    for _ in 0..1000 {
        if attacker
            .send(Message::Text(junk.clone().into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let mut closed_with = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), attacker.next()).await {
        match msg {
            Ok(Message::Close(Some(f))) => {
                closed_with = Some(f.code);
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(
        closed_with,
        Some(CloseCode::Policy),
        "the attacker's connection queued {sent} messages and stayed open:\n{}",
        gw.log_text()
    );
    // The victim's connection is untouched and works once the core runs again.
    assert_eq!(victim.register(600).await.unwrap_or(0), 200);
    let m = metrics_text(gw.https_port).await;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_connections_rejected_total{reason=\"core_queue\"}"
        ),
        Some(1.0),
        "{m}"
    );
}
