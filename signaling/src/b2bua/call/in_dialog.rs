//! Requests within a call: BYE, ACK, re-INVITE and UPDATE (offers through the engine), INFO,
//! MESSAGE, NOTIFY, OPTIONS (relayed to the other leg, or answered for the demo echo), and the
//! responses to what was relayed.

use std::time::{Duration, Instant};

use engine::api::{LegIndex, LegSpec, LocalLeg, Setup};

use super::setup::webrtc_local;
use super::timers::{self, Refresher};
use super::{resp_reason, sip_leg, user_of, Action, Call, CallKind, CallState, CallTxn, Env};
use crate::b2bua::errors::SipError;
use crate::b2bua::types::{EndReason, HungUpBy, Peer, ServerKey, ALLOW};
use crate::sdp::model::Sdp;
use crate::sdp::translate::{self, TranslateError};
use crate::sip::dialog::contact_uri;
use crate::sip::hdr::NameAddr;
use crate::sip::msg::{Method, SipMsg};

fn strip_origin(s: &Sdp) -> Vec<u8> {
    let mut c = s.clone();
    c.session.retain(|(t, _)| *t != 'o');
    c.to_bytes()
}

impl Call {
    /// An in-dialog request on `leg` of this call, its sender already checked by the core.
    pub(in crate::b2bua) fn handle_request(
        &mut self,
        env: &mut Env<'_>,
        now: Instant,
        from: &Peer,
        leg: LegIndex,
        key: ServerKey,
        msg: SipMsg,
    ) {
        if self.is_ended() {
            return self.refuse(env, &key, &msg, SipError::NoSuchDialog);
        }
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let this = self.leg_mut(leg);
        if this.dialog.take_request(&msg).is_err() {
            return self.refuse(env, &key, &msg, SipError::CseqOutOfOrder);
        }
        if let (Some(t), Peer::Ws(_)) = (contact_uri(&msg), from) {
            this.dialog.remote_target = t;
        }
        match method {
            Method::Ack => {
                // ACK for our 2xx: to a re-INVITE on this leg, else to the caller's INVITE.
                let k = match self.leg_mut(leg).reinvite_key.take() {
                    Some(k) => Some(k),
                    None => (leg == LegIndex::A).then(|| self.a_key.clone()),
                };
                if let Some(key) = k {
                    self.actions.push_back(Action::AckFor2xx { key });
                }
            }
            Method::Bye => {
                self.reply_ok(env, &key, &msg);
                self.ended_by = Some(if leg == LegIndex::A {
                    HungUpBy::Caller
                } else {
                    HungUpBy::Callee
                });
                if !self.is_answered() {
                    // A BYE on an early dialog: the INVITE still needs its final response and
                    // the callee its CANCEL (RFC 3261 §15), or both transactions stay.
                    let code = if leg == LegIndex::A {
                        SipError::Terminated
                    } else {
                        SipError::Unavailable
                    };
                    return self.give_up_unanswered(now, code, EndReason::HungUpBeforeAnswer);
                }
                self.send_bye(env, leg.other(), None);
                self.end(now, EndReason::HungUp);
            }
            Method::Invite | Method::Update => {
                let from_sip_leg = sip_leg(self.kind) == Some(leg);
                if from_sip_leg {
                    if let Some((secs, _)) = timers::session_expires(&msg) {
                        let secs = secs.max(timers::MIN_SE);
                        self.timers.on_session(
                            now,
                            Duration::from_secs(secs.into()),
                            Refresher::FarEnd,
                        );
                    } else if let Some((interval, Refresher::FarEnd)) = self.timers.session {
                        self.timers.on_session(now, interval, Refresher::FarEnd);
                    }
                }
                if from_sip_leg && method == Method::Update && msg.body.is_empty() {
                    // A session refresh: answered here, the browser need not know.
                    let mut ok = msg.response(200, "OK", None);
                    if let Some((secs, _)) = timers::session_expires(&msg) {
                        ok.push_header(
                            "Session-Expires",
                            format!("{};refresher=uac", secs.max(timers::MIN_SE)),
                        );
                        ok.push_header("Require", "timer");
                    }
                    ok.push_header("Contact", self.contact(env, leg));
                    self.send_on(&key, ok);
                } else {
                    self.relay_offer(env, leg, key, msg);
                }
            }
            Method::Prack => {
                // Reliable provisionals are not used towards either side.
                self.refuse(env, &key, &msg, SipError::NoSuchDialog);
            }
            Method::Refer => {
                // Transfers are not supported: say so instead of pretending.
                self.refuse(env, &key, &msg, SipError::NotImplemented);
            }
            Method::Info | Method::Message | Method::Notify | Method::Options => {
                if self.kind == CallKind::DemoEcho {
                    self.answer_for_echo(env, &key, &msg, &method);
                } else {
                    self.relay_request(env, leg, key, msg, None);
                }
            }
            _ => self.refuse(env, &key, &msg, SipError::NotImplemented),
        }
    }

