//! Per-leg counters: drops by reason in a fixed array, and RTP reception statistics (RFC 3550
//! §6.4.1 jitter, Appendix A.1/A.3 sequence tracking and loss). Nothing here allocates.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// Why a datagram was not forwarded. The discriminant indexes [`DropCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Not STUN/DTLS/RTP/RTCP, or a header that does not parse.
    Malformed = 0,
    /// SRTP/SRTCP authentication failed (forged, corrupted, or wrongly keyed).
    SrtpAuth,
    /// SRTP replay: a duplicate (inbound), or a repeated sequence number (outbound).
    SrtpReplay,
    /// Any other SRTP failure (bad packet for libsrtp, expired key).
    SrtpOther,
    /// From an address that is neither negotiated, latched nor ICE-nominated.
    UnknownSource,
    /// Media before ICE nomination or before DTLS-SRTP keys exist.
    NotConnected,
    /// RTP with a payload type the leg did not negotiate.
    WrongPt,
    /// The other leg has no address to send to yet.
    NoDestination,
    /// A STUN message that is not a valid check for this leg.
    StunRejected,
    /// No room for the SRTP tag in the buffer.
    TooLarge,
    /// The reactor found no session for the packet (released, or never allocated).
    UnknownSession,
    /// The session panicked while handling it and was torn down.
    Panicked,
    /// The kernel truncated the datagram (bigger than a receive buffer).
    Truncated,
    /// RTP on hold (RFC 3264 §5.1, §8.4): the receiving leg's SDP is `sendonly`/`inactive`, or
    /// the sending leg's is `recvonly`/`inactive`.
    Held,
    /// Media on a plain stream before its far end's SDP is known: nothing is learned or
    /// accepted before it (an attacker spraying the port range must not win the latch).
    BeforeSdp,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 15;
    /// Every reason, in discriminant order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::SrtpAuth,
        DropReason::SrtpReplay,
        DropReason::SrtpOther,
        DropReason::UnknownSource,
        DropReason::NotConnected,
        DropReason::WrongPt,
        DropReason::NoDestination,
        DropReason::StunRejected,
        DropReason::TooLarge,
        DropReason::UnknownSession,
        DropReason::Panicked,
        DropReason::Truncated,
        DropReason::Held,
        DropReason::BeforeSdp,
    ];

    /// A metric label.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::SrtpAuth => "srtp_auth",
            DropReason::SrtpReplay => "srtp_replay",
            DropReason::SrtpOther => "srtp_other",
            DropReason::UnknownSource => "unknown_source",
            DropReason::NotConnected => "not_connected",
            DropReason::WrongPt => "wrong_pt",
            DropReason::NoDestination => "no_destination",
            DropReason::StunRejected => "stun_rejected",
            DropReason::TooLarge => "too_large",
            DropReason::UnknownSession => "unknown_session",
            DropReason::Panicked => "panicked",
            DropReason::Truncated => "truncated",
            DropReason::Held => "held",
            DropReason::BeforeSdp => "before_sdp",
        }
    }
}

/// Drops counted per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl DropCounts {
    /// Counts one drop.
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }
    /// Counts `n` drops.
    pub fn add_n(&mut self, reason: DropReason, n: u64) {
        self.0[reason as usize] += n;
    }
    /// Drops for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }
    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// RTP clock rate guess for jitter: the static payload types of RFC 3551 §6 and, for dynamic
/// ones (which SDP maps, and the engine is not told), 48 kHz (Opus, the browsers' audio codec).
pub fn clock_rate(pt: u8) -> u32 {
    match pt {
        0..=23 => 8000,
        25 | 26 | 28 | 31..=34 => 90_000,
        _ => 48_000,
    }
}

/// Reception statistics of the RTP arriving on one leg, for its main (most recent) SSRC.
#[derive(Debug, Clone, Copy, Default)]
pub struct RtpRx {
    ssrc: Option<u32>,
    base_seq: u16,
    max_seq: u16,
    cycles: u64,
    received: u64,
    /// Bit `n` set: `max_seq - n` was received (duplicate detection).
    window: u128,
    /// Loss of SSRCs seen before the current one.
    lost_before: u64,
    transit: Option<i64>,
    /// RFC 3550 A.8 fixed point: jitter * 16.
    jitter16: u64,
}

/// RFC 3550 A.1 `MAX_DROPOUT`: a larger forward jump restarts the sequence.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1 `MAX_MISORDER`.
const MAX_MISORDER: u16 = 100;

