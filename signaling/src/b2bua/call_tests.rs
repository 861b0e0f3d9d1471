//! Whole calls through the core on a virtual clock, with the engine's replies played by the
//! test (the engine has its own tests; here only the signaling contract matters).

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::VirtualClock;

use engine::api::{Command, LegIndex, LegSpec, LocalLeg, Output, Reply, SessionId, Setup};

use super::core::{Core, CoreConfig, CoreEvent, Limits, Peer};
use super::policy::AcceptList;
use super::route::StaticRoute;
use super::types::ConnName;
use crate::sdp::pts::PtFilter;
use crate::sip::msg::{Method, SipMsg};
use crate::sip::txn::TimerValues;

const INVITE: &[u8] = include_bytes!("../../tests/fixtures/sipjs/invite.txt");
const INVITE_AUTH: &[u8] =
    include_bytes!("../../tests/fixtures/sipjs/invite-with-proxy-authorization.txt");
const ANSWER_FROM_BROWSER: &[u8] =
    include_bytes!("../../tests/fixtures/sipjs/callee-200-ok-sdp-answer.txt");

const SIP_SDP: &str = "v=0\r\no=sipp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn pbx() -> SocketAddr {
    "127.0.0.1:5090".parse().unwrap()
}

fn cfg(demo: bool) -> CoreConfig {
    let mut route = StaticRoute::parse("127.0.0.1:5090").unwrap();
    route.resolve(crate::b2bua::route::literal_host).unwrap();
    CoreConfig {
        own_host: "127.0.0.1".into(),
        sip_port: 5060,
        proxy: (!demo).then(|| vec![pbx()]),
        timers: TimerValues::default(),
        route: (!demo).then_some(route),
        accept: AcceptList::parse("[[WSS]],[[PROXY]]").unwrap(),
        pts: PtFilter::parse(
            "[G722/8000],[PCMU/8000],[PCMA/8000],[telephone-event/8000],[VP8/90000]",
        )
        .unwrap(),
        advertise: "127.0.0.1".parse().unwrap(),
        limits: Default::default(),
    }
}

/// The browsers' address in these tests.
const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn conn(n: u8) -> ConnName {
    ConnName(format!("c{n}.invalid"))
}

fn ws(n: u8) -> Peer {
    Peer::Ws(conn(n))
}

fn udp() -> Peer {
    Peer::Udp(pbx())
}

fn out(core: &mut Core) -> Vec<(Peer, SipMsg)> {
    std::iter::from_fn(|| core.poll_transmit())
        .map(|t| (t.to, SipMsg::parse(&t.bytes).unwrap()))
        .collect()
}

fn webrtc_local() -> LocalLeg {
    LocalLeg::WebRtc {
        addr: "127.0.0.1:32000".parse().unwrap(),
        ice_ufrag: "lite".into(),
        ice_pwd: "0123456789abcdefghijklmn".into(),
        fingerprint: "sha-256 AA:BB".into(),
        setup: Setup::Passive,
    }
}

fn plain_local() -> LocalLeg {
    LocalLeg::Plain {
        rtp: "127.0.0.1:32002".parse().unwrap(),
        video_rtp: None,
    }
}

/// Answers the pending Allocate the way the engine would.
fn allocate(core: &mut Core, now: Instant) -> SessionId {
    let cmd = core.poll_command().expect("an Allocate");
    let Command::Allocate { id, legs, .. } = cmd else {
        panic!("{cmd:?}")
    };
    let local = legs.map(|l| match l {
        LegSpec::WebRtc(_) => webrtc_local(),
        LegSpec::Plain(_) => plain_local(),
        LegSpec::Echo => LocalLeg::Echo,
    });
    core.handle_engine(now, Output::Reply(Reply::Allocated { id, legs: local }));
    id
}

fn with_sdp(mut m: SipMsg, sdp: &str) -> SipMsg {
    m.set_header("Content-Type", "application/sdp");
    m.body = sdp.as_bytes().to_vec();
    m
}

/// Browser INVITE through to a confirmed call; returns the INVITE sent to the PBX.
fn browser_call_answered(core: &mut Core, now: Instant) -> (SessionId, SipMsg, SipMsg) {
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), INVITE);
    let o = out(core);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].1.status(), Some(100));
    let id = allocate(core, now);
    let o = out(core);
    assert_eq!(o.len(), 1, "{o:?}");
    let (to, inv) = &o[0];
    assert_eq!(*to, udp());
    assert_eq!(inv.method(), Some(&Method::Invite));
    let sdp = String::from_utf8(inv.body.clone()).unwrap();
    assert!(sdp.contains("m=audio 32002 RTP/AVP"), "{sdp}");
    assert!(!sdp.contains("ice-ufrag"));
    let mut ringing = inv.response(180, "Ringing", Some("far"));
    ringing.push_header("Record-Route", "<sip:127.0.0.1:5090;lr>");
    core.handle_message(now, udp(), &ringing.to_bytes());
    let o = out(core);
    assert_eq!(o[0].0, ws(1));
    assert_eq!(o[0].1.status(), Some(180));
    let mut ok = with_sdp(inv.response(200, "OK", Some("far")), SIP_SDP);
    ok.push_header("Contact", "<sip:callee@127.0.0.1:5092>");
    ok.push_header("Record-Route", "<sip:127.0.0.1:5090;lr>");
    core.handle_message(now, udp(), &ok.to_bytes());
    let o = out(core);
    let ack = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Ack))
        .expect("ACK to the PBX");
    assert_eq!(ack.1.header("Route"), Some("<sip:127.0.0.1:5090;lr>"));
    let ok_a = o
        .iter()
        .find(|(p, m)| *p == ws(1) && m.status() == Some(200))
        .expect("200 to the browser")
        .1
        .clone();
    let body = String::from_utf8(ok_a.body.clone()).unwrap();
    assert!(
        body.contains("UDP/TLS/RTP/SAVPF 0 126") || body.contains("UDP/TLS/RTP/SAVPF 0"),
        "{body}"
    );
    assert!(
        body.contains("a=ice-lite") && body.contains("a=mid:0") && body.contains("a=setup:passive"),
        "{body}"
    );
    let cmd = core
        .poll_command()
        .expect("an Update with the far end's address");
    assert!(
        matches!(cmd, Command::Update { leg: LegIndex::B, remote: LegSpec::Plain(Some(ref p)), .. } if p.rtp == Some("127.0.0.1:6000".parse().unwrap())),
        "{cmd:?}"
    );
    (id, inv.clone(), ok_a)
}

fn browser_request(ok_a: &SipMsg, method: &str, cseq: u32, branch: &str) -> Vec<u8> {
    let inv = SipMsg::parse(INVITE).unwrap();
    format!(
        "{method} sip:gw@127.0.0.1;transport=ws SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch={branch}\r\n\
         Max-Forwards: 70\r\nTo: {}\r\nFrom: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        ok_a.header("To").unwrap(),
        inv.header("From").unwrap(),
        inv.call_id()
    )
    .into_bytes()
}

#[test]
fn browser_calls_sip_and_hangs_up_first() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (id, _inv, ok_a) = browser_call_answered(&mut core, now);
    assert_eq!(core.call_count(), 1);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    core.handle_message(now, ws(1), &browser_request(&ok_a, "BYE", 2, "z9hG4bKbye1"));
    let o = out(&mut core);
    assert!(
        o.iter()
            .any(|(p, m)| *p == ws(1) && m.status() == Some(200)),
        "200 for BYE"
    );
    let bye = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Bye))
        .expect("BYE to the PBX")
        .1
        .clone();
    assert_eq!(bye.header("Route"), Some("<sip:127.0.0.1:5090;lr>"));
    assert!(bye.header("To").unwrap().contains("tag=far"));
    assert!(bye
        .to_bytes()
        .starts_with(b"BYE sip:callee@127.0.0.1:5092 SIP/2.0"));
    assert_eq!(core.poll_command(), Some(Command::Release { id }));
    assert_eq!(core.call_count(), 0);
}

#[test]
fn sip_side_hangs_up_first() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (id, inv, ok_a) = browser_call_answered(&mut core, now);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    let bye = format!(
        "BYE sip:gw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKfarbye\r\nMax-Forwards: 69\r\n\
         From: {};tag=far\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n",
        inv.header("To").unwrap(),
        inv.header("From").unwrap(),
        inv.call_id()
    );
    core.handle_message(now, udp(), bye.as_bytes());
    let o = out(&mut core);
    assert!(o
        .iter()
        .any(|(p, m)| *p == udp() && m.status() == Some(200)));
    let b = o
        .iter()
        .find(|(p, m)| *p == ws(1) && m.method() == Some(&Method::Bye))
        .expect("BYE to the browser")
        .1
        .clone();
    let sipjs_contact = SipMsg::parse(INVITE).unwrap();
    assert!(b.to_bytes().starts_with(b"BYE sip:"), "{b:?}");
    assert!(
        String::from_utf8_lossy(&b.to_bytes()).contains("@c1.invalid"),
        "the browser's rewritten Contact is the target"
    );
    assert!(b
        .header("To")
        .unwrap()
        .contains(sipjs_contact.from_hdr().unwrap().tag().unwrap()));
    assert_eq!(core.poll_command(), Some(Command::Release { id }));
}

