//! Whole-session tests on a virtual clock: a browser built from engine::proto (ICE checks,
//! DTLS in either role, SRTP) against a session whose other leg is plain or an echo.

use super::*;
use crate::api::{Direction, PlainRemote, Setup, WebRtcRemote};
use crate::proto::dtls::{DtlsConfig, DtlsEndpoint, DtlsEvent, Fingerprint};
use crate::proto::srtp::SrtpKeys;
use crate::proto::srtp::{Direction as SrtpDirection, SrtpSession};
use crate::proto::stun::{Class, StunMessage, StunWriter, METHOD_BINDING};
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;
use testkit::VirtualClock;

/// A seeded source of ICE credentials for a session (the same seed, the same credentials).
pub(crate) fn seeded(seed: u64) -> impl FnMut(&mut [u8]) {
    let mut rng = testkit::SeededRng::new(seed);
    move |b: &mut [u8]| rng.fill(b)
}

/// Two process-wide identities: the relay's and the test browser's.
pub(crate) fn identity(n: usize) -> DtlsIdentity {
    static IDS: OnceLock<[DtlsIdentity; 3]> = OnceLock::new();
    IDS.get_or_init(|| {
        let t = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        [
            DtlsIdentity::generate(t).unwrap(),
            DtlsIdentity::generate(t).unwrap(),
            DtlsIdentity::generate(t).unwrap(),
        ]
    })[n]
        .clone()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A browser in the client role of everything, built from engine::proto: ICE checks with
/// USE-CANDIDATE, DTLS in the role its `a=setup` implies, SRTP from the exported keys.
pub(crate) struct Browser {
    pub(crate) addr: SocketAddr,
    pub(crate) creds: IceCredentials,
    pub(crate) relay: IceCredentials,
    pub(crate) setup: Setup,
    pub(crate) dtls: Option<DtlsEndpoint>,
    pub(crate) srtp_in: Option<SrtpSession>,
    pub(crate) srtp_out: Option<SrtpSession>,
    /// Which test identity the browser's certificate is (1, or 2 after a "new device").
    pub(crate) cert: usize,
    tx: u8,
}

impl Browser {
    pub(crate) fn new(addr: SocketAddr, setup: Setup) -> Self {
        Self {
            addr,
            creds: IceCredentials::random().unwrap(),
            relay: IceCredentials {
                ufrag: String::new(),
                pwd: String::new(),
            },
            setup,
            dtls: None,
            srtp_in: None,
            srtp_out: None,
            cert: 1,
            tx: 0,
        }
    }

    pub(crate) fn remote(&self) -> WebRtcRemote {
        WebRtcRemote {
            ice_ufrag: self.creds.ufrag.clone(),
            ice_pwd: self.creds.pwd.clone(),
            fingerprint: identity(self.cert).fingerprint().to_sdp(),
            setup: self.setup,
            direction: Direction::SendRecv,
            payload_types: vec![0, 8, 101],
            mid_ext: None,
            video_mid: None,
        }
    }

    pub(crate) fn learn(&mut self, local: &LocalLeg) {
        let LocalLeg::WebRtc {
            ice_ufrag, ice_pwd, ..
        } = local
        else {
            panic!("not a WebRTC leg: {local:?}");
        };
        self.relay = IceCredentials {
            ufrag: ice_ufrag.clone(),
            pwd: ice_pwd.clone(),
        };
    }

    /// A Binding request to the relay.
    pub(crate) fn check(&mut self, buf: &mut [u8], nominate: bool) -> usize {
        self.tx = self.tx.wrapping_add(1);
        let user = format!("{}:{}", self.relay.ufrag, self.creds.ufrag);
        let mut w = StunWriter::new(buf, METHOD_BINDING, Class::Request, &[self.tx; 12])
            .unwrap()
            .username(user.as_bytes())
            .unwrap()
            .priority(1_853_817_087)
            .unwrap()
            .ice_controlling(0x1234)
            .unwrap();
        if nominate {
            w = w.use_candidate().unwrap();
        }
        w.message_integrity(self.relay.pwd.as_bytes())
            .unwrap()
            .fingerprint()
            .unwrap()
            .finish()
    }

    /// Checks a Binding success response from the relay.
    pub(crate) fn verify_response(&self, resp: &[u8]) {
        let m = StunMessage::parse(resp).unwrap();
        assert_eq!(m.class(), Class::Success);
        assert_eq!(m.txid(), &[self.tx; 12]);
        assert_eq!(m.xor_mapped_address(), Some(self.addr));
        m.verify_integrity(self.relay.pwd.as_bytes()).unwrap();
        m.verify_fingerprint().unwrap();
    }

    pub(crate) fn start_dtls(&mut self, relay_fp: &str, now: Instant) {
        let role = match self.setup {
            Setup::Active | Setup::ActPass => DtlsRole::Client,
            Setup::Passive => DtlsRole::Server,
        };
        let fp = Fingerprint::parse(relay_fp).unwrap();
        self.dtls =
            Some(DtlsEndpoint::new(&identity(self.cert), DtlsConfig::new(role, fp), now).unwrap());
    }

    /// Takes the DTLS result, if the handshake finished.
    pub(crate) fn poll_dtls(&mut self) {
        while let Some(e) = self.dtls.as_mut().unwrap().poll_event() {
            match e {
                DtlsEvent::Connected { profile, keys } => {
                    let SrtpKeys { local, remote, .. } = keys;
                    self.srtp_in =
                        Some(SrtpSession::new(profile, &remote, SrtpDirection::Inbound).unwrap());
                    self.srtp_out =
                        Some(SrtpSession::new(profile, &local, SrtpDirection::Outbound).unwrap());
                }
                other => panic!("browser DTLS: {other:?}"),
            }
        }
    }
}

/// An RTP packet: 12-byte header, 160-byte payload that depends on `seq`.
pub(crate) fn rtp(buf: &mut [u8], pt: u8, seq: u16, ssrc: u32) -> usize {
    buf[0] = 0x80;
    buf[1] = pt;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in buf[12..172].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    172
}

/// An RTCP receiver report with no blocks, plus an SDES-less padding-free body.
pub(crate) fn rtcp(buf: &mut [u8], ssrc: u32) -> usize {
    buf[..4].copy_from_slice(&[0x80, 201, 0, 1]);
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    8
}

const WEBRTC_LOCAL: &str = "127.0.0.1:40000";
const PLAIN_LOCAL: &str = "127.0.0.1:40002";
const BROWSER: &str = "127.0.0.1:50000";
const PBX: &str = "127.0.0.1:60000";
const PBX_RTCP: &str = "127.0.0.1:60001";

fn plain_remote(direction: Direction) -> PlainRemote {
    PlainRemote {
        rtp: Some(addr(PBX)),
        rtcp: Some(addr(PBX_RTCP)),
        rtcp_mux: false,
        direction,
        payload_types: vec![0, 8, 101],
        video: None,
    }
}

struct Call {
    s: Session,
    now: Instant,
    b: Browser,
    buf: Vec<u8>,
}

impl Call {
    /// Allocates WebRTC (leg A) + plain (leg B) with both remotes known.
    fn new(setup: Setup, config: SessionConfig) -> Self {
        let now = VirtualClock::new().now();
        let mut b = Browser::new(addr(BROWSER), setup);
        let s = Session::new(
            SessionId(7),
            &[
                LegSpec::WebRtc(Some(b.remote())),
                LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
            ],
            [
                LocalAddrs::at(addr(WEBRTC_LOCAL)),
                LocalAddrs::at(addr(PLAIN_LOCAL)),
            ],
            identity(0),
            config,
            now,
            &mut seeded(3),
        )
        .unwrap();
        b.learn(&s.local_leg(LegIndex::A));
        Self {
            s,
            now,
            b,
            buf: vec![0u8; 2048],
        }
    }

    fn check(&mut self, nominate: bool) -> Verdict {
        let n = self.b.check(&mut self.buf, nominate);
        let v = self
            .s
            .handle_datagram(self.now, Socket::WebRtc, self.b.addr, &mut self.buf, n);
        if let Verdict::Forward { via, to, len } = v {
            assert_eq!((via, to), (Socket::WebRtc, self.b.addr));
            self.b.verify_response(&self.buf[..len]);
        }
        v
    }

    /// Moves DTLS datagrams both ways until quiet.
    fn pump_dtls(&mut self) {
        for _ in 0..20 {
            let mut moved = false;
            while let Some(d) = self.b.dtls.as_mut().unwrap().poll_transmit() {
                moved = true;
                self.buf[..d.len()].copy_from_slice(&d);
                let v = self.s.handle_datagram(
                    self.now,
                    Socket::WebRtc,
                    self.b.addr,
                    &mut self.buf,
                    d.len(),
                );
                assert_eq!(v, Verdict::Consumed);
            }
            let mut out = [0u8; 2048];
            while let Some(t) = self.s.poll_transmit(&mut out) {
                moved = true;
                assert_eq!((t.via, t.to), (Socket::WebRtc, self.b.addr));
                self.b
                    .dtls
                    .as_mut()
                    .unwrap()
                    .handle_input(self.now, &out[..t.len]);
            }
            if !moved {
                break;
            }
        }
        self.b.poll_dtls();
    }

    /// ICE nomination and the DTLS handshake; returns the events.
    fn connect(&mut self) -> Vec<Event> {
        assert!(matches!(self.check(true), Verdict::Forward { .. }));
        assert!(self.s.poll_routes_changed());
        assert_eq!(self.s.routes().collect::<Vec<_>>(), [self.b.addr]);
        let fp = identity(0).fingerprint().to_sdp();
        self.b.start_dtls(&fp, self.now);
        self.pump_dtls();
        assert!(self.b.srtp_out.is_some(), "browser DTLS connected");
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    /// Browser → relay → PBX: the PBX receives the browser's plaintext unchanged.
    fn browser_sends(&mut self, seq: u16) -> Verdict {
        let mut plain = [0u8; 172];
        rtp(&mut plain, 0, seq, 0xb0b0);
        self.buf[..172].copy_from_slice(&plain);
        let n = self
            .b
            .srtp_out
            .as_mut()
            .unwrap()
            .protect_rtp(&mut self.buf, 172)
            .unwrap();
        let v = self
            .s
            .handle_datagram(self.now, Socket::WebRtc, self.b.addr, &mut self.buf, n);
        if let Verdict::Forward { via, to, len } = v {
            assert_eq!(
                (via, to),
                (Socket::Rtp(LegIndex::B, Stream::Audio), addr(PBX))
            );
            assert_eq!(&self.buf[..len], &plain[..]);
        }
        v
    }

    /// PBX → relay → browser: the browser decrypts what the PBX sent.
    fn pbx_sends(&mut self, seq: u16) -> Verdict {
        let mut plain = [0u8; 172];
        rtp(&mut plain, 8, seq, 0xfeed);
        self.buf[..172].copy_from_slice(&plain);
        let v = self.s.handle_datagram(
            self.now,
            Socket::Rtp(LegIndex::B, Stream::Audio),
            addr(PBX),
            &mut self.buf,
            172,
        );
        if let Verdict::Forward { via, to, len } = v {
            assert_eq!((via, to), (Socket::WebRtc, self.b.addr));
            assert_ne!(&self.buf[12..172], &plain[12..], "encrypted");
            let n = self
                .b
                .srtp_in
                .as_mut()
                .unwrap()
                .unprotect_rtp(&mut self.buf, len)
                .unwrap();
            assert_eq!(&self.buf[..n], &plain[..]);
        }
        v
    }
}

fn forwarded(v: Verdict) -> bool {
    matches!(v, Verdict::Forward { .. })
}

fn media_both_ways(setup: Setup) {
    let mut c = Call::new(setup, SessionConfig::default());
    let want_setup = if setup == Setup::Passive {
        Setup::Active
    } else {
        Setup::Passive
    };
    assert!(
        matches!(c.s.local_leg(LegIndex::A), LocalLeg::WebRtc { setup, .. } if setup == want_setup)
    );
    let events = c.connect();
    assert_eq!(
        events[0],
        Event::IceConnected {
            id: SessionId(7),
            leg: LegIndex::A,
            remote: c.b.addr
        }
    );
    assert!(matches!(
        &events[1],
        Event::DtlsConnected {
            leg: LegIndex::A,
            ..
        }
    ));
    for seq in 0..50 {
        assert!(forwarded(c.browser_sends(seq)));
        assert!(forwarded(c.pbx_sends(1000 + seq)));
    }
    // RTCP: SRTCP from the browser reaches the PBX's RTCP port in the clear, and back.
    let mut plain = [0u8; 8];
    rtcp(&mut plain, 0xb0b0);
    c.buf[..8].copy_from_slice(&plain);
    let n =
        c.b.srtp_out
            .as_mut()
            .unwrap()
            .protect_rtcp(&mut c.buf, 8)
            .unwrap();
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n);
    assert_eq!(
        v,
        Verdict::Forward {
            via: Socket::Rtcp(LegIndex::B, Stream::Audio),
            to: addr(PBX_RTCP),
            len: 8
        }
    );
    assert_eq!(&c.buf[..8], &plain);
    rtcp(&mut c.buf, 0xfeed);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtcp(LegIndex::B, Stream::Audio),
        addr(PBX_RTCP),
        &mut c.buf,
        8,
    );
    let Verdict::Forward { via, to, len } = v else {
        panic!("{v:?}")
    };
    assert_eq!((via, to), (Socket::WebRtc, c.b.addr));
    let n =
        c.b.srtp_in
            .as_mut()
            .unwrap()
            .unprotect_rtcp(&mut c.buf, len)
            .unwrap();
    assert_eq!(n, 8);
    let st = c.s.stats();
    assert_eq!(st.legs[0].packets_in, 51);
    assert_eq!(st.legs[0].bytes_in, 50 * 172 + 8);
    assert_eq!(st.legs[1].packets_out, 51);
    assert_eq!(st.legs[1].packets_in, 51);
    assert_eq!(st.legs[0].packets_out, 51);
    assert_eq!((st.legs[0].lost, st.legs[1].lost), (0, 0));
    assert_eq!(c.s.drops().total(), 0);
}

