//! The core's side of calls: the one routing function for new INVITEs, the indexes that find
//! a call for a message, and the dispatch of messages, engine outputs and timers to the
//! [`Call`] state machines, whose [`Action`]s it carries out. No call logic lives here.

use std::time::Instant;

use engine::api::{Command, Event, LegSpec, Output, Reply, SessionId};

use super::call::{strip_tag, user_of, Action, Call, CallKind, CallTxn, Env, Leg, NewCall};
use super::core::{ClientPurpose, Core};
use super::errors::SipError;
use super::route::{Cld, Dest};
use super::types::{ConnName, CoreEvent, EndReason, Peer, RefusalReason, ServerKey};
use crate::sdp::model::Sdp;
use crate::sdp::translate::{self, Origin};
use crate::sip::dialog::{contact_uri, Dialog, DialogState};
use crate::sip::hdr::{NameAddr, SipUri};
use crate::sip::msg::{SipMsg, StartLine};
use crate::sip::names::{Branch, CallId, Tag};
use crate::sip::txn::{ClientEvent, ClientTxn};

/// Where a new INVITE goes: the kind of call, leg B's peer and its Request-URI. `Err`: the
/// status that refuses it.
fn route_invite(core: &Core, now: Instant, from: &Peer, msg: &SipMsg) -> Result<Routed, SipError> {
    let ruri = match &msg.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => return Err(SipError::BadRequest),
    };
    let ruri_parsed = SipUri::parse(&ruri);
    let to_user = ruri_parsed
        .as_ref()
        .and_then(|u| u.user.clone())
        .unwrap_or_default();
    let ws_conn = || {
        ruri_parsed
            .as_ref()
            .filter(|u| u.host.ends_with(".invalid"))
            .map(|u| ConnName(u.host.clone()))
    };
    let (kind, b_peer, b_target) = match from {
        Peer::Ws(_) if core.demo.is_some() => {
            if to_user == "echo" {
                (CallKind::DemoEcho, from.clone(), String::new())
            } else {
                let b = core
                    .demo
                    .as_ref()
                    .and_then(|d| d.lookup(now, &to_user))
                    .ok_or(SipError::UnknownUser)?;
                match &b.peer {
                    Peer::Ws(_) => (
                        CallKind::DemoBrowserToBrowser,
                        b.peer.clone(),
                        b.contact.clone(),
                    ),
                    Peer::Udp(_) => (CallKind::BrowserToSip, b.peer.clone(), b.contact.clone()),
                }
            }
        }
        Peer::Ws(_)
            if core
                .cfg
                .route
                .as_ref()
                .is_some_and(|r| r.dest == Dest::WssUa) =>
        {
            // `wss-ua`: down the WebSocket the Request-URI names (browser to browser).
            match ws_conn() {
                Some(c) if core.ws_open.contains_key(&c) => {
                    (CallKind::DemoBrowserToBrowser, Peer::Ws(c), ruri.clone())
                }
                Some(_) => return Err(SipError::Unavailable),
                None => return Err(SipError::UnknownUser),
            }
        }
        Peer::Ws(_) => {
            let route = core
                .cfg
                .route
                .as_ref()
                .ok_or(SipError::ServiceUnavailable)?;
            let Dest::Host { addrs, host, port } = &route.dest else {
                // `sip-ua` ("back to the source") has no meaning for a browser's call.
                return Err(SipError::NotImplemented);
            };
            // `op=` names an outbound proxy for this leg: the request goes there instead.
            let addr = *route
                .op_addrs
                .first()
                .or(addrs.first())
                .ok_or(SipError::ServiceUnavailable)?;
            // Keep the Request-URI the browser signed (its digest `uri`), with the user the
            // route forces; the request goes to the route's address.
            let mut u = ruri_parsed.clone().unwrap_or(SipUri {
                scheme: "sip".into(),
                user: None,
                host: host.clone(),
                port: Some(*port),
                params: Default::default(),
                headers: None,
            });
            match &route.cld {
                Cld::Keep => {}
                Cld::Remove => u.user = None,
                Cld::Set(c) => u.user = Some(c.clone()),
            }
            (CallKind::BrowserToSip, Peer::Udp(addr), u.to_string())
        }
        Peer::Udp(_) => {
            // From the SIP side: the Request-URI names a browser's connection.
            let conn = ws_conn().ok_or(SipError::UnknownUser)?;
            if !core.ws_open.contains_key(&conn) {
                // The browser is gone: say so at once (seed defect 19).
                return Err(SipError::Unavailable);
            }
            (CallKind::SipToBrowser, Peer::Ws(conn), ruri.clone())
        }
    };
    Ok(Routed {
        kind,
        b_peer,
        b_target,
        ruri,
        to_user,
    })
}

