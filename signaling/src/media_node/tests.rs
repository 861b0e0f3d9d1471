//! The ng node on virtual time, with the engine's replies played by the test (the node is
//! pure: the real engine and real Kamailio drive it in `bench/tests/ng_*.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use testkit::SeededRng;
use testkit::VirtualClock;

use engine::api::{
    Command, Event, Failure, LegIndex, LegSpec, LocalLeg, Output, Reply, SessionStats, Setup,
};
use ng::bencode::{self, Dict, Value};

use super::{EndWhy, Node, NodeConfig, NodeEvent};

const KAMAILIO: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_111);
const US: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

fn browser_offer() -> String {
    let raw = include_str!("../../tests/fixtures/sipjs/invite.txt");
    raw.split_once("\r\n\r\n").unwrap().1.to_string()
}

const SIP_OFFER: &str = "v=0\r\no=u 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

const SIP_ANSWER: &str =
    "v=0\r\no=u 2 2 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n\
m=audio 7000 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n\
a=sendrecv\r\n";

fn browser_answer() -> String {
    "v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1 1 udp 2122194687 127.0.0.1 50000 typ host\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:eewzYLa06UPpH2vmbrqexlmr\r\n\
a=fingerprint:sha-256 9C:2C:E7:4E:C1:75:AF:F9:74:0B:55:5F:93:73:20:16:AB:03:EC:18:52:D3:8D:22:77:16:D8:F2:73:73:17:D1\r\n\
a=setup:active\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n"
        .to_string()
}

fn s(v: &str) -> Value {
    Value::Bytes(v.as_bytes().to_vec())
}

fn list(v: &[&str]) -> Value {
    Value::List(v.iter().map(|x| s(x)).collect())
}

/// Kamailio 5.6's keys for `FLAGS_TO_SIP` / `FLAGS_TO_WEBRTC` of `bench/compare/edge.cfg`.
fn flags(d: &mut Dict, to_webrtc: bool) {
    d.insert(b"replace".to_vec(), list(&["origin", "session-connection"]));
    d.insert(b"SDES".to_vec(), list(&["off"]));
    d.insert(b"received-from".to_vec(), list(&["IP4", "127.0.0.1"]));
    d.insert(b"supports".to_vec(), list(&["load limit"]));
    if to_webrtc {
        d.insert(b"ICE".to_vec(), s("force"));
        d.insert(b"transport-protocol".to_vec(), s("UDP/TLS/RTP/SAVPF"));
        d.insert(b"rtcp-mux".to_vec(), list(&["offer", "require"]));
    } else {
        d.insert(b"ICE".to_vec(), s("remove"));
        d.insert(b"transport-protocol".to_vec(), s("RTP/AVP"));
        d.insert(b"rtcp-mux".to_vec(), list(&["demux"]));
    }
}

fn req(command: &str, call: &str, from: &str, to: Option<&str>, sdp: Option<&str>) -> Dict {
    let mut d = Dict::new();
    d.insert(b"command".to_vec(), s(command));
    d.insert(b"call-id".to_vec(), s(call));
    d.insert(b"from-tag".to_vec(), s(from));
    if let Some(t) = to {
        d.insert(b"to-tag".to_vec(), s(t));
    }
    if let Some(sdp) = sdp {
        d.insert(b"sdp".to_vec(), s(sdp));
    }
    d
}

struct Harness {
    node: Node,
    now: Instant,
    cookie: u32,
    next_port: u16,
}

