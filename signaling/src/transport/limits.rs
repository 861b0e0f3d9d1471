//! Connection counts per client address and in total, for the TCP listeners (accepted
//! connections) and the WebSocket upgrades (open SIP WebSockets).
//!
//! A client is its IPv4 address (/32) or its IPv6 /64: one IPv6 host usually holds a whole /64
//! (RFC 4291 §2.5.1, SLAAC and privacy addresses, RFC 8981), so counting per /128 would give it
//! 2^64 budgets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The address a limit counts against: IPv4 as is (also when IPv4-mapped into IPv6), IPv6
/// with the interface identifier (the low 64 bits) cleared.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client's address (or /64) holds its share already.
    PerAddress,
    /// The table is full.
    Total,
}

#[derive(Debug, Default)]
struct Counts {
    per_key: HashMap<IpAddr, usize>,
    total: usize,
}

/// Open connections by client key and in total (transport bookkeeping, touched once per
/// connection open and close, never per message).
#[derive(Debug)]
pub struct ConnTable {
    max_per_addr: usize,
    max_total: usize,
    counts: Mutex<Counts>,
}

impl ConnTable {
    pub fn new(max_per_addr: usize, max_total: usize) -> Arc<Self> {
        Arc::new(ConnTable {
            max_per_addr,
            max_total,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Takes a place for a connection from `ip`, given back when the slot drops.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Refusal> {
        let key = client_key(ip);
        let mut c = self.lock();
        if c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = c.per_key.entry(key).or_insert(0);
        if *n >= self.max_per_addr {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnSlot {
            table: self.clone(),
            key,
        })
    }

    /// Connections open in total.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent under a panic elsewhere: every update is one short
        // critical section that cannot panic halfway.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One connection's place in a [`ConnTable`].
#[derive(Debug)]
pub struct ConnSlot {
    table: Arc<ConnTable>,
    key: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self.table.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(client_key(ip("192.0.2.7")), client_key(ip("192.0.2.8")));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn one_64_shares_one_budget() {
        let t = ConnTable::new(2, 100);
        let a = t.take(ip("2001:db8::1")).unwrap();
        let _b = t.take(ip("2001:db8::2:3")).unwrap();
        assert_eq!(
            t.take(ip("2001:db8::ffff:1:2:3")).unwrap_err(),
            Refusal::PerAddress
        );
        // Another /64 and another IPv4 address have their own budgets.
        let _c = t.take(ip("2001:db8:0:1::1")).unwrap();
        let _d = t.take(ip("192.0.2.1")).unwrap();
        drop(a);
        assert!(t.take(ip("2001:db8::7")).is_ok());
    }

    #[test]
    fn total_cap_and_slots_given_back() {
        let t = ConnTable::new(10, 3);
        let slots: Vec<_> = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            .iter()
            .map(|a| t.take(ip(a)).unwrap())
            .collect();
        assert_eq!(t.take(ip("192.0.2.4")).unwrap_err(), Refusal::Total);
        assert_eq!(t.total(), 3);
        drop(slots);
        assert_eq!(t.total(), 0);
        assert!(t.lock().per_key.is_empty());
        assert!(t.take(ip("192.0.2.4")).is_ok());
    }
}
