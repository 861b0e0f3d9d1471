//! The signaling core fed arbitrary messages from a WebSocket and from the proxy never panics.
//! Input: messages separated by a 0xff byte, alternating between the two peers.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use signaling::b2bua::core::Peer;
use signaling::transport::ws::ConnName;

fuzz_target!(|data: &[u8]| {
    let mut core = common::core();
    let conn = ConnName("c1.invalid".into());
    core.handle_ws_opened(&conn, std::net::Ipv4Addr::LOCALHOST.into());
    let mut now = Instant::now();
    for (i, msg) in data.split(|b| *b == 0xff).enumerate() {
        let peer = if i % 2 == 0 { Peer::Ws(conn.clone()) } else { Peer::Udp("127.0.0.1:5090".parse().unwrap()) };
        core.handle_message(now, peer, msg);
        now += Duration::from_millis(100);
        core.handle_timeout(now);
        while core.poll_transmit().is_some() {}
        while core.poll_command().is_some() {}
        while core.poll_event().is_some() {}
    }
    core.handle_ws_closed(now, &conn);
});