#[test]
fn websocket_closed_mid_call_sends_bye_with_reason() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (id, _, _) = browser_call_answered(&mut core, now);
    core.handle_ws_closed(now, &conn(1));
    let o = out(&mut core);
    let bye = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Bye))
        .expect("BYE to the PBX");
    assert!(bye.1.header("Reason").unwrap().contains("WebSocket closed"));
    assert_eq!(core.poll_command(), Some(Command::Release { id }));
}

#[test]
fn browser_cancels_before_answer_and_cancel_waits_for_a_provisional() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), INVITE);
    let _ = out(&mut core);
    allocate(&mut core, now);
    let inv = out(&mut core).remove(0).1;
    let cancel = String::from_utf8_lossy(INVITE)
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace(
            &format!(
                "Content-Length: {}",
                SipMsg::parse(INVITE).unwrap().body.len()
            ),
            "Content-Length: 0",
        )
        + "\r\n\r\n";
    core.handle_message(now, ws(1), cancel.as_bytes());
    let o = out(&mut core);
    let codes: Vec<_> = o
        .iter()
        .filter(|(p, _)| *p == ws(1))
        .map(|(_, m)| (m.status(), m.cseq().method))
        .collect();
    assert_eq!(
        codes,
        vec![(Some(200), Method::Cancel), (Some(487), Method::Invite)],
        "200 for the CANCEL first: {o:?}"
    );
    assert!(
        !o.iter().any(|(_, m)| m.method() == Some(&Method::Cancel)),
        "no CANCEL before a provisional"
    );
    core.handle_message(
        now,
        udp(),
        &inv.response(180, "Ringing", Some("far")).to_bytes(),
    );
    let o = out(&mut core);
    let c = o
        .iter()
        .find(|(_, m)| m.method() == Some(&Method::Cancel))
        .expect("CANCEL after 180");
    assert_eq!(
        c.1.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    core.handle_message(
        now,
        udp(),
        &inv.response(487, "Request Terminated", Some("far"))
            .to_bytes(),
    );
    let o = out(&mut core);
    assert!(
        o.iter()
            .any(|(p, m)| *p == udp() && m.method() == Some(&Method::Ack)),
        "487 is ACKed"
    );
    assert!(matches!(core.poll_command(), Some(Command::Release { .. })));
}

#[test]
fn challenge_407_passes_through_and_the_retry_carries_credentials() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), INVITE);
    let _ = out(&mut core);
    allocate(&mut core, now);
    let inv = out(&mut core).remove(0).1;
    let mut challenge = inv.response(407, "Proxy Authentication Required", Some("k"));
    challenge.push_header(
        "Proxy-Authenticate",
        "Digest realm=\"webrtc-phone-test\", nonce=\"abc\", qop=\"auth\"",
    );
    core.handle_message(now, udp(), &challenge.to_bytes());
    let o = out(&mut core);
    assert!(
        o.iter()
            .any(|(p, m)| *p == udp() && m.method() == Some(&Method::Ack)),
        "407 ACKed hop by hop"
    );
    let r = o.iter().find(|(p, _)| *p == ws(1)).unwrap();
    assert_eq!(r.1.status(), Some(407));
    assert_eq!(
        r.1.header("Proxy-Authenticate"),
        challenge.header("Proxy-Authenticate")
    );
    assert_eq!(core.call_count(), 0);
    // The browser's retry with Proxy-Authorization: a new call whose INVITE carries it verbatim.
    core.handle_message(now + Duration::from_millis(100), ws(1), INVITE_AUTH);
    let _ = out(&mut core);
    assert!(matches!(core.poll_command(), Some(Command::Release { .. })));
    allocate(&mut core, now);
    let retry = out(&mut core).remove(0).1;
    let original = SipMsg::parse(INVITE_AUTH).unwrap();
    assert_eq!(
        retry.header("Proxy-Authorization"),
        original.header("Proxy-Authorization")
    );
    assert!(
        retry.to_bytes().starts_with(
            format!(
                "INVITE {} SIP/2.0",
                match &original.start {
                    crate::sip::msg::StartLine::Request { uri, .. } => uri.clone(),
                    _ => unreachable!(),
                }
            )
            .as_bytes()
        ),
        "the Request-URI the browser signed"
    );
}

#[test]
fn busy_and_engine_exhaustion_are_propagated() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), INVITE);
    let _ = out(&mut core);
    allocate(&mut core, now);
    let inv = out(&mut core).remove(0).1;
    core.handle_message(
        now,
        udp(),
        &inv.response(486, "Busy Here", Some("b")).to_bytes(),
    );
    let o = out(&mut core);
    assert_eq!(
        o.iter().find(|(p, _)| *p == ws(1)).unwrap().1.status(),
        Some(486)
    );

    let other = String::from_utf8_lossy(INVITE)
        .replace("Call-ID: ", "Call-ID: x")
        .replace("branch=z9hG4bK", "branch=z9hG4bKy");
    core.handle_message(now, ws(1), other.as_bytes());
    let _ = out(&mut core);
    let _ = core.poll_command();
    let Some(Command::Allocate { id, .. }) = core.poll_command() else {
        panic!("Allocate")
    };
    core.handle_engine(
        now,
        Output::Reply(Reply::Failed {
            id,
            failure: engine::api::Failure::PortsExhausted,
        }),
    );
    let o = out(&mut core);
    assert_eq!(o[0].1.status(), Some(503));
}

#[test]
fn sip_calls_a_registered_browser() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(2), LOCAL);
    let invite = format!(
        "INVITE sip:abc@c2.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKin1\r\n\
         Record-Route: <sip:127.0.0.1:5090;lr>\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 69\r\n\
         From: <sip:carol@127.0.0.1>;tag=car\r\nTo: <sip:abc@c2.invalid>\r\nCall-ID: in1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:carol@127.0.0.1:5098>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SIP_SDP}",
        SIP_SDP.len()
    );
    core.handle_message(now, udp(), invite.as_bytes());
    assert_eq!(out(&mut core)[0].1.status(), Some(100));
    allocate(&mut core, now);
    let o = out(&mut core);
    let (to, offer) = &o[0];
    assert_eq!(*to, ws(2));
    assert!(offer
        .to_bytes()
        .starts_with(b"INVITE sip:abc@c2.invalid;transport=ws SIP/2.0"));
    let body = String::from_utf8(offer.body.clone()).unwrap();
    assert!(
        body.contains("a=setup:actpass")
            && body.contains("UDP/TLS/RTP/SAVPF")
            && body.contains("a=group:BUNDLE 0"),
        "{body}"
    );
    // SIP.js answers with its 200 and SDP.
    let answer = SipMsg::parse(ANSWER_FROM_BROWSER).unwrap();
    let mut ok = with_sdp(
        offer.response(200, "OK", Some("sipjs")),
        std::str::from_utf8(&answer.body).unwrap(),
    );
    ok.push_header("Contact", "<sip:abc@x.invalid;transport=ws>");
    core.handle_message(now, ws(2), &ok.to_bytes());
    let o = out(&mut core);
    assert!(o
        .iter()
        .any(|(p, m)| *p == ws(2) && m.method() == Some(&Method::Ack)));
    let ok_sip = o
        .iter()
        .find(|(p, m)| *p == udp() && m.status() == Some(200))
        .expect("200 to the registrar")
        .1
        .clone();
    let sdp = String::from_utf8(ok_sip.body.clone()).unwrap();
    assert!(sdp.contains("m=audio 32002 RTP/AVP 0"), "{sdp}");
    assert_eq!(
        ok_sip.header("Record-Route"),
        Some("<sip:127.0.0.1:5090;lr>")
    );
    assert!(matches!(
        core.poll_command(),
        Some(Command::Update {
            leg: LegIndex::B,
            remote: LegSpec::WebRtc(Some(_)),
            ..
        })
    ));
}

#[test]
fn invite_for_a_closed_connection_gets_480_and_strangers_get_403() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let invite = format!(
        "INVITE sip:abc@gone.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKin2\r\n\
         From: <sip:carol@127.0.0.1>;tag=car\r\nTo: <sip:abc@gone.invalid>\r\nCall-ID: in2\r\nCSeq: 1 INVITE\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SIP_SDP}",
        SIP_SDP.len()
    );
    core.handle_message(now, udp(), invite.as_bytes());
    assert_eq!(out(&mut core).last().unwrap().1.status(), Some(480));
    core.handle_message(
        now,
        Peer::Udp("127.0.0.9:5060".parse().unwrap()),
        invite.replace("in2", "in3").as_bytes(),
    );
    assert_eq!(out(&mut core)[0].1.status(), Some(403));
}

