//! Start, restart and stop of the real binary.

#![allow(
    clippy::disallowed_methods,
    reason = "a test drives real sockets and processes and bounds its waits by the real clock"
)]

mod common;

use std::time::Duration;

use common::*;

fn fingerprint(line: &str) -> String {
    let i = line.find("cert_sha256=").unwrap() + "cert_sha256=".len();
    line[i..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn generated_certificate_is_reused_across_a_restart() {
    let dir = temp_dir("restart");
    let mut first = Gateway::start(command(&dir));
    let line1 = first.wait_for_log("webrtc-phone listening", Duration::from_secs(5));
    assert!(line1.contains("cert_generated=true"), "{line1}");
    let pem1 = std::fs::read(dir.join("tls/cert.pem")).unwrap();
    assert_eq!(
        first
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
            .code(),
        Some(0)
    );

    let mut second = Gateway::start(command(&dir));
    let line2 = second.wait_for_log("webrtc-phone listening", Duration::from_secs(5));
    assert!(line2.contains("cert_generated=false"), "{line2}");
    assert_eq!(fingerprint(&line1), fingerprint(&line2));
    assert_eq!(pem1, std::fs::read(dir.join("tls/cert.pem")).unwrap());
    // The certificate served is the one on disk.
    let served = tls_connect(second.https_port).await;
    let der = served.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let on_disk = openssl::x509::X509::from_pem(&pem1)
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(der, on_disk);
}

#[test]
fn sigterm_exits_zero() {
    let dir = temp_dir("sigterm");
    let mut gw = Gateway::start(command(&dir));
    let st = gw.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", gw.log_text());
    let log = gw.log_text();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("webrtc-phone stopped"), "{log}");
}

#[test]
fn sigint_exits_zero() {
    let dir = temp_dir("sigint");
    let mut gw = Gateway::start(command(&dir));
    assert_eq!(
        gw.signal_and_wait(libc::SIGINT, Duration::from_secs(10))
            .code(),
        Some(0)
    );
}

#[test]
fn demo_pbx_is_announced_once_and_not_with_an_upstream() {
    let dir = temp_dir("demo");
    let mut gw = Gateway::start(command(&dir));
    gw.wait_for_log("webrtc-phone listening", Duration::from_secs(5));
    let warns = gw
        .log_text()
        .lines()
        .filter(|l| l.contains("demo PBX"))
        .count();
    assert_eq!(warns, 1, "{}", gw.log_text());
    drop(gw);
    let mut cmd = command(&dir);
    cmd.env("OUTBOUND_PROXY", "127.0.0.1:5090");
    let mut gw = Gateway::start(cmd);
    gw.wait_for_log("webrtc-phone listening", Duration::from_secs(5));
    assert!(!gw.log_text().contains("demo PBX"), "{}", gw.log_text());
}

#[test]
fn nodebug_silences_debug_logging() {
    let dir = temp_dir("nodebug");
    let mut cmd = command(&dir);
    cmd.env("RTPP_LOG_LEVEL", "DBUG");
    let mut gw = Gateway::start(cmd);
    // A datagram to the SIP port is logged at debug level.
    let probe = |port: u16| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(b"OPTIONS sip:x SIP/2.0\r\n\r\n", ("127.0.0.1", port))
            .unwrap();
    };
    probe(gw.sip_port);
    gw.wait_for_log("DEBUG", Duration::from_secs(5));
    drop(gw);
    let mut cmd = command(&dir);
    cmd.env("RTPP_LOG_LEVEL", "DBUG").env("RTPP_NODEBUG", "1");
    let gw = Gateway::start(cmd);
    probe(gw.sip_port);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!gw.log_text().contains("DEBUG"), "{}", gw.log_text());
}

/// Test builds only (engine/test-hooks): the WebSocket message that makes the signaling core
/// task panic (signaling::app::TEST_PANIC_CORE).
const PANIC_CORE: &str = "webrtc-phone test hook: panic the signaling core";

#[tokio::test]
async fn a_dead_signaling_core_fails_health_and_exits_non_zero() {
    let dir = temp_dir("core-dies");
    let mut gw = Gateway::start(command(&dir));
    assert!(
        gw.log_text().contains("test-only fault hooks"),
        "the gateway binary lacks engine/test-hooks:\n{}",
        gw.log_text()
    );
    assert_eq!(try_https_status(gw.https_port, "/healthz").await, Some(200));
    let mut ua = sipua::connect(gw.https_port, "a", "x", "127.0.0.1").await;
    ua.send(PANIC_CORE).await.unwrap();
    // From now on /healthz must not say 200: 503, or nothing once the process is gone.
    let mut health = Vec::new();
    for _ in 0..20 {
        let s = try_https_status(gw.https_port, "/healthz").await;
        health.push(s);
        if s.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = gw.wait_exit(Duration::from_secs(5));
    let log = gw.log_text();
    assert!(
        health.iter().all(|s| *s == Some(503) || s.is_none()),
        "/healthz after the core died: {health:?}\n{log}"
    );
    let status = status.unwrap_or_else(|| panic!("still running with a dead core:\n{log}"));
    assert!(!status.success(), "exit status {status}:\n{log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("task=core"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
}
