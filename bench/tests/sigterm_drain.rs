//! SIGTERM during 50 calls, with the real gateway binary, the load generator's browsers and a
//! SIPp echo far end: the calls in progress keep their media until their own hang-up (every
//! BYE answered 200), a new call gets 503 ("shutting down"), and the gateway exits 0 once the
//! last call has ended, without waiting for DRAIN_TIMEOUT.
//!
//! Needs `sipp` (scripts/deps.sh test) and the gateway binary, which `cargo test --workspace`
//! builds for signaling's own integration tests (or set WEBRTC_PHONE_BIN).

#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]

mod common;

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use bench::run::{Config, Report};
use engine::proto::dtls::DtlsIdentity;
use engine::proto::ice::IceCredentials;
use signaling::sip::msg::SipMsg;

use common::{free_udp_port, gateway, https_get, metric, sipp_echo, temp_dir, udp_drops};

const CALLS: usize = 50;
/// Media time of each call; the ramp (25 calls/s) staggers their hang-ups over 2 s.
const HOLD: Duration = Duration::from_secs(9);
const RATE: f64 = 25.0;
/// The gateway's DRAIN_TIMEOUT: far longer than the calls still need after the signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// This test's media ports: apart from loadgen_smoke's (15000-15299) and signaling's tests'
/// (20000-31999); 2 per call plus the shared WebRTC port.
const RTP_PORTS: (u16, u16) = (15300, 15499);
/// RTP packets per second per call (PCMU at 20 ms).
const PPS: f64 = 50.0;

/// What the gateway says about its calls.
#[derive(Debug, Default, PartialEq)]
struct GwCalls {
    /// Calls in its table (set up or being set up).
    active: f64,
    /// Calls answered (INVITE → 2xx observed).
    answered: f64,
    /// DTLS handshakes completed with the browsers.
    dtls: f64,
}

async fn gateway_calls(https: u16) -> anyhow::Result<GwCalls> {
    let (status, m) = https_get(https, "/metrics").await?;
    anyhow::ensure!(status == 200, "/metrics {status}: {m}");
    Ok(GwCalls {
        active: metric(&m, "webrtc_phone_calls_active").unwrap_or(-1.0),
        answered: metric(&m, "webrtc_phone_call_setup_seconds_count").unwrap_or(-1.0),
        dtls: metric(
            &m,
            "webrtc_phone_media_events_total{event=\"dtls_connected\"}",
        )
        .unwrap_or(0.0),
    })
}

/// A new browser call while draining, as raw SIP over a loadgen UA's WebSocket (to read the
/// whole response, not only its code); returns the final response.
async fn late_invite(wss: u16) -> SipMsg {
    let tls = bench::ua::tls_config().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], wss).into();
    let mut ua = bench::ua::Ua::connect_to(
        tls,
        addr,
        "/ws",
        bench::ua::ua_config("bob", "bobPassword", "127.0.0.1", "late".into()),
    )
    .await
    .expect("the WSS listener still accepts connections while draining");
    let identity = DtlsIdentity::generate(SystemTime::now()).unwrap();
    let ice = IceCredentials::random().unwrap();
    // A valid offer, so that a refusal cannot be about the SDP.
    let sdp = bench::sdp::chrome_offer(0x4c41_5445, 9, &ice, identity.fingerprint());
    let head = "Via: SIP/2.0/WSS late.invalid;branch=z9hG4bKlate1\r\nMax-Forwards: 70\r\n\
                To: <sip:echo@127.0.0.1>\r\nFrom: <sip:bob@127.0.0.1>;tag=late1\r\n\
                Call-ID: late-call-1\r\n";
    let invite = format!(
        "INVITE sip:echo@127.0.0.1 SIP/2.0\r\n{head}CSeq: 1 INVITE\r\n\
         Contact: <sip:late@late.invalid;transport=ws>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    ua.send(invite).await.unwrap();
    let last = ua
        .wait_for(Duration::from_secs(5), |m| {
            m.call_id() == "late-call-1" && m.status().is_some_and(|s| s >= 200)
        })
        .await
        .expect("the WebSocket stays up")
        .expect("a final response to the late INVITE within 5 s");
    // ACK the non-2xx (RFC 3261 §17.1.1.3) so that no transaction waits for it.
    let to = last.header("To").unwrap_or_default().to_string();
    let ack = format!(
        "ACK sip:echo@127.0.0.1 SIP/2.0\r\n{}To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        head.replace("To: <sip:echo@127.0.0.1>\r\n", "")
    );
    let _ = ua.send(ack).await;
    ua.close().await;
    last
}