#[test]
fn demo_echo_answers_at_once() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(true));
    core.handle_ws_opened(&conn(1), LOCAL);
    let echo = String::from_utf8_lossy(INVITE).replace("INVITE sip:bob@", "INVITE sip:echo@");
    core.handle_message(now, ws(1), echo.as_bytes());
    let _ = out(&mut core);
    let Some(Command::Allocate { legs, .. }) = core.poll_command() else {
        panic!()
    };
    assert_eq!(legs[1], LegSpec::Echo);
    // replay through the helper to answer
    let mut core = Core::new(cfg(true));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), echo.as_bytes());
    let _ = out(&mut core);
    allocate(&mut core, now);
    let o = out(&mut core);
    assert_eq!(o[0].1.status(), Some(200));
    let body = String::from_utf8(o[0].1.body.clone()).unwrap();
    assert!(body.contains("a=ice-lite"), "{body}");
    let ev: Vec<_> = std::iter::from_fn(|| core.poll_event()).collect();
    assert!(ev
        .iter()
        .any(|e| matches!(e, CoreEvent::CallAnswered { .. })));
}

#[test]
fn media_timeout_hangs_up_both_sides() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (id, _, ok_a) = browser_call_answered(&mut core, now);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    core.handle_engine(now, Output::Event(engine::api::Event::MediaTimeout { id }));
    let o = out(&mut core);
    let byes: Vec<_> = o
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Bye))
        .collect();
    assert_eq!(byes.len(), 2, "{o:?}");
    assert!(byes
        .iter()
        .all(|(_, m)| m.header("Reason").unwrap().contains("media timeout")));
}

#[test]
fn info_is_relayed_and_answered() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (_, _, ok_a) = browser_call_answered(&mut core, now);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    let mut info = SipMsg::parse(&browser_request(&ok_a, "INFO", 3, "z9hG4bKinfo")).unwrap();
    info.set_header("Content-Type", "application/dtmf-relay");
    info.body = b"Signal=5\r\nDuration=2000".to_vec();
    core.handle_message(now, ws(1), &info.to_bytes());
    let o = out(&mut core);
    let fwd = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Info))
        .expect("INFO to the PBX")
        .1
        .clone();
    assert_eq!(fwd.body, b"Signal=5\r\nDuration=2000");
    core.handle_message(now, udp(), &fwd.response(200, "OK", None).to_bytes());
    let o = out(&mut core);
    let r = o
        .iter()
        .find(|(p, _)| *p == ws(1))
        .expect("answer to the browser")
        .1
        .clone();
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.cseq().method, Method::Info);
}

fn cfg_route(route: &str) -> CoreConfig {
    let mut c = cfg(false);
    let mut r = StaticRoute::parse(route).unwrap();
    r.resolve(crate::b2bua::route::literal_host).unwrap();
    c.route = Some(r);
    c
}

/// Runs the core's timers up to `until`.
fn run_until(core: &mut Core, until: Instant) {
    while let Some(at) = core.poll_timeout() {
        if at > until {
            break;
        }
        core.handle_timeout(at);
    }
}

/// The browser ACKs the 200 it got.
fn ack_from_browser(core: &mut Core, now: Instant) {
    let o = out(core);
    let ok_a = o
        .iter()
        .find(|(p, m)| *p == ws(1) && m.status() == Some(200))
        .expect("200 to the browser")
        .1
        .clone();
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKackt"));
}

/// Browser INVITE up to the INVITE sent to the PBX.
fn invite_out(core: &mut Core, now: Instant) -> SipMsg {
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), INVITE);
    let _ = out(core);
    allocate(core, now);
    out(core).remove(0).1
}

#[test]
fn session_timer_refreshed_by_the_gateway() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let inv = invite_out(&mut core, now);
    assert_eq!(inv.header("Session-Expires"), Some("1800"));
    assert_eq!(inv.header("Supported"), Some("timer"));
    let mut ok = with_sdp(inv.response(200, "OK", Some("far")), SIP_SDP);
    ok.push_header("Session-Expires", "120;refresher=uac");
    ok.push_header("Contact", "<sip:callee@127.0.0.1:5092>");
    core.handle_message(now, udp(), &ok.to_bytes());
    ack_from_browser(&mut core, now);
    run_until(&mut core, now + Duration::from_secs(59));
    assert!(!out(&mut core)
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Update)));
    run_until(&mut core, now + Duration::from_secs(60));
    let o = out(&mut core);
    let upd = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Update))
        .expect("UPDATE at half the interval")
        .1
        .clone();
    assert!(upd.header("Session-Expires").unwrap().starts_with("120"));
    let mut ok = upd.response(200, "OK", None);
    ok.push_header("Session-Expires", "120;refresher=uac");
    core.handle_message(now + Duration::from_secs(60), udp(), &ok.to_bytes());
    run_until(&mut core, now + Duration::from_secs(119));
    let o = out(&mut core);
    assert!(
        !o.iter().any(|(_, m)| m.method() == Some(&Method::Bye)),
        "the call survives its refreshes"
    );
    assert_eq!(core.call_count(), 1);
}

#[test]
fn session_expires_without_the_far_ends_refresh() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let inv = invite_out(&mut core, now);
    let mut ok = with_sdp(inv.response(200, "OK", Some("far")), SIP_SDP);
    ok.push_header("Session-Expires", "120;refresher=uas");
    ok.push_header("Contact", "<sip:callee@127.0.0.1:5092>");
    core.handle_message(now, udp(), &ok.to_bytes());
    ack_from_browser(&mut core, now);
    run_until(&mut core, now + Duration::from_secs(87));
    assert_eq!(core.call_count(), 1);
    run_until(&mut core, now + Duration::from_secs(88));
    let o = out(&mut core);
    let byes: Vec<_> = o
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Bye))
        .collect();
    assert_eq!(byes.len(), 2, "{o:?}");
    assert!(byes[0]
        .1
        .header("Reason")
        .unwrap()
        .contains("session timer"));
}

#[test]
fn interval_too_small_422_is_retried_with_min_se() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let inv = invite_out(&mut core, now);
    let mut r = inv.response(422, "Session Interval Too Small", Some("far"));
    r.push_header("Min-SE", "3600");
    core.handle_message(now, udp(), &r.to_bytes());
    let o = out(&mut core);
    let retry = o
        .iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .expect("a new INVITE")
        .1
        .clone();
    assert_eq!(retry.header("Session-Expires"), Some("3600"));
    assert_eq!(retry.cseq().seq, inv.cseq().seq + 1);
    assert!(
        !o.iter().any(|(p, _)| *p == ws(1)),
        "the browser sees nothing of it"
    );
}

#[test]
fn credit_time_ends_the_call() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg_route("127.0.0.1:5090;credit-time=5"));
    let inv = invite_out(&mut core, now);
    let mut ok = with_sdp(inv.response(200, "OK", Some("far")), SIP_SDP);
    ok.push_header("Contact", "<sip:callee@127.0.0.1:5092>");
    core.handle_message(now, udp(), &ok.to_bytes());
    let _ = out(&mut core);
    run_until(&mut core, now + Duration::from_secs(5));
    let o = out(&mut core);
    assert_eq!(
        o.iter()
            .filter(|(_, m)| m.method() == Some(&Method::Bye))
            .count(),
        2
    );
}

#[test]
fn no_reply_timer_gives_up() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg_route("127.0.0.1:5090;nr_expires=2;expires=20"));
    let inv = invite_out(&mut core, now);
    run_until(&mut core, now + Duration::from_millis(1900));
    assert!(!out(&mut core)
        .iter()
        .any(|(p, m)| *p == ws(1) && m.status().is_some_and(|s| s >= 300)));
    run_until(&mut core, now + Duration::from_secs(2));
    let o = out(&mut core);
    let r = o
        .iter()
        .find(|(p, _)| *p == ws(1))
        .expect("a final response to the browser");
    assert_eq!(r.1.status(), Some(480));
    let _ = inv;
    assert_eq!(core.call_count(), 0);
}

