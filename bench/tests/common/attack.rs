//! The media attack tests' actors, all on loopback: a SIP far end on 127.0.0.1 that answers
//! when told (plain RTP, PCMU, its own marked stream), a browser (the load generator's WSS UA
//! and client-role WebRTC leg, sending marked SRTP and decrypting what comes back), and an
//! attacker on 127.0.0.66 that never sees the signaling and counts every datagram it gets.
//!
//! Every RTP payload starts with a 4-byte mark and a 32-bit sequence number, so that each side
//! can tell whose media reached it.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bench::peer::{ClientLeg, Received};
use bench::ua::{ua_config, Dialog, Ua};
use engine::proto::dtls::DtlsIdentity;
use engine::proto::ice::IceCredentials;
use engine::proto::wire::RtpHeader;
use signaling::sdp::model::Sdp;
use signaling::sip::msg::{Method, SipMsg};
use tokio::net::UdpSocket;

/// The attacker's address: another loopback address, never on the signaling path.
pub(crate) const ATTACKER_IP: &str = "127.0.0.66";

/// Payload marks.
pub(crate) const BROWSER_MARK: [u8; 4] = *b"BRWS";
pub(crate) const FAR_MARK: [u8; 4] = *b"FARE";
pub(crate) const ATTACKER_MARK: [u8; 4] = *b"ATCK";

/// G.711 at 20 ms.
pub(crate) const PTIME: Duration = Duration::from_millis(20);
/// Longest any actor runs, whatever the test asks.
const ACTOR_LIMIT: Duration = Duration::from_secs(60);

