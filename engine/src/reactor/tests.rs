//! Reactor tests on loopback with real sockets: a WebRTC client peer (ICE checks with
//! USE-CANDIDATE, DTLS, SRTP from engine::proto) and a plain RTP peer exchange media through
//! running reactors. Every wait is bounded in count and time.

#![allow(
    clippy::disallowed_methods,
    reason = "real-socket tests: they bind ports and read the clock to bound their waits"
)]

use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::time::Duration;

use crate::api::{
    Command, Direction, Event, Failure, LegIndex, LegSpec, LocalLeg, Output, PlainRemote, Reply,
    SessionId, Setup,
};
use crate::ports::plan_shards;
use crate::proto::session::tests::{rtcp, rtp, Browser};
use crate::proto::stats::DropReason;
use crate::{Engine, EngineConfig, EngineHandle};

const WAIT: Duration = Duration::from_secs(5);

use crate::TEST_PANIC_PAYLOAD as PANIC_PAYLOAD;

fn start() -> std::time::Instant {
    #[allow(
        clippy::disallowed_methods,
        reason = "real-socket tests bound their waits by the real clock"
    )]
    std::time::Instant::now()
}

/// A free port range for one test. Tests run in parallel and other processes use ports too,
/// so each call takes the next block of a process-wide counter (offset by the process id) and
/// skips blocks where any port is taken.
fn range(_block: u16, len: u16) -> std::ops::RangeInclusive<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let origin = 20_000 + (std::process::id() % 300) as u16 * 100;
    for _ in 0..200 {
        let block = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = 20_000 + (origin - 20_000 + block * 32) % 40_000;
        let free = (base..base + len).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base..=base + len - 1;
        }
    }
    panic!("no free block of {len} ports");
}

fn engine(block: u16, ports: u16, reactors: usize) -> EngineHandle {
    engine_with_timeout(block, ports, reactors, Duration::from_secs(60))
}

fn engine_with_timeout(block: u16, ports: u16, reactors: usize, t: Duration) -> EngineHandle {
    Engine::start(EngineConfig {
        media_timeout: t,
        ..config(plan_shards(range(block, ports), reactors).unwrap())
    })
    .unwrap()
}

/// Waits for the first output `f` accepts; other outputs are discarded.
fn wait_for<T>(h: &mut EngineHandle, mut f: impl FnMut(&Output) -> Option<T>) -> T {
    let t0 = start();
    while t0.elapsed() < WAIT {
        while let Some(o) = h.try_recv() {
            if let Some(t) = f(&o) {
                return t;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no matching output within {WAIT:?}");
}

fn allocated(h: &mut EngineHandle, id: SessionId) -> Result<[LocalLeg; 2], Failure> {
    wait_for(h, |o| match o {
        Output::Reply(Reply::Allocated { id: i, legs }) if *i == id => Some(Ok(legs.clone())),
        Output::Reply(Reply::Failed { id: i, failure }) if *i == id => Some(Err(failure.clone())),
        _ => None,
    })
}

/// A loopback engine's configuration: `shards`, strict latching, a 60 s media timeout,
/// unbatched, normal scheduling.
fn config(shards: Vec<crate::ports::Shard>) -> EngineConfig {
    EngineConfig {
        shards,
        bind: "127.0.0.1".parse().unwrap(),
        advertise: "127.0.0.1".parse().unwrap(),
        media_timeout: Duration::from_secs(60),
        latching: crate::Latching::Strict,
        batch_us: 0,
        realtime_priority: 0,
    }
}

fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// A datagram, or None after the socket's read timeout. `EINTR` is not a loss: a blocking
/// socket read with a timeout is not restarted after an interruption, and io_uring interrupts
/// one (task work with `TWA_SIGNAL`) when a ring the reading thread made is closed.
fn recv(s: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    loop {
        match s.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r.ok(),
        }
    }
}

struct Peer {
    b: Browser,
    sock: UdpSocket,
    relay: SocketAddr,
}

impl Peer {
    fn new(setup: Setup) -> Self {
        let sock = udp();
        let b = Browser::new(sock.local_addr().unwrap(), setup);
        Self {
            b,
            sock,
            relay: "0.0.0.0:0".parse().unwrap(),
        }
    }

    fn learn(&mut self, local: &LocalLeg) {
        self.b.learn(local);
        let LocalLeg::WebRtc { addr, .. } = local else {
            panic!()
        };
        self.relay = *addr;
    }

    /// ICE with nomination, then the DTLS handshake over the real socket.
    fn connect(&mut self, relay_fp: &str) {
        let mut buf = [0u8; 2048];
        let n = self.b.check(&mut buf, true);
        self.sock.send_to(&buf[..n], self.relay).unwrap();
        let (n, from) = recv(&self.sock, &mut buf).expect("a Binding response");
        assert_eq!(from, self.relay);
        self.b.verify_response(&buf[..n]);
        let now = start();
        self.b.start_dtls(relay_fp, now);
        let t0 = start();
        while self.b.srtp_out.is_none() && t0.elapsed() < WAIT {
            #[allow(
                clippy::disallowed_methods,
                reason = "DTLS runs on the real clock here"
            )]
            let now = std::time::Instant::now();
            let dtls = self.b.dtls.as_mut().unwrap();
            while let Some(d) = dtls.poll_transmit() {
                self.sock.send_to(&d, self.relay).unwrap();
            }
            self.sock
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            if let Some((n, _)) = recv(&self.sock, &mut buf) {
                dtls.handle_input(now, &buf[..n]);
            } else {
                dtls.handle_timeout(now);
            }
            self.b.poll_dtls();
        }
        // As DTLS server the browser finishes first: its final flight is still queued.
        while let Some(d) = self.b.dtls.as_mut().unwrap().poll_transmit() {
            self.sock.send_to(&d, self.relay).unwrap();
        }
        self.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(self.b.srtp_out.is_some(), "DTLS connected");
    }

    fn send_rtp(&mut self, seq: u16) -> Vec<u8> {
        self.send_rtp_as(0, seq, 0xb0b0)
    }

    /// Sends SRTP with payload type `pt` from `ssrc`; returns the plaintext.
    fn send_rtp_as(&mut self, pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let n = rtp(&mut buf, pt, seq, ssrc);
        let plain = buf[..n].to_vec();
        let n = self
            .b
            .srtp_out
            .as_mut()
            .unwrap()
            .protect_rtp(&mut buf, n)
            .unwrap();
        self.sock.send_to(&buf[..n], self.relay).unwrap();
        plain
    }

    fn recv_rtp(&mut self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let (n, from) = recv(&self.sock, &mut buf)?;
        assert_eq!(from, self.relay);
        let n = self
            .b
            .srtp_in
            .as_mut()
            .unwrap()
            .unprotect_rtp(&mut buf, n)
            .ok()?;
        Some(buf[..n].to_vec())
    }
}

