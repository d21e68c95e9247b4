//! The runtime of generated code: a blocking client ([`Proxy`]) and the servant side
//! ([`ServerCall`], [`Reply`], [`Current`], [`Dispatch`]).
//!
//! A [`Proxy`] owns one TCP connection to one servant. A call encodes the arguments
//! (v1: fields at tags 1..N; TUP v3: a map by parameter name), sends a framed
//! RequestPacket with a fresh `iRequestId`, and reads frames until the reply with that
//! id arrives or the timeout passes. Replies to other ids (late answers to calls that
//! timed out) are dropped. The connection is made on first use and again after an
//! I/O error.

mod server;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::codec::{DecodeError, TarsDecode, TarsEncode, TarsReader, TarsWriter};
use crate::frame::{FrameError, FrameSplitter, DEFAULT_MAX_FRAME};
use crate::packet::{
    PacketError, RequestPacket, ResponsePacket, TupData, PACKET_NORMAL, PACKET_ONEWAY,
    TARSSERVERSUCCESS, VERSION_TARS, VERSION_TUP,
};

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

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The servant's address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Sending or receiving failed (the connection is dropped).
    #[error("{func} on {addr}: {source}")]
    Io {
        /// The function called.
        func: String,
        /// The servant's address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// No reply within the timeout.
    #[error("{func} on {addr}: no reply within {after:?}")]
    Timeout {
        /// The function called.
        func: String,
        /// The servant's address.
        addr: SocketAddr,
        /// The timeout in force.
        after: Duration,
    },
    /// The peer closed the connection before replying.
    #[error("{func} on {addr}: connection closed before the reply")]
    Closed {
        /// The function called.
        func: String,
        /// The servant's address.
        addr: SocketAddr,
    },
    /// A reply frame had a bad length (the connection is dropped).
    #[error("{func}: bad reply frame: {source}")]
    Frame {
        /// The function called.
        func: String,
        /// Why.
        source: FrameError,
    },
    /// The request could not be framed, or a reply packet did not decode.
    #[error("{func}: {source}")]
    Packet {
        /// The function called.
        func: String,
        /// Why.
        source: PacketError,
    },
    /// The server answered with a non-zero result code.
    #[error("{func}: server returned {code} ({}): {desc}", crate::packet::ret_name(*code))]
    Server {
        /// The function called.
        func: String,
        /// `iRet` / `STATUS_RESULT_CODE`.
        code: i32,
        /// `sResultDesc` / `STATUS_RESULT_DESC`.
        desc: String,
    },
    /// A result in the reply did not decode.
    #[error("{func}: cannot decode result `{name}`: {message}")]
    Decode {
        /// The function called.
        func: String,
        /// The result's name (`""` for the return value).
        name: String,
        /// What was wrong.
        message: String,
    },
}

/// One finished call through a [`Proxy`], as a call observer sees it (client-side
/// statistics are built from these).
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    /// The servant called.
    pub servant: &'a str,
    /// The function called.
    pub func: &'a str,
    /// The servant's address.
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
    static OBSERVER: std::cell::RefCell<Option<CallObserver>> = const { std::cell::RefCell::new(None) };
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
    func: String,
    body: ReturnBody,
}

#[derive(Debug)]
enum ReturnBody {
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

/// A blocking client for one servant over one TCP connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    servant: String,
    config: ProxyConfig,
    conn: Option<TcpStream>,
    splitter: FrameSplitter,
    next_id: i32,
    context: BTreeMap<String, String>,
}

impl Proxy {
    /// A proxy for `servant` (e.g. `TestApp.HelloServer.HelloObj`) at `addr`, with the
    /// default configuration (v1, 3 s timeout). Connects on the first call.
    pub fn new(addr: SocketAddr, servant: &str) -> Self {
        Self::with_config(addr, servant, ProxyConfig::default())
    }

    /// A proxy with an explicit configuration.
    pub fn with_config(addr: SocketAddr, servant: &str, config: ProxyConfig) -> Self {
        Proxy {
            addr,
            servant: servant.to_owned(),
            splitter: FrameSplitter::new(config.max_frame),
            config,
            conn: None,
            next_id: 1,
            context: BTreeMap::new(),
        }
    }