/// A PCMU packet (PT 0, 160 bytes of payload) whose payload starts with `mark` and `seq`.
pub(crate) fn rtp_packet(mark: [u8; 4], ssrc: u32, seq: u32) -> Vec<u8> {
    let mut p = vec![0u8; 12 + 160];
    p[0] = 0x80;
    p[1] = 0; // PCMU: negotiated on every leg of these tests
    p[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    p[4..8].copy_from_slice(&seq.wrapping_mul(160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p[12..16].copy_from_slice(&mark);
    p[16..20].copy_from_slice(&seq.to_be_bytes());
    p[20..].fill(0xff);
    p
}

/// The mark and sequence number of a plain RTP packet built by [`rtp_packet`].
pub(crate) fn mark_of(pkt: &[u8]) -> Option<([u8; 4], u32)> {
    let h = RtpHeader::parse(pkt).ok()?;
    let p = h.payload();
    if p.len() < 8 {
        return None;
    }
    Some((
        p[..4].try_into().ok()?,
        u32::from_be_bytes(p[4..8].try_into().ok()?),
    ))
}

/// Packets of one marked stream received: their sequence numbers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    seqs: Vec<u32>,
}

impl Seen {
    fn add(&mut self, seq: u32) {
        if self.seqs.len() < 1_000_000 {
            self.seqs.push(seq);
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.seqs.len()
    }

    /// How many of the packets sent (send times indexed by sequence number) within `window`
    /// arrived: (sent in the window, of them received).
    pub(crate) fn delivered(
        &self,
        sent_at: &[Instant],
        window: (Instant, Instant),
    ) -> (usize, usize) {
        let mut got = vec![false; sent_at.len()];
        for &s in &self.seqs {
            if let Some(g) = got.get_mut(s as usize) {
                *g = true;
            }
        }
        let inside: Vec<usize> = (0..sent_at.len())
            .filter(|&i| sent_at[i] >= window.0 && sent_at[i] <= window.1)
            .collect();
        let received = inside.iter().filter(|&&i| got[i]).count();
        (inside.len(), received)
    }
}

/// What an attacker got from the gateway, and what it sent.
#[derive(Debug, Default, Clone)]
pub(crate) struct AttackerReport {
    /// Datagrams it sent (RTP to every port of the range, or SIP).
    pub(crate) sent: u64,
    /// Datagrams and bytes it received, whatever they were.
    pub(crate) received: u64,
    pub(crate) received_bytes: u64,
    /// The first few: source and size, and the mark when the datagram is RTP.
    pub(crate) samples: Vec<(SocketAddr, usize, Option<[u8; 4]>)>,
}

impl AttackerReport {
    fn record(&mut self, from: SocketAddr, pkt: &[u8]) {
        self.received += 1;
        self.received_bytes += pkt.len() as u64;
        if self.samples.len() < 5 {
            self.samples
                .push((from, pkt.len(), mark_of(pkt).map(|(m, _)| m)));
        }
    }

    /// One line for assertion messages.
    pub(crate) fn describe(&self) -> String {
        let samples: Vec<String> = self
            .samples
            .iter()
            .map(|(from, n, mark)| {
                let mark = mark.map(|m| String::from_utf8_lossy(&m).into_owned());
                format!("{n} B from {from} (mark {mark:?})")
            })
            .collect();
        format!(
            "{} datagram(s), {} bytes (it sent {}); first: [{}]",
            self.received,
            self.received_bytes,
            self.sent,
            samples.join(", ")
        )
    }
}

/// An attacker on 127.0.0.66 spraying RTP (PT 0, [`ATTACKER_MARK`]) at every port of `ports`
/// on 127.0.0.1, one packet per port every `interval`, from one socket; it counts whatever
/// comes back to that socket.
pub(crate) struct Sprayer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<AttackerReport>,
}

impl Sprayer {
    /// Starts spraying at `start` (and listening at once).
    pub(crate) async fn start(
        ports: RangeInclusive<u16>,
        interval: Duration,
        start: Instant,
    ) -> Sprayer {
        let sock = UdpSocket::bind((ATTACKER_IP, 0)).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut rep = AttackerReport::default();
            let mut buf = vec![0u8; 2048];
            let mut next = start;
            let mut cycle = 0u32;
            let limit = Instant::now() + ACTOR_LIMIT;
            while !flag.load(Ordering::Relaxed) && Instant::now() < limit {
                tokio::select! {
                    r = sock.recv_from(&mut buf) => {
                        if let Ok((n, from)) = r {
                            rep.record(from, &buf[..n]);
                        }
                    }
                    _ = tokio::time::sleep_until(next.into()) => {
                        for port in ports.clone() {
                            let pkt = rtp_packet(ATTACKER_MARK, 0xa77a_c4e5, cycle);
                            if sock.send_to(&pkt, ("127.0.0.1", port)).await.is_ok() {
                                rep.sent += 1;
                            }
                        }
                        cycle += 1;
                        next += interval;
                    }
                }
            }
            // What was already on its way.
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
            {
                rep.record(from, &buf[..n]);
            }
            rep
        });
        Sprayer { stop, task }
    }

    pub(crate) async fn finish(self) -> AttackerReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// A UDP socket on 127.0.0.66 that only listens (the attacker's media address in a forged
/// answer), counting what it gets.
pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    sock: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<AttackerReport>,
}

impl Listener {
    pub(crate) async fn bind(ip: &str) -> Listener {
        let sock = Arc::new(UdpSocket::bind((ip, 0)).await.unwrap());
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, rx) = (stop.clone(), sock.clone());
        let task = tokio::spawn(async move {
            let mut rep = AttackerReport::default();
            let mut buf = vec![0u8; 2048];
            let limit = Instant::now() + ACTOR_LIMIT;
            while !flag.load(Ordering::Relaxed) && Instant::now() < limit {
                if let Ok(Ok((n, from))) =
                    tokio::time::timeout(Duration::from_millis(50), rx.recv_from(&mut buf)).await
                {
                    rep.record(from, &buf[..n]);
                }
            }
            rep
        });
        Listener {
            addr,
            sock,
            stop,
            task,
        }
    }

    /// Sends one datagram from this socket.
    pub(crate) async fn send_to(&self, bytes: &[u8], to: SocketAddr) {
        let _ = self.sock.send_to(bytes, to).await;
    }

    pub(crate) async fn finish(self) -> AttackerReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// The SIP far end's signaling socket on 127.0.0.1 (the gateway's OUTBOUND_PROXY).
