//! The reply cache: Kamailio sends the same request (same cookie) up to `rtpengine_retr` (5)
//! times, 1 s apart, until a reply arrives (notes §1). Every copy after the first must get the
//! first copy's reply byte for byte, and must never run the command again (a second
//! allocation, a second delete).
//!
//! rtpengine keys its cache on the cookie alone and keeps entries 30-60 s (two generations
//! swapped every 30 s); colliding cookies from several Kamailio instances then get each other's
//! replies (rtpengine #1634, #1867). We key on (source address, cookie), which loses nothing,
//! and keep each entry for a fixed `ttl` (a setting, 30-60 s) from the first copy's arrival.
//!
//! A copy arriving while the first is still being processed waits for that reply: the cache
//! answers [`Lookup::InFlight`] and counts it, and [`ReplyCache::complete`] says how many such
//! copies to answer with the same bytes. Pure: time comes in as `now`, nothing here blocks.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Cache settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a reply stays, from the first copy's arrival: 30-60 s.
    pub ttl: Duration,
    /// Entries at most; past it the oldest goes.
    pub max_entries: usize,
    /// Bytes of cookies and replies at most; past it the oldest goes.
    pub max_bytes: usize,
}

impl CacheConfig {
    /// The shortest `ttl`: rtpengine's minimum, far beyond Kamailio's 5 × 1 s retries.
    pub const MIN_TTL: Duration = Duration::from_secs(30);
    /// The longest `ttl`: rtpengine's maximum.
    pub const MAX_TTL: Duration = Duration::from_secs(60);

    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), CacheConfigError> {
        if !(CacheConfig::MIN_TTL..=CacheConfig::MAX_TTL).contains(&self.ttl) {
            return Err(CacheConfigError::Ttl(self.ttl));
        }
        if self.max_entries == 0 || self.max_bytes == 0 {
            return Err(CacheConfigError::Empty);
        }
        Ok(())
    }
}

