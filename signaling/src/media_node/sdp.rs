//! The SDP an ng `offer` or `answer` returns, per leg, following rtpengine's rules
//! (`../shared/notes/ng-protocol.md` §3): everything that describes the media (formats,
//! rtpmap/fmtp/rtcp-fb, msid, ssrc, extmap, direction, mid) passes through; everything that
//! describes the transport (addresses, ports, profile, ICE, DTLS, SDES, rtcp/rtcp-mux) is ours.
//!
//! Pure: the input SDP and our leg's local parameters in, the SDP out.

use std::net::IpAddr;

use engine::api::{LocalLeg, Setup};
use ng::request::CodecOps;

use crate::sdp::model::{Media, Sdp};
use crate::sdp::pts::static_encoding;
use crate::sdp::translate::{relayed_section, video_section};

/// The transport of one leg of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ICE-lite + DTLS-SRTP, rtcp-mux, one bundled port.
    WebRtc,
    /// RTP/RTCP on an even/odd pair per section.
    Plain,
}

impl Kind {
    /// What an SDP section's profile asks for: DTLS-SRTP (`UDP/TLS/...`, or SAVP(F) with a
    /// fingerprint) is WebRTC, the rest plain.
    pub fn of_section(sdp: &Sdp, m: &Media) -> Kind {
        let p = m.proto.to_ascii_uppercase();
        let fingerprint = m.has_attr("fingerprint") || sdp.attr("fingerprint").is_some();
        if p.starts_with("UDP/TLS/") || (p.contains("SAVP") && fingerprint) {
            Kind::WebRtc
        } else {
            Kind::Plain
        }
    }
}

/// Offer or answer: decides `a=setup` (and the mids and formats of answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Offer,
    Answer,
}

/// How to write one leg's SDP.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub kind: Kind,
    /// The `m=` profile to write in relayed sections.
    pub profile: &'a str,
    pub local: &'a LocalLeg,
    pub role: Role,
    /// The address in `c=` (and `o=` with `replace_origin`): ours, or `media-address`.
    pub address: IpAddr,
    pub replace_origin: bool,
    /// Plain legs: offer/accept `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// Add `a=mid` to sections without one (`generate-mid`).
    pub generate_mid: bool,
    /// Answers: the mids of the offer they answer, by section (a section the offer gave no
    /// mid gets none). Offers: `None`, the input's mids pass.
    pub mids: Option<&'a [Option<String>]>,
    /// Answers: the offer they answer. Formats its section did not have are dropped from the
    /// answer (RFC 3264 §6.1 forbids them; rtpengine drops them too). Offers: `None`.
    pub offer: Option<&'a Sdp>,
    /// The party's own last SDP says `a=ice-options:trickle` in its sections (Chrome does;
    /// Firefox says it at session level): then, as rtpengine does, we write
    /// `a=ice-options:trickle` and `a=end-of-candidates` (all our candidates are in the SDP).
    pub trickle: bool,
    pub codec: &'a CodecOps,
}

/// Why the output SDP cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no audio or video RTP section")]
    NoRtpSection,
    #[error("no codecs left after the codec operations")]
    NoCodec,
    #[error("the engine's leg does not match the SDP")]
    WrongLeg,
}

/// What the output says, besides the SDP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub sdp: Vec<u8>,
    /// `a=crypto` lines were removed (we do not do SDES-SRTP).
    pub stripped_crypto: bool,
}

/// Transport attributes: removed from every relayed section and from the session level.
const TRANSPORT_ATTRS: &[&str] = &[
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "fingerprint",
    "setup",
    "tls-id",
    "crypto",
    "rtcp",
    "rtcp-mux",
    "rtcp-mux-only",
];

fn ip_family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn setup_attr(s: Setup) -> &'static str {
    match s {
        Setup::Active => "active",
        Setup::Passive => "passive",
        Setup::ActPass => "actpass",
    }
}