pub(crate) struct FarSip {
    sock: UdpSocket,
    pub(crate) port: u16,
}

/// The far end's tag.
pub(crate) const FAR_TAG: &str = "fa7e0c2d9a1b3776";

impl FarSip {
    pub(crate) async fn bind() -> FarSip {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        FarSip { sock, port }
    }

    /// The next request with `method` within `limit` (others ignored; a BYE is answered 200),
    /// and where it came from.
    pub(crate) async fn request(
        &self,
        method: Method,
        limit: Duration,
    ) -> Option<(SipMsg, SocketAddr)> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            let Ok(m) = SipMsg::parse(&buf[..n]) else {
                continue;
            };
            if m.method() == Some(&Method::Bye) {
                self.send(&m.response(200, "OK", None), from).await;
            }
            if m.method() == Some(&method) {
                return Some((m, from));
            }
        }
    }

    pub(crate) async fn send(&self, m: &SipMsg, to: SocketAddr) {
        let _ = self.sock.send_to(&m.to_bytes(), to).await;
    }

    /// Answers BYEs (and ignores everything else) until `task` ends; its output.
    pub(crate) async fn serve<T>(&self, mut task: tokio::task::JoinHandle<T>) -> T {
        let limit = tokio::time::Instant::now() + ACTOR_LIMIT;
        loop {
            tokio::select! {
                r = &mut task => return r.expect("the browser task does not panic"),
                _ = self.request(Method::Bye, Duration::from_millis(200)) => {}
                _ = tokio::time::sleep_until(limit) => panic!("the browser ran past {ACTOR_LIMIT:?}"),
            }
        }
    }
}

/// A response to `req` with our tag, a Contact at `contact`, and `sdp` when not empty.
pub(crate) fn response(req: &SipMsg, code: u16, contact: SocketAddr, sdp: &str) -> SipMsg {
    response_as(req, code, FAR_TAG, contact, sdp)
}

/// The same with another To-tag (a forger's).
pub(crate) fn response_as(
    req: &SipMsg,
    code: u16,
    tag: &str,
    contact: SocketAddr,
    sdp: &str,
) -> SipMsg {
    let reason = signaling::sip::msg::reason_phrase(code);
    let mut r = req.response(code, reason, Some(tag));
    r.push_header("Contact", format!("<sip:echo@{contact}>"));
    if !sdp.is_empty() {
        r.push_header("Content-Type", "application/sdp");
        r.body = sdp.as_bytes().to_vec();
    }
    r
}

