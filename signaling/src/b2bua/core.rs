//! The signaling core: every SIP message from every transport enters here, every SIP message to
//! any transport leaves here. Sans-IO: the transports feed it with `now`, drain
//! [`Core::poll_transmit`] and call [`Core::handle_timeout`] at [`Core::poll_timeout`].
//!
//! It owns the transaction table (RFC 3261 §17), proxies REGISTER and SUBSCRIBE from browsers
//! to the outbound proxy statefully (seed-system.md §2.2), runs the demo PBX's registrar when
//! no upstream is configured, and answers what nobody else does: malformed requests (400, 505,
//! 513), out-of-dialog OPTIONS (200 + Allow), CANCEL without a transaction (481), new INVITEs
//! while draining (503).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use engine::api::{Command, SessionId};

use super::call::{Call, CallTxn};
use super::demo::DemoRegistrar;
use super::errors::SipError;
use super::ids::Ids;
use super::limits::{source_key, SourceBudget};
use super::register;
use super::table::Table;
use super::types::DialogMiss;
pub use super::types::{
    CallRecord, ConnName, CoreConfig, CoreEvent, EndReason, HungUpBy, Limits, Peer, RefusalReason,
    ServerKey, ShedCounts, ShedReason, Transmit, ALLOW,
};
use crate::sip::hdr::{NameAddr, SipUri, Via};
use crate::sip::msg::{error_response_for, reason_phrase, Method, SipMsg};
use crate::sip::names::{Branch, CallId, Tag};
use crate::sip::txn::{ClientEvent, ClientTxn, Kind, ServerEvent, ServerTxn};

/// The extra headers of the 503 that new calls and OPTIONS probes get while draining.
const DRAINING: &[(&str, &str)] = &[
    ("Retry-After", "30"),
    ("Reason", "SIP;cause=503;text=\"shutting down\""),
];

/// Answers a source that may not use the gateway gets: a burst, then one per 10 s.
const REFUSALS_BURST: f64 = 10.0;
const REFUSALS_PER_SEC: f64 = 0.1;
/// Sources with a budget of their own (beyond: see [`SourceBudget`]).
const BUDGET_SOURCES: usize = 65_536;

fn server_key(msg: &SipMsg) -> Option<ServerKey> {
    let via = msg.top_via()?;
    let method = match msg.method()? {
        Method::Ack => "INVITE".to_string(),
        m => m.as_str().to_string(),
    };
    let sent_by = match via.port {
        Some(p) => format!("{}:{p}", via.host),
        None => via.host.clone(),
    };
    Some(ServerKey {
        branch: via.branch()?.into(),
        sent_by: sent_by.to_ascii_lowercase(),
        method,
    })
}

/// Why a client transaction exists.
#[derive(Debug)]
pub(super) enum ClientPurpose {
    /// A request of a call on one of its legs.
    Call { id: SessionId, what: CallTxn },
    /// A REGISTER or SUBSCRIBE relayed for a browser: responses go back on `server`.
    Proxy {
        server: ServerKey,
        conn: ConnName,
        aor: String,
        is_register: bool,
    },
}

#[derive(Debug)]
pub(super) struct ClientEntry {
    pub(super) txn: ClientTxn,
    pub(super) to: Peer,
    pub(super) purpose: ClientPurpose,
}

#[derive(Debug)]
pub(super) struct ServerEntry {
    pub(super) txn: ServerTxn,
    pub(super) peer: Peer,
}

/// The signaling core.
#[derive(Debug)]
pub struct Core {
    pub(super) cfg: CoreConfig,
    pub(super) draining: bool,
    pub(super) seq: u64,
    pub(super) ids: Ids,
    pub(super) clients: Table<Branch, ClientEntry>,
    pub(super) servers: Table<ServerKey, ServerEntry>,
    /// AORs registered through each WebSocket connection (upstream registrar), and how many in
    /// all.
    pub(super) registrations: HashMap<ConnName, HashSet<String>>,
    pub(super) registration_total: usize,
    pub(super) demo: Option<DemoRegistrar>,
    pub(super) calls: Table<SessionId, Call>,
    /// (Call-ID, our tag) of each leg, to the call.
    pub(super) call_index: HashMap<(CallId, Tag), SessionId>,
    /// The caller's INVITE transaction, to the call (for CANCEL).
    pub(super) invite_index: HashMap<ServerKey, SessionId>,
    /// Calls over whose session release the engine has not confirmed yet (their figures come
    /// with `Event::Released`).
    pub(super) ending: HashMap<SessionId, CallRecord>,
    /// Open WebSocket connections and their client's address.
    pub(super) ws_open: HashMap<ConnName, IpAddr>,
    /// Calls in progress per WebSocket connection and per client address (the caps).
    pub(super) calls_by_conn: HashMap<ConnName, Vec<SessionId>>,
    pub(super) calls_by_ip: HashMap<IpAddr, usize>,
    /// SIP/UDP message budgets per source, in front of the parser.
    udp_budget: SourceBudget,
    upstream_budget: SourceBudget,
    /// Stateless answers to sources that may not use the gateway.
    pub(super) refusals: SourceBudget,
    /// The byte length of the message being handled (no answer may be twice as large).
    pub(super) in_len: usize,
    /// Messages shed, per reason.
    shed_counts: ShedCounts,
    pub(super) commands: VecDeque<Command>,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<CoreEvent>,
}

