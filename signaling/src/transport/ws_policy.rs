//! The rules one WebSocket connection lives by, as a pure state machine: what each received
//! message becomes (SIP text for the core, a keep-alive answer, nothing, or a close with its
//! code), the message rate, the bound on messages waiting for the core, and the keep-alive.
//! `transport::ws::run` feeds it what the socket gives and does what it says; the fuzz target
//! `ws_frames` calls it directly. Time comes in as `now`.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// Largest SIP message or frame accepted over a WebSocket.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages one connection may have waiting for the signaling core; a connection that sends
/// more while the core is stuck is closed (1008), so one client cannot grow the core's queue
/// (and memory) without bound. A browser has a handful in flight at most, and the connection
/// task yields to the core after each message, so a burst does not fill it while the core runs.
pub const CORE_QUEUE: usize = 64;

/// What the socket gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Text(String),
    Binary(Vec<u8>),
    /// A ping or pong: the peer is alive.
    Control,
    /// The frame layer refused a message or frame over [`MAX_MESSAGE_BYTES`].
    TooBig,
}

/// Why the gateway closes a connection: the close code and text, and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseWhy {
    BadUtf8,
    TooBig,
    RateLimit,
    CoreQueue,
    Keepalive,
}

impl CloseWhy {
    /// (close code, reason text, metric label).
    pub const fn parts(self) -> (u16, &'static str, &'static str) {
        match self {
            CloseWhy::BadUtf8 => (1007, "SIP must be UTF-8", "bad_utf8"),
            CloseWhy::TooBig => (1009, "message too big", "message_size"),
            CloseWhy::RateLimit => (1008, "message rate limit", "rate_limit"),
            CloseWhy::CoreQueue => (1008, "too many messages waiting", "core_queue"),
            CloseWhy::Keepalive => (1001, "keepalive timeout", "keepalive"),
        }
    }
}

/// What to do with a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// SIP text for the core.
    Forward(String),
    /// Answer on the connection (RFC 5626 §4.4.1: CRLF to a double-CRLF keep-alive).
    Answer(&'static str),
    /// Nothing to do (a control frame, blank text).
    Ignore,
    Close(CloseWhy),
}

/// What the keep-alive tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    SendPing,
    Close(CloseWhy),
}

/// One connection's rule state.
#[derive(Debug, Clone)]
pub struct WsPolicy {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    last_heard: Instant,
    ping_interval: Duration,
}

impl WsPolicy {
    /// `rate`: messages a second (bursts of twice that); `ping_interval`: a ping this often,
    /// and a close when nothing was heard for two of them.
    pub fn new(now: Instant, rate: u32, ping_interval: Duration) -> WsPolicy {
        let rate = f64::from(rate);
        WsPolicy {
            rate,
            tokens: rate * 2.0,
            refilled: now,
            last_heard: now,
            ping_interval,
        }
    }

    /// A message arrived; `waiting`: how many of this connection's messages the core has not
    /// taken yet.
    pub fn handle_message(&mut self, now: Instant, msg: Received, waiting: usize) -> Verdict {
        let text = match msg {
            Received::Text(t) => t,
            Received::Binary(b) => match String::from_utf8(b) {
                Ok(t) => t,
                Err(_) => return Verdict::Close(CloseWhy::BadUtf8),
            },
            Received::Control => {
                self.last_heard = now;
                return Verdict::Ignore;
            }
            Received::TooBig => return Verdict::Close(CloseWhy::TooBig),
        };
        self.last_heard = now;
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate * 2.0);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Verdict::Close(CloseWhy::RateLimit);
        }
        self.tokens -= 1.0;
        if text == "\r\n\r\n" {
            return Verdict::Answer("\r\n");
        }
        if text.trim().is_empty() {
            return Verdict::Ignore;
        }
        if text.len() > MAX_MESSAGE_BYTES {
            return Verdict::Close(CloseWhy::TooBig);
        }
        if waiting >= CORE_QUEUE {
            return Verdict::Close(CloseWhy::CoreQueue);
        }
        Verdict::Forward(text)
    }

    /// The keep-alive timer fired.
    pub fn handle_tick(&mut self, now: Instant) -> Tick {
        if now.saturating_duration_since(self.last_heard) >= self.ping_interval * 2 {
            Tick::Close(CloseWhy::Keepalive)
        } else {
            Tick::SendPing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::VirtualClock;

    #[test]
    fn sip_goes_through_keepalives_are_answered_and_junk_closes() {
        let now = VirtualClock::new().now();
        let mut p = WsPolicy::new(now, 50, Duration::from_secs(30));
        let sip = "OPTIONS sip:x SIP/2.0\r\n\r\n".to_string();
        assert_eq!(
            p.handle_message(now, Received::Text(sip.clone()), 0),
            Verdict::Forward(sip)
        );
        assert_eq!(
            p.handle_message(now, Received::Text("\r\n\r\n".into()), 0),
            Verdict::Answer("\r\n")
        );
        assert_eq!(
            p.handle_message(now, Received::Text("  ".into()), 0),
            Verdict::Ignore
        );
        assert_eq!(
            p.handle_message(now, Received::Binary(vec![0xff, 0xfe]), 0),
            Verdict::Close(CloseWhy::BadUtf8)
        );
        assert_eq!(
            p.handle_message(now, Received::Text("x".into()), CORE_QUEUE),
            Verdict::Close(CloseWhy::CoreQueue)
        );
        assert_eq!(
            p.handle_message(now, Received::TooBig, 0),
            Verdict::Close(CloseWhy::TooBig)
        );
    }

    #[test]
    fn the_rate_allows_a_burst_of_twice_the_rate_then_closes() {
        let now = VirtualClock::new().now();
        let mut p = WsPolicy::new(now, 10, Duration::from_secs(30));
        for _ in 0..20 {
            assert!(matches!(
                p.handle_message(now, Received::Text("x".into()), 0),
                Verdict::Forward(_)
            ));
        }
        assert_eq!(
            p.handle_message(now, Received::Text("x".into()), 0),
            Verdict::Close(CloseWhy::RateLimit)
        );
        // A second later ten more are allowed.
        let later = now + Duration::from_secs(1);
        let mut p = WsPolicy::new(now, 10, Duration::from_secs(30));
        for _ in 0..20 {
            p.handle_message(now, Received::Text("x".into()), 0);
        }
        for _ in 0..10 {
            assert!(matches!(
                p.handle_message(later, Received::Text("x".into()), 0),
                Verdict::Forward(_)
            ));
        }
    }

    #[test]
    fn silence_for_two_intervals_closes() {
        let now = VirtualClock::new().now();
        let i = Duration::from_secs(30);
        let mut p = WsPolicy::new(now, 10, i);
        assert_eq!(p.handle_tick(now + i), Tick::SendPing);
        p.handle_message(now + i, Received::Control, 0);
        assert_eq!(p.handle_tick(now + i * 2), Tick::SendPing);
        assert_eq!(p.handle_tick(now + i * 3), Tick::Close(CloseWhy::Keepalive));
    }
}
