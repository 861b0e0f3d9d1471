//! A reactor's counters: kept in a plain [`ReactorSnapshot`] on the reactor's thread during an
//! iteration and added to the shared atomics of [`ReactorStats`] once per iteration, which
//! metrics read. The residence-time histogram has fixed buckets, so recording a packet never
//! allocates.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::proto::stats::{DropCounts, DropReason};

/// Upper bounds (µs) of the residence-time histogram's buckets; one more bucket takes the rest.
pub const RESIDENCE_BOUNDS_US: [u64; 24] = [
    2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000,
    7_500, 10_000, 20_000, 50_000, 100_000,
];
/// Buckets of the residence histogram (the bounds above and +Inf).
pub const RESIDENCE_BUCKETS: usize = RESIDENCE_BOUNDS_US.len() + 1;

/// The bucket of a residence of `ns` nanoseconds.
pub(super) fn residence_bucket(ns: u64) -> usize {
    let us = ns / 1_000;
    RESIDENCE_BOUNDS_US.partition_point(|&b| b < us)
}

/// Counters of one reactor, updated once per loop iteration; read for metrics.
#[derive(Debug, Default)]
pub struct ReactorStats {
    pub(super) sessions: AtomicU64,
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    no_buffers: AtomicU64,
    rearms: AtomicU64,
    panics: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    wakeups: AtomicU64,
    completions: AtomicU64,
    residence: [AtomicU64; RESIDENCE_BUCKETS],
    residence_sum_ns: AtomicU64,
    residence_max_ns: AtomicU64,
}

/// A copy of one reactor's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorSnapshot {
    /// Live sessions.
    pub sessions: u64,
    /// Datagrams received, and their bytes.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Datagrams sent (forwarded, answered, originated), and their bytes.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Receive completions with an error other than "no buffer".
    pub recv_errors: u64,
    /// Receives that found the buffer ring empty (`ENOBUFS`).
    pub no_buffers: u64,
    /// Multishot receives re-armed after they ended.
    pub rearms: u64,
    /// Sessions torn down because they panicked.
    pub panics: u64,
    /// Datagrams dropped, by reason.
    pub drops: DropCounts,
    /// Returns from the wait (each one a wake-up of the reactor thread, or a timer).
    pub wakeups: u64,
    /// Completions handled (receives, sends, wake reads, cancels).
    pub completions: u64,
    /// Forwarded packets by residence time (kernel receive stamp to send submission), in the
    /// buckets of [`RESIDENCE_BOUNDS_US`] and a last one for the rest.
    pub residence: [u64; RESIDENCE_BUCKETS],
    /// Sum of those residence times, ns.
    pub residence_sum_ns: u64,
    /// The longest residence seen, ns.
    pub residence_max_ns: u64,
}

impl ReactorSnapshot {
    /// Counts one forwarded packet's residence of `ns` nanoseconds.
    pub(super) fn add_residence(&mut self, ns: u64) {
        self.residence[residence_bucket(ns)] += 1;
        self.residence_sum_ns += ns;
        self.residence_max_ns = self.residence_max_ns.max(ns);
    }

    /// Forwarded packets with a residence time.
    pub fn residence_count(&self) -> u64 {
        self.residence.iter().sum()
    }
}

impl ReactorStats {
    /// The current values.
    pub fn snapshot(&self) -> ReactorSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut drops = DropCounts::default();
        for r in DropReason::ALL {
            drops.add_n(r, l(&self.drops[r as usize]));
        }
        ReactorSnapshot {
            sessions: l(&self.sessions),
            packets_in: l(&self.packets_in),
            bytes_in: l(&self.bytes_in),
            packets_out: l(&self.packets_out),
            bytes_out: l(&self.bytes_out),
            send_errors: l(&self.send_errors),
            recv_errors: l(&self.recv_errors),
            no_buffers: l(&self.no_buffers),
            rearms: l(&self.rearms),
            panics: l(&self.panics),
            drops,
            wakeups: l(&self.wakeups),
            completions: l(&self.completions),
            residence: std::array::from_fn(|i| l(&self.residence[i])),
            residence_sum_ns: l(&self.residence_sum_ns),
            residence_max_ns: l(&self.residence_max_ns),
        }
    }

    pub(super) fn flush(&self, local: &mut ReactorSnapshot) {
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v != 0 {
                a.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        add(&self.packets_in, &mut local.packets_in);
        add(&self.bytes_in, &mut local.bytes_in);
        add(&self.packets_out, &mut local.packets_out);
        add(&self.bytes_out, &mut local.bytes_out);
        add(&self.send_errors, &mut local.send_errors);
        add(&self.recv_errors, &mut local.recv_errors);
        add(&self.no_buffers, &mut local.no_buffers);
        add(&self.rearms, &mut local.rearms);
        add(&self.panics, &mut local.panics);
        add(&self.wakeups, &mut local.wakeups);
        add(&self.completions, &mut local.completions);
        if local.residence_sum_ns != 0 || local.residence_count() != 0 {
            for (a, v) in self.residence.iter().zip(local.residence.iter_mut()) {
                add(a, v);
            }
            add(&self.residence_sum_ns, &mut local.residence_sum_ns);
        }
        if local.residence_max_ns != 0 {
            self.residence_max_ns
                .fetch_max(local.residence_max_ns, Ordering::Relaxed);
            local.residence_max_ns = 0;
        }
        if local.drops.total() != 0 {
            for r in DropReason::ALL {
                let n = local.drops.get(r);
                if n != 0 {
                    self.drops[r as usize].fetch_add(n, Ordering::Relaxed);
                }
            }
            local.drops = DropCounts::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residence_buckets_are_upper_bounds_in_microseconds() {
        assert_eq!(residence_bucket(0), 0);
        assert_eq!(residence_bucket(2_999), 0);
        assert_eq!(residence_bucket(3_000), 1);
        assert_eq!(
            residence_bucket(1_000_000),
            RESIDENCE_BOUNDS_US.partition_point(|&b| b < 1_000)
        );
        assert_eq!(residence_bucket(u64::MAX), RESIDENCE_BUCKETS - 1);
    }

    #[test]
    fn a_flush_moves_local_counts_into_the_shared_ones_once() {
        let shared = ReactorStats::default();
        let mut local = ReactorSnapshot {
            packets_in: 3,
            residence_max_ns: 7,
            ..Default::default()
        };
        local.residence[2] = 4;
        local.drops.add(DropReason::Malformed);
        shared.flush(&mut local);
        shared.flush(&mut local);
        let s = shared.snapshot();
        assert_eq!(s.packets_in, 3);
        assert_eq!(s.residence[2], 4);
        assert_eq!(s.residence_count(), 4);
        assert_eq!(s.residence_max_ns, 7);
        assert_eq!(s.drops.get(DropReason::Malformed), 1);
        assert_eq!(local, ReactorSnapshot::default());
    }
}
