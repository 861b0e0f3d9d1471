//! The media node: our engine driven over rtpengine's ng protocol (issue 16), so an unchanged
//! Kamailio or OpenSIPS `rtpengine` module can use it.
//!
//! [`Node`] is pure: datagrams in with `now` (and the wall clock's seconds for `created`),
//! engine [`Output`]s in; reply datagrams, engine [`Command`]s and [`NodeEvent`]s out. The IO
//! edge is `transport::ng` (one UDP socket, the engine handle, the loop).
//!
//! The model (notes §2): a call is a Call-ID; it has two parties, each a SIP tag, which are the
//! engine session's two legs. Leg A is the party that sent the first offer, leg B the other.
//! `from-tag` always names the party that sent the offer in hand, so a re-INVITE from the callee
//! arrives as an `offer` with `from-tag` = B's tag; Kamailio swaps the tags for late offers.
//!
//! - `offer`: the offering party's SDP becomes its leg's remote; the reply is the SDP for the
//!   other party, with that leg's local transport (profile from `transport-protocol`).
//! - `answer`: the answering party's SDP becomes its leg's remote; the reply is the SDP for the
//!   offerer, with the offerer's leg's local transport and its offered profile.
//! - The same offer or answer again (a retransmitted INVITE, a 183 then a 200) keeps the same
//!   ports, ICE credentials and fingerprint: the engine is asked again only when the SDP's media
//!   parameters changed (new address, hold, ICE restart).
//!
//! Engine replies for one session come back in the order of its commands, so each call keeps a
//! FIFO of the requests waiting on the engine.

#![forbid(unsafe_code)]

pub mod sdp;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use engine::api::{
    Command, Event, Failure, LegIndex, LegSpec, LocalLeg, Output, Reply, SessionId, SessionStats,
};
use ng::bencode::{Dict, Limits, Value};
use ng::cache::{CacheConfig, Lookup, ReplyCache};
use ng::datagram::{self, Format, Incoming};
use ng::request::{Command as NgCommand, Request, SeenOnce, TransportProtocol};
use ng::response::{reason, Capacity, Response};

use crate::sdp::model::Sdp;
use crate::sdp::translate::{plain_remote, relayed_section, video_section, webrtc_remote};
use sdp::{Kind, Role, Target};

/// Settings of the node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The address our SDP names (the engine's advertise address).
    pub advertise: IpAddr,
    /// Calls at most; past it offers get "Parallel session limit reached".
    pub max_sessions: Option<usize>,
    /// A call whose offer got no answer is deleted after this (rtpengine's `offer-timeout`).
    pub offer_timeout: Duration,
    /// A `delete` without `delete delay` takes effect after this (rtpengine's `delete-delay`).
    pub delete_delay: Duration,
    pub cache: CacheConfig,
}

impl NodeConfig {
    /// rtpengine's defaults, but deletes take effect at once.
    pub fn new(advertise: IpAddr) -> NodeConfig {
        NodeConfig {
            advertise,
            max_sessions: None,
            offer_timeout: Duration::from_secs(120),
            delete_delay: Duration::ZERO,
            cache: CacheConfig::default(),
        }
    }
}

/// What happened, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A request got its reply (`result`: ok, pong, error, load limit).
    Request {
        command: &'static str,
        result: &'static str,
    },
    CallCreated,
    /// A call is gone: deleted, timed out, or its allocation failed.
    CallEnded {
        why: EndWhy,
    },
    /// A key, flag or value we ignore, the first time it is seen (log it once).
    Ignored(String),
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndWhy {
    Deleted,
    OfferTimeout,
    MediaTimeout,
    AllocationFailed,
}

/// Where a reply goes and how it is framed.
#[derive(Debug, Clone)]
struct ReplyTo {
    source: SocketAddr,
    cookie: Vec<u8>,
    format: Format,
    command: &'static str,
}

/// One party of a call: a leg of the engine session.
#[derive(Debug, Clone)]
struct Party {
    tag: Option<Vec<u8>>,
    kind: Kind,
    /// The profile this party speaks (its own SDP's, or the one we offered it).
    profile: String,
    /// Its last SDP and the engine spec made of it.
    remote: Option<(Sdp, LegSpec)>,
    local: Option<LocalLeg>,
    /// Plain legs: RTCP multiplexed on the RTP port.
    rtcp_mux: bool,
}