/// Rewrites `input` (the other party's SDP) for the party `t` describes.
pub fn render(input: &Sdp, t: &Target<'_>) -> Result<Rendered, RenderError> {
    let audio = relayed_section(input).ok_or(RenderError::NoRtpSection)?;
    let video = video_section(input);
    let mut out = input.clone();
    let mut stripped_crypto = false;
    let conn = format!("IN {} {}", ip_family(t.address), t.address);

    // Session level. A session-level direction moves into each relayed section that has none
    // (rtpengine writes directions per section only).
    let session_direction = out
        .session
        .iter()
        .find(|(k, v)| *k == 'a' && is_direction(v))
        .map(|(_, v)| v.clone());
    out.session.retain(|(k, v)| {
        if *k != 'a' {
            return true;
        }
        if is_direction(v) {
            return false;
        }
        let name = v.split(':').next().unwrap_or(v);
        if name.eq_ignore_ascii_case("crypto") {
            stripped_crypto = true;
        }
        let bundle = name.eq_ignore_ascii_case("group")
            && v.split_once(':')
                .is_some_and(|(_, g)| g.trim_start().starts_with("BUNDLE"));
        !(bundle || TRANSPORT_ATTRS.iter().any(|a| name.eq_ignore_ascii_case(a)))
    });
    let mut has_session_c = false;
    for (k, v) in &mut out.session {
        match k {
            'c' => {
                *v = conn.clone();
                has_session_c = true;
            }
            'o' if t.replace_origin => {
                let mut parts: Vec<&str> = v.split_whitespace().collect();
                if parts.len() == 6 {
                    parts[4] = ip_family(t.address);
                    let addr = t.address.to_string();
                    parts[5] = &addr;
                    *v = parts.join(" ");
                }
            }
            _ => {}
        }
    }

    // Media sections.
    let relayed: Vec<usize> = std::iter::once(audio).chain(video).collect();
    // Sections on one port must be bundled (RFC 8843); one section needs no group (rtpengine
    // writes none either), but keeps the offer's mid.
    let bundle = t.kind == Kind::WebRtc && relayed.len() > 1;
    let mut mids = Vec::new();
    for (i, m) in out.media.iter_mut().enumerate() {
        let Some(slot) = relayed.iter().position(|&r| r == i) else {
            // Not relayed: rejected (RFC 3264 §6: port 0, the section kept).
            m.port = 0;
            continue;
        };
        let (port, rtcp_port) = match (t.local, slot) {
            (LocalLeg::WebRtc { addr, .. }, _) => (addr.port(), addr.port()),
            (LocalLeg::Plain { rtp, .. }, 0) => (rtp.port(), rtp.port() + 1),
            (LocalLeg::Plain { video_rtp, .. }, _) => match video_rtp {
                Some(v) => (v.port(), v.port() + 1),
                None => (0, 0),
            },
            (LocalLeg::Echo, _) => return Err(RenderError::WrongLeg),
        };
        m.port = port;
        m.proto = t.profile.to_string();
        m.lines.retain(|(k, v)| {
            if *k != 'a' {
                return true;
            }
            let name = v.split(':').next().unwrap_or(v);
            if name.eq_ignore_ascii_case("crypto") {
                stripped_crypto = true;
            }
            !TRANSPORT_ATTRS.iter().any(|a| name.eq_ignore_ascii_case(a))
        });
        let mut has_c = false;
        for (k, v) in &mut m.lines {
            if *k == 'c' {
                *v = conn.clone();
                has_c = true;
            }
        }
        if !has_c && !has_session_c {
            m.lines.insert(0, ('c', conn.clone()));
        }
        apply_codec_ops(m, t.codec)?;
        if let Some(offered) = t.offer.and_then(|o| o.media.get(i)) {
            keep_offered(m, offered)?;
        }
        if port == 0 {
            continue;
        }
        add_static_rtpmaps(m);
        // Every section says its direction, as rtpengine writes it: its own, else the
        // session's, else the default (RFC 4566 §6).
        if !m.lines.iter().any(|(k, v)| *k == 'a' && is_direction(v)) {
            let dir = session_direction.as_deref().unwrap_or("sendrecv");
            m.lines.push(('a', dir.to_string()));
        }
        // The mid: in answers the offer's (RFC 8843 §7.3), in offers the section's own, or a
        // new one when the sections are bundled or `generate-mid` asks.
        let mid = match t.mids {
            Some(offer) => {
                m.lines
                    .retain(|(k, v)| !(*k == 'a' && v.starts_with("mid:")));
                offer.get(i).cloned().flatten()
            }
            None => m.attr("mid").map(str::to_string),
        };
        let mid = match mid {
            Some(mid) => {
                if m.attr("mid").is_none() {
                    m.lines.push(('a', format!("mid:{mid}")));
                }
                Some(mid)
            }
            None if t.mids.is_none() && (bundle || t.generate_mid) => {
                let mid = i.to_string();
                m.lines.push(('a', format!("mid:{mid}")));
                Some(mid)
            }
            None => None,
        };
        if let Some(mid) = mid {
            mids.push(mid);
        }
        match t.local {
            LocalLeg::WebRtc {
                addr,
                ice_ufrag,
                ice_pwd,
                fingerprint,
                setup,
            } => {
                let setup = match t.role {
                    Role::Offer => Setup::ActPass,
                    Role::Answer => *setup,
                };
                m.lines.push(('a', format!("rtcp:{rtcp_port}")));
                m.lines.push(('a', "rtcp-mux".into()));
                m.lines.push(('a', format!("setup:{}", setup_attr(setup))));
                m.lines.push(('a', format!("fingerprint:{fingerprint}")));
                m.lines.push(('a', format!("ice-ufrag:{ice_ufrag}")));
                m.lines.push(('a', format!("ice-pwd:{ice_pwd}")));
                let ip = if addr.ip().is_unspecified() {
                    t.address
                } else {
                    addr.ip()
                };
                m.lines.push((
                    'a',
                    format!("candidate:1 1 UDP 2130706431 {ip} {} typ host", addr.port()),
                ));
                if t.trickle {
                    m.lines.push(('a', "ice-options:trickle".into()));
                    m.lines.push(('a', "end-of-candidates".into()));
                }
            }
            LocalLeg::Plain { .. } => {
                m.lines.push(('a', format!("rtcp:{rtcp_port}")));
                if t.rtcp_mux {
                    m.lines.push(('a', "rtcp-mux".into()));
                }
            }
            LocalLeg::Echo => return Err(RenderError::WrongLeg),
        }
    }
    if t.kind == Kind::WebRtc {
        out.session.push(('a', "ice-lite".into()));
        if bundle && !mids.is_empty() {
            out.session
                .push(('a', format!("group:BUNDLE {}", mids.join(" "))));
        }
    }
    Ok(Rendered {
        sdp: out.to_bytes(),
        stripped_crypto,
    })
}