#[test]
fn media_both_ways_relay_as_dtls_server() {
    media_both_ways(Setup::Active);
}

#[test]
fn media_both_ways_relay_as_dtls_server_for_actpass() {
    media_both_ways(Setup::ActPass);
}

#[test]
fn media_both_ways_relay_as_dtls_client() {
    media_both_ways(Setup::Passive);
}

#[test]
fn nothing_but_stun_before_ice_and_no_media_before_dtls() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    // Before any check, the browser's address is unknown to the session.
    rtp(&mut c.buf, 0, 1, 1);
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, 172);
    assert_eq!(v, Verdict::Drop(DropReason::UnknownSource));
    assert!(forwarded(c.check(true)));
    rtp(&mut c.buf, 0, 1, 1);
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, 172);
    assert_eq!(v, Verdict::Drop(DropReason::NotConnected));
    // The PBX speaks before the browser's DTLS is up: nowhere to send it yet.
    rtp(&mut c.buf, 0, 1, 1);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX),
        &mut c.buf,
        172,
    );
    assert_eq!(v, Verdict::Drop(DropReason::NotConnected));
    // A check with a wrong password is not answered.
    let n = c.b.check(&mut c.buf, true);
    c.buf[n - 30] ^= 1;
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n);
    assert_eq!(v, Verdict::Drop(DropReason::StunRejected));
    assert_eq!(c.s.drops().total(), 4);
}

#[test]
fn wrong_payload_type_and_garbage_are_dropped() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    rtp(&mut c.buf, 96, 1, 1);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX),
        &mut c.buf,
        172,
    );
    assert_eq!(v, Verdict::Drop(DropReason::WrongPt));
    c.buf[0] = 0xff;
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX),
        &mut c.buf,
        172,
    );
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    // A forged SRTP packet from the nominated address fails authentication.
    rtp(&mut c.buf, 0, 5, 1);
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, 172);
    assert_eq!(v, Verdict::Drop(DropReason::SrtpAuth));
    assert_eq!(c.s.drops().get(DropReason::WrongPt), 1);
    assert_eq!(c.s.stats().legs[1].dropped, 2);
}

#[test]
fn third_party_on_plain_port_never_reaches_the_browser() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    assert!(forwarded(c.pbx_sends(1)));
    for (i, src) in ["127.0.0.9:60000", "127.0.0.1:60002"].iter().enumerate() {
        rtp(&mut c.buf, 0, 2 + i as u16, 0xbad);
        let v = c.s.handle_datagram(
            c.now,
            Socket::Rtp(LegIndex::B, Stream::Audio),
            addr(src),
            &mut c.buf,
            172,
        );
        assert_eq!(v, Verdict::Drop(DropReason::UnknownSource));
        rtcp(&mut c.buf, 0xbad);
        let v = c.s.handle_datagram(
            c.now,
            Socket::Rtcp(LegIndex::B, Stream::Audio),
            addr(src),
            &mut c.buf,
            8,
        );
        assert_eq!(v, Verdict::Drop(DropReason::UnknownSource), "{src}");
    }
    assert!(forwarded(c.pbx_sends(4)));
    assert_eq!(c.s.drops().get(DropReason::UnknownSource), 4);
}

#[test]
fn plain_leg_latches_once_to_a_nat_source() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    // The far end's host, through a NAT that changed its port.
    let nat = addr("127.0.0.1:7000");
    rtp(&mut c.buf, 0, 1, 3);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        nat,
        &mut c.buf,
        172,
    );
    assert!(forwarded(v));
    // Now the browser's media goes to the latched source, and the SDP address is a stranger.
    let n = {
        let mut p = [0u8; 172];
        rtp(&mut p, 0, 9, 9);
        c.buf[..172].copy_from_slice(&p);
        c.b.srtp_out
            .as_mut()
            .unwrap()
            .protect_rtp(&mut c.buf, 172)
            .unwrap()
    };
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n);
    assert!(matches!(v, Verdict::Forward { to, .. } if to == nat));
    rtp(&mut c.buf, 0, 2, 3);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX),
        &mut c.buf,
        172,
    );
    assert_eq!(v, Verdict::Drop(DropReason::UnknownSource));
}

#[test]
fn media_timeout_fires_once_and_not_while_held() {
    let config = SessionConfig {
        media_timeout: Duration::from_secs(60),
        ..SessionConfig::default()
    };
    let mut c = Call::new(Setup::Active, config.clone());
    c.connect();
    assert!(forwarded(c.browser_sends(1)));
    let t0 = c.now;
    // Consent checks every 10 s keep ICE alive; no media.
    let mut events = Vec::new();
    for i in 1..=8 {
        c.now = t0 + Duration::from_secs(10 * i);
        assert!(forwarded(c.check(false)));
        if let Some(d) = c.s.poll_timeout() {
            if d <= c.now {
                c.s.handle_timeout(c.now);
            }
        }
        events.extend(std::iter::from_fn(|| c.s.poll_event()));
        if i < 6 {
            assert!(events.is_empty(), "at {} s: {events:?}", 10 * i);
        }
    }
    assert_eq!(events, [Event::MediaTimeout { id: SessionId(7) }]);

    // The same call put on hold by the PBX: no timeout however long it stays quiet.
    let mut c = Call::new(Setup::Active, config);
    c.connect();
    let held = LegSpec::Plain(Some(plain_remote(Direction::SendOnly)));
    assert!(c
        .s
        .update(c.now, LegIndex::B, &held, &mut seeded(4))
        .is_ok());
    let t0 = c.now;
    for i in 1..=20 {
        c.now = t0 + Duration::from_secs(10 * i);
        assert!(forwarded(c.check(false)));
        c.s.handle_timeout(c.now);
        assert_eq!(c.s.poll_event(), None);
    }
}

