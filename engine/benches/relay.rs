//! CPU per relayed packet on a running reactor, over loopback:
//!
//! * `floor`: plain RTP in, plain RTP out (the same ring receiving and sending, no crypto);
//! * `srtp_to_rtp`: a WebRTC client's SRTP in, RTP out to a plain peer (unprotect);
//! * `rtp_to_srtp`: a plain peer's RTP in, SRTP out to the WebRTC client (protect).
//!
//! The figure is the reactor thread's own CPU time (its per-thread CPU clock, read from this
//! process), divided by the packets it relayed; the senders and receivers run on the bench's
//! thread and are not counted. Packets go in bursts of 32 and each burst is received before the
//! next (a closed loop), so nothing is dropped. The ratios to the floor are printed at the end.
//!
//! Then libsrtp alone (`srtp_cpu_per_packet`): this thread's CPU per protect and per unprotect
//! of one PCMU-sized packet in memory, for AES-CM-80 and both AEAD profiles, with no kernel in
//! the way, so a change inside libsrtp shows up here before it is lost in the relay's noise.
//!
//! Run: `cargo bench -p engine --bench relay` (the reactor waits as the gateway does by default;
//! `MEDIA_BATCH_US=300` for a 300 µs batching budget).

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark drives real sockets and reads the clock"
)]

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::Criterion;
use engine::api::{
    Command, Direction, Event, LegSpec, LocalLeg, Output, PlainRemote, Reply, SessionId, Setup,
    WebRtcRemote,
};
use engine::ports::plan_shards;
use engine::proto::dtls::{
    DtlsConfig, DtlsEndpoint, DtlsEvent, DtlsIdentity, DtlsRole, Fingerprint,
};
use engine::proto::ice::IceCredentials;
use engine::proto::srtp::{Direction as SrtpDirection, SrtpKey, SrtpProfile, SrtpSession};
use engine::proto::stun::{Class, StunWriter, METHOD_BINDING};
use engine::{Engine, EngineConfig, EngineHandle};

const BURST: u64 = 32;
const PAYLOAD: usize = 160;

/// Total reactor CPU and packets per benchmark, for the ratio at the end.
static TOTALS: Mutex<Vec<(&'static str, Duration, u64)>> = Mutex::new(Vec::new());

#[allow(
    clippy::disallowed_methods,
    reason = "the bench bounds its waits by the real clock"
)]
fn clock() -> Instant {
    Instant::now()
}

/// The reactor thread's id, by its name.
fn reactor_tid() -> i32 {
    for e in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let e = e.expect("task entry");
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == "media-0" {
            return e
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("numeric tid");
        }
    }
    panic!("no media-0 thread");
}

/// CPU time of thread `tid` of this process (Linux per-thread CPU clock: `(~tid << 3) | 6`).
fn thread_cpu(tid: i32) -> Duration {
    let clock = ((!tid) << 3) | 6;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let r = unsafe { libc::clock_gettime(clock as libc::clockid_t, &mut ts) };
    assert_eq!(r, 0, "thread CPU clock");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the calling thread.
fn own_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "thread CPU clock");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn rtp(buf: &mut [u8], seq: u16, ssrc: u32) -> usize {
    buf[0] = 0x80;
    buf[1] = 0;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[12..12 + PAYLOAD].fill(seq as u8);
    12 + PAYLOAD
}

fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