fn loadgen_config(wss: u16) -> Config {
    Config {
        wss: ([127, 0, 0, 1], wss).into(),
        ws_path: "/ws".into(),
        target: "sip:echo@127.0.0.1".into(),
        domain: "127.0.0.1".into(),
        user: "alice".into(),
        pass: "alicePassword".into(),
        register: false,
        calls: CALLS,
        concurrency: CALLS,
        rate: RATE,
        hold: HOLD,
        setup_timeout: Duration::from_secs(10),
        max_run: Duration::from_secs(40),
        answer_users: Vec::new(),
        answer_for: Duration::ZERO,
        watch: Vec::new(),
        progress: false,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[test]
fn sigterm_during_fifty_calls_lets_them_finish_refuses_new_ones_and_exits_zero() {
    let t_test = Instant::now();
    let dir = temp_dir("sigterm-drain");
    let sipp_port = free_udp_port();
    let _sipp = sipp_echo(&dir, sipp_port);
    let drain = DRAIN_TIMEOUT.as_secs().to_string();
    let mut gw = gateway(
        &dir,
        sipp_port,
        RTP_PORTS,
        &[("DRAIN_TIMEOUT", drain.as_str())],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. 50 calls, and SIGTERM once the gateway has all of them answered with DTLS up.
    let run = rt.spawn(bench::run::run(loadgen_config(gw.wss)));
    let established = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            let c = gateway_calls(gw.https)
                .await
                .expect("the gateway's /metrics");
            if c.active == CALLS as f64 && c.answered == CALLS as f64 && c.dtls == CALLS as f64 {
                return c;
            }
            assert!(
                Instant::now() < deadline && !run.is_finished(),
                "the {CALLS} calls were not all established: {c:?}\n{}",
                gw.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // SAFETY: the PID of the gateway this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(gw.proc.pid(), libc::SIGTERM) }, 0);
    let t_sig = Instant::now();
    let sig_unix = unix_now();
    println!(
        "SIGTERM at {:.1} s into the test, the gateway holding {established:?}",
        t_test.elapsed().as_secs_f64()
    );

    // 2. Draining: /healthz 503, a new call 503 "shutting down", the 50 calls still there.
    let (late, healthz, during) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gw.log_text().contains("shutting down") {
            assert!(Instant::now() < deadline, "no drain log line");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let healthz = https_get(gw.https, "/healthz").await.expect("/healthz").0;
        let late = late_invite(gw.wss).await;
        let during = gateway_calls(gw.https)
            .await
            .expect("/metrics while draining");
        (late, healthz, during)
    });
    assert_eq!(healthz, 503, "/healthz while draining");
    assert_eq!(
        late.status(),
        Some(503),
        "a new call while draining: {}",
        String::from_utf8_lossy(&late.to_bytes())
    );
    let reason = late.header("Reason").unwrap_or_default().to_string();
    assert!(reason.contains("shutting down"), "Reason: {reason}");
    assert_eq!(
        during.active, CALLS as f64,
        "the late call was refused without touching the {CALLS} calls"
    );
    println!(
        "while draining ({:.1} s after SIGTERM): /healthz {healthz}, new call {} ({reason}), gateway {during:?}",
        t_sig.elapsed().as_secs_f64(),
        late.status().unwrap_or(0)
    );

    // 3. The calls run to their own hang-ups. Meanwhile the gateway's gauge is read every
    // 100 ms (for the figures: when the calls ended as the gateway saw it) and its exit noted.
    let mut run = run;
    let mut first_end: Option<Duration> = None;
    let mut all_ended: Option<Duration> = None;
    let mut exited: Option<(Duration, ExitStatus)> = None;
    let rep: Report = rt
        .block_on(async {
            let deadline = Instant::now() + Duration::from_secs(45);
            loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                assert!(
                    Instant::now() < deadline,
                    "the load run did not end within its 40 s limit"
                );
                if exited.is_some() {
                    continue;
                }
                if let Some(st) = gw.proc.try_exit() {
                    exited = Some((t_sig.elapsed(), st));
                    continue;
                }
                if let (None, Ok(c)) = (all_ended, gateway_calls(gw.https).await) {
                    if c.active < CALLS as f64 && first_end.is_none() {
                        first_end = Some(t_sig.elapsed());
                    }
                    if c.active == 0.0 {
                        all_ended = Some(t_sig.elapsed());
                    }
                }
            }
        })
        .expect("the load run's task")
        .expect("the load run");

    // 4. The gateway exits 0 by itself once the last call ended, not at DRAIN_TIMEOUT.
    let limit = (DRAIN_TIMEOUT + Duration::from_secs(5)).saturating_sub(t_sig.elapsed());
    if exited.is_none() {
        exited = gw.proc.wait_for_exit(limit).map(|st| (t_sig.elapsed(), st));
    }
    let log = gw.log_text();
    let (exit_after_sig, status) =
        exited.unwrap_or_else(|| panic!("the gateway still runs:\n{log}"));
    drop(rt);

    let s = &rep.summary;
    let sig_rel = sig_unix - rep.started_unix;
    // Samples are taken at `t` seconds after a start no earlier than `started_unix`, so a sample
    // with t > sig_rel was taken after the signal. In the seconds after it while all 50 calls
    // still had media and none had ended, every call carried media past the signal.
    let after: Vec<_> = rep.timeline.iter().filter(|x| x.t > sig_rel).collect();
    let all_on = after
        .iter()
        .filter(|x| x.active == CALLS as u64 && x.ok + x.failed == 0)
        .map(|x| x.t - sig_rel)
        .fold(0.0, f64::max);
    // Whole sampler seconds that began after the signal.
    let whole: Vec<_> = rep
        .timeline
        .windows(2)
        .filter(|w| w[0].t > sig_rel)
        .map(|w| &w[1])
        .collect();
    let sent_after: u64 = whole.iter().map(|x| x.sent).sum();
    let recv_after: u64 = whole.iter().map(|x| x.received).sum();
    let worst = rep.calls.iter().map(|c| c.lost).max().unwrap_or(0);
    let lossy = rep.calls.iter().filter(|c| c.lost > 0).count();
    let secs =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "calls {} ok {} failed {} | sent {} echoed {} lost {} ({:.3} %; {lossy} calls with loss, \
         at most {worst}) | kernel UDP drops: gateway RTP ports {}, other loopback {} | rtt p50 \
         {:.1} p99 {:.1} ms",
        s.calls,
        s.ok,
        s.failed,
        s.sent,
        s.received,
        s.lost,
        s.loss_pct,
        udp_drops(RTP_PORTS.0, RTP_PORTS.1),
        udp_drops(1, RTP_PORTS.0 - 1) + udp_drops(RTP_PORTS.1 + 1, 65535),
        s.rtt_ms.p50.unwrap_or(f64::NAN),
        s.rtt_ms.p99.unwrap_or(f64::NAN),
    );
    println!(
        "after SIGTERM: all {CALLS} calls had media for {all_on:.1} s; {sent_after} packets sent, \
         {recv_after} echoed in the whole seconds after it; gateway calls: first ended {}, \
         none left {} after SIGTERM; gateway exit {:?} {:.1} s after SIGTERM (DRAIN_TIMEOUT {} s) \
         | test {:.1} s",
        secs(first_end),
        secs(all_ended),
        status.code(),
        exit_after_sig.as_secs_f64(),
        DRAIN_TIMEOUT.as_secs(),
        t_test.elapsed().as_secs_f64()
    );
    // The gateway's own account, with its timestamps.
    let last_ended = log.lines().rfind(|l| l.contains("call ended"));
    for l in log
        .lines()
        .filter(|l| l.contains("shutting down") || l.contains("webrtc-phone stopped"))
        .chain(last_ended)
    {
        println!("  gateway: {l:.200}");
    }
    for x in &rep.timeline {
        println!(
            "  {:+5.1} s from SIGTERM{}: media calls {:2} ended {:2} | sent {:4} echoed {:4} | rtt p99 {:.1} ms",
            x.t - sig_rel,
            if x.t > sig_rel { " (after)" } else { "        " },
            x.active,
            x.ok + x.failed,
            x.sent,
            x.received,
            x.rtt_p99_ms.unwrap_or(f64::NAN)
        );
    }

    // (b) Every call: set up, media to its own scheduled hang-up, BYE answered 200 (a call
    // whose BYE got anything else, or that the gateway hung up, is not ok).
    assert_eq!(s.calls, CALLS);
    assert_eq!(
        (s.ok, s.failed),
        (CALLS, 0),
        "failures: {:?}\n{log}",
        s.failures
    );
    let min_sent = (HOLD.as_secs_f64() * PPS * 0.9) as u64;
    for c in &rep.calls {
        assert!(
            c.media_s >= HOLD.as_secs_f64(),
            "call {}: {:.1} s of media",
            c.idx,
            c.media_s
        );
        assert!(c.sent >= min_sent, "call {}: sent {}", c.idx, c.sent);
        // Loss ~0: at most 1 % per call (a busy 2-core machine drops the odd packet in a
        // kernel buffer; media stopping at the signal would lose most of the rest of the call).
        assert!(
            c.lost * 100 <= c.sent,
            "call {}: sent {} echoed {}; kernel drops: gateway RTP ports {}, other loopback UDP {}",
            c.idx,
            c.sent,
            c.received,
            udp_drops(RTP_PORTS.0, RTP_PORTS.1),
            udp_drops(1, RTP_PORTS.0 - 1) + udp_drops(RTP_PORTS.1 + 1, 65535)
        );
    }
    assert!(
        all_on > 0.0,
        "no sample after SIGTERM (at {sig_rel:.2} s) with all {CALLS} calls in media: {:#?}",
        rep.timeline
    );
    assert!(
        recv_after > 0 && recv_after * 100 >= sent_after * 99,
        "after SIGTERM: sent {sent_after}, echoed {recv_after}"
    );
    // Nobody hung up on the calls: neither the browsers (above) nor SIPp saw a BYE from the
    // gateway's drain; SIPp got the 50 browsers' BYEs.
    let far = std::fs::read_to_string(dir.join("sipp.msg")).unwrap_or_default();
    assert!(
        far.matches("BYE sip:").count() >= CALLS,
        "SIPp saw {} BYEs",
        far.matches("BYE sip:").count()
    );
    assert!(!far.contains("shutting down"), "the gateway hung up calls");

    // (c) Exit 0 once the last call ended, before DRAIN_TIMEOUT would have cut them off.
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        exit_after_sig < DRAIN_TIMEOUT,
        "exited {exit_after_sig:?} after SIGTERM: it waited for DRAIN_TIMEOUT\n{log}"
    );
    assert!(
        !log.contains("drain time over") && log.contains("webrtc-phone stopped"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