/// A request waiting on the engine's reply to one command of its call.
#[derive(Debug)]
enum Waiting {
    /// An offer or answer: the SDP for party `to` (made from `input`, in `role`).
    Sdp {
        reply: ReplyTo,
        to: LegIndex,
        input: Box<Sdp>,
        role: Role,
        opts: Box<Opts>,
    },
    Query(ReplyTo),
}

/// The per-request output options.
#[derive(Debug, Clone, Default)]
struct Opts {
    replace_origin: bool,
    generate_mid: bool,
    media_address: Option<IpAddr>,
    codec: ng::request::CodecOps,
}

#[derive(Debug)]
struct Call {
    session: SessionId,
    parties: [Party; 2],
    created: u64,
    last_signal: u64,
    allocated: bool,
    /// Requests waiting on the engine, one per command sent, in command order.
    waiting: VecDeque<Waiting>,
    /// Offer timeout (until an answer) or delete delay.
    deadline: Option<Instant>,
}

/// Refusals while reading a request: an `error-reason`.
type Refusal = &'static str;

const SDES_WARNING: &str = "SDES is not supported: a=crypto removed";
const SDES_REFUSAL: &str = "SDES-SRTP is not supported: offer DTLS-SRTP or plain RTP";

/// The ng node's state: calls by Call-ID, the reply cache, and what goes out.
pub struct Node {
    config: NodeConfig,
    limits: Limits,
    calls: HashMap<Vec<u8>, Call>,
    by_session: HashMap<SessionId, Vec<u8>>,
    /// Sessions released whose `Released` has not come back yet, with the delete to answer.
    releasing: HashMap<SessionId, (Option<ReplyTo>, Summary)>,
    deadlines: BTreeSet<(Instant, SessionId)>,
    next_session: u64,
    cache: ReplyCache,
    seen: SeenOnce,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    commands: VecDeque<Command>,
    events: VecDeque<NodeEvent>,
}