#[test]
fn consent_lost_after_30s_without_checks() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    let t = c.s.poll_timeout().unwrap();
    assert!(t <= c.now + Duration::from_secs(30));
    c.now += Duration::from_secs(30);
    c.s.handle_timeout(c.now);
    assert_eq!(
        c.s.poll_event(),
        Some(Event::ConsentLost {
            id: SessionId(7),
            leg: LegIndex::A
        })
    );
    assert_eq!(c.pbx_sends(1), Verdict::Drop(DropReason::NotConnected));
}

/// Routes mirror ICE's bounded set of validated sources: a browser (or anyone holding the ICE
/// password) checking from ever new addresses does not grow them.
#[test]
fn routes_stay_within_ices_bounded_set_of_sources() {
    use crate::proto::ice::MAX_VALIDATED;
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    let nominated = c.b.addr;
    let mut sources = vec![nominated];
    for i in 0..4 * MAX_VALIDATED as u16 {
        c.b.addr = SocketAddr::from(([127, 0, 0, 7], 51000 + i));
        assert!(forwarded(c.check(false)));
        assert!(c.s.poll_routes_changed(), "a new source");
        sources.push(c.b.addr);
        let mut routes: Vec<_> = c.s.routes().collect();
        assert!(routes.len() <= MAX_VALIDATED + 1, "{routes:?}");
        assert!(routes.len() <= MAX_ROUTES);
        // The newest sources ICE remembers, and the nominated one (still carrying media).
        let mut expected: Vec<_> = sources[sources.len().saturating_sub(MAX_VALIDATED)..].to_vec();
        if !expected.contains(&nominated) {
            expected.push(nominated);
        }
        routes.sort_unstable();
        expected.sort_unstable();
        assert_eq!(routes, expected, "after {} new sources", i + 1);
    }
    // A check again from a routed source changes nothing; media still flows.
    assert!(forwarded(c.check(false)));
    assert!(!c.s.poll_routes_changed());
    c.b.addr = nominated;
    assert!(forwarded(c.browser_sends(1)));
    // Consent lost: ICE forgets every source, and so do the routes.
    c.now += Duration::from_secs(30);
    c.s.handle_timeout(c.now);
    assert!(c.s.poll_routes_changed());
    assert_eq!(c.s.routes().count(), 0);
}

#[test]
fn ice_restart_relatches_and_keeps_srtp() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    assert!(forwarded(c.browser_sends(1)));
    let old_local = c.s.local_leg(LegIndex::A);
    // The browser restarts ICE: new credentials; same certificate and role.
    c.b.creds = IceCredentials::random().unwrap();
    let local =
        c.s.update(
            c.now,
            LegIndex::A,
            &LegSpec::WebRtc(Some(c.b.remote())),
            &mut seeded(5),
        )
        .unwrap();
    let (
        LocalLeg::WebRtc {
            ice_ufrag: new_u,
            ice_pwd: new_p,
            ..
        },
        LocalLeg::WebRtc {
            ice_ufrag: old_u,
            ice_pwd: old_p,
            ..
        },
    ) = (&local, &old_local)
    else {
        panic!()
    };
    assert_ne!(new_u, old_u, "RFC 8839: new local credentials on restart");
    assert_ne!(new_p, old_p);
    // Media keeps flowing on the old path until the new nomination.
    assert!(forwarded(c.pbx_sends(1)));
    c.b.learn(&local);
    let old_addr = c.b.addr;
    c.b.addr = addr("127.0.0.7:50001");
    assert!(forwarded(c.check(true)));
    assert!(c.s.poll_routes_changed());
    assert_eq!(c.s.routes().collect::<Vec<_>>(), [old_addr, c.b.addr]);
    assert_eq!(
        c.s.poll_event(),
        Some(Event::IceConnected {
            id: SessionId(7),
            leg: LegIndex::A,
            remote: c.b.addr
        })
    );
    assert_eq!(c.s.poll_event(), None, "no new DTLS handshake");
    assert!(forwarded(c.browser_sends(2)));
    assert!(forwarded(c.pbx_sends(2)));
    // The old address is no longer the media path.
    c.b.addr = old_addr;
    assert_eq!(c.browser_sends(3), Verdict::Drop(DropReason::UnknownSource));
    assert_eq!(c.s.ice_ufrags().collect::<Vec<_>>(), [new_u.as_str()]);
}

#[test]
fn reoffer_with_actpass_keeps_our_dtls_client_role() {
    let mut c = Call::new(Setup::Passive, SessionConfig::default());
    c.connect();
    let mut r = c.b.remote();
    r.setup = Setup::ActPass;
    let local =
        c.s.update(
            c.now,
            LegIndex::A,
            &LegSpec::WebRtc(Some(r)),
            &mut seeded(6),
        )
        .unwrap();
    assert!(matches!(
        local,
        LocalLeg::WebRtc {
            setup: Setup::Active,
            ..
        }
    ));
    assert!(forwarded(c.browser_sends(1)));
    assert!(forwarded(c.pbx_sends(1)));
}

#[test]
fn dtls_role_change_is_refused_and_fingerprint_change_rekeys() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    let mut r = c.b.remote();
    r.setup = Setup::Passive;
    assert!(matches!(
        c.s.update(
            c.now,
            LegIndex::A,
            &LegSpec::WebRtc(Some(r)),
            &mut seeded(7)
        ),
        Err(Failure::BadRequest(_))
    ));
    assert!(matches!(
        c.s.update(c.now, LegIndex::A, &LegSpec::Echo, &mut seeded(8)),
        Err(Failure::BadRequest(_))
    ));
    assert!(forwarded(c.pbx_sends(1)));

    // A new certificate (a new DTLS association): SRTP stops until the new handshake is done.
    c.b.cert = 2;
    c.s.update(
        c.now,
        LegIndex::A,
        &LegSpec::WebRtc(Some(c.b.remote())),
        &mut seeded(9),
    )
    .unwrap();
    assert_eq!(c.pbx_sends(2), Verdict::Drop(DropReason::NotConnected));
    let fp = identity(0).fingerprint().to_sdp();
    c.b.srtp_in = None;
    c.b.srtp_out = None;
    c.b.start_dtls(&fp, c.now);
    c.pump_dtls();
    assert!(c.b.srtp_out.is_some());
    assert!(matches!(
        c.s.poll_event(),
        Some(Event::DtlsConnected {
            leg: LegIndex::A,
            ..
        })
    ));
    assert!(forwarded(c.browser_sends(1)));
    assert!(forwarded(c.pbx_sends(3)));
}

/// A seeded network between the PBX and the relay (and the browser and the relay): loss,
/// reordering and duplication. Every packet that arrives once reaches the other side once,
/// byte for byte; duplicates die in the SRTP replay checks; loss shows in the stats.
#[test]
fn loss_reorder_and_duplication() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    let mut rng = testkit::SeededRng::new(0x9e37_79b9);
    let mut order: Vec<u16> = Vec::new();
    let mut lost = 0;
    let mut dups = 0;
    for seq in 0..300u16 {
        match rng.below(20) {
            0 => lost += 1,
            1 => {
                order.push(seq);
                order.push(seq);
                dups += 1;
            }
            _ => order.push(seq),
        }
    }
    for i in (0..order.len() - 1).step_by(7) {
        order.swap(i, i + 1);
    }
    // The browser protects each packet once, in order; the network then loses, reorders
    // and duplicates the SRTP packets.
    let mut sent: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for seq in 0..300u16 {
        let mut p = [0u8; 172];
        rtp(&mut p, 0, seq, 0xb0b0);
        let mut b = p.to_vec();
        b.resize(400, 0);
        let n =
            c.b.srtp_out
                .as_mut()
                .unwrap()
                .protect_rtp(&mut b, 172)
                .unwrap();
        b.truncate(n);
        sent.push((p.to_vec(), b));
    }
    let (mut fwd_pbx, mut fwd_browser) = (0, 0);
    let mut delivered = vec![0; 300];
    for &seq in &order {
        c.now += Duration::from_millis(20);
        match c.pbx_sends(seq) {
            Verdict::Forward { .. } => fwd_pbx += 1,
            v => assert_eq!(v, Verdict::Drop(DropReason::SrtpReplay)),
        }
        let (plain, cipher) = &sent[usize::from(seq)];
        c.buf[..cipher.len()].copy_from_slice(cipher);
        let v =
            c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, cipher.len());
        match v {
            Verdict::Forward { len, .. } => {
                assert_eq!(&c.buf[..len], &plain[..]);
                delivered[usize::from(seq)] += 1;
                fwd_browser += 1;
            }
            v => assert_eq!(v, Verdict::Drop(DropReason::SrtpReplay)),
        }
    }
    assert!(delivered.iter().all(|&d| d <= 1), "never twice");
    // Losses after the last packet that arrived cannot be seen by sequence number.
    let seen = |s: &u16| order.contains(s);
    let first = (0..300u16).find(seen).unwrap();
    let last = (0..300u16).rev().find(seen).unwrap();
    let visible = (first..=last).filter(|s| !seen(s)).count();
    assert_eq!(fwd_pbx, 300 - lost);
    assert_eq!(fwd_browser, 300 - lost);
    assert_eq!(c.s.drops().get(DropReason::SrtpReplay), 2 * dups);
    let st = c.s.stats();
    assert!(visible > 5);
    assert_eq!(st.legs[0].lost, visible as u64, "browser leg");
    assert_eq!(st.legs[1].lost, visible as u64, "PBX leg");
    assert!(st.legs[1].jitter > 0, "reordering shows as jitter");
}