    /// Our Contact on `leg`.
    fn contact(&self, env: &Env<'_>, leg: LegIndex) -> String {
        let l = self.leg(leg);
        env.contact_for(&l.peer, &user_of(&l.dialog.local_uri))
    }

    /// re-INVITE or UPDATE: the SDP (if any) goes through the engine to the other side.
    fn relay_offer(&mut self, env: &mut Env<'_>, leg: LegIndex, key: ServerKey, msg: SipMsg) {
        let confirmed = matches!(self.state, CallState::Confirmed { .. });
        if self.kind == CallKind::DemoEcho && leg == LegIndex::A && confirmed {
            return self.answer_echo_reoffer(env, key, msg);
        }
        if !confirmed {
            return self.refuse(env, &key, &msg, SipError::OfferPending);
        }
        // Glare (RFC 3261 §14.2): an offer of ours still pending on this call.
        if !self.pending_offers.is_empty() {
            return self.refuse(env, &key, &msg, SipError::OfferPending);
        }
        if msg.body.is_empty() {
            return self.relay_request(env, leg, key, msg, None);
        }
        let Ok(sdp) = Sdp::parse(&msg.body) else {
            return self.refuse(env, &key, &msg, SipError::BadRequest);
        };
        // An identical re-offer (a session refresh) is answered locally.
        let this = self.leg(leg);
        if this
            .remote_sdp
            .as_ref()
            .is_some_and(|p| strip_origin(p) == strip_origin(&sdp))
        {
            let mut ok = msg.response(200, "OK", None);
            if let Some(last) = this.last_answer.clone() {
                ok.push_header("Content-Type", "application/sdp");
                ok.body = last.to_bytes();
            }
            ok.push_header("Contact", self.contact(env, leg));
            return self.send_on(&key, ok);
        }
        let is_webrtc_side = matches!(self.local[leg as usize], Some(LocalLeg::WebRtc { .. }));
        let spec = if is_webrtc_side {
            translate::webrtc_remote(&sdp).map(|r| LegSpec::WebRtc(Some(r)))
        } else {
            translate::plain_remote(&sdp).map(|r| LegSpec::Plain(Some(r)))
        };
        let other_local = self.local[leg.other() as usize].clone();
        let both_webrtc = self.kind == CallKind::DemoBrowserToBrowser;
        let pts = &env.cfg.pts;
        let origin = &mut self.leg_mut(leg.other()).origin;
        let translated = match (&spec, other_local) {
            (Ok(_), Some(l @ LocalLeg::WebRtc { .. })) => {
                // An offer keeps our setup as it stands (actpass where we offered first).
                let local = webrtc_local(&l);
                if both_webrtc {
                    translate::relay_webrtc(&sdp, &local, pts, origin, None)
                } else {
                    translate::to_webrtc(&sdp, &local, pts, origin, None)
                }
            }
            (Ok(_), Some(LocalLeg::Plain { rtp, video_rtp })) => {
                translate::to_plain(&sdp, rtp, video_rtp, pts, origin, None)
            }
            (Err(e), _) => Err(e.clone()),
            (Ok(_), _) => Err(TranslateError::NoRtpSection),
        };
        match (spec, translated) {
            (Ok(spec), Ok(t)) => {
                self.leg_mut(leg).remote_sdp = Some(sdp);
                self.engine(engine::api::Command::Update {
                    id: self.id,
                    leg,
                    remote: spec,
                });
                self.relay_request(env, leg, key, msg, Some(t));
            }
            (Err(e), _) | (_, Err(e)) => self.refuse(env, &key, &msg, (&e).into()),
        }
    }

