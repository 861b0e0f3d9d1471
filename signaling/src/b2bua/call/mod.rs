//! One call of the B2BUA as a state machine: two dialogs (leg A, where the gateway is the UAS,
//! and leg B, where it is the UAC), one engine session whose legs carry the same indices, and
//! the call's timers.
//!
//! Browser to SIP: A is the browser's WebSocket, B goes to OUTBOUND_ROUTE over UDP. SIP to
//! browser: A is the registrar's UDP side, B goes down the WebSocket named by the Request-URI.
//! Demo PBX: B is the engine's echo leg, or another browser.
//!
//! The face (STYLE.md): [`Call::handle_request`], [`Call::handle_client_event`],
//! [`Call::handle_engine`], [`Call::handle_timeout`] take what happened with `now` and an
//! [`Env`] (configuration and identifiers); [`Call::poll_action`] gives what to do: responses
//! on server transactions, requests on new client transactions, engine commands, events, and
//! finally [`Action::Ended`]. The call never touches the transaction table or another call;
//! [`super::core::Core`] owns those and dispatches to it.
//!
//! - `setup`: the engine's allocation, the INVITE on leg B and its responses, CANCEL.
//! - `in_dialog`: requests within the call (BYE, re-INVITE, UPDATE, INFO...), relayed or
//!   answered, and their responses.
//! - `timers`: the call's fixed timer table (route set-up timers, RFC 4028 session timers).

mod in_dialog;
mod setup;
#[cfg(test)]
mod tests;
pub mod timers;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use engine::api::{Command, Event, LegIndex, LocalLeg, Output, Reply, SessionId, SessionStats};

use super::errors::SipError;
use super::ids::Ids;
use super::types::{
    CallRecord, ConnName, CoreConfig, CoreEvent, EndReason, HungUpBy, Peer, ServerKey,
};
use crate::sdp::model::Sdp;
use crate::sdp::translate::Origin;
use crate::sip::dialog::Dialog;
use crate::sip::hdr::{NameAddr, SipUri};
use crate::sip::msg::{reason_phrase, Method, SipMsg};
use crate::sip::names::Branch;
use crate::sip::txn::ClientEvent;
use timers::{CallTimer, CallTimers};

/// What kind of media each side has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    BrowserToSip,
    SipToBrowser,
    DemoEcho,
    DemoBrowserToBrowser,
}

/// Where a call stands, from the caller's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// Waiting for the engine's allocation.
    Allocating,
    /// INVITE sent on leg B, no final answer yet.
    Calling,
    /// Answered at this instant; both dialogs confirmed or confirming.
    Confirmed { at: Instant },
    /// CANCEL in progress (a 2xx crossing it is accepted, then hung up).
    Cancelling,
    /// Over: the call is gone from the core after its [`Action::Ended`].
    Ended,
}

/// The INVITE the gateway sent on leg B, and what happened to it.
#[derive(Debug, Clone)]
pub(super) struct OutInvite {
    pub(super) msg: SipMsg,
    pub(super) branch: Branch,
    /// A provisional response came (a CANCEL may go, RFC 3261 §9.1).
    pub(super) provisional: bool,
    /// The caller cancelled before any provisional response: CANCEL with the first one.
    pub(super) cancel_wanted: bool,
    /// A 422 was answered once with a larger Session-Expires.
    pub(super) retried_422: bool,
    /// A challenge was answered once with the route's `auth=` credentials.
    pub(super) auth_retried: bool,
}

/// One leg: its dialog, where it goes, and its SDP.
#[derive(Debug, Clone)]
pub(super) struct Leg {
    pub(super) peer: Peer,
    pub(super) dialog: Dialog,
    /// The SDP this side sent last (an offer or an answer).
    pub(super) remote_sdp: Option<Sdp>,
    /// The SDP answer the gateway last sent on this leg (for identical re-offers).
    pub(super) last_answer: Option<Sdp>,
    /// The re-INVITE on this leg whose 2xx awaits an ACK.
    pub(super) reinvite_key: Option<ServerKey>,
    pub(super) origin: Origin,
}

/// One thing a call counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Holder {
    Conn(ConnName),
    Ip(IpAddr),
}

/// Why a client transaction of a call exists.
#[derive(Debug, Clone)]
pub(super) enum CallTxn {
    /// The INVITE on leg B.
    Invite,
    /// A BYE on a leg; nothing to relay back.
    Bye,
    /// A CANCEL on leg B.
    Cancel,
    /// A request relayed from the other leg: its final response goes back on `server`, built
    /// from `request` (the one that came in).
    Relay {
        server: ServerKey,
        method: Method,
        request: Box<SipMsg>,
    },
    /// An RFC 4028 session refresh (UPDATE) sent by the gateway.
    Refresh,
}

