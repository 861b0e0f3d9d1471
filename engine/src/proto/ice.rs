//! ICE-lite, controlled role (RFC 8445 §2.5, §7.3): answer Binding requests, latch the pair the
//! controlling browser nominates, restart on new credentials, and watch consent (RFC 7675).
//!
//! A lite agent never sends checks. It answers a request whose USERNAME is
//! `<local ufrag>:<remote ufrag>` and whose MESSAGE-INTEGRITY verifies under the local password,
//! with XOR-MAPPED-ADDRESS = the request's source (peer-reflexive: the browser may send from an
//! address it never advertised). USE-CANDIDATE nominates that source; a later nomination of
//! another source re-latches (the browser switched networks or restarted ICE).
//!
//! Consent (RFC 7675 §5.1): the browser keeps sending checks; when none has verified for
//! [`CONSENT_TIMEOUT`] the agent reports [`IceEvent::ConsentLost`] and stops accepting media.
//!
//! The response is written over the request in the caller's buffer, so answering a check costs
//! no allocation and the reactor sends it from the buffer it received into.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::entropy::{Entropy, OpenSslEntropy};
use super::stun::{build_binding_success, StunError, StunMessage};

/// RFC 7675 §5.1: consent expires 30 s after the last verified check.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Local ufrag length: RFC 8445 §5.3 asks for at least 24 bits of randomness; 8 characters of
/// the ice-char alphabet give 48 and keep collisions on a shared port unlikely.
pub const UFRAG_LEN: usize = 8;
/// Local password length (RFC 8445 §5.3: at least 128 bits; 24 characters give 144).
pub const PWD_LEN: usize = 24;
/// Validated source addresses remembered per agent (for routing DTLS before nomination).
pub const MAX_VALIDATED: usize = 4;

/// ice-char (RFC 8839 §5.4): ALPHA / DIGIT / "+" / "/".
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// One side's ICE credentials (`a=ice-ufrag`, `a=ice-pwd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
}

impl IceCredentials {
    /// Fresh random local credentials from OpenSSL's CSPRNG (for clients and tests; a session
    /// takes its own from its caller, [`IceCredentials::from_entropy`]).
    pub fn random() -> Result<Self, IceError> {
        Self::from_entropy(&mut OpenSslEntropy)
    }

    /// Fresh local credentials from `entropy`.
    pub fn from_entropy(entropy: &mut dyn Entropy) -> Result<Self, IceError> {
        let mut raw = [0u8; UFRAG_LEN + PWD_LEN];
        entropy.fill(&mut raw).map_err(IceError::Random)?;
        let chars: String = raw
            .iter()
            .map(|b| char::from(ICE_CHARS[usize::from(b & 63)]))
            .collect();
        Ok(Self {
            ufrag: chars[..UFRAG_LEN].to_owned(),
            pwd: chars[UFRAG_LEN..].to_owned(),
        })
    }
}

/// Why the agent could not be set up, or a request was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceError {
    /// The random generator failed.
    #[error("no randomness for ICE credentials: {0}")]
    Random(String),
    /// Not a STUN message, or malformed.
    #[error("malformed STUN: {0}")]
    Malformed(StunError),
    /// A STUN message that is not a Binding request (responses, indications): ignored.
    #[error("not a Binding request")]
    NotRequest,
    /// USERNAME absent or not `<local ufrag>:<remote ufrag>`.
    #[error("unknown USERNAME")]
    BadUsername,
    /// MESSAGE-INTEGRITY missing or wrong, or FINGERPRINT wrong.
    #[error("STUN check failed integrity")]
    BadIntegrity,
    /// The request carries a comprehension-required attribute we do not know.
    #[error("unknown comprehension-required attribute {0:#06x}")]
    UnknownAttribute(u16),
}

