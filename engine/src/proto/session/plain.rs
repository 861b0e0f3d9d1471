//! A plain RTP leg: one [`PlainStream`] per SDP media section (audio, and video when the session
//! was allocated with video), each with its own port pair, far-end address and latching; and the
//! few SSRCs that tell a bundle's video from its audio.
//!
//! Latching (against "RTP bleed": a stranger spraying a media port range must never win a leg).
//! Nothing is accepted on a stream, nor learned, before its SDP names the far end's address.
//! Then, per [`Latching`]:
//! * [`Latching::Strict`] (the default): RTP only from the IP address of the section's `c=`
//!   line; the port is learned from the first RTP packet from that IP that carries one of the
//!   section's payload types (symmetric RTP behind NAT) and then fixed. RTCP likewise from that
//!   IP (or the `a=rtcp` address's), its port learned from its first packet.
//! * [`Latching::Heuristic`] (rtpengine's `heuristic` endpoint learning, for peers whose SDP
//!   address is wrong, e.g. NAT without a SIP ALG): for `window` after the SDP address is set,
//!   sources are ranked and the best seen so far carries the stream: the exact SDP address,
//!   then the SDP IP (any port), then the SDP port (another IP), then any sender of a negotiated
//!   payload type. When the window is over the latch is fixed for good; if nothing came within
//!   it, the stream learns as in strict mode.
//!
//! A new SDP address (a re-INVITE to another host) starts learning again under the same rules;
//! the same address again keeps what was learned. An SDP without an address (`c=0.0.0.0`,
//! RFC 2543 hold) stops sending but keeps the trusted address and what was learned.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Stream;
use crate::api::PlainRemote;
use crate::proto::stats::DropReason;
use crate::proto::wire::Ssrc;

/// How many bundle SSRCs are remembered as video (a browser sends one video SSRC per camera,
/// plus its RTX SSRC); the oldest is replaced when a new one comes.
pub const VIDEO_SSRCS: usize = 8;

/// A fixed set of SSRCs, oldest replaced: no allocation per packet.
#[derive(Debug, Default)]
struct SsrcSet {
    slots: [Option<Ssrc>; VIDEO_SSRCS],
    next: usize,
}

impl SsrcSet {
    fn contains(&self, ssrc: Ssrc) -> bool {
        self.slots.contains(&Some(ssrc))
    }

    fn insert(&mut self, ssrc: Ssrc) {
        if !self.contains(ssrc) {
            self.slots[self.next] = Some(ssrc);
            self.next = (self.next + 1) % VIDEO_SSRCS;
        }
    }

    fn remove(&mut self, ssrc: Ssrc) {
        for s in &mut self.slots {
            if *s == Some(ssrc) {
                *s = None;
            }
        }
    }
}

/// How a plain stream learns its far end's source (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latching {
    /// Only from the SDP's IP address; the port learned from its first packet.
    #[default]
    Strict,
    /// rtpengine's `heuristic`: the best-ranked source within `window` after the SDP, then
    /// fixed.
    Heuristic {
        /// How long after the SDP address is set sources are learned.
        window: Duration,
    },
}

/// The heuristic learning window (rtpengine's 3 seconds).
pub const DEFAULT_LEARNING_WINDOW: Duration = Duration::from_secs(3);

/// How well a source matches the SDP address, best last (rtpengine's `heuristic` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// Neither the SDP's IP nor its port: any sender of a negotiated payload type.
    Any,
    /// The SDP's port from another IP.
    Port,
    /// The SDP's IP from another port (NAT).
    Ip,
    /// The SDP address itself.
    Exact,
}

impl Rank {
    fn of(src: SocketAddr, sdp: SocketAddr) -> Self {
        match (src.ip() == sdp.ip(), src.port() == sdp.port()) {
            (true, true) => Rank::Exact,
            (true, false) => Rank::Ip,
            (false, true) => Rank::Port,
            (false, false) => Rank::Any,
        }
    }
}

/// A source learned from packets: where they are accepted from and sent to.
#[derive(Debug, Clone, Copy)]
struct Learned {
    addr: SocketAddr,
    rank: Rank,
}

