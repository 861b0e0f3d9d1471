//! Identifiers the gateway puts on the wire (branches, tags, Call-IDs): each carries 64 bits or
//! more from OpenSSL's CSPRNG, so nobody off the signaling path can guess one (RFC 3261 §8.1.1.4,
//! §19.3 ask for "cryptographically random" tags and Call-IDs). The randomness is drawn in
//! batches, so an identifier costs a copy and a hex format, not a call into OpenSSL.

/// Random 64-bit words drawn per refill.
const BATCH: usize = 512;

/// A pool of CSPRNG output.
#[derive(Debug)]
pub(super) struct Ids {
    pool: Box<[u64; BATCH]>,
    next: usize,
}

impl Default for Ids {
    fn default() -> Self {
        Self {
            pool: Box::new([0; BATCH]),
            next: BATCH,
        }
    }
}

impl Ids {
    fn word(&mut self) -> u64 {
        if self.next == BATCH {
            let mut bytes = [0u8; BATCH * 8];
            // OpenSSL seeds its CSPRNG from the OS at start-up; if it cannot, no identifier
            // this process makes could be trusted, and nothing else is safe to do.
            openssl::rand::rand_bytes(&mut bytes).expect("OpenSSL CSPRNG is seeded");
            for (w, b) in self.pool.iter_mut().zip(bytes.chunks_exact(8)) {
                *w = u64::from_le_bytes(b.try_into().expect("chunks of 8"));
            }
            self.next = 0;
        }
        let w = self.pool[self.next];
        self.next += 1;
        w
    }

    /// A tag or branch suffix: 16 hex digits, 64 random bits.
    pub(super) fn token(&mut self) -> String {
        format!("{:016x}", self.word())
    }

    /// A Call-ID: 24 hex digits, 96 random bits.
    pub(super) fn call_id(&mut self) -> String {
        let (a, b) = (self.word(), self.word());
        format!("{:016x}{:08x}", a, b as u32)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tokens_are_long_distinct_and_not_sequential() {
        let mut ids = Ids::default();
        let toks: Vec<String> = (0..3 * BATCH).map(|_| ids.token()).collect();
        assert!(toks.iter().all(|t| t.len() == 16));
        assert_eq!(toks.iter().collect::<HashSet<_>>().len(), toks.len());
        let nums: Vec<u64> = toks
            .iter()
            .map(|t| u64::from_str_radix(t, 16).unwrap())
            .collect();
        let steps = nums
            .windows(2)
            .filter(|w| w[1].wrapping_sub(w[0]) < 1 << 20);
        assert!(steps.count() < 3, "consecutive tokens look sequential");
        assert_eq!(ids.call_id().len(), 24);
    }
}
