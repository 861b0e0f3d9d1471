//! Scaling out (issue 13): two gateway instances behind one Kamailio
//! (`deploy/kamailio/scale-out.cfg`: registrar with Path, dispatcher probing each instance), the
//! load generator's users split over both, calls to a SIPp echo through Kamailio.
//!
//! 1. Load spread: CALLS calls on each instance at once (alice's on A, bob's on B), every one set
//!    up with media both ways; each instance's /metrics counts its own calls and only those.
//! 2. Instance death: SIGKILL to A while both carry their calls. B's calls lose no packet and all
//!    end well; A's calls end (nothing can keep them: media and WebSockets lived in A); Kamailio's
//!    dispatcher marks A inactive.
//! 3. A's users come back through B (what a load balancer in front of WSS does when A's address
//!    stops answering): alice's calls through B all work.
//!
//! `SCALE_OUT_CALLS` (default 20) sets the calls per instance; the README's figures come from
//! `SCALE_OUT_CALLS=100` (200 calls) in release mode. Needs `sipp` and `kamailio`
//! (scripts/deps.sh test) and the gateway binary.

#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::run::{Config, Report};

use common::{free_udp_port, gateway, https_get, metric, sipp_echo, temp_dir, Gw, Proc};

/// Media ports of the two instances: apart from the other bench tests' (15000-15799).
const PORTS_A: (u16, u16) = (16000, 16399);
const PORTS_B: (u16, u16) = (16400, 16799);
const HOLD: Duration = Duration::from_secs(12);
const RATE: f64 = 20.0;