/// What the call asks its core to do, in order.
#[derive(Debug)]
pub(super) enum Action {
    /// A response on one of the call's server transactions.
    Respond {
        key: ServerKey,
        resp: SipMsg,
    },
    /// A request on a new client transaction.
    Request {
        branch: Branch,
        to: Peer,
        req: SipMsg,
        what: CallTxn,
    },
    /// A message with no transaction (an ACK for a 2xx, RFC 3261 §13.2.2.4).
    Send {
        to: Peer,
        bytes: Vec<u8>,
    },
    Engine(Command),
    /// This client transaction's request was cancelled (it ends within 64*T1).
    Cancelled {
        branch: Branch,
    },
    /// An ACK for the 2xx sent on this server transaction arrived.
    AckFor2xx {
        key: ServerKey,
    },
    Event(CoreEvent),
    /// The call is over. `awaiting_release`: the figures come with the engine's
    /// `Event::Released`; otherwise the record is complete.
    Ended {
        record: CallRecord,
        awaiting_release: bool,
    },
}

/// What a call may read while handling something: configuration, identifiers, and which
/// WebSocket connections are open.
pub(super) struct Env<'a> {
    pub(super) cfg: &'a CoreConfig,
    pub(super) ids: &'a mut Ids,
    pub(super) is_open: &'a dyn Fn(&ConnName) -> bool,
}

impl Env<'_> {
    /// A tag or branch suffix: 64 bits from the CSPRNG.
    pub(super) fn new_id(&mut self) -> String {
        self.ids.token()
    }

    fn own_hostport(&self) -> String {
        format!("{}:{}", self.cfg.own_host, self.cfg.sip_port)
    }

    /// A Via for a request to `peer`, and its branch.
    pub(super) fn via_for(&mut self, peer: &Peer) -> (String, Branch) {
        let branch = Branch::new(format!("z9hG4bK{}", self.new_id()));
        let via = match peer {
            Peer::Udp(_) => format!("SIP/2.0/UDP {};rport;branch={branch}", self.own_hostport()),
            Peer::Ws(_) => format!("SIP/2.0/WSS {};branch={branch}", self.cfg.own_host),
        };
        (via, branch)
    }

    /// The gateway's Contact towards `peer`, with the user it stands for on that leg.
    pub(super) fn contact_for(&self, peer: &Peer, user: &str) -> String {
        let user = if user.is_empty() { "gw" } else { user };
        match peer {
            Peer::Udp(_) => format!("<sip:{user}@{}>", self.own_hostport()),
            Peer::Ws(_) => format!("<sip:{user}@{};transport=ws>", self.cfg.own_host),
        }
    }

    /// A response to `req` with a new To-tag and the Server header.
    pub(super) fn response(&mut self, req: &SipMsg, code: u16) -> SipMsg {
        let tag = self.new_id();
        let mut r = req.response(code, reason_phrase(code), Some(&tag));
        // The product, not its version: no help to a scanner matching versions to holes.
        r.push_header("Server", "webrtc-phone");
        r
    }
}

/// One call.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) id: SessionId,
    pub(super) kind: CallKind,
    pub(super) state: CallState,
    pub(super) a: Leg,
    pub(super) b: Leg,
    /// The caller's INVITE and its server transaction.
    pub(super) a_invite: SipMsg,
    pub(super) a_key: ServerKey,
    /// The INVITE sent on leg B (for CANCEL, ACK and retries).
    pub(super) b_invite: Option<OutInvite>,
    pub(super) local: [Option<LocalLeg>; 2],
    pub(super) started: Instant,
    pub(super) ended_by: Option<HungUpBy>,
    pub(super) final_status: Option<u16>,
    pub(super) from_user: String,
    pub(super) to_user: String,
    /// The engine's figures when it released the session on its own (no Release to send).
    pub(super) final_stats: Option<SessionStats>,
    pub(super) timers: CallTimers,
    /// What the call counts against in the caps: its WebSocket connections and client
    /// addresses.
    pub(super) holders: Vec<Holder>,
    /// Branches of re-INVITEs/UPDATEs relayed for this call with no final response yet (for
    /// glare, RFC 3261 §14.2).
    pub(super) pending_offers: Vec<Branch>,
    actions: VecDeque<Action>,
}

