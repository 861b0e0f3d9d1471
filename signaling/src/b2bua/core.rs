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
use std::net::SocketAddr;
use std::time::Instant;

use engine::api::{Command, SessionId, SessionStats};

use super::call::{Call, CallTxn};
use super::demo::DemoRegistrar;
use super::policy::AcceptList;
use super::register;
use super::route::StaticRoute;
use crate::sdp::pts::PtFilter;
use crate::sip::hdr::{NameAddr, SipUri, Via};
use crate::sip::msg::{error_response_for, reason_phrase, Method, SipMsg};
use crate::sip::txn::{ClientEvent, ClientTxn, Kind, ServerEvent, ServerTxn, TimerValues};
use crate::transport::ws::ConnName;

/// Where a message came from or goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Ws(ConnName),
    Udp(SocketAddr),
}

impl Peer {
    /// The transport label used in metrics.
    pub fn transport(&self) -> &'static str {
        match self {
            Peer::Ws(_) => "ws",
            Peer::Udp(_) => "udp",
        }
    }

    /// WebSocket is reliable: no retransmissions.
    pub fn is_reliable(&self) -> bool {
        matches!(self, Peer::Ws(_))
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Vec<u8>,
}

/// What happened, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// A request that did not parse was answered with this status.
    Rejected {
        transport: &'static str,
        status: u16,
        reason: String,
    },
    /// A message that did not parse and could not be answered, or that matched nothing.
    Dropped {
        transport: &'static str,
        reason: String,
    },
    /// A response was sent with this status.
    Responded { status: u16 },
    /// A REGISTER ended: status from the registrar (or the demo PBX), lifetime granted.
    Registration {
        aor: String,
        conn: String,
        status: u16,
        expires: u32,
    },
    CallStarted {
        call_id: String,
        from: String,
        to: String,
    },
    CallAnswered {
        id: SessionId,
        /// INVITE received to 2xx sent.
        setup: std::time::Duration,
    },
    /// A call is over, with the engine's final media figures when it had a session: one log
    /// line per call.
    CallEnded(CallRecord),
    /// Something the media engine reported (`ice_connected`, `dtls_connected`, `dtls_failed`,
    /// `consent_lost`, `media_timeout`).
    Media { event: &'static str },
    /// The engine's final figures for a session no call waited for (a session torn down on its
    /// own).
    MediaStats { id: SessionId, stats: SessionStats },
}

/// What is known of a call when it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: SessionId,
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub outcome: String,
    pub status: u16,
    pub by: &'static str,
    pub duration: std::time::Duration,
    pub answered: bool,
    /// Per leg (A = the caller's side): packets, bytes, loss, jitter. `None` when the engine
    /// had no session for it (allocation failed or never answered).
    pub media: Option<SessionStats>,
}

/// Methods this gateway answers or relays.
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, MESSAGE, NOTIFY, REGISTER, SUBSCRIBE";

/// The core's view of the configuration.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Host the gateway puts in its Via, Path and Contact (the advertise address).
    pub own_host: String,
    /// The SIP/UDP port actually bound.
    pub sip_port: u16,
    /// The outbound proxy's addresses; `None` runs the demo PBX registrar.
    pub proxy: Option<Vec<SocketAddr>>,
    pub timers: TimerValues,
    /// Makes tags and branches of this process unlike another's.
    pub salt: u64,
    /// Where browser calls go (None: the demo PBX).
    pub route: Option<StaticRoute>,
    pub accept: AcceptList,
    pub pts: PtFilter,
    /// The address put in SDP.
    pub advertise: std::net::IpAddr,
}

impl CoreConfig {
    fn own_hostport(&self) -> String {
        format!("{}:{}", self.own_host, self.sip_port)
    }
}

/// Server transactions are matched by branch, sent-by and method (ACK matches INVITE),
/// RFC 3261 §17.2.3.
pub(super) type ServerKey = (String, String, String);

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
    Some((
        via.branch()?.to_string(),
        sent_by.to_ascii_lowercase(),
        method,
    ))
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
    pub(super) clients: HashMap<String, ClientEntry>,
    pub(super) servers: HashMap<ServerKey, ServerEntry>,
    /// Requests being relayed to the other leg, by their server transaction.
    pub(super) server_requests: HashMap<ServerKey, SipMsg>,
    /// AORs registered through each WebSocket connection (upstream registrar).
    registrations: HashMap<ConnName, HashSet<String>>,
    pub(super) demo: Option<DemoRegistrar>,
    pub(super) calls: HashMap<SessionId, Call>,
    /// (Call-ID, our tag) of each leg, to the call.
    pub(super) call_index: HashMap<(String, String), SessionId>,
    /// The caller's INVITE transaction, to the call (for CANCEL).
    pub(super) invite_index: HashMap<ServerKey, SessionId>,
    /// Calls over whose session release the engine has not confirmed yet (their figures come
    /// with `Event::Released`).
    pub(super) ending: HashMap<SessionId, CallRecord>,
    pub(super) ws_open: HashSet<ConnName>,
    pub(super) commands: VecDeque<Command>,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<CoreEvent>,
}

