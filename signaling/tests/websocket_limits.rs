//! WebSocket abuse limits: connections per source address, message rate per connection, and
//! the Origin allow-list; each closes or refuses the offender only.

mod common;

use std::time::Duration;

use common::sipua::WsUa;
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
    let a = WsUa::connect(gw.https_port, "a", "x", "127.0.0.1").await;
    let _b = WsUa::connect(gw.https_port, "b", "x", "127.0.0.1").await;
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
    let mut flood = WsUa::connect(gw.https_port, "f", "x", "127.0.0.1").await;
    let mut calm = WsUa::connect(gw.https_port, "c", "x", "127.0.0.1").await;
    for i in 0..40 {
        let reg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS f.invalid;branch=z9hG4bKflood{i}\r\nMax-Forwards: 70\r\n\
             To: <sip:f@127.0.0.1>\r\nFrom: <sip:f@127.0.0.1>;tag=f\r\nCall-ID: flood{i}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:f@f.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n"
        );
        flood.send(&reg).await;
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
        calm.register(600).await,
        200,
        "the calm client still registers"
    );
}
