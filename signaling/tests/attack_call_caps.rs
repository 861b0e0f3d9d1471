//! Attack (issue 11, point 6): exhausting the media ports with calls. The demo PBX (echo
//! calls) with small caps: calls per WebSocket connection and per client address get 486,
//! calls past the total 503, each counted; another client's call still works. A call nobody
//! answers ends after NO_ANSWER_TIMEOUT: 408 to the caller, CANCEL to the callee.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive a real process in real time"
)]

mod common;

use std::time::{Duration, Instant};

use common::attack::*;
use common::sipua::{self, Browser as _};
use common::*;
use signaling::sip::msg::Method;

fn demo_gateway(tag: &str, envs: &[(&str, &str)]) -> Gateway {
    let dir = temp_dir(tag);
    let mut cmd = command(&dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Gateway::start(cmd)
}

async fn refused(gw: &Gateway, reason: &str) -> Option<f64> {
    metric(
        &metrics(gw).await,
        &format!("webrtc_phone_calls_refused_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn calls_per_websocket_connection_are_capped() {
    let gw = demo_gateway("atk-caps-ws", &[("MAX_CALLS_PER_WS", "2")]);
    let mut hog = sipua::connect(gw.https_port, "hog", "x", "127.0.0.1").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(hog.call("sip:echo@127.0.0.1").await.final_status);
    }
    assert_eq!(
        statuses,
        [200, 200, 486, 486],
        "four echo calls on one connection with MAX_CALLS_PER_WS=2"
    );
    let mut other = sipua::connect(gw.https_port, "other", "x", "127.0.0.1").await;
    let d = other.call("sip:echo@127.0.0.1").await;
    assert_eq!(
        d.final_status,
        200,
        "another connection's call:\n{}",
        log_tail(&gw, 40)
    );
    assert_eq!(refused(&gw, "per_connection").await, Some(2.0));
}

#[tokio::test]
async fn calls_per_client_address_are_capped() {
    let gw = demo_gateway("atk-caps-ip", &[("MAX_CALLS_PER_IP", "2")]);
    let mut a = sipua::connect(gw.https_port, "a", "x", "127.0.0.1").await;
    let mut b = sipua::connect(gw.https_port, "b", "x", "127.0.0.1").await;
    let s1 = a.call("sip:echo@127.0.0.1").await.final_status;
    let s2 = b.call("sip:echo@127.0.0.1").await.final_status;
    let s3 = b.call("sip:echo@127.0.0.1").await.final_status;
    assert_eq!(
        [s1, s2, s3],
        [200, 200, 486],
        "three echo calls from 127.0.0.1 over two connections with MAX_CALLS_PER_IP=2"
    );
    let mut elsewhere =
        sipua::connect_from("127.0.0.2", gw.https_port, "c", "x", "127.0.0.1").await;
    let d = elsewhere.call("sip:echo@127.0.0.1").await;
    assert_eq!(
        d.final_status,
        200,
        "a call from another address (127.0.0.2):\n{}",
        log_tail(&gw, 40)
    );
    assert_eq!(refused(&gw, "per_address").await, Some(1.0));
}

#[tokio::test]
async fn calls_past_the_total_get_503() {
    let gw = demo_gateway("atk-caps-total", &[("MAX_CALLS", "2")]);
    let mut statuses = Vec::new();
    let mut uas = Vec::new();
    let mut dialogs = Vec::new();
    let mut retry_after = None;
    for i in 0..3 {
        let mut ua = sipua::connect(gw.https_port, &format!("u{i}"), "x", "127.0.0.1").await;
        let d = ua.start_call("sip:echo@127.0.0.1").await;
        let r = ua
            .final_response(&d.call_id, "INVITE", Duration::from_secs(10))
            .await
            .ok()
            .flatten();
        statuses.push(r.as_ref().and_then(|r| r.status()).unwrap_or(0));
        if let Some(r) = r {
            if r.status() == Some(503) {
                retry_after = r.header("Retry-After").map(str::to_string);
            }
            // Back to the inbox: finish_call takes it from there and ACKs it.
            ua.inbox.push(r);
        }
        let d = ua.finish_call(d).await;
        uas.push(ua);
        dialogs.push(d);
    }
    assert_eq!(
        statuses,
        [200, 200, 503],
        "three echo calls from three connections with MAX_CALLS=2"
    );
    assert!(retry_after.is_some(), "the 503 carries Retry-After");
    assert_eq!(refused(&gw, "total").await, Some(1.0));
    // A call that ends gives its slot back (once the media engine has released it: a few
    // tries, 100 ms apart).
    assert_eq!(uas[0].bye(&mut dialogs[0]).await.unwrap_or(0), 200);
    let mut later = Vec::new();
    for _ in 0..10 {
        let s = uas[2].call("sip:echo@127.0.0.1").await.final_status;
        later.push(s);
        if s == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        later.last(),
        Some(&200),
        "calls once another ended: {later:?}\n{}",
        log_tail(&gw, 40)
    );
}

#[tokio::test]
async fn a_call_nobody_answers_ends_after_the_no_answer_timeout() {
    let gw = demo_gateway("atk-no-answer", &[("NO_ANSWER_TIMEOUT", "2")]);
    let mut bob = sipua::connect(gw.https_port, "bob", "x", "127.0.0.1").await;
    assert_eq!(bob.register(600).await.unwrap_or(0), 200);
    let mut alice = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    let t0 = Instant::now();
    let d = alice.start_call("sip:bob@127.0.0.1").await;
    // Bob's phone rings and nobody picks up.
    let inv = bob
        .wait_for(Duration::from_secs(5), |m| {
            m.method() == Some(&Method::Invite)
        })
        .await
        .ok()
        .flatten()
        .expect("bob's phone rings");
    let ringing = inv.response(180, "Ringing", Some("b0b0b0b0b0b0b0b0"));
    bob.send(&String::from_utf8(ringing.to_bytes()).unwrap())
        .await
        .unwrap();
    let fin = alice
        .final_response(&d.call_id, "INVITE", Duration::from_secs(5))
        .await
        .ok()
        .flatten();
    let waited = t0.elapsed();
    let cancel = bob
        .wait_for(Duration::from_secs(1), |m| {
            m.method() == Some(&Method::Cancel)
        })
        .await
        .ok()
        .flatten();
    assert!(
        fin.as_ref().is_some_and(|r| r.status() == Some(408))
            && waited <= Duration::from_secs(4)
            && cancel.is_some(),
        "NO_ANSWER_TIMEOUT=2, callee ringing: the caller's final response after {waited:?}: {:?}; \
         the callee got a CANCEL: {}",
        fin.as_ref().and_then(|r| r.status()),
        cancel.is_some()
    );
}
