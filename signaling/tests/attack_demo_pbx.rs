//! Attack (issue 11, point 7): squatting a demo PBX user. A browser registers `alice` over
//! WebSocket; an attacker on 127.0.0.66 REGISTERs `alice` over UDP with its own Contact. The
//! demo PBX takes registrations from WebSocket clients only: the attacker gets 403 (or
//! nothing), and a call to alice still rings the browser, never the attacker.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive a real process in real time"
)]

mod common;

use std::time::Duration;

use common::attack::*;
use common::sipua::{self, Browser as _};
use common::*;
use signaling::sip::msg::SipMsg;

#[tokio::test]
async fn a_udp_register_cannot_take_over_a_browser_user() {
    let dir = temp_dir("atk-demo-squat");
    let gw = Gateway::start(command(&dir));
    let mut alice = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    assert_eq!(alice.register(600).await.unwrap_or(0), 200);

    let mut atk = Udp::bind(ATTACKER_IP).await;
    let reg = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bKsquat1\r\n\
         Max-Forwards: 70\r\nTo: <sip:alice@127.0.0.1>\r\nFrom: <sip:alice@127.0.0.1>;tag=5qa7\r\n\
         Call-ID: squat-1@{ATTACKER_IP}\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@{a}>\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n",
        a = atk.addr
    );
    atk.send(gw.sip_port, reg.as_bytes()).await;
    let reg_got = atk.collect(Duration::from_secs(1)).await;
    let statuses: Vec<Option<u16>> = reg_got
        .iter()
        .map(|(_, b)| SipMsg::parse(b).ok().and_then(|m| m.status()))
        .collect();

    // Bob calls alice: the browser that registered her rings, not the attacker.
    let mut bob = sipua::connect(gw.https_port, "bob", "x", "127.0.0.1").await;
    let d = bob.start_call("sip:alice@127.0.0.1").await;
    let (rang, atk_got) = tokio::join!(
        alice.answer_call(Duration::from_secs(4)),
        atk.collect(Duration::from_secs(3))
    );
    let atk_invites = atk_got
        .iter()
        .filter(|(_, b)| first_line(b).starts_with("INVITE "))
        .count();
    assert!(
        statuses.iter().all(|s| *s == Some(403))
            && statuses.len() <= 1
            && atk_invites == 0
            && rang.is_some(),
        "the attacker's REGISTER for alice was answered {statuses:?}; then a call to alice: \
         the browser rang: {}, the attacker got {}",
        rang.is_some(),
        describe(&atk_got)
    );
    let d = bob.finish_call(d).await;
    assert_eq!(d.final_status, 200, "{}", log_tail(&gw, 40));
}

#[tokio::test]
async fn a_udp_register_for_a_new_user_is_refused() {
    let dir = temp_dir("atk-demo-udp-reg");
    let gw = Gateway::start(command(&dir));
    let mut atk = Udp::bind(ATTACKER_IP).await;
    let reg = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bKsquat2\r\n\
         Max-Forwards: 70\r\nTo: <sip:carol@127.0.0.1>\r\nFrom: <sip:carol@127.0.0.1>;tag=5qa8\r\n\
         Call-ID: squat-2@{ATTACKER_IP}\r\nCSeq: 1 REGISTER\r\nContact: <sip:carol@{a}>\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n",
        a = atk.addr
    );
    atk.send(gw.sip_port, reg.as_bytes()).await;
    let got = atk.collect(Duration::from_secs(1)).await;
    // A browser calling carol finds nobody: the UDP binding was not taken.
    let mut bob = sipua::connect(gw.https_port, "bob", "x", "127.0.0.1").await;
    let d = bob.start_call("sip:carol@127.0.0.1").await;
    let fin = bob
        .final_response(&d.call_id, "INVITE", Duration::from_secs(3))
        .await
        .ok()
        .flatten()
        .and_then(|r| r.status());
    let atk_got = atk.collect(Duration::from_millis(500)).await;
    assert!(
        got.iter()
            .all(|(_, b)| SipMsg::parse(b).ok().and_then(|m| m.status()) == Some(403))
            && fin == Some(404)
            && atk_got.is_empty(),
        "the attacker's REGISTER for carol: it got {}; a browser's call to carol ended {fin:?} \
         and the attacker then got {}",
        describe(&got),
        describe(&atk_got)
    );
}