fn calls_per_instance() -> usize {
    std::env::var("SCALE_OUT_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=190).contains(n))
        .unwrap_or(20)
}

/// Kamailio with scale-out.cfg on `port`: echo calls to `echo_port`, instances from `list`.
fn kamailio(dir: &Path, port: u16, echo_port: u16, list: &Path) -> Proc {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kamailio/scale-out.cfg");
    let run = dir.join("kamailio-run");
    std::fs::create_dir_all(&run).unwrap();
    let child = Command::new("kamailio")
        .arg("-f")
        .arg(cfg)
        .args(["-DD", "-E", "-Y"])
        .arg(&run)
        .arg("-w")
        .arg(&run)
        .args(["-A", &format!("REG_PORT={port}")])
        .args(["-A", &format!("ECHO_URI=\"sip:127.0.0.1:{echo_port}\"")])
        .args(["-A", &format!("DS_LIST=\"{}\"", list.display())])
        .args(["-A", "DS_PING=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("kamailio.log")).unwrap())
        .spawn()
        .expect("kamailio must be installed: scripts/deps.sh test");
    let p = Proc(Some(child));
    // Ready when it answers an out-of-dialog OPTIONS (bounded: 15 s).
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    for n in 0..75 {
        let opt = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKready{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1:{port}>\r\n\
             Call-ID: ready{n}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(opt.as_bytes(), ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 2048];
        if let Ok(len) = sock.recv(&mut buf) {
            if buf[..len].starts_with(b"SIP/2.0 200") {
                return p;
            }
        }
    }
    panic!(
        "kamailio did not answer OPTIONS on {port}:\n{}",
        std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default()
    );
}

fn config(wss: u16, user: &str, calls: usize, watch: Vec<(String, i32)>) -> Config {
    Config {
        wss: ([127, 0, 0, 1], wss).into(),
        ws_path: "/ws".into(),
        target: "sip:echo@127.0.0.1".into(),
        domain: "127.0.0.1".into(),
        user: user.into(),
        pass: format!("{user}Password"),
        register: false,
        calls,
        concurrency: calls,
        rate: RATE,
        hold: HOLD,
        setup_timeout: Duration::from_secs(15),
        max_run: Duration::from_secs(60),
        answer_users: Vec::new(),
        answer_for: Duration::ZERO,
        watch,
        progress: false,
    }
}

async fn metrics(gw: &Gw) -> String {
    let (status, m) = https_get(gw.https, "/metrics").await.expect("/metrics");
    assert_eq!(status, 200, "{m}");
    m
}

/// Calls the instance has started, summed over labels.
fn started(m: &str) -> f64 {
    m.lines()
        .filter(|l| l.starts_with("webrtc_phone_calls_started_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn line(name: &str, r: &Report) -> String {
    let s = &r.summary;
    format!(
        "{name}: calls {} ok {} failed {} {:?} | sent {} echoed {} lost {} | INVITE->200 p50 {:.1} \
         p99 {:.1} ms | setup to media p50 {:.1} ms | rtt p99 {:.1} ms",
        s.calls,
        s.ok,
        s.failed,
        s.failures,
        s.sent,
        s.received,
        s.lost,
        s.invite_to_200_ms.p50.unwrap_or(f64::NAN),
        s.invite_to_200_ms.p99.unwrap_or(f64::NAN),
        s.invite_to_media_ms.p50.unwrap_or(f64::NAN),
        s.rtt_ms.p99.unwrap_or(f64::NAN),
    )
}

#[test]
fn two_instances_share_the_load_and_one_dies_without_touching_the_others_calls() {
    let n = calls_per_instance();
    let dir = temp_dir("scale-out");
    let echo_port = free_udp_port();
    let _echo = sipp_echo(&dir, echo_port);
    let kport = free_udp_port();
    let (da, db) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let limits = [
        ("MAX_CALLS_PER_IP", "100000"),
        ("MAX_CONNS_PER_IP", "100000"),
        ("MAX_WS_PER_IP", "100000"),
    ];
    let mut a = gateway(&da, kport, PORTS_A, &limits);
    let b = gateway(&db, kport, PORTS_B, &limits);
    let list = dir.join("dispatcher.list");
    std::fs::write(
        &list,
        format!("1 sip:127.0.0.1:{}\n1 sip:127.0.0.1:{}\n", a.sip, b.sip),
    )
    .unwrap();
    let kam = kamailio(&dir, kport, echo_port, &list);
    let kam_log = || std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let watch = vec![
        ("kamailio".to_string(), kam.pid()),
        ("instance A".to_string(), a.proc.pid()),
        ("instance B".to_string(), b.proc.pid()),
    ];

    let cpu = |pid: i32| bench::procstat::usage_tree(pid).map_or(0.0, |u| u.cpu_s);
    let (kam0, b0) = (cpu(kam.pid()), cpu(b.proc.pid()));

    // 1. Both instances carry n calls each, all up with media.
    let run_a = rt.spawn(bench::run::run(config(a.wss, "alice", n, Vec::new())));
    let run_b = rt.spawn(bench::run::run(config(b.wss, "bob", n, watch)));
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (ma, mb) = (metrics(&a).await, metrics(&b).await);
            let act = |m: &str| metric(m, "webrtc_phone_calls_active").unwrap_or(-1.0);
            let up = |m: &str| metric(m, "webrtc_phone_call_setup_seconds_count").unwrap_or(-1.0);
            if act(&ma) == n as f64 && up(&ma) == n as f64 && act(&mb) == n as f64 && up(&mb) == n as f64
            {
                assert_eq!(started(&ma), n as f64, "A started only alice's calls");
                assert_eq!(started(&mb), n as f64, "B started only bob's calls");
                break;
            }
            assert!(
                Instant::now() < deadline && !run_a.is_finished() && !run_b.is_finished(),
                "not all {n}+{n} calls were set up: A active {} answered {}, B active {} answered {}",
                act(&ma),
                up(&ma),
                act(&mb),
                up(&mb)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    println!("{n} calls up on each instance (A: alice, B: bob), every one through Kamailio");
    std::thread::sleep(Duration::from_secs(2));

    // 2. SIGKILL to A.
    // SAFETY: the PID of a gateway this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(a.proc.pid(), libc::SIGKILL) }, 0);
    let t_kill = Instant::now();
    assert!(a.proc.wait_for_exit(Duration::from_secs(5)).is_some());
    // Kamailio's dispatcher notices (A's probes go unanswered) while B's calls go on.
    let deadline = Instant::now() + Duration::from_secs(15);
    let down = format!("instance sip:127.0.0.1:{} down", a.sip);
    while !kam_log().contains(&down) {
        assert!(
            Instant::now() < deadline,
            "dispatcher never marked A down:\n{}",
            kam_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "Kamailio's dispatcher marked A down {:.1} s after the SIGKILL",
        t_kill.elapsed().as_secs_f64()
    );
    let rep_b: Report = rt.block_on(run_b).unwrap().unwrap();
    let rep_a: Report = rt.block_on(run_a).unwrap().unwrap();
    println!("{}", line("B (bob)", &rep_b));
    println!("{}", line("A (alice, killed)", &rep_a));
    for p in &rep_b.summary.processes {
        println!(
            "  {}: {:.1} % of a core at load, {} ms CPU per call-second, RSS {} KiB peak",
            p.name,
            p.load_cpu_pct,
            p.cpu_ms_per_call_s
                .map_or("-".into(), |v| format!("{v:.3}")),
            p.rss_peak_kib
        );
    }
    // Whole calls (setup, HOLD of media, BYE): Kamailio carried the signaling of A's calls and
    // B's, and probed both instances; B carried its n calls.
    let (kam1, b1) = (cpu(kam.pid()), cpu(b.proc.pid()));
    println!(
        "CPU per whole call ({} s of media): Kamailio {:.2} ms ({} calls' signaling), instance B {:.2} ms",
        HOLD.as_secs(),
        (kam1 - kam0) * 1000.0 / (2 * n) as f64,
        2 * n,
        (b1 - b0) * 1000.0 / n as f64
    );
    let sb = &rep_b.summary;
    assert_eq!(
        (sb.calls, sb.ok, sb.failed),
        (n, n, 0),
        "B's calls all ended well"
    );
    assert_eq!(sb.lost, 0, "B's calls lost no packet while A died");
    assert!(
        sb.received > 0 && sb.received == sb.sent,
        "B: every packet echoed"
    );
    assert_eq!(
        rep_a.summary.ok, 0,
        "A's calls could not survive A (their media and WebSockets were in it)"
    );

    // 3. A's users reconnect through B and call again.
    let again: Report = rt
        .block_on(bench::run::run(config(b.wss, "alice", n, Vec::new())))
        .unwrap();
    println!("{}", line("alice again, through B", &again));
    let s = &again.summary;
    assert_eq!(
        (s.ok, s.failed, s.lost),
        (n, 0, 0),
        "alice's calls through B"
    );
    let mb = rt.block_on(metrics(&b));
    assert_eq!(started(&mb), 2.0 * n as f64, "B took alice's calls too");
    drop(kam);
}