/// A new call as routed by the core: who calls whom, and how.
#[derive(Debug)]
pub(super) struct NewCall {
    pub(super) id: SessionId,
    pub(super) kind: CallKind,
    pub(super) a: Leg,
    pub(super) b: Leg,
    pub(super) a_invite: SipMsg,
    pub(super) a_key: ServerKey,
    pub(super) from_user: String,
    pub(super) to_user: String,
    pub(super) holders: Vec<Holder>,
    /// What the engine is asked to allocate.
    pub(super) allocate: Command,
}

pub(super) fn strip_tag(na: &str) -> String {
    match NameAddr::parse(na, "From/To") {
        Ok(mut n) => {
            n.params.remove("tag");
            n.to_string()
        }
        Err(_) => na.to_string(),
    }
}

pub(super) fn user_of(na: &str) -> String {
    NameAddr::parse(na, "From/To")
        .ok()
        .and_then(|n| SipUri::parse(&n.uri))
        .and_then(|u| u.user)
        .unwrap_or_default()
}

impl Call {
    /// Starts a call: the engine allocates first; the INVITE on leg B (or the echo's answer)
    /// follows the allocation.
    pub(super) fn start(now: Instant, no_answer: Duration, n: NewCall) -> Call {
        let mut timers = CallTimers::default();
        timers.set(CallTimer::NoAnswer, Some(now + no_answer));
        let mut call = Call {
            id: n.id,
            kind: n.kind,
            state: CallState::Allocating,
            a: n.a,
            b: n.b,
            a_invite: n.a_invite,
            a_key: n.a_key,
            b_invite: None,
            local: [None, None],
            started: now,
            ended_by: None,
            final_status: None,
            from_user: n.from_user,
            to_user: n.to_user,
            final_stats: None,
            timers,
            holders: n.holders,
            pending_offers: Vec::new(),
            actions: VecDeque::new(),
        };
        call.actions.push_back(Action::Engine(n.allocate));
        call.event(CoreEvent::CallStarted {
            call_id: call.a.dialog.call_id.to_string(),
            from: call.from_user.clone(),
            to: call.to_user.clone(),
        });
        call
    }

    #[must_use]
    pub(super) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest of the call's timers.
    #[must_use]
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub(super) fn is_answered(&self) -> bool {
        self.answered_at().is_some()
    }

    fn answered_at(&self) -> Option<Instant> {
        match self.state {
            CallState::Confirmed { at } => Some(at),
            _ => None,
        }
    }

    pub(super) fn is_ended(&self) -> bool {
        self.state == CallState::Ended
    }

    pub(super) fn leg(&self, l: LegIndex) -> &Leg {
        match l {
            LegIndex::A => &self.a,
            LegIndex::B => &self.b,
        }
    }

    pub(super) fn leg_mut(&mut self, l: LegIndex) -> &mut Leg {
        match l {
            LegIndex::A => &mut self.a,
            LegIndex::B => &mut self.b,
        }
    }

    /// The leg of an in-dialog message of this call (by Call-ID and our tag).
    pub(super) fn leg_of(&self, call_id: &str, our_tag: &str) -> LegIndex {
        if self.a.dialog.local_tag == *our_tag && self.a.dialog.call_id == *call_id {
            LegIndex::A
        } else {
            LegIndex::B
        }
    }

    fn event(&mut self, ev: CoreEvent) {
        self.actions.push_back(Action::Event(ev));
    }

    fn engine(&mut self, cmd: Command) {
        self.actions.push_back(Action::Engine(cmd));
    }

    pub(super) fn send_on(&mut self, key: &ServerKey, resp: SipMsg) {
        self.actions.push_back(Action::Respond {
            key: key.clone(),
            resp,
        });
    }

    /// 200 OK on a server transaction.
    pub(super) fn reply_ok(&mut self, env: &mut Env<'_>, key: &ServerKey, req: &SipMsg) {
        let r = env.response(req, 200);
        self.send_on(key, r);
    }

    /// The refusal `err` on a server transaction, its status from the one table.
    pub(super) fn refuse(
        &mut self,
        env: &mut Env<'_>,
        key: &ServerKey,
        req: &SipMsg,
        err: SipError,
    ) {
        let r = env.response(req, err.status());
        self.send_on(key, r);
    }

    /// Starts a client transaction of this call to `peer`.
    fn start_txn(&mut self, branch: Branch, to: Peer, req: SipMsg, what: CallTxn) {
        if let CallTxn::Relay {
            method: Method::Invite | Method::Update,
            ..
        } = &what
        {
            self.pending_offers.push(branch.clone());
        }
        self.actions.push_back(Action::Request {
            branch,
            to,
            req,
            what,
        });
    }

