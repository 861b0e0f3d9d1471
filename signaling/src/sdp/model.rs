//! A line-preserving SDP model (RFC 4566/8866): session lines, then media sections, each a
//! list of `type=value` lines. Unknown lines survive a parse and print unchanged.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("SDP line {0} is not type=value")]
    BadLine(usize),
    #[error("SDP does not start with v=0")]
    NoVersion,
    #[error("malformed m= line: {0}")]
    BadMedia(String),
    #[error("SDP too large")]
    TooLarge,
}

/// One media section: the `m=` line's fields and the lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub fmts: Vec<String>,
    pub lines: Vec<(char, String)>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub session: Vec<(char, String)>,
    pub media: Vec<Media>,
}

/// Largest SDP accepted.
pub const MAX_SDP_BYTES: usize = 32 * 1024;

impl Sdp {
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        if body.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut sdp = Sdp {
            session: Vec::new(),
            media: Vec::new(),
        };
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() {
                continue;
            }
            let mut chars = line.chars();
            let (Some(t), Some('=')) = (chars.next(), chars.next()) else {
                return Err(SdpError::BadLine(i + 1));
            };
            let value = line[2..].to_string();
            if t == 'm' {
                sdp.media.push(parse_m(&value)?);
            } else if let Some(m) = sdp.media.last_mut() {
                m.lines.push((t, value));
            } else {
                sdp.session.push((t, value));
            }
        }
        if sdp.session.first() != Some(&('v', "0".to_string())) {
            return Err(SdpError::NoVersion);
        }
        Ok(sdp)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(1024);
        for (t, v) in &self.session {
            let _ = write!(out, "{t}={v}\r\n");
        }
        for m in &self.media {
            let _ = write!(out, "m={} {} {}", m.kind, m.port, m.proto);
            for f in &m.fmts {
                out.push(' ');
                out.push_str(f);
            }
            out.push_str("\r\n");
            for (t, v) in &m.lines {
                let _ = write!(out, "{t}={v}\r\n");
            }
        }
        out.into_bytes()
    }

    /// Session-level `a=name[:value]` values.
    pub fn attrs<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        attrs_of(&self.session, name)
    }

    pub fn attr<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.attrs(name).next()
    }

    /// The session-level `c=` address.
    pub fn connection(&self) -> Option<IpAddr> {
        connection_of(&self.session)
    }
}

impl Media {
    pub fn attrs<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        attrs_of(&self.lines, name)
    }

    pub fn attr<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.attrs(name).next()
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attrs(name).next().is_some()
    }

    /// The media-level `c=` address.
    pub fn connection(&self) -> Option<IpAddr> {
        connection_of(&self.lines)
    }

    /// Removes every `a=name...` line for which `pred(name, value)` holds.
    pub fn remove_attrs(&mut self, mut pred: impl FnMut(&str, &str) -> bool) {
        self.lines.retain(|(t, v)| {
            if *t != 'a' {
                return true;
            }
            let (n, val) = v.split_once(':').unwrap_or((v, ""));
            !pred(n, val)
        });
    }

    /// `a=rtpmap:<pt> <encoding>` for `pt`.
    pub fn rtpmap(&self, pt: &str) -> Option<&str> {
        self.attrs("rtpmap").find_map(|v| {
            let (p, enc) = v.split_once(' ')?;
            (p == pt).then(|| enc.trim())
        })
    }

    /// Payload type numbers of an RTP section.
    pub fn payload_types(&self) -> Vec<u8> {
        self.fmts.iter().filter_map(|f| f.parse().ok()).collect()
    }

    pub fn is_rtp(&self) -> bool {
        let p = self.proto.to_ascii_uppercase();
        p.contains("RTP/AVP") || p.contains("RTP/SAVP")
    }
}

fn attrs_of<'a, 'n>(
    lines: &'a [(char, String)],
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    lines
        .iter()
        .filter(|(t, _)| *t == 'a')
        .filter_map(move |(_, v)| {
            let (n, val) = v.split_once(':').unwrap_or((v.as_str(), ""));
            n.eq_ignore_ascii_case(name).then_some(val)
        })
}

fn connection_of(lines: &[(char, String)]) -> Option<IpAddr> {
    lines.iter().find(|(t, _)| *t == 'c').and_then(|(_, v)| {
        let mut it = v.split_whitespace();
        let (_net, _fam, addr) = (it.next()?, it.next()?, it.next()?);
        addr.split('/').next()?.parse().ok()
    })
}

fn parse_m(v: &str) -> Result<Media, SdpError> {
    let mut it = v.split_whitespace();
    let bad = || SdpError::BadMedia(v.to_string());
    let kind = it.next().ok_or_else(bad)?.to_string();
    let port = it.next().ok_or_else(bad)?;
    let port = port
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| bad())?;
    let proto = it.next().ok_or_else(bad)?.to_string();
    Ok(Media {
        kind,
        port,
        proto,
        fmts: it.map(str::to_string).collect(),
        lines: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(fixture: &[u8]) -> &[u8] {
        let i = fixture.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        &fixture[i + 4..]
    }

    #[test]
    fn chromium_offer_round_trips() {
        let b = body(include_bytes!("../../tests/fixtures/sipjs/invite.txt"));
        let sdp = Sdp::parse(b).unwrap();
        assert_eq!(sdp.media.len(), 1);
        let m = &sdp.media[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.proto.as_str()),
            ("audio", 45421, "UDP/TLS/RTP/SAVPF")
        );
        assert_eq!(m.payload_types(), vec![111, 63, 9, 0, 8, 13, 110, 126]);
        assert_eq!(m.rtpmap("126"), Some("telephone-event/8000"));
        assert_eq!(m.attr("ice-ufrag"), Some("rTFx"));
        assert_eq!(sdp.attr("group"), Some("BUNDLE 0"));
        assert_eq!(m.connection(), Some("192.0.2.2".parse().unwrap()));
        assert_eq!(Sdp::parse(&sdp.to_bytes()).unwrap(), sdp);
        assert_eq!(sdp.to_bytes(), b.to_vec());
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(Sdp::parse(b"o=x\r\n"), Err(SdpError::NoVersion));
        assert!(matches!(
            Sdp::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n"),
            Err(SdpError::BadMedia(_))
        ));
        assert_eq!(Sdp::parse(b"v=0\r\nbogus\r\n"), Err(SdpError::BadLine(2)));
        assert_eq!(Sdp::parse(&[0xff, 0xfe]), Err(SdpError::NotUtf8));
    }
}
