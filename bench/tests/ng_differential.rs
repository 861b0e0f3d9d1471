//! Differential test of the media node's ng interface against the real rtpengine (issue 16).
//!
//! Debian's `rtpengine` (package `rtpengine-daemon`, 10.5, userspace: `table = -1`, loopback,
//! its own temporary config, ng port and port range) and our node (`webrtc-phone --mode media`)
//! get the same sequences of ng requests, shaped as Kamailio 5.6's `rtpengine` module writes them
//! from `bench/compare/edge.cfg`'s `FLAGS_TO_SIP` / `FLAGS_TO_WEBRTC` (read from that file, so the
//! test follows the config): `supports: [load limit]`, `received-from`, `replace`, `ICE`,
//! `transport-protocol`, `rtcp-mux`, `SDES` lists, keys in the module's order (the daemons must
//! not care). The sequences:
//!
//! * ping;
//! * WebRTC → SIP: SIP.js/Chrome's offer (`signaling/tests/fixtures/sipjs/invite.txt`) and
//!   Firefox's (`signaling/tests/fixtures/firefox/invite.txt`) with `FLAGS_TO_SIP`, the INVITE
//!   retransmitted (same offer, same from-tag), SIPp's answer with `FLAGS_TO_WEBRTC`, the answer
//!   again (183 then 200), a re-INVITE (offer with both tags), a datagram retransmitted with the
//!   same cookie, query, delete, delete again (`ok` + warning), delete with `fatal` (error),
//!   query of the deleted call (error);
//! * SIP → WebRTC: SIPp's offer (`bench/sipp/uac.xml`) with `FLAGS_TO_WEBRTC`, repeated and
//!   retransmitted, Chrome's answer (PCMU/PCMA, `a=setup:active`) with `FLAGS_TO_SIP`, a
//!   re-INVITE, hold (`a=sendonly`, answered `a=recvonly`) and resume, query, delete;
//! * SIP → WebRTC with an answer listing codecs the offer lacked (`bench::sdp::chrome_answer`);
//! * terse SIP offers: a static payload type without `a=rtpmap` and no direction attribute; a
//!   session-level `a=sendonly`;
//! * plain → plain (RTP/AVP both sides, the NAT-relay use);
//! * an unknown `key=value` token and an unknown flag (ignored, never an error);
//! * an answer for an unknown call and an offer without SDP (errors), a delete of a call never
//!   created (`ok` + warning).
//!
//! **What is compared** between the two engines' replies (every step):
//! * the reply's shape: `result`, presence of `error-reason`, `warning` and `sdp`; for `ping`
//!   the whole dictionary; for `query` the `totals` dictionary (`RTP`/`RTCP` × `packets`/`bytes`/
//!   `errors`, integers), the part Kamailio's `$rtpstat` reads. Not compared: the per-tag stream
//!   tables and timestamps of query/delete replies (the issue asks for `totals` only), and the
//!   text of `error-reason`/`warning` (printed; Kamailio acts only on the capacity strings,
//!   which this test does not provoke).
//! * the SDP's structure, per media section in order: media kind, whether the port is zero,
//!   profile, format list (payload types in order), the explicit direction attribute, presence
//!   of ICE credentials (`ice-ufrag`, `ice-pwd`, at either level) and the set of candidate kinds
//!   (component, transport, type), presence of `a=fingerprint` (either level), the class of
//!   `a=setup` (`actpass` / a definite role `active`|`passive` / `holdconn` / absent: rtpengine
//!   takes `active` by default, a passive engine answers `passive`, both are a role), `a=rtcp-mux`,
//!   `a=rtcp` presence, the `a=rtpmap` map (payload type → encoding name case-folded, clock rate,
//!   channels with a written-out `/1` dropped: rtpengine normalises `G722/8000/1` to
//!   `G722/8000`), the `a=fmtp` map (payload type → parameters), and the set of attribute kinds
//!   (names) at session level and in each media section.
//!
//!   Values that are the engine's own are *not* compared between engines: ports, addresses, ICE
//!   credentials and candidate foundations/priorities, fingerprints, `o=` session id/version,
//!   attribute order. Instead each engine's SDP is checked against itself: `o=` and every
//!   effective `c=` carry the engine's address (127.0.0.1: `replace-origin`), every non-zero
//!   `m=` port, numeric `a=rtcp` port and candidate port lies in that engine's port range,
//!   every candidate address is the engine's, no `a=crypto` (`SDES-off`), CRLF line endings.
//!   Re-offers and repeated answers must keep that engine's ports, ICE ufrag/pwd and
//!   fingerprint; a datagram repeated with the same cookie must get a byte-identical reply.
//!
//! **Explicit exceptions** (everything else that differs is reported):
//! * `a=ice-lite` (session level): our node is an ICE-lite agent (NODE-INTERFACE.md), rtpengine
//!   a full one; the kind is left out of the session-level kind sets.
//! * `a=end-of-candidates` in a media section that carries no ICE credentials in rtpengine's SDP:
//!   rtpengine 10.5 passes Firefox's line through after `ICE=remove`; stripping it with the rest
//!   of ICE is what the notes (§3) ask of us.
//!
//! Media: WebRTC ↔ SIP calls on each engine, the browser offering and the SIP side offering,
//! with a real WebRTC leg (`engine::proto::client`, the load generator's: ICE controlling,
//! DTLS-SRTP in the role the SDP gives it) on the browser side and a plain UDP socket on the
//! SIP side; `MEDIA_PACKETS` RTP packets each way must all arrive (counted and checked by
//! sequence number and payload), and the engine's `query` must count them in
//! `totals.RTP.packets`. rtpengine (full ICE, `a=setup:active` in its answers) interoperates with
//! that client as it is; when rtpengine offers it is the controlling agent too, and the
//! client's highest tie-breaker makes it yield (RFC 8445 §7.3.1.1).
//!
//! `rtpengine_matches_itself` validates the harness: two rtpengines must compare equal.
//! Needs `rtpengine` (scripts/deps.sh test) and, for `node_matches_rtpengine`, the gateway
//! binary (`cargo build -p signaling`, or `WEBRTC_PHONE_BIN`).

#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use engine::proto::client::{ClientLeg, Received};
use engine::proto::dtls::{DtlsIdentity, Fingerprint};
use engine::proto::ice::IceCredentials;
use ng::bencode::{Dict, Value};

use common::{gateway_bin, temp_dir, Proc};

/// Media port ranges, one per engine process: apart from each other and from the other bench
/// tests' (15000-16799), below the kernel's ephemeral range.
const RTPENGINE_PORTS: (u16, u16) = (16800, 16999);
const NODE_PORTS: (u16, u16) = (17000, 17199);
const SELF_A_PORTS: (u16, u16) = (17200, 17399);
const SELF_B_PORTS: (u16, u16) = (17400, 17599);
/// RTP packets sent each way in the media check.
const MEDIA_PACKETS: u16 = 50;
/// The engines' address (and the address Kamailio's `received-from` names).
const LOOPBACK: &str = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// Engines

/// One ng server under test: its process, its ng address, its port range.
struct Engine {
    name: String,
    ng: UdpSocket,
    ports: (u16, u16),
    log: PathBuf,
    seq: u32,
    _proc: Proc,
}

/// A reply: the datagram after the cookie, and its dictionary.
struct Reply {
    raw: Vec<u8>,
    dict: Dict,
}