/// `a=sendrecv` / `sendonly` / `recvonly` / `inactive`.
fn is_direction(attr: &str) -> bool {
    ["sendrecv", "sendonly", "recvonly", "inactive"]
        .iter()
        .any(|d| attr.eq_ignore_ascii_case(d))
}

/// An `a=rtpmap` for each static payload type that has none (rtpengine writes them all), after
/// the section's last rtpmap.
fn add_static_rtpmaps(m: &mut Media) {
    let missing: Vec<(char, String)> = m
        .fmts
        .iter()
        .filter(|f| m.rtpmap(f).is_none())
        .filter_map(|f| {
            Some((
                'a',
                format!("rtpmap:{f} {}", static_encoding(f.parse().ok()?)?),
            ))
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let at = m
        .lines
        .iter()
        .rposition(|(k, v)| *k == 'a' && v.starts_with("rtpmap:"))
        .map_or(m.lines.len(), |i| i + 1);
    m.lines.splice(at..at, missing);
}

/// The encoding name of format `fmt` in `m` (`PCMU`, `opus`), from its rtpmap or the static
/// table.
fn encoding_name(m: &Media, fmt: &str) -> Option<String> {
    let enc = m
        .rtpmap(fmt)
        .map(str::to_string)
        .or_else(|| static_encoding(fmt.parse().ok()?).map(str::to_string))?;
    Some(enc.split('/').next().unwrap_or_default().to_string())
}

/// Whether `fmt` is named by a codec list entry: a payload type number, an encoding name, or
/// `all`.
fn named(m: &Media, fmt: &str, list: &[String]) -> bool {
    let name = encoding_name(m, fmt);
    list.iter().any(|e| {
        e.eq_ignore_ascii_case("all")
            || e == fmt
            || name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(e.split('/').next().unwrap_or(e)))
    })
}

/// `codec: {strip, mask, except}`: formats removed from the output section. `offer`, `set`,
/// `transcode`, `accept` and `consume` need a transcoder, which we do not have: they are ignored
/// (the caller logs them once).
fn apply_codec_ops(m: &mut Media, ops: &CodecOps) -> Result<(), RenderError> {
    if ops.strip.is_empty() && ops.mask.is_empty() && ops.except.is_empty() {
        return Ok(());
    }
    let removed: Vec<String> = m
        .fmts
        .iter()
        .filter(|f| {
            let stripped = named(m, f, &ops.strip) || named(m, f, &ops.mask);
            let excepted = !ops.except.is_empty() && named(m, f, &ops.except);
            // `except` alone keeps only what it names (rtpengine: strip all but these).
            (stripped && !excepted)
                || (!ops.except.is_empty()
                    && ops.strip.is_empty()
                    && ops.mask.is_empty()
                    && !excepted)
        })
        .cloned()
        .collect();
    remove_formats(m, &removed)
}

/// `name/rate` of format `fmt` in `m`, case-folded (`pcmu/8000`, `opus/48000`).
fn encoding_key(m: &Media, fmt: &str) -> Option<String> {
    let enc = m
        .rtpmap(fmt)
        .map(str::to_string)
        .or_else(|| static_encoding(fmt.parse().ok()?).map(str::to_string))?;
    let mut parts = enc.split('/');
    let (name, rate) = (parts.next()?, parts.next()?);
    Some(format!("{}/{}", name.to_ascii_lowercase(), rate.trim()))
}

/// Answers: keeps only the formats of `m` that the offer's section `offered` had, by payload
/// type number or by encoding (name and clock rate).
fn keep_offered(m: &mut Media, offered: &Media) -> Result<(), RenderError> {
    let offered_encodings: Vec<String> = offered
        .fmts
        .iter()
        .filter_map(|f| encoding_key(offered, f))
        .collect();
    let removed: Vec<String> = m
        .fmts
        .iter()
        .filter(|f| {
            !offered.fmts.contains(f)
                && !encoding_key(m, f).is_some_and(|e| offered_encodings.contains(&e))
        })
        .cloned()
        .collect();
    remove_formats(m, &removed)
}

/// Removes `removed` from `m`'s formats with their rtpmap/fmtp/rtcp-fb lines; an error when no
/// format is left.
fn remove_formats(m: &mut Media, removed: &[String]) -> Result<(), RenderError> {
    if removed.is_empty() {
        return Ok(());
    }
    m.fmts.retain(|f| !removed.contains(f));
    if m.fmts.is_empty() {
        return Err(RenderError::NoCodec);
    }
    m.lines.retain(|(k, v)| {
        if *k != 'a' {
            return true;
        }
        let (name, rest) = v.split_once(':').unwrap_or((v, ""));
        let per_format = ["rtpmap", "fmtp", "rtcp-fb"]
            .iter()
            .any(|a| name.eq_ignore_ascii_case(a));
        let fmt = rest.split_whitespace().next().unwrap_or("");
        !(per_format && removed.iter().any(|r| r == fmt))
    });
    Ok(())
}

/// The mids of `sdp`'s sections, by index.
pub fn mids_of(sdp: &Sdp) -> Vec<Option<String>> {
    sdp.media
        .iter()
        .map(|m| m.attr("mid").map(str::to_string))
        .collect()
}

/// Whether any section (or the session) has an `a=crypto` line.
pub fn has_crypto(sdp: &Sdp) -> bool {
    sdp.attr("crypto").is_some() || sdp.media.iter().any(|m| m.has_attr("crypto"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_offer(input: &str) -> String {
        let leg = LocalLeg::Plain {
            rtp: "127.0.0.1:17002".parse().unwrap(),
            video_rtp: None,
        };
        let codec = CodecOps::default();
        let t = Target {
            kind: Kind::Plain,
            profile: "RTP/AVP",
            local: &leg,
            role: Role::Offer,
            address: "127.0.0.1".parse().unwrap(),
            replace_origin: true,
            rtcp_mux: false,
            generate_mid: false,
            mids: None,
            offer: None,
            trickle: false,
            codec: &codec,
        };
        let out = render(&Sdp::parse(input.as_bytes()).unwrap(), &t).unwrap();
        String::from_utf8(out.sdp).unwrap()
    }

    const TERSE: &str = "v=0\r\no=uac 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
        t=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n";

    /// A terse SIP offer (no direction, a static payload type without rtpmap) comes out as
    /// rtpengine writes it (found by bench/tests/ng_differential.rs): `a=sendrecv` and
    /// `a=rtpmap:8 PCMA/8000` in the section.
    #[test]
    fn terse_offer_gets_direction_and_static_rtpmaps() {
        let out = plain_offer(TERSE);
        let media = &out[out.find("m=audio").unwrap()..];
        assert!(media.contains("a=sendrecv\r\n"), "{out}");
        assert!(media.contains("a=rtpmap:8 PCMA/8000\r\n"), "{out}");
        assert_eq!(out.matches("a=rtpmap:0 ").count(), 1, "{out}");
        // The dynamic type keeps its own rtpmap; none is invented for it.
        assert_eq!(out.matches("a=rtpmap:101 ").count(), 1, "{out}");
    }

    /// An answer keeps only what the offer had (by payload type, or by encoding when the
    /// answerer renumbered a dynamic type), with those formats' attributes.
    #[test]
    fn answer_keeps_only_offered_formats() {
        let offer = Sdp::parse(TERSE.as_bytes()).unwrap();
        let answer = "v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 45421 UDP/TLS/RTP/SAVPF 111 0 8 126\r\na=rtpmap:111 opus/48000/2\r\n\
            a=fmtp:111 minptime=10\r\na=rtcp-fb:111 transport-cc\r\na=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:8 PCMA/8000\r\na=rtpmap:126 telephone-event/8000\r\na=sendrecv\r\n";
        let leg = LocalLeg::Plain {
            rtp: "127.0.0.1:17002".parse().unwrap(),
            video_rtp: None,
        };
        let codec = CodecOps::default();
        let t = Target {
            kind: Kind::Plain,
            profile: "RTP/AVP",
            local: &leg,
            role: Role::Answer,
            address: "127.0.0.1".parse().unwrap(),
            replace_origin: true,
            rtcp_mux: false,
            generate_mid: false,
            mids: None,
            offer: Some(&offer),
            trickle: false,
            codec: &codec,
        };
        let out = render(&Sdp::parse(answer.as_bytes()).unwrap(), &t).unwrap();
        let out = String::from_utf8(out.sdp).unwrap();
        assert!(out.contains("m=audio 17002 RTP/AVP 0 8 126\r\n"), "{out}");
        assert!(!out.contains(":111"), "{out}");
        assert!(out.contains("a=rtpmap:126 telephone-event/8000"), "{out}");
        // Nothing in common: no answer.
        let none = answer.replace(" 111 0 8 126", " 111");
        assert_eq!(
            render(&Sdp::parse(none.as_bytes()).unwrap(), &t),
            Err(RenderError::NoCodec)
        );
    }

    /// A session-level direction moves into the section; a section's own direction stays the
    /// only one.
    #[test]
    fn session_direction_moves_into_the_section() {
        let held = TERSE.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        let out = plain_offer(&held);
        let (session, media) = out.split_at(out.find("m=audio").unwrap());
        assert!(!session.contains("a=sendonly"), "{out}");
        assert!(media.contains("a=sendonly\r\n"), "{out}");
        assert!(!media.contains("a=sendrecv"), "{out}");
        let own = format!("{TERSE}a=recvonly\r\n");
        let out = plain_offer(&own);
        assert_eq!(out.matches("a=recvonly").count(), 1, "{out}");
        assert!(!out.contains("a=sendrecv"), "{out}");
    }
}
