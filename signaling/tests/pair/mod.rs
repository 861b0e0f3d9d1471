//! A whole call on virtual time, with no sockets and no threads (after quinn's test `Pair`):
//! signaling's pure `b2bua::Core`, the engine's pure `Session`s standing in for the reactors,
//! a browser (its SIP over the "WebSocket" handed straight to the core, its media leg
//! `engine::proto::client::ClientLeg`: ICE checks, DTLS, SRTP) and a PBX answering SIP/UDP from
//! a script. Every datagram (SIP/UDP, RTP, STUN, DTLS, SRTP) crosses the kit's seeded
//! `NetEmulator`; time is the kit's `VirtualClock`, moved to the next deadline of whichever
//! party has one.

#![allow(
    clippy::disallowed_methods,
    reason = "a test drives real sockets and processes and bounds its waits by the real clock"
)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of the harness"
)]

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use engine::api::{Command, Event, LegIndex, LegSpec, LocalLeg, Output, Reply, SessionId, Setup};
use engine::proto::client::{ClientLeg, Received, RemoteMedia};
use engine::proto::dtls::{DtlsIdentity, Fingerprint};
use engine::proto::ice::IceCredentials;
use engine::proto::session::{LocalAddrs, Session, SessionConfig, Socket, Stream, Verdict};
use signaling::b2bua::core::{Core, CoreConfig, CoreEvent, Limits, Peer};
use signaling::b2bua::policy::AcceptList;
use signaling::b2bua::route::{literal_host, StaticRoute};
use signaling::sdp::model::Sdp;
use signaling::sdp::pts::PtFilter;
use signaling::sip::msg::{Method, SipMsg};
use signaling::sip::txn::TimerValues;
use signaling::transport::ws::ConnName;
pub use testkit::LinkModel;
use testkit::{Datagram, NetEmulator, VirtualClock};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const fn at(port: u16) -> SocketAddr {
    SocketAddr::new(LOCALHOST, port)
}

/// The gateway's SIP/UDP socket.
pub const GATEWAY_SIP: SocketAddr = at(5060);
/// The engine's shared WebRTC port.
pub const WEBRTC: SocketAddr = at(40_000);
/// The first plain RTP port the engine hands out.
const FIRST_PLAIN_PORT: u16 = 30_000;
/// The browser's media socket.
pub const BROWSER_MEDIA: SocketAddr = at(50_000);
/// The PBX's SIP and RTP sockets.
pub const PBX_SIP: SocketAddr = at(5090);
pub const PBX_RTP: SocketAddr = at(6000);

const INVITE: &[u8] = include_bytes!("../fixtures/sipjs/invite.txt");
const PBX_SDP: &str = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                       m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

/// A test identity (one per process: generating a certificate costs milliseconds).
fn identity() -> DtlsIdentity {
    static ID: std::sync::OnceLock<DtlsIdentity> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        #[allow(
            clippy::disallowed_methods,
            reason = "the certificate's validity period starts at the real time"
        )]
        let now = std::time::SystemTime::now();
        DtlsIdentity::generate(now).expect("a test certificate")
    })
    .clone()
}

/// An RTP packet (PCMU) with `payload` after the 12-byte header.
pub fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The payload of an RTP packet without CSRCs or extensions (what `rtp` writes).
fn payload(p: &[u8]) -> &[u8] {
    &p[12.min(p.len())..]
}

/// The media address an SDP offers: its first section's `c=` and port.
fn sdp_media_addr(body: &[u8]) -> SocketAddr {
    let sdp = Sdp::parse(body).expect("an SDP");
    let m = &sdp.media[0];
    let ip = m.connection().or_else(|| sdp.connection()).expect("c=");
    SocketAddr::new(ip, m.port)
}

// ---------------------------------------------------------------------------------------------
// The engine: Sessions where the reactor would hold them.

/// One session and the local addresses the "reactor" gave it.
struct Held {
    session: Session,
    /// Each leg's plain RTP address (RTCP on the next port), if plain.
    plain: [Option<SocketAddr>; 2],
}

/// The engine's side: what `reactor` does with commands and datagrams, without io_uring.
pub struct Media {
    sessions: BTreeMap<SessionId, Held>,
    next_port: u16,
    config: SessionConfig,
    /// The sessions' ICE credentials: seeded, so a run replays.
    entropy: testkit::SeededRng,
    /// Every output given to the core, in order.
    pub outputs: Vec<Output>,
}

