//! The load run: calls ramped at a rate up to a concurrency, each a WSS SIP UA with a real
//! WebRTC leg sending PCMU at 20 ms, held, hung up; callee UAs answering incoming calls; a
//! once-a-second sampler for the timeline (RTT, packets, CPU and RSS of watched processes).
//!
//! This is an IO program: it reads the clock wherever it measures (allowed below).
#![allow(
    clippy::disallowed_methods,
    reason = "the load generator is an IO program: it timestamps packets and samples the clock"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use engine::proto::dtls::DtlsIdentity;
use engine::proto::ice::IceCredentials;
use engine::proto::wire::RtpHeader;
use serde::Serialize;
use signaling::sip::msg::{Method, SipMsg};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::peer::{ClientLeg, LegState, Received};
use crate::procstat::{self, Usage};
use crate::sdp;
use crate::stats::{AtomicHistogram, Histogram, Jitter, Percentiles};
use crate::ua::{ua_config, Dialog, Ua};

/// Marks our RTP payloads: "LGv1".
const MAGIC: [u8; 4] = *b"LGv1";
/// G.711 at 20 ms.
const PTIME: Duration = Duration::from_millis(20);
/// How long the idle floor is sampled before the first call.
const IDLE_SAMPLE: Duration = Duration::from_secs(3);
/// RTCP receiver reports, as browsers send them (about one a second for audio).
const RTCP_INTERVAL: Duration = Duration::from_secs(1);
/// After the hold: keep receiving this long for echoes still in flight.
const DRAIN: Duration = Duration::from_millis(400);

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The gateway's WSS listener.
    pub wss: SocketAddr,
    /// HTTP path of the WebSocket upgrade.
    pub ws_path: String,
    /// Request-URI of every outgoing call.
    pub target: String,
    /// Domain of the UAs' AORs.
    pub domain: String,
    /// User of the calling UAs.
    pub user: String,
    /// Their password (REGISTER and INVITE challenges).
    pub pass: String,
    /// REGISTER before each outgoing call.
    pub register: bool,
    /// Outgoing calls in total.
    pub calls: usize,
    /// Outgoing calls at the same time at most.
    pub concurrency: usize,
    /// New calls per second during the ramp.
    pub rate: f64,
    /// Media time of each call, from SRTP ready to hang-up.
    pub hold: Duration,
    /// INVITE → 200 and ICE+DTLS limits.
    pub setup_timeout: Duration,
    /// Hard limit of the whole run.
    pub max_run: Duration,
    /// Callee UAs (user, password) that register and answer incoming calls.
    pub answer_users: Vec<(String, String)>,
    /// How long callee UAs stay registered and answer.
    pub answer_for: Duration,
    /// Processes whose CPU and RSS (with descendants) the sampler records.
    pub watch: Vec<(String, i32)>,
    /// Draw the progress bar.
    pub progress: bool,
}

/// One call's outcome.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CallResult {
    /// Index of the call ("out") or of the callee UA ("in").
    pub idx: usize,
    /// "out" (we called) or "in" (we answered).
    pub direction: &'static str,
    /// Set up, media both ways, hung up cleanly.
    pub ok: bool,
    /// Why not.
    pub failure: Option<String>,
    /// INVITE sent → 200 received (outgoing).
    pub invite_to_200_ms: Option<f64>,
    /// INVITE sent (or received) → first echoed RTP packet.
    pub invite_to_media_ms: Option<f64>,
    /// 200 (or our 200) → ICE check answered.
    pub ice_ms: Option<f64>,
    /// ICE → SRTP keys.
    pub dtls_ms: Option<f64>,
    /// RTP packets sent.
    pub sent: u64,
    /// Distinct own packets received back (the far end echoes).
    pub received: u64,
    /// Sent and never seen back (round-trip loss).
    pub lost: u64,
    /// SRTCP receiver reports sent.
    pub rtcp_sent: u64,
    /// Packets that failed SRTP unprotect.
    pub bad_srtp: u64,
    /// RTP packets that were not ours (wrong magic or call).
    pub foreign: u64,
    /// Largest RFC 3550 jitter of the echoed stream.
    pub jitter_max_ms: f64,
    /// Largest round-trip time.
    pub rtt_max_ms: f64,
    /// Seconds of media.
    pub media_s: f64,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since start.
    pub t: f64,
    /// Calls with media flowing.
    pub active: u64,
    /// Calls finished ok / failed so far.
    pub ok: u64,
    /// Failed so far.
    pub failed: u64,
    /// RTP sent in this interval.
    pub sent: u64,
    /// RTP received in this interval.
    pub received: u64,
    /// RTT of packets received in this interval.
    pub rtt_p50_ms: Option<f64>,
    /// RTT p99 in this interval.
    pub rtt_p99_ms: Option<f64>,
    /// Per watched group: CPU % of one core in this interval, and RSS in KiB.
    pub cpu: Vec<(String, f64, u64)>,
}

