//! SDP between the two legs (seed-system.md §2.7, with its §3.1 defects fixed).
//!
//! Towards SIP: plain `RTP/AVP` on the engine's plain-leg address, codecs filtered by
//! ALLOWED_PTS (opus and its telephone-event always pass: no transcoding happens, so the far end
//! decides), every WebRTC-only attribute removed. Towards the browser: the offered proto
//! (`UDP/TLS/RTP/SAVPF`), the browser's `a=mid` values and BUNDLE group, session-level
//! `a=ice-lite`, ICE credentials, `a=fingerprint`, `a=setup`, rtcp-mux, one host candidate
//! and `a=end-of-candidates`; sections the gateway does not relay get port 0.
//!
//! Remote candidates are never read: an ICE-lite agent answers checks from wherever they come,
//! so `.local`, TCP and IPv6 candidates cannot fail a call.

use std::net::{IpAddr, SocketAddr};

use engine::api::{Direction, Setup};

use super::model::{Media, Sdp};
use super::pts::{static_encoding, PtFilter};
use super::remote::direction_of;
pub use super::remote::{
    plain_remote, relayed_section, video_section, webrtc_remote, TranslateError,
};

/// The gateway's local WebRTC parameters for one leg (from the engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWebRtc {
    pub addr: SocketAddr,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// `sha-256 AB:CD:...`
    pub fingerprint: String,
    pub setup: Setup,
}

/// The `o=` line of one side: a session id, and a version bumped whenever what the gateway
/// sends changes (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub session_id: u64,
    pub version: u64,
    pub addr: IpAddr,
    last: Option<Vec<u8>>,
}

impl Origin {
    pub fn new(session_id: u64, addr: IpAddr) -> Self {
        Origin {
            session_id,
            version: 1,
            addr,
            last: None,
        }
    }

    /// Stamps `sdp` with this origin, bumping the version when the content differs from the
    /// last one stamped.
    pub fn stamp(&mut self, sdp: &mut Sdp) {
        let o_at = sdp.session.iter().position(|(t, _)| *t == 'o');
        let mut probe = sdp.clone();
        probe.session.retain(|(t, _)| *t != 'o');
        let bytes = probe.to_bytes();
        if self.last.as_ref().is_some_and(|l| *l != bytes) {
            self.version += 1;
        }
        self.last = Some(bytes);
        let line = format!(
            "webrtc-phone {} {} IN {} {}",
            self.session_id,
            self.version,
            ip_family(self.addr),
            self.addr
        );
        match o_at {
            Some(i) => sdp.session[i].1 = line,
            None => sdp.session.insert(1, ('o', line)),
        }
    }
}

fn ip_family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

/// RFC 3264 §6.1: what an answer may say, given the offer's direction and what the answerer
/// wants. The answerer sends only if the offerer receives, and receives only if it sends.
pub fn answer_direction(offer: Direction, wanted: Direction) -> Direction {
    let caps = |d: Direction| match d {
        Direction::SendRecv => (true, true),
        Direction::SendOnly => (true, false),
        Direction::RecvOnly => (false, true),
        Direction::Inactive => (false, false),
    };
    let ((o_send, o_recv), (w_send, w_recv)) = (caps(offer), caps(wanted));
    match (w_send && o_recv, w_recv && o_send) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

fn direction_attr(d: Direction) -> &'static str {
    match d {
        Direction::SendRecv => "sendrecv",
        Direction::SendOnly => "sendonly",
        Direction::RecvOnly => "recvonly",
        Direction::Inactive => "inactive",
    }
}

