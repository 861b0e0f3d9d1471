//! A reactor's session table and timer set, with no ring and no sockets: sessions in
//! generation-checked slots (a stale [`Key`] misses instead of reaching a newer session), the
//! indexes the receive path looks sessions up by (session id, the source addresses routed to a
//! session on the shared WebRTC port, the ICE ufrags it answers to), and each session's next
//! deadline in one sorted set, so due timers are found without a scan.
//!
//! Generic over the session type, so it is tested with a stand-in; the reactor uses it with
//! [`crate::proto::session::Session`].

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use crate::api::SessionId;
use crate::proto::session::MAX_ROUTES;

/// A session's place in the table; the generation makes stale keys miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Key {
    idx: u32,
    gen: u32,
}

/// What the table needs to know of a session to route packets to it.
pub(super) trait Routed {
    /// The source addresses on the shared WebRTC port whose packets are this session's (at
    /// most [`MAX_ROUTES`]).
    fn routes(&self) -> impl Iterator<Item = SocketAddr> + '_;
    /// The local ICE ufrags whose STUN requests are this session's.
    fn ufrags(&self) -> impl Iterator<Item = &[u8]> + '_;
}

/// One session and what the reactor keeps beside it.
pub(super) struct Entry<S> {
    pub(super) session: S,
    id: SessionId,
    /// Socket slots of plain legs: (RTP, RTCP) per leg and stream (audio, video).
    pub(super) plain: [[Option<(usize, usize)>; 2]; 2],
    /// The shard's RTP port pairs this session holds (both streams of both legs).
    pub(super) pairs: Vec<u16>,
    /// The addresses routed to this session when last synced.
    routes: Vec<SocketAddr>,
    ufrags: Vec<Box<[u8]>>,
    /// The deadline armed in the timer set, if any.
    deadline: Option<Instant>,
}

struct Slot<S> {
    gen: u32,
    entry: Option<Entry<S>>,
}

/// The sessions of one reactor.
pub(super) struct Table<S> {
    slots: Vec<Slot<S>>,
    free: Vec<u32>,
    by_id: HashMap<SessionId, Key>,
    by_addr: HashMap<SocketAddr, Key>,
    by_ufrag: HashMap<Box<[u8]>, Key>,
    timers: BTreeSet<(Instant, Key)>,
}