fn webrtc_local(port: u16, setup: Setup) -> LocalLeg {
    LocalLeg::WebRtc {
        addr: SocketAddr::new(US, port),
        ice_ufrag: format!("uf{port}"),
        ice_pwd: "pwpwpwpwpwpwpwpwpwpwpwpw".into(),
        fingerprint: "sha-256 AA:BB".into(),
        setup,
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with(NodeConfig::new(US))
    }

    fn with(cfg: NodeConfig) -> Harness {
        Harness {
            node: Node::new(cfg).unwrap(),
            now: VirtualClock::new().now(),
            cookie: 0,
            next_port: 30_000,
        }
    }

    /// Sends `d` under a new cookie; returns the cookie.
    fn send(&mut self, d: &Dict) -> String {
        self.cookie += 1;
        let cookie = format!("k_{}", self.cookie);
        self.send_as(&cookie, d);
        cookie
    }

    fn send_as(&mut self, cookie: &str, d: &Dict) {
        let mut dg = format!("{cookie} ").into_bytes();
        dg.extend(bencode::encode(&Value::Dict(d.clone())));
        self.node.handle_datagram(self.now, 1_000, KAMAILIO, &dg);
    }

    fn replies(&mut self) -> Vec<(String, Dict)> {
        let mut out = Vec::new();
        while let Some((to, bytes)) = self.node.poll_transmit() {
            assert_eq!(to, KAMAILIO);
            let sp = bytes.iter().position(|&b| b == b' ').unwrap();
            let cookie = String::from_utf8(bytes[..sp].to_vec()).unwrap();
            let Value::Dict(d) = bencode::decode(&bytes[sp + 1..]).unwrap() else {
                panic!("not a dict")
            };
            out.push((cookie, d));
        }
        out
    }

    fn one_reply(&mut self) -> Dict {
        let mut r = self.replies();
        assert_eq!(r.len(), 1, "{r:?}");
        r.pop().unwrap().1
    }

    fn commands(&mut self) -> Vec<Command> {
        std::iter::from_fn(|| self.node.poll_command()).collect()
    }

    fn engine(&mut self, out: Output) {
        self.node.handle_engine(self.now, out);
    }

    /// Plays the engine: allocations get ports, updates their leg's local, queries figures.
    fn run_engine(&mut self) {
        let cmds = self.commands();
        self.play(cmds);
    }

    fn play(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            let out = match cmd {
                Command::Allocate { id, legs, video } => {
                    let mut local = |spec: &LegSpec| match spec {
                        LegSpec::WebRtc(r) => webrtc_local(
                            40_000,
                            if r.is_some() {
                                Setup::Passive
                            } else {
                                Setup::ActPass
                            },
                        ),
                        _ => {
                            self.next_port += 4;
                            LocalLeg::Plain {
                                rtp: SocketAddr::new(US, self.next_port),
                                video_rtp: video.then(|| SocketAddr::new(US, self.next_port + 2)),
                            }
                        }
                    };
                    let legs = [local(&legs[0]), local(&legs[1])];
                    Output::Reply(Reply::Allocated { id, legs })
                }
                Command::Update { id, leg, remote } => {
                    let local = match remote {
                        LegSpec::WebRtc(_) => webrtc_local(40_000, Setup::Passive),
                        _ => LocalLeg::Plain {
                            rtp: SocketAddr::new(US, 30_004),
                            video_rtp: None,
                        },
                    };
                    Output::Reply(Reply::Updated { id, leg, local })
                }
                Command::Query { id } => Output::Reply(Reply::Stats {
                    id,
                    stats: SessionStats::default(),
                }),
                Command::Release { id } => Output::Event(Event::Released {
                    id,
                    stats: SessionStats::default(),
                }),
            };
            self.engine(out);
        }
    }
}

fn text(d: &Dict, k: &str) -> String {
    String::from_utf8_lossy(
        d.get(k.as_bytes())
            .and_then(Value::as_bytes)
            .unwrap_or_default(),
    )
    .into_owned()
}

fn attr_count(sdp: &str, prefix: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn ping_gets_pong_and_a_retransmission_gets_the_same_bytes() {
    let mut h = Harness::new();
    let mut d = Dict::new();
    d.insert(b"command".to_vec(), s("ping"));
    h.send_as("5323_1", &d);
    let r = h.replies();
    assert_eq!(r[0].0, "5323_1");
    assert_eq!(text(&r[0].1, "result"), "pong");
}

/// Another host reusing Kamailio's cookie (127.0.0.66) gets an answer to its own request, never
/// the cached reply with the call's SDP, and Kamailio's retransmission still gets its cached
/// reply. (ng itself has no authentication, as with rtpengine: NG_LISTEN belongs on an address
/// only the SIP proxies reach.)
#[test]
fn a_stranger_reusing_a_cookie_never_gets_the_cached_reply() {
    let stranger = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66)), 40_111);
    let mut h = Harness::new();
    let mut o = req("offer", "c1", "ft", None, Some(&browser_offer()));
    flags(&mut o, false);
    let cookie = h.send(&o);
    h.run_engine();
    let first = h.one_reply();
    assert_eq!(text(&first, "result"), "ok");
    assert!(text(&first, "sdp").starts_with("v=0"));
    // The same cookie from the stranger, with a request of its own: a cache keyed by the cookie
    // alone would hand it Kamailio's reply.
    let mut ping = Dict::new();
    ping.insert(b"command".to_vec(), s("ping"));
    let mut dg = format!("{cookie} ").into_bytes();
    dg.extend(bencode::encode(&Value::Dict(ping)));
    h.node.handle_datagram(h.now, 1_000, stranger, &dg);
    h.run_engine();
    let mut to_stranger = Vec::new();
    while let Some((to, bytes)) = h.node.poll_transmit() {
        assert_eq!(
            to, stranger,
            "nothing goes to Kamailio for the stranger's datagram"
        );
        to_stranger.push(bytes);
    }
    let cached = {
        h.send_as(&cookie, &o);
        h.one_reply()
    };
    assert_eq!(
        cached, first,
        "Kamailio's retransmission gets its cached reply"
    );
    assert_eq!(to_stranger.len(), 1, "one answer to the stranger");
    let bytes = &to_stranger[0];
    let sp = bytes.iter().position(|&b| b == b' ').unwrap();
    let Value::Dict(d) = bencode::decode(&bytes[sp + 1..]).unwrap() else {
        panic!("not a dict")
    };
    assert_eq!(text(&d, "result"), "pong", "the stranger's own answer");
    assert!(
        !d.contains_key(b"sdp".as_slice()),
        "no SDP to the stranger: {d:?}"
    );
}

