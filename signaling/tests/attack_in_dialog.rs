//! Attack (issue 11, point 3): ending or redirecting someone else's call. A browser's call to
//! the SIP side is up; an attacker on 127.0.0.66, handed the SIP leg's Call-ID and both tags
//! (as the far end knows them), sends a BYE or a re-INVITE into that dialog. Only the leg's
//! peer may: a stranger gets silence and the call stays up; the peer with a wrong From-tag 481.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive a real process in real time"
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::attack::*;
use common::sipua::{self, Browser as _, Dialog, WsUa};
use common::*;
use signaling::sip::hdr::NameAddr;
use signaling::sip::msg::{Method, SipMsg};

const FAR_TAG: &str = "f4e0c2d9a1b37765";

struct Established {
    gw: Gateway,
    far: Udp,
    ua: WsUa,
    _d: Dialog,
    /// The INVITE of the SIP leg, as the far end received it.
    inv: SipMsg,
}

/// A browser's call answered by a far end (a UDP socket on 127.0.0.1, OUTBOUND_ROUTE).
async fn established(tag: &str) -> Established {
    let mut far = Udp::bind("127.0.0.1").await;
    let dir = temp_dir(tag);
    let mut cmd = command(&dir);
    cmd.env("RTPP_LOG_LEVEL", "DBUG")
        .env("OUTBOUND_ROUTE", format!("127.0.0.1:{}", far.port()));
    let gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    let d = ua.start_call("sip:echo@127.0.0.1").await;
    let (_, inv) = far
        .wait_for(Duration::from_secs(5), |m| {
            m.method() == Some(&Method::Invite)
        })
        .await
        .unwrap_or_else(|| panic!("no INVITE at the far end:\n{}", log_tail(&gw, 80)));
    let contact = format!("<sip:echo@{}>", far.addr);
    far.send_msg(gw.sip_port, &response(&inv, 180, FAR_TAG, &contact, ""))
        .await;
    far.send_msg(
        gw.sip_port,
        &response(&inv, 200, FAR_TAG, &contact, &plain_sdp("127.0.0.1", 40010)),
    )
    .await;
    let d = ua.finish_call(d).await;
    assert_eq!(d.final_status, 200, "{}", log_tail(&gw, 80));
    assert!(
        far.wait_for(Duration::from_secs(3), |m| m.method() == Some(&Method::Ack))
            .await
            .is_some(),
        "the far end gets the ACK:\n{}",
        log_tail(&gw, 80)
    );
    Established {
        gw,
        far,
        ua,
        _d: d,
        inv,
    }
}

/// A request in the SIP leg's dialog as the far end would send it (its To-tag as From-tag),
/// from `via`.
fn dialog_request(
    inv: &SipMsg,
    method: &str,
    cseq: u32,
    via: SocketAddr,
    from_tag: &str,
    sdp: &str,
) -> String {
    let ruri = NameAddr::parse(inv.header("Contact").unwrap_or_default(), "Contact")
        .map(|n| n.uri)
        .unwrap_or_else(|_| "sip:gw@127.0.0.1".into());
    let ct = if sdp.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{method}{cseq}x{}\r\n\
         Max-Forwards: 70\r\nFrom: {};tag={from_tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:echo@{via}>\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
        via.port(),
        inv.header("To").unwrap_or_default(),
        inv.header("From").unwrap_or_default(),
        inv.call_id(),
        sdp.len()
    )
}

/// The far end's own BYE ends the call: 200 to it, a BYE to the browser.
async fn legit_bye_still_works(e: &mut Established, cseq: u32) {
    let bye = dialog_request(&e.inv, "BYE", cseq, e.far.addr, FAR_TAG, "");
    e.far.send(e.gw.sip_port, bye.as_bytes()).await;
    let ok = e
        .far
        .wait_for(Duration::from_secs(3), |m| {
            m.cseq().method == Method::Bye && m.status().is_some()
        })
        .await
        .map(|(_, r)| r.status());
    assert_eq!(
        ok,
        Some(Some(200)),
        "the far end's own BYE is answered 200:\n{}",
        log_tail(&e.gw, 80)
    );
    assert!(
        e.ua.answer_request("BYE", Duration::from_secs(3))
            .await
            .ok()
            .flatten()
            .is_some(),
        "the browser gets the far end's BYE"
    );
}

