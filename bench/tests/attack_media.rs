//! Media attacks (issue 11, points 2 and 1's media side) on the real gateway binary, with a
//! browser (WSS SIP + ICE/DTLS-SRTP client leg), a SIP far end on 127.0.0.1 and an attacker on
//! 127.0.0.66 that never sees the signaling:
//!
//! * RTP bleed: the attacker sprays every port of the gateway's RTP range with PCMU (a
//!   negotiated payload type), one packet per port every 20 ms, before the far end answers and
//!   during the call. It must get nothing back, the browser must hear only the far end, and the
//!   far end's media must keep flowing both ways.
//! * The same with `RTP_LATCHING=heuristic`, the attacker starting after the learning window,
//!   while the far end has not sent yet (silence suppression): nothing is learnt any more.
//! * A forged `200 OK` (the test hands the attacker the INVITE, as the far end got it) naming
//!   the attacker's media address: the attacker gets no media, the real answer's call works.
//!
//! Needs the gateway binary, which `cargo test --workspace` builds (or WEBRTC_PHONE_BIN).

#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]

mod common;

use std::time::{Duration, Instant};

use common::attack::*;
use common::{gateway, https_get, temp_dir, udp_drops, Gw};
use signaling::sip::msg::Method;

/// Each test's own RTP range (12 ports: the WebRTC port and a few plain pairs), below the
/// kernel's ephemeral range and apart from the other bench tests' ranges (15000-15699).
const STRICT_PORTS: (u16, u16) = (15700, 15711);
const HEURISTIC_PORTS: (u16, u16) = (15720, 15731);
const FORGED_PORTS: (u16, u16) = (15740, 15751);
/// One packet per port per period.
const SPRAY_EVERY: Duration = Duration::from_millis(20);
/// rtpengine's learning window, which the heuristic mode copies.
const HEURISTIC_WINDOW: Duration = Duration::from_secs(3);
/// Share of a stream that must arrive (loopback loses nothing; the margin is for a machine
/// so loaded that a kernel buffer overflows, see `udp_drops` in the messages).
const MIN_DELIVERED: f64 = 0.9;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn log_tail(gw: &Gw, n: usize) -> String {
    let log = gw.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Datagrams the gateway's media reactors dropped, all reasons together.
async fn media_drops(gw: &Gw) -> f64 {
    let (_, m) = https_get(gw.https, "/metrics").await.unwrap_or_default();
    m.lines()
        .filter(|l| l.starts_with("webrtc_phone_media_dropped"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Asserts that at least [`MIN_DELIVERED`] of a stream's packets sent within `window` arrived
/// (and that the window held a real stream: a third of its 20 ms slots at least).
fn assert_delivered(
    what: &str,
    seen: &Seen,
    sent_at: &[Instant],
    window: (Instant, Instant),
    ports: (u16, u16),
) {
    let (sent, got) = seen.delivered(sent_at, window);
    let slots = window.1.saturating_duration_since(window.0).as_millis() / PTIME.as_millis();
    assert!(
        sent as u128 * 3 >= slots && slots > 0,
        "{what}: only {sent} packets sent in a {} ms window",
        slots * PTIME.as_millis()
    );
    assert!(
        got as f64 >= sent as f64 * MIN_DELIVERED,
        "{what}: {got} of {sent} packets arrived (kernel drops on the gateway's ports: {})",
        udp_drops(ports.0, ports.1)
    );
}

/// The end of a window a little before `t`, so that packets in flight at the end count.
fn before(t: Instant) -> Instant {
    t.checked_sub(Duration::from_millis(200)).unwrap_or(t)
}

#[test]
fn rtp_sprayed_at_every_port_before_and_during_a_call_reaches_no_one() {
    let dir = temp_dir("attack-rtp-bleed");
    let rt = runtime();
    let far = rt.block_on(FarSip::bind());
    let gw = gateway(&dir, far.port, STRICT_PORTS, &[]);
    rt.block_on(async {
        let far_media = FarMedia::bind().await;
        let hold = Duration::from_secs(4);
        let browser = tokio::spawn(browser_call(gw.wss, hold));
        let (inv, gw_sip) = far
            .request(Method::Invite, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no INVITE at the far end:\n{}", log_tail(&gw, 40)));
        // From the moment the call exists on the SIP side until its end.
        let spray =
            Sprayer::start(STRICT_PORTS.0..=STRICT_PORTS.1, SPRAY_EVERY, Instant::now()).await;
        far.send(&inv.response(100, "Trying", None), gw_sip).await;
        far.send(&response(&inv, 180, far_media.addr, ""), gw_sip)
            .await;
        // Ringing: 1.5 s of spray with the far end's SDP not known yet.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let t_200 = Instant::now();
        far.send(
            &response(&inv, 200, far_media.addr, &plain_answer(far_media.addr)),
            gw_sip,
        )
        .await;
        // The far end speaks 300 ms after its answer, as a phone whose audio path opens late:
        // the spray's packets get there first.
        far_media.send_to(offered_rtp(&inv), t_200 + Duration::from_millis(300));
        assert!(
            far.request(Method::Ack, Duration::from_secs(5))
                .await
                .is_some(),
            "the gateway ACKs the far end's 200:\n{}",
            log_tail(&gw, 40)
        );
        let b = far.serve(browser).await.expect("the browser's call");
        let atk = spray.finish().await;
        let f = far_media.finish().await;
        let drops = media_drops(&gw).await;

        assert_eq!(b.status, 200, "the far end's answer reaches the browser");
        let (m0, m1) = b.media.unwrap_or_else(|| {
            panic!(
                "the browser's media leg: {:?}\n{}",
                b.failure,
                log_tail(&gw, 40)
            )
        });
        assert!(
            atk.received == 0,
            "RTP bleed: the attacker got {} from the gateway",
            atk.describe()
        );
        assert_eq!(
            b.attacker,
            0,
            "RTP bleed: the browser got {} of the attacker's packets (and {} of the far end's)",
            b.attacker,
            b.far.count()
        );
        assert_eq!(f.attacker, 0, "the far end got the attacker's packets");
        assert_delivered(
            "far end → browser during the spray",
            &b.far,
            &f.sent_at,
            (m0.max(t_200 + Duration::from_millis(400)), before(m1)),
            STRICT_PORTS,
        );
        assert_delivered(
            "browser → far end during the spray",
            &f.browser,
            &b.sent_at,
            (m0, before(m1)),
            STRICT_PORTS,
        );
        assert!(f.strange_sources.is_empty(), "{:?}", f.strange_sources);
        assert_eq!(b.bye, 200, "the browser's BYE");
        // The spray did reach the gateway: its packets were counted as dropped.
        let cycles_in_call = (m1 - m0).as_millis() / SPRAY_EVERY.as_millis();
        assert!(
            drops >= cycles_in_call as f64 / 2.0,
            "the gateway dropped {drops} datagrams; the attacker sent {} ({cycles_in_call} \
             spray cycles during the media)",
            atk.sent
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn heuristic_latching_learns_nothing_after_its_window() {
    let dir = temp_dir("attack-rtp-heuristic");
    let rt = runtime();
    let far = rt.block_on(FarSip::bind());
    let gw = gateway(
        &dir,
        far.port,
        HEURISTIC_PORTS,
        &[("RTP_LATCHING", "heuristic")],
    );
    rt.block_on(async {
        let far_media = FarMedia::bind().await;
        let hold = Duration::from_secs(7);
        let browser = tokio::spawn(browser_call(gw.wss, hold));
        let (inv, gw_sip) = far
            .request(Method::Invite, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no INVITE at the far end:\n{}", log_tail(&gw, 40)));
        far.send(&inv.response(100, "Trying", None), gw_sip).await;
        let t_200 = Instant::now();
        far.send(
            &response(&inv, 200, far_media.addr, &plain_answer(far_media.addr)),
            gw_sip,
        )
        .await;
        // The far end stays silent (silence suppression) past the learning window; the
        // attacker starts half a second after the window, the far end a second later.
        let spray_from = t_200 + HEURISTIC_WINDOW + Duration::from_millis(500);
        let far_from = spray_from + Duration::from_secs(1);
        far_media.send_to(offered_rtp(&inv), far_from);
        let spray = Sprayer::start(
            HEURISTIC_PORTS.0..=HEURISTIC_PORTS.1,
            SPRAY_EVERY,
            spray_from,
        )
        .await;
        assert!(
            far.request(Method::Ack, Duration::from_secs(5))
                .await
                .is_some(),
            "the gateway ACKs the far end's 200:\n{}",
            log_tail(&gw, 40)
        );
        let b = far.serve(browser).await.expect("the browser's call");
        let atk = spray.finish().await;
        let f = far_media.finish().await;

        assert_eq!(b.status, 200, "the far end's answer reaches the browser");
        let (m0, m1) = b.media.unwrap_or_else(|| {
            panic!(
                "the browser's media leg: {:?}\n{}",
                b.failure,
                log_tail(&gw, 40)
            )
        });
        assert!(
            m1 > far_from + Duration::from_secs(1),
            "the call outlasts the far end's first second"
        );
        assert!(
            atk.received == 0,
            "RTP bleed after the heuristic window: the attacker got {} from the gateway",
            atk.describe()
        );
        assert_eq!(
            b.attacker, 0,
            "the browser got {} of the attacker's packets",
            b.attacker
        );
        assert_delivered(
            "far end → browser (its first packets after the window, during the spray)",
            &b.far,
            &f.sent_at,
            (far_from, before(m1)),
            HEURISTIC_PORTS,
        );
        assert_delivered(
            "browser → far end (to its SDP address all along)",
            &f.browser,
            &b.sent_at,
            (m0, before(m1)),
            HEURISTIC_PORTS,
        );
        assert_eq!(b.bye, 200, "the browser's BYE");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_forged_answer_gets_no_media() {
    let dir = temp_dir("attack-forged-answer-media");
    let rt = runtime();
    let far = rt.block_on(FarSip::bind());
    let gw = gateway(&dir, far.port, FORGED_PORTS, &[]);
    rt.block_on(async {
        let far_media = FarMedia::bind().await;
        let atk_sip = Listener::bind(ATTACKER_IP).await;
        let atk_media = Listener::bind(ATTACKER_IP).await;
        let browser = tokio::spawn(browser_call(gw.wss, Duration::from_secs(3)));
        let (inv, gw_sip) = far
            .request(Method::Invite, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no INVITE at the far end:\n{}", log_tail(&gw, 40)));
        far.send(&inv.response(100, "Trying", None), gw_sip).await;
        far.send(&response(&inv, 180, far_media.addr, ""), gw_sip)
            .await;

        // The attacker, handed the INVITE (branch, tags, Call-ID), answers for the far end
        // with its own media address, three times, from 127.0.0.66 to the gateway's SIP port.
        let forged = response_as(
            &inv,
            200,
            "a77ac4e5d0f1e2b3",
            atk_sip.addr,
            &plain_answer(atk_media.addr),
        )
        .to_bytes();
        for _ in 0..3 {
            atk_sip.send_to(&forged, gw_sip).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let t_200 = Instant::now();
        far.send(
            &response(&inv, 200, far_media.addr, &plain_answer(far_media.addr)),
            gw_sip,
        )
        .await;
        far_media.send_to(offered_rtp(&inv), t_200);
        let b = far.serve(browser).await.expect("the browser's call");
        let atk_m = atk_media.finish().await;
        let atk_s = atk_sip.finish().await;
        let f = far_media.finish().await;

        assert!(
            atk_m.received == 0,
            "forged 200: the attacker's media address got {} (its SIP socket got {})",
            atk_m.describe(),
            atk_s.describe()
        );
        assert!(
            atk_s.received == 0,
            "forged 200: the attacker's SIP socket got {}",
            atk_s.describe()
        );
        assert_eq!(b.status, 200, "the far end's answer reaches the browser");
        let (m0, m1) = b.media.unwrap_or_else(|| {
            panic!(
                "the browser's media leg: {:?}\n{}",
                b.failure,
                log_tail(&gw, 40)
            )
        });
        assert_delivered(
            "browser → far end",
            &f.browser,
            &b.sent_at,
            (m0, before(m1)),
            FORGED_PORTS,
        );
        assert_delivered(
            "far end → browser",
            &b.far,
            &f.sent_at,
            (m0.max(t_200), before(m1)),
            FORGED_PORTS,
        );
        assert_eq!(b.bye, 200, "the browser's BYE");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
