//! Who may do what to a call: the caps on calls per WebSocket connection, per client address
//! and in all, and the check that an in-dialog request comes from the dialog's own peer with
//! the dialog's own tags (an off-path sender who learned a Call-ID and tag still cannot end or
//! redirect someone else's call).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use engine::api::SessionId;

use super::call::{Holder, Leg};
use super::core::Core;
use super::limits::source_key;
use super::policy::Source;
use super::route::Dest;
use super::types::ConnName;
use super::types::{DialogMiss, Peer, RefusalReason};
use crate::sip::hdr::SipUri;
use crate::sip::msg::SipMsg;
use crate::sip::names::{CallId, Tag};

impl Core {
    /// The outbound proxy's and the static route's (and its `op=` proxy's) addresses.
    pub(super) fn upstream(&self) -> impl Iterator<Item = &SocketAddr> {
        let route = self.cfg.route.as_ref();
        let dest = route.map_or(&[][..], |r| match &r.dest {
            Dest::Host { addrs, .. } => addrs.as_slice(),
            _ => &[],
        });
        let op = route.map_or(&[][..], |r| r.op_addrs.as_slice());
        let proxy = self.cfg.proxy.as_deref().unwrap_or_default();
        proxy.iter().chain(dest).chain(op)
    }

    /// Whether `a` is one of the upstream's addresses.
    pub(super) fn is_upstream(&self, a: SocketAddr) -> bool {
        self.upstream().any(|x| *x == a)
    }

    /// Whether `b` speaks for `a`: the same connection or address, or both addresses of the
    /// upstream (a proxy or route host may answer from any of its resolved addresses).
    pub(super) fn is_same_peer(&self, a: &Peer, b: &Peer) -> bool {
        match (a, b) {
            (Peer::Udp(x), Peer::Udp(y)) => x == y || self.is_upstream(*x) && self.is_upstream(*y),
            _ => a == b,
        }
    }

    pub(super) fn is_upstream_ip(&self, ip: IpAddr) -> bool {
        self.upstream().any(|x| x.ip() == ip)
    }

    /// How ACCEPT_IPS sees a source.
    pub(super) fn source_of(&self, from: &Peer) -> Source {
        match from {
            Peer::Ws(_) => Source::Wss,
            Peer::Udp(a)
                if self
                    .cfg
                    .proxy
                    .as_ref()
                    .is_some_and(|p| p.iter().any(|x| x.ip() == a.ip())) =>
            {
                Source::Proxy(a.ip())
            }
            Peer::Udp(a) => Source::Other(a.ip()),
        }
    }

    /// Whether a source may be answered at once: browsers, the upstream, and whoever
    /// ACCEPT_IPS lets call; anyone else within a small budget of refusals.
    pub(super) fn may_answer(&mut self, now: Instant, from: &Peer) -> bool {
        match from {
            Peer::Udp(a) if !self.is_known_source(from) => self.refusals.take(now, a.ip()),
            _ => true,
        }
    }

    /// Browsers, the upstream, and whoever ACCEPT_IPS lets call.
    pub(super) fn is_known_source(&self, from: &Peer) -> bool {
        match from {
            Peer::Ws(_) => true,
            Peer::Udp(a) => {
                self.is_upstream_ip(a.ip()) || self.cfg.accept.is_allowed(self.source_of(from))
            }
        }
    }

