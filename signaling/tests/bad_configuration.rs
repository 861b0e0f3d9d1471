//! Bad configuration stops start-up before anything is served: a non-zero exit and one line on
//! stderr that names the setting.

#![allow(
    clippy::disallowed_methods,
    reason = "a test drives real sockets and processes and bounds its waits by the real clock"
)]

mod common;

use std::net::{TcpListener, UdpSocket};

use common::*;

/// Runs the binary with `env` and checks it fails naming `setting`.
fn fails_naming(tag: &str, env: &[(&str, &str)], setting: &str) {
    let dir = temp_dir(tag);
    let mut cmd = command(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, stderr) = run_to_exit(cmd);
    assert_eq!(status.code(), Some(2), "{tag}: {status} {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{tag}: stderr must be one line: {stderr:?}");
    assert!(
        lines[0].contains(setting),
        "{tag}: '{}' does not name {setting}",
        lines[0]
    );
}

#[test]
fn min_rtp_port_above_max() {
    fails_naming(
        "inverted",
        &[("MIN_RTP_PORT", "34000"), ("MAX_RTP_PORT", "32000")],
        "MIN_RTP_PORT",
    );
}

#[test]
fn rtp_range_too_small_for_one_session() {
    fails_naming(
        "small",
        &[("MIN_RTP_PORT", "40000"), ("MAX_RTP_PORT", "40002")],
        "MAX_RTP_PORT",
    );
    fails_naming(
        "small-per-thread",
        &[
            ("MIN_RTP_PORT", "40001"),
            ("MAX_RTP_PORT", "40005"),
            ("MEDIA_THREADS", "2"),
        ],
        "MAX_RTP_PORT",
    );
}

#[test]
fn unreadable_certificate() {
    let dir = temp_dir("unreadable-cert");
    let key = dir.join("key.pem");
    std::fs::write(&key, "not a key").unwrap();
    let missing = dir.join("missing.pem");
    fails_naming(
        "unreadable-cert-run",
        &[
            ("TLS_CERT", missing.to_str().unwrap()),
            ("TLS_KEY", key.to_str().unwrap()),
        ],
        "TLS_CERT",
    );
    let garbage = dir.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    fails_naming(
        "garbage-cert-run",
        &[
            ("TLS_CERT", garbage.to_str().unwrap()),
            ("TLS_KEY", key.to_str().unwrap()),
        ],
        "TLS_CERT",
    );
}

#[test]
fn mismatched_certificate_and_key() {
    let dir = temp_dir("mismatch");
    let gen = |name: &str| {
        let cert = dir.join(format!("{name}-cert.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        let st = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=localhost", "-days", "2", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl command is needed for this test");
        assert!(st.success());
        (cert, key)
    };
    let (cert_a, key_a) = gen("a");
    let (_cert_b, key_b) = gen("b");
    fails_naming(
        "mismatch-run",
        &[
            ("TLS_CERT", cert_a.to_str().unwrap()),
            ("TLS_KEY", key_b.to_str().unwrap()),
        ],
        "TLS_KEY",
    );
    fails_naming(
        "only-cert",
        &[("TLS_CERT", cert_a.to_str().unwrap())],
        "TLS_KEY",
    );
    // The matching pair starts and serves that certificate.
    let mut cmd = command(&dir.join("state"));
    cmd.env("TLS_CERT", &cert_a).env("TLS_KEY", &key_a);
    let mut gw = Gateway::start(cmd);
    let line = gw.wait_for_log("webrtc-phone listening", std::time::Duration::from_secs(5));
    assert!(
        line.contains(&format!("cert={}", cert_a.display())),
        "{line}"
    );
    assert!(line.contains("cert_generated=false"));
}

#[test]
fn unresolvable_outbound_proxy() {
    fails_naming(
        "proxy",
        &[("OUTBOUND_PROXY", "no-such-host.invalid:5060")],
        "OUTBOUND_PROXY",
    );
    fails_naming(
        "proxy-port",
        &[("OUTBOUND_PROXY", "127.0.0.1:99999")],
        "OUTBOUND_PROXY",
    );
}

#[test]
fn unparsable_route() {
    fails_naming(
        "route",
        &[("OUTBOUND_ROUTE", "127.0.0.1;forward_on_fail")],
        "OUTBOUND_ROUTE",
    );
    fails_naming(
        "route-host",
        &[("OUTBOUND_ROUTE", "no-such-host.invalid")],
        "OUTBOUND_ROUTE",
    );
}

#[test]
fn unparsable_pts_and_accept_ips() {
    fails_naming(
        "pts",
        &[("ALLOWED_PTS", "[PCMU/8000],[opus]")],
        "ALLOWED_PTS",
    );
    fails_naming(
        "accept",
        &[("ACCEPT_IPS", "[[WSS]],not-an-ip")],
        "ACCEPT_IPS",
    );
}

#[test]
fn bad_log_level_and_numbers() {
    fails_naming("level", &[("RTPP_LOG_LEVEL", "LOUD")], "RTPP_LOG_LEVEL");
    fails_naming("nodebug", &[("RTPP_NODEBUG", "maybe")], "RTPP_NODEBUG");
    fails_naming("https-nan", &[("HTTPS_PORT", "https")], "HTTPS_PORT");
    fails_naming("threads", &[("MEDIA_THREADS", "0")], "MEDIA_THREADS");
    fails_naming("latching", &[("RTP_LATCHING", "anyone")], "RTP_LATCHING");
}

#[test]
fn ports_already_in_use() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = tcp.local_addr().unwrap().port().to_string();
    fails_naming("https-busy", &[("HTTPS_PORT", &busy)], "HTTPS_PORT");
    fails_naming("wss-busy", &[("WSS_PORT", &busy)], "WSS_PORT");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy = udp.local_addr().unwrap().port().to_string();
    fails_naming("sip-busy", &[("SIP_PORT", &busy)], "SIP_PORT");
}
