//! The endpoints of one servant, as this process calls them: who is registered
//! (active and inactive), each one's health and kept connection, the selection state,
//! and the refresh through a [`Resolve`]r (the registry).
//!
//! An [`EndpointSet`] is shared (`Arc`) by every [`super::Proxy`] of the servant in the
//! process, so connections and health are per endpoint per process. A membership
//! update keeps the state of endpoints that stay.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::balance::{cycle, hash_order, Ring, Route};
use super::conn::Conn;
use super::health::{Admit, FailoverPolicy, Health};

/// After a failed refresh, the next try comes this soon (TarsCpp: 2 s), unless the
/// refresh interval is shorter.
const RETRY_FAILED_REFRESH: Duration = Duration::from_secs(2);
/// Failed refreshes in a row after which the registry is asked only at the normal
/// interval again (TarsCpp: 3, then every 30 s).
const FAILED_REFRESHES_BEFORE_BACKING_OFF: u32 = 3;
/// After a refresh that listed no active endpoint (the old list is kept), the next
/// try comes this soon (TarsCpp: 10 s), unless the refresh interval is shorter.
const RETRY_EMPTY_REFRESH: Duration = Duration::from_secs(10);

/// The largest static weight (TarsCpp caps weights at 100).
pub const MAX_WEIGHT: u32 = 100;

/// One endpoint of a servant, as a client calls it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Static weight (0 to [`MAX_WEIGHT`]) when the registry or the endpoint string
    /// gives one (`weightType` 1, `-v 1 -w N`); `None` otherwise.
    pub weight: Option<u32>,
}

impl Endpoint {
    /// An endpoint without a weight.
    pub fn new(host: impl Into<String>, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            weight: None,
        }
    }

    /// The same endpoint with a static weight (capped at [`MAX_WEIGHT`]).
    pub fn with_weight(mut self, weight: u32) -> Endpoint {
        self.weight = Some(weight.min(MAX_WEIGHT));
        self
    }

    /// TarsCpp's ordering key, `"1:<host>:<port>"` (1 = tcp).
    fn order_key(&self) -> String {
        format!("1:{}:{}", self.host, self.port)
    }

    fn same_place(&self, other: &Endpoint) -> bool {
        self.host == other.host && self.port == other.port
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint::new(addr.ip().to_string(), addr.port())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What a registry answers for a servant name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Endpoints in service: calls go to these.
    pub active: Vec<Endpoint>,
    /// Registered endpoints not in service: kept so that hash routing does not move
    /// while one is briefly down, never called.
    pub inactive: Vec<Endpoint>,
}

/// Why a resolution failed.
pub type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves a servant name to its endpoints (the registry's QueryF, in a server).
pub trait Resolve: Send + Sync {
    /// The endpoints of `name` now.
    fn resolve(&self, name: &str) -> Result<Resolved, ResolveError>;
}

/// How one endpoint stands, for status pages and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Listed as active by the registry (or written out).
    pub active: bool,
    /// Not taken out by the failover rule.
    pub in_rotation: bool,
    /// A connection is kept to it.
    pub connected: bool,
}

/// One endpoint's process-wide state.
#[derive(Debug)]
pub(crate) struct Node {
    endpoint: Endpoint,
    health: Mutex<Health>,
    conn: Mutex<Option<Arc<Conn>>>,
    addr: Mutex<Option<SocketAddr>>,
}

/// Locks ignoring poison: every critical section here leaves consistent state.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Node {
    fn new(endpoint: Endpoint, now: Instant) -> Node {
        let addr = endpoint
            .host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, endpoint.port));
        Node {
            endpoint,
            health: Mutex::new(Health::new(now)),
            conn: Mutex::new(None),
            addr: Mutex::new(addr),
        }
    }

    /// The endpoint's address once known (an IP, or a host name looked up).
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        *lock(&self.addr)
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The kept connection, or a new one when there is none or it can no longer be
    /// used.
    pub(crate) fn connection(&self, timeout: Duration, max_frame: usize) -> io::Result<Arc<Conn>> {
        let mut slot = lock(&self.conn);
        if let Some(c) = slot.as_ref() {
            if c.is_usable() {
                return Ok(Arc::clone(c));
            }
        }
        *slot = None;
        let addr = match self.addr() {
            Some(a) => a,
            None => {
                let found = (self.endpoint.host.as_str(), self.endpoint.port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{} has no address", self.endpoint.host),
                        )
                    })?;
                *lock(&self.addr) = Some(found);
                found
            }
        };
        let c = Arc::new(Conn::connect(addr, timeout, max_frame)?);
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Drops the kept connection (it broke under a send).
    pub(crate) fn drop_connection(&self) {
        *lock(&self.conn) = None;
    }

    pub(crate) fn admit(&self, now: Instant) -> Admit {
        lock(&self.health).admit(now)
    }

    /// Would [`Self::admit`] let a call in (without taking the probe)?
    fn would_admit(&self, now: Instant) -> bool {
        lock(&self.health).clone().admit(now) != Admit::Skip
    }

    pub(crate) fn with_health<T>(&self, f: impl FnOnce(&mut Health) -> T) -> T {
        f(&mut lock(&self.health))
    }
}