/// One media section of a plain leg: its local RTP port, the far end's SDP for it, and where
/// its RTP and RTCP come from and go.
#[derive(Debug)]
pub(super) struct PlainStream {
    /// Our RTP port (RTCP on the next one).
    pub(super) local_rtp: SocketAddr,
    /// The far end's section (for the video stream, its `video` is always `None`).
    pub(super) remote: Option<PlainRemote>,
    /// The SDP's RTP and RTCP addresses learning is anchored to: the last SDP that named one
    /// (an SDP with `c=0.0.0.0` keeps them).
    sdp_rtp: Option<SocketAddr>,
    sdp_rtcp: Option<SocketAddr>,
    /// When `sdp_rtp` was set: heuristic learning runs for its window after it.
    since: Instant,
    /// RTP's learned source.
    rtp: Option<Learned>,
    /// RTCP's learned source (on the RTCP socket).
    rtcp: Option<SocketAddr>,
}

/// A plain leg: its audio stream, and its video stream when allocated with video. The leg's
/// direction (hold) is its audio section's and holds the video too; the video section's own
/// direction is not used.
#[derive(Debug)]
pub(super) struct PlainLeg {
    pub(super) audio: PlainStream,
    pub(super) video: Option<PlainStream>,
    latching: Latching,
    /// SSRCs of the other leg's bundle that carried video (RFC 8843 §9.2): their RTP keeps
    /// going to the video stream, their SRTCP follows.
    video_ssrcs: SsrcSet,
}

impl PlainLeg {
    pub(super) fn new(
        local_rtp: SocketAddr,
        video_rtp: Option<SocketAddr>,
        latching: Latching,
        now: Instant,
    ) -> Self {
        Self {
            audio: PlainStream::new(local_rtp, now),
            video: video_rtp.map(|v| PlainStream::new(v, now)),
            latching,
            video_ssrcs: SsrcSet::default(),
        }
    }

    /// The leg's SDP as signaling gave it (its first section; the video one is in the video
    /// stream).
    pub(super) fn remote(&self) -> Option<&PlainRemote> {
        self.audio.remote.as_ref()
    }

    pub(super) fn stream(&self, stream: Stream) -> Option<&PlainStream> {
        match stream {
            Stream::Audio => Some(&self.audio),
            Stream::Video => self.video.as_ref(),
        }
    }

    fn stream_mut(&mut self, stream: Stream) -> Option<&mut PlainStream> {
        match stream {
            Stream::Audio => Some(&mut self.audio),
            Stream::Video => self.video.as_mut(),
        }
    }

    /// A new remote SDP at `now`. `None` (not known) forgets every address: nothing is sent
    /// or accepted. A known SDP without a video section (none, or rejected) takes the video
    /// stream's remote and destination away: nothing is sent to it and nothing is accepted
    /// from it.
    pub(super) fn set_remote(&mut self, now: Instant, remote: Option<PlainRemote>) {
        let Some(mut r) = remote else {
            self.audio.clear(now);
            if let Some(v) = &mut self.video {
                v.clear(now);
            }
            return;
        };
        let video = r.video.take();
        self.audio.set_remote(now, r);
        if let Some(v) = &mut self.video {
            match video {
                Some(section) => v.set_remote(
                    now,
                    PlainRemote {
                        video: None,
                        ..*section
                    },
                ),
                None => v.clear(now),
            }
        }
    }

    /// Why media on a stream without a remote section is dropped: the leg's SDP is not known
    /// yet, or it has no such section.
    fn no_section(&self) -> DropReason {
        if self.remote().is_none() {
            DropReason::BeforeSdp
        } else {
            DropReason::UnknownSource
        }
    }

    /// RTP with payload type `pt` from `src` on `stream`'s RTP socket at `now`: accepted from
    /// the learned source, or learned (see the module documentation).
    pub(super) fn accept_rtp(
        &mut self,
        now: Instant,
        stream: Stream,
        src: SocketAddr,
        pt: u8,
    ) -> Result<(), DropReason> {
        let latching = self.latching;
        let none = self.no_section();
        let s = self.stream_mut(stream).ok_or(none)?;
        let r = s.remote.as_ref().ok_or(none)?;
        let negotiated = r.payload_types.is_empty() || r.payload_types.contains(&pt);
        s.accept_rtp(now, latching, src, negotiated)
    }

    /// RTCP from `src` on `stream`'s RTCP socket, or on its RTP socket (`on_rtp_socket`,
    /// rtcp-mux).
    pub(super) fn accept_rtcp(
        &mut self,
        stream: Stream,
        on_rtp_socket: bool,
        src: SocketAddr,
    ) -> Result<(), DropReason> {
        let none = self.no_section();
        let s = self.stream_mut(stream).ok_or(none)?;
        if s.remote.is_none() {
            return Err(none);
        }
        s.accept_rtcp(on_rtp_socket, src)
    }

