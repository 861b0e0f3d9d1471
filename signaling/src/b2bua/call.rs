//! Calls: the B2BUA. Each call is two dialogs (leg A, where the gateway is the UAS, and leg B,
//! where it is the UAC) and one engine session whose legs carry the same indices.
//!
//! Browser to SIP: A is the browser's WebSocket, B goes to OUTBOUND_ROUTE over UDP. SIP to
//! browser: A is the registrar's UDP side, B goes down the WebSocket named by the Request-URI.
//! Demo PBX: B is the engine's echo leg, or another browser.

use std::time::{Duration, Instant};

use engine::api::{Command, Event, LegIndex, LegSpec, LocalLeg, Output, Reply, SessionId, Setup};

use super::core::{Core, Peer, ServerKey};
use super::route::{Cld, Dest};
use crate::sdp::model::Sdp;
use crate::sdp::translate::{self, LocalWebRtc, Origin, TranslateError};
use crate::sip::hdr::{NameAddr, SipUri};
use crate::sip::msg::{reason_phrase, Method, SipMsg, StartLine};
use crate::sip::txn::ClientTxn;
use crate::transport::ws::ConnName;

/// What kind of media each side has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    BrowserToSip,
    SipToBrowser,
    DemoEcho,
    DemoBrowserToBrowser,
}

/// Call states, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Waiting for the engine's allocation.
    Allocating,
    /// INVITE sent on leg B, no answer yet.
    Calling,
    /// Answered; both dialogs confirmed or confirming.
    Confirmed,
    /// BYE or CANCEL in progress.
    Ending,
}

/// One dialog of a call.
#[derive(Debug, Clone)]
pub(super) struct Leg {
    pub(super) peer: Peer,
    pub(super) call_id: String,
    pub(super) local_tag: String,
    pub(super) remote_tag: Option<String>,
    /// Our side's name-addr (no tag): From on requests we send.
    pub(super) local_uri: String,
    /// The other side's name-addr (no tag).
    pub(super) remote_uri: String,
    /// Request-URI of in-dialog requests.
    pub(super) remote_target: String,
    pub(super) route_set: Vec<String>,
    pub(super) local_cseq: u32,
    pub(super) remote_cseq: u32,
    /// The SDP this side sent last (an offer or an answer).
    pub(super) remote_sdp: Option<Sdp>,
    /// The SDP answer the gateway last sent on this leg (for identical re-offers).
    pub(super) last_answer: Option<Sdp>,
    /// The re-INVITE on this leg whose 2xx awaits an ACK.
    pub(super) reinvite_key: Option<ServerKey>,
    pub(super) origin: Origin,
}

/// One call.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) kind: CallKind,
    pub(super) state: CallState,
    pub(super) a: Leg,
    pub(super) b: Leg,
    /// The caller's INVITE and its server transaction.
    pub(super) a_invite: SipMsg,
    pub(super) a_key: ServerKey,
    /// Branch of the INVITE sent on leg B (for CANCEL).
    pub(super) b_invite_branch: Option<String>,
    /// The INVITE sent on leg B (for CANCEL and ACK).
    pub(super) b_invite: Option<SipMsg>,
    pub(super) local: [Option<LocalLeg>; 2],
    pub(super) b_provisional: bool,
    pub(super) cancel_wanted: bool,
    pub(super) answered: bool,
    pub(super) started: Instant,
    pub(super) answered_at: Option<Instant>,
    pub(super) ended_by: Option<&'static str>,
    pub(super) final_status: Option<u16>,
    pub(super) from_user: String,
    pub(super) to_user: String,
    pub(super) released: bool,
    /// The engine's figures when it released the session on its own (for the call's line).
    pub(super) final_stats: Option<engine::api::SessionStats>,
    pub(super) timers: super::timers::CallTimers,
    /// A 422 was answered once with a larger Session-Expires.
    pub(super) retried_422: bool,
    /// A challenge was answered once with the route's `auth=` credentials.
    pub(super) auth_retried: bool,
    /// What the call counts against in the caps: its WebSocket connections and client
    /// addresses.
    pub(super) holders: Vec<Holder>,
    /// Branches of re-INVITEs/UPDATEs relayed for this call (for glare, RFC 3261 §14.2).
    pub(super) offer_relays: Vec<String>,
}

/// One thing a call counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Holder {
    Conn(ConnName),
    Ip(std::net::IpAddr),
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
    /// A request relayed from the other leg: its final response goes back on `server`.
    Relay { server: ServerKey, method: Method },
    /// An RFC 4028 session refresh (UPDATE) sent by the gateway.
    Refresh,
}

fn strip_tag(na: &str) -> String {
    match NameAddr::parse(na, "From/To") {
        Ok(mut n) => {
            n.params.remove("tag");
            n.to_string()
        }
        Err(_) => na.to_string(),
    }
}

fn user_of(na: &str) -> String {
    NameAddr::parse(na, "From/To")
        .ok()
        .and_then(|n| SipUri::parse(&n.uri))
        .and_then(|u| u.user)
        .unwrap_or_default()
}

fn contact_uri(msg: &SipMsg) -> Option<String> {
    NameAddr::parse(msg.header("Contact")?, "Contact")
        .ok()
        .map(|n| n.uri)
}

impl Core {
    /// The host:port the gateway puts in SIP/UDP Via and Contact.
    fn own_hostport(&self) -> String {
        format!("{}:{}", self.cfg.own_host, self.cfg.sip_port)
    }

    fn via_for(&mut self, peer: &Peer) -> (String, String) {
        let branch = format!("z9hG4bK{}", self.new_id());
        let via = match peer {
            Peer::Udp(_) => format!("SIP/2.0/UDP {};rport;branch={branch}", self.own_hostport()),
            Peer::Ws(_) => format!("SIP/2.0/WSS {};branch={branch}", self.cfg.own_host),
        };
        (via, branch)
    }

    fn contact_for(&self, peer: &Peer, user: &str) -> String {
        let user = if user.is_empty() { "gw" } else { user };
        match peer {
            Peer::Udp(_) => format!("<sip:{user}@{}>", self.own_hostport()),
            Peer::Ws(_) => format!("<sip:{user}@{};transport=ws>", self.cfg.own_host),
        }
    }

    /// A new INVITE from a browser or from the SIP side (no To-tag, not a retransmission).
    pub(super) fn handle_new_invite(
        &mut self,
        now: Instant,
        from: Peer,
        key: ServerKey,
        msg: SipMsg,
    ) {
        // Draining and ACCEPT_IPS were answered before any state was kept (core.rs).
        let mut msg = msg;
        if !super::register::decrement_max_forwards(&mut msg) {
            return self.reply(now, &key, &msg, 483);
        }
        let Some(offer) = (!msg.body.is_empty())
            .then(|| Sdp::parse(&msg.body).ok())
            .flatten()
        else {
            // Offer-less INVITEs (RFC 3261 §14.1) are not supported for new calls.
            return self.reply(now, &key, &msg, 488);
        };
        let trying = self.response(&msg, 100);
        self.send_on(now, &key, trying);

        // Where does leg B go, and what kind of legs does the engine need?
        let ruri = match &msg.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => return,
        };
        let ruri_parsed = SipUri::parse(&ruri);
        let to_user = ruri_parsed
            .as_ref()
            .and_then(|u| u.user.clone())
            .unwrap_or_default();
        let from_user = user_of(msg.header("From").unwrap_or_default());
        let (kind, b_peer, b_target) = match &from {
            Peer::Ws(_) if self.demo.is_some() => {
                if to_user == "echo" {
                    (CallKind::DemoEcho, from.clone(), String::new())
                } else {
                    match self
                        .demo
                        .as_ref()
                        .and_then(|d| d.lookup(now, &to_user))
                        .cloned()
                    {
                        Some(b) => match &b.peer {
                            Peer::Ws(_) => (
                                CallKind::DemoBrowserToBrowser,
                                b.peer.clone(),
                                b.contact.clone(),
                            ),
                            Peer::Udp(_) => {
                                (CallKind::BrowserToSip, b.peer.clone(), b.contact.clone())
                            }
                        },
                        None => return self.reply(now, &key, &msg, 404),
                    }
                }
            }
            Peer::Ws(_)
                if self
                    .cfg
                    .route
                    .as_ref()
                    .is_some_and(|r| r.dest == Dest::WssUa) =>
            {
                // `wss-ua`: down the WebSocket the Request-URI names (browser to browser).
                let conn = ruri_parsed
                    .as_ref()
                    .filter(|u| u.host.ends_with(".invalid"))
                    .map(|u| ConnName(u.host.clone()));
                match conn {
                    Some(c) if self.ws_open.contains_key(&c) => {
                        (CallKind::DemoBrowserToBrowser, Peer::Ws(c), ruri.clone())
                    }
                    Some(_) => return self.reply(now, &key, &msg, 480),
                    None => return self.reply(now, &key, &msg, 404),
                }
            }
            Peer::Ws(_) => {
                let Some(route) = self.cfg.route.clone() else {
                    return self.reply(now, &key, &msg, 503);
                };
                let Dest::Host { addrs, host, port } = &route.dest else {
                    // `sip-ua` ("back to the source") has no meaning for a browser's call.
                    return self.reply(now, &key, &msg, 501);
                };
                // `op=` names an outbound proxy for this leg: the request goes there instead.
                let Some(addr) = route.op_addrs.first().or(addrs.first()).copied() else {
                    return self.reply(now, &key, &msg, 503);
                };
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
                let conn = ruri_parsed
                    .as_ref()
                    .filter(|u| u.host.ends_with(".invalid"))
                    .map(|u| ConnName(u.host.clone()));
                let Some(conn) = conn else {
                    return self.reply(now, &key, &msg, 404);
                };
                if !self.ws_open.contains_key(&conn) {
                    // The browser is gone: say so at once (seed defect 19).
                    return self.reply(now, &key, &msg, 480);
                }
                (CallKind::SipToBrowser, Peer::Ws(conn), ruri.clone())
            }
        };

