//! A seeded network emulator on virtual time: datagrams go in with the time they were sent and
//! come out at the time they arrive, after a delay, jitter, loss, duplication and reordering
//! drawn from a [`SeededRng`], so a run with loss reproduces exactly from its seed.
//!
//! No sockets and no threads: a test sends with [`NetEmulator::send`], asks
//! [`NetEmulator::next_deadline`] how far to move its clock, and drains
//! [`NetEmulator::poll`] at that time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::SeededRng;

/// One datagram on the emulated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
    /// When it arrives (for a polled datagram) or was sent (never stored otherwise).
    pub at: Instant,
}

/// What the network does to each datagram. Probabilities are in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct LinkModel {
    /// One-way delay every datagram has.
    pub delay: Duration,
    /// An extra delay drawn uniformly from `0..=jitter` (datagrams may overtake each other).
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a delivered datagram arrives twice (the copy after the original).
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_by`, so later ones overtake it.
    pub reorder: f64,
    /// How long a reordered datagram is held back.
    pub reorder_by: Duration,
}

impl Default for LinkModel {
    /// A perfect link: 1 ms delay, nothing lost, duplicated or reordered.
    fn default() -> Self {
        LinkModel {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_by: Duration::from_millis(30),
        }
    }
}

impl LinkModel {
    /// A perfect link with `loss` added.
    pub fn lossy(loss: f64) -> Self {
        LinkModel {
            loss,
            ..LinkModel::default()
        }
    }
}

/// What the emulator did, for assertions that the model was exercised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delivered: u64,
}

/// A datagram in flight, ordered by arrival time, then by the order it was scheduled in.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// The emulated network: one [`LinkModel`] for every path, or one per destination.
#[derive(Debug)]
pub struct NetEmulator {
    rng: SeededRng,
    model: LinkModel,
    per_dest: Vec<(SocketAddr, LinkModel)>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    stats: NetStats,
    lost: Vec<Datagram>,
}

impl NetEmulator {
    /// A network whose every path follows `model`, with its randomness from `seed`.
    pub fn new(seed: u64, model: LinkModel) -> Self {
        NetEmulator {
            rng: SeededRng::new(seed),
            model,
            per_dest: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            stats: NetStats::default(),
            lost: Vec::new(),
        }
    }

    /// Replaces the model for datagrams sent from now on (those in flight keep their times).
    pub fn set_model(&mut self, model: LinkModel) {
        self.model = model;
    }

    /// Datagrams towards `to` follow `model` instead of the common one.
    pub fn set_model_to(&mut self, to: SocketAddr, model: LinkModel) {
        self.per_dest.retain(|(a, _)| *a != to);
        self.per_dest.push((to, model));
    }

    /// Sends `data` from `from` to `to` at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        self.stats.sent += 1;
        let model = self
            .per_dest
            .iter()
            .find(|(a, _)| *a == to)
            .map_or(&self.model, |(_, m)| m)
            .clone();
        if self.rng.chance(model.loss) {
            self.stats.lost += 1;
            self.lost.push(Datagram {
                from,
                to,
                data: data.to_vec(),
                at: now,
            });
            return;
        }
        let copies = if self.rng.chance(model.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut at = now + model.delay;
        if self.rng.chance(model.reorder) {
            self.stats.reordered += 1;
            at += model.reorder_by;
        }
        for _ in 0..copies {
            let jitter = if model.jitter.is_zero() {
                Duration::ZERO
            } else {
                let nanos = model.jitter.as_nanos() as u64;
                Duration::from_nanos(self.rng.next_u64() % (nanos + 1))
            };
            self.seq += 1;
            self.queue.push(Reverse(InFlight {
                at: at + jitter,
                seq: self.seq,
                from,
                to,
                data: data.to_vec(),
            }));
            // A duplicate never arrives before its original.
            at += jitter;
        }
    }

    /// The next datagram that has arrived by `now`, earliest first (ties in sending order).
    #[must_use]
    pub fn poll(&mut self, now: Instant) -> Option<Datagram> {
        if self.queue.peek()?.0.at > now {
            return None;
        }
        let Reverse(d) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(Datagram {
            from: d.from,
            to: d.to,
            data: d.data,
            at: d.at,
        })
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.peek().map(|d| d.0.at)
    }

    /// How many datagrams are in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The datagrams lost so far (`at`: when they were sent), for tests that must show the
    /// loss hit what they are about.
    pub fn lost(&self) -> &[Datagram] {
        &self.lost
    }

    /// What happened so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VirtualClock;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Sends 0..n (as one byte each) at 1 ms steps, then drains everything; the bytes in
    /// arrival order.
    fn run(seed: u64, model: LinkModel, n: u8) -> (Vec<u8>, NetStats) {
        let mut clock = VirtualClock::new();
        let mut net = NetEmulator::new(seed, model);
        for i in 0..n {
            net.send(clock.now(), a(1), a(2), &[i]);
            clock.advance(Duration::from_millis(1));
        }
        let mut out = Vec::new();
        while let Some(t) = net.next_deadline() {
            clock.set(t.max(clock.now()));
            while let Some(d) = net.poll(clock.now()) {
                assert!(d.at <= clock.now());
                assert_eq!((d.from, d.to), (a(1), a(2)));
                out.push(d.data[0]);
            }
        }
        (out, net.stats())
    }

    #[test]
    fn a_perfect_link_delivers_everything_once_in_order_after_its_delay() {
        let mut clock = VirtualClock::new();
        let mut net = NetEmulator::new(1, LinkModel::default());
        net.send(clock.now(), a(1), a(2), b"x");
        assert_eq!(
            net.next_deadline(),
            Some(clock.now() + Duration::from_millis(1))
        );
        assert_eq!(net.poll(clock.now()), None, "not before its delay");
        clock.advance(Duration::from_millis(1));
        let d = net.poll(clock.now()).unwrap();
        assert_eq!(d.data, b"x");
        assert_eq!(net.poll(clock.now()), None);
        assert_eq!(net.next_deadline(), None);

        let (out, stats) = run(1, LinkModel::default(), 200);
        assert_eq!(out, (0..200).collect::<Vec<u8>>());
        assert_eq!((stats.sent, stats.delivered, stats.lost), (200, 200, 0));
    }

    #[test]
    fn loss_is_about_its_probability_and_seeded() {
        let model = LinkModel::lossy(0.1);
        let (out, stats) = run(42, model.clone(), 250);
        assert_eq!(stats.lost + stats.delivered, 250);
        assert!((10..45).contains(&stats.lost), "{stats:?}");
        assert!(
            out.windows(2).all(|w| w[0] < w[1]),
            "loss alone keeps order"
        );
        assert_eq!(run(42, model.clone(), 250).0, out, "same seed, same run");
        assert_ne!(run(43, model, 250).0, out, "another seed, another run");
    }

    #[test]
    fn duplicates_arrive_after_their_original() {
        let model = LinkModel {
            duplicate: 0.2,
            ..LinkModel::default()
        };
        let (out, stats) = run(5, model, 200);
        assert!(stats.duplicated > 10, "{stats:?}");
        assert_eq!(out.len() as u64, 200 + stats.duplicated);
        let mut sorted = out.clone();
        sorted.dedup();
        assert_eq!(
            sorted,
            (0..200).collect::<Vec<u8>>(),
            "each once, then its copy"
        );
    }

    #[test]
    fn reordering_and_jitter_let_later_datagrams_overtake() {
        let model = LinkModel {
            reorder: 0.1,
            reorder_by: Duration::from_millis(5),
            jitter: Duration::from_micros(500),
            ..LinkModel::default()
        };
        let (out, stats) = run(9, model, 200);
        assert!(stats.reordered > 5, "{stats:?}");
        assert!(out.windows(2).any(|w| w[0] > w[1]), "something overtook");
        let mut sorted = out.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..200).collect::<Vec<u8>>(),
            "nothing lost or added"
        );
    }

    #[test]
    fn a_destination_can_have_its_own_model() {
        let mut clock = VirtualClock::new();
        let mut net = NetEmulator::new(3, LinkModel::default());
        net.set_model_to(a(9), LinkModel::lossy(1.0));
        for i in 0..20u8 {
            net.send(clock.now(), a(1), a(9), &[i]);
            net.send(clock.now(), a(1), a(2), &[i]);
        }
        clock.advance(Duration::from_millis(1));
        let mut got = Vec::new();
        while let Some(d) = net.poll(clock.now()) {
            got.push(d.to);
        }
        assert_eq!(got, vec![a(2); 20]);
        assert_eq!(net.stats().lost, 20);
        assert_eq!(net.lost().len(), 20);
        assert!(net
            .lost()
            .iter()
            .all(|d| d.to == a(9) && d.at <= clock.now()));
    }
}
