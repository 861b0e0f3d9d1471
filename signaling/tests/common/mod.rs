//! Test harness: starts the real `webrtc-phone` binary on loopback with OS-chosen ports, reads
//! its log, talks HTTPS and WebSocket to it, and stops it by PID.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of the harness"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the harness drives a real process in real time: it reads the clock and runs log reader threads"
)]

pub mod attack;
pub mod peers;
pub mod sipua;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Every setting the binary reads from the environment, removed so the host's own never leak in.
pub const ENV_SETTINGS: &[&str] = &[
    "OUTBOUND_PROXY",
    "OUTBOUND_ROUTE",
    "HTTPS_PORT",
    "WSS_PORT",
    "SIP_PORT",
    "MIN_RTP_PORT",
    "MAX_RTP_PORT",
    "RTPP_LOG_LEVEL",
    "RTPP_NODEBUG",
    "BIND_ADDRESS",
    "ADVERTISE_ADDRESS",
    "TLS_CERT",
    "TLS_KEY",
    "STATE_DIR",
    "MEDIA_THREADS",
    "ACCEPT_IPS",
    "ALLOWED_PTS",
    "DRAIN_TIMEOUT",
    "MEDIA_TIMEOUT",
    "MEDIA_PRIORITY",
    "RTP_LATCHING",
    "WS_PING_INTERVAL",
    "MAX_WS_PER_IP",
    "WS_MSG_RATE",
    "ALLOWED_ORIGINS",
    "WEBROOT",
    "SIP_UDP_RATE",
    "SIP_PROXY_RATE",
    "MAX_TRANSACTIONS",
    "MAX_CALLS_PER_WS",
    "MAX_CALLS_PER_IP",
    "MAX_CALLS",
    "NO_ANSWER_TIMEOUT",
    "MAX_REGISTRATIONS",
    "MAX_CONNS_PER_IP",
    "MAX_CONNS",
    "METRICS_ADDRESS",
];

/// The attacker's source address: on loopback, never on the signaling path of the victims
/// (which use 127.0.0.1).
pub const ATTACKER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 66));

/// A fresh, empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("webrtc-phone-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A private media port range for each gateway a test binary starts (tests run in parallel),
/// below the kernel's ephemeral range so OS-chosen ports never collide with it.
pub fn rtp_range() -> (u16, u16) {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    // Started at a place of this process's own, so test binaries run at the same time (by
    // other checkouts on the machine) seldom pick the same range.
    let n =
        (NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u32 + std::process::id()) % 120;
    let n = n as u16;
    let min = 20000 + n * 100;
    (min, min + 99)
}

/// The command with loopback binding, OS-chosen ports and a private state dir.
pub fn command(state_dir: &Path) -> Command {
    let (min, max) = rtp_range();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webrtc-phone"));
    for k in ENV_SETTINGS {
        cmd.env_remove(k);
    }
    cmd.env("BIND_ADDRESS", "127.0.0.1")
        .env("HTTPS_PORT", "0")
        .env("WSS_PORT", "0")
        .env("SIP_PORT", "0")
        .env("MEDIA_THREADS", "1")
        .env("MIN_RTP_PORT", min.to_string())
        .env("MAX_RTP_PORT", max.to_string())
        .env("STATE_DIR", state_dir)
        .stdin(Stdio::null());
    cmd
}

