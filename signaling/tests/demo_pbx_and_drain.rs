//! The built-in demo PBX (no upstream), and SIGTERM with calls in progress.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes in real time"
)]

mod common;

use std::time::{Duration, Instant};

use common::peers::{free_udp_port, kamailio, sipp_echo, sipp_messages};
use common::sipua::{self, Browser as _};
use common::*;

#[tokio::test]
async fn demo_pbx_echo_call() {
    let dir = temp_dir("demo-echo");
    let gw = Gateway::start(command(&dir));
    let mut ua = sipua::connect(gw.https_port, "alice", "anything", "127.0.0.1").await;
    assert_eq!(
        ua.register(600).await.unwrap_or(0),
        200,
        "the demo PBX takes any password"
    );
    let mut d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200, "{}", gw.log_text());
    assert!(
        d.answer_sdp.contains("a=ice-lite") && d.answer_sdp.contains("a=fingerprint:sha-256"),
        "{}",
        d.answer_sdp
    );
    assert_eq!(ua.bye(&mut d).await.unwrap_or(0), 200);
}

#[tokio::test]
async fn demo_pbx_alice_calls_bob() {
    let dir = temp_dir("demo-a2b");
    let gw = Gateway::start(command(&dir));
    let mut alice = sipua::connect(gw.https_port, "alice", "alice", "127.0.0.1").await;
    let mut bob = sipua::connect(gw.https_port, "bob", "bob", "127.0.0.1").await;
    assert_eq!(alice.register(600).await.unwrap_or(0), 200);
    assert_eq!(bob.register(600).await.unwrap_or(0), 200);
    let d = alice.start_call("sip:bob@127.0.0.1").await;
    let inv = bob
        .answer_call(Duration::from_secs(10))
        .await
        .expect("bob's phone rings");
    let offer = String::from_utf8_lossy(&inv.body).into_owned();
    assert!(
        offer.contains("a=setup:actpass") && offer.contains("a=ice-lite"),
        "{offer}"
    );
    let mut d = alice.finish_call(d).await;
    assert_eq!(d.final_status, 200, "{}", gw.log_text());
    assert!(d.answer_sdp.contains("UDP/TLS/RTP/SAVPF"));
    assert_eq!(alice.bye(&mut d).await.unwrap_or(0), 200);
    assert!(
        bob.answer_request("BYE", Duration::from_secs(5))
            .await
            .ok()
            .flatten()
            .is_some(),
        "bob hears the hang-up"
    );
    let mut carol = sipua::connect(gw.https_port, "carol", "x", "127.0.0.1").await;
    let nobody = carol.call("sip:nobody@127.0.0.1").await;
    assert_eq!(nobody.final_status, 404);
}

#[tokio::test]
async fn sigterm_lets_calls_finish_and_refuses_new_ones() {
    let dir = temp_dir("drain");
    let (kport, sport) = (free_udp_port(), free_udp_port());
    let _k = kamailio(&dir, kport, sport, &[]);
    let _far = sipp_echo(&dir, sport);
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{kport}"))
        .env("DRAIN_TIMEOUT", "30");
    let mut gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let mut d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200);
    // SAFETY: the PID of the gateway this test started.
    unsafe { libc::kill(gw.pid(), libc::SIGTERM) };
    gw.wait_for_log("shutting down", Duration::from_secs(5));
    assert_eq!(https_get(gw.https_port, "/healthz", "").await.status, 503);
    let mut late = sipua::connect(gw.https_port, "bob", "bobPassword", "127.0.0.1").await;
    assert_eq!(
        late.call("sip:echo@127.0.0.1").await.final_status,
        503,
        "new calls are refused while draining"
    );
    // The call in progress still works, and ending it lets the process exit.
    assert_eq!(ua.hold(&mut d, "sendonly").await, 200);
    assert_eq!(ua.bye(&mut d).await.unwrap_or(0), 200);
    let st = gw.signal_and_wait(0, Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", gw.log_text());
}

#[tokio::test]
async fn drain_timeout_hangs_up_the_rest() {
    let dir = temp_dir("drain-timeout");
    let (kport, sport) = (free_udp_port(), free_udp_port());
    let _k = kamailio(&dir, kport, sport, &[]);
    let _far = sipp_echo(&dir, sport);
    let mut cmd = command(&dir.join("state"));
    cmd.env("OUTBOUND_PROXY", format!("127.0.0.1:{kport}"))
        .env("DRAIN_TIMEOUT", "1");
    let mut gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "alice", "alicePassword", "127.0.0.1").await;
    let d = ua.call("sip:echo@127.0.0.1").await;
    assert_eq!(d.final_status, 200);
    let t0 = Instant::now();
    let st = gw.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", gw.log_text());
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "waited for the drain time"
    );
    let far = sipp_messages(&dir, "uas");
    assert!(
        far.contains("BYE sip:") && far.contains("shutting down"),
        "{far}"
    );
    assert!(
        ua.answer_request("BYE", Duration::from_secs(2))
            .await
            .ok()
            .flatten()
            .is_some(),
        "the browser got a BYE too"
    );
}
