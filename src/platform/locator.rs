//! Where objects live: an object string becomes the [`EndpointSet`] its proxies call.
//!
//! - `Name@tcp -h … -p …:tcp -h … -p …` is used as written (every tcp endpoint; `-v 1
//!   -w N` gives a static weight, as in TarsCpp).
//! - A bare `Name` is resolved through the registry (`<client> locator`, QueryF):
//!   `findObjectById4Any` (active and inactive endpoints), or with `enableset=y` and a
//!   `setdivision` the set-aware `findObjectByIdInSameSet(name, setdivision)` TarsCpp
//!   makes. (TarsCpp's default without a set is `findObjectByIdInSameGroup`, which
//!   filters by the caller's IDC group; tarsfork has no groups and asks for any.)
//!
//! Sets are cached per process by object string and refreshed every
//! `refresh-endpoint-interval` (at least [`MIN_REFRESH`]) when a call finds the
//! refresh due; a registry that is down, or lists no active endpoint, leaves the
//! cached endpoints serving. A name that never resolved is asked again at most every
//! [`RETRY_UNRESOLVED`].
//!
//! `udp` and `ssl` endpoints are left out: proxies call over plain TCP only (yet), and
//! an endpoint is never called as a kind it does not name.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarsfork_tars::framework::tars::{EndpointF, QueryFProxy};
use tarsfork_tars::proxy::{
    Endpoint as Target, EndpointSet, Proxy, ProxyConfig, Resolve, ResolveError, Resolved,
};

use crate::config::{Endpoint, EndpointError, ObjectRef, Transport};
use crate::log;
use crate::settings::Settings;

/// The shortest refresh interval honoured (TarsCpp: 5 s), so a typo cannot make every
/// call ask the registry.
pub(crate) const MIN_REFRESH: Duration = Duration::from_secs(1);

/// How soon a name that could not be resolved is asked for again; calls in between
/// fail at once with the same error instead of each waiting for the registry.
pub(crate) const RETRY_UNRESOLVED: Duration = Duration::from_secs(2);

/// `EndpointF.istcp` of a TCP endpoint (TarsCpp's `TC_Endpoint::TCP`; 0 is UDP, 2 SSL).
const ISTCP_TCP: i32 = 1;

/// Why an object string gives no endpoints to call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LocateError {
    /// The object string does not parse.
    #[error("object `{text}`: {source}")]
    #[allow(dead_code)] // made by `named_proxy` (see there)
    BadObject {
        /// As given.
        text: String,
        /// Why.
        source: EndpointError,
    },
    /// A bare name, and no registry to ask.
    #[error("{name}: a bare object name needs `locator` in <client> (or write `{name}@tcp -h HOST -p PORT`)")]
    NoLocator {
        /// The object name.
        name: String,
    },
    /// The registry could not be asked, or refused.
    #[error("{name}: the registry did not resolve it: {message}")]
    Registry {
        /// The object name.
        name: String,
        /// Why.
        message: String,
    },
    /// Nothing to call: the registry lists no active endpoint, or none is tcp.
    #[error("{name}: no active tcp endpoint{}", skipped_note(*.skipped))]
    NoEndpoint {
        /// The object name.
        name: String,
        /// udp / ssl endpoints that were left out.
        skipped: usize,
    },
}

fn skipped_note(skipped: usize) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} udp/ssl endpoint(s) left out: proxies call over tcp only)")
    }
}

/// The first TCP endpoint of a list, resolved to an address.
pub(crate) fn first_tcp(endpoints: &[Endpoint]) -> Option<SocketAddr> {
    endpoints
        .iter()
        .filter(|e| e.transport == Transport::Tcp)
        .find_map(|e| (e.host.as_str(), e.port).to_socket_addrs().ok()?.next())
}

/// The registry, as a [`Resolve`]r the endpoint sets refresh through.
struct Registry {
    query: Proxy,
    setdivision: Option<String>,
}

