//! One call driven alone, without a core: its inputs in, its actions out (the whole-core
//! scenarios are in `b2bua/call_tests.rs`).

use std::time::{Duration, Instant};
use testkit::VirtualClock;

use engine::api::{Command, Event, LegIndex, LocalLeg, Output, Reply, SessionId, SessionStats};

use super::{Action, Call, CallKind, CallState, CallTxn, Env, Leg, NewCall};
use crate::b2bua::ids::Ids;
use crate::b2bua::policy::AcceptList;
use crate::b2bua::types::{ConnName, CoreConfig, CoreEvent, Peer};
use crate::sdp::model::Sdp;
use crate::sdp::pts::PtFilter;
use crate::sdp::translate::Origin;
use crate::sip::dialog::{Dialog, DialogState};
use crate::sip::msg::{Method, SipMsg};
use crate::sip::names::Tag;
use crate::sip::txn::{ClientEvent, TimerValues};

const INVITE: &[u8] = include_bytes!("../../../tests/fixtures/sipjs/invite.txt");
const SIP_SDP: &str = "v=0\r\no=sipp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn cfg() -> CoreConfig {
    CoreConfig {
        own_host: "127.0.0.1".into(),
        sip_port: 5060,
        proxy: None,
        timers: TimerValues::default(),
        route: None,
        accept: AcceptList::parse("[[WSS]]").unwrap(),
        pts: PtFilter::parse("[PCMU/8000]").unwrap(),
        advertise: "127.0.0.1".parse().unwrap(),
        limits: Default::default(),
    }
}

fn leg(peer: Peer, call_id: &str, tag: &str, remote_tag: Option<&str>) -> Leg {
    Leg {
        peer,
        dialog: Dialog {
            state: DialogState::Early,
            call_id: call_id.into(),
            local_tag: tag.into(),
            remote_tag: remote_tag.map(Tag::from),
            local_uri: "<sip:bob@gw>".into(),
            remote_uri: "<sip:alice@gw>".into(),
            remote_target: "sip:bob@127.0.0.1:5090".into(),
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: 1,
        },
        remote_sdp: None,
        last_answer: None,
        reinvite_key: None,
        origin: Origin::new(1, "127.0.0.1".parse().unwrap()),
    }
}

/// A browser-to-SIP call, allocated, its INVITE out on leg B; with the INVITE sent.
fn calling(now: Instant, env: &mut Env<'_>) -> (Call, SipMsg) {
    let invite = SipMsg::parse(INVITE).unwrap();
    let offer = Sdp::parse(&invite.body).unwrap();
    let id = SessionId(7);
    let mut a = leg(
        Peer::Ws(ConnName("c1.invalid".into())),
        "a-call",
        "atag",
        Some("btag"),
    );
    a.remote_sdp = Some(offer);
    let b = leg(
        Peer::Udp("127.0.0.1:5090".parse().unwrap()),
        "b-call",
        "btag2",
        None,
    );
    let mut call = Call::start(
        now,
        Duration::from_secs(60),
        NewCall {
            id,
            kind: CallKind::BrowserToSip,
            a,
            b,
            a_invite: invite,
            a_key: crate::sip::names::ServerKey {
                branch: "z9hG4bKa".into(),
                sent_by: "x".into(),
                method: "INVITE".into(),
            },
            from_user: "alice".into(),
            to_user: "bob".into(),
            holders: Vec::new(),
            allocate: Command::Release { id },
        },
    );
    let first: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
    assert!(matches!(first[0], Action::Engine(_)));
    assert!(matches!(
        first[1],
        Action::Event(CoreEvent::CallStarted { .. })
    ));
    call.handle_engine(
        env,
        now,
        Output::Reply(Reply::Allocated {
            id,
            legs: [
                LocalLeg::WebRtc {
                    addr: "127.0.0.1:32000".parse().unwrap(),
                    ice_ufrag: "lite".into(),
                    ice_pwd: "pwpwpwpwpwpwpwpwpwpwpwpw".into(),
                    fingerprint: "sha-256 AA".into(),
                    setup: engine::api::Setup::Passive,
                },
                LocalLeg::Plain {
                    rtp: "127.0.0.1:32002".parse().unwrap(),
                    video_rtp: None,
                },
            ],
        }),
    );
    let acts: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
    let [Action::Request {
        req,
        what: CallTxn::Invite,
        ..
    }] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(call.state, CallState::Calling);
    (call, req.clone())
}

