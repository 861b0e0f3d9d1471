//! Real SIP peers for tests: Kamailio (registrar/PBX) and SIPp (far ends), started as child
//! processes on loopback and stopped by PID (SIGTERM, then SIGKILL after 5 s).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// A UDP port free right now on 127.0.0.1 (below the kernel's ephemeral range when possible).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// A process this test started; stopped by PID when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Waits (bounded) for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code();
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill with the PID of a child this test spawned and has not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
    let f = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} (install it: scripts/deps.sh test): {e}"));
    Proc {
        name,
        child: Some(child),
        log,
    }
}

/// Kamailio with `tests/peers/kamailio/registrar.cfg` on 127.0.0.1:`port`; calls to `echo` go
/// to `echo_port`. `defines` are extra `-A` arguments (`WITH_INVITE_AUTH`, ...).
pub fn kamailio(dir: &Path, port: u16, echo_port: u16, defines: &[&str]) -> Proc {
    let run = dir.join("kamailio-run");
    std::fs::create_dir_all(&run).unwrap();
    let mut cmd = Command::new("kamailio");
    cmd.arg("-f")
        .arg(peers_dir().join("kamailio/registrar.cfg"))
        .args(["-DD", "-E", "-Y"])
        .arg(&run)
        .arg("-w")
        .arg(&run)
        .args(["-A", &format!("REG_PORT={port}")])
        .args(["-A", &format!("ECHO_URI=\"sip:127.0.0.1:{echo_port}\"")]);
    for d in defines {
        cmd.args(["-A", d]);
    }
    let mut p = spawn("kamailio", cmd, dir.join("kamailio.log"));
    // Ready when it answers OPTIONS.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    let mut n = 0;
    loop {
        n += 1;
        let opt = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKready{n}\r\nMax-Forwards: 70\r\n\
             From: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: ready{n}@probe\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            sock.local_addr().unwrap()
        );
        let _ = sock.send_to(opt.as_bytes(), ("127.0.0.1", port));
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            if buf[..len].starts_with(b"SIP/2.0 200") {
                return p;
            }
        }
        if t0.elapsed() > Duration::from_secs(15) || p.wait_exit(Duration::ZERO).is_some() {
            panic!("kamailio did not start:\n{}", p.log_text());
        }
    }
}

/// SIPp running `tests/peers/sipp/<scenario>` with `args`; its messages go to `<dir>/<tag>.msg`.
pub fn sipp(dir: &Path, tag: &str, scenario: &str, args: &[&str]) -> Proc {
    let msg = dir.join(format!("{tag}.msg"));
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(peers_dir().join("sipp").join(scenario))
        .args(args)
        .args(["-nostdin", "-trace_msg", "-message_file"])
        .arg(&msg)
        .args(["-trace_err", "-error_file"])
        .arg(dir.join(format!("{tag}.err")));
    let p = spawn("sipp", cmd, dir.join(format!("{tag}.log")));
    // Ready when it has bound its port (the -p argument), or just give it a moment.
    if let Some(i) = args.iter().position(|a| *a == "-p") {
        let port: u16 = args[i + 1].parse().unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    p
}

/// The SIP messages SIPp logged, as text.
pub fn sipp_messages(dir: &Path, tag: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{tag}.msg"))).unwrap_or_default()
}

/// SIPp answering every call on 127.0.0.1:`port` with PCMU and echoing its RTP
/// (`uas-echo.xml -rtp_echo -aa`); messages in `<dir>/uas.msg`.
pub fn sipp_echo(dir: &Path, port: u16) -> Proc {
    let p = port.to_string();
    let mp = free_udp_port().to_string();
    sipp(
        dir,
        "uas",
        "uas-echo.xml",
        &[
            "-i",
            "127.0.0.1",
            "-p",
            &p,
            "-mi",
            "127.0.0.1",
            "-mp",
            &mp,
            "-rtp_echo",
            "-aa",
        ],
    )
}