impl Node {
    pub fn new(config: NodeConfig) -> Result<Node, ng::cache::CacheConfigError> {
        Ok(Node {
            cache: ReplyCache::new(config.cache)?,
            config,
            limits: Limits::default(),
            calls: HashMap::new(),
            by_session: HashMap::new(),
            releasing: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_session: 1,
            seen: SeenOnce::new(256),
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// Calls in the table.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// One datagram from `source`. `wall` is the Unix time in seconds (`created` in queries).
    pub fn handle_datagram(&mut self, now: Instant, wall: u64, source: SocketAddr, data: &[u8]) {
        let (cookie, format, request) = match datagram::parse(data, &self.limits) {
            Incoming::Drop => return,
            Incoming::Reply { reply, .. } => {
                self.events.push_back(NodeEvent::Request {
                    command: "invalid",
                    result: "error",
                });
                self.transmits.push_back((source, reply));
                return;
            }
            Incoming::Request {
                cookie,
                format,
                request,
            } => (cookie.to_vec(), format, request),
        };
        match self.cache.lookup(now, source, &cookie) {
            Lookup::Cached(bytes) => {
                let bytes = bytes.to_vec();
                self.transmits.push_back((source, bytes));
                return;
            }
            Lookup::InFlight => return,
            Lookup::Fresh => {}
        }
        for u in &request.unknown {
            let name = u.name();
            if self.seen.is_first(&name) {
                self.events.push_back(NodeEvent::Ignored(name));
            }
        }
        let reply = ReplyTo {
            source,
            cookie,
            format,
            command: command_name(request.command.as_ref()),
        };
        let result = match &request.command {
            Some(NgCommand::Ping) => Ok(Some(Response::pong())),
            Some(NgCommand::Offer) => self.offer(now, wall, &reply, &request),
            Some(NgCommand::Answer) => self.answer(wall, &reply, &request),
            Some(NgCommand::Delete) => self.delete(now, &reply, &request),
            Some(NgCommand::Query) => self.query(&reply, &request),
            Some(NgCommand::List) => Ok(Some(self.list(&request))),
            Some(NgCommand::Unknown(_)) | None => Err(reason::UNRECOGNIZED_COMMAND),
        };
        match result {
            Ok(Some(resp)) => self.respond(now, &reply, resp),
            Ok(None) => {}
            Err(why) => self.respond(now, &reply, Response::error(why)),
        }
    }

    /// Sends `resp` to `to` and caches it.
    fn respond(&mut self, now: Instant, to: &ReplyTo, resp: Response) {
        let result = match resp.result_str() {
            b"ok" => "ok",
            b"pong" => "pong",
            b"load limit" => "load_limit",
            _ => "error",
        };
        self.events.push_back(NodeEvent::Request {
            command: to.command,
            result,
        });
        let bytes = datagram::join(&to.cookie, to.format, resp.dict());
        self.cache.complete(now, to.source, &to.cookie, &bytes);
        self.transmits.push_back((to.source, bytes));
    }

    fn offer(
        &mut self,
        now: Instant,
        wall: u64,
        reply: &ReplyTo,
        req: &Request,
    ) -> Result<Option<Response>, Refusal> {
        let call_id = req.call_id.clone().ok_or(reason::NO_CALL_ID)?;
        let from_tag = req.from_tag.clone().ok_or(reason::NO_FROM_TAG)?;
        let body = req.sdp.as_deref().ok_or(reason::NO_SDP)?;
        let sdp = Sdp::parse(body).map_err(|_| reason::BAD_SDP)?;
        let i = relayed_section(&sdp).ok_or(reason::INCOMPLETE_SDP)?;
        let in_kind = Kind::of_section(&sdp, &sdp.media[i]);
        if in_kind == Kind::Plain && sdp.media[i].proto.to_ascii_uppercase().contains("SAVP") {
            return Err(SDES_REFUSAL);
        }
        let opts = self.opts(req, &sdp);
        if !self.calls.contains_key(&call_id) {
            return self.new_call(now, wall, reply, req, call_id, from_tag, sdp, opts);
        }
        let call = self.calls.get_mut(&call_id).expect("checked above");
        call.last_signal = wall;
        let to_names_a = req.to_tag.is_some() && req.to_tag == call.parties[0].tag;
        let from = match leg_of(call, &from_tag) {
            Some(l) => l,
            // A re-INVITE from the callee before its answer was seen: bind its tag.
            None if call.parties[1].tag.is_none() && to_names_a => {
                call.parties[1].tag = Some(from_tag);
                LegIndex::B
            }
            // Another offer on this Call-ID from a new tag before any answer: the offerer's
            // tag changed (a new dialog reusing the Call-ID).
            None if call.parties[1].tag.is_none() => {
                call.parties[0].tag = Some(from_tag);
                LegIndex::A
            }
            None => return Err(reason::CALL_NOT_FOUND),
        };
        if let Some(to_tag) = &req.to_tag {
            let other = &mut call.parties[idx(from.other())];
            if other.tag.is_none() {
                other.tag = Some(to_tag.clone());
            }
        }
        let party = &mut call.parties[idx(from)];
        if party.kind == Kind::Plain {
            party.rtcp_mux =
                sdp.media[i].has_attr("rtcp-mux") && (party.rtcp_mux || req.rtcp_mux.accept);
        }
        let spec = remote_spec(&sdp, party.kind, party.rtcp_mux, req)?;
        let changed = party.remote.as_ref().map(|(_, s)| s) != Some(&spec);
        party.remote = Some((sdp.clone(), spec.clone()));
        let w = Waiting::Sdp {
            reply: reply.clone(),
            to: from.other(),
            input: Box::new(sdp),
            role: Role::Offer,
            opts: Box::new(opts),
        };
        let update = changed.then_some(Command::Update {
            id: call.session,
            leg: from,
            remote: spec,
        });
        Ok(self.wait_or_complete(&call_id, w, update))
    }

    #[allow(clippy::too_many_arguments)]
    fn new_call(
        &mut self,
        now: Instant,
        wall: u64,
        reply: &ReplyTo,
        req: &Request,
        call_id: Vec<u8>,
        from_tag: Vec<u8>,
        sdp: Sdp,
        opts: Opts,
    ) -> Result<Option<Response>, Refusal> {
        if self
            .config
            .max_sessions
            .is_some_and(|max| self.calls.len() >= max)
        {
            return Ok(Some(Response::capacity(
                Capacity::Sessions,
                req.supports_load_limit,
            )));
        }
        let i = relayed_section(&sdp).ok_or(reason::INCOMPLETE_SDP)?;
        let in_kind = Kind::of_section(&sdp, &sdp.media[i]);
        let in_profile = sdp.media[i].proto.clone();
        let out_kind = req.transport_protocol.map_or(in_kind, kind_of_profile);
        let out_profile = req
            .transport_protocol
            .map_or(in_profile.clone(), |p| p.as_str().to_string());
        // A plain offerer's rtcp-mux is accepted only when asked (`rtcp-mux-accept`); towards a
        // plain answerer it is offered with `rtcp-mux-offer` or `-require`.
        let a_mux = match in_kind {
            Kind::WebRtc => true,
            Kind::Plain => sdp.media[i].has_attr("rtcp-mux") && req.rtcp_mux.accept,
        };
        let b_mux = match out_kind {
            Kind::WebRtc => true,
            Kind::Plain => req.rtcp_mux.offer || req.rtcp_mux.require,
        };
        let spec = remote_spec(&sdp, in_kind, a_mux, req)?;
        let b_spec = match out_kind {
            Kind::WebRtc => LegSpec::WebRtc(None),
            Kind::Plain => LegSpec::Plain(None),
        };
        let video = video_section(&sdp).is_some();
        let session = SessionId(self.next_session);
        self.next_session += 1;
        let deadline = now + self.config.offer_timeout;
        let call = Call {
            session,
            parties: [
                Party {
                    tag: Some(from_tag),
                    kind: in_kind,
                    profile: in_profile,
                    remote: Some((sdp.clone(), spec.clone())),
                    local: None,
                    rtcp_mux: a_mux,
                },
                Party {
                    tag: None,
                    kind: out_kind,
                    profile: out_profile,
                    remote: None,
                    local: None,
                    rtcp_mux: b_mux,
                },
            ],
            created: wall,
            last_signal: wall,
            allocated: false,
            waiting: VecDeque::from([Waiting::Sdp {
                reply: reply.clone(),
                to: LegIndex::B,
                input: Box::new(sdp),
                role: Role::Offer,
                opts: Box::new(opts),
            }]),
            deadline: Some(deadline),
        };
        self.deadlines.insert((deadline, session));
        self.by_session.insert(session, call_id.clone());
        self.calls.insert(call_id, call);
        self.events.push_back(NodeEvent::CallCreated);
        self.commands.push_back(Command::Allocate {
            id: session,
            legs: [spec, b_spec],
            video,
        });
        Ok(None)
    }

    fn answer(
        &mut self,
        wall: u64,
        reply: &ReplyTo,
        req: &Request,
    ) -> Result<Option<Response>, Refusal> {
        let call_id = req.call_id.clone().ok_or(reason::NO_CALL_ID)?;
        let from_tag = req.from_tag.clone().ok_or(reason::NO_FROM_TAG)?;
        let to_tag = req.to_tag.clone().ok_or(reason::NO_TO_TAG)?;
        let body = req.sdp.as_deref().ok_or(reason::NO_SDP)?;
        let sdp = Sdp::parse(body).map_err(|_| reason::BAD_SDP)?;
        let i = relayed_section(&sdp).ok_or(reason::INCOMPLETE_SDP)?;
        let opts = self.opts(req, &sdp);
        let call = self
            .calls
            .get_mut(&call_id)
            .ok_or(reason::UNKNOWN_CALL_ID)?;
        let offerer = leg_of(call, &from_tag).ok_or(reason::UNKNOWN_CALL_ID)?;
        let answerer = offerer.other();
        call.last_signal = wall;
        if let Some(d) = call.deadline.take() {
            self.deadlines.remove(&(d, call.session));
        }
        let party = &mut call.parties[idx(answerer)];
        // A later answer from another tag (serial forking: a 183 from one branch, the 200
        // from another) takes the leg over.
        party.tag = Some(to_tag);
        if party.kind == Kind::Plain {
            // rtcp-mux only where it was offered.
            party.rtcp_mux = party.rtcp_mux && sdp.media[i].has_attr("rtcp-mux");
        } else if Kind::of_section(&sdp, &sdp.media[i]) != Kind::WebRtc {
            return Err(reason::INCOMPLETE_SDP);
        }
        let spec = remote_spec(&sdp, party.kind, party.rtcp_mux, req)?;
        let changed = party.remote.as_ref().map(|(_, s)| s) != Some(&spec);
        party.remote = Some((sdp.clone(), spec.clone()));
        let w = Waiting::Sdp {
            reply: reply.clone(),
            to: offerer,
            input: Box::new(sdp),
            role: Role::Answer,
            opts: Box::new(opts),
        };
        let update = changed.then_some(Command::Update {
            id: call.session,
            leg: answerer,
            remote: spec,
        });
        Ok(self.wait_or_complete(&call_id, w, update))
    }

    /// Queues `w` behind the engine's answer to `update` (or to a no-op query when something
    /// is still waiting, so replies keep their order), or completes it now.
    fn wait_or_complete(
        &mut self,
        call_id: &[u8],
        w: Waiting,
        update: Option<Command>,
    ) -> Option<Response> {
        let call = self.calls.get_mut(call_id).expect("caller checked");
        if update.is_none() && call.allocated && call.waiting.is_empty() {
            return Some(self.complete_sdp(call_id, w));
        }
        let cmd = update.unwrap_or(Command::Query { id: call.session });
        call.waiting.push_back(w);
        self.commands.push_back(cmd);
        None
    }

    fn delete(
        &mut self,
        now: Instant,
        reply: &ReplyTo,
        req: &Request,
    ) -> Result<Option<Response>, Refusal> {
        let call_id = req.call_id.clone().ok_or(reason::NO_CALL_ID)?;
        let not_found = || {
            if req.flags.fatal {
                Err(reason::CALL_NOT_FOUND)
            } else {
                Ok(Some(Response::ok().with_warning(reason::CALL_NOT_FOUND)))
            }
        };
        let Some(call) = self.calls.get(&call_id) else {
            return not_found();
        };
        // A tag naming no party of an answered call (a losing fork's) deletes nothing.
        let all_bound = call.parties.iter().all(|p| p.tag.is_some());
        for tag in [&req.from_tag, &req.to_tag].into_iter().flatten() {
            if all_bound && leg_of(call, tag).is_none() {
                return not_found();
            }
        }
        let delay = match req.delete_delay {
            Some(d) => Duration::from_secs(d.clamp(0, 3600) as u64),
            None => self.config.delete_delay,
        };
        if delay > Duration::ZERO {
            let call = self.calls.get_mut(&call_id).expect("present");
            if let Some(d) = call.deadline.take() {
                self.deadlines.remove(&(d, call.session));
            }
            let at = now + delay;
            call.deadline = Some(at);
            self.deadlines.insert((at, call.session));
            return Ok(Some(Response::ok()));
        }
        self.end_call(now, &call_id, EndWhy::Deleted, Some(reply.clone()));
        Ok(None)
    }

    fn query(&mut self, reply: &ReplyTo, req: &Request) -> Result<Option<Response>, Refusal> {
        let call_id = req.call_id.as_ref().ok_or(reason::NO_CALL_ID)?;
        let call = self.calls.get_mut(call_id).ok_or(reason::UNKNOWN_CALL_ID)?;
        call.waiting.push_back(Waiting::Query(reply.clone()));
        self.commands.push_back(Command::Query { id: call.session });
        Ok(None)
    }

    fn list(&self, req: &Request) -> Response {
        let limit = usize::try_from(req.limit.unwrap_or(32).clamp(0, 1_000_000)).unwrap_or(0);
        let mut ids: Vec<&Vec<u8>> = self.calls.keys().collect();
        ids.sort();
        let calls = ids
            .into_iter()
            .take(limit)
            .map(|c| Value::Bytes(c.clone()))
            .collect();
        Response::ok().with(b"calls", Value::List(calls))
    }

    /// Removes the call and releases its session; `reply` (a delete) gets the final figures
    /// when the engine has them.
    fn end_call(&mut self, now: Instant, call_id: &[u8], why: EndWhy, reply: Option<ReplyTo>) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        self.by_session.remove(&call.session);
        if let Some(d) = call.deadline {
            self.deadlines.remove(&(d, call.session));
        }
        // Requests still waiting on the engine: the call is gone.
        for w in call.waiting {
            let (Waiting::Sdp { reply: to, .. } | Waiting::Query(to)) = w;
            self.respond(now, &to, Response::error(reason::UNKNOWN_CALL_ID));
        }
        self.events.push_back(NodeEvent::CallEnded { why });
        let summary = Summary {
            created: call.created,
            last_signal: call.last_signal,
            tags: call.parties.iter().filter_map(|p| p.tag.clone()).collect(),
        };
        self.releasing.insert(call.session, (reply, summary));
        self.commands
            .push_back(Command::Release { id: call.session });
    }

    /// The reply SDP a waiting offer or answer gets.
    fn complete_sdp(&mut self, call_id: &[u8], w: Waiting) -> Response {
        let Waiting::Sdp {
            to,
            input,
            role,
            opts,
            ..
        } = w
        else {
            return Response::error("internal: not an SDP request");
        };
        let Some(call) = self.calls.get(call_id) else {
            return Response::error(reason::UNKNOWN_CALL_ID);
        };
        let party = &call.parties[idx(to)];
        let Some(local) = party.local.as_ref() else {
            return Response::error("the media engine has no leg for this party");
        };
        let local_ip = match local {
            LocalLeg::WebRtc { addr, .. } => addr.ip(),
            LocalLeg::Plain { rtp, .. } => rtp.ip(),
            LocalLeg::Echo => self.config.advertise,
        };
        let address = opts.media_address.unwrap_or(if local_ip.is_unspecified() {
            self.config.advertise
        } else {
            local_ip
        });
        let offer = match (role, &party.remote) {
            (Role::Answer, Some((offer, _))) => Some(offer),
            _ => None,
        };
        let mids = offer.map(sdp::mids_of);
        let target = Target {
            kind: party.kind,
            profile: &party.profile,
            local,
            role,
            address,
            replace_origin: opts.replace_origin,
            rtcp_mux: party.kind == Kind::Plain && party.rtcp_mux,
            generate_mid: opts.generate_mid,
            mids: mids.as_deref(),
            offer,
            trickle: party.remote.as_ref().is_some_and(|(sdp, _)| {
                sdp.media.iter().any(|m| {
                    m.attrs("ice-options")
                        .any(|v| v.split_whitespace().any(|o| o == "trickle"))
                })
            }),
            codec: &opts.codec,
        };
        match sdp::render(&input, &target) {
            Ok(out) => {
                let resp = Response::ok().with_sdp(&out.sdp);
                if out.stripped_crypto {
                    resp.with_warning(SDES_WARNING)
                } else {
                    resp
                }
            }
            Err(e) => Response::error(&e.to_string()),
        }
    }

    fn opts(&mut self, req: &Request, _sdp: &Sdp) -> Opts {
        let c = &req.codec;
        for (name, list) in [
            ("codec-offer", &c.offer),
            ("codec-transcode", &c.transcode),
            ("codec-set", &c.set),
            ("codec-accept", &c.accept),
            ("codec-consume", &c.consume),
        ] {
            if !list.is_empty() && self.seen.is_first(name) {
                self.events.push_back(NodeEvent::Ignored(format!(
                    "{name} (no transcoding here: the codecs pass as offered)"
                )));
            }
        }
        Opts {
            replace_origin: req.replace.origin,
            generate_mid: req.flags.generate_mid,
            media_address: req.media_address,
            codec: req.codec.clone(),
        }
    }

    /// A reply or event from the media engine.
    pub fn handle_engine(&mut self, now: Instant, out: Output) {
        match out {
            Output::Reply(r) => {
                let id = match &r {
                    Reply::Allocated { id, .. }
                    | Reply::Updated { id, .. }
                    | Reply::Failed { id, .. }
                    | Reply::Stats { id, .. } => *id,
                };
                let Some(call_id) = self.by_session.get(&id).cloned() else {
                    return;
                };
                self.engine_reply(now, &call_id, r);
            }
            Output::Event(Event::Released { id, stats }) => {
                if let Some((Some(to), summary)) = self.releasing.remove(&id) {
                    let resp = with_stats(Response::ok(), &summary, &stats);
                    self.respond(now, &to, resp);
                }
            }
            Output::Event(Event::MediaTimeout { id }) => {
                if let Some(call_id) = self.by_session.get(&id).cloned() {
                    self.end_call(now, &call_id, EndWhy::MediaTimeout, None);
                }
            }
            // ICE, DTLS and consent events end nothing here (rtpengine's calls end by delete
            // or by the media timeout).
            Output::Event(_) => {}
        }
    }

    fn engine_reply(&mut self, now: Instant, call_id: &[u8], r: Reply) {
        let call = self
            .calls
            .get_mut(call_id)
            .expect("by_session holds live calls");
        let Some(w) = call.waiting.pop_front() else {
            return;
        };
        match r {
            Reply::Allocated { legs, .. } => {
                let [a, b] = legs;
                call.parties[0].local = Some(a);
                call.parties[1].local = Some(b);
                call.allocated = true;
            }
            Reply::Updated { leg, local, .. } => call.parties[idx(leg)].local = Some(local),
            Reply::Stats { stats, .. } => {
                if let Waiting::Query(to) = w {
                    let summary = Summary {
                        created: call.created,
                        last_signal: call.last_signal,
                        tags: call.parties.iter().filter_map(|p| p.tag.clone()).collect(),
                    };
                    let resp = with_stats(Response::ok(), &summary, &stats);
                    self.respond(now, &to, resp);
                    return;
                }
            }
            Reply::Failed { failure, .. } => {
                let (Waiting::Sdp { reply: to, .. } | Waiting::Query(to)) = w;
                let allocating = !call.allocated;
                let resp = match failure {
                    // "Ran out of ports" is an error whatever the request supports.
                    Failure::PortsExhausted => Response::capacity(Capacity::Ports, false),
                    Failure::UnknownSession => Response::error(reason::UNKNOWN_CALL_ID),
                    Failure::BadRequest(why) => Response::error(&why),
                };
                self.respond(now, &to, resp);
                if allocating {
                    // No session in the engine: nothing to release.
                    if let Some(call) = self.calls.remove(call_id) {
                        self.by_session.remove(&call.session);
                        if let Some(d) = call.deadline {
                            self.deadlines.remove(&(d, call.session));
                        }
                        for w in call.waiting {
                            let (Waiting::Sdp { reply: to, .. } | Waiting::Query(to)) = w;
                            self.respond(now, &to, Response::error(reason::UNKNOWN_CALL_ID));
                        }
                    }
                    self.events.push_back(NodeEvent::CallEnded {
                        why: EndWhy::AllocationFailed,
                    });
                }
                return;
            }
        }
        match w {
            Waiting::Sdp { ref reply, .. } => {
                let to = reply.clone();
                let resp = self.complete_sdp(call_id, w);
                self.respond(now, &to, resp);
            }
            Waiting::Query(to) => {
                // A query answered by another reply kind cannot happen (one reply per command,
                // in order); answer rather than leave Kamailio waiting.
                self.respond(now, &to, Response::error("internal: reply out of order"));
            }
        }
    }

    /// Offer timeouts and delete delays due by `now`; reply-cache expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(call_id) = self.by_session.get(&id).cloned() else {
                continue;
            };
            let answered = self
                .calls
                .get(&call_id)
                .is_some_and(|c| c.parties[1].remote.is_some() && c.parties[1].tag.is_some());
            let why = if answered {
                EndWhy::Deleted
            } else {
                EndWhy::OfferTimeout
            };
            if let Some(c) = self.calls.get_mut(&call_id) {
                c.deadline = None;
            }
            self.end_call(now, &call_id, why, None);
        }
        self.cache.handle_timeout(now);
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call = self.deadlines.first().map(|&(at, _)| at);
        match (call, self.cache.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }
}

