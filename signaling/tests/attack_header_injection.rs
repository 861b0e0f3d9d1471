//! Attack (issue 11, point 8, the parser): a browser's INVITE whose User-Agent (copied to the
//! SIP side) holds a backslash followed by a bare CR, LF or NUL, to smuggle a header past the
//! gateway to SIP peers that split lines differently. Each must be answered 400 and never
//! relayed.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive a real process in real time"
)]

mod common;

use std::time::Duration;

use common::attack::*;
use common::sipua::{self, chromium_offer};
use common::*;

#[tokio::test]
async fn backslash_then_cr_lf_or_nul_in_a_header_value_gets_400() {
    let mut far = Udp::bind("127.0.0.1").await;
    let dir = temp_dir("atk-hdr-inject");
    let mut cmd = command(&dir);
    cmd.env("OUTBOUND_ROUTE", format!("127.0.0.1:{}", far.port()));
    let gw = Gateway::start(cmd);
    let mut ua = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    let mut outcomes = Vec::new();
    for (name, byte) in [("CR", "\r"), ("LF", "\n"), ("NUL", "\0")] {
        let mut d = ua.new_dialog("sip:echo@127.0.0.1");
        let text = ua.invite_text(&mut d, None, &chromium_offer()).replace(
            "User-Agent: SIP.js/0.21.1\r\n",
            &format!("User-Agent: SIP.js/0.21.1 \\{byte}X-Injected: evil\r\n"),
        );
        assert!(text.contains("X-Injected"), "the fixture has a User-Agent");
        ua.send(&text).await.unwrap();
        let r = ua
            .final_response(&d.call_id, "INVITE", Duration::from_secs(2))
            .await
            .ok()
            .flatten();
        outcomes.push((name, r.and_then(|r| r.status())));
    }
    let relayed = far.collect(Duration::from_millis(500)).await;
    // One entry per relayed INVITE (retransmissions folded by Call-ID): its User-Agent line.
    let mut invites: Vec<(String, String)> = Vec::new();
    for (_, b) in relayed
        .iter()
        .filter(|(_, b)| first_line(b).starts_with("INVITE "))
    {
        let text = String::from_utf8_lossy(b);
        let line = |name: &str| {
            text.split("\r\n")
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        let cid = line("Call-ID");
        if !invites.iter().any(|(c, _)| *c == cid) {
            invites.push((cid, line("User-Agent")));
        }
    }
    let invites: Vec<&String> = invites.iter().map(|(_, ua)| ua).collect();
    let m = metrics(&gw).await;
    let count = |action: &str| {
        metric(
            &m,
            &format!("webrtc_phone_sip_malformed_total{{transport=\"ws\",action=\"{action}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let (rejected, dropped) = (count("rejected"), count("dropped"));
    assert!(
        outcomes.iter().all(|(_, s)| *s == Some(400)) && invites.is_empty(),
        "final responses to the browser: {outcomes:?} (want 400 each); \
         the SIP side received {} INVITE(s), header lines as relayed: {invites:?}",
        invites.len()
    );
    assert_eq!(
        (rejected, dropped),
        (3.0, 0.0),
        "the three counted as malformed and rejected"
    );
}