        let holders = self.call_holders(&from, &b_peer);
        if let Err(reason) = self.check_call_caps(&holders) {
            self.events
                .push_back(super::core::CoreEvent::CallRefused { reason });
            let mut r = if reason == "total" {
                let mut r = self.response(&msg, 503);
                r.push_header("Retry-After", "10");
                r
            } else {
                self.response(&msg, 486)
            };
            r.push_header(
                "Reason",
                format!("SIP;cause=503;text=\"call limit ({reason})\""),
            );
            return self.send_on(now, &key, r);
        }
        let id = SessionId(self.next_session());
        let a_tag = self.new_id();
        let b_tag = self.new_id();
        // Nothing of leg A's Call-ID leaks to leg B, and nothing in it can be guessed.
        let b_call_id = self.ids.call_id();
        let from_na = strip_tag(msg.header("From").unwrap_or_default());
        let to_na = strip_tag(msg.header("To").unwrap_or_default());
        let a_contact = contact_uri(&msg).unwrap_or_else(|| ruri.clone());
        let adv = self.cfg.advertise;
        let a = Leg {
            peer: from.clone(),
            call_id: msg.call_id().to_string(),
            local_tag: a_tag,
            remote_tag: msg.from_hdr().and_then(|f| f.tag().map(str::to_string)),
            local_uri: to_na.clone(),
            remote_uri: from_na.clone(),
            remote_target: a_contact,
            route_set: msg
                .headers_named("Record-Route")
                .map(str::to_string)
                .collect(),
            local_cseq: 0,
            remote_cseq: msg.cseq().seq,
            remote_sdp: Some(offer.clone()),
            last_answer: None,
            reinvite_key: None,
            origin: Origin::new(id.0, adv),
        };
        let b_from = match self.cfg.route.as_ref().map(|r| &r.params) {
            Some(p) if kind == CallKind::BrowserToSip => {
                let mut na = NameAddr::parse(&from_na, "From").ok();
                if let (Some(n), Some(cli)) = (na.as_mut(), &p.cli) {
                    if let Some(mut u) = SipUri::parse(&n.uri) {
                        u.user = (!cli.is_empty()).then(|| cli.clone());
                        n.uri = u.to_string();
                    }
                }
                if let (Some(n), Some(cnam)) = (na.as_mut(), &p.cnam) {
                    n.display =
                        (!cnam.is_empty()).then(|| format!("\"{}\"", cnam.replace('"', "")));
                }
                na.map_or(from_na.clone(), |n| n.to_string())
            }
            _ => from_na.clone(),
        };
        let b = Leg {
            peer: b_peer,
            call_id: b_call_id,
            local_tag: b_tag,
            remote_tag: None,
            local_uri: b_from,
            remote_uri: to_na,
            remote_target: b_target,
            route_set: Vec::new(),
            local_cseq: msg.cseq().seq,
            remote_cseq: 0,
            remote_sdp: None,
            last_answer: None,
            reinvite_key: None,
            origin: Origin::new(id.0 + (1 << 32), adv),
        };
        let legs = match kind {
            CallKind::BrowserToSip => [self.webrtc_spec(&offer), LegSpec::Plain(None)],
            CallKind::SipToBrowser => match translate::plain_remote(&offer) {
                Ok(p) => [LegSpec::Plain(Some(p)), LegSpec::WebRtc(None)],
                Err(e) => return self.reply(now, &key, &msg, e.status()),
            },
            CallKind::DemoEcho => [self.webrtc_spec(&offer), LegSpec::Echo],
            CallKind::DemoBrowserToBrowser => [self.webrtc_spec(&offer), LegSpec::WebRtc(None)],
        };
        if matches!(legs[0], LegSpec::WebRtc(None)) {
            return self.reply(now, &key, &msg, 488);
        }
        // A plain leg gets a second port pair when the offer has a video section to carry.
        let video = matches!(kind, CallKind::BrowserToSip | CallKind::SipToBrowser)
            && translate::video_section(&offer).is_some();
        self.commands
            .push_back(Command::Allocate { id, legs, video });
        self.call_index
            .insert((a.call_id.clone(), a.local_tag.clone()), id);
        self.call_index
            .insert((b.call_id.clone(), b.local_tag.clone()), id);
        self.invite_index.insert(key.clone(), id);
        self.events.push_back(super::core::CoreEvent::CallStarted {
            call_id: a.call_id.clone(),
            from: from_user.clone(),
            to: to_user.clone(),
        });
        self.hold_call(id, &holders);
        let mut timers = super::timers::CallTimers::default();
        timers.set(
            super::timers::CallTimer::NoAnswer,
            Some(now + self.cfg.limits.no_answer_timeout),
        );
        self.calls.insert(
            id,
            Call {
                kind,
                holders,
                state: CallState::Allocating,
                a,
                b,
                a_invite: msg,
                a_key: key,
                b_invite_branch: None,
                b_invite: None,
                local: [None, None],
                b_provisional: false,
                cancel_wanted: false,
                answered: false,
                started: now,
                answered_at: None,
                ended_by: None,
                final_status: None,
                from_user,
                to_user,
                released: false,
                final_stats: None,
                timers,
                retried_422: false,
                auth_retried: false,
                offer_relays: Vec::new(),
            },
        );
    }

    fn webrtc_spec(&self, offer: &Sdp) -> LegSpec {
        LegSpec::WebRtc(translate::webrtc_remote(offer).ok())
    }

    fn next_session(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Replies and events from the media engine.
    pub fn handle_engine(&mut self, now: Instant, out: Output) {
        match out {
            Output::Reply(Reply::Allocated { id, legs }) => self.on_allocated(now, id, legs),
            Output::Reply(Reply::Updated { id, leg, local }) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.local[leg as usize] = Some(local);
                }
            }
            Output::Reply(Reply::Failed { id, failure }) => {
                if let Some(record) = self.ending.remove(&id) {
                    // The engine had no session to release: the call's line without figures.
                    self.events
                        .push_back(super::core::CoreEvent::CallEnded(record));
                }
                let Some(c) = self.calls.get(&id) else { return };
                if c.state == CallState::Allocating {
                    let (key, inv) = (c.a_key.clone(), c.a_invite.clone());
                    let mut r = self.response(&inv, 503);
                    r.push_header(
                        "Reason",
                        format!("SIP;cause=503;text=\"media: {failure:?}\""),
                    );
                    self.answer_a(now, id, &key, r);
                    self.end_call(now, id, "media allocation failed");
                }
            }
            // The B2BUA never queries (the ng node does).
            Output::Reply(Reply::Stats { .. }) => {}
            Output::Event(ev) => {
                let name = match &ev {
                    Event::IceConnected { .. } => Some("ice_connected"),
                    Event::DtlsConnected { .. } => Some("dtls_connected"),
                    Event::DtlsFailed { .. } => Some("dtls_failed"),
                    Event::ConsentLost { .. } => Some("consent_lost"),
                    Event::MediaTimeout { .. } => Some("media_timeout"),
                    Event::Released { .. } => None,
                };
                if let Some(event) = name {
                    self.events
                        .push_back(super::core::CoreEvent::Media { event });
                }
                self.handle_engine_event(now, ev);
            }
        }
        self.pump(now);
    }

    fn handle_engine_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::MediaTimeout { id } => self.hang_up_both(now, id, "media timeout"),
            // The reason goes to the log through the Media event; the BYE says what failed.
            Event::DtlsFailed { id, .. } => self.hang_up_both(now, id, "DTLS failed"),
            Event::ConsentLost { id, .. } => self.hang_up_both(now, id, "ICE consent lost"),
            Event::Released { id, stats } => match self.ending.remove(&id) {
                Some(mut record) => {
                    record.media = Some(stats);
                    self.events
                        .push_back(super::core::CoreEvent::CallEnded(record));
                }
                None if self.calls.contains_key(&id) => {
                    // The engine dropped a live call's session on its own (a session that
                    // failed inside its reactor): the call cannot carry media any more.
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.released = true;
                        c.final_stats = Some(stats);
                    }
                    self.hang_up_both(now, id, "media session failed");
                }
                None => self
                    .events
                    .push_back(super::core::CoreEvent::MediaStats { id, stats }),
            },
            Event::IceConnected { .. } | Event::DtlsConnected { .. } => {}
        }
    }

    fn on_allocated(&mut self, now: Instant, id: SessionId, legs: [LocalLeg; 2]) {
        let Some(c) = self.calls.get_mut(&id) else {
            // The call ended while the engine allocated: give the session back.
            self.commands.push_back(Command::Release { id });
            return;
        };
        if c.state != CallState::Allocating {
            return;
        }
        c.local = [Some(legs[0].clone()), Some(legs[1].clone())];
        let kind = c.kind;
        let offer = c.a.remote_sdp.clone().unwrap_or_else(empty_sdp);
        let result = match kind {
            CallKind::DemoEcho => {
                // Answer at once with the browser's own codecs.
                let c = self.calls.get_mut(&id).expect("checked above");
                let local = webrtc_local(&legs[0]);
                let plainish = translate::to_plain(
                    &offer,
                    local.addr,
                    None,
                    &self.cfg.pts,
                    &mut c.b.origin,
                    None,
                );
                plainish.and_then(|p| {
                    translate::to_webrtc(&p, &local, &self.cfg.pts, &mut c.a.origin, Some(&offer))
                })
            }
            CallKind::BrowserToSip => {
                let c = self.calls.get_mut(&id).expect("checked above");
                let (rtp, video_rtp) = match &legs[1] {
                    LocalLeg::Plain { rtp, video_rtp } => (*rtp, *video_rtp),
                    _ => return,
                };
                translate::to_plain(&offer, rtp, video_rtp, &self.cfg.pts, &mut c.b.origin, None)
            }
            CallKind::SipToBrowser | CallKind::DemoBrowserToBrowser => {
                let c = self.calls.get_mut(&id).expect("checked above");
                let mut local = webrtc_local(&legs[1]);
                local.setup = Setup::ActPass;
                if kind == CallKind::DemoBrowserToBrowser {
                    translate::relay_webrtc(&offer, &local, &self.cfg.pts, &mut c.b.origin, None)
                } else {
                    translate::to_webrtc(&offer, &local, &self.cfg.pts, &mut c.b.origin, None)
                }
            }
        };
        let sdp = match result {
            Ok(s) => s,
            Err(e) => return self.fail_before_answer(now, id, e),
        };
        if kind == CallKind::DemoEcho {
            let c = self.calls.get_mut(&id).expect("checked above");
            c.state = CallState::Confirmed;
            c.answered = true;
            c.answered_at = Some(now);
            let (key, inv) = (c.a_key.clone(), c.a_invite.clone());
            let mut ok = self.response_with_tag(&inv, 200, id, LegIndex::A);
            ok.push_header("Content-Type", "application/sdp");
            ok.body = sdp.to_bytes();
            self.answer_a(now, id, &key, ok);
            let setup = now.saturating_duration_since(self.calls[&id].started);
            self.events
                .push_back(super::core::CoreEvent::CallAnswered { id, setup });
            return;
        }
        self.send_b_invite(now, id, sdp);
    }

    fn send_b_invite(&mut self, now: Instant, id: SessionId, sdp: Sdp) {
        let Some(c) = self.calls.get(&id) else { return };
        let b_peer = c.b.peer.clone();
        let b_user = user_of(&c.b.local_uri);
        let (via, branch) = self.via_for(&b_peer);
        let contact = self.contact_for(&b_peer, &b_user);
        let c = self.calls.get_mut(&id).expect("checked above");
        let mut inv = SipMsg {
            start: StartLine::Request {
                method: Method::Invite,
                uri: c.b.remote_target.clone(),
            },
            headers: Vec::new(),
            body: sdp.to_bytes(),
        };
        inv.push_header("Via", via);
        let mf = c
            .a_invite
            .header("Max-Forwards")
            .unwrap_or("70")
            .to_string();
        inv.push_header("Max-Forwards", mf);
        inv.push_header("From", format!("{};tag={}", c.b.local_uri, c.b.local_tag));
        inv.push_header("To", c.b.remote_uri.clone());
        inv.push_header("Call-ID", c.b.call_id.clone());
        inv.push_header("CSeq", format!("{} INVITE", c.b.local_cseq));
        inv.push_header("Contact", contact);
        if c.kind == CallKind::BrowserToSip {
            // Credentials the browser computed for its own Request-URI pass through verbatim.
            for name in ["Authorization", "Proxy-Authorization"] {
                for v in c.a_invite.headers_named(name) {
                    inv.push_header(name, v);
                }
            }
        }
        for name in ["Allow", "User-Agent"] {
            if let Some(v) = c.a_invite.header(name) {
                inv.push_header(name, v);
            }
        }
        if matches!(b_peer, Peer::Udp(_)) {
            // RFC 4028 on the SIP leg, so long calls are refreshed instead of dropped.
            inv.push_header("Supported", "timer");
            inv.push_header(
                "Session-Expires",
                super::timers::SESSION_EXPIRES.to_string(),
            );
            inv.push_header("Min-SE", super::timers::MIN_SE.to_string());
        } else if let Some(v) = c.a_invite.header("Supported") {
            inv.push_header("Supported", v);
        }
        if let Some(p) = self
            .cfg
            .route
            .as_ref()
            .map(|r| &r.params)
            .filter(|_| c.kind == CallKind::BrowserToSip)
        {
            for (n, v) in &p.ash {
                inv.push_header(n, v.clone());
            }
        }
        inv.push_header("Content-Type", "application/sdp");
        let c = self.calls.get_mut(&id).expect("checked above");
        c.state = CallState::Calling;
        if let Some(p) = self
            .cfg
            .route
            .as_ref()
            .map(|r| &r.params)
            .filter(|_| c.kind == CallKind::BrowserToSip)
        {
            c.timers.start_setup(now, p);
        }
        c.b_invite_branch = Some(branch.clone());
        c.b_invite = Some(inv.clone());
        self.start_call_txn(now, id, branch, b_peer, inv, CallTxn::Invite);
    }

    fn fail_before_answer(&mut self, now: Instant, id: SessionId, e: TranslateError) {
        let Some(c) = self.calls.get(&id) else { return };
        let (key, inv) = (c.a_key.clone(), c.a_invite.clone());
        let mut r = self.response(&inv, e.status());
        r.push_header("Warning", format!("399 webrtc-phone \"{e}\""));
        self.answer_a(now, id, &key, r);
        self.end_call(now, id, "SDP not acceptable");
    }

    /// A response on leg A's INVITE transaction, with leg A's To-tag for anything above 100.
    fn answer_a(&mut self, now: Instant, id: SessionId, key: &ServerKey, mut resp: SipMsg) {
        if let Some(c) = self.calls.get_mut(&id) {
            if resp.status().unwrap_or(0) >= 200 {
                c.final_status.get_or_insert(resp.status().unwrap_or(0));
            }
            if let Ok(mut to) = NameAddr::parse(resp.header("To").unwrap_or_default(), "To") {
                if resp.status() != Some(100) {
                    to.params.set("tag", Some(&c.a.local_tag));
                    resp.set_header("To", to.to_string());
                }
            }
        }
        self.send_on(now, key, resp);
    }

    /// A response to A's INVITE built from it, with leg A's tag and Contact.
    fn response_with_tag(
        &mut self,
        inv: &SipMsg,
        code: u16,
        id: SessionId,
        _leg: LegIndex,
    ) -> SipMsg {
        let mut r = inv.response(code, reason_phrase(code), None);
        if let Some(c) = self.calls.get(&id) {
            for rr in c.a_invite.headers_named("Record-Route") {
                r.push_header("Record-Route", rr);
            }
            let contact = self.contact_for(&c.a.peer.clone(), &user_of(&c.a.local_uri));
            r.push_header("Contact", contact);
        }
        r.push_header("Allow", super::core::ALLOW);
        r
    }

    /// A response to the INVITE of leg B.
    pub(super) fn on_b_invite_response(&mut self, now: Instant, id: SessionId, resp: SipMsg) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        let code = resp.status().unwrap_or(500);
        if code == 100 {
            // Any provisional response lets a CANCEL go (RFC 3261 §9.1), 100 included.
            c.b_provisional = true;
            if c.cancel_wanted && c.state == CallState::Calling {
                self.send_cancel_b(now, id);
            }
            return;
        }
        if c.state == CallState::Ending {
            // A 2xx that crossed our CANCEL: accept it, then hang up (RFC 3261 §9.1).
            if (200..300).contains(&code) {
                if let Some(tag) = resp.to_hdr().and_then(|t| t.tag().map(str::to_string)) {
                    c.b.remote_tag = Some(tag);
                }
                if let Some(t) = contact_uri(&resp) {
                    c.b.remote_target = t;
                }
                let mut rr: Vec<String> = resp
                    .headers_named("Record-Route")
                    .map(str::to_string)
                    .collect();
                rr.reverse();
                c.b.route_set = rr;
                self.ack_b(now, id);
                self.send_bye(now, id, LegIndex::B, "cancelled");
            }
            if code >= 200 {
                self.end_call(now, id, "cancelled");
            }
            return;
        }
        if (code == 401 || code == 407) && c.kind == CallKind::BrowserToSip {
            let auth = self
                .cfg
                .route
                .as_ref()
                .map(|r| r.params.auth.clone())
                .unwrap_or_default();
            match auth {
                super::route::RouteAuth::Credentials { user, pass } if !c.auth_retried => {
                    c.auth_retried = true;
                    let (ch_name, answer_name) = if code == 401 {
                        ("WWW-Authenticate", "Authorization")
                    } else {
                        ("Proxy-Authenticate", "Proxy-Authorization")
                    };
                    let challenge = resp.header(ch_name).unwrap_or_default().to_string();
                    let cnonce = self.new_id();
                    let sent = self.calls.get(&id).and_then(|c| c.b_invite.clone());
                    let uri = match sent.as_ref().map(|m| &m.start) {
                        Some(StartLine::Request { uri, .. }) => uri.clone(),
                        _ => String::new(),
                    };
                    if let Some(value) = crate::sip::digest::answer(
                        &challenge, "INVITE", &uri, &user, &pass, &cnonce,
                    ) {
                        return self.retry_b_invite(now, id, |inv| {
                            inv.remove_headers("Authorization");
                            inv.remove_headers("Proxy-Authorization");
                            inv.push_header(answer_name, value);
                        });
                    }
                }
                super::route::RouteAuth::NoPass => {
                    // Pass-through is off and there are no credentials: the call fails here.
                    let (key, inv) = (c.a_key.clone(), c.a_invite.clone());
                    c.ended_by = Some("callee");
                    let mut r = inv.response(403, "Forbidden", None);
                    r.push_header(
                        "Warning",
                        "399 webrtc-phone \"the far end asked for credentials (auth=nopass)\"",
                    );
                    self.answer_a(now, id, &key, r);
                    return self.end_call(now, id, "challenged");
                }
                _ => {}
            }
        }
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if code == 422 && !c.retried_422 {
            if let Some(min) = resp
                .header("Min-SE")
                .and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok())
            {
                c.retried_422 = true;
                return self.retry_invite_with_session_expires(now, id, min);
            }
        }
        if code < 200 {
            c.timers.on_provisional(code);
        }
        c.b_provisional = true;
        if c.b.remote_tag.is_none() || code >= 200 {
            if let Some(tag) = resp.to_hdr().and_then(|t| t.tag().map(str::to_string)) {
                c.b.remote_tag = Some(tag);
            }
        }
        if (101..300).contains(&code) {
            if let Some(t) = contact_uri(&resp) {
                c.b.remote_target = t;
            }
            let mut rr: Vec<String> = resp
                .headers_named("Record-Route")
                .map(str::to_string)
                .collect();
            if !rr.is_empty()
                && c.kind != CallKind::SipToBrowser
                && c.kind != CallKind::DemoBrowserToBrowser
            {
                rr.reverse();
            }
            if !rr.is_empty() {
                c.b.route_set = rr;
            }
        }
        // A deferred CANCEL goes out with the first provisional response (RFC 3261 §9.1).
        if c.cancel_wanted && code < 200 {
            self.send_cancel_b(now, id);
            return;
        }
        let (key, inv, kind) = (c.a_key.clone(), c.a_invite.clone(), c.kind);
        let sdp = (!resp.body.is_empty())
            .then(|| Sdp::parse(&resp.body).ok())
            .flatten();
        let mut answer_for_a = None;
        if let Some(sdp) = sdp.filter(|_| code < 300) {
            match self.take_b_answer(id, &sdp) {
                Ok(a) => answer_for_a = Some(a),
                Err(e) if code >= 200 => {
                    // Answered with SDP we cannot use: accept on B, then hang up.
                    self.ack_b(now, id);
                    self.send_bye(now, id, LegIndex::B, "SDP not acceptable");
                    return self.fail_before_answer(now, id, e);
                }
                Err(_) => {}
            }
        }
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if code >= 300 {
            // The far end refused: pass it back, challenges (401/407) untouched.
            let mut r = inv.response(code, resp_reason(&resp), None);
            for name in [
                "WWW-Authenticate",
                "Proxy-Authenticate",
                "Retry-After",
                "Warning",
                "Reason",
                "Contact",
                "Unsupported",
                "Min-SE",
            ] {
                for v in resp.headers_named(name) {
                    r.push_header(name, v);
                }
            }
            c.ended_by = Some("callee");
            self.answer_a(now, id, &key, r);
            return self.end_call(now, id, "rejected");
        }
        let mut r = self.response_with_tag(&inv, code, id, LegIndex::A);
        r.start = StartLine::Response {
            code,
            reason: resp_reason(&resp).to_string(),
        };
        let c = self.calls.get_mut(&id).expect("checked above");
        if let Some(sdp) = answer_for_a.or_else(|| {
            if code >= 200 {
                c.a.last_answer.clone()
            } else {
                None
            }
        }) {
            r.push_header("Content-Type", "application/sdp");
            r.body = sdp.to_bytes();
        }
        if (200..300).contains(&code) {
            c.state = CallState::Confirmed;
            c.answered = true;
            c.answered_at = Some(now);
            let params = self
                .cfg
                .route
                .as_ref()
                .map(|r| &r.params)
                .filter(|_| c.kind == CallKind::BrowserToSip);
            c.timers.on_answer(now, params);
            if matches!(c.b.peer, Peer::Udp(_)) {
                if let Some((secs, refresher)) = super::timers::session_expires(&resp) {
                    // We are the UAC on leg B: refresher=uac means us (RFC 4028 §7.2).
                    let who = if refresher.as_deref() == Some("uas") {
                        super::timers::Refresher::FarEnd
                    } else {
                        super::timers::Refresher::Gateway
                    };
                    c.timers.on_session(
                        now,
                        Duration::from_secs(secs.max(super::timers::MIN_SE).into()),
                        who,
                    );
                }
            }
            self.ack_b(now, id);
            let setup = now.saturating_duration_since(self.calls[&id].started);
            self.events
                .push_back(super::core::CoreEvent::CallAnswered { id, setup });
        }
        if kind == CallKind::SipToBrowser && (200..300).contains(&code) {
            if let Some((secs, _)) = super::timers::session_expires(&inv) {
                // The far end (the UAC on leg A) refreshes; we watch for it (RFC 4028 §9).
                let secs = secs.max(super::timers::MIN_SE);
                r.push_header("Session-Expires", format!("{secs};refresher=uac"));
                if inv
                    .headers_named("Supported")
                    .any(|v| v.eq_ignore_ascii_case("timer"))
                {
                    r.push_header("Require", "timer");
                }
                if let Some(c) = self.calls.get_mut(&id) {
                    c.timers.on_session(
                        now,
                        Duration::from_secs(secs.into()),
                        super::timers::Refresher::FarEnd,
                    );
                }
            }
        }
        self.answer_a(now, id, &key, r);
    }

    /// 422 Session Interval Too Small: the INVITE again with the far end's Min-SE.
    fn retry_invite_with_session_expires(&mut self, now: Instant, id: SessionId, min: u32) {
        self.retry_b_invite(now, id, |inv| {
            inv.set_header("Session-Expires", min.to_string());
            inv.set_header("Min-SE", min.to_string());
        });
    }

    /// The INVITE on leg B again, changed by `edit`, with a new branch and the next CSeq.
    fn retry_b_invite(&mut self, now: Instant, id: SessionId, edit: impl FnOnce(&mut SipMsg)) {
        let Some(c) = self.calls.get(&id) else { return };
        let Some(mut inv) = c.b_invite.clone() else {
            return;
        };
        let peer = c.b.peer.clone();
        let (via, branch) = self.via_for(&peer);
        let c = self.calls.get_mut(&id).expect("checked above");
        c.b.local_cseq += 1;
        inv.set_header("Via", via);
        inv.set_header("CSeq", format!("{} INVITE", c.b.local_cseq));
        edit(&mut inv);
        c.b_invite_branch = Some(branch.clone());
        c.b_invite = Some(inv.clone());
        self.start_call_txn(now, id, branch, peer, inv, CallTxn::Invite);
    }

    /// RFC 4028: the gateway refreshes the session on the SIP leg with a body-less UPDATE.
    pub(super) fn refresh_session(&mut self, now: Instant, id: SessionId) {
        let Some(c) = self.calls.get(&id) else { return };
        let Some(leg) = sip_leg(c.kind) else { return };
        let Some((interval, _)) = c.timers.session else {
            return;
        };
        let peer = c.leg(leg).peer.clone();
        let user = user_of(&c.leg(leg).local_uri);
        let (via, branch) = self.via_for(&peer);
        let contact = self.contact_for(&peer, &user);
        let c = self.calls.get_mut(&id).expect("checked above");
        let l = c.leg_mut(leg);
        l.local_cseq += 1;
        let mut upd = dialog_request(l, Method::Update, via, l.local_cseq);
        upd.push_header("Contact", contact);
        upd.push_header("Supported", "timer");
        upd.push_header(
            "Session-Expires",
            format!("{};refresher=uac", interval.as_secs()),
        );
        self.start_call_txn(now, id, branch, peer, upd, CallTxn::Refresh);
    }

    /// The answer to the gateway's refresh.
    pub(super) fn on_refresh_response(
        &mut self,
        now: Instant,
        id: SessionId,
        resp: Option<SipMsg>,
    ) {
        let code = resp.as_ref().and_then(SipMsg::status).unwrap_or(408);
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if (200..300).contains(&code) {
            let secs = resp
                .as_ref()
                .and_then(super::timers::session_expires)
                .map_or(super::timers::SESSION_EXPIRES, |(s, _)| s);
            c.timers.on_session(
                now,
                Duration::from_secs(secs.max(super::timers::MIN_SE).into()),
                super::timers::Refresher::Gateway,
            );
        } else if code >= 300 && code != 491 {
            // 481, 408 and friends: the far end lost the dialog (RFC 4028 §10).
            self.hang_up_both(now, id, "session refresh failed");
        }
    }

    /// The callee's SDP answer: tell the engine, and translate it for the caller.
    fn take_b_answer(&mut self, id: SessionId, sdp: &Sdp) -> Result<Sdp, TranslateError> {
        let c = self.calls.get_mut(&id).expect("caller checked");
        let offer = c.a.remote_sdp.clone().unwrap_or_else(empty_sdp);
        let spec = match c.kind {
            CallKind::BrowserToSip => LegSpec::Plain(Some(translate::plain_remote(sdp)?)),
            _ => LegSpec::WebRtc(Some(translate::webrtc_remote(sdp)?)),
        };
        let answer = match (c.kind, &c.local[0], &c.local[1]) {
            (CallKind::DemoBrowserToBrowser, Some(a), _) => translate::relay_webrtc(
                sdp,
                &webrtc_local(a),
                &self.cfg.pts,
                &mut c.a.origin,
                Some(&offer),
            )?,
            (CallKind::BrowserToSip, Some(a), _) => translate::to_webrtc(
                sdp,
                &webrtc_local(a),
                &self.cfg.pts,
                &mut c.a.origin,
                Some(&offer),
            )?,
            (CallKind::SipToBrowser, Some(LocalLeg::Plain { rtp, video_rtp }), _) => {
                translate::to_plain(
                    sdp,
                    *rtp,
                    *video_rtp,
                    &self.cfg.pts,
                    &mut c.a.origin,
                    Some(&offer),
                )?
            }
            _ => return Err(TranslateError::NoRtpSection),
        };
        c.b.remote_sdp = Some(sdp.clone());
        c.a.last_answer = Some(answer.clone());
        self.commands.push_back(Command::Update {
            id,
            leg: LegIndex::B,
            remote: spec,
        });
        Ok(answer)
    }

    /// ACK for a 2xx on leg B (RFC 3261 §13.2.2.4): a new transaction-less request.
    fn ack_b(&mut self, _now: Instant, id: SessionId) {
        let Some(c) = self.calls.get(&id) else { return };
        let peer = c.b.peer.clone();
        let (via, _) = self.via_for(&peer);
        let c = self.calls.get(&id).expect("checked above");
        let cseq = c.b_invite.as_ref().map_or(c.b.local_cseq, |i| i.cseq().seq);
        let mut ack = dialog_request(&c.b, Method::Ack, via, cseq);
        if let Some(inv) = &c.b_invite {
            for name in ["Authorization", "Proxy-Authorization"] {
                for v in inv.headers_named(name) {
                    ack.push_header(name, v);
                }
            }
        }
        self.transmits.push_back(super::core::Transmit {
            to: peer,
            bytes: ack.to_bytes(),
        });
    }

    fn send_cancel_b(&mut self, now: Instant, id: SessionId) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        let (Some(inv), Some(branch)) = (c.b_invite.clone(), c.b_invite_branch.clone()) else {
            return;
        };
        c.cancel_wanted = false;
        c.state = CallState::Ending;
        let mut cancel = SipMsg {
            start: StartLine::Request {
                method: Method::Cancel,
                uri: match &inv.start {
                    StartLine::Request { uri, .. } => uri.clone(),
                    StartLine::Response { .. } => String::new(),
                },
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for name in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
            if let Some(v) = inv.header(name) {
                cancel.push_header(name, v);
            }
        }
        cancel.push_header("CSeq", format!("{} CANCEL", inv.cseq().seq));
        for r in inv.headers_named("Route") {
            cancel.push_header("Route", r);
        }
        let peer = c.b.peer.clone();
        if let Some(t) = self.clients.get_mut(&branch) {
            t.txn.handle_cancelled(now);
        }
        self.start_call_txn(
            now,
            id,
            format!("{branch}-cancel"),
            peer,
            cancel,
            CallTxn::Cancel,
        );
    }

    /// CANCEL from leg A for a call not yet answered.
    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        from: &Peer,
        cancel_key: &ServerKey,
        msg: &SipMsg,
    ) -> bool {
        let invite_key = (
            cancel_key.0.clone(),
            cancel_key.1.clone(),
            "INVITE".to_string(),
        );
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
        self.reply(now, cancel_key, msg, 200);
        // The 200 for the CANCEL leaves before the INVITE's 487 (strict peers expect that order).
        self.flush_server(cancel_key);
        let Some(c) = self.calls.get_mut(&id) else {
            return true;
        };
        if c.answered {
            return true;
        }
        c.ended_by = Some("caller");
        let (key, inv) = (c.a_key.clone(), c.a_invite.clone());
        let state = c.state;
        let provisional = c.b_provisional;
        let r = inv.response(487, "Request Terminated", None);
        self.answer_a(now, id, &key, r);
        match state {
            CallState::Calling if provisional => self.send_cancel_b(now, id),
            CallState::Calling => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.cancel_wanted = true;
                }
            }
            _ => self.end_call(now, id, "cancelled"),
        }
        true
    }

    /// An in-dialog request for a call (To-tag = one of our tags).
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
            .get(&(msg.call_id().to_string(), tag.clone()))
        else {
            return false;
        };
        let Some(c) = self.calls.get_mut(&id) else {
            return false;
        };
        let leg = if c.a.local_tag == tag && c.a.call_id == msg.call_id() {
            LegIndex::A
        } else {
            LegIndex::B
        };
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let this = if leg == LegIndex::A {
            &mut c.a
        } else {
            &mut c.b
        };
        if method != Method::Ack {
            if msg.cseq().seq < this.remote_cseq && method != Method::Cancel {
                self.reply(now, &key, &msg, 500);
                return true;
            }
            this.remote_cseq = msg.cseq().seq;
        }
        if let Some(t) = contact_uri(&msg) {
            if let Peer::Ws(_) = from {
                this.remote_target = t;
            }
        }
        match method {
            Method::Ack => {
                // ACK for our 2xx: to a re-INVITE on this leg, else to the caller's INVITE.
                let k = match c.leg_mut(leg).reinvite_key.take() {
                    Some(k) => Some(k),
                    None => (leg == LegIndex::A).then(|| c.a_key.clone()),
                };
                if let Some(s) = k.and_then(|k| self.servers.get_mut(&k)) {
                    s.txn.handle_ack_for_2xx();
                }
            }
            Method::Bye => {
                self.reply(now, &key, &msg, 200);
                let c = self.calls.get_mut(&id).expect("checked above");
                c.ended_by = Some(if leg == LegIndex::A {
                    "caller"
                } else {
                    "callee"
                });
                if !c.answered {
                    // A BYE on an early dialog: the INVITE still needs its final response and
                    // the callee its CANCEL (RFC 3261 §15), or both transactions stay.
                    let code = if leg == LegIndex::A { 487 } else { 480 };
                    self.give_up_unanswered(now, id, code, "hung up before the answer");
                    return true;
                }
                self.send_bye(now, id, leg.other(), "");
                self.end_call(now, id, "hung up");
            }
            Method::Invite | Method::Update => {
                let c = self.calls.get_mut(&id).expect("checked above");
                let from_sip_leg = sip_leg(c.kind) == Some(leg);
                if from_sip_leg {
                    if let Some((secs, _)) = super::timers::session_expires(&msg) {
                        let secs = secs.max(super::timers::MIN_SE);
                        c.timers.on_session(
                            now,
                            Duration::from_secs(secs.into()),
                            super::timers::Refresher::FarEnd,
                        );
                    } else if let Some((interval, super::timers::Refresher::FarEnd)) =
                        c.timers.session
                    {
                        c.timers
                            .on_session(now, interval, super::timers::Refresher::FarEnd);
                    }
                }
                if from_sip_leg && method == Method::Update && msg.body.is_empty() {
                    // A session refresh: answered here, the browser need not know.
                    let mut ok = msg.response(200, "OK", None);
                    if let Some((secs, _)) = super::timers::session_expires(&msg) {
                        ok.push_header(
                            "Session-Expires",
                            format!("{};refresher=uac", secs.max(super::timers::MIN_SE)),
                        );
                        ok.push_header("Require", "timer");
                    }
                    let peer = c.leg(leg).peer.clone();
                    let user = user_of(&c.leg(leg).local_uri);
                    let contact = self.contact_for(&peer, &user);
                    ok.push_header("Contact", contact);
                    self.send_on(now, &key, ok);
                } else {
                    self.relay_offer(now, id, leg, key, msg);
                }
            }
            Method::Info
            | Method::Message
            | Method::Notify
            | Method::Options
            | Method::Refer
            | Method::Prack => {
                if method == Method::Prack || method == Method::Refer {
                    // Reliable provisionals are not used towards either side; transfers are
                    // not supported: say so instead of pretending.
                    self.reply(
                        now,
                        &key,
                        &msg,
                        if method == Method::Prack { 481 } else { 501 },
                    );
                } else if self.calls[&id].kind == CallKind::DemoEcho {
                    self.answer_for_echo(now, &key, &msg, &method);
                } else {
                    self.relay_request(now, id, leg, key, msg);
                }
            }
            _ => self.reply(now, &key, &msg, 501),
        }
        true
    }

    /// re-INVITE or UPDATE: the SDP (if any) goes through the engine to the other side.
    fn relay_offer(
        &mut self,
        now: Instant,
        id: SessionId,
        leg: LegIndex,
        key: ServerKey,
        msg: SipMsg,
    ) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.kind == CallKind::DemoEcho && leg == LegIndex::A && c.state == CallState::Confirmed {
            return self.answer_echo_reoffer(now, id, key, msg);
        }
        if c.state != CallState::Confirmed {
            return self.reply(now, &key, &msg, 491);
        }
        // Glare (RFC 3261 §14.2): an offer of ours still pending on this call.
        let clients = &self.clients;
        c.offer_relays
            .retain(|b| clients.get(b).is_some_and(|e| e.txn.is_pending()));
        if !c.offer_relays.is_empty() {
            return self.reply(now, &key, &msg, 491);
        }
        let c = self.calls.get_mut(&id).expect("checked above");
        let mut out_sdp = None;
        if !msg.body.is_empty() {
            let Ok(sdp) = Sdp::parse(&msg.body) else {
                return self.reply(now, &key, &msg, 400);
            };
            // An identical re-offer (a session refresh) is answered locally.
            let this = if leg == LegIndex::A { &c.a } else { &c.b };
            if this
                .remote_sdp
                .as_ref()
                .is_some_and(|p| strip_origin(p) == strip_origin(&sdp))
            {
                let mut ok = msg.response(200, "OK", None);
                if let Some(last) = (if leg == LegIndex::A { &c.a } else { &c.b })
                    .last_answer
                    .clone()
                {
                    ok.push_header("Content-Type", "application/sdp");
                    ok.body = last.to_bytes();
                }
                let l = self.calls[&id].leg(leg);
                let contact = self.contact_for(&l.peer.clone(), &user_of(&l.local_uri));
                ok.push_header("Contact", contact);
                return self.send_on(now, &key, ok);
            }
            let is_webrtc_side = matches!(c.local[leg as usize], Some(LocalLeg::WebRtc { .. }));
            let spec = if is_webrtc_side {
                translate::webrtc_remote(&sdp).map(|r| LegSpec::WebRtc(Some(r)))
            } else {
                translate::plain_remote(&sdp).map(|r| LegSpec::Plain(Some(r)))
            };
            let other_local = c.local[leg.other() as usize].clone();
            let both_webrtc = c.kind == CallKind::DemoBrowserToBrowser;
            let other = if leg == LegIndex::A {
                &mut c.b
            } else {
                &mut c.a
            };
            let translated = match (&spec, other_local) {
                (Ok(_), Some(leg @ LocalLeg::WebRtc { .. })) => {
                    // An offer keeps our setup as it stands (actpass where we offered first).
                    let local = webrtc_local(&leg);
                    if both_webrtc {
                        translate::relay_webrtc(
                            &sdp,
                            &local,
                            &self.cfg.pts,
                            &mut other.origin,
                            None,
                        )
                    } else {
                        translate::to_webrtc(&sdp, &local, &self.cfg.pts, &mut other.origin, None)
                    }
                }
                (Ok(_), Some(LocalLeg::Plain { rtp, video_rtp })) => translate::to_plain(
                    &sdp,
                    rtp,
                    video_rtp,
                    &self.cfg.pts,
                    &mut other.origin,
                    None,
                ),
                (Err(e), _) => Err(e.clone()),
                (Ok(_), _) => Err(TranslateError::NoRtpSection),
            };
            match (spec, translated) {
                (Ok(spec), Ok(t)) => {
                    let this = if leg == LegIndex::A {
                        &mut c.a
                    } else {
                        &mut c.b
                    };
                    this.remote_sdp = Some(sdp);
                    self.commands.push_back(Command::Update {
                        id,
                        leg,
                        remote: spec,
                    });
                    out_sdp = Some(t);
                }
                (Err(e), _) | (_, Err(e)) => return self.reply(now, &key, &msg, e.status()),
            }
        }
        self.relay_request_with_body(now, id, leg, key, msg, out_sdp);
    }

    /// A re-INVITE or UPDATE to the demo echo: answered here, direction mirrored (the echo
    /// sends what it receives, so a browser that only sends is answered recvonly).
    fn answer_echo_reoffer(&mut self, now: Instant, id: SessionId, key: ServerKey, msg: SipMsg) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if msg.body.is_empty() && msg.method() == Some(&Method::Update) {
            // No offer in the UPDATE: its 2xx carries no SDP (RFC 3311 §5.2, RFC 6337 §3.1).
            let mut ok = msg.response(200, "OK", None);
            let (peer, user) = (c.a.peer.clone(), user_of(&c.a.local_uri));
            ok.push_header("Contact", self.contact_for(&peer, &user));
            return self.send_on(now, &key, ok);
        }
        let sdp = match (!msg.body.is_empty()).then(|| Sdp::parse(&msg.body)) {
            Some(Ok(sdp)) => sdp,
            Some(Err(_)) => return self.reply(now, &key, &msg, 400),
            None => match c.a.remote_sdp.clone() {
                // An offer-less re-INVITE: offer what was agreed last.
                Some(prev) => prev,
                None => return self.reply(now, &key, &msg, 488),
            },
        };
        let Some(local_leg) = c.local[0].clone() else {
            return self.reply(now, &key, &msg, 500);
        };
        let mut local = webrtc_local(&local_leg);
        if local.setup == Setup::ActPass {
            local.setup = Setup::Passive;
        }
        let answer = translate::webrtc_remote(&sdp).and_then(|remote| {
            let mut plainish =
                translate::to_plain(&sdp, local.addr, None, &self.cfg.pts, &mut c.b.origin, None)?;
            for m in &mut plainish.media {
                for (t, v) in &mut m.lines {
                    if *t == 'a' {
                        match v.as_str() {
                            "sendonly" => *v = "recvonly".into(),
                            "recvonly" => *v = "sendonly".into(),
                            _ => {}
                        }
                    }
                }
            }
            let answer = translate::to_webrtc(
                &plainish,
                &local,
                &self.cfg.pts,
                &mut c.a.origin,
                Some(&sdp),
            )?;
            Ok((remote, answer))
        });
        match answer {
            Ok((remote, answer)) => {
                c.a.remote_sdp = Some(sdp);
                c.a.last_answer = Some(answer.clone());
                c.a.reinvite_key = (msg.method() == Some(&Method::Invite)).then(|| key.clone());
                self.commands.push_back(Command::Update {
                    id,
                    leg: LegIndex::A,
                    remote: LegSpec::WebRtc(Some(remote)),
                });
                let mut ok = msg.response(200, "OK", None);
                let a = &self.calls[&id].a;
                let contact = self.contact_for(&a.peer.clone(), &user_of(&a.local_uri));
                ok.push_header("Contact", contact);
                ok.push_header("Content-Type", "application/sdp");
                ok.body = answer.to_bytes();
                self.send_on(now, &key, ok);
            }
            Err(e) => self.reply(now, &key, &msg, e.status()),
        }
    }

    /// An in-dialog INFO, MESSAGE, OPTIONS or NOTIFY to the demo echo, which has no peer to
    /// relay it to: answered here as a phone would. DTMF by INFO and chat are taken (200), an
    /// in-dialog OPTIONS gets 200 with Allow, and a NOTIFY matches no subscription of ours (481).
    fn answer_for_echo(&mut self, now: Instant, key: &ServerKey, msg: &SipMsg, method: &Method) {
        // RFC 6086 §4.2.2: the echo receives no Info Package (legacy INFO only).
        let bad_package = *method == Method::Info && msg.header("Info-Package").is_some();
        let code = match method {
            Method::Notify => 481,
            _ if bad_package => 469,
            _ => 200,
        };
        let mut r = self.response(msg, code);
        if *method == Method::Options {
            r.push_header("Allow", super::core::ALLOW);
        }
        if bad_package {
            r.push_header("Recv-Info", "");
        }
        self.send_on(now, key, r);
    }

    fn relay_request(
        &mut self,
        now: Instant,
        id: SessionId,
        leg: LegIndex,
        key: ServerKey,
        msg: SipMsg,
    ) {
        self.relay_request_with_body(now, id, leg, key, msg, None);
    }

    /// Sends `msg`'s method and body (or `sdp`) to the other leg in its dialog; the final
    /// response comes back on `key`.
    fn relay_request_with_body(
        &mut self,
        now: Instant,
        id: SessionId,
        leg: LegIndex,
        key: ServerKey,
        msg: SipMsg,
        sdp: Option<Sdp>,
    ) {
        let Some(c) = self.calls.get(&id) else { return };
        if c.kind == CallKind::DemoEcho {
            // The echo has no dialog to relay into (its requests are answered by
            // `answer_for_echo` and `answer_echo_reoffer`); never send a request to nowhere.
            return self.reply(now, &key, &msg, 500);
        }
        let other = c.leg(leg.other()).clone();
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let (via, branch) = self.via_for(&other.peer);
        let contact = self.contact_for(&other.peer, &user_of(&other.local_uri));
        let c = self.calls.get_mut(&id).expect("checked above");
        let o = c.leg_mut(leg.other());
        o.local_cseq += 1;
        let mut req = dialog_request(o, method.clone(), via, o.local_cseq);
        if matches!(method, Method::Invite | Method::Update) {
            req.push_header("Contact", contact);
        }
        match sdp {
            Some(s) => {
                req.push_header("Content-Type", "application/sdp");
                req.body = s.to_bytes();
            }
            None => {
                if let Some(ct) = msg.header("Content-Type") {
                    req.push_header("Content-Type", ct);
                }
                req.body = msg.body.clone();
            }
        }
        for name in ["Event", "Subscription-State", "Info-Package", "Reason"] {
            if let Some(v) = msg.header(name) {
                req.push_header(name, v);
            }
        }
        let peer = other.peer.clone();
        self.start_call_txn(
            now,
            id,
            branch,
            peer,
            req,
            CallTxn::Relay {
                server: key,
                method,
            },
        );
    }

    /// The final response to a relayed request came back.
    pub(super) fn on_relay_response(
        &mut self,
        now: Instant,
        id: SessionId,
        server: &ServerKey,
        method: &Method,
        resp: Option<SipMsg>,
    ) {
        let Some(s) = self.servers.get(server) else {
            return;
        };
        let _ = s;
        let code = resp.as_ref().and_then(SipMsg::status).unwrap_or(408);
        if code < 200 {
            return;
        }
        let original = self.server_requests.get(server).cloned();
        let Some(req) = original else { return };
        let mut r = req.response(
            code,
            resp.as_ref().map_or("Request Timeout", resp_reason),
            None,
        );
        let Some(c) = self.calls.get_mut(&id) else {
            return self.send_on(now, server, r);
        };
        // The request came in on the leg that is not the response's.
        let in_leg = if c.a.call_id == req.call_id() {
            LegIndex::A
        } else {
            LegIndex::B
        };
        if let Ok(mut to) = NameAddr::parse(r.header("To").unwrap_or_default(), "To") {
            to.params.set("tag", Some(&c.leg(in_leg).local_tag));
            r.set_header("To", to.to_string());
        }
        if matches!(method, Method::Invite | Method::Update) && (200..300).contains(&code) {
            if let Some(body) = resp.as_ref().map(|r| &r.body).filter(|b| !b.is_empty()) {
                if let Ok(sdp) = Sdp::parse(body) {
                    let resp_leg = in_leg.other();
                    let is_webrtc =
                        matches!(c.local[resp_leg as usize], Some(LocalLeg::WebRtc { .. }));
                    let spec = if is_webrtc {
                        translate::webrtc_remote(&sdp)
                            .ok()
                            .map(|r| LegSpec::WebRtc(Some(r)))
                    } else {
                        translate::plain_remote(&sdp)
                            .ok()
                            .map(|r| LegSpec::Plain(Some(r)))
                    };
                    let offer_in = c.leg(in_leg).remote_sdp.clone();
                    let translated = match c.local[in_leg as usize].clone() {
                        Some(leg @ LocalLeg::WebRtc { .. }) => {
                            // An answer cannot say actpass (RFC 5763 §5): passive then.
                            let mut local = webrtc_local(&leg);
                            if local.setup == Setup::ActPass {
                                local.setup = Setup::Passive;
                            }
                            let both_webrtc = c.kind == CallKind::DemoBrowserToBrowser;
                            let origin = &mut c.leg_mut(in_leg).origin;
                            if both_webrtc {
                                translate::relay_webrtc(
                                    &sdp,
                                    &local,
                                    &self.cfg.pts,
                                    origin,
                                    offer_in.as_ref(),
                                )
                            } else {
                                translate::to_webrtc(
                                    &sdp,
                                    &local,
                                    &self.cfg.pts,
                                    origin,
                                    offer_in.as_ref(),
                                )
                            }
                        }
                        Some(LocalLeg::Plain { rtp, video_rtp }) => translate::to_plain(
                            &sdp,
                            rtp,
                            video_rtp,
                            &self.cfg.pts,
                            &mut c.leg_mut(in_leg).origin,
                            offer_in.as_ref(),
                        ),
                        _ => Err(TranslateError::NoRtpSection),
                    };
                    if let Some(spec) = spec {
                        self.commands.push_back(Command::Update {
                            id,
                            leg: resp_leg,
                            remote: spec,
                        });
                    }
                    if let Ok(t) = translated {
                        c.leg_mut(in_leg).last_answer = Some(t.clone());
                        r.push_header("Content-Type", "application/sdp");
                        r.body = t.to_bytes();
                    }
                    c.leg_mut(resp_leg).remote_sdp = Some(sdp);
                }
            }
            if *method == Method::Invite {
                c.leg_mut(in_leg).reinvite_key = Some(server.clone());
            }
            let peer = c.leg(in_leg).peer.clone();
            let user = user_of(&c.leg(in_leg).local_uri);
            let contact = self.contact_for(&peer, &user);
            r.push_header("Contact", contact);
            if *method == Method::Invite {
                // ACK the other leg's 2xx ourselves.
                self.ack_dialog(
                    id,
                    in_leg.other(),
                    resp.as_ref().map_or(0, |r| r.cseq().seq),
                );
            }
        } else if let Some(resp) = &resp {
            if let Some(ct) = resp.header("Content-Type") {
                r.push_header("Content-Type", ct);
                r.body = resp.body.clone();
            }
        }
        self.send_on(now, server, r);
    }

    fn ack_dialog(&mut self, id: SessionId, leg: LegIndex, cseq: u32) {
        let Some(c) = self.calls.get(&id) else { return };
        let peer = c.leg(leg).peer.clone();
        let (via, _) = self.via_for(&peer);
        let c = self.calls.get(&id).expect("checked above");
        let ack = dialog_request(c.leg(leg), Method::Ack, via, cseq);
        self.transmits.push_back(super::core::Transmit {
            to: peer,
            bytes: ack.to_bytes(),
        });
    }

    /// BYE on one leg (with a Reason when the gateway ends the call).
    pub(super) fn send_bye(&mut self, now: Instant, id: SessionId, leg: LegIndex, reason: &str) {
        let Some(c) = self.calls.get(&id) else { return };
        let l = c.leg(leg).clone();
        if c.kind == CallKind::DemoEcho && leg == LegIndex::B {
            return;
        }
        if l.remote_tag.is_none() {
            return;
        }
        if let Peer::Ws(conn) = &l.peer {
            if !self.ws_open.contains_key(conn) {
                return;
            }
        }
        let (via, branch) = self.via_for(&l.peer);
        let c = self.calls.get_mut(&id).expect("checked above");
        let o = c.leg_mut(leg);
        o.local_cseq += 1;
        let mut bye = dialog_request(o, Method::Bye, via, o.local_cseq);
        if !reason.is_empty() {
            bye.push_header("Reason", format!("SIP;cause=200;text=\"{reason}\""));
        }
        let peer = l.peer.clone();
        self.start_call_txn(now, id, branch, peer, bye, CallTxn::Bye);
    }

    /// The gateway ends a call on its own (media failure, connection loss, drain).
    pub fn hang_up_both(&mut self, now: Instant, id: SessionId, reason: &'static str) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if !c.answered {
            return self.give_up_unanswered(now, id, 480, reason);
        }
        c.ended_by.get_or_insert("gateway");
        self.send_bye(now, id, LegIndex::A, reason);
        self.send_bye(now, id, LegIndex::B, reason);
        self.end_call(now, id, reason);
    }

    /// The gateway ends a call nobody answered: `code` to the caller, CANCEL to the callee
    /// (once it has answered provisionally; RFC 3261 §9.1).
    pub(super) fn give_up_unanswered(
        &mut self,
        now: Instant,
        id: SessionId,
        code: u16,
        reason: &str,
    ) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        c.ended_by.get_or_insert("gateway");
        let (key, inv) = (c.a_key.clone(), c.a_invite.clone());
        let mut r = inv.response(code, reason_phrase(code), None);
        r.push_header("Reason", format!("SIP;cause={code};text=\"{reason}\""));
        self.answer_a(now, id, &key, r);
        if self.calls.get(&id).is_some_and(|c| c.b_provisional) {
            self.send_cancel_b(now, id);
        }
        self.end_call(now, id, reason);
    }

    /// Forgets the call and releases its media. Transactions still running finish on their own.
    pub(super) fn end_call(&mut self, now: Instant, id: SessionId, outcome: &str) {
        let Some(mut c) = self.calls.remove(&id) else {
            return;
        };
        self.release_call(id, &c.holders);
        // An INVITE still waiting on leg B ends within 64*T1 whatever comes back.
        if let Some(t) = c
            .b_invite_branch
            .as_ref()
            .and_then(|b| self.clients.get_mut(b))
        {
            t.txn.handle_cancelled(now);
        }
        // The keys the call was indexed under (no scan of every call's entries per hang-up).
        for leg in [&c.a, &c.b] {
            let k = (leg.call_id.clone(), leg.local_tag.clone());
            if self.call_index.get(&k) == Some(&id) {
                self.call_index.remove(&k);
            }
        }
        if self.invite_index.get(&c.a_key) == Some(&id) {
            self.invite_index.remove(&c.a_key);
        }
        let duration = c
            .answered_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or(Duration::ZERO);
        let record = super::core::CallRecord {
            id,
            call_id: c.a.call_id.clone(),
            from: c.from_user.clone(),
            to: c.to_user.clone(),
            outcome: outcome.to_string(),
            status: c.final_status.unwrap_or(0),
            by: c.ended_by.unwrap_or("gateway"),
            duration,
            answered: c.answered,
            media: c.final_stats,
        };
        if c.released {
            self.events
                .push_back(super::core::CoreEvent::CallEnded(record));
        } else {
            // Reported when the engine's figures arrive (Event::Released), or its failure.
            c.released = true;
            self.commands.push_back(Command::Release { id });
            self.ending.insert(id, record);
        }
    }

    /// A WebSocket closed: end its calls at once (BYE to the other side with a Reason).
    pub(super) fn end_calls_of(&mut self, now: Instant, conn: &ConnName) {
        for id in self.calls_of(conn) {
            self.hang_up_both(now, id, "WebSocket closed");
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
            self.hang_up_both(now, id, "gateway shutting down");
        }
        self.pump(now);
    }
}