impl Reply {
    fn str(&self, key: &str) -> Option<String> {
        self.dict
            .get(key.as_bytes())
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    fn result(&self) -> String {
        self.str("result").unwrap_or_else(|| "<none>".into())
    }
    fn sdp(&self) -> Option<String> {
        self.str("sdp")
    }
    fn has(&self, key: &str) -> bool {
        self.dict.contains_key(key.as_bytes())
    }
    /// `result` plus which of `error-reason` / `warning` / `sdp` are present.
    fn shape(&self) -> String {
        let mut s = format!("result={}", self.result());
        for k in ["error-reason", "warning", "sdp"] {
            if self.has(k) {
                let _ = write!(s, " +{k}");
            }
        }
        s
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

fn ng_client(ng: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    // Kamailio connect()s its socket to the node: a reply from another address is dropped.
    s.connect(ng).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

impl Engine {
    /// Sends `cookie SP body` and waits (bounded) for the reply with that cookie.
    fn exchange(&mut self, cookie: &str, body: &[u8]) -> Option<Reply> {
        let mut dgram = Vec::with_capacity(cookie.len() + 1 + body.len());
        dgram.extend_from_slice(cookie.as_bytes());
        dgram.push(b' ');
        dgram.extend_from_slice(body);
        self.ng.send(&dgram).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let n = match self.ng.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => panic!("{}: ng recv: {e}", self.name),
            };
            let got = &buf[..n];
            let Some(rest) = got
                .strip_prefix(cookie.as_bytes())
                .and_then(|r| r.strip_prefix(b" "))
            else {
                continue; // a stale reply to an earlier cookie
            };
            let v = ng::bencode::decode(rest).unwrap_or_else(|e| {
                panic!(
                    "{}: reply is not bencode ({e:?}): {}",
                    self.name,
                    String::from_utf8_lossy(rest)
                )
            });
            let dict = v
                .as_dict()
                .unwrap_or_else(|| panic!("{}: reply is not a dictionary", self.name))
                .clone();
            return Some(Reply {
                raw: rest.to_vec(),
                dict,
            });
        }
        None
    }

    fn next_cookie(&mut self) -> String {
        self.seq += 1;
        // Kamailio 5.6: "<server_id>_<pid>_<seq>".
        format!("0_{}_{}", std::process::id(), self.seq)
    }

    /// Sends `req` under a fresh cookie; panics without a reply. Returns the cookie too.
    fn call(&mut self, req: &[u8]) -> (String, Reply) {
        let cookie = self.next_cookie();
        match self.exchange(&cookie, req) {
            Some(r) => (cookie, r),
            None => panic!(
                "{}: no reply in 5 s to {}\nlog tail:\n{}",
                self.name,
                String::from_utf8_lossy(req),
                self.log_tail()
            ),
        }
    }

    fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Pings until `pong` (the engine is up) or 15 s.
    fn wait_ready(&mut self, proc: &mut Proc) {
        let t0 = Instant::now();
        loop {
            let cookie = self.next_cookie();
            if let Some(r) = self.exchange_quick(&cookie) {
                assert_eq!(
                    r.result(),
                    "pong",
                    "{}: ping answered {}",
                    self.name,
                    r.text()
                );
                return;
            }
            if let Some(st) = proc.try_exit() {
                panic!("{} exited at start ({st}):\n{}", self.name, self.log_tail());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "{} did not answer ping in 15 s:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// One ping, one short wait (the engine may not be listening yet).
    fn exchange_quick(&mut self, cookie: &str) -> Option<Reply> {
        let _ = self
            .ng
            .send(format!("{cookie} d7:command4:pinge").as_bytes());
        let mut buf = vec![0u8; 4096];
        let n = self.ng.recv(&mut buf).ok()?;
        let rest = buf[..n]
            .strip_prefix(cookie.as_bytes())?
            .strip_prefix(b" ")?;
        let v = ng::bencode::decode(rest).ok()?;
        Some(Reply {
            raw: rest.to_vec(),
            dict: v.as_dict()?.clone(),
        })
    }
}

fn free_port() -> u16 {
    common::free_udp_port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Debian's rtpengine on loopback with a config of this test's own.
fn rtpengine(dir: &Path, name: &str, ports: (u16, u16)) -> Engine {
    let ng_port = free_port();
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[rtpengine]\n\
             table = -1\n\
             interface = {LOOPBACK}\n\
             port-min = {}\n\
             port-max = {}\n\
             listen-ng = {LOOPBACK}:{ng_port}\n\
             num-threads = 1\n\
             media-num-threads = 1\n\
             timeout = 60\n\
             delete-delay = 0\n\
             log-level = 6\n",
            ports.0, ports.1
        ),
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("rtpengine")
        .arg(format!("--config-file={}", conf.display()))
        .arg(format!(
            "--pidfile={}",
            dir.join(format!("{name}.pid")).display()
        ))
        .args(["--foreground", "--log-stderr"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start rtpengine ({e}): install Debian's rtpengine-daemon \
                 (`apt-get install --no-install-recommends rtpengine-daemon`, or \
                 scripts/deps.sh test)"
            )
        });
    let mut proc = Proc(Some(child));
    let mut e = Engine {
        name: name.to_string(),
        ng: ng_client((std::net::Ipv4Addr::LOCALHOST, ng_port).into()),
        ports,
        log,
        seq: 0,
        _proc: Proc(None),
    };
    e.wait_ready(&mut proc);
    e._proc = proc;
    e
}

/// Starts our media node (`webrtc-phone --mode media`) on loopback.
fn our_node(dir: &Path, ports: (u16, u16)) -> Engine {
    let ng_port = free_port();
    let metrics_port = free_tcp_port();
    let log = dir.join("node.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(gateway_bin())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["--mode", "media"])
        .args(["--ng-listen", &format!("{LOOPBACK}:{ng_port}")])
        .args(["--metrics-address", &format!("{LOOPBACK}:{metrics_port}")])
        .args(["--bind-address", LOOPBACK])
        .args(["--min-rtp-port", &ports.0.to_string()])
        .args(["--max-rtp-port", &ports.1.to_string()])
        .args(["--media-threads", "1"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut proc = Proc(Some(child));
    let mut e = Engine {
        name: "our node".into(),
        ng: ng_client((std::net::Ipv4Addr::LOCALHOST, ng_port).into()),
        ports,
        log,
        seq: 0,
        _proc: Proc(None),
    };
    e.wait_ready(&mut proc);
    e._proc = proc;
    e
}

// ---------------------------------------------------------------------------------------------
// Requests as Kamailio 5.6's rtpengine module writes them

/// A bencode value whose dictionaries keep insertion order (Kamailio's encoder does).
enum B {
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(String, B)>),
}

fn s(v: impl AsRef<[u8]>) -> B {
    B::S(v.as_ref().to_vec())
}

fn encode(b: &B, out: &mut Vec<u8>) {
    match b {
        B::S(v) => {
            out.extend_from_slice(format!("{}:", v.len()).as_bytes());
            out.extend_from_slice(v);
        }
        B::L(l) => {
            out.push(b'l');
            l.iter().for_each(|x| encode(x, out));
            out.push(b'e');
        }
        B::D(d) => {
            out.push(b'd');
            for (k, v) in d {
                encode(&s(k), out);
                encode(v, out);
            }
            out.push(b'e');
        }
    }
}

/// The flag strings of `bench/compare/edge.cfg` (`#!define NAME "..."`).
fn edge_flags(name: &str) -> String {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare/edge.cfg");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let prefix = format!("#!define {name} ");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{} defines no {name}", cfg.display()));
    line.trim().trim_matches('"').to_string()
}

/// One ng command as `rtpengine_offer(flags)` / `rtpengine_answer(flags)` /
/// `rtpengine_delete(flags)` / `rtpengine_query()` send it: Kamailio 5.6's flag parsing
/// (`parse_flags`) and key order (`rtpp_function_call`).
struct Kam<'a> {
    op: &'a str,
    call_id: &'a str,
    from_tag: &'a str,
    to_tag: Option<&'a str>,
    sdp: Option<&'a [u8]>,
    flags: &'a str,
}

impl Kam<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut dict: Vec<(String, B)> = vec![("supports".into(), B::L(vec![s("load limit")]))];
        if let Some(sdp) = self.sdp {
            dict.push(("sdp".into(), s(sdp)));
        }
        let (mut flags, mut replace, mut rtcp_mux, mut sdes, mut direction) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut transport = None;
        let mut to_tag_flag = false;
        for tok in self.flags.split_whitespace() {
            if let Some(v) = tok.strip_prefix("replace-") {
                replace.push(s(v));
            } else if let Some(v) = tok.strip_prefix("rtcp-mux-") {
                rtcp_mux.push(s(v));
            } else if let Some(v) = tok.strip_prefix("SDES-") {
                sdes.push(s(v));
            } else if let Some(v) = tok.strip_prefix("direction=") {
                direction.push(s(v));
            } else if matches!(
                tok,
                "RTP/AVP"
                    | "RTP/SAVP"
                    | "RTP/AVPF"
                    | "RTP/SAVPF"
                    | "UDP/TLS/RTP/SAVP"
                    | "UDP/TLS/RTP/SAVPF"
            ) {
                transport = Some(tok);
            } else if tok == "to-tag" {
                to_tag_flag = true;
            } else if let Some((k, v)) = tok.split_once('=') {
                // Any other key=value token: a string entry of that name, in token order.
                dict.push((k.into(), s(v)));
            } else {
                flags.push(s(tok));
            }
        }
        for (k, l) in [
            ("direction", direction),
            ("flags", flags),
            ("replace", replace),
        ] {
            if !l.is_empty() {
                dict.push((k.into(), B::L(l)));
            }
        }
        if let Some(t) = transport {
            dict.push(("transport-protocol".into(), s(t)));
        }
        for (k, l) in [("rtcp-mux", rtcp_mux), ("SDES", sdes)] {
            if !l.is_empty() {
                dict.push((k.into(), B::L(l)));
            }
        }
        dict.push(("received-from".into(), B::L(vec![s("IP4"), s(LOOPBACK)])));
        dict.push(("call-id".into(), s(self.call_id)));
        dict.push(("from-tag".into(), s(self.from_tag)));
        // delete sends the to-tag only when the script says `to-tag`.
        if let Some(t) = self.to_tag.filter(|_| self.op != "delete" || to_tag_flag) {
            dict.push(("to-tag".into(), s(t)));
        }
        dict.push(("command".into(), s(self.op)));
        let mut out = Vec::new();
        encode(&B::D(dict), &mut out);
        out
    }
}

/// One call as the Kamailio side knows it: Call-ID and the offerer's tag.
struct Call {
    id: String,
    from_tag: &'static str,
}

impl Call {
    fn req<'a>(
        &'a self,
        op: &'a str,
        to_tag: Option<&'a str>,
        sdp: Option<&'a [u8]>,
        flags: &'a str,
    ) -> Kam<'a> {
        Kam {
            op,
            call_id: &self.id,
            from_tag: self.from_tag,
            to_tag,
            sdp,
            flags,
        }
    }
}

fn body_of(fixture: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(fixture);
    let text = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let at = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{}: no body", p.display()));
    text[at + 4..].to_vec()
}

/// SIPp's offer (`bench/sipp/uac.xml`) and answer (`uas-echo.xml`), filled in.
fn sipp_offer(port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=sipp-uac 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=sendrecv\r\n"
    )
    .into_bytes()
}

