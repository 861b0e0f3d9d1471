//! CPU per SIP message through the signaling core with 0, 10k and 100k live transactions: the
//! figure must stay flat (issue: per-message cost independent of how much state is live).
//!
//! The live state is N INVITEs from N WebSocket connections to the demo PBX's echo, each
//! waiting for its media (an INVITE server transaction in Proceeding and a call with its
//! no-answer timer). Each measured message goes through what the IO loop does for one message:
//! `handle_message`/`handle_datagram`, draining transmits and events, `poll_timeout`, and the
//! registration count:
//!
//! * `register_ws`: a browser's REGISTER to the demo PBX (a server transaction made and ended);
//! * `options_udp`: an OPTIONS over UDP (answered statelessly);
//! * `flood_udp`: a datagram from a source over its rate (dropped before parsing).
//!
//! Run: `cargo bench -p signaling --bench core_cost`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use signaling::b2bua::core::{Core, CoreConfig, Limits, Peer};
use signaling::b2bua::policy::AcceptList;
use signaling::sdp::pts::PtFilter;
use signaling::sip::txn::TimerValues;
use signaling::transport::ws::ConnName;

const INVITE: &str = include_str!("../tests/fixtures/sipjs/invite.txt");
const REGISTER: &str = include_str!("../tests/fixtures/sipjs/register.txt");

fn core() -> Core {
    Core::new(CoreConfig {
        own_host: "127.0.0.1".into(),
        sip_port: 5060,
        proxy: None,
        timers: TimerValues::default(),
        route: None,
        accept: AcceptList::parse("[[WSS]],[[PROXY]]").expect("valid"),
        pts: PtFilter::parse("[PCMU/8000]").expect("valid"),
        advertise: "127.0.0.1".parse().expect("valid"),
        limits: Limits {
            max_transactions: 1_000_000,
            max_calls: 1_000_000,
            max_calls_per_ws: 1_000_000,
            max_calls_per_ip: 1_000_000,
            ..Limits::default()
        },
    })
}

/// The IO loop's work after each message.
fn drain(core: &mut Core) {
    while let Some(t) = core.poll_transmit() {
        black_box(t);
    }
    while let Some(e) = core.poll_event() {
        black_box(e);
    }
    while let Some(c) = core.poll_command() {
        black_box(c);
    }
    black_box(core.poll_timeout());
    black_box(core.registration_count());
    black_box(core.call_count());
}

/// A core holding `n` live INVITE transactions (and their calls).
fn loaded(n: usize, t0: Instant) -> Core {
    let mut core = core();
    for i in 0..n {
        let conn = ConnName(format!("c{i}.invalid"));
        core.handle_ws_opened(&conn, "127.0.0.1".parse().expect("valid"));
        let inv = INVITE
            .replace("INVITE sip:bob@", "INVITE sip:echo@")
            .replace("branch=z9hG4bK", &format!("branch=z9hG4bKbg{i}x"))
            .replace("Call-ID: ", &format!("Call-ID: bg{i}"));
        core.handle_message(t0, Peer::Ws(conn), inv.as_bytes());
        drain(&mut core);
    }
    core
}

fn bench(c: &mut Criterion) {
    #[allow(clippy::disallowed_methods, reason = "the bench's fixed time origin")]
    let t0 = Instant::now();
    // Late enough for nothing of the set-up to be due, early enough for no timer to fire.
    let now = t0 + Duration::from_secs(1);
    let ws = Peer::Ws(ConnName("bench.invalid".into()));
    let udp = Peer::Udp("127.0.0.1:5090".parse().expect("valid"));
    let flooder: SocketAddr = "127.0.0.66:5060".parse().expect("valid");
    let options = "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKopt\r\n\
        Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag=1\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: opt\r\n\
        CSeq: 1 OPTIONS\r\nUser-Agent: kamailio (5.6.3 (x86_64/linux))\r\nContent-Length: 0\r\n\r\n";
    let mut g = c.benchmark_group("core_cost");
    g.sample_size(30).measurement_time(Duration::from_secs(3));
    for n in [0usize, 10_000, 100_000] {
        let mut core = loaded(n, t0);
        core.handle_ws_opened(
            &ConnName("bench.invalid".into()),
            "127.0.0.2".parse().expect("valid"),
        );
        // Spend the flooder's budget once; from then on its datagrams are shed.
        for _ in 0..10_000 {
            core.handle_datagram(now, flooder, b"x");
        }
        drain(&mut core);
        let mut i = 0u64;
        g.bench_with_input(BenchmarkId::new("register_ws", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                let reg = REGISTER.replace("branch=z9hG4bK", &format!("branch=z9hG4bKm{i}x"));
                core.handle_message(now, ws.clone(), reg.as_bytes());
                drain(&mut core);
            })
        });
        g.bench_with_input(BenchmarkId::new("options_udp", n), &n, |b, _| {
            b.iter(|| {
                core.handle_message(now, udp.clone(), options.as_bytes());
                drain(&mut core);
            })
        });
        g.bench_with_input(BenchmarkId::new("flood_udp", n), &n, |b, _| {
            b.iter(|| {
                core.handle_datagram(now, flooder, options.as_bytes());
                drain(&mut core);
            })
        });
        assert_eq!(core.call_count(), n, "the live state stayed live");
    }
    g.finish();
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