impl Core {
    pub fn new(cfg: CoreConfig) -> Self {
        // The demo PBX only when neither OUTBOUND_PROXY nor OUTBOUND_ROUTE is set.
        let demo = (cfg.proxy.is_none() && cfg.route.is_none())
            .then(|| DemoRegistrar::new(cfg.limits.max_registrations));
        let rate = |r: u32| (f64::from(r), 2.0 * f64::from(r));
        let (udp_rate, udp_burst) = rate(cfg.limits.sip_udp_rate);
        let (up_rate, up_burst) = rate(cfg.limits.sip_proxy_rate);
        Core {
            udp_budget: SourceBudget::new(udp_rate, udp_burst, BUDGET_SOURCES),
            upstream_budget: SourceBudget::new(up_rate, up_burst, BUDGET_SOURCES),
            refusals: SourceBudget::new(REFUSALS_PER_SEC, REFUSALS_BURST, BUDGET_SOURCES),
            cfg,
            draining: false,
            seq: 0,
            ids: Ids::default(),
            clients: Table::default(),
            servers: Table::default(),
            registrations: HashMap::new(),
            registration_total: 0,
            demo,
            calls: Table::default(),
            call_index: HashMap::new(),
            invite_index: HashMap::new(),
            ending: HashMap::new(),
            ws_open: HashMap::new(),
            calls_by_conn: HashMap::new(),
            calls_by_ip: HashMap::new(),
            in_len: 0,
            shed_counts: ShedCounts::default(),
            commands: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// From now on new calls, and OPTIONS probes, get 503.
    pub fn handle_drain(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Registrations currently held through this gateway (kept as a count: no scan).
    pub fn registration_count(&self) -> usize {
        match &self.demo {
            Some(d) => d.len(),
            None => self.registration_total,
        }
    }

    /// A WebSocket connection opened from `ip`.
    pub fn handle_ws_opened(&mut self, conn: &ConnName, ip: IpAddr) {
        self.ws_open.insert(conn.clone(), source_key(ip));
    }

    /// A WebSocket connection closed: its calls end (BYE to the other side), what was
    /// registered through it is forgotten. Its transactions are left to end on their own
    /// (what they send is dropped with the connection).
    pub fn handle_ws_closed(&mut self, now: Instant, conn: &ConnName) {
        self.end_calls_of(now, conn);
        self.ws_open.remove(conn);
        if let Some(set) = self.registrations.remove(conn) {
            self.registration_total -= set.len();
        }
        if let Some(d) = &mut self.demo {
            d.forget_peer(&Peer::Ws(conn.clone()));
        }
        self.pump(now);
    }

    /// One SIP/UDP datagram: counted against its source's budget before anything parses it.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let allowed = if self.is_upstream_ip(from.ip()) {
            self.upstream_budget.take(now, from.ip())
        } else {
            self.udp_budget.take(now, from.ip())
        };
        if !allowed {
            self.events.push_back(CoreEvent::Shed {
                reason: ShedReason::RateLimited,
            });
            return;
        }
        self.handle_message(now, Peer::Udp(from), bytes);
    }

    /// One SIP message (a datagram or a WebSocket message) from `from`.
    pub fn handle_message(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        self.in_len = bytes.len();
        let msg = match SipMsg::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                if !self.may_answer(now, &from) {
                    return self.shed(ShedReason::RefusalBudget);
                }
                let tag = self.new_id();
                match error_response_for(bytes, &e, &tag) {
                    Some(resp) if resp.len() <= 2 * bytes.len() => {
                        self.events.push_back(CoreEvent::Rejected {
                            transport: from.transport(),
                            status: e.status,
                            reason: e.reason,
                        });
                        self.transmits.push_back(Transmit {
                            to: from,
                            bytes: resp,
                        });
                    }
                    _ => self.dropped(&from, e.reason),
                }
                return;
            }
        };
        if msg.is_request() {
            self.handle_request(now, from, msg);
        } else {
            self.handle_response(now, from, msg);
        }
        self.pump(now);
    }

    fn handle_request(&mut self, now: Instant, from: Peer, mut msg: SipMsg) {
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let Some(key) = server_key(&msg) else {
            // No branch: an RFC 2543 peer. Answer statelessly.
            if method == Method::Ack {
                return;
            }
            let code = if method == Method::Options { 200 } else { 501 };
            return self.answer_stateless(now, &from, &msg, code, &[]);
        };
        if matches!(from, Peer::Udp(_)) {
            // A Route naming this gateway is removed (RFC 3261 §16.4, loose routing).
            if let Some(first) = msg.header("Route") {
                if NameAddr::parse(first, "Route").is_ok_and(|r| is_own_uri(&r.uri, &self.cfg)) {
                    if let Some(i) = msg.headers.iter().position(|h| h.name == "Route") {
                        msg.headers.remove(i);
                    }
                }
            }
        }
        // A request that reuses a live transaction's key is a retransmission only when it
        // comes from that transaction's peer; from anyone else it is ignored.
        if let Some(peer) = self.servers.get(&key).map(|s| s.peer.clone()) {
            if !self.is_same_peer(&peer, &from) {
                return self.shed(ShedReason::NotAPeer);
            }
            let s = self.servers.get_mut(&key).expect("looked up above");
            if method == Method::Ack {
                s.txn.handle_ack(now);
            } else {
                s.txn.handle_retransmission();
            }
            return;
        }
        let in_dialog = msg.to_hdr().is_some_and(|t| t.tag().is_some());
        if in_dialog && method != Method::Cancel {
            match self.dialog_of(&from, &msg) {
                Ok(_) => {}
                Err(DialogMiss::NotAPeer) => return self.shed(ShedReason::NotAPeer),
                Err(DialogMiss::NoDialog) => {
                    // 481 to those who may talk to us; a stranger is no peer of any dialog.
                    if !self.is_known_source(&from) {
                        return self.shed(ShedReason::NotAPeer);
                    }
                    if method != Method::Ack {
                        self.answer_stateless(
                            now,
                            &from,
                            &msg,
                            SipError::NoSuchDialog.status(),
                            &[],
                        );
                    }
                    return;
                }
            }
            if method == Method::Ack {
                // An ACK for a 2xx belongs to the dialog; it has no transaction.
                self.handle_in_dialog(now, &from, key, msg);
                return;
            }
        } else if method == Method::Ack {
            // An ACK matching nothing is absorbed.
            return;
        }
        // What can be answered without keeping anything: nothing is kept for it.
        if !in_dialog {
            match method {
                Method::Options => {
                    // A health probe (Kamailio's dispatcher, an SBC): 503 while draining, so
                    // that new calls go to another instance; the calls here go on.
                    if self.draining {
                        return self.answer_stateless(
                            now,
                            &from,
                            &msg,
                            SipError::ServiceUnavailable.status(),
                            DRAINING,
                        );
                    }
                    return self.answer_stateless(
                        now,
                        &from,
                        &msg,
                        200,
                        &[
                            ("Allow", ALLOW),
                            ("Accept", "application/sdp"),
                            ("Supported", "path, timer"),
                        ],
                    );
                }
                Method::Invite => {
                    if self.draining {
                        return self.answer_stateless(
                            now,
                            &from,
                            &msg,
                            SipError::ServiceUnavailable.status(),
                            DRAINING,
                        );
                    }
                    if !self.cfg.accept.is_allowed(self.source_of(&from)) {
                        return self.answer_stateless(
                            now,
                            &from,
                            &msg,
                            SipError::Forbidden.status(),
                            &[],
                        );
                    }
                }
                Method::Register | Method::Subscribe => {
                    if !matches!(from, Peer::Ws(_)) {
                        // Registrations and subscriptions are the browsers' alone.
                        return self.answer_stateless(
                            now,
                            &from,
                            &msg,
                            SipError::Forbidden.status(),
                            &[],
                        );
                    }
                }
                Method::Cancel => {
                    // Only the INVITE's own sender may cancel it (RFC 3261 §9.2: a CANCEL
                    // follows its INVITE hop by hop); anything else is answered, statelessly.
                    let invite_key = key.invite();
                    if self
                        .servers
                        .get(&invite_key)
                        .is_none_or(|s| !self.is_same_peer(&s.peer, &from))
                    {
                        return self.answer_stateless(
                            now,
                            &from,
                            &msg,
                            SipError::NoSuchDialog.status(),
                            &[],
                        );
                    }
                }
                _ => {
                    return self.answer_stateless(
                        now,
                        &from,
                        &msg,
                        SipError::NotImplemented.status(),
                        &[],
                    )
                }
            }
        }
        if self.servers.len() + self.clients.len() >= self.cfg.limits.max_transactions {
            self.events.push_back(CoreEvent::CallRefused {
                reason: RefusalReason::Transactions,
            });
            return self.answer_stateless(
                now,
                &from,
                &msg,
                SipError::ServiceUnavailable.status(),
                &[("Retry-After", "5")],
            );
        }
        self.servers.insert(
            key.clone(),
            ServerEntry {
                txn: ServerTxn::new(Kind::of(&method), from.is_reliable(), self.cfg.timers),
                peer: from.clone(),
            },
        );
        if let Peer::Ws(conn) = &from {
            register::mark_received(&mut msg, conn);
            register::rewrite_contact(&mut msg, conn);
        }
        match method {
            Method::Register | Method::Subscribe if !in_dialog => {
                match (&from, self.cfg.proxy.is_some(), self.demo.is_some()) {
                    (Peer::Ws(conn), true, _) => {
                        let conn = conn.clone();
                        self.proxy_to_registrar(now, key, conn, msg);
                    }
                    (_, _, true) if method == Method::Register => {
                        self.demo_register(now, key, from, &msg)
                    }
                    // No registrar to send it to (OUTBOUND_ROUTE alone), or SUBSCRIBE to the demo.
                    _ => self.refuse(now, &key, &msg, SipError::NotImplemented),
                }
            }
            Method::Invite if !in_dialog => self.handle_new_invite(now, from, key, msg),
            Method::Cancel => {
                if !self.handle_cancel(now, &from, &key, &msg) {
                    self.refuse(now, &key, &msg, SipError::NoSuchDialog);
                }
            }
            _ => {
                if !self.handle_in_dialog(now, &from, key.clone(), msg.clone()) {
                    self.refuse(now, &key, &msg, SipError::NoSuchDialog);
                }
            }
        }
    }

    /// Answers once, keeping nothing: no transaction, no retransmission. Not at all when the
    /// source's refusal budget is spent, or when the answer would be more than twice the
    /// request (then without the `extra` headers, or not at all).
    fn answer_stateless(
        &mut self,
        now: Instant,
        from: &Peer,
        req: &SipMsg,
        code: u16,
        extra: &[(&str, &str)],
    ) {
        if !self.may_answer(now, from) {
            return self.shed(ShedReason::RefusalBudget);
        }
        let limit = 2 * self.in_len;
        let mut r = self.response(req, code);
        let plain = r.to_bytes();
        for (name, value) in extra {
            r.push_header(name, *value);
        }
        let full = r.to_bytes();
        let bytes = if full.len() <= limit {
            full
        } else if plain.len() <= limit {
            plain
        } else {
            return self.shed(ShedReason::TooLargeAnswer);
        };
        self.events.push_back(CoreEvent::Responded { status: code });
        self.transmits.push_back(Transmit {
            to: from.clone(),
            bytes,
        });
    }

    fn shed(&mut self, reason: ShedReason) {
        self.shed_counts.count(reason);
        self.events.push_back(CoreEvent::Shed { reason });
    }

    /// A response is taken only from where its request went (for the outbound proxy or the
    /// route: any of their resolved addresses); from anywhere else it is dropped (an off-path
    /// forgery). A CANCEL's response goes to the CANCEL's own transaction (it shares the
    /// INVITE's branch, RFC 3261 §9.1).
    fn handle_response(&mut self, now: Instant, from: Peer, msg: SipMsg) {
        let branch = msg.top_via().and_then(|v| v.branch().map(Branch::from));
        let branch = match branch {
            Some(b) if msg.cseq().method == Method::Cancel => Some(b.cancel()),
            other => other,
        };
        let Some((branch, to)) =
            branch.and_then(|b| self.clients.get(&b).map(|c| (b, c.to.clone())))
        else {
            return self.dropped(&from, "response matches no transaction".into());
        };
        if !self.is_same_peer(&to, &from) {
            return self.shed(ShedReason::ResponseSource);
        }
        if let Some(c) = self.clients.get_mut(&branch) {
            c.txn.handle_response(now, msg);
        }
    }

    /// A client transaction's response or timeout, for its purpose.
    fn handle_client_event(&mut self, now: Instant, branch: &Branch, ev: ClientEvent) {
        let Some(entry) = self.clients.get(branch) else {
            return;
        };
        match &entry.purpose {
            ClientPurpose::Call { id, what } => {
                let (id, what) = (*id, what.clone());
                self.call_client_event(now, id, branch, what, ev);
            }
            ClientPurpose::Proxy { .. } => self.on_proxy_event(now, branch, ev),
        }
    }

    /// Moves what one server transaction has to send to the output queue now.
    pub(super) fn flush_server(&mut self, key: &ServerKey) {
        if let Some(s) = self.servers.get_mut(key) {
            while let Some(bytes) = s.txn.poll_transmit() {
                self.transmits.push_back(Transmit {
                    to: s.peer.clone(),
                    bytes,
                });
            }
        }
    }

    pub(super) fn add_client(
        &mut self,
        branch: Branch,
        txn: ClientTxn,
        to: Peer,
        purpose: ClientPurpose,
    ) {
        self.clients
            .insert(branch, ClientEntry { txn, to, purpose });
    }

    /// Sends a response on a server transaction.
    pub(super) fn send_on(&mut self, now: Instant, key: &ServerKey, resp: SipMsg) {
        if let Some(status) = resp.status() {
            self.events.push_back(CoreEvent::Responded { status });
        }
        if let Some(s) = self.servers.get_mut(key) {
            s.txn.send_response(now, &resp);
        }
    }

    /// 200 OK on a server transaction.
    pub(super) fn reply_ok(&mut self, now: Instant, key: &ServerKey, req: &SipMsg) {
        let r = self.response(req, 200);
        self.send_on(now, key, r);
    }

    /// The refusal `err` on a server transaction, its status from the one table.
    pub(super) fn refuse(&mut self, now: Instant, key: &ServerKey, req: &SipMsg, err: SipError) {
        let r = self.response(req, err.status());
        self.send_on(now, key, r);
    }

    pub(super) fn response(&mut self, req: &SipMsg, code: u16) -> SipMsg {
        let tag = self.new_id();
        let mut r = req.response(code, reason_phrase(code), Some(&tag));
        // The product, not its version: no help to a scanner matching versions to holes.
        r.push_header("Server", "webrtc-phone");
        r
    }

    fn dropped(&mut self, from: &Peer, reason: String) {
        self.events.push_back(CoreEvent::Dropped {
            transport: from.transport(),
            reason,
        });
    }

    /// A tag or branch suffix: 64 bits from the CSPRNG.
    pub(super) fn new_id(&mut self) -> String {
        self.ids.token()
    }

    /// Fires due timers: only the entries due, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(b) = self.clients.pop_due(now) {
            if let Some(c) = self.clients.get_mut(&b) {
                c.txn.handle_timeout(now);
            }
        }
        while let Some(k) = self.servers.pop_due(now) {
            if let Some(s) = self.servers.get_mut(&k) {
                s.txn.handle_timeout(now);
            }
        }
        self.pump(now);
        self.handle_call_timeouts(now);
        if let Some(d) = &mut self.demo {
            d.purge(now);
        }
        self.pump(now);
    }

    /// Moves what the touched transactions produced to the output queues, handles client
    /// events, drops finished transactions and re-arms deadlines: work in proportion to what
    /// changed, not to how much is live.
    pub(super) fn pump(&mut self, now: Instant) {
        // Handling an event can start new transactions (a deferred CANCEL, a BYE) or answer on
        // others: go round until nothing is left touched. Bounded: each round consumes the
        // events it handles.
        for _ in 0..16 {
            if !self.clients.has_touched() && !self.servers.has_touched() {
                break;
            }
            self.drain_clients(now);
            for key in self.drain_servers() {
                // RFC 3261 §13.3.1.4: no ACK for our 2xx within 64*T1 ends the call.
                if let Some(&id) = self.invite_index.get(&key) {
                    self.hang_up_both(now, id, EndReason::NoAck);
                }
            }
        }
        self.arm_calls();
    }

    /// Output, events and deadlines of the client transactions touched since the last drain.
    fn drain_clients(&mut self, now: Instant) {
        let mut client_events = Vec::new();
        let mut ended = Vec::new();
        for branch in self.clients.take_touched() {
            let Some(c) = self.clients.peek_mut(&branch) else {
                continue;
            };
            while let Some(bytes) = c.txn.poll_transmit() {
                self.transmits.push_back(Transmit {
                    to: c.to.clone(),
                    bytes,
                });
            }
            while let Some(ev) = c.txn.poll_event() {
                client_events.push((branch.clone(), ev));
            }
            let at = if c.txn.is_terminated() {
                ended.push(branch.clone());
                None
            } else {
                c.txn.poll_timeout()
            };
            self.clients.arm(&branch, at);
        }
        // An ended transaction stays until its last events are handled (they read its
        // purpose).
        for (branch, ev) in client_events {
            self.handle_client_event(now, &branch, ev);
        }
        for branch in ended {
            if self
                .clients
                .get(&branch)
                .is_some_and(|c| c.txn.is_terminated())
            {
                self.clients.remove(&branch);
            }
        }
    }

    /// Output and deadlines of the server transactions touched since the last drain; the
    /// INVITE transactions whose 2xx got no ACK.
    fn drain_servers(&mut self) -> Vec<ServerKey> {
        let mut no_ack = Vec::new();
        for key in self.servers.take_touched() {
            let Some(s) = self.servers.peek_mut(&key) else {
                continue;
            };
            while let Some(bytes) = s.txn.poll_transmit() {
                self.transmits.push_back(Transmit {
                    to: s.peer.clone(),
                    bytes,
                });
            }
            while let Some(ev) = s.txn.poll_event() {
                if ev == ServerEvent::NoAckFor2xx {
                    no_ack.push(key.clone());
                }
            }
            if s.txn.is_terminated() {
                self.servers.remove(&key);
            } else {
                let at = s.txn.poll_timeout();
                self.servers.arm(&key, at);
            }
        }
        no_ack
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.clients.next_deadline(),
            self.servers.next_deadline(),
            self.calls.next_deadline(),
            self.demo.as_ref().and_then(DemoRegistrar::next_expiry),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Messages shed unanswered so far, per reason.
    pub fn shed_counts(&self) -> ShedCounts {
        self.shed_counts
    }

    /// Commands for the media engine.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }
}