#[test]
fn browser_to_sip_offer_answer_with_kamailio_flags() {
    let mut h = Harness::new();
    let mut o = req("offer", "c1", "ft", None, Some(&browser_offer()));
    flags(&mut o, false);
    h.send(&o);
    assert!(h.replies().is_empty(), "the reply waits for the engine");
    let cmds = h.commands();
    let [Command::Allocate { legs, video, .. }] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert!(matches!(legs[0], LegSpec::WebRtc(Some(_))));
    assert_eq!(legs[1], LegSpec::Plain(None));
    assert!(!video);
    // Play the allocation.
    for c in cmds {
        let Command::Allocate { id, .. } = c else {
            unreachable!()
        };
        h.engine(Output::Reply(Reply::Allocated {
            id,
            legs: [
                webrtc_local(40_000, Setup::Passive),
                LocalLeg::Plain {
                    rtp: SocketAddr::new(US, 30_010),
                    video_rtp: None,
                },
            ],
        }));
    }
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "ok");
    let sdp = text(&r, "sdp");
    assert!(
        sdp.contains("m=audio 30010 RTP/AVP 111 63 9 0 8 13 110 126\r\n"),
        "{sdp}"
    );
    assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
    assert!(sdp.contains("a=rtcp:30011\r\n"));
    for gone in [
        "a=ice-",
        "a=candidate",
        "a=fingerprint",
        "a=setup",
        "a=rtcp-mux",
        "a=group",
    ] {
        assert_eq!(attr_count(&sdp, gone), 0, "{gone} in {sdp}");
    }
    // The origin's address is ours (replace-origin).
    assert!(sdp.contains("o=- 6492005971736436117 2 IN IP4 127.0.0.1\r\n"));

    // The SIP answer, towards the browser.
    let mut a = req("answer", "c1", "ft", Some("tt"), Some(SIP_ANSWER));
    flags(&mut a, true);
    h.send(&a);
    let cmds = h.commands();
    let [Command::Update {
        id,
        leg: LegIndex::B,
        remote: LegSpec::Plain(Some(p)),
    }] = &cmds[..]
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(p.rtp, Some("127.0.0.9:7000".parse().unwrap()));
    assert!(!p.rtcp_mux);
    let id = *id;
    h.engine(Output::Reply(Reply::Updated {
        id,
        leg: LegIndex::B,
        local: LocalLeg::Plain {
            rtp: SocketAddr::new(US, 30_010),
            video_rtp: None,
        },
    }));
    let r = h.one_reply();
    let sdp = text(&r, "sdp");
    assert!(
        sdp.contains("m=audio 40000 UDP/TLS/RTP/SAVPF 0 126\r\n"),
        "{sdp}"
    );
    for want in [
        "a=ice-lite\r\n",
        "a=mid:0\r\n",
        "a=rtcp-mux\r\n",
        "a=rtcp:40000\r\n",
        "a=setup:passive\r\n",
        "a=fingerprint:sha-256 AA:BB\r\n",
        "a=ice-ufrag:uf40000\r\n",
        "a=candidate:1 1 UDP 2130706431 127.0.0.1 40000 typ host\r\n",
        "a=end-of-candidates\r\n",
    ] {
        assert!(sdp.contains(want), "{want} missing from {sdp}");
    }

    // The same answer again (a 183, then the 200): no engine work, the same SDP.
    h.send(&a);
    assert!(h.commands().is_empty());
    assert_eq!(text(&h.one_reply(), "sdp"), sdp);
}

