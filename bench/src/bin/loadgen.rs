//! `loadgen`: plays N browsers against webrtc-phone (or any SIP-over-WSS edge) and reports
//! call setup, RTP round trip, loss, jitter, failures and the CPU/RSS of watched processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

/// Load generator: WSS SIP UAs with real ICE/DTLS/SRTP legs (loopback only).
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// The gateway's WSS address (loopback).
    #[arg(long, default_value = "127.0.0.1:8443")]
    wss: SocketAddr,
    /// HTTP path of the WebSocket upgrade.
    #[arg(long, default_value = "/ws")]
    ws_path: String,
    /// Request-URI of the calls.
    #[arg(long, default_value = "sip:echo@127.0.0.1")]
    target: String,
    /// AOR domain of the UAs.
    #[arg(long, default_value = "127.0.0.1")]
    domain: String,
    /// Calling user.
    #[arg(long, default_value = "alice")]
    user: String,
    /// Its password (digest challenges).
    #[arg(long, default_value = "alicePassword")]
    pass: String,
    /// REGISTER before each call.
    #[arg(long)]
    register: bool,
    /// Outgoing calls in total (default: the concurrency).
    #[arg(long)]
    calls: Option<usize>,
    /// Target concurrency.
    #[arg(long, short = 'n', default_value_t = 10)]
    concurrency: usize,
    /// Ramp rate, calls per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Media time per call, seconds.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Setup limit (INVITE → 200, and ICE + DTLS), seconds.
    #[arg(long, default_value_t = 15.0)]
    setup_timeout: f64,
    /// Hard limit of the run, seconds (at most 3600).
    #[arg(long, default_value_t = 300.0)]
    max_run: f64,
    /// Callee users that register and answer incoming calls: user:password (repeatable).
    #[arg(long = "answer", value_name = "USER:PASS")]
    answer: Vec<String>,
    /// How long callees answer, seconds from the start of the ramp.
    #[arg(long, default_value_t = 0.0)]
    answer_for: f64,
    /// Process trees to measure: name=pid (repeatable).
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<String>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(a.wss.ip().is_loopback(), "loopback addresses only");
    anyhow::ensure!(a.concurrency <= 5000, "at most 5000 concurrent calls");
    anyhow::ensure!(a.rate > 0.0 && a.hold >= 0.0, "rate > 0, hold ≥ 0");
    let calls = a.calls.unwrap_or(a.concurrency).min(100_000);
    let watch = a
        .watch
        .iter()
        .map(|w| {
            let (n, p) = w.split_once('=').context("--watch NAME=PID")?;
            Ok((n.to_string(), p.parse::<i32>().context("--watch NAME=PID")?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let answer_users = a
        .answer
        .iter()
        .map(|u| {
            let (n, p) = u.split_once(':').context("--answer USER:PASS")?;
            Ok((n.to_string(), p.to_string()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = bench::run::Config {
        wss: a.wss,
        ws_path: a.ws_path,
        target: a.target,
        domain: a.domain,
        user: a.user,
        pass: a.pass,
        register: a.register,
        calls,
        concurrency: a.concurrency,
        rate: a.rate,
        hold: Duration::from_secs_f64(a.hold),
        setup_timeout: Duration::from_secs_f64(a.setup_timeout.clamp(1.0, 120.0)),
        max_run: Duration::from_secs_f64(a.max_run.clamp(1.0, 3600.0)),
        answer_users,
        answer_for: Duration::from_secs_f64(a.answer_for.clamp(0.0, 3600.0)),
        watch,
        progress: !a.quiet,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rep = rt.block_on(bench::run::run(cfg))?;
    let s = &rep.summary;
    let p = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "calls {} ok {} failed {} | setup INVITE→200 p50 {} p99 {} ms, →media p50 {} p99 {} ms | \
         rtt p50 {} p99 {} p99.9 {} ms | sent {} echoed {} lost {} ({:.3} %) | jitter max {:.2} ms | peak media calls {}",
        s.calls,
        s.ok,
        s.failed,
        p(s.invite_to_200_ms.p50),
        p(s.invite_to_200_ms.p99),
        p(s.invite_to_media_ms.p50),
        p(s.invite_to_media_ms.p99),
        p(s.rtt_ms.p50),
        p(s.rtt_ms.p99),
        p(s.rtt_ms.p999),
        s.sent,
        s.received,
        s.lost,
        s.loss_pct,
        s.jitter_max_ms,
        s.peak_active
    );
    for pr in &s.processes {
        println!(
            "  {}: idle {:.1} % load {:.1} % cpu/call-s {} ms, rss idle {} KiB peak {} KiB per call {} KiB",
            pr.name,
            pr.idle_cpu_pct,
            pr.load_cpu_pct,
            p(pr.cpu_ms_per_call_s),
            pr.rss_idle_kib,
            pr.rss_peak_kib,
            p(pr.rss_per_call_kib)
        );
    }
    for (why, n) in &s.failures {
        println!("  failed x{n}: {why}");
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rep)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.html {
        std::fs::write(path, bench::report::html(&rep))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