struct Routed {
    kind: CallKind,
    b_peer: Peer,
    b_target: String,
    ruri: String,
    to_user: String,
}

impl Core {
    /// A new INVITE from a browser or from the SIP side (no To-tag, not a retransmission).
    pub(super) fn handle_new_invite(
        &mut self,
        now: Instant,
        from: Peer,
        key: ServerKey,
        mut msg: SipMsg,
    ) {
        // Draining and ACCEPT_IPS were answered before any state was kept (core.rs).
        if !super::register::decrement_max_forwards(&mut msg) {
            return self.refuse(now, &key, &msg, SipError::TooManyHops);
        }
        let Some(offer) = (!msg.body.is_empty())
            .then(|| Sdp::parse(&msg.body).ok())
            .flatten()
        else {
            // Offer-less INVITEs (RFC 3261 §14.1) are not supported for new calls.
            return self.refuse(now, &key, &msg, SipError::NotAcceptableHere);
        };
        let trying = self.response(&msg, 100);
        self.send_on(now, &key, trying);
        let r = match route_invite(self, now, &from, &msg) {
            Ok(r) => r,
            Err(err) => return self.refuse(now, &key, &msg, err),
        };
        let holders = self.call_holders(&from, &r.b_peer);
        if let Err(reason) = self.check_call_caps(&holders) {
            self.events.push_back(CoreEvent::CallRefused { reason });
            let mut resp = if reason == RefusalReason::Total {
                let mut resp = self.response(&msg, SipError::ServiceUnavailable.status());
                resp.push_header("Retry-After", "10");
                resp
            } else {
                self.response(&msg, SipError::BusyHere.status())
            };
            resp.push_header(
                "Reason",
                format!("SIP;cause=503;text=\"call limit ({reason})\""),
            );
            return self.send_on(now, &key, resp);
        }
        let kind = r.kind;
        let legs = match kind {
            CallKind::BrowserToSip => [webrtc_spec(&offer), LegSpec::Plain(None)],
            CallKind::SipToBrowser => match translate::plain_remote(&offer) {
                Ok(p) => [LegSpec::Plain(Some(p)), LegSpec::WebRtc(None)],
                Err(e) => return self.refuse(now, &key, &msg, (&e).into()),
            },
            CallKind::DemoEcho => [webrtc_spec(&offer), LegSpec::Echo],
            CallKind::DemoBrowserToBrowser => [webrtc_spec(&offer), LegSpec::WebRtc(None)],
        };
        if matches!(legs[0], LegSpec::WebRtc(None)) {
            return self.refuse(now, &key, &msg, SipError::NotAcceptableHere);
        }
        self.seq += 1;
        let id = SessionId(self.seq);
        let from_user = user_of(msg.header("From").unwrap_or_default());
        let from_na = strip_tag(msg.header("From").unwrap_or_default());
        let to_na = strip_tag(msg.header("To").unwrap_or_default());
        let adv = self.cfg.advertise;
        let a = Leg {
            peer: from.clone(),
            dialog: Dialog {
                state: DialogState::Early,
                call_id: msg.call_id().into(),
                local_tag: self.new_id().into(),
                remote_tag: msg.from_hdr().and_then(|f| f.tag().map(Tag::from)),
                local_uri: to_na.clone(),
                remote_uri: from_na.clone(),
                remote_target: contact_uri(&msg).unwrap_or_else(|| r.ruri.clone()),
                route_set: msg
                    .headers_named("Record-Route")
                    .map(str::to_string)
                    .collect(),
                local_cseq: 0,
                remote_cseq: msg.cseq().seq,
            },
            remote_sdp: Some(offer.clone()),
            last_answer: None,
            reinvite_key: None,
            origin: Origin::new(id.0, adv),
        };
        let b_from = self.caller_id_for_b(kind, &from_na);
        let b = Leg {
            peer: r.b_peer,
            dialog: Dialog {
                state: DialogState::Early,
                // Nothing of leg A's Call-ID leaks to leg B, and nothing in it can be guessed.
                call_id: self.ids.call_id().into(),
                local_tag: self.new_id().into(),
                remote_tag: None,
                local_uri: b_from,
                remote_uri: to_na,
                remote_target: r.b_target,
                route_set: Vec::new(),
                local_cseq: msg.cseq().seq,
                remote_cseq: 0,
            },
            remote_sdp: None,
            last_answer: None,
            reinvite_key: None,
            origin: Origin::new(id.0 + (1 << 32), adv),
        };
        // A plain leg gets a second port pair when the offer has a video section to carry.
        let video = matches!(kind, CallKind::BrowserToSip | CallKind::SipToBrowser)
            && translate::video_section(&offer).is_some();
        for leg in [&a, &b] {
            self.call_index.insert(
                (leg.dialog.call_id.clone(), leg.dialog.local_tag.clone()),
                id,
            );
        }
        self.invite_index.insert(key.clone(), id);
        self.hold_call(id, &holders);
        let call = Call::start(
            now,
            self.cfg.limits.no_answer_timeout,
            NewCall {
                id,
                kind,
                a,
                b,
                a_invite: msg,
                a_key: key,
                from_user,
                to_user: r.to_user,
                holders,
                allocate: Command::Allocate { id, legs, video },
            },
        );
        self.calls.insert(id, call);
        self.run_call(now, id, |_, _| {});
    }

