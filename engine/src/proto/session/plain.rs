//! A plain RTP leg: one [`PlainStream`] per SDP media section (audio, and video when the session
//! was allocated with it), each with its own port pair, far-end address and latching; and the
//! few SSRCs that tell a bundle's video from its audio.

use std::net::SocketAddr;

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

/// One media section of a plain leg: its local RTP port, the far end's SDP for it, and where
/// its RTP and RTCP go.
#[derive(Debug)]
pub(super) struct PlainStream {
    /// Our RTP port (RTCP on the next one).
    pub(super) local_rtp: SocketAddr,
    /// The far end's section (for the video stream, its `video` is always `None`).
    pub(super) remote: Option<PlainRemote>,
    /// Where RTP goes: the SDP address, or the latched source.
    rtp_peer: Option<SocketAddr>,
    rtp_latched: bool,
    rtcp_peer: Option<SocketAddr>,
    rtcp_latched: bool,
}

/// A plain leg: its audio stream, and its video stream when allocated with video. The leg's
/// direction (hold) is its audio section's and holds the video too; the video section's own
/// direction is not used.
#[derive(Debug)]
pub(super) struct PlainLeg {
    pub(super) audio: PlainStream,
    pub(super) video: Option<PlainStream>,
    /// SSRCs of the other leg's bundle that carried video (RFC 8843 §9.2): their RTP keeps
    /// going to the video stream, their SRTCP follows.
    video_ssrcs: SsrcSet,
}

