//! The HTTPS and WSS front door of the real binary: health, metrics, WebSocket upgrades and
//! their limits, TLS versions.

#![allow(
    clippy::disallowed_methods,
    reason = "a test drives real sockets and processes and bounds its waits by the real clock"
)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

fn start(tag: &str) -> Gateway {
    let dir = temp_dir(tag);
    let mut cmd = command(&dir);
    cmd.env("WS_PING_INTERVAL", "1");
    Gateway::start(cmd)
}

async fn ws_connect(
    port: u16,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = tls_connect(port).await;
    let mut req = format!("wss://127.0.0.1:{port}{path}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "sip");
    ws
}

#[tokio::test]
async fn healthz_answers_200() {
    let gw = start("healthz");
    for port in [gw.https_port, gw.wss_port] {
        let r = https_get(port, "/healthz", "").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body.trim(), "ok");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let gw = start("metrics");
    let _ws = ws_connect(gw.https_port, "/ws").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = https_get(gw.https_port, "/metrics", "").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let body = &r.body;
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    // Every sample belongs to a family declared with HELP and TYPE.
    let mut declared = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.insert(rest.split_whitespace().next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_total", "_bucket", "_sum", "_count", "_info"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                declared.contains(name) || declared.contains(family),
                "sample {name} has no TYPE line"
            );
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
        }
    }
    assert!(metric(body, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(metric(body, "process_open_fds").unwrap() >= 3.0);
    assert!(metric(body, "process_cpu_seconds_total").is_some());
    assert_eq!(metric(body, "webrtc_phone_calls_active"), Some(0.0));
    assert_eq!(metric(body, "webrtc_phone_registrations"), Some(0.0));
    assert_eq!(
        metric(
            body,
            "webrtc_phone_connections{listener=\"https\",kind=\"websocket\"}"
        ),
        Some(1.0),
        "{body}"
    );
}

#[tokio::test]
async fn websocket_with_sip_is_accepted_on_both_listeners() {
    let gw = start("ws-accept");
    for (port, path) in [
        (gw.https_port, "/ws"),
        (gw.wss_port, "/"),
        (gw.wss_port, "/ws"),
    ] {
        let mut ws = ws_connect(port, path).await;
        // RFC 5626 double-CRLF keep-alive is answered with one CRLF.
        ws.send(Message::Text("\r\n\r\n".into())).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap();
        match reply {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), "\r\n"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_without_sip_is_refused() {
    let gw = start("ws-refuse");
    for (port, path) in [(gw.https_port, "/ws"), (gw.wss_port, "/")] {
        for proto in [None, Some("chat")] {
            let r = https_raw(port, &ws_upgrade_request(path, proto)).await;
            assert_eq!(r.status, 400, "{proto:?} on {port}{path}: {r:?}");
            assert!(r.body.contains("'sip' subprotocol"));
        }
        let ok = https_raw(port, &ws_upgrade_request(path, Some("sip"))).await;
        assert_eq!(ok.status, 101);
        assert_eq!(ok.header("sec-websocket-protocol").as_deref(), Some("sip"));
    }
}

#[tokio::test]
async fn oversized_websocket_message_closes_that_connection_only() {
    let gw = start("ws-size");
    let mut good = ws_connect(gw.https_port, "/ws").await;
    let mut bad = ws_connect(gw.https_port, "/ws").await;
    let big = "x".repeat(64 * 1024 + 1);
    let _ = bad.send(Message::Text(big.into())).await;
    let mut closed_with = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), bad.next()).await {
        match msg {
            Ok(Message::Close(Some(f))) => {
                closed_with = Some(f.code);
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(closed_with, Some(CloseCode::Size));
    // The other connection is untouched.
    good.send(Message::Text("\r\n\r\n".into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), good.next())
        .await
        .unwrap();
    assert!(matches!(reply, Some(Ok(Message::Text(t))) if t.as_str() == "\r\n"));
    let m = https_get(gw.https_port, "/metrics", "").await.body;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_connections_rejected_total{reason=\"message_size\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn silent_websocket_is_closed_after_missed_pings() {
    let gw = start("ws-dead");
    // A client that upgrades and then never reads, so it never answers the server's pings.
    let mut s = tls_connect(gw.https_port).await;
    s.write_all(ws_upgrade_request("/ws", Some("sip")).as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 512];
    let n = s.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    let mut responsive = ws_connect(gw.https_port, "/ws").await;
    // The responsive client keeps reading (tungstenite answers pings while reading).
    let reader = tokio::spawn(async move {
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(4) {
            let _ = tokio::time::timeout(Duration::from_millis(200), responsive.next()).await;
        }
        responsive
    });
    let mut dead_closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = https_get(gw.https_port, "/metrics", "").await.body;
        if metric(
            &m,
            "webrtc_phone_connections_rejected_total{reason=\"keepalive\"}",
        ) == Some(1.0)
        {
            dead_closed = true;
            break;
        }
    }
    assert!(
        dead_closed,
        "the silent connection was not closed:\n{}",
        gw.log_text()
    );
    let mut responsive = reader.await.unwrap();
    responsive
        .send(Message::Text("\r\n\r\n".into()))
        .await
        .unwrap();
    let m = https_get(gw.https_port, "/metrics", "").await.body;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_connections{listener=\"https\",kind=\"websocket\"}"
        ),
        Some(1.0),
        "only the silent connection closes:\n{m}"
    );
    drop(s);
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let gw = start("header-size");
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let r = https_get(gw.https_port, "/healthz", &big).await;
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(https_get(gw.https_port, "/healthz", "").await.status, 200);
}

#[tokio::test]
async fn serves_the_web_root() {
    let dir = temp_dir("webroot");
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<h1>phone</h1>").unwrap();
    let mut cmd = command(&dir.join("state"));
    cmd.env("WEBROOT", &root);
    let gw = Gateway::start(cmd);
    let r = https_get(gw.https_port, "/", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "<h1>phone</h1>");
    assert_eq!(https_get(gw.https_port, "/nope.html", "").await.status, 404);
}

#[tokio::test]
async fn tls_below_1_2_is_refused() {
    let gw = start("tls-versions");
    // rustls clients cannot speak TLS 1.1, so ask OpenSSL, which can at security level 0. The
    // same client with -tls1_2 is the control that shows the refusal is the server's.
    let s_client = |version: &str| {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", gw.https_port),
                version,
            ])
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the openssl command is needed for this test (apt-get install openssl)")
    };
    let old = s_client("-tls1_1");
    assert!(!old.status.success(), "TLS 1.1 handshake succeeded");
    let stderr = String::from_utf8_lossy(&old.stderr);
    assert!(
        [
            "alert protocol version",
            "alert handshake failure",
            "wrong version"
        ]
        .iter()
        .any(|s| stderr.contains(s)),
        "{stderr}"
    );
    assert!(
        s_client("-tls1_2").status.success(),
        "control: TLS 1.2 with openssl failed"
    );
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gw.https_port))
            .await
            .unwrap();
        let c = tokio_rustls::TlsConnector::from(client_config(&[v]));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        assert!(c.connect(name, tcp).await.is_ok(), "{v:?} refused");
    }
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address() {
    let dir = temp_dir("metrics-address");
    let mut cmd = command(&dir);
    cmd.env("METRICS_ADDRESS", "127.0.0.1:0");
    let mut gw = Gateway::start(cmd);
    let line = gw.wait_for_log("webrtc-phone listening", Duration::from_secs(1));
    let addr: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("metrics="))
        .unwrap_or_else(|| panic!("no metrics= in {line}"))
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
    // Not on the public port, from anywhere.
    let r = https_raw_from(
        ATTACKER,
        gw.https_port,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!r.body.contains("webrtc_phone_"), "{r:?}");
    // Served on the metrics address, plain HTTP, with the health check beside.
    let r = http_raw(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("webrtc_phone_calls_active 0"), "{r:?}");
    assert!(r.body.trim_end().ends_with("# EOF"));
    let r = http_raw(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.body.trim()), (200, "ok"));
}

#[tokio::test]
async fn http_answers_do_not_give_the_version() {
    let gw = start("no-version");
    let version = env!("CARGO_PKG_VERSION");
    for (port, path) in [
        (gw.https_port, "/"),
        (gw.https_port, "/healthz"),
        (gw.https_port, "/nope"),
        (gw.wss_port, "/healthz"),
        (gw.wss_port, "/"),
    ] {
        let r = https_get(port, path, "").await;
        assert!(!r.head.contains(version), "{port}{path}: {}", r.head);
        if let Some(server) = r.header("server") {
            assert!(!server.contains(char::is_numeric), "{port}{path}: {server}");
        }
    }
}