impl Registry {
    /// The endpoints of `name`, and how many active non-tcp ones were left out.
    fn ask(&self, name: &str) -> Result<(Resolved, usize), LocateError> {
        let failed = |message: String| LocateError::Registry {
            name: name.to_owned(),
            message,
        };
        let mut q = QueryFProxy::new(self.query.clone());
        let (ret, active, inactive) = match &self.setdivision {
            Some(set) => q.find_object_by_id_in_same_set(name, set),
            None => q.find_object_by_id4_any(name),
        }
        .map_err(|e| failed(e.to_string()))?;
        if ret != 0 {
            return Err(failed(format!("it answered {ret}")));
        }
        let (active, skipped) = registry_targets(&active);
        let (inactive, _) = registry_targets(&inactive);
        Ok((Resolved { active, inactive }, skipped))
    }
}

impl Resolve for Registry {
    fn resolve(&self, name: &str) -> Result<Resolved, ResolveError> {
        match self.ask(name) {
            Ok((resolved, _)) => Ok(resolved),
            Err(e) => {
                log::warn(&format!("{e}; its cached endpoints stay in use"));
                Err(Box::new(e))
            }
        }
    }
}

/// The tcp endpoints of a registry answer, and how many others were left out.
fn registry_targets(list: &[EndpointF]) -> (Vec<Target>, usize) {
    let mut targets = Vec::new();
    let mut skipped = 0;
    for e in list {
        let port = match u16::try_from(e.port) {
            Ok(p) if e.istcp == ISTCP_TCP => p,
            _ => {
                skipped += 1;
                continue;
            }
        };
        let target = Target::new(e.host.clone(), port);
        // weightType 1 is TarsCpp's static weight; a negative weight means "unset",
        // which TarsCpp reads as 100.
        targets.push(if e.weight_type == 1 {
            target.with_weight(u32::try_from(e.weight).unwrap_or(100))
        } else {
            target
        });
    }
    (targets, skipped)
}

/// The tcp endpoints written after `@`, and how many others were left out.
fn written_targets(list: &[Endpoint]) -> (Vec<Target>, usize) {
    let mut targets = Vec::new();
    let mut skipped = 0;
    for e in list {
        if e.transport != Transport::Tcp {
            skipped += 1;
            continue;
        }
        let option = |flag: &str| {
            e.extra
                .iter()
                .find(|(k, _)| k == flag)
                .and_then(|(_, v)| v.parse::<i64>().ok())
        };
        let target = Target::new(e.host.clone(), e.port);
        // `-v` is TarsCpp's weight type; with it, `-w` defaults to 100.
        targets.push(if option("-v").unwrap_or(0) != 0 {
            let w = option("-w").filter(|w| *w >= 0).unwrap_or(100);
            target.with_weight(u32::try_from(w).unwrap_or(u32::MAX))
        } else {
            target
        });
    }
    (targets, skipped)
}

/// Resolves object strings to endpoint sets, cached per process (see the module
/// documentation).
pub(crate) struct Locator {
    registry: Option<Arc<Registry>>,
    refresh: Duration,
    timeout: Duration,
    /// Object string → its endpoints.
    sets: HashMap<String, Arc<EndpointSet>>,
    /// Names the registry could not resolve, with when and why.
    unresolved: HashMap<String, (Instant, LocateError)>,
}

