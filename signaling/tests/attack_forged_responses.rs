//! Attack (issue 11, point 1): answering a browser's call or REGISTER for the far end. An
//! attacker on 127.0.0.66, handed the INVITE's or REGISTER's identifiers (as the far end saw
//! them), sends a forged `200 OK`: the gateway must take responses only from the address the
//! request went to, and the identifiers it makes must be long and unpredictable.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive a real process in real time"
)]

mod common;

use std::time::Duration;

use common::attack::*;
use common::sipua::{self, Browser as _};
use common::*;
use signaling::sip::msg::{Method, SipMsg};

const FAR_TAG: &str = "f4e0c2d9a1b37765";
const FORGED_TAG: &str = "a77ac4e5d0f1e2b3";

fn gateway(tag: &str, envs: &[(&str, String)]) -> Gateway {
    let dir = temp_dir(tag);
    let mut cmd = command(&dir);
    cmd.env("RTPP_LOG_LEVEL", "DBUG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Gateway::start(cmd)
}

fn body(m: &SipMsg) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

#[tokio::test]
async fn a_forged_200_does_not_answer_a_browser_call() {
    let mut far = Udp::bind("127.0.0.1").await;
    let mut atk = Udp::bind(ATTACKER_IP).await;
    let gw = gateway(
        "atk-forged-200",
        &[("OUTBOUND_ROUTE", format!("127.0.0.1:{}", far.port()))],
    );
    let mut ua = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    let d = ua.start_call("sip:echo@127.0.0.1").await;
    let cid = d.call_id.clone();
    let (_, inv) = far
        .wait_for(Duration::from_secs(5), |m| {
            m.method() == Some(&Method::Invite)
        })
        .await
        .unwrap_or_else(|| panic!("no INVITE at the far end:\n{}", log_tail(&gw, 80)));
    let far_contact = format!("<sip:echo@{}>", far.addr);
    far.send_msg(gw.sip_port, &response(&inv, 180, FAR_TAG, &far_contact, ""))
        .await;
    assert!(
        ua.wait_for(Duration::from_secs(5), |m| m.call_id() == cid
            && m.status() == Some(180))
            .await
            .ok()
            .flatten()
            .is_some(),
        "the far end's 180 reaches the browser:\n{}",
        log_tail(&gw, 80)
    );

    // The attacker answers for the far end, with its own media address, three times.
    let forged = response(
        &inv,
        200,
        FORGED_TAG,
        &format!("<sip:echo@{}>", atk.addr),
        &plain_sdp(ATTACKER_IP, 40000),
    );
    for _ in 0..3 {
        atk.send_msg(gw.sip_port, &forged).await;
    }
    let hijacked = ua
        .wait_for(Duration::from_secs(2), |m| {
            m.call_id() == cid && m.status().is_some_and(|s| s >= 200)
        })
        .await
        .ok()
        .flatten();
    let atk_got = atk.collect(Duration::from_millis(300)).await;
    if let Some(r) = &hijacked {
        // The gateway acknowledges what it took: an ACK carrying the attacker's To-tag.
        let far_got = far.collect(Duration::from_millis(300)).await;
        let acks_forged = far_got.iter().any(|(_, b)| {
            first_line(b).starts_with("ACK ") && String::from_utf8_lossy(b).contains(FORGED_TAG)
        });
        panic!(
            "the browser got {} in answer to its call after the attacker's forged 200 (the SIP              leg sent an ACK with the attacker's To-tag: {acks_forged}); the browser's answer              SDP has {:?}; the attacker got {}",
            first_line(&r.to_bytes()),
            body(r).lines().find(|l| l.starts_with("m=audio")),
            describe(&atk_got)
        );
    }
    assert!(
        atk_got.is_empty(),
        "the attacker got {}",
        describe(&atk_got)
    );

    // The real far end answers: that 200 reaches the browser and the call works.
    far.send_msg(
        gw.sip_port,
        &response(
            &inv,
            200,
            FAR_TAG,
            &far_contact,
            &plain_sdp("127.0.0.1", 40002),
        ),
    )
    .await;
    let mut d = ua.finish_call(d).await;
    assert_eq!(
        d.final_status,
        200,
        "the far end's 200 reaches the browser:\n{}",
        log_tail(&gw, 80)
    );
    assert!(
        far.wait_for(Duration::from_secs(3), |m| m.method() == Some(&Method::Ack))
            .await
            .is_some(),
        "the far end gets the ACK:\n{}",
        log_tail(&gw, 80)
    );
    let m = metrics(&gw).await;
    let dropped = metric(
        &m,
        "webrtc_phone_sip_dropped_total{reason=\"response_source\"}",
    );
    assert!(
        dropped.is_some_and(|n| n >= 1.0),
        "forged responses counted as dropped (response_source): {dropped:?}"
    );
    let (status, bye) = tokio::join!(ua.bye(&mut d), async {
        let (_, bye) = far
            .wait_for(Duration::from_secs(5), |m| m.method() == Some(&Method::Bye))
            .await?;
        far.send_msg(gw.sip_port, &response(&bye, 200, FAR_TAG, "", ""))
            .await;
        Some(bye)
    });
    assert!(bye.is_some(), "the browser's BYE reaches the far end");
    assert_eq!(status.unwrap_or(0), 200, "{}", log_tail(&gw, 80));
    let after = atk.collect(Duration::from_millis(200)).await;
    assert!(after.is_empty(), "the attacker got {}", describe(&after));
}

#[tokio::test]
async fn a_forged_200_does_not_answer_a_browsers_register() {
    let mut proxy = Udp::bind("127.0.0.1").await;
    let mut atk = Udp::bind(ATTACKER_IP).await;
    let gw = gateway(
        "atk-forged-reg",
        &[("OUTBOUND_PROXY", format!("127.0.0.1:{}", proxy.port()))],
    );
    let mut ua = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    let cid = "reg-attack-1";
    ua.send(&format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS a1.invalid;branch=z9hG4bKreg1\r\n\
         Max-Forwards: 70\r\nTo: <sip:alice@127.0.0.1>\r\nFrom: <sip:alice@127.0.0.1>;tag=r1\r\n\
         Call-ID: {cid}\r\nCSeq: 1 REGISTER\r\nContact: <sip:a1@a1.invalid;transport=ws>;expires=600\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n"
    ))
    .await.unwrap();
    let (_, fwd) = proxy
        .wait_for(Duration::from_secs(5), |m| {
            m.method() == Some(&Method::Register)
        })
        .await
        .unwrap_or_else(|| panic!("no REGISTER at the proxy:\n{}", log_tail(&gw, 80)));
    let contact = fwd.header("Contact").unwrap_or_default().to_string();
    let forged = response(&fwd, 200, FORGED_TAG, &contact, "");
    for _ in 0..3 {
        atk.send_msg(gw.sip_port, &forged).await;
    }
    let hijacked = ua
        .wait_for(Duration::from_secs(2), |m| {
            m.call_id() == cid && m.status().is_some_and(|s| s >= 200)
        })
        .await
        .ok()
        .flatten();
    let atk_got = atk.collect(Duration::from_millis(300)).await;
    if let Some(r) = &hijacked {
        panic!(
            "the browser got the attacker's {} (To: {:?}, Contact: {:?}); the attacker got {}",
            first_line(&r.to_bytes()),
            r.header("To"),
            r.header("Contact"),
            describe(&atk_got)
        );
    }
    assert!(
        atk_got.is_empty(),
        "the attacker got {}",
        describe(&atk_got)
    );

    // The proxy's own answer reaches the browser.
    proxy
        .send_msg(gw.sip_port, &response(&fwd, 200, FAR_TAG, &contact, ""))
        .await;
    let r = ua
        .wait_for(Duration::from_secs(3), |m| {
            m.call_id() == cid && m.status().is_some_and(|s| s >= 200)
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "the proxy's 200 reaches the browser:\n{}",
                log_tail(&gw, 80)
            )
        });
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        r.to_hdr()
            .and_then(|t| t.tag().map(str::to_string))
            .as_deref(),
        Some(FAR_TAG),
        "the browser's 200 is the proxy's"
    );
    let m = metrics(&gw).await;
    let dropped = metric(
        &m,
        "webrtc_phone_sip_dropped_total{reason=\"response_source\"}",
    );
    assert!(
        dropped.is_some_and(|n| n >= 1.0),
        "forged responses counted as dropped (response_source): {dropped:?}"
    );
}