#[test]
fn echo_leg_reflects_webrtc_media() {
    let now = VirtualClock::new().now();
    let mut b = Browser::new(addr(BROWSER), Setup::Active);
    let s = Session::new(
        SessionId(9),
        &[LegSpec::WebRtc(Some(b.remote())), LegSpec::Echo],
        [LocalAddrs::at(addr(WEBRTC_LOCAL)), LocalAddrs::NONE],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(10),
    )
    .unwrap();
    assert_eq!(s.local_leg(LegIndex::B), LocalLeg::Echo);
    b.learn(&s.local_leg(LegIndex::A));
    let mut c = Call {
        s,
        now,
        b,
        buf: vec![0u8; 2048],
    };
    c.connect();
    for seq in 0..20 {
        let mut plain = [0u8; 172];
        rtp(&mut plain, 0, seq, 0xb0b0);
        c.buf[..172].copy_from_slice(&plain);
        let n =
            c.b.srtp_out
                .as_mut()
                .unwrap()
                .protect_rtp(&mut c.buf, 172)
                .unwrap();
        let v =
            c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n);
        let Verdict::Forward { via, to, len } = v else {
            panic!("{v:?}")
        };
        assert_eq!((via, to), (Socket::WebRtc, c.b.addr));
        let n =
            c.b.srtp_in
                .as_mut()
                .unwrap()
                .unprotect_rtp(&mut c.buf, len)
                .unwrap();
        assert_eq!(&c.buf[..n], &plain[..]);
    }
    assert_eq!(c.s.stats().legs[0].packets_out, 20);
}

#[test]
fn echo_leg_reflects_plain_media() {
    let now = VirtualClock::new().now();
    let mut s = Session::new(
        SessionId(10),
        &[
            LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
            LegSpec::Echo,
        ],
        [LocalAddrs::at(addr(PLAIN_LOCAL)), LocalAddrs::NONE],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(11),
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let n = rtp(&mut buf, 0, 1, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtp(LegIndex::A, Stream::Audio),
        addr(PBX),
        &mut buf,
        n,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            via: Socket::Rtp(LegIndex::A, Stream::Audio),
            to: addr(PBX),
            len: n
        }
    );
    let n = rtcp(&mut buf, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtcp(LegIndex::A, Stream::Audio),
        addr(PBX_RTCP),
        &mut buf,
        n,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            via: Socket::Rtcp(LegIndex::A, Stream::Audio),
            to: addr(PBX_RTCP),
            len: n
        }
    );
}

#[test]
fn offer_to_browser_then_answer() {
    // The gateway offers to the browser: remote unknown, setup actpass; the answer sets it.
    let now = VirtualClock::new().now();
    let mut s = Session::new(
        SessionId(11),
        &[LegSpec::WebRtc(None), LegSpec::Plain(None)],
        [
            LocalAddrs::at(addr(WEBRTC_LOCAL)),
            LocalAddrs::at(addr(PLAIN_LOCAL)),
        ],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(12),
    )
    .unwrap();
    assert!(matches!(
        s.local_leg(LegIndex::A),
        LocalLeg::WebRtc {
            setup: Setup::ActPass,
            ..
        }
    ));
    let b = Browser::new(addr(BROWSER), Setup::Active);
    let local = s
        .update(
            now,
            LegIndex::A,
            &LegSpec::WebRtc(Some(b.remote())),
            &mut seeded(13),
        )
        .unwrap();
    assert!(matches!(
        local,
        LocalLeg::WebRtc {
            setup: Setup::Passive,
            ..
        }
    ));
    let local = s
        .update(
            now,
            LegIndex::B,
            &LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
            &mut seeded(14),
        )
        .unwrap();
    assert_eq!(
        local,
        LocalLeg::Plain {
            rtp: addr(PLAIN_LOCAL),
            video_rtp: None,
        }
    );
    let mut c = Call {
        s,
        now,
        b,
        buf: vec![0u8; 2048],
    };
    c.b.learn(&c.s.local_leg(LegIndex::A));
    c.connect();
    assert!(forwarded(c.browser_sends(1)));
    assert!(forwarded(c.pbx_sends(1)));
}

#[test]
fn bundled_audio_and_video_pass_through_unchanged() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    let mut r = c.b.remote();
    r.payload_types = vec![0, 96];
    c.s.update(
        c.now,
        LegIndex::A,
        &LegSpec::WebRtc(Some(r)),
        &mut seeded(15),
    )
    .unwrap();
    c.connect();
    for (i, (pt, ssrc)) in [(0u8, 0xa0d1_u32), (96, 0x71de0), (0, 0xa0d1), (96, 0x71de0)]
        .into_iter()
        .enumerate()
    {
        let mut plain = [0u8; 172];
        rtp(&mut plain, pt, i as u16, ssrc);
        c.buf[..172].copy_from_slice(&plain);
        let n =
            c.b.srtp_out
                .as_mut()
                .unwrap()
                .protect_rtp(&mut c.buf, 172)
                .unwrap();
        let v =
            c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n);
        assert!(forwarded(v), "{v:?}");
        assert_eq!(&c.buf[..172], &plain[..]);
    }
}

#[test]
fn wrong_browser_certificate_fails_dtls() {
    let now = VirtualClock::new().now();
    let mut b = Browser::new(addr(BROWSER), Setup::Active);
    let mut remote = b.remote();
    // The SDP names the relay's own certificate, not the one the browser will present.
    remote.fingerprint = identity(0).fingerprint().to_sdp();
    let s = Session::new(
        SessionId(12),
        &[
            LegSpec::WebRtc(Some(remote)),
            LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
        ],
        [
            LocalAddrs::at(addr(WEBRTC_LOCAL)),
            LocalAddrs::at(addr(PLAIN_LOCAL)),
        ],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(16),
    )
    .unwrap();
    b.learn(&s.local_leg(LegIndex::A));
    let mut c = Call {
        s,
        now,
        b,
        buf: vec![0u8; 2048],
    };
    assert!(forwarded(c.check(true)));
    let _ = c.s.poll_routes_changed();
    c.b.start_dtls(&identity(0).fingerprint().to_sdp(), c.now);
    for _ in 0..10 {
        while let Some(d) = c.b.dtls.as_mut().unwrap().poll_transmit() {
            c.buf[..d.len()].copy_from_slice(&d);
            let _ =
                c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, d.len());
        }
        let mut out = [0u8; 2048];
        while let Some(t) = c.s.poll_transmit(&mut out) {
            c.b.dtls
                .as_mut()
                .unwrap()
                .handle_input(c.now, &out[..t.len]);
        }
    }
    let events: Vec<Event> = std::iter::from_fn(|| c.s.poll_event()).collect();
    assert!(
        events.iter().any(|e| matches!(e, Event::DtlsFailed { leg: LegIndex::A, reason, .. } if reason.contains("fingerprint"))),
        "{events:?}"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::DtlsConnected { .. })));
    assert_eq!(c.pbx_sends(1), Verdict::Drop(DropReason::NotConnected));
}

#[test]
fn plain_to_plain_relays_rtp_and_rtcp() {
    let now = VirtualClock::new().now();
    let other = PlainRemote {
        rtp: Some(addr("127.0.0.2:7000")),
        rtcp: Some(addr("127.0.0.2:7001")),
        ..plain_remote(Direction::SendRecv)
    };
    let mut s = Session::new(
        SessionId(13),
        &[
            LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
            LegSpec::Plain(Some(other)),
        ],
        [
            LocalAddrs::at(addr(PLAIN_LOCAL)),
            LocalAddrs::at(addr("127.0.0.1:40004")),
        ],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(17),
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let n = rtp(&mut buf, 8, 1, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtp(LegIndex::A, Stream::Audio),
        addr(PBX),
        &mut buf,
        n,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            via: Socket::Rtp(LegIndex::B, Stream::Audio),
            to: addr("127.0.0.2:7000"),
            len: n
        }
    );
    let n = rtcp(&mut buf, 2);
    let v = s.handle_datagram(
        now,
        Socket::Rtcp(LegIndex::B, Stream::Audio),
        addr("127.0.0.2:7001"),
        &mut buf,
        n,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            via: Socket::Rtcp(LegIndex::A, Stream::Audio),
            to: addr(PBX_RTCP),
            len: n
        }
    );
}