#[test]
fn a_repeated_offer_keeps_ports_and_credentials_and_a_changed_one_updates() {
    let mut h = Harness::new();
    let mut o = req("offer", "c1", "ft", None, Some(SIP_OFFER));
    flags(&mut o, true);
    h.send(&o);
    h.run_engine();
    let first = text(&h.one_reply(), "sdp");
    assert!(first.contains("a=setup:actpass\r\n"), "{first}");
    assert!(first.contains("m=audio 40000 UDP/TLS/RTP/SAVPF 0 8 101\r\n"));
    assert_eq!(
        attr_count(&first, "a=end-of-candidates"),
        0,
        "offers trickle-free"
    );

    // A retransmitted INVITE that t_check_trans missed: a new cookie, the same offer.
    h.send(&o);
    assert!(h.commands().is_empty(), "no second allocation");
    assert_eq!(text(&h.one_reply(), "sdp"), first);

    // The same cookie again (Kamailio's retry): the cached bytes.
    h.send_as("k_2", &o);
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "k_2");
    assert_eq!(text(&r[0].1, "sdp"), first);

    // Hold: the caller re-offers sendonly with the to-tag now known.
    let held = SIP_OFFER.replace("a=sendrecv", "a=sendonly");
    let mut o2 = req("offer", "c1", "ft", Some("tt"), Some(&held));
    flags(&mut o2, true);
    h.send(&o2);
    let cmds = h.commands();
    assert!(
        matches!(&cmds[..], [Command::Update { leg: LegIndex::A, remote: LegSpec::Plain(Some(p)), .. }] if p.direction == engine::api::Direction::SendOnly),
        "{cmds:?}"
    );
}

#[test]
fn the_callee_reoffers_with_the_tags_swapped() {
    let mut h = Harness::new();
    let mut o = req("offer", "c1", "caller", None, Some(SIP_OFFER));
    flags(&mut o, true);
    h.send(&o);
    h.run_engine();
    h.replies();
    let mut a = req(
        "answer",
        "c1",
        "caller",
        Some("callee"),
        Some(&browser_answer()),
    );
    flags(&mut a, false);
    h.send(&a);
    h.run_engine();
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "ok", "{r:?}");
    // The browser re-INVITEs: from-tag is now the callee's.
    let reinvite = browser_answer().replace("a=setup:active", "a=setup:actpass");
    let mut o2 = req("offer", "c1", "callee", Some("caller"), Some(&reinvite));
    flags(&mut o2, false);
    h.send(&o2);
    let cmds = h.commands();
    assert!(
        matches!(
            &cmds[..],
            [Command::Update {
                leg: LegIndex::B,
                ..
            }]
        ),
        "{cmds:?}"
    );
    h.play(cmds);
    let sdp = text(&h.one_reply(), "sdp");
    // Towards the SIP caller: plain, its own pair.
    assert!(sdp.contains(" RTP/AVP 0 101\r\n"), "{sdp}");
    // The caller answers the re-INVITE: from-tag the callee's, to-tag the caller's.
    let mut a2 = req("answer", "c1", "callee", Some("caller"), Some(SIP_OFFER));
    flags(&mut a2, true);
    h.send(&a2);
    h.run_engine();
    let sdp = text(&h.one_reply(), "sdp");
    assert!(sdp.contains("UDP/TLS/RTP/SAVPF"), "{sdp}");
    assert!(sdp.contains("a=setup:passive\r\n"), "{sdp}");
}