impl Core {
    /// Starts a client transaction for call `id` to `peer`.
    fn start_call_txn(
        &mut self,
        now: Instant,
        id: SessionId,
        branch: String,
        peer: Peer,
        req: SipMsg,
        what: CallTxn,
    ) {
        let txn = ClientTxn::new(now, req, peer.is_reliable(), self.cfg.timers);
        if let CallTxn::Relay {
            method: Method::Invite | Method::Update,
            ..
        } = &what
        {
            if let Some(c) = self.calls.get_mut(&id) {
                c.offer_relays.push(branch.clone());
            }
        }
        self.add_client(
            branch,
            txn,
            peer,
            super::core::ClientPurpose::Call { id, what },
        );
    }
}

impl Call {
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
}

/// An in-dialog request on `leg` (RFC 3261 §12.2.1.1).
fn dialog_request(leg: &Leg, method: Method, via: String, cseq: u32) -> SipMsg {
    let mut m = SipMsg {
        start: StartLine::Request {
            method: method.clone(),
            uri: leg.remote_target.clone(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    m.push_header("Via", via);
    m.push_header("Max-Forwards", "70");
    m.push_header("From", format!("{};tag={}", leg.local_uri, leg.local_tag));
    let to = match &leg.remote_tag {
        Some(t) => format!("{};tag={t}", leg.remote_uri),
        None => leg.remote_uri.clone(),
    };
    m.push_header("To", to);
    m.push_header("Call-ID", leg.call_id.clone());
    m.push_header("CSeq", format!("{cseq} {method}"));
    for r in &leg.route_set {
        m.push_header("Route", r.clone());
    }
    m
}

/// The leg that faces the SIP network, if any.
fn sip_leg(kind: CallKind) -> Option<LegIndex> {
    match kind {
        CallKind::BrowserToSip => Some(LegIndex::B),
        CallKind::SipToBrowser => Some(LegIndex::A),
        CallKind::DemoEcho | CallKind::DemoBrowserToBrowser => None,
    }
}

fn resp_reason(r: &SipMsg) -> &str {
    match &r.start {
        StartLine::Response { reason, .. } => reason,
        StartLine::Request { .. } => "",
    }
}

fn webrtc_local(l: &LocalLeg) -> LocalWebRtc {
    match l {
        LocalLeg::WebRtc {
            addr,
            ice_ufrag,
            ice_pwd,
            fingerprint,
            setup,
        } => LocalWebRtc {
            addr: *addr,
            ice_ufrag: ice_ufrag.clone(),
            ice_pwd: ice_pwd.clone(),
            fingerprint: fingerprint.clone(),
            setup: *setup,
        },
        _ => LocalWebRtc {
            addr: "0.0.0.0:9".parse().expect("a literal address"),
            ice_ufrag: String::new(),
            ice_pwd: String::new(),
            fingerprint: String::new(),
            setup: Setup::Passive,
        },
    }
}

fn empty_sdp() -> Sdp {
    Sdp {
        session: vec![('v', "0".into())],
        media: Vec::new(),
    }
}

fn strip_origin(s: &Sdp) -> Vec<u8> {
    let mut c = s.clone();
    c.session.retain(|(t, _)| *t != 'o');
    c.to_bytes()
}
