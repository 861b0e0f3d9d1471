//! What the SIP/UDP flood generator sends (pure: no clock, no sockets): a mix of OPTIONS,
//! INVITEs and REGISTERs as a SIP scanner sends them, each with a fresh Call-ID, branch and
//! From-tag; the pacing of a given rate; the status code of an answer.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// The kinds of request in the mix, in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OPTIONS to a numbered user (a scanner's probe).
    Options,
    /// INVITE to a numbered user with a PCMU offer.
    Invite,
    /// REGISTER of a numbered user, no credentials.
    Register,
}

impl Kind {
    /// The kind of the `n`-th request: OPTIONS, INVITE, REGISTER in turn.
    pub fn of(n: u64) -> Kind {
        match n % 3 {
            0 => Kind::Options,
            1 => Kind::Invite,
            _ => Kind::Register,
        }
    }
}

/// Writes the `n`-th request of the flood into `out` (cleared first). `salt` keeps the
/// identifiers of two runs apart; `from` is the flood's own socket, `to` the gateway's.
pub fn request(n: u64, salt: u64, from: SocketAddr, to: SocketAddr, out: &mut Vec<u8>) {
    out.clear();
    let mut s = String::with_capacity(700);
    let user = 100 + n % 900;
    let host = to.ip();
    let (method, uri, to_uri) = match Kind::of(n) {
        Kind::Options => (
            "OPTIONS",
            format!("sip:{user}@{host}"),
            format!("sip:{user}@{host}"),
        ),
        Kind::Invite => (
            "INVITE",
            format!("sip:{user}@{host}"),
            format!("sip:{user}@{host}"),
        ),
        Kind::Register => (
            "REGISTER",
            format!("sip:{host}"),
            format!("sip:{user}@{host}"),
        ),
    };
    let body = match Kind::of(n) {
        Kind::Invite => format!(
            "v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = from.ip(),
            port = 10_000 + 2 * (n % 20_000)
        ),
        _ => String::new(),
    };
    let _ = write!(
        s,
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-fl{salt:x}-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{host}>;tag=fl{salt:x}{n}\r\n\
         To: <{to_uri}>\r\n\
         Call-ID: fl{salt:x}-{n}@{ip}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:{user}@{from}>\r\n\
         User-Agent: flood (webrtc-phone bench)\r\n",
        ip = from.ip(),
    );
    match Kind::of(n) {
        Kind::Invite => {
            let _ = write!(
                s,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        Kind::Register => s.push_str("Expires: 3600\r\nContent-Length: 0\r\n\r\n"),
        Kind::Options => s.push_str("Accept: application/sdp\r\nContent-Length: 0\r\n\r\n"),
    }
    out.extend_from_slice(s.as_bytes());
}

/// How many requests are due `elapsed` after the start at `rate` per second (`None`: as
/// many as can be sent).
pub fn due(rate: Option<f64>, elapsed: Duration) -> u64 {
    match rate {
        Some(r) => (r * elapsed.as_secs_f64()) as u64,
        None => u64::MAX,
    }
}

/// The status code of a SIP response datagram (`SIP/2.0 NNN ...`), if it is one.
pub fn status_of(datagram: &[u8]) -> Option<u16> {
    let rest = datagram.strip_prefix(b"SIP/2.0 ")?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?;
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use signaling::sip::msg::{Method, SipMsg};

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "127.0.0.66:40000".parse().unwrap(),
            "127.0.0.1:5060".parse().unwrap(),
        )
    }

    #[test]
    fn every_request_parses_with_fresh_identifiers() {
        let (from, to) = addrs();
        let mut buf = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for n in 0..30 {
            request(n, 0xabc, from, to, &mut buf);
            let m = SipMsg::parse(&buf).unwrap_or_else(|e| panic!("{n}: {e:?}"));
            let want = match Kind::of(n) {
                Kind::Options => Method::Options,
                Kind::Invite => Method::Invite,
                Kind::Register => Method::Register,
            };
            assert_eq!(m.method(), Some(&want));
            assert_eq!(m.body.is_empty(), Kind::of(n) != Kind::Invite);
            let via = m.top_via().unwrap();
            assert!(
                ids.insert(via.branch().unwrap().to_string()),
                "branch {n} repeats"
            );
            assert!(ids.insert(m.call_id().to_string()), "Call-ID {n} repeats");
            assert!(buf.len() < 1000);
        }
    }

    #[test]
    fn pacing_and_answers() {
        assert_eq!(due(Some(1000.0), Duration::from_millis(1500)), 1500);
        assert_eq!(due(Some(1000.0), Duration::ZERO), 0);
        assert_eq!(due(None, Duration::ZERO), u64::MAX);
        assert_eq!(status_of(b"SIP/2.0 403 Forbidden\r\n"), Some(403));
        assert_eq!(status_of(b"OPTIONS sip:x SIP/2.0\r\n"), None);
        assert_eq!(status_of(b"SIP/2.0 "), None);
    }
}