    /// Where RTP from the other leg's bundle goes (RFC 8843 §9.2, by payload type, then by an
    /// SSRC already seen as video): to the video stream when its payload type is one of the
    /// video section's, or its SSRC carried such a payload type before (so it stays video
    /// when the section is later rejected, and is dropped rather than sent to the audio port);
    /// to the audio stream otherwise.
    /// A MID header extension (`mid`, already matched against the video section's MID)
    /// decides first and teaches the SSRC (RFC 8843 §9.2 order: MID, then SSRC, then PT).
    pub(super) fn bundle_rtp_stream(&mut self, pt: u8, ssrc: Ssrc, mid: Option<Stream>) -> Stream {
        let Some(video) = &self.video else {
            return Stream::Audio;
        };
        match mid {
            Some(Stream::Video) => {
                self.video_ssrcs.insert(ssrc);
                return Stream::Video;
            }
            Some(Stream::Audio) => {
                self.video_ssrcs.remove(ssrc);
                return Stream::Audio;
            }
            None => {}
        }
        let by_pt = video
            .remote
            .as_ref()
            .is_some_and(|r| r.payload_types.contains(&pt));
        if by_pt || self.video_ssrcs.contains(ssrc) {
            self.video_ssrcs.insert(ssrc);
            Stream::Video
        } else {
            Stream::Audio
        }
    }

    /// Where RTCP from the other leg's bundle goes: the video stream when the first packet's
    /// sender SSRC is one seen in the bundle's video RTP, the audio stream otherwise.
    pub(super) fn bundle_rtcp_stream(&self, sender: Ssrc) -> Stream {
        if self.video.is_some() && self.video_ssrcs.contains(sender) {
            Stream::Video
        } else {
            Stream::Audio
        }
    }
}

impl PlainStream {
    fn new(local_rtp: SocketAddr, now: Instant) -> Self {
        Self {
            local_rtp,
            remote: None,
            sdp_rtp: None,
            sdp_rtcp: None,
            since: now,
            rtp: None,
            rtcp: None,
        }
    }

    fn set_remote(&mut self, now: Instant, r: PlainRemote) {
        if let Some(rtp) = r.rtp {
            let rtcp = if r.rtcp_mux { Some(rtp) } else { r.rtcp };
            if self.sdp_rtp != Some(rtp) {
                // A new SDP address: learning starts again (re-INVITE to another host).
                self.sdp_rtp = Some(rtp);
                self.since = now;
                self.rtp = None;
                self.rtcp = None;
            } else if self.sdp_rtcp != rtcp {
                self.rtcp = None;
            }
            self.sdp_rtcp = rtcp;
        }
        self.remote = Some(r);
    }

    /// No remote section any more: no destination, no latch.
    fn clear(&mut self, now: Instant) {
        *self = Self::new(self.local_rtp, now);
    }

    /// Where media for this stream goes: `(true, rtcp peer)` for RTCP on the RTCP socket,
    /// `(false, rtp peer)` for RTP, and for RTCP under rtcp-mux. `None`: nowhere (no SDP, or
    /// an SDP without an address).
    pub(super) fn destination(&self, rtcp: bool) -> Option<(bool, SocketAddr)> {
        let r = self.remote.as_ref()?;
        r.rtp?;
        let rtp = self.rtp.map(|l| l.addr).or(self.sdp_rtp);
        if rtcp && !r.rtcp_mux {
            let to = match self.rtcp {
                Some(a) => a,
                // RTP came from elsewhere than the SDP said (NAT): its RTCP port is not the
                // SDP's either; wait for the first RTCP packet to learn it.
                None if self.is_rtp_moved() => return None,
                None => self.sdp_rtcp?,
            };
            Some((true, to))
        } else {
            Some((false, rtp?))
        }
    }

