//! Where a request comes from, as far as limits are concerned: one IPv4 address, or one IPv6
//! /64. A single IPv6 host is routinely given a whole /64, so counting per address would hand
//! it 2^64 fresh identities; counting per /64 gives it one, as one IPv4 address has.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A client's network for per-source limits: an IPv4 address or an IPv6 /64 prefix.
/// Fixed-size, so a map keyed on it grows by a constant per source, whatever the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceNet {
    /// One IPv4 address.
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl From<IpAddr> for SourceNet {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            // An IPv4-mapped address (a dual-stack socket) is the IPv4 client it maps.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(v4) => write!(f, "{v4}"),
            Self::V6Prefix(prefix) => {
                write!(f, "{}/64", Ipv6Addr::from(u128::from(*prefix) << 64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(SourceNet::from(a), SourceNet::from(b));
        assert_ne!(SourceNet::from(a), SourceNet::from(c));
        assert_eq!(SourceNet::from(a).to_string(), "2001:db8:1:2::/64");
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v4b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_ne!(SourceNet::from(v4), SourceNet::from(v4b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(SourceNet::from(mapped), SourceNet::from(v4));
    }
}