struct Pbx {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Pbx {
    fn new() -> Self {
        Self {
            rtp: udp(),
            rtcp: udp(),
        }
    }

    fn remote(&self) -> PlainRemote {
        PlainRemote {
            rtp: Some(self.rtp.local_addr().unwrap()),
            rtcp: Some(self.rtcp.local_addr().unwrap()),
            rtcp_mux: false,
            direction: Direction::SendRecv,
            payload_types: vec![0, 8],
            video: None,
        }
    }
}

/// Allocates a browser + PBX call and brings the browser up; returns the relay's plain port.
fn call(h: &mut EngineHandle, id: u64, peer: &mut Peer, pbx: &Pbx) -> SocketAddr {
    let id = SessionId(id);
    h.send(Command::Allocate {
        id,
        legs: [
            LegSpec::WebRtc(Some(peer.b.remote())),
            LegSpec::Plain(Some(pbx.remote())),
        ],
        video: false,
    });
    let legs = allocated(h, id).unwrap();
    peer.learn(&legs[0]);
    let LocalLeg::Plain {
        rtp,
        video_rtp: None,
    } = legs[1]
    else {
        panic!()
    };
    let fp = h.fingerprint().to_owned();
    peer.connect(&fp);
    wait_for(h, |o| {
        matches!(o, Output::Event(Event::DtlsConnected { id: i, .. }) if *i == id).then_some(())
    });
    rtp
}

fn media_both_ways(peer: &mut Peer, pbx: &Pbx, relay_plain: SocketAddr, seqs: Range<u16>) {
    let mut buf = [0u8; 2048];
    for seq in seqs {
        let plain = peer.send_rtp(seq);
        let (n, from) = recv(&pbx.rtp, &mut buf).expect("RTP at the PBX");
        assert_eq!(from, relay_plain);
        assert_eq!(&buf[..n], &plain[..]);

        let n = rtp(&mut buf, 8, 1000 + seq, 0xfeed);
        let sent = buf[..n].to_vec();
        pbx.rtp.send_to(&sent, relay_plain).unwrap();
        assert_eq!(peer.recv_rtp().expect("SRTP at the browser"), sent);
    }
}

#[test]
fn webrtc_and_plain_peers_exchange_media_through_a_reactor() {
    let mut h = engine(0, 12, 1);
    let mut peer = Peer::new(Setup::Active);
    let pbx = Pbx::new();
    let relay_plain = call(&mut h, 1, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..50);

    // RTCP: the PBX's RTCP reaches the browser as SRTCP on the one WebRTC port.
    let mut buf = [0u8; 2048];
    let n = rtcp(&mut buf, 0xfeed);
    let relay_rtcp = SocketAddr::new(relay_plain.ip(), relay_plain.port() + 1);
    pbx.rtcp.send_to(&buf[..n], relay_rtcp).unwrap();
    let (m, _) = recv(&peer.sock, &mut buf).expect("SRTCP at the browser");
    let m = peer
        .b
        .srtp_in
        .as_mut()
        .unwrap()
        .unprotect_rtcp(&mut buf, m)
        .unwrap();
    assert_eq!(m, 8);

    // A query (the ng node's) sees the live figures, and the session goes on.
    h.send(Command::Query { id: SessionId(1) });
    let live = wait_for(&mut h, |o| match o {
        Output::Reply(Reply::Stats { id, stats }) if *id == SessionId(1) => Some(*stats),
        _ => None,
    });
    assert_eq!(live.legs[0].packets_in, 50);
    assert_eq!(live.legs[1].packets_in, 51);
    h.send(Command::Query { id: SessionId(99) });
    let failed = wait_for(&mut h, |o| match o {
        Output::Reply(Reply::Failed { id, failure }) if *id == SessionId(99) => {
            Some(failure.clone())
        }
        _ => None,
    });
    assert_eq!(failed, Failure::UnknownSession);

    h.send(Command::Release { id: SessionId(1) });
    let stats = wait_for(&mut h, |o| match o {
        Output::Event(Event::Released { id, stats }) if *id == SessionId(1) => Some(*stats),
        _ => None,
    });
    assert_eq!(stats.legs[0].packets_in, 50);
    assert_eq!(stats.legs[1].packets_in, 51);
    assert_eq!(stats.legs[0].packets_out, 51);

    // Nothing reaches a released session: the browser's packets are dropped and counted.
    peer.send_rtp(100);
    assert!(recv(&pbx.rtp, &mut buf).is_none());
    let t0 = start();
    while h.stats()[0].drops.get(DropReason::UnknownSession) == 0 && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(h.stats()[0].drops.get(DropReason::UnknownSession) >= 1);
    assert_eq!(h.stats()[0].sessions, 0);
    h.shutdown();
}

#[test]
fn relay_as_dtls_client_through_a_reactor() {
    let mut h = engine(1, 12, 1);
    let mut peer = Peer::new(Setup::Passive);
    let pbx = Pbx::new();
    let relay_plain = call(&mut h, 2, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..10);
    h.shutdown();
}

#[test]
fn third_party_packets_on_the_plain_port_never_reach_the_browser() {
    let mut h = engine(2, 12, 1);
    let mut peer = Peer::new(Setup::Active);
    let pbx = Pbx::new();
    let relay_plain = call(&mut h, 3, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..3);
    let intruder = udp();
    let mut buf = [0u8; 2048];
    for seq in 0..10 {
        let n = rtp(&mut buf, 0, 5000 + seq, 0xbad);
        intruder.send_to(&buf[..n], relay_plain).unwrap();
    }
    assert!(
        peer.recv_rtp().is_none(),
        "the intruder's RTP reached the browser"
    );
    let t0 = start();
    while h.stats()[0].drops.get(DropReason::UnknownSource) < 10 && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(h.stats()[0].drops.get(DropReason::UnknownSource), 10);
    // The real PBX still gets through.
    media_both_ways(&mut peer, &pbx, relay_plain, 3..6);
    h.shutdown();
}

#[test]
fn two_reactors_share_the_load() {
    let mut h = engine(3, 24, 2);
    let mut peers = [Peer::new(Setup::Active), Peer::new(Setup::ActPass)];
    let pbxs = [Pbx::new(), Pbx::new()];
    let mut relays = Vec::new();
    for (i, (peer, pbx)) in peers.iter_mut().zip(&pbxs).enumerate() {
        relays.push(call(&mut h, 10 + i as u64, peer, pbx));
    }
    assert_ne!(peers[0].relay, peers[1].relay, "one session per reactor");
    for (i, (peer, pbx)) in peers.iter_mut().zip(&pbxs).enumerate() {
        media_both_ways(peer, pbx, relays[i], 0..10);
    }
    let stats = h.stats();
    assert_eq!(stats.len(), 2);
    assert!(stats.iter().all(|s| s.sessions == 1 && s.packets_in >= 20));
    h.shutdown();
}

#[test]
fn an_exhausted_shard_fails_the_allocation() {
    // 4 ports on an odd start: the WebRTC port and exactly one RTP/RTCP pair.
    let r = range(4, 4);
    let start_port = if r.start() % 2 == 1 {
        *r.start()
    } else {
        r.start() + 1
    };
    let mut h =
        Engine::start(config(plan_shards(start_port..=start_port + 2, 1).unwrap())).unwrap();
    let plain = || LegSpec::Plain(None);
    h.send(Command::Allocate {
        id: SessionId(1),
        legs: [LegSpec::WebRtc(None), plain()],
        video: false,
    });
    assert!(allocated(&mut h, SessionId(1)).is_ok());
    h.send(Command::Allocate {
        id: SessionId(2),
        legs: [LegSpec::WebRtc(None), plain()],
        video: false,
    });
    assert_eq!(
        allocated(&mut h, SessionId(2)),
        Err(Failure::PortsExhausted)
    );
    // Updates to the failed id are refused locally.
    h.send(Command::Release { id: SessionId(2) });
    assert!(matches!(
        h.try_recv(),
        Some(Output::Reply(Reply::Failed {
            failure: Failure::UnknownSession,
            ..
        }))
    ));
    // The pair comes back after a release (once the ring let go of the old sockets).
    h.send(Command::Release { id: SessionId(1) });
    wait_for(&mut h, |o| {
        matches!(o, Output::Event(Event::Released { id, .. }) if *id == SessionId(1)).then_some(())
    });
    let mut ok = false;
    for i in 0..50 {
        let id = SessionId(100 + i);
        h.send(Command::Allocate {
            id,
            legs: [LegSpec::WebRtc(None), plain()],
            video: false,
        });
        if allocated(&mut h, id).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ok, "the released pair is allocated again");
    h.shutdown();
}

#[test]
fn echo_leg_through_a_reactor() {
    let mut h = engine(5, 12, 1);
    let mut peer = Peer::new(Setup::Active);
    h.send(Command::Allocate {
        id: SessionId(5),
        legs: [LegSpec::WebRtc(Some(peer.b.remote())), LegSpec::Echo],
        video: false,
    });
    let legs = allocated(&mut h, SessionId(5)).unwrap();
    assert_eq!(legs[1], LocalLeg::Echo);
    peer.learn(&legs[0]);
    let fp = h.fingerprint().to_owned();
    peer.connect(&fp);
    for seq in 0..20 {
        let sent = peer.send_rtp(seq);
        assert_eq!(peer.recv_rtp().expect("the echo"), sent);
    }
    h.shutdown();
}

#[test]
fn commands_for_unknown_sessions_fail() {
    let mut h = engine(6, 12, 1);
    h.send(Command::Update {
        id: SessionId(9),
        leg: LegIndex::A,
        remote: LegSpec::Echo,
    });
    assert_eq!(
        h.try_recv(),
        Some(Output::Reply(Reply::Failed {
            id: SessionId(9),
            failure: Failure::UnknownSession
        }))
    );
    h.shutdown();
}

#[test]
fn busy_webrtc_port_is_named_in_the_error() {
    let r = range(7, 12);
    let shards = plan_shards(r, 1).unwrap();
    let hog = UdpSocket::bind(("127.0.0.1", shards[0].webrtc_port)).unwrap();
    let err = Engine::start(config(shards.clone())).unwrap_err();
    assert!(
        err.to_string().contains(&shards[0].webrtc_port.to_string()),
        "{err}"
    );
    drop(hog);
}

#[test]
fn a_panicking_session_is_torn_down_alone() {
    let mut h = engine(8, 12, 1);
    let mut peers = [Peer::new(Setup::Active), Peer::new(Setup::Active)];
    let pbxs = [Pbx::new(), Pbx::new()];
    let mut relays = Vec::new();
    for (i, (peer, pbx)) in peers.iter_mut().zip(&pbxs).enumerate() {
        relays.push(call(&mut h, 20 + i as u64, peer, pbx));
    }
    pbxs[0].rtp.send_to(PANIC_PAYLOAD, relays[0]).unwrap();
    wait_for(&mut h, |o| {
        matches!(o, Output::Event(Event::Released { id, .. }) if *id == SessionId(20)).then_some(())
    });
    let t0 = start();
    while h.stats()[0].panics == 0 && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(h.stats()[0].panics, 1);
    assert_eq!(h.stats()[0].sessions, 1);
    // The other call carries on.
    let [_, peer] = &mut peers;
    media_both_ways(peer, &pbxs[1], relays[1], 0..10);
    h.shutdown();
}

#[test]
fn media_timeout_reaches_signaling() {
    let mut h = engine_with_timeout(9, 12, 1, Duration::from_millis(300));
    let mut peer = Peer::new(Setup::Active);
    let pbx = Pbx::new();
    let relay_plain = call(&mut h, 30, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..2);
    let t0 = start();
    wait_for(&mut h, |o| {
        matches!(o, Output::Event(Event::MediaTimeout { id }) if *id == SessionId(30)).then_some(())
    });
    assert!(t0.elapsed() >= Duration::from_millis(250));
    h.shutdown();
}

#[test]
fn ice_restart_moves_the_browser_to_a_new_address() {
    let mut h = engine(10, 12, 1);
    let mut peer = Peer::new(Setup::Active);
    let pbx = Pbx::new();
    let relay_plain = call(&mut h, 40, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..5);

    // The browser changes network and restarts ICE with new credentials.
    peer.b.creds = crate::proto::ice::IceCredentials::random().unwrap();
    h.send(Command::Update {
        id: SessionId(40),
        leg: LegIndex::A,
        remote: LegSpec::WebRtc(Some(peer.b.remote())),
    });
    let local = wait_for(&mut h, |o| match o {
        Output::Reply(Reply::Updated { local, .. }) => Some(local.clone()),
        _ => None,
    });
    peer.learn(&local);
    let old = std::mem::replace(&mut peer.sock, udp());
    peer.b.addr = peer.sock.local_addr().unwrap();
    let mut buf = [0u8; 2048];
    let n = peer.b.check(&mut buf, true);
    peer.sock.send_to(&buf[..n], peer.relay).unwrap();
    let (n, _) = recv(&peer.sock, &mut buf).expect("the new credentials are answered");
    peer.b.verify_response(&buf[..n]);
    let new_addr = peer.b.addr;
    wait_for(&mut h, |o| {
        matches!(o, Output::Event(Event::IceConnected { remote, .. }) if *remote == new_addr)
            .then_some(())
    });
    // Same DTLS association and SRTP contexts, new path.
    media_both_ways(&mut peer, &pbx, relay_plain, 5..15);
    assert!(
        recv(&old, &mut buf).is_none(),
        "nothing goes to the old address"
    );
    h.shutdown();
}

fn update_plain(h: &mut EngineHandle, id: u64, pbx: &Pbx, direction: Direction) {
    h.send(Command::Update {
        id: SessionId(id),
        leg: LegIndex::B,
        remote: LegSpec::Plain(Some(PlainRemote {
            direction,
            ..pbx.remote()
        })),
    });
    wait_for(h, |o| {
        matches!(o, Output::Reply(Reply::Updated { id: i, .. }) if *i == SessionId(id))
            .then_some(())
    });
}

#[test]
fn hold_and_resume_through_a_reactor() {
    let mut h = engine(11, 12, 1);
    let mut peer = Peer::new(Setup::Active);
    let pbx = Pbx::new();
    let relay_plain = call(&mut h, 50, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..5);

    // The PBX holds (sendonly: music on hold to the browser, nothing back to the PBX).
    update_plain(&mut h, 50, &pbx, Direction::SendOnly);
    let mut buf = [0u8; 2048];
    for seq in 5..10 {
        peer.send_rtp(seq);
        let n = rtp(&mut buf, 8, 1000 + seq, 0xfeed);
        let sent = buf[..n].to_vec();
        pbx.rtp.send_to(&sent, relay_plain).unwrap();
        assert_eq!(peer.recv_rtp().expect("music on hold"), sent);
    }
    assert!(
        recv(&pbx.rtp, &mut buf).is_none(),
        "nothing to the holding PBX"
    );
    let t0 = start();
    while h.stats()[0].drops.get(DropReason::Held) < 5 && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(h.stats()[0].drops.get(DropReason::Held), 5);

    update_plain(&mut h, 50, &pbx, Direction::SendRecv);
    media_both_ways(&mut peer, &pbx, relay_plain, 10..15);
    h.shutdown();
}

/// The browser hangs up: close_notify after SRTP went out on the reactor thread (libsrtp's
/// AES-GCM leaves errors on the thread's OpenSSL queue, which made OpenSSL report the alert as
/// a failed handshake). Nothing is reported; nothing more goes to the browser.
#[test]
fn close_notify_after_media_is_quiet_through_a_reactor() {
    let mut h = engine(12, 12, 1);
    let pbx = Pbx::new();
    let mut peer = Peer::new(Setup::Active);
    let relay_plain = call(&mut h, 60, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..5);
    let dtls = peer.b.dtls.as_mut().unwrap();
    dtls.close();
    let alert = dtls.poll_transmit().expect("close_notify");
    peer.sock.send_to(&alert, peer.relay).unwrap();
    let mut buf = [0u8; 2048];
    let n = rtp(&mut buf, 8, 2000, 0xfeed);
    let t0 = start();
    while h.stats()[0].drops.get(DropReason::NotConnected) == 0 && t0.elapsed() < WAIT {
        pbx.rtp.send_to(&buf[..n], relay_plain).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(h.stats()[0].drops.get(DropReason::NotConnected) > 0);
    h.send(Command::Release { id: SessionId(60) });
    let mut failed = Vec::new();
    wait_for(&mut h, |o| match o {
        Output::Event(Event::DtlsFailed { reason, .. }) => {
            failed.push(reason.clone());
            None
        }
        Output::Event(Event::Released { .. }) => Some(()),
        _ => None,
    });
    assert_eq!(failed, Vec::<String>::new());
    h.shutdown();
}

fn allocate_plain(h: &mut EngineHandle, id: u64, video: bool) -> Result<[LocalLeg; 2], Failure> {
    h.send(Command::Allocate {
        id: SessionId(id),
        legs: [LegSpec::WebRtc(None), LegSpec::Plain(None)],
        video,
    });
    allocated(h, SessionId(id))
}

/// A browser bundling audio (PT 0) and video (PT 96) with a PBX that answered both sections:
/// each section gets its own even/odd pair, and media crosses the reactor both ways.
#[test]
fn video_gets_its_own_port_pair_through_a_reactor() {
    const VP8: u8 = 96;
    let mut h = engine(13, 24, 1);
    let mut peer = Peer::new(Setup::Active);
    let pbx = Pbx::new();
    let camera = Pbx::new();
    let remote = PlainRemote {
        video: Some(Box::new(PlainRemote {
            payload_types: vec![VP8],
            ..camera.remote()
        })),
        ..pbx.remote()
    };
    let mut browser = peer.b.remote();
    browser.payload_types.push(VP8);
    let id = SessionId(70);
    h.send(Command::Allocate {
        id,
        legs: [LegSpec::WebRtc(Some(browser)), LegSpec::Plain(Some(remote))],
        video: true,
    });
    let legs = allocated(&mut h, id).unwrap();
    let LocalLeg::Plain {
        rtp: audio_rtp,
        video_rtp: Some(video_rtp),
    } = legs[1]
    else {
        panic!("{legs:?}")
    };
    peer.learn(&legs[0]);
    let (a, v) = (audio_rtp.port(), video_rtp.port());
    assert_eq!((a % 2, v % 2), (0, 0), "RTP on even ports");
    let mut ports = vec![a, a + 1, v, v + 1, peer.relay.port()];
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 5, "{audio_rtp} {video_rtp} {}", peer.relay);
    for p in [a, a + 1, v, v + 1] {
        assert!(UdpSocket::bind(("127.0.0.1", p)).is_err(), "{p} is bound");
    }
    let fp = h.fingerprint().to_owned();
    peer.connect(&fp);
    wait_for(&mut h, |o| {
        matches!(o, Output::Event(Event::DtlsConnected { id: i, .. }) if *i == id).then_some(())
    });

    let mut buf = [0u8; 2048];
    for seq in 0..10 {
        // Audio, as ever.
        media_both_ways(&mut peer, &pbx, audio_rtp, seq..seq + 1);
        // Video: out of the bundle to the PBX's video port, from the relay's video port.
        let plain = peer.send_rtp_as(VP8, 500 + seq, 0x71de0);
        let (n, from) = recv(&camera.rtp, &mut buf).expect("video at the PBX");
        assert_eq!(from, video_rtp);
        assert_eq!(&buf[..n], &plain[..]);
        let n = rtp(&mut buf, VP8, 3000 + seq, 0xcafe);
        let sent = buf[..n].to_vec();
        camera.rtp.send_to(&sent, video_rtp).unwrap();
        assert_eq!(peer.recv_rtp().expect("video at the browser"), sent);
    }
    // Video RTCP both ways: the PBX's into the bundle, the browser's (by its video sender SSRC)
    // to the PBX's video RTCP port from the relay's.
    let video_rtcp = SocketAddr::new(video_rtp.ip(), v + 1);
    let n = rtcp(&mut buf, 0xcafe);
    let sent = buf[..n].to_vec();
    camera.rtcp.send_to(&sent, video_rtcp).unwrap();
    let (m, _) = recv(&peer.sock, &mut buf).expect("SRTCP at the browser");
    let srtp = peer.b.srtp_in.as_mut().unwrap();
    let m = srtp.unprotect_rtcp(&mut buf, m).unwrap();
    assert_eq!(&buf[..m], &sent[..]);
    let n = rtcp(&mut buf, 0x71de0);
    let plain = buf[..n].to_vec();
    let srtp = peer.b.srtp_out.as_mut().unwrap();
    let n = srtp.protect_rtcp(&mut buf, n).unwrap();
    peer.sock.send_to(&buf[..n], peer.relay).unwrap();
    let (n, from) = recv(&camera.rtcp, &mut buf).expect("RTCP at the PBX's video port");
    assert_eq!((from, &buf[..n]), (video_rtcp, &plain[..]));
    // Nothing crossed over between the streams.
    assert!(recv(&pbx.rtp, &mut buf).is_none());
    assert!(recv(&pbx.rtcp, &mut buf).is_none());
    assert!(recv(&camera.rtp, &mut buf).is_none());

    h.send(Command::Release { id });
    let stats = wait_for(&mut h, |o| match o {
        Output::Event(Event::Released { id: i, stats }) if *i == id => Some(*stats),
        _ => None,
    });
    assert_eq!(stats.legs[1].packets_in, 10 + 10 + 1);
    assert_eq!(stats.legs[1].packets_out, 10 + 10 + 1);
    // All four sockets close.
    let t0 = start();
    let free = || {
        [a, a + 1, v, v + 1]
            .iter()
            .all(|&p| UdpSocket::bind(("127.0.0.1", p)).is_ok())
    };
    while !free() && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(free(), "the video pair is closed too");
    h.shutdown();
}

/// Video costs a second pair per plain leg; a video call that finds only one pair fails whole
/// and gives that pair back; a release gives both back.
#[test]
fn video_pairs_come_from_the_shard_and_go_back_to_it() {
    // 8 ports on an odd start: the WebRTC port and exactly three pairs.
    let r = range(14, 8);
    let first = if r.start() % 2 == 1 {
        *r.start()
    } else {
        r.start() + 1
    };
    let shards = plan_shards(first..=first + 6, 1).unwrap();
    assert_eq!(shards[0].pair_count(), 3);
    let mut h = Engine::start(config(shards)).unwrap();
    let legs = allocate_plain(&mut h, 1, true).unwrap();
    assert!(
        matches!(legs[1], LocalLeg::Plain { rtp, video_rtp: Some(v) } if rtp != v),
        "{legs:?}"
    );
    // One pair left: the audio pair is found, the video pair is not.
    assert_eq!(
        allocate_plain(&mut h, 2, true),
        Err(Failure::PortsExhausted)
    );
    // That pair went back: a call without video takes it, and only it.
    let legs = allocate_plain(&mut h, 3, false).unwrap();
    assert!(
        matches!(
            legs[1],
            LocalLeg::Plain {
                video_rtp: None,
                ..
            }
        ),
        "{legs:?}"
    );
    assert_eq!(
        allocate_plain(&mut h, 4, false),
        Err(Failure::PortsExhausted)
    );
    // Releasing the video call returns both its pairs (once the ring let go of the sockets).
    h.send(Command::Release { id: SessionId(1) });
    wait_for(&mut h, |o| {
        matches!(o, Output::Event(Event::Released { id, .. }) if *id == SessionId(1)).then_some(())
    });
    let mut ok = false;
    for i in 0..50 {
        if allocate_plain(&mut h, 100 + i, true).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ok, "both released pairs are allocated again");
    h.shutdown();
}

/// The load generator's browser leg (`proto::client::ClientLeg`, ICE controlling + DTLS +
/// SRTP on the real clock) against a reactor: the same client code the benchmarks use.
#[test]
fn the_shared_client_leg_talks_to_a_reactor() {
    use crate::proto::client::{ClientLeg, Received, RemoteMedia};
    use crate::proto::dtls::Fingerprint;
    use crate::proto::ice::IceCredentials;

    let mut h = engine(2, 12, 1);
    let pbx = Pbx::new();
    let sock = udp();
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let creds = IceCredentials::random().unwrap();
    let id_browser = crate::proto::session::tests::identity(1);
    let id = SessionId(7);
    h.send(Command::Allocate {
        id,
        legs: [
            LegSpec::WebRtc(Some(crate::api::WebRtcRemote {
                ice_ufrag: creds.ufrag.clone(),
                ice_pwd: creds.pwd.clone(),
                fingerprint: id_browser.fingerprint().to_sdp(),
                setup: Setup::ActPass,
                direction: Direction::SendRecv,
                payload_types: vec![0, 8],
                mid_ext: None,
                video_mid: None,
            })),
            LegSpec::Plain(Some(pbx.remote())),
        ],
        video: false,
    });
    let legs = allocated(&mut h, id).unwrap();
    let LocalLeg::WebRtc {
        addr,
        ice_ufrag,
        ice_pwd,
        fingerprint,
        setup,
    } = legs[0].clone()
    else {
        panic!("{legs:?}")
    };
    let LocalLeg::Plain {
        rtp: relay_plain, ..
    } = legs[1]
    else {
        panic!("{legs:?}")
    };
    assert_eq!(
        setup,
        Setup::Passive,
        "the relay answers actpass as DTLS server"
    );
    let remote = RemoteMedia {
        addr,
        ice: IceCredentials {
            ufrag: ice_ufrag,
            pwd: ice_pwd,
        },
        fingerprint: Fingerprint::parse(&fingerprint).unwrap(),
        setup,
        ice_lite: true,
    };
    let mut leg = ClientLeg::new(creds, id_browser, remote, 42, start());
    let mut buf = [0u8; 2048];
    let t0 = start();
    while !leg.is_connected() && t0.elapsed() < WAIT {
        let now = start();
        leg.handle_timeout(now);
        while let Some(d) = leg.poll_transmit() {
            sock.send_to(&d, addr).unwrap();
        }
        if let Some((n, from)) = recv(&sock, &mut buf) {
            assert_eq!(from, addr);
            assert_eq!(leg.handle_input(start(), &mut buf, n), Received::Control);
        }
    }
    while let Some(d) = leg.poll_transmit() {
        sock.send_to(&d, addr).unwrap();
    }
    assert!(leg.is_connected(), "{:?}", leg.state());
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for seq in 0..20u16 {
        // Browser -> PBX: plaintext arrives unchanged.
        let n = rtp(&mut buf, 0, seq, 0xc1c1);
        let plain = buf[..n].to_vec();
        let n = leg.protect(&mut buf, n).unwrap();
        sock.send_to(&buf[..n], addr).unwrap();
        let mut got = [0u8; 2048];
        let (m, from) = recv(&pbx.rtp, &mut got).expect("RTP at the PBX");
        assert_eq!(from, relay_plain);
        assert_eq!(&got[..m], &plain[..]);
        // PBX -> browser: SRTP the client leg unprotects to the same bytes.
        let n = rtp(&mut buf, 8, 500 + seq, 0xfeed);
        let sent = buf[..n].to_vec();
        pbx.rtp.send_to(&sent, relay_plain).unwrap();
        let (m, _) = loop {
            let (m, from) = recv(&sock, &mut buf).expect("SRTP at the browser");
            assert_eq!(from, addr);
            match leg.handle_input(start(), &mut buf, m) {
                Received::Rtp(len) => break (len, ()),
                Received::Control => continue,
                Received::BadSrtp => panic!("SRTP from the relay failed to unprotect"),
            }
        };
        assert_eq!(&buf[..m], &sent[..]);
    }
    h.send(Command::Release { id });
    h.shutdown();
}

/// Shutdown wakes an idle reactor through its eventfd rather than waiting for its idle wait to
/// run out, so the gateway exits as soon as it has stopped. Bounded, not a speed test: half the
/// idle wait leaves a wide margin for a loaded machine.
#[test]
fn shutdown_of_an_idle_engine_does_not_wait_out_the_idle_wait() {
    let h = engine(0, 8, 2);
    // Both reactors are past their start-up and asleep in their idle wait.
    std::thread::sleep(Duration::from_millis(200));
    let t0 = start();
    h.shutdown();
    let took = t0.elapsed();
    assert!(took < super::IDLE_WAIT / 2, "shutdown took {took:?}");
}

/// An attacker on its own loopback address (never on the signaling path) spraying a plain
/// leg's RTP and RTCP ports with a negotiated payload type, counting what it gets back.
struct Sprayer {
    sock: UdpSocket,
    rtp: SocketAddr,
    rtcp: SocketAddr,
    sent: u64,
    got: u64,
}

impl Sprayer {
    fn new(rtp: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.66:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        Self {
            sock,
            rtp,
            rtcp: SocketAddr::new(rtp.ip(), rtp.port() + 1),
            sent: 0,
            got: 0,
        }
    }

