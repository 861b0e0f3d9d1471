//! Functional smoke of the flood generator against the real gateway: it keeps the offered rate,
//! `--rate max` is not paced, the gateway's answers are counted, /healthz and the gateway's
//! CPU/RSS are sampled. Checks the tool, not the gateway's figures.
//!
//! Needs the gateway binary, which `cargo test --workspace` builds (or WEBRTC_PHONE_BIN).

mod common;

use std::process::Command;

use common::{free_udp_port, gateway, temp_dir};

const RATE: f64 = 400.0;

fn flood(gw: &common::Gw, rate: &str, secs: &str, json: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_flood"))
        .args(["--target", &format!("127.0.0.1:{}", gw.sip)])
        .args(["--rate", rate, "--duration", secs])
        .args(["--healthz", &format!("127.0.0.1:{}", gw.https)])
        .args(["--watch", &gw.pid().to_string()])
        .arg("--json")
        .arg(json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

#[test]
fn the_flood_keeps_its_rate_and_counts_the_answers() {
    let dir = temp_dir("flood-smoke");
    let mut gw = gateway(&dir, free_udp_port(), (15760, 15769), &[]);

    let r = flood(&gw, &RATE.to_string(), "1.5", &dir.join("paced.json"));
    let (sent, secs) = (
        r["sent"].as_f64().unwrap(),
        r["duration_s"].as_f64().unwrap(),
    );
    let achieved = r["achieved_per_s"].as_f64().unwrap();
    assert!((sent / secs - achieved).abs() < 1.0, "{r}");
    assert!(
        (achieved - RATE).abs() < RATE * 0.2,
        "paced at {RATE}/s: {r}"
    );
    assert_eq!(r["send_errors"], 0, "{r}");
    // Whatever the gateway's policy for a stranger, it answers a first OPTIONS.
    assert!(r["answers"].as_u64().unwrap() >= 1, "{r}");
    let statuses = r["by_status"].as_array().unwrap();
    assert!(
        statuses.iter().all(|s| s[0].as_u64().unwrap() >= 100),
        "only SIP responses come back: {r}"
    );
    let h = &r["healthz"];
    assert!(h["samples"].as_u64().unwrap() >= 5, "every 100 ms: {r}");
    assert_eq!(h["failures"], 0, "{r}");
    assert!(h["p50_ms"].as_f64().unwrap() > 0.0, "{r}");
    let p = &r["process"];
    assert_eq!(p["pid"].as_u64().unwrap(), u64::from(gw.pid()), "{r}");
    assert!(p["rss_max_kib"].as_u64().unwrap() >= p["rss_start_kib"].as_u64().unwrap());
    assert!(p["rss_start_kib"].as_u64().unwrap() > 0, "{r}");

    let m = flood(&gw, "max", "0.5", &dir.join("max.json"));
    assert!(
        m["achieved_per_s"].as_f64().unwrap() > RATE * 2.0,
        "--rate max is not paced: {m}"
    );
    assert!(
        gw.proc.try_exit().is_none(),
        "the gateway survived:\n{}",
        gw.log_text()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
