//! [`Proxy`]: a blocking client of one servant over its [`EndpointSet`], and the
//! [`ServantProxy`] trait every generated `XProxy` implements.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::TarsWriter;
use crate::packet::{
    RequestPacket, ResponsePacket, TupData, PACKET_NORMAL, PACKET_ONEWAY, TARSSERVERSUCCESS,
};

use super::balance::Route;
use super::conn::{Conn, WaitError};
use super::endpoint::{EndpointSet, Node};
use super::health::Admit;
use super::server::TARS_PING;
use super::{Args, CallError, CallRecord, Protocol, ProxyConfig, ReturnBody, Returns, OBSERVER};

/// A blocking client of one servant. Cheap to clone: clones share the endpoint set,
/// so its connections, health and round-robin position.
#[derive(Debug, Clone)]
pub struct Proxy {
    servant: String,
    config: ProxyConfig,
    context: BTreeMap<String, String>,
    route: Route,
    endpoints: Arc<EndpointSet>,
    last: Option<SocketAddr>,
}

/// What sending one call on one endpoint came to.
enum Attempt {
    /// The call is over (answered, or failed after its request was sent).
    Done(Result<Option<Vec<u8>>, CallError>),
    /// The endpoint could not take the request (refused, unreachable, failed probe,
    /// lost before the request went out): try the next one.
    Next(CallError),
}

impl Proxy {
    /// A proxy for `servant` (e.g. `TestApp.HelloServer.HelloObj`) at one address,
    /// with the default configuration (v1, 3 s timeout). Connects on the first call.
    pub fn new(addr: SocketAddr, servant: &str) -> Self {
        Self::with_config(addr, servant, ProxyConfig::default())
    }

    /// A proxy at one address with an explicit configuration.
    pub fn with_config(addr: SocketAddr, servant: &str, config: ProxyConfig) -> Self {
        Self::over(Arc::new(EndpointSet::single(servant, addr)), config)
    }

    /// A proxy over `endpoints` (its name is the servant called).
    pub fn over(endpoints: Arc<EndpointSet>, config: ProxyConfig) -> Self {
        Proxy {
            servant: endpoints.name().to_owned(),
            config,
            context: BTreeMap::new(),
            route: Route::RoundRobin,
            endpoints,
            last: None,
        }
    }

    /// The endpoints calls go to.
    pub fn endpoints(&self) -> &Arc<EndpointSet> {
        &self.endpoints
    }

    /// The address of the endpoint that handled the last call (or, when it failed,
    /// the last endpoint tried); `None` before any call reached one.
    pub fn last_endpoint(&self) -> Option<SocketAddr> {
        self.last
    }

    /// The servant's name.
    pub fn servant(&self) -> &str {
        &self.servant
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Chooses v1 or v3 for the following calls.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.config.protocol = protocol;
    }

