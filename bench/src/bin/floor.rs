//! `floor`: the media engine's floor under a real call load. The same traffic shape as
//! `loadgen`'s calls (per call two streams, one each way, 50 packets/s each, 20 ms apart, the
//! calls spread evenly over the 20 ms), relayed as plain RTP by the engine's own reactors (the
//! same io_uring loop, batching and residence measurement as the gateway), with no crypto and
//! no signalling. The figure is the reactor threads' own CPU (per-thread CPU clocks) per
//! received packet over the measurement window; the generator runs on this process's main
//! thread and is not counted.
//!
//! `floor -n 500 [--batch-us 300] [--reactors 1] [-d 10] [--json out.json]`

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark binary: binds its peers' sockets and paces by the real clock"
)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use engine::api::{Command, Direction, LegSpec, LocalLeg, Output, PlainRemote, Reply, SessionId};
use engine::{Engine, EngineConfig, EngineHandle, ReactorSnapshot};

#[derive(Debug, Parser)]
#[command(about = "Plain RTP relayed by the media engine with the calls' traffic shape")]
struct Args {
    /// Calls (each two streams of 50 packets/s, one each way).
    #[arg(short = 'n', long, default_value_t = 500)]
    calls: usize,
    /// Batching budget, µs (MEDIA_BATCH_US; 0 = off).
    #[arg(long, default_value_t = engine::DEFAULT_BATCH_US)]
    batch_us: u32,
    /// SCHED_FIFO priority of the reactors (MEDIA_PRIORITY; 0 = normal scheduling).
    #[arg(long, default_value_t = 0)]
    priority: u8,
    /// Media reactors.
    #[arg(long, default_value_t = 1)]
    reactors: usize,
    /// Seconds measured (after the warm-up).
    #[arg(short = 'd', long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of traffic before the measurement.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Send slots per 20 ms period: 20 sends every 1 ms (as tokio's 1 ms timer wheel spaces
    /// `loadgen`'s packets); more spreads the packets finer (spinning between slots), down to
    /// about one packet per slot: a NIC's arrivals from many independent hosts.
    #[arg(long, default_value_t = 20)]
    slots: u64,
    /// First port of the engine's range (4 ports per call, 1 more per reactor).
    #[arg(long, default_value_t = 36000)]
    port_base: u16,
    /// Writes the result as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[allow(
    clippy::disallowed_methods,
    reason = "the generator paces by the real clock"
)]
fn clock() -> Instant {
    Instant::now()
}

/// CPU time of thread `tid` of this process (Linux per-thread CPU clock).
fn thread_cpu(tid: i32) -> Duration {
    let clock = ((!tid) << 3) | 6;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let r = unsafe { libc::clock_gettime(clock as libc::clockid_t, &mut ts) };
    if r != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the calling thread.
fn own_cpu() -> Duration {
    thread_cpu_self()
}

fn thread_cpu_self() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Thread ids of the engine's reactors (`media-N`).
fn reactor_tids() -> Vec<i32> {
    let mut tids = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.trim().starts_with("media-") {
                if let Ok(t) = e.file_name().to_string_lossy().parse() {
                    tids.push(t);
                }
            }
        }
    }
    tids
}

fn remote(to: &UdpSocket) -> anyhow::Result<PlainRemote> {
    let a = to.local_addr()?;
    Ok(PlainRemote {
        rtp: Some(a),
        rtcp: Some(SocketAddr::new(a.ip(), a.port() + 1)),
        rtcp_mux: false,
        direction: Direction::SendRecv,
        payload_types: vec![0],
        video: None,
    })
}

