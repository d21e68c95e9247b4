//! The runtime of generated code: the client side ([`Proxy`] over an [`EndpointSet`])
//! and the servant side ([`ServerCall`], [`Reply`], [`Current`], [`Dispatch`]).
//!
//! A [`Proxy`] calls one servant over its endpoints: one fixed address
//! ([`Proxy::new`]), endpoints written out, or a name the registry resolves and
//! refreshes (the server's locator builds those sets). Each call picks an endpoint by
//! its [`Route`] (round robin, weighted round robin, hash, consistent hash), skips
//! endpoints the failover rule ([`FailoverPolicy`]) has taken out, moves on from an
//! endpoint that refuses the connection, and fails (never retries) once a request has
//! been sent and its reply does not come. Connections are kept per endpoint and
//! shared by every proxy of the process on the same [`EndpointSet`], with calls
//! pipelined by request id.

mod balance;
mod client;
mod conn;
mod endpoint;
mod error;
mod health;
mod md5;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::{DecodeError, TarsDecode, TarsEncode, TarsReader, TarsWriter};
use crate::frame::DEFAULT_MAX_FRAME;
use crate::packet::{TupData, VERSION_TARS, VERSION_TUP};

pub use balance::Route;
pub use client::{Proxy, ServantProxy};
pub use endpoint::{
    Endpoint, EndpointSet, EndpointStatus, Resolve, ResolveError, Resolved, MAX_WEIGHT,
};
pub use error::CallError;
pub use health::FailoverPolicy;
pub use server::{
    error_reply, Current, Dispatch, DispatchError, Reply, Results, ServantError, ServerCall,
    TARS_PING,
};

/// Which encoding calls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// iVersion 1: arguments at tags.
    #[default]
    Tars,
    /// iVersion 3: simple TUP, arguments by name.
    Tup,
}

impl Protocol {
    /// The packet's `iVersion`.
    pub fn version(self) -> i16 {
        match self {
            Protocol::Tars => VERSION_TARS,
            Protocol::Tup => VERSION_TUP,
        }
    }
}

/// How a [`Proxy`] behaves.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// How long a call waits for its reply (also sent as `iTimeout`).
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// v1 or v3.
    pub protocol: Protocol,
    /// The largest reply frame accepted.
    pub max_frame: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            protocol: Protocol::Tars,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// One finished call through a [`Proxy`], as a call observer sees it (client-side
/// statistics are built from these).
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    /// The servant called.
    pub servant: &'a str,
    /// The function called.
    pub func: &'a str,
    /// The endpoint that handled the call (the last one tried, if none did).
    pub addr: SocketAddr,
    /// A oneway call (no reply awaited).
    pub oneway: bool,
    /// From the send to the reply (or the failure).
    pub elapsed: Duration,
    /// How it ended.
    pub result: Result<(), &'a CallError>,
}

/// Receives every call made through any [`Proxy`] of this thread.
pub type CallObserver = Box<dyn Fn(&CallRecord<'_>)>;

thread_local! {
    pub(crate) static OBSERVER: std::cell::RefCell<Option<CallObserver>> = const { std::cell::RefCell::new(None) };
}

/// Installs (or with `None` removes) the observer of this thread's proxy calls. A
/// server installs one per process to record client-side call statistics.
pub fn set_call_observer(observer: Option<CallObserver>) {
    OBSERVER.with(|o| *o.borrow_mut() = observer);
}

/// The arguments of one call, in the proxy's encoding.
#[derive(Debug)]
pub enum Args {
    /// v1: fields at tags 1..N.
    Tars(TarsWriter),
    /// v3: items by parameter name.
    Tup(TupData),
}

impl Args {
    /// Adds the in-parameter at `tag` (v1) / `name` (TUP).
    pub fn put<T: TarsEncode + ?Sized>(&mut self, tag: u8, name: &str, value: &T) {
        match self {
            Args::Tars(w) => w.write(tag, value),
            Args::Tup(d) => d.put(name, value),
        }
    }
}

/// A successful reply's results.
#[derive(Debug)]
pub struct Returns {
    pub(crate) func: String,
    pub(crate) body: ReturnBody,
}

#[derive(Debug)]
pub(crate) enum ReturnBody {
    Tars(Vec<u8>),
    Tup(TupData),
}

impl Returns {
    /// Decodes the return value (`tag` 0, name `""`) or out-parameter at `tag` / `name`.
    pub fn get<T: TarsDecode>(&self, tag: u8, name: &str) -> Result<T, CallError> {
        let bad = |message: String| CallError::Decode {
            func: self.func.clone(),
            name: name.to_owned(),
            message,
        };
        match &self.body {
            ReturnBody::Tars(b) => TarsReader::new(b)
                .read_required(tag)
                .map_err(|e: DecodeError| bad(e.to_string())),
            ReturnBody::Tup(d) => match d.get(name) {
                Ok(Some(v)) => Ok(v),
                // TarsCpp also files the return value as `tars_ret`.
                Ok(None) if name.is_empty() => {
                    d.get_required("tars_ret").map_err(|e| bad(e.to_string()))
                }
                Ok(None) => Err(bad("missing".to_owned())),
                Err(e) => Err(bad(e.to_string())),
            },
        }
    }
}