    /// The From of leg B: the caller's, with the route's `cli` and `cnam` for browser calls.
    fn caller_id_for_b(&self, kind: CallKind, from_na: &str) -> String {
        let Some(p) = self
            .cfg
            .route
            .as_ref()
            .map(|r| &r.params)
            .filter(|_| kind == CallKind::BrowserToSip)
        else {
            return from_na.to_string();
        };
        let mut na = NameAddr::parse(from_na, "From").ok();
        if let (Some(n), Some(cli)) = (na.as_mut(), &p.cli) {
            if let Some(mut u) = SipUri::parse(&n.uri) {
                u.user = (!cli.is_empty()).then(|| cli.clone());
                n.uri = u.to_string();
            }
        }
        if let (Some(n), Some(cnam)) = (na.as_mut(), &p.cnam) {
            n.display = (!cnam.is_empty()).then(|| format!("\"{}\"", cnam.replace('"', "")));
        }
        na.map_or(from_na.to_string(), |n| n.to_string())
    }

    /// Runs `f` on call `id` with its environment, then carries out what the call asked for.
    pub(super) fn run_call(
        &mut self,
        now: Instant,
        id: SessionId,
        f: impl FnOnce(&mut Call, &mut Env<'_>),
    ) {
        let ws_open = &self.ws_open;
        let is_open = |c: &ConnName| ws_open.contains_key(c);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut env = Env {
            cfg: &self.cfg,
            ids: &mut self.ids,
            is_open: &is_open,
        };
        f(call, &mut env);
        let mut actions = Vec::new();
        while let Some(a) = call.poll_action() {
            actions.push(a);
        }
        for a in actions {
            self.apply(now, id, a);
        }
    }

    fn apply(&mut self, now: Instant, id: SessionId, action: Action) {
        match action {
            Action::Respond { key, resp } => self.send_on(now, &key, resp),
            Action::Request {
                branch,
                to,
                req,
                what,
            } => {
                let txn = ClientTxn::new(now, req, to.is_reliable(), self.cfg.timers);
                self.add_client(branch, txn, to, ClientPurpose::Call { id, what });
            }
            Action::Send { to, bytes } => self
                .transmits
                .push_back(super::types::Transmit { to, bytes }),
            Action::Engine(cmd) => self.commands.push_back(cmd),
            Action::Cancelled { branch } => {
                if let Some(t) = self.clients.get_mut(&branch) {
                    t.txn.handle_cancelled(now);
                }
            }
            Action::AckFor2xx { key } => {
                if let Some(s) = self.servers.get_mut(&key) {
                    s.txn.handle_ack_for_2xx();
                }
            }
            Action::Event(ev) => self.events.push_back(ev),
            Action::Ended {
                record,
                awaiting_release,
            } => {
                let Some(c) = self.calls.remove(&id) else {
                    return;
                };
                self.release_call(id, &c.holders);
                // The keys the call was indexed under (no scan of every call per hang-up).
                for leg in [&c.a, &c.b] {
                    let k = (leg.dialog.call_id.clone(), leg.dialog.local_tag.clone());
                    if self.call_index.get(&k) == Some(&id) {
                        self.call_index.remove(&k);
                    }
                }
                if self.invite_index.get(c.invite_key()) == Some(&id) {
                    self.invite_index.remove(c.invite_key());
                }
                if awaiting_release {
                    self.ending.insert(id, record);
                } else {
                    self.events.push_back(CoreEvent::CallEnded(record));
                }
            }
        }
    }

    /// A client transaction's response or timeout, for the call it belongs to.
    pub(super) fn call_client_event(
        &mut self,
        now: Instant,
        id: SessionId,
        branch: &Branch,
        what: CallTxn,
        ev: ClientEvent,
    ) {
        if let CallTxn::Relay { server, .. } = &what {
            if self.servers.get(server).is_none() {
                // Nobody to relay the answer to any more.
                if let Some(c) = self.calls.get_mut(&id) {
                    c.forget_relay(branch);
                }
                return;
            }
        }
        self.run_call(now, id, |c, env| {
            c.handle_client_event(env, now, branch, what, ev)
        });
    }

    /// An in-dialog request for a call (To-tag = one of our tags); `false` when none has it.
    pub(super) fn handle_in_dialog(
        &mut self,
        now: Instant,
        from: &Peer,
        key: ServerKey,
        msg: SipMsg,
    ) -> bool {
        let Some(tag) = msg.to_hdr().and_then(|t| t.tag().map(str::to_string)) else {
            return false;
        };
        let Some(&id) = self
            .call_index
            .get(&(CallId::from(msg.call_id()), Tag::from(tag.as_str())))
        else {
            return false;
        };
        let Some(c) = self.calls.get(&id) else {
            return false;
        };
        let leg = c.leg_of(msg.call_id(), &tag);
        self.run_call(now, id, |c, env| {
            c.handle_request(env, now, from, leg, key, msg)
        });
        true
    }

    /// CANCEL from leg A for a call not yet answered; `false` when it matches no call.
    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        from: &Peer,
        cancel_key: &ServerKey,
        msg: &SipMsg,
    ) -> bool {
        let invite_key = cancel_key.invite();
        let Some(&id) = self.invite_index.get(&invite_key) else {
            return false;
        };
        // Only the INVITE's own sender may cancel it (RFC 3261 §9.2: the CANCEL goes where the
        // INVITE went, hop by hop).
        if self
            .servers
            .get(&invite_key)
            .is_none_or(|s| !self.is_same_peer(&s.peer, from))
        {
            return false;
        }
        self.reply_ok(now, cancel_key, msg);
        // The 200 for the CANCEL leaves before the INVITE's 487 (strict peers expect that order).
        self.flush_server(cancel_key);
        self.run_call(now, id, |c, _| c.handle_cancel(now));
        true
    }