impl<S: Routed> Table<S> {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            timers: BTreeSet::new(),
        }
    }

    /// Live sessions.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The key of session `id`.
    pub(super) fn key_of(&self, id: SessionId) -> Option<Key> {
        self.by_id.get(&id).copied()
    }

    /// The session packets from `src` on the WebRTC port go to.
    pub(super) fn by_addr(&self, src: &SocketAddr) -> Option<Key> {
        self.by_addr.get(src).copied()
    }

    /// The session that answers to local ufrag `ufrag`.
    pub(super) fn by_ufrag(&self, ufrag: &[u8]) -> Option<Key> {
        self.by_ufrag.get(ufrag).copied()
    }

    /// Every live session's key.
    pub(super) fn keys(&self) -> Vec<Key> {
        self.by_id.values().copied().collect()
    }

    /// The key the next [`Table::insert`] will use (so sockets can name it before the session
    /// is in). Reserves nothing: call `insert` before any other change.
    pub(super) fn next_key(&self) -> Key {
        match self.free.last() {
            Some(&idx) => Key {
                idx,
                gen: self.slots[idx as usize].gen,
            },
            None => Key {
                idx: self.slots.len() as u32,
                gen: 0,
            },
        }
    }

    /// Adds a session under [`Table::next_key`], with its routes and ufrags; `None` (and
    /// nothing changed) if `id` is already in.
    #[must_use]
    pub(super) fn insert(
        &mut self,
        id: SessionId,
        session: S,
        plain: [[Option<(usize, usize)>; 2]; 2],
        pairs: Vec<u16>,
    ) -> Option<Key> {
        if self.by_id.contains_key(&id) {
            return None;
        }
        let key = self.next_key();
        let entry = Entry {
            session,
            id,
            plain,
            pairs,
            routes: Vec::new(),
            ufrags: Vec::new(),
            deadline: None,
        };
        match self.free.pop() {
            Some(idx) => self.slots[idx as usize].entry = Some(entry),
            None => self.slots.push(Slot {
                gen: 0,
                entry: Some(entry),
            }),
        }
        self.by_id.insert(id, key);
        self.sync_routes(key);
        self.sync_ufrags(key);
        Some(key)
    }

    pub(super) fn get(&self, key: Key) -> Option<&Entry<S>> {
        self.slots
            .get(key.idx as usize)
            .filter(|s| s.gen == key.gen)
            .and_then(|s| s.entry.as_ref())
    }

    pub(super) fn get_mut(&mut self, key: Key) -> Option<&mut Entry<S>> {
        self.slots
            .get_mut(key.idx as usize)
            .filter(|s| s.gen == key.gen)
            .and_then(|s| s.entry.as_mut())
    }

    /// Brings the address routes for `key` in step with its session's: routes it no longer
    /// gives are removed (unless another session took the address since), new ones added. No
    /// allocation once the entry's list has grown.
    pub(super) fn sync_routes(&mut self, key: Key) {
        let Some(slot) = self
            .slots
            .get_mut(key.idx as usize)
            .filter(|s| s.gen == key.gen)
        else {
            return;
        };
        let Some(entry) = slot.entry.as_mut() else {
            return;
        };
        let mut old = [None; MAX_ROUTES];
        for (slot, addr) in old.iter_mut().zip(&entry.routes) {
            *slot = Some(*addr);
        }
        entry.routes.clear();
        for addr in entry.session.routes() {
            if entry.routes.contains(&addr) {
                continue;
            }
            if !old.contains(&Some(addr)) {
                self.by_addr.insert(addr, key);
            }
            entry.routes.push(addr);
        }
        for addr in old.into_iter().flatten() {
            if !entry.routes.contains(&addr) && self.by_addr.get(&addr) == Some(&key) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// Routes STUN for every ufrag the session answers to (old ones stay until release: a
    /// browser may still check with them during an ICE restart).
    pub(super) fn sync_ufrags(&mut self, key: Key) {
        let Some(entry) = self
            .slots
            .get_mut(key.idx as usize)
            .filter(|s| s.gen == key.gen)
            .and_then(|s| s.entry.as_mut())
        else {
            return;
        };
        for u in entry.session.ufrags() {
            if !entry.ufrags.iter().any(|have| **have == *u) {
                let u: Box<[u8]> = Box::from(u);
                entry.ufrags.push(u.clone());
                self.by_ufrag.insert(u, key);
            }
        }
    }

    /// Arms `key`'s timer for `deadline` when that is earlier than the one armed. A later
    /// deadline (media moving the media timeout on every packet) leaves the earlier one, which
    /// then fires early, finds nothing due, and is re-armed: no timer-set work per packet.
    pub(super) fn arm(&mut self, key: Key, deadline: Option<Instant>) {
        let Some(entry) = self.get_mut(key) else {
            return;
        };
        let old = entry.deadline;
        let t = match (old, deadline) {
            (_, None) => return,
            (Some(o), Some(t)) if t >= o => return,
            (_, Some(t)) => t,
        };
        entry.deadline = Some(t);
        if let Some(o) = old {
            self.timers.remove(&(o, key));
        }
        self.timers.insert((t, key));
    }

    /// The earliest armed deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Moves the keys whose deadline is at or before `now` to `due` and disarms them. Taken
    /// all at once: a session that re-arms at or before `now` waits for the next call.
    pub(super) fn take_due(&mut self, now: Instant, due: &mut Vec<Key>) {
        while let Some(&(t, key)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(e) = self.get_mut(key) {
                e.deadline = None;
            }
            due.push(key);
        }
    }

    /// Takes a session out with everything that points at it; its key goes stale.
    pub(super) fn remove(&mut self, key: Key) -> Option<(SessionId, Entry<S>)> {
        let slot = self
            .slots
            .get_mut(key.idx as usize)
            .filter(|s| s.gen == key.gen)?;
        let entry = slot.entry.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(key.idx);
        self.by_id.remove(&entry.id);
        for addr in &entry.routes {
            if self.by_addr.get(addr) == Some(&key) {
                self.by_addr.remove(addr);
            }
        }
        for u in &entry.ufrags {
            if self.by_ufrag.get(u) == Some(&key) {
                self.by_ufrag.remove(u);
            }
        }
        if let Some(t) = entry.deadline {
            self.timers.remove(&(t, key));
        }
        Some((entry.id, entry))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A session stand-in: its routes and ufrags are whatever the test sets.
    #[derive(Default)]
    struct Fake {
        routes: Vec<SocketAddr>,
        ufrags: Vec<Vec<u8>>,
    }

    impl Routed for Fake {
        fn routes(&self) -> impl Iterator<Item = SocketAddr> + '_ {
            self.routes.iter().copied()
        }
        fn ufrags(&self) -> impl Iterator<Item = &[u8]> + '_ {
            self.ufrags.iter().map(|u| u.as_slice())
        }
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn fake(routes: &[u16], ufrags: &[&str]) -> Fake {
        Fake {
            routes: routes.iter().map(|&p| addr(p)).collect(),
            ufrags: ufrags.iter().map(|u| u.as_bytes().to_vec()).collect(),
        }
    }

    fn t0() -> Instant {
        #[allow(
            clippy::disallowed_methods,
            reason = "the test's virtual times start from one real instant"
        )]
        Instant::now()
    }

    #[test]
    fn a_removed_sessions_key_and_routes_miss_and_its_slot_is_reused_under_a_new_generation() {
        let mut t = Table::new();
        let k1 = t
            .insert(
                SessionId(1),
                fake(&[5000], &["uf1"]),
                Default::default(),
                vec![],
            )
            .unwrap();
        assert_eq!(t.by_addr(&addr(5000)), Some(k1));
        assert_eq!(t.by_ufrag(b"uf1"), Some(k1));
        assert!(
            t.insert(SessionId(1), Fake::default(), Default::default(), vec![])
                .is_none(),
            "an id is in once"
        );
        let (id, _) = t.remove(k1).unwrap();
        assert_eq!(id, SessionId(1));
        assert!(t.get(k1).is_none() && t.remove(k1).is_none());
        assert_eq!(t.by_addr(&addr(5000)), None);
        assert_eq!(t.by_ufrag(b"uf1"), None);
        assert_eq!(t.key_of(SessionId(1)), None);
        let k2 = t
            .insert(SessionId(2), Fake::default(), Default::default(), vec![])
            .unwrap();
        assert_eq!(k2.idx, k1.idx, "the slot is reused");
        assert_ne!(k2, k1);
        assert!(t.get(k1).is_none(), "the old key stays stale");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn routes_follow_the_session_and_never_steal_another_sessions_address() {
        let mut t = Table::new();
        let a = t
            .insert(SessionId(1), fake(&[1, 2], &[]), Default::default(), vec![])
            .unwrap();
        let b = t
            .insert(SessionId(2), fake(&[3], &[]), Default::default(), vec![])
            .unwrap();
        // A's session moves from 2 to 4; B takes 1 (a new nomination from the same address).
        t.get_mut(a).unwrap().session.routes = vec![addr(1), addr(4)];
        t.sync_routes(a);
        assert_eq!(t.by_addr(&addr(2)), None);
        assert_eq!(t.by_addr(&addr(4)), Some(a));
        t.get_mut(b).unwrap().session.routes = vec![addr(3), addr(1)];
        t.sync_routes(b);
        assert_eq!(t.by_addr(&addr(1)), Some(b));
        // A drops 1: B keeps it.
        t.get_mut(a).unwrap().session.routes = vec![addr(4)];
        t.sync_routes(a);
        assert_eq!(t.by_addr(&addr(1)), Some(b));
        t.remove(a).unwrap();
        assert_eq!(t.by_addr(&addr(1)), Some(b));
        assert_eq!(t.by_addr(&addr(4)), None);
    }

    #[test]
    fn ufrags_accumulate_until_release() {
        let mut t = Table::new();
        let k = t
            .insert(
                SessionId(1),
                fake(&[], &["old"]),
                Default::default(),
                vec![],
            )
            .unwrap();
        t.get_mut(k).unwrap().session.ufrags = vec![b"new".to_vec()];
        t.sync_ufrags(k);
        assert_eq!(t.by_ufrag(b"old"), Some(k));
        assert_eq!(t.by_ufrag(b"new"), Some(k));
        t.remove(k);
        assert_eq!(t.by_ufrag(b"old"), None);
        assert_eq!(t.by_ufrag(b"new"), None);
    }

    #[test]
    fn timers_fire_in_order_only_when_due_and_a_later_deadline_keeps_the_earlier_one() {
        let now = t0();
        let s = Duration::from_secs(1);
        let mut t = Table::new();
        let a = t
            .insert(SessionId(1), Fake::default(), Default::default(), vec![])
            .unwrap();
        let b = t
            .insert(SessionId(2), Fake::default(), Default::default(), vec![])
            .unwrap();
        t.arm(a, Some(now + 3 * s));
        t.arm(b, Some(now + 2 * s));
        t.arm(a, Some(now + 5 * s));
        assert_eq!(t.next_deadline(), Some(now + 2 * s));
        t.arm(a, Some(now + s));
        t.arm(b, None);
        let mut due = Vec::new();
        t.take_due(now, &mut due);
        assert!(due.is_empty());
        t.take_due(now + s, &mut due);
        assert_eq!(due, vec![a]);
        t.take_due(now + 10 * s, &mut due);
        assert_eq!(due, vec![a, b]);
        assert_eq!(t.next_deadline(), None);
        // Disarmed by firing: a later deadline arms again.
        t.arm(a, Some(now + 20 * s));
        assert_eq!(t.next_deadline(), Some(now + 20 * s));
        // A removed session's timer goes with it.
        t.remove(a);
        assert_eq!(t.next_deadline(), None);
    }
}