#[test]
fn plain_rtcp_mux_uses_the_rtp_port_both_ways() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    let muxed = PlainRemote {
        rtcp: Some(addr(PBX)),
        rtcp_mux: true,
        ..plain_remote(Direction::SendRecv)
    };
    c.s.update(
        c.now,
        LegIndex::B,
        &LegSpec::Plain(Some(muxed)),
        &mut seeded(18),
    )
    .unwrap();
    c.connect();
    let mut plain = [0u8; 8];
    rtcp(&mut plain, 0xb0b0);
    c.buf[..8].copy_from_slice(&plain);
    let n =
        c.b.srtp_out
            .as_mut()
            .unwrap()
            .protect_rtcp(&mut c.buf, 8)
            .unwrap();
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n);
    assert_eq!(
        v,
        Verdict::Forward {
            via: Socket::Rtp(LegIndex::B, Stream::Audio),
            to: addr(PBX),
            len: 8
        }
    );
    let n = rtcp(&mut c.buf, 0xfeed);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX),
        &mut c.buf,
        n,
    );
    assert!(
        matches!(
            v,
            Verdict::Forward {
                via: Socket::WebRtc,
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn plain_leg_accepts_nothing_before_its_sdp() {
    let now = VirtualClock::new().now();
    let mut s = Session::new(
        SessionId(14),
        &[LegSpec::Plain(None), LegSpec::Echo],
        [LocalAddrs::at(addr(PLAIN_LOCAL)), LocalAddrs::NONE],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(19),
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let first = addr("127.0.0.3:9000");
    let n = rtp(&mut buf, 0, 1, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtp(LegIndex::A, Stream::Audio),
        first,
        &mut buf,
        n,
    );
    assert_eq!(v, Verdict::Drop(DropReason::BeforeSdp));
    s.update(
        now,
        LegIndex::A,
        &LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
        &mut seeded(20),
    )
    .unwrap();
    let n = rtp(&mut buf, 0, 2, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtp(LegIndex::A, Stream::Audio),
        first,
        &mut buf,
        n,
    );
    assert_eq!(
        v,
        Verdict::Drop(DropReason::UnknownSource),
        "the early sender"
    );
    let n = rtp(&mut buf, 0, 3, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtp(LegIndex::A, Stream::Audio),
        addr(PBX),
        &mut buf,
        n,
    );
    assert!(forwarded(v), "{v:?}");
}

#[test]
fn never_panics_on_any_input() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    let mut rng = testkit::SeededRng::new(0x2545_f491);
    let sockets = [
        Socket::WebRtc,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        Socket::Rtcp(LegIndex::B, Stream::Audio),
    ];
    let srcs = [c.b.addr, addr(PBX), addr(PBX_RTCP)];
    for i in 0..5000usize {
        let n = match i % 4 {
            0 => c.b.check(&mut c.buf, i % 8 == 0),
            1 => rtp(&mut c.buf, 0, i as u16, 1),
            2 => rtcp(&mut c.buf, 1),
            _ => 40,
        };
        for _ in 0..(i % 6) {
            c.buf[rng.below(n.max(1))] = rng.next_u64() as u8;
        }
        let len = rng.below(n + 1);
        let _ =
            c.s.handle_datagram(c.now, sockets[i % 3], srcs[(i / 3) % 3], &mut c.buf, len);
    }
}

impl Call {
    fn browser_direction(&mut self, d: Direction) {
        let mut r = self.b.remote();
        r.direction = d;
        self.s
            .update(
                self.now,
                LegIndex::A,
                &LegSpec::WebRtc(Some(r)),
                &mut seeded(21),
            )
            .unwrap();
    }

    fn pbx_direction(&mut self, d: Direction) {
        self.s
            .update(
                self.now,
                LegIndex::B,
                &LegSpec::Plain(Some(plain_remote(d))),
                &mut seeded(22),
            )
            .unwrap();
    }

    /// (browser → PBX forwarded, PBX → browser forwarded) for one packet each way.
    fn flows(&mut self, seq: u16) -> (bool, bool) {
        let up = self.browser_sends(seq);
        let down = self.pbx_sends(seq);
        for v in [up, down] {
            assert!(
                forwarded(v) || v == Verdict::Drop(DropReason::Held),
                "{v:?}"
            );
        }
        (forwarded(up), forwarded(down))
    }
}

/// RFC 3264 §5.1/§8.4 on either leg: `sendonly` stops what goes to that leg, `recvonly` what
/// comes from it, `inactive` both; `sendrecv` resumes. The held packets are dropped and counted.
#[test]
fn hold_and_resume_by_either_leg_in_each_direction() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    let mut seq = 0;
    let mut flows = |c: &mut Call| {
        seq += 1;
        c.flows(seq)
    };
    assert_eq!(flows(&mut c), (true, true));
    let cases = [
        (Direction::SendOnly, (false, true), (true, false)),
        (Direction::RecvOnly, (true, false), (false, true)),
        (Direction::Inactive, (false, false), (false, false)),
    ];
    let mut held = 0;
    for (d, pbx_holds, browser_holds) in cases {
        // The PBX holds (its re-INVITE says `d`), then resumes.
        c.pbx_direction(d);
        assert_eq!(flows(&mut c), pbx_holds, "PBX {d:?}");
        assert_eq!(flows(&mut c), pbx_holds, "PBX {d:?}");
        c.pbx_direction(Direction::SendRecv);
        assert_eq!(flows(&mut c), (true, true), "PBX resumed from {d:?}");
        // The browser holds, then resumes.
        c.browser_direction(d);
        assert_eq!(flows(&mut c), browser_holds, "browser {d:?}");
        c.browser_direction(Direction::SendRecv);
        assert_eq!(flows(&mut c), (true, true), "browser resumed from {d:?}");
        held += [pbx_holds, pbx_holds, browser_holds]
            .iter()
            .map(|&(a, b)| u64::from(!a) + u64::from(!b))
            .sum::<u64>();
    }
    assert_eq!(c.s.drops().get(DropReason::Held), held);
    assert_eq!(c.s.drops().total(), held, "nothing else dropped");
    let st = c.s.stats();
    assert_eq!(st.legs[0].dropped + st.legs[1].dropped, held);
    // Held packets still arrived: they count as media in (no media timeout while held).
    assert_eq!(st.legs[0].packets_in, u64::from(seq));
    assert_eq!(st.legs[1].packets_in, u64::from(seq));
}

#[test]
fn rtcp_still_flows_while_held() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    c.pbx_direction(Direction::Inactive);
    c.browser_direction(Direction::Inactive);
    assert_eq!(c.flows(1), (false, false));
    let n = rtcp(&mut c.buf, 0xfeed);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtcp(LegIndex::B, Stream::Audio),
        addr(PBX_RTCP),
        &mut c.buf,
        n,
    );
    assert!(
        matches!(
            v,
            Verdict::Forward {
                via: Socket::WebRtc,
                ..
            }
        ),
        "{v:?}"
    );
    let mut plain = [0u8; 8];
    rtcp(&mut plain, 0xb0b0);
    c.buf[..8].copy_from_slice(&plain);
    let n =
        c.b.srtp_out
            .as_mut()
            .unwrap()
            .protect_rtcp(&mut c.buf, 8)
            .unwrap();
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n);
    assert!(
        matches!(
            v,
            Verdict::Forward {
                via: Socket::Rtcp(LegIndex::B, Stream::Audio),
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn held_browser_gets_no_echo() {
    let now = VirtualClock::new().now();
    let mut b = Browser::new(addr(BROWSER), Setup::Active);
    let s = Session::new(
        SessionId(15),
        &[LegSpec::WebRtc(Some(b.remote())), LegSpec::Echo],
        [LocalAddrs::at(addr(WEBRTC_LOCAL)), LocalAddrs::NONE],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(23),
    )
    .unwrap();
    b.learn(&s.local_leg(LegIndex::A));
    let mut c = Call {
        s,
        now,
        b,
        buf: vec![0u8; 2048],
    };
    c.connect();
    let send = |c: &mut Call, seq: u16| {
        let mut plain = [0u8; 172];
        rtp(&mut plain, 0, seq, 0xb0b0);
        c.buf[..172].copy_from_slice(&plain);
        let n =
            c.b.srtp_out
                .as_mut()
                .unwrap()
                .protect_rtp(&mut c.buf, 172)
                .unwrap();
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, n)
    };
    assert!(forwarded(send(&mut c, 1)));
    for (i, d) in [
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ]
    .into_iter()
    .enumerate()
    {
        c.browser_direction(d);
        assert_eq!(send(&mut c, 2 + i as u16), Verdict::Drop(DropReason::Held));
    }
    c.browser_direction(Direction::SendRecv);
    assert!(forwarded(send(&mut c, 10)));
}

#[test]
fn plain_to_plain_hold() {
    let now = VirtualClock::new().now();
    let other = |d| PlainRemote {
        rtp: Some(addr("127.0.0.2:7000")),
        rtcp: Some(addr("127.0.0.2:7001")),
        ..plain_remote(d)
    };
    let mut s = Session::new(
        SessionId(16),
        &[
            LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
            LegSpec::Plain(Some(other(Direction::SendOnly))),
        ],
        [
            LocalAddrs::at(addr(PLAIN_LOCAL)),
            LocalAddrs::at(addr("127.0.0.1:40004")),
        ],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(24),
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let mut a_to_b = |s: &mut Session, seq| {
        let n = rtp(&mut buf, 8, seq, 1);
        s.handle_datagram(
            now,
            Socket::Rtp(LegIndex::A, Stream::Audio),
            addr(PBX),
            &mut buf,
            n,
        )
    };
    assert_eq!(a_to_b(&mut s, 1), Verdict::Drop(DropReason::Held));
    s.update(
        now,
        LegIndex::B,
        &LegSpec::Plain(Some(other(Direction::SendRecv))),
        &mut seeded(25),
    )
    .unwrap();
    assert!(forwarded(a_to_b(&mut s, 2)));
}

impl Call {
    /// Feeds every pending browser DTLS datagram to the session; returns them.
    fn browser_dtls_out(&mut self) -> Vec<Vec<u8>> {
        let mut sent = Vec::new();
        while let Some(d) = self.b.dtls.as_mut().unwrap().poll_transmit() {
            self.buf[..d.len()].copy_from_slice(&d);
            let v = self.s.handle_datagram(
                self.now,
                Socket::WebRtc,
                self.b.addr,
                &mut self.buf,
                d.len(),
            );
            assert_eq!(v, Verdict::Consumed);
            sent.push(d);
        }
        sent
    }

    /// The session's pending DTLS datagrams, delivered to the browser unless `lose`.
    fn relay_dtls_out(&mut self, lose: bool) -> usize {
        let mut out = [0u8; 2048];
        let mut n = 0;
        while let Some(t) = self.s.poll_transmit(&mut out) {
            n += 1;
            if !lose {
                let d = self.b.dtls.as_mut().unwrap();
                d.handle_input(self.now, &out[..t.len]);
            }
        }
        n
    }
}

/// The e2e "DTLS failed ~90 ms after the 200 OK, no media" (1 in 12 echo calls): the relay is
/// the DTLS server and connects on the browser's second flight; its final flight is lost (or
/// slow), the far end's RTP already goes out to the browser as AES-GCM SRTP (libsrtp leaves
/// errors on the thread's OpenSSL queue), then the browser's flight comes again.
#[test]
fn browser_flight_again_after_srtp_went_out_is_not_a_failure() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    assert!(forwarded(c.check(true)));
    let _ = c.s.poll_routes_changed();
    let config = DtlsConfig {
        initial_timeout: Duration::from_millis(40),
        ..DtlsConfig::new(DtlsRole::Client, identity(0).fingerprint().clone())
    };
    c.b.dtls = Some(DtlsEndpoint::new(&identity(1), config, c.now).unwrap());
    c.browser_dtls_out(); // ClientHello
    assert!(c.relay_dtls_out(false) > 0);
    let second = c.browser_dtls_out();
    assert!(!second.is_empty());
    assert!(c.relay_dtls_out(true) > 0, "the final flight, lost");
    let events: Vec<Event> = std::iter::from_fn(|| c.s.poll_event()).collect();
    assert!(
        matches!(
            events[..],
            [Event::IceConnected { .. }, Event::DtlsConnected { .. }]
        ),
        "{events:?}"
    );
    // The PBX's RTP goes out as SRTP (the browser cannot read it yet).
    for seq in 0..3 {
        let mut p = [0u8; 172];
        rtp(&mut p, 8, seq, 0xfeed);
        c.buf[..172].copy_from_slice(&p);
        let v = c.s.handle_datagram(
            c.now,
            Socket::Rtp(LegIndex::B, Stream::Audio),
            addr(PBX),
            &mut c.buf,
            172,
        );
        assert!(forwarded(v));
    }
    // The browser's second flight again (network duplicate), then the browser's own
    // retransmission: it never got our final flight.
    for d in &second {
        c.buf[..d.len()].copy_from_slice(d);
        let v =
            c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, d.len());
        assert_eq!(v, Verdict::Consumed);
    }
    assert_eq!(c.s.poll_event(), None);
    c.now = c.b.dtls.as_ref().unwrap().poll_timeout().unwrap();
    // OpenSSL's retransmit timer runs on the wall clock: let it agree (40 ms, < 15 ms left
    // counts as expired).
    std::thread::sleep(Duration::from_millis(30));
    c.b.dtls.as_mut().unwrap().handle_timeout(c.now);
    assert!(!c.browser_dtls_out().is_empty(), "the browser retransmits");
    assert_eq!(c.s.poll_event(), None, "not a failure");
    assert!(c.relay_dtls_out(false) > 0, "the final flight again");
    c.b.poll_dtls();
    assert!(c.b.srtp_out.is_some(), "browser connected");
    assert!(forwarded(c.browser_sends(1)));
    assert!(forwarded(c.pbx_sends(10)));
}

/// A browser hanging up sends close_notify around its BYE: no DtlsFailed, nothing more is sent
/// to it; signaling ends the call on the BYE.
#[test]
fn browser_close_notify_is_quiet() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    assert!(forwarded(c.browser_sends(1)));
    assert!(forwarded(c.pbx_sends(1)));
    c.b.dtls.as_mut().unwrap().close();
    c.browser_dtls_out();
    assert_eq!(c.s.poll_event(), None);
    assert_eq!(c.pbx_sends(2), Verdict::Drop(DropReason::NotConnected));
    assert_eq!(c.relay_dtls_out(false), 0);
    // What follows from the browser changes nothing.
    c.buf[..13].copy_from_slice(&[21, 254, 253, 0, 1, 0, 0, 0, 0, 0, 9, 0, 0]);
    let v =
        c.s.handle_datagram(c.now, Socket::WebRtc, c.b.addr, &mut c.buf, 13);
    assert_eq!(v, Verdict::Consumed);
    c.s.handle_timeout(c.now + Duration::from_secs(5));
    assert_eq!(c.s.poll_event(), None);
}