/// Browser to browser: `src` (one browser's SDP) for the other browser, every bundled section
/// kept. The RTP passes the gateway unchanged, so what describes it (mid, BUNDLE, extmap, msid,
/// ssrc, rtcp-fb, formats) stays true; only the transport (ICE, DTLS, candidates, address) is
/// the gateway's. An answer (`answer_to` = the offer it answers) keeps that offer's mids.
pub fn relay_webrtc(
    src: &Sdp,
    local: &LocalWebRtc,
    filter: &PtFilter,
    origin: &mut Origin,
    answer_to: Option<&Sdp>,
) -> Result<Sdp, TranslateError> {
    relayed_section(src).ok_or(TranslateError::NoRtpSection)?;
    let ip = local.addr.ip();
    let setup = match local.setup {
        Setup::Active => "active",
        Setup::Passive => "passive",
        Setup::ActPass => "actpass",
    };
    let transport_attr = |n: &str| {
        matches!(
            n,
            "ice-ufrag"
                | "ice-pwd"
                | "ice-options"
                | "ice-lite"
                | "candidate"
                | "end-of-candidates"
                | "fingerprint"
                | "setup"
                | "rtcp"
                | "crypto"
        )
    };
    let mut out = Sdp {
        session: session_head(origin),
        media: Vec::new(),
    };
    out.session.retain(|(t, _)| *t != 'c');
    out.session.push(('a', "ice-lite".into()));
    for (t, v) in &src.session {
        let name = v.split(':').next().unwrap_or_default();
        if *t == 'a' && matches!(name, "group" | "msid-semantic" | "extmap-allow-mixed") {
            out.session.push(('a', v.clone()));
        }
    }
    for m in &src.media {
        if !m.is_rtp() || m.port == 0 {
            out.media.push(disabled(m));
            continue;
        }
        let fmts: Vec<String> = m
            .fmts
            .iter()
            .filter(|f| allowed(filter, m, f) || is_rtx_of_allowed(filter, m, f))
            .cloned()
            .collect();
        if fmts.is_empty() {
            out.media.push(disabled(m));
            continue;
        }
        let mut lines = vec![
            ('c', format!("IN {} {ip}", ip_family(ip))),
            (
                'a',
                format!("rtcp:{} IN {} {ip}", local.addr.port(), ip_family(ip)),
            ),
            ('a', format!("ice-ufrag:{}", local.ice_ufrag)),
            ('a', format!("ice-pwd:{}", local.ice_pwd)),
            ('a', format!("fingerprint:{}", local.fingerprint)),
            ('a', format!("setup:{setup}")),
        ];
        for (t, v) in &m.lines {
            if *t != 'a' {
                continue;
            }
            let (name, rest) = v.split_once(':').unwrap_or((v.as_str(), ""));
            if transport_attr(name) {
                continue;
            }
            if matches!(name, "rtpmap" | "fmtp" | "rtcp-fb") {
                let pt = rest.split_whitespace().next().unwrap_or_default();
                if pt != "*" && !fmts.iter().any(|f| f == pt) {
                    continue;
                }
            }
            lines.push(('a', v.clone()));
        }
        if !lines.iter().any(|(_, v)| v == "rtcp-mux") {
            lines.push(('a', "rtcp-mux".into()));
        }
        lines.push((
            'a',
            format!(
                "candidate:{} 1 udp 2130706431 {ip} {} typ host",
                foundation(ip),
                local.addr.port()
            ),
        ));
        lines.push(('a', "end-of-candidates".into()));
        out.media.push(Media {
            kind: m.kind.clone(),
            port: local.addr.port(),
            proto: m.proto.clone(),
            fmts,
            lines,
        });
    }
    if let Some(offer) = answer_to {
        if offer.media.len() != out.media.len() {
            return Err(TranslateError::Bad(
                "m= sections (answer does not match the offer)",
            ));
        }
        for (i, m) in out.media.iter_mut().enumerate() {
            if m.port == 0 {
                continue;
            }
            let wanted = direction_of(src, &src.media[i]);
            let d = answer_direction(direction_of(offer, &offer.media[i]), wanted);
            m.lines.retain(|(t, v)| {
                !(*t == 'a'
                    && matches!(
                        v.as_str(),
                        "sendrecv" | "sendonly" | "recvonly" | "inactive"
                    ))
            });
            m.lines.push(('a', direction_attr(d).into()));
        }
    }
    if !out.media.iter().any(|m| m.port != 0) {
        return Err(TranslateError::NoCodec);
    }
    origin.stamp(&mut out);
    Ok(out)
}

/// `rtx` (RFC 4588) formats pass with the format they repair.
fn is_rtx_of_allowed(filter: &PtFilter, m: &Media, fmt: &str) -> bool {
    let is_rtx = m
        .rtpmap(fmt)
        .is_some_and(|e| e.to_ascii_lowercase().starts_with("rtx/"));
    is_rtx
        && m.attrs("fmtp").any(|v| {
            let mut it = v.split_whitespace();
            it.next() == Some(fmt)
                && it
                    .next()
                    .and_then(|p| p.strip_prefix("apt="))
                    .is_some_and(|apt| allowed(filter, m, apt))
        })
}

/// Whether a format passes: ALLOWED_PTS, or opus and its 48 kHz telephone-event.
fn allowed(filter: &PtFilter, m: &Media, fmt: &str) -> bool {
    let Ok(pt) = fmt.parse::<u8>() else {
        return false;
    };
    let map = m.rtpmap(fmt);
    filter.is_allowed(pt, map)
        || map.is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.starts_with("opus/48000") || e == "telephone-event/48000"
        })
}

/// Attributes that carry per-format parameters, kept only for the formats that stay.
fn format_attrs(src: &Media, fmts: &[String], with_rtcp_fb: bool) -> Vec<(char, String)> {
    let mut out = Vec::new();
    for f in fmts {
        match src.rtpmap(f) {
            Some(enc) => out.push(('a', format!("rtpmap:{f} {enc}"))),
            None => {
                if let Some(enc) = f.parse().ok().and_then(static_encoding) {
                    out.push(('a', format!("rtpmap:{f} {enc}")));
                }
            }
        }
        let mut names = vec!["fmtp"];
        if with_rtcp_fb {
            names.push("rtcp-fb");
        }
        for name in names {
            for v in src.attrs(name) {
                if v.split_whitespace().next() == Some(f.as_str()) {
                    out.push(('a', format!("{name}:{v}")));
                }
            }
        }
    }
    out
}

fn session_head(origin: &Origin) -> Vec<(char, String)> {
    vec![
        ('v', "0".into()),
        ('o', String::new()),
        ('s', "-".into()),
        (
            'c',
            format!("IN {} {}", ip_family(origin.addr), origin.addr),
        ),
        ('t', "0 0".into()),
    ]
}

fn disabled(m: &Media) -> Media {
    Media {
        kind: m.kind.clone(),
        port: 0,
        proto: m.proto.clone(),
        fmts: m.fmts.first().cloned().into_iter().collect(),
        lines: m.attrs("mid").map(|v| ('a', format!("mid:{v}"))).collect(),
    }
}