    /// Sets the reply timeout for the following calls.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.config.timeout = timeout;
    }

    /// How the following calls pick their endpoint.
    pub fn set_route(&mut self, route: Route) {
        self.route = route;
    }

    /// The route in force.
    pub fn route(&self) -> Route {
        self.route
    }

    /// The same proxy with calls routed by `key` ([`Route::Hash`]).
    pub fn with_hash(mut self, key: u64) -> Self {
        self.route = Route::Hash(key);
        self
    }

    /// The same proxy with calls routed by `key` on the consistent-hash ring
    /// ([`Route::ConsistentHash`]).
    pub fn with_consistent_hash(mut self, key: u64) -> Self {
        self.route = Route::ConsistentHash(key);
        self
    }

    /// The context map sent with every call (tag 9 of the request).
    pub fn context_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.context
    }

    /// Empty arguments in the current protocol.
    pub fn args(&self) -> Args {
        match self.config.protocol {
            Protocol::Tars => Args::Tars(TarsWriter::new()),
            Protocol::Tup => Args::Tup(TupData::new()),
        }
    }

    /// Calls `func` and waits for its reply; a non-zero result code is an error.
    pub fn invoke(&mut self, func: &str, args: Args) -> Result<Returns, CallError> {
        let buffer = match args {
            Args::Tars(w) => w.into_bytes(),
            Args::Tup(d) => d.encode(),
        };
        let started = Instant::now();
        let result = self
            .call(func, buffer, PACKET_NORMAL)
            .and_then(|reply| self.decode_reply(func, reply.unwrap_or_default(), true));
        self.observe(func, started, false, result.as_ref().map(|_| ()));
        result
    }

    /// Calls `func` without waiting for (or getting) a reply.
    pub fn invoke_oneway(&mut self, func: &str, args: Args) -> Result<(), CallError> {
        let buffer = match args {
            Args::Tars(w) => w.into_bytes(),
            Args::Tup(d) => d.encode(),
        };
        let started = Instant::now();
        let result = self.call(func, buffer, PACKET_ONEWAY).map(|_| ());
        self.observe(func, started, true, result.as_ref().map(|_| ()));
        result
    }

    /// Sends the built-in `tars_ping` (as TarsCpp proxies do): `Ok` when the endpoint
    /// the route picks answers it with success.
    pub fn ping(&mut self) -> Result<(), CallError> {
        let started = Instant::now();
        let result = self
            .call(TARS_PING, Vec::new(), PACKET_NORMAL)
            .and_then(|reply| self.decode_reply(TARS_PING, reply.unwrap_or_default(), false))
            .map(|_| ());
        self.observe(TARS_PING, started, false, result.as_ref().map(|_| ()));
        result
    }

    fn observe(&self, func: &str, started: Instant, oneway: bool, result: Result<(), &CallError>) {
        // A call that never reached an endpoint is not an outgoing call to report.
        let Some(addr) = self.last else {
            return;
        };
        OBSERVER.with(|o| {
            if let Some(f) = o.borrow().as_ref() {
                f(&CallRecord {
                    servant: &self.servant,
                    func,
                    addr,
                    oneway,
                    elapsed: started.elapsed(),
                    result,
                });
            }
        });
    }

    /// Routes one call: endpoints in the route's order, those taken out skipped, and
    /// if none was left to try, those taken out tried anyway (probe first).
    fn call(
        &mut self,
        func: &str,
        buffer: Vec<u8>,
        packet_type: i8,
    ) -> Result<Option<Vec<u8>>, CallError> {
        self.last = None;
        let now = Instant::now();
        let nodes = self.endpoints.pick(self.route, now);
        let mut skipped = Vec::new();
        let mut failure = None;
        for node in &nodes {
            let admit = node.admit(now);
            if admit == Admit::Skip {
                skipped.push(node);
                continue;
            }
            match self.attempt(node, admit == Admit::Probe, func, &buffer, packet_type) {
                Attempt::Done(result) => {
                    if failure.is_some() && self.route == Route::RoundRobin {
                        self.endpoints.landed_on(node);
                    }
                    return result;
                }
                Attempt::Next(e) => failure = Some(e),
            }
        }
        for node in skipped {
            node.with_health(|h| h.force_probe());
            match self.attempt(node, true, func, &buffer, packet_type) {
                Attempt::Done(result) => return result,
                Attempt::Next(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| CallError::NoEndpoint {
            servant: self.servant.clone(),
        }))
    }

    /// Sends the call to `node` (after a `tars_ping` probe when `probe`).
    fn attempt(
        &mut self,
        node: &Node,
        probe: bool,
        func: &str,
        buffer: &[u8],
        packet_type: i8,
    ) -> Attempt {
        let policy = self.endpoints.failover().clone();
        let unknown = SocketAddr::from((Ipv4Addr::UNSPECIFIED, node.endpoint().port));
        // A kept connection the server closed in the meantime fails the send; one
        // new connection is then made before the endpoint is given up.
        for fresh_try in [false, true] {
            let conn = match node.connection(self.config.connect_timeout, self.config.max_frame) {
                Ok(c) => c,
                Err(source) => {
                    let addr = node.addr().unwrap_or(unknown);
                    self.last = Some(addr);
                    node.with_health(|h| h.connect_failed(Instant::now(), &policy));
                    return Attempt::Next(CallError::Connect { addr, source });
                }
            };
            let addr = conn.peer();
            self.last = Some(addr);
            if probe && !fresh_try {
                let probe_timeout = policy.probe_timeout.min(self.config.timeout);
                let answered = self.probe(&conn, probe_timeout);
                node.with_health(|h| h.probe_done(answered.is_ok(), Instant::now(), &policy));
                if let Err(e) = answered {
                    return Attempt::Next(e);
                }
            }
            let oneway = packet_type == PACKET_ONEWAY;
            let id = conn.register(oneway);
            let frame = match self.request_frame(func, id, buffer, packet_type) {
                Ok(f) => f,
                Err(e) => {
                    conn.forget(id);
                    return Attempt::Done(Err(e));
                }
            };
            if let Err(source) = conn.send(&frame, self.config.timeout) {
                conn.forget(id);
                node.drop_connection();
                if fresh_try {
                    node.with_health(|h| h.connect_failed(Instant::now(), &policy));
                    return Attempt::Next(CallError::Io {
                        func: func.to_owned(),
                        addr,
                        source,
                    });
                }
                continue;
            }
            if oneway {
                return Attempt::Done(Ok(None));
            }
            let outcome = conn.wait(id, Instant::now() + self.config.timeout);
            node.with_health(|h| h.call_done(outcome.is_err(), Instant::now(), &policy));
            return Attempt::Done(match outcome {
                Ok(body) => Ok(Some(body)),
                Err(WaitError::Timeout) => Err(CallError::Timeout {
                    func: func.to_owned(),
                    addr,
                    after: self.config.timeout,
                }),
                Err(WaitError::Broken(why)) => Err(CallError::broken(func, addr, why)),
            });
        }
        Attempt::Next(CallError::NoEndpoint {
            servant: self.servant.clone(),
        })
    }

    /// A v1 `tars_ping` on `conn`, answered (with any result code) within `timeout`.
    fn probe(&self, conn: &Conn, timeout: Duration) -> Result<(), CallError> {
        let id = conn.register(false);
        let request = RequestPacket {
            version: Protocol::Tars.version(),
            packet_type: PACKET_NORMAL,
            message_type: 0,
            request_id: id,
            servant_name: self.servant.clone(),
            func_name: TARS_PING.to_owned(),
            buffer: Vec::new().into(),
            timeout: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
            context: BTreeMap::new(),
            status: BTreeMap::new(),
        };
        let packet_err = |source| CallError::Packet {
            func: TARS_PING.to_owned(),
            source,
        };
        let addr = conn.peer();
        let sent = request
            .encode_frame()
            .map_err(packet_err)
            .and_then(|frame| {
                conn.send(&frame, timeout).map_err(|source| CallError::Io {
                    func: TARS_PING.to_owned(),
                    addr,
                    source,
                })
            });
        if let Err(e) = sent {
            conn.forget(id);
            return Err(e);
        }
        let body = conn
            .wait(id, Instant::now() + timeout)
            .map_err(|e| match e {
                WaitError::Timeout => CallError::Timeout {
                    func: TARS_PING.to_owned(),
                    addr,
                    after: timeout,
                },
                WaitError::Broken(why) => CallError::broken(TARS_PING, addr, why),
            })?;
        // Any reply shows the endpoint serves again, even "no function" from a server
        // that has no tars_ping (Tars.js answers -3).
        ResponsePacket::decode(&body)
            .map_err(packet_err)
            .map(|_| ())
    }

    fn request_frame(
        &self,
        func: &str,
        id: i32,
        buffer: &[u8],
        packet_type: i8,
    ) -> Result<Vec<u8>, CallError> {
        let request = RequestPacket {
            version: self.config.protocol.version(),
            packet_type,
            message_type: 0,
            request_id: id,
            servant_name: self.servant.clone(),
            func_name: func.to_owned(),
            buffer: buffer.to_vec().into(),
            timeout: i32::try_from(self.config.timeout.as_millis()).unwrap_or(i32::MAX),
            context: self.context.clone(),
            status: BTreeMap::new(),
        };
        request.encode_frame().map_err(|source| CallError::Packet {
            func: func.to_owned(),
            source,
        })
    }

    /// Decodes a reply body in the proxy's protocol; a non-zero result code is an
    /// error. Without `results` the TUP map is not read (a ping's reply has none
    /// worth reading, and TarsCpp sends an empty buffer there).
    fn decode_reply(&self, func: &str, body: Vec<u8>, results: bool) -> Result<Returns, CallError> {
        let packet_err = |source| CallError::Packet {
            func: func.to_owned(),
            source,
        };
        let server_err = |code: i32, desc: &str| CallError::Server {
            func: func.to_owned(),
            code,
            desc: desc.to_owned(),
        };
        let body = match self.config.protocol {
            Protocol::Tars => {
                let r = ResponsePacket::decode(&body).map_err(packet_err)?;
                if r.ret != TARSSERVERSUCCESS {
                    return Err(server_err(r.ret, r.desc()));
                }
                ReturnBody::Tars(r.buffer.0)
            }
            Protocol::Tup => {
                let r = RequestPacket::decode(&body).map_err(packet_err)?;
                let (code, desc) = r.tup_result().map_err(packet_err)?;
                if code != TARSSERVERSUCCESS {
                    return Err(server_err(code, desc));
                }
                if results {
                    ReturnBody::Tup(r.tup_data().map_err(packet_err)?)
                } else {
                    ReturnBody::Tup(TupData::new())
                }
            }
        };
        Ok(Returns {
            func: func.to_owned(),
            body,
        })
    }
}

/// What every generated `XProxy` is: a typed face on a [`Proxy`]. Lets a server hand
/// out any generated proxy by name (`ctx.proxy::<HelloProxy>(…)`), and gives each the
/// calls every servant answers.
pub trait ServantProxy: Sized {
    /// The typed proxy over `proxy`.
    fn from_proxy(proxy: Proxy) -> Self;

    /// The underlying proxy.
    fn proxy_mut(&mut self) -> &mut Proxy;

    /// Sends the built-in `tars_ping` ([`Proxy::ping`]).
    fn tars_ping(&mut self) -> Result<(), CallError> {
        self.proxy_mut().ping()
    }

    /// Routes the following calls by `key` ([`Route::Hash`]).
    fn with_hash(mut self, key: u64) -> Self {
        self.proxy_mut().set_route(Route::Hash(key));
        self
    }

    /// Routes the following calls by `key` on the consistent-hash ring.
    fn with_consistent_hash(mut self, key: u64) -> Self {
        self.proxy_mut().set_route(Route::ConsistentHash(key));
        self
    }
}