#[test]
fn delete_query_list_and_unknown_calls() {
    let mut h = Harness::new();
    let mut o = req("offer", "c1", "ft", None, Some(SIP_OFFER));
    flags(&mut o, true);
    h.send(&o);
    h.run_engine();
    h.replies();
    h.send(&req("query", "c1", "ft", None, None));
    h.run_engine();
    let q = h.one_reply();
    assert_eq!(text(&q, "result"), "ok");
    let totals = q.get(&b"totals"[..]).and_then(Value::as_dict).unwrap();
    for k in ["RTP", "RTCP"] {
        let t = totals.get(k.as_bytes()).and_then(Value::as_dict).unwrap();
        for f in ["packets", "bytes", "errors"] {
            assert_eq!(t.get(f.as_bytes()).and_then(Value::as_int), Some(0));
        }
    }
    let mut l = Dict::new();
    l.insert(b"command".to_vec(), s("list"));
    h.send(&l);
    let r = h.one_reply();
    assert_eq!(r.get(&b"calls"[..]), Some(&list(&["c1"])));

    h.send(&req("delete", "c1", "ft", None, None));
    let cmds = h.commands();
    assert!(matches!(&cmds[..], [Command::Release { .. }]), "{cmds:?}");
    let Command::Release { id } = cmds[0] else {
        unreachable!()
    };
    assert!(h.replies().is_empty(), "the figures come with the release");
    h.engine(Output::Event(Event::Released {
        id,
        stats: SessionStats::default(),
    }));
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "ok");
    assert!(r.contains_key(&b"totals"[..]));
    assert_eq!(h.node.calls(), 0);

    h.send(&req("delete", "c1", "ft", None, None));
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "ok");
    assert_eq!(
        text(&r, "warning"),
        "Call-ID not found or tags didn't match"
    );
    let mut fatal = req("delete", "c1", "ft", None, None);
    fatal.insert(b"flags".to_vec(), list(&["fatal"]));
    h.send(&fatal);
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "error");
    assert_eq!(
        text(&r, "error-reason"),
        "Call-ID not found or tags didn't match"
    );
    h.send(&req("answer", "nope", "a", Some("b"), Some(SIP_ANSWER)));
    assert_eq!(text(&h.one_reply(), "error-reason"), "Unknown call-id");
    h.send(&req("query", "nope", "a", None, None));
    assert_eq!(text(&h.one_reply(), "error-reason"), "Unknown call-id");
    h.send(&req("frobnicate", "nope", "a", None, None));
    assert_eq!(text(&h.one_reply(), "error-reason"), "Unrecognized command");
    h.send(&req("offer", "c9", "a", None, None));
    assert_eq!(
        text(&h.one_reply(), "error-reason"),
        "No SDP body in message"
    );
    h.send(&req("offer", "c9", "a", None, Some("garbage")));
    assert_eq!(text(&h.one_reply(), "error-reason"), "Failed to parse SDP");
    h.send(&req("answer", "c9", "a", None, Some(SIP_ANSWER)));
    assert_eq!(text(&h.one_reply(), "error-reason"), "No to-tag in message");
}

#[test]
fn capacity_answers_are_the_strings_kamailio_fails_over_on() {
    let mut cfg = NodeConfig::new(US);
    cfg.max_sessions = Some(1);
    let mut h = Harness::with(cfg);
    let mut o = req("offer", "c1", "ft", None, Some(SIP_OFFER));
    flags(&mut o, true);
    h.send(&o);
    h.run_engine();
    h.replies();
    // A second call past MAX_CALLS: Kamailio listed `load limit` in supports.
    let mut o2 = req("offer", "c2", "ft", None, Some(SIP_OFFER));
    flags(&mut o2, true);
    h.send(&o2);
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "load limit");
    assert_eq!(text(&r, "message"), "Parallel session limit reached");
    o2.remove(&b"supports"[..]);
    h.send(&o2);
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "error");
    assert_eq!(text(&r, "error-reason"), "Parallel session limit reached");
    assert!(h.commands().is_empty());

    // The engine out of ports.
    let mut h = Harness::new();
    h.send(&o);
    let cmds = h.commands();
    h.engine(Output::Reply(Reply::Failed {
        id: cmds[0].id(),
        failure: Failure::PortsExhausted,
    }));
    let r = h.one_reply();
    assert_eq!(text(&r, "result"), "error");
    assert_eq!(text(&r, "error-reason"), "Ran out of ports");
    assert_eq!(h.node.calls(), 0);
}