/// Who is registered, and the selection state built from it.
#[derive(Debug, Default)]
struct Members {
    /// Every registered endpoint, in TarsCpp's order.
    nodes: Vec<Arc<Node>>,
    /// Per node: the endpoint as last listed (its weight may have changed).
    listed: Vec<Endpoint>,
    /// Per node: listed as active.
    active: Vec<bool>,
    /// Every active endpoint has a static weight.
    weighted: bool,
    /// The round-robin (or smooth weighted) cycle of node indexes.
    cycle: Vec<usize>,
    /// Position in `cycle` of the last pick.
    cursor: usize,
    ring: Ring,
}

impl Members {
    fn build(resolved: Resolved, old: &Members, now: Instant) -> Members {
        let mut listed: Vec<(Endpoint, bool)> = Vec::new();
        for (list, active) in [(resolved.active, true), (resolved.inactive, false)] {
            for ep in list {
                if !listed.iter().any(|(e, _)| e.same_place(&ep)) {
                    listed.push((ep, active));
                }
            }
        }
        listed.sort_by_key(|(e, _)| e.order_key());
        let nodes: Vec<Arc<Node>> = listed
            .iter()
            .map(
                |(ep, _)| match old.nodes.iter().find(|n| n.endpoint.same_place(ep)) {
                    Some(n) => Arc::clone(n),
                    None => Arc::new(Node::new(ep.clone(), now)),
                },
            )
            .collect();
        let weighted = listed.iter().any(|(_, a)| *a)
            && listed
                .iter()
                .filter(|(_, a)| *a)
                .all(|(e, _)| e.weight.is_some());
        // With static weights, weight 0 means no calls at all (as TarsCpp drops it).
        let active: Vec<bool> = listed
            .iter()
            .map(|(e, a)| *a && !(weighted && e.weight == Some(0)))
            .collect();
        let actives: Vec<usize> = (0..nodes.len()).filter(|i| active[*i]).collect();
        let weights: Vec<u32> = actives
            .iter()
            .map(|i| {
                if weighted {
                    listed[*i].0.weight.unwrap_or(0)
                } else {
                    MAX_WEIGHT
                }
            })
            .collect();
        let cycle = cycle(&actives, weighted.then_some(weights.as_slice()));
        let ring_names: Vec<String> = actives
            .iter()
            .map(|i| {
                let ep = &listed[*i].0;
                let shared_host = actives
                    .iter()
                    .filter(|j| listed[**j].0.host == ep.host)
                    .count()
                    > 1;
                if shared_host {
                    format!("{}:{}", ep.host, ep.port)
                } else {
                    ep.host.clone()
                }
            })
            .collect();
        let ring = Ring::build(
            actives
                .iter()
                .zip(&ring_names)
                .zip(&weights)
                .map(|((i, name), w)| (*i, name.as_str(), *w)),
        );
        // Processes start at different places in the cycle, so that the first calls
        // of many fresh workers do not all go to the same endpoint.
        let cursor = if old.cycle.is_empty() {
            (std::process::id() as usize) % cycle.len().max(1)
        } else {
            old.cursor % cycle.len().max(1)
        };
        Members {
            nodes,
            listed: listed.into_iter().map(|(e, _)| e).collect(),
            active,
            weighted,
            cycle,
            cursor,
            ring,
        }
    }

    /// The round-robin order: the next usable endpoint in the cycle (the cursor moves
    /// there, so a skipped endpoint's turns spread over the others), then the rest.
    fn next_in_cycle(&mut self, now: Instant) -> Vec<usize> {
        let n = self.cycle.len();
        if n == 0 {
            return Vec::new();
        }
        let mut chosen = (self.cursor + 1) % n;
        for step in 1..=n {
            let pos = (self.cursor + step) % n;
            if self.nodes[self.cycle[pos]].would_admit(now) {
                chosen = pos;
                break;
            }
        }
        self.cursor = chosen;
        let mut order = Vec::new();
        for k in 0..n {
            let i = self.cycle[(chosen + k) % n];
            if !order.contains(&i) {
                order.push(i);
            }
        }
        order
    }
}

/// The refresh schedule of a resolved set.
struct Refresh {
    resolver: Arc<dyn Resolve>,
    every: Duration,
    next: Mutex<(Instant, u32)>,
    busy: AtomicBool,
}

/// The endpoints of one servant (see the module documentation).
pub struct EndpointSet {
    name: String,
    policy: FailoverPolicy,
    refresh: Option<Refresh>,
    members: Mutex<Members>,
}