    /// One RTP packet (PCMU) and one RTCP report; then takes in whatever came back.
    fn spray(&mut self, seq: u16) {
        let mut buf = [0u8; 2048];
        let n = rtp(&mut buf, 0, seq, 0xbad);
        self.sock.send_to(&buf[..n], self.rtp).unwrap();
        let n = rtcp(&mut buf, 0xbad);
        self.sock.send_to(&buf[..n], self.rtcp).unwrap();
        self.sent += 2;
        while self.sock.recv_from(&mut buf).is_ok() {
            self.got += 1;
        }
    }
}

/// RTP bleed over real sockets: an attacker on another host (127.0.0.66) sprays the plain
/// port with a negotiated payload type, and its RTCP port, every few milliseconds before the
/// far end's SDP is known, while it is being set, and after; the far end (its SDP host, through
/// a NAT that changed its port) talks too. The attacker gets nothing; every one of the far
/// end's packets after its SDP reaches the browser, and the browser's reach the far end.
#[test]
fn an_rtp_sprayer_never_wins_the_plain_leg_through_a_reactor() {
    let mut h = engine(15, 12, 1);
    let mut peer = Peer::new(Setup::Active);
    let id = SessionId(80);
    h.send(Command::Allocate {
        id,
        legs: [LegSpec::WebRtc(Some(peer.b.remote())), LegSpec::Plain(None)],
        video: false,
    });
    let legs = allocated(&mut h, id).unwrap();
    peer.learn(&legs[0]);
    let LocalLeg::Plain {
        rtp: relay_plain, ..
    } = legs[1]
    else {
        panic!("{legs:?}")
    };
    let fp = h.fingerprint().to_owned();
    peer.connect(&fp);
    let mut attacker = Sprayer::new(relay_plain);
    let pbx = Pbx::new();
    let nat = udp();
    let mut buf = [0u8; 2048];
    let drops = |h: &EngineHandle, r: DropReason| h.stats()[0].drops.get(r);
    let wait_drops = |h: &EngineHandle, r: DropReason, n: u64| {
        let t0 = start();
        while drops(h, r) < n && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(drops(h, r), n, "{r:?}");
    };

    // Before the SDP: everyone is dropped, the far end too.
    const BEFORE: u16 = 40;
    for seq in 0..BEFORE {
        attacker.spray(seq);
        let n = rtp(&mut buf, 8, seq, 0xfeed);
        nat.send_to(&buf[..n], relay_plain).unwrap();
        peer.send_rtp(seq);
        std::thread::sleep(Duration::from_millis(3));
    }
    wait_drops(&h, DropReason::BeforeSdp, attacker.sent + u64::from(BEFORE));
    let before_sdp = drops(&h, DropReason::BeforeSdp);

    // The SDP goes in while the spraying goes on.
    h.send(Command::Update {
        id,
        leg: LegIndex::B,
        remote: LegSpec::Plain(Some(pbx.remote())),
    });
    let t0 = start();
    let mut seq = BEFORE;
    let mut updated = false;
    while !updated && t0.elapsed() < WAIT {
        attacker.spray(seq);
        seq += 1;
        while let Some(o) = h.try_recv() {
            updated |= matches!(o, Output::Reply(Reply::Updated { id: i, .. }) if i == id);
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(updated);

    // After it: the attacker first in every round, then the far end and the browser.
    const AFTER: u16 = 60;
    let mut relayed_to_browser = 0;
    let mut relayed_to_far_end = 0;
    for i in 0..AFTER {
        attacker.spray(seq + i);
        let n = rtp(&mut buf, 8, 1000 + i, 0xfeed);
        let sent = buf[..n].to_vec();
        nat.send_to(&sent, relay_plain).unwrap();
        if peer.recv_rtp().is_some_and(|got| got == sent) {
            relayed_to_browser += 1;
        }
        let plain = peer.send_rtp(100 + i);
        if recv(&nat, &mut buf).is_some_and(|(n, from)| from == relay_plain && buf[..n] == plain) {
            relayed_to_far_end += 1;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    assert_eq!(
        relayed_to_browser, AFTER,
        "the far end's RTP reached the browser"
    );
    assert_eq!(
        relayed_to_far_end, AFTER,
        "the browser's RTP reached the far end"
    );
    // Every sprayed packet was dropped, as before the SDP or as from an unknown source.
    let sprayed_after = attacker.sent - (before_sdp - u64::from(BEFORE));
    let t0 = start();
    while drops(&h, DropReason::BeforeSdp) + drops(&h, DropReason::UnknownSource)
        < before_sdp + sprayed_after
        && t0.elapsed() < WAIT
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        drops(&h, DropReason::BeforeSdp) + drops(&h, DropReason::UnknownSource),
        before_sdp + sprayed_after
    );
    assert!(
        drops(&h, DropReason::UnknownSource) > 0,
        "sprayed after the SDP"
    );
    std::thread::sleep(Duration::from_millis(100));
    attacker.spray(0);
    assert_eq!(attacker.got, 0, "the gateway sent the attacker media");
    assert!(
        recv(&pbx.rtp, &mut buf).is_none(),
        "the learned port, not the SDP's"
    );
    h.send(Command::Release { id });
    let stats = wait_for(&mut h, |o| match o {
        Output::Event(Event::Released { id: i, stats }) if *i == id => Some(*stats),
        _ => None,
    });
    assert_eq!(stats.legs[1].packets_in, u64::from(AFTER));
    assert_eq!(stats.legs[1].packets_out, u64::from(AFTER));
    h.shutdown();
}

/// The reactor's routes on the shared WebRTC port follow ICE's bounded set: after a browser
/// checked from many addresses, the oldest is no longer routed to the session at all (dropped
/// as for no session), the newest still is (dropped by the session: not nominated), and the
/// nominated one keeps carrying media.
#[test]
fn evicted_ice_sources_lose_their_route() {
    use crate::proto::ice::MAX_VALIDATED;
    let mut h = engine(16, 12, 1);
    let mut peer = Peer::new(Setup::Active);
    let pbx = Pbx::new();
    let relay_plain = call(&mut h, 90, &mut peer, &pbx);
    media_both_ways(&mut peer, &pbx, relay_plain, 0..2);
    let nominated = peer.b.addr;
    let mut buf = [0u8; 2048];
    let others: Vec<UdpSocket> = (0..3 * MAX_VALIDATED).map(|_| udp()).collect();
    for sock in &others {
        peer.b.addr = sock.local_addr().unwrap();
        let n = peer.b.check(&mut buf, false);
        sock.send_to(&buf[..n], peer.relay).unwrap();
        let (n, from) = recv(sock, &mut buf).expect("a Binding response");
        assert_eq!(from, peer.relay);
        peer.b.verify_response(&buf[..n]);
    }
    peer.b.addr = nominated;
    let drops = |h: &EngineHandle, r: DropReason| h.stats()[0].drops.get(r);
    let (no_session, unknown) = (
        drops(&h, DropReason::UnknownSession),
        drops(&h, DropReason::UnknownSource),
    );
    // Not STUN, not from the nominated source: no session has it, or the session drops it.
    let n = rtp(&mut buf, 0, 1, 0xbad);
    others[0].send_to(&buf[..n], peer.relay).unwrap();
    let t0 = start();
    while drops(&h, DropReason::UnknownSession) == no_session && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(drops(&h, DropReason::UnknownSession), no_session + 1);
    others[others.len() - 1]
        .send_to(&buf[..n], peer.relay)
        .unwrap();
    let t0 = start();
    while drops(&h, DropReason::UnknownSource) == unknown && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(drops(&h, DropReason::UnknownSource), unknown + 1);
    assert_eq!(drops(&h, DropReason::UnknownSession), no_session + 1);
    media_both_ways(&mut peer, &pbx, relay_plain, 2..5);
    h.shutdown();
}

/// Whether this kernel has io_uring min-wait (6.12 and later), from its release.
fn kernel_has_min_wait() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 12)
}

/// An engine with one reactor batching its waits with `budget_us` (the kernel's min-wait where
/// it has one and `kernel` is true, else the user-space linger), and a plain-to-plain session
/// between two loopback peers: (engine, peer A, peer B, the relay's port for A's packets).
fn batched_relay(budget_us: u32, kernel: bool) -> (EngineHandle, UdpSocket, UdpSocket, SocketAddr) {
    let mut h = Engine::start_with(
        EngineConfig {
            batch_us: budget_us,
            ..config(plan_shards(range(0, 12), 1).unwrap())
        },
        kernel,
    )
    .unwrap();
    let expected = if kernel && kernel_has_min_wait() {
        crate::Batching::MinWait(budget_us)
    } else {
        crate::Batching::Linger(budget_us)
    };
    assert_eq!(h.batching(), expected);
    let (a, b) = (udp(), udp());
    // A relayed packet is "lost" only after WAIT, not udp()'s 200 ms: with a 20 ms budget a
    // burst once took longer than 200 ms on a CI run with the other tests on both cores.
    b.set_read_timeout(Some(WAIT)).unwrap();
    let remote = |s: &UdpSocket| {
        let addr = s.local_addr().unwrap();
        PlainRemote {
            rtp: Some(addr),
            rtcp: Some(SocketAddr::new(addr.ip(), addr.port() + 1)),
            rtcp_mux: false,
            direction: Direction::SendRecv,
            payload_types: vec![0],
            video: None,
        }
    };
    h.send(Command::Allocate {
        id: SessionId(1),
        legs: [
            LegSpec::Plain(Some(remote(&a))),
            LegSpec::Plain(Some(remote(&b))),
        ],
        video: false,
    });
    let legs = allocated(&mut h, SessionId(1)).unwrap();
    let LocalLeg::Plain { rtp: to_a, .. } = legs[0] else {
        panic!("a plain leg")
    };
    (h, a, b, to_a)
}

/// The residence samples recorded between two snapshots, by bucket.
fn residence_delta(
    before: &crate::ReactorSnapshot,
    after: &crate::ReactorSnapshot,
) -> [u64; crate::RESIDENCE_BUCKETS] {
    std::array::from_fn(|i| after.residence[i] - before.residence[i])
}

#[test]
fn batching_delivers_every_packet_of_a_burst_and_of_a_trickle() {
    for kernel in [true, false] {
        burst_and_trickle(kernel);
    }
}

fn burst_and_trickle(kernel: bool) {
    const BUDGET_US: u32 = 20_000;
    let (h, a, b, to_a) = batched_relay(BUDGET_US, kernel);
    let mode = h.batching();
    let mut buf = [0u8; 2048];
    let mut rbuf = [0u8; 2048];
    let s0 = h.stats()[0];

    // A burst: 64 packets back to back, every one relayed, in order, unchanged.
    for seq in 0..64u16 {
        let n = rtp(&mut buf, 0, seq, 0xb0b);
        a.send_to(&buf[..n], to_a).unwrap();
    }
    for seq in 0..64u16 {
        let n = rtp(&mut buf, 0, seq, 0xb0b);
        let (m, _) = recv(&b, &mut rbuf).unwrap_or_else(|| {
            panic!(
                "{mode}: burst packet {seq} lost; reactor: {:?}",
                h.stats()[0]
            )
        });
        assert_eq!(&rbuf[..m], &buf[..n]);
    }
    let s1 = h.stats()[0];
    // Gathered, not one wake-up per packet: the 64 receives (their sends' completions may
    // still be on their way) in far fewer wake-ups.
    let wakeups = s1.wakeups - s0.wakeups;
    let completions = s1.completions - s0.completions;
    assert_eq!(s1.packets_in - s0.packets_in, 64);
    assert!(completions >= 64, "{completions} completions");
    assert!(
        completions > 2 * wakeups,
        "{mode}: {completions} completions in {wakeups} wake-ups"
    );

    // A trickle: one packet per 20 ms, as a call sends; every one relayed.
    for seq in 100..125u16 {
        let n = rtp(&mut buf, 0, seq, 0xb0b);
        a.send_to(&buf[..n], to_a).unwrap();
        let (m, _) =
            recv(&b, &mut rbuf).unwrap_or_else(|| panic!("{mode}: trickle packet {seq} lost"));
        assert_eq!(&rbuf[..m], &buf[..n]);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last send's completion may still be in the batch window.
    let t0 = start();
    while h.stats()[0].packets_out - s0.packets_out < 89 && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s2 = h.stats()[0];
    assert_eq!(s2.packets_in - s0.packets_in, 89);
    assert_eq!(s2.packets_out - s0.packets_out, 89);
    // Each relayed packet has a residence from its kernel receive stamp, and none was held
    // for the idle wait (1 s) or a timer: all are within the budget, with as much again for
    // this shared machine's scheduling.
    let delta = residence_delta(&s0, &s2);
    assert_eq!(delta.iter().sum::<u64>(), 89);
    assert!(
        s2.residence_max_ns < 2 * u64::from(BUDGET_US) * 1_000,
        "{mode}: longest residence {} us with a budget of {BUDGET_US} us; by bucket {delta:?}",
        s2.residence_max_ns / 1_000
    );
}

#[test]
fn a_lone_packet_is_not_held_for_the_batch() {
    for kernel in [true, false] {
        lone_packet(kernel);
    }
}

fn lone_packet(kernel: bool) {
    const BUDGET_US: u32 = 100_000;
    let (h, a, b, to_a) = batched_relay(BUDGET_US, kernel);
    let mut buf = [0u8; 2048];
    let mut rbuf = [0u8; 2048];
    for seq in 0..3u16 {
        // Quiet for longer than the budget: the reactor's min-wait or linger is over and it
        // sleeps until the next completion, which wakes it at once.
        std::thread::sleep(Duration::from_micros(3 * u64::from(BUDGET_US)));
        let s0 = h.stats()[0];
        let n = rtp(&mut buf, 0, seq, 0x10e);
        a.send_to(&buf[..n], to_a).unwrap();
        let (m, _) = recv(&b, &mut rbuf).expect("the lone packet");
        assert_eq!(&rbuf[..m], &buf[..n]);
        let s1 = h.stats()[0];
        let delta = residence_delta(&s0, &s1);
        assert_eq!(delta.iter().sum::<u64>(), 1, "one residence sample");
        let bucket = delta.iter().position(|&n| n == 1).unwrap();
        // Its bucket ends at half the budget or less: not held for the batch it waited for.
        let half = u64::from(BUDGET_US) / 2;
        assert!(
            crate::RESIDENCE_BOUNDS_US
                .get(bucket)
                .is_some_and(|&b| b <= half),
            "{}: packet {seq}: residence bucket {bucket} (bounds {:?} us), budget {BUDGET_US} us",
            h.batching(),
            crate::RESIDENCE_BOUNDS_US
        );
    }
}

/// (policy, rt_priority) of every media reactor thread of this process, from
/// /proc/self/task/*/stat (fields 41 and 40).
fn reactor_policies() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !comm.trim().starts_with("media-") {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap();
        // Fields after the command name, which ends with the last ')': field 3 onwards.
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        out.push((rest[41 - 3].parse().unwrap(), rest[40 - 3].parse().unwrap()));
    }
    out
}

#[test]
fn media_priority_puts_the_reactors_under_sched_fifo_or_says_why_not() {
    let h = Engine::start(EngineConfig {
        realtime_priority: 7,
        ..config(plan_shards(range(0, 16), 2).unwrap())
    })
    .unwrap();
    let policies = reactor_policies();
    let sched = h.scheduling().clone();
    h.shutdown();
    // Other tests run engines in this process at the same time, all at normal scheduling:
    // the two threads of this one are the only ones that can be under SCHED_FIFO 7.
    let fifo7 = policies
        .iter()
        .filter(|&&p| p == (libc::SCHED_FIFO as u32, 7))
        .count();
    match sched {
        crate::Scheduling::Realtime(7) => {
            assert_eq!(fifo7, 2, "both reactors under SCHED_FIFO 7: {policies:?}");
        }
        crate::Scheduling::Refused {
            priority: 7,
            reason,
        } => {
            assert!(!reason.is_empty());
            assert_eq!(fifo7, 0, "refused, so normal scheduling: {policies:?}");
        }
        other => panic!("asked for priority 7, got {other:?}"),
    }
}

/// Starting and stopping engines leaves the calling thread's blocking socket reads alone: no
/// io_uring is made on that thread. Closing one made there sends io_uring's exit task work
/// (`TWA_SIGNAL`) to it, which ends a socket read with a timeout in `EINTR`; a throwaway ring
/// that once probed for min-wait in `Engine::start` did so, and a test read that as a loss.
#[test]
fn starting_an_engine_does_not_interrupt_the_callers_socket_reads() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    for round in 0..3 {
        let h = Engine::start(EngineConfig {
            batch_us: 300,
            ..config(plan_shards(range(0, 12), 1).unwrap())
        })
        .unwrap();
        let during = s.recv_from(&mut buf).unwrap_err();
        h.shutdown();
        let after = s.recv_from(&mut buf).unwrap_err();
        for (when, e) in [
            ("while the engine ran", during),
            ("after its shutdown", after),
        ] {
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "round {round}: the read {when} ended in {e:?}, not its timeout"
            );
        }
    }
}