    /// A re-INVITE or UPDATE to the demo echo: answered here, direction mirrored (the echo
    /// sends what it receives, so a browser that only sends is answered recvonly).
    fn answer_echo_reoffer(&mut self, env: &mut Env<'_>, key: ServerKey, msg: SipMsg) {
        if msg.body.is_empty() && msg.method() == Some(&Method::Update) {
            // No offer in the UPDATE: its 2xx carries no SDP (RFC 3311 §5.2, RFC 6337 §3.1).
            let mut ok = msg.response(200, "OK", None);
            ok.push_header("Contact", self.contact(env, LegIndex::A));
            return self.send_on(&key, ok);
        }
        let sdp = match (!msg.body.is_empty()).then(|| Sdp::parse(&msg.body)) {
            Some(Ok(sdp)) => sdp,
            Some(Err(_)) => return self.refuse(env, &key, &msg, SipError::BadRequest),
            None => match self.a.remote_sdp.clone() {
                // An offer-less re-INVITE: offer what was agreed last.
                Some(prev) => prev,
                None => return self.refuse(env, &key, &msg, SipError::NotAcceptableHere),
            },
        };
        let Some(local_leg) = self.local[0].clone() else {
            return self.refuse(env, &key, &msg, SipError::CannotServe);
        };
        let mut local = webrtc_local(&local_leg);
        if local.setup == Setup::ActPass {
            local.setup = Setup::Passive;
        }
        let pts = &env.cfg.pts;
        let (b_origin, a_origin) = (&mut self.b.origin, &mut self.a.origin);
        let answer = translate::webrtc_remote(&sdp).and_then(|remote| {
            let mut plainish = translate::to_plain(&sdp, local.addr, None, pts, b_origin, None)?;
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
            let answer = translate::to_webrtc(&plainish, &local, pts, a_origin, Some(&sdp))?;
            Ok((remote, answer))
        });
        match answer {
            Ok((remote, answer)) => {
                self.a.remote_sdp = Some(sdp);
                self.a.last_answer = Some(answer.clone());
                self.a.reinvite_key = (msg.method() == Some(&Method::Invite)).then(|| key.clone());
                self.engine(engine::api::Command::Update {
                    id: self.id,
                    leg: LegIndex::A,
                    remote: LegSpec::WebRtc(Some(remote)),
                });
                let mut ok = msg.response(200, "OK", None);
                ok.push_header("Contact", self.contact(env, LegIndex::A));
                ok.push_header("Content-Type", "application/sdp");
                ok.body = answer.to_bytes();
                self.send_on(&key, ok);
            }
            Err(e) => self.refuse(env, &key, &msg, (&e).into()),
        }
    }

    /// An in-dialog INFO, MESSAGE, OPTIONS or NOTIFY to the demo echo, which has no peer to
    /// relay it to: answered here as a phone would. DTMF by INFO and chat are taken (200), an
    /// in-dialog OPTIONS gets 200 with Allow, and a NOTIFY matches no subscription of ours (481).
    fn answer_for_echo(
        &mut self,
        env: &mut Env<'_>,
        key: &ServerKey,
        msg: &SipMsg,
        method: &Method,
    ) {
        // RFC 6086 §4.2.2: the echo receives no Info Package (legacy INFO only).
        let bad_package = *method == Method::Info && msg.header("Info-Package").is_some();
        let code = match method {
            Method::Notify => SipError::NoSuchDialog.status(),
            _ if bad_package => SipError::BadInfoPackage.status(),
            _ => 200,
        };
        let mut r = env.response(msg, code);
        if *method == Method::Options {
            r.push_header("Allow", ALLOW);
        }
        if bad_package {
            r.push_header("Recv-Info", "");
        }
        self.send_on(key, r);
    }

    /// Sends `msg`'s method and body (or `sdp`) to the other leg in its dialog; the final
    /// response comes back on `key`.
    fn relay_request(
        &mut self,
        env: &mut Env<'_>,
        leg: LegIndex,
        key: ServerKey,
        msg: SipMsg,
        sdp: Option<Sdp>,
    ) {
        if self.kind == CallKind::DemoEcho {
            // The echo has no dialog to relay into (its requests are answered by
            // `answer_for_echo` and `answer_echo_reoffer`); never send a request to nowhere.
            return self.refuse(env, &key, &msg, SipError::CannotServe);
        }
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let peer = self.leg(leg.other()).peer.clone();
        let (via, branch) = env.via_for(&peer);
        let contact = self.contact(env, leg.other());
        let mut req = self
            .leg_mut(leg.other())
            .dialog
            .next_request(method.clone(), via);
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
        self.start_txn(
            branch,
            peer,
            req,
            CallTxn::Relay {
                server: key,
                method,
                request: Box::new(msg),
            },
        );
    }

