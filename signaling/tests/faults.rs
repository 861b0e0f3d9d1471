//! Faults with the real binary: the far end's media stops, the port range runs out, SIGKILL
//! and restart, ACCEPT_IPS refusing browsers.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes in real time"
)]

mod common;

use std::time::Duration;

use common::peers::{free_udp_port, kamailio, sipp_echo, sipp_messages};
use common::sipua::{self, Browser as _};
use common::*;

#[tokio::test]
async fn no_media_hangs_up_both_sides_after_the_media_timeout() {
    let dir = temp_dir("media-timeout");
    let (kport, sport) = (free_udp_port(), free_udp_port());
    let _k = kamailio(&dir, kport, sport, &[]);
    let _far = sipp_echo(&dir, sport);
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{kport}"))
        .env("MEDIA_TIMEOUT", "2");
    let gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    // The UA never sends media: as if both ends had vanished.
    let d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200);
    let bye = ua
        .answer_request("BYE", Duration::from_secs(8))
        .await
        .ok()
        .flatten()
        .expect("BYE to the browser");
    assert!(
        bye.header("Reason")
            .unwrap_or_default()
            .contains("media timeout"),
        "{bye:?}"
    );
    let t0 = std::time::Instant::now();
    while !sipp_messages(&dir, "uas").contains("media timeout")
        && t0.elapsed() < Duration::from_secs(2)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let far = sipp_messages(&dir, "uas");
    assert!(
        far.contains("BYE sip:") && far.contains("media timeout"),
        "{far}"
    );
    let m = https_get(gw.https_port, "/metrics", "").await.body;
    assert_eq!(
        metric(
            &m,
            "webrtc_phone_media_events_total{event=\"media_timeout\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn exhausted_port_range_gives_503_and_spares_calls_in_progress() {
    let dir = temp_dir("ports-out");
    let (kport, sport) = (free_udp_port(), free_udp_port());
    let _k = kamailio(&dir, kport, sport, &[]);
    let _far = sipp_echo(&dir, sport);
    // One reactor: an odd first port for WebRTC, then two RTP/RTCP pairs: two calls.
    let (min, _) = rtp_range();
    let min = min | 1;
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{kport}"))
        .env("MIN_RTP_PORT", min.to_string())
        .env("MAX_RTP_PORT", (min + 4).to_string());
    let gw = Gateway::start(cmd);
    let mut a = sipua::connect(gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let mut b = sipua::connect(gw.https_port, "bob", "bobPassword", "127.0.0.1").await;
    let mut c = sipua::connect(gw.https_port, "carol", "carolPassword", "127.0.0.1").await;
    let mut da = a.call("sip:echo@127.0.0.1").await;
    let db = b.call("sip:echo@127.0.0.1").await;
    assert_eq!(
        (da.final_status, db.final_status),
        (200, 200),
        "{}",
        gw.log_text()
    );
    let dc = c.call("sip:echo@127.0.0.1").await;
    assert_eq!(dc.final_status, 503, "{}", gw.log_text());
    // The calls in progress still answer in-dialog requests and hang up cleanly.
    assert_eq!(a.hold(&mut da, "sendonly").await, 200);
    assert_eq!(a.bye(&mut da).await.unwrap_or(0), 200);
    // A freed pair serves the next call once the reactor has closed its sockets.
    let t0 = std::time::Instant::now();
    loop {
        let m = https_get(gw.https_port, "/metrics", "").await.body;
        if metric(&m, "webrtc_phone_media_sessions{reactor=\"0\"}") == Some(1.0)
            || t0.elapsed() > Duration::from_secs(5)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = c.call("sip:echo@127.0.0.1").await;
    assert_eq!(again.final_status, 200, "{}", gw.log_text());
}

#[test]
fn sigkill_then_restart_starts_clean_with_the_same_certificate() {
    let dir = temp_dir("sigkill");
    let mut first = Gateway::start(command(&dir));
    let l1 = first.wait_for_log("webrtc-phone listening", Duration::from_secs(5));
    let st = first.signal_and_wait(libc::SIGKILL, Duration::from_secs(5));
    assert_eq!(st.code(), None, "killed by a signal");
    let mut second = Gateway::start(command(&dir));
    let l2 = second.wait_for_log("webrtc-phone listening", Duration::from_secs(5));
    let fp = |l: &str| {
        l.split("cert_sha256=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(fp(&l1), fp(&l2));
    assert!(l2.contains("cert_generated=false"));
    assert!(!std::fs::read_dir(dir.join("tls")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[tokio::test]
async fn accept_ips_without_wss_refuses_browser_calls() {
    let dir = temp_dir("accept-no-wss");
    let kport = free_udp_port();
    let _k = kamailio(&dir, kport, free_udp_port(), &[]);
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{kport}"))
        .env("ACCEPT_IPS", "[[PROXY]]");
    let gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    assert_eq!(
        ua.register(600).await.unwrap_or(0),
        200,
        "ACCEPT_IPS applies to new calls only"
    );
    assert_eq!(ua.call("sip:echo@127.0.0.1").await.final_status, 403);
}
