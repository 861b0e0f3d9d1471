//! WebSocket abuse limits: connections per source address, message rate per connection, and
//! the Origin allow-list; each closes or refuses the offender only.

mod common;

use std::time::Duration;

use common::sipua::{self};
use common::*;

fn ws_request(origin: &str) -> String {
    ws_upgrade_request("/ws", Some("sip")).replace(
        "Origin: https://127.0.0.1:8443",
        &format!("Origin: {origin}"),
    )
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let dir = temp_dir("ws-per-ip");
    let mut cmd = command(&dir);
    cmd.env("MAX_WS_PER_IP", "2");
    let gw = Gateway::start(cmd);
    let a = sipua::connect(gw.https_port, "a", "x", "127.0.0.1").await;
    let _b = sipua::connect(gw.https_port, "b", "x", "127.0.0.1").await;
    let refused = https_raw(gw.https_port, &ws_upgrade_request("/ws", Some("sip"))).await;
    assert_eq!(refused.status, 429);
    a.close().await;
    let mut ok = false;
    for _ in 0..50 {
        if https_raw(gw.https_port, &ws_upgrade_request("/ws", Some("sip")))
            .await
            .status
            == 101
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a slot is given back when a connection closes");
}

#[tokio::test]
async fn origin_allow_list() {
    let dir = temp_dir("ws-origin");
    let mut cmd = command(&dir);
    cmd.env(
        "ALLOWED_ORIGINS",
        "https://phone.example.com, https://127.0.0.1:8443",
    );
    let gw = Gateway::start(cmd);
    assert_eq!(
        https_raw(gw.https_port, &ws_request("https://evil.example"))
            .await
            .status,
        403
    );
    assert_eq!(
        https_raw(gw.https_port, &ws_request("https://phone.example.com"))
            .await
            .status,
        101
    );
    assert_eq!(
        https_raw(gw.https_port, &ws_request("https://127.0.0.1:8443"))
            .await
            .status,
        101
    );
}

#[tokio::test]
async fn a_flooding_connection_is_closed_and_others_are_unaffected() {
    let dir = temp_dir("ws-rate");
    let mut cmd = command(&dir);
    cmd.env("WS_MSG_RATE", "5");
    let gw = Gateway::start(cmd);
    let mut flood = sipua::connect(gw.https_port, "f", "x", "127.0.0.1").await;
    let mut calm = sipua::connect(gw.https_port, "c", "x", "127.0.0.1").await;
    for i in 0..40 {
        let reg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS f.invalid;branch=z9hG4bKflood{i}\r\nMax-Forwards: 70\r\n\
             To: <sip:f@127.0.0.1>\r\nFrom: <sip:f@127.0.0.1>;tag=f\r\nCall-ID: flood{i}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:f@f.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n"
        );
        flood.send(&reg).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = https_get(gw.https_port, "/metrics", "").await.body;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_connections_rejected_total{reason=\"rate_limit\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        calm.register(600).await.unwrap_or(0),
        200,
        "the calm client still registers"
    );
}

/// The upgrade request of a page at `origin` (or of a client without Origin) sent to `host`.
fn ws_request_to(host: &str, origin: Option<&str>) -> String {
    let r = ws_upgrade_request("/ws", Some("sip"))
        .replace("Host: 127.0.0.1:8444", &format!("Host: {host}"));
    match origin {
        Some(o) => r.replace("Origin: https://127.0.0.1:8443", &format!("Origin: {o}")),
        None => r.replace("Origin: https://127.0.0.1:8443\r\n", ""),
    }
}

#[tokio::test]
async fn by_default_only_the_pages_own_origin_may_connect() {
    let dir = temp_dir("ws-origin-default");
    let gw = Gateway::start(command(&dir));
    let p = gw.https_port;
    let w = gw.wss_port;
    // Another site's page in a visitor's browser (the attacker's server at 127.0.0.66).
    let host = format!("127.0.0.1:{p}");
    for origin in [
        "https://evil.example",
        "https://127.0.0.66",
        "http://127.0.0.1",
        &format!("http://127.0.0.1:{p}"),
        "null",
    ] {
        let r = https_raw_from(ATTACKER, p, &ws_request_to(&host, Some(origin))).await;
        assert_eq!(r.status, 403, "Origin {origin}: {r:?}");
    }
    // The phone pages: on the HTTPS port, their WebSocket on /ws of the same port or on the
    // WSS port, reached as 127.0.0.1 or localhost (the e2e suite opens https://127.0.0.1:<p>).
    for (port, host, origin) in [
        (
            p,
            format!("127.0.0.1:{p}"),
            format!("https://127.0.0.1:{p}"),
        ),
        (
            w,
            format!("127.0.0.1:{w}"),
            format!("https://127.0.0.1:{p}"),
        ),
        (
            p,
            format!("localhost:{p}"),
            format!("https://localhost:{p}"),
        ),
        (
            w,
            format!("localhost:{w}"),
            format!("https://localhost:{p}"),
        ),
    ] {
        let r = https_raw(port, &ws_request_to(&host, Some(&origin))).await;
        assert_eq!(r.status, 101, "Origin {origin} to {host}: {r:?}");
    }
    // SIP clients that are not browsers send no Origin.
    let r = https_raw_from(ATTACKER, p, &ws_request_to(&host, None)).await;
    assert_eq!(r.status, 101, "{r:?}");
    let m = https_get(p, "/metrics", "").await.body;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_connections_rejected_total{reason=\"origin\"}"
        ),
        Some(5.0),
        "{m}"
    );
}

#[tokio::test]
async fn a_star_opens_the_websocket_to_any_origin() {
    let dir = temp_dir("ws-origin-any");
    let mut cmd = command(&dir);
    cmd.env("ALLOWED_ORIGINS", "*");
    let gw = Gateway::start(cmd);
    let host = format!("127.0.0.1:{}", gw.https_port);
    let r = https_raw_from(
        ATTACKER,
        gw.https_port,
        &ws_request_to(&host, Some("https://evil.example")),
    )
    .await;
    assert_eq!(r.status, 101, "{r:?}");
}