/// Runs a command that must fail at start-up; returns its status and stderr.
pub fn run_to_exit(mut cmd: Command) -> (ExitStatus, String) {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running gateway.
pub struct Gateway {
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub https_port: u16,
    pub wss_port: u16,
    pub sip_port: u16,
}

impl Gateway {
    pub fn start(mut cmd: Command) -> Gateway {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut gw = Gateway {
            child: Some(child),
            log,
            https_port: 0,
            wss_port: 0,
            sip_port: 0,
        };
        let line = gw.wait_for_log("webrtc-phone listening", Duration::from_secs(20));
        gw.https_port = port_after(&line, "https=");
        gw.wss_port = port_after(&line, "wss=");
        gw.sip_port = port_after(&line, "sip_udp=");
        gw
    }

    /// Waits until a log line contains `needle`; panics with the whole log otherwise.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "gateway exited ({st}) before '{needle}':\n{}",
                    self.log_text()
                );
            }
            if t0.elapsed() > limit {
                panic!("no '{needle}' within {limit:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Waits (bounded) for the process to exit on its own; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                // Let the log readers catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Some(st);
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` and waits (bounded) for the exit status.
    pub fn signal_and_wait(&mut self, sig: i32, limit: Duration) -> ExitStatus {
        // SAFETY: kill with the PID of our own child process.
        unsafe { libc::kill(self.pid(), sig) };
        let t0 = Instant::now();
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gateway did not exit within {limit:?} of signal {sig}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn port_after(line: &str, key: &str) -> u16 {
    let rest = &line[line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()..];
    let addr = rest.split_whitespace().next().unwrap();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A client configuration offering `versions` that accepts any server certificate (the tests
/// check the gateway's own self-signed one by fingerprint instead).
pub fn client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    testkit::tls::any_cert_client_config_with(versions).unwrap()
}

/// A TLS connection to 127.0.0.1:`port`.
pub async fn tls_connect(port: u16) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tls_over(tcp).await.unwrap()
}

/// A TCP connection to 127.0.0.1:`port` from the source address `from`.
pub async fn tcp_connect_from(from: std::net::IpAddr, port: u16) -> std::io::Result<TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(std::net::SocketAddr::new(from, 0))?;
    sock.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// A TLS connection to 127.0.0.1:`port` from the source address `from`.
pub async fn tls_connect_from(from: std::net::IpAddr, port: u16) -> TlsStream<TcpStream> {
    tls_over(tcp_connect_from(from, port).await.unwrap())
        .await
        .unwrap()
}

/// The TLS handshake (any certificate) over `tcp`.
pub async fn tls_over(tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(client_config(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ]));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// `GET path` over HTTPS from 127.0.0.1, bounded; `None` when no answer came (connection
/// refused or closed, handshake failed, nothing within 5 s).
pub async fn try_https_status(port: u16, path: &str) -> Option<u16> {
    let attempt = async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut s = tls_over(tcp).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let head = String::from_utf8_lossy(&buf);
        head.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends a raw request (which must ask for `Connection: close`) and reads the whole response.
pub async fn https_raw(port: u16, request: &str) -> HttpResponse {
    raw_exchange(tls_connect(port).await, request).await
}

/// [`https_raw`] from the source address `from`.
pub async fn https_raw_from(from: std::net::IpAddr, port: u16, request: &str) -> HttpResponse {
    raw_exchange(tls_connect_from(from, port).await, request).await
}

/// [`https_raw`] over plain HTTP to `addr`.
pub async fn http_raw(addr: std::net::SocketAddr, request: &str) -> HttpResponse {
    raw_exchange(TcpStream::connect(addr).await.unwrap(), request).await
}

async fn raw_exchange<S>(mut s: S, request: &str) -> HttpResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if is_complete(&buf) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    parse_response(&buf)
}

/// Whether `buf` holds a whole response: a 101 head, or a head and Content-Length bytes of body.
fn is_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let r = parse_response(&buf[..end + 4]);
    if r.status == 101 {
        return true;
    }
    r.header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| buf.len() - (end + 4) >= l)
}

pub async fn https_get(port: u16, path: &str, extra_headers: &str) -> HttpResponse {
    https_raw(
        port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Connection: close\r\n\r\n"
        ),
    )
    .await
}

pub fn parse_response(buf: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    HttpResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The WebSocket handshake request of `fixtures/sipjs/websocket-handshake.txt` (the page on
/// 127.0.0.1:8443, the WebSocket on 127.0.0.1:8444), with or without the subprotocol.
pub fn ws_upgrade_request(path: &str, protocol: Option<&str>) -> String {
    let proto = protocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8444\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Origin: https://127.0.0.1:8443\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: bqSQxpX66Oi7m2nqIDWgkA==\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n{proto}\r\n"
    )
}

/// Reads one metric's value from the Prometheus text.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
