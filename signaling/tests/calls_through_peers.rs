//! Calls through the real binary with a WebSocket UA in the browser's SIP role, Kamailio as
//! registrar/PBX and SIPp as the far end (both directions, CANCEL, BYE, hold, challenges,
//! rejections, a dying WebSocket, policy, malformed input).

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes in real time"
)]

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::peers::{free_udp_port, kamailio, sipp, sipp_messages, Proc};
use common::sipua::{self, Browser as _};
use common::*;
use signaling::sip::msg::{Method, SipMsg};

struct Setup {
    dir: std::path::PathBuf,
    gw: Gateway,
    kport: u16,
    _k: Proc,
    sipp_port: u16,
}

/// Kamailio routing `echo` to a SIPp port, the gateway pointed at Kamailio.
fn setup(tag: &str, defines: &[&str]) -> Setup {
    setup_route(tag, defines, false)
}

/// As [`setup`]; with `direct`, OUTBOUND_ROUTE goes straight to the SIPp port (a proxy such as
/// Kamailio turns a 503 into 500, RFC 3261 §16.7, so 503 propagation needs a direct route).
fn setup_route(tag: &str, defines: &[&str], direct: bool) -> Setup {
    let dir = temp_dir(tag);
    let (kport, sipp_port) = (free_udp_port(), free_udp_port());
    let k = kamailio(&dir, kport, sipp_port, defines);
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{kport}"));
    if direct {
        cmd.env("OUTBOUND_ROUTE", format!("127.0.0.1:{sipp_port}"));
    }
    let gw = Gateway::start(cmd);
    Setup {
        dir,
        gw,
        kport,
        _k: k,
        sipp_port,
    }
}

fn uas(dir: &Path, tag: &str, port: u16, scenario: &str, extra: &[&str]) -> Proc {
    let p = port.to_string();
    let mp = free_udp_port().to_string();
    let mut args = vec![
        "-i",
        "127.0.0.1",
        "-p",
        &p,
        "-mi",
        "127.0.0.1",
        "-mp",
        &mp,
        "-rtp_echo",
        "-aa",
        "-m",
        "1",
    ];
    args.extend_from_slice(extra);
    sipp(dir, tag, scenario, &args)
}