    /// What a new call between `caller` and `callee` counts against.
    pub(super) fn call_holders(&self, caller: &Peer, callee: &Peer) -> Vec<Holder> {
        let mut out = Vec::with_capacity(4);
        for p in [caller, callee] {
            let (conn, ip) = match p {
                Peer::Ws(c) => (Some(c.clone()), self.ws_open.get(c).copied()),
                Peer::Udp(a) if !self.is_upstream(*a) => (None, Some(source_key(a.ip()))),
                Peer::Udp(_) => (None, None),
            };
            for h in conn.map(Holder::Conn).into_iter().chain(ip.map(Holder::Ip)) {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
        out
    }

    /// Which cap a new call would break, if any.
    pub(super) fn check_call_caps(&self, holders: &[Holder]) -> Result<(), RefusalReason> {
        let l = &self.cfg.limits;
        if self.calls.len() >= l.max_calls {
            return Err(RefusalReason::Total);
        }
        for h in holders {
            match h {
                Holder::Conn(c) => {
                    if self.calls_by_conn.get(c).map_or(0, Vec::len) >= l.max_calls_per_ws {
                        return Err(RefusalReason::PerConnection);
                    }
                }
                Holder::Ip(ip) => {
                    if self.calls_by_ip.get(ip).copied().unwrap_or(0) >= l.max_calls_per_ip {
                        return Err(RefusalReason::PerAddress);
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn hold_call(&mut self, id: SessionId, holders: &[Holder]) {
        for h in holders {
            match h {
                Holder::Conn(c) => self.calls_by_conn.entry(c.clone()).or_default().push(id),
                Holder::Ip(ip) => *self.calls_by_ip.entry(*ip).or_default() += 1,
            }
        }
    }

    pub(super) fn release_call(&mut self, id: SessionId, holders: &[Holder]) {
        for h in holders {
            match h {
                Holder::Conn(c) => {
                    if let Some(v) = self.calls_by_conn.get_mut(c) {
                        v.retain(|x| *x != id);
                        if v.is_empty() {
                            self.calls_by_conn.remove(c);
                        }
                    }
                }
                Holder::Ip(ip) => {
                    if let Some(n) = self.calls_by_ip.get_mut(ip) {
                        *n -= 1;
                        if *n == 0 {
                            self.calls_by_ip.remove(ip);
                        }
                    }
                }
            }
        }
    }

    /// The calls one WebSocket connection takes part in.
    pub(super) fn calls_of(&self, conn: &ConnName) -> Vec<SessionId> {
        self.calls_by_conn.get(conn).cloned().unwrap_or_default()
    }

    /// The call an in-dialog request belongs to: matched by Call-ID and our tag, sent by the
    /// leg's peer, with the peer's tag.
    pub(super) fn dialog_of(&self, from: &Peer, msg: &SipMsg) -> Result<SessionId, DialogMiss> {
        let tag = msg
            .to_hdr()
            .and_then(|t| t.tag().map(str::to_string))
            .ok_or(DialogMiss::NoDialog)?;
        let id = *self
            .call_index
            .get(&(CallId::from(msg.call_id()), Tag::from(tag.as_str())))
            .ok_or(DialogMiss::NoDialog)?;
        let c = self.calls.get(&id).ok_or(DialogMiss::NoDialog)?;
        let leg = c.leg(c.leg_of(msg.call_id(), &tag));
        if !self.is_leg_peer(leg, from) {
            return Err(DialogMiss::NotAPeer);
        }
        let from_tag = msg.from_hdr().and_then(|f| f.tag().map(Tag::from));
        if leg.dialog.remote_tag.is_some() && from_tag != leg.dialog.remote_tag {
            return Err(DialogMiss::NoDialog);
        }
        Ok(id)
    }

    /// Whether `from` is a peer of this leg: its own WebSocket connection; for a UDP leg the
    /// address the dialog was formed with, its remote target, or the upstream's addresses.
    fn is_leg_peer(&self, leg: &Leg, from: &Peer) -> bool {
        match (&leg.peer, from) {
            (Peer::Ws(a), Peer::Ws(b)) => a == b,
            (Peer::Udp(a), Peer::Udp(b)) => {
                a == b || self.is_upstream(*b) || target_addr(&leg.dialog.remote_target) == Some(*b)
            }
            _ => false,
        }
    }
}

/// The address of a SIP URI whose host is an IP literal.
fn target_addr(uri: &str) -> Option<SocketAddr> {
    let u = SipUri::parse(uri)?;
    let ip = u.host.trim_matches(['[', ']']).parse().ok()?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}