#[test]
fn browser_hold_re_invite_is_relayed_with_translated_sdp() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (id, _, ok_a) = browser_call_answered(&mut core, now);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    let offer = String::from_utf8(SipMsg::parse(INVITE).unwrap().body)
        .unwrap()
        .replace("a=sendrecv", "a=sendonly");
    let reinv = with_sdp(
        SipMsg::parse(&browser_request(&ok_a, "INVITE", 2, "z9hG4bKre1")).unwrap(),
        &offer,
    );
    core.handle_message(now, ws(1), &reinv.to_bytes());
    let o = out(&mut core);
    let fwd = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Invite))
        .unwrap_or_else(|| panic!("{o:?}"))
        .1
        .clone();
    let sdp = String::from_utf8(fwd.body.clone()).unwrap();
    assert!(
        sdp.contains("a=sendonly") && sdp.contains("RTP/AVP"),
        "{sdp}"
    );
    assert!(
        matches!(core.poll_command(), Some(Command::Update { id: i, leg: LegIndex::A, .. }) if i == id)
    );
    let ok = with_sdp(
        fwd.response(200, "OK", None),
        &SIP_SDP.replace("t=0 0", "t=0 0\r\na=recvonly"),
    );
    core.handle_message(now, udp(), &ok.to_bytes());
    let o = out(&mut core);
    let back = o
        .iter()
        .find(|(p, m)| *p == ws(1) && m.status() == Some(200))
        .expect("200 to the browser")
        .1
        .clone();
    assert!(String::from_utf8_lossy(&back.body).contains("a=recvonly"));
    assert!(
        o.iter()
            .any(|(p, m)| *p == udp() && m.method() == Some(&Method::Ack)),
        "the far end's 200 is ACKed"
    );
}

#[test]
fn route_credentials_answer_the_challenge_themselves() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg_route("127.0.0.1:5090;auth=alice:alicePassword"));
    let inv = invite_out(&mut core, now);
    let mut challenge = inv.response(407, "Proxy Authentication Required", Some("k"));
    challenge.push_header(
        "Proxy-Authenticate",
        "Digest realm=\"r\", nonce=\"abc\", qop=\"auth\", algorithm=MD5",
    );
    core.handle_message(now, udp(), &challenge.to_bytes());
    let o = out(&mut core);
    assert!(
        !o.iter().any(|(p, _)| *p == ws(1)),
        "the browser sees nothing: {o:?}"
    );
    let retry = o
        .iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .expect("INVITE again")
        .1
        .clone();
    let a = retry.header("Proxy-Authorization").unwrap();
    assert!(
        a.contains("username=\"alice\"") && a.contains("realm=\"r\"") && a.contains("response=\""),
        "{a}"
    );
    assert_eq!(retry.cseq().seq, inv.cseq().seq + 1);
    assert!(
        o.iter().any(|(_, m)| m.method() == Some(&Method::Ack)),
        "the 407 is ACKed"
    );
}

#[test]
fn route_nopass_fails_a_challenged_call() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg_route("127.0.0.1:5090;auth=nopass"));
    let inv = invite_out(&mut core, now);
    let mut challenge = inv.response(401, "Unauthorized", Some("k"));
    challenge.push_header("WWW-Authenticate", "Digest realm=\"r\", nonce=\"abc\"");
    core.handle_message(now, udp(), &challenge.to_bytes());
    let o = out(&mut core);
    assert_eq!(
        o.iter().find(|(p, _)| *p == ws(1)).unwrap().1.status(),
        Some(403)
    );
}

#[test]
fn route_outbound_proxy_op_receives_the_invite() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg_route(
        "127.0.0.1:5090;op=127.0.0.1:5999;cli=4711;cnam=Front%20Desk",
    ));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), INVITE);
    let _ = out(&mut core);
    allocate(&mut core, now);
    let o = out(&mut core);
    assert_eq!(o[0].0, Peer::Udp("127.0.0.1:5999".parse().unwrap()));
    let from = o[0].1.header("From").unwrap();
    assert!(
        from.contains("sip:4711@") && from.contains("\"Front Desk\""),
        "{from}"
    );
}

#[test]
fn demo_echo_answers_hold_itself_with_the_direction_mirrored() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(true));
    core.handle_ws_opened(&conn(1), LOCAL);
    let echo = String::from_utf8_lossy(INVITE).replace("INVITE sip:bob@", "INVITE sip:echo@");
    core.handle_message(now, ws(1), echo.as_bytes());
    let _ = out(&mut core);
    allocate(&mut core, now);
    let ok_a = out(&mut core)
        .into_iter()
        .find(|(_, m)| m.status() == Some(200))
        .unwrap()
        .1;
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKa1"));
    let offer = String::from_utf8(SipMsg::parse(INVITE).unwrap().body)
        .unwrap()
        .replace("a=sendrecv", "a=sendonly");
    let reinv = with_sdp(
        SipMsg::parse(&browser_request(&ok_a, "INVITE", 2, "z9hG4bKr1")).unwrap(),
        &offer,
    );
    core.handle_message(now, ws(1), &reinv.to_bytes());
    let o = out(&mut core);
    let r = o
        .iter()
        .find(|(_, m)| m.status().is_some())
        .unwrap()
        .1
        .clone();
    assert_eq!(r.status(), Some(200), "{o:?}");
    let body = String::from_utf8(r.body).unwrap();
    assert!(
        body.contains("a=recvonly") && body.contains("a=setup:passive"),
        "{body}"
    );
    assert!(matches!(
        core.poll_command(),
        Some(Command::Update {
            leg: LegIndex::A,
            ..
        })
    ));
}

#[test]
fn wss_ua_route_goes_down_the_named_websocket() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg_route("wss-ua"));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_ws_opened(&conn(2), LOCAL);
    let inv = String::from_utf8_lossy(INVITE).replace(
        "INVITE sip:bob@127.0.0.1",
        "INVITE sip:tok@c2.invalid;transport=ws",
    );
    core.handle_message(now, ws(1), inv.as_bytes());
    let _ = out(&mut core);
    allocate(&mut core, now);
    let o = out(&mut core);
    assert_eq!(o[0].0, ws(2), "{o:?}");
    assert!(o[0]
        .1
        .to_bytes()
        .starts_with(b"INVITE sip:tok@c2.invalid;transport=ws SIP/2.0"));
    let gone = String::from_utf8_lossy(INVITE)
        .replace("INVITE sip:bob@127.0.0.1", "INVITE sip:tok@c9.invalid")
        .replace("Call-ID: ", "Call-ID: z")
        .replace("branch=z9hG4bK", "branch=z9hG4bKz");
    core.handle_message(now, ws(1), gone.as_bytes());
    let o = out(&mut core);
    assert_eq!(o.last().unwrap().1.status(), Some(480));
}

#[test]
fn a_route_without_a_proxy_is_not_the_demo_pbx() {
    let now = VirtualClock::new().now();
    let mut c = cfg(false);
    c.proxy = None;
    let mut core = Core::new(c);
    core.handle_ws_opened(&conn(1), LOCAL);
    let echo = String::from_utf8_lossy(INVITE).replace("INVITE sip:bob@", "INVITE sip:echo@");
    core.handle_message(now, ws(1), echo.as_bytes());
    let _ = out(&mut core);
    let Some(Command::Allocate { legs, .. }) = core.poll_command() else {
        panic!("Allocate")
    };
    assert!(
        matches!(legs[1], LegSpec::Plain(None)),
        "echo goes to the route, not the demo echo: {legs:?}"
    );
    // REGISTER has nowhere to go without OUTBOUND_PROXY.
    core.handle_message(
        now,
        ws(1),
        include_bytes!("../../tests/fixtures/sipjs/register.txt"),
    );
    assert_eq!(out(&mut core).last().unwrap().1.status(), Some(501));
}

/// The SIP.js INVITE with a bundled VP8 video section added (as Demo 2 offers).
fn av_invite() -> Vec<u8> {
    let text = String::from_utf8(INVITE.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = body.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
        + "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n\
           a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n\
           a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n";
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_string()
            }
        })
        .collect();
    let msg = format!("{}\r\n\r\n{body}", head.join("\r\n"));
    SipMsg::parse(msg.as_bytes()).expect("the INVITE parses");
    msg.into_bytes()
}