/// What the agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceEvent {
    /// A pair was nominated (first time, or re-latched to a new source).
    Nominated(SocketAddr),
    /// No verified check for [`CONSENT_TIMEOUT`]: the path is gone (RFC 7675 §5.1).
    ConsentLost,
}

/// The agent's state (RFC 8445 §6.1.3 checklist states, reduced to what a lite agent sees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceState {
    /// No verified check yet.
    Waiting,
    /// A source was nominated and consent is fresh.
    Connected,
    /// Consent expired.
    Failed,
}

/// A successful check's outcome, returned by [`IceAgent::handle_stun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// Length of the Binding success response now in the caller's buffer.
    pub len: usize,
    /// True if this check's source is newly validated (the reactor routes it to the session).
    pub new_source: bool,
}

/// The ICE-lite agent of one WebRTC leg.
#[derive(Debug)]
pub struct IceAgent {
    local: IceCredentials,
    /// The credentials before a restart, still answered until the new ones are used.
    previous: Option<(IceCredentials, Option<IceCredentials>)>,
    remote: Option<IceCredentials>,
    nominated: Option<SocketAddr>,
    validated: [Option<SocketAddr>; MAX_VALIDATED],
    next_validated: usize,
    last_check: Option<Instant>,
    state: IceState,
    events: [Option<IceEvent>; 2],
}

impl IceAgent {
    /// An agent with `local` credentials and, if known, the browser's.
    pub fn new(local: IceCredentials, remote: Option<IceCredentials>) -> Self {
        Self {
            local,
            previous: None,
            remote,
            nominated: None,
            validated: [None; MAX_VALIDATED],
            next_validated: 0,
            last_check: None,
            state: IceState::Waiting,
            events: [None; 2],
        }
    }

    /// Our credentials for the SDP.
    pub fn local(&self) -> &IceCredentials {
        &self.local
    }

    /// The browser's credentials, once known.
    pub fn remote(&self) -> Option<&IceCredentials> {
        self.remote.as_ref()
    }

