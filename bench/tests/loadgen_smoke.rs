//! Functional smoke of the load generator: 20 calls held 10 s through the real gateway to a
//! SIPp echo UAS. Checks behaviour, not speed: every call set up, media both ways, no loss.
//!
//! Needs `sipp` (scripts/deps.sh test) and the gateway binary, which `cargo test --workspace`
//! builds for signaling's own integration tests (or set WEBRTC_PHONE_BIN).

#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_udp_port, gateway, sipp_echo, temp_dir, udp_drops};

#[test]
fn twenty_calls_for_ten_seconds_through_the_gateway_with_sipp_echo() {
    let dir = temp_dir("loadgen-smoke");
    let sipp_port = free_udp_port();
    let _sipp = sipp_echo(&dir, sipp_port);
    let gw = gateway(&dir, sipp_port, (15000, 15299), &[]);
    let (wss, gw_pid) = (gw.wss, gw.pid());
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