#[test]
fn browser_video_call_gets_a_video_pair_and_one_line_at_the_end() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), &av_invite());
    assert_eq!(out(&mut core)[0].1.status(), Some(100));
    let Some(Command::Allocate { id, legs, video }) = core.poll_command() else {
        panic!("an Allocate")
    };
    assert!(video, "a video section asks for a video pair");
    assert!(matches!(legs[1], LegSpec::Plain(None)));
    let video_rtp: SocketAddr = "127.0.0.1:32004".parse().unwrap();
    core.handle_engine(
        now,
        Output::Reply(Reply::Allocated {
            id,
            legs: [
                webrtc_local(),
                LocalLeg::Plain {
                    rtp: "127.0.0.1:32002".parse().unwrap(),
                    video_rtp: Some(video_rtp),
                },
            ],
        }),
    );
    let o = out(&mut core);
    let inv = &o[0].1;
    let sdp = String::from_utf8(inv.body.clone()).unwrap();
    assert!(
        sdp.contains("m=audio 32002 RTP/AVP") && sdp.contains("m=video 32004 RTP/AVP 96 97"),
        "{sdp}"
    );
    let far = format!("{SIP_SDP}m=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n");
    let mut ok = with_sdp(inv.response(200, "OK", Some("far")), &far);
    ok.push_header("Contact", "<sip:callee@127.0.0.1:5092>");
    core.handle_message(now, udp(), &ok.to_bytes());
    let o = out(&mut core);
    let ok_a = &o
        .iter()
        .find(|(p, m)| *p == ws(1) && m.status() == Some(200))
        .expect("200 to the browser")
        .1;
    let body = String::from_utf8(ok_a.body.clone()).unwrap();
    assert!(
        body.contains("a=group:BUNDLE 0 1")
            && body.contains("m=video 32000 UDP/TLS/RTP/SAVPF 96\r\n"),
        "{body}"
    );
    let Some(Command::Update {
        remote: LegSpec::Plain(Some(p)),
        ..
    }) = core.poll_command()
    else {
        panic!("an Update")
    };
    assert_eq!(
        p.video.as_ref().and_then(|v| v.rtp),
        Some("127.0.0.1:6002".parse().unwrap())
    );
    let ok_a = ok_a.clone();
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    core.handle_message(
        now + Duration::from_secs(3),
        ws(1),
        &browser_request(&ok_a, "BYE", 2, "z9hG4bKbye1"),
    );
    let _ = out(&mut core);
    assert_eq!(core.poll_command(), Some(Command::Release { id }));
    // The call's one line waits for the engine's figures.
    let ended = |core: &mut Core| {
        std::iter::from_fn(|| core.poll_event())
            .filter_map(|e| match e {
                CoreEvent::CallEnded(r) => Some(r),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(ended(&mut core).is_empty());
    let mut stats = engine::api::SessionStats::default();
    stats.legs[0].packets_in = 150;
    stats.legs[1].lost = 2;
    core.handle_engine(
        now,
        Output::Event(engine::api::Event::Released { id, stats }),
    );
    let r = ended(&mut core);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].media, Some(stats));
    assert_eq!(r[0].by, super::types::HungUpBy::Caller);
    assert_eq!(r[0].duration, Duration::from_secs(3));
}

#[test]
fn a_call_the_engine_cannot_release_still_gets_its_line() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (id, _inv, ok_a) = browser_call_answered(&mut core, now);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "BYE", 2, "z9hG4bKbye1"));
    assert_eq!(core.poll_command(), Some(Command::Release { id }));
    core.handle_engine(
        now,
        Output::Reply(Reply::Failed {
            id,
            failure: engine::api::Failure::UnknownSession,
        }),
    );
    let r: Vec<_> = std::iter::from_fn(|| core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::CallEnded(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].media, None);
}

#[test]
fn a_session_the_engine_drops_ends_its_call_on_both_sides() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (id, _inv, ok_a) = browser_call_answered(&mut core, now);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    let _ = out(&mut core);
    while core.poll_event().is_some() {}
    let stats = engine::api::SessionStats::default();
    core.handle_engine(
        now,
        Output::Event(engine::api::Event::Released { id, stats }),
    );
    let o = out(&mut core);
    for peer in [ws(1), udp()] {
        let bye = o
            .iter()
            .find(|(p, m)| *p == peer && m.method() == Some(&Method::Bye))
            .unwrap_or_else(|| panic!("BYE to {peer:?}: {o:?}"));
        assert!(
            bye.1
                .header("Reason")
                .is_some_and(|r| r.contains("media session failed")),
            "{:?}",
            bye.1
        );
    }
    assert_eq!(core.call_count(), 0);
    // Nothing left to release: the engine already has.
    assert_eq!(core.poll_command(), None);
    let r: Vec<_> = std::iter::from_fn(|| core.poll_event())
        .filter_map(|e| match e {
            CoreEvent::CallEnded(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].media, Some(stats));
    assert_eq!(r[0].by, super::types::HungUpBy::Gateway);
}

/// A BYE from the SIP side on leg B, as the far end would send it (tags swapped), from `via`.
fn far_end_bye(inv: &SipMsg, from_tag: &str, via: &str) -> Vec<u8> {
    format!(
        "BYE sip:gw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKfbye{from_tag}\r\n\
         Max-Forwards: 70\r\nFrom: {};tag={from_tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n",
        inv.header("To").unwrap(),
        inv.header("From").unwrap(),
        inv.call_id()
    )
    .into_bytes()
}

#[test]
fn a_bye_from_off_the_path_is_ignored_and_a_wrong_tag_gets_481() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (_id, inv, _ok_a) = browser_call_answered(&mut core, now);
    let attacker = Peer::Udp("127.0.0.66:5090".parse().unwrap());
    core.handle_message(now, attacker, &far_end_bye(&inv, "far", "127.0.0.66:5090"));
    assert!(
        out(&mut core).is_empty(),
        "no answer, no BYE to the browser"
    );
    assert_eq!(core.call_count(), 1);
    let ev: Vec<_> = std::iter::from_fn(|| core.poll_event()).collect();
    assert!(ev.contains(&CoreEvent::Shed {
        reason: super::types::ShedReason::NotAPeer
    }));
    // From the peer but with another From-tag: not this dialog.
    core.handle_message(now, udp(), &far_end_bye(&inv, "other", "127.0.0.1:5090"));
    let o = out(&mut core);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].1.status(), Some(481));
    assert_eq!(core.call_count(), 1);
    // The real far end ends it.
    core.handle_message(now, udp(), &far_end_bye(&inv, "far", "127.0.0.1:5090"));
    let o = out(&mut core);
    assert!(o
        .iter()
        .any(|(p, m)| *p == udp() && m.status() == Some(200)));
    assert!(o
        .iter()
        .any(|(p, m)| *p == ws(1) && m.method() == Some(&Method::Bye)));
    assert_eq!(core.call_count(), 0);
}

#[test]
fn calls_beyond_the_per_connection_cap_get_486() {
    let now = VirtualClock::new().now();
    let mut c = cfg(false);
    c.limits.max_calls_per_ws = 1;
    let mut core = Core::new(c);
    browser_call_answered(&mut core, now);
    let second = String::from_utf8_lossy(INVITE)
        .replace("Call-ID: ", "Call-ID: second")
        .replace("branch=z9hG4bK", "branch=z9hG4bKsecond");
    core.handle_message(now, ws(1), second.as_bytes());
    let o = out(&mut core);
    assert_eq!(o.last().unwrap().1.status(), Some(486), "{o:?}");
    assert!(core.poll_command().is_none(), "no media allocated");
    let ev: Vec<_> = std::iter::from_fn(|| core.poll_event()).collect();
    assert!(ev.contains(&CoreEvent::CallRefused {
        reason: super::types::RefusalReason::PerConnection
    }));
    // Another connection from another address still may call.
    core.handle_ws_opened(&conn(2), "127.0.0.2".parse().unwrap());
    let third = second.replace("z9hG4bKsecond", "z9hG4bKthird");
    core.handle_message(now, ws(2), third.as_bytes());
    assert_eq!(out(&mut core)[0].1.status(), Some(100));
}

#[test]
fn an_unanswered_call_ends_at_the_no_answer_timeout() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), INVITE);
    out(&mut core);
    allocate(&mut core, now);
    let inv = out(&mut core).remove(0).1;
    let ringing = inv.response(180, "Ringing", Some("far"));
    core.handle_message(now, udp(), &ringing.to_bytes());
    out(&mut core);
    let limit = Limits::default().no_answer_timeout;
    let mut t = now;
    while let Some(at) = core.poll_timeout().filter(|at| *at < now + limit) {
        t = at;
        core.handle_timeout(at);
        out(&mut core);
    }
    assert_eq!(core.call_count(), 1, "still ringing before the limit");
    assert!(t < now + limit);
    core.handle_timeout(now + limit);
    let o = out(&mut core);
    assert!(
        o.iter()
            .any(|(p, m)| *p == ws(1) && m.status() == Some(408)),
        "{o:?}"
    );
    assert!(o
        .iter()
        .any(|(p, m)| *p == udp() && m.method() == Some(&Method::Cancel)));
    assert_eq!(core.call_count(), 0);
}

/// [`invite_out`], then the far end's 180: the INVITE sent on, and what the 180 caused.
fn ringing_out_with(core: &mut Core, now: Instant) -> (SipMsg, Vec<(Peer, SipMsg)>) {
    let inv = invite_out(core, now);
    let ringing = inv.response(180, "Ringing", Some("far"));
    core.handle_message(now, udp(), &ringing.to_bytes());
    let o = out(core);
    (inv, o)
}

fn ringing_out(core: &mut Core, now: Instant) -> SipMsg {
    ringing_out_with(core, now).0
}

