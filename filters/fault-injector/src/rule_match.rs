//! Which requests a rule applies to: Istio's `HTTPMatchRequest` subset
//! (uri, method, headers, withoutHeaders, queryParams: `mesh-policy`'s
//! [`HttpMatch`], with Envoy's semantics) plus the fault injector's own
//! conditions, source address ranges and the route name.

use std::net::IpAddr;

use mesh_policy::HttpMatch;

use crate::decision::RequestView;

/// An address range in CIDR form (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix_len: u8,
}

impl IpBlock {
    /// Parses `address` or `address/prefix`. Host bits set in a range
    /// (`10.1.2.3/8`) are ignored, as Envoy's CIDR ranges ignore them.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                p.parse::<u8>().ok().filter(|n| *n <= max)?
            }
            None => max,
        };
        Some(Self {
            network,
            prefix_len,
        })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len));
                let mask = mask.unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len));
                let mask = mask.unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

/// Reads `source.address` as Envoy gives it: `10.0.0.1:4321`,
/// `[fd00::1]:4321`, or an address without a port.
pub fn parse_source_address(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

/// One `match` entry: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// uri, method, headers, withoutHeaders, queryParams.
    pub http: HttpMatch,
    pub source_ip_blocks: Vec<IpBlock>,
    pub route_name: Option<String>,
}

impl Match {
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        if !self.http.matches(&request.http()) {
            return false;
        }
        if !self.source_ip_blocks.is_empty() {
            let Some(address) = request.source_address else {
                return false;
            };
            if !self.source_ip_blocks.iter().any(|b| b.contains(address)) {
                return false;
            }
        }
        if let Some(route) = &self.route_name
            && request.route_name != Some(route.as_str())
        {
            return false;
        }
        true
    }

    pub(crate) fn uses_source_address(&self) -> bool {
        !self.source_ip_blocks.is_empty()
    }

    pub(crate) fn uses_route_name(&self) -> bool {
        self.route_name.is_some()
    }
}

/// Whether any of `matches` holds; an empty list matches every request.
pub(crate) fn any_matches(matches: &[Match], request: &RequestView<'_>) -> bool {
    matches.is_empty() || matches.iter().any(|m| m.matches(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>() -> RequestView<'a> {
        RequestView {
            method: "GET",
            path: "/",
            headers: &[],
            source_address: None,
            route_name: None,
            random: 0,
        }
    }

    #[test]
    fn ip_blocks() {
        let block = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(block.contains("10.200.1.1".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!block.contains("fd00::1".parse().unwrap()));
        let single = IpBlock::parse("192.168.1.5").unwrap();
        assert!(single.contains("192.168.1.5".parse().unwrap()));
        assert!(!single.contains("192.168.1.6".parse().unwrap()));
        let all = IpBlock::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = IpBlock::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            IpBlock::parse("::/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
    }

    #[test]
    fn bad_ip_blocks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
            "",
        ] {
            assert_eq!(IpBlock::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn source_blocks_need_a_known_address() {
        let m = Match {
            source_ip_blocks: vec![IpBlock::parse("10.0.0.0/8").unwrap()],
            ..Match::default()
        };
        let mut request = view();
        assert!(!m.matches(&request));
        request.source_address = Some("10.1.1.1".parse().unwrap());
        assert!(m.matches(&request));
    }

    #[test]
    fn route_name_is_exact() {
        let m = Match {
            route_name: Some("reviews".into()),
            ..Match::default()
        };
        let mut request = view();
        assert!(!m.matches(&request));
        request.route_name = Some("reviews");
        assert!(m.matches(&request));
        request.route_name = Some("reviews-v2");
        assert!(!m.matches(&request));
    }

    #[test]
    fn source_addresses_in_envoy_forms() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(parse_source_address("10.0.0.1:4321"), Some(v4));
        assert_eq!(parse_source_address("10.0.0.1"), Some(v4));
        assert_eq!(parse_source_address("[fd00::1]:4321"), Some(v6));
        assert_eq!(parse_source_address("fd00::1"), Some(v6));
        assert_eq!(parse_source_address("pipe:/tmp/x"), None);
    }

    #[test]
    fn an_empty_match_list_matches_everything() {
        assert!(any_matches(&[], &view()));
    }
}
