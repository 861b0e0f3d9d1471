//! The demo PBX's registrar: with no upstream configured, any user may register (no password
//! check) and calls between registered users go through the gateway. Nothing of it runs when
//! OUTBOUND_PROXY or OUTBOUND_ROUTE is set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::core::Peer;
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

/// The bindings, by user name.
#[derive(Debug, Default)]
pub struct DemoRegistrar {
    bindings: HashMap<String, Binding>,
}

/// The outcome of one REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    pub user: String,
    pub expires: u32,
    pub response: SipMsg,
}

impl DemoRegistrar {
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
                response: req.response(404, "Not Found", Some(tag)),
            };
        }
        let mut expires = 0;
        if contacts == ["*"] {
            self.bindings.remove(&user);
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
                self.bindings.remove(&user);
            } else {
                self.bindings.insert(
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
        self.bindings.retain(|_, b| b.peer != *peer);
    }

    pub fn len(&self, now: Instant) -> usize {
        self.bindings
            .values()
            .filter(|b| b.expires_at > now)
            .count()
    }

    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }
}
