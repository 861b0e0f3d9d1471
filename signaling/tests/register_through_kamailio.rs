//! REGISTER from a WebSocket client through the gateway to a real Kamailio registrar.

#![allow(
    clippy::disallowed_methods,
    reason = "a test drives real sockets and processes and bounds its waits by the real clock"
)]

mod common;

use std::time::Duration;

use common::peers::{free_udp_port, kamailio};
use common::sipua::{self};
use common::*;

#[tokio::test]
async fn register_gets_401_then_200_and_close_forgets_it() {
    let dir = temp_dir("reg-kamailio");
    let kport = free_udp_port();
    let _k = kamailio(&dir, kport, free_udp_port(), &[]);
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{kport}"));
    let mut gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    assert_eq!(
        ua.register(600).await.unwrap_or(0),
        200,
        "{}",
        gw.log_text()
    );
    let line = gw.wait_for_log("registered", Duration::from_secs(5));
    assert!(
        line.contains("aor=sip:alice@127.0.0.1") && line.contains("expires=600"),
        "{line}"
    );
    let m = https_get(gw.https_port, "/metrics", "").await.body;
    assert_eq!(metric(&m, "webrtc_phone_registrations"), Some(1.0), "{m}");
    // The registrar was given a Path and a Contact on the connection's name.
    let wrong = sipua::connect(gw.https_port, "bob", "wrong", "127.0.0.1").await;
    let mut wrong = wrong;
    assert_eq!(
        wrong.register(600).await.unwrap_or(0),
        401,
        "a wrong password ends with the registrar's 401"
    );
    ua.close().await;
    let mut gone = false;
    for _ in 0..50 {
        let m = https_get(gw.https_port, "/metrics", "").await.body;
        if metric(&m, "webrtc_phone_registrations") == Some(0.0) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "registration forgotten when the WebSocket closed");
    assert!(!gw.log_text().contains("alicePassword"));
}

#[tokio::test]
async fn outbound_proxy_given_as_a_host_name() {
    let dir = temp_dir("reg-hostname");
    let kport = free_udp_port();
    let _k = kamailio(&dir, kport, free_udp_port(), &[]);
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("localhost:{kport}"));
    let gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "bob", "bobPassword", "127.0.0.1").await;
    assert_eq!(
        ua.register(300).await.unwrap_or(0),
        200,
        "{}",
        gw.log_text()
    );
}

#[tokio::test]
async fn silent_registrar_gives_408_in_bounded_time() {
    let dir = temp_dir("reg-silent");
    // Nothing listens on this port.
    let port = free_udp_port();
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{port}"));
    let gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "carol", "x", "127.0.0.1").await;
    let t0 = tokio::time::Instant::now();
    // Timer F is 64*T1 = 32 s; allow the 10 s the UA waits per attempt twice over... the UA
    // gives up after 10 s, so wait for the 408 directly instead.
    let call_id = "reg-carol-408";
    let m = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch=z9hG4bK408\r\nMax-Forwards: 70\r\n\
         To: <sip:carol@127.0.0.1>\r\nFrom: <sip:carol@127.0.0.1>;tag=c\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:c@x.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send(&m).await.unwrap();
    let r = ua
        .final_response(call_id, "REGISTER", Duration::from_secs(40))
        .await
        .ok()
        .flatten()
        .expect("a final response");
    assert_eq!(r.status(), Some(408));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(31) && took < Duration::from_secs(36),
        "{took:?}"
    );
}
