//! `ACCEPT_IPS`: who may start a call (Sippy `--accept_ips`).
//!
//! A comma-separated list of the pseudo-sources `[[WSS]]` (any WebSocket client) and `[[PROXY]]`
//! (the resolved `OUTBOUND_PROXY` addresses), literal addresses and CIDR blocks.

use std::net::IpAddr;

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptEntry {
    Wss,
    Proxy,
    Net { addr: IpAddr, prefix: u8 },
}

/// Where a new INVITE came from, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Over a WebSocket connection.
    Wss,
    /// Over UDP from an address of `OUTBOUND_PROXY`.
    Proxy(IpAddr),
    /// Over UDP from anyone else.
    Other(IpAddr),
}

/// The parsed `ACCEPT_IPS` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptList(Vec<AcceptEntry>);

/// Why an `ACCEPT_IPS` entry is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    #[error("'{0}' is neither [[WSS]], [[PROXY]], an IP address nor a CIDR block")]
    BadEntry(String),
    #[error("the list is empty")]
    Empty,
}

impl AcceptList {
    pub fn parse(s: &str) -> Result<Self, AcceptError> {
        let mut entries = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || AcceptError::BadEntry(item.to_string());
            let entry = match item {
                "[[WSS]]" => AcceptEntry::Wss,
                "[[PROXY]]" => AcceptEntry::Proxy,
                _ => {
                    let (ip, prefix) = match item.split_once('/') {
                        Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
                        None => (item, None),
                    };
                    let addr: IpAddr = ip.parse().map_err(|_| bad())?;
                    let max = if addr.is_ipv4() { 32 } else { 128 };
                    let prefix = prefix.unwrap_or(max);
                    if prefix > max {
                        return Err(bad());
                    }
                    AcceptEntry::Net { addr, prefix }
                }
            };
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(AcceptError::Empty);
        }
        Ok(AcceptList(entries))
    }

    /// Whether a new call from `src` is allowed. A proxy address also matches literal entries.
    pub fn is_allowed(&self, src: Source) -> bool {
        self.0.iter().any(|e| match (e, src) {
            (AcceptEntry::Wss, Source::Wss) => true,
            (AcceptEntry::Proxy, Source::Proxy(_)) => true,
            (AcceptEntry::Net { addr, prefix }, Source::Proxy(ip) | Source::Other(ip)) => {
                in_net(ip, *addr, *prefix)
            }
            _ => false,
        })
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_list() {
        let l = AcceptList::parse("[[WSS]],[[PROXY]]").unwrap();
        assert!(l.is_allowed(Source::Wss));
        assert!(l.is_allowed(Source::Proxy(ip("10.0.0.1"))));
        assert!(!l.is_allowed(Source::Other(ip("10.0.0.1"))));
    }

    #[test]
    fn literals_and_cidrs() {
        let l = AcceptList::parse(" 192.0.2.7 , 10.1.0.0/16,2001:db8::/32,0.0.0.0/0").unwrap();
        assert!(l.is_allowed(Source::Other(ip("192.0.2.7"))));
        assert!(!l.is_allowed(Source::Wss));
        let l = AcceptList::parse("10.1.0.0/16,2001:db8::/32").unwrap();
        assert!(l.is_allowed(Source::Other(ip("10.1.200.3"))));
        assert!(!l.is_allowed(Source::Other(ip("10.2.0.1"))));
        assert!(l.is_allowed(Source::Other(ip("2001:db8:1::5"))));
        assert!(l.is_allowed(Source::Other(ip("::ffff:10.1.2.3"))));
        assert!(!l.is_allowed(Source::Other(ip("2001:db9::1"))));
    }

    #[test]
    fn bad_entries() {
        assert!(AcceptList::parse("[[WS]]").is_err());
        assert!(AcceptList::parse("10.0.0.0/33").is_err());
        assert!(AcceptList::parse("example.com").is_err());
        assert_eq!(AcceptList::parse(" , "), Err(AcceptError::Empty));
    }
}
