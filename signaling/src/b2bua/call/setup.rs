//! Setting a call up: the engine's allocation, the INVITE on leg B and every response to it
//! (challenges, 422, provisional, answer, refusal), CANCEL both ways, the ACK, and the RFC
//! 4028 refreshes the gateway sends on the SIP leg.

use std::time::{Duration, Instant};

use engine::api::{LegIndex, LegSpec, LocalLeg, Setup};

use super::timers::{self, Refresher};
use super::{resp_reason, sip_leg, user_of, Action, Call, CallKind, CallState, CallTxn, Env};
use super::{OutInvite, ServerKey};
use crate::b2bua::errors::SipError;
use crate::b2bua::route::RouteAuth;
use crate::b2bua::types::{CoreEvent, EndReason, HungUpBy, Peer};
use crate::sdp::model::Sdp;
use crate::sdp::translate::{self, LocalWebRtc, TranslateError};
use crate::sip::dialog::DialogState;
use crate::sip::msg::{reason_phrase, Method, SipMsg, StartLine};
use crate::sip::names::Tag;

pub(in crate::b2bua) fn webrtc_local(l: &LocalLeg) -> LocalWebRtc {
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

pub(in crate::b2bua) fn empty_sdp() -> Sdp {
    Sdp {
        session: vec![('v', "0".into())],
        media: Vec::new(),
    }
}

impl Call {
    pub(in crate::b2bua) fn on_allocated(
        &mut self,
        env: &mut Env<'_>,
        now: Instant,
        legs: [LocalLeg; 2],
    ) {
        if self.state != CallState::Allocating {
            return;
        }
        self.local = [Some(legs[0].clone()), Some(legs[1].clone())];
        let offer = self.a.remote_sdp.clone().unwrap_or_else(empty_sdp);
        let pts = &env.cfg.pts;
        let result = match self.kind {
            CallKind::DemoEcho => {
                // Answer at once with the browser's own codecs.
                let local = webrtc_local(&legs[0]);
                let plainish =
                    translate::to_plain(&offer, local.addr, None, pts, &mut self.b.origin, None);
                plainish.and_then(|p| {
                    translate::to_webrtc(&p, &local, pts, &mut self.a.origin, Some(&offer))
                })
            }
            CallKind::BrowserToSip => {
                let LocalLeg::Plain { rtp, video_rtp } = &legs[1] else {
                    return;
                };
                translate::to_plain(&offer, *rtp, *video_rtp, pts, &mut self.b.origin, None)
            }
            CallKind::SipToBrowser | CallKind::DemoBrowserToBrowser => {
                let mut local = webrtc_local(&legs[1]);
                local.setup = Setup::ActPass;
                if self.kind == CallKind::DemoBrowserToBrowser {
                    translate::relay_webrtc(&offer, &local, pts, &mut self.b.origin, None)
                } else {
                    translate::to_webrtc(&offer, &local, pts, &mut self.b.origin, None)
                }
            }
        };
        let sdp = match result {
            Ok(s) => s,
            Err(e) => return self.fail_before_answer(env, now, e),
        };
        if self.kind == CallKind::DemoEcho {
            self.state = CallState::Confirmed { at: now };
            self.a.dialog.state = DialogState::Confirmed;
            let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
            let mut ok = self.response_with_tag(env, &inv, 200);
            ok.push_header("Content-Type", "application/sdp");
            ok.body = sdp.to_bytes();
            self.answer_a(&key, ok);
            let setup = now.saturating_duration_since(self.started);
            self.event(CoreEvent::CallAnswered { id: self.id, setup });
            return;
        }
        self.send_b_invite(env, now, sdp);
    }

    fn send_b_invite(&mut self, env: &mut Env<'_>, now: Instant, sdp: Sdp) {
        let b_peer = self.b.peer.clone();
        let b_user = user_of(&self.b.dialog.local_uri);
        let (via, branch) = env.via_for(&b_peer);
        let contact = env.contact_for(&b_peer, &b_user);
        let d = &self.b.dialog;
        let mut inv = SipMsg {
            start: StartLine::Request {
                method: Method::Invite,
                uri: d.remote_target.clone(),
            },
            headers: Vec::new(),
            body: sdp.to_bytes(),
        };
        inv.push_header("Via", via);
        let mf = self
            .a_invite
            .header("Max-Forwards")
            .unwrap_or("70")
            .to_string();
        inv.push_header("Max-Forwards", mf);
        inv.push_header("From", format!("{};tag={}", d.local_uri, d.local_tag));
        inv.push_header("To", d.remote_uri.clone());
        inv.push_header("Call-ID", d.call_id.to_string());
        inv.push_header("CSeq", format!("{} INVITE", d.local_cseq));
        inv.push_header("Contact", contact);
        if self.kind == CallKind::BrowserToSip {
            // Credentials the browser computed for its own Request-URI pass through verbatim.
            for name in ["Authorization", "Proxy-Authorization"] {
                for v in self.a_invite.headers_named(name) {
                    inv.push_header(name, v);
                }
            }
        }
        for name in ["Allow", "User-Agent"] {
            if let Some(v) = self.a_invite.header(name) {
                inv.push_header(name, v);
            }
        }
        if matches!(b_peer, Peer::Udp(_)) {
            // RFC 4028 on the SIP leg, so long calls are refreshed instead of dropped.
            inv.push_header("Supported", "timer");
            inv.push_header("Session-Expires", timers::SESSION_EXPIRES.to_string());
            inv.push_header("Min-SE", timers::MIN_SE.to_string());
        } else if let Some(v) = self.a_invite.header("Supported") {
            inv.push_header("Supported", v);
        }
        let params = env
            .cfg
            .route
            .as_ref()
            .map(|r| &r.params)
            .filter(|_| self.kind == CallKind::BrowserToSip);
        if let Some(p) = params {
            for (n, v) in &p.ash {
                inv.push_header(n, v.clone());
            }
        }
        inv.push_header("Content-Type", "application/sdp");
        self.state = CallState::Calling;
        if let Some(p) = params {
            self.timers.start_setup(now, p);
        }
        self.b_invite = Some(OutInvite {
            msg: inv.clone(),
            branch: branch.clone(),
            provisional: false,
            cancel_wanted: false,
            retried_422: false,
            auth_retried: false,
        });
        self.start_txn(branch, b_peer, inv, CallTxn::Invite);
    }

    pub(in crate::b2bua) fn fail_before_answer(
        &mut self,
        env: &mut Env<'_>,
        now: Instant,
        e: TranslateError,
    ) {
        let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
        let mut r = env.response(&inv, e.status());
        r.push_header("Warning", format!("399 webrtc-phone \"{e}\""));
        self.answer_a(&key, r);
        self.end(now, EndReason::SdpNotAcceptable);
    }

    /// A response to A's INVITE built from it, with leg A's Record-Route and Contact.
    fn response_with_tag(&mut self, env: &mut Env<'_>, inv: &SipMsg, code: u16) -> SipMsg {
        let mut r = inv.response(code, reason_phrase(code), None);
        for rr in self.a_invite.headers_named("Record-Route") {
            r.push_header("Record-Route", rr);
        }
        let contact = env.contact_for(&self.a.peer, &user_of(&self.a.dialog.local_uri));
        r.push_header("Contact", contact);
        r.push_header("Allow", crate::b2bua::types::ALLOW);
        r
    }

    /// A response to the INVITE of leg B.
    pub(in crate::b2bua) fn on_b_invite_response(
        &mut self,
        env: &mut Env<'_>,
        now: Instant,
        resp: SipMsg,
    ) {
        let code = resp.status().unwrap_or(500);
        let Some(out) = self.b_invite.as_mut() else {
            return;
        };
        if code == 100 {
            // Any provisional response lets a CANCEL go (RFC 3261 §9.1), 100 included.
            out.provisional = true;
            if out.cancel_wanted && self.state == CallState::Calling {
                self.send_cancel_b();
            }
            return;
        }
        if self.state == CallState::Cancelling {
            // A 2xx that crossed our CANCEL: accept it, then hang up (RFC 3261 §9.1).
            if (200..300).contains(&code) {
                self.b.dialog.update_from_response(&resp, false);
                self.ack_b(env);
                self.send_bye(env, LegIndex::B, Some(EndReason::Cancelled));
            }
            if code >= 200 {
                self.end(now, EndReason::Cancelled);
            }
            return;
        }
        if (code == 401 || code == 407) && self.kind == CallKind::BrowserToSip {
            let auth = env
                .cfg
                .route
                .as_ref()
                .map(|r| r.params.auth.clone())
                .unwrap_or_default();
            match auth {
                RouteAuth::Credentials { user, pass } if !out.auth_retried => {
                    out.auth_retried = true;
                    let (ch_name, answer_name) = if code == 401 {
                        ("WWW-Authenticate", "Authorization")
                    } else {
                        ("Proxy-Authenticate", "Proxy-Authorization")
                    };
                    let challenge = resp.header(ch_name).unwrap_or_default().to_string();
                    let uri = match &out.msg.start {
                        StartLine::Request { uri, .. } => uri.clone(),
                        StartLine::Response { .. } => String::new(),
                    };
                    let cnonce = env.new_id();
                    if let Some(value) = crate::sip::digest::answer(
                        &challenge, "INVITE", &uri, &user, &pass, &cnonce,
                    ) {
                        return self.retry_b_invite(env, |inv| {
                            inv.remove_headers("Authorization");
                            inv.remove_headers("Proxy-Authorization");
                            inv.push_header(answer_name, value);
                        });
                    }
                }
                RouteAuth::NoPass => {
                    // Pass-through is off and there are no credentials: the call fails here.
                    let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
                    self.ended_by = Some(HungUpBy::Callee);
                    let mut r = inv.response(SipError::Forbidden.status(), "Forbidden", None);
                    r.push_header(
                        "Warning",
                        "399 webrtc-phone \"the far end asked for credentials (auth=nopass)\"",
                    );
                    self.answer_a(&key, r);
                    return self.end(now, EndReason::Challenged);
                }
                _ => {}
            }
        }
        let Some(out) = self.b_invite.as_mut() else {
            return;
        };
        if code == 422 && !out.retried_422 {
            if let Some(min) = resp
                .header("Min-SE")
                .and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok())
            {
                out.retried_422 = true;
                return self.retry_b_invite(env, |inv| {
                    inv.set_header("Session-Expires", min.to_string());
                    inv.set_header("Min-SE", min.to_string());
                });
            }
        }
        if code < 200 {
            self.timers.on_provisional(code);
        }
        out.provisional = true;
        let cancel_wanted = out.cancel_wanted;
        // Browsers on leg B give their Record-Route in the order to use.
        let keep_order = matches!(
            self.kind,
            CallKind::SipToBrowser | CallKind::DemoBrowserToBrowser
        );
        if code < 300 {
            self.b.dialog.update_from_response(&resp, keep_order);
        } else if self.b.dialog.remote_tag.is_none() {
            if let Some(tag) = resp.to_hdr().and_then(|t| t.tag().map(Tag::from)) {
                self.b.dialog.remote_tag = Some(tag);
            }
        }
        // A deferred CANCEL goes out with the first provisional response (RFC 3261 §9.1).
        if cancel_wanted && code < 200 {
            self.send_cancel_b();
            return;
        }
        let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
        let sdp = (!resp.body.is_empty())
            .then(|| Sdp::parse(&resp.body).ok())
            .flatten();
        let mut answer_for_a = None;
        if let Some(sdp) = sdp.filter(|_| code < 300) {
            match self.take_b_answer(env, &sdp) {
                Ok(a) => answer_for_a = Some(a),
                Err(e) if code >= 200 => {
                    // Answered with SDP we cannot use: accept on B, then hang up.
                    self.ack_b(env);
                    self.send_bye(env, LegIndex::B, Some(EndReason::SdpNotAcceptable));
                    return self.fail_before_answer(env, now, e);
                }
                Err(_) => {}
            }
        }
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
            self.ended_by = Some(HungUpBy::Callee);
            self.answer_a(&key, r);
            return self.end(now, EndReason::Rejected);
        }
        let mut r = self.response_with_tag(env, &inv, code);
        r.start = StartLine::Response {
            code,
            reason: resp_reason(&resp).to_string(),
        };
        let body = answer_for_a.or_else(|| {
            if code >= 200 {
                self.a.last_answer.clone()
            } else {
                None
            }
        });
        if let Some(sdp) = body {
            r.push_header("Content-Type", "application/sdp");
            r.body = sdp.to_bytes();
        }
        if (200..300).contains(&code) {
            self.on_answered(env, now, &resp);
        }
        if self.kind == CallKind::SipToBrowser && (200..300).contains(&code) {
            if let Some((secs, _)) = timers::session_expires(&inv) {
                // The far end (the UAC on leg A) refreshes; we watch for it (RFC 4028 §9).
                let secs = secs.max(timers::MIN_SE);
                r.push_header("Session-Expires", format!("{secs};refresher=uac"));
                if inv
                    .headers_named("Supported")
                    .any(|v| v.eq_ignore_ascii_case("timer"))
                {
                    r.push_header("Require", "timer");
                }
                self.timers
                    .on_session(now, Duration::from_secs(secs.into()), Refresher::FarEnd);
            }
        }
        self.answer_a(&key, r);
    }

    /// Leg B answered (2xx): the call is confirmed, its timers follow, leg B is ACKed.
    fn on_answered(&mut self, env: &mut Env<'_>, now: Instant, resp: &SipMsg) {
        self.state = CallState::Confirmed { at: now };
        self.a.dialog.state = DialogState::Confirmed;
        let params = env
            .cfg
            .route
            .as_ref()
            .map(|r| &r.params)
            .filter(|_| self.kind == CallKind::BrowserToSip);
        self.timers.on_answer(now, params);
        if matches!(self.b.peer, Peer::Udp(_)) {
            if let Some((secs, refresher)) = timers::session_expires(resp) {
                // We are the UAC on leg B: refresher=uac means us (RFC 4028 §7.2).
                let who = if refresher.as_deref() == Some("uas") {
                    Refresher::FarEnd
                } else {
                    Refresher::Gateway
                };
                self.timers.on_session(
                    now,
                    Duration::from_secs(secs.max(timers::MIN_SE).into()),
                    who,
                );
            }
        }
        self.ack_b(env);
        let setup = now.saturating_duration_since(self.started);
        self.event(CoreEvent::CallAnswered { id: self.id, setup });
    }

    /// The INVITE on leg B again, changed by `edit`, with a new branch and the next CSeq.
    fn retry_b_invite(&mut self, env: &mut Env<'_>, edit: impl FnOnce(&mut SipMsg)) {
        let peer = self.b.peer.clone();
        let (via, branch) = env.via_for(&peer);
        self.b.dialog.local_cseq += 1;
        let cseq = self.b.dialog.local_cseq;
        let Some(out) = self.b_invite.as_mut() else {
            return;
        };
        let mut inv = out.msg.clone();
        inv.set_header("Via", via);
        inv.set_header("CSeq", format!("{cseq} INVITE"));
        edit(&mut inv);
        out.branch = branch.clone();
        out.msg = inv.clone();
        self.start_txn(branch, peer, inv, CallTxn::Invite);
    }

    /// RFC 4028: the gateway refreshes the session on the SIP leg with a body-less UPDATE.
    pub(in crate::b2bua) fn refresh_session(&mut self, env: &mut Env<'_>) {
        let Some(leg) = sip_leg(self.kind) else {
            return;
        };
        let Some((interval, _)) = self.timers.session else {
            return;
        };
        let peer = self.leg(leg).peer.clone();
        let user = user_of(&self.leg(leg).dialog.local_uri);
        let (via, branch) = env.via_for(&peer);
        let contact = env.contact_for(&peer, &user);
        let mut upd = self.leg_mut(leg).dialog.next_request(Method::Update, via);
        upd.push_header("Contact", contact);
        upd.push_header("Supported", "timer");
        upd.push_header(
            "Session-Expires",
            format!("{};refresher=uac", interval.as_secs()),
        );
        self.start_txn(branch, peer, upd, CallTxn::Refresh);
    }

    /// The answer to the gateway's refresh.
    pub(in crate::b2bua) fn on_refresh_response(
        &mut self,
        env: &mut Env<'_>,
        now: Instant,
        resp: Option<SipMsg>,
    ) {
        let code = resp.as_ref().and_then(SipMsg::status).unwrap_or(408);
        if (200..300).contains(&code) {
            let secs = resp
                .as_ref()
                .and_then(timers::session_expires)
                .map_or(timers::SESSION_EXPIRES, |(s, _)| s);
            self.timers.on_session(
                now,
                Duration::from_secs(secs.max(timers::MIN_SE).into()),
                Refresher::Gateway,
            );
        } else if code >= 300 && code != 491 {
            // 481, 408 and friends: the far end lost the dialog (RFC 4028 §10).
            self.hang_up(env, now, EndReason::SessionRefreshFailed);
        }
    }

    /// The callee's SDP answer: tell the engine, and translate it for the caller.
    fn take_b_answer(&mut self, env: &mut Env<'_>, sdp: &Sdp) -> Result<Sdp, TranslateError> {
        let offer = self.a.remote_sdp.clone().unwrap_or_else(empty_sdp);
        let spec = match self.kind {
            CallKind::BrowserToSip => LegSpec::Plain(Some(translate::plain_remote(sdp)?)),
            _ => LegSpec::WebRtc(Some(translate::webrtc_remote(sdp)?)),
        };
        let pts = &env.cfg.pts;
        let origin = &mut self.a.origin;
        let answer = match (self.kind, &self.local[0]) {
            (CallKind::DemoBrowserToBrowser, Some(a)) => {
                translate::relay_webrtc(sdp, &webrtc_local(a), pts, origin, Some(&offer))?
            }
            (CallKind::BrowserToSip, Some(a)) => {
                translate::to_webrtc(sdp, &webrtc_local(a), pts, origin, Some(&offer))?
            }
            (CallKind::SipToBrowser, Some(LocalLeg::Plain { rtp, video_rtp })) => {
                translate::to_plain(sdp, *rtp, *video_rtp, pts, origin, Some(&offer))?
            }
            _ => return Err(TranslateError::NoRtpSection),
        };
        self.b.remote_sdp = Some(sdp.clone());
        self.a.last_answer = Some(answer.clone());
        self.engine(engine::api::Command::Update {
            id: self.id,
            leg: LegIndex::B,
            remote: spec,
        });
        Ok(answer)
    }

    /// ACK for a 2xx on leg B (RFC 3261 §13.2.2.4): a new transaction-less request.
    fn ack_b(&mut self, env: &mut Env<'_>) {
        let peer = self.b.peer.clone();
        let (via, _) = env.via_for(&peer);
        let cseq = self
            .b_invite
            .as_ref()
            .map_or(self.b.dialog.local_cseq, |i| i.msg.cseq().seq);
        let mut ack = self.b.dialog.request(Method::Ack, via, cseq);
        if let Some(inv) = &self.b_invite {
            for name in ["Authorization", "Proxy-Authorization"] {
                for v in inv.msg.headers_named(name) {
                    ack.push_header(name, v);
                }
            }
        }
        self.actions.push_back(Action::Send {
            to: peer,
            bytes: ack.to_bytes(),
        });
    }

    /// CANCEL of the INVITE on leg B (RFC 3261 §9.1): the INVITE's Via, From, To, Call-ID and
    /// Route, on a transaction of its own.
    pub(in crate::b2bua) fn send_cancel_b(&mut self) {
        let Some(out) = self.b_invite.as_mut() else {
            return;
        };
        out.cancel_wanted = false;
        let inv = out.msg.clone();
        let branch = out.branch.clone();
        self.state = CallState::Cancelling;
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
        let peer = self.b.peer.clone();
        self.actions.push_back(Action::Cancelled {
            branch: branch.clone(),
        });
        self.start_txn(branch.cancel(), peer, cancel, CallTxn::Cancel);
    }

    /// The caller's CANCEL, already answered 200 by the core: 487 for the INVITE, and the
    /// callee's INVITE cancelled (or the call ended if it never went out). An answered call
    /// goes on (the CANCEL crossed the 2xx).
    pub(in crate::b2bua) fn handle_cancel(&mut self, now: Instant) {
        if self.is_answered() || self.is_ended() {
            return;
        }
        self.ended_by = Some(HungUpBy::Caller);
        let (key, inv) = (self.a_key.clone(), self.a_invite.clone());
        let r = inv.response(SipError::Terminated.status(), "Request Terminated", None);
        self.answer_a(&key, r);
        let provisional = self.b_invite.as_ref().is_some_and(|i| i.provisional);
        match self.state {
            CallState::Calling if provisional => self.send_cancel_b(),
            CallState::Calling => {
                if let Some(out) = self.b_invite.as_mut() {
                    out.cancel_wanted = true;
                }
            }
            _ => self.end(now, EndReason::Cancelled),
        }
    }

    /// The server key of the caller's INVITE.
    pub(in crate::b2bua) fn invite_key(&self) -> &ServerKey {
        &self.a_key
    }
}