#[test]
fn an_unanswered_offer_times_out_and_unknown_keys_are_ignored_once() {
    let mut cfg = NodeConfig::new(US);
    cfg.offer_timeout = Duration::from_secs(5);
    let mut h = Harness::with(cfg);
    let mut o = req("offer", "c1", "ft", None, Some(SIP_OFFER));
    flags(&mut o, true);
    o.insert(b"flags".to_vec(), list(&["no-such-flag", "trust-address"]));
    o.insert(b"bogus-key".to_vec(), s("x"));
    h.send(&o);
    h.run_engine();
    assert_eq!(text(&h.one_reply(), "result"), "ok");
    let ignored: Vec<_> = std::iter::from_fn(|| h.node.poll_event())
        .filter(|e| matches!(e, NodeEvent::Ignored(_)))
        .collect();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    let mut o2 = o.clone();
    o2.insert(b"call-id".to_vec(), s("c2"));
    h.send(&o2);
    h.run_engine();
    h.replies();
    assert!(
        !std::iter::from_fn(|| h.node.poll_event()).any(|e| matches!(e, NodeEvent::Ignored(_))),
        "logged once"
    );
    let due = h.node.poll_timeout().unwrap();
    assert!(due <= h.now + Duration::from_secs(5));
    h.now += Duration::from_secs(6);
    h.node.handle_timeout(h.now);
    let released = h
        .commands()
        .into_iter()
        .filter(|c| matches!(c, Command::Release { .. }))
        .count();
    assert_eq!(released, 2);
    assert!(std::iter::from_fn(|| h.node.poll_event()).any(|e| e
        == NodeEvent::CallEnded {
            why: EndWhy::OfferTimeout
        }));
}

#[test]
fn requests_during_an_allocation_are_answered_in_order() {
    let mut h = Harness::new();
    let mut o = req("offer", "c1", "ft", None, Some(SIP_OFFER));
    flags(&mut o, true);
    h.send(&o);
    h.send(&o);
    h.send(&req("query", "c1", "ft", None, None));
    assert!(h.replies().is_empty());
    let cmds = h.commands();
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert!(matches!(cmds[0], Command::Allocate { .. }));
    for c in &cmds[1..] {
        assert!(matches!(c, Command::Query { .. }), "{c:?}");
    }
    // Put the commands back through the played engine.
    let id = cmds[0].id();
    h.engine(Output::Reply(Reply::Allocated {
        id,
        legs: [
            LocalLeg::Plain {
                rtp: SocketAddr::new(US, 30_000),
                video_rtp: None,
            },
            webrtc_local(40_000, Setup::ActPass),
        ],
    }));
    for _ in 0..2 {
        h.engine(Output::Reply(Reply::Stats {
            id,
            stats: SessionStats::default(),
        }));
    }
    let r = h.replies();
    assert_eq!(r.len(), 3);
    assert_eq!(text(&r[0].1, "sdp"), text(&r[1].1, "sdp"));
    assert!(r[2].1.contains_key(&b"totals"[..]));
    // A delete while something waits: the waiter gets an error, the delete its figures.
    h.send(&o);
    assert!(h.replies().len() == 1, "nothing waits: answered at once");
    h.send(&req("query", "c1", "ft", None, None));
    h.send(&req("delete", "c1", "ft", None, None));
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(text(&r[0].1, "error-reason"), "Unknown call-id");
}

#[test]
fn sdes_is_stripped_with_a_warning_and_codec_strip_removes_formats() {
    let mut h = Harness::new();
    let with_crypto = browser_offer().replace(
        "a=mid:0\r\n",
        "a=mid:0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
    );
    let mut o = req("offer", "c1", "ft", None, Some(&with_crypto));
    flags(&mut o, false);
    let mut codec = Dict::new();
    codec.insert(b"strip".to_vec(), list(&["opus", "red", "9"]));
    o.insert(b"codec".to_vec(), Value::Dict(codec));
    h.send(&o);
    h.run_engine();
    let r = h.one_reply();
    assert_eq!(
        text(&r, "warning"),
        "SDES is not supported: a=crypto removed"
    );
    let sdp = text(&r, "sdp");
    assert_eq!(attr_count(&sdp, "a=crypto"), 0);
    assert!(sdp.contains(" RTP/AVP 0 8 13 110 126\r\n"), "{sdp}");
    assert_eq!(attr_count(&sdp, "a=rtpmap:111"), 0);
    assert_eq!(attr_count(&sdp, "a=fmtp:111"), 0);
    assert_eq!(attr_count(&sdp, "a=rtcp-fb:111"), 0);
    // A plain SAVP offer with SDES only: refused, we cannot key it.
    let savp = SIP_OFFER.replace("RTP/AVP", "RTP/SAVP");
    let mut o2 = req("offer", "c2", "ft", None, Some(&savp));
    flags(&mut o2, true);
    h.send(&o2);
    assert_eq!(text(&h.one_reply(), "result"), "error");
}

