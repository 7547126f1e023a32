//! The browser's network policy, as pure functions over addresses.
//!
//! By default the browser reaches public addresses only: never loopback, link-local
//! (the cloud metadata address among them), private or otherwise internal ranges, and
//! never the agentd server itself. The allowlist (`AGENTD_BROWSER_ALLOW_HOSTS`) opens
//! exceptions by host name or by address range. The check is made on the address the
//! proxy is about to connect to, after resolution, so a name that resolves to an
//! internal address is refused like the address itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// True for addresses a browser of an agent must not reach unless allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed)
                || (first & 0xff00) == 0xff00 // multicast
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible or NAT64 IPv6 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    let compatible = s[..6].iter().all(|&x| x == 0) && !v6.is_loopback() && !v6.is_unspecified();
    (nat64 || compatible).then_some(tail)
}

#[derive(Clone, Debug, PartialEq)]
enum Allow {
    Net {
        network: IpAddr,
        prefix: u8,
    },
    Host(String),
    /// `*.example.test` or `.example.test`: any subdomain, not the domain itself.
    Subdomains(String),
}

/// An allowlist entry that is neither an IP, a CIDR nor a host name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid allowlist entry '{entry}': {why}")]
pub struct PolicyError {
    pub entry: String,
    pub why: String,
}

/// Why a request was refused; its `Display` is written for the model to read.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub host: String,
    pub addr: Option<IpAddr>,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(addr) if addr.to_string() != self.host => write!(
                f,
                "the address {addr} (of {}) is not allowed by the browser's network policy ({})",
                self.host, self.reason
            ),
            _ => write!(
                f,
                "the address {} is not allowed by the browser's network policy ({})",
                self.host, self.reason
            ),
        }
    }
}

/// What the browser may reach. `Default` is the empty allowlist: public addresses only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkPolicy {
    allow: Vec<Allow>,
    /// Sockets refused whatever the allowlist says, each with the reason given.
    denied: Vec<(SocketAddr, &'static str)>,
}

fn contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
            u32::from(n) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
            u128::from(n) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