fn sipp_answer(port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=sipp-uas 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    .into_bytes()
}

/// `str::replace` on SDP bytes (the fixtures are ASCII).
trait ReplaceStr {
    fn replace_str(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceStr for Vec<u8> {
    fn replace_str(&self, from: &str, to: &str) -> Vec<u8> {
        let s = std::str::from_utf8(self).unwrap();
        assert!(s.contains(from), "{from:?} not in {s}");
        s.replace(from, to).into_bytes()
    }
}

/// Chrome's answer to `offer` (a plain SIP offer): the offer's formats that Chrome has
/// (PCMU/PCMA here), its ICE and DTLS (`a=setup:active`), one host candidate, rtcp-mux, and
/// `direction`.
fn chrome_answer_to(offer: &[u8], direction: &str) -> Vec<u8> {
    let offer = String::from_utf8_lossy(offer);
    let fmts: Vec<&str> = offer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .unwrap()
        .split_whitespace()
        .skip(2)
        .filter(|f| ["0", "8"].contains(f))
        .collect();
    let ice = browser_ice();
    let mut s = format!(
        "v=0\r\no=- 4611731400430051337 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=msid-semantic: WMS stream\r\n\
         m=audio 45421 UDP/TLS/RTP/SAVPF {}\r\nc=IN IP4 127.0.0.1\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=candidate:274159896 1 udp 2122260223 127.0.0.1 45421 typ host generation 0 network-id 1\r\n\
         a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=ice-options:trickle\r\na=fingerprint:{}\r\n\
         a=setup:active\r\n{direction}\r\na=msid:stream track\r\na=rtcp-mux\r\n",
        fmts.join(" "),
        ice.ufrag,
        ice.pwd,
        browser_fingerprint().to_sdp(),
    );
    for f in &fmts {
        let name = if *f == "0" { "PCMU" } else { "PCMA" };
        let _ = write!(s, "a=rtpmap:{f} {name}/8000\r\n");
    }
    s.push_str("a=ssrc:7 cname:stream\r\n");
    s.into_bytes()
}

fn browser_fingerprint() -> Fingerprint {
    Fingerprint::parse(
        "sha-256 9C:2C:E7:4E:C1:75:AF:F9:74:0B:55:5F:93:73:20:16:AB:03:EC:18:52:D3:8D:22:77:16:D8:F2:73:73:17:D1",
    )
    .unwrap()
}

fn browser_ice() -> IceCredentials {
    IceCredentials {
        ufrag: "rTFx".into(),
        pwd: "eewzYLa06UPpH2vmbrqexlmr".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// SDP structure

#[derive(Debug, Default, Clone)]
struct MediaShape {
    kind: String,
    port: u16,
    proto: String,
    fmts: Vec<String>,
    conn: Option<String>,
    direction: Option<String>,
    kinds: BTreeSet<String>,
    ufrag: Option<String>,
    pwd: Option<String>,
    candidates: BTreeSet<(String, String, String)>,
    candidate_addrs: Vec<(String, u16)>,
    fingerprint: Option<String>,
    setup: Option<String>,
    rtcp_mux: bool,
    rtcp: Option<String>,
    crypto: usize,
    rtpmap: BTreeMap<String, String>,
    fmtp: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone)]
struct Shape {
    origin_addr: String,
    session_kinds: BTreeSet<String>,
    media: Vec<MediaShape>,
    /// Lines not ending in CRLF, not `x=...`, or out of place.
    malformed: Vec<String>,
}

fn attr_name(value: &str) -> &str {
    value.split(':').next().unwrap_or(value)
}

fn attr_value<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.strip_prefix(name)?.strip_prefix(':')
}

const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// `name/rate[/channels]` with the name case-folded and a `/1` channel count dropped.
fn norm_rtpmap(v: &str) -> String {
    let mut parts: Vec<String> = v.trim().split('/').map(str::to_string).collect();
    if let Some(n) = parts.first_mut() {
        *n = n.to_ascii_lowercase();
    }
    if parts.len() == 3 && parts[2] == "1" {
        parts.pop();
    }
    parts.join("/")
}

fn shape(sdp: &str) -> Shape {
    let mut sh = Shape::default();
    if !sdp.ends_with("\r\n") {
        sh.malformed.push("does not end with CRLF".into());
    }
    let mut session: Vec<(char, String)> = Vec::new();
    let mut media: Vec<Vec<(char, String)>> = Vec::new();
    for raw in sdp.split("\r\n") {
        if raw.is_empty() {
            continue;
        }
        let b = raw.as_bytes();
        if raw.contains('\n') || raw.contains('\r') || b.len() < 2 || b[1] != b'=' {
            sh.malformed.push(format!("line {raw:?}"));
            continue;
        }
        let (t, v) = (b[0] as char, raw[2..].to_string());
        if t == 'm' {
            media.push(vec![(t, v)]);
        } else if let Some(m) = media.last_mut() {
            m.push((t, v));
        } else {
            session.push((t, v));
        }
    }
    if session.first().map(|(t, v)| (*t, v.as_str())) != Some(('v', "0")) {
        sh.malformed.push("first line is not v=0".into());
    }
    let sess_attrs: Vec<&str> = session
        .iter()
        .filter(|(t, _)| *t == 'a')
        .map(|(_, v)| v.as_str())
        .collect();
    let sess_conn = session
        .iter()
        .find(|(t, _)| *t == 'c')
        .and_then(|(_, v)| v.split_whitespace().nth(2).map(str::to_string));
    sh.origin_addr = session
        .iter()
        .find(|(t, _)| *t == 'o')
        .and_then(|(_, v)| v.split_whitespace().nth(5).map(str::to_string))
        .unwrap_or_default();
    sh.session_kinds = sess_attrs
        .iter()
        .map(|a| attr_name(a).to_string())
        .collect();
    let sess_get = |name: &str| sess_attrs.iter().find_map(|a| attr_value(a, name));
    for m in &media {
        let mline: Vec<&str> = m[0].1.split_whitespace().collect();
        let attrs: Vec<&str> = m
            .iter()
            .filter(|(t, _)| *t == 'a')
            .map(|(_, v)| v.as_str())
            .collect();
        let get = |name: &str| {
            attrs
                .iter()
                .find_map(|a| attr_value(a, name))
                .or_else(|| sess_get(name))
                .map(str::to_string)
        };
        let mut ms = MediaShape {
            kind: mline.first().unwrap_or(&"").to_string(),
            port: mline.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
            proto: mline.get(2).unwrap_or(&"").to_string(),
            fmts: mline.iter().skip(3).map(|s| s.to_string()).collect(),
            conn: m
                .iter()
                .find(|(t, _)| *t == 'c')
                .and_then(|(_, v)| v.split_whitespace().nth(2).map(str::to_string))
                .or_else(|| sess_conn.clone()),
            direction: attrs
                .iter()
                .find(|a| DIRECTIONS.contains(a))
                .map(|a| a.to_string()),
            kinds: attrs.iter().map(|a| attr_name(a).to_string()).collect(),
            ufrag: get("ice-ufrag"),
            pwd: get("ice-pwd"),
            fingerprint: get("fingerprint"),
            setup: get("setup"),
            rtcp_mux: attrs.contains(&"rtcp-mux"),
            rtcp: attrs
                .iter()
                .find_map(|a| attr_value(a, "rtcp"))
                .map(str::to_string),
            crypto: attrs
                .iter()
                .chain(sess_attrs.iter())
                .filter(|a| attr_name(a) == "crypto")
                .count(),
            ..MediaShape::default()
        };
        for c in attrs.iter().filter_map(|a| attr_value(a, "candidate")) {
            let f: Vec<&str> = c.split_whitespace().collect();
            if f.len() >= 8 {
                ms.candidates.insert((
                    f[1].to_string(),
                    f[2].to_ascii_lowercase(),
                    f[7].to_string(),
                ));
                ms.candidate_addrs
                    .push((f[4].to_string(), f[5].parse().unwrap_or(0)));
            } else {
                sh.malformed.push(format!("a=candidate:{c}"));
            }
        }
        for (name, map) in [("rtpmap", &mut ms.rtpmap), ("fmtp", &mut ms.fmtp)] {
            for v in attrs.iter().filter_map(|a| attr_value(a, name)) {
                let (pt, rest) = v.split_once(' ').unwrap_or((v, ""));
                let rest = if name == "rtpmap" {
                    norm_rtpmap(rest)
                } else {
                    rest.trim().to_string()
                };
                map.insert(pt.to_string(), rest);
            }
        }
        sh.media.push(ms);
    }
    sh
}

fn setup_class(v: &Option<String>) -> &'static str {
    match v.as_deref() {
        None => "absent",
        Some("actpass") => "actpass",
        Some("active") | Some("passive") => "role (active|passive)",
        Some("holdconn") => "holdconn",
        Some(_) => "other",
    }
}

/// Leaves out the explicit exceptions of the module doc.
fn session_kinds_compared(sh: &Shape) -> BTreeSet<String> {
    let mut k = sh.session_kinds.clone();
    k.remove("ice-lite");
    k
}

/// The structural differences between the reference's SDP and the candidate's (empty if
/// they have the same structure).
fn compare_sdp(reference: &Shape, candidate: &Shape) -> Vec<String> {
    let mut d = Vec::new();
    let sk = (
        session_kinds_compared(reference),
        session_kinds_compared(candidate),
    );
    if sk.0 != sk.1 {
        d.push(format!(
            "session-level attribute kinds: only in reference {:?}, only in candidate {:?}",
            sk.0.difference(&sk.1).collect::<Vec<_>>(),
            sk.1.difference(&sk.0).collect::<Vec<_>>()
        ));
    }
    if reference.media.len() != candidate.media.len() {
        d.push(format!(
            "media sections: {} vs {}",
            reference.media.len(),
            candidate.media.len()
        ));
    }
    for (i, (r, c)) in reference.media.iter().zip(&candidate.media).enumerate() {
        let mut diff = |what: &str, a: String, b: String| {
            if a != b {
                d.push(format!("m[{i}] {what}: {a} vs {b}"));
            }
        };
        diff("kind", r.kind.clone(), c.kind.clone());
        diff(
            "port zero",
            (r.port == 0).to_string(),
            (c.port == 0).to_string(),
        );
        diff("profile", r.proto.clone(), c.proto.clone());
        diff("formats", r.fmts.join(" "), c.fmts.join(" "));
        diff(
            "direction attribute",
            format!("{:?}", r.direction),
            format!("{:?}", c.direction),
        );
        diff(
            "c= present",
            r.conn.is_some().to_string(),
            c.conn.is_some().to_string(),
        );
        diff(
            "ice-ufrag present",
            r.ufrag.is_some().to_string(),
            c.ufrag.is_some().to_string(),
        );
        diff(
            "ice-pwd present",
            r.pwd.is_some().to_string(),
            c.pwd.is_some().to_string(),
        );
        diff(
            "candidate kinds (component, transport, type)",
            format!("{:?}", r.candidates),
            format!("{:?}", c.candidates),
        );
        diff(
            "fingerprint present",
            r.fingerprint.is_some().to_string(),
            c.fingerprint.is_some().to_string(),
        );
        diff(
            "setup class",
            setup_class(&r.setup).into(),
            setup_class(&c.setup).into(),
        );
        diff("rtcp-mux", r.rtcp_mux.to_string(), c.rtcp_mux.to_string());
        diff(
            "a=rtcp present",
            r.rtcp.is_some().to_string(),
            c.rtcp.is_some().to_string(),
        );
        diff(
            "rtpmap",
            format!("{:?}", r.rtpmap),
            format!("{:?}", c.rtpmap),
        );
        diff("fmtp", format!("{:?}", r.fmtp), format!("{:?}", c.fmtp));
        let (mut rk, mut ck) = (r.kinds.clone(), c.kinds.clone());
        if r.ufrag.is_none() {
            // Exception: rtpengine 10.5 keeps Firefox's end-of-candidates after ICE=remove.
            rk.remove("end-of-candidates");
            ck.remove("end-of-candidates");
        }
        if rk != ck {
            d.push(format!(
                "m[{i}] attribute kinds: only in reference {:?}, only in candidate {:?}",
                rk.difference(&ck).collect::<Vec<_>>(),
                ck.difference(&rk).collect::<Vec<_>>()
            ));
        }
    }
    d
}

/// What must hold for one engine's own SDP: its address, its ports, no SDES, well-formed.
fn check_own(sh: &Shape, ports: (u16, u16)) -> Vec<String> {
    let mut d: Vec<String> = sh
        .malformed
        .iter()
        .map(|m| format!("malformed: {m}"))
        .collect();
    let in_range = |p: u16| (ports.0..=ports.1).contains(&p);
    if sh.origin_addr != LOOPBACK {
        d.push(format!(
            "o= address {} is not the engine's (replace-origin)",
            sh.origin_addr
        ));
    }
    for (i, m) in sh.media.iter().enumerate() {
        if m.port == 0 {
            continue;
        }
        if m.conn.as_deref() != Some(LOOPBACK) {
            d.push(format!(
                "m[{i}] c= address {:?} is not the engine's",
                m.conn
            ));
        }
        if !in_range(m.port) {
            d.push(format!("m[{i}] port {} outside the engine's range", m.port));
        }
        if let Some(p) = m
            .rtcp
            .as_deref()
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
        {
            if !in_range(p) {
                d.push(format!("m[{i}] a=rtcp port {p} outside the engine's range"));
            }
        }
        for (a, p) in &m.candidate_addrs {
            if a != LOOPBACK || !in_range(*p) {
                d.push(format!("m[{i}] candidate {a}:{p} is not the engine's"));
            }
        }
        if m.crypto > 0 {
            d.push(format!("m[{i}] a=crypto present despite SDES-off"));
        }
    }
    d
}

// ---------------------------------------------------------------------------------------------
// The differential run

/// Both engines, and every difference found so far (reported together at the end).
struct Diff<'a> {
    reference: &'a mut Engine,
    candidate: &'a mut Engine,
    problems: Vec<String>,
    steps: usize,
}