/// Whether a URI points at this gateway's own SIP address (a Route to remove, RFC 3261 §16.4).
pub fn is_own_uri(uri: &str, cfg: &CoreConfig) -> bool {
    SipUri::parse(uri).is_some_and(|u| {
        u.host.trim_matches(['[', ']']) == cfg.own_host.trim_matches(['[', ']'])
            && u.port.unwrap_or(5060) == cfg.sip_port
    })
}

/// The top Via of a request, parsed (for logs and matching).
pub fn top_via(msg: &SipMsg) -> Option<Via> {
    msg.top_via()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::b2bua::policy::AcceptList;
    use crate::sdp::pts::PtFilter;
    use crate::sip::txn::TimerValues;
    use testkit::VirtualClock;

    const INVITE: &[u8] = include_bytes!("../../tests/fixtures/sipjs/invite.txt");
    const REGISTER: &[u8] = include_bytes!("../../tests/fixtures/sipjs/register.txt");

    fn cfg(proxy: bool) -> CoreConfig {
        CoreConfig {
            own_host: "127.0.0.1".into(),
            sip_port: 5060,
            proxy: proxy.then(|| vec!["127.0.0.1:5090".parse().unwrap()]),
            timers: TimerValues::default(),
            route: None,
            accept: AcceptList::parse("[[WSS]],[[PROXY]]").unwrap(),
            pts: PtFilter::parse("[PCMU/8000]").unwrap(),
            advertise: "127.0.0.1".parse().unwrap(),
            limits: Default::default(),
        }
    }

    fn conn() -> ConnName {
        ConnName("c1.invalid".into())
    }

    fn ws() -> Peer {
        Peer::Ws(conn())
    }

    fn registrar() -> Peer {
        Peer::Udp("127.0.0.1:5090".parse().unwrap())
    }

    fn take(core: &mut Core) -> Vec<(Peer, SipMsg)> {
        std::iter::from_fn(|| core.poll_transmit())
            .map(|t| (t.to, SipMsg::parse(&t.bytes).unwrap()))
            .collect()
    }

    #[test]
    fn invite_while_draining_gets_503() {
        let mut core = Core::new(cfg(true));
        core.handle_drain();
        core.handle_message(VirtualClock::new().now(), ws(), INVITE);
        let out = take(&mut core);
        assert_eq!(out.len(), 1);
        let r = &out[0].1;
        assert_eq!(r.status(), Some(503));
        assert_eq!(r.header("Retry-After"), Some("30"));
        assert!(r.to_hdr().unwrap().tag().is_some());
        assert_eq!(r.call_id(), SipMsg::parse(INVITE).unwrap().call_id());
    }

    #[test]
    fn options_probes_get_200_while_serving_and_503_while_draining() {
        let opt = |n: u32| {
            format!(
                "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKds{n}\r\n\
                 From: <sip:dispatcher@localhost>;tag=d{n}\r\nTo: <sip:127.0.0.1:5060>\r\n\
                 Call-ID: ds{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let proxy = Peer::Udp("127.0.0.1:5090".parse().unwrap());
        let mut core = Core::new(cfg(false));
        core.handle_message(VirtualClock::new().now(), proxy.clone(), opt(1).as_bytes());
        assert_eq!(take(&mut core)[0].1.status(), Some(200));
        core.handle_drain();
        core.handle_message(VirtualClock::new().now(), proxy, opt(2).as_bytes());
        let out = take(&mut core);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.status(), Some(503));
        assert_eq!(out[0].1.header("Retry-After"), Some("30"));
    }

    #[test]
    fn malformed_requests_get_400_and_garbage_is_dropped() {
        let mut core = Core::new(cfg(true));
        let bad = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n";
        core.handle_message(VirtualClock::new().now(), ws(), bad);
        assert_eq!(take(&mut core)[0].1.status(), Some(400));
        assert!(matches!(
            core.poll_event(),
            Some(CoreEvent::Rejected { status: 400, .. })
        ));
        core.handle_message(VirtualClock::new().now(), ws(), b"\x00\x01garbage");
        assert!(core.poll_transmit().is_none());
        assert!(matches!(core.poll_event(), Some(CoreEvent::Dropped { .. })));
    }

    #[test]
    fn register_goes_to_the_proxy_and_401_comes_back_untouched() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(true));
        core.handle_message(t, ws(), REGISTER);
        let out = take(&mut core);
        assert_eq!(out.len(), 1);
        let (to, fwd) = &out[0];
        assert_eq!(*to, registrar());
        assert_eq!(fwd.headers_named("Via").count(), 2);
        assert_eq!(fwd.header("Path"), Some("<sip:127.0.0.1:5060;lr>"));
        assert!(fwd.header("Contact").unwrap().contains("@c1.invalid"));
        // Over UDP the REGISTER is retransmitted (Timer E) until an answer comes.
        core.handle_timeout(t + Duration::from_millis(500));
        assert_eq!(take(&mut core).len(), 1);
        let mut challenge = fwd.response(401, "Unauthorized", Some("reg"));
        challenge.push_header(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"",
        );
        core.handle_message(
            t + Duration::from_millis(600),
            registrar(),
            &challenge.to_bytes(),
        );
        let back = take(&mut core);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, ws());
        let r = &back[0].1;
        assert_eq!(r.status(), Some(401));
        assert_eq!(r.headers_named("Via").count(), 1);
        assert_eq!(
            r.header("WWW-Authenticate"),
            challenge.header("WWW-Authenticate")
        );
        assert_eq!(core.registration_count(), 0);
    }

    #[test]
    fn register_200_counts_and_ws_close_forgets() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(true));
        core.handle_ws_opened(&conn(), "127.0.0.1".parse().unwrap());
        core.handle_message(t, ws(), REGISTER);
        let fwd = take(&mut core).remove(0).1;
        let mut ok = fwd.response(200, "OK", Some("reg"));
        ok.push_header(
            "Contact",
            format!("{};expires=600", fwd.header("Contact").unwrap()),
        );
        core.handle_message(t, registrar(), &ok.to_bytes());
        assert_eq!(take(&mut core)[0].1.status(), Some(200));
        assert_eq!(core.registration_count(), 1);
        let ev: Vec<_> = std::iter::from_fn(|| core.poll_event()).collect();
        assert!(
            ev.iter().any(|e| matches!(
                e,
                CoreEvent::Registration {
                    status: 200,
                    expires: 600,
                    ..
                }
            )),
            "{ev:?}"
        );
        core.handle_ws_closed(t, &conn());
        assert_eq!(core.registration_count(), 0);
    }

    #[test]
    fn silent_registrar_gives_the_browser_408() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(true));
        core.handle_message(t, ws(), REGISTER);
        let mut sent = 0;
        let mut last = None;
        while let Some(at) = core.poll_timeout() {
            core.handle_timeout(at);
            for (to, m) in take(&mut core) {
                if to == ws() {
                    last = Some((at - t, m));
                } else {
                    sent += 1;
                }
            }
        }
        let (after, resp) = last.expect("a response to the browser");
        assert_eq!(resp.status(), Some(408));
        assert_eq!(resp.headers_named("Via").count(), 1);
        assert_eq!(after, Duration::from_secs(32), "Timer F");
        assert!(sent >= 10, "retransmissions: {sent}");
    }

    #[test]
    fn demo_pbx_registers_anyone() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(false));
        core.handle_message(t, ws(), REGISTER);
        let out = take(&mut core);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.status(), Some(200));
        assert!(out[0].1.header("Contact").unwrap().contains("c1.invalid"));
        assert_eq!(core.registration_count(), 1);
        core.handle_ws_closed(t, &conn());
        assert_eq!(core.registration_count(), 0);
    }

    #[test]
    fn options_and_stray_requests_are_answered_statelessly_and_never_amplified() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(true));
        let opt = b"OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\nFrom: <sip:k@x>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        core.handle_message(t, registrar(), opt);
        let out: Vec<_> = std::iter::from_fn(|| core.poll_transmit()).collect();
        assert_eq!(out.len(), 1);
        let r = SipMsg::parse(&out[0].bytes).unwrap();
        assert_eq!(r.status(), Some(200));
        assert!(out[0].bytes.len() <= 2 * opt.len(), "no amplification");
        assert_eq!(r.header("Server"), Some("webrtc-phone"), "no version");
        assert!(core.poll_timeout().is_none(), "nothing kept for it");
        // A request of a usual size gets the Allow list too.
        let padded = String::from_utf8_lossy(opt).replace(
            "Content-Length: 0",
            "Max-Forwards: 70\r\nUser-Agent: kamailio (5.6.3 (x86_64/linux))\r\nAccept: application/sdp\r\nContent-Length: 0",
        );
        core.handle_message(t, registrar(), padded.as_bytes());
        let r = take(&mut core).remove(0).1;
        assert!(r.header("Allow").unwrap().contains("INVITE"));
        // the same OPTIONS again: answered again, once
        core.handle_message(t, registrar(), opt);
        assert_eq!(take(&mut core).len(), 1);
        let bye = String::from_utf8_lossy(opt)
            .replace("OPTIONS sip:gw", "BYE sip:gw")
            .replace("1 OPTIONS", "1 BYE")
            .replace("z9hG4bK1", "z9hG4bK2")
            .replace("To: <sip:gw>", "To: <sip:gw>;tag=x");
        core.handle_message(t, registrar(), bye.as_bytes());
        assert_eq!(take(&mut core).remove(0).1.status(), Some(481));
        assert!(core.poll_timeout().is_none());
    }

    #[test]
    fn a_source_that_may_not_call_gets_a_few_refusals_then_silence() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(true));
        let attacker = Peer::Udp("127.0.0.66:5060".parse().unwrap());
        let mut answered = 0;
        for i in 0..200 {
            let inv = String::from_utf8_lossy(INVITE)
                .replace("Call-ID: ", &format!("Call-ID: x{i}"))
                .replace("branch=z9hG4bK", &format!("branch=z9hG4bKx{i}"));
            core.handle_message(t, attacker.clone(), inv.as_bytes());
            for tx in std::iter::from_fn(|| core.poll_transmit()) {
                let r = SipMsg::parse(&tx.bytes).unwrap();
                assert_eq!(r.status(), Some(403));
                assert!(tx.bytes.len() <= 2 * inv.len());
                answered += 1;
            }
        }
        assert_eq!(answered, REFUSALS_BURST as usize);
        assert!(
            core.poll_timeout().is_none(),
            "no transaction, no retransmission"
        );
        // Later, the budget refills slowly: one more answer after 10 s.
        core.handle_message(t + Duration::from_secs(10), attacker, INVITE);
        assert_eq!(take(&mut core).len(), 1);
    }

    #[test]
    fn a_response_from_another_address_is_dropped() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(true));
        core.handle_message(t, ws(), REGISTER);
        let fwd = take(&mut core).remove(0).1;
        let ok = fwd.response(200, "OK", Some("reg"));
        let attacker = Peer::Udp("127.0.0.66:5090".parse().unwrap());
        core.handle_message(t, attacker, &ok.to_bytes());
        assert!(take(&mut core).is_empty(), "the forgery reached nobody");
        let ev: Vec<_> = std::iter::from_fn(|| core.poll_event()).collect();
        assert!(ev.contains(&CoreEvent::Shed {
            reason: ShedReason::ResponseSource
        }));
        assert_eq!(core.shed_counts().get(ShedReason::ResponseSource), 1);
        assert_eq!(core.shed_counts().get(ShedReason::NotAPeer), 0);
        core.handle_message(t, registrar(), &ok.to_bytes());
        assert_eq!(
            take(&mut core)[0].0,
            ws(),
            "the registrar's answer goes through"
        );
    }

    #[test]
    fn udp_sources_are_rate_limited_before_parsing() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(true));
        let from: SocketAddr = "127.0.0.66:5060".parse().unwrap();
        for _ in 0..1000 {
            core.handle_datagram(t, from, b"garbage");
        }
        let shed = std::iter::from_fn(|| core.poll_event())
            .filter(|e| {
                *e == CoreEvent::Shed {
                    reason: ShedReason::RateLimited,
                }
            })
            .count();
        assert_eq!(shed, 1000 - 2 * Limits::default().sip_udp_rate as usize);
    }

    #[test]
    fn demo_pbx_purges_expired_bindings_and_holds_at_most_its_cap() {
        let t = VirtualClock::new().now();
        let mut c = cfg(false);
        c.limits.max_registrations = 1;
        let mut core = Core::new(c);
        let short = String::from_utf8_lossy(REGISTER).replace("expires=600", "expires=30");
        core.handle_message(t, ws(), short.as_bytes());
        assert_eq!(take(&mut core)[0].1.status(), Some(200));
        let bob = short
            .replace("sip:alice@", "sip:bob@")
            .replace("z9hG4bK7542064", "z9hG4bKbob");
        core.handle_message(t, ws(), bob.as_bytes());
        assert_eq!(take(&mut core)[0].1.status(), Some(503), "full");
        assert_eq!(core.registration_count(), 1);
        // The binding's expiry is a deadline of the core: it goes then, unasked.
        core.handle_timeout(t); // the finished REGISTER transactions (Timer J: 0 on WS)
        assert_eq!(core.poll_timeout(), Some(t + Duration::from_secs(30)));
        core.handle_timeout(t + Duration::from_secs(30));
        assert_eq!(core.registration_count(), 0);
        assert_eq!(core.poll_timeout(), None);
        let bob = bob.replace("z9hG4bKbob", "z9hG4bKbob2");
        core.handle_message(t + Duration::from_secs(31), ws(), bob.as_bytes());
        assert_eq!(take(&mut core)[0].1.status(), Some(200), "room again");
    }

    #[test]
    fn demo_pbx_takes_no_register_over_udp() {
        let t = VirtualClock::new().now();
        let mut core = Core::new(cfg(false));
        let from = Peer::Udp("127.0.0.66:5060".parse().unwrap());
        core.handle_message(t, from, REGISTER);
        assert_eq!(take(&mut core)[0].1.status(), Some(403));
        assert_eq!(core.registration_count(), 0);
        assert!(core.poll_timeout().is_none(), "nothing kept");
    }
}
