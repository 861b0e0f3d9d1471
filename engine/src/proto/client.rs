//! The browser's media leg in the client role, built from engine::proto (the gateway's own
//! STUN, DTLS and SRTP code): ICE as the controlling agent with aggressive nomination
//! (RFC 8445 §7.2.2, USE-CANDIDATE on every check, MESSAGE-INTEGRITY + FINGERPRINT), DTLS in the
//! role the answer's `a=setup` implies (RFC 5763 §5), SRTP from the exported keys (RFC 5764).
//!
//! Sans-IO: the caller feeds datagrams and the time, and sends what [`ClientLeg::poll_transmit`]
//! returns. The load generator (bench) plays its browsers with it.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::Setup;
use crate::proto::dtls::{
    DtlsConfig, DtlsEndpoint, DtlsEvent, DtlsIdentity, DtlsRole, Fingerprint,
};
use crate::proto::ice::IceCredentials;
use crate::proto::srtp::{Direction, SrtpError, SrtpSession};
use crate::proto::stun::{Class, StunMessage, StunWriter, METHOD_BINDING};
use crate::proto::wire::{demux, PacketKind};

/// How often a connectivity check is repeated until it succeeds.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Consent freshness (RFC 7675): one check every few seconds once connected.
const CONSENT_INTERVAL: Duration = Duration::from_millis(2500);

/// The far end's media parameters from its SDP answer (or offer).
#[derive(Debug, Clone)]
pub struct RemoteMedia {
    /// Where to send: the first host candidate, or `c=` + `m=` port.
    pub addr: SocketAddr,
    /// `a=ice-ufrag` / `a=ice-pwd`.
    pub ice: IceCredentials,
    /// `a=fingerprint`.
    pub fingerprint: Fingerprint,
    /// `a=setup` of the far end.
    pub setup: Setup,
    /// Whether the far end is ICE-lite (it then never sends checks of its own).
    pub ice_lite: bool,
}

/// Where the leg is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegState {
    /// Sending checks, waiting for a success response.
    Checking,
    /// ICE done, DTLS handshake running.
    Handshaking,
    /// SRTP keys in place.
    Connected,
    /// Given up; the reason.
    Failed(String),
}

/// What a received datagram turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// An RTP packet, unprotected in place: its length in the buffer.
    Rtp(usize),
    /// STUN, DTLS or RTCP: handled or ignored.
    Control,
    /// An RTP packet that failed SRTP unprotect (or arrived before the keys).
    BadSrtp,
}

/// One client-role WebRTC leg (one 5-tuple, rtcp-mux, BUNDLE of one audio section).
pub struct ClientLeg {
    local: IceCredentials,
    remote: RemoteMedia,
    identity: DtlsIdentity,
    tie_breaker: u64,
    controlling: bool,
    tx_counter: u64,
    /// Transaction ids of the last checks sent: a response to an earlier retransmission counts.
    pending: [Option<[u8; 12]>; 4],
    next_check: Instant,
    state: LegState,
    dtls: Option<DtlsEndpoint>,
    srtp_in: Option<SrtpSession>,
    srtp_out: Option<SrtpSession>,
    out: VecDeque<Vec<u8>>,
    /// When ICE succeeded and when SRTP became ready.
    pub ice_done: Option<Instant>,
    /// When the DTLS handshake finished.
    pub dtls_done: Option<Instant>,
}

impl std::fmt::Debug for ClientLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLeg")
            .field("remote", &self.remote.addr)
            .field("state", &self.state)
            .finish()
    }
}

impl ClientLeg {
    /// A leg with our credentials `local` and identity, towards `remote`. `controlling` is true
    /// for a full agent facing ICE-lite (the gateway), as a browser is.
    pub fn new(
        local: IceCredentials,
        identity: DtlsIdentity,
        remote: RemoteMedia,
        tie_breaker: u64,
        now: Instant,
    ) -> Self {
        let mut leg = Self {
            local,
            controlling: true,
            remote,
            identity,
            tie_breaker,
            tx_counter: 0,
            pending: [None; 4],
            next_check: now,
            state: LegState::Checking,
            dtls: None,
            srtp_in: None,
            srtp_out: None,
            out: VecDeque::new(),
            ice_done: None,
            dtls_done: None,
        };
        // As DTLS server, be ready for a ClientHello that can arrive right after the far end's
        // own check succeeds (a full-ICE far end such as rtpengine), before ours does.
        if leg.dtls_role() == DtlsRole::Server {
            leg.start_dtls(now);
        }
        leg
    }

    /// The current state.
    pub fn state(&self) -> &LegState {
        &self.state
    }

