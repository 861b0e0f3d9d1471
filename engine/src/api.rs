//! The engine's face to the signaling thread: [`Command`]s in, [`Output`]s (replies and
//! events) out, over lock-free queues. The engine never imports signaling.
//!
//! A session bridges two legs (`LegIndex::A` and `LegIndex::B`) of any kind. Signaling picks
//! the [`SessionId`]; the engine picks the reactor, which owns the session for its whole life.
//!
//! The usual call, browser to SIP:
//! 1. `Allocate { legs: [WebRtc { remote: Some(offer) }, Plain { remote: None }], video }` →
//!    `Reply::Allocated` with the WebRTC leg's ICE credentials, fingerprint and port, and the
//!    plain leg's RTP/RTCP ports (for the SIP offer): `LocalLeg::Plain { rtp, video_rtp }`,
//!    `video_rtp` being a second even/odd pair for a video section when `video` was asked for
//!    (the browser offered video).
//! 2. The SIP answer arrives: `Update { leg: B, remote: Plain(..) }` → `Reply::Updated`. Its
//!    `PlainRemote::video` is the answer's video section, or `None` when the far end has none or
//!    rejected it.
//! 3. Events as media comes up (`IceConnected`, `DtlsConnected`) or fails.
//! 4. `Release` → `Event::Released` with the final stats.
//!
//! Video: the browser bundles audio and video on one 5-tuple; the plain leg carries them on
//! two port pairs, as two SDP sections. The engine splits the bundle by payload type (the
//! video section's `payload_types`) and by the SSRCs seen so, and merges the video pair back
//! into the bundle. The plain leg's hold state (its audio section's direction) holds both, and
//! loss and jitter in [`LegStats`] are the audio's.

#![forbid(unsafe_code)]

use std::net::SocketAddr;

/// Signaling's name for a session; unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// One of a session's two legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegIndex {
    A,
    B,
}

impl LegIndex {
    pub fn other(self) -> LegIndex {
        match self {
            LegIndex::A => LegIndex::B,
            LegIndex::B => LegIndex::A,
        }
    }
}

/// SDP `a=setup` (RFC 4145/5763) as the remote side wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
}

/// Media direction (RFC 4566 §6), from the remote SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// Held calls (anything but sendrecv) are exempt from the media timeout.
    pub fn is_held(self) -> bool {
        self != Direction::SendRecv
    }
}

/// What the remote SDP says about a WebRTC leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRtcRemote {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// `a=fingerprint` value, e.g. `sha-256 AB:CD:...` (algorithm, space, hex).
    pub fingerprint: String,
    pub setup: Setup,
    pub direction: Direction,
    /// Payload types negotiated for this leg (RTP with others is dropped and counted).
    pub payload_types: Vec<u8>,
    /// The `a=extmap` id of `urn:ietf:params:rtp-hdrext:sdes:mid` (RFC 8843 §15), when the
    /// browser put it in its SDP. The gateway no longer negotiates it on a call with a plain leg,
    /// so there the browser sends no MID and the payload type and SSRCs split its bundle.
    pub mid_ext: Option<u8>,
    /// The MID of the bundle's video section: RTP whose MID header extension names it goes to
    /// a plain leg's video stream, RTP naming any other MID to its audio stream; without the
    /// extension the payload type and the SSRCs already seen decide (RFC 8843 §9.2).
    pub video_mid: Option<String>,
}

/// What the remote SDP says about a plain RTP leg: its first (audio) section, and its video
/// section when the session was allocated with `video` and the far end's SDP has one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlainRemote {
    /// Where to send RTP (`c=` + `m=` port). `None` for `c=0.0.0.0` (old-style hold).
    pub rtp: Option<SocketAddr>,
    /// Where to send RTCP (`a=rtcp`, else RTP port + 1); the RTP address when `rtcp_mux`.
    pub rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub direction: Direction,
    pub payload_types: Vec<u8>,
    /// The video section (its own RTP/RTCP pair on both sides; its `video` is `None`).
    /// RTP from a bundled WebRTC leg goes here when its payload type is one of these
    /// `payload_types`, RTCP when its sender SSRC is one seen in that video RTP. `None`: no
    /// video section, or it was rejected (port 0).
    pub video: Option<Box<PlainRemote>>,
}