impl Media {
    fn new() -> Self {
        Media {
            sessions: BTreeMap::new(),
            next_port: FIRST_PLAIN_PORT,
            config: SessionConfig::default(),
            entropy: testkit::SeededRng::new(0x5eed),
            outputs: Vec::new(),
        }
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Carries out one command; the replies and events in the order the reactor emits them.
    fn apply(&mut self, now: Instant, cmd: Command) -> Vec<Output> {
        let mut out = Vec::new();
        match cmd {
            Command::Allocate { id, legs, video } => {
                assert!(!video, "the harness plays audio calls");
                let mut plain = [None; 2];
                let local = [0, 1].map(|i| match &legs[i] {
                    LegSpec::WebRtc(_) => LocalAddrs::at(WEBRTC),
                    LegSpec::Plain(_) => {
                        let a = at(self.next_port);
                        self.next_port += 2;
                        plain[i] = Some(a);
                        LocalAddrs::at(a)
                    }
                    LegSpec::Echo => LocalAddrs::NONE,
                });
                let config = self.config.clone();
                match Session::new(
                    id,
                    &legs,
                    local,
                    identity(),
                    config,
                    now,
                    &mut |b: &mut [u8]| self.entropy.fill(b),
                ) {
                    Ok(session) => {
                        let legs = [
                            session.local_leg(LegIndex::A),
                            session.local_leg(LegIndex::B),
                        ];
                        out.push(Output::Reply(Reply::Allocated { id, legs }));
                        self.sessions.insert(id, Held { session, plain });
                    }
                    Err(failure) => out.push(Output::Reply(Reply::Failed { id, failure })),
                }
            }
            Command::Update { id, leg, remote } => {
                let reply = match self.sessions.get_mut(&id) {
                    Some(h) => match h
                        .session
                        .update(now, leg, &remote, &mut |b: &mut [u8]| self.entropy.fill(b))
                    {
                        Ok(local) => Reply::Updated { id, leg, local },
                        Err(failure) => Reply::Failed { id, failure },
                    },
                    None => Reply::Failed {
                        id,
                        failure: engine::api::Failure::UnknownSession,
                    },
                };
                out.push(Output::Reply(reply));
            }
            Command::Release { id } => match self.sessions.remove(&id) {
                Some(h) => out.push(Output::Event(Event::Released {
                    id,
                    stats: h.session.stats(),
                })),
                None => out.push(Output::Reply(Reply::Failed {
                    id,
                    failure: engine::api::Failure::UnknownSession,
                })),
            },
            Command::Query { id } => out.push(Output::Reply(match self.sessions.get(&id) {
                Some(h) => Reply::Stats {
                    id,
                    stats: h.session.stats(),
                },
                None => Reply::Failed {
                    id,
                    failure: engine::api::Failure::UnknownSession,
                },
            })),
        }
        out
    }

    /// The session and local socket a datagram to `to` from `from` reaches, as the reactor
    /// routes it: plain ports by port; the WebRTC port by the source's route, else (STUN from a
    /// new source) the one session with a WebRTC leg.
    fn route(&self, to: SocketAddr, from: SocketAddr) -> Option<(SessionId, Socket)> {
        if to == WEBRTC {
            let by_route = self
                .sessions
                .iter()
                .find(|(_, h)| h.session.routes().any(|r| r == from));
            let any = || {
                self.sessions.iter().find(|(_, h)| {
                    [LegIndex::A, LegIndex::B]
                        .iter()
                        .any(|&l| matches!(h.session.local_leg(l), LocalLeg::WebRtc { .. }))
                })
            };
            return by_route.or_else(any).map(|(id, _)| (*id, Socket::WebRtc));
        }
        self.sessions.iter().find_map(|(id, h)| {
            [LegIndex::A, LegIndex::B]
                .into_iter()
                .zip(h.plain)
                .find_map(|(leg, p)| {
                    let p = p?;
                    if to == p {
                        Some((*id, Socket::Rtp(leg, Stream::Audio)))
                    } else if to == at(p.port() + 1) {
                        Some((*id, Socket::Rtcp(leg, Stream::Audio)))
                    } else {
                        None
                    }
                })
        })
    }

    fn local_addr(&self, id: SessionId, via: Socket) -> SocketAddr {
        let h = &self.sessions[&id];
        match via {
            Socket::WebRtc => WEBRTC,
            Socket::Rtp(leg, _) => h.plain[leg as usize].expect("a plain leg"),
            Socket::Rtcp(leg, _) => at(h.plain[leg as usize].expect("a plain leg").port() + 1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The browser: SIP straight into the core's "WebSocket", media through a ClientLeg.

pub struct Browser {
    pub conn: ConnName,
    ice: IceCredentials,
    identity: DtlsIdentity,
    /// The INVITE it sent, and the 2xx that answered it.
    pub invite: Option<SipMsg>,
    pub answer: Option<SipMsg>,
    /// Everything the gateway sent it, in order.
    pub received: Vec<SipMsg>,
    /// Requests waiting to be sent to the core.
    outbox: VecDeque<String>,
    pub leg: Option<ClientLeg>,
    /// Payloads of the RTP packets its leg unprotected.
    pub media_in: Vec<Vec<u8>>,
    pub bad_srtp: usize,
    cseq: u32,
}

impl Browser {
    fn new() -> Self {
        Browser {
            conn: ConnName("pair.invalid".into()),
            ice: IceCredentials::random().expect("random ICE credentials"),
            identity: identity(),
            invite: None,
            answer: None,
            received: Vec::new(),
            outbox: VecDeque::new(),
            leg: None,
            media_in: Vec::new(),
            bad_srtp: 0,
            cseq: 1,
        }
    }

    /// Chromium's offer (the SIP.js fixture) with this browser's ICE credentials, fingerprint
    /// and address.
    fn offer(&self, invite: &SipMsg) -> String {
        let fixture = String::from_utf8_lossy(&invite.body).into_owned();
        let mut sdp = String::new();
        for line in fixture.split("\r\n").filter(|l| !l.is_empty()) {
            let line = if line.starts_with("a=candidate:") {
                if !line.contains(" udp ") || line.contains("fd00::") {
                    continue;
                }
                format!(
                    "a=candidate:1 1 udp 2122194687 127.0.0.1 {} typ host",
                    BROWSER_MEDIA.port()
                )
            } else if line.starts_with("m=audio ") {
                line.replacen("45421", &BROWSER_MEDIA.port().to_string(), 1)
            } else if line.starts_with("c=") {
                "c=IN IP4 127.0.0.1".to_string()
            } else if line.starts_with("a=ice-ufrag:") {
                format!("a=ice-ufrag:{}", self.ice.ufrag)
            } else if line.starts_with("a=ice-pwd:") {
                format!("a=ice-pwd:{}", self.ice.pwd)
            } else if line.starts_with("a=fingerprint:") {
                format!("a=fingerprint:{}", self.identity.fingerprint().to_sdp())
            } else {
                line.to_string()
            };
            sdp.push_str(&line);
            sdp.push_str("\r\n");
        }
        sdp
    }

    /// Queues SIP.js's INVITE (to the PBX's `sip:bob@127.0.0.1`) with this browser's offer.
    pub fn call(&mut self) {
        let mut inv = SipMsg::parse(INVITE).expect("the fixture parses");
        inv.body = self.offer(&inv).into_bytes();
        self.outbox
            .push_back(String::from_utf8(inv.to_bytes()).expect("SIP is text"));
        self.invite = Some(inv);
    }

    /// An in-dialog request of the answered call.
    fn in_dialog(&mut self, method: &str) -> String {
        let inv = self.invite.as_ref().expect("a call");
        let ok = self.answer.as_ref().expect("an answered call");
        let contact = ok.header("Contact").expect("the 2xx has a Contact");
        let uri = contact
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or(contact);
        let cseq = if method == "ACK" { 1 } else { self.cseq };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/WSS pair.invalid;branch=z9hG4bK{method}{cseq}pair\r\n\
             Max-Forwards: 70\r\nTo: {}\r\nFrom: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            ok.header("To").unwrap_or_default(),
            inv.header("From").unwrap_or_default(),
            inv.call_id(),
        )
    }

    /// Queues a BYE for the answered call.
    pub fn hang_up(&mut self) {
        self.cseq += 1;
        let bye = self.in_dialog("BYE");
        self.outbox.push_back(bye);
    }

    /// A message from the gateway: a 2xx to the INVITE is ACKed and starts the media leg; a
    /// BYE is answered 200.
    fn handle_sip(&mut self, now: Instant, m: SipMsg) {
        if m.status().is_some_and(|s| (200..300).contains(&s)) && m.cseq().method == Method::Invite
        {
            let first = self.answer.is_none();
            self.answer = Some(m.clone());
            let ack = self.in_dialog("ACK");
            self.outbox.push_back(ack);
            if first {
                let remote = remote_media(&m.body);
                self.leg = Some(ClientLeg::new(
                    self.ice.clone(),
                    self.identity.clone(),
                    remote,
                    0x5041_4952,
                    now,
                ));
            }
        } else if m.method() == Some(&Method::Bye) {
            let ok = m.response(200, "OK", None);
            self.outbox
                .push_back(String::from_utf8(ok.to_bytes()).expect("SIP is text"));
        }
        self.received.push(m);
    }

    /// The final status of the browser's request `method`, if one came.
    pub fn final_status(&self, method: Method) -> Option<u16> {
        self.received
            .iter()
            .filter(|m| m.cseq().method == method)
            .filter_map(|m| m.status())
            .find(|&s| s >= 200)
    }

    /// Protects one RTP packet and returns it (to be sent to the gateway).
    fn protect(&mut self, packet: &[u8]) -> Vec<u8> {
        let leg = self.leg.as_mut().expect("a media leg");
        let mut buf = packet.to_vec();
        buf.resize(1500, 0);
        let n = leg.protect(&mut buf, packet.len()).expect("SRTP keys");
        buf.truncate(n);
        buf
    }

    pub fn is_connected(&self) -> bool {
        self.leg.as_ref().is_some_and(ClientLeg::is_connected)
    }
}

/// What the gateway's SDP answer tells the browser's leg (ICE-lite, a host candidate or `c=`).
fn remote_media(body: &[u8]) -> RemoteMedia {
    let sdp = Sdp::parse(body).expect("the answer's SDP parses");
    let m = &sdp.media[0];
    let get = |name: &str| m.attr(name).or_else(|| sdp.attr(name));
    let setup = match get("setup") {
        Some("active") => Setup::Active,
        Some("passive") => Setup::Passive,
        _ => Setup::ActPass,
    };
    let from_candidate = m.attrs("candidate").find_map(|c| {
        let f: Vec<&str> = c.split_whitespace().collect();
        Some(SocketAddr::new(
            f.get(4)?.parse().ok()?,
            f.get(5)?.parse().ok()?,
        ))
    });
    RemoteMedia {
        addr: from_candidate.unwrap_or_else(|| sdp_media_addr(body)),
        ice: IceCredentials {
            ufrag: get("ice-ufrag").expect("ice-ufrag").to_string(),
            pwd: get("ice-pwd").expect("ice-pwd").to_string(),
        },
        fingerprint: Fingerprint::parse(get("fingerprint").expect("a fingerprint"))
            .expect("a valid fingerprint"),
        setup,
        ice_lite: sdp.attr("ice-lite").is_some() || m.has_attr("ice-lite"),
    }
}

// ---------------------------------------------------------------------------------------------
// The PBX: SIP/UDP answers written as a script, plain RTP.

/// One step of the PBX's script.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Wait for a `method` request; answer it with these statuses (a 2xx to INVITE carries
    /// the PBX's SDP). A retransmission of an answered request gets the same answers again.
    Answer(Method, &'static [u16]),
    /// Send a BYE in the dialog of the INVITE answered (RFC 3261 §15.1.1) and wait for its
    /// final response.
    Bye,
}

pub struct ScriptedPbx {
    script: VecDeque<Step>,
    /// Answers sent, by (Call-ID, CSeq), for retransmissions.
    answered: Vec<(String, String, Vec<SipMsg>)>,
    /// Every SIP message it received, in order.
    pub received: Vec<SipMsg>,
    /// Requests the script did not expect.
    pub unexpected: Vec<SipMsg>,
    /// The INVITE it answered.
    pub invite: Option<SipMsg>,
    outbox: VecDeque<Vec<u8>>,
    /// Payloads of the plain RTP packets it received at `PBX_RTP`, and from where.
    pub media_in: Vec<(SocketAddr, Vec<u8>)>,
}

const PBX_TAG: &str = "pbx1";

impl ScriptedPbx {
    fn new(script: Vec<Step>) -> Self {
        ScriptedPbx {
            script: script.into(),
            answered: Vec::new(),
            received: Vec::new(),
            unexpected: Vec::new(),
            invite: None,
            outbox: VecDeque::new(),
            media_in: Vec::new(),
        }
    }

    /// Adds a step at the end of the script.
    pub fn then(&mut self, step: Step) {
        self.script.push_back(step);
    }

    /// Whether every step of the script has happened.
    pub fn is_done(&self) -> bool {
        self.script.is_empty()
    }

    /// The next step, if it is to send.
    fn act(&mut self) {
        if self.script.front() != Some(&Step::Bye) {
            return;
        }
        let inv = self
            .invite
            .as_ref()
            .expect("a BYE after an answered INVITE");
        let contact = inv.header("Contact").expect("the INVITE has a Contact");
        let uri = contact
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or(contact);
        let bye = format!(
            "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {PBX_SIP};branch=z9hG4bKpbxbye1\r\n\
             Max-Forwards: 70\r\nFrom: {};tag={PBX_TAG}\r\nTo: {}\r\nCall-ID: {}\r\n\
             CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            inv.header("To").unwrap_or_default(),
            inv.header("From").unwrap_or_default(),
            inv.call_id(),
        );
        self.outbox.push_back(bye.into_bytes());
        // Now waiting for the final response to it.
        self.script[0] = Step::Answer(Method::Bye, &[]);
    }

    fn handle_sip(&mut self, m: SipMsg) {
        self.received.push(m.clone());
        let cseq = m.header("CSeq").unwrap_or_default().to_string();
        if let Some(status) = m.status() {
            // The final response to our BYE ends the Bye step.
            if m.cseq().method == Method::Bye
                && status >= 200
                && self.script.front() == Some(&Step::Answer(Method::Bye, &[]))
            {
                self.script.pop_front();
            }
            return;
        }
        if let Some((_, _, sent)) = self
            .answered
            .iter()
            .find(|(c, s, _)| c == m.call_id() && *s == cseq)
        {
            // A retransmission (or the ACK of a 2xx, which has its own CSeq method).
            for r in sent.clone() {
                self.outbox.push_back(r.to_bytes());
            }
            return;
        }
        let method = m.method().cloned().expect("a request");
        match self.script.front() {
            Some(Step::Answer(want, statuses)) if *want == method => {
                let statuses = *statuses;
                self.script.pop_front();
                let mut sent = Vec::new();
                for &code in statuses {
                    let mut r = m.response(code, "Scripted", Some(PBX_TAG));
                    if method == Method::Invite && (200..300).contains(&code) {
                        r.push_header("Contact", format!("<sip:pbx@{PBX_SIP}>"));
                        r.push_header("Content-Type", "application/sdp");
                        r.body = PBX_SDP.as_bytes().to_vec();
                    }
                    self.outbox.push_back(r.to_bytes());
                    sent.push(r);
                }
                if method == Method::Invite {
                    self.invite = Some(m.clone());
                }
                self.answered.push((m.call_id().to_string(), cseq, sent));
            }
            _ => self.unexpected.push(m),
        }
    }

    /// Where the gateway wants the PBX's RTP: the INVITE's SDP.
    pub fn media_peer(&self) -> SocketAddr {
        sdp_media_addr(&self.invite.as_ref().expect("an INVITE").body)
    }
}

// ---------------------------------------------------------------------------------------------
// The pair.

/// The core, the engine, a browser and a PBX on one virtual clock and one emulated network.
pub struct Pair {
    pub clock: VirtualClock,
    pub net: NetEmulator,
    pub core: Core,
    pub media: Media,
    pub browser: Browser,
    pub pbx: ScriptedPbx,
    /// Every event the core reported.
    pub events: Vec<CoreEvent>,
    /// Keep the wall clock at least as far on as the virtual one: see [`Pair::pace_wall_clock`].
    wall: Option<Instant>,
    buf: Vec<u8>,
}

/// The gateway's configuration: browser calls routed to the PBX, PCMU only.
fn core_config() -> CoreConfig {
    let mut route = StaticRoute::parse(&PBX_SIP.to_string()).expect("a route");
    route.resolve(literal_host).expect("a literal address");
    CoreConfig {
        own_host: "127.0.0.1".into(),
        sip_port: GATEWAY_SIP.port(),
        proxy: Some(vec![PBX_SIP]),
        timers: TimerValues::default(),
        route: Some(route),
        accept: AcceptList::parse("[[WSS]],[[PROXY]]").expect("valid"),
        pts: PtFilter::parse("[PCMU/8000]").expect("valid"),
        advertise: LOCALHOST,
        limits: Limits::default(),
    }
}

impl Pair {
    /// A pair whose network follows `net` and whose PBX plays `script`.
    pub fn new(net: NetEmulator, script: Vec<Step>) -> Self {
        let mut core = Core::new(core_config());
        let browser = Browser::new();
        core.handle_ws_opened(&browser.conn, LOCALHOST);
        Pair {
            clock: VirtualClock::new(),
            net,
            core,
            media: Media::new(),
            browser,
            pbx: ScriptedPbx::new(script),
            events: Vec::new(),
            wall: None,
            buf: vec![0; 2048],
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// DTLS retransmission is the one thing that cannot run on virtual time alone: OpenSSL
    /// keeps its retransmit timer on the wall clock and ignores a poke before it has run out
    /// (the documented seam in engine/src/proto/dtls/mod.rs). A test that needs retransmissions
    /// calls this: from then on each jump of the virtual clock waits until as much real time
    /// has passed, so OpenSSL agrees the timer expired. Everything else stays virtual.
    pub fn pace_wall_clock(&mut self) {
        #[allow(
            clippy::disallowed_methods,
            reason = "the wall clock OpenSSL's DTLS timer runs on, read to pace virtual time"
        )]
        let wall = Instant::now();
        // The wall instant that corresponds to the virtual clock's origin.
        self.wall = Some(wall - self.clock.elapsed());
    }

    fn wait_for_wall(&self, t: Instant) {
        let Some(origin) = self.wall else {
            return;
        };
        let target = origin + (t - self.clock.origin());
        #[allow(
            clippy::disallowed_methods,
            reason = "pacing against OpenSSL's wall-clock DTLS timer (see pace_wall_clock)"
        )]
        let wall = Instant::now();
        if let Some(d) = target.checked_duration_since(wall) {
            std::thread::sleep(d);
        }
    }

    fn deliver(&mut self, now: Instant, d: Datagram) {
        match d.to {
            GATEWAY_SIP => self.core.handle_datagram(now, d.from, &d.data),
            PBX_SIP => match SipMsg::parse(&d.data) {
                Ok(m) => self.pbx.handle_sip(m),
                Err(e) => panic!("the PBX got unparsable SIP ({e:?}): {:?}", d.data),
            },
            PBX_RTP => self.pbx.media_in.push((d.from, payload(&d.data).to_vec())),
            BROWSER_MEDIA => {
                let Some(leg) = self.browser.leg.as_mut() else {
                    return;
                };
                let n = d.data.len();
                self.buf[..n].copy_from_slice(&d.data);
                match leg.handle_input(now, &mut self.buf, n) {
                    Received::Rtp(len) => self
                        .browser
                        .media_in
                        .push(payload(&self.buf[..len]).to_vec()),
                    Received::BadSrtp => self.browser.bad_srtp += 1,
                    Received::Control => {}
                }
            }
            to => {
                let Some((id, via)) = self.media.route(to, d.from) else {
                    return; // no session there (any more): the reactor drops it too
                };
                let n = d.data.len();
                self.buf[..n].copy_from_slice(&d.data);
                let held = self
                    .media
                    .sessions
                    .get_mut(&id)
                    .expect("routed to a live session");
                if let Verdict::Forward { via, to, len } =
                    held.session
                        .handle_datagram(now, via, d.from, &mut self.buf, n)
                {
                    let from = self.media.local_addr(id, via);
                    self.net.send(now, from, to, &self.buf[..len]);
                }
            }
        }
    }

    /// Everything due at the current time, until nobody has anything more to say.
    fn pump(&mut self) {
        let now = self.clock.now();
        loop {
            let mut busy = false;
            while let Some(d) = self.net.poll(now) {
                self.deliver(now, d);
                busy = true;
            }
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            while let Some(bytes) = self.browser.outbox.pop_front() {
                let conn = Peer::Ws(self.browser.conn.clone());
                self.core.handle_message(now, conn, bytes.as_bytes());
                busy = true;
            }
            while let Some(t) = self.core.poll_transmit() {
                busy = true;
                match t.to {
                    Peer::Ws(_) => {
                        let m = SipMsg::parse(&t.bytes).expect("the core writes valid SIP");
                        self.browser.handle_sip(now, m);
                    }
                    Peer::Udp(to) => self.net.send(now, GATEWAY_SIP, to, &t.bytes),
                }
            }
            while let Some(cmd) = self.core.poll_command() {
                busy = true;
                for out in self.media.apply(now, cmd) {
                    self.media.outputs.push(out.clone());
                    self.core.handle_engine(now, out);
                }
            }
            while let Some(e) = self.core.poll_event() {
                self.events.push(e);
            }
            let ids: Vec<SessionId> = self.media.sessions.keys().copied().collect();
            for id in ids {
                let held = self.media.sessions.get_mut(&id).expect("listed");
                if held.session.poll_timeout().is_some_and(|t| t <= now) {
                    held.session.handle_timeout(now);
                }
                while let Some(t) = held.session.poll_transmit(&mut self.buf) {
                    busy = true;
                    let from = match t.via {
                        Socket::WebRtc => WEBRTC,
                        Socket::Rtp(leg, _) => held.plain[leg as usize].expect("plain"),
                        Socket::Rtcp(leg, _) => {
                            at(held.plain[leg as usize].expect("plain").port() + 1)
                        }
                    };
                    self.net.send(now, from, t.to, &self.buf[..t.len]);
                }
                let mut events = Vec::new();
                while let Some(e) = held.session.poll_event() {
                    events.push(e);
                }
                for e in events {
                    busy = true;
                    self.media.outputs.push(Output::Event(e.clone()));
                    self.core.handle_engine(now, Output::Event(e));
                }
            }
            if let Some(leg) = self.browser.leg.as_mut() {
                if leg.poll_timeout() <= now {
                    leg.handle_timeout(now);
                }
                while let Some(p) = leg.poll_transmit() {
                    busy = true;
                    let to = leg.remote_addr();
                    self.net.send(now, BROWSER_MEDIA, to, &p);
                }
            }
            self.pbx.act();
            while let Some(bytes) = self.pbx.outbox.pop_front() {
                busy = true;
                self.net.send(now, PBX_SIP, GATEWAY_SIP, &bytes);
            }
            if !busy {
                return;
            }
        }
    }

    /// The earliest deadline of anyone.
    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .media
            .sessions
            .values()
            .filter_map(|h| h.session.poll_timeout());
        let leg = self.browser.leg.as_ref().map(ClientLeg::poll_timeout);
        [self.net.next_deadline(), self.core.poll_timeout(), leg]
            .into_iter()
            .flatten()
            .chain(sessions)
            .min()
    }

    /// Runs (virtual time, deadline to deadline) until `done` holds, for at most `limit`;
    /// whether it came to hold.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&Pair) -> bool) -> bool {
        let end = self.clock.now() + limit;
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            match self.next_deadline() {
                Some(t) if t <= end => {
                    let t = t.max(self.clock.now());
                    self.wait_for_wall(t);
                    self.clock.set(t);
                }
                _ => return false,
            }
        }
    }

    /// Moves time on by `d`, handling everything due on the way.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.clock.now() + d;
        self.run_until(d, |p| p.now() >= end);
        self.clock.set(end.max(self.clock.now()));
        self.pump();
    }

    /// The browser sends one RTP packet (SRTP) to the gateway.
    pub fn browser_sends(&mut self, seq: u16, payload: &[u8]) {
        let srtp = self.browser.protect(&rtp(seq, 0xb0b0_b0b0, payload));
        let to = self.browser.leg.as_ref().expect("a leg").remote_addr();
        self.net.send(self.clock.now(), BROWSER_MEDIA, to, &srtp);
    }

    /// The PBX sends one plain RTP packet to the gateway.
    pub fn pbx_sends(&mut self, seq: u16, payload: &[u8]) {
        let to = self.pbx.media_peer();
        self.net.send(
            self.clock.now(),
            PBX_RTP,
            to,
            &rtp(seq, 0x0bb0_0bb0, payload),
        );
    }

    /// Whether the core reported the call as ended.
    pub fn call_ended(&self) -> Option<&signaling::b2bua::core::CallRecord> {
        self.events.iter().find_map(|e| match e {
            CoreEvent::CallEnded(r) => Some(r),
            _ => None,
        })
    }

    /// Whether the engine told the core a DTLS handshake finished.
    pub fn engine_dtls_connected(&self) -> bool {
        self.media
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Event(Event::DtlsConnected { .. })))
    }
}
