//! Where the engine's random values (ICE credentials) come from. Sessions do not read a
//! generator of their own: their caller passes one, so the reactor gives them OpenSSL's CSPRNG
//! and a test or simulation a seeded one it can replay (any `FnMut(&mut [u8])`).

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

/// Any closure that fills a buffer is a source too: tests and simulations pass a seeded
/// generator (`testkit::SeededRng`) this way, so a run replays.
impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closure_is_a_source() {
        let mut n = 0u8;
        let mut count = |b: &mut [u8]| {
            for x in b {
                n += 1;
                *x = n;
            }
        };
        let mut b = [0u8; 3];
        Entropy::fill(&mut count, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3]);
    }

    #[test]
    fn openssl_fills_the_buffer() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OpenSslEntropy.fill(&mut a).unwrap();
        OpenSslEntropy.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
