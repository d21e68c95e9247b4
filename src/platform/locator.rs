//! Where the platform's objects live: `stat`, `property`, `config`, `log` written as
//! `Name@tcp -h … -p …` are used as written; a bare `Name` is resolved through the
//! registry (`<client> locator`, QueryF.findObjectById), cached, and resolved again
//! every `refresh-endpoint-interval`. A registry that is down leaves the last answer in
//! use.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tarsfork_tars::framework::tars::QueryFProxy;
use tarsfork_tars::proxy::Proxy;

use crate::config::{Endpoint, ObjectRef, Transport};
use crate::settings::Settings;
use crate::{log, sys};

/// Resolves object names to one TCP address each.
pub(crate) struct Locator {
    registry: Option<QueryFProxy>,
    refresh_ms: i64,
    timeout: Duration,
    /// name → (address, when it was resolved)
    cache: HashMap<String, (Option<SocketAddr>, i64)>,
}

/// The first TCP endpoint of a list, resolved to an address.
pub(crate) fn first_tcp(endpoints: &[Endpoint]) -> Option<SocketAddr> {
    endpoints
        .iter()
        .filter(|e| e.transport == Transport::Tcp)
        .find_map(|e| (e.host.as_str(), e.port).to_socket_addrs().ok()?.next())
}

impl Locator {
    /// A locator for `settings` (`<client> locator`, timeouts, refresh interval).
    pub(crate) fn new(settings: &Settings) -> Locator {
        let timeout = settings
            .client
            .sync_invoke_timeout
            .min(Duration::from_secs(3));
        let registry = settings.client.locator.as_ref().and_then(|l| {
            let addr = first_tcp(&l.endpoints)?;
            let mut p = Proxy::new(addr, &l.name);
            p.set_timeout(timeout);
            Some(QueryFProxy::new(p))
        });
        Locator {
            registry,
            refresh_ms: settings.client.refresh_endpoint_interval.as_millis().max(1) as i64,
            timeout,
            cache: HashMap::new(),
        }
    }

    /// A proxy for `obj`, or None when it has no address (yet).
    pub(crate) fn proxy(&mut self, obj: &ObjectRef) -> Option<Proxy> {
        let addr = self.resolve(obj)?;
        let mut p = Proxy::new(addr, &obj.name);
        p.set_timeout(self.timeout);
        Some(p)
    }

    /// The address of `obj`.
    pub(crate) fn resolve(&mut self, obj: &ObjectRef) -> Option<SocketAddr> {
        if !obj.endpoints.is_empty() {
            return first_tcp(&obj.endpoints);
        }
        let now = sys::monotonic_ms();
        if let Some((addr, at)) = self.cache.get(&obj.name) {
            if now - at < self.refresh_ms {
                return *addr;
            }
        }
        let registry = self.registry.as_mut()?;
        match registry.find_object_by_id(&obj.name) {
            Ok(list) => {
                let addr = list.iter().filter(|e| e.istcp != 0).find_map(|e| {
                    (e.host.as_str(), u16::try_from(e.port).ok()?)
                        .to_socket_addrs()
                        .ok()?
                        .next()
                });
                if addr.is_none() {
                    log::warn(&format!(
                        "the registry knows no TCP endpoint of {}",
                        obj.name
                    ));
                }
                self.cache.insert(obj.name.clone(), (addr, now));
                addr
            }
            Err(e) => {
                log::warn(&format!(
                    "resolving {} through the registry failed: {e}",
                    obj.name
                ));
                // Keep the last answer, and try again at the next refresh.
                let last = self.cache.get(&obj.name).and_then(|(a, _)| *a);
                self.cache.insert(obj.name.clone(), (last, now));
                last
            }
        }
    }
}