/// Formats of `src` that pass the filter (`rtx` with the format it repairs, for video).
fn kept_formats(filter: &PtFilter, src: &Media) -> Vec<String> {
    let video = src.kind == "video";
    src.fmts
        .iter()
        .filter(|f| allowed(filter, src, f) || (video && is_rtx_of_allowed(filter, src, f)))
        .cloned()
        .collect()
}

/// Whether `fmts` carry something besides telephone-event and rtx.
fn has_codec(src: &Media, fmts: &[String]) -> bool {
    fmts.iter().any(|f| {
        !src.rtpmap(f).is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.starts_with("telephone-event") || e.starts_with("rtx/")
        })
    })
}

/// Keeps in an answer section only the formats its offer section offered (RFC 3264 §6.1).
fn answer_formats(r: &mut Media, offered: &Media) {
    r.fmts.retain(|f| offered.fmts.contains(f));
    let kept = r.fmts.clone();
    r.lines.retain(|(t, v)| {
        *t != 'a'
            || !(v.starts_with("rtpmap:") || v.starts_with("fmtp:") || v.starts_with("rtcp-fb:"))
            || v.split([':', ' '])
                .nth(1)
                .is_some_and(|pt| kept.iter().any(|k| k == pt))
    });
}

/// One plain `RTP/AVP` section on `local` for the browser's section `src`; `None` when no
/// format passes.
fn plain_section(
    browser: &Sdp,
    src: &Media,
    local: SocketAddr,
    filter: &PtFilter,
    offered: Option<Direction>,
) -> Option<Media> {
    let fmts = kept_formats(filter, src);
    if !has_codec(src, &fmts) {
        return None;
    }
    let mut lines = vec![('c', format!("IN {} {}", ip_family(local.ip()), local.ip()))];
    lines.extend(format_attrs(src, &fmts, false));
    // RFC 3605: RTCP on the odd port after RTP, stated explicitly.
    lines.push(('a', format!("rtcp:{}", local.port() + 1)));
    let wanted = direction_of(browser, src);
    let dir = offered.map_or(wanted, |o| answer_direction(o, wanted));
    lines.push(('a', direction_attr(dir).into()));
    Some(Media {
        kind: src.kind.clone(),
        port: local.port(),
        proto: "RTP/AVP".into(),
        fmts,
        lines,
    })
}

/// The SIP-side SDP for a browser's SDP: an offer when `sip_offer` is `None`, else the answer
/// to `sip_offer` (one section per offered section, the unrelayed ones at port 0). The relayed
/// (audio) section goes on `local_rtp`; the browser's first video section on `video_rtp` when
/// the plain leg has a video pair, else it is left out (offer) or refused (answer).
pub fn to_plain(
    browser: &Sdp,
    local_rtp: SocketAddr,
    video_rtp: Option<SocketAddr>,
    filter: &PtFilter,
    origin: &mut Origin,
    sip_offer: Option<&Sdp>,
) -> Result<Sdp, TranslateError> {
    let bi = relayed_section(browser).ok_or(TranslateError::NoRtpSection)?;
    let bvi = video_section(browser).filter(|_| video_rtp.is_some());
    let offered = |sec: Option<usize>| -> Option<Direction> {
        let o = sip_offer?;
        let i = sec?;
        Some(direction_of(o, &o.media[i]))
    };
    let oi = match sip_offer {
        Some(o) => Some(relayed_section(o).ok_or(TranslateError::NoRtpSection)?),
        None => None,
    };
    let ovi = sip_offer.and_then(video_section);
    let audio = plain_section(browser, &browser.media[bi], local_rtp, filter, offered(oi))
        .ok_or(TranslateError::NoCodec)?;
    let video = match (bvi, video_rtp) {
        (Some(v), Some(addr)) => {
            plain_section(browser, &browser.media[v], addr, filter, offered(ovi))
        }
        _ => None,
    };
    let mut out = Sdp {
        session: session_head(origin),
        media: Vec::new(),
    };
    out.session.retain(|(t, _)| *t != 'c');
    match sip_offer {
        None => {
            let video_first = bvi.is_some_and(|v| v < bi);
            let mut sections = vec![audio];
            sections.extend(video);
            if video_first {
                sections.reverse();
            }
            out.media = sections;
        }
        Some(offer) => {
            let (mut audio, mut video) = (Some(audio), video);
            for (i, m) in offer.media.iter().enumerate() {
                let answer = if Some(i) == oi {
                    audio.take()
                } else if Some(i) == ovi {
                    video.take()
                } else {
                    None
                };
                match answer {
                    Some(mut r) => {
                        r.kind = m.kind.clone();
                        r.proto = m.proto.clone();
                        answer_formats(&mut r, m);
                        if !has_codec(m, &r.fmts) {
                            if Some(i) == oi {
                                return Err(TranslateError::NoCodec);
                            }
                            out.media.push(disabled(m));
                        } else {
                            out.media.push(r);
                        }
                    }
                    None => out.media.push(disabled(m)),
                }
            }
        }
    }
    origin.stamp(&mut out);
    Ok(out)
}