    /// RTP from `src` at `now`; `negotiated`: it carries one of the section's payload types.
    fn accept_rtp(
        &mut self,
        now: Instant,
        latching: Latching,
        src: SocketAddr,
        negotiated: bool,
    ) -> Result<(), DropReason> {
        if self.rtp.is_some_and(|l| l.addr == src) {
            return Ok(());
        }
        let sdp = self.sdp_rtp.ok_or(DropReason::UnknownSource)?;
        let rank = Rank::of(src, sdp);
        if !negotiated && rank != Rank::Exact {
            return Err(DropReason::UnknownSource);
        }
        let learns = match latching {
            // Within the window: a better-ranked source takes over.
            Latching::Heuristic { window }
                if self.since.checked_add(window).is_none_or(|end| now < end) =>
            {
                self.rtp.is_none_or(|l| rank > l.rank)
            }
            // Strict, or the window is over (a source learned in it stays; with none, learn
            // as in strict mode): once, from the SDP's IP.
            _ => self.rtp.is_none() && rank >= Rank::Ip,
        };
        if !learns {
            return Err(DropReason::UnknownSource);
        }
        self.rtp = Some(Learned { addr: src, rank });
        if self.rtcp.is_some_and(|a| !self.is_rtcp_host(a)) {
            // RTP moved to another host: RTCP is learned again, from it.
            self.rtcp = None;
        }
        Ok(())
    }

    /// True if RTP was learned from another address than the SDP's (NAT): the SDP's RTCP
    /// port is then no better, and RTCP's is learned from its first packet.
    fn is_rtp_moved(&self) -> bool {
        self.rtp.is_some_and(|l| l.rank != Rank::Exact)
    }

    /// True if RTCP may come from `src`'s host: the SDP RTCP address's, or the RTP source's.
    fn is_rtcp_host(&self, src: SocketAddr) -> bool {
        let ip = Some(src.ip());
        ip == self.sdp_rtcp.map(|a| a.ip()) || ip == self.rtp.map(|l| l.addr.ip())
    }

    fn accept_rtcp(&mut self, on_rtp_socket: bool, src: SocketAddr) -> Result<(), DropReason> {
        if on_rtp_socket {
            // rtcp-mux: from RTP's source (learned, or the SDP address before one is).
            let rtp = self.rtp.map(|l| l.addr).or(self.sdp_rtp);
            return if rtp == Some(src) {
                Ok(())
            } else {
                Err(DropReason::UnknownSource)
            };
        }
        match self.rtcp {
            Some(a) if a == src => Ok(()),
            // Learned once: the SDP's RTCP address, or after RTP moved (NAT) the first packet
            // from the RTCP host.
            None if self.sdp_rtcp == Some(src)
                || (self.is_rtp_moved() && self.is_rtcp_host(src)) =>
            {
                self.rtcp = Some(src);
                Ok(())
            }
            _ => Err(DropReason::UnknownSource),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrc_set_replaces_the_oldest() {
        let mut set = SsrcSet::default();
        for i in 0..VIDEO_SSRCS as u32 {
            set.insert(Ssrc(i));
            set.insert(Ssrc(i)); // again: no second slot
        }
        assert!((0..VIDEO_SSRCS as u32).all(|i| set.contains(Ssrc(i))));
        set.insert(Ssrc(100));
        assert!(set.contains(Ssrc(100)));
        assert!(!set.contains(Ssrc(0)), "the oldest went");
        assert!(set.contains(Ssrc(1)));
    }

    #[test]
    fn a_rejected_video_section_leaves_no_destination() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let now = testkit::VirtualClock::new().now();
        let mut leg = PlainLeg::new(a(40002), Some(a(40004)), Latching::Strict, now);
        let section = |rtp: u16| PlainRemote {
            rtp: Some(a(rtp)),
            rtcp: Some(a(rtp + 1)),
            payload_types: vec![96],
            ..PlainRemote::default()
        };
        leg.set_remote(
            now,
            Some(PlainRemote {
                video: Some(Box::new(section(6002))),
                payload_types: vec![0],
                ..section(6000)
            }),
        );
        let video = leg.video.as_ref().unwrap();
        assert_eq!(video.destination(false), Some((false, a(6002))));
        assert_eq!(video.destination(true), Some((true, a(6003))));
        assert_eq!(video.remote.as_ref().unwrap().payload_types, [96]);
        assert_eq!(
            leg.remote().unwrap().video,
            None,
            "kept once, in the video stream"
        );
        leg.set_remote(now, Some(section(6000)));
        let video = leg.video.as_ref().unwrap();
        assert_eq!(video.destination(false), None);
        assert_eq!(video.destination(true), None);
        assert_eq!(
            leg.accept_rtp(now, Stream::Video, a(6002), 96),
            Err(DropReason::UnknownSource)
        );
        assert_eq!(leg.audio.destination(false), Some((false, a(6000))));
    }
}