fn cancel_for(branch: &str, n: u32) -> Vec<u8> {
    format!(
        "CANCEL sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.66:5060;branch=z9hG4bK{branch}{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c{n}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_strangers_cancel_keeps_no_state_and_gets_at_most_its_budget() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let attacker = Peer::Udp("127.0.0.66:5060".parse().unwrap());
    let mut answered = 0;
    for n in 0..100 {
        core.handle_message(now, attacker.clone(), &cancel_for("x", n));
        answered += out(&mut core).len();
    }
    assert_eq!(
        core.servers.len(),
        0,
        "a stranger's CANCEL created server transactions"
    );
    assert!(
        answered <= 10,
        "a stranger got {answered} answers (budget 10)"
    );
}

#[test]
fn strangers_cancels_cannot_fill_the_transaction_cap() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    // Through the real entry point (rate-limited per source): 20 sources x 1000 CANCELs in 10 s.
    for ip in 0..20u8 {
        let from: SocketAddr = format!("127.0.1.{ip}:5060").parse().unwrap();
        for n in 0..1000u32 {
            let at = now + Duration::from_millis(u64::from(n) * 10);
            core.handle_datagram(at, from, &cancel_for(&format!("s{ip}x"), n));
            let _ = out(&mut core);
        }
    }
    let later = now + Duration::from_secs(10);
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(later, ws(1), INVITE);
    let o = out(&mut core);
    assert_eq!(
        o[0].1.status(),
        Some(100),
        "the browser's call was refused: {:?} (live txns {})",
        o[0].1.status(),
        core.servers.len() + core.clients.len()
    );
}

/// SIP calls the browser on c2; the browser rings (180) and its tab closes.
#[test]
fn a_ringing_browser_that_goes_away_leaves_no_transaction() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(2), LOCAL);
    let invite = format!(
        "INVITE sip:abc@c2.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKin1\r\n\
         Record-Route: <sip:127.0.0.1:5090;lr>\r\nMax-Forwards: 69\r\n\
         From: <sip:carol@127.0.0.1>;tag=car\r\nTo: <sip:abc@c2.invalid>\r\nCall-ID: in1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:carol@127.0.0.1:5098>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SIP_SDP}",
        SIP_SDP.len()
    );
    core.handle_message(now, udp(), invite.as_bytes());
    let _ = out(&mut core);
    allocate(&mut core, now);
    let offer = out(&mut core).remove(0).1;
    core.handle_message(
        now,
        ws(2),
        &offer.response(180, "Ringing", Some("sipjs")).to_bytes(),
    );
    let _ = out(&mut core);
    core.handle_ws_closed(now, &conn(2));
    let _ = out(&mut core);
    assert_eq!(core.call_count(), 0);
    run_until(&mut core, now + Duration::from_secs(3600));
    let _ = out(&mut core);
    assert_eq!(
        core.servers.len() + core.clients.len(),
        0,
        "left for good: {} server, {} client transactions (poll_timeout {:?})",
        core.servers.len(),
        core.clients.len(),
        core.poll_timeout().map(|t| t - now)
    );
}

/// Browser to SIP: the far end rings, the no-answer timeout CANCELs, the CANCEL is lost.
#[test]
fn an_unanswered_cancel_still_ends_the_invite_transaction() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    ringing_out(&mut core, now);
    run_until(&mut core, now + Duration::from_secs(3600));
    let _ = out(&mut core);
    assert_eq!(core.call_count(), 0);
    assert_eq!(
        core.clients.len(),
        0,
        "INVITE client transaction left for good (RFC 3261 §9.1: destroyed 64*T1 after CANCEL)"
    );
}

/// Browser to SIP: the far end only sent 100 Trying; at NO_ANSWER_TIMEOUT it must get a CANCEL.
#[test]
fn no_answer_after_100_trying_cancels_the_callee() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let inv = invite_out(&mut core, now);
    core.handle_message(now, udp(), &inv.response(100, "Trying", None).to_bytes());
    let _ = out(&mut core);
    let limit = Limits::default().no_answer_timeout;
    run_until(&mut core, now + limit);
    let o = out(&mut core);
    assert!(
        o.iter()
            .any(|(p, m)| *p == ws(1) && m.status() == Some(408)),
        "{o:?}"
    );
    assert!(
        o.iter()
            .any(|(p, m)| *p == udp() && m.method() == Some(&Method::Cancel)),
        "no CANCEL to the callee after its 100 Trying: {o:?}"
    );
}

/// The PBX answers the gateway's CANCEL with 200 (CSeq CANCEL, the INVITE's branch), then 487.
#[test]
fn the_200_for_our_cancel_is_not_the_invites_answer() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let inv = ringing_out(&mut core, now);
    let limit = Limits::default().no_answer_timeout;
    run_until(&mut core, now + limit);
    let o = out(&mut core);
    let cancel = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Cancel))
        .expect("CANCEL")
        .1
        .clone();
    let t = now + limit;
    core.handle_message(
        t,
        udp(),
        &cancel.response(200, "OK", Some("far")).to_bytes(),
    );
    let o = out(&mut core);
    assert!(
        !o.iter()
            .any(|(_, m)| matches!(m.method(), Some(Method::Ack | Method::Bye))),
        "the CANCEL's 200 was taken for a 2xx to the INVITE: {o:?}"
    );
    core.handle_message(
        t,
        udp(),
        &inv.response(487, "Request Terminated", Some("far"))
            .to_bytes(),
    );
    let o = out(&mut core);
    assert!(
        o.iter()
            .any(|(p, m)| *p == udp() && m.method() == Some(&Method::Ack)),
        "487 not ACKed: {o:?}"
    );
}

/// The caller hangs up an early dialog with BYE (RFC 3261 §15 allows it): its INVITE must get a
/// final response, and no transaction may be left for good.
#[test]
fn an_early_bye_from_the_caller_leaves_no_transaction() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (_, o) = ringing_out_with(&mut core, now);
    let ringing_a = o.iter().find(|(p, _)| *p == ws(1)).unwrap().1.clone();
    core.handle_message(
        now,
        ws(1),
        &browser_request(&ringing_a, "BYE", 2, "z9hG4bKearlybye"),
    );
    let _ = out(&mut core);
    assert_eq!(core.call_count(), 0);
    run_until(&mut core, now + Duration::from_secs(3600));
    let _ = out(&mut core);
    assert_eq!(
        core.servers.len() + core.clients.len(),
        0,
        "left for good: {} server, {} client transactions",
        core.servers.len(),
        core.clients.len()
    );
}

/// OUTBOUND_ROUTE names a host with two addresses; the answer comes from the second.
#[test]
fn an_answer_from_another_address_of_the_route_is_taken() {
    let now = VirtualClock::new().now();
    let mut c = cfg(false);
    c.proxy = None;
    let mut r = StaticRoute::parse("127.0.0.1:5090").unwrap();
    r.resolve(crate::b2bua::route::literal_host).unwrap();
    if let super::route::Dest::Host { addrs, .. } = &mut r.dest {
        addrs.push("127.0.0.2:5090".parse().unwrap());
    }
    c.route = Some(r);
    let mut core = Core::new(c);
    let inv = invite_out(&mut core, now);
    let other = Peer::Udp("127.0.0.2:5090".parse().unwrap());
    core.handle_message(
        now,
        other,
        &inv.response(180, "Ringing", Some("far")).to_bytes(),
    );
    let o = out(&mut core);
    assert!(
        o.iter()
            .any(|(p, m)| *p == ws(1) && m.status() == Some(180)),
        "dropped: {o:?}"
    );
}

/// A malformed request from a stranger: the 400 must not be more than twice its size.
#[test]
fn a_malformed_requests_answer_is_at_most_twice_its_size() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let req = b"OPTIONS sip:g SIP/2.0\r\nv:SIP/2.0/UDP h;branch=z9hG4bKa\r\nf:<sip:a@b>;tag=1\r\nt:<sip:g>\r\ni:c\r\nCSeq:1 OPTIONS\r\nX:\\\x00\r\n\r\n";
    core.handle_message(now, Peer::Udp("127.0.0.66:5060".parse().unwrap()), req);
    let answers: Vec<_> = std::iter::from_fn(|| core.poll_transmit()).collect();
    for a in &answers {
        assert!(
            a.bytes.len() <= 2 * req.len(),
            "{} bytes for {}: {}",
            a.bytes.len(),
            req.len(),
            String::from_utf8_lossy(&a.bytes)
        );
    }
}

/// The registrar's answer to a REGISTER arrives after the browser's WebSocket closed.
#[test]
fn a_register_answered_after_the_close_counts_nothing() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(1), LOCAL);
    let reg = include_bytes!("../../tests/fixtures/sipjs/register.txt");
    core.handle_message(now, ws(1), reg);
    let fwd = out(&mut core).remove(0).1;
    core.handle_ws_closed(now, &conn(1));
    let mut ok = fwd.response(200, "OK", Some("reg"));
    ok.push_header(
        "Contact",
        format!("{};expires=600", fwd.header("Contact").unwrap()),
    );
    core.handle_message(now, udp(), &ok.to_bytes());
    let _ = out(&mut core);
    assert_eq!(
        core.registration_count(),
        0,
        "a closed connection's registration counted for good"
    );
}

