//! Per-source budgets: a token bucket per client address, for the SIP/UDP message rate in front
//! of the parser and for how many refusals one source is sent. IPv4 sources count per address,
//! IPv6 sources per /64 (one host usually holds a whole /64).
//!
//! The table of buckets is bounded: when it is full, buckets that have refilled (sources that
//! went quiet) are dropped, at most once a second; if none has, a new source is refused until
//! some have. Known sources keep their budget whatever a flood of spoofed ones does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The key a source counts under: the IPv4 address, or the IPv6 /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by source: `rate` per second, up to `burst`.
#[derive(Debug)]
pub struct SourceBudget {
    rate: f64,
    burst: f64,
    cap: usize,
    buckets: HashMap<IpAddr, Bucket>,
    last_prune: Option<Instant>,
}

impl SourceBudget {
    /// `rate` tokens per second, `burst` at most, buckets for at most `cap` sources.
    pub fn new(rate: f64, burst: f64, cap: usize) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            cap: cap.max(1),
            buckets: HashMap::new(),
            last_prune: None,
        }
    }

    /// Takes one token of `ip`'s budget; false when it has none left.
    pub fn take(&mut self, now: Instant, ip: IpAddr) -> bool {
        let key = source_key(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.cap && !self.prune(now) {
            return false;
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops the buckets that are full again; true if there is room now.
    fn prune(&mut self, now: Instant) -> bool {
        if self
            .last_prune
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.last_prune = Some(now);
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            let dt = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + dt * rate < burst
        });
        self.buckets.len() < self.cap
    }

    /// Sources with a bucket (for tests and metrics).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::VirtualClock;

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let t = VirtualClock::new().now();
        let mut b = SourceBudget::new(10.0, 20.0, 100);
        let ip: IpAddr = "127.0.0.66".parse().unwrap();
        let other: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!((0..100).filter(|_| b.take(t, ip)).count(), 20);
        assert!(b.take(t, other), "another source has its own bucket");
        let later = t + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.take(later, ip)).count(), 5);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = VirtualClock::new().now();
        let mut b = SourceBudget::new(0.0, 2.0, 100);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let c: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let d: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(b.take(t, a));
        assert!(b.take(t, c));
        assert!(!b.take(t, a), "same /64");
        assert!(b.take(t, d), "another /64");
    }

    #[test]
    fn a_full_table_keeps_known_sources_and_sheds_quiet_ones() {
        let t = VirtualClock::new().now();
        let mut b = SourceBudget::new(1.0, 2.0, 3);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        for n in 1..=3 {
            assert!(b.take(t, ip(n)));
        }
        assert!(!b.take(t, ip(4)), "full, nobody quiet yet");
        assert!(b.take(t, ip(1)), "a known source keeps its budget");
        // Two seconds on, every bucket has refilled: the quiet ones go, the new one fits.
        assert!(b.take(t + Duration::from_secs(2), ip(4)));
        assert!(b.len() <= 3);
    }
}