/// What a delete or query reports besides the figures.
#[derive(Debug, Clone)]
struct Summary {
    created: u64,
    last_signal: u64,
    tags: Vec<Vec<u8>>,
}

/// rtpengine's query shape: `created`, `last signal`, `tags`, and `totals` with RTP and RTCP
/// packets, bytes and errors. Our engine counts a leg's RTP and RTCP together: both are under
/// `RTP`, and `RTCP` says 0 (the README says so).
fn with_stats(resp: Response, s: &Summary, stats: &SessionStats) -> Response {
    let int = |v: u64| Value::Int(i64::try_from(v).unwrap_or(i64::MAX));
    let (mut packets, mut bytes, mut errors) = (0, 0, 0);
    for leg in &stats.legs {
        packets += leg.packets_in;
        bytes += leg.bytes_in;
        errors += leg.dropped;
    }
    let counters = |p, b, e| {
        let mut d = Dict::new();
        d.insert(b"packets".to_vec(), int(p));
        d.insert(b"bytes".to_vec(), int(b));
        d.insert(b"errors".to_vec(), int(e));
        Value::Dict(d)
    };
    let mut totals = Dict::new();
    totals.insert(b"RTP".to_vec(), counters(packets, bytes, errors));
    totals.insert(b"RTCP".to_vec(), counters(0, 0, 0));
    let mut tags = Dict::new();
    for t in &s.tags {
        let mut d = Dict::new();
        d.insert(b"tag".to_vec(), Value::Bytes(t.clone()));
        d.insert(b"created".to_vec(), int(s.created));
        tags.insert(t.clone(), Value::Dict(d));
    }
    resp.with(b"created", int(s.created))
        .with(b"last signal", int(s.last_signal))
        .with(b"tags", Value::Dict(tags))
        .with(b"totals", Value::Dict(totals))
}