impl PlainLeg {
    pub(super) fn new(local_rtp: SocketAddr, video_rtp: Option<SocketAddr>) -> Self {
        Self {
            audio: PlainStream::new(local_rtp),
            video: video_rtp.map(PlainStream::new),
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

    /// A new remote SDP. `None` (not known yet) changes no address. A known SDP without a
    /// video section (none, or rejected) takes the video stream's remote and destination away:
    /// nothing is sent to it and nothing is accepted from it.
    pub(super) fn set_remote(&mut self, remote: Option<PlainRemote>) {
        let Some(mut r) = remote else {
            self.audio.set_remote(None);
            if let Some(v) = &mut self.video {
                v.set_remote(None);
            }
            return;
        };
        let video = r.video.take();
        self.audio.set_remote(Some(r));
        if let Some(v) = &mut self.video {
            match video {
                Some(section) => v.set_remote(Some(PlainRemote {
                    video: None,
                    ..*section
                })),
                None => v.clear(),
            }
        }
    }

    /// RTP with payload type `pt` from `src` on `stream`'s RTP socket: accepted from the
    /// stream's SDP address or latched source, or latched once to a sender of one of the
    /// section's payload types (any, while the leg's SDP is not known).
    pub(super) fn accept_rtp(
        &mut self,
        stream: Stream,
        src: SocketAddr,
        pt: u8,
    ) -> Result<(), DropReason> {
        let sdp_known = self.remote().is_some();
        let s = self.stream_mut(stream).ok_or(DropReason::UnknownSource)?;
        let negotiated = match &s.remote {
            Some(r) => r.payload_types.is_empty() || r.payload_types.contains(&pt),
            None => !sdp_known,
        };
        s.accept_rtp(src, negotiated)
    }

    /// RTCP from `src` on `stream`'s RTCP socket, or on its RTP socket (`on_rtp_socket`,
    /// rtcp-mux).
    pub(super) fn accept_rtcp(
        &mut self,
        stream: Stream,
        on_rtp_socket: bool,
        src: SocketAddr,
    ) -> Result<(), DropReason> {
        self.stream_mut(stream)
            .ok_or(DropReason::UnknownSource)?
            .accept_rtcp(on_rtp_socket, src)
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
    fn new(local_rtp: SocketAddr) -> Self {
        Self {
            local_rtp,
            remote: None,
            rtp_peer: None,
            rtp_latched: false,
            rtcp_peer: None,
            rtcp_latched: false,
        }
    }

    fn set_remote(&mut self, remote: Option<PlainRemote>) {
        let old_rtp = self.sdp_rtp();
        if let Some(r) = &remote {
            // A new SDP address replaces any latch (re-INVITE to another host).
            if r.rtp != old_rtp || !self.rtp_latched {
                self.rtp_peer = r.rtp;
                self.rtp_latched = false;
                self.rtcp_peer = if r.rtcp_mux { r.rtp } else { r.rtcp };
                self.rtcp_latched = false;
            }
        }
        self.remote = remote;
    }

    /// No remote section any more: no destination, no latch.
    fn clear(&mut self) {
        *self = Self::new(self.local_rtp);
    }

    fn sdp_rtp(&self) -> Option<SocketAddr> {
        self.remote.as_ref().and_then(|r| r.rtp)
    }

    /// Where media for this stream goes: `(true, rtcp peer)` for RTCP on the RTCP socket,
    /// `(false, rtp peer)` for RTP, and for RTCP under rtcp-mux. `None`: nowhere yet.
    pub(super) fn destination(&self, rtcp: bool) -> Option<(bool, SocketAddr)> {
        let mux = self.remote.as_ref().is_some_and(|r| r.rtcp_mux);
        if rtcp && !mux {
            Some((true, self.rtcp_peer?))
        } else {
            Some((false, self.rtp_peer?))
        }
    }

    /// RTP from `src`: the latched or SDP source, or latch once to a sender of a negotiated PT.
    fn accept_rtp(&mut self, src: SocketAddr, negotiated: bool) -> Result<(), DropReason> {
        if self.rtp_latched {
            return if self.rtp_peer == Some(src) {
                Ok(())
            } else {
                Err(DropReason::UnknownSource)
            };
        }
        if self.sdp_rtp() == Some(src) || negotiated {
            self.rtp_peer = Some(src);
            self.rtp_latched = true;
            if !self.rtcp_latched && self.sdp_rtp() != Some(src) {
                // Symmetric RTCP from the latched host: learn it when it first speaks.
                self.rtcp_peer = None;
            }
            return Ok(());
        }
        Err(DropReason::UnknownSource)
    }

    fn accept_rtcp(&mut self, on_rtp_socket: bool, src: SocketAddr) -> Result<(), DropReason> {
        if on_rtp_socket {
            // rtcp-mux: same source as RTP.
            return if self.rtp_peer == Some(src) || self.sdp_rtp() == Some(src) {
                Ok(())
            } else {
                Err(DropReason::UnknownSource)
            };
        }
        if self.rtcp_peer == Some(src) {
            self.rtcp_latched = true;
            return Ok(());
        }
        // Learn the RTCP source only when RTP itself latched away from the SDP (NAT), or the
        // SDP named no RTCP address; then only from the RTP peer's host, once.
        let rtp_moved = self.rtp_latched && self.rtp_peer != self.sdp_rtp();
        let peer_ip = self.rtp_peer.or(self.sdp_rtp()).map(|a| a.ip());
        if !self.rtcp_latched
            && (rtp_moved || self.rtcp_peer.is_none())
            && peer_ip == Some(src.ip())
        {
            self.rtcp_peer = Some(src);
            self.rtcp_latched = true;
            return Ok(());
        }
        Err(DropReason::UnknownSource)
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
        let mut leg = PlainLeg::new(a(40002), Some(a(40004)));
        let section = |rtp: u16| PlainRemote {
            rtp: Some(a(rtp)),
            rtcp: Some(a(rtp + 1)),
            payload_types: vec![96],
            ..PlainRemote::default()
        };
        leg.set_remote(Some(PlainRemote {
            video: Some(Box::new(section(6002))),
            payload_types: vec![0],
            ..section(6000)
        }));
        let video = leg.video.as_ref().unwrap();
        assert_eq!(video.destination(false), Some((false, a(6002))));
        assert_eq!(video.destination(true), Some((true, a(6003))));
        assert_eq!(video.remote.as_ref().unwrap().payload_types, [96]);
        assert_eq!(
            leg.remote().unwrap().video,
            None,
            "kept once, in the video stream"
        );
        leg.set_remote(Some(section(6000)));
        let video = leg.video.as_ref().unwrap();
        assert_eq!(video.destination(false), None);
        assert_eq!(video.destination(true), None);
        assert_eq!(
            leg.accept_rtp(Stream::Video, a(6002), 96),
            Err(DropReason::UnknownSource)
        );
        assert_eq!(leg.audio.destination(false), Some((false, a(6000))));
    }
}