async fn dropped_not_a_peer(gw: &Gateway) -> Option<f64> {
    metric(
        &metrics(gw).await,
        "webrtc_phone_sip_dropped_total{reason=\"not_a_peer\"}",
    )
}

#[tokio::test]
async fn a_bye_from_a_stranger_does_not_end_the_call() {
    let mut e = established("atk-bye").await;
    let mut atk = Udp::bind(ATTACKER_IP).await;
    let bye = dialog_request(&e.inv, "BYE", 10, atk.addr, FAR_TAG, "");
    atk.send(e.gw.sip_port, bye.as_bytes()).await;
    let atk_got = atk.collect(Duration::from_millis(1500)).await;
    let browser_bye =
        e.ua.wait_for(Duration::from_millis(500), |m| {
            m.method() == Some(&Method::Bye)
        })
        .await
        .ok()
        .flatten();
    let far_got = e.far.collect(Duration::from_millis(100)).await;
    assert!(
        atk_got.is_empty() && browser_bye.is_none(),
        "the attacker's BYE: the attacker got {}; the browser got a BYE: {}; the far end got {}",
        describe(&atk_got),
        browser_bye.is_some(),
        describe(&far_got)
    );
    let n = dropped_not_a_peer(&e.gw).await;
    assert!(
        n.is_some_and(|n| n >= 1.0),
        "the attacker's BYE counted (not_a_peer): {n:?}"
    );
    legit_bye_still_works(&mut e, 11).await;
}

#[tokio::test]
async fn a_re_invite_from_a_stranger_does_not_repoint_the_call() {
    let mut e = established("atk-reinvite").await;
    let mut atk = Udp::bind(ATTACKER_IP).await;
    let reinvite = dialog_request(
        &e.inv,
        "INVITE",
        10,
        atk.addr,
        FAR_TAG,
        &plain_sdp(ATTACKER_IP, 40020),
    );
    atk.send(e.gw.sip_port, reinvite.as_bytes()).await;
    let atk_got = atk.collect(Duration::from_millis(1500)).await;
    let browser_inv =
        e.ua.wait_for(Duration::from_millis(500), |m| {
            m.method() == Some(&Method::Invite)
        })
        .await
        .ok()
        .flatten();
    assert!(
        atk_got.is_empty() && browser_inv.is_none(),
        "the attacker's re-INVITE: the attacker got {}; the browser got a re-INVITE: {}",
        describe(&atk_got),
        browser_inv.is_some()
    );
    let n = dropped_not_a_peer(&e.gw).await;
    assert!(
        n.is_some_and(|n| n >= 1.0),
        "the attacker's re-INVITE counted (not_a_peer): {n:?}"
    );
    legit_bye_still_works(&mut e, 11).await;
}

#[tokio::test]
async fn a_bye_from_the_peer_with_a_wrong_from_tag_gets_481() {
    let mut e = established("atk-bye-tag").await;
    let bye = dialog_request(&e.inv, "BYE", 10, e.far.addr, "0badf00d0badf00d", "");
    e.far.send(e.gw.sip_port, bye.as_bytes()).await;
    let answer = e
        .far
        .wait_for(Duration::from_secs(2), |m| {
            m.cseq().method == Method::Bye && m.status().is_some()
        })
        .await
        .map(|(_, r)| r.status().unwrap_or(0));
    let browser_bye =
        e.ua.wait_for(Duration::from_millis(300), |m| {
            m.method() == Some(&Method::Bye)
        })
        .await
        .ok()
        .flatten();
    assert!(
        answer == Some(481) && browser_bye.is_none(),
        "BYE with the right Call-ID and To-tag but a wrong From-tag: answered {answer:?}, \
         the browser got a BYE: {}",
        browser_bye.is_some()
    );
    legit_bye_still_works(&mut e, 11).await;
}