    /// Where datagrams go.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote.addr
    }

    /// Our DTLS role from the far end's `a=setup` (we offered `actpass`, or answered `active`).
    fn dtls_role(&self) -> DtlsRole {
        match self.remote.setup {
            Setup::Passive | Setup::ActPass => DtlsRole::Client,
            Setup::Active => DtlsRole::Server,
        }
    }

    fn fail(&mut self, why: String) {
        if !matches!(self.state, LegState::Failed(_)) {
            self.state = LegState::Failed(why);
        }
    }

    fn send_check(&mut self) {
        self.tx_counter += 1;
        let mut txid = [0u8; 12];
        txid[..8].copy_from_slice(&self.tx_counter.to_be_bytes());
        txid[8..].copy_from_slice(&(self.tie_breaker as u32).to_be_bytes());
        let user = format!("{}:{}", self.remote.ice.ufrag, self.local.ufrag);
        let mut buf = vec![0u8; 256];
        let built = (|| {
            let mut w = StunWriter::new(&mut buf, METHOD_BINDING, Class::Request, &txid)?
                .username(user.as_bytes())?
                .priority(2_122_260_223)?;
            w = if self.controlling {
                w.ice_controlling(self.tie_breaker)?.use_candidate()?
            } else {
                w.ice_controlled(self.tie_breaker)?
            };
            Ok::<usize, crate::proto::stun::StunError>(
                w.message_integrity(self.remote.ice.pwd.as_bytes())?
                    .fingerprint()?
                    .finish(),
            )
        })();
        match built {
            Ok(n) => {
                buf.truncate(n);
                self.out.push_back(buf);
                self.pending[(self.tx_counter % 4) as usize] = Some(txid);
            }
            Err(e) => self.fail(format!("STUN build: {e}")),
        }
    }

    fn start_dtls(&mut self, now: Instant) {
        let cfg = DtlsConfig::new(self.dtls_role(), self.remote.fingerprint.clone());
        match DtlsEndpoint::new(&self.identity, cfg, now) {
            Ok(ep) => {
                self.dtls = Some(ep);
                self.pump_dtls();
            }
            Err(e) => self.fail(format!("DTLS setup: {e}")),
        }
    }

    fn pump_dtls(&mut self) {
        let Some(ep) = self.dtls.as_mut() else {
            return;
        };
        while let Some(d) = ep.poll_transmit() {
            self.out.push_back(d);
        }
        let mut failed = None;
        while let Some(ev) = ep.poll_event() {
            match ev {
                DtlsEvent::Connected { profile, keys } => {
                    let inb = SrtpSession::new(profile, &keys.remote, Direction::Inbound);
                    let outb = SrtpSession::new(profile, &keys.local, Direction::Outbound);
                    match (inb, outb) {
                        (Ok(i), Ok(o)) => {
                            self.srtp_in = Some(i);
                            self.srtp_out = Some(o);
                        }
                        (Err(e), _) | (_, Err(e)) => failed = Some(format!("SRTP setup: {e}")),
                    }
                }
                DtlsEvent::Failed(e) => failed = Some(format!("DTLS: {e}")),
                DtlsEvent::Closed => failed = Some("DTLS closed by peer".into()),
            }
        }
        if let Some(f) = failed {
            self.fail(f);
        } else {
            self.update_state();
        }
    }

    /// Checking until ICE succeeds, then Handshaking until the SRTP keys are in place.
    fn update_state(&mut self) {
        if matches!(self.state, LegState::Failed(_)) {
            return;
        }
        self.state = match (self.ice_done, &self.srtp_out) {
            (None, _) => LegState::Checking,
            (Some(_), None) => LegState::Handshaking,
            (Some(_), Some(_)) => LegState::Connected,
        };
    }

    /// Feeds one datagram from the far end; an RTP packet is unprotected in place.
    pub fn handle_input(&mut self, now: Instant, buf: &mut [u8], len: usize) -> Received {
        let data = &mut buf[..len];
        match demux(data) {
            PacketKind::Stun => {
                self.handle_stun(now, data);
                Received::Control
            }
            PacketKind::Dtls => {
                if let Some(ep) = self.dtls.as_mut() {
                    ep.handle_input(now, data);
                    let had_keys = self.srtp_out.is_some();
                    self.pump_dtls();
                    if !had_keys && self.srtp_out.is_some() {
                        self.dtls_done = Some(now);
                    }
                }
                Received::Control
            }
            PacketKind::Rtp => match self.srtp_in.as_mut() {
                Some(s) => match s.unprotect_rtp(buf, len) {
                    Ok(n) => Received::Rtp(n),
                    Err(_) => Received::BadSrtp,
                },
                None => Received::BadSrtp,
            },
            PacketKind::Rtcp | PacketKind::Unknown => Received::Control,
        }
    }

    fn is_pending(&self, txid: &[u8; 12]) -> bool {
        self.pending.iter().flatten().any(|p| p == txid)
    }

    fn handle_stun(&mut self, now: Instant, data: &[u8]) {
        let Ok(m) = StunMessage::parse(data) else {
            return;
        };
        match m.class() {
            Class::Success if self.is_pending(m.txid()) => {
                if m.verify_integrity(self.remote.ice.pwd.as_bytes()).is_err() {
                    self.fail("STUN response failed MESSAGE-INTEGRITY".into());
                    return;
                }
                self.pending = [None; 4];
                if self.ice_done.is_none() {
                    self.ice_done = Some(now);
                    self.next_check = now + CONSENT_INTERVAL;
                    if self.dtls.is_none() {
                        self.start_dtls(now);
                    }
                    self.update_state();
                }
            }
            Class::Error if self.is_pending(m.txid()) => {
                let code = m.error_code().map_or(0, |(c, _)| c);
                self.fail(format!("STUN error response {code}"));
            }
            Class::Request if m.is_binding_request() => {
                // A full-ICE far end checks us too: answer with our password.
                let mut out = vec![0u8; 256];
                if let Ok(n) = crate::proto::stun::build_binding_success(
                    &mut out,
                    m.txid(),
                    self.remote.addr,
                    self.local.pwd.as_bytes(),
                ) {
                    out.truncate(n);
                    self.out.push_back(out);
                }
            }
            _ => {}
        }
    }

    /// Timers: check retransmission and consent, DTLS retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, LegState::Failed(_)) {
            return;
        }
        if now >= self.next_check {
            let interval = if self.state == LegState::Checking {
                CHECK_INTERVAL
            } else {
                CONSENT_INTERVAL
            };
            self.next_check = now + interval;
            self.send_check();
        }
        if let Some(ep) = self.dtls.as_mut() {
            ep.handle_timeout(now);
            self.pump_dtls();
        }
    }

    /// When [`ClientLeg::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        match self.dtls.as_ref().and_then(DtlsEndpoint::poll_timeout) {
            Some(d) if !self.is_connected() => d.min(self.next_check),
            _ => self.next_check,
        }
    }

    /// The next datagram to send to [`ClientLeg::remote_addr`].
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// True once SRTP is ready both ways.
    pub fn is_connected(&self) -> bool {
        self.state == LegState::Connected
    }

    /// Protects an RTCP packet of `len` bytes in place (SRTCP), with the same room needed.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        match self.srtp_out.as_mut() {
            Some(s) => s.protect_rtcp(buf, len),
            None => Err(SrtpError::WrongDirection),
        }
    }

    /// Protects an RTP packet of `len` bytes in place; the buffer needs
    /// [`crate::proto::srtp::MAX_TRAILER_LEN`] bytes of room after it.
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        match self.srtp_out.as_mut() {
            Some(s) => s.protect_rtp(buf, len),
            None => Err(SrtpError::WrongDirection),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn ident() -> DtlsIdentity {
        DtlsIdentity::generate(UNIX_EPOCH + Duration::from_secs(1_750_000_000)).unwrap()
    }

    /// Two legs facing each other (one controlling, one answering with `active`) complete ICE,
    /// DTLS and SRTP on a virtual clock and pass an RTP packet.
    #[test]
    fn two_legs_connect_and_carry_rtp() {
        let t0 = testkit::VirtualClock::new().now();
        let (ia, ib) = (ident(), ident());
        let (ca, cb) = (
            IceCredentials::random().unwrap(),
            IceCredentials::random().unwrap(),
        );
        let a_addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:40002".parse().unwrap();
        let mut a = ClientLeg::new(
            ca.clone(),
            ia.clone(),
            RemoteMedia {
                addr: b_addr,
                ice: cb.clone(),
                fingerprint: ib.fingerprint().clone(),
                setup: Setup::Active,
                ice_lite: false,
            },
            1,
            t0,
        );
        let mut b = ClientLeg::new(
            cb,
            ib,
            RemoteMedia {
                addr: a_addr,
                ice: ca,
                fingerprint: ia.fingerprint().clone(),
                setup: Setup::Passive,
                ice_lite: false,
            },
            2,
            t0,
        );
        b.controlling = false;
        b.next_check = t0 + Duration::from_secs(3600);
        let mut now = t0;
        let mut buf = vec![0u8; 2048];
        for _ in 0..200 {
            a.handle_timeout(now);
            b.handle_timeout(now);
            // b's checks are disabled; it starts DTLS (server) when a's check arrives.
            let mut moved = false;
            while let Some(d) = a.poll_transmit() {
                moved = true;
                buf[..d.len()].copy_from_slice(&d);
                if b.ice_done.is_none() && demux(&d) == PacketKind::Stun {
                    b.ice_done = Some(now);
                    if b.dtls.is_none() {
                        b.start_dtls(now);
                    }
                }
                b.handle_input(now, &mut buf, d.len());
                b.update_state();
            }
            while let Some(d) = b.poll_transmit() {
                moved = true;
                buf[..d.len()].copy_from_slice(&d);
                a.handle_input(now, &mut buf, d.len());
            }
            if a.is_connected() && b.is_connected() {
                break;
            }
            if !moved {
                now += Duration::from_millis(10);
            }
        }
        assert!(a.is_connected(), "{:?}", a.state);
        assert!(b.is_connected(), "{:?}", b.state);
        buf[..12].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7]);
        buf[12..172].fill(0xff);
        let n = a.protect(&mut buf, 172).unwrap();
        assert!(n > 172);
        assert_eq!(b.handle_input(now, &mut buf, n), Received::Rtp(172));
        assert!(buf[12..172].iter().all(|&x| x == 0xff));
    }
}
