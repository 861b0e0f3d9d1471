//! Transactions, RFC 3261 §17 with the RFC 6026 Accepted states.
//!
//! Each transaction is a pure state machine: requests and responses come in with `now`, bytes
//! to send leave through `poll_transmit` (always to the transaction's one peer), events for the
//! core through `poll_event`, and `poll_timeout` says when to call `handle_timeout`. Over a
//! reliable transport (WebSocket) nothing is retransmitted and the wait timers are zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::msg::{Method, SipMsg, StartLine};

/// RFC 3261 §17.1.1.1 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerValues {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        TimerValues {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerValues {
    fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// INVITE or any other method: the two transaction kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Invite,
    NonInvite,
}

impl Kind {
    pub fn of(m: &Method) -> Kind {
        if *m == Method::Invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        }
    }
}

/// Client transaction states (§17.1.1 Figure 5, §17.1.2 Figure 6, RFC 6026 §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// The client transaction's timers: one slot each (A/E retransmit, B/F timeout, D/K linger, M).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientTimer {
    Retransmit,
    Timeout,
    Linger,
}

/// What a client transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response for the user (first copies only; retransmissions are absorbed, except 2xx to
    /// INVITE which the user must see to re-ACK).
    Response(SipMsg),
    /// Timer B or F: no final response in time (the user acts as if it got 408).
    Timeout,
}

/// A client transaction.
#[derive(Debug)]
pub struct ClientTxn {
    kind: Kind,
    reliable: bool,
    state: ClientState,
    request: SipMsg,
    wire: Vec<u8>,
    ack: Option<Vec<u8>>,
    interval: Duration,
    timers: [Option<Instant>; 3],
    tv: TimerValues,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
}