impl Default for CacheConfig {
    /// 30 s; 16,384 entries (a node answering 500 requests/s needs 15,000 for 30 s);
    /// 64 MiB (replies are mostly SDPs of 1-4 KB).
    fn default() -> CacheConfig {
        CacheConfig {
            ttl: CacheConfig::MIN_TTL,
            max_entries: 16 * 1024,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A [`CacheConfig`] out of bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheConfigError {
    #[error("reply cache ttl {0:?} outside 30-60 s")]
    Ttl(Duration),
    #[error("reply cache bounds must be above zero")]
    Empty,
}

/// What to do with a request, by its (source, cookie).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// First copy: run the command, then [`ReplyCache::complete`] (or
    /// [`ReplyCache::abandon`]).
    Fresh,
    /// A retransmission of an answered request: send these bytes again.
    Cached(&'a [u8]),
    /// A retransmission of a request still being processed: send nothing now; `complete`
    /// counts this copy.
    InFlight,
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub fresh: u64,
    pub hits: u64,
    pub in_flight_hits: u64,
    /// Entries dropped for room before their time (a sign the bounds are too small).
    pub evicted: u64,
    pub expired: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    source: SocketAddr,
    cookie: Box<[u8]>,
}

#[derive(Debug)]
enum State {
    InFlight { waiting: u32 },
    Done(Box<[u8]>),
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    expires: Instant,
    state: State,
}

impl Entry {
    fn bytes(&self, key: &Key) -> usize {
        key.cookie.len()
            + match &self.state {
                State::InFlight { .. } => 0,
                State::Done(r) => r.len(),
            }
    }
}

/// Replies by (source address, cookie). Entries leave in arrival order: when they expire, or
/// oldest first when a bound is reached.
#[derive(Debug)]
pub struct ReplyCache {
    config: CacheConfig,
    entries: HashMap<Key, Entry>,
    /// Arrival order; an item whose `seq` no longer matches its entry is stale and skipped.
    order: VecDeque<(u64, Key)>,
    next_seq: u64,
    bytes: usize,
    stats: CacheStats,
}

impl ReplyCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Result<ReplyCache, CacheConfigError> {
        config.validate()?;
        Ok(ReplyCache {
            config,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            stats: CacheStats::default(),
        })
    }

    /// Looks up a request that arrived at `now` from `source` with `cookie`. A miss records
    /// the request as in flight.
    pub fn lookup(&mut self, now: Instant, source: SocketAddr, cookie: &[u8]) -> Lookup<'_> {
        self.handle_timeout(now);
        let key = Key {
            source,
            cookie: cookie.into(),
        };
        // Two lookups instead of one `get_mut`: returning a borrow from one arm of a match on
        // `get_mut` while inserting in the other is not accepted by today's borrow checker.
        if self.entries.contains_key(&key) {
            let entry = self
                .entries
                .get_mut(&key)
                .expect("contains_key just said it is there");
            return match &mut entry.state {
                State::InFlight { waiting } => {
                    *waiting = waiting.saturating_add(1);
                    self.stats.in_flight_hits += 1;
                    Lookup::InFlight
                }
                State::Done(reply) => {
                    self.stats.hits += 1;
                    Lookup::Cached(reply)
                }
            };
        }
        self.stats.fresh += 1;
        self.insert(key, now + self.config.ttl, State::InFlight { waiting: 0 });
        Lookup::Fresh
    }

    /// Stores the reply to a [`Lookup::Fresh`] request; returns how many copies arrived
    /// meanwhile ([`Lookup::InFlight`]), each to be answered with `reply` too. A reply over
    /// `max_bytes` is sent but not kept.
    pub fn complete(
        &mut self,
        now: Instant,
        source: SocketAddr,
        cookie: &[u8],
        reply: &[u8],
    ) -> u32 {
        self.handle_timeout(now);
        let key = Key {
            source,
            cookie: cookie.into(),
        };
        let fits = key.cookie.len() + reply.len() <= self.config.max_bytes;
        let Some(entry) = self.entries.get_mut(&key) else {
            // Evicted or expired while in flight: keep the reply for a full ttl from now.
            if fits {
                self.insert(key, now + self.config.ttl, State::Done(reply.into()));
            }
            return 0;
        };
        let waiting = match entry.state {
            State::InFlight { waiting } => waiting,
            // Completed twice (a caller's bug): the newest reply wins.
            State::Done(_) => 0,
        };
        // In place: the entry keeps its arrival position and expiry, so arrival order stays
        // expiry order.
        let before = entry.bytes(&key);
        entry.state = State::Done(reply.into());
        self.bytes = self.bytes - before + entry.bytes(&key);
        if fits {
            while self.bytes > self.config.max_bytes && self.evict_oldest() {}
        } else {
            self.remove(&key);
        }
        waiting
    }

    /// Forgets a [`Lookup::Fresh`] request that produced no reply; its next copy is fresh.
    pub fn abandon(&mut self, source: SocketAddr, cookie: &[u8]) {
        let key = Key {
            source,
            cookie: cookie.into(),
        };
        if matches!(
            self.entries.get(&key),
            Some(Entry {
                state: State::InFlight { .. },
                ..
            })
        ) {
            self.remove(&key);
        }
    }

    /// Drops what has expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((seq, key)) = self.order.front() {
            match self.entries.get(key) {
                Some(e) if e.seq == *seq => {
                    if e.expires > now {
                        break;
                    }
                    let key = key.clone();
                    self.remove(&key);
                    self.stats.expired += 1;
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// When the oldest entry expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.iter().find_map(|(seq, key)| {
            self.entries
                .get(key)
                .filter(|e| e.seq == *seq)
                .map(|e| e.expires)
        })
    }