/// The browser checks from two local addresses and its DTLS moves from one to the other
/// mid-handshake (its selected pair changed); the relay answers where the flight came from.
#[test]
fn dtls_moving_between_validated_sources_completes() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    let first = c.b.addr;
    let second = addr("192.0.2.2:50002");
    assert!(forwarded(c.check(false)));
    c.b.addr = second;
    assert!(forwarded(c.check(false)));
    c.b.addr = first;
    let fp = identity(0).fingerprint().to_sdp();
    c.b.start_dtls(&fp, c.now);
    c.browser_dtls_out();
    let mut out = [0u8; 2048];
    while let Some(t) = c.s.poll_transmit(&mut out) {
        assert_eq!(t.to, first);
        c.b.dtls
            .as_mut()
            .unwrap()
            .handle_input(c.now, &out[..t.len]);
    }
    c.b.addr = second;
    assert!(forwarded(c.check(true)));
    c.pump_dtls();
    assert!(c.b.srtp_out.is_some());
    let events: Vec<Event> = std::iter::from_fn(|| c.s.poll_event()).collect();
    assert!(
        matches!(events[..], [Event::IceConnected { remote, .. }, Event::DtlsConnected { .. }] if remote == second),
        "{events:?}"
    );
    assert!(forwarded(c.browser_sends(1)));
    assert!(forwarded(c.pbx_sends(1)));
}

const PLAIN_VIDEO_LOCAL: &str = "127.0.0.1:40006";
const PBX_VIDEO: &str = "127.0.0.1:60002";
const PBX_VIDEO_RTCP: &str = "127.0.0.1:60003";
const OPUS: u8 = 111;
const VP8: u8 = 96;
const AUDIO_SSRC: u32 = 0xa0d1;
const VIDEO_SSRC: u32 = 0x71de0;

/// The PBX's answer with an audio and a video section, or (`video: false`) with the video
/// section rejected.
fn av_remote(video: bool) -> PlainRemote {
    PlainRemote {
        rtp: Some(addr(PBX)),
        rtcp: Some(addr(PBX_RTCP)),
        payload_types: vec![OPUS, 101],
        video: video.then(|| {
            Box::new(PlainRemote {
                rtp: Some(addr(PBX_VIDEO)),
                rtcp: Some(addr(PBX_VIDEO_RTCP)),
                payload_types: vec![VP8, 97],
                ..PlainRemote::default()
            })
        }),
        ..PlainRemote::default()
    }
}

impl Call {
    /// WebRTC (leg A, bundling Opus and VP8) + plain with audio and video (leg B), connected.
    fn with_video() -> Self {
        let now = VirtualClock::new().now();
        let mut b = Browser::new(addr(BROWSER), Setup::Active);
        let mut remote = b.remote();
        remote.payload_types = vec![OPUS, 101, VP8, 97];
        let s = Session::new(
            SessionId(20),
            &[
                LegSpec::WebRtc(Some(remote)),
                LegSpec::Plain(Some(av_remote(true))),
            ],
            [
                LocalAddrs::at(addr(WEBRTC_LOCAL)),
                LocalAddrs::with_video(addr(PLAIN_LOCAL), addr(PLAIN_VIDEO_LOCAL)),
            ],
            identity(0),
            SessionConfig::default(),
            now,
            &mut seeded(26),
        )
        .unwrap();
        b.learn(&s.local_leg(LegIndex::A));
        let mut c = Self {
            s,
            now,
            b,
            buf: vec![0u8; 2048],
        };
        c.connect();
        c
    }

    /// The browser sends RTP (protected here); returns the plaintext and the verdict.
    fn browser_rtp(&mut self, pt: u8, seq: u16, ssrc: u32) -> ([u8; 172], Verdict) {
        let mut plain = [0u8; 172];
        rtp(&mut plain, pt, seq, ssrc);
        self.buf[..172].copy_from_slice(&plain);
        let n = self
            .b
            .srtp_out
            .as_mut()
            .unwrap()
            .protect_rtp(&mut self.buf, 172)
            .unwrap();
        let v = self
            .s
            .handle_datagram(self.now, Socket::WebRtc, self.b.addr, &mut self.buf, n);
        (plain, v)
    }

    /// The browser sends an SRTCP receiver report from `ssrc`; the plaintext and the verdict.
    fn browser_rtcp(&mut self, ssrc: u32) -> ([u8; 8], Verdict) {
        let mut plain = [0u8; 8];
        rtcp(&mut plain, ssrc);
        self.buf[..8].copy_from_slice(&plain);
        let n = self
            .b
            .srtp_out
            .as_mut()
            .unwrap()
            .protect_rtcp(&mut self.buf, 8)
            .unwrap();
        let v = self
            .s
            .handle_datagram(self.now, Socket::WebRtc, self.b.addr, &mut self.buf, n);
        (plain, v)
    }

    /// Whatever reached the browser, unprotected: its bytes equal `plain`.
    fn browser_gets(&mut self, v: Verdict, plain: &[u8], rtcp: bool) {
        let Verdict::Forward { via, to, len } = v else {
            panic!("{v:?}")
        };
        assert_eq!((via, to), (Socket::WebRtc, self.b.addr));
        assert!(len > plain.len(), "authenticated");
        if !rtcp {
            assert_ne!(&self.buf[12..plain.len()], &plain[12..], "encrypted");
        }
        let srtp = self.b.srtp_in.as_mut().unwrap();
        let n = if rtcp {
            srtp.unprotect_rtcp(&mut self.buf, len)
        } else {
            srtp.unprotect_rtp(&mut self.buf, len)
        }
        .unwrap();
        assert_eq!(&self.buf[..n], plain);
    }
}

/// Forwarded on `via` to `to`, the plaintext unchanged.
fn forwarded_as(buf: &[u8], v: Verdict, via: Socket, to: &str, plain: &[u8]) {
    assert_eq!(
        v,
        Verdict::Forward {
            via,
            to: addr(to),
            len: plain.len()
        }
    );
    assert_eq!(&buf[..plain.len()], plain);
}