impl NetworkPolicy {
    /// Parses a comma-separated list of IPs (`127.0.0.1`, `::1`), CIDRs (`10.0.0.0/8`)
    /// and host names (`intranet.test`, matched case-insensitively and exactly).
    ///
    /// `*.corp.test` (or `.corp.test`) allows every subdomain of `corp.test` but not
    /// `corp.test` itself, so that opening a zone's hosts does not silently open its
    /// apex too: list both when both are meant. Ports are not part of an entry; the
    /// allowlist opens addresses, not services.
    pub fn from_allow_list(spec: &str) -> Result<NetworkPolicy, PolicyError> {
        let mut allow = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let error = |why: &str| PolicyError {
                entry: entry.to_string(),
                why: why.to_string(),
            };
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            if let Some((net, prefix)) = bare.split_once('/') {
                let network: IpAddr = net.parse().map_err(|_| error("not an IP network"))?;
                let max = if network.is_ipv4() { 32 } else { 128 };
                let prefix: u8 = prefix
                    .parse()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| error("the prefix length is out of range"))?;
                allow.push(Allow::Net { network, prefix });
            } else if let Ok(ip) = bare.parse::<IpAddr>() {
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                allow.push(Allow::Net {
                    network: ip,
                    prefix,
                });
            } else {
                let host = entry.to_ascii_lowercase();
                let (wild, name) = match host.strip_prefix("*.").or(host.strip_prefix('.')) {
                    Some(name) => (true, name.to_string()),
                    None => (false, host.clone()),
                };
                let valid = !name.is_empty()
                    && name.split('.').all(|l| {
                        !l.is_empty()
                            && l.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    });
                if !valid {
                    return Err(error("not a host name, an IP address or a CIDR"));
                }
                allow.push(if wild {
                    Allow::Subdomains(name)
                } else {
                    Allow::Host(name)
                });
            }
        }
        Ok(NetworkPolicy {
            allow,
            denied: Vec::new(),
        })
    }

    /// Refuses the agentd server's own listen address, whatever the allowlist says, so
    /// an agent cannot drive the API that runs it. A server listening on an unspecified
    /// address (0.0.0.0 or ::) is refused on that port at every internal address of
    /// either family (loopback, private, link-local...), since any of them may reach it;
    /// the same port on a public address stays open.
    pub fn deny_socket(&mut self, addr: SocketAddr) {
        self.denied.push((addr, "it is the agentd server itself"));
    }

    /// Refuses the browser's own DevTools endpoint, which would let a page drive the
    /// browser, whatever the allowlist says.
    pub fn deny_devtools(&mut self, addr: SocketAddr) {
        self.denied
            .push((addr, "it is the browser's own DevTools endpoint"));
    }

    fn denied_socket(&self, addr: SocketAddr) -> Option<&'static str> {
        self.denied
            .iter()
            .find(|(denied, _)| {
                denied.port() == addr.port()
                    && (denied.ip() == addr.ip()
                        || (denied.ip().is_unspecified() && is_internal(addr.ip())))
            })
            .map(|(_, why)| *why)
    }

    fn is_allowed(&self, host: &str, ip: IpAddr) -> bool {
        // `intranet.test.` is the same name as `intranet.test`.
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        self.allow.iter().any(|allow| match allow {
            Allow::Net { network, prefix } => contains(*network, *prefix, ip),
            Allow::Host(name) => *name == host,
            Allow::Subdomains(name) => host
                .strip_suffix(name.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        })
    }

    /// Whether the browser may connect to `addr` for a request to `host` (the requested
    /// name or IP literal). A denied socket beats the allowlist, which beats the
    /// internal ranges: the allowlist only opens exceptions to internal addresses.
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), Refusal> {
        let refuse = |reason: &str| Refusal {
            host: host.to_string(),
            addr: Some(addr.ip()),
            reason: reason.to_string(),
        };
        // A dual-stack socket reaches `::ffff:127.0.0.1` at 127.0.0.1, so the mapped form
        // is judged (denied sockets and allowlist alike) as the IPv4 address it is.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        if let Some(why) = self.denied_socket(addr) {
            return Err(refuse(why));
        }
        if self.is_allowed(host, addr.ip()) || !is_internal(addr.ip()) {
            return Ok(());
        }
        Err(refuse(
            "internal addresses are refused unless AGENTD_BROWSER_ALLOW_HOSTS allows them",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), port)
    }

    #[test]
    fn internal_ranges_are_internal_and_public_ones_are_not() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "127.0.0.2",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} should be internal");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn by_default_internal_addresses_are_refused_and_public_ones_allowed() {
        let policy = NetworkPolicy::default();
        let refusal = policy
            .check("169.254.169.254", sock("169.254.169.254", 80))
            .unwrap_err();
        assert!(refusal.to_string().contains("not allowed"), "{refusal}");
        assert!(policy.check("intranet", sock("10.0.0.5", 443)).is_err());
        // Every private, link-local and loopback form, whatever the name said (a public
        // name resolving to one of these, as in DNS rebinding, is checked the same way).
        for internal in [
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let refusal = policy
                .check("rebind.example", sock(internal, 80))
                .unwrap_err();
            assert!(
                refusal.to_string().contains("not allowed"),
                "{internal}: {refusal}"
            );
        }
        assert!(policy.check("x", sock("2606:4700::1111", 443)).is_ok());
        let refusal = policy
            .check("localhost", sock("127.0.0.1", 8000))
            .unwrap_err();
        assert!(
            refusal.to_string().contains("127.0.0.1 (of localhost)"),
            "{refusal}"
        );
        assert!(
            policy
                .check("example.com", sock("93.184.216.34", 443))
                .is_ok()
        );
    }

    #[test]
    fn the_allowlist_opens_exceptions_by_ip_cidr_and_host() {
        let policy = NetworkPolicy::from_allow_list(
            " 127.0.0.1 , 10.0.0.0/8,intranet.test, *.corp.test ,fd00::/8",
        )
        .unwrap();
        assert!(policy.check("127.0.0.1", sock("127.0.0.1", 1)).is_ok());
        assert!(policy.check("127.0.0.2", sock("127.0.0.2", 1)).is_err());
        assert!(policy.check("x", sock("10.9.9.9", 1)).is_ok());
        assert!(
            policy
                .check("Intranet.Test", sock("192.168.0.9", 1))
                .is_ok()
        );
        assert!(policy.check("a.corp.test", sock("192.168.0.9", 1)).is_ok());
        assert!(policy.check("corp.test", sock("192.168.0.9", 1)).is_err());
        assert!(policy.check("x", sock("fd00::5", 1)).is_ok());
        assert!(policy.check("x", sock("169.254.169.254", 80)).is_err());
    }

    #[test]
    fn the_devtools_endpoint_is_refused_even_when_allowed() {
        let mut policy = NetworkPolicy::from_allow_list("127.0.0.1").unwrap();
        policy.deny_devtools(sock("127.0.0.1", 9222));
        let refusal = policy
            .check("127.0.0.1", sock("127.0.0.1", 9222))
            .unwrap_err();
        assert!(refusal.to_string().contains("DevTools"), "{refusal}");
        assert!(policy.check("127.0.0.1", sock("127.0.0.1", 9223)).is_ok());
    }

    #[test]
    fn the_server_itself_is_refused_even_when_allowed() {
        let mut policy = NetworkPolicy::from_allow_list("127.0.0.0/8").unwrap();
        policy.deny_socket(sock("127.0.0.1", 8080));
        assert!(policy.check("127.0.0.1", sock("127.0.0.1", 8080)).is_err());
        assert!(policy.check("127.0.0.1", sock("127.0.0.1", 8081)).is_ok());
        let mut policy = NetworkPolicy::from_allow_list("127.0.0.0/8").unwrap();
        policy.deny_socket(sock("0.0.0.0", 8080));
        assert!(policy.check("127.0.0.5", sock("127.0.0.5", 8080)).is_err());
        assert!(policy.check("x", sock("::1", 8080)).is_err());
        assert!(policy.check("x", sock("10.0.0.1", 8080)).is_err());
        assert!(
            policy
                .check("example.com", sock("93.184.216.34", 8080))
                .is_ok()
        );
        let refusal = policy
            .check("localhost", sock("127.0.0.1", 8080))
            .unwrap_err();
        assert!(refusal.reason.contains("agentd server"));
        assert!(refusal.to_string().contains("not allowed"), "{refusal}");
    }

    #[test]
    fn mapped_addresses_are_judged_as_their_ipv4() {
        let mut policy = NetworkPolicy::from_allow_list("127.0.0.1, intranet.test").unwrap();
        assert!(policy.check("x", sock("::ffff:127.0.0.1", 1)).is_ok());
        assert!(policy.check("intranet.test.", sock("10.0.0.1", 1)).is_ok());
        policy.deny_socket(sock("127.0.0.1", 8080));
        assert!(policy.check("x", sock("::ffff:127.0.0.1", 8080)).is_err());
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "not a host",
            "a..b",
            "1.2.3.4/x",
            "host:80",
            "*.",
        ] {
            let error = NetworkPolicy::from_allow_list(&format!("127.0.0.1,{bad}")).unwrap_err();
            assert_eq!(error.entry, bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert_eq!(
            NetworkPolicy::from_allow_list(" , ").unwrap(),
            NetworkPolicy::default()
        );
    }
}
