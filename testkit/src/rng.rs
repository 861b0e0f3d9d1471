//! A seeded pseudo-random generator for tests: xorshift64* (Vigna, 2016), so a failure
//! reproduces from its seed. Not for keys or anything an attacker could predict.

/// xorshift64*: `state ^= state >> 12; state ^= state << 25; state ^= state >> 27`, output
/// `state * 0x2545f4914f6cdd1d`.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator from `seed`; a zero seed (xorshift's fixed point) is replaced by a constant.
    pub fn new(seed: u64) -> Self {
        SeededRng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0; modulo bias is irrelevant for tests).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0) has no value");
        (self.next_u64() % n as u64) as usize
    }

    /// `true` with probability `p` (0.0 never, 1.0 always).
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 bits: every f64 in [0, 1) with an even step.
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// Fills `buf`, one draw per byte (its low 8 bits), so a loop of `next_u64() as u8` and
    /// `fill` give the same bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }

    /// One element of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_known_first_values() {
        let mut a = SeededRng::new(1);
        let mut b = SeededRng::new(1);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        // xorshift64* from state 1: state becomes 0x2000001 (1 ^ 1<<25 ^ (that>>27)).
        assert_eq!(xs[0], 0x2000001u64.wrapping_mul(0x2545_f491_4f6c_dd1d));
        assert_ne!(SeededRng::new(2).next_u64(), xs[0]);
    }

    #[test]
    fn zero_seed_does_not_stick() {
        let mut r = SeededRng::new(0);
        assert!((0..10).any(|_| r.next_u64() != 0));
    }

    #[test]
    fn below_chance_fill_pick_stay_in_range() {
        let mut r = SeededRng::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            seen[r.below(5)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        let hits = (0..10_000).filter(|_| r.chance(0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
        let mut buf = [0u8; 64];
        r.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
        let mut same = SeededRng::new(7);
        for _ in 0..5000 + 10_000 + 2000 {
            same.next_u64();
        }
        let expect: Vec<u8> = (0..64).map(|_| same.next_u64() as u8).collect();
        assert_eq!(buf.to_vec(), expect, "fill is one draw per byte");
        assert!([3, 5, 9].contains(r.pick(&[3, 5, 9])));
    }
}