#[test]
fn bundle_is_split_into_the_plain_legs_audio_and_video_streams() {
    let mut c = Call::with_video();
    assert_eq!(
        c.s.local_leg(LegIndex::B),
        LocalLeg::Plain {
            rtp: addr(PLAIN_LOCAL),
            video_rtp: Some(addr(PLAIN_VIDEO_LOCAL)),
        }
    );
    let audio = Socket::Rtp(LegIndex::B, Stream::Audio);
    let video = Socket::Rtp(LegIndex::B, Stream::Video);
    // Browser → PBX, interleaved; audio 5 is lost on the way.
    for seq in 0..10 {
        if seq != 5 {
            let (plain, v) = c.browser_rtp(OPUS, seq, AUDIO_SSRC);
            forwarded_as(&c.buf, v, audio, PBX, &plain);
        }
        let (plain, v) = c.browser_rtp(VP8, 5000 + seq * 7, VIDEO_SSRC);
        forwarded_as(&c.buf, v, video, PBX_VIDEO, &plain);
        // The RTX payload type of the video section goes to video too.
        let (plain, v) = c.browser_rtp(97, 9000 + seq * 3, VIDEO_SSRC + 1);
        forwarded_as(&c.buf, v, video, PBX_VIDEO, &plain);
    }
    // PBX → browser, from each stream's port into the one bundle.
    for seq in 0..5 {
        let mut plain = [0u8; 172];
        rtp(&mut plain, VP8, 700 + seq, 0xcafe);
        c.buf[..172].copy_from_slice(&plain);
        let v =
            c.s.handle_datagram(c.now, video, addr(PBX_VIDEO), &mut c.buf, 172);
        c.browser_gets(v, &plain, false);
        rtp(&mut plain, OPUS, 100 + seq, 0xfeed);
        c.buf[..172].copy_from_slice(&plain);
        let v =
            c.s.handle_datagram(c.now, audio, addr(PBX), &mut c.buf, 172);
        c.browser_gets(v, &plain, false);
    }
    // The video port checks the video section's payload types.
    rtp(&mut c.buf, OPUS, 800, 0xcafe);
    let v =
        c.s.handle_datagram(c.now, video, addr(PBX_VIDEO), &mut c.buf, 172);
    assert_eq!(v, Verdict::Drop(DropReason::WrongPt));
    // RTCP: the PBX's video RTCP into the bundle; the browser's by its sender SSRC.
    let mut plain = [0u8; 8];
    rtcp(&mut plain, 0xcafe);
    c.buf[..8].copy_from_slice(&plain);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtcp(LegIndex::B, Stream::Video),
        addr(PBX_VIDEO_RTCP),
        &mut c.buf,
        8,
    );
    c.browser_gets(v, &plain, true);
    for (ssrc, stream, to) in [
        (VIDEO_SSRC, Stream::Video, PBX_VIDEO_RTCP),
        (VIDEO_SSRC + 1, Stream::Video, PBX_VIDEO_RTCP),
        (AUDIO_SSRC, Stream::Audio, PBX_RTCP),
        (0x5eed, Stream::Audio, PBX_RTCP),
    ] {
        let (plain, v) = c.browser_rtcp(ssrc);
        forwarded_as(&c.buf, v, Socket::Rtcp(LegIndex::B, stream), to, &plain);
    }
    let st = c.s.stats();
    assert_eq!(st.legs[0].packets_in, 9 + 10 + 10 + 4);
    assert_eq!(st.legs[1].packets_out, 9 + 10 + 10 + 4);
    assert_eq!(
        st.legs[1].packets_in,
        5 + 5 + 1,
        "the wrong PT is not media in"
    );
    assert_eq!(st.legs[0].packets_out, 5 + 5 + 1);
    // Loss and jitter follow the audio alone: video's sequence numbers never mix in.
    assert_eq!(st.legs[0].lost, 1, "audio 5");
    assert_eq!(st.legs[1].lost, 0);
    assert_eq!(c.s.drops().total(), 1, "{:?}", c.s.drops());
}

#[test]
fn third_party_on_the_video_port_never_reaches_the_browser() {
    let mut c = Call::with_video();
    let video = Socket::Rtp(LegIndex::B, Stream::Video);
    let video_rtcp = Socket::Rtcp(LegIndex::B, Stream::Video);
    let intruder = addr("127.0.0.9:60002");
    // Before the PBX's video speaks, the intruder cannot latch with the audio's payload type.
    rtp(&mut c.buf, OPUS, 1, 0xbad);
    let v = c.s.handle_datagram(c.now, video, intruder, &mut c.buf, 172);
    assert_eq!(v, Verdict::Drop(DropReason::UnknownSource));
    let mut plain = [0u8; 172];
    rtp(&mut plain, VP8, 1, 0xcafe);
    c.buf[..172].copy_from_slice(&plain);
    let v =
        c.s.handle_datagram(c.now, video, addr(PBX_VIDEO), &mut c.buf, 172);
    c.browser_gets(v, &plain, false);
    // Latched: the intruder's video and RTCP are dropped; nor can its video payload type
    // latch the (not yet latched) audio port.
    for (i, (via, pt)) in [
        (video, VP8),
        (video, 97),
        (Socket::Rtp(LegIndex::B, Stream::Audio), VP8),
    ]
    .into_iter()
    .enumerate()
    {
        rtp(&mut c.buf, pt, 2 + i as u16, 0xbad);
        let v = c.s.handle_datagram(c.now, via, intruder, &mut c.buf, 172);
        assert_eq!(v, Verdict::Drop(DropReason::UnknownSource), "{via:?} {pt}");
    }
    rtcp(&mut c.buf, 0xbad);
    let v =
        c.s.handle_datagram(c.now, video_rtcp, addr("127.0.0.9:60003"), &mut c.buf, 8);
    assert_eq!(v, Verdict::Drop(DropReason::UnknownSource));
    assert_eq!(c.s.drops().get(DropReason::UnknownSource), 5);
    assert_eq!(c.s.stats().legs[0].packets_out, 1, "only the PBX's packet");
    // The PBX's video still gets through.
    rtp(&mut plain, VP8, 10, 0xcafe);
    c.buf[..172].copy_from_slice(&plain);
    let v =
        c.s.handle_datagram(c.now, video, addr(PBX_VIDEO), &mut c.buf, 172);
    c.browser_gets(v, &plain, false);
}

#[test]
fn rejected_video_section_drops_the_browsers_video() {
    let mut c = Call::with_video();
    let (plain, v) = c.browser_rtp(VP8, 1, VIDEO_SSRC);
    forwarded_as(
        &c.buf,
        v,
        Socket::Rtp(LegIndex::B, Stream::Video),
        PBX_VIDEO,
        &plain,
    );
    // A re-INVITE rejects the video section (port 0): the video port stays allocated.
    let local =
        c.s.update(
            c.now,
            LegIndex::B,
            &LegSpec::Plain(Some(av_remote(false))),
            &mut seeded(27),
        )
        .unwrap();
    assert_eq!(
        local,
        LocalLeg::Plain {
            rtp: addr(PLAIN_LOCAL),
            video_rtp: Some(addr(PLAIN_VIDEO_LOCAL)),
        }
    );
    let drops = c.s.drops().get(DropReason::NoDestination);
    let (_, v) = c.browser_rtp(VP8, 2, VIDEO_SSRC);
    assert_eq!(v, Verdict::Drop(DropReason::NoDestination));
    let (_, v) = c.browser_rtcp(VIDEO_SSRC);
    assert_eq!(v, Verdict::Drop(DropReason::NoDestination));
    assert_eq!(c.s.drops().get(DropReason::NoDestination), drops + 2);
    // Audio still flows both ways.
    let (plain, v) = c.browser_rtp(OPUS, 1, AUDIO_SSRC);
    forwarded_as(
        &c.buf,
        v,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        PBX,
        &plain,
    );
    let mut plain = [0u8; 172];
    rtp(&mut plain, OPUS, 50, 0xfeed);
    c.buf[..172].copy_from_slice(&plain);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX),
        &mut c.buf,
        172,
    );
    c.browser_gets(v, &plain, false);
    // Nothing is taken from the old video address any more.
    rtp(&mut c.buf, VP8, 60, 0xcafe);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Video),
        addr(PBX_VIDEO),
        &mut c.buf,
        172,
    );
    assert_eq!(v, Verdict::Drop(DropReason::UnknownSource));
    // The section comes back: video flows again.
    c.s.update(
        c.now,
        LegIndex::B,
        &LegSpec::Plain(Some(av_remote(true))),
        &mut seeded(28),
    )
    .unwrap();
    let (plain, v) = c.browser_rtp(VP8, 3, VIDEO_SSRC);
    forwarded_as(
        &c.buf,
        v,
        Socket::Rtp(LegIndex::B, Stream::Video),
        PBX_VIDEO,
        &plain,
    );
}

#[test]
fn held_plain_leg_holds_its_video_too() {
    let mut c = Call::with_video();
    let held = PlainRemote {
        direction: Direction::SendOnly,
        ..av_remote(true)
    };
    c.s.update(
        c.now,
        LegIndex::B,
        &LegSpec::Plain(Some(held)),
        &mut seeded(29),
    )
    .unwrap();
    assert_eq!(
        c.browser_rtp(VP8, 1, VIDEO_SSRC).1,
        Verdict::Drop(DropReason::Held)
    );
    assert_eq!(
        c.browser_rtp(OPUS, 1, AUDIO_SSRC).1,
        Verdict::Drop(DropReason::Held)
    );
    // RTCP still flows while held, by its sender SSRC (the held video RTP taught it).
    let (plain, v) = c.browser_rtcp(VIDEO_SSRC);
    forwarded_as(
        &c.buf,
        v,
        Socket::Rtcp(LegIndex::B, Stream::Video),
        PBX_VIDEO_RTCP,
        &plain,
    );
}