/// One leg as allocated or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegSpec {
    /// ICE-lite + DTLS-SRTP towards a browser. `None` until the browser's SDP is known (an
    /// offer the gateway makes to the browser).
    WebRtc(Option<WebRtcRemote>),
    /// Plain RTP/RTCP. `None` until the far end's SDP is known.
    Plain(Option<PlainRemote>),
    /// Reflects every packet it receives (the demo PBX's `echo` extension).
    Echo,
}

/// What signaling puts in its SDP for one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalLeg {
    WebRtc {
        /// The reactor's WebRTC port on the advertise address.
        addr: SocketAddr,
        ice_ufrag: String,
        ice_pwd: String,
        /// `sha-256 AB:CD:...`, the process-wide DTLS certificate's.
        fingerprint: String,
        /// What to write in `a=setup`: `passive`/`active` in answers, `actpass` in offers.
        setup: Setup,
    },
    Plain {
        /// RTP on the even port; RTCP on `rtp.port() + 1`.
        rtp: SocketAddr,
        /// The video section's RTP (RTCP on the next port), when allocated with `video`.
        video_rtp: Option<SocketAddr>,
    },
    Echo,
}

/// Commands from signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Allocate {
        id: SessionId,
        legs: [LegSpec; 2],
        /// Give each plain leg a second RTP/RTCP pair for a video section (4 ports per call
        /// instead of 2), demultiplexed from/into a WebRTC leg's bundle.
        video: bool,
    },
    /// The remote SDP of one leg changed (answer arrived, new address, ICE restart, hold).
    Update {
        id: SessionId,
        leg: LegIndex,
        remote: LegSpec,
    },
    Release {
        id: SessionId,
    },
    /// The session's figures so far (rtpengine's `query`): answered with [`Reply::Stats`].
    Query {
        id: SessionId,
    },
}

impl Command {
    /// The session the command is about.
    pub fn id(&self) -> SessionId {
        match self {
            Command::Allocate { id, .. }
            | Command::Update { id, .. }
            | Command::Release { id }
            | Command::Query { id } => *id,
        }
    }
}

/// Why an allocation or update failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No free port pair in any shard.
    PortsExhausted,
    /// The session is not known (released, or never allocated).
    UnknownSession,
    /// The request makes no sense (e.g. updating a plain leg with WebRTC parameters).
    BadRequest(String),
}

/// Answers to commands, one per command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Allocated {
        id: SessionId,
        legs: [LocalLeg; 2],
    },
    /// After an `Update`: the leg's local parameters (new ICE credentials after an ICE restart).
    Updated {
        id: SessionId,
        leg: LegIndex,
        local: LocalLeg,
    },
    Failed {
        id: SessionId,
        failure: Failure,
    },
    /// After a `Query`: the live session's figures.
    Stats {
        id: SessionId,
        stats: SessionStats,
    },
}

/// Counters of one direction of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// RTP packets missing by sequence number.
    pub lost: u64,
    /// Interarrival jitter (RFC 3550 §6.4.1) in RTP timestamp units.
    pub jitter: u32,
    pub dropped: u64,
}

/// Final figures of a released session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    pub legs: [LegStats; 2],
}

/// Things that happen to sessions, unasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    IceConnected {
        id: SessionId,
        leg: LegIndex,
        remote: SocketAddr,
    },
    DtlsConnected {
        id: SessionId,
        leg: LegIndex,
        profile: String,
    },
    DtlsFailed {
        id: SessionId,
        leg: LegIndex,
        reason: String,
    },
    /// ICE consent lost for 30 s (RFC 7675): the leg is gone.
    ConsentLost {
        id: SessionId,
        leg: LegIndex,
    },
    /// No media in either direction for the media timeout (held calls excepted).
    MediaTimeout {
        id: SessionId,
    },
    Released {
        id: SessionId,
        stats: SessionStats,
    },
}

/// Everything the engine sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Reply(Reply),
    Event(Event),
}
