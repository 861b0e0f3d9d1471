//! Latency histograms (log buckets, 1 % resolution, lock-free counting) and percentiles.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket growth factor: 1 % resolution.
const GROWTH: f64 = 1.01;
/// Buckets cover 1 µs .. about 30 s.
const BUCKETS: usize = 1750;

fn bucket_of(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    let i = ((us as f64).ln() / GROWTH.ln()) as usize;
    i.min(BUCKETS - 1)
}

/// The upper edge of a bucket, in µs.
fn bucket_value(i: usize) -> f64 {
    GROWTH.powi(i as i32 + 1)
}

/// A histogram of microsecond values that many tasks add to without locks.
#[derive(Debug)]
pub struct AtomicHistogram {
    counts: Vec<AtomicU64>,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl AtomicHistogram {
    /// Counts one value.
    pub fn record(&self, us: u64) {
        self.counts[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> Histogram {
        Histogram {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A plain histogram (a snapshot, or the difference of two).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    /// Counts added since `earlier`.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            counts: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, c)| c - earlier.counts.get(i).copied().unwrap_or(0))
                .collect(),
        }
    }

    /// How many values.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1) in ms, or None when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_value(i) / 1000.0);
            }
        }
        None
    }
}

/// Exact quantile of a small sample (setup times), in the sample's unit.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// p50, p99, p99.9 of a small sample.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Percentiles {
    /// Number of values.
    pub n: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Percentiles {
    /// From an unsorted sample.
    pub fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self {
            n: v.len(),
            p50: quantile(&v, 0.5),
            p99: quantile(&v, 0.99),
            p999: quantile(&v, 0.999),
            max: v.last().copied(),
        }
    }

    /// From a histogram in ms.
    pub fn of_histogram(h: &Histogram) -> Self {
        Self {
            n: h.total() as usize,
            p50: h.quantile_ms(0.5),
            p99: h.quantile_ms(0.99),
            p999: h.quantile_ms(0.999),
            max: h.quantile_ms(1.0),
        }
    }
}

/// RFC 3550 §6.4.1 interarrival jitter, in timestamp units (8 kHz for G.711).
#[derive(Debug, Default, Clone)]
pub struct Jitter {
    last: Option<(f64, u32)>,
    jitter: f64,
    max: f64,
}

impl Jitter {
    /// One packet: arrival time in seconds (any origin) and its RTP timestamp.
    pub fn update(&mut self, arrival_s: f64, rtp_ts: u32) {
        let arrival = arrival_s * 8000.0;
        if let Some((a, t)) = self.last {
            let d = (arrival - a) - f64::from(rtp_ts.wrapping_sub(t) as i32);
            self.jitter += (d.abs() - self.jitter) / 16.0;
            self.max = self.max.max(self.jitter);
        }
        self.last = Some((arrival, rtp_ts));
    }

    /// Current jitter in ms.
    pub fn ms(&self) -> f64 {
        self.jitter / 8.0
    }

    /// Largest jitter seen, in ms.
    pub fn max_ms(&self) -> f64 {
        self.max / 8.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_one_percent() {
        let h = AtomicHistogram::default();
        for us in 1..=10_000u64 {
            h.record(us * 10);
        }
        let s = h.snapshot();
        let p50 = s.quantile_ms(0.5).unwrap();
        assert!((p50 - 50.0).abs() / 50.0 < 0.02, "{p50}");
        let p99 = s.quantile_ms(0.99).unwrap();
        assert!((p99 - 99.0).abs() / 99.0 < 0.02, "{p99}");
        assert_eq!(s.since(&s).total(), 0);
    }

    #[test]
    fn steady_stream_has_no_jitter() {
        let mut j = Jitter::default();
        for i in 0..100u32 {
            j.update(f64::from(i) * 0.02, i * 160);
        }
        assert!(j.ms() < 1e-9);
    }
}
