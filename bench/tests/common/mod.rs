//! What the bench crate's tests share: processes stopped by PID, the real gateway binary
//! started on loopback, a SIPp echo far end.
#![allow(
    clippy::disallowed_methods,
    reason = "drives real processes in real time: reads the clock to bound its waits"
)]
#![allow(dead_code, reason = "each test binary uses its own part")]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub(crate) mod attack;

/// A child process stopped by PID (SIGTERM, then SIGKILL after 5 s) when dropped.
pub(crate) struct Proc(pub(crate) Option<Child>);

impl Proc {
    pub(crate) fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The exit status if the process has exited (reaped), else None.
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        let st = self.0.as_mut()?.try_wait().ok()??;
        self.0 = None;
        Some(st)
    }

    /// Waits up to `limit` for the process to exit; None if it is still running.
    pub(crate) fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let c = self.0.as_mut()?;
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.0 = None;
                return Some(st);
            }
            if t0.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        // SAFETY: kill with the PID of a child this test spawned and has not reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

pub(crate) fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kernel receive-buffer drops (last column of /proc/net/udp) on local ports lo..=hi, to tell
/// a starved process (a busy machine) from a protocol fault when packets go missing.
pub(crate) fn udp_drops(lo: u16, hi: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            ((lo..=hi).contains(&port)).then(|| f.last()?.parse::<u64>().ok())?
        })
        .sum()
}

pub(crate) fn gateway_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WEBRTC_PHONE_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<this test> → target/<profile>/webrtc-phone
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("webrtc-phone");
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build -p signaling) or set WEBRTC_PHONE_BIN",
        bin.display()
    );
    bin
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running gateway and its ports.
pub(crate) struct Gw {
    pub(crate) proc: Proc,
    pub(crate) wss: u16,
    pub(crate) https: u16,
    /// SIP/UDP.
    pub(crate) sip: u16,
    pub(crate) log: PathBuf,
}

impl Gw {
    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid() as u32
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub(crate) fn port_of(line: &str, key: &str) -> u16 {
    let rest = &line[line.find(key).unwrap() + key.len()..];
    let addr = rest.split_whitespace().next().unwrap();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Starts the gateway routing every call to `sipp_port`, media on `rtp` (a range of this
/// test's own, below the kernel's ephemeral range), plus `env`.
pub(crate) fn gateway(dir: &Path, sipp_port: u16, rtp: (u16, u16), env: &[(&str, &str)]) -> Gw {
    let log = dir.join("gateway.log");
    let mut cmd = Command::new(gateway_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("HTTPS_PORT", "0")
        .env("WSS_PORT", "0")
        .env("SIP_PORT", "0")
        .env("MEDIA_THREADS", "1")
        // Below the kernel's ephemeral range and apart from signaling's test ranges.
        .env("MIN_RTP_PORT", rtp.0.to_string())
        .env("MAX_RTP_PORT", rtp.1.to_string())
        .env("STATE_DIR", dir.join("state"))
        // OUTBOUND_PROXY as well: before 055e066, OUTBOUND_ROUTE alone left the demo PBX
        // answering "echo" itself.
        .env("OUTBOUND_PROXY", format!("127.0.0.1:{sipp_port}"))
        .env("OUTBOUND_ROUTE", format!("127.0.0.1:{sipp_port}"))
        .env("RTPP_NODEBUG", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null());
    let p = Proc(Some(cmd.spawn().unwrap()));
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("webrtc-phone listening")) {
            return Gw {
                wss: port_of(line, "wss="),
                https: port_of(line, "https="),
                sip: port_of(line, "sip_udp="),
                proc: p,
                log,
            };
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "gateway did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn sipp_echo(dir: &Path, port: u16) -> Proc {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/uas-echo.xml");
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &free_udp_port().to_string()])
        .args(["-rtp_echo", "-aa", "-nostdin", "-trace_err", "-error_file"])
        .arg(dir.join("sipp.err"))
        .args(["-trace_msg", "-message_file"])
        .arg(dir.join("sipp.msg"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (package sip-tester) must be installed: scripts/deps.sh test");
    // Ready once its port is bound.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(Some(child))
}

/// GET over HTTPS on the gateway's port: (status, body). Bounded by 5 s.
pub(crate) async fn https_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    bench::ua::https_get(([127, 0, 0, 1], port).into(), path, Duration::from_secs(5)).await
}

/// One sample's value from the OpenMetrics text (`name{labels}` exactly as printed).
pub(crate) fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}
