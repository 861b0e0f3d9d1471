//! Where the engine's random values (ICE credentials) come from. Sessions do not read a
//! generator of their own: their caller passes one, so the reactor gives them OpenSSL's CSPRNG
//! and a test or simulation a seeded one it can replay.

#![forbid(unsafe_code)]

/// A source of random bytes.
pub trait Entropy {
    /// Fills `buf`, or says why it could not.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), String>;
}

/// OpenSSL's CSPRNG (`RAND_bytes`): the only source for production, where ICE passwords must
/// not be guessable.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenSslEntropy;

impl Entropy for OpenSslEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), String> {
        openssl::rand::rand_bytes(buf).map_err(|e| e.to_string())
    }
}

/// A deterministic generator (splitmix64) for tests and simulations: the same seed gives the
/// same bytes. Never for production: its output is predictable.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    state: u64,
}

impl SeededEntropy {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), String> {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_another_seed_differs() {
        let bytes = |seed| {
            let mut b = [0u8; 20];
            SeededEntropy::new(seed).fill(&mut b).unwrap();
            b
        };
        assert_eq!(bytes(7), bytes(7));
        assert_ne!(bytes(7), bytes(8));
        assert_ne!(bytes(7), [0; 20]);
    }

    #[test]
    fn openssl_fills_the_buffer() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OpenSslEntropy.fill(&mut a).unwrap();
        OpenSslEntropy.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