    /// The ufrags checks may carry now: the current one and, during a restart, the previous.
    pub fn local_ufrags(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.local.ufrag.as_str())
            .chain(self.previous.as_ref().map(|(c, _)| c.ufrag.as_str()))
    }

    /// The state.
    pub fn state(&self) -> IceState {
        self.state
    }

    /// The nominated (latched) remote address.
    pub fn nominated(&self) -> Option<SocketAddr> {
        self.nominated
    }

    /// True if `addr` passed a verified check (nominated or not).
    pub fn is_validated(&self, addr: SocketAddr) -> bool {
        self.nominated == Some(addr) || self.validated.contains(&Some(addr))
    }

    /// The remembered validated sources.
    pub fn validated(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.validated.iter().flatten().copied()
    }

    /// The browser's credentials became known (an answer to our offer), without a restart.
    pub fn set_remote(&mut self, remote: IceCredentials) {
        self.remote = Some(remote);
    }

    /// ICE restart (RFC 8445 §9, RFC 8839 §4.4.1.1.1): the browser sent new credentials, we
    /// answer with new ones too. The old pair keeps carrying media until the browser nominates
    /// on the new credentials; checks with the old ones are still answered until then.
    pub fn restart(&mut self, local: IceCredentials, remote: IceCredentials) {
        let old_local = std::mem::replace(&mut self.local, local);
        let old_remote = self.remote.replace(remote);
        self.previous = Some((old_local, old_remote));
    }

    /// Handles a STUN datagram `buf[..len]` from `src`; on success the Binding success response
    /// replaces it in `buf` (which must have room for it: a response is at most 80 bytes).
    pub fn handle_stun(
        &mut self,
        now: Instant,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Answered, IceError> {
        let msg = StunMessage::parse(&buf[..len.min(buf.len())]).map_err(IceError::Malformed)?;
        if !msg.is_binding_request() {
            return Err(IceError::NotRequest);
        }
        if let Some(a) = msg.unknown_comprehension_required() {
            return Err(IceError::UnknownAttribute(a));
        }
        let username = msg.username().ok_or(IceError::BadUsername)?;
        let creds_current = matches_username(username, &self.local, self.remote.as_ref());
        let on_previous = !creds_current
            && self
                .previous
                .as_ref()
                .is_some_and(|(l, r)| matches_username(username, l, r.as_ref()));
        if !creds_current && !on_previous {
            return Err(IceError::BadUsername);
        }
        msg.verify_integrity(self.pwd(creds_current).as_bytes())
            .map_err(|_| IceError::BadIntegrity)?;
        if msg.has_fingerprint() {
            msg.verify_fingerprint()
                .map_err(|_| IceError::BadIntegrity)?;
        }
        let use_candidate = msg.use_candidate();
        let txid = *msg.txid();
        let new_source = !self.is_validated(src);
        if new_source {
            self.validated[self.next_validated] = Some(src);
            self.next_validated = (self.next_validated + 1) % MAX_VALIDATED;
        }
        self.last_check = Some(now);
        // A nomination on the old credentials during a restart is the old pair still being
        // refreshed; only the current credentials re-latch.
        if use_candidate && (creds_current || self.nominated.is_none()) {
            if self.nominated != Some(src) {
                self.nominated = Some(src);
                self.push_event(IceEvent::Nominated(src));
            }
            self.state = IceState::Connected;
        }
        let len = build_binding_success(buf, &txid, src, self.pwd(creds_current).as_bytes())
            .map_err(IceError::Malformed)?;
        if creds_current {
            // The new credentials are in use: the restart is over.
            self.previous = None;
        }
        Ok(Answered { len, new_source })
    }

    /// The password of the current credentials, or of the previous ones during a restart.
    fn pwd(&self, current: bool) -> &str {
        match (&self.previous, current) {
            (Some((old, _)), false) => &old.pwd,
            _ => &self.local.pwd,
        }
    }

    /// When consent runs out, if anything was nominated.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.state, self.last_check) {
            (IceState::Connected, Some(t)) => Some(t + CONSENT_TIMEOUT),
            _ => None,
        }
    }

    /// Checks consent freshness.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.state = IceState::Failed;
                self.nominated = None;
                self.validated = [None; MAX_VALIDATED];
                self.push_event(IceEvent::ConsentLost);
            }
        }
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        let e = self.events[0].take();
        self.events.rotate_left(1);
        e
    }

    fn push_event(&mut self, e: IceEvent) {
        match self.events.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(e),
            // Two unread events at most matter: keep the newest.
            None => self.events[1] = Some(e),
        }
    }
}

/// RFC 8445 §7.3.1.1 seen from the answering side: `<our ufrag>:<their ufrag>`. Before the
/// browser's SDP is known any remote part is accepted (the integrity check still binds the
/// request to our password).
fn matches_username(
    username: &[u8],
    local: &IceCredentials,
    remote: Option<&IceCredentials>,
) -> bool {
    let Some(colon) = username.iter().position(|&b| b == b':') else {
        return false;
    };
    let (ours, theirs) = (&username[..colon], &username[colon + 1..]);
    ours == local.ufrag.as_bytes() && remote.is_none_or(|r| theirs == r.ufrag.as_bytes())
}