/// Counters every task adds to.
struct Shared {
    /// Distinguishes this run's Call-IDs, tags and branches from other runs' (several runs
    /// against one gateway, in one process or not): as random as a browser's need not be.
    run_id: String,
    t0: Instant,
    identity: DtlsIdentity,
    tls: Arc<rustls::ClientConfig>,
    rtt: AtomicHistogram,
    sent: AtomicU64,
    received: AtomicU64,
    active: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    stop_callees: AtomicBool,
    /// Set when every call task has ended (or the run limit hit): the sampler stops.
    finished: AtomicBool,
    /// The sampler's seconds, kept here so that a late sampler loses nothing.
    timeline: Mutex<Vec<Sample>>,
    results: Mutex<Vec<CallResult>>,
}

impl Shared {
    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_nanos() as u64
    }
    fn finish(&self, r: CallResult) {
        if r.ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut v) = self.results.lock() {
            v.push(r);
        }
    }
}

/// The whole run's output.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What ran.
    pub config: Config,
    /// Wall-clock start (seconds since the Unix epoch).
    pub started_unix: f64,
    /// Run length in seconds.
    pub duration_s: f64,
    /// The summary.
    pub summary: Summary,
    /// Once a second.
    pub timeline: Vec<Sample>,
    /// Every call.
    pub calls: Vec<CallResult>,
}

/// Totals and percentiles.
#[derive(Debug, Serialize, Default)]
pub struct Summary {
    /// Calls attempted (both directions).
    pub calls: usize,
    /// Calls that were ok.
    pub ok: usize,
    /// Calls that failed.
    pub failed: usize,
    /// Failure reasons and their counts.
    pub failures: Vec<(String, usize)>,
    /// INVITE → 200, ms.
    pub invite_to_200_ms: Percentiles,
    /// INVITE → first echoed packet, ms.
    pub invite_to_media_ms: Percentiles,
    /// Round-trip time through the far end's echo, ms (all packets).
    pub rtt_ms: Percentiles,
    /// RTP sent / received back / lost.
    pub sent: u64,
    /// Received back.
    pub received: u64,
    /// Lost on the round trip.
    pub lost: u64,
    /// SRTCP receiver reports sent (not echoed: SIPp echoes RTP only).
    pub rtcp_sent: u64,
    /// Round-trip loss in percent.
    pub loss_pct: f64,
    /// Mean and largest per-call jitter maximum, ms.
    pub jitter_max_ms: f64,
    /// Peak concurrent calls with media.
    pub peak_active: u64,
    /// Per watched group: CPU ms per call-second at full load, RSS KiB per call, baseline and
    /// peak RSS, CPU % at full load and at idle (the floor, before the first call).
    pub processes: Vec<ProcSummary>,
}

/// One watched process group.
#[derive(Debug, Serialize, Default)]
pub struct ProcSummary {
    /// Name given with --watch.
    pub name: String,
    /// CPU % of one core before any call (idle floor).
    pub idle_cpu_pct: f64,
    /// CPU % of one core while ≥ 95 % of the peak number of calls had media.
    pub load_cpu_pct: f64,
    /// CPU ms per call per second of media, at load, minus the idle floor.
    pub cpu_ms_per_call_s: Option<f64>,
    /// RSS before the first call, KiB.
    pub rss_idle_kib: u64,
    /// Largest RSS, KiB.
    pub rss_peak_kib: u64,
    /// (peak − idle) / peak calls, KiB.
    pub rss_per_call_kib: Option<f64>,
}

