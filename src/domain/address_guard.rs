//! Which addresses the operator may connect to. Tenants name registry hosts and mirrors, and
//! registries name token realms and redirect targets, so without a check a stream could make the
//! operator call a cloud metadata endpoint. Link-local and metadata addresses are refused, in IPv4
//! and in every IPv6 form that carries an IPv4 address to a translator or tunnel (NAT64, 6to4,
//! Teredo, …). The registry client applies this to IP literals, DNS answers and redirects; the
//! mirror index to the mirrors users list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether connecting to `ip` is refused: IPv4 link-local (169.254.0.0/16, which holds the AWS,
/// GCP and Azure metadata endpoint), IPv6 link-local (fe80::/10), AWS's IPv6 metadata address
/// (fd00:ec2::254) and Alibaba Cloud's (100.100.100.200); and an IPv6 address that embeds a
/// refused IPv4 address (see [`embedded_ipv4`]), since a translator or tunnel delivers it there.
pub fn is_refused_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_refused_v4(v4),
        IpAddr::V6(v6) => is_refused_v6(v6) || embedded_ipv4(v6).into_iter().any(is_refused_v4),
    }
}

fn is_refused_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200)
}

fn is_refused_v6(ip: Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
        || ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
}

/// The IPv4 addresses an IPv6 address carries, for the forms where traffic to it ends up at
/// (one of) them:
/// - IPv4-mapped `::ffff:0:0/96` and the deprecated IPv4-compatible `::/96` (RFC 4291 2.5.5);
/// - the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052), and the local-use prefix
///   `64:ff9b:1::/48` (RFC 8215), whose operator picks where in it the IPv4 address sits: every
///   RFC 6052 position a prefix inside it can have (/48, /56, /64, /96) is returned;
/// - 6to4 `2002::/16` (RFC 3056), the IPv4 address after the prefix;
/// - Teredo `2001::/32` (RFC 4380): the server's address, and the client's, stored inverted;
/// - an ISATAP interface identifier `…:0:5efe:a.b.c.d` or `…:200:5efe:a.b.c.d` (RFC 5214).
///
/// A NAT64 network-specific prefix chosen by an operator cannot be told from a global address and
/// is not recognised.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let o = ip.octets();
    let s = ip.segments();
    let at = |i: usize| Ipv4Addr::new(o[i], o[i + 1], o[i + 2], o[i + 3]);
    let mut found = Vec::new();
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        found.push(at(12));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        found.push(at(12));
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        // RFC 6052 2.2: bits 64..71 (octet 8) are always zero and skipped.
        found.extend([
            Ipv4Addr::new(o[6], o[7], o[9], o[10]),
            Ipv4Addr::new(o[7], o[9], o[10], o[11]),
            at(9),
            at(12),
        ]);
    }
    if s[0] == 0x2002 {
        found.push(at(2));
    }
    if s[..2] == [0x2001, 0] {
        found.push(at(4));
        found.push(Ipv4Addr::from(!u32::from(at(12))));
    }
    if (s[4] & 0xfdff) == 0 && s[5] == 0x5efe {
        found.push(at(12));
    }
    found
}

/// Whether the host of a URL (`Url::host_str`, IPv6 in brackets) is a refused IP literal. Names
/// are checked when they are resolved, by [`FilteringResolver`].
pub fn is_refused_host(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(is_refused_ip)
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

    /// Each IPv4-embedding form, with a refused and an allowed IPv4 address inside.
    #[test]
    fn ipv6_addresses_carrying_a_refused_ipv4_address_are_refused_in_every_embedding_form() {
        let cases = [
            // IPv4-mapped ::ffff:0:0/96.
            ("::ffff:169.254.169.254", true),
            ("::ffff:a9fe:1", true),
            ("::ffff:100.100.100.200", true),
            ("::ffff:8.8.8.8", false),
            // IPv4-compatible ::/96 (deprecated); :: and ::1 carry nothing refused.
            ("::169.254.169.254", true),
            ("::10.0.0.1", false),
            ("::", false),
            // NAT64 well-known prefix 64:ff9b::/96.
            ("64:ff9b::169.254.169.254", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::100.100.100.200", true),
            ("64:ff9b::8.8.8.8", false),
            // Outside the /96: not a NAT64 address.
            ("64:ff9b::1:a9fe:a9fe", false),
            // NAT64 local-use prefix 64:ff9b:1::/48 with a /96, /64, /56 and /48 prefix inside.
            ("64:ff9b:1::169.254.169.254", true),
            ("64:ff9b:1:0:a9:fea9:fe00:0", true),
            ("64:ff9b:1:a9:fe:a9fe::", true),
            ("64:ff9b:1:a9fe:a9:fe00::", true),
            ("64:ff9b:1::8.8.8.8", false),
            ("64:ff9b:1:808:8:800::", false),
            // 6to4 2002::/16.
            ("2002:a9fe:a9fe::1", true),
            ("2002:6464:64c8::", true),
            ("2002:808:808::1", false),
            // Teredo 2001::/32: the client's address is stored inverted (a9fe:a9fe -> 5601:5601).
            ("2001:0:4136:e378:8000:63bf:5601:5601", true),
            ("2001:0:4136:e378:8000:63bf:a9fe:a9fe", false),
            ("2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2", true),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
            // ISATAP interface identifiers.
            ("2001:db8::5efe:169.254.169.254", true),
            ("2001:db8::200:5efe:a9fe:a9fe", true),
            ("2001:db8::5efe:10.0.0.1", false),
        ];
        for (address, refused) in cases {
            assert_eq!(
                is_refused_ip(address.parse().unwrap()),
                refused,
                "{address}"
            );
        }
    }

    #[test]
    fn the_embedded_ipv4_address_is_read_where_each_form_puts_it() {
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let cases = [
            ("::ffff:192.0.2.33", "192.0.2.33"),
            ("::192.0.2.33", "192.0.2.33"),
            ("64:ff9b::192.0.2.33", "192.0.2.33"),
            // RFC 6052 2.4, the example of 192.0.2.33 under a /48, /56, /64 and /96 prefix.
            ("64:ff9b:1:c000:2:2100::", "192.0.2.33"),
            ("64:ff9b:1:c0:0:221::", "192.0.2.33"),
            ("64:ff9b:1:0:c0:2:2100:0", "192.0.2.33"),
            ("64:ff9b:1::192.0.2.33", "192.0.2.33"),
            ("2002:c000:221::1", "192.0.2.33"),
            // RFC 4380 4, the example: server 65.54.227.120, client 192.0.2.45.
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "65.54.227.120"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
            ("fe80::200:5efe:192.0.2.33", "192.0.2.33"),
        ];
        for (address, expected) in cases {
            let found = embedded_ipv4(address.parse().unwrap());
            assert!(found.contains(&v4(expected)), "{address}: {found:?}");
        }
        assert_eq!(
            embedded_ipv4("2001:db8::1".parse().unwrap()),
            Vec::<Ipv4Addr>::new()
        );
        assert_eq!(
            embedded_ipv4("fd00:ec2::254".parse().unwrap()),
            Vec::<Ipv4Addr>::new()
        );
    }

    #[test]
    fn url_hosts_are_checked_only_when_they_are_ip_literals() {
        assert!(is_refused_host("169.254.169.254"));
        assert!(is_refused_host("[fe80::1]"));
        assert!(is_refused_host("[64:ff9b::a9fe:a9fe]"));
        assert!(!is_refused_host("[64:ff9b::808:808]"));
        assert!(!is_refused_host("metadata.google.internal"));
        assert!(!is_refused_host("127.0.0.1"));
    }
}