    /// The final response to a relayed request came back (`None`: it timed out).
    pub(in crate::b2bua) fn on_relay_response(
        &mut self,
        env: &mut Env<'_>,
        server: &ServerKey,
        method: &Method,
        req: &SipMsg,
        resp: Option<SipMsg>,
    ) {
        let code = resp.as_ref().and_then(SipMsg::status).unwrap_or(408);
        if code < 200 {
            return;
        }
        let mut r = req.response(
            code,
            resp.as_ref().map_or("Request Timeout", resp_reason),
            None,
        );
        // The request came in on the leg that is not the response's.
        let in_leg = if self.a.dialog.call_id == *req.call_id() {
            LegIndex::A
        } else {
            LegIndex::B
        };
        if let Ok(mut to) = NameAddr::parse(r.header("To").unwrap_or_default(), "To") {
            to.params
                .set("tag", Some(self.leg(in_leg).dialog.local_tag.as_str()));
            r.set_header("To", to.to_string());
        }
        if matches!(method, Method::Invite | Method::Update) && (200..300).contains(&code) {
            if let Some(body) = resp.as_ref().map(|r| &r.body).filter(|b| !b.is_empty()) {
                if let Ok(sdp) = Sdp::parse(body) {
                    self.take_relayed_answer(env, in_leg, sdp, &mut r);
                }
            }
            if *method == Method::Invite {
                self.leg_mut(in_leg).reinvite_key = Some(server.clone());
            }
            r.push_header("Contact", self.contact(env, in_leg));
            if *method == Method::Invite {
                // ACK the other leg's 2xx ourselves.
                let cseq = resp.as_ref().map_or(0, |r| r.cseq().seq);
                self.ack_dialog(env, in_leg.other(), cseq);
            }
        } else if let Some(resp) = &resp {
            if let Some(ct) = resp.header("Content-Type") {
                r.push_header("Content-Type", ct);
                r.body = resp.body.clone();
            }
        }
        self.send_on(server, r);
    }

    /// The SDP answer in a relayed re-INVITE's or UPDATE's 2xx: through the engine, and
    /// translated into `r` for the leg the offer came from.
    fn take_relayed_answer(
        &mut self,
        env: &mut Env<'_>,
        in_leg: LegIndex,
        sdp: Sdp,
        r: &mut SipMsg,
    ) {
        let resp_leg = in_leg.other();
        let is_webrtc = matches!(self.local[resp_leg as usize], Some(LocalLeg::WebRtc { .. }));
        let spec = if is_webrtc {
            translate::webrtc_remote(&sdp)
                .ok()
                .map(|r| LegSpec::WebRtc(Some(r)))
        } else {
            translate::plain_remote(&sdp)
                .ok()
                .map(|r| LegSpec::Plain(Some(r)))
        };
        let offer_in = self.leg(in_leg).remote_sdp.clone();
        let both_webrtc = self.kind == CallKind::DemoBrowserToBrowser;
        let pts = &env.cfg.pts;
        let local_in = self.local[in_leg as usize].clone();
        let origin = &mut self.leg_mut(in_leg).origin;
        let translated = match local_in {
            Some(l @ LocalLeg::WebRtc { .. }) => {
                // An answer cannot say actpass (RFC 5763 §5): passive then.
                let mut local = webrtc_local(&l);
                if local.setup == Setup::ActPass {
                    local.setup = Setup::Passive;
                }
                if both_webrtc {
                    translate::relay_webrtc(&sdp, &local, pts, origin, offer_in.as_ref())
                } else {
                    translate::to_webrtc(&sdp, &local, pts, origin, offer_in.as_ref())
                }
            }
            Some(LocalLeg::Plain { rtp, video_rtp }) => {
                translate::to_plain(&sdp, rtp, video_rtp, pts, origin, offer_in.as_ref())
            }
            _ => Err(TranslateError::NoRtpSection),
        };
        if let Some(spec) = spec {
            self.engine(engine::api::Command::Update {
                id: self.id,
                leg: resp_leg,
                remote: spec,
            });
        }
        if let Ok(t) = translated {
            self.leg_mut(in_leg).last_answer = Some(t.clone());
            r.push_header("Content-Type", "application/sdp");
            r.body = t.to_bytes();
        }
        self.leg_mut(resp_leg).remote_sdp = Some(sdp);
    }

    fn ack_dialog(&mut self, env: &mut Env<'_>, leg: LegIndex, cseq: u32) {
        let peer = self.leg(leg).peer.clone();
        let (via, _) = env.via_for(&peer);
        let ack = self.leg(leg).dialog.request(Method::Ack, via, cseq);
        self.actions.push_back(Action::Send {
            to: peer,
            bytes: ack.to_bytes(),
        });
    }
}
