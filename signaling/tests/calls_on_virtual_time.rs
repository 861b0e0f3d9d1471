//! Whole browser→SIP calls through signaling's core and the engine's sessions on virtual time
//! (tests/pair: no sockets, no threads): set-up, media both ways (SRTP at the browser, plain RTP
//! at the PBX), hang-up by either side, and DTLS completing under loss. Only that last test
//! waits in real time: OpenSSL's DTLS retransmit timer runs on the wall clock (the documented
//! seam in engine/src/proto/dtls/mod.rs), so its virtual clock is paced against it.

mod pair;

use std::time::Duration;

use engine::api::Event;
use engine::api::Output;
use pair::{LinkModel, Pair, Step, BROWSER_MEDIA, WEBRTC};
use signaling::b2bua::core::HungUpBy;
use signaling::sip::msg::Method;
use testkit::NetEmulator;

/// The PBX answers the INVITE (100, 180, 200) and takes the ACK.
fn answers() -> Vec<Step> {
    vec![
        Step::Answer(Method::Invite, &[100, 180, 200]),
        Step::Answer(Method::Ack, &[]),
    ]
}

/// A call set up on a perfect network, media connected (ICE, DTLS on both sides).
fn connected(script: Vec<Step>) -> Pair {
    let mut p = Pair::new(NetEmulator::new(1, LinkModel::default()), script);
    p.browser.call();
    assert!(
        p.run_until(Duration::from_secs(10), |p| p.browser.is_connected()
            && p.engine_dtls_connected()),
        "no media: browser {:?}, events {:?}",
        p.browser.leg,
        p.events
    );
    assert_eq!(p.browser.final_status(Method::Invite), Some(200));
    assert_eq!(p.media.len(), 1, "one session for the call");
    p
}

/// Carries `n` packets each way and checks each arrived once, byte for byte, in the other
/// form (SRTP at the browser, plain RTP at the PBX).
fn media_both_ways(p: &mut Pair, n: u16) {
    let from_browser: Vec<Vec<u8>> = (0..n).map(|i| vec![0xb0 ^ i as u8; 160]).collect();
    let from_pbx: Vec<Vec<u8>> = (0..n).map(|i| vec![0x5b ^ i as u8; 160]).collect();
    for i in 0..n {
        p.browser_sends(i, &from_browser[usize::from(i)]);
        p.pbx_sends(i, &from_pbx[usize::from(i)]);
        p.run_for(Duration::from_millis(20));
    }
    p.run_for(Duration::from_millis(100));
    let at_pbx: Vec<Vec<u8>> = p.pbx.media_in.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(
        at_pbx, from_browser,
        "the browser's SRTP reaches the PBX as plain RTP"
    );
    assert!(
        p.pbx.media_in.iter().all(|(src, _)| src.port() % 2 == 0),
        "from the gateway's RTP port"
    );
    assert_eq!(
        p.browser.media_in, from_pbx,
        "the PBX's RTP reaches the browser as SRTP"
    );
    assert_eq!(p.browser.bad_srtp, 0);
}

#[test]
fn a_browser_call_carries_media_both_ways_and_the_browser_hangs_up() {
    let mut script = answers();
    script.push(Step::Answer(Method::Bye, &[200]));
    let mut p = connected(script);
    media_both_ways(&mut p, 10);
    p.browser.hang_up();
    assert!(
        p.run_until(Duration::from_secs(5), |p| p.call_ended().is_some()
            && p.media.len() == 0
            && p.pbx.is_done()),
        "the call did not end: {:?}",
        p.events
    );
    assert_eq!(p.browser.final_status(Method::Bye), Some(200));
    assert!(p.pbx.is_done(), "the PBX got its BYE");
    assert!(p.pbx.unexpected.is_empty(), "{:?}", p.pbx.unexpected);
    let rec = p.call_ended().unwrap();
    assert_eq!(rec.by, HungUpBy::Caller);
    let stats = rec.media.expect("the engine's figures");
    assert!(
        stats.legs[0].packets_in >= 10 && stats.legs[1].packets_in >= 10,
        "{stats:?}"
    );
    assert!(
        p.media
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Event(Event::Released { .. }))),
        "the session was released"
    );
}

#[test]
fn a_browser_call_is_hung_up_by_the_pbx() {
    let mut p = connected(answers());
    media_both_ways(&mut p, 3);
    p.pbx.then(Step::Bye);
    assert!(
        p.run_until(Duration::from_secs(5), |p| p.pbx.is_done()
            && p.call_ended().is_some()
            && p.media.len() == 0),
        "the PBX's BYE did not end the call: {:?}",
        p.events
    );
    assert!(
        p.browser
            .received
            .iter()
            .any(|m| m.method() == Some(&Method::Bye)),
        "the BYE reached the browser"
    );
    let bye_ok = p
        .pbx
        .received
        .iter()
        .find(|m| m.cseq().method == Method::Bye && m.status().is_some());
    assert_eq!(bye_ok.and_then(|m| m.status()), Some(200));
    assert_eq!(p.call_ended().unwrap().by, HungUpBy::Callee);
    assert!(p.pbx.unexpected.is_empty(), "{:?}", p.pbx.unexpected);
}

fn seed() -> u64 {
    std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

#[test]
fn dtls_completes_under_ten_percent_loss() {
    let mut net = NetEmulator::new(seed(), LinkModel::default());
    // The media path only: the WebSocket is reliable, and SIP/UDP loss is another test's.
    net.set_model_to(WEBRTC, LinkModel::lossy(0.1));
    net.set_model_to(BROWSER_MEDIA, LinkModel::lossy(0.1));
    let mut p = Pair::new(net, answers());
    // OpenSSL's retransmit timer runs on the wall clock: pace virtual time against it.
    p.pace_wall_clock();
    p.browser.call();
    let t0 = p.now();
    assert!(
        p.run_until(Duration::from_secs(30), |p| p.browser.is_connected()
            && p.engine_dtls_connected()),
        "DTLS did not complete under loss: {:?}; lost {:?}",
        p.browser.leg,
        p.net.stats()
    );
    // DTLS records have first bytes 20..=63 (RFC 7983); the loss must have hit the
    // handshake, so its retransmissions (on virtual time) are what completed it.
    let dtls_lost = p
        .net
        .lost()
        .iter()
        .filter(|d| (20..=63).contains(&d.data[0]))
        .count();
    assert!(dtls_lost > 0, "no DTLS datagram lost: pick another seed");
    assert!(
        p.now() - t0 >= Duration::from_millis(500),
        "a retransmission timer ran: {:?}",
        p.now() - t0
    );
    media_both_ways(&mut p, 1);
}
