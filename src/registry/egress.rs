//! Where the client applies the address guard ([`crate::domain::address_guard`]): to every DNS
//! answer, through a resolver wrapper (IP literals and redirects are checked by the transport).

use std::net::SocketAddr;

use crate::domain::address_guard::is_refused_ip;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