/// What one step returned on each engine.
struct Pair {
    r: Reply,
    c: Reply,
    r_raw_req: (String, Vec<u8>),
    c_raw_req: (String, Vec<u8>),
}

impl Diff<'_> {
    fn problem(&mut self, step: &str, text: String) {
        self.problems.push(format!("[{step}] {text}"));
    }

    /// Sends the same request to both, compares the reply shapes and SDP structures.
    fn step(&mut self, step: &str, req: &Kam<'_>) -> Pair {
        self.steps += 1;
        let bytes = req.encode();
        let (rc, r) = self.reference.call(&bytes);
        let (cc, c) = self.candidate.call(&bytes);
        if r.shape() != c.shape() {
            self.problem(
                step,
                format!(
                    "reply shape: {} says {} vs {} says {}\n  {}: {}\n  {}: {}",
                    self.reference.name,
                    r.shape(),
                    self.candidate.name,
                    c.shape(),
                    self.reference.name,
                    abbreviate(&r.text()),
                    self.candidate.name,
                    abbreviate(&c.text())
                ),
            );
        }
        for k in ["error-reason", "warning"] {
            if let (Some(a), Some(b)) = (r.str(k), c.str(k)) {
                eprintln!("[{step}] {k}: {a:?} vs {b:?}");
            }
        }
        if let (Some(rs), Some(cs)) = (r.sdp(), c.sdp()) {
            let (rsh, csh) = (shape(&rs), shape(&cs));
            let mut found = compare_sdp(&rsh, &csh);
            for (who, sh, eng) in [
                ("reference", &rsh, &*self.reference),
                ("candidate", &csh, &*self.candidate),
            ] {
                found.extend(
                    check_own(sh, eng.ports)
                        .into_iter()
                        .map(|p| format!("{who} ({}): {p}", eng.name)),
                );
            }
            if !found.is_empty() {
                let text = format!(
                    "SDP differs:\n    - {}\n  {} SDP:\n{}\n  {} SDP:\n{}",
                    found.join("\n    - "),
                    self.reference.name,
                    indent(&rs),
                    self.candidate.name,
                    indent(&cs)
                );
                self.problem(step, text);
            }
        }
        Pair {
            r,
            c,
            r_raw_req: (rc, bytes.clone()),
            c_raw_req: (cc, bytes),
        }
    }

    /// On each engine: a repeat of an offer/answer keeps the engine's own values.
    fn same_values(&mut self, step: &str, first: &Pair, again: &Pair) {
        for (eng, a, b) in [
            (self.reference.name.clone(), &first.r, &again.r),
            (self.candidate.name.clone(), &first.c, &again.c),
        ] {
            let (Some(sa), Some(sb)) = (a.sdp(), b.sdp()) else {
                self.problem(step, format!("{eng}: no SDP to compare the repeat with"));
                continue;
            };
            let (x, y) = (shape(&sa), shape(&sb));
            let key = |m: &MediaShape| {
                (
                    m.port,
                    m.rtcp.clone(),
                    m.ufrag.clone(),
                    m.pwd.clone(),
                    m.fingerprint.clone(),
                    m.candidate_addrs.clone(),
                )
            };
            let kx: Vec<_> = x.media.iter().map(key).collect();
            let ky: Vec<_> = y.media.iter().map(key).collect();
            if kx != ky {
                self.problem(
                    step,
                    format!(
                        "{eng}: the repeat changed ports/ICE credentials/fingerprint\n  \
                         first (port, rtcp, ufrag, pwd, fingerprint, candidates): {kx:?}\n  \
                         repeat: {ky:?}\n  first SDP:\n{}\n  repeat SDP:\n{}",
                        indent(&sa),
                        indent(&sb)
                    ),
                );
            }
        }
    }

    /// The datagram of `p` sent again with its cookie: the reply must be the same bytes.
    fn retransmit(&mut self, step: &str, p: &Pair) {
        let (cookie, req) = &p.r_raw_req;
        let r = self.reference.exchange(cookie, req);
        let (cookie, req) = &p.c_raw_req;
        let c = self.candidate.exchange(cookie, req);
        let names = (self.reference.name.clone(), self.candidate.name.clone());
        for (name, first, again) in [(names.0, &p.r, r), (names.1, &p.c, c)] {
            match again {
                None => self.problem(step, format!("{name}: no reply to the retransmission")),
                Some(again) if again.raw != first.raw => self.problem(
                    step,
                    format!(
                        "{name}: the retransmission got a different reply\n  first: {}\n  again: {}",
                        abbreviate(&first.text()),
                        abbreviate(&again.text())
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    /// `query`: the `totals` part compared (keys and integer types).
    fn totals(&mut self, step: &str, p: &Pair) {
        let shape_of = |r: &Reply| -> Result<Vec<String>, String> {
            let t = r
                .dict
                .get(&b"totals"[..])
                .and_then(Value::as_dict)
                .ok_or("no totals dictionary")?;
            let mut out = Vec::new();
            for (k, v) in t {
                let inner = v.as_dict().ok_or(format!(
                    "totals.{} not a dictionary",
                    String::from_utf8_lossy(k)
                ))?;
                for (ik, iv) in inner {
                    out.push(format!(
                        "{}.{}:{}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(ik),
                        if iv.as_int().is_some() {
                            "int"
                        } else {
                            "other"
                        }
                    ));
                }
            }
            Ok(out)
        };
        let (a, b) = (shape_of(&p.r), shape_of(&p.c));
        match (&a, &b) {
            (Ok(x), Ok(y)) if x == y => {}
            _ => self.problem(
                step,
                format!(
                    "query totals: {} {:?} vs {} {:?}\n  {}",
                    self.reference.name,
                    a,
                    self.candidate.name,
                    b,
                    abbreviate(&p.c.text())
                ),
            ),
        }
    }
}

fn indent(sdp: &str) -> String {
    sdp.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn abbreviate(t: &str) -> String {
    if t.chars().count() > 600 {
        let head: String = t.chars().take(600).collect();
        format!("{head}… ({} bytes)", t.len())
    } else {
        t.to_string()
    }
}

/// The request sequences of the module doc, on both engines; returns every difference.
fn differential(reference: &mut Engine, candidate: &mut Engine) -> Vec<String> {
    let to_sip = edge_flags("FLAGS_TO_SIP");
    let to_webrtc = edge_flags("FLAGS_TO_WEBRTC");
    let plain = "replace-origin replace-session-connection trust-address RTP/AVP";
    let mut d = Diff {
        reference,
        candidate,
        problems: Vec::new(),
        steps: 0,
    };
    let tag = std::process::id();

    // ping: Kamailio's probe is the bare command.
    d.steps += 1;
    let (_, pr) = d.reference.call(b"d7:command4:pinge");
    let (_, pc) = d.candidate.call(b"d7:command4:pinge");
    if pr.raw != pc.raw {
        let t = format!("ping: {:?} vs {:?}", pr.text(), pc.text());
        d.problem("ping", t);
    }

    // WebRTC -> SIP, SIP.js/Chrome and Firefox offers.
    for (name, fixture) in [
        ("chrome", "signaling/tests/fixtures/sipjs/invite.txt"),
        ("firefox", "signaling/tests/fixtures/firefox/invite.txt"),
    ] {
        let offer = body_of(fixture);
        let answer = sipp_answer(6000);
        let call = format!("w2s-{name}-{tag}");
        let (ft, tt) = ("browser-tag", "sip-tag");
        let kam = Call {
            id: call.clone(),
            from_tag: ft,
        };
        let s = |x: &str| format!("{name} w2s: {x}");
        let o1 = d.step(&s("offer"), &kam.req("offer", None, Some(&offer), &to_sip));
        let o2 = d.step(
            &s("offer repeated (INVITE retransmission)"),
            &kam.req("offer", None, Some(&offer), &to_sip),
        );
        d.same_values(&s("offer repeated keeps values"), &o1, &o2);
        let a1 = d.step(
            &s("answer"),
            &kam.req("answer", Some(tt), Some(&answer), &to_webrtc),
        );
        let a2 = d.step(
            &s("answer repeated (183 then 200)"),
            &kam.req("answer", Some(tt), Some(&answer), &to_webrtc),
        );
        d.same_values(&s("answer repeated keeps values"), &a1, &a2);
        d.retransmit(&s("answer datagram retransmitted (same cookie)"), &a2);
        let o3 = d.step(
            &s("re-INVITE offer (both tags)"),
            &kam.req("offer", Some(tt), Some(&offer), &to_sip),
        );
        d.same_values(&s("re-INVITE offer keeps values"), &o1, &o3);
        let a3 = d.step(
            &s("re-INVITE answer"),
            &kam.req("answer", Some(tt), Some(&answer), &to_webrtc),
        );
        d.same_values(&s("re-INVITE answer keeps values"), &a1, &a3);
        let q = d.step(&s("query"), &kam.req("query", Some(tt), None, ""));
        d.totals(&s("query totals"), &q);
        d.step(&s("delete"), &kam.req("delete", Some(tt), None, ""));
        d.step(
            &s("delete of a deleted call (ok + warning)"),
            &kam.req("delete", Some(tt), None, ""),
        );
        d.step(
            &s("delete of a deleted call, fatal (error)"),
            &kam.req("delete", Some(tt), None, "fatal"),
        );
        d.step(
            &s("query of a deleted call (error)"),
            &kam.req("query", Some(tt), None, ""),
        );
    }

    // SIP -> WebRTC: SIPp offers, the browser answers; the SIP side holds and resumes.
    {
        let call = format!("s2w-{tag}");
        let (ft, tt) = ("sipp-tag", "browser-tag");
        let offer = sipp_offer(6000);
        let hold = sipp_offer(6000)
            .replace_str("a=sendrecv", "a=sendonly")
            .replace_str("o=sipp-uac 1 1", "o=sipp-uac 1 2");
        let resume = sipp_offer(6000).replace_str("o=sipp-uac 1 1", "o=sipp-uac 1 3");
        let answer = chrome_answer_to(&offer, "a=sendrecv");
        let hold_answer = chrome_answer_to(&offer, "a=recvonly");
        let kam = Call {
            id: call.clone(),
            from_tag: ft,
        };
        let o1 = d.step(
            "s2w: offer",
            &kam.req("offer", None, Some(&offer), &to_webrtc),
        );
        let o2 = d.step(
            "s2w: offer repeated",
            &kam.req("offer", None, Some(&offer), &to_webrtc),
        );
        d.same_values("s2w: offer repeated keeps ports/ICE/fingerprint", &o1, &o2);
        d.retransmit("s2w: offer datagram retransmitted (same cookie)", &o2);
        let a1 = d.step(
            "s2w: browser answer",
            &kam.req("answer", Some(tt), Some(&answer), &to_sip),
        );
        let o3 = d.step(
            "s2w: re-INVITE offer (both tags)",
            &kam.req("offer", Some(tt), Some(&offer), &to_webrtc),
        );
        d.same_values("s2w: re-INVITE offer keeps ports/ICE/fingerprint", &o1, &o3);
        let a2 = d.step(
            "s2w: re-INVITE answer",
            &kam.req("answer", Some(tt), Some(&answer), &to_sip),
        );
        d.same_values("s2w: re-INVITE answer keeps values", &a1, &a2);
        let o4 = d.step(
            "s2w: hold re-INVITE (a=sendonly)",
            &kam.req("offer", Some(tt), Some(&hold), &to_webrtc),
        );
        d.same_values("s2w: hold keeps ports/ICE/fingerprint", &o1, &o4);
        d.step(
            "s2w: hold answer (a=recvonly)",
            &kam.req("answer", Some(tt), Some(&hold_answer), &to_sip),
        );
        let o5 = d.step(
            "s2w: resume re-INVITE (a=sendrecv)",
            &kam.req("offer", Some(tt), Some(&resume), &to_webrtc),
        );
        d.same_values("s2w: resume keeps ports/ICE/fingerprint", &o1, &o5);
        d.step(
            "s2w: resume answer",
            &kam.req("answer", Some(tt), Some(&answer), &to_sip),
        );
        let q = d.step("s2w: query", &kam.req("query", Some(tt), None, ""));
        d.totals("s2w: query totals", &q);
        d.step("s2w: delete", &kam.req("delete", Some(tt), None, ""));
    }

    // SIP -> WebRTC, an answer listing codecs the offer did not have (RFC 3264 forbids it; a
    // relay may pass it on or filter it).
    {
        let kam = Call {
            id: format!("s2w-superset-{tag}"),
            from_tag: "sipp-tag",
        };
        let offer = sipp_offer(6000);
        let answer = bench::sdp::chrome_answer(7, 45421, &browser_ice(), &browser_fingerprint())
            .into_bytes();
        d.step(
            "s2w superset: offer",
            &kam.req("offer", None, Some(&offer), &to_webrtc),
        );
        d.step(
            "s2w superset: answer with opus, G722, CN, telephone-event the offer lacked",
            &kam.req("answer", Some("browser-tag"), Some(&answer), &to_sip),
        );
        d.step("s2w superset: delete", &kam.req("delete", None, None, ""));
    }

    // SIP UAs' terse SDPs: a static payload type without rtpmap, no direction attribute; a
    // session-level direction.
    for (name, sdp, flags) in [
        (
            "no rtpmap for PT 8, no direction, to WebRTC",
            sipp_offer(6000)
                .replace_str("a=rtpmap:8 PCMA/8000\r\n", "")
                .replace_str("a=sendrecv\r\n", ""),
            &to_webrtc,
        ),
        (
            "session-level a=sendonly, plain",
            sipp_offer(6000)
                .replace_str("a=sendrecv\r\n", "")
                .replace_str("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"),
            &plain.to_string(),
        ),
    ] {
        let kam = Call {
            id: format!("terse-{}-{tag}", name.len()),
            from_tag: "uac-tag",
        };
        d.step(
            &format!("terse SIP offer ({name})"),
            &kam.req("offer", None, Some(&sdp), flags),
        );
        d.step(
            &format!("terse SIP offer ({name}): delete"),
            &kam.req("delete", None, None, ""),
        );
    }

    // Plain to plain.
    {
        let call = format!("p2p-{tag}");
        let (ft, tt) = ("uac-tag", "uas-tag");
        let (offer, answer) = (sipp_offer(6000), sipp_answer(6100));
        let kam = Call {
            id: call.clone(),
            from_tag: ft,
        };
        let o1 = d.step("p2p: offer", &kam.req("offer", None, Some(&offer), plain));
        d.step(
            "p2p: answer",
            &kam.req("answer", Some(tt), Some(&answer), plain),
        );
        let o2 = d.step(
            "p2p: re-INVITE offer",
            &kam.req("offer", Some(tt), Some(&offer), plain),
        );
        d.same_values("p2p: re-INVITE offer keeps ports", &o1, &o2);
        d.step("p2p: delete", &kam.req("delete", Some(tt), None, ""));
    }

    // Unknown key and unknown flag: ignored.
    {
        let call = format!("unknown-{tag}");
        let offer = body_of("signaling/tests/fixtures/sipjs/invite.txt");
        let flags = format!("{to_sip} frobnicate=yes no-such-flag-xyz");
        let kam = Call {
            id: call.clone(),
            from_tag: "ft",
        };
        d.step(
            "unknown key and flag: offer",
            &kam.req("offer", None, Some(&offer), &flags),
        );
        d.step(
            "unknown key and flag: delete",
            &kam.req("delete", None, None, ""),
        );
    }

    // Errors.
    {
        let call = format!("never-{tag}");
        let answer = sipp_answer(6000);
        d.step(
            "answer for an unknown call (error)",
            &Kam {
                op: "answer",
                call_id: &call,
                from_tag: "ft",
                to_tag: Some("tt"),
                sdp: Some(&answer),
                flags: &to_webrtc,
            },
        );
        d.step(
            "delete of a never-created call (ok + warning)",
            &Kam {
                op: "delete",
                call_id: &call,
                from_tag: "ft",
                to_tag: None,
                sdp: None,
                flags: "",
            },
        );
        d.step(
            "offer without SDP (error)",
            &Kam {
                op: "offer",
                call_id: &call,
                from_tag: "ft",
                to_tag: None,
                sdp: None,
                flags: &to_sip,
            },
        );
    }
    eprintln!(
        "differential: {} steps, {} differences ({} vs {})",
        d.steps,
        d.problems.len(),
        d.reference.name,
        d.candidate.name
    );
    d.problems
}

// ---------------------------------------------------------------------------------------------
// Media

fn rtp_packet(buf: &mut [u8], seq: u16, ssrc: u32, marker: u8) -> usize {
    buf[0] = 0x80;
    buf[1] = 0; // PCMU
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[12..172].fill(marker);
    172
}

/// The sequence number of an RTP packet whose 160-byte payload is all `marker`.
fn rtp_seq(p: &[u8], marker: u8) -> Option<u16> {
    (p.len() >= 172 && p[0] >> 6 == 2 && p[12..172].iter().all(|&b| b == marker))
        .then(|| u16::from_be_bytes([p[2], p[3]]))
}

/// A WebRTC ↔ SIP call on `eng`: a real WebRTC client leg on the browser side, a plain socket
/// on the SIP side, `MEDIA_PACKETS` RTP packets each way. Returns (browser→SIP, SIP→browser)
/// packets received and the query's RTP packet total, or why the leg did not connect.
fn media(eng: &mut Engine, sip_calls: bool) -> Result<Media, String> {
    let browser = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    let sip = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    browser.set_nonblocking(true).unwrap();
    sip.set_nonblocking(true).unwrap();
    let (browser_port, sip_port) = (
        browser.local_addr().unwrap().port(),
        sip.local_addr().unwrap().port(),
    );
    let ice = IceCredentials::random().unwrap();
    let identity = DtlsIdentity::generate(SystemTime::now()).unwrap();
    let session_id = u64::from(std::process::id());
    let kam = Call {
        id: format!(
            "media-{}-{}-{}",
            if sip_calls { "s2w" } else { "w2s" },
            eng.name.replace(' ', "-"),
            std::process::id()
        ),
        from_tag: if sip_calls { "sip" } else { "browser" },
    };
    let to_tag = if sip_calls { "browser" } else { "sip" };
    let to_sip = edge_flags("FLAGS_TO_SIP");
    let to_webrtc = edge_flags("FLAGS_TO_WEBRTC");
    // (the SIP side's SDP from the engine, the browser's SDP from the engine)
    let (sip_sdp, web_sdp) = if sip_calls {
        let offer = sipp_offer(sip_port);
        let (_, o) = eng.call(&kam.req("offer", None, Some(&offer), &to_webrtc).encode());
        let web = o.sdp().ok_or_else(|| format!("offer: {}", o.text()))?;
        let answer =
            bench::sdp::chrome_answer(session_id, browser_port, &ice, identity.fingerprint());
        let (_, a) = eng.call(
            &kam.req("answer", Some(to_tag), Some(answer.as_bytes()), &to_sip)
                .encode(),
        );
        (a.sdp().ok_or_else(|| format!("answer: {}", a.text()))?, web)
    } else {
        let offer =
            bench::sdp::chrome_offer(session_id, browser_port, &ice, identity.fingerprint());
        let (_, o) = eng.call(
            &kam.req("offer", None, Some(offer.as_bytes()), &to_sip)
                .encode(),
        );
        let sip_sdp = o.sdp().ok_or_else(|| format!("offer: {}", o.text()))?;
        let answer = sipp_answer(sip_port);
        let (_, a) = eng.call(
            &kam.req("answer", Some(to_tag), Some(&answer), &to_webrtc)
                .encode(),
        );
        (
            sip_sdp,
            a.sdp().ok_or_else(|| format!("answer: {}", a.text()))?,
        )
    };
    let sip_side = shape(&sip_sdp);
    let m = sip_side.media.first().ok_or("no SIP-side media")?;
    let engine_sip: SocketAddr = format!("{}:{}", m.conn.clone().unwrap_or_default(), m.port)
        .parse()
        .map_err(|e| format!("SIP-side address: {e}"))?;
    let remote = bench::sdp::remote_media(web_sdp.as_bytes())?;
    let t0 = Instant::now();
    // The client is always the controlling agent (as a browser facing an ICE-lite gateway).
    // When a full-ICE engine offered, it is controlling too: the highest tie-breaker makes it
    // yield (RFC 8445 §7.3.1.1) instead of answering 487.
    let mut leg = ClientLeg::new(ice, identity, remote, u64::MAX, t0);
    let mut buf = vec![0u8; 2048];
    let (mut to_sip_seen, mut to_browser_seen) = (BTreeSet::new(), BTreeSet::new());
    let mut step = |leg: &mut ClientLeg,
                    to_sip_seen: &mut BTreeSet<u16>,
                    to_browser_seen: &mut BTreeSet<u16>| {
        let now = Instant::now();
        if now >= leg.poll_timeout() {
            leg.handle_timeout(now);
        }
        while let Some(d) = leg.poll_transmit() {
            let _ = browser.send_to(&d, leg.remote_addr());
        }
        while let Ok((n, _)) = browser.recv_from(&mut buf) {
            if let Received::Rtp(len) = leg.handle_input(Instant::now(), &mut buf, n) {
                if let Some(seq) = rtp_seq(&buf[..len], 0xb5) {
                    to_browser_seen.insert(seq);
                }
            }
        }
        while let Some(d) = leg.poll_transmit() {
            let _ = browser.send_to(&d, leg.remote_addr());
        }
        let mut pbuf = [0u8; 2048];
        while let Ok((n, _)) = sip.recv_from(&mut pbuf) {
            if let Some(seq) = rtp_seq(&pbuf[..n], 0x5b) {
                to_sip_seen.insert(seq);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    while !leg.is_connected() {
        if let engine::proto::client::LegState::Failed(why) = leg.state() {
            return Err(format!("WebRTC leg failed: {why}"));
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "WebRTC leg not connected in 10 s: {:?}",
                leg.state()
            ));
        }
        step(&mut leg, &mut to_sip_seen, &mut to_browser_seen);
    }
    let mut out = vec![0u8; 2048];
    for i in 0..MEDIA_PACKETS {
        let n = rtp_packet(&mut out, i, 0x1111_1111, 0x5b);
        let n = leg
            .protect(&mut out, n)
            .map_err(|e| format!("protect: {e:?}"))?;
        let _ = browser.send_to(&out[..n], leg.remote_addr());
        let n = rtp_packet(&mut out, i, 0x2222_2222, 0xb5);
        let _ = sip.send_to(&out[..n], engine_sip);
        let until = Instant::now() + Duration::from_millis(10);
        while Instant::now() < until {
            step(&mut leg, &mut to_sip_seen, &mut to_browser_seen);
        }
    }
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until
        && (to_sip_seen.len() < MEDIA_PACKETS.into()
            || to_browser_seen.len() < MEDIA_PACKETS.into())
    {
        step(&mut leg, &mut to_sip_seen, &mut to_browser_seen);
    }
    let (_, q) = eng.call(&kam.req("query", Some(to_tag), None, "").encode());
    let total = |kind: &str, what: &str| {
        q.dict
            .get(&b"totals"[..])
            .and_then(Value::as_dict)
            .and_then(|t| t.get(kind.as_bytes()))
            .and_then(Value::as_dict)
            .and_then(|t| t.get(what.as_bytes()))
            .and_then(Value::as_int)
    };
    let rtp_packets = total("RTP", "packets");
    eprintln!(
        "{} ({}): media browser->SIP {}/{MEDIA_PACKETS}, SIP->browser {}/{MEDIA_PACKETS}; \
         query totals RTP packets {rtp_packets:?} bytes {:?} errors {:?}, RTCP packets {:?}",
        eng.name,
        if sip_calls {
            "SIP calls WebRTC"
        } else {
            "WebRTC calls SIP"
        },
        to_sip_seen.len(),
        to_browser_seen.len(),
        total("RTP", "bytes"),
        total("RTP", "errors"),
        total("RTCP", "packets"),
    );
    let (_, del) = eng.call(&kam.req("delete", Some(to_tag), None, "").encode());
    assert_eq!(del.result(), "ok", "{}: delete: {}", eng.name, del.text());
    Ok(Media {
        to_sip: to_sip_seen.len(),
        to_browser: to_browser_seen.len(),
        rtp_packets,
    })
}

/// What [`media`] counted.
struct Media {
    to_sip: usize,
    to_browser: usize,
    /// `totals.RTP.packets` of a query after the packets.
    rtp_packets: Option<i64>,
}

/// Media through `eng` (see [`media`]): every packet each way, and counted by `query`; else
/// what went wrong.
fn check_media(eng: &mut Engine, sip_calls: bool) -> Result<(), String> {
    let who = format!(
        "{} ({} calls)",
        eng.name,
        if sip_calls { "SIP" } else { "WebRTC" }
    );
    let n = usize::from(MEDIA_PACKETS);
    match media(eng, sip_calls) {
        Ok(m) if m.to_sip != n || m.to_browser != n => Err(format!(
            "{who}: media end to end: browser->SIP {}/{n}, SIP->browser {}/{n}\nlog tail:\n{}",
            m.to_sip,
            m.to_browser,
            eng.log_tail()
        )),
        // Every packet went through the engine once, in one direction or the other.
        Ok(m) if m.rtp_packets != Some(2 * i64::from(MEDIA_PACKETS)) => Err(format!(
            "{who}: query totals.RTP.packets {:?} after {n} packets each way",
            m.rtp_packets
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{who}: media: {e}\nlog tail:\n{}", eng.log_tail())),
    }
}

fn report(problems: &[String]) -> String {
    problems.join("\n\n")
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The comparison itself: value changes pass, structural changes are caught.
#[test]
fn comparator_sees_structure_not_values() {
    let base = String::from_utf8(body_of("signaling/tests/fixtures/sipjs/invite.txt")).unwrap();
    let b = shape(&base);
    assert!(compare_sdp(&b, &b).is_empty());
    let values = base
        .replace("45421", "45999")
        .replace("rTFx", "zzzz")
        .replace("9C:2C", "00:11")
        .replace("192.0.2.2", "192.0.2.9");
    assert!(compare_sdp(&b, &shape(&values)).is_empty());
    let structural = [
        ("a=rtcp-mux\r\n", ""),
        ("a=setup:actpass", "a=setup:active"),
        ("UDP/TLS/RTP/SAVPF 111", "RTP/AVP 111"),
        (" 111 63 9 0 8", " 111 9 0 8"),
        ("a=sendrecv\r\n", "a=recvonly\r\n"),
        ("a=rtcp:9 IN IP4 0.0.0.0\r\n", ""),
        ("a=ice-ufrag:rTFx\r\n", ""),
        ("a=fmtp:111 minptime=10", "a=fmtp:111 minptime=20"),
        ("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMA/8000"),
        (
            "a=rtcp-rsize\r\n",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n",
        ),
        ("a=group:BUNDLE 0\r\n", ""),
        (
            " typ host generation 0 network-id 1",
            " typ srflx generation 0 network-id 1",
        ),
    ];
    for (from, to) in structural {
        assert!(base.contains(from), "{from:?}");
        let changed = shape(&base.replacen(from, to, 1));
        assert!(
            !compare_sdp(&b, &changed).is_empty(),
            "not caught: {from:?} -> {to:?}"
        );
    }
    // The explicit exceptions, and only those.
    let lite = base.replacen("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n", 1);
    assert!(compare_sdp(&b, &shape(&lite)).is_empty());
    assert_eq!(norm_rtpmap("G722/8000/1"), norm_rtpmap("G722/8000"));
    // Own-value checks: foreign address, port out of range, SDES, LF-only lines.
    let own = check_own(&b, (45000, 46000));
    assert!(own.iter().any(|p| p.contains("o= address")) || b.origin_addr == LOOPBACK);
    assert!(own.iter().any(|p| p.contains("c= address")), "{own:?}");
    assert!(!check_own(&b, (1, 2)).is_empty());
    assert!(!shape(&base.replace("\r\n", "\n")).malformed.is_empty());
}

/// The requests say what edge.cfg's flags mean (read back with the ng crate's typed request),
/// with nothing left over as unknown except the tokens meant to be unknown.
#[test]
fn kamailio_requests_carry_the_edge_flags() {
    use ng::request::{Ice, TransportProtocol, Unknown};
    let call = Call {
        id: "c1".into(),
        from_tag: "ft",
    };
    let read = |k: &Kam<'_>| {
        let v = ng::bencode::decode(&k.encode()).unwrap();
        ng::Request::from_dict(v.as_dict().unwrap()).unwrap()
    };
    let to_sip = edge_flags("FLAGS_TO_SIP");
    let to_webrtc = edge_flags("FLAGS_TO_WEBRTC");
    let r = read(&call.req("offer", None, Some(b"v=0\r\n"), &to_sip));
    assert_eq!(r.command, Some(ng::Command::Offer));
    assert_eq!(r.ice, Some(Ice::Remove));
    assert_eq!(r.transport_protocol, Some(TransportProtocol::RtpAvp));
    assert!(r.rtcp_mux.demux && r.sdes_off && r.replace.origin && r.replace.session_connection);
    assert!(r.supports_load_limit && r.received_from.is_some() && r.to_tag.is_none());
    assert_eq!(r.unknown, vec![]);
    let r = read(&call.req("answer", Some("tt"), Some(b"v=0\r\n"), &to_webrtc));
    assert_eq!(r.command, Some(ng::Command::Answer));
    assert_eq!(r.ice, Some(Ice::Force));
    assert_eq!(
        r.transport_protocol,
        Some(TransportProtocol::UdpTlsRtpSavpf)
    );
    assert!(r.rtcp_mux.offer && r.rtcp_mux.require && r.to_tag.is_some());
    assert_eq!(r.unknown, vec![]);
    let odd = format!("{to_sip} frobnicate=yes no-such-flag-xyz");
    let r = read(&call.req("offer", None, Some(b"v=0\r\n"), &odd));
    assert_eq!(
        r.unknown,
        vec![
            Unknown::Flag("no-such-flag-xyz".into()),
            Unknown::Key("frobnicate".into())
        ]
    );
    // delete carries the to-tag only with the `to-tag` flag; `fatal` is a flag.
    assert!(read(&call.req("delete", Some("tt"), None, ""))
        .to_tag
        .is_none());
    assert!(read(&call.req("delete", Some("tt"), None, "to-tag"))
        .to_tag
        .is_some());
}

/// Harness validation: two rtpengines, same requests, no differences; media through one.
#[test]
fn rtpengine_matches_itself() {
    let dir = temp_dir("ng-diff-self");
    let mut a = rtpengine(&dir, "rtpengine-a", SELF_A_PORTS);
    let mut b = rtpengine(&dir, "rtpengine-b", SELF_B_PORTS);
    let mut problems = differential(&mut a, &mut b);
    for sip_calls in [false, true] {
        problems.extend(check_media(&mut a, sip_calls).err());
    }
    assert!(problems.is_empty(), "{}", report(&problems));
}

/// rtpengine 10.5 against our node: the same replies' structure, and media end to end on both.
#[test]
fn node_matches_rtpengine() {
    let dir = temp_dir("ng-diff-node");
    let mut reference = rtpengine(&dir, "rtpengine", RTPENGINE_PORTS);
    let mut node = our_node(&dir, NODE_PORTS);
    let mut problems = differential(&mut reference, &mut node);
    for sip_calls in [false, true] {
        problems.extend(check_media(&mut node, sip_calls).err());
        problems.extend(check_media(&mut reference, sip_calls).err());
    }
    assert!(
        problems.is_empty(),
        "{} problems (differences between rtpengine and our node, media):\n\n{}",
        problems.len(),
        report(&problems)
    );
}