    /// Entries held (answered and in flight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of cookies and replies held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Counters since creation.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn insert(&mut self, key: Key, expires: Instant, state: State) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            seq,
            expires,
            state,
        };
        let size = entry.bytes(&key);
        while !self.entries.is_empty()
            && (self.entries.len() >= self.config.max_entries
                || self.bytes + size > self.config.max_bytes)
        {
            if !self.evict_oldest() {
                break;
            }
        }
        self.bytes += size;
        self.order.push_back((seq, key.clone()));
        self.entries.insert(key, entry);
    }

    /// `false` when there was nothing to evict.
    fn evict_oldest(&mut self) -> bool {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.remove(&key);
                self.stats.evicted += 1;
                return true;
            }
        }
        false
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.bytes -= e.bytes(key);
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        #[allow(
            clippy::disallowed_methods,
            reason = "a base for virtual time; the cache only ever sees offsets from it"
        )]
        Instant::now()
    }

    fn kamailio() -> SocketAddr {
        "127.0.0.1:5060".parse().unwrap()
    }

    fn cache() -> ReplyCache {
        ReplyCache::new(CacheConfig::default()).unwrap()
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn retransmissions_get_the_first_reply() {
        let t = t0();
        let mut c = cache();
        let cookie = b"0_4711_1";
        assert_eq!(c.lookup(t, kamailio(), cookie), Lookup::Fresh);
        // Kamailio's second try, 1 s later, while the first is still being processed.
        assert_eq!(c.lookup(t + S, kamailio(), cookie), Lookup::InFlight);
        assert_eq!(c.complete(t + S, kamailio(), cookie, b"d6:result2:oke"), 1);
        for i in 2..5 {
            assert_eq!(
                c.lookup(t + i * S, kamailio(), cookie),
                Lookup::Cached(b"d6:result2:oke")
            );
        }
        let s = c.stats();
        assert_eq!((s.fresh, s.in_flight_hits, s.hits), (1, 1, 3));
    }

    #[test]
    fn keyed_by_source_and_cookie() {
        // Two Kamailio instances with the same server_id and PIDs send the same cookie
        // (rtpengine #1634): each gets its own reply.
        let t = t0();
        let mut c = cache();
        let other: SocketAddr = "127.0.0.2:5060".parse().unwrap();
        assert_eq!(c.lookup(t, kamailio(), b"1_1_1"), Lookup::Fresh);
        assert_eq!(c.lookup(t, other, b"1_1_1"), Lookup::Fresh);
        assert_eq!(c.complete(t, kamailio(), b"1_1_1", b"A"), 0);
        assert_eq!(c.complete(t, other, b"1_1_1", b"B"), 0);
        assert_eq!(c.lookup(t, kamailio(), b"1_1_1"), Lookup::Cached(b"A"));
        assert_eq!(c.lookup(t, other, b"1_1_1"), Lookup::Cached(b"B"));
        assert_eq!(c.lookup(t, kamailio(), b"1_1_2"), Lookup::Fresh);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let t = t0();
        let ttl = Duration::from_secs(45);
        let mut c = ReplyCache::new(CacheConfig {
            ttl,
            ..CacheConfig::default()
        })
        .unwrap();
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.lookup(t, kamailio(), b"c"), Lookup::Fresh);
        c.complete(t + S, kamailio(), b"c", b"r");
        assert_eq!(c.poll_timeout(), Some(t + ttl));
        c.handle_timeout(t + ttl - S);
        assert_eq!(
            c.lookup(t + ttl - S, kamailio(), b"c"),
            Lookup::Cached(b"r")
        );
        c.handle_timeout(t + ttl);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
        assert_eq!(c.stats().expired, 1);
        assert_eq!(c.lookup(t + ttl, kamailio(), b"c"), Lookup::Fresh);
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let t = t0();
        let mut c = ReplyCache::new(CacheConfig {
            max_entries: 3,
            max_bytes: 100,
            ..CacheConfig::default()
        })
        .unwrap();
        for i in 0..5u8 {
            assert_eq!(c.lookup(t, kamailio(), &[i]), Lookup::Fresh);
            c.complete(t, kamailio(), &[i], &[i; 10]);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.stats().evicted, 2);
        // The oldest went first.
        assert_eq!(c.lookup(t, kamailio(), &[4]), Lookup::Cached(&[4; 10]));
        assert_eq!(c.lookup(t, kamailio(), &[0]), Lookup::Fresh);
        // A reply that alone fills the byte bound pushes out everything older.
        c.complete(t, kamailio(), &[0], &[0; 90]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 91);
        // A reply over the byte bound is not kept; its request is fresh again.
        assert_eq!(c.lookup(t, kamailio(), &[9]), Lookup::Fresh);
        assert_eq!(c.complete(t, kamailio(), &[9], &[0; 100]), 0);
        assert_eq!(c.lookup(t, kamailio(), &[9]), Lookup::Fresh);
        assert!(c.bytes() <= 100);
    }

    #[test]
    fn abandon_lets_the_next_copy_run() {
        let t = t0();
        let mut c = cache();
        assert_eq!(c.lookup(t, kamailio(), b"x"), Lookup::Fresh);
        c.abandon(kamailio(), b"x");
        assert!(c.is_empty());
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.lookup(t + S, kamailio(), b"x"), Lookup::Fresh);
        // Abandoning an answered request keeps its reply.
        c.complete(t + S, kamailio(), b"x", b"r");
        c.abandon(kamailio(), b"x");
        assert_eq!(c.lookup(t + S, kamailio(), b"x"), Lookup::Cached(b"r"));
    }

    #[test]
    fn ttl_bounds() {
        for (secs, ok) in [(29, false), (30, true), (60, true), (61, false)] {
            let r = ReplyCache::new(CacheConfig {
                ttl: Duration::from_secs(secs),
                ..CacheConfig::default()
            });
            assert_eq!(r.is_ok(), ok, "{secs} s");
        }
        assert!(ReplyCache::new(CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        })
        .is_err());
    }
}
