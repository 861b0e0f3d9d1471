//! The signaling core: every SIP message from every transport enters here, every SIP message to
//! any transport leaves here. Sans-IO: the transports feed it and drain
//! [`Core::poll_transmit`].
//!
//! What it answers itself: malformed requests (400/505/513, from the raw header lines), stray
//! ACKs (absorbed), out-of-dialog OPTIONS (200 with Allow), and new INVITEs while draining (503).

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::sip::msg::{error_response_for, reason_phrase, Method, SipMsg};
use crate::transport::ws::ConnName;

/// Where a message came from or goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Ws(ConnName),
    Udp(SocketAddr),
}

impl Peer {
    /// The transport label used in metrics.
    pub fn transport(&self) -> &'static str {
        match self {
            Peer::Ws(_) => "ws",
            Peer::Udp(_) => "udp",
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Vec<u8>,
}

/// What happened, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// A request that did not parse was answered with this status.
    Rejected {
        transport: &'static str,
        status: u16,
        reason: String,
    },
    /// A message that did not parse and could not be answered (responses, garbage).
    Dropped {
        transport: &'static str,
        reason: String,
    },
    /// A response was sent with this status.
    Responded { status: u16 },
}

/// Methods this gateway answers or relays.
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, MESSAGE, NOTIFY, REGISTER, SUBSCRIBE";

/// The signaling core.
#[derive(Debug, Default)]
pub struct Core {
    draining: bool,
    tag_seq: u64,
    tag_salt: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<CoreEvent>,
}

impl Core {
    /// `salt` makes the To-tags of this process unlike another's (random at start-up).
    pub fn new(salt: u64) -> Self {
        Core {
            tag_salt: salt,
            ..Core::default()
        }
    }

    /// From now on new calls get 503.
    pub fn handle_drain(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// One SIP message (a datagram or a WebSocket message) from `from`.
    pub fn handle_message(&mut self, from: Peer, bytes: &[u8]) {
        let msg = match SipMsg::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                let tag = self.new_tag();
                match error_response_for(bytes, &e, &tag) {
                    Some(resp) => {
                        self.events.push_back(CoreEvent::Rejected {
                            transport: from.transport(),
                            status: e.status,
                            reason: e.reason,
                        });
                        self.transmits.push_back(Transmit {
                            to: from,
                            bytes: resp,
                        });
                    }
                    None => self.events.push_back(CoreEvent::Dropped {
                        transport: from.transport(),
                        reason: e.reason,
                    }),
                }
                return;
            }
        };
        let Some(method) = msg.method().cloned() else {
            // Responses belong to client transactions, which the B2BUA owns.
            self.events.push_back(CoreEvent::Dropped {
                transport: from.transport(),
                reason: "response matches no transaction".into(),
            });
            return;
        };
        let in_dialog = msg.to_hdr().is_some_and(|t| t.tag().is_some());
        match method {
            Method::Ack => {}
            Method::Options if !in_dialog => {
                let mut r = self.respond(&msg, 200);
                r.push_header("Allow", ALLOW);
                r.push_header("Accept", "application/sdp");
                r.push_header("Supported", "path, timer");
                self.send(from, r);
            }
            Method::Invite if self.draining && !in_dialog => {
                let mut r = self.respond(&msg, 503);
                r.push_header("Retry-After", "30");
                r.push_header("Reason", "SIP;cause=503;text=\"shutting down\"");
                self.send(from, r);
            }
            Method::Cancel => {
                let r = self.respond(&msg, 481);
                self.send(from, r);
            }
            _ => {
                let r = self.respond(&msg, 501);
                self.send(from, r);
            }
        }
    }

    fn respond(&mut self, req: &SipMsg, code: u16) -> SipMsg {
        let tag = self.new_tag();
        let mut r = req.response(code, reason_phrase(code), Some(&tag));
        r.push_header(
            "Server",
            concat!("webrtc-phone/", env!("CARGO_PKG_VERSION")),
        );
        r
    }

    fn send(&mut self, to: Peer, msg: SipMsg) {
        if let Some(status) = msg.status() {
            self.events.push_back(CoreEvent::Responded { status });
        }
        self.transmits.push_back(Transmit {
            to,
            bytes: msg.to_bytes(),
        });
    }

    fn new_tag(&mut self) -> String {
        self.tag_seq += 1;
        format!("{:x}{:x}", self.tag_salt, self.tag_seq)
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = include_bytes!("../../tests/fixtures/sipjs/invite.txt");

    fn ws() -> Peer {
        Peer::Ws(ConnName("c1.invalid".into()))
    }

    fn only_reply(core: &mut Core) -> SipMsg {
        let t = core.poll_transmit().expect("a reply");
        assert!(core.poll_transmit().is_none());
        SipMsg::parse(&t.bytes).unwrap()
    }

    #[test]
    fn invite_while_draining_gets_503() {
        let mut core = Core::new(7);
        core.handle_drain();
        core.handle_message(ws(), INVITE);
        let r = only_reply(&mut core);
        assert_eq!(r.status(), Some(503));
        assert_eq!(r.header("Retry-After"), Some("30"));
        assert!(r.to_hdr().unwrap().tag().is_some());
        let inv = SipMsg::parse(INVITE).unwrap();
        assert_eq!(r.header("Via"), inv.header("Via"));
        assert_eq!(r.call_id(), inv.call_id());
    }

    #[test]
    fn options_gets_200_with_allow() {
        let mut core = Core::new(1);
        let opt = b"OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\nFrom: <sip:k@x>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        core.handle_message(Peer::Udp("127.0.0.1:5090".parse().unwrap()), opt);
        let r = only_reply(&mut core);
        assert_eq!(r.status(), Some(200));
        assert!(r.header("Allow").unwrap().contains("INVITE"));
    }

    #[test]
    fn malformed_requests_get_400_and_garbage_is_dropped() {
        let mut core = Core::new(1);
        let bad = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n";
        core.handle_message(ws(), bad);
        assert_eq!(only_reply(&mut core).status(), Some(400));
        assert!(matches!(
            core.poll_event(),
            Some(CoreEvent::Rejected { status: 400, .. })
        ));
        core.handle_message(ws(), b"\x00\x01garbage");
        assert!(core.poll_transmit().is_none());
        assert!(matches!(core.poll_event(), Some(CoreEvent::Dropped { .. })));
    }
}
