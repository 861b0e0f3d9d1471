//! The demo PBX's registrar: with no upstream configured, any user may register (no password
//! check) and calls between registered users go through the gateway. Nothing of it runs when
//! OUTBOUND_PROXY or OUTBOUND_ROUTE is set.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::errors::SipError;
use super::types::Peer;
use crate::sip::hdr::{NameAddr, SipUri};
use crate::sip::msg::SipMsg;

/// Longest registration granted.
pub const MAX_EXPIRES: u32 = 3600;
/// Registration lifetime when the client names none.
pub const DEFAULT_EXPIRES: u32 = 600;

/// Where a registered user is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub peer: Peer,
    /// The Contact URI as registered (after the connection-name rewrite).
    pub contact: String,
    pub expires_at: Instant,
}

/// The bindings, by user name, with their expiries in order and the users of each peer (so
/// that neither purging nor a closed connection scans every binding).
#[derive(Debug)]
pub struct DemoRegistrar {
    bindings: HashMap<String, Binding>,
    expiries: BTreeSet<(Instant, String)>,
    by_peer: HashMap<Peer, HashSet<String>>,
    max: usize,
}

/// The outcome of one REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    pub user: String,
    pub expires: u32,
    pub response: SipMsg,
}

impl DemoRegistrar {
    /// A registrar holding at most `max` bindings.
    pub fn new(max: usize) -> Self {
        Self {
            bindings: HashMap::new(),
            expiries: BTreeSet::new(),
            by_peer: HashMap::new(),
            max,
        }
    }

    fn remove(&mut self, user: &str) {
        if let Some(b) = self.bindings.remove(user) {
            self.expiries.remove(&(b.expires_at, user.to_string()));
            if let Some(set) = self.by_peer.get_mut(&b.peer) {
                set.remove(user);
                if set.is_empty() {
                    self.by_peer.remove(&b.peer);
                }
            }
        }
    }

    fn insert(&mut self, user: String, b: Binding) {
        self.remove(&user);
        self.expiries.insert((b.expires_at, user.clone()));
        self.by_peer
            .entry(b.peer.clone())
            .or_default()
            .insert(user.clone());
        self.bindings.insert(user, b);
    }

    /// Handles a REGISTER (already rewritten so its Contact leads back to `peer`).
    pub fn handle_register(
        &mut self,
        now: Instant,
        peer: Peer,
        req: &SipMsg,
        tag: &str,
    ) -> RegisterOutcome {
        let user = req
            .to_hdr()
            .and_then(|t| SipUri::parse(&t.uri))
            .and_then(|u| u.user)
            .unwrap_or_default();
        let header_expires = req.header("Expires").and_then(|e| e.parse::<u32>().ok());
        let contacts: Vec<&str> = req.headers_named("Contact").collect();
        if user.is_empty() {
            return RegisterOutcome {
                user,
                expires: 0,
                response: req.response(SipError::UnknownUser.status(), "Not Found", Some(tag)),
            };
        }
        let mut expires = 0;
        if contacts == ["*"] {
            self.remove(&user);
        } else if let Some(c) = contacts
            .iter()
            .find_map(|c| NameAddr::parse(c, "Contact").ok())
        {
            expires = c
                .params
                .value("expires")
                .and_then(|e| e.parse().ok())
                .or(header_expires)
                .unwrap_or(DEFAULT_EXPIRES)
                .min(MAX_EXPIRES);
            if expires == 0 {
                self.remove(&user);
            } else if !self.bindings.contains_key(&user) && self.bindings.len() >= self.max {
                // Full: no new user until bindings expire or are removed.
                let mut response = req.response(
                    SipError::ServiceUnavailable.status(),
                    "Service Unavailable",
                    Some(tag),
                );
                response.push_header("Retry-After", "60");
                return RegisterOutcome {
                    user,
                    expires: 0,
                    response,
                };
            } else {
                self.insert(
                    user.clone(),
                    Binding {
                        peer,
                        contact: c.uri.clone(),
                        expires_at: now + Duration::from_secs(expires.into()),
                    },
                );
            }
        }
        let mut response = req.response(200, "OK", Some(tag));
        if let Some(b) = self.bindings.get(&user) {
            response.push_header("Contact", format!("<{}>;expires={expires}", b.contact));
        }
        RegisterOutcome {
            user,
            expires,
            response,
        }
    }

    /// The live binding of `user`.
    pub fn lookup(&self, now: Instant, user: &str) -> Option<&Binding> {
        self.bindings.get(user).filter(|b| b.expires_at > now)
    }

    /// Forgets every binding reached through `peer` (its WebSocket closed).
    pub fn forget_peer(&mut self, peer: &Peer) {
        for user in self.by_peer.remove(peer).unwrap_or_default() {
            if let Some(b) = self.bindings.remove(&user) {
                self.expiries.remove(&(b.expires_at, user));
            }
        }
    }

    /// Drops the bindings that have expired.
    pub fn purge(&mut self, now: Instant) {
        while let Some((at, user)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.remove(&user);
        }
    }

    /// When the next binding expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Bindings held (expired ones go at their expiry, through [`Self::purge`]).
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}