impl Locator {
    /// A locator for `settings` (`<client> locator`, timeouts, refresh interval, set).
    pub(crate) fn new(settings: &Settings) -> Locator {
        let timeout = settings
            .client
            .sync_invoke_timeout
            .min(Duration::from_secs(3));
        let config = ProxyConfig {
            timeout,
            connect_timeout: timeout,
            ..ProxyConfig::default()
        };
        let registry = settings.client.locator.as_ref().and_then(|l| {
            let (targets, _) = written_targets(&l.endpoints);
            if targets.is_empty() {
                log::error(&format!(
                    "locator {l}: no tcp endpoint; object names will not be resolved"
                ));
                return None;
            }
            let set = EndpointSet::new(
                &l.name,
                Resolved {
                    active: targets,
                    inactive: Vec::new(),
                },
            );
            Some(Arc::new(Registry {
                query: Proxy::over(Arc::new(set), config),
                setdivision: settings
                    .enableset
                    .then(|| settings.setdivision.clone())
                    .flatten(),
            }))
        });
        Locator {
            registry,
            refresh: settings.client.refresh_endpoint_interval.max(MIN_REFRESH),
            timeout,
            sets: HashMap::new(),
            unresolved: HashMap::new(),
        }
    }

    /// The endpoints of `obj`: as written, or resolved through the registry (cached).
    pub(crate) fn endpoints(&mut self, obj: &ObjectRef) -> Result<Arc<EndpointSet>, LocateError> {
        let key = obj.to_string();
        if let Some(set) = self.sets.get(&key) {
            return Ok(Arc::clone(set));
        }
        let set = if obj.endpoints.is_empty() {
            self.resolve(&obj.name)?
        } else {
            let (active, skipped) = written_targets(&obj.endpoints);
            if active.is_empty() {
                return Err(LocateError::NoEndpoint {
                    name: obj.name.clone(),
                    skipped,
                });
            }
            EndpointSet::new(
                &obj.name,
                Resolved {
                    active,
                    inactive: Vec::new(),
                },
            )
        };
        let set = Arc::new(set);
        self.sets.insert(key, Arc::clone(&set));
        Ok(set)
    }

    /// A bare name's first resolution (later ones are the set's refreshes).
    fn resolve(&mut self, name: &str) -> Result<EndpointSet, LocateError> {
        let Some(registry) = &self.registry else {
            return Err(LocateError::NoLocator {
                name: name.to_owned(),
            });
        };
        if let Some((at, e)) = self.unresolved.get(name) {
            if at.elapsed() < RETRY_UNRESOLVED {
                return Err(e.clone());
            }
        }
        let answer = registry.ask(name).and_then(|(resolved, skipped)| {
            if resolved.active.is_empty() {
                Err(LocateError::NoEndpoint {
                    name: name.to_owned(),
                    skipped,
                })
            } else {
                Ok(resolved)
            }
        });
        match answer {
            Ok(resolved) => {
                self.unresolved.remove(name);
                let resolver: Arc<dyn Resolve> = registry.clone();
                Ok(EndpointSet::new(name, resolved).refreshed_by(resolver, self.refresh))
            }
            Err(e) => {
                self.unresolved
                    .insert(name.to_owned(), (Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// A proxy for the object string `object` (`Name` or `Name@endpoints`), with the
    /// client's call timeout.
    // What `ctx.proxy::<P>(object)` will call once the locator is in the worker's
    // context (issue #16, next step); tested below until then.
    #[allow(dead_code)]
    pub(crate) fn named_proxy(&mut self, object: &str) -> Result<Proxy, LocateError> {
        let obj = ObjectRef::parse(object).map_err(|source| LocateError::BadObject {
            text: object.to_owned(),
            source,
        })?;
        self.proxy_for(&obj)
    }

    /// A proxy for `obj`, with the client's call timeout.
    pub(crate) fn proxy_for(&mut self, obj: &ObjectRef) -> Result<Proxy, LocateError> {
        let set = self.endpoints(obj)?;
        let config = ProxyConfig {
            timeout: self.timeout,
            ..ProxyConfig::default()
        };
        Ok(Proxy::over(set, config))
    }

    /// A proxy for `obj`, or None (with the reason logged) when it has no endpoint.
    pub(crate) fn proxy(&mut self, obj: &ObjectRef) -> Option<Proxy> {
        match self.proxy_for(obj) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn(&e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