impl RtpRx {
    /// Records one RTP packet arriving `since_start` after the session started.
    pub fn record(&mut self, seq: u16, ts: u32, pt: u8, ssrc: u32, since_start: Duration) {
        if self.ssrc != Some(ssrc) {
            self.lost_before += self.lost_current();
            *self = RtpRx {
                ssrc: Some(ssrc),
                base_seq: seq,
                max_seq: seq,
                lost_before: self.lost_before,
                ..RtpRx::default()
            };
            self.window = 1;
            self.received = 1;
        } else if !self.track_seq(seq) {
            return;
        }
        let rate = u128::from(clock_rate(pt));
        let arrival = (since_start.as_micros() * rate / 1_000_000) as i64;
        let transit = arrival.wrapping_sub(i64::from(ts));
        if let Some(prev) = self.transit {
            let d = transit
                .wrapping_sub(prev)
                .unsigned_abs()
                .min(u64::from(u32::MAX));
            // J += (|D| - J) / 16, kept as 16 * J (RFC 3550 A.8).
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Sequence bookkeeping of RFC 3550 A.1 for a known SSRC; false for a duplicate.
    fn track_seq(&mut self, seq: u16) -> bool {
        let delta = seq.wrapping_sub(self.max_seq);
        if delta == 0 {
            return false;
        } else if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
            self.window = if delta >= 128 {
                0
            } else {
                self.window << delta
            };
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A big jump: the sender restarted its sequence (RFC 3550 A.1 without probation).
            self.lost_before += self.lost_current();
            self.base_seq = seq;
            self.max_seq = seq;
            self.cycles = 0;
            self.received = 0;
            self.window = 0;
        } else {
            // Late: a duplicate if already seen; if it precedes the first packet seen, the
            // sequence started earlier.
            let age = self.max_seq.wrapping_sub(seq);
            if age < 128 {
                if self.window & (1 << age) != 0 {
                    return false;
                }
                self.window |= 1 << age;
            }
            let before = self.base_seq.wrapping_sub(seq);
            if self.cycles == 0 && before != 0 && before <= MAX_MISORDER {
                self.base_seq = seq;
            }
            self.received += 1;
            return true;
        }
        self.window |= 1;
        self.received += 1;
        true
    }

    fn lost_current(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let expected = self.cycles + u64::from(self.max_seq) + 1 - u64::from(self.base_seq);
        expected.saturating_sub(self.received)
    }

    /// Packets missing by sequence number (duplicates within 128 are not counted as received).
    pub fn lost(&self) -> u64 {
        self.lost_before + self.lost_current()
    }

    /// Interarrival jitter in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter16 >> 4).unwrap_or(u32::MAX)
    }
}

/// The time since `start`, saturating at zero.
pub fn since(start: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_slots() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut c = DropCounts::default();
        c.add(DropReason::WrongPt);
        c.add(DropReason::WrongPt);
        c.add(DropReason::Truncated);
        assert_eq!(c.get(DropReason::WrongPt), 2);
        assert_eq!(c.total(), 3);
    }

    fn feed(rx: &mut RtpRx, seqs: &[u16]) {
        for &s in seqs {
            let ms = u64::from(s.wrapping_sub(seqs[0])) * 20;
            rx.record(s, u32::from(s) * 160, 0, 7, Duration::from_millis(ms));
        }
    }

    #[test]
    fn loss_counts_gaps_not_reorder_or_duplicates() {
        let mut rx = RtpRx::default();
        feed(&mut rx, &[10, 11, 13, 12, 14, 14, 17]);
        assert_eq!(rx.lost(), 2, "15 and 16");
        assert_eq!(rx.jitter(), 0, "perfectly paced");
    }

    #[test]
    fn first_packets_swapped() {
        let mut rx = RtpRx::default();
        feed(&mut rx, &[11, 10, 12, 14]);
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn sequence_wraps() {
        let mut rx = RtpRx::default();
        feed(&mut rx, &[65534, 65535, 0, 2]);
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn ssrc_change_keeps_earlier_loss() {
        let mut rx = RtpRx::default();
        feed(&mut rx, &[1, 3]);
        rx.record(100, 0, 0, 8, Duration::from_secs(1));
        rx.record(101, 160, 0, 8, Duration::from_millis(1020));
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn jitter_grows_with_uneven_arrival() {
        let mut rx = RtpRx::default();
        for i in 0..50u16 {
            let late = if i % 2 == 0 { 0 } else { 10 };
            rx.record(
                i,
                u32::from(i) * 160,
                0,
                1,
                Duration::from_millis(u64::from(i) * 20 + late),
            );
        }
        // |D| = 80 units each time; J converges towards 80.
        assert!((60..=80).contains(&rx.jitter()), "{}", rx.jitter());
    }
}