/// One browser-side section for the SIP section `src`, on the gateway's WebRTC transport.
/// `fb` adds `a=rtcp-fb`: the browser offer's lines in an answer, or for video in an offer
/// the ones the gateway relays (NACK, PLI, FIR: RTCP passes both ways unchanged).
fn webrtc_section(
    local: &LocalWebRtc,
    src: &Media,
    fmts: &[String],
    dir: Direction,
    (kind, proto, mid): (&str, &str, &str),
    fb: Option<&Media>,
) -> Media {
    let ip = local.addr.ip();
    let setup = match local.setup {
        Setup::Active => "active",
        Setup::Passive => "passive",
        Setup::ActPass => "actpass",
    };
    let mut lines = vec![
        ('c', format!("IN {} {ip}", ip_family(ip))),
        (
            'a',
            format!("rtcp:{} IN {} {ip}", local.addr.port(), ip_family(ip)),
        ),
        ('a', format!("ice-ufrag:{}", local.ice_ufrag)),
        ('a', format!("ice-pwd:{}", local.ice_pwd)),
        ('a', format!("fingerprint:{}", local.fingerprint)),
        ('a', format!("setup:{setup}")),
        ('a', format!("mid:{mid}")),
        ('a', direction_attr(dir).into()),
        ('a', "rtcp-mux".into()),
    ];
    lines.extend(format_attrs(src, fmts, false));
    match fb {
        Some(b) => {
            for f in fmts {
                for v in b.attrs("rtcp-fb") {
                    if v.split_whitespace().next() == Some(f.as_str()) {
                        lines.push(('a', format!("rtcp-fb:{v}")));
                    }
                }
            }
        }
        None if kind == "video" => {
            for f in fmts {
                if src
                    .rtpmap(f)
                    .is_some_and(|e| e.to_ascii_lowercase().starts_with("rtx/"))
                {
                    continue;
                }
                for v in ["nack", "nack pli", "ccm fir"] {
                    lines.push(('a', format!("rtcp-fb:{f} {v}")));
                }
            }
        }
        None => {}
    }
    lines.push((
        'a',
        format!(
            "candidate:{} 1 udp 2130706431 {ip} {} typ host",
            foundation(ip),
            local.addr.port()
        ),
    ));
    lines.push(('a', "end-of-candidates".into()));
    Media {
        kind: kind.to_string(),
        port: local.addr.port(),
        proto: proto.to_string(),
        fmts: fmts.to_vec(),
        lines,
    }
}

/// The browser-side SDP for a SIP peer's SDP: an offer when `browser_offer` is `None`
/// (`setup` from `local` is then `actpass`), else the answer to `browser_offer`. The SIP
/// side's relayed (audio) section and its first video section (when it has one with a port)
/// share the one bundled transport.
pub fn to_webrtc(
    sip: &Sdp,
    local: &LocalWebRtc,
    filter: &PtFilter,
    origin: &mut Origin,
    browser_offer: Option<&Sdp>,
) -> Result<Sdp, TranslateError> {
    let si = relayed_section(sip).ok_or(TranslateError::NoRtpSection)?;
    let src = &sip.media[si];
    let fmts = kept_formats(filter, src);
    if fmts.is_empty() {
        return Err(TranslateError::NoCodec);
    }
    let video = video_section(sip).and_then(|vi| {
        let m = &sip.media[vi];
        let f = kept_formats(filter, m);
        has_codec(m, &f).then_some((vi, m, f))
    });
    let dir_for = |m: &Media, offer: Option<&Media>| {
        let wanted = direction_of(sip, m);
        match (browser_offer, offer) {
            (Some(o), Some(om)) => answer_direction(direction_of(o, om), wanted),
            _ => wanted,
        }
    };
    let mut out = Sdp {
        session: session_head(origin),
        media: Vec::new(),
    };
    out.session.retain(|(t, _)| *t != 'c');
    out.session.push(('a', "ice-lite".into()));
    let proto = "UDP/TLS/RTP/SAVPF";
    match browser_offer {
        None => {
            let mut sections = vec![(si, src, fmts)];
            sections.extend(video);
            sections.sort_by_key(|(i, _, _)| *i);
            let mut mids = Vec::new();
            for (n, (_, m, f)) in sections.into_iter().enumerate() {
                let mid = n.to_string();
                let d = dir_for(m, None);
                out.media.push(webrtc_section(
                    local,
                    m,
                    &f,
                    d,
                    (&m.kind, proto, &mid),
                    None,
                ));
                mids.push(mid);
            }
            out.session
                .push(('a', format!("group:BUNDLE {}", mids.join(" "))));
        }
        Some(offer) => {
            let bi = relayed_section(offer).ok_or(TranslateError::NoRtpSection)?;
            let bvi = video_section(offer);
            let mut mids = Vec::new();
            for (i, m) in offer.media.iter().enumerate() {
                let pick = if i == bi {
                    Some((src, fmts.clone()))
                } else if Some(i) == bvi {
                    video.as_ref().map(|(_, v, f)| (*v, f.clone()))
                } else {
                    None
                };
                let Some((s, f)) = pick else {
                    out.media.push(disabled(m));
                    continue;
                };
                let mid = m.attr("mid").unwrap_or("0").to_string();
                let d = dir_for(s, Some(m));
                let mut answer =
                    webrtc_section(local, s, &f, d, (&m.kind, &m.proto, &mid), Some(m));
                answer_formats(&mut answer, m);
                if !has_codec(m, &answer.fmts) {
                    if i == bi {
                        return Err(TranslateError::NoCodec);
                    }
                    out.media.push(disabled(m));
                    continue;
                }
                mids.push(mid);
                out.media.push(answer);
            }
            if offer.attrs("group").any(|g| g.starts_with("BUNDLE")) {
                out.session
                    .push(('a', format!("group:BUNDLE {}", mids.join(" "))));
            }
        }
    }
    origin.stamp(&mut out);
    Ok(out)
}