/// The engine spec of a party's SDP.
fn remote_spec(sdp: &Sdp, kind: Kind, rtcp_mux: bool, req: &Request) -> Result<LegSpec, Refusal> {
    match kind {
        Kind::WebRtc => webrtc_remote(sdp)
            .map(|r| LegSpec::WebRtc(Some(r)))
            .map_err(|_| reason::INCOMPLETE_SDP),
        Kind::Plain => {
            let mut r = plain_remote(sdp).map_err(|_| reason::INCOMPLETE_SDP)?;
            let source = (req.flags.sip_source_address && !req.flags.trust_address)
                .then(|| req.received_from.as_ref().map(|f| f.address))
                .flatten();
            let fix = |s: &mut engine::api::PlainRemote| {
                if s.rtcp_mux && !rtcp_mux {
                    // Not accepted: RTCP on its own port (RFC 5761 §5.1.1).
                    s.rtcp_mux = false;
                    s.rtcp = s
                        .rtp
                        .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)));
                }
                if let Some(ip) = source {
                    s.rtp = s.rtp.map(|a| SocketAddr::new(ip, a.port()));
                    s.rtcp = s.rtcp.map(|a| SocketAddr::new(ip, a.port()));
                }
            };
            fix(&mut r);
            if let Some(v) = r.video.as_deref_mut() {
                fix(v);
            }
            Ok(LegSpec::Plain(Some(r)))
        }
    }
}