    /// Replies and events from the media engine.
    pub fn handle_engine(&mut self, now: Instant, out: Output) {
        let id = match &out {
            Output::Reply(
                Reply::Allocated { id, .. }
                | Reply::Updated { id, .. }
                | Reply::Failed { id, .. }
                | Reply::Stats { id, .. },
            ) => *id,
            Output::Event(ev) => {
                let name = match ev {
                    Event::IceConnected { .. } => Some("ice_connected"),
                    Event::DtlsConnected { .. } => Some("dtls_connected"),
                    Event::DtlsFailed { .. } => Some("dtls_failed"),
                    Event::ConsentLost { .. } => Some("consent_lost"),
                    Event::MediaTimeout { .. } => Some("media_timeout"),
                    Event::Released { .. } => None,
                };
                if let Some(event) = name {
                    self.events.push_back(CoreEvent::Media { event });
                }
                event_id(ev)
            }
        };
        match &out {
            Output::Reply(Reply::Failed { .. }) => {
                if let Some(record) = self.ending.remove(&id) {
                    // The engine had no session to release: the call's line without figures.
                    self.events.push_back(CoreEvent::CallEnded(record));
                }
            }
            Output::Event(Event::Released { stats, .. }) => {
                if let Some(mut record) = self.ending.remove(&id) {
                    record.media = Some(*stats);
                    self.events.push_back(CoreEvent::CallEnded(record));
                    return self.pump(now);
                }
                if !self.calls.contains_key(&id) {
                    self.events
                        .push_back(CoreEvent::MediaStats { id, stats: *stats });
                    return self.pump(now);
                }
            }
            Output::Reply(Reply::Allocated { .. }) if !self.calls.contains_key(&id) => {
                // The call ended while the engine allocated: give the session back.
                self.commands.push_back(Command::Release { id });
                return self.pump(now);
            }
            _ => {}
        }
        self.run_call(now, id, |c, env| c.handle_engine(env, now, out));
        self.pump(now);
    }