/// ICE foundation: the address in hex, as the replaced system does.
fn foundation(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:x}", u128::from(v6) as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_PTS: &str =
        "[G722/8000],[PCMU/8000],[PCMA/8000],[telephone-event/8000],[VP8/90000]";

    fn body(fixture: &[u8]) -> Sdp {
        let i = fixture.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        Sdp::parse(&fixture[i + 4..]).unwrap()
    }

    fn text(sdp: &Sdp) -> String {
        String::from_utf8(sdp.to_bytes()).unwrap()
    }

    fn local() -> LocalWebRtc {
        LocalWebRtc {
            addr: "127.0.0.1:32000".parse().unwrap(),
            ice_ufrag: "AbCd".into(),
            ice_pwd: "0123456789abcdefghijkl".into(),
            fingerprint: "sha-256 6D:29:1A".into(),
            setup: Setup::Passive,
        }
    }

    fn origin() -> Origin {
        Origin::new(42, "127.0.0.1".parse().unwrap())
    }

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    #[test]
    fn chromium_offer_to_sip_line_by_line() {
        let offer = body(include_bytes!("../../tests/fixtures/sipjs/invite.txt"));
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let out = to_plain(
            &offer,
            "127.0.0.1:32002".parse().unwrap(),
            None,
            &f,
            &mut origin(),
            None,
        )
        .unwrap();
        let expected = "v=0\r\no=webrtc-phone 42 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 32002 RTP/AVP 111 9 0 8 110 126\r\nc=IN IP4 127.0.0.1\r\n\
            a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
            a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
            a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n\
            a=rtcp:32003\r\na=sendrecv\r\n";
        assert_eq!(text(&out), expected);
        for gone in [
            "ice-",
            "candidate",
            "fingerprint",
            "setup",
            "mid",
            "group",
            "extmap",
            "msid",
            "rtcp-fb",
            "ssrc",
            "SAVPF",
        ] {
            assert!(!text(&out).contains(gone), "{gone} left in SIP SDP");
        }
    }

    #[test]
    fn firefox_g722_with_a_channel_count_of_one_reaches_sip_and_comes_back() {
        // Firefox writes `a=rtpmap:9 G722/8000/1`; the default list says `[G722/8000]`.
        let offer = body(include_bytes!("../../tests/fixtures/firefox/invite.txt"));
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let sip = text(
            &to_plain(
                &offer,
                "127.0.0.1:32002".parse().unwrap(),
                None,
                &f,
                &mut origin(),
                None,
            )
            .unwrap(),
        );
        assert!(
            sip.contains("m=audio 32002 RTP/AVP 109 9 0 8 101\r\n"),
            "{sip}"
        );
        assert!(sip.contains("a=rtpmap:9 G722/8000/1\r\n"), "{sip}");
        // The far end answers G722 the way most SIP peers write it (no channel count).
        let answer = Sdp::parse(
            b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
              m=audio 6000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\n\
              a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
        )
        .unwrap();
        let out = text(&to_webrtc(&answer, &local(), &f, &mut origin(), Some(&offer)).unwrap());
        assert!(
            out.contains("m=audio 32000 UDP/TLS/RTP/SAVPF 9 101\r\n"),
            "{out}"
        );
        assert!(out.contains("a=rtpmap:9 G722/8000\r\n"), "{out}");
    }

    #[test]
    fn sip_answer_to_browser_keeps_mid_bundle_and_proto() {
        let offer = body(include_bytes!("../../tests/fixtures/sipjs/invite.txt"));
        let answer = Sdp::parse(
            SIPP_OFFER
                .replace("0 101", "0 126")
                .replace(":101", ":126")
                .as_bytes(),
        )
        .unwrap();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let out = to_webrtc(&answer, &local(), &f, &mut origin(), Some(&offer)).unwrap();
        let expected = "v=0\r\no=webrtc-phone 42 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
            a=group:BUNDLE 0\r\nm=audio 32000 UDP/TLS/RTP/SAVPF 0 126\r\nc=IN IP4 127.0.0.1\r\n\
            a=rtcp:32000 IN IP4 127.0.0.1\r\na=ice-ufrag:AbCd\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
            a=fingerprint:sha-256 6D:29:1A\r\na=setup:passive\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
            a=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-15\r\n\
            a=candidate:7f000001 1 udp 2130706431 127.0.0.1 32000 typ host\r\na=end-of-candidates\r\n";
        assert_eq!(text(&out), expected);
    }

    #[test]
    fn sip_offer_to_browser_offer_is_actpass_bundle() {
        let offer = Sdp::parse(SIPP_OFFER.as_bytes()).unwrap();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let mut l = local();
        l.setup = Setup::ActPass;
        let out = text(&to_webrtc(&offer, &l, &f, &mut origin(), None).unwrap());
        assert!(
            out.contains("m=audio 32000 UDP/TLS/RTP/SAVPF 0 101\r\n"),
            "{out}"
        );
        assert!(
            out.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"),
            "{out}"
        );
        assert!(out.contains("a=setup:actpass\r\n"));
        assert!(
            out.contains("a=group:BUNDLE 0\r\na=ice-lite\r\n")
                || out.contains("a=ice-lite\r\na=group:BUNDLE 0\r\n")
        );
    }

    #[test]
    fn browser_answer_to_sip_answer_and_remote_params() {
        let answer = body(include_bytes!(
            "../../tests/fixtures/sipjs/callee-200-ok-sdp-answer.txt"
        ));
        let r = webrtc_remote(&answer).unwrap();
        assert_eq!(r.ice_ufrag, "DREH");
        assert_eq!(r.setup, Setup::Active);
        assert!(r.fingerprint.starts_with("sha-256 99:E4"));
        let sip_offer = Sdp::parse(SIPP_OFFER.as_bytes()).unwrap();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let out = to_plain(
            &answer,
            "127.0.0.1:32004".parse().unwrap(),
            None,
            &f,
            &mut origin(),
            Some(&sip_offer),
        )
        .unwrap();
        assert!(
            text(&out).contains("m=audio 32004 RTP/AVP 0\r\n"),
            "{}",
            text(&out)
        );
        let p = plain_remote(&sip_offer).unwrap();
        assert_eq!(p.rtp, Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(p.rtcp, Some("127.0.0.1:6001".parse().unwrap()));
        assert_eq!(p.payload_types, vec![0, 101]);
    }

    #[test]
    fn mdns_and_ipv6_candidates_do_not_matter() {
        for f in [
            &include_bytes!("../../tests/fixtures/sipjs/invite-mdns-candidate.txt")[..],
            &include_bytes!("../../tests/fixtures/sipjs/invite-ipv4-only.txt")[..],
        ] {
            let offer = body(f);
            let r = webrtc_remote(&offer).unwrap();
            assert!(!r.ice_ufrag.is_empty());
            let pts = PtFilter::parse(DEFAULT_PTS).unwrap();
            to_plain(
                &offer,
                "127.0.0.1:32002".parse().unwrap(),
                None,
                &pts,
                &mut origin(),
                None,
            )
            .unwrap();
        }
    }

    #[test]
    fn hold_and_codec_rejection() {
        let held = Sdp::parse(
            SIPP_OFFER
                .replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
                .as_bytes(),
        )
        .unwrap();
        let p = plain_remote(&held).unwrap();
        assert_eq!(p.rtp, None);
        assert_eq!(p.direction, Direction::SendOnly);
        let g729 = Sdp::parse(SIPP_OFFER.replace("0 101", "18").as_bytes()).unwrap();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let e = to_webrtc(&g729, &local(), &f, &mut origin(), None).unwrap_err();
        assert_eq!(e.status(), 488);
    }

    #[test]
    fn origin_version_bumps_only_on_change() {
        let offer = Sdp::parse(SIPP_OFFER.as_bytes()).unwrap();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let mut o = origin();
        let a = to_webrtc(&offer, &local(), &f, &mut o, None).unwrap();
        let b = to_webrtc(&offer, &local(), &f, &mut o, None).unwrap();
        assert_eq!(a, b);
        let held = Sdp::parse(
            SIPP_OFFER
                .replace("t=0 0", "t=0 0\r\na=sendonly")
                .as_bytes(),
        )
        .unwrap();
        let c = to_webrtc(&held, &local(), &f, &mut o, None).unwrap();
        assert!(text(&c).contains("o=webrtc-phone 42 2 "), "{}", text(&c));
        assert!(text(&c).contains("a=sendonly"));
    }

    /// The SIP.js fixture offer with a bundled VP8 video section added (as Demo 2 offers).
    fn av_offer() -> Sdp {
        let mut sdp = body(include_bytes!("../../tests/fixtures/sipjs/invite.txt"));
        sdp.session
            .retain(|(t, v)| !(*t == 'a' && v.starts_with("group:")));
        sdp.session.insert(4, ('a', "group:BUNDLE 0 1".into()));
        let video = "v=0\r\nm=video 45421 UDP/TLS/RTP/SAVPF 96 97 98\r\nc=IN IP4 192.0.2.2\r\n\
            a=ice-ufrag:rTFx\r\na=ice-pwd:eewzYLa06UPpH2vmbrqexlmr\r\na=fingerprint:sha-256 9C:2C\r\n\
            a=setup:actpass\r\na=mid:1\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendrecv\r\n\
            a=msid:s1 t2\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n\
            a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 H264/90000\r\na=fmtp:98 profile-level-id=42e01f\r\n\
            a=ssrc:111 cname:x\r\na=candidate:1 1 udp 2122194687 192.0.2.2 45421 typ host\r\n";
        let v = Sdp::parse(video.as_bytes()).unwrap();
        sdp.media.push(v.media[0].clone());
        sdp
    }

    #[test]
    fn browser_to_browser_keeps_every_bundled_section() {
        let offer = av_offer();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let mut l = local();
        l.setup = Setup::ActPass;
        let out = relay_webrtc(&offer, &l, &f, &mut origin(), None).unwrap();
        let t = text(&out);
        assert!(t.contains("a=group:BUNDLE 0 1\r\n"), "{t}");
        assert!(
            t.contains("m=audio 32000 UDP/TLS/RTP/SAVPF 111 9 0 8 110 126\r\n"),
            "{t}"
        );
        assert!(
            t.contains("m=video 32000 UDP/TLS/RTP/SAVPF 96 97\r\n"),
            "VP8 and its rtx stay, H264 goes: {t}"
        );
        assert!(
            t.contains("a=mid:1")
                && t.contains("a=rtcp-fb:96 nack pli")
                && t.contains("a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"),
            "browser to browser, the RTP passes unchanged and so do its extensions: {t}"
        );
        assert!(
            t.contains("a=ssrc:111 cname:x") && t.contains("a=msid:s1 t2"),
            "RTP passes unchanged, so its description stays"
        );
        assert!(
            !t.contains("98")
                && !t.contains("rTFx")
                && !t.contains("9C:2C")
                && !t.contains("192.0.2.2"),
            "{t}"
        );
        assert_eq!(t.matches("a=setup:actpass").count(), 2);
        assert_eq!(t.matches("a=candidate:").count(), 2);
        let r = webrtc_remote(&offer).unwrap();
        assert!(
            r.payload_types.contains(&96) && r.payload_types.contains(&111),
            "{:?}",
            r.payload_types
        );
        // The answer keeps the number of sections of the offer it answers.
        assert!(relay_webrtc(
            &offer,
            &l,
            &f,
            &mut origin(),
            Some(&body(include_bytes!(
                "../../tests/fixtures/sipjs/invite.txt"
            )))
        )
        .is_err());
        assert!(relay_webrtc(&offer, &l, &f, &mut origin(), Some(&offer)).is_ok());
    }

    /// Every SIP.js fixture with an SDP body, line by line: what goes to the SIP side carries
    /// no WebRTC-only line and only allowed codecs; what goes to a browser has exactly the
    /// transport lines the gateway owns, and the offered mids.
    /// A SIP peer's audio + video SDP (offer or answer), video on `video_port`.
    fn sip_av(video_port: u16) -> Sdp {
        let t = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=sendrecv\r\nm=video {video_port} RTP/AVP 96 97\r\na=rtpmap:96 VP8/90000\r\n\
             a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtcp:40013\r\na=sendrecv\r\n"
        );
        Sdp::parse(t.as_bytes()).unwrap()
    }

    #[test]
    fn browser_video_goes_to_the_video_pair() {
        let offer = av_offer();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let audio: SocketAddr = "127.0.0.1:32002".parse().unwrap();
        let video: SocketAddr = "127.0.0.1:32004".parse().unwrap();
        let out = to_plain(&offer, audio, Some(video), &f, &mut origin(), None).unwrap();
        let t = text(&out);
        assert_eq!(out.media.len(), 2, "{t}");
        assert!(t.contains("m=audio 32002 RTP/AVP "), "{t}");
        assert!(
            t.contains(
                "m=video 32004 RTP/AVP 96 97\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 VP8/90000\r\n\
                 a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtcp:32005\r\na=sendrecv\r\n"
            ),
            "VP8 and its rtx on the video pair, H264 filtered, nothing WebRTC-only: {t}"
        );
        assert!(!t.contains("rtcp-fb") && !t.contains("ssrc") && !t.contains("mid"));
        // Without a video pair the SIP side is offered audio only.
        let out = to_plain(&offer, audio, None, &f, &mut origin(), None).unwrap();
        assert_eq!(out.media.len(), 1);
        assert_eq!(out.media[0].kind, "audio");

        // The SIP answer: both sections for the engine, both for the browser, one bundle.
        let answer = sip_av(40012);
        let r = plain_remote(&answer).unwrap();
        assert_eq!(r.rtp, Some("192.0.2.9:40000".parse().unwrap()));
        let v = r.video.as_deref().expect("a video stream");
        assert_eq!(v.rtp, Some("192.0.2.9:40012".parse().unwrap()));
        assert_eq!(v.rtcp, Some("192.0.2.9:40013".parse().unwrap()));
        assert_eq!(v.payload_types, vec![96, 97]);
        assert!(v.video.is_none());
        let b = to_webrtc(&answer, &local(), &f, &mut origin(), Some(&offer)).unwrap();
        let t = text(&b);
        assert!(t.contains("a=group:BUNDLE 0 1\r\n"), "{t}");
        assert!(
            !t.contains("extmap"),
            "no header extension answered (not even the MID: the SIP side's RTP has none): {t}"
        );
        let w = webrtc_remote(&offer).unwrap();
        assert_eq!((w.mid_ext, w.video_mid.as_deref()), (Some(4), Some("1")));
        assert!(
            t.contains("m=video 32000 UDP/TLS/RTP/SAVPF 96 97\r\n"),
            "{t}"
        );
        assert!(
            t.contains("a=mid:1\r\n") && t.contains("a=rtcp-fb:96 nack pli\r\n"),
            "the browser's mid and feedback for what it offered: {t}"
        );

        // The far end refuses video: the browser's video section is refused too.
        let answer = sip_av(0);
        assert!(plain_remote(&answer).unwrap().video.is_none());
        let b = to_webrtc(&answer, &local(), &f, &mut origin(), Some(&offer)).unwrap();
        let t = text(&b);
        assert!(t.contains("m=video 0 "), "{t}");
        assert!(t.contains("a=group:BUNDLE 0\r\n"), "{t}");
    }

    #[test]
    fn sip_video_offer_reaches_the_browser_bundled() {
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let sip = sip_av(40012);
        let mut l = local();
        l.setup = Setup::ActPass;
        let offer = to_webrtc(&sip, &l, &f, &mut origin(), None).unwrap();
        let t = text(&offer);
        assert!(t.contains("a=group:BUNDLE 0 1\r\n"), "{t}");
        assert!(
            t.contains("m=audio 32000 UDP/TLS/RTP/SAVPF 0 101\r\n"),
            "{t}"
        );
        assert!(
            t.contains("m=video 32000 UDP/TLS/RTP/SAVPF 96 97\r\n"),
            "{t}"
        );
        assert!(
            t.contains("a=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n")
                && !t.contains("rtcp-fb:97"),
            "PLI and FIR offered for the codec, not its rtx: {t}"
        );
        assert!(!t.contains("extmap"), "no header extension offered: {t}");
        // The browser answers both sections (as Chrome does: same mids, its own transport).
        let mut answer = offer.clone();
        for m in &mut answer.media {
            m.lines.retain(|(_, v)| !v.starts_with("setup:"));
            m.lines.push(('a', "setup:active".into()));
        }
        let video: SocketAddr = "127.0.0.1:32004".parse().unwrap();
        let audio: SocketAddr = "127.0.0.1:32002".parse().unwrap();
        let out = to_plain(&answer, audio, Some(video), &f, &mut origin(), Some(&sip)).unwrap();
        let t = text(&out);
        assert!(t.contains("m=audio 32002 RTP/AVP 0 101\r\n"), "{t}");
        assert!(t.contains("m=video 32004 RTP/AVP 96 97\r\n"), "{t}");
        assert!(t.contains("a=rtcp:32005\r\n"), "{t}");
        // The browser refuses video: so does the SIP answer.
        answer.media[1].port = 0;
        let out = to_plain(&answer, audio, Some(video), &f, &mut origin(), Some(&sip)).unwrap();
        let t = text(&out);
        assert!(t.contains("m=video 0 "), "{t}");
        assert!(t.contains("m=audio 32002 "), "{t}");
    }

    #[test]
    fn every_sipjs_fixture_translates() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sipjs");
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let mut seen = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "txt") {
                continue;
            }
            let raw = std::fs::read(&path).unwrap();
            let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let Ok(sdp) = Sdp::parse(&raw[i + 4..]) else {
                continue;
            };
            seen += 1;
            let name = path.display().to_string();
            let plain = to_plain(
                &sdp,
                "127.0.0.1:32002".parse().unwrap(),
                None,
                &f,
                &mut origin(),
                None,
            )
            .unwrap();
            for line in text(&plain).lines() {
                let (t, v) = line.split_at(2);
                assert!(
                    ["v=", "o=", "s=", "t=", "m=", "c=", "a="].contains(&t),
                    "{name}: {line}"
                );
                if t == "a=" {
                    let n = v.split(':').next().unwrap();
                    assert!(
                        [
                            "rtpmap", "fmtp", "rtcp", "sendrecv", "sendonly", "recvonly",
                            "inactive"
                        ]
                        .contains(&n),
                        "{name}: {line} on the SIP side"
                    );
                }
                if let Some(m) = line.strip_prefix("m=") {
                    assert!(m.starts_with("audio 32002 RTP/AVP "), "{name}: {line}");
                }
            }
            let back = to_webrtc(&plain, &local(), &f, &mut origin(), Some(&sdp)).unwrap();
            let t = text(&back);
            assert_eq!(back.media.len(), sdp.media.len(), "{name}");
            assert_eq!(t.matches("a=ice-ufrag:AbCd").count(), 1, "{name}");
            assert_eq!(t.matches("a=candidate:").count(), 1, "{name}");
            assert!(
                t.contains("a=ice-lite")
                    && t.contains("a=end-of-candidates")
                    && t.contains("a=rtcp-mux"),
                "{name}"
            );
            for m in &sdp.media {
                if let Some(mid) = m.attr("mid") {
                    assert!(
                        t.contains(&format!("a=mid:{mid}")),
                        "{name}: mid {mid} kept"
                    );
                }
            }
            assert!(!t.contains(" UDP/TLS/RTP/SAVP "), "{name}: never SAVP");
        }
        assert!(seen >= 6, "fixtures with SDP: {seen}");
    }

    #[test]
    fn answers_respect_the_offered_direction() {
        use Direction::*;
        assert_eq!(answer_direction(SendOnly, SendRecv), RecvOnly);
        assert_eq!(answer_direction(RecvOnly, SendRecv), SendOnly);
        assert_eq!(answer_direction(Inactive, SendRecv), Inactive);
        assert_eq!(answer_direction(SendRecv, SendOnly), SendOnly);
        assert_eq!(answer_direction(SendOnly, SendOnly), Inactive);
        // A far end that answers a hold with sendrecv (SIPp does) still gives the browser a
        // valid answer: recvonly.
        let offer = body(include_bytes!("../../tests/fixtures/sipjs/invite.txt"));
        let held = Sdp::parse(
            &text(&offer)
                .replace("a=sendrecv", "a=sendonly")
                .into_bytes(),
        )
        .unwrap();
        let far = Sdp::parse(SIPP_OFFER.as_bytes()).unwrap();
        let f = PtFilter::parse(DEFAULT_PTS).unwrap();
        let out = text(&to_webrtc(&far, &local(), &f, &mut origin(), Some(&held)).unwrap());
        assert!(
            out.contains("a=recvonly") && !out.contains("a=sendrecv"),
            "{out}"
        );
        let sip_held = Sdp::parse(
            SIPP_OFFER
                .replace("t=0 0", "t=0 0\r\na=sendonly")
                .as_bytes(),
        )
        .unwrap();
        let answer = body(include_bytes!(
            "../../tests/fixtures/sipjs/callee-200-ok-sdp-answer.txt"
        ));
        let out = text(
            &to_plain(
                &answer,
                "127.0.0.1:32004".parse().unwrap(),
                None,
                &f,
                &mut origin(),
                Some(&sip_held),
            )
            .unwrap(),
        );
        assert!(out.contains("a=recvonly"), "{out}");
    }
}