    /// A response or timeout of one of this call's client transactions.
    pub(super) fn handle_client_event(
        &mut self,
        env: &mut Env<'_>,
        now: Instant,
        branch: &Branch,
        what: CallTxn,
        ev: ClientEvent,
    ) {
        if self.is_ended() {
            return;
        }
        match (what, ev) {
            (CallTxn::Invite, ClientEvent::Response(r)) => self.on_b_invite_response(env, now, r),
            (CallTxn::Invite, ClientEvent::Timeout) => {
                let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
                let r = env.response(&inv, SipError::Timeout.status());
                self.send_on(&key, r);
                self.end(now, EndReason::NoAnswer);
            }
            (
                CallTxn::Relay {
                    server,
                    method,
                    request,
                },
                ev,
            ) => {
                let resp = match ev {
                    ClientEvent::Response(r) => Some(r),
                    ClientEvent::Timeout => None,
                };
                if resp.as_ref().is_none_or(|r| r.status().unwrap_or(0) >= 200) {
                    self.pending_offers.retain(|b| b != branch);
                }
                self.on_relay_response(env, &server, &method, &request, resp);
            }
            (CallTxn::Refresh, ClientEvent::Response(r)) => {
                self.on_refresh_response(env, now, Some(r))
            }
            (CallTxn::Refresh, ClientEvent::Timeout) => self.on_refresh_response(env, now, None),
            (CallTxn::Bye | CallTxn::Cancel, _) => {}
        }
    }

    /// A relayed request's server transaction is gone before its answer came: nothing to
    /// relay back, only the glare bookkeeping.
    pub(super) fn forget_relay(&mut self, branch: &Branch) {
        self.pending_offers.retain(|b| b != branch);
    }

    /// A reply or event from the media engine about this call's session.
    pub(super) fn handle_engine(&mut self, env: &mut Env<'_>, now: Instant, out: Output) {
        match out {
            Output::Reply(Reply::Allocated { legs, .. }) => self.on_allocated(env, now, legs),
            Output::Reply(Reply::Updated { leg, local, .. }) => {
                self.local[leg as usize] = Some(local);
            }
            Output::Reply(Reply::Failed { failure, .. }) => {
                if self.state == CallState::Allocating {
                    let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
                    let mut r = env.response(&inv, SipError::ServiceUnavailable.status());
                    r.push_header(
                        "Reason",
                        format!("SIP;cause=503;text=\"media: {failure:?}\""),
                    );
                    self.answer_a(&key, r);
                    self.end(now, EndReason::MediaAllocationFailed);
                }
            }
            // The B2BUA never queries (the ng node does).
            Output::Reply(Reply::Stats { .. }) => {}
            Output::Event(ev) => self.handle_engine_event(env, now, ev),
        }
    }

    fn handle_engine_event(&mut self, env: &mut Env<'_>, now: Instant, ev: Event) {
        match ev {
            Event::MediaTimeout { .. } => self.hang_up(env, now, EndReason::MediaTimeout),
            // The reason goes to the log through the Media event; the BYE says what failed.
            Event::DtlsFailed { .. } => self.hang_up(env, now, EndReason::DtlsFailed),
            Event::ConsentLost { .. } => self.hang_up(env, now, EndReason::ConsentLost),
            Event::Released { stats, .. } => {
                // The engine dropped a live call's session on its own (a session that failed
                // inside its reactor): the call cannot carry media any more.
                self.final_stats = Some(stats);
                self.hang_up(env, now, EndReason::MediaSessionFailed);
            }
            Event::IceConnected { .. } | Event::DtlsConnected { .. } => {}
        }
    }

    /// Fires the call's timers that are due.
    pub(super) fn handle_timeout(&mut self, env: &mut Env<'_>, now: Instant) {
        for t in self.timers.take_due(now) {
            if self.is_ended() {
                return;
            }
            match t {
                CallTimer::NoReply | CallTimer::NoProgress | CallTimer::NotConnected => {
                    if self.state == CallState::Calling {
                        let why = match t {
                            CallTimer::NoReply => EndReason::NoReply,
                            CallTimer::NoProgress => EndReason::NoProgress,
                            _ => EndReason::NotConnected,
                        };
                        self.hang_up(env, now, why);
                    }
                }
                CallTimer::NoAnswer => {
                    if !self.is_answered() {
                        self.give_up_unanswered(now, SipError::Timeout, EndReason::NoAnswerTimeout);
                    }
                }
                CallTimer::Credit => self.hang_up(env, now, EndReason::CreditTime),
                CallTimer::SessionExpired => self.hang_up(env, now, EndReason::SessionTimerExpired),
                CallTimer::Refresh => self.refresh_session(env),
            }
        }
    }

