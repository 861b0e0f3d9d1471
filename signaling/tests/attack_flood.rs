//! Attack (issue 11, point 5): stalling signaling from one address. 127.0.0.66 floods SIP/UDP
//! at 4,000 requests/s (OPTIONS, INVITEs with fresh Call-IDs and branches, REGISTERs) for
//! several seconds. Meanwhile a browser sets up echo calls over its WebSocket, a SIP peer the
//! gateway trusts (127.0.0.1, in ACCEPT_IPS) sends OPTIONS, and /healthz is asked: every call
//! sets up in under 1 s, every OPTIONS of the peer is answered, /healthz answers in under
//! 500 ms, and the flooder gets no more than its small refusal budget back.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive a real process in real time"
)]

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::attack::*;
use common::sipua::{self, Browser as _};
use common::*;

/// Requests per second the flooder aims at, and for how long.
const RATE: u64 = 4_000;
const FLOOD: Duration = Duration::from_secs(12);

fn flood_request(i: u64, src: std::net::SocketAddr) -> String {
    let (method, ruri, extra) = match i % 3 {
        0 => ("OPTIONS", "sip:gw@127.0.0.1", ""),
        1 => (
            "INVITE",
            "sip:100@127.0.0.1",
            "Contact: <sip:x@127.0.0.66>\r\n",
        ),
        _ => (
            "REGISTER",
            "sip:127.0.0.1",
            "Contact: <sip:x@127.0.0.66>\r\n",
        ),
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bKfl{i}\r\nMax-Forwards: 70\r\n\
         From: <sip:scan@127.0.0.66>;tag=f{i}\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: flood-{i}@127.0.0.66\r\n\
         CSeq: 1 {method}\r\n{extra}User-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends at `RATE` for `FLOOD` from the attacker's address, in 1 ms slots; returns what it
/// sent and what came back.
fn flooder(port: u16, stop: Arc<AtomicBool>) -> (u64, usize, Duration) {
    let sock = UdpSocket::bind((ATTACKER_IP, 0)).unwrap();
    sock.set_nonblocking(true).unwrap();
    let src = sock.local_addr().unwrap();
    let per_ms = RATE / 1000;
    let t0 = Instant::now();
    let (mut sent, mut answers) = (0u64, 0usize);
    let mut buf = [0u8; 4096];
    for slot in 0..FLOOD.as_millis() as u64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        for _ in 0..per_ms {
            if sock
                .send_to(flood_request(sent, src).as_bytes(), ("127.0.0.1", port))
                .is_ok()
            {
                sent += 1;
            }
        }
        while sock.recv_from(&mut buf).is_ok() {
            answers += 1;
        }
        let next = t0 + Duration::from_millis(slot + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let elapsed = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    while sock.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    (sent, answers, elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_leaves_calls_health_and_peers_served() {
    let dir = temp_dir("atk-flood");
    let mut cmd = command(&dir);
    cmd.env("ACCEPT_IPS", "[[WSS]],127.0.0.1");
    let gw = Gateway::start(cmd);
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (port, stop) = (gw.sip_port, stop.clone());
        std::thread::spawn(move || flooder(port, stop))
    };
    // Long enough for state to pile up if the flood left any.
    tokio::time::sleep(Duration::from_millis(4000)).await;

    // A trusted SIP peer's OPTIONS, with each call.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut peer_lost = Vec::new();
    let mut ua = sipua::connect(gw.https_port, "alice", "x", "127.0.0.1").await;
    let mut setups = Vec::new();
    let mut health = Vec::new();
    for i in 0..5u32 {
        let t = Instant::now();
        let mut d = ua.call("sip:echo@127.0.0.1").await;
        setups.push((d.final_status, t.elapsed()));
        if d.final_status == 200 {
            ua.bye(&mut d).await.unwrap_or(0);
        }
        let t = Instant::now();
        let r = https_get(gw.https_port, "/healthz", "").await;
        health.push((r.status, t.elapsed()));
        let opt = format!(
            "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {peer_addr};branch=z9hG4bKpeer{i}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:peer@127.0.0.1>;tag=p{i}\r\nTo: <sip:gw@127.0.0.1>\r\n\
             Call-ID: peer-{i}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: kamailio (5.6.3)\r\nContent-Length: 0\r\n\r\n"
        );
        peer.send_to(opt.as_bytes(), ("127.0.0.1", gw.sip_port))
            .unwrap();
        let mut buf = [0u8; 4096];
        if !matches!(peer.recv_from(&mut buf), Ok((n, _)) if first_line(&buf[..n]).contains("200"))
        {
            peer_lost.push(i);
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let flood_running = !flood.is_finished();
    stop.store(true, Ordering::Relaxed);
    let (sent, answers, elapsed) = flood.join().unwrap();
    let rate = sent as f64 / elapsed.as_secs_f64();
    eprintln!(
        "flood: {sent} requests in {:.1} s ({rate:.0}/s), {answers} answers; setups {setups:?}; healthz {health:?}",
        elapsed.as_secs_f64()
    );
    assert!(
        answers <= 15,
        "the flooder got {answers} answers for {sent} requests"
    );
    assert!(
        peer_lost.is_empty(),
        "the peer's OPTIONS {peer_lost:?} got no 200"
    );
    for (status, took) in &setups {
        assert_eq!(*status, 200, "a call during the flood: {setups:?}");
        assert!(*took < Duration::from_secs(1), "call set-up took {took:?}");
    }
    for (status, took) in &health {
        assert_eq!(*status, 200);
        assert!(*took < Duration::from_millis(500), "/healthz took {took:?}");
    }
    assert!(flood_running, "the flood lasted the whole measurement");
    assert!(
        rate > 0.75 * RATE as f64,
        "the flood reached only {rate:.0}/s"
    );
    let m = metrics(&gw).await;
    let shed = metric(
        &m,
        "webrtc_phone_sip_dropped_total{reason=\"rate_limited\"}",
    )
    .unwrap_or(0.0);
    assert!(
        shed > 0.9 * sent as f64 - 2.0 * 100.0 * elapsed.as_secs_f64(),
        "only {shed} of {sent} flood datagrams were shed before parsing"
    );
}
