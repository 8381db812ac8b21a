//! Who a request comes from, for the per-client budget: the TCP peer, or, only when the peer
//! is a configured trusted proxy, the right-most untrusted hop of its forwarding header
//! (`X-Forwarded-For` by default). A header from anyone else is ignored: a client could
//! otherwise pick a fresh address per request and escape its budget.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// A network as configured in `TRUSTED_PROXIES`: one address (`10.0.0.7`) or a CIDR block
/// (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, canonical(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                masked(u32::from(base).into(), 32, self.prefix) == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                masked(u128::from(base), 128, self.prefix) == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = text.split_once('/').map_or((text, None), |(a, p)| (a, Some(p)));
        let base =
            canonical(address.parse::<IpAddr>().map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?);
        let width = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(|| format!("{text:?}: bad prefix length"))?
            }
        };
        Ok(Self { base, prefix })
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a dual-stack socket reports) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client's budget is kept under: its IPv4 address, or the /64 of its IPv6 address
/// (one host usually holds a whole /64, so per address it could take 2^64 budgets).
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// How the client address is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddressing {
    pub trusted_proxies: Vec<Network>,
    /// The forwarding header the trusted proxies set (`X-Forwarded-For`).
    pub header: String,
}

impl ClientAddressing {
    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(ip))
    }

    /// The client behind a request from `peer`. From a trusted proxy: the header's hops read
    /// right to left (every line of it, in order), skipping trusted proxies; the first other
    /// hop is the client. A hop that is no address ends the walk at the last trusted one
    /// (what it says cannot be checked); a header of trusted hops only gives the left-most.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return canonical(peer);
        }
        let hops: Vec<&str> = headers
            .get_all(self.header.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .collect();
        let mut client = canonical(peer);
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        client
    }
}

/// One hop: an address, optionally with a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing(proxies: &[&str]) -> ClientAddressing {
        ClientAddressing {
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            header: "x-forwarded-for".into(),
        }
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let a = addressing(&["10.0.0.0/8"]);
        assert_eq!(a.client(ip("198.51.100.9"), &forwarded(&["203.0.113.7"])), ip("198.51.100.9"));
    }

    #[test]
    fn a_trusted_proxy_names_the_right_most_untrusted_hop() {
        let a = addressing(&["10.0.0.0/8", "127.0.0.1"]);
        // The client forged the first hop; the proxies appended the rest.
        let headers = forwarded(&["1.2.3.4, 203.0.113.7", "10.1.1.1"]);
        assert_eq!(a.client(ip("127.0.0.1"), &headers), ip("203.0.113.7"));
    }

    #[test]
    fn a_hop_that_is_no_address_stops_at_the_last_trusted_one() {
        let a = addressing(&["10.0.0.0/8"]);
        assert_eq!(a.client(ip("10.0.0.2"), &forwarded(&["203.0.113.7, garbage, 10.0.0.5"])), ip("10.0.0.5"));
        assert_eq!(a.client(ip("10.0.0.2"), &forwarded(&[])), ip("10.0.0.2"));
        assert_eq!(a.client(ip("10.0.0.2"), &forwarded(&["[2001:db8::1]:4711"])), ip("2001:db8::1"));
    }

    #[test]
    fn networks_match_by_prefix_and_mapped_addresses_as_ipv4() {
        let n: Network = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.255.0.1")) && !n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.0.0.1")));
        let all: Network = "::/0".parse().unwrap();
        assert!(all.contains(ip("2001:db8::1")) && !all.contains(ip("10.0.0.1")));
        assert!("10.0.0.0/33".parse::<Network>().is_err() && "nonsense".parse::<Network>().is_err());
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64() {
        assert_eq!(budget_key(ip("2001:db8:1:2:aaaa::1")), budget_key(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(budget_key(ip("2001:db8:1:2::1")), budget_key(ip("2001:db8:1:3::1")));
        assert_eq!(budget_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