    /// The gateway ends the call on its own (media failure, connection loss, drain, timers).
    pub(super) fn hang_up(&mut self, env: &mut Env<'_>, now: Instant, reason: EndReason) {
        if self.is_ended() {
            return;
        }
        if !self.is_answered() {
            return self.give_up_unanswered(now, SipError::Unavailable, reason);
        }
        self.ended_by.get_or_insert(HungUpBy::Gateway);
        self.send_bye(env, LegIndex::A, Some(reason));
        self.send_bye(env, LegIndex::B, Some(reason));
        self.end(now, reason);
    }

    /// The gateway ends a call nobody answered: `code` to the caller, CANCEL to the callee
    /// (once it has answered provisionally; RFC 3261 §9.1).
    pub(super) fn give_up_unanswered(&mut self, now: Instant, err: SipError, reason: EndReason) {
        let code = err.status();
        self.ended_by.get_or_insert(HungUpBy::Gateway);
        let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
        let mut r = inv.response(code, reason_phrase(code), None);
        r.push_header("Reason", format!("SIP;cause={code};text=\"{reason}\""));
        self.answer_a(&key, r);
        if self.b_invite.as_ref().is_some_and(|i| i.provisional) {
            self.send_cancel_b();
        }
        self.end(now, reason);
    }

    /// The call is over: its INVITE on leg B is let go, its session released, and the core
    /// told. Transactions still running finish on their own.
    pub(super) fn end(&mut self, now: Instant, outcome: EndReason) {
        if self.is_ended() {
            return;
        }
        let answered_at = self.answered_at();
        self.state = CallState::Ended;
        // An INVITE still waiting on leg B ends within 64*T1 whatever comes back.
        if let Some(inv) = &self.b_invite {
            self.actions.push_back(Action::Cancelled {
                branch: inv.branch.clone(),
            });
        }
        let record = CallRecord {
            id: self.id,
            call_id: self.a.dialog.call_id.to_string(),
            from: self.from_user.clone(),
            to: self.to_user.clone(),
            outcome,
            status: self.final_status.unwrap_or(0),
            by: self.ended_by.unwrap_or(HungUpBy::Gateway),
            duration: answered_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            answered: answered_at.is_some(),
            media: self.final_stats,
        };
        let awaiting_release = self.final_stats.is_none();
        if awaiting_release {
            // Reported when the engine's figures arrive (Event::Released), or its failure.
            self.engine(Command::Release { id: self.id });
        }
        self.actions.push_back(Action::Ended {
            record,
            awaiting_release,
        });
    }

    /// A response on leg A's INVITE transaction, with leg A's To-tag for anything above 100.
    fn answer_a(&mut self, key: &ServerKey, mut resp: SipMsg) {
        if resp.status().unwrap_or(0) >= 200 {
            self.final_status.get_or_insert(resp.status().unwrap_or(0));
        }
        if let Ok(mut to) = NameAddr::parse(resp.header("To").unwrap_or_default(), "To") {
            if resp.status() != Some(100) {
                to.params.set("tag", Some(self.a.dialog.local_tag.as_str()));
                resp.set_header("To", to.to_string());
            }
        }
        self.send_on(key, resp);
    }

    /// BYE on one leg (with a Reason when the gateway ends the call).
    pub(super) fn send_bye(&mut self, env: &mut Env<'_>, leg: LegIndex, reason: Option<EndReason>) {
        if self.kind == CallKind::DemoEcho && leg == LegIndex::B {
            return;
        }
        let l = self.leg(leg);
        if l.dialog.remote_tag.is_none() {
            return;
        }
        if let Peer::Ws(conn) = &l.peer {
            if !(env.is_open)(conn) {
                return;
            }
        }
        let peer = l.peer.clone();
        let (via, branch) = env.via_for(&peer);
        let mut bye = self.leg_mut(leg).dialog.next_request(Method::Bye, via);
        if let Some(reason) = reason {
            bye.push_header("Reason", format!("SIP;cause=200;text=\"{reason}\""));
        }
        self.start_txn(branch, peer, bye, CallTxn::Bye);
    }
}

/// The leg that faces the SIP network, if any.
pub(super) fn sip_leg(kind: CallKind) -> Option<LegIndex> {
    match kind {
        CallKind::BrowserToSip => Some(LegIndex::B),
        CallKind::SipToBrowser => Some(LegIndex::A),
        CallKind::DemoEcho | CallKind::DemoBrowserToBrowser => None,
    }
}

pub(super) fn resp_reason(r: &SipMsg) -> &str {
    match &r.start {
        crate::sip::msg::StartLine::Response { reason, .. } => reason,
        crate::sip::msg::StartLine::Request { .. } => "",
    }
}