/// The local ufrag of a STUN request's USERNAME (the part before the colon), for routing a check
/// on a shared port to its session without a full parse.
pub fn local_ufrag_of(buf: &[u8]) -> Option<&[u8]> {
    let msg = StunMessage::parse(buf).ok()?;
    let username = msg.username()?;
    let colon = username.iter().position(|&b| b == b':')?;
    Some(&username[..colon])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::stun::{Class, StunWriter, METHOD_BINDING};
    use testkit::VirtualClock;

    fn creds(u: &str, p: &str) -> IceCredentials {
        IceCredentials {
            ufrag: u.into(),
            pwd: p.into(),
        }
    }

    /// A browser's check: USERNAME, PRIORITY, ICE-CONTROLLING, maybe USE-CANDIDATE, MI, FP.
    fn check(buf: &mut [u8], user: &str, pwd: &str, nominate: bool, tx: u8) -> usize {
        let mut w = StunWriter::new(buf, METHOD_BINDING, Class::Request, &[tx; 12])
            .unwrap()
            .username(user.as_bytes())
            .unwrap()
            .priority(1_845_501_695)
            .unwrap()
            .ice_controlling(42)
            .unwrap();
        if nominate {
            w = w.use_candidate().unwrap();
        }
        w.message_integrity(pwd.as_bytes())
            .unwrap()
            .fingerprint()
            .unwrap()
            .finish()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn answers_and_latches_on_use_candidate() {
        let now = VirtualClock::new().now();
        let mut ice = IceAgent::new(
            creds("LOCL", "localpassword1234567890"),
            Some(creds("rem", "x")),
        );
        let mut buf = [0u8; 256];
        let src = addr("127.0.0.1:5000");
        let n = check(&mut buf, "LOCL:rem", "localpassword1234567890", false, 1);
        let a = ice.handle_stun(now, src, &mut buf, n).unwrap();
        assert!(a.new_source);
        assert_eq!(ice.state(), IceState::Waiting);
        let resp = StunMessage::parse(&buf[..a.len]).unwrap();
        assert_eq!(resp.class(), Class::Success);
        assert_eq!(resp.txid(), &[1; 12]);
        assert_eq!(resp.xor_mapped_address(), Some(src));
        resp.verify_integrity(b"localpassword1234567890").unwrap();
        resp.verify_fingerprint().unwrap();

        let n = check(&mut buf, "LOCL:rem", "localpassword1234567890", true, 2);
        let a = ice.handle_stun(now, src, &mut buf, n).unwrap();
        assert!(!a.new_source);
        assert_eq!(ice.poll_event(), Some(IceEvent::Nominated(src)));
        assert_eq!(ice.poll_event(), None);
        assert_eq!(ice.nominated(), Some(src));
        assert_eq!(ice.state(), IceState::Connected);
    }

    #[test]
    fn rejects_wrong_username_and_password() {
        let now = VirtualClock::new().now();
        let mut ice = IceAgent::new(
            creds("LOCL", "pw-pw-pw-pw-pw-pw-pw-pw"),
            Some(creds("rem", "x")),
        );
        let mut buf = [0u8; 256];
        let src = addr("127.0.0.1:5000");
        let n = check(&mut buf, "LOCL:other", "pw-pw-pw-pw-pw-pw-pw-pw", true, 1);
        assert_eq!(
            ice.handle_stun(now, src, &mut buf, n),
            Err(IceError::BadUsername)
        );
        let n = check(&mut buf, "LOCL:rem", "wrong", true, 1);
        assert_eq!(
            ice.handle_stun(now, src, &mut buf, n),
            Err(IceError::BadIntegrity)
        );
        assert!(matches!(
            ice.handle_stun(now, src, &mut buf, 3),
            Err(IceError::Malformed(_))
        ));
        assert_eq!(ice.nominated(), None);
        assert_eq!(ice.poll_event(), None);
    }

    #[test]
    fn consent_expires_after_30s_without_checks() {
        let t0 = VirtualClock::new().now();
        let mut ice = IceAgent::new(creds("LOCL", "pw"), Some(creds("rem", "x")));
        let mut buf = [0u8; 256];
        let src = addr("127.0.0.1:5000");
        let n = check(&mut buf, "LOCL:rem", "pw", true, 1);
        ice.handle_stun(t0, src, &mut buf, n).unwrap();
        let _ = ice.poll_event();
        let t1 = t0 + Duration::from_secs(20);
        let n = check(&mut buf, "LOCL:rem", "pw", false, 2);
        ice.handle_stun(t1, src, &mut buf, n).unwrap();
        assert_eq!(ice.poll_timeout(), Some(t1 + CONSENT_TIMEOUT));
        ice.handle_timeout(t1 + Duration::from_secs(29));
        assert_eq!(ice.poll_event(), None);
        ice.handle_timeout(t1 + CONSENT_TIMEOUT);
        assert_eq!(ice.poll_event(), Some(IceEvent::ConsentLost));
        assert_eq!(ice.state(), IceState::Failed);
        assert_eq!(ice.nominated(), None);
    }

    #[test]
    fn restart_relatches_on_new_credentials() {
        let now = VirtualClock::new().now();
        let mut ice = IceAgent::new(creds("OLD1", "oldpw"), Some(creds("r1", "x")));
        let mut buf = [0u8; 256];
        let a1 = addr("127.0.0.1:5000");
        let a2 = addr("127.0.0.2:6000");
        let n = check(&mut buf, "OLD1:r1", "oldpw", true, 1);
        ice.handle_stun(now, a1, &mut buf, n).unwrap();
        assert_eq!(ice.poll_event(), Some(IceEvent::Nominated(a1)));

        ice.restart(creds("NEW2", "newpw"), creds("r2", "y"));
        assert_eq!(ice.local_ufrags().collect::<Vec<_>>(), ["NEW2", "OLD1"]);
        // The old pair keeps being refreshed; it does not move the latch.
        let n = check(&mut buf, "OLD1:r1", "oldpw", true, 2);
        ice.handle_stun(now, a1, &mut buf, n).unwrap();
        assert_eq!(ice.nominated(), Some(a1));
        // The new credentials nominate a new source: re-latch; the old ones are retired.
        let n = check(&mut buf, "NEW2:r2", "newpw", true, 3);
        ice.handle_stun(now, a2, &mut buf, n).unwrap();
        assert_eq!(ice.poll_event(), Some(IceEvent::Nominated(a2)));
        assert_eq!(ice.nominated(), Some(a2));
        assert_eq!(ice.local_ufrags().collect::<Vec<_>>(), ["NEW2"]);
        let n = check(&mut buf, "OLD1:r1", "oldpw", true, 4);
        assert_eq!(
            ice.handle_stun(now, a1, &mut buf, n),
            Err(IceError::BadUsername)
        );
    }

    #[test]
    fn random_credentials_use_ice_chars() {
        let c = IceCredentials::random().unwrap();
        assert_eq!(c.ufrag.len(), UFRAG_LEN);
        assert_eq!(c.pwd.len(), PWD_LEN);
        assert!(c
            .ufrag
            .bytes()
            .chain(c.pwd.bytes())
            .all(|b| ICE_CHARS.contains(&b)));
        assert_ne!(IceCredentials::random().unwrap(), c);
    }

    #[test]
    fn ufrag_of_request() {
        let mut buf = [0u8; 256];
        let n = check(&mut buf, "abcd:efgh", "pw", false, 1);
        assert_eq!(local_ufrag_of(&buf[..n]), Some(&b"abcd"[..]));
        assert_eq!(local_ufrag_of(&buf[..5]), None);
    }

    #[test]
    fn never_panics_on_any_input() {
        let now = VirtualClock::new().now();
        let mut ice = IceAgent::new(creds("LOCL", "pw"), None);
        let src = addr("127.0.0.1:5000");
        let mut rng = testkit::SeededRng::new(0x1234_5678);
        let mut buf = [0u8; 256];
        for i in 0..2000 {
            let n = check(&mut buf, "LOCL:rem", "pw", i % 2 == 0, 1);
            for _ in 0..(i % 5) {
                buf[rng.below(n)] = rng.next_u64() as u8;
            }
            let _ = ice.handle_stun(now, src, &mut buf, rng.below(n + 1));
        }
    }
}