impl fmt::Debug for EndpointSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointSet")
            .field("name", &self.name)
            .field("members", &lock(&self.members).nodes.len())
            .field("refresh", &self.refresh.as_ref().map(|r| r.every))
            .finish()
    }
}

impl EndpointSet {
    /// The endpoints `resolved` lists for servant `name`, with the default failover
    /// rule and no refresh (written-out endpoints, or a fixed address).
    pub fn new(name: impl Into<String>, resolved: Resolved) -> EndpointSet {
        let members = Members::build(resolved, &Members::default(), Instant::now());
        EndpointSet {
            name: name.into(),
            policy: FailoverPolicy::default(),
            refresh: None,
            members: Mutex::new(members),
        }
    }

    /// One fixed address.
    pub fn single(name: impl Into<String>, addr: SocketAddr) -> EndpointSet {
        EndpointSet::new(
            name,
            Resolved {
                active: vec![Endpoint::from(addr)],
                inactive: Vec::new(),
            },
        )
    }

    /// Asks `resolver` again every `every` (first after `every`). A failed or empty
    /// answer keeps the endpoints already known.
    pub fn refreshed_by(mut self, resolver: Arc<dyn Resolve>, every: Duration) -> EndpointSet {
        self.refresh = Some(Refresh {
            resolver,
            every,
            next: Mutex::new((Instant::now() + every, 0)),
            busy: AtomicBool::new(false),
        });
        self
    }

    /// Uses `policy` instead of [`FailoverPolicy::default`].
    pub fn with_failover(mut self, policy: FailoverPolicy) -> EndpointSet {
        self.policy = policy;
        self
    }

    /// The servant name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The failover rule in force.
    pub fn failover(&self) -> &FailoverPolicy {
        &self.policy
    }

    /// Replaces the membership; endpoints that stay keep their connection and health.
    pub fn update(&self, resolved: Resolved) {
        let mut m = lock(&self.members);
        *m = Members::build(resolved, &m, Instant::now());
    }

    /// Every registered endpoint and how it stands.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let m = lock(&self.members);
        m.nodes
            .iter()
            .zip(&m.listed)
            .zip(&m.active)
            .map(|((n, endpoint), active)| EndpointStatus {
                endpoint: endpoint.clone(),
                active: *active,
                in_rotation: n.with_health(|h| h.is_in()),
                connected: lock(&n.conn).is_some(),
            })
            .collect()
    }

    /// True when the active endpoints carry static weights (weighted round robin).
    pub fn is_weighted(&self) -> bool {
        lock(&self.members).weighted
    }

    /// Resolves again if a refresh is due (and nobody else is refreshing); true when
    /// the resolver was asked. Calls do this themselves; a server may also call it
    /// from a timer so that calls never wait for the registry.
    pub fn refresh_if_due(&self) -> bool {
        self.refresh_at(Instant::now())
    }

    fn refresh_at(&self, now: Instant) -> bool {
        let Some(r) = &self.refresh else {
            return false;
        };
        if now < lock(&r.next).0 || r.busy.swap(true, Ordering::Acquire) {
            return false;
        }
        let answer = r.resolver.resolve(&self.name);
        let done = Instant::now();
        let mut next = lock(&r.next);
        match answer {
            Ok(resolved) if !resolved.active.is_empty() => {
                self.update(resolved);
                *next = (done + r.every, 0);
            }
            Ok(_) => next.0 = done + r.every.min(RETRY_EMPTY_REFRESH),
            Err(_) => {
                next.1 += 1;
                let wait = if next.1 > FAILED_REFRESHES_BEFORE_BACKING_OFF {
                    r.every
                } else {
                    r.every.min(RETRY_FAILED_REFRESH)
                };
                next.0 = done + wait;
            }
        }
        r.busy.store(false, Ordering::Release);
        true
    }

    /// A round-robin call landed on `node` after the pick's first choice failed: the
    /// cursor moves there, so the endpoint after it is next rather than `node` again.
    pub(crate) fn landed_on(&self, node: &Arc<Node>) {
        let mut m = lock(&self.members);
        let n = m.cycle.len();
        let found = (1..=n)
            .map(|step| (m.cursor + step) % n)
            .find(|pos| Arc::ptr_eq(&m.nodes[m.cycle[*pos]], node));
        if let Some(pos) = found {
            m.cursor = pos;
        }
    }

    /// The endpoints to try for one call, best first (refreshing first if due).
    pub(crate) fn pick(&self, route: Route, now: Instant) -> Vec<Arc<Node>> {
        self.refresh_at(now);
        let mut m = lock(&self.members);
        let order = match route {
            Route::RoundRobin => m.next_in_cycle(now),
            Route::Hash(key) => hash_order(key, &m.active),
            Route::ConsistentHash(key) => m.ring.order(key),
        };
        order.into_iter().map(|i| Arc::clone(&m.nodes[i])).collect()
    }
}