/// The browser CANCELs a ringing call; the PBX answers the CANCEL with 200, then the INVITE 487.
#[test]
fn the_200_for_the_browsers_cancel_is_not_a_2xx_to_the_invite() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    ringing_out(&mut core, now);
    let cancel = String::from_utf8_lossy(INVITE)
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace(
            &format!(
                "Content-Length: {}",
                SipMsg::parse(INVITE).unwrap().body.len()
            ),
            "Content-Length: 0",
        )
        + "\r\n\r\n";
    core.handle_message(now, ws(1), cancel.as_bytes());
    let o = out(&mut core);
    let cancel_b = o
        .iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Cancel))
        .expect("CANCEL to the PBX")
        .1
        .clone();
    core.handle_message(
        now,
        udp(),
        &cancel_b.response(200, "OK", Some("far")).to_bytes(),
    );
    let o = out(&mut core);
    assert!(
        !o.iter()
            .any(|(_, m)| matches!(m.method(), Some(Method::Ack | Method::Bye))),
        "the CANCEL's 200 was taken for a 2xx to the INVITE: {:?}",
        o.iter()
            .map(|(_, m)| m.method().cloned())
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// In-dialog requests from every side of every kind of call (issue 14: an INFO on an echo call
// was sent back down the caller's WebSocket as `INFO  SIP/2.0`).

const FIREFOX_INVITE: &[u8] = include_bytes!("../../tests/fixtures/firefox/invite.txt");

/// One side of a confirmed call, as the test plays it.
struct Side {
    name: &'static str,
    peer: Peer,
    /// `From` of the side's in-dialog requests (its own tag).
    from: String,
    /// `To` of the side's in-dialog requests (the gateway's tag).
    to: String,
    call_id: String,
    via: &'static str,
}

impl Side {
    /// The side that sent the dialog's INVITE and got `ok` back.
    fn uac(name: &'static str, peer: Peer, ok: &SipMsg, via: &'static str) -> Side {
        Side {
            name,
            peer,
            from: ok.header("From").unwrap().to_string(),
            to: ok.header("To").unwrap().to_string(),
            call_id: ok.call_id().to_string(),
            via,
        }
    }

    /// The side that got the dialog's INVITE `inv` and answered it with To-tag `tag`.
    fn uas(name: &'static str, peer: Peer, inv: &SipMsg, tag: &str, via: &'static str) -> Side {
        Side {
            name,
            peer,
            from: format!("{};tag={tag}", inv.header("To").unwrap()),
            to: inv.header("From").unwrap().to_string(),
            call_id: inv.call_id().to_string(),
            via,
        }
    }

    fn request(&self, method: &str, cseq: u32) -> Vec<u8> {
        let body = match method {
            "INFO" => "Content-Type: application/dtmf-relay\r\nContent-Length: 23\r\n\r\nSignal=5\r\nDuration=2000",
            "MESSAGE" => "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
            "NOTIFY" => "Event: refer\r\nSubscription-State: terminated\r\nContent-Length: 0\r\n\r\n",
            "SUBSCRIBE" => "Event: dialog\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n",
            "REFER" => "Refer-To: <sip:dave@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
            "PRACK" => "RAck: 1 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            _ => "Content-Length: 0\r\n\r\n",
        };
        format!(
            "{method} sip:gw@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/{};branch=z9hG4bK{}{method}{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{}@127.0.0.1>\r\n{body}",
            self.via, self.name, self.from, self.to, self.call_id, self.name
        )
        .into_bytes()
    }
}

/// A confirmed call of each kind, with its sides (one for the echo, which has no far peer).
fn confirmed_call(kind: &str) -> (Core, Vec<Side>) {
    let now = VirtualClock::new().now();
    match kind {
        "browser-to-sip" => {
            let mut core = Core::new(cfg(false));
            let (_, inv, ok_a) = browser_call_answered(&mut core, now);
            core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
            let _ = out(&mut core);
            let a = Side::uac("browser", ws(1), &ok_a, "WSS x.invalid");
            let b = Side::uas("pbx", udp(), &inv, "far", "UDP 127.0.0.1:5090");
            (core, vec![a, b])
        }
        "sip-to-browser" => {
            let mut core = Core::new(cfg(false));
            core.handle_ws_opened(&conn(2), LOCAL);
            let invite = format!(
                "INVITE sip:abc@c2.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKin1\r\n\
                 Max-Forwards: 69\r\nFrom: <sip:carol@127.0.0.1>;tag=car\r\nTo: <sip:abc@c2.invalid>\r\n\
                 Call-ID: in1\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@127.0.0.1:5090>\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SIP_SDP}",
                SIP_SDP.len()
            );
            core.handle_message(now, udp(), invite.as_bytes());
            let _ = out(&mut core);
            allocate(&mut core, now);
            let offer = out(&mut core).remove(0).1;
            let answer = SipMsg::parse(ANSWER_FROM_BROWSER).unwrap();
            let mut ok = with_sdp(
                offer.response(200, "OK", Some("sipjs")),
                std::str::from_utf8(&answer.body).unwrap(),
            );
            ok.push_header("Contact", "<sip:abc@x.invalid;transport=ws>");
            core.handle_message(now, ws(2), &ok.to_bytes());
            let ok_sip = out(&mut core)
                .into_iter()
                .find(|(p, m)| *p == udp() && m.status() == Some(200))
                .expect("200 to the PBX")
                .1;
            let a = Side::uac("pbx", udp(), &ok_sip, "UDP 127.0.0.1:5090");
            core.handle_message(now, udp(), &a.request("ACK", 1));
            let _ = out(&mut core);
            let b = Side::uas("browser", ws(2), &offer, "sipjs", "WSS y.invalid");
            (core, vec![a, b])
        }
        "echo" => {
            let mut core = Core::new(cfg(true));
            core.handle_ws_opened(&conn(1), LOCAL);
            let echo =
                String::from_utf8_lossy(INVITE).replace("INVITE sip:bob@", "INVITE sip:echo@");
            core.handle_message(now, ws(1), echo.as_bytes());
            let _ = out(&mut core);
            allocate(&mut core, now);
            let ok = out(&mut core).remove(0).1;
            assert_eq!(ok.status(), Some(200));
            let a = Side::uac("browser", ws(1), &ok, "WSS x.invalid");
            core.handle_message(now, ws(1), &a.request("ACK", 1));
            let _ = out(&mut core);
            (core, vec![a])
        }
        "browser-to-browser" => {
            let mut core = Core::new(cfg(true));
            core.handle_ws_opened(&conn(1), LOCAL);
            core.handle_ws_opened(&conn(2), LOCAL);
            let reg =
                String::from_utf8_lossy(include_bytes!("../../tests/fixtures/sipjs/register.txt"))
                    .replace("alice@", "bob@");
            core.handle_message(now, ws(2), reg.as_bytes());
            assert_eq!(out(&mut core).last().unwrap().1.status(), Some(200));
            core.handle_message(now, ws(1), INVITE);
            let _ = out(&mut core);
            allocate(&mut core, now);
            let inv_b = out(&mut core)
                .into_iter()
                .find(|(p, m)| *p == ws(2) && m.method() == Some(&Method::Invite))
                .expect("INVITE to Bob's WebSocket")
                .1;
            let answer = SipMsg::parse(ANSWER_FROM_BROWSER).unwrap();
            let mut ok = with_sdp(
                inv_b.response(200, "OK", Some("bobtag")),
                std::str::from_utf8(&answer.body).unwrap(),
            );
            ok.push_header("Contact", "<sip:bob@y.invalid;transport=ws>");
            core.handle_message(now, ws(2), &ok.to_bytes());
            let ok_a = out(&mut core)
                .into_iter()
                .find(|(p, m)| *p == ws(1) && m.status() == Some(200))
                .expect("200 to Alice")
                .1;
            let a = Side::uac("alice", ws(1), &ok_a, "WSS x.invalid");
            core.handle_message(now, ws(1), &a.request("ACK", 1));
            let _ = out(&mut core);
            let b = Side::uas("bob", ws(2), &inv_b, "bobtag", "WSS y.invalid");
            (core, vec![a, b])
        }
        _ => unreachable!("{kind}"),
    }
}

#[test]
fn every_in_dialog_method_gets_one_final_answer_from_every_side_of_every_call() {
    let now = VirtualClock::new().now();
    // What the sender must get, per method: relayed methods are answered 200 by the test's far
    // end; the echo answers INFO, MESSAGE and OPTIONS itself and has no subscription to NOTIFY.
    let methods = [
        "INFO",
        "MESSAGE",
        "OPTIONS",
        "NOTIFY",
        "UPDATE",
        "PRACK",
        "REFER",
        "SUBSCRIBE",
    ];
    let mut cells = 0;
    for kind in [
        "echo",
        "browser-to-browser",
        "browser-to-sip",
        "sip-to-browser",
    ] {
        let (mut core, sides) = confirmed_call(kind);
        for (i, side) in sides.iter().enumerate() {
            let other = (sides.len() == 2).then(|| &sides[1 - i]);
            for (n, method) in methods.iter().enumerate() {
                let cseq = 10 + n as u32;
                let what = format!("{method} from the {} side of a {kind} call", side.name);
                core.handle_message(now, side.peer.clone(), &side.request(method, cseq));
                let mut answers = Vec::new();
                let mut relayed = 0;
                for _round in 0..3 {
                    let o = out(&mut core);
                    if o.is_empty() {
                        break;
                    }
                    for (to, m) in o {
                        let bytes = m.to_bytes();
                        let text = String::from_utf8_lossy(&bytes);
                        let first = text.lines().next().unwrap_or_default();
                        assert!(
                            !first.contains("  "),
                            "{what}: a request without a Request-URI: {text}"
                        );
                        if to == side.peer {
                            assert!(m.status().is_some(), "{what}: only answers go back: {m:?}");
                            answers.push(m);
                        } else {
                            let other = other.unwrap_or_else(|| {
                                panic!("{what}: sent to {to:?}, but the echo has no peer: {m:?}")
                            });
                            assert_eq!(to, other.peer, "{what}: relayed to the other side");
                            assert_eq!(m.method().map(|m| m.as_str()), Some(*method), "{what}");
                            relayed += 1;
                            // The far end answers 200.
                            core.handle_message(
                                now,
                                other.peer.clone(),
                                &m.response(200, "OK", None).to_bytes(),
                            );
                        }
                    }
                }
                let finals: Vec<_> = answers
                    .iter()
                    .filter(|m| m.status().is_some_and(|s| s >= 200))
                    .collect();
                assert_eq!(finals.len(), 1, "{what}: one final answer, got {answers:?}");
                let code = finals[0].status().unwrap();
                assert_eq!(
                    finals[0].cseq().seq,
                    cseq,
                    "{what}: the answer is for this request"
                );
                let want = match *method {
                    "PRACK" => 481,
                    "REFER" | "SUBSCRIBE" => 501,
                    "NOTIFY" if kind == "echo" => 481,
                    _ => 200,
                };
                assert_eq!(code, want, "{what}: {:?}", finals[0]);
                let relays = match *method {
                    "PRACK" | "REFER" | "SUBSCRIBE" => 0,
                    _ if kind == "echo" => 0,
                    // A body-less UPDATE from the SIP side is a session refresh, answered here.
                    "UPDATE" if side.via.starts_with("UDP") => 0,
                    _ => 1,
                };
                assert_eq!(relayed, relays, "{what}: requests relayed");
                cells += 1;
            }
        }
        assert_eq!(core.call_count(), 1, "the {kind} call is still up");
    }
    assert_eq!(cells, 8 * 7);
}

#[test]
fn firefox_echo_call_is_offered_g722() {
    // Firefox writes `a=rtpmap:9 G722/8000/1`: the answer must keep 9 (it was `109 0 8 101`).
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(true));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), FIREFOX_INVITE);
    let _ = out(&mut core);
    allocate(&mut core, now);
    let ok = out(&mut core).remove(0).1;
    assert_eq!(ok.status(), Some(200));
    let body = String::from_utf8(ok.body.clone()).unwrap();
    assert!(
        body.contains("m=audio 32000 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\n"),
        "{body}"
    );
    assert!(body.contains("a=rtpmap:9 G722/8000"), "{body}");
}