fn wait_text(limit: Duration, mut f: impl FnMut() -> String, needle: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[tokio::test]
async fn browser_calls_the_sip_side_and_hangs_up_first() {
    let s = setup("call-b2s", &[]);
    let mut far = uas(&s.dir, "uas", s.sipp_port, "uas-echo.xml", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let mut d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(
        d.final_status,
        200,
        "{}\n{}",
        s.gw.log_text(),
        sipp_messages(&s.dir, "uas")
    );
    assert!(
        d.answer_sdp.contains("UDP/TLS/RTP/SAVPF") && d.answer_sdp.contains("a=ice-lite"),
        "{}",
        d.answer_sdp
    );
    let far_log = sipp_messages(&s.dir, "uas");
    assert!(
        far_log.contains("RTP/AVP") && !far_log.contains("ice-ufrag"),
        "{far_log}"
    );
    assert_eq!(ua.bye(&mut d).await.unwrap_or(0), 200);
    assert_eq!(
        far.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        sipp_messages(&s.dir, "uas")
    );
    let m = https_get(s.gw.https_port, "/metrics", "").await.body;
    assert_eq!(
        metric(&m, "webrtc_phone_call_setup_seconds_count"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "webrtc_phone_calls_ended_total{hung_up_by=\"caller\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "webrtc_phone_calls_active"), Some(0.0));
    assert_eq!(metric(&m, "webrtc_phone_calls_started_total"), Some(1.0));
    // One line per call, with the engine's figures for both legs merged in.
    let log = s.gw.log_text();
    let ended: Vec<&str> = log.lines().filter(|l| l.contains("call ended")).collect();
    assert_eq!(ended.len(), 1, "{log}");
    for field in [
        "hung_up_by=\"caller\"",
        "media=true",
        "duration_s=",
        "a_in=",
        "b_out=",
        "a_lost=",
        "b_jitter=",
    ] {
        assert!(ended[0].contains(field), "{field} missing: {}", ended[0]);
    }
    assert!(!log.contains("call media"), "{log}");
}

#[tokio::test]
async fn sip_side_hangs_up_first() {
    let s = setup("call-sip-bye", &[]);
    let mut far = uas(&s.dir, "uas", s.sipp_port, "uas-hangup.xml", &["-d", "300"]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200, "{}", s.gw.log_text());
    let bye = ua
        .answer_request("BYE", Duration::from_secs(5))
        .await
        .ok()
        .flatten();
    assert!(bye.is_some(), "the browser gets the far end's BYE");
    assert_eq!(
        far.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        sipp_messages(&s.dir, "uas")
    );
}

#[tokio::test]
async fn invite_challenged_with_407_completes() {
    let s = setup("call-407", &["WITH_INVITE_AUTH"]);
    let _far = uas(&s.dir, "uas", s.sipp_port, "uas-echo.xml", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(
        d.final_status,
        200,
        "{}\n{}",
        s.gw.log_text(),
        s._k.log_text()
    );
    assert_eq!(d.cseq, 2, "answered after one challenge");
}

#[tokio::test]
async fn invite_challenged_with_401_completes() {
    let s = setup("call-401", &["WITH_INVITE_AUTH_401"]);
    let _far = uas(&s.dir, "uas", s.sipp_port, "uas-echo.xml", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "bob", "bobPassword", "127.0.0.1").await;
    let d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200, "{}", s.gw.log_text());
    assert_eq!(d.cseq, 2);
}

#[tokio::test]
async fn sip_side_calls_a_registered_browser() {
    let s = setup("call-s2b", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    assert_eq!(ua.register(600).await.unwrap_or(0), 200);
    let (kp, up, mp) = (
        s.kport.to_string(),
        free_udp_port().to_string(),
        free_udp_port().to_string(),
    );
    let target = format!("127.0.0.1:{kp}");
    let mut caller = sipp(
        &s.dir,
        "uac",
        "uac.xml",
        &[
            &target,
            "-s",
            "alice",
            "-m",
            "1",
            "-l",
            "1",
            "-d",
            "500",
            "-i",
            "127.0.0.1",
            "-p",
            &up,
            "-mi",
            "127.0.0.1",
            "-mp",
            &mp,
            "-timeout",
            "20",
            "-timeout_error",
        ],
    );
    let inv = ua
        .answer_call(Duration::from_secs(10))
        .await
        .expect("the INVITE reaches the browser");
    let body = String::from_utf8_lossy(&inv.body).into_owned();
    assert!(
        body.contains("a=setup:actpass") && body.contains("UDP/TLS/RTP/SAVPF"),
        "{body}"
    );
    assert!(ua
        .answer_request("BYE", Duration::from_secs(10))
        .await
        .ok()
        .flatten()
        .is_some());
    assert_eq!(
        caller.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        sipp_messages(&s.dir, "uac")
    );
    let uac_log = sipp_messages(&s.dir, "uac");
    assert!(
        uac_log.contains("RTP/AVP 0"),
        "the SIP side got a plain answer:\n{uac_log}"
    );
}

#[tokio::test]
async fn browser_cancels_a_ringing_call() {
    let s = setup("cancel-b", &[]);
    let mut far = uas(&s.dir, "uas", s.sipp_port, "uas-ring-cancel.xml", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let d = ua.start_call("sip:echo@127.0.0.1").await;
    let cid = d.call_id.clone();
    let ringing = ua
        .wait_for(Duration::from_secs(10), |m| {
            m.call_id() == cid && m.status() == Some(180)
        })
        .await
        .ok()
        .flatten();
    assert!(ringing.is_some(), "{}", s.gw.log_text());
    ua.cancel(&d).await.unwrap();
    let r = ua
        .final_response(&d.call_id, "INVITE", Duration::from_secs(10))
        .await
        .ok()
        .flatten()
        .unwrap();
    assert_eq!(r.status(), Some(487));
    assert_eq!(
        far.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        sipp_messages(&s.dir, "uas")
    );
}

#[tokio::test]
async fn sip_side_cancels_a_ringing_browser() {
    let s = setup("cancel-s", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    assert_eq!(ua.register(600).await.unwrap_or(0), 200);
    let (kp, up, mp) = (
        s.kport.to_string(),
        free_udp_port().to_string(),
        free_udp_port().to_string(),
    );
    let target = format!("127.0.0.1:{kp}");
    let mut caller = sipp(
        &s.dir,
        "uac",
        "uac-cancel.xml",
        &[
            &target,
            "-s",
            "alice",
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            &up,
            "-mi",
            "127.0.0.1",
            "-mp",
            &mp,
            "-timeout",
            "20",
            "-timeout_error",
        ],
    );
    let inv = ua
        .wait_for(Duration::from_secs(10), |m| {
            m.method() == Some(&Method::Invite)
        })
        .await
        .ok()
        .flatten()
        .expect("INVITE");
    let ringing = inv.response(180, "Ringing", Some("ring"));
    ua.send(&String::from_utf8(ringing.to_bytes()).unwrap())
        .await
        .unwrap();
    let cancel = ua
        .wait_for(Duration::from_secs(10), |m| {
            m.method() == Some(&Method::Cancel)
        })
        .await
        .ok()
        .flatten()
        .expect("CANCEL reaches the browser");
    ua.send(&String::from_utf8(cancel.response(200, "OK", None).to_bytes()).unwrap())
        .await
        .unwrap();
    ua.send(
        &String::from_utf8(
            inv.response(487, "Request Terminated", Some("ring"))
                .to_bytes(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        caller.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        sipp_messages(&s.dir, "uac")
    );
}

#[tokio::test]
async fn hold_re_invite_reaches_the_far_end() {
    let s = setup("hold", &[]);
    let _far = uas(&s.dir, "uas", s.sipp_port, "uas-echo.xml", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let mut d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200);
    assert_eq!(
        ua.hold(&mut d, "sendonly").await,
        200,
        "{}",
        s.gw.log_text()
    );
    assert!(
        wait_text(
            Duration::from_secs(5),
            || sipp_messages(&s.dir, "uas"),
            "a=sendonly"
        ),
        "{}",
        sipp_messages(&s.dir, "uas")
    );
    assert_eq!(ua.hold(&mut d, "sendrecv").await, 200);
    assert_eq!(ua.bye(&mut d).await.unwrap_or(0), 200);
}

#[tokio::test]
async fn busy_and_unavailable_are_propagated() {
    for code in ["486", "503"] {
        let s = setup_route(&format!("reject-{code}"), &[], true);
        let mut far = uas(&s.dir, "uas", s.sipp_port, &format!("uas-{code}.xml"), &[]);
        let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
        let d = ua.call("sip:echo@127.0.0.1").await;
        assert_eq!(d.final_status.to_string(), code, "{}", s.gw.log_text());
        assert_eq!(
            far.wait_exit(Duration::from_secs(10)),
            Some(0),
            "{}",
            sipp_messages(&s.dir, "uas")
        );
    }
}

#[tokio::test]
async fn websocket_dying_mid_call_sends_bye_within_a_second() {
    let s = setup("ws-dies", &[]);
    let _far = uas(&s.dir, "uas", s.sipp_port, "uas-echo.xml", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200);
    let t0 = Instant::now();
    ua.abort();
    let got = wait_text(
        Duration::from_secs(1),
        || sipp_messages(&s.dir, "uas"),
        "BYE sip:",
    );
    assert!(
        got,
        "no BYE at SIPp within 1 s ({:?}):\n{}",
        t0.elapsed(),
        s.gw.log_text()
    );
    assert!(
        sipp_messages(&s.dir, "uas").contains("WebSocket closed"),
        "BYE carries a Reason"
    );
}

#[tokio::test]
async fn invite_from_an_address_not_allowed_gets_403() {
    let s = setup("forbidden", &[]);
    // 127.0.0.2 is neither a WebSocket client nor the proxy (127.0.0.1).
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    let inv = format!(
        "INVITE sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKforbid\r\nMax-Forwards: 70\r\n\
         From: <sip:mallory@127.0.0.2>;tag=m\r\nTo: <sip:x@a.invalid>\r\nCall-ID: forbid@test\r\nCSeq: 1 INVITE\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sock.local_addr().unwrap(),
        sdp.len()
    );
    sock.send_to(inv.as_bytes(), ("127.0.0.1", s.gw.sip_port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(SipMsg::parse(&buf[..n]).unwrap().status(), Some(403));
}

#[tokio::test]
async fn hundred_malformed_messages_then_a_call_still_works() {
    let s = setup("malformed-call", &[]);
    let _far = uas(&s.dir, "uas", s.sipp_port, "uas-echo.xml", &[]);
    let mut ua = sipua::connect(s.gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    for i in 0..100 {
        let junk = match i % 4 {
            0 => "INVITE sip:x SIP/2.0\r\n\r\n".to_string(),
            1 => format!("garbage {i} \u{0}\r\n\r\n"),
            2 => "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bKj\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: j\r\nCSeq: 1 INVITE\r\n\r\n".into(),
            _ => "SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n".into(),
        };
        ua.send(&junk).await.unwrap();
    }
    // The burst used the whole message bucket (WS_MSG_RATE 50/s, bursts of 100): the call's
    // INVITE, ACK and BYE need a few tokens back, or the rate limit (not the malformed
    // handling under test) closes the connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200, "{}", s.gw.log_text());
    let m = https_get(s.gw.https_port, "/metrics", "").await.body;
    let rejected = metric(
        &m,
        "webrtc_phone_sip_malformed_total{transport=\"ws\",action=\"rejected\"}",
    )
    .unwrap_or(0.0);
    let dropped = metric(
        &m,
        "webrtc_phone_sip_malformed_total{transport=\"ws\",action=\"dropped\"}",
    )
    .unwrap_or(0.0);
    assert_eq!(rejected + dropped, 100.0, "{m}");
}
