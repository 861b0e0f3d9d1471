//! One call: two legs, each WebRTC (ICE-lite + DTLS-SRTP, rtcp-mux, bundle), plain RTP/RTCP, or
//! an echo. Pure: datagrams come in with the local socket they arrived on and `now`; verdicts,
//! transmits and events come out. The reactor does the IO.
//!
//! A datagram from one leg is transformed in place (SRTP unprotect, then protect for the other
//! side) and the same buffer is forwarded on the other leg's socket: [`Verdict::Forward`].
//! STUN checks are answered in place too. Only DTLS flights come out of
//! [`Session::poll_transmit`].
//!
//! WebRTC legs (RFC 8829 media, RFC 8842 DTLS roles):
//! * media and DTLS only from ICE-validated sources; SRTP/SRTCP only from the nominated one;
//! * DTLS role from the browser's `a=setup`: `active`/`actpass` → we are the server
//!   (passive), `passive` → we are the client and start once a pair is validated;
//! * any SSRC is accepted (bundle: audio and video share the 5-tuple and pass through
//!   unchanged); an ICE restart keeps DTLS and SRTP when the fingerprint is unchanged.
//!
//! Plain legs have one [`Stream`] per SDP media section, each its own RTP/RTCP port pair: the
//! audio stream always, a video stream when the session was allocated with video. Nothing is
//! accepted on a stream before its SDP is known. Then it sends to its section's SDP address and
//! accepts from the host that SDP names, learning the port from the first packet (symmetric RTP
//! behind NAT), or with [`Latching::Heuristic`] the best source within a window after the SDP
//! (see [`Latching`]). Anything else is dropped and counted.
//!
//! Bundle to plain (RFC 8843 §9.2, by payload type then SSRC; the engine is not told MIDs or
//! `a=ssrc`): the browser's RTP goes to the plain leg's video stream when its payload type is
//! one of the video section's, or its SSRC was already seen so (a fixed set of the latest
//! [`VIDEO_SSRCS`]); everything else goes to the audio stream. SRTCP follows its sender SSRC.
//! The other way, both streams are protected into the one bundle. Between two plain legs audio
//! goes to audio and video to video; an echo reflects each stream on its own socket.
//!
//! Hold (RFC 3264 §5.1, §8.4), from each leg's remote SDP direction: RTP is not forwarded to a
//! leg that said `sendonly`/`inactive`, nor from a leg that said `recvonly`/`inactive`; it is
//! dropped and counted as [`DropReason::Held`]. RTCP keeps flowing both ways. A plain leg's
//! direction is its first (audio) section's and holds its video stream too.
//!
//! Reception statistics (loss, jitter) follow the audio stream only: video is counted in
//! packets and bytes, so its sequence numbers never mix with the audio's.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod plain;
mod webrtc;

use super::dtls::{DtlsIdentity, DtlsRole};
use super::entropy::Entropy;
use super::ice::{local_ufrag_of, IceCredentials};
use super::srtp::MAX_TRAILER_LEN;
use super::stats::{since, DropCounts, DropReason, RtpRx};
use super::wire::{demux, strip_rtp_extension, PacketKind, RtcpHeader, RtpHeader};
use crate::api::{
    Direction, Event, Failure, LegIndex, LegSpec, LegStats, LocalLeg, SessionId, SessionStats,
};
use plain::PlainLeg;
pub use plain::{Latching, DEFAULT_LEARNING_WINDOW, VIDEO_SSRCS};
use webrtc::{mid_stream, srtp_drop, WebRtcLeg};

/// Most remote addresses [`Session::routes`] gives: per WebRTC leg (two at most), ICE's
/// remembered validated sources and the nominated one.
pub const MAX_ROUTES: usize = 2 * (super::ice::MAX_VALIDATED + 1);

/// Default media timeout (the replaced system's rtpproxy used 60 s).
pub const DEFAULT_MEDIA_TIMEOUT: Duration = Duration::from_secs(60);

