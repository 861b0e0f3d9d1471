//! What a remote SDP says about its leg, for the engine: which section is relayed, its
//! direction, the WebRTC leg's ICE/DTLS parameters, the plain leg's addresses. Pure.

use std::net::SocketAddr;

use engine::api::{Direction, PlainRemote, Setup, WebRtcRemote};

use super::model::{Media, Sdp};

/// Why an SDP cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranslateError {
    #[error("no audio or video RTP section")]
    NoRtpSection,
    #[error("no codec left after ALLOWED_PTS")]
    NoCodec,
    #[error("WebRTC SDP without {0}")]
    Missing(&'static str),
    #[error("bad {0} in SDP")]
    Bad(&'static str),
}

impl TranslateError {
    /// The SIP status for a request whose SDP fails this way.
    pub fn status(&self) -> u16 {
        match self {
            TranslateError::NoCodec | TranslateError::NoRtpSection => 488,
            _ => 400,
        }
    }
}

/// The index of the section the gateway relays: the first audio RTP section with a port, else
/// the first RTP section with a port.
pub fn relayed_section(sdp: &Sdp) -> Option<usize> {
    let ok = |m: &Media| m.is_rtp() && m.port != 0;
    sdp.media
        .iter()
        .position(|m| ok(m) && m.kind == "audio")
        .or_else(|| sdp.media.iter().position(ok))
}

/// The first video RTP section with a port other than the relayed one: what a plain leg's
/// video pair carries.
pub fn video_section(sdp: &Sdp) -> Option<usize> {
    let relayed = relayed_section(sdp)?;
    sdp.media
        .iter()
        .enumerate()
        .position(|(i, m)| i != relayed && m.is_rtp() && m.port != 0 && m.kind == "video")
}

pub(crate) fn direction_of(sdp: &Sdp, m: &Media) -> Direction {
    for (name, d) in [
        ("sendonly", Direction::SendOnly),
        ("recvonly", Direction::RecvOnly),
        ("inactive", Direction::Inactive),
        ("sendrecv", Direction::SendRecv),
    ] {
        if m.has_attr(name) || sdp.attrs(name).next().is_some() {
            return d;
        }
    }
    Direction::SendRecv
}

/// RFC 8843 §15: the MID header extension. Read from a browser's SDP (the engine can split a
/// bundle by it), never negotiated towards a browser on a call with a plain leg: the SIP side's
/// RTP carries no MID (the engine strips every header extension at that boundary), and a
/// browser that negotiated the extension drops bundled packets without it (Chromium does, for
/// every section of an audio+video bundle). Without it browsers split the bundle by payload
/// type, which the sections' distinct formats make unambiguous.
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// The `a=extmap` id of the MID header extension in section `m` (or at session level).
fn mid_extmap(sdp: &Sdp, m: &Media) -> Option<u8> {
    m.attrs("extmap").chain(sdp.attrs("extmap")).find_map(|v| {
        let mut it = v.split_whitespace();
        let id: u8 = it.next()?.split('/').next()?.parse().ok()?;
        (id != 0 && it.next()? == MID_URI).then_some(id)
    })
}

/// What the browser's SDP says about its WebRTC leg.
pub fn webrtc_remote(sdp: &Sdp) -> Result<WebRtcRemote, TranslateError> {
    let i = relayed_section(sdp).ok_or(TranslateError::NoRtpSection)?;
    let m = &sdp.media[i];
    let get = |name: &'static str| {
        m.attr(name)
            .or_else(|| sdp.attr(name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(TranslateError::Missing(name))
    };
    let setup = match get("setup").unwrap_or("actpass") {
        s if s.eq_ignore_ascii_case("active") => Setup::Active,
        s if s.eq_ignore_ascii_case("passive") => Setup::Passive,
        s if s.eq_ignore_ascii_case("actpass") => Setup::ActPass,
        _ => return Err(TranslateError::Bad("a=setup")),
    };
    Ok(WebRtcRemote {
        ice_ufrag: get("ice-ufrag")?.to_string(),
        ice_pwd: get("ice-pwd")?.to_string(),
        fingerprint: get("fingerprint")?.to_string(),
        setup,
        direction: direction_of(sdp, m),
        // Every bundled section's formats arrive on the one transport.
        payload_types: sdp
            .media
            .iter()
            .filter(|m| m.is_rtp() && m.port != 0)
            .flat_map(Media::payload_types)
            .collect(),
        mid_ext: mid_extmap(sdp, m),
        video_mid: video_section(sdp).and_then(|v| sdp.media[v].attr("mid").map(str::to_string)),
    })
}

/// What a SIP peer's SDP says about its plain RTP leg: the relayed (audio) section, and the
/// first video section with a port as its `video`.
pub fn plain_remote(sdp: &Sdp) -> Result<PlainRemote, TranslateError> {
    let i = relayed_section(sdp).ok_or(TranslateError::NoRtpSection)?;
    let mut remote = plain_stream(sdp, &sdp.media[i])?;
    remote.video = video_section(sdp)
        .and_then(|v| plain_stream(sdp, &sdp.media[v]).ok())
        .map(Box::new);
    Ok(remote)
}

fn plain_stream(sdp: &Sdp, m: &Media) -> Result<PlainRemote, TranslateError> {
    let ip = m
        .connection()
        .or_else(|| sdp.connection())
        .ok_or(TranslateError::Missing("c="))?;
    let mut direction = direction_of(sdp, m);
    let rtp = if ip.is_unspecified() {
        // RFC 2543 hold: c=0.0.0.0.
        if direction == Direction::SendRecv {
            direction = Direction::SendOnly;
        }
        None
    } else {
        Some(SocketAddr::new(ip, m.port))
    };
    let rtcp_mux = m.has_attr("rtcp-mux");
    let rtcp = match (rtp, rtcp_mux) {
        (None, _) => None,
        (Some(a), true) => Some(a),
        (Some(a), false) => Some(match m.attr("rtcp") {
            Some(v) => {
                let mut it = v.split_whitespace();
                let port: u16 = it
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or(TranslateError::Bad("a=rtcp"))?;
                let addr = it.nth(2).and_then(|a| a.parse().ok()).unwrap_or(a.ip());
                SocketAddr::new(addr, port)
            }
            None => SocketAddr::new(a.ip(), a.port().wrapping_add(1)),
        }),
    };
    Ok(PlainRemote {
        rtp,
        rtcp,
        rtcp_mux,
        direction,
        payload_types: m.payload_types(),
        video: None,
    })
}