#[test]
fn plain_to_plain_relays_audio_to_audio_and_video_to_video() {
    let now = VirtualClock::new().now();
    let other = PlainRemote {
        rtp: Some(addr("127.0.0.2:7000")),
        rtcp: Some(addr("127.0.0.2:7001")),
        video: Some(Box::new(PlainRemote {
            rtp: Some(addr("127.0.0.2:7002")),
            rtcp_mux: true,
            payload_types: vec![VP8],
            ..PlainRemote::default()
        })),
        ..av_remote(false)
    };
    let mut s = Session::new(
        SessionId(21),
        &[
            LegSpec::Plain(Some(av_remote(true))),
            LegSpec::Plain(Some(other)),
        ],
        [
            LocalAddrs::with_video(addr(PLAIN_LOCAL), addr(PLAIN_VIDEO_LOCAL)),
            LocalAddrs::with_video(addr("127.0.0.1:40008"), addr("127.0.0.1:40010")),
        ],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(30),
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let (a, b) = (LegIndex::A, LegIndex::B);
    let cases = [
        (
            Socket::Rtp(a, Stream::Video),
            PBX_VIDEO,
            VP8,
            Socket::Rtp(b, Stream::Video),
            "127.0.0.2:7002",
        ),
        (
            Socket::Rtp(a, Stream::Audio),
            PBX,
            OPUS,
            Socket::Rtp(b, Stream::Audio),
            "127.0.0.2:7000",
        ),
        (
            Socket::Rtp(b, Stream::Video),
            "127.0.0.2:7002",
            VP8,
            Socket::Rtp(a, Stream::Video),
            PBX_VIDEO,
        ),
    ];
    for (via, from, pt, out, to) in cases {
        let n = rtp(&mut buf, pt, 1, 1);
        let v = s.handle_datagram(now, via, addr(from), &mut buf, n);
        assert_eq!(
            v,
            Verdict::Forward {
                via: out,
                to: addr(to),
                len: n
            },
            "{via:?}"
        );
    }
    // Video RTCP: to the muxed RTP port of B's video, to the RTCP port of A's.
    let n = rtcp(&mut buf, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtcp(a, Stream::Video),
        addr(PBX_VIDEO_RTCP),
        &mut buf,
        n,
    );
    let want = Verdict::Forward {
        via: Socket::Rtp(b, Stream::Video),
        to: addr("127.0.0.2:7002"),
        len: n,
    };
    assert_eq!(v, want);
    let v = s.handle_datagram(
        now,
        Socket::Rtp(b, Stream::Video),
        addr("127.0.0.2:7002"),
        &mut buf,
        n,
    );
    let want = Verdict::Forward {
        via: Socket::Rtcp(a, Stream::Video),
        to: addr(PBX_VIDEO_RTCP),
        len: n,
    };
    assert_eq!(v, want);

    // A plain leg without a video stream has nowhere to put the other's video.
    let mut s = Session::new(
        SessionId(22),
        &[
            LegSpec::Plain(Some(av_remote(true))),
            LegSpec::Plain(Some(plain_remote(Direction::SendRecv))),
        ],
        [
            LocalAddrs::with_video(addr(PLAIN_LOCAL), addr(PLAIN_VIDEO_LOCAL)),
            LocalAddrs::at(addr("127.0.0.1:40008")),
        ],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(31),
    )
    .unwrap();
    let n = rtp(&mut buf, VP8, 1, 1);
    let v = s.handle_datagram(
        now,
        Socket::Rtp(a, Stream::Video),
        addr(PBX_VIDEO),
        &mut buf,
        n,
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoDestination));
    // Nor does a socket it was never given exist for it.
    let v = s.handle_datagram(now, Socket::Rtp(b, Stream::Video), addr(PBX), &mut buf, n);
    assert_eq!(v, Verdict::Drop(DropReason::UnknownSource));
}

#[test]
fn echo_reflects_plain_video_on_its_own_port() {
    let now = VirtualClock::new().now();
    let mut s = Session::new(
        SessionId(23),
        &[LegSpec::Plain(Some(av_remote(true))), LegSpec::Echo],
        [
            LocalAddrs::with_video(addr(PLAIN_LOCAL), addr(PLAIN_VIDEO_LOCAL)),
            LocalAddrs::NONE,
        ],
        identity(0),
        SessionConfig::default(),
        now,
        &mut seeded(32),
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let video = Socket::Rtp(LegIndex::A, Stream::Video);
    let n = rtp(&mut buf, VP8, 1, 1);
    let v = s.handle_datagram(now, video, addr(PBX_VIDEO), &mut buf, n);
    assert_eq!(
        v,
        Verdict::Forward {
            via: video,
            to: addr(PBX_VIDEO),
            len: n
        }
    );
}

#[test]
fn a_video_port_is_only_for_a_plain_leg() {
    let b = Browser::new(addr(BROWSER), Setup::Active);
    let r = Session::new(
        SessionId(24),
        &[LegSpec::WebRtc(Some(b.remote())), LegSpec::Echo],
        [
            LocalAddrs::with_video(addr(WEBRTC_LOCAL), addr(PLAIN_VIDEO_LOCAL)),
            LocalAddrs::NONE,
        ],
        identity(0),
        SessionConfig::default(),
        VirtualClock::new().now(),
        &mut seeded(33),
    );
    assert!(matches!(r, Err(Failure::BadRequest(_))));
}

/// Not a check: a fixed workload for `valgrind --tool=callgrind` (deterministic instruction
/// counts). `SESSION_WORKLOAD=<n>` relays n packets each way through a connected session, in
/// memory. Run: `cargo test --release -p engine --lib session_workload -- --ignored`.
#[test]
#[ignore = "a profiling workload, not a check"]
fn session_workload() {
    let n: u16 = std::env::var("SESSION_WORKLOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    for seq in 1..=n {
        assert!(forwarded(c.browser_sends(seq)));
        assert!(forwarded(c.pbx_sends(seq)));
    }
}

impl Call {
    /// The browser sends RTP carrying a MID header extension (RFC 8843 §15; one-byte form,
    /// extmap id 4); returns what the SIP side must get (the packet without its extension:
    /// the ids were negotiated with the browser only) and the verdict.
    fn browser_rtp_mid(&mut self, pt: u8, seq: u16, ssrc: u32, mid: u8) -> (Vec<u8>, Verdict) {
        let mut plain = [0u8; 172];
        rtp(&mut plain, pt, seq, ssrc);
        let forwarded = [&plain[..12], &plain[20..]].concat();
        plain[0] |= 0x10;
        plain[12..20].copy_from_slice(&[0xBE, 0xDE, 0, 1, 0x40, mid, 0, 0]);
        self.buf[..172].copy_from_slice(&plain);
        let n = self
            .b
            .srtp_out
            .as_mut()
            .unwrap()
            .protect_rtp(&mut self.buf, 172)
            .unwrap();
        let v = self
            .s
            .handle_datagram(self.now, Socket::WebRtc, self.b.addr, &mut self.buf, n);
        (forwarded, v)
    }
}

#[test]
fn the_mid_header_extension_decides_before_ssrc_and_payload_type() {
    let mut c = Call::with_video();
    let mut remote = c.b.remote();
    remote.payload_types = vec![OPUS, 101, VP8, 97];
    remote.mid_ext = Some(4);
    remote.video_mid = Some("1".into());
    c.s.update(
        c.now,
        LegIndex::A,
        &LegSpec::WebRtc(Some(remote)),
        &mut seeded(34),
    )
    .unwrap();
    let audio = Socket::Rtp(LegIndex::B, Stream::Audio);
    let video = Socket::Rtp(LegIndex::B, Stream::Video);
    // MID "1" (the video section) sends even an audio payload type to the video stream, and
    // teaches its SSRC: the same SSRC without the extension stays video.
    let (plain, v) = c.browser_rtp_mid(OPUS, 1, 0x1111, b'1');
    forwarded_as(&c.buf, v, video, PBX_VIDEO, &plain);
    let (plain, v) = c.browser_rtp(OPUS, 2, 0x1111);
    forwarded_as(&c.buf, v, video, PBX_VIDEO, &plain);
    // MID "0" (audio) wins over the video payload type, and un-learns the SSRC.
    let (plain, v) = c.browser_rtp_mid(VP8, 3, 0x1111, b'0');
    forwarded_as(&c.buf, v, audio, PBX, &plain);
    let (plain, v) = c.browser_rtp(OPUS, 4, 0x1111);
    forwarded_as(&c.buf, v, audio, PBX, &plain);
    // Without the extension, payload type and SSRC decide as before.
    let (plain, v) = c.browser_rtp(VP8, 5, 0x2222);
    forwarded_as(&c.buf, v, video, PBX_VIDEO, &plain);
    // An extension the SDP did not negotiate (another id) is not read as a MID.
    let mut remote = c.b.remote();
    remote.payload_types = vec![OPUS, 101, VP8, 97];
    remote.mid_ext = Some(9);
    remote.video_mid = Some("1".into());
    c.s.update(
        c.now,
        LegIndex::A,
        &LegSpec::WebRtc(Some(remote)),
        &mut seeded(35),
    )
    .unwrap();
    let (plain, v) = c.browser_rtp_mid(OPUS, 6, 0x3333, b'1');
    forwarded_as(&c.buf, v, audio, PBX, &plain);
}

mod latching;

#[test]
fn rtp_from_the_sip_side_reaches_the_browser_without_header_extensions() {
    let mut c = Call::new(Setup::Active, SessionConfig::default());
    c.connect();
    let mut plain = [0u8; 172];
    rtp(&mut plain, 8, 1, 0xfeed);
    let want = [&plain[..12], &plain[20..]].concat();
    plain[0] |= 0x10;
    plain[12..20].copy_from_slice(&[0xBE, 0xDE, 0, 1, 0x40, b'7', 0, 0]);
    c.buf[..172].copy_from_slice(&plain);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX),
        &mut c.buf,
        172,
    );
    let Verdict::Forward { via, to, len } = v else {
        panic!("{v:?}")
    };
    assert_eq!((via, to), (Socket::WebRtc, c.b.addr));
    let n =
        c.b.srtp_in
            .as_mut()
            .unwrap()
            .unprotect_rtp(&mut c.buf, len)
            .unwrap();
    assert_eq!(&c.buf[..n], &want[..]);
}
