//! Plain-leg latching against RTP bleed, on a virtual clock: a stranger spraying the plain
//! port with a negotiated payload type, before and after the far end's SDP, in strict and
//! heuristic mode.

use super::*;
use testkit::VirtualClock;

/// The attacker's host (never on the signaling path).
const ATTACKER: &str = "127.0.0.66:40000";
/// The attacker guessed the far end's port.
const ATTACKER_ON_PBX_PORT: &str = "127.0.0.66:60000";
/// The far end behind a NAT that keeps its IP but not its port.
const PBX_NAT: &str = "127.0.0.1:7000";
const PBX_NAT_RTCP: &str = "127.0.0.1:7001";
const WINDOW: Duration = Duration::from_secs(3);

/// A browser call whose plain leg starts with `remote` (`None`: the far end's SDP comes later,
/// as for a call from the browser), ICE and DTLS connected.
fn call(latching: Latching, remote: Option<PlainRemote>) -> Call {
    let now = VirtualClock::new().now();
    let mut b = Browser::new(addr(BROWSER), Setup::Active);
    let s = Session::new(
        SessionId(30),
        &[LegSpec::WebRtc(Some(b.remote())), LegSpec::Plain(remote)],
        [
            LocalAddrs::at(addr(WEBRTC_LOCAL)),
            LocalAddrs::at(addr(PLAIN_LOCAL)),
        ],
        identity(0),
        SessionConfig {
            latching,
            ..SessionConfig::default()
        },
        now,
        &mut seeded(1),
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
    c
}

fn heuristic() -> Latching {
    Latching::Heuristic { window: WINDOW }
}

impl Call {
    /// RTP with a negotiated payload type from `src` on the plain leg's RTP port.
    fn plain_rtp_from(&mut self, src: &str, seq: u16) -> Verdict {
        let n = rtp(&mut self.buf, 0, seq, 0x5eed);
        let v = self.s.handle_datagram(
            self.now,
            Socket::Rtp(LegIndex::B, Stream::Audio),
            addr(src),
            &mut self.buf,
            n,
        );
        if let Verdict::Forward { via, to, .. } = v {
            assert_eq!((via, to), (Socket::WebRtc, self.b.addr), "from {src}");
        }
        v
    }

    /// RTCP from `src` on the plain leg's RTCP port (`mux`: on its RTP port).
    fn plain_rtcp_from(&mut self, src: &str, mux: bool) -> Verdict {
        let n = rtcp(&mut self.buf, 0x5eed);
        let via = if mux {
            Socket::Rtp(LegIndex::B, Stream::Audio)
        } else {
            Socket::Rtcp(LegIndex::B, Stream::Audio)
        };
        let v = self
            .s
            .handle_datagram(self.now, via, addr(src), &mut self.buf, n);
        if let Verdict::Forward { via, to, .. } = v {
            assert_eq!((via, to), (Socket::WebRtc, self.b.addr), "from {src}");
        }
        v
    }

    /// Where the browser's next RTP goes on the plain leg (`None`: dropped, with the reason).
    fn browser_rtp_to(&mut self, seq: u16) -> Result<SocketAddr, DropReason> {
        match self.browser_rtp(0, seq, 0xb0b0).1 {
            Verdict::Forward {
                via: Socket::Rtp(LegIndex::B, Stream::Audio),
                to,
                ..
            } => Ok(to),
            Verdict::Drop(r) => Err(r),
            v => panic!("{v:?}"),
        }
    }

    /// Where the browser's next RTCP goes on the plain leg.
    fn browser_rtcp_to(&mut self) -> Result<SocketAddr, DropReason> {
        match self.browser_rtcp(0xb0b0).1 {
            Verdict::Forward {
                via: Socket::Rtcp(LegIndex::B, Stream::Audio),
                to,
                ..
            } => Ok(to),
            Verdict::Drop(r) => Err(r),
            v => panic!("{v:?}"),
        }
    }

    fn plain_sdp(&mut self, remote: PlainRemote) {
        self.s
            .update(
                self.now,
                LegIndex::B,
                &LegSpec::Plain(Some(remote)),
                &mut seeded(2),
            )
            .unwrap();
    }
}

fn at(rtp: &str, rtcp: &str) -> PlainRemote {
    PlainRemote {
        rtp: Some(addr(rtp)),
        rtcp: Some(addr(rtcp)),
        ..plain_remote(Direction::SendRecv)
    }
}

const UNKNOWN: Verdict = Verdict::Drop(DropReason::UnknownSource);

#[test]
fn nothing_is_accepted_before_the_sdp_and_the_sprayer_never_latches() {
    let mut c = call(Latching::Strict, None);
    for seq in 0..5 {
        for src in [ATTACKER, PBX, PBX_NAT] {
            assert_eq!(
                c.plain_rtp_from(src, seq),
                Verdict::Drop(DropReason::BeforeSdp),
                "{src}"
            );
        }
        assert_eq!(
            c.plain_rtcp_from(ATTACKER, false),
            Verdict::Drop(DropReason::BeforeSdp)
        );
        assert_eq!(
            c.plain_rtcp_from(ATTACKER, true),
            Verdict::Drop(DropReason::BeforeSdp)
        );
        assert_eq!(c.browser_rtp_to(seq), Err(DropReason::NoDestination));
        c.now += Duration::from_millis(20);
    }
    assert_eq!(c.s.drops().get(DropReason::BeforeSdp), 25);

    // The far end answers; the attacker keeps spraying, first.
    c.plain_sdp(plain_remote(Direction::SendRecv));
    assert_eq!(c.browser_rtp_to(10), Ok(addr(PBX)), "the SDP address");
    for seq in 10..15 {
        for src in [ATTACKER, ATTACKER_ON_PBX_PORT] {
            assert_eq!(c.plain_rtp_from(src, seq), UNKNOWN, "{src}");
            assert_eq!(c.plain_rtcp_from(src, false), UNKNOWN, "{src}");
        }
        c.now += Duration::from_millis(20);
    }
    assert_eq!(c.browser_rtp_to(15), Ok(addr(PBX)));
    assert_eq!(c.browser_rtcp_to(), Ok(addr(PBX_RTCP)));

    // The real far end, from its SDP IP through a NAT that changed the port: learned.
    assert!(forwarded(c.plain_rtp_from(PBX_NAT, 20)));
    assert_eq!(c.browser_rtp_to(20), Ok(addr(PBX_NAT)));
    assert_eq!(
        c.browser_rtcp_to(),
        Err(DropReason::NoDestination),
        "its RTCP port is learned from its RTCP"
    );
    assert!(forwarded(c.plain_rtcp_from(PBX_NAT_RTCP, false)));
    assert_eq!(c.browser_rtcp_to(), Ok(addr(PBX_NAT_RTCP)));

    // Long after: the attacker still gets nothing, from any port.
    c.now += Duration::from_secs(10);
    for seq in 30..35 {
        for src in [ATTACKER, ATTACKER_ON_PBX_PORT, "127.0.0.66:7000"] {
            assert_eq!(c.plain_rtp_from(src, seq), UNKNOWN, "{src}");
            assert_eq!(c.plain_rtcp_from(src, false), UNKNOWN, "{src}");
            assert_eq!(c.plain_rtcp_from(src, true), UNKNOWN, "{src}");
        }
        assert!(forwarded(c.plain_rtp_from(PBX_NAT, seq)));
        assert_eq!(c.browser_rtp_to(seq), Ok(addr(PBX_NAT)));
    }
    assert_eq!(
        c.s.drops().get(DropReason::UnknownSource),
        10 * 2 + 5 * 3 * 3
    );
}

#[test]
fn strict_learns_the_port_once_and_only_from_the_sdp_ip() {
    let mut c = call(Latching::Strict, Some(plain_remote(Direction::SendRecv)));
    // Another host with the SDP's port, or a stranger, cannot latch even first.
    assert_eq!(c.plain_rtp_from(ATTACKER_ON_PBX_PORT, 1), UNKNOWN);
    assert_eq!(c.plain_rtp_from(ATTACKER, 2), UNKNOWN);
    // A payload type the SDP did not name does not teach a port either.
    let n = rtp(&mut c.buf, 9, 3, 0x5eed);
    let v = c.s.handle_datagram(
        c.now,
        Socket::Rtp(LegIndex::B, Stream::Audio),
        addr(PBX_NAT),
        &mut c.buf,
        n,
    );
    assert_eq!(v, UNKNOWN);
    assert_eq!(c.browser_rtp_to(1), Ok(addr(PBX)));
    assert!(forwarded(c.plain_rtp_from(PBX_NAT, 4)));
    // Learned once: another port of the same host, and the SDP port itself, are strangers now.
    assert_eq!(c.plain_rtp_from("127.0.0.1:7002", 5), UNKNOWN);
    assert_eq!(c.plain_rtp_from(PBX, 6), UNKNOWN);
    assert_eq!(c.browser_rtp_to(2), Ok(addr(PBX_NAT)));
    // RTCP only from the far end's host: the attacker cannot take the RTCP port first.
    assert_eq!(c.plain_rtcp_from("127.0.0.66:7001", false), UNKNOWN);
    assert!(forwarded(c.plain_rtcp_from(PBX_NAT_RTCP, false)));
    assert_eq!(c.plain_rtcp_from("127.0.0.1:7003", false), UNKNOWN);
}

#[test]
fn heuristic_prefers_the_exact_address_then_the_ip_then_the_port_then_the_first_source() {
    let mut c = call(heuristic(), Some(plain_remote(Direction::SendRecv)));
    let step = Duration::from_millis(400);
    // Within the window, each better match takes over; an equal or worse one does not.
    let order = [
        (ATTACKER, true),
        ("127.0.0.77:40000", false),
        (ATTACKER_ON_PBX_PORT, true),
        (ATTACKER, false),
        (PBX_NAT, true),
        (ATTACKER_ON_PBX_PORT, false),
        ("127.0.0.1:7002", false),
        (PBX, true),
        (PBX_NAT, false),
    ];
    let mut latched = None;
    for (seq, (src, takes_over)) in order.into_iter().enumerate() {
        let v = c.plain_rtp_from(src, seq as u16);
        assert_eq!(forwarded(v), takes_over, "{src}: {v:?}");
        if takes_over {
            latched = Some(addr(src));
        }
        assert_eq!(c.browser_rtp_to(seq as u16).ok(), latched, "after {src}");
        c.now += step / 4;
    }
    assert!(c.now < c.s.started + WINDOW);
    // Past the window: fixed for good.
    c.now = c.s.started + WINDOW + step;
    for (seq, src) in [ATTACKER, PBX_NAT].into_iter().enumerate() {
        assert_eq!(c.plain_rtp_from(src, 100 + seq as u16), UNKNOWN, "{src}");
    }
    assert!(forwarded(c.plain_rtp_from(PBX, 200)));
    assert_eq!(c.browser_rtp_to(200), Ok(addr(PBX)));
}

#[test]
fn heuristic_learns_a_wrong_sdp_peer_and_freezes_after_the_window() {
    // The far end's SDP names a private address its packets never come from.
    let mut c = call(heuristic(), Some(plain_remote(Direction::SendRecv)));
    let real = "127.0.0.5:7000";
    c.now += Duration::from_secs(1);
    assert!(forwarded(c.plain_rtp_from(real, 1)));
    assert_eq!(c.browser_rtp_to(1), Ok(addr(real)));
    // Its RTCP is learned from its host; the SDP's RTCP port is not used meanwhile.
    assert_eq!(c.browser_rtcp_to(), Err(DropReason::NoDestination));
    assert_eq!(c.plain_rtcp_from(ATTACKER, false), UNKNOWN);
    assert!(forwarded(c.plain_rtcp_from("127.0.0.5:7001", false)));
    assert_eq!(c.browser_rtcp_to(), Ok(addr("127.0.0.5:7001")));
    // After the window nothing takes it over, not even the exact SDP address.
    c.now += WINDOW;
    for (seq, src) in [PBX, PBX_NAT, ATTACKER, "127.0.0.5:7002"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(c.plain_rtp_from(src, 10 + seq as u16), UNKNOWN, "{src}");
    }
    assert!(forwarded(c.plain_rtp_from(real, 20)));
    assert_eq!(c.browser_rtp_to(20), Ok(addr(real)));
}

#[test]
fn heuristic_with_nothing_in_the_window_is_strict_after_it() {
    let mut c = call(heuristic(), Some(plain_remote(Direction::SendRecv)));
    c.now += WINDOW;
    assert_eq!(c.plain_rtp_from(ATTACKER, 1), UNKNOWN);
    assert_eq!(c.plain_rtp_from(ATTACKER_ON_PBX_PORT, 2), UNKNOWN);
    assert!(forwarded(c.plain_rtp_from(PBX_NAT, 3)));
    assert_eq!(c.plain_rtp_from("127.0.0.1:7002", 4), UNKNOWN);
    assert_eq!(c.plain_rtp_from(PBX, 5), UNKNOWN);
    assert_eq!(c.browser_rtp_to(1), Ok(addr(PBX_NAT)));
}

#[test]
fn a_new_sdp_address_learns_again_under_the_same_rules() {
    let mut c = call(Latching::Strict, Some(plain_remote(Direction::SendRecv)));
    assert!(forwarded(c.plain_rtp_from(PBX_NAT, 1)));
    // The same address again (a re-INVITE for a codec change) keeps what was learned.
    c.plain_sdp(plain_remote(Direction::SendRecv));
    assert!(forwarded(c.plain_rtp_from(PBX_NAT, 2)));
    assert_eq!(c.browser_rtp_to(1), Ok(addr(PBX_NAT)));
    // The call moves to another host: the old one is a stranger, the new host's port is learned.
    c.plain_sdp(at("127.0.0.2:8000", "127.0.0.2:8001"));
    assert_eq!(c.browser_rtp_to(2), Ok(addr("127.0.0.2:8000")));
    assert_eq!(c.plain_rtp_from(PBX_NAT, 3), UNKNOWN);
    assert_eq!(c.plain_rtp_from(ATTACKER, 4), UNKNOWN);
    assert!(forwarded(c.plain_rtp_from("127.0.0.2:9000", 5)));
    assert_eq!(c.browser_rtp_to(3), Ok(addr("127.0.0.2:9000")));

    // Heuristic: the window starts again at the new SDP.
    let mut c = call(heuristic(), Some(plain_remote(Direction::SendRecv)));
    assert!(forwarded(c.plain_rtp_from(PBX, 1)));
    c.now += WINDOW * 3;
    c.plain_sdp(at("127.0.0.2:8000", "127.0.0.2:8001"));
    c.now += WINDOW / 3;
    assert!(forwarded(c.plain_rtp_from(ATTACKER, 2)), "first source");
    c.now += WINDOW / 3;
    assert!(
        forwarded(c.plain_rtp_from("127.0.0.2:9000", 3)),
        "the SDP IP"
    );
    c.now += WINDOW;
    assert_eq!(c.plain_rtp_from(ATTACKER, 4), UNKNOWN);
    assert_eq!(c.plain_rtp_from("127.0.0.2:8000", 5), UNKNOWN);
    assert_eq!(c.browser_rtp_to(4), Ok(addr("127.0.0.2:9000")));
}

#[test]
fn an_sdp_without_an_address_keeps_the_trusted_host() {
    let mut c = call(Latching::Strict, Some(plain_remote(Direction::SendRecv)));
    assert!(forwarded(c.plain_rtp_from(PBX_NAT, 1)));
    // RFC 2543 hold (c=0.0.0.0): nothing goes to the far end, its music on hold still comes
    // in from the learned source, and nobody else is learned meanwhile.
    c.plain_sdp(PlainRemote {
        rtp: None,
        rtcp: None,
        ..plain_remote(Direction::SendOnly)
    });
    assert_eq!(c.browser_rtp_to(2), Err(DropReason::Held));
    assert_eq!(c.browser_rtcp_to(), Err(DropReason::NoDestination));
    assert!(forwarded(c.plain_rtp_from(PBX_NAT, 2)));
    assert_eq!(c.plain_rtp_from(ATTACKER, 3), UNKNOWN);
    assert_eq!(c.plain_rtp_from("127.0.0.1:7002", 4), UNKNOWN);
    // Resumed at the same address: the same source.
    c.plain_sdp(plain_remote(Direction::SendRecv));
    assert_eq!(c.browser_rtp_to(3), Ok(addr(PBX_NAT)));

    // An address-less first SDP trusts nobody.
    let mut c = call(
        Latching::Strict,
        Some(PlainRemote {
            rtp: None,
            rtcp: None,
            ..plain_remote(Direction::SendOnly)
        }),
    );
    assert_eq!(c.plain_rtp_from(PBX, 1), UNKNOWN);
    assert_eq!(c.plain_rtp_from(ATTACKER, 2), UNKNOWN);
}
