//! `flood`: one source address floods a SIP/UDP port with OPTIONS, INVITEs and REGISTERs
//! (fresh Call-IDs and branches) at a given rate or as fast as one thread can, for a given
//! time. Meanwhile it samples `/healthz` every 100 ms (a fresh TLS connection each time, as a
//! load balancer's check does) and the CPU and RSS of a process from /proc. Prints one line
//! per measure and, with `--json`, a report. Loopback only; bounded in time.

#![allow(
    clippy::disallowed_methods,
    reason = "an IO program: it paces sends and times requests with the clock, in its own threads"
)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use bench::flood::{due, request, status_of};
use bench::procstat::usage_tree;
use clap::Parser;
use serde::Serialize;

/// SIP/UDP flood from one address, with /healthz and process sampling (loopback only).
#[derive(Debug, Parser)]
#[command(name = "flood")]
struct Args {
    /// The gateway's SIP/UDP address.
    #[arg(long)]
    target: SocketAddr,
    /// The flood's source address (another loopback address than the gateway's).
    #[arg(long, default_value = "127.0.0.66")]
    source: IpAddr,
    /// Requests per second, `max` (as fast as one thread can send), or 0 (send nothing: the
    /// samplers' baseline).
    #[arg(long, default_value = "1000")]
    rate: String,
    /// Seconds of flood (at most 600).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// The gateway's HTTPS address: GET /healthz every 100 ms during the flood.
    #[arg(long)]
    healthz: Option<SocketAddr>,
    /// A process (and its descendants) whose CPU and RSS are sampled every 100 ms.
    #[arg(long)]
    watch: Option<i32>,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The flood's figures.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Offered rate (None: as fast as possible).
    rate: Option<f64>,
    /// Seconds from the first send to the last.
    duration_s: f64,
    sent: u64,
    sent_bytes: u64,
    /// Sends the kernel refused (buffer full, ICMP unreachable).
    send_errors: u64,
    /// sent / duration_s.
    achieved_per_s: f64,
    /// Datagrams that came back to the flood's socket, their bytes and status codes.
    answers: u64,
    answer_bytes: u64,
    by_status: Vec<(u16, u64)>,
    healthz: Option<Healthz>,
    process: Option<ProcessFigures>,
}