fn allocate(
    h: &mut EngineHandle,
    id: u64,
    a: &UdpSocket,
    b: &UdpSocket,
) -> anyhow::Result<[SocketAddr; 2]> {
    let id = SessionId(id);
    h.send(Command::Allocate {
        id,
        legs: [
            LegSpec::Plain(Some(remote(a)?)),
            LegSpec::Plain(Some(remote(b)?)),
        ],
        video: false,
    });
    let t0 = clock();
    while t0.elapsed() < Duration::from_secs(5) {
        while let Some(o) = h.try_recv() {
            match o {
                Output::Reply(Reply::Allocated { id: i, legs }) if i == id => {
                    let port = |l: &LocalLeg| match l {
                        LocalLeg::Plain { rtp, .. } => Ok(*rtp),
                        other => bail!("not a plain leg: {other:?}"),
                    };
                    return Ok([port(&legs[0])?, port(&legs[1])?]);
                }
                Output::Reply(Reply::Failed { id: i, failure }) if i == id => {
                    bail!("allocation failed: {failure:?}")
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    bail!("the engine did not answer")
}

/// What was counted when the measurement window opened: the reactors' CPU and counters, the
/// generator's CPU, packets sent and received.
type Mark = (Vec<Duration>, Vec<ReactorSnapshot>, Duration, u64, u64);

/// One call's two peers: `a` sends to the engine's leg A and receives what B sent, and back.
struct Call {
    a: UdpSocket,
    b: UdpSocket,
    to_a: SocketAddr,
    to_b: SocketAddr,
    seq: u16,
}

/// Quantile `q` of a bucketed histogram (linear inside the bucket; the last bucket ends at
/// `max_us`), µs.
fn quantile(buckets: &[u64], q: f64, max_us: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let lo = if i == 0 {
                0.0
            } else {
                engine::RESIDENCE_BOUNDS_US[i - 1] as f64
            };
            let hi = engine::RESIDENCE_BOUNDS_US
                .get(i)
                .map_or(max_us.max(lo), |&b| b as f64);
            let f = (rank - seen as f64) / n as f64;
            return Some(lo + (hi - lo) * f.clamp(0.0, 1.0));
        }
        seen += n;
    }
    Some(max_us)
}

fn sum(snaps: &[ReactorSnapshot]) -> ReactorSnapshot {
    let mut t = ReactorSnapshot::default();
    for s in snaps {
        t.packets_in += s.packets_in;
        t.packets_out += s.packets_out;
        t.wakeups += s.wakeups;
        t.completions += s.completions;
        t.residence_sum_ns += s.residence_sum_ns;
        t.residence_max_ns = t.residence_max_ns.max(s.residence_max_ns);
        for (a, b) in t.residence.iter_mut().zip(s.residence.iter()) {
            *a += b;
        }
    }
    t
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.calls == 0 || args.reactors == 0 {
        bail!("--calls and --reactors must be at least 1");
    }
    let ports = (args.calls * 4 + args.reactors * 8 + 64) as u16;
    let range = args.port_base..=args.port_base + ports;
    let mut h = Engine::start(EngineConfig {
        shards: engine::ports::plan_shards(range, args.reactors)
            .map_err(|e| anyhow::anyhow!("port plan: {e:?}"))?,
        bind: "127.0.0.1".parse()?,
        advertise: "127.0.0.1".parse()?,
        media_timeout: Duration::from_secs(3600),
        latching: engine::Latching::Strict,
        batch_us: args.batch_us,
        realtime_priority: args.priority,
    })
    .context("engine start")?;
    let tids = reactor_tids();
    let mut calls = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let a = UdpSocket::bind("127.0.0.3:0")?;
        let b = UdpSocket::bind("127.0.0.3:0")?;
        let [to_a, to_b] = allocate(&mut h, i as u64 + 1, &a, &b)?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        calls.push(Call {
            a,
            b,
            to_a,
            to_b,
            seq: 0,
        });
    }
    let mut pkt = [0u8; 172];
    pkt[0] = 0x80;
    let mut rbuf = [0u8; 2048];
    let (mut sent, mut received) = (0u64, 0u64);
    let slots = args.slots.clamp(1, 20_000);
    let tick = Duration::from_micros(20_000 / slots);
    let start = clock();
    let warm_end = start + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.seconds);
    let mut before: Option<Mark> = None;
    let mut n: u64 = 0;
    loop {
        let due = start + tick * n as u32;
        let now = clock();
        if due > now + Duration::from_micros(300) {
            std::thread::sleep(due - now - Duration::from_micros(200));
        }
        while clock() < due {
            std::hint::spin_loop();
        }
        if before.is_none() && clock() >= warm_end {
            let cpu = tids.iter().map(|&t| thread_cpu(t)).collect();
            before = Some((cpu, h.stats(), own_cpu(), sent, received));
        }
        if clock() >= end {
            break;
        }
        let slot = (n % slots) as usize;
        for (i, c) in calls
            .iter_mut()
            .enumerate()
            .skip(slot)
            .step_by(slots as usize)
        {
            c.seq = c.seq.wrapping_add(1);
            pkt[2..4].copy_from_slice(&c.seq.to_be_bytes());
            pkt[4..8].copy_from_slice(&(u32::from(c.seq) * 160).to_be_bytes());
            pkt[8..12].copy_from_slice(&(i as u32).to_be_bytes());
            if c.a.send_to(&pkt, c.to_a).is_ok() {
                sent += 1;
            }
            pkt[8..12].copy_from_slice(&(i as u32 | 1 << 31).to_be_bytes());
            if c.b.send_to(&pkt, c.to_b).is_ok() {
                sent += 1;
            }
        }
        // Half a period later, take what the engine relayed for the calls of that slot.
        let drain = ((n + slots / 2) % slots) as usize;
        for c in calls.iter().skip(drain).step_by(slots as usize) {
            for s in [&c.a, &c.b] {
                while s.recv(&mut rbuf).is_ok() {
                    received += 1;
                }
            }
        }
        n += 1;
    }
    let cpu1: Vec<Duration> = tids.iter().map(|&t| thread_cpu(t)).collect();
    let snaps1 = h.stats();
    let gen_cpu1 = own_cpu();
    let (cpu0, snaps0, gen_cpu0, sent0, received0) = before.context("no warm-up end")?;
    // What is still in flight.
    std::thread::sleep(Duration::from_millis(100));
    for c in &calls {
        for s in [&c.a, &c.b] {
            while s.recv(&mut rbuf).is_ok() {
                received += 1;
            }
        }
    }
    let window = Duration::from_secs(args.seconds).as_secs_f64();
    let cpu: Duration = cpu1
        .iter()
        .zip(&cpu0)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum();
    let (t1, t0) = (sum(&snaps1), sum(&snaps0));
    let packets = t1.packets_in - t0.packets_in;
    let mut buckets = [0u64; engine::RESIDENCE_BUCKETS];
    for (i, b) in buckets.iter_mut().enumerate() {
        *b = t1.residence[i] - t0.residence[i];
    }
    let max_us = t1.residence_max_ns as f64 / 1e3;
    let q = |p| quantile(&buckets, p, max_us).unwrap_or(f64::NAN);
    let us_per_packet = cpu.as_secs_f64() * 1e6 / packets.max(1) as f64;
    let cpw = (t1.completions - t0.completions) as f64 / (t1.wakeups - t0.wakeups).max(1) as f64;
    let per_reactor: Vec<u64> = snaps1
        .iter()
        .zip(&snaps0)
        .map(|(a, b)| a.packets_in - b.packets_in)
        .collect();
    let lost = sent.saturating_sub(received);
    let gen_pct = (gen_cpu1 - gen_cpu0).as_secs_f64() * 100.0 / window;
    println!(
        "floor under load: {} calls, {} reactor(s), {} send slots per 20 ms, batching {}",
        args.calls,
        args.reactors,
        slots,
        h.batching()
    );
    println!(
        "  offered {:.0} packets/s in, relayed {:.0}/s; reactor CPU {:.1} % of a core, {:.2} us per received packet",
        (sent - sent0) as f64 / window,
        packets as f64 / window,
        cpu.as_secs_f64() * 100.0 / window,
        us_per_packet
    );
    println!(
        "  completions per wake-up {cpw:.1}; residence p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us",
        q(0.5),
        q(0.99),
        q(0.999),
        max_us
    );
    println!(
        "  per-reactor packets {per_reactor:?}; sent {sent}, received {received}, lost {lost} (window: {} received); generator CPU {gen_pct:.0} % of a core",
        received - received0
    );
    if let Some(p) = &args.json {
        let j = serde_json::json!({
            "calls": args.calls,
            "reactors": args.reactors,
            "batch_us": args.batch_us,
            "batching": h.batching().to_string(),
            "us_per_packet": us_per_packet,
            "reactor_cpu_pct": cpu.as_secs_f64() * 100.0 / window,
            "packets_per_s": packets as f64 / window,
            "completions_per_wakeup": cpw,
            "residence_us": {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": max_us},
            "per_reactor_packets": per_reactor,
            "sent": sent,
            "received": received,
            "lost": lost,
            "generator_cpu_pct": gen_pct,
        });
        std::fs::write(p, serde_json::to_string_pretty(&j)?)?;
    }
    h.shutdown();
    Ok(())
}