impl Core {
    pub fn new(cfg: CoreConfig) -> Self {
        // The demo PBX only when neither OUTBOUND_PROXY nor OUTBOUND_ROUTE is set.
        let demo = (cfg.proxy.is_none() && cfg.route.is_none()).then(DemoRegistrar::default);
        Core {
            cfg,
            draining: false,
            seq: 0,
            clients: HashMap::new(),
            servers: HashMap::new(),
            server_requests: HashMap::new(),
            registrations: HashMap::new(),
            demo,
            calls: HashMap::new(),
            call_index: HashMap::new(),
            invite_index: HashMap::new(),
            ending: HashMap::new(),
            ws_open: HashSet::new(),
            commands: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// From now on new calls get 503.
    pub fn handle_drain(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Registrations currently held through this gateway.
    pub fn registration_count(&self, now: Instant) -> usize {
        match &self.demo {
            Some(d) => d.len(now),
            None => self.registrations.values().map(HashSet::len).sum(),
        }
    }

    /// A WebSocket connection opened.
    pub fn handle_ws_opened(&mut self, conn: &ConnName) {
        self.ws_open.insert(conn.clone());
    }

    /// A WebSocket connection closed: its calls end (BYE to the other side), what was
    /// registered through it is forgotten.
    pub fn handle_ws_closed(&mut self, now: Instant, conn: &ConnName) {
        self.ws_open.remove(conn);
        self.end_calls_of(now, conn);
        self.registrations.remove(conn);
        if let Some(d) = &mut self.demo {
            d.forget_peer(&Peer::Ws(conn.clone()));
        }
        // Transactions towards a closed connection can never complete.
        self.servers.retain(|_, s| s.peer != Peer::Ws(conn.clone()));
        self.clients.retain(|_, c| c.to != Peer::Ws(conn.clone()));
        self.pump(now);
    }

    /// One SIP message (a datagram or a WebSocket message) from `from`.
    pub fn handle_message(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        let msg = match SipMsg::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                let tag = self.new_id();
                match error_response_for(bytes, &e, &tag) {
                    Some(resp) => {
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
                    None => self.dropped(&from, e.reason),
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
        let Some(key) = server_key(&msg) else {
            // No branch: an RFC 2543 peer. Answer statelessly.
            return self.answer_stateless(now, from, msg);
        };
        let method = msg.method().cloned().unwrap_or(Method::Options);
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
        if method == Method::Ack {
            if let Some(s) = self.servers.get_mut(&key) {
                s.txn.handle_ack(now);
                return;
            }
            // An ACK for a 2xx belongs to a dialog; anything else is absorbed.
            self.handle_in_dialog(now, &from, key, msg);
            return;
        }
        if let Some(s) = self.servers.get_mut(&key) {
            s.txn.handle_retransmission();
            return;
        }
        self.servers.insert(
            key.clone(),
            ServerEntry {
                txn: ServerTxn::new(Kind::of(&method), from.is_reliable(), self.cfg.timers),
                peer: from.clone(),
            },
        );
        let in_dialog = msg.to_hdr().is_some_and(|t| t.tag().is_some());
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
                    _ => self.reply(now, &key, &msg, 501),
                }
            }
            Method::Options if !in_dialog => {
                let mut r = self.response(&msg, 200);
                r.push_header("Allow", ALLOW);
                r.push_header("Accept", "application/sdp");
                r.push_header("Supported", "path, timer");
                self.send_on(now, &key, r);
            }
            Method::Invite if !in_dialog => self.handle_new_invite(now, from, key, msg),
            Method::Cancel => {
                if !self.handle_cancel(now, &key, &msg) {
                    self.reply(now, &key, &msg, 481);
                }
            }
            _ if in_dialog => {
                self.server_requests.insert(key.clone(), msg.clone());
                if !self.handle_in_dialog(now, &from, key.clone(), msg.clone()) {
                    self.reply(now, &key, &msg, 481);
                }
            }
            _ => self.reply(now, &key, &msg, 501),
        }
    }

    fn answer_stateless(&mut self, _now: Instant, from: Peer, msg: SipMsg) {
        if msg.method() == Some(&Method::Ack) {
            return;
        }
        let code = if msg.method() == Some(&Method::Options) {
            200
        } else {
            501
        };
        let r = self.response(&msg, code);
        self.send_direct(from, r);
    }

    fn handle_response(&mut self, now: Instant, from: Peer, msg: SipMsg) {
        let branch = msg.top_via().and_then(|v| v.branch().map(str::to_string));
        match branch.and_then(|b| self.clients.get_mut(&b)) {
            Some(c)
                if c.to == from || matches!(from, Peer::Udp(_)) && matches!(c.to, Peer::Udp(_)) =>
            {
                c.txn.handle_response(now, msg);
            }
            _ => self.dropped(&from, "response matches no transaction".into()),
        }
    }

    /// Relays a REGISTER or SUBSCRIBE from a browser to the outbound proxy.
    fn proxy_to_registrar(
        &mut self,
        now: Instant,
        key: ServerKey,
        conn: ConnName,
        mut msg: SipMsg,
    ) {
        if !register::decrement_max_forwards(&mut msg) {
            return self.reply(now, &key, &msg, 483);
        }
        let Some(&dest) = self.cfg.proxy.as_ref().and_then(|p| p.first()) else {
            return self.reply(now, &key, &msg, 503);
        };
        let is_register = msg.method() == Some(&Method::Register);
        let branch = format!("z9hG4bK{}", self.new_id());
        register::to_proxy(&mut msg, &self.cfg.own_hostport(), &branch, is_register);
        let aor = msg.to_hdr().map(|t| t.uri).unwrap_or_default();
        let txn = ClientTxn::new(now, msg, false, self.cfg.timers);
        self.clients.insert(
            branch,
            ClientEntry {
                txn,
                to: Peer::Udp(dest),
                purpose: ClientPurpose::Proxy {
                    server: key,
                    conn,
                    aor,
                    is_register,
                },
            },
        );
    }

    fn demo_register(&mut self, now: Instant, key: ServerKey, from: Peer, msg: &SipMsg) {
        let tag = self.new_id();
        let Some(demo) = &mut self.demo else { return };
        let out = demo.handle_register(now, from.clone(), msg, &tag);
        let status = out.response.status().unwrap_or(500);
        self.events.push_back(CoreEvent::Registration {
            aor: out.user,
            conn: peer_name(&from),
            status,
            expires: out.expires,
        });
        self.send_on(now, &key, out.response);
    }

    /// A client transaction's response or timeout, for its purpose.
    fn handle_client_event(&mut self, now: Instant, branch: &str, ev: ClientEvent) {
        let Some(entry) = self.clients.get(branch) else {
            return;
        };
        match &entry.purpose {
            ClientPurpose::Call { id, what, .. } => {
                let (id, what) = (*id, what.clone());
                match (what, ev) {
                    (CallTxn::Invite, ClientEvent::Response(r)) => {
                        self.on_b_invite_response(now, id, r)
                    }
                    (CallTxn::Invite, ClientEvent::Timeout) => {
                        if let Some(c) = self.calls.get(&id) {
                            let (key, inv) = (c.a_key.clone(), c.a_invite.clone());
                            let r = self.response(&inv, 408);
                            self.send_on(now, &key, r);
                            self.end_call(now, id, "no answer");
                        }
                    }
                    (CallTxn::Relay { server, method }, ClientEvent::Response(r)) => {
                        self.on_relay_response(now, id, &server, &method, Some(r))
                    }
                    (CallTxn::Relay { server, method }, ClientEvent::Timeout) => {
                        self.on_relay_response(now, id, &server, &method, None)
                    }
                    (CallTxn::Refresh, ClientEvent::Response(r)) => {
                        self.on_refresh_response(now, id, Some(r))
                    }
                    (CallTxn::Refresh, ClientEvent::Timeout) => {
                        self.on_refresh_response(now, id, None)
                    }
                    (CallTxn::Bye | CallTxn::Cancel, _) => {}
                }
            }
            ClientPurpose::Proxy {
                server,
                conn,
                aor,
                is_register,
            } => {
                let (server, conn, aor, is_register) =
                    (server.clone(), conn.clone(), aor.clone(), *is_register);
                match ev {
                    ClientEvent::Response(mut resp) => {
                        let status = resp.status().unwrap_or(500);
                        if status == 100 || register::pop_own_via(&mut resp, branch).is_none() {
                            return;
                        }
                        if is_register && status >= 200 {
                            let expires = if (200..300).contains(&status) {
                                register::granted_expires(&resp, &conn)
                            } else {
                                0
                            };
                            let set = self.registrations.entry(conn.clone()).or_default();
                            if expires > 0 {
                                set.insert(aor.clone());
                            } else if (200..300).contains(&status) {
                                set.remove(&aor);
                            }
                            if status != 401 && status != 407 {
                                self.events.push_back(CoreEvent::Registration {
                                    aor,
                                    conn: conn.0.clone(),
                                    status,
                                    expires,
                                });
                            }
                        }
                        self.send_on(now, &server, resp);
                    }
                    ClientEvent::Timeout => {
                        let req = entry.txn.request().clone();
                        if is_register {
                            self.events.push_back(CoreEvent::Registration {
                                aor,
                                conn: conn.0.clone(),
                                status: 408,
                                expires: 0,
                            });
                        }
                        // The original request, as the browser sent it, minus our Via.
                        let mut original = req;
                        register::pop_own_via(&mut original, branch);
                        self.reply(now, &server, &original, 408);
                    }
                }
            }
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
        branch: String,
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

    pub(super) fn reply(&mut self, now: Instant, key: &ServerKey, req: &SipMsg, code: u16) {
        let r = self.response(req, code);
        self.send_on(now, key, r);
    }

    fn send_direct(&mut self, to: Peer, resp: SipMsg) {
        if let Some(status) = resp.status() {
            self.events.push_back(CoreEvent::Responded { status });
        }
        self.transmits.push_back(Transmit {
            to,
            bytes: resp.to_bytes(),
        });
    }

    pub(super) fn response(&mut self, req: &SipMsg, code: u16) -> SipMsg {
        let tag = self.new_id();
        let mut r = req.response(code, reason_phrase(code), Some(&tag));
        r.push_header(
            "Server",
            concat!("webrtc-phone/", env!("CARGO_PKG_VERSION")),
        );
        r
    }

    fn dropped(&mut self, from: &Peer, reason: String) {
        self.events.push_back(CoreEvent::Dropped {
            transport: from.transport(),
            reason,
        });
    }

    pub(super) fn new_id(&mut self) -> String {
        self.seq += 1;
        format!("{:x}{:x}", self.cfg.salt & 0xffff_ffff_ffff, self.seq)
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        for c in self.clients.values_mut() {
            if c.txn.poll_timeout().is_some_and(|t| t <= now) {
                c.txn.handle_timeout(now);
            }
        }
        for s in self.servers.values_mut() {
            if s.txn.poll_timeout().is_some_and(|t| t <= now) {
                s.txn.handle_timeout(now);
            }
        }
        self.pump(now);
        self.handle_call_timeouts(now);
        self.pump(now);
    }

    /// Moves what the transactions produced to the output queues, handles client events, and
    /// drops finished transactions.
    pub(super) fn pump(&mut self, now: Instant) {
        // Handling an event can start new transactions (a deferred CANCEL, a BYE): go round
        // until nothing new comes out. Bounded: each round consumes the events it handles.
        for _ in 0..8 {
            let mut client_events = Vec::new();
            for (branch, c) in &mut self.clients {
                while let Some(bytes) = c.txn.poll_transmit() {
                    self.transmits.push_back(Transmit {
                        to: c.to.clone(),
                        bytes,
                    });
                }
                while let Some(ev) = c.txn.poll_event() {
                    client_events.push((branch.clone(), ev));
                }
            }
            if client_events.is_empty() {
                break;
            }
            for (branch, ev) in client_events {
                self.handle_client_event(now, &branch, ev);
            }
        }
        let mut no_ack = Vec::new();
        for (key, s) in &mut self.servers {
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
        }
        for key in no_ack {
            // RFC 3261 §13.3.1.4: no ACK for our 2xx within 64*T1 ends the call.
            if let Some(&id) = self.invite_index.get(&key) {
                self.hang_up_both(now, id, "no ACK");
            }
        }
        self.clients.retain(|_, c| !c.txn.is_terminated());
        self.servers.retain(|_, s| !s.txn.is_terminated());
        let servers = &self.servers;
        self.server_requests.retain(|k, _| servers.contains_key(k));
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.clients.values().filter_map(|c| c.txn.poll_timeout());
        let s = self.servers.values().filter_map(|s| s.txn.poll_timeout());
        c.chain(s).chain(self.next_call_timeout()).min()
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

fn peer_name(p: &Peer) -> String {
    match p {
        Peer::Ws(c) => c.0.clone(),
        Peer::Udp(a) => a.to_string(),
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

    const INVITE: &[u8] = include_bytes!("../../tests/fixtures/sipjs/invite.txt");
    const REGISTER: &[u8] = include_bytes!("../../tests/fixtures/sipjs/register.txt");

    fn now0() -> Instant {
        #[allow(
            clippy::disallowed_methods,
            reason = "the one clock read of a virtual-clock test"
        )]
        Instant::now()
    }

    fn cfg(proxy: bool) -> CoreConfig {
        CoreConfig {
            own_host: "127.0.0.1".into(),
            sip_port: 5060,
            proxy: proxy.then(|| vec!["127.0.0.1:5090".parse().unwrap()]),
            timers: TimerValues::default(),
            salt: 7,
            route: None,
            accept: AcceptList::parse("[[WSS]],[[PROXY]]").unwrap(),
            pts: PtFilter::parse("[PCMU/8000]").unwrap(),
            advertise: "127.0.0.1".parse().unwrap(),
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
        core.handle_message(now0(), ws(), INVITE);
        let out = take(&mut core);
        assert_eq!(out.len(), 1);
        let r = &out[0].1;
        assert_eq!(r.status(), Some(503));
        assert_eq!(r.header("Retry-After"), Some("30"));
        assert!(r.to_hdr().unwrap().tag().is_some());
        assert_eq!(r.call_id(), SipMsg::parse(INVITE).unwrap().call_id());
    }

    #[test]
    fn malformed_requests_get_400_and_garbage_is_dropped() {
        let mut core = Core::new(cfg(true));
        let bad = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n";
        core.handle_message(now0(), ws(), bad);
        assert_eq!(take(&mut core)[0].1.status(), Some(400));
        assert!(matches!(
            core.poll_event(),
            Some(CoreEvent::Rejected { status: 400, .. })
        ));
        core.handle_message(now0(), ws(), b"\x00\x01garbage");
        assert!(core.poll_transmit().is_none());
        assert!(matches!(core.poll_event(), Some(CoreEvent::Dropped { .. })));
    }

    #[test]
    fn register_goes_to_the_proxy_and_401_comes_back_untouched() {
        let t = now0();
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
        assert_eq!(core.registration_count(t), 0);
    }

    #[test]
    fn register_200_counts_and_ws_close_forgets() {
        let t = now0();
        let mut core = Core::new(cfg(true));
        core.handle_message(t, ws(), REGISTER);
        let fwd = take(&mut core).remove(0).1;
        let mut ok = fwd.response(200, "OK", Some("reg"));
        ok.push_header(
            "Contact",
            format!("{};expires=600", fwd.header("Contact").unwrap()),
        );
        core.handle_message(t, registrar(), &ok.to_bytes());
        assert_eq!(take(&mut core)[0].1.status(), Some(200));
        assert_eq!(core.registration_count(t), 1);
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
        assert_eq!(core.registration_count(t), 0);
    }

    #[test]
    fn silent_registrar_gives_the_browser_408() {
        let t = now0();
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
        let t = now0();
        let mut core = Core::new(cfg(false));
        core.handle_message(t, ws(), REGISTER);
        let out = take(&mut core);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.status(), Some(200));
        assert!(out[0].1.header("Contact").unwrap().contains("c1.invalid"));
        assert_eq!(core.registration_count(t), 1);
        core.handle_ws_closed(t, &conn());
        assert_eq!(core.registration_count(t), 0);
    }

    #[test]
    fn options_and_stray_requests() {
        let t = now0();
        let mut core = Core::new(cfg(true));
        let opt = b"OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\nFrom: <sip:k@x>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        core.handle_message(t, registrar(), opt);
        let r = take(&mut core).remove(0).1;
        assert_eq!(r.status(), Some(200));
        assert!(r.header("Allow").unwrap().contains("INVITE"));
        // the same OPTIONS again: a retransmission, answered from the transaction
        core.handle_message(t, registrar(), opt);
        assert_eq!(take(&mut core).remove(0).1.status(), Some(200));
        let bye = String::from_utf8_lossy(opt)
            .replace("OPTIONS sip:gw", "BYE sip:gw")
            .replace("1 OPTIONS", "1 BYE")
            .replace("z9hG4bK1", "z9hG4bK2")
            .replace("To: <sip:gw>", "To: <sip:gw>;tag=x");
        core.handle_message(t, registrar(), bye.as_bytes());
        assert_eq!(take(&mut core).remove(0).1.status(), Some(481));
        assert!(core.poll_timeout().is_some());
    }
}