#[derive(Debug, Default, Serialize)]
struct Healthz {
    samples: usize,
    /// Not 200 within 5 s.
    failures: usize,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
struct ProcessFigures {
    pid: i32,
    /// CPU over the flood, % of one core.
    cpu_pct: f64,
    /// The busiest second, % of one core.
    cpu_pct_max_1s: f64,
    rss_start_kib: u64,
    rss_max_kib: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(
        a.target.ip().is_loopback() && a.source.is_loopback(),
        "loopback addresses only"
    );
    anyhow::ensure!(
        a.duration > 0.0 && a.duration <= 600.0,
        "--duration in (0, 600]"
    );
    let rate = match a.rate.as_str() {
        "max" => None,
        r => {
            let r: f64 = r.parse().context("--rate N or max")?;
            anyhow::ensure!((0.0..=10_000_000.0).contains(&r), "--rate in [0, 1e7]");
            Some(r)
        }
    };
    let duration = Duration::from_secs_f64(a.duration);
    let sock = UdpSocket::bind((a.source, 0)).context("binding the flood's source address")?;
    sock.connect(a.target)?;
    let from = sock.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));

    let receiver = {
        let sock = sock.try_clone()?;
        let stop = stop.clone();
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        std::thread::spawn(move || receive(&sock, &stop))
    };
    let healthz = a.healthz.map(|addr| {
        let stop = stop.clone();
        std::thread::spawn(move || sample_healthz(addr, &stop))
    });
    let sampler = a.watch.map(|pid| {
        let stop = stop.clone();
        std::thread::spawn(move || sample_process(pid, &stop))
    });

    let mut rep = send(&sock, from, a.target, rate, duration);
    stop.store(true, Ordering::Relaxed);
    let (answers, answer_bytes, by_status) = receiver.join().expect("the receiver thread");
    rep.answers = answers;
    rep.answer_bytes = answer_bytes;
    rep.by_status = by_status;
    rep.healthz = healthz.map(|h| h.join().expect("the /healthz thread"));
    rep.process = sampler.and_then(|s| s.join().expect("the sampler thread"));

    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "flood: {} requests in {:.2} s = {:.0}/s (offered {}), {} send errors; {} answers ({} bytes) {:?}",
        rep.sent,
        rep.duration_s,
        rep.achieved_per_s,
        rate.map_or("max".to_string(), |r| format!("{r:.0}/s")),
        rep.send_errors,
        rep.answers,
        rep.answer_bytes,
        rep.by_status
    );
    if let Some(h) = &rep.healthz {
        println!(
            "/healthz: {} samples, {} failed, p50 {} ms p99 {} ms max {} ms",
            h.samples,
            h.failures,
            opt(h.p50_ms),
            opt(h.p99_ms),
            opt(h.max_ms)
        );
    }
    if let Some(p) = &rep.process {
        println!(
            "process {}: CPU {:.0} % of a core (busiest second {:.0} %), RSS {} KiB at start, max {} KiB",
            p.pid, p.cpu_pct, p.cpu_pct_max_1s, p.rss_start_kib, p.rss_max_kib
        );
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rep)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The flood itself, on this thread.
fn send(
    sock: &UdpSocket,
    from: SocketAddr,
    to: SocketAddr,
    rate: Option<f64>,
    duration: Duration,
) -> Report {
    // Two runs' identifiers differ.
    let salt = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let mut buf = Vec::with_capacity(1024);
    let (mut sent, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut now = start;
    while now - start < duration {
        let target = due(rate, now - start);
        // At most a burst of 1,000 before looking at the clock again.
        let mut burst = 0;
        while sent < target && burst < 1000 {
            request(sent, salt, from, to, &mut buf);
            match sock.send(&buf) {
                Ok(n) => bytes += n as u64,
                Err(_) => errors += 1,
            }
            sent += 1;
            burst += 1;
        }
        if rate.is_some() && sent >= target {
            std::thread::sleep(Duration::from_micros(500));
        }
        now = Instant::now();
    }
    let secs = (now - start).as_secs_f64();
    Report {
        rate,
        duration_s: secs,
        sent,
        sent_bytes: bytes,
        send_errors: errors,
        achieved_per_s: sent as f64 / secs.max(1e-9),
        ..Report::default()
    }
}

/// Counts what comes back until told to stop, then 300 ms more.
fn receive(sock: &UdpSocket, stop: &AtomicBool) -> (u64, u64, Vec<(u16, u64)>) {
    let mut buf = vec![0u8; 65536];
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut by_status: Vec<(u16, u64)> = Vec::new();
    let mut stopped_at: Option<Instant> = None;
    loop {
        if stopped_at.is_none() && stop.load(Ordering::Relaxed) {
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some_and(|t| t.elapsed() > Duration::from_millis(300)) {
            break;
        }
        let Ok(len) = sock.recv(&mut buf) else {
            continue;
        };
        n += 1;
        bytes += len as u64;
        let code = status_of(&buf[..len]).unwrap_or(0);
        if let Some(e) = by_status.iter_mut().find(|(c, _)| *c == code) {
            e.1 += 1;
        } else if by_status.len() < 64 {
            by_status.push((code, 1));
        }
    }
    by_status.sort_unstable();
    (n, bytes, by_status)
}

/// GET /healthz every 100 ms (or as soon as the previous one ended, when it took longer).
fn sample_healthz(addr: SocketAddr, stop: &AtomicBool) -> Healthz {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return Healthz::default(),
    };
    let limit = Duration::from_secs(5);
    let mut ms: Vec<f64> = Vec::new();
    let mut failures = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) && ms.len() < 100_000 {
        let t0 = Instant::now();
        let ok = rt.block_on(bench::ua::https_get(addr, "/healthz", limit));
        let took = t0.elapsed();
        ms.push(took.as_secs_f64() * 1000.0);
        if !matches!(ok, Ok((200, _))) {
            failures += 1;
        }
        next += Duration::from_millis(100);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let p = bench::stats::Percentiles::of(ms);
    Healthz {
        samples: p.n,
        failures,
        p50_ms: p.p50,
        p99_ms: p.p99,
        max_ms: p.max,
    }
}

/// CPU and RSS of `pid`'s tree every 100 ms until told to stop.
fn sample_process(pid: i32, stop: &AtomicBool) -> Option<ProcessFigures> {
    let first = usage_tree(pid)?;
    let t0 = Instant::now();
    let mut last = (t0, first);
    let mut second = (t0, first.cpu_s);
    let mut fig = ProcessFigures {
        pid,
        rss_start_kib: first.rss_kib,
        rss_max_kib: first.rss_kib,
        ..ProcessFigures::default()
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let Some(u) = usage_tree(pid) else { break };
        let now = Instant::now();
        fig.rss_max_kib = fig.rss_max_kib.max(u.rss_kib);
        if now - second.0 >= Duration::from_secs(1) {
            let pct = (u.cpu_s - second.1) * 100.0 / (now - second.0).as_secs_f64();
            fig.cpu_pct_max_1s = fig.cpu_pct_max_1s.max(pct);
            second = (now, u.cpu_s);
        }
        last = (now, u);
    }
    let secs = (last.0 - t0).as_secs_f64();
    if secs > 0.0 {
        fig.cpu_pct = (last.1.cpu_s - first.cpu_s) * 100.0 / secs;
    }
    Some(fig)
}