fn with_env<T>(f: impl FnOnce(&mut Env<'_>) -> T) -> T {
    let cfg = cfg();
    let mut ids = Ids::default();
    let open = |_: &ConnName| true;
    let mut env = Env {
        cfg: &cfg,
        ids: &mut ids,
        is_open: &open,
    };
    f(&mut env)
}

#[test]
fn a_call_answers_acks_and_ends_on_its_own() {
    with_env(|env| {
        let now = VirtualClock::new().now();
        let (mut call, inv) = calling(now, env);
        let mut ok = inv.response(200, "OK", Some("far"));
        ok.push_header("Contact", "<sip:bob@127.0.0.9:5090>");
        ok.push_header("Content-Type", "application/sdp");
        ok.body = SIP_SDP.as_bytes().to_vec();
        call.handle_client_event(
            env,
            now,
            &"b1".into(),
            CallTxn::Invite,
            ClientEvent::Response(ok),
        );
        let acts: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        // The engine learns the answer, leg B gets its ACK, the caller its 200 with our SDP.
        assert!(matches!(
            acts[0],
            Action::Engine(Command::Update {
                leg: LegIndex::B,
                ..
            })
        ));
        let Action::Send { bytes, .. } = &acts[1] else {
            panic!("{acts:?}")
        };
        let ack = SipMsg::parse(bytes).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        let crate::sip::msg::StartLine::Request { uri, .. } = &ack.start else {
            panic!("an ACK is a request")
        };
        assert!(uri.contains("127.0.0.9"), "{uri}");
        assert!(matches!(
            acts[2],
            Action::Event(CoreEvent::CallAnswered { .. })
        ));
        let Action::Respond { resp, .. } = &acts[3] else {
            panic!("{acts:?}")
        };
        assert_eq!(resp.status(), Some(200));
        assert!(String::from_utf8_lossy(&resp.body).contains("UDP/TLS/RTP/SAVPF"));
        assert!(call.is_answered());
        assert_eq!(call.b.dialog.state, DialogState::Confirmed);

        // The media dies: the call hangs up both legs and ends, asking for the release.
        call.handle_engine(env, now, Output::Event(Event::MediaTimeout { id: call.id }));
        let acts: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        let byes = acts
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Request {
                        what: CallTxn::Bye,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(byes, 2, "{acts:?}");
        assert!(matches!(
            acts.last(),
            Some(Action::Ended {
                awaiting_release: true,
                ..
            })
        ));
        assert!(call.is_ended());
    });
}

#[test]
fn no_answer_in_time_gives_408_and_cancels_after_a_provisional() {
    with_env(|env| {
        let now = VirtualClock::new().now();
        let (mut call, inv) = calling(now, env);
        let ringing = inv.response(180, "Ringing", Some("far"));
        call.handle_client_event(
            env,
            now,
            &"b1".into(),
            CallTxn::Invite,
            ClientEvent::Response(ringing),
        );
        let _: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        let at = call.poll_timeout().expect("NO_ANSWER armed");
        assert_eq!(at, now + Duration::from_secs(60));
        call.handle_timeout(env, at);
        let acts: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        let statuses: Vec<u16> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Respond { resp, .. } => resp.status(),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, vec![408]);
        assert!(acts.iter().any(|a| matches!(
            a,
            Action::Request {
                what: CallTxn::Cancel,
                ..
            }
        )));
        assert!(call.is_ended());
    });
}

#[test]
fn the_engine_releasing_a_live_session_ends_the_call_with_its_figures() {
    with_env(|env| {
        let now = VirtualClock::new().now();
        let (mut call, _) = calling(now, env);
        let stats = SessionStats::default();
        call.handle_engine(
            env,
            now,
            Output::Event(Event::Released { id: call.id, stats }),
        );
        let acts: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        // Not answered: 480 to the caller, no Release (the engine has none), figures kept.
        assert!(!acts
            .iter()
            .any(|a| matches!(a, Action::Engine(Command::Release { .. }))));
        let Some(Action::Ended {
            record,
            awaiting_release: false,
        }) = acts.last()
        else {
            panic!("{acts:?}")
        };
        assert_eq!(record.media, Some(stats));
        assert_eq!(record.status, 480);
    });
}