/// A plain RTP audio answer: PCMU at `addr`.
pub(crate) fn plain_answer(addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=far 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

/// The RTP address the gateway offered in `invite`'s SDP.
pub(crate) fn offered_rtp(invite: &SipMsg) -> SocketAddr {
    let sdp = Sdp::parse(&invite.body).expect("the gateway's INVITE carries an SDP offer");
    let m = sdp
        .media
        .iter()
        .find(|m| m.kind == "audio")
        .expect("an audio section");
    let ip = m
        .connection()
        .or_else(|| sdp.connection())
        .expect("a c= line");
    SocketAddr::new(ip, m.port)
}

/// The far end's media: its own marked stream (from `start` on, every 20 ms, from its SDP
/// address to the gateway's), and what reaches it, by mark.
#[derive(Debug, Default)]
pub(crate) struct FarMediaReport {
    /// Send time of each of our packets, indexed by sequence number.
    pub(crate) sent_at: Vec<Instant>,
    /// The browser's packets that arrived.
    pub(crate) browser: Seen,
    /// The attacker's packets that arrived (relayed by the gateway).
    pub(crate) attacker: usize,
    /// Anything else.
    pub(crate) other: usize,
    /// Sources other than the gateway's offered address.
    pub(crate) strange_sources: Vec<SocketAddr>,
}

pub(crate) struct FarMedia {
    pub(crate) addr: SocketAddr,
    gateway: Arc<std::sync::Mutex<Option<(SocketAddr, Instant)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<FarMediaReport>,
}

impl FarMedia {
    pub(crate) async fn bind() -> FarMedia {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let gateway: Arc<std::sync::Mutex<Option<(SocketAddr, Instant)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, target) = (stop.clone(), gateway.clone());
        let task = tokio::spawn(async move {
            let mut rep = FarMediaReport::default();
            let mut buf = vec![0u8; 2048];
            let mut next: Option<Instant> = None;
            let limit = Instant::now() + ACTOR_LIMIT;
            while !flag.load(Ordering::Relaxed) && Instant::now() < limit {
                let to = *target.lock().unwrap();
                if next.is_none() {
                    next = to.map(|(_, start)| start);
                }
                let wake = next.unwrap_or_else(|| Instant::now() + Duration::from_millis(20));
                tokio::select! {
                    r = sock.recv_from(&mut buf) => {
                        let Ok((n, from)) = r else { continue };
                        if to.is_some_and(|(g, _)| g != from) && rep.strange_sources.len() < 8 {
                            rep.strange_sources.push(from);
                        }
                        match mark_of(&buf[..n]) {
                            Some((BROWSER_MARK, seq)) => rep.browser.add(seq),
                            Some((ATTACKER_MARK, _)) => rep.attacker += 1,
                            _ => rep.other += 1,
                        }
                    }
                    _ = tokio::time::sleep_until(wake.into()) => {
                        if let (Some((g, _)), Some(t)) = (to, next) {
                            let seq = rep.sent_at.len() as u32;
                            let _ = sock.send_to(&rtp_packet(FAR_MARK, 0xfa7e_0001, seq), g).await;
                            rep.sent_at.push(Instant::now());
                            next = Some(t + PTIME);
                        }
                    }
                }
            }
            rep
        });
        FarMedia {
            addr,
            gateway,
            stop,
            task,
        }
    }

    /// Sends our stream to `gateway` from `start` on.
    pub(crate) fn send_to(&self, gateway: SocketAddr, start: Instant) {
        *self.gateway.lock().unwrap() = Some((gateway, start));
    }

    pub(crate) async fn finish(self) -> FarMediaReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// What the browser saw of its call.
#[derive(Debug, Default)]
pub(crate) struct BrowserReport {
    /// The INVITE's final status.
    pub(crate) status: u16,
    /// When SRTP was ready and when the browser stopped sending.
    pub(crate) media: Option<(Instant, Instant)>,
    /// Send time of each of our packets, indexed by sequence number.
    pub(crate) sent_at: Vec<Instant>,
    /// The far end's packets that arrived (decrypted).
    pub(crate) far: Seen,
    /// The attacker's packets that arrived.
    pub(crate) attacker: usize,
    /// Anything else that decrypted, and what failed SRTP.
    pub(crate) other: usize,
    pub(crate) bad_srtp: usize,
    /// Why the media leg failed, if it did.
    pub(crate) failure: Option<String>,
    /// The BYE's status (0: none).
    pub(crate) bye: u16,
}

/// A browser calls `sip:echo@127.0.0.1` through the gateway's WSS port, and once answered runs
/// ICE, DTLS and SRTP (PCMU at 20 ms, [`BROWSER_MARK`]) for `hold`, then hangs up.
pub(crate) async fn browser_call(wss: u16, hold: Duration) -> anyhow::Result<BrowserReport> {
    let tls = bench::ua::tls_config()?;
    let addr: SocketAddr = ([127, 0, 0, 1], wss).into();
    let mut ua = Ua::connect_to(
        tls,
        addr,
        "/ws",
        ua_config("alice", "alicePassword", "127.0.0.1", "atk".into()),
    )
    .await?;
    let identity = DtlsIdentity::generate(SystemTime::now())?;
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let ice = IceCredentials::random()?;
    let offer = bench::sdp::chrome_offer(
        0x4154_4b00,
        sock.local_addr()?.port(),
        &ice,
        identity.fingerprint(),
    );
    let mut rep = BrowserReport::default();
    let mut dialog: Dialog = ua
        .invite("sip:echo@127.0.0.1", &offer, Duration::from_secs(20))
        .await?;
    rep.status = dialog.final_status;
    match dialog.final_status {
        0 => anyhow::bail!("INVITE: no final response in 20 s"),
        200..=299 => {}
        _ => {
            ua.close().await;
            return Ok(rep);
        }
    }
    let remote = bench::sdp::remote_media(dialog.answer_sdp.as_bytes())
        .map_err(|e| anyhow::anyhow!("answer {e}"))?;
    let leg = ClientLeg::new(ice, identity, remote, 0x4154_4b01, Instant::now());
    media(leg, &sock, hold, &mut rep).await;
    rep.bye = ua.bye(&mut dialog).await.unwrap_or(0);
    ua.close().await;
    Ok(rep)
}

async fn media(mut leg: ClientLeg, sock: &UdpSocket, hold: Duration, rep: &mut BrowserReport) {
    let setup_deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 2048];
    let mut next_rtp: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    loop {
        let now = Instant::now();
        leg.handle_timeout(now);
        while let Some(d) = leg.poll_transmit() {
            let _ = sock.send_to(&d, leg.remote_addr()).await;
        }
        if let bench::peer::LegState::Failed(why) = leg.state() {
            rep.failure = Some(why.clone());
            return;
        }
        if leg.is_connected() && end.is_none() {
            end = Some(now + hold);
            next_rtp = Some(now);
            rep.media = Some((now, now + hold));
        }
        if end.is_none() && now >= setup_deadline {
            rep.failure = Some(format!("no SRTP within 10 s: {:?}", leg.state()));
            return;
        }
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if let Some(t) = next_rtp.filter(|t| now >= *t) {
            let seq = rep.sent_at.len() as u32;
            let mut pkt = rtp_packet(BROWSER_MARK, 0xb705_0001, seq);
            let len = pkt.len();
            pkt.resize(len + engine::proto::srtp::MAX_TRAILER_LEN, 0);
            if let Ok(n) = leg.protect(&mut pkt, len) {
                let _ = sock.send_to(&pkt[..n], leg.remote_addr()).await;
            }
            rep.sent_at.push(Instant::now());
            next_rtp = Some(t + PTIME);
        }
        let mut wake = leg.poll_timeout().min(setup_deadline);
        for t in [next_rtp, end].into_iter().flatten() {
            wake = wake.min(t);
        }
        if let Ok(Ok((n, _))) = tokio::time::timeout_at(wake.into(), sock.recv_from(&mut buf)).await
        {
            match leg.handle_input(Instant::now(), &mut buf, n) {
                Received::Rtp(n) => match mark_of(&buf[..n]) {
                    Some((FAR_MARK, seq)) => rep.far.add(seq),
                    Some((ATTACKER_MARK, _)) => rep.attacker += 1,
                    _ => rep.other += 1,
                },
                Received::BadSrtp => rep.bad_srtp += 1,
                Received::Control => {}
            }
        }
    }
    // Late packets still on their way.
    let drain = Instant::now() + Duration::from_millis(200);
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(drain.into(), sock.recv_from(&mut buf)).await
    {
        if let Received::Rtp(n) = leg.handle_input(Instant::now(), &mut buf, n) {
            match mark_of(&buf[..n]) {
                Some((FAR_MARK, seq)) => rep.far.add(seq),
                Some((ATTACKER_MARK, _)) => rep.attacker += 1,
                _ => rep.other += 1,
            }
        }
    }
}