/// One SDP media section of a plain leg, with its own RTP/RTCP port pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The first section: always there. Its direction holds the whole leg.
    Audio,
    /// The video section, when the session was allocated with video.
    Video,
}

/// A local socket of the reactor, as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Socket {
    /// The reactor's shared WebRTC port.
    WebRtc,
    /// A plain leg's RTP socket (even port) of one stream.
    Rtp(LegIndex, Stream),
    /// A plain leg's RTCP socket (RTP port + 1) of one stream.
    Rtcp(LegIndex, Stream),
}

/// The local addresses of one leg, on the advertise address, as the reactor bound them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalAddrs {
    /// The reactor's WebRTC port for a WebRTC leg, the (audio) RTP port for a plain leg;
    /// `None` for an echo.
    pub media: Option<SocketAddr>,
    /// A plain leg's video RTP port (RTCP on the next one), when allocated with video.
    pub video: Option<SocketAddr>,
}

impl LocalAddrs {
    /// No address: an echo leg.
    pub const NONE: LocalAddrs = LocalAddrs {
        media: None,
        video: None,
    };

    /// One address: a WebRTC leg, or a plain leg without video.
    pub fn at(media: SocketAddr) -> Self {
        Self {
            media: Some(media),
            video: None,
        }
    }

    /// A plain leg's audio and video RTP ports.
    pub fn with_video(media: SocketAddr, video: SocketAddr) -> Self {
        Self {
            media: Some(media),
            video: Some(video),
        }
    }
}

/// What to do with a datagram just handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send `buf[..len]` (transformed in place) on `via` to `to`.
    Forward {
        via: Socket,
        to: SocketAddr,
        len: usize,
    },
    /// Used up by the session (DTLS); recycle the buffer.
    Consumed,
    /// Dropped and counted; recycle the buffer.
    Drop(DropReason),
}

/// A datagram the session originates (DTLS flights), written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub via: Socket,
    pub to: SocketAddr,
    pub len: usize,
}

/// Settings shared by a reactor's sessions.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// No media in either direction for this long (no leg held) → [`Event::MediaTimeout`].
    pub media_timeout: Duration,
    /// First DTLS retransmit timeout.
    pub dtls_initial_timeout: Duration,
    /// How plain streams learn their far end's source.
    pub latching: Latching,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            media_timeout: DEFAULT_MEDIA_TIMEOUT,
            dtls_initial_timeout: super::dtls::DEFAULT_INITIAL_TIMEOUT,
            latching: Latching::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    stats: LegStats,
    rx: RtpRx,
}

enum LegKind {
    WebRtc(Box<WebRtcLeg>),
    Plain(Box<PlainLeg>),
    Echo,
}

struct Leg {
    kind: LegKind,
    counters: Counters,
}

/// One call's media state.
pub struct Session {
    id: SessionId,
    legs: [Leg; 2],
    identity: DtlsIdentity,
    config: SessionConfig,
    started: Instant,
    last_media: Instant,
    timed_out: bool,
    drops: DropCounts,
    events: VecDeque<Event>,
    /// The set [`Session::routes`] gives changed since the reactor last asked.
    routes_changed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("drops", &self.drops)
            .finish()
    }
}

fn idx(leg: LegIndex) -> usize {
    match leg {
        LegIndex::A => 0,
        LegIndex::B => 1,
    }
}

const LEGS: [LegIndex; 2] = [LegIndex::A, LegIndex::B];