    /// The servant's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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
        let started = Instant::now();
        let result = self
            .send(func, args, PACKET_NORMAL)
            .and_then(|id| self.receive(func, id));
        self.observe(func, started, false, result.as_ref().map(|_| ()));
        result
    }

    /// Calls `func` without waiting for (or getting) a reply.
    pub fn invoke_oneway(&mut self, func: &str, args: Args) -> Result<(), CallError> {
        let started = Instant::now();
        let result = self.send(func, args, PACKET_ONEWAY).map(|_| ());
        self.observe(func, started, true, result.as_ref().map(|_| ()));
        result
    }

    fn observe(&self, func: &str, started: Instant, oneway: bool, result: Result<(), &CallError>) {
        OBSERVER.with(|o| {
            if let Some(f) = o.borrow().as_ref() {
                f(&CallRecord {
                    servant: &self.servant,
                    func,
                    addr: self.addr,
                    oneway,
                    elapsed: started.elapsed(),
                    result,
                });
            }
        });
    }

    fn send(&mut self, func: &str, args: Args, packet_type: i8) -> Result<i32, CallError> {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let buffer = match args {
            Args::Tars(w) => w.into_bytes(),
            Args::Tup(d) => d.encode(),
        };
        let timeout_ms = i32::try_from(self.config.timeout.as_millis()).unwrap_or(i32::MAX);
        let request = RequestPacket {
            version: self.config.protocol.version(),
            packet_type,
            message_type: 0,
            request_id: id,
            servant_name: self.servant.clone(),
            func_name: func.to_owned(),
            buffer: buffer.into(),
            timeout: timeout_ms,
            context: self.context.clone(),
            status: BTreeMap::new(),
        };
        let frame = request.encode_frame().map_err(|source| CallError::Packet {
            func: func.to_owned(),
            source,
        })?;
        let addr = self.addr;
        let write_timeout = self.config.timeout.max(Duration::from_millis(1));
        let conn = self.connection()?;
        let sent = conn
            .set_write_timeout(Some(write_timeout))
            .and_then(|()| conn.write_all(&frame));
        if let Err(source) = sent {
            self.drop_connection();
            return Err(CallError::Io {
                func: func.to_owned(),
                addr,
                source,
            });
        }
        Ok(id)
    }

    fn connection(&mut self) -> Result<&mut TcpStream, CallError> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.config.connect_timeout).map_err(
                |source| CallError::Connect {
                    addr: self.addr,
                    source,
                },
            )?;
            // Requests are small and latency matters more than packet count.
            let _ = s.set_nodelay(true);
            self.splitter = FrameSplitter::new(self.config.max_frame);
            self.conn = Some(s);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(CallError::Closed {
                func: String::new(),
                addr: self.addr,
            }),
        }
    }

    fn drop_connection(&mut self) {
        self.conn = None;
        self.splitter = FrameSplitter::new(self.config.max_frame);
    }

    fn receive(&mut self, func: &str, id: i32) -> Result<Returns, CallError> {
        let deadline = Instant::now() + self.config.timeout;
        let addr = self.addr;
        loop {
            // Frames already buffered first: one read can carry several replies.
            loop {
                let frame = match self.splitter.next_frame() {
                    Ok(Some(f)) => f.to_vec(),
                    Ok(None) => break,
                    Err(source) => {
                        self.drop_connection();
                        return Err(CallError::Frame {
                            func: func.to_owned(),
                            source,
                        });
                    }
                };
                if let Some(r) = self.match_reply(func, id, &frame)? {
                    return Ok(r);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CallError::Timeout {
                    func: func.to_owned(),
                    addr,
                    after: self.config.timeout,
                });
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err(CallError::Closed {
                    func: func.to_owned(),
                    addr,
                });
            };
            let read = conn
                .set_read_timeout(Some(left))
                .and_then(|()| self.splitter.read_from(conn));
            match read {
                Ok(0) => {
                    self.drop_connection();
                    return Err(CallError::Closed {
                        func: func.to_owned(),
                        addr,
                    });
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    self.drop_connection();
                    return Err(CallError::Io {
                        func: func.to_owned(),
                        addr,
                        source,
                    });
                }
            }
        }
    }

    /// Decodes one reply frame; `None` if it answers another request.
    fn match_reply(&self, func: &str, id: i32, frame: &[u8]) -> Result<Option<Returns>, CallError> {
        let packet_err = |source| CallError::Packet {
            func: func.to_owned(),
            source,
        };
        match self.config.protocol {
            Protocol::Tars => {
                let r = ResponsePacket::decode(frame).map_err(packet_err)?;
                if r.request_id != id {
                    return Ok(None);
                }
                if r.ret != TARSSERVERSUCCESS {
                    return Err(CallError::Server {
                        func: func.to_owned(),
                        code: r.ret,
                        desc: r.desc().to_owned(),
                    });
                }
                Ok(Some(Returns {
                    func: func.to_owned(),
                    body: ReturnBody::Tars(r.buffer.0),
                }))
            }
            Protocol::Tup => {
                let r = RequestPacket::decode(frame).map_err(packet_err)?;
                if r.request_id != id {
                    return Ok(None);
                }
                let (code, desc) = r.tup_result().map_err(packet_err)?;
                if code != TARSSERVERSUCCESS {
                    return Err(CallError::Server {
                        func: func.to_owned(),
                        code,
                        desc: desc.to_owned(),
                    });
                }
                let data = r.tup_data().map_err(packet_err)?;
                Ok(Some(Returns {
                    func: func.to_owned(),
                    body: ReturnBody::Tup(data),
                }))
            }
        }
    }
}
