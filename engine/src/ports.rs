//! Port planning: the `MIN_RTP_PORT..=MAX_RTP_PORT` range split into one contiguous shard per
//! media reactor.
//!
//! Each shard gives its reactor one WebRTC port (shared by all of the reactor's WebRTC legs: STUN
//! is demultiplexed by USERNAME, everything after ICE by the nominated 5-tuple) and a run of
//! even/odd RTP/RTCP pairs for plain legs (RFC 3550 §11: RTP on an even port, RTCP on the next).
//! One call then costs one pair plus its share of the WebRTC port: 2 ports where the replaced
//! system used 4 (two pairs, 4 ports, when its plain leg also carries a video section).

#![forbid(unsafe_code)]

use std::ops::RangeInclusive;

/// The ports one reactor owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The UDP port all WebRTC legs of this reactor share.
    pub webrtc_port: u16,
    /// Even RTP ports of the plain-leg pairs; each pair is `(p, p + 1)`.
    pub pair_bases: Vec<u16>,
}

impl Shard {
    /// Number of plain-leg RTP/RTCP pairs, which bounds the shard's concurrent plain legs.
    pub fn pair_count(&self) -> usize {
        self.pair_bases.len()
    }
}

/// Why a port range cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortPlanError {
    /// The range is empty or inverted.
    #[error("MIN_RTP_PORT {min} is greater than MAX_RTP_PORT {max}")]
    Inverted { min: u16, max: u16 },
    /// Port 0 cannot be bound as a fixed port.
    #[error("MIN_RTP_PORT must be at least 1")]
    ZeroPort,
    /// No reactor to give the range to.
    #[error("at least one media thread is needed")]
    NoReactors,
    /// A shard would not hold even one session (its WebRTC port plus one RTP/RTCP pair).
    #[error(
        "the range {min}-{max} ({ports} ports) is too small for {reactors} media thread(s): \
         each needs 1 WebRTC port and one even/odd RTP/RTCP pair, at least {needed} ports in all"
    )]
    TooSmall {
        min: u16,
        max: u16,
        ports: u32,
        reactors: usize,
        needed: u32,
    },
}

/// Splits `range` into `reactors` contiguous shards of near-equal size.
///
/// Each shard's first port is its WebRTC port; the remaining ports are paired from the first
/// even one. Fails when any shard would hold no pair.
pub fn plan_shards(
    range: RangeInclusive<u16>,
    reactors: usize,
) -> Result<Vec<Shard>, PortPlanError> {
    let (min, max) = (*range.start(), *range.end());
    if min == 0 {
        return Err(PortPlanError::ZeroPort);
    }
    if min > max {
        return Err(PortPlanError::Inverted { min, max });
    }
    if reactors == 0 {
        return Err(PortPlanError::NoReactors);
    }
    let total = u32::from(max) - u32::from(min) + 1;
    let too_small = || PortPlanError::TooSmall {
        min,
        max,
        ports: total,
        reactors,
        // Worst case per shard is 4 ports (an even start wastes the odd port after the WebRTC one).
        needed: 4 * reactors as u32,
    };
    let n = u32::try_from(reactors).map_err(|_| too_small())?;
    if total < 3 * n {
        return Err(too_small());
    }
    let (base, extra) = (total / n, total % n);
    let mut shards = Vec::with_capacity(reactors);
    let mut start = u32::from(min);
    for i in 0..n {
        let len = base + u32::from(i < extra);
        let end = start + len - 1;
        let webrtc_port = start as u16;
        let mut p = start + 1;
        if p % 2 == 1 {
            p += 1;
        }
        let mut pair_bases = Vec::new();
        while p < end {
            pair_bases.push(p as u16);
            p += 2;
        }
        if pair_bases.is_empty() {
            return Err(too_small());
        }
        shards.push(Shard {
            webrtc_port,
            pair_bases,
        });
        start = end + 1;
    }
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_on_one_reactor() {
        let shards = plan_shards(32000..=34000, 1).unwrap();
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].webrtc_port, 32000);
        assert_eq!(shards[0].pair_bases.first(), Some(&32002));
        assert_eq!(shards[0].pair_bases.last(), Some(&33998));
        assert_eq!(shards[0].pair_count(), 999);
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_range() {
        let shards = plan_shards(32001..=34000, 3).unwrap();
        let mut used = Vec::new();
        for s in &shards {
            used.push(s.webrtc_port);
            for &p in &s.pair_bases {
                assert_eq!(p % 2, 0);
                used.push(p);
                used.push(p + 1);
            }
        }
        let len = used.len();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), len, "a port is in two shards");
        assert!(used.iter().all(|p| (32001..=34000).contains(p)));
    }

    #[test]
    fn smallest_ranges() {
        // odd start: webrtc 33, pair 34/35
        assert_eq!(plan_shards(33..=35, 1).unwrap()[0].pair_bases, vec![34]);
        // even start needs 4 ports: webrtc 32, 33 unused, pair 34/35
        assert!(matches!(
            plan_shards(32..=34, 1),
            Err(PortPlanError::TooSmall { .. })
        ));
        assert_eq!(plan_shards(32..=35, 1).unwrap()[0].pair_bases, vec![34]);
        assert!(plan_shards(40000..=40001, 1).is_err());
    }

    #[test]
    #[allow(
        clippy::reversed_empty_ranges,
        reason = "the planner must reject an inverted range"
    )]
    fn invalid_ranges() {
        assert!(matches!(
            plan_shards(34000..=32000, 1),
            Err(PortPlanError::Inverted { .. })
        ));
        assert_eq!(plan_shards(0..=10, 1), Err(PortPlanError::ZeroPort));
        assert_eq!(plan_shards(10..=100, 0), Err(PortPlanError::NoReactors));
        assert!(plan_shards(65530..=65535, 2).is_err());
        assert!(plan_shards(65528..=65535, 2).is_ok());
    }
}