fn kind_of_profile(p: TransportProtocol) -> Kind {
    match p {
        TransportProtocol::UdpTlsRtpSavp
        | TransportProtocol::UdpTlsRtpSavpf
        | TransportProtocol::RtpSavpf
        | TransportProtocol::RtpSavp => Kind::WebRtc,
        TransportProtocol::RtpAvp | TransportProtocol::RtpAvpf => Kind::Plain,
    }
}

fn leg_of(call: &Call, tag: &[u8]) -> Option<LegIndex> {
    if call.parties[0].tag.as_deref() == Some(tag) {
        Some(LegIndex::A)
    } else if call.parties[1].tag.as_deref() == Some(tag) {
        Some(LegIndex::B)
    } else {
        None
    }
}

fn idx(leg: LegIndex) -> usize {
    match leg {
        LegIndex::A => 0,
        LegIndex::B => 1,
    }
}

fn command_name(c: Option<&NgCommand>) -> &'static str {
    match c {
        Some(NgCommand::Ping) => "ping",
        Some(NgCommand::Offer) => "offer",
        Some(NgCommand::Answer) => "answer",
        Some(NgCommand::Delete) => "delete",
        Some(NgCommand::Query) => "query",
        Some(NgCommand::List) => "list",
        Some(NgCommand::Unknown(_)) | None => "other",
    }
}