#[test]
fn firefox_call_to_sip_offers_g722() {
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    core.handle_ws_opened(&conn(1), LOCAL);
    core.handle_message(now, ws(1), FIREFOX_INVITE);
    let _ = out(&mut core);
    allocate(&mut core, now);
    let inv = out(&mut core)
        .into_iter()
        .find(|(p, m)| *p == udp() && m.method() == Some(&Method::Invite))
        .expect("INVITE to the PBX")
        .1;
    let sdp = String::from_utf8(inv.body).unwrap();
    assert!(
        sdp.contains("m=audio 32002 RTP/AVP 109 9 0 8 101\r\n"),
        "{sdp}"
    );
    assert!(sdp.contains("a=rtpmap:9 G722/8000"), "{sdp}");
}

#[test]
fn the_gateways_contact_stays_the_same_through_the_dialog() {
    // baresip saw `sip:alice@` in the first INVITE and `sip:gw@` in later 200s.
    let now = VirtualClock::new().now();
    let mut core = Core::new(cfg(false));
    let (_, inv, ok_a) = browser_call_answered(&mut core, now);
    core.handle_message(now, ws(1), &browser_request(&ok_a, "ACK", 1, "z9hG4bKack1"));
    let _ = out(&mut core);
    let first = inv.header("Contact").unwrap().to_string();
    let pbx = Side::uas("pbx", udp(), &inv, "far", "UDP 127.0.0.1:5090");
    // A session refresh answered by the gateway itself.
    core.handle_message(now, udp(), &pbx.request("UPDATE", 20));
    let ok = out(&mut core)
        .into_iter()
        .find(|(p, m)| *p == udp() && m.status() == Some(200))
        .expect("200 for the UPDATE")
        .1;
    assert_eq!(ok.header("Contact"), Some(first.as_str()));
    // The same offer again (a refresh by re-INVITE): answered by the gateway.
    let refresh = with_sdp(SipMsg::parse(&pbx.request("INVITE", 21)).unwrap(), SIP_SDP);
    core.handle_message(now, udp(), &refresh.to_bytes());
    let ok = out(&mut core)
        .into_iter()
        .find(|(p, m)| *p == udp() && m.status() == Some(200))
        .expect("200 for the refreshing re-INVITE")
        .1;
    assert_eq!(ok.header("Contact"), Some(first.as_str()));
    core.handle_message(now, udp(), &pbx.request("ACK", 21));
    let _ = out(&mut core);
    // A new offer from the PBX (another port), answered by the browser and relayed back.
    let reinvite = with_sdp(
        SipMsg::parse(&pbx.request("INVITE", 22)).unwrap(),
        &SIP_SDP
            .replace("o=sipp 1 1", "o=sipp 1 2")
            .replace("m=audio 6000", "m=audio 6002"),
    );
    core.handle_message(now, udp(), &reinvite.to_bytes());
    let down = out(&mut core)
        .into_iter()
        .find(|(p, m)| *p == ws(1) && m.method() == Some(&Method::Invite))
        .expect("the re-INVITE to the browser")
        .1;
    let answer = SipMsg::parse(ANSWER_FROM_BROWSER).unwrap();
    let ok = with_sdp(
        down.response(200, "OK", None),
        std::str::from_utf8(&answer.body).unwrap(),
    );
    core.handle_message(now, ws(1), &ok.to_bytes());
    let up = out(&mut core)
        .into_iter()
        .find(|(p, m)| *p == udp() && m.status() == Some(200))
        .expect("200 for the re-INVITE")
        .1;
    assert_eq!(up.header("Contact"), Some(first.as_str()));
}

#[test]
fn a_body_less_update_to_the_echo_gets_a_200_without_sdp() {
    // RFC 3311 §5.2 / RFC 6337 §3.1: an UPDATE without an offer is answered without SDP (a 2xx
    // to UPDATE can only carry the answer to the UPDATE's own offer); the echo used to put a
    // fresh answer to the browser's old offer in it, as for an offer-less re-INVITE.
    let now = VirtualClock::new().now();
    let (mut core, sides) = confirmed_call("echo");
    while core.poll_command().is_some() {}
    core.handle_message(now, sides[0].peer.clone(), &sides[0].request("UPDATE", 30));
    let answers = out(&mut core);
    assert_eq!(answers.len(), 1, "{answers:?}");
    let ok = &answers[0].1;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert!(ok.body.is_empty(), "no SDP in the 200: {ok:?}");
    assert!(ok.header("Content-Type").is_none(), "{ok:?}");
    assert!(
        ok.header("Contact").is_some(),
        "a target refresh answer has a Contact"
    );
    assert!(
        core.poll_command().is_none(),
        "nothing for the engine to change"
    );
}

#[test]
fn the_echo_refuses_an_info_for_an_info_package_with_469() {
    // RFC 6086 §4.2.2: an INFO for an Info Package the UAS did not say it receives gets 469 with
    // a Recv-Info header; a legacy INFO (no Info-Package, as SIP.js sends for DTMF) gets 200.
    let now = VirtualClock::new().now();
    let (mut core, sides) = confirmed_call("echo");
    let legacy = sides[0].request("INFO", 40);
    core.handle_message(now, sides[0].peer.clone(), &legacy);
    assert_eq!(out(&mut core)[0].1.status(), Some(200));
    let pkg = String::from_utf8(sides[0].request("INFO", 41))
        .unwrap()
        .replace("Content-Type:", "Info-Package: foo\r\nContent-Type:");
    core.handle_message(now, sides[0].peer.clone(), pkg.as_bytes());
    let r = out(&mut core).remove(0).1;
    assert_eq!(r.status(), Some(469), "{r:?}");
    assert!(r.header("Recv-Info").is_some(), "{r:?}");
    assert_eq!(core.call_count(), 1, "the call stays up");
}