/// Runs the load; returns the report. Bounded by `cfg.max_run`.
pub async fn run(cfg: Config) -> anyhow::Result<Report> {
    let started_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let identity = DtlsIdentity::generate(SystemTime::now())?;
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let run_id = format!(
        "{:x}{:x}{}",
        nanos,
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let sh = Arc::new(Shared {
        run_id,
        t0: Instant::now(),
        identity,
        tls: crate::ua::tls_config()?,
        rtt: AtomicHistogram::default(),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        active: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop_callees: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        timeline: Mutex::new(Vec::new()),
        results: Mutex::new(Vec::new()),
    });
    let bar = if cfg.progress {
        let b = indicatif::ProgressBar::new(cfg.calls as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} started  {msg}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    // Idle floor: the watched processes for a few seconds before any call (CPU time moves in
    // 10 ms ticks, so one second would resolve only 1 %).
    let mut watch: Vec<(String, i32, Option<Usage>)> = cfg
        .watch
        .iter()
        .map(|(n, p)| (n.clone(), *p, procstat::usage_tree(*p)))
        .chain(std::iter::once((
            "loadgen".to_string(),
            std::process::id() as i32,
            procstat::usage_tree(std::process::id() as i32),
        )))
        .collect();
    let idle_start = Instant::now();
    tokio::time::sleep(IDLE_SAMPLE).await;
    let idle_s = idle_start.elapsed().as_secs_f64().max(1e-3);
    let mut idle = Vec::new();
    for (name, pid, prev) in &mut watch {
        let now = procstat::usage_tree(*pid);
        let pct = match (&prev, &now) {
            (Some(a), Some(b)) => b.cpu_s - a.cpu_s,
            _ => 0.0,
        } * 100.0
            / idle_s;
        idle.push((name.clone(), pct, now.as_ref().map_or(0, |u| u.rss_kib)));
        *prev = now;
    }

    // Sampler.
    let sampler = {
        let sh = sh.clone();
        let bar = bar.clone();
        let mut watch = watch.clone();
        tokio::spawn(async move {
            let mut last_h = sh.rtt.snapshot();
            let (mut last_sent, mut last_recv) = (0u64, 0u64);
            let mut last_t = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = Instant::now();
                let dt = now.duration_since(last_t).as_secs_f64().max(1e-3);
                last_t = now;
                let h = sh.rtt.snapshot();
                let d: Histogram = h.since(&last_h);
                last_h = h;
                let sent = sh.sent.load(Ordering::Relaxed);
                let recv = sh.received.load(Ordering::Relaxed);
                let mut cpu = Vec::new();
                for (name, pid, prev) in &mut watch {
                    let u = procstat::usage_tree(*pid);
                    let pct = match (&prev, &u) {
                        (Some(a), Some(b)) => (b.cpu_s - a.cpu_s) / dt * 100.0,
                        _ => 0.0,
                    };
                    cpu.push((name.clone(), pct, u.as_ref().map_or(0, |u| u.rss_kib)));
                    *prev = u;
                }
                let s = Sample {
                    t: now.duration_since(sh.t0).as_secs_f64(),
                    active: sh.active.load(Ordering::Relaxed),
                    ok: sh.ok.load(Ordering::Relaxed),
                    failed: sh.failed.load(Ordering::Relaxed),
                    sent: sent - last_sent,
                    received: recv - last_recv,
                    rtt_p50_ms: d.quantile_ms(0.5),
                    rtt_p99_ms: d.quantile_ms(0.99),
                    cpu,
                };
                last_sent = sent;
                last_recv = recv;
                let cpu_text: String = s
                    .cpu
                    .iter()
                    .map(|(n, p, _)| format!(" {n} {p:.0}%"))
                    .collect();
                bar.set_message(format!(
                    "media {} ok {} failed {} rtt p99 {:.1} ms{cpu_text}",
                    s.active,
                    s.ok,
                    s.failed,
                    s.rtt_p99_ms.unwrap_or(0.0)
                ));
                let n = sh.timeline.lock().map_or(usize::MAX, |mut t| {
                    t.push(s);
                    t.len()
                });
                if n > 100_000 || sh.finished.load(Ordering::Relaxed) {
                    break;
                }
            }
        })
    };

    let work = async {
        // Callees.
        let mut callees = Vec::new();
        for (i, (user, pass)) in cfg.answer_users.iter().enumerate() {
            let (sh, cfg2, user, pass) = (sh.clone(), cfg.clone(), user.clone(), pass.clone());
            callees.push(tokio::spawn(async move {
                callee(sh, cfg2, i, user, pass).await;
            }));
        }
        // Outgoing ramp.
        let sem = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        let mut tasks = Vec::with_capacity(cfg.calls);
        let ramp_start = tokio::time::Instant::now();
        for i in 0..cfg.calls {
            let permit = sem.clone().acquire_owned().await?;
            let at = ramp_start + Duration::from_secs_f64(i as f64 / cfg.rate.max(0.001));
            tokio::time::sleep_until(at).await;
            bar.inc(1);
            let (sh, cfg2) = (sh.clone(), cfg.clone());
            tasks.push(tokio::spawn(async move {
                let r = caller(&sh, &cfg2, i).await;
                sh.finish(r);
                drop(permit);
            }));
        }
        for (idx, t) in tasks.into_iter().enumerate() {
            if let Err(e) = t.await {
                sh.finish(CallResult {
                    idx,
                    direction: "out",
                    failure: Some(format!("call task died: {e}")),
                    ..CallResult::default()
                });
            }
        }
        // Callees answer until their time is up.
        let callee_end = tokio::time::Instant::now().max(ramp_start + cfg.answer_for);
        tokio::time::sleep_until(callee_end).await;
        sh.stop_callees.store(true, Ordering::Relaxed);
        for c in callees {
            let _ = c.await;
        }
        anyhow::Ok(())
    };
    let timed_out = tokio::time::timeout(cfg.max_run, work).await.is_err();
    sh.stop_callees.store(true, Ordering::Relaxed);
    sh.finished.store(true, Ordering::Relaxed);
    // The sampler ends at its next tick.
    let _ = tokio::time::timeout(Duration::from_secs(3), sampler).await;
    let timeline = sh
        .timeline
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    bar.finish_and_clear();
    let duration_s = sh.t0.elapsed().as_secs_f64();
    let mut calls = sh.results.lock().map(|v| v.clone()).unwrap_or_default();
    if timed_out {
        let done = calls.iter().filter(|c| c.direction == "out").count();
        for idx in done..cfg.calls {
            calls.push(CallResult {
                idx,
                direction: "out",
                failure: Some("run time limit reached".into()),
                ..CallResult::default()
            });
        }
    }
    calls.sort_by_key(|c| (c.direction, c.idx));
    let summary = summarize(&calls, &sh.rtt.snapshot(), &timeline, &idle);
    Ok(Report {
        config: cfg,
        started_unix,
        duration_s,
        summary,
        timeline,
        calls,
    })
}

fn summarize(
    calls: &[CallResult],
    rtt: &Histogram,
    timeline: &[Sample],
    idle: &[(String, f64, u64)],
) -> Summary {
    let mut failures: Vec<(String, usize)> = Vec::new();
    for c in calls {
        if let Some(f) = &c.failure {
            match failures.iter_mut().find(|(r, _)| r == f) {
                Some(e) => e.1 += 1,
                None => failures.push((f.clone(), 1)),
            }
        }
    }
    failures.sort_by_key(|f| std::cmp::Reverse(f.1));
    let sent: u64 = calls.iter().map(|c| c.sent).sum();
    let received: u64 = calls.iter().map(|c| c.received).sum();
    let lost: u64 = calls.iter().map(|c| c.lost).sum();
    let peak_active = timeline.iter().map(|s| s.active).max().unwrap_or(0);
    // "At load": the seconds with at least 95 % of the peak (the target when every call got
    // through) of calls with media.
    let full = (peak_active as f64 * 0.95).max(1.0);
    let at_load: Vec<&Sample> = timeline
        .iter()
        .filter(|s| s.active as f64 >= full)
        .collect();
    let processes = idle
        .iter()
        .enumerate()
        .map(|(i, (name, idle_pct, rss_idle))| {
            let rss_peak = timeline
                .iter()
                .filter_map(|s| s.cpu.get(i).map(|c| c.2))
                .max()
                .unwrap_or(*rss_idle);
            let (mut cpu_sum, mut calls_sum) = (0.0, 0.0);
            for s in &at_load {
                if let Some(c) = s.cpu.get(i) {
                    cpu_sum += c.1;
                    calls_sum += s.active as f64;
                }
            }
            let n = at_load.len().max(1) as f64;
            let load_pct = cpu_sum / n;
            ProcSummary {
                name: name.clone(),
                idle_cpu_pct: *idle_pct,
                load_cpu_pct: load_pct,
                // % of a core per call = 10 ms of CPU per call-second per 1 %.
                cpu_ms_per_call_s: (calls_sum > 0.0)
                    .then(|| (load_pct - idle_pct).max(0.0) * 10.0 / (calls_sum / n)),
                rss_idle_kib: *rss_idle,
                rss_peak_kib: rss_peak,
                rss_per_call_kib: (peak_active > 0)
                    .then(|| rss_peak.saturating_sub(*rss_idle) as f64 / peak_active as f64),
            }
        })
        .collect();
    Summary {
        calls: calls.len(),
        ok: calls.iter().filter(|c| c.ok).count(),
        failed: calls.iter().filter(|c| !c.ok).count(),
        failures,
        invite_to_200_ms: Percentiles::of(
            calls.iter().filter_map(|c| c.invite_to_200_ms).collect(),
        ),
        invite_to_media_ms: Percentiles::of(
            calls.iter().filter_map(|c| c.invite_to_media_ms).collect(),
        ),
        rtt_ms: Percentiles::of_histogram(rtt),
        sent,
        received,
        lost,
        rtcp_sent: calls.iter().map(|c| c.rtcp_sent).sum(),
        loss_pct: if sent > 0 {
            lost as f64 * 100.0 / sent as f64
        } else {
            0.0
        },
        jitter_max_ms: calls.iter().map(|c| c.jitter_max_ms).fold(0.0, f64::max),
        peak_active,
        processes,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One outgoing call, start to end; never panics, always bounded.
async fn caller(sh: &Shared, cfg: &Config, idx: usize) -> CallResult {
    let mut r = CallResult {
        idx,
        direction: "out",
        ..CallResult::default()
    };
    if let Err(e) = caller_inner(sh, cfg, idx, &mut r).await {
        r.failure = Some(format!("{e:#}"));
    }
    r.ok = r.failure.is_none();
    r
}

async fn caller_inner(
    sh: &Shared,
    cfg: &Config,
    idx: usize,
    r: &mut CallResult,
) -> anyhow::Result<()> {
    let token = format!("lg{}x{idx}", sh.run_id);
    let mut ua = tokio::time::timeout(
        cfg.setup_timeout,
        Ua::connect_to(
            sh.tls.clone(),
            cfg.wss,
            &cfg.ws_path,
            ua_config(&cfg.user, &cfg.pass, &cfg.domain, token),
        ),
    )
    .await
    .map_err(|_| anyhow::anyhow!("WSS connect timeout"))?
    .map_err(|e| anyhow::anyhow!("WSS connect: {e:#}"))?;
    if cfg.register {
        let code = ua.register(300).await?;
        anyhow::ensure!(code != 0, "REGISTER: no final response in 10 s");
        anyhow::ensure!(code / 100 == 2, "REGISTER {code}");
    }
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let port = sock.local_addr()?.port();
    let ice = IceCredentials::random()?;
    let offer = sdp::chrome_offer(
        0x4c47_0000 + idx as u64,
        port,
        &ice,
        sh.identity.fingerprint(),
    );
    let t_invite = Instant::now();
    let mut dialog = ua.invite(&cfg.target, &offer, cfg.setup_timeout).await?;
    match dialog.final_status {
        0 => anyhow::bail!(
            "INVITE: no final response in {} s",
            cfg.setup_timeout.as_secs()
        ),
        200..=299 => {}
        code => {
            ua.close().await;
            anyhow::bail!("INVITE {code}");
        }
    }
    let t_200 = Instant::now();
    r.invite_to_200_ms = Some(ms(t_200 - t_invite));
    let remote = sdp::remote_media(dialog.answer_sdp.as_bytes())
        .map_err(|e| anyhow::anyhow!("answer {e}"))?;
    let leg = ClientLeg::new(ice, sh.identity.clone(), remote, 0x1000 + idx as u64, t_200);
    let end = media(
        sh, cfg, leg, &sock, &mut ua, idx as u32, t_invite, t_200, cfg.hold, r,
    )
    .await;
    match end {
        Ok(MediaEnd::HoldDone) => {
            let code = ua.bye(&mut dialog).await?;
            ua.close().await;
            anyhow::ensure!(code == 200, "BYE answered {code}");
        }
        Ok(MediaEnd::FarBye) => {
            ua.close().await;
            anyhow::bail!("far end hung up early");
        }
        Err(e) => {
            // Hang up what was set up, bounded, and report the media failure.
            let _ = tokio::time::timeout(Duration::from_secs(3), ua.bye(&mut dialog)).await;
            ua.close().await;
            return Err(e);
        }
    }
    media_verdict(r)
}

fn media_verdict(r: &CallResult) -> anyhow::Result<()> {
    anyhow::ensure!(r.sent > 0, "no media sent");
    anyhow::ensure!(r.received > 0, "no media received back");
    Ok(())
}

/// Call `idx`'s phase in the packet period (its second RTP packet this long after its first):
/// the fractional parts of idx x the golden ratio, which spread any number of consecutive calls
/// evenly over the period.
fn rtp_phase(idx: u32) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    PTIME.mul_f64((f64::from(idx) * GOLDEN).fract())
}

/// How the media phase ended.
enum MediaEnd {
    HoldDone,
    FarBye,
}

/// Per-call reception state.
struct Rx {
    seen: Vec<u64>,
    jitter: Jitter,
    first: Option<Instant>,
}

impl Rx {
    /// Marks `seq` seen; false for a duplicate.
    fn mark(&mut self, seq: u32) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.seen.len() {
            if w > 1_000_000 {
                return false;
            }
            self.seen.resize(w + 1, 0);
        }
        let fresh = self.seen[w] & (1 << b) == 0;
        self.seen[w] |= 1 << b;
        fresh
    }
}

/// ICE, DTLS, then RTP both ways for `hold` (or until the far end's BYE when `hold` is long);
/// answers SIP requests arriving meanwhile.
#[allow(clippy::too_many_arguments, reason = "one call's state, passed once")]
async fn media(
    sh: &Shared,
    cfg: &Config,
    mut leg: ClientLeg,
    sock: &UdpSocket,
    ua: &mut Ua,
    idx: u32,
    t_invite: Instant,
    t_start: Instant,
    hold: Duration,
    r: &mut CallResult,
) -> anyhow::Result<MediaEnd> {
    let setup_deadline = t_start + cfg.setup_timeout;
    let mut buf = vec![0u8; 1500];
    let mut pkt = [0u8; 512];
    let ssrc = 0x1234_0000 ^ idx;
    let mut seq: u32 = 0;
    let mut next_rtp: Option<Instant> = None;
    let mut hold_end: Option<Instant> = None;
    let mut drain_end: Option<Instant> = None;
    let mut media_start: Option<Instant> = None;
    let mut rx = Rx {
        seen: Vec::with_capacity(64),
        jitter: Jitter::default(),
        first: None,
    };
    let mut active = false;
    let mut next_rtcp: Option<Instant> = None;
    // One timer for the life of the call, moved only when the wake-up time changes (every
    // 20 ms when sending): arming a fresh timer (and a fresh WebSocket read timeout) on every
    // packet sent or received was most of this task's cost.
    let sleep = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    let result = loop {
        // Timers first, so that what they queue (checks, DTLS retransmissions) goes out now.
        leg.handle_timeout(Instant::now());
        while let Some(d) = leg.poll_transmit() {
            let _ = sock.send_to(&d, leg.remote_addr()).await;
        }
        if let LegState::Failed(why) = leg.state() {
            break Err(anyhow::anyhow!("{why}"));
        }
        let now = Instant::now();
        if leg.is_connected() && media_start.is_none() {
            media_start = Some(now);
            next_rtp = Some(now);
            hold_end = Some(now + hold);
            r.ice_ms = leg
                .ice_done
                .map(|t| ms(t.saturating_duration_since(t_start)));
            r.dtls_ms = match (leg.ice_done, leg.dtls_done) {
                (Some(a), Some(b)) => Some(ms(b.saturating_duration_since(a))),
                _ => None,
            };
            sh.active.fetch_add(1, Ordering::Relaxed);
            active = true;
            next_rtcp = Some(now + RTCP_INTERVAL);
        }
        if media_start.is_none() && now >= setup_deadline {
            break Err(anyhow::anyhow!(match leg.state() {
                LegState::Checking => "ICE: no answer to connectivity checks",
                _ => "DTLS handshake timeout",
            }));
        }
        if let Some(h) = hold_end {
            if now >= h && drain_end.is_none() {
                drain_end = Some(now + DRAIN);
                next_rtp = None;
                next_rtcp = None;
            }
        }
        if drain_end.is_some_and(|d| now >= d) {
            break Ok(MediaEnd::HoldDone);
        }
        if let Some(t) = next_rtp {
            if now >= t {
                let len = rtp_packet(&mut pkt, seq, ssrc, idx, sh.ns(now));
                match leg.protect(&mut pkt, len) {
                    Ok(n) => {
                        let _ = sock.send_to(&pkt[..n], leg.remote_addr()).await;
                        r.sent += 1;
                        sh.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => break Err(anyhow::anyhow!("SRTP protect: {e}")),
                }
                // The first packet goes at once (INVITE->media stays the setup time); the
                // second one sets the call's own phase in the 20 ms period, as independent
                // browsers have: calls started on a grid (at 25/s every 40 ms, a multiple of
                // 20) would otherwise all send within the few ms their setup times differ by.
                let next = t + if seq == 0 { rtp_phase(idx) } else { PTIME };
                seq = seq.wrapping_add(1);
                // Keep the 20 ms grid; after a long stall restart it instead of bursting.
                next_rtp = Some(if now > next + PTIME * 5 {
                    now + PTIME
                } else {
                    next
                });
            }
        }
        if let Some(t) = next_rtcp.filter(|t| now >= *t) {
            // An empty receiver report (RFC 3550 §6.4.2), SRTCP-protected (RFC 3711 §3.4).
            pkt[..4].copy_from_slice(&[0x80, 201, 0, 1]);
            pkt[4..8].copy_from_slice(&ssrc.to_be_bytes());
            if let Ok(n) = leg.protect_rtcp(&mut pkt, 8) {
                let _ = sock.send_to(&pkt[..n], leg.remote_addr()).await;
                r.rtcp_sent += 1;
            }
            next_rtcp = Some(t + RTCP_INTERVAL);
        }
        let mut wake = leg.poll_timeout();
        for t in [next_rtp, drain_end, next_rtcp].into_iter().flatten() {
            wake = wake.min(t);
        }
        if media_start.is_none() {
            wake = wake.min(setup_deadline);
        }
        if armed != Some(wake) || sleep.is_elapsed() {
            sleep.as_mut().reset(wake.into());
            armed = Some(wake);
        }
        tokio::select! {
            res = sock.recv_from(&mut buf) => {
                let Ok((len, _from)) = res else { continue };
                let now = Instant::now();
                match leg.handle_input(now, &mut buf, len) {
                    Received::Rtp(n) => on_rtp(sh, &buf[..n], idx, now, t_invite, &mut rx, r),
                    Received::BadSrtp => r.bad_srtp += 1,
                    Received::Control => {}
                }
            }
            () = &mut sleep => {}
            m = ua.next_msg() => {
                match m {
                    Ok(m) if m.method() == Some(&Method::Bye) => {
                        let ok = m.response(200, "OK", None);
                        let _ = ua.send(String::from_utf8_lossy(&ok.to_bytes()).into_owned()).await;
                        break Ok(MediaEnd::FarBye);
                    }
                    Ok(m) => ua.answer_stray(m).await?,
                    Err(e) => break Err(e),
                }
            }
        }
    };
    if active {
        sh.active.fetch_sub(1, Ordering::Relaxed);
    }
    r.media_s = media_start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    r.jitter_max_ms = rx.jitter.max_ms();
    r.lost = r.sent.saturating_sub(r.received);
    result
}

const _: () = assert!(engine::proto::srtp::MAX_TRAILER_LEN + 172 <= 512);

fn rtp_packet(pkt: &mut [u8; 512], seq: u32, ssrc: u32, idx: u32, send_ns: u64) -> usize {
    pkt[0] = 0x80;
    pkt[1] = 0; // PCMU
    pkt[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    pkt[4..8].copy_from_slice(&seq.wrapping_mul(160).to_be_bytes());
    pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let p = &mut pkt[12..172];
    p[..4].copy_from_slice(&MAGIC);
    p[4..8].copy_from_slice(&idx.to_be_bytes());
    p[8..16].copy_from_slice(&send_ns.to_be_bytes());
    p[16..20].copy_from_slice(&seq.to_be_bytes());
    p[20..].fill(0xff); // PCMU silence
    172
}

fn on_rtp(
    sh: &Shared,
    pkt: &[u8],
    idx: u32,
    now: Instant,
    t_invite: Instant,
    rx: &mut Rx,
    r: &mut CallResult,
) {
    let Ok(h) = RtpHeader::parse(pkt) else {
        r.foreign += 1;
        return;
    };
    let p = h.payload();
    if p.len() < 20 || p[..4] != MAGIC || p[4..8] != idx.to_be_bytes() {
        r.foreign += 1;
        return;
    }
    let mut ns = [0u8; 8];
    ns.copy_from_slice(&p[8..16]);
    let send_ns = u64::from_be_bytes(ns);
    let mut sq = [0u8; 4];
    sq.copy_from_slice(&p[16..20]);
    if !rx.mark(u32::from_be_bytes(sq)) {
        return;
    }
    let now_ns = sh.ns(now);
    let rtt_us = now_ns.saturating_sub(send_ns) / 1000;
    sh.rtt.record(rtt_us);
    sh.received.fetch_add(1, Ordering::Relaxed);
    r.received += 1;
    r.rtt_max_ms = r.rtt_max_ms.max(rtt_us as f64 / 1000.0);
    rx.jitter.update(now_ns as f64 / 1e9, h.timestamp());
    if rx.first.is_none() {
        rx.first = Some(now);
        r.invite_to_media_ms = Some(ms(now.saturating_duration_since(t_invite)));
    }
}

/// A callee UA: registers, answers every INVITE with a Chrome-shaped answer, runs media until
/// the far end's BYE, repeats until told to stop.
async fn callee(sh: Arc<Shared>, cfg: Config, i: usize, user: String, pass: String) {
    let token = format!("lgc{}x{i}", sh.run_id);
    let conn = Ua::connect_to(
        sh.tls.clone(),
        cfg.wss,
        &cfg.ws_path,
        ua_config(&user, &pass, &cfg.domain, token),
    )
    .await;
    let mut ua = match conn {
        Ok(ua) => ua,
        Err(e) => {
            sh.finish(CallResult {
                idx: i,
                direction: "in",
                failure: Some(format!("callee WSS connect: {e:#}")),
                ..CallResult::default()
            });
            return;
        }
    };
    match ua.register(600).await {
        Ok(code) if code / 100 == 2 => {
            // One line per callee, so a caller (a test, an operator) knows when to call.
            eprintln!("callee {user} registered");
        }
        other => {
            let why = match other {
                Ok(0) => "callee REGISTER: no final response in 10 s".to_string(),
                Ok(code) => format!("callee REGISTER {code}"),
                Err(e) => format!("callee REGISTER: {e:#}"),
            };
            sh.finish(CallResult {
                idx: i,
                direction: "in",
                failure: Some(why),
                ..CallResult::default()
            });
            return;
        }
    }
    let mut n = 0usize;
    while !sh.stop_callees.load(Ordering::Relaxed) && n < 100_000 {
        let inv = match ua
            .wait_for(Duration::from_millis(500), |m| {
                m.method() == Some(&Method::Invite)
            })
            .await
        {
            Ok(Some(inv)) => inv,
            Ok(None) => continue,
            Err(_) => break,
        };
        n += 1;
        let r = answer_one(&sh, &cfg, &mut ua, i, &inv).await;
        sh.finish(r);
    }
    ua.close().await;
}

async fn answer_one(sh: &Shared, cfg: &Config, ua: &mut Ua, i: usize, inv: &SipMsg) -> CallResult {
    let mut r = CallResult {
        idx: i,
        direction: "in",
        ..CallResult::default()
    };
    let t_invite = Instant::now();
    let res: anyhow::Result<()> = async {
        let remote = sdp::remote_media(&inv.body).map_err(|e| anyhow::anyhow!("offer {e}"))?;
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let port = sock.local_addr()?.port();
        let ice = IceCredentials::random()?;
        let answer = sdp::chrome_answer(
            0x4c48_0000 + i as u64,
            port,
            &ice,
            sh.identity.fingerprint(),
        );
        let _d: Dialog = ua.answer(inv, &answer).await?;
        let t_200 = Instant::now();
        let leg = ClientLeg::new(ice, sh.identity.clone(), remote, 0x2000 + i as u64, t_200);
        // The far end decides the length; our bound is the run's.
        match media(
            sh,
            cfg,
            leg,
            &sock,
            ua,
            0,
            t_invite,
            t_200,
            cfg.max_run,
            &mut r,
        )
        .await?
        {
            MediaEnd::FarBye => media_verdict(&r),
            MediaEnd::HoldDone => anyhow::bail!("far end never hung up"),
        }
    }
    .await;
    if let Err(e) = res {
        r.failure = Some(format!("{e:#}"));
    }
    r.ok = r.failure.is_none();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_phases_spread_consecutive_calls_over_the_period() {
        for n in [20u32, 100, 500, 1000] {
            let mut per_ms = [0u32; 20];
            for idx in 0..n {
                let p = rtp_phase(idx);
                assert!(p < PTIME, "phase {p:?} of call {idx}");
                per_ms[(p.as_micros() / 1000) as usize] += 1;
            }
            let (lo, hi) = (per_ms.iter().min().unwrap(), per_ms.iter().max().unwrap());
            // Evenly would be n/20 per ms; allow two calls either side.
            assert!(
                *lo + 2 >= n / 20 && *hi <= n / 20 + 2,
                "{n} calls over 1 ms slots: {per_ms:?}"
            );
        }
    }
}
