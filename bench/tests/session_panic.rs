//! Fault test with the real binary: a session panics inside its reactor (the test-only trigger
//! of engine's `test-hooks` feature, which `cargo test --workspace` builds into the gateway).
//! That call ends on both sides with a Reason; every other call keeps its media, nothing lost;
//! the gateway keeps running and counts the panic.
//!
//! Needs `sipp` (scripts/deps.sh test) and the gateway binary built by `cargo test --workspace`
//! (or WEBRTC_PHONE_BIN pointing at a build with engine/test-hooks).

#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]

mod common;

use std::io::Read as _;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_udp_port, gateway, https_get, metric, sipp_echo, temp_dir, udp_drops};

const CALLS: usize = 4;
const HOLD_S: u64 = 8;

/// The plain RTP port the gateway offered SIPp in the first INVITE of the SIPp message log.
fn first_plain_port(sipp_msg: &str) -> Option<u16> {
    let invite = &sipp_msg[sipp_msg.find("INVITE sip:")?..];
    let m = &invite[invite.find("m=audio ")? + 8..];
    m.split_whitespace().next()?.parse().ok()
}

/// GET over HTTPS, bounded: the body.
fn https_body(port: u16, path: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(https_get(port, path))
        .map(|(_, body)| body)
        .unwrap_or_default()
}

#[test]
fn a_session_panic_ends_that_call_only() {
    let dir = temp_dir("session-panic");
    let sipp_port = free_udp_port();
    let _sipp = sipp_echo(&dir, sipp_port);
    let gw = gateway(&dir, sipp_port, (15600, 15699), &[]);
    assert!(
        gw.log_text().contains("test-only fault hooks"),
        "the gateway binary lacks engine/test-hooks: run through `cargo test --workspace`\n{}",
        gw.log_text()
    );
    let json = dir.join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--wss", &format!("127.0.0.1:{}", gw.wss)])
        .args(["--target", "sip:echo@127.0.0.1", "-n", &CALLS.to_string()])
        .args(["--rate", "20", "--hold", &HOLD_S.to_string()])
        .args(["--max-run", "60", "--quiet", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Once every call is up, make the first call's session panic: the trigger datagram goes
    // to its plain RTP port (any source; the reactor checks before the session's rules).
    let t0 = Instant::now();
    let port = loop {
        let msgs = std::fs::read_to_string(dir.join("sipp.msg")).unwrap_or_default();
        let metrics = https_body(gw.https, "/metrics");
        if metric(&metrics, "webrtc_phone_calls_active") == Some(CALLS as f64) {
            if let Some(p) = first_plain_port(&msgs) {
                break p;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "calls not up:\n{}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(2));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(engine::TEST_PANIC_PAYLOAD, ("127.0.0.1", port))
        .unwrap();

    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.stderr.take().unwrap().read_to_string(&mut out);
    let log = gw.log_text();
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap())
        .unwrap_or_else(|e| panic!("no report ({e}): {status:?} {out}\n{log}"));
    let calls = rep["calls"].as_array().unwrap();
    assert_eq!(calls.len(), CALLS, "{out}");

    // Exactly one call was cut short by the gateway, the others ran their whole hold with
    // every packet echoed back.
    let (cut, full): (Vec<_>, Vec<_>) = calls.iter().partition(|c| c["ok"] == false);
    assert_eq!(cut.len(), 1, "{:#?}\n{log}", rep["calls"]);
    assert!(
        cut[0]["failure"]
            .as_str()
            .is_some_and(|f| f.contains("hung up early")),
        "{}",
        cut[0]
    );
    assert!(
        cut[0]["media_s"].as_f64().unwrap() < (HOLD_S - 2) as f64,
        "{}",
        cut[0]
    );
    for c in &full {
        let (sent, recv) = (c["sent"].as_u64().unwrap(), c["received"].as_u64().unwrap());
        assert!(sent as f64 >= 50.0 * (HOLD_S as f64 - 1.0), "{c}");
        assert_eq!(
            recv,
            sent,
            "call {} lost packets; kernel drops on the gateway's ports: {}",
            c["idx"],
            udp_drops(15600, 15699)
        );
    }

    // Both sides of the broken call heard why; the gateway is still up and counted it.
    assert!(log.contains("media session failed"), "{log}");
    let far = std::fs::read_to_string(dir.join("sipp.msg")).unwrap_or_default();
    assert!(
        far.contains("Reason: SIP;cause=") && far.contains("media session failed"),
        "SIPp got a BYE with the reason: {far:.3000}"
    );
    let metrics = https_body(gw.https, "/metrics");
    let panics: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("webrtc_phone_media_session_panics"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(panics, 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "webrtc_phone_calls_active"), Some(0.0));
    let _ = std::fs::remove_dir_all(&dir);
}