fn wait_for<T>(h: &mut EngineHandle, mut f: impl FnMut(&Output) -> Option<T>) -> T {
    let t0 = clock();
    while t0.elapsed() < Duration::from_secs(5) {
        while let Some(o) = h.try_recv() {
            if let Some(t) = f(&o) {
                return t;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("engine did not answer");
}

fn allocate(h: &mut EngineHandle, id: u64, legs: [LegSpec; 2]) -> [LocalLeg; 2] {
    let id = SessionId(id);
    h.send(Command::Allocate {
        id,
        legs,
        video: false,
    });
    wait_for(h, |o| match o {
        Output::Reply(Reply::Allocated { id: i, legs }) if *i == id => Some(legs.clone()),
        Output::Reply(Reply::Failed { id: i, failure }) if *i == id => panic!("{failure:?}"),
        _ => None,
    })
}

fn plain_remote(to: &UdpSocket) -> PlainRemote {
    let a = to.local_addr().unwrap();
    PlainRemote {
        rtp: Some(a),
        rtcp: Some(SocketAddr::new(a.ip(), a.port() + 1)),
        rtcp_mux: false,
        direction: Direction::SendRecv,
        payload_types: vec![0],
        video: None,
    }
}

/// A WebRTC client built from engine::proto: ICE check with USE-CANDIDATE, DTLS client, SRTP.
struct Client {
    sock: UdpSocket,
    relay: SocketAddr,
    tx: SrtpSession,
    rx: SrtpSession,
}

fn connect_client(h: &mut EngineHandle, id: u64, sink: &UdpSocket) -> (Client, SocketAddr) {
    let identity = DtlsIdentity::generate(UNIX_EPOCH + Duration::from_secs(1_750_000_000)).unwrap();
    let creds = IceCredentials::random().unwrap();
    let sock = udp();
    let remote = WebRtcRemote {
        ice_ufrag: creds.ufrag.clone(),
        ice_pwd: creds.pwd.clone(),
        fingerprint: identity.fingerprint().to_sdp(),
        setup: Setup::Active,
        direction: Direction::SendRecv,
        payload_types: vec![0],
        mid_ext: None,
        video_mid: None,
    };
    let legs = allocate(
        h,
        id,
        [
            LegSpec::WebRtc(Some(remote)),
            LegSpec::Plain(Some(plain_remote(sink))),
        ],
    );
    let LocalLeg::WebRtc {
        addr: relay,
        ice_ufrag,
        ice_pwd,
        fingerprint,
        ..
    } = &legs[0]
    else {
        panic!("not WebRTC")
    };
    let LocalLeg::Plain { rtp: plain, .. } = legs[1] else {
        panic!("not plain")
    };
    let mut buf = [0u8; 2048];
    let user = format!("{ice_ufrag}:{}", creds.ufrag);
    let n = StunWriter::new(&mut buf, METHOD_BINDING, Class::Request, &[7; 12])
        .and_then(|w| w.username(user.as_bytes()))
        .and_then(|w| w.priority(1))
        .and_then(|w| w.ice_controlling(1))
        .and_then(|w| w.use_candidate())
        .and_then(|w| w.message_integrity(ice_pwd.as_bytes()))
        .and_then(|w| w.fingerprint())
        .unwrap()
        .finish();
    sock.send_to(&buf[..n], relay).unwrap();
    sock.recv_from(&mut buf).expect("Binding response");
    let fp = Fingerprint::parse(fingerprint).unwrap();
    let mut dtls =
        DtlsEndpoint::new(&identity, DtlsConfig::new(DtlsRole::Client, fp), clock()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let t0 = clock();
    let keys = loop {
        assert!(t0.elapsed() < Duration::from_secs(5), "DTLS handshake");
        while let Some(d) = dtls.poll_transmit() {
            sock.send_to(&d, *relay).unwrap();
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            dtls.handle_input(clock(), &buf[..n]);
        } else {
            dtls.handle_timeout(clock());
        }
        if let Some(DtlsEvent::Connected { keys, .. }) = dtls.poll_event() {
            break keys;
        }
    };
    while let Some(d) = dtls.poll_transmit() {
        sock.send_to(&d, *relay).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    wait_for(h, |o| {
        matches!(o, Output::Event(Event::DtlsConnected { .. })).then_some(())
    });
    println!("SRTP profile: {:?}", keys.profile);
    let tx = SrtpSession::new(keys.profile, &keys.local, SrtpDirection::Outbound).unwrap();
    let rx = SrtpSession::new(keys.profile, &keys.remote, SrtpDirection::Inbound).unwrap();
    (
        Client {
            sock,
            relay: *relay,
            tx,
            rx,
        },
        plain,
    )
}

/// Sends `iters` packets in closed-loop bursts through the reactor; returns its CPU time.
fn relay(
    tid: i32,
    iters: u64,
    seq: &mut u16,
    mut send: impl FnMut(u16),
    mut recv: impl FnMut() -> bool,
) -> Duration {
    let cpu0 = thread_cpu(tid);
    let mut left = iters;
    while left > 0 {
        let burst = left.min(BURST);
        for _ in 0..burst {
            *seq = seq.wrapping_add(1);
            send(*seq);
        }
        for _ in 0..burst {
            if !recv() {
                break; // lost on loopback: the burst is over
            }
        }
        left -= burst;
    }
    thread_cpu(tid) - cpu0
}

fn record(name: &'static str, cpu: Duration, packets: u64) {
    let mut t = TOTALS.lock().unwrap();
    match t.iter_mut().find(|(n, _, _)| *n == name) {
        Some(e) => {
            e.1 += cpu;
            e.2 += packets;
        }
        None => t.push((name, cpu, packets)),
    }
}

fn main() {
    let base = 46_000 + (std::process::id() % 100) as u16 * 20;
    let mut h = Engine::start(EngineConfig {
        shards: plan_shards(base..=base + 15, 1).unwrap(),
        bind: "127.0.0.1".parse().unwrap(),
        advertise: "127.0.0.1".parse().unwrap(),
        media_timeout: Duration::from_secs(3600),
        latching: engine::Latching::Strict,
        // The gateway's default batching, or MEDIA_BATCH_US as the gateway reads it.
        batch_us: std::env::var("MEDIA_BATCH_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(engine::DEFAULT_BATCH_US),
        realtime_priority: 0,
    })
    .expect("engine start");
    let tid = reactor_tid();
    println!("media batching: {}", h.batching());

    // floor: plain A → plain B.
    let src = udp();
    let sink = udp();
    let legs = allocate(
        &mut h,
        1,
        [
            LegSpec::Plain(Some(plain_remote(&src))),
            LegSpec::Plain(Some(plain_remote(&sink))),
        ],
    );
    let LocalLeg::Plain { rtp: floor_in, .. } = legs[0] else {
        panic!()
    };

    // WebRTC client ↔ plain peer.
    let pbx = udp();
    let (mut client, plain_in) = connect_client(&mut h, 2, &pbx);

    // A quiet reactor with both sessions up should sleep, not spin on a timer. The handshake's
    // last flights are let settle first; the wake-ups say what the CPU went to.
    std::thread::sleep(Duration::from_millis(300));
    let slices = || {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for _ in 0..3 {
        let (cpu0, s0, p0) = (thread_cpu(tid), h.stats()[0], slices());
        std::thread::sleep(Duration::from_secs(1));
        let (idle, s1, p1) = (thread_cpu(tid) - cpu0, h.stats()[0], slices());
        println!(
            "idle reactor CPU over 1 s with 2 sessions: {idle:?} in {} wake-ups ({} completions, {} times on a CPU)",
            s1.wakeups - s0.wakeups,
            s1.completions - s0.completions,
            p1 - p0
        );
    }

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut g = c.benchmark_group("relay_cpu_per_packet");
    let mut buf = [0u8; 2048];
    let mut rbuf = [0u8; 2048];
    let mut seq = 0u16;

    // The three paths as closures over the sockets, each relaying `n` packets and returning
    // the reactor's CPU time.
    let mut floor = |n: u64| {
        relay(
            tid,
            n,
            &mut seq,
            |s| {
                let len = rtp(&mut buf, s, 1);
                src.send_to(&buf[..len], floor_in).unwrap();
            },
            || sink.recv_from(&mut rbuf).is_ok(),
        )
    };
    g.bench_function("floor_rtp_to_rtp", |b| {
        b.iter_custom(|iters| {
            let cpu = floor(iters);
            record("floor", cpu, iters);
            cpu
        })
    });

    let mut cseq = 0u16;
    let mut cbuf = [0u8; 2048];
    let mut pbuf = [0u8; 2048];
    let mut unprotect = |client: &mut Client, n: u64| {
        relay(
            tid,
            n,
            &mut cseq,
            |s| {
                let len = rtp(&mut cbuf, s, 2);
                let len = client.tx.protect_rtp(&mut cbuf, len).unwrap();
                client.sock.send_to(&cbuf[..len], client.relay).unwrap();
            },
            || pbx.recv_from(&mut pbuf).is_ok(),
        )
    };
    g.bench_function("srtp_to_rtp", |b| {
        b.iter_custom(|iters| {
            let cpu = unprotect(&mut client, iters);
            record("srtp_to_rtp", cpu, iters);
            cpu
        })
    });

    let mut pseq = 0u16;
    let mut sbuf = [0u8; 2048];
    let mut qbuf = [0u8; 2048];
    let mut protect = |client: &mut Client, n: u64| {
        relay(
            tid,
            n,
            &mut pseq,
            |s| {
                let len = rtp(&mut sbuf, s, 3);
                pbx.send_to(&sbuf[..len], plain_in).unwrap();
            },
            || match client.sock.recv_from(&mut qbuf) {
                Ok((len, _)) => client.rx.unprotect_rtp(&mut qbuf, len).is_ok(),
                Err(_) => false,
            },
        )
    };
    g.bench_function("rtp_to_srtp", |b| {
        b.iter_custom(|iters| {
            let cpu = protect(&mut client, iters);
            record("rtp_to_srtp", cpu, iters);
            cpu
        })
    });
    g.finish();

    let totals = TOTALS.lock().unwrap().clone();
    println!("\nreactor CPU per relayed packet, criterion iterations (warm-up included):");
    for (name, cpu, packets) in &totals {
        let ns = cpu.as_nanos() as f64 / (*packets).max(1) as f64;
        println!("  {name:<12} {ns:>8.0} ns  ({packets} packets)");
    }

    // The machine is shared, so load drifts between benchmarks: for the ratio, interleave the
    // three paths in short rounds and take the median of the per-round ratios.
    const ROUNDS: usize = 15;
    const PER_ROUND: u64 = 10_000;
    let ns = |d: Duration| d.as_nanos() as f64 / PER_ROUND as f64;
    let (mut f, mut u, mut p, mut ru, mut rp) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let a = ns(floor(PER_ROUND));
        let b = ns(unprotect(&mut client, PER_ROUND));
        let c = ns(protect(&mut client, PER_ROUND));
        f.push(a);
        u.push(b);
        p.push(c);
        ru.push(b / a);
        rp.push(c / a);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\ninterleaved, {ROUNDS} rounds of {PER_ROUND} packets per path (medians):");
    println!(
        "  floor (RTP -> RTP, no crypto) {:>8.0} ns/packet",
        median(&mut f)
    );
    println!(
        "  SRTP -> RTP (unprotect)       {:>8.0} ns/packet  ratio to floor {:.2}",
        median(&mut u),
        median(&mut ru)
    );
    println!(
        "  RTP -> SRTP (protect)         {:>8.0} ns/packet  ratio to floor {:.2}",
        median(&mut p),
        median(&mut rp)
    );
    let drops = h.stats()[0].drops;
    println!("  reactor drops: {}", drops.total());
    h.shutdown();

    srtp_in_process(&mut c);
}

/// libsrtp's own cost per packet, on this thread's CPU clock: protect, and unprotect of packets
/// protected beforehand (in chunks, outside the timed part).
fn srtp_in_process(c: &mut Criterion) {
    const CHUNK: usize = 64;
    let mut g = c.benchmark_group("srtp_cpu_per_packet");
    for profile in [
        SrtpProfile::Aes128CmSha1_80,
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm,
    ] {
        let key = SrtpKey::from_key_salt(&vec![7; profile.key_len()], &vec![9; profile.salt_len()])
            .expect("profile lengths fit");
        let mut tx = SrtpSession::new(profile, &key, SrtpDirection::Outbound).unwrap();
        let mut seq = 0u16;
        let mut buf = [0u8; 2048];
        g.bench_function(format!("protect/{profile:?}"), |b| {
            b.iter_custom(|iters| {
                let cpu0 = own_cpu();
                for _ in 0..iters {
                    seq = seq.wrapping_add(1);
                    let len = rtp(&mut buf, seq, 4);
                    black_box(tx.protect_rtp(&mut buf, len).unwrap());
                }
                own_cpu() - cpu0
            })
        });
        // A fresh pair: the receiver must see the sender's first packet (rollover counter 0).
        let mut tx = SrtpSession::new(profile, &key, SrtpDirection::Outbound).unwrap();
        let mut seq = 0u16;
        let mut rx = SrtpSession::new(profile, &key, SrtpDirection::Inbound).unwrap();
        let mut chunk = vec![([0u8; 512], 0usize); CHUNK];
        g.bench_function(format!("unprotect/{profile:?}"), |b| {
            b.iter_custom(|iters| {
                let mut cpu = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    for (p, len) in &mut chunk[..n] {
                        seq = seq.wrapping_add(1);
                        let l = rtp(p, seq, 4);
                        *len = tx.protect_rtp(p, l).unwrap();
                    }
                    let cpu0 = own_cpu();
                    for (p, len) in &mut chunk[..n] {
                        black_box(rx.unprotect_rtp(p, *len).unwrap());
                    }
                    cpu += own_cpu() - cpu0;
                    left -= n as u64;
                }
                cpu
            })
        });
    }
    g.finish();
}