#[test]
fn sip_offer_with_video_is_one_bundle_towards_the_browser() {
    let mut h = Harness::new();
    let offer = format!("{SIP_OFFER}m=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n");
    let mut o = req("offer", "c1", "ft", None, Some(&offer));
    flags(&mut o, true);
    h.send(&o);
    let cmds = h.commands();
    assert!(matches!(cmds[0], Command::Allocate { video: true, .. }));
    h.engine(Output::Reply(Reply::Allocated {
        id: cmds[0].id(),
        legs: [
            LocalLeg::Plain {
                rtp: SocketAddr::new(US, 30_000),
                video_rtp: Some(SocketAddr::new(US, 30_002)),
            },
            webrtc_local(40_000, Setup::ActPass),
        ],
    }));
    let sdp = text(&h.one_reply(), "sdp");
    assert!(sdp.contains("a=group:BUNDLE 0 1\r\n"), "{sdp}");
    assert!(sdp.contains("m=audio 40000 UDP/TLS/RTP/SAVPF"));
    assert!(sdp.contains("m=video 40000 UDP/TLS/RTP/SAVPF 96\r\n"));
    assert_eq!(attr_count(&sdp, "a=mid:"), 2);
}

#[test]
fn hostile_requests_never_panic_and_every_framed_one_is_answered() {
    // Real request shapes, then their SDPs and keys mutated: the node answers each datagram
    // that has a cookie exactly once, whatever it holds, and the played engine stays in step.
    let mut seeds: Vec<Dict> = Vec::new();
    for (call, to_webrtc, body) in [
        ("c1", false, browser_offer()),
        ("c2", true, SIP_OFFER.to_string()),
    ] {
        let mut o = req("offer", call, "ft", None, Some(&body));
        flags(&mut o, to_webrtc);
        seeds.push(o);
        let answer = if to_webrtc {
            browser_answer()
        } else {
            SIP_ANSWER.to_string()
        };
        let mut a = req("answer", call, "ft", Some("tt"), Some(&answer));
        flags(&mut a, !to_webrtc);
        seeds.push(a);
        seeds.push(req("query", call, "ft", None, None));
        seeds.push(req("delete", call, "ft", Some("tt"), None));
    }
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
    let mut h = Harness::new();
    let mut sent = 0usize;
    let mut answered = 0usize;
    for round in 0..3_000u32 {
        let mut d = seeds[rng.below(seeds.len())].clone();
        if rng.below(3) > 0 {
            // Mutate: an SDP line dropped or garbled, a key's value swapped for junk, the
            // call-id or a tag changed so calls collide.
            let key = [
                &b"sdp"[..],
                b"call-id",
                b"from-tag",
                b"to-tag",
                b"transport-protocol",
                b"rtcp-mux",
                b"codec",
                b"command",
            ][rng.below(8)];
            let junk = match rng.below(5) {
                0 => Value::Int(rng.next_u64() as i64),
                1 => list(&["all", "x", ""]),
                2 => Value::Dict(Dict::new()),
                3 => s(&format!("c{}", rng.below(4))),
                _ => match d.get(key).and_then(Value::as_bytes) {
                    Some(b) if !b.is_empty() => {
                        let mut b = b.to_vec();
                        let i = rng.below(b.len());
                        match rng.below(3) {
                            0 => b[i] = b"\r\n=: 0ma"[rng.below(8)],
                            1 => b.truncate(i),
                            _ => {
                                b.remove(i);
                            }
                        }
                        Value::Bytes(b)
                    }
                    _ => s("v=0\r\nm=audio 0 RTP/AVP\r\n"),
                },
            };
            d.insert(key.to_vec(), junk);
        }
        let cookie = format!("f_{round}");
        h.send_as(&cookie, &d);
        sent += 1;
        // The engine answers at once, or after a few more requests.
        if rng.below(3) == 0 {
            h.run_engine();
        }
        answered += h.replies().len();
        while h.node.poll_event().is_some() {}
        if rng.below(50) == 0 {
            h.now += Duration::from_secs(200);
            h.node.handle_timeout(h.now);
            h.run_engine();
            answered += h.replies().len();
        }
    }
    h.run_engine();
    answered += h.replies().len();
    assert_eq!(answered, sent, "one reply per framed request");
}