    /// Fires the call timers that are due: only the calls due, from the deadline index.
    pub(super) fn handle_call_timeouts(&mut self, now: Instant) {
        while let Some(id) = self.calls.pop_due(now) {
            self.run_call(now, id, |c, env| c.handle_timeout(env, now));
        }
    }

    /// Re-arms the deadlines of the calls touched since the last time.
    pub(super) fn arm_calls(&mut self) {
        for id in self.calls.take_touched() {
            let at = self.calls.get(&id).and_then(Call::poll_timeout);
            self.calls.arm(&id, at);
        }
    }

    /// The gateway ends a call on its own (no ACK, connection loss, drain).
    pub fn hang_up_both(&mut self, now: Instant, id: SessionId, reason: EndReason) {
        self.run_call(now, id, |c, env| c.hang_up(env, now, reason));
    }

    /// A WebSocket closed: end its calls at once (BYE to the other side with a Reason).
    pub(super) fn end_calls_of(&mut self, now: Instant, conn: &ConnName) {
        for id in self.calls_of(conn) {
            self.hang_up_both(now, id, EndReason::WebSocketClosed);
        }
    }

    /// Calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Drain time over: hang up every call.
    pub fn hang_up_all(&mut self, now: Instant) {
        let ids: Vec<SessionId> = self.calls.keys().copied().collect();
        for id in ids {
            self.hang_up_both(now, id, EndReason::ShuttingDown);
        }
        self.pump(now);
    }
}

fn webrtc_spec(offer: &Sdp) -> LegSpec {
    LegSpec::WebRtc(translate::webrtc_remote(offer).ok())
}

fn event_id(ev: &Event) -> SessionId {
    match ev {
        Event::IceConnected { id, .. }
        | Event::DtlsConnected { id, .. }
        | Event::DtlsFailed { id, .. }
        | Event::ConsentLost { id, .. }
        | Event::MediaTimeout { id }
        | Event::Released { id, .. } => *id,
    }
}
