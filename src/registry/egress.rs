//! Which addresses the client may connect to. Tenants name registry hosts, and registries name
//! token realms and redirect targets, so without a check a stream could make the operator call a
//! cloud metadata endpoint. Link-local and metadata addresses are refused for IP literals, for
//! every DNS answer (a resolver wrapper) and for every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether connecting to `ip` is refused: IPv4 link-local (169.254.0.0/16, which holds the AWS,
/// GCP and Azure metadata endpoint), IPv6 link-local (fe80::/10), AWS's IPv6 metadata address
/// (fd00:ec2::254) and Alibaba Cloud's (100.100.100.200), also in IPv4-mapped IPv6 form.
pub fn is_refused_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_refused_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_refused_v4(v4),
            None => {
                (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
            }
        },
    }
}

fn is_refused_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200)
}

/// Whether the host of a URL (`Url::host_str`, IPv6 in brackets) is a refused IP literal. Names
/// are checked when they are resolved, by [`FilteringResolver`].
pub fn is_refused_host(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(is_refused_ip)
}

/// A DNS resolver that drops refused addresses from every answer, and fails when none is left.
#[derive(Debug, Clone, Copy)]
pub struct FilteringResolver;

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|addr| !is_refused_ip(addr.ip()))
                .collect();
            if allowed.is_empty() && !all.is_empty() {
                return Err(format!(
                    "{host} resolves only to link-local or cloud metadata addresses"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_addresses_are_refused() {
        for refused in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_refused_ip(refused.parse().unwrap()), "{refused}");
        }
    }

    #[test]
    fn ordinary_private_and_loopback_addresses_are_allowed() {
        for allowed in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.1.1",
            "100.100.100.201",
            "8.8.8.8",
            "::1",
            "fec0::1",
            "fd00:ec2::253",
            "2001:db8::1",
        ] {
            assert!(!is_refused_ip(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn url_hosts_are_checked_only_when_they_are_ip_literals() {
        assert!(is_refused_host("169.254.169.254"));
        assert!(is_refused_host("[fe80::1]"));
        assert!(!is_refused_host("metadata.google.internal"));
        assert!(!is_refused_host("127.0.0.1"));
    }

    #[tokio::test]
    async fn the_resolver_passes_loopback_names_through() {
        let addrs: Vec<SocketAddr> = FilteringResolver
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
