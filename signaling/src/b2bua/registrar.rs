//! The core's registrar side: REGISTER and SUBSCRIBE from browsers relayed to the outbound
//! proxy (and their answers back, with the registrations they grant counted), or taken by the
//! demo PBX's registrar.

use std::time::Instant;

use super::core::{ClientEntry, ClientPurpose, Core};
use super::errors::SipError;
use super::register;
use super::types::{ConnName, CoreEvent, Peer, ServerKey};
use crate::sip::msg::{Method, SipMsg};
use crate::sip::names::Branch;
use crate::sip::txn::{ClientEvent, ClientTxn};

fn peer_name(p: &Peer) -> String {
    match p {
        Peer::Ws(c) => c.0.clone(),
        Peer::Udp(a) => a.to_string(),
    }
}

impl Core {
    /// Relays a REGISTER or SUBSCRIBE from a browser to the outbound proxy.
    pub(super) fn proxy_to_registrar(
        &mut self,
        now: Instant,
        key: ServerKey,
        conn: ConnName,
        mut msg: SipMsg,
    ) {
        if !register::decrement_max_forwards(&mut msg) {
            return self.refuse(now, &key, &msg, SipError::TooManyHops);
        }
        let Some(&dest) = self.cfg.proxy.as_ref().and_then(|p| p.first()) else {
            return self.refuse(now, &key, &msg, SipError::ServiceUnavailable);
        };
        let is_register = msg.method() == Some(&Method::Register);
        let branch = Branch::new(format!("z9hG4bK{}", self.new_id()));
        register::to_proxy(
            &mut msg,
            &self.cfg.own_hostport(),
            branch.as_str(),
            is_register,
        );
        let aor = msg.to_hdr().map(|t| t.uri).unwrap_or_default();
        let txn = ClientTxn::new(now, msg, false, self.cfg.timers);
        self.clients.insert(
            branch,
            ClientEntry {
                txn,
                to: Peer::Udp(dest),
                purpose: ClientPurpose::Proxy {
                    server: key,
                    conn,
                    aor,
                    is_register,
                },
            },
        );
    }

    pub(super) fn demo_register(&mut self, now: Instant, key: ServerKey, from: Peer, msg: &SipMsg) {
        let tag = self.new_id();
        let Some(demo) = &mut self.demo else { return };
        let out = demo.handle_register(now, from.clone(), msg, &tag);
        let status = out.response.status().unwrap_or(500);
        self.events.push_back(CoreEvent::Registration {
            aor: out.user,
            conn: peer_name(&from),
            status,
            expires: out.expires,
        });
        self.send_on(now, &key, out.response);
    }

    /// The registrar's answer (or silence) to a relayed REGISTER or SUBSCRIBE.
    pub(super) fn on_proxy_event(&mut self, now: Instant, branch: &Branch, ev: ClientEvent) {
        let Some(entry) = self.clients.get(branch) else {
            return;
        };
        let ClientPurpose::Proxy {
            server,
            conn,
            aor,
            is_register,
        } = &entry.purpose
        else {
            return;
        };
        let (server, conn, aor, is_register) =
            (server.clone(), conn.clone(), aor.clone(), *is_register);
        match ev {
            ClientEvent::Response(mut resp) => {
                let status = resp.status().unwrap_or(500);
                if status == 100 || register::pop_own_via(&mut resp, branch.as_str()).is_none() {
                    return;
                }
                // A connection closed meanwhile has nothing registered any more.
                if is_register && status >= 200 && self.ws_open.contains_key(&conn) {
                    let expires = if (200..300).contains(&status) {
                        register::granted_expires(&resp, &conn)
                    } else {
                        0
                    };
                    let set = self.registrations.entry(conn.clone()).or_default();
                    if expires > 0 {
                        if set.insert(aor.clone()) {
                            self.registration_total += 1;
                        }
                    } else if (200..300).contains(&status) && set.remove(&aor) {
                        self.registration_total -= 1;
                    }
                    if status != 401 && status != 407 {
                        self.events.push_back(CoreEvent::Registration {
                            aor,
                            conn: conn.0.clone(),
                            status,
                            expires,
                        });
                    }
                }
                self.send_on(now, &server, resp);
            }
            ClientEvent::Timeout => {
                let req = entry.txn.request().clone();
                if is_register {
                    self.events.push_back(CoreEvent::Registration {
                        aor,
                        conn: conn.0.clone(),
                        status: 408,
                        expires: 0,
                    });
                }
                // The original request, as the browser sent it, minus our Via.
                let mut original = req;
                register::pop_own_via(&mut original, branch.as_str());
                self.refuse(now, &server, &original, SipError::Timeout);
            }
        }
    }
}