/// `leg` and the other one, both writable.
fn pair_mut(legs: &mut [Leg; 2], leg: LegIndex) -> (&mut Leg, &mut Leg) {
    let [a, b] = legs;
    match leg {
        LegIndex::A => (a, b),
        LegIndex::B => (b, a),
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::BadRequest(msg.into())
}

impl Session {
    /// A new session. `local` gives each leg's local addresses for the SDP: the reactor's
    /// WebRTC port for WebRTC legs, the RTP port (and the video RTP port, when allocated with
    /// video) for plain legs, nothing for echo. `entropy` gives the WebRTC legs' ICE
    /// credentials (the reactor's CSPRNG; a seeded generator in tests).
    pub fn new(
        id: SessionId,
        specs: &[LegSpec; 2],
        local: [LocalAddrs; 2],
        identity: DtlsIdentity,
        config: SessionConfig,
        now: Instant,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, Failure> {
        let mut mk = |spec: &LegSpec, local: LocalAddrs| -> Result<Leg, Failure> {
            if local.video.is_some() && !matches!(spec, LegSpec::Plain(_)) {
                return Err(bad("a video port for a leg that is not plain"));
            }
            let kind = match spec {
                LegSpec::WebRtc(remote) => {
                    let local_addr = local
                        .media
                        .ok_or_else(|| bad("WebRTC leg without a port"))?;
                    let creds =
                        IceCredentials::from_entropy(entropy).map_err(|e| bad(e.to_string()))?;
                    let leg = WebRtcLeg::new(local_addr, creds, remote.as_ref())?;
                    LegKind::WebRtc(Box::new(leg))
                }
                LegSpec::Plain(remote) => {
                    let local_rtp = local.media.ok_or_else(|| bad("plain leg without ports"))?;
                    let mut leg = PlainLeg::new(local_rtp, local.video, config.latching, now);
                    leg.set_remote(now, remote.clone());
                    LegKind::Plain(Box::new(leg))
                }
                LegSpec::Echo => LegKind::Echo,
            };
            Ok(Leg {
                kind,
                counters: Counters::default(),
            })
        };
        if matches!(specs, [LegSpec::Echo, LegSpec::Echo]) {
            return Err(bad("two echo legs"));
        }
        let legs = [mk(&specs[0], local[0])?, mk(&specs[1], local[1])?];
        let mut s = Self {
            id,
            legs,
            identity,
            config,
            started: now,
            last_media: now,
            timed_out: false,
            drops: DropCounts::default(),
            events: VecDeque::new(),
            routes_changed: false,
        };
        for leg in LEGS {
            s.maybe_start_dtls(now, leg);
        }
        Ok(s)
    }

    /// Signaling's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// What signaling puts in its SDP for `leg`.
    pub fn local_leg(&self, leg: LegIndex) -> LocalLeg {
        match &self.legs[idx(leg)].kind {
            LegKind::WebRtc(w) => w.local_leg(&self.identity),
            LegKind::Plain(p) => LocalLeg::Plain {
                rtp: p.audio.local_rtp,
                video_rtp: p.video.as_ref().map(|v| v.local_rtp),
            },
            LegKind::Echo => LocalLeg::Echo,
        }
    }

    /// The local ufrags STUN checks for this session may carry (for routing on the shared port).
    pub fn ice_ufrags(&self) -> impl Iterator<Item = &str> {
        self.legs.iter().flat_map(|l| {
            match &l.kind {
                LegKind::WebRtc(w) => Some(w.ice.local_ufrags()),
                _ => None,
            }
            .into_iter()
            .flatten()
        })
    }

    /// True once after [`Session::routes`] changed (a source validated, one evicted, a new
    /// nomination, consent lost): the reactor then brings its routes in step.
    #[must_use]
    pub fn poll_routes_changed(&mut self) -> bool {
        std::mem::take(&mut self.routes_changed)
    }

    /// The remote addresses whose datagrams on the WebRTC port the reactor routes to this
    /// session: each WebRTC leg's ICE-validated sources and nominated one, ICE's own bounded
    /// set (at most [`MAX_ROUTES`]), so routes do not grow with each new valid source.
    pub fn routes(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.legs.iter().flat_map(|l| {
            let ice = match &l.kind {
                LegKind::WebRtc(w) => Some(&w.ice),
                _ => None,
            };
            let validated = ice.into_iter().flat_map(|i| i.validated());
            let nominated = ice
                .and_then(|i| i.nominated())
                .filter(|n| !ice.is_some_and(|i| i.validated().any(|v| v == *n)));
            validated.chain(nominated)
        })
    }

    /// Figures so far.
    pub fn stats(&self) -> SessionStats {
        let mut s = SessionStats::default();
        for (out, leg) in s.legs.iter_mut().zip(&self.legs) {
            *out = leg.counters.stats;
            out.lost = leg.counters.rx.lost();
            out.jitter = leg.counters.rx.jitter();
        }
        s
    }

    /// Drops by reason, both legs.
    pub fn drops(&self) -> &DropCounts {
        &self.drops
    }

    /// The remote SDP of `leg` changed: an answer, a new address, hold, an ICE restart (new
    /// local credentials from `entropy`).
    pub fn update(
        &mut self,
        now: Instant,
        leg: LegIndex,
        spec: &LegSpec,
        entropy: &mut dyn Entropy,
    ) -> Result<LocalLeg, Failure> {
        match (&mut self.legs[idx(leg)].kind, spec) {
            (LegKind::WebRtc(w), LegSpec::WebRtc(Some(r))) => w.apply_remote(r, entropy)?,
            (LegKind::WebRtc(_), LegSpec::WebRtc(None)) => {}
            (LegKind::Plain(p), LegSpec::Plain(r)) => p.set_remote(now, r.clone()),
            (LegKind::Echo, LegSpec::Echo) => {}
            _ => return Err(bad("an update cannot change a leg's kind")),
        }
        self.maybe_start_dtls(now, leg);
        Ok(self.local_leg(leg))
    }

    fn maybe_start_dtls(&mut self, now: Instant, leg: LegIndex) {
        let initial_timeout = self.config.dtls_initial_timeout;
        if let LegKind::WebRtc(w) = &mut self.legs[idx(leg)].kind {
            if let Err(reason) = w.start_dtls(&self.identity, initial_timeout, now) {
                self.events.push_back(Event::DtlsFailed {
                    id: self.id,
                    leg,
                    reason,
                });
            }
        }
    }

    /// Which WebRTC leg a datagram on the shared port belongs to.
    fn webrtc_leg_of(&self, src: SocketAddr, buf: &[u8], kind: PacketKind) -> Option<LegIndex> {
        let ufrag = if kind == PacketKind::Stun {
            Some(local_ufrag_of(buf)?)
        } else {
            None
        };
        LEGS.into_iter().find(|&l| match &self.legs[idx(l)].kind {
            LegKind::WebRtc(w) => match ufrag {
                Some(u) => w.ice.local_ufrags().any(|x| x.as_bytes() == u),
                None => w.ice.is_validated(src),
            },
            _ => false,
        })
    }

    /// Handles one datagram `buf[..len]` from `src` on local socket `via`. On
    /// [`Verdict::Forward`] the buffer holds what to send.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        via: Socket,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Verdict {
        let len = len.min(buf.len());
        let kind = demux(&buf[..len]);
        let leg = match via {
            Socket::Rtp(l, _) | Socket::Rtcp(l, _) => l,
            Socket::WebRtc => match self.webrtc_leg_of(src, &buf[..len], kind) {
                Some(l) => l,
                None => {
                    let reason = if kind == PacketKind::Stun {
                        DropReason::StunRejected
                    } else {
                        DropReason::UnknownSource
                    };
                    self.drops.add(reason);
                    return Verdict::Drop(reason);
                }
            },
        };
        let verdict = match self.ingress(now, leg, via, kind, src, buf, len) {
            Ok(Ingress::Done(v)) => v,
            Ok(Ingress::Media(m)) if !m.rtcp && self.is_on_hold(leg) => {
                Verdict::Drop(DropReason::Held)
            }
            Ok(Ingress::Media(m)) => self
                .egress(leg, via, src, m, buf)
                .unwrap_or_else(Verdict::Drop),
            Err(reason) => Verdict::Drop(reason),
        };
        if let Verdict::Drop(reason) = verdict {
            self.drops.add(reason);
            self.legs[idx(leg)].counters.stats.dropped += 1;
        }
        verdict
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the receive path's inputs, passed without building a struct per packet"
    )]
    fn ingress(
        &mut self,
        now: Instant,
        leg: LegIndex,
        via: Socket,
        kind: PacketKind,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Ingress, DropReason> {
        let started = self.started;
        let (l, other) = pair_mut(&mut self.legs, leg);
        let counters = &mut l.counters;
        // `stream` is `None` for the bundle of a WebRTC leg: decided below, after the PT check
        // (`bundle`: the WebRTC leg's SDP, for the MID header extension).
        let (len, rtcp, pts, stream, bundle) = match &mut l.kind {
            LegKind::Echo => return Err(DropReason::UnknownSource),
            LegKind::WebRtc(w) => match kind {
                PacketKind::Stun => {
                    let answered = w
                        .ice
                        .handle_stun(now, src, buf, len)
                        .map_err(|_| DropReason::StunRejected)?;
                    if answered.new_source {
                        self.routes_changed = true;
                    }
                    self.after_ice(now, leg);
                    return Ok(Ingress::Done(Verdict::Forward {
                        via: Socket::WebRtc,
                        to: src,
                        len: answered.len,
                    }));
                }
                PacketKind::Dtls => {
                    if !w.ice.is_validated(src) {
                        return Err(DropReason::UnknownSource);
                    }
                    if w.dtls.is_none() && w.role == Some(DtlsRole::Server) {
                        // Created in maybe_start_dtls; only missing if creation failed.
                        return Err(DropReason::NotConnected);
                    }
                    let Some(dtls) = w.dtls.as_mut() else {
                        return Err(DropReason::NotConnected);
                    };
                    w.dtls_in = w.dtls_in.saturating_add(1);
                    if w.dtls_peer.is_some_and(|p| p != src) {
                        w.dtls_moves = w.dtls_moves.saturating_add(1);
                    }
                    w.dtls_peer = Some(src);
                    dtls.handle_input(now, &buf[..len]);
                    self.after_dtls(leg);
                    return Ok(Ingress::Done(Verdict::Consumed));
                }
                PacketKind::Rtp | PacketKind::Rtcp => {
                    if w.ice.nominated() != Some(src) {
                        return Err(DropReason::UnknownSource);
                    }
                    let Some(srtp) = w.srtp_in.as_mut() else {
                        return Err(DropReason::NotConnected);
                    };
                    let rtcp = kind == PacketKind::Rtcp;
                    let n = if rtcp {
                        srtp.unprotect_rtcp(buf, len)
                    } else {
                        srtp.unprotect_rtp(buf, len)
                    }
                    .map_err(srtp_drop)?;
                    // The union of the bundled sections' payload types.
                    let pts = w.remote.as_ref().map(|r| r.payload_types.as_slice());
                    (n, rtcp, pts, None, w.remote.as_ref())
                }
                PacketKind::Unknown => return Err(DropReason::Malformed),
            },
            LegKind::Plain(p) => {
                let (stream, rtcp) = match (via, kind) {
                    (Socket::Rtp(_, s), PacketKind::Rtp) => (s, false),
                    (Socket::Rtp(_, s) | Socket::Rtcp(_, s), PacketKind::Rtcp) => (s, true),
                    _ => return Err(DropReason::Malformed),
                };
                if rtcp {
                    RtcpHeader::parse(&buf[..len]).map_err(|_| DropReason::Malformed)?;
                    p.accept_rtcp(stream, matches!(via, Socket::Rtp(..)), src)?;
                } else {
                    let h = RtpHeader::parse(&buf[..len]).map_err(|_| DropReason::Malformed)?;
                    p.accept_rtp(now, stream, src, h.pt().0)?;
                }
                let pts = p
                    .stream(stream)
                    .and_then(|s| s.remote.as_ref())
                    .map(|r| r.payload_types.as_slice());
                (len, rtcp, pts, Some(stream), None)
            }
        };
        let rtp = if rtcp {
            None
        } else {
            let h = RtpHeader::parse(&buf[..len]).map_err(|_| DropReason::Malformed)?;
            if pts.is_some_and(|p| !p.is_empty() && !p.contains(&h.pt().0)) {
                return Err(DropReason::WrongPt);
            }
            Some(h)
        };
        let stream = match (stream, &mut other.kind) {
            (Some(s), _) => s,
            (None, LegKind::Plain(p)) => match &rtp {
                Some(h) => {
                    let mid = bundle.and_then(|r| mid_stream(r, h));
                    p.bundle_rtp_stream(h.pt().0, h.ssrc(), mid)
                }
                None => RtcpHeader::parse(&buf[..len])
                    .map_or(Stream::Audio, |h| p.bundle_rtcp_stream(h.ssrc())),
            },
            (None, _) => Stream::Audio,
        };
        if let (Some(h), Stream::Audio) = (&rtp, stream) {
            let pt = h.pt().0;
            counters
                .rx
                .record(h.seq(), h.timestamp(), pt, h.ssrc().0, since(started, now));
        }
        counters.stats.packets_in += 1;
        counters.stats.bytes_in += len as u64;
        self.last_media = now;
        self.timed_out = false;
        Ok(Ingress::Media(Media { len, rtcp, stream }))
    }

    /// Sends media that arrived on `from` out of the other leg (or back, for an echo).
    fn egress(
        &mut self,
        from: LegIndex,
        via_in: Socket,
        src: SocketAddr,
        m: Media,
        buf: &mut [u8],
    ) -> Result<Verdict, DropReason> {
        let Media {
            mut len,
            rtcp,
            stream,
        } = m;
        let mut to_leg = from.other();
        let mut back = None;
        if matches!(self.legs[idx(to_leg)].kind, LegKind::Echo) {
            to_leg = from;
            back = Some((via_in, src));
        }
        // RTP crossing between a browser and the SIP side loses its header extensions: their
        // ids were negotiated with one side only (`wire::strip_rtp_extension`).
        let from_webrtc = matches!(self.legs[idx(from)].kind, LegKind::WebRtc(_));
        let to_webrtc = matches!(self.legs[idx(to_leg)].kind, LegKind::WebRtc(_));
        if !rtcp && from_webrtc != to_webrtc {
            len = strip_rtp_extension(buf, len).map_err(|_| DropReason::Malformed)?;
        }
        let l = &mut self.legs[idx(to_leg)];
        let (via, to, len) = match &mut l.kind {
            LegKind::Echo => return Err(DropReason::NoDestination),
            LegKind::WebRtc(w) => {
                let to = w.ice.nominated().ok_or(DropReason::NotConnected)?;
                let srtp = w.srtp_out.as_mut().ok_or(DropReason::NotConnected)?;
                if len + MAX_TRAILER_LEN > buf.len() {
                    return Err(DropReason::TooLarge);
                }
                let n = if rtcp {
                    srtp.protect_rtcp(buf, len)
                } else {
                    srtp.protect_rtp(buf, len)
                }
                .map_err(srtp_drop)?;
                (Socket::WebRtc, to, n)
            }
            LegKind::Plain(p) => match back {
                Some((via, src)) => (via, src, len),
                None => {
                    let s = p.stream(stream).ok_or(DropReason::NoDestination)?;
                    let (on_rtcp_socket, to) =
                        s.destination(rtcp).ok_or(DropReason::NoDestination)?;
                    let via = if on_rtcp_socket {
                        Socket::Rtcp(to_leg, stream)
                    } else {
                        Socket::Rtp(to_leg, stream)
                    };
                    (via, to, len)
                }
            },
        };
        l.counters.stats.packets_out += 1;
        l.counters.stats.bytes_out += len as u64;
        Ok(Verdict::Forward { via, to, len })
    }

    fn after_ice(&mut self, now: Instant, leg: LegIndex) {
        let LegKind::WebRtc(w) = &mut self.legs[idx(leg)].kind else {
            return;
        };
        let ice = w.after_ice(self.id, leg, &mut self.events);
        self.routes_changed |= ice.routes_changed;
        if ice.nominated {
            self.maybe_start_dtls(now, leg);
        }
    }

    fn after_dtls(&mut self, leg: LegIndex) {
        if let LegKind::WebRtc(w) = &mut self.legs[idx(leg)].kind {
            w.after_dtls(self.id, leg, &mut self.events);
        }
    }

    /// The next DTLS datagram to send, written into `buf`.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        for l in &mut self.legs {
            let LegKind::WebRtc(w) = &mut l.kind else {
                continue;
            };
            let Some(to) = w
                .ice
                .nominated()
                .or(w.dtls_peer)
                .or_else(|| w.ice.validated().next())
            else {
                continue;
            };
            let Some(dtls) = w.dtls.as_mut() else {
                continue;
            };
            while let Some(d) = dtls.poll_transmit() {
                if d.len() <= buf.len() {
                    buf[..d.len()].copy_from_slice(&d);
                    return Some(Transmit {
                        via: Socket::WebRtc,
                        to,
                        len: d.len(),
                    });
                }
            }
        }
        None
    }

    /// The next event for signaling.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The remote SDP direction of `leg`, if known (echo legs have none).
    fn direction(&self, leg: LegIndex) -> Option<Direction> {
        match &self.legs[idx(leg)].kind {
            LegKind::WebRtc(w) => w.remote.as_ref().map(|r| r.direction),
            LegKind::Plain(p) => p.remote().map(|r| r.direction),
            LegKind::Echo => None,
        }
    }

    /// True if RTP arriving on `from` must not go out (RFC 3264 §5.1, §8.4): its sender said
    /// `recvonly`/`inactive` (it should not be sending), or the leg it would go to (the other
    /// one, or `from` itself behind an echo) said `sendonly`/`inactive` (it does not want to
    /// receive). RTCP still flows both ways while held (RFC 3264 §5.1).
    fn is_on_hold(&self, from: LegIndex) -> bool {
        let to = if matches!(self.legs[idx(from.other())].kind, LegKind::Echo) {
            from
        } else {
            from.other()
        };
        let sends =
            |d: Option<Direction>| !matches!(d, Some(Direction::RecvOnly | Direction::Inactive));
        let receives =
            |d: Option<Direction>| !matches!(d, Some(Direction::SendOnly | Direction::Inactive));
        !sends(self.direction(from)) || !receives(self.direction(to))
    }

    fn is_held(&self) -> bool {
        self.legs.iter().any(|l| match &l.kind {
            LegKind::WebRtc(w) => w.remote.as_ref().is_some_and(|r| r.direction.is_held()),
            LegKind::Plain(p) => p.remote().is_none_or(|r| r.direction.is_held()),
            LegKind::Echo => false,
        })
    }

    fn media_deadline(&self) -> Option<Instant> {
        (!self.timed_out && !self.is_held()).then(|| self.last_media + self.config.media_timeout)
    }

    /// The earliest instant [`Session::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.media_deadline();
        for l in &self.legs {
            if let LegKind::WebRtc(w) = &l.kind {
                for d in [
                    w.ice.poll_timeout(),
                    w.dtls.as_ref().and_then(|d| d.poll_timeout()),
                ]
                .into_iter()
                .flatten()
                {
                    t = Some(t.map_or(d, |t| t.min(d)));
                }
            }
        }
        t
    }

    /// Runs the timers due at `now`: DTLS retransmission, consent, media timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        for leg in LEGS {
            if let LegKind::WebRtc(w) = &mut self.legs[idx(leg)].kind {
                w.ice.handle_timeout(now);
                if let Some(d) = w.dtls.as_mut() {
                    d.handle_timeout(now);
                }
                self.after_ice(now, leg);
                self.after_dtls(leg);
            }
        }
        if self.media_deadline().is_some_and(|d| now >= d) {
            self.timed_out = true;
            self.events.push_back(Event::MediaTimeout { id: self.id });
        }
    }
}

enum Ingress {
    Done(Verdict),
    Media(Media),
}

/// Media accepted from a leg: its length after unprotect, RTP or RTCP, and which plain stream
/// it belongs to (where it arrived on a plain leg; where it goes, from a bundle).
#[derive(Debug, Clone, Copy)]
struct Media {
    len: usize,
    rtcp: bool,
    stream: Stream,
}

#[cfg(test)]
pub(crate) mod tests;
