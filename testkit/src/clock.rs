//! A virtual clock: pure state machines take `now` as input (STYLE.md), so a test reads the
//! real clock once for an origin and moves time itself; nothing sleeps.

use std::time::{Duration, Instant};

/// One real `Instant` read once at [`VirtualClock::new`], then moved only by the test.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    origin: Instant,
    now: Instant,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock at a real instant (the only clock read of a virtual-clock test).
    pub fn new() -> Self {
        #[allow(
            clippy::disallowed_methods,
            reason = "the one clock read of a virtual-clock test: its origin"
        )]
        let origin = Instant::now();
        VirtualClock {
            origin,
            now: origin,
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The instant the clock started at.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Virtual time since the origin.
    pub fn elapsed(&self) -> Duration {
        self.now - self.origin
    }

    /// Moves time forward by `d`; returns the new time.
    pub fn advance(&mut self, d: Duration) -> Instant {
        self.now += d;
        self.now
    }

    /// Moves time to `t` (a deadline a state machine asked for).
    ///
    /// # Panics
    /// If `t` is before the current time: virtual time never goes back.
    pub fn set(&mut self, t: Instant) {
        assert!(
            t >= self.now,
            "virtual time goes back by {:?}",
            self.now - t
        );
        self.now = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_when_told() {
        let mut c = VirtualClock::new();
        let t0 = c.now();
        assert_eq!(c.now(), t0, "reading does not move it");
        assert_eq!(
            c.advance(Duration::from_millis(20)),
            t0 + Duration::from_millis(20)
        );
        c.set(t0 + Duration::from_secs(3));
        assert_eq!(c.now(), t0 + Duration::from_secs(3));
        assert_eq!(c.elapsed(), Duration::from_secs(3));
        assert_eq!(c.origin(), t0);
    }

    #[test]
    #[should_panic(expected = "virtual time goes back")]
    fn never_goes_back() {
        let mut c = VirtualClock::new();
        let t0 = c.now();
        c.advance(Duration::from_secs(1));
        c.set(t0);
    }
}
