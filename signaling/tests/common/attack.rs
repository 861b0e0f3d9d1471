//! The attack suite's tools: a UDP endpoint on a loopback address (the attacker on 127.0.0.66,
//! or a test socket on 127.0.0.1 acting as the SIP far end or the outbound proxy) that keeps
//! everything it receives, and helpers to describe what an attacker got.

use std::net::SocketAddr;
use std::time::Duration;

use signaling::sip::msg::SipMsg;
use tokio::net::UdpSocket;

use super::Gateway;

/// The attacker's address: another loopback address, never on the signaling path.
pub const ATTACKER_IP: &str = "127.0.0.66";

/// Most datagrams an endpoint keeps unconsumed (bounded whatever the gateway sends).
const INBOX_CAP: usize = 10_000;

/// A UDP endpoint that records what it receives.
pub struct Udp {
    sock: UdpSocket,
    pub addr: SocketAddr,
    /// Datagrams received and not yet consumed by [`Udp::wait_for`] or [`Udp::collect`].
    inbox: Vec<(SocketAddr, Vec<u8>)>,
}

impl Udp {
    /// Binds an OS-chosen port on `ip`.
    pub async fn bind(ip: &str) -> Udp {
        let sock = UdpSocket::bind((ip, 0))
            .await
            .unwrap_or_else(|e| panic!("cannot bind {ip}: {e}"));
        let addr = sock.local_addr().unwrap();
        Udp {
            sock,
            addr,
            inbox: Vec::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sends `bytes` to the gateway's SIP/UDP port on 127.0.0.1.
    pub async fn send(&self, gw_port: u16, bytes: &[u8]) {
        self.sock
            .send_to(bytes, ("127.0.0.1", gw_port))
            .await
            .unwrap();
    }

    pub async fn send_msg(&self, gw_port: u16, msg: &SipMsg) {
        self.send(gw_port, &msg.to_bytes()).await;
    }

    async fn recv_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let mut buf = vec![0u8; 65536];
        match tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => Some((from, buf[..n].to_vec())),
            _ => None,
        }
    }

    /// Everything kept plus everything that arrives within `d`.
    pub async fn collect(&mut self, d: Duration) -> Vec<(SocketAddr, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + d;
        let mut got = std::mem::take(&mut self.inbox);
        while got.len() < INBOX_CAP {
            match self.recv_until(deadline).await {
                Some(x) => got.push(x),
                None => break,
            }
        }
        got
    }

    /// The next SIP message matching `pred` within `limit`; other datagrams are kept.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        pred: impl Fn(&SipMsg) -> bool,
    ) -> Option<(SocketAddr, SipMsg)> {
        if let Some(i) = self
            .inbox
            .iter()
            .position(|(_, b)| SipMsg::parse(b).is_ok_and(|m| pred(&m)))
        {
            let (from, b) = self.inbox.remove(i);
            return Some((from, SipMsg::parse(&b).unwrap()));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (from, b) = self.recv_until(deadline).await?;
            if let Ok(m) = SipMsg::parse(&b) {
                if pred(&m) {
                    return Some((from, m));
                }
            }
            if self.inbox.len() < INBOX_CAP {
                self.inbox.push((from, b));
            }
        }
    }
}

/// The first line of a datagram, for messages.
pub fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().next().unwrap_or_default().to_string()
}

/// A short account of datagrams received: count, bytes, and each one's first line and size.
pub fn describe(got: &[(SocketAddr, Vec<u8>)]) -> String {
    let bytes: usize = got.iter().map(|(_, b)| b.len()).sum();
    let mut s = format!("{} datagram(s), {bytes} bytes", got.len());
    for (from, b) in got.iter().take(12) {
        s.push_str(&format!(
            "\n  from {from}: {:?} ({} B)",
            first_line(b),
            b.len()
        ));
    }
    if got.len() > 12 {
        s.push_str(&format!("\n  … {} more", got.len() - 12));
    }
    s
}

/// The last `n` lines of the gateway's log.
pub fn log_tail(gw: &Gateway, n: usize) -> String {
    let log = gw.log.lock().unwrap();
    let from = log.len().saturating_sub(n);
    log[from..].join("\n")
}

/// The gateway's `/metrics` text.
pub async fn metrics(gw: &Gateway) -> String {
    super::https_get(gw.https_port, "/metrics", "").await.body
}

/// A plain RTP audio offer or answer (PCMU) with `ip` in its `c=` line.
pub fn plain_sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=far 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=sendrecv\r\n"
    )
}

/// A response to `req` with `to_tag`, a Contact, and an SDP body when `sdp` is not empty.
pub fn response(req: &SipMsg, code: u16, to_tag: &str, contact: &str, sdp: &str) -> SipMsg {
    let reason = signaling::sip::msg::reason_phrase(code);
    let mut r = req.response(code, reason, Some(to_tag));
    if !contact.is_empty() {
        r.push_header("Contact", contact);
    }
    if !sdp.is_empty() {
        r.push_header("Content-Type", "application/sdp");
        r.body = sdp.as_bytes().to_vec();
    }
    r
}

/// Whether `s` is at least `min` hex digits and nothing else.
pub fn is_hex(s: &str, min: usize) -> bool {
    s.len() >= min && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Identifiers that look like a counter or share a fixed part: two with the same first 8
/// characters, or whose first 16 hex digits differ by less than 2^32. Returns the offending pair.
pub fn related_pair(ids: &[String]) -> Option<(String, String)> {
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            let (pa, pb) = (&a[..a.len().min(8)], &b[..b.len().min(8)]);
            let close = match (head_u64(a), head_u64(b)) {
                (Some(x), Some(y)) => x.abs_diff(y) < 1 << 32,
                _ => false,
            };
            if pa == pb || close {
                return Some((a.clone(), b.clone()));
            }
        }
    }
    None
}

fn head_u64(s: &str) -> Option<u64> {
    let head = s.get(..16)?;
    u64::from_str_radix(head, 16).ok()
}
