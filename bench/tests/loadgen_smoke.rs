//! Functional smoke of the load generator: 20 calls held 10 s through the real gateway to a
//! SIPp echo UAS. Checks behaviour, not speed: every call set up, media both ways, no loss.
//!
//! Needs `sipp` (scripts/deps.sh test) and the gateway binary, which `cargo test --workspace`
//! builds for signaling's own integration tests (or set WEBRTC_PHONE_BIN).

#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]

use std::io::Read as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process stopped by PID (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Proc(Option<Child>);

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        // SAFETY: kill with the PID of a child this test spawned and has not reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kernel receive-buffer drops (last column of /proc/net/udp) on local ports lo..=hi, to tell
/// a starved process (a busy machine) from a protocol fault when packets go missing.
fn udp_drops(lo: u16, hi: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            ((lo..=hi).contains(&port)).then(|| f.last()?.parse::<u64>().ok())?
        })
        .sum()
}

fn gateway_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WEBRTC_PHONE_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<this test> → target/<profile>/webrtc-phone
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("webrtc-phone");
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build -p signaling) or set WEBRTC_PHONE_BIN",
        bin.display()
    );
    bin
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("loadgen-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the gateway routing every call to `sipp_port`; returns it and its WSS port.
fn gateway(dir: &Path, sipp_port: u16) -> (Proc, u16) {
    let log = dir.join("gateway.log");
    let mut cmd = Command::new(gateway_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("HTTPS_PORT", "0")
        .env("WSS_PORT", "0")
        .env("SIP_PORT", "0")
        .env("MEDIA_THREADS", "1")
        // Below the kernel's ephemeral range and apart from signaling's test ranges.
        .env("MIN_RTP_PORT", "15000")
        .env("MAX_RTP_PORT", "15299")
        .env("STATE_DIR", dir.join("state"))
        // OUTBOUND_PROXY as well: before 055e066, OUTBOUND_ROUTE alone left the demo PBX
        // answering "echo" itself.
        .env("OUTBOUND_PROXY", format!("127.0.0.1:{sipp_port}"))
        .env("OUTBOUND_ROUTE", format!("127.0.0.1:{sipp_port}"))
        .env("RTPP_NODEBUG", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null());
    let p = Proc(Some(cmd.spawn().unwrap()));
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("webrtc-phone listening")) {
            let rest = &line[line.find("wss=").unwrap() + 4..];
            let addr = rest.split_whitespace().next().unwrap();
            let port = addr.rsplit(':').next().unwrap().parse().unwrap();
            return (p, port);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "gateway did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sipp_echo(dir: &Path, port: u16) -> Proc {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/uas-echo.xml");
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &free_udp_port().to_string()])
        .args(["-rtp_echo", "-aa", "-nostdin", "-trace_err", "-error_file"])
        .arg(dir.join("sipp.err"))
        .args(["-trace_msg", "-message_file"])
        .arg(dir.join("sipp.msg"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (package sip-tester) must be installed: scripts/deps.sh test");
    // Ready once its port is bound.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(Some(child))
}

#[test]
fn twenty_calls_for_ten_seconds_through_the_gateway_with_sipp_echo() {
    let dir = temp_dir();
    let sipp_port = free_udp_port();
    let _sipp = sipp_echo(&dir, sipp_port);
    let (gw, wss) = gateway(&dir, sipp_port);
    let gw_pid = gw.0.as_ref().unwrap().id();
    let json = dir.join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--wss", &format!("127.0.0.1:{wss}")])
        .args(["--target", "sip:echo@127.0.0.1", "-n", "20", "--rate", "20"])
        .args(["--hold", "10", "--max-run", "60", "--quiet"])
        .args(["--watch", &format!("gateway={gw_pid}")])
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(dir.join("report.html"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.stderr.take().unwrap().read_to_string(&mut out);
    assert!(status.success(), "loadgen failed: {out}");
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let s = &rep["summary"];
    assert_eq!(s["calls"], 20, "{out}");
    assert_eq!(s["ok"], 20, "{out}\n{:#}", s["failures"]);
    assert_eq!(s["failed"], 0, "{out}");
    for c in rep["calls"].as_array().unwrap() {
        let (sent, recv) = (c["sent"].as_u64().unwrap(), c["received"].as_u64().unwrap());
        // 10 s at 50 packets/s, each way (what comes back went through the echo).
        assert!(sent >= 450, "call {}: sent {sent}", c["idx"]);
        assert_eq!(
            recv,
            sent,
            "call {}: loss; kernel receive-buffer drops: gateway RTP ports {}, other loopback UDP {} ({out})",
            c["idx"],
            udp_drops(15000, 15299),
            udp_drops(1, 14999) + udp_drops(15300, 65535)
        );
        assert!(c["invite_to_200_ms"].as_f64().is_some(), "{c}");
        assert!(c["invite_to_media_ms"].as_f64().is_some(), "{c}");
    }
    assert_eq!(s["lost"], 0, "{out}");
    // The calls reached the SIP side (not a gateway-internal echo) and came back as plain RTP.
    let far = std::fs::read_to_string(dir.join("sipp.msg")).unwrap_or_default();
    let invites = far.matches("INVITE sip:").count();
    assert!(invites >= 20, "SIPp saw {invites} INVITEs:\n{far:.2000}");
    assert!(far.contains("RTP/AVP"), "{far:.2000}");
    assert!(s["rtt_ms"]["p50"].as_f64().is_some(), "{out}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // Self-contained: inline SVG, nothing fetched.
    assert!(html.contains("<svg"));
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("<script"));
    let _ = std::fs::remove_dir_all(&dir);
}
