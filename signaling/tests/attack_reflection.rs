//! Attack (issue 11, point 4): reflection and amplification. An address that may not call
//! (127.0.0.66, not in ACCEPT_IPS, not the proxy) sends INVITEs, OPTIONS and stray requests,
//! as a spoofing attacker would in a victim's name. Each answer is one datagram, never
//! retransmitted and never larger than twice its request; past a small per-source budget,
//! silence. The outbound proxy (a test socket on 127.0.0.1) is still answered.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive a real process in real time"
)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::attack::*;
use common::*;
use signaling::sip::msg::SipMsg;

/// A gateway with a (silent) outbound proxy, so ACCEPT_IPS is its default `[[WSS]],[[PROXY]]`.
async fn setup(tag: &str) -> (Gateway, Udp, Udp) {
    let proxy = Udp::bind("127.0.0.1").await;
    let atk = Udp::bind(ATTACKER_IP).await;
    let dir = temp_dir(tag);
    let mut cmd = command(&dir);
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{}", proxy.port()));
    (Gateway::start(cmd), proxy, atk)
}

fn scanner_invite(atk: SocketAddr, i: u32) -> String {
    let sdp = plain_sdp(ATTACKER_IP, 40000);
    format!(
        "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {atk};branch=z9hG4bKscan{i}\r\n\
         Max-Forwards: 70\r\nFrom: \"scanner\" <sip:100@{ATTACKER_IP}>;tag=s{i}\r\n\
         To: <sip:100@127.0.0.1>\r\nCall-ID: scan-{i}@{ATTACKER_IP}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:100@{atk}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// An OPTIONS as SIP scanners send it.
fn scanner_options(atk: SocketAddr, i: u32) -> String {
    format!(
        "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {atk};branch=z9hG4bKopt{i};rport\r\n\
         Max-Forwards: 70\r\nTo: \"sipvicious\" <sip:100@127.0.0.1>\r\n\
         From: \"sipvicious\" <sip:100@127.0.0.1>;tag=6638353364346136{i}\r\n\
         User-Agent: friendly-scanner\r\nCall-ID: 1123456789012345{i}\r\n\
         Contact: <sip:100@{atk}>\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The smallest OPTIONS the parser takes.
fn tiny_options(atk: SocketAddr) -> String {
    format!(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {atk};branch=z9hG4bKt\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: t\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    SipMsg::parse(bytes).ok().and_then(|m| m.status())
}

#[tokio::test]
async fn a_refused_invite_is_answered_once_small_and_then_not_at_all() {
    let (gw, mut proxy, mut atk) = setup("atk-refl-invite").await;
    let first = scanner_invite(atk.addr, 0);
    atk.send(gw.sip_port, first.as_bytes()).await;
    let got = atk.collect(Duration::from_secs(5)).await;
    let largest = got.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    assert!(
        got.len() == 1 && status_of(&got[0].1) == Some(403) && largest <= 2 * first.len(),
        "one refused INVITE of {} B: the attacker got {} within 5 s (want exactly one 403 of at most {} B)",
        first.len(),
        describe(&got),
        2 * first.len()
    );

    // A scanner's burst: 200 INVITEs with fresh Call-IDs.
    let mut sent = 0;
    for i in 1..=200 {
        let inv = scanner_invite(atk.addr, i);
        sent += inv.len();
        atk.send(gw.sip_port, inv.as_bytes()).await;
    }
    let got = atk.collect(Duration::from_secs(2)).await;
    let answered: HashSet<String> = got
        .iter()
        .filter_map(|(_, b)| SipMsg::parse(b).ok())
        .map(|m| m.call_id().to_string())
        .collect();
    let bytes: usize = got.iter().map(|(_, b)| b.len()).sum();
    assert!(
        answered.len() <= 15,
        "{} of 200 refused INVITEs ({sent} B) answered, {bytes} B sent back: {}",
        answered.len(),
        describe(&got)
    );
    let n = metric(
        &metrics(&gw).await,
        "webrtc_phone_sip_dropped_total{reason=\"refusal_budget\"}",
    );
    assert!(
        n.is_some_and(|n| n >= 1.0),
        "refusals past the budget counted (refusal_budget): {n:?}"
    );

    // The proxy is not the attacker: its OPTIONS is still answered.
    let opt = scanner_options(proxy.addr, 1);
    proxy.send(gw.sip_port, opt.as_bytes()).await;
    let r = proxy
        .wait_for(Duration::from_secs(2), |m| m.status().is_some())
        .await
        .map(|(_, m)| m.status());
    assert_eq!(
        r,
        Some(Some(200)),
        "the proxy's OPTIONS is answered:\n{}",
        log_tail(&gw, 40)
    );
}

#[tokio::test]
async fn options_are_answered_once_and_never_larger_than_twice_the_request() {
    let (gw, _proxy, mut atk) = setup("atk-refl-options").await;
    let opt = scanner_options(atk.addr, 1);
    atk.send(gw.sip_port, opt.as_bytes()).await;
    let got = atk.collect(Duration::from_secs(3)).await;
    let largest = got.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    assert!(
        got.len() == 1 && status_of(&got[0].1) == Some(200) && largest <= 2 * opt.len(),
        "a scanner's OPTIONS of {} B: the attacker got {} (want one 200 of at most {} B)",
        opt.len(),
        describe(&got),
        2 * opt.len()
    );
    // The smallest OPTIONS: its answer (if any) is still no more than twice as large.
    let tiny = tiny_options(atk.addr);
    atk.send(gw.sip_port, tiny.as_bytes()).await;
    let got = atk.collect(Duration::from_secs(2)).await;
    let largest = got.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    assert!(
        got.len() <= 1 && largest <= 2 * tiny.len(),
        "a minimal OPTIONS of {} B: the attacker got {} (want at most one answer of at most {} B)",
        tiny.len(),
        describe(&got),
        2 * tiny.len()
    );
}

#[tokio::test]
async fn stray_requests_from_a_stranger_get_one_small_answer_or_none() {
    let (gw, _proxy, mut atk) = setup("atk-refl-stray").await;
    // An in-dialog request matching no dialog: 481 only to sources that may talk to us.
    let bye = format!(
        "BYE sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKstray1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{ATTACKER_IP}>;tag=77a1\r\nTo: <sip:gw@127.0.0.1>;tag=5e2b\r\n\
         Call-ID: stray-1@{ATTACKER_IP}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        atk.addr
    );
    atk.send(gw.sip_port, bye.as_bytes()).await;
    let bye_got = atk.collect(Duration::from_secs(2)).await;
    // An out-of-dialog request the gateway does not handle: one 501 at most, small.
    let msg = format!(
        "MESSAGE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKstray2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{ATTACKER_IP}>;tag=77a2\r\nTo: <sip:100@127.0.0.1>\r\n\
         Call-ID: stray-2@{ATTACKER_IP}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
         Content-Length: 2\r\n\r\nhi",
        atk.addr
    );
    atk.send(gw.sip_port, msg.as_bytes()).await;
    let msg_got = atk.collect(Duration::from_secs(2)).await;
    let largest = msg_got.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    assert!(
        bye_got.is_empty(),
        "a stray in-dialog BYE from a stranger: the attacker got {}",
        describe(&bye_got)
    );
    assert!(
        msg_got.len() <= 1
            && largest <= 2 * msg.len()
            && msg_got.iter().all(|(_, b)| status_of(b) == Some(501)),
        "an out-of-dialog MESSAGE of {} B: the attacker got {}",
        msg.len(),
        describe(&msg_got)
    );
}