impl ClientTxn {
    /// Starts the transaction: the request is queued for sending at once.
    pub fn new(now: Instant, request: SipMsg, reliable: bool, tv: TimerValues) -> Self {
        let kind = Kind::of(request.method().unwrap_or(&Method::Options));
        let wire = request.to_bytes();
        let mut t = ClientTxn {
            kind,
            reliable,
            state: if kind == Kind::Invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request,
            wire: wire.clone(),
            ack: None,
            interval: tv.t1,
            timers: [None; 3],
            tv,
            out: VecDeque::from([wire]),
            events: VecDeque::new(),
        };
        if !reliable {
            t.set(ClientTimer::Retransmit, Some(now + tv.t1));
        }
        t.set(ClientTimer::Timeout, Some(now + tv.t64()));
        t
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn request(&self) -> &SipMsg {
        &self.request
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// No final response yet.
    pub fn is_pending(&self) -> bool {
        matches!(
            self.state,
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding
        )
    }

    fn set(&mut self, t: ClientTimer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    /// A CANCEL went out for this INVITE (or its user gave up on it): with no final response
    /// within 64*T1 the transaction ends with a timeout (RFC 3261 §9.1), where Proceeding
    /// alone would wait for ever.
    pub fn handle_cancelled(&mut self, now: Instant) {
        if self.is_pending() {
            let at = now + self.tv.t64();
            let t = &mut self.timers[ClientTimer::Timeout as usize];
            *t = Some(t.map_or(at, |old| old.min(at)));
        }
    }

    /// A response whose branch and CSeq method match this transaction.
    pub fn handle_response(&mut self, now: Instant, resp: SipMsg) {
        let Some(code) = resp.status() else { return };
        use ClientState::*;
        match (self.kind, self.state) {
            (Kind::Invite, Calling | Proceeding) => {
                self.set(ClientTimer::Retransmit, None);
                if code < 200 {
                    self.state = Proceeding;
                    // Timer B keeps running only in Calling (§17.1.1.2); the user's own
                    // timers (Expires, np_expires) govern a call that rings.
                    self.set(ClientTimer::Timeout, None);
                } else if code < 300 {
                    // RFC 6026: Accepted, so 2xx retransmissions reach the user, for 64*T1.
                    self.state = Accepted;
                    self.set(ClientTimer::Timeout, None);
                    self.set(ClientTimer::Linger, Some(now + self.tv.t64()));
                } else {
                    self.state = Completed;
                    self.set(ClientTimer::Timeout, None);
                    let ack = self.build_ack(&resp).to_bytes();
                    self.out.push_back(ack.clone());
                    self.ack = Some(ack);
                    let linger = if self.reliable {
                        Duration::ZERO
                    } else {
                        self.tv.t64()
                    };
                    self.set(ClientTimer::Linger, Some(now + linger));
                }
                self.events.push_back(ClientEvent::Response(resp));
            }
            // A retransmitted final response: ACK again (§17.1.1.2).
            (Kind::Invite, Completed) if code >= 300 => {
                if let Some(ack) = &self.ack {
                    self.out.push_back(ack.clone());
                }
            }
            (Kind::Invite, Accepted) if (200..300).contains(&code) => {
                self.events.push_back(ClientEvent::Response(resp));
            }
            (Kind::NonInvite, Trying | Proceeding) => {
                if code < 200 {
                    self.state = Proceeding;
                    if !self.reliable {
                        // Retransmit at T2 from now on (§17.1.2.2).
                        self.interval = self.tv.t2;
                    }
                } else {
                    self.state = Completed;
                    self.set(ClientTimer::Retransmit, None);
                    self.set(ClientTimer::Timeout, None);
                    let linger = if self.reliable {
                        Duration::ZERO
                    } else {
                        self.tv.t4
                    };
                    self.set(ClientTimer::Linger, Some(now + linger));
                }
                self.events.push_back(ClientEvent::Response(resp));
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for t in [
            ClientTimer::Retransmit,
            ClientTimer::Timeout,
            ClientTimer::Linger,
        ] {
            let Some(at) = self.timers[t as usize] else {
                continue;
            };
            if at > now {
                continue;
            }
            self.set(t, None);
            match t {
                ClientTimer::Retransmit => {
                    self.out.push_back(self.wire.clone());
                    self.interval = if self.kind == Kind::Invite {
                        self.interval * 2
                    } else {
                        (self.interval * 2).min(self.tv.t2)
                    };
                    if self.kind == Kind::Invite && self.state == ClientState::Calling
                        || self.kind == Kind::NonInvite
                    {
                        self.set(ClientTimer::Retransmit, Some(now + self.interval));
                    }
                }
                ClientTimer::Timeout => {
                    self.events.push_back(ClientEvent::Timeout);
                    self.terminate();
                    return;
                }
                ClientTimer::Linger => {
                    self.terminate();
                    return;
                }
            }
        }
    }

    fn terminate(&mut self) {
        self.state = ClientState::Terminated;
        self.timers = [None; 3];
    }

    /// The ACK for a non-2xx final response (§17.1.1.3).
    fn build_ack(&self, resp: &SipMsg) -> SipMsg {
        let uri = match &self.request.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => String::new(),
        };
        let mut ack = SipMsg {
            start: StartLine::Request {
                method: Method::Ack,
                uri,
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        if let Some(v) = self.request.header("Via") {
            ack.push_header("Via", v);
        }
        ack.push_header("Max-Forwards", "70");
        for name in ["From", "Call-ID"] {
            if let Some(v) = self.request.header(name) {
                ack.push_header(name, v);
            }
        }
        if let Some(to) = resp.header("To") {
            ack.push_header("To", to);
        }
        ack.push_header("CSeq", format!("{} ACK", self.request.cseq().seq));
        for r in self.request.headers_named("Route") {
            ack.push_header("Route", r);
        }
        ack
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }
}

/// Server transaction states (§17.2.1 Figure 7, §17.2.2 Figure 8, RFC 6026 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerTimer {
    /// G (non-2xx final) or the 2xx retransmission of the UAS core (§13.3.1.4) in Accepted.
    Retransmit,
    /// H (wait for ACK), J (non-INVITE linger), L (Accepted linger).
    Wait,
    /// I (absorb ACK retransmissions).
    Linger,
}

/// What a server transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H: the ACK for a non-2xx final response never came.
    AckTimeout,
    /// No ACK for a 2xx within 64*T1 (§13.3.1.4): the user should end the dialog with BYE.
    NoAckFor2xx,
}

/// A server transaction.
#[derive(Debug)]
pub struct ServerTxn {
    kind: Kind,
    reliable: bool,
    state: ServerState,
    last: Option<Vec<u8>>,
    interval: Duration,
    timers: [Option<Instant>; 3],
    tv: TimerValues,
    acked_2xx: bool,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ServerEvent>,
}

impl ServerTxn {
    pub fn new(kind: Kind, reliable: bool, tv: TimerValues) -> Self {
        ServerTxn {
            kind,
            reliable,
            state: if kind == Kind::Invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last: None,
            interval: tv.t1,
            timers: [None; 3],
            tv,
            acked_2xx: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// Whether a final response was sent.
    pub fn is_answered(&self) -> bool {
        !matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }

    fn set(&mut self, t: ServerTimer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    /// The user sends a response through the transaction.
    pub fn send_response(&mut self, now: Instant, resp: &SipMsg) {
        let Some(code) = resp.status() else { return };
        use ServerState::*;
        if !matches!(self.state, Trying | Proceeding) {
            // A 2xx retransmitted by the user in Accepted (a re-sent 200 after a re-INVITE
            // glare, say) still goes out.
            if self.state == Accepted && (200..300).contains(&code) {
                self.out.push_back(resp.to_bytes());
            }
            return;
        }
        let wire = resp.to_bytes();
        self.out.push_back(wire.clone());
        self.last = Some(wire);
        if code < 200 {
            self.state = Proceeding;
            return;
        }
        match self.kind {
            Kind::Invite if code < 300 => {
                self.state = Accepted;
                if !self.reliable {
                    self.interval = self.tv.t1;
                    self.set(ServerTimer::Retransmit, Some(now + self.tv.t1));
                }
                self.set(ServerTimer::Wait, Some(now + self.tv.t64()));
            }
            Kind::Invite => {
                self.state = Completed;
                if !self.reliable {
                    self.interval = self.tv.t1;
                    self.set(ServerTimer::Retransmit, Some(now + self.tv.t1));
                }
                self.set(ServerTimer::Wait, Some(now + self.tv.t64()));
            }
            Kind::NonInvite => {
                self.state = Completed;
                let j = if self.reliable {
                    Duration::ZERO
                } else {
                    self.tv.t64()
                };
                self.set(ServerTimer::Wait, Some(now + j));
            }
        }
    }

    /// The request arrived again: resend the last response (absorbed in Accepted, RFC 6026).
    pub fn handle_retransmission(&mut self) {
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed) {
            if let Some(last) = &self.last {
                self.out.push_back(last.clone());
            }
        }
    }

    /// An ACK for this INVITE transaction's non-2xx final response (same branch).
    pub fn handle_ack(&mut self, now: Instant) {
        if self.state == ServerState::Completed && self.kind == Kind::Invite {
            self.state = ServerState::Confirmed;
            self.set(ServerTimer::Retransmit, None);
            self.set(ServerTimer::Wait, None);
            let i = if self.reliable {
                Duration::ZERO
            } else {
                self.tv.t4
            };
            self.set(ServerTimer::Linger, Some(now + i));
        }
    }

    /// The core matched an ACK to this transaction's 2xx (a new branch, same dialog and CSeq).
    pub fn handle_ack_for_2xx(&mut self) {
        self.acked_2xx = true;
        self.set(ServerTimer::Retransmit, None);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for t in [
            ServerTimer::Retransmit,
            ServerTimer::Wait,
            ServerTimer::Linger,
        ] {
            let Some(at) = self.timers[t as usize] else {
                continue;
            };
            if at > now {
                continue;
            }
            self.set(t, None);
            match t {
                ServerTimer::Retransmit => {
                    if let Some(last) = &self.last {
                        self.out.push_back(last.clone());
                    }
                    self.interval = (self.interval * 2).min(self.tv.t2);
                    self.set(ServerTimer::Retransmit, Some(now + self.interval));
                }
                ServerTimer::Wait => {
                    match self.state {
                        ServerState::Completed if self.kind == Kind::Invite => {
                            self.events.push_back(ServerEvent::AckTimeout)
                        }
                        ServerState::Accepted if !self.acked_2xx => {
                            self.events.push_back(ServerEvent::NoAckFor2xx)
                        }
                        _ => {}
                    }
                    self.terminate();
                    return;
                }
                ServerTimer::Linger => {
                    self.terminate();
                    return;
                }
            }
        }
    }

    fn terminate(&mut self) {
        self.state = ServerState::Terminated;
        self.timers = [None; 3];
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::VirtualClock;

    const INVITE: &[u8] = include_bytes!("../../tests/fixtures/sipjs/invite.txt");
    const REGISTER: &[u8] = include_bytes!("../../tests/fixtures/sipjs/register.txt");

    fn resp(req: &[u8], code: u16, tag: &str) -> SipMsg {
        SipMsg::parse(req).unwrap().response(code, "X", Some(tag))
    }

    /// Drives a client transaction to `until`, returning the times of each send.
    fn run_client(t: &mut ClientTxn, start: Instant, until: Duration) -> Vec<Duration> {
        let mut sends = Vec::new();
        while t.poll_transmit().is_some() {
            sends.push(Duration::ZERO);
        }
        while let Some(at) = t.poll_timeout() {
            if at - start > until {
                break;
            }
            t.handle_timeout(at);
            while t.poll_transmit().is_some() {
                sends.push(at - start);
            }
        }
        sends
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn invite_client_timer_a_doubles_until_timer_b() {
        let c = VirtualClock::new();
        let mut t = ClientTxn::new(
            c.now(),
            SipMsg::parse(INVITE).unwrap(),
            false,
            TimerValues::default(),
        );
        let sends = run_client(&mut t, c.now(), Duration::from_secs(60));
        // Timer A: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B fires at 32 s.
        assert_eq!(sends, ms(&[0, 500, 1500, 3500, 7500, 15500, 31500]));
        assert_eq!(t.poll_event(), Some(ClientEvent::Timeout));
        assert!(t.is_terminated());
    }

    #[test]
    fn non_invite_client_timer_e_caps_at_t2_and_slows_after_provisional() {
        let c = VirtualClock::new();
        let mut t = ClientTxn::new(
            c.now(),
            SipMsg::parse(REGISTER).unwrap(),
            false,
            TimerValues::default(),
        );
        let sends = run_client(&mut t, c.now(), Duration::from_millis(8000));
        assert_eq!(sends, ms(&[0, 500, 1500, 3500, 7500]));
        // a 100 Trying: retransmit at T2 from then on
        let at = c.now() + Duration::from_millis(8000);
        t.handle_response(at, resp(REGISTER, 100, "x"));
        assert_eq!(t.state(), ClientState::Proceeding);
        assert!(matches!(t.poll_event(), Some(ClientEvent::Response(_))));
        let next = t.poll_timeout().unwrap();
        assert_eq!(next - c.now(), Duration::from_millis(11500));
        let sends = run_client(&mut t, c.now(), Duration::from_secs(40));
        assert!(
            sends
                .windows(2)
                .all(|w| w[1] - w[0] == Duration::from_secs(4)),
            "{sends:?}"
        );
        assert_eq!(
            t.poll_event(),
            Some(ClientEvent::Timeout),
            "Timer F at 32 s"
        );
    }

    #[test]
    fn invite_client_acks_non_2xx_and_re_acks_retransmissions() {
        let c = VirtualClock::new();
        let mut t = ClientTxn::new(
            c.now(),
            SipMsg::parse(INVITE).unwrap(),
            false,
            TimerValues::default(),
        );
        let _ = t.poll_transmit();
        t.handle_response(c.now(), resp(INVITE, 407, "t1"));
        assert_eq!(t.state(), ClientState::Completed);
        let ack = SipMsg::parse(&t.poll_transmit().unwrap()).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.cseq().method, Method::Ack);
        assert_eq!(
            ack.header("Via"),
            SipMsg::parse(INVITE).unwrap().header("Via")
        );
        assert!(ack.header("To").unwrap().contains("tag=t1"));
        assert!(
            matches!(t.poll_event(), Some(ClientEvent::Response(r)) if r.status() == Some(407))
        );
        t.handle_response(
            c.now() + Duration::from_millis(600),
            resp(INVITE, 407, "t1"),
        );
        assert!(t.poll_transmit().is_some(), "ACK re-sent");
        assert!(t.poll_event().is_none(), "retransmission absorbed");
        // Timer D (32 s over UDP)
        t.handle_timeout(c.now() + Duration::from_secs(32));
        assert!(t.is_terminated());
    }

    #[test]
    fn invite_client_accepted_passes_2xx_retransmissions_rfc6026() {
        let c = VirtualClock::new();
        let mut t = ClientTxn::new(
            c.now(),
            SipMsg::parse(INVITE).unwrap(),
            false,
            TimerValues::default(),
        );
        let _ = t.poll_transmit();
        t.handle_response(c.now(), resp(INVITE, 180, "b"));
        t.handle_response(c.now(), resp(INVITE, 200, "b"));
        assert_eq!(t.state(), ClientState::Accepted);
        t.handle_response(c.now() + Duration::from_millis(500), resp(INVITE, 200, "b"));
        let codes: Vec<_> = std::iter::from_fn(|| t.poll_event())
            .map(|e| match e {
                ClientEvent::Response(r) => r.status().unwrap(),
                ClientEvent::Timeout => 0,
            })
            .collect();
        assert_eq!(codes, vec![180, 200, 200]);
        assert!(
            t.poll_transmit().is_none(),
            "the user ACKs a 2xx, not the transaction"
        );
        t.handle_timeout(c.now() + Duration::from_secs(32));
        assert!(t.is_terminated(), "Timer M");
    }

    #[test]
    fn nothing_is_retransmitted_over_a_reliable_transport() {
        let c = VirtualClock::new();
        let mut t = ClientTxn::new(
            c.now(),
            SipMsg::parse(INVITE).unwrap(),
            true,
            TimerValues::default(),
        );
        let sends = run_client(&mut t, c.now(), Duration::from_secs(60));
        assert_eq!(sends, ms(&[0]));
        assert_eq!(t.poll_event(), Some(ClientEvent::Timeout));
        let mut s = ServerTxn::new(Kind::Invite, true, TimerValues::default());
        s.send_response(c.now(), &resp(INVITE, 486, "x"));
        assert!(s.poll_transmit().is_some());
        s.handle_timeout(c.now() + Duration::from_secs(31));
        assert!(s.poll_transmit().is_none());
    }

    #[test]
    fn invite_server_timer_g_until_ack_then_timer_i() {
        let c = VirtualClock::new();
        let mut s = ServerTxn::new(Kind::Invite, false, TimerValues::default());
        s.send_response(c.now(), &resp(INVITE, 100, "x"));
        s.handle_retransmission();
        assert_eq!(
            std::iter::from_fn(|| s.poll_transmit()).count(),
            2,
            "100 re-sent on retransmitted INVITE"
        );
        s.send_response(c.now(), &resp(INVITE, 486, "x"));
        let _ = s.poll_transmit();
        let mut times = Vec::new();
        for _ in 0..5 {
            let at = s.poll_timeout().unwrap();
            s.handle_timeout(at);
            while s.poll_transmit().is_some() {
                times.push(at - c.now());
            }
        }
        // Timer G: 0.5, 1.5, 3.5, 7.5, 11.5 s (capped at T2)
        assert_eq!(times, ms(&[500, 1500, 3500, 7500, 11500]));
        s.handle_ack(c.now() + Duration::from_secs(12));
        assert_eq!(s.state(), ServerState::Confirmed);
        s.handle_timeout(c.now() + Duration::from_secs(17));
        assert!(s.is_terminated(), "Timer I = T4");
        assert!(s.poll_event().is_none());
    }

    #[test]
    fn invite_server_timer_h_reports_a_missing_ack() {
        let c = VirtualClock::new();
        let mut s = ServerTxn::new(Kind::Invite, false, TimerValues::default());
        s.send_response(c.now(), &resp(INVITE, 503, "x"));
        while let Some(at) = s.poll_timeout() {
            s.handle_timeout(at);
        }
        assert_eq!(s.poll_event(), Some(ServerEvent::AckTimeout));
        assert!(s.is_terminated());
    }

    #[test]
    fn invite_server_accepted_retransmits_2xx_until_acked_and_absorbs_invites() {
        let c = VirtualClock::new();
        let mut s = ServerTxn::new(Kind::Invite, false, TimerValues::default());
        s.send_response(c.now(), &resp(INVITE, 200, "x"));
        let _ = s.poll_transmit();
        assert_eq!(s.state(), ServerState::Accepted);
        s.handle_retransmission();
        assert!(
            s.poll_transmit().is_none(),
            "RFC 6026: INVITE retransmission absorbed in Accepted"
        );
        s.handle_timeout(c.now() + Duration::from_millis(500));
        assert!(s.poll_transmit().is_some(), "2xx retransmitted");
        s.handle_ack_for_2xx();
        s.handle_timeout(c.now() + Duration::from_millis(1500));
        assert!(s.poll_transmit().is_none());
        s.handle_timeout(c.now() + Duration::from_secs(32));
        assert!(s.is_terminated(), "Timer L");
        assert!(s.poll_event().is_none());

        let mut s = ServerTxn::new(Kind::Invite, false, TimerValues::default());
        s.send_response(c.now(), &resp(INVITE, 200, "x"));
        while let Some(at) = s.poll_timeout() {
            s.handle_timeout(at);
        }
        assert_eq!(s.poll_event(), Some(ServerEvent::NoAckFor2xx));
    }

    #[test]
    fn non_invite_server_repeats_the_final_response_until_timer_j() {
        let c = VirtualClock::new();
        let mut s = ServerTxn::new(Kind::NonInvite, false, TimerValues::default());
        s.handle_retransmission();
        assert!(s.poll_transmit().is_none(), "nothing to repeat in Trying");
        s.send_response(c.now(), &resp(REGISTER, 200, "x"));
        let _ = s.poll_transmit();
        s.handle_retransmission();
        assert!(s.poll_transmit().is_some());
        s.handle_timeout(c.now() + Duration::from_secs(31));
        assert!(!s.is_terminated());
        s.handle_timeout(c.now() + Duration::from_secs(32));
        assert!(s.is_terminated());
    }
}