#[tokio::test]
async fn generated_branches_tags_and_call_ids_are_long_and_unrelated() {
    let mut far = Udp::bind("127.0.0.1").await;
    let gw = gateway(
        "atk-ids",
        &[("OUTBOUND_ROUTE", format!("127.0.0.1:{}", far.port()))],
    );
    let mut ua = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    let mut seen: Vec<(&str, String)> = Vec::new();
    let mut a_call_ids = Vec::new();
    for _ in 0..2 {
        let d = ua.start_call("sip:echo@127.0.0.1").await;
        let cid = d.call_id.clone();
        let (_, inv) = far
            .wait_for(Duration::from_secs(5), |m| {
                m.method() == Some(&Method::Invite) && !seen.iter().any(|(_, v)| v == m.call_id())
            })
            .await
            .unwrap_or_else(|| panic!("no INVITE at the far end:\n{}", log_tail(&gw, 80)));
        far.send_msg(gw.sip_port, &response(&inv, 180, FAR_TAG, "", ""))
            .await;
        let ringing = ua
            .wait_for(Duration::from_secs(5), |m| {
                m.call_id() == cid && m.status() == Some(180)
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no 180 at the browser:\n{}", log_tail(&gw, 80)));
        far.send_msg(gw.sip_port, &response(&inv, 486, FAR_TAG, "", ""))
            .await;
        let d = ua.finish_call(d).await;
        assert_eq!(d.final_status, 486, "{}", log_tail(&gw, 80));
        let branch = inv.top_via().and_then(|v| v.branch().map(str::to_string));
        seen.push(("B-leg Via branch", branch.unwrap_or_default()));
        let from_tag = inv.from_hdr().and_then(|f| f.tag().map(str::to_string));
        seen.push(("B-leg From tag", from_tag.unwrap_or_default()));
        seen.push(("B-leg Call-ID", inv.call_id().to_string()));
        let to_tag = ringing.to_hdr().and_then(|t| t.tag().map(str::to_string));
        seen.push(("A-leg To tag", to_tag.unwrap_or_default()));
        a_call_ids.push(cid);
    }
    let listing = seen
        .iter()
        .map(|(k, v)| format!("  {k}: {v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut bad = Vec::new();
    let mut values = Vec::new();
    for (what, v) in &seen {
        let hex = v.strip_prefix("z9hG4bK").unwrap_or(v);
        if !is_hex(hex, 16) {
            bad.push(format!("{what} {v:?} is not >= 16 hex digits"));
        }
        if a_call_ids.iter().any(|a| v.contains(a.as_str())) {
            bad.push(format!("{what} {v:?} contains the browser's Call-ID"));
        }
        values.push(hex.to_string());
    }
    if let Some((a, b)) = related_pair(&values) {
        bad.push(format!(
            "{a:?} and {b:?} share a fixed part or are close as numbers"
        ));
    }
    assert!(
        bad.is_empty(),
        "{}\nidentifiers the gateway generated:\n{listing}",
        bad.join("\n")
    );
}
