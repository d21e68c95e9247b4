//! The servant side of generated code: decoding arguments from a request (v1 or TUP
//! v3), encoding results, and building the reply with the right result code.

use std::collections::BTreeMap;

use crate::codec::{DecodeError, TarsDecode, TarsEncode, TarsReader, TarsWriter};
use crate::packet::{
    missing_param, PacketError, RequestPacket, ResponsePacket, TupData, TARSSERVERDECODEERR,
    TARSSERVERNOFUNCERR, TARSSERVERSUCCESS, VERSION_TARS, VERSION_TUP,
};

/// Bytes reserved for a v1 call's encoded results.
const RESULTS_CAPACITY: usize = 128;

/// The function every servant answers whatever its interface, as TarsCpp's
/// `Servant::dispatch` does: TarsCpp proxies send it before their first call and as
/// their keep-alive probe, and give up on an endpoint that does not answer it.
pub const TARS_PING: &str = "tars_ping";

/// What a dispatcher answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An iVersion 1 reply.
    Tars(ResponsePacket),
    /// An iVersion 3 (TUP) reply, which is RequestPacket-shaped.
    Tup(RequestPacket),
    /// Nothing goes back: the request was oneway.
    None,
}

impl Reply {
    /// The result code (`iRet`, or `STATUS_RESULT_CODE` for TUP); `None` for no reply
    /// or an unreadable TUP status.
    pub fn ret(&self) -> Option<i32> {
        match self {
            Reply::Tars(r) => Some(r.ret),
            Reply::Tup(r) => r.tup_result().ok().map(|(code, _)| code),
            Reply::None => None,
        }
    }

    /// Appends the reply as a frame to `out`; false when nothing goes back (oneway).
    pub fn append_frame(&self, out: &mut Vec<u8>) -> Result<bool, PacketError> {
        match self {
            Reply::Tars(r) => r.append_frame(out).map(|()| true),
            Reply::Tup(r) => r.append_frame(out).map(|()| true),
            Reply::None => Ok(false),
        }
    }

    /// The reply as a frame ready to send, or `None` when nothing goes back.
    pub fn encode_frame(&self) -> Result<Option<Vec<u8>>, PacketError> {
        match self {
            Reply::Tars(r) => r.encode_frame().map(Some),
            Reply::Tup(r) => r.encode_frame().map(Some),
            Reply::None => Ok(None),
        }
    }
}

/// A failure a servant method reports instead of results: it becomes the reply's
/// result code and description (e.g. [`crate::packet::TARSSERVERUNKNOWNERR`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("servant error {code}: {desc}")]
pub struct ServantError {
    /// The result code sent back (should be non-zero).
    pub code: i32,
    /// The description sent back.
    pub desc: String,
}

impl ServantError {
    /// An error with `code` and `desc`.
    pub fn new(code: i32, desc: impl Into<String>) -> Self {
        ServantError {
            code,
            desc: desc.into(),
        }
    }
}

/// What a servant method can see of the call besides its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    request: &'a RequestPacket,
}

impl<'a> Current<'a> {
    /// The call context of `request`.
    pub fn new(request: &'a RequestPacket) -> Self {
        Current { request }
    }

    /// The whole request.
    pub fn request(&self) -> &'a RequestPacket {
        self.request
    }

    /// The caller's context map.
    pub fn context(&self) -> &'a BTreeMap<String, String> {
        &self.request.context
    }

    /// The request's `status` map.
    pub fn status(&self) -> &'a BTreeMap<String, String> {
        &self.request.status
    }

    /// The called function's name.
    pub fn func_name(&self) -> &'a str {
        &self.request.func_name
    }

    /// The protocol version, 1 (TARS) or 3 (TUP).
    pub fn version(&self) -> i16 {
        self.request.version
    }

    /// True when no reply will be sent.
    pub fn is_oneway(&self) -> bool {
        self.request.is_oneway()
    }
}

/// An object-safe handle on any generated servant (`XServer<S>` wraps an `XServant`),
/// so a server can hold servants of different interfaces side by side.
pub trait Dispatch {
    /// Serves one request.
    fn dispatch(&mut self, request: &RequestPacket) -> Reply;
}

/// Why a call could not produce results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// An argument (or the TUP map) does not decode: `iRet` -1.
    #[error("cannot decode argument `{name}`: {message}")]
    Decode {
        /// The argument's name (`""` for the TUP map itself).
        name: String,
        /// What was wrong.
        message: String,
    },
    /// The servant refused.
    #[error(transparent)]
    Servant(#[from] ServantError),
}

enum Args {
    Tars,
    Tup(TupData),
}

/// One request being served: argument access and reply construction. Generated
/// dispatchers drive it; it is public so hand-written servants can too.
pub struct ServerCall<'a> {
    request: &'a RequestPacket,
    args: Args,
}

impl<'a> ServerCall<'a> {
    /// Starts serving `request`, or gives the reply the runtime sends itself instead
    /// (boxed: it is large and rare): the built-in [`TARS_PING`] (success, checked
    /// first so that it wins over any function of that name, as in TarsCpp), or the
    /// error for an unsupported version or an undecodable TUP map. Every generated
    /// dispatcher starts here, so every servant answers `tars_ping`.
    pub fn new(request: &'a RequestPacket) -> Result<Self, Box<Reply>> {
        if request.func_name == TARS_PING {
            return Err(Box::new(ping_reply(request)));
        }
        let args = match request.version {
            VERSION_TARS => Args::Tars,
            VERSION_TUP => match request.tup_data() {
                Ok(d) => Args::Tup(d),
                Err(e) => {
                    return Err(Box::new(error_reply(
                        request,
                        TARSSERVERDECODEERR,
                        &e.to_string(),
                    )));
                }
            },
            v => {
                return Err(Box::new(error_reply(
                    request,
                    TARSSERVERDECODEERR,
                    &format!("unsupported iVersion {v}"),
                )))
            }
        };
        Ok(ServerCall { request, args })
    }

    /// The call's context, for the servant.
    pub fn current(&self) -> Current<'a> {
        Current::new(self.request)
    }

    /// Decodes the in-parameter at `tag` (v1) or named `name` (TUP).
    pub fn arg<T: TarsDecode>(&self, tag: u8, name: &str) -> Result<T, DispatchError> {
        self.arg_with(tag, name, |r, tag| r.read_required(tag))
    }

    /// Reads the `string` in-parameter at `tag` (v1) or named `name` (TUP) without
    /// copying it; the same checks and errors as `arg::<String>`.
    pub fn arg_str(&self, tag: u8, name: &str) -> Result<&str, DispatchError> {
        self.arg_with(tag, name, |r, tag| {
            r.read_str_ref(tag, true).map(Option::unwrap_or_default)
        })
    }

    /// Runs `read` on the reader positioned for the in-parameter: the v1 buffer with
    /// its tag, or the TUP item with tag 0.
    fn arg_with<'s, T>(
        &'s self,
        tag: u8,
        name: &str,
        read: impl FnOnce(&mut TarsReader<'s>, u8) -> Result<T, DecodeError>,
    ) -> Result<T, DispatchError> {
        let bad = |message: String| DispatchError::Decode {
            name: name.to_owned(),
            message,
        };
        match &self.args {
            Args::Tars => read(&mut TarsReader::new(&self.request.buffer), tag)
                .map_err(|e| bad(e.to_string())),
            Args::Tup(d) => d
                .read_with(name, |r| read(r, 0))
                .and_then(|v| v.ok_or_else(|| missing_param(name)))
                .map_err(|e| bad(e.to_string())),
        }
    }

    /// Runs `body` (a generated function's argument decoding, servant call and result
    /// encoding) with this call.
    pub fn run<F>(&self, body: F) -> Result<Results, DispatchError>
    where
        F: FnOnce(&Self) -> Result<Results, DispatchError>,
    {
        body(self)
    }

    /// An empty set of results in the request's encoding.
    pub fn results(&self) -> Results {
        match self.args {
            // Room for a typical reply (return value and a short out-parameter), so
            // the first writes do not grow the buffer step by step.
            Args::Tars => Results::Tars(TarsWriter::with_capacity(RESULTS_CAPACITY)),
            Args::Tup(_) => Results::Tup(TupData::new()),
        }
    }

    /// The reply for the outcome of the servant call (nothing for a oneway request).
    pub fn finish(&self, outcome: Result<Results, DispatchError>) -> Reply {
        match outcome {
            Ok(results) => {
                if self.request.is_oneway() {
                    return Reply::None;
                }
                match results {
                    Results::Tars(w) => Reply::Tars(ResponsePacket::reply_to(
                        self.request,
                        TARSSERVERSUCCESS,
                        w.into_bytes(),
                    )),
                    Results::Tup(d) => {
                        Reply::Tup(self.request.tup_reply(TARSSERVERSUCCESS, "", &d))
                    }
                }
            }
            Err(DispatchError::Servant(e)) => error_reply(self.request, e.code, &e.desc),
            Err(e @ DispatchError::Decode { .. }) => {
                error_reply(self.request, TARSSERVERDECODEERR, &e.to_string())
            }
        }
    }

    /// The reply for a function this servant does not have (`iRet` -3).
    pub fn no_function(&self) -> Reply {
        let desc = format!("no function `{}`", self.request.func_name);
        error_reply(self.request, TARSSERVERNOFUNCERR, &desc)
    }
}

/// The results of a call, in the request's encoding.
#[derive(Debug)]
pub enum Results {
    /// v1: fields at their tags (return value at 0).
    Tars(TarsWriter),
    /// v3: items by name (return value under `""`, and `tars_ret` as TarsCpp adds).
    Tup(TupData),
}

impl Results {
    /// Adds the return value or out-parameter at `tag` (v1) / `name` (TUP).
    pub fn put<T: TarsEncode + ?Sized>(&mut self, tag: u8, name: &str, value: &T) {
        match self {
            Results::Tars(w) => w.write(tag, value),
            Results::Tup(d) => {
                d.put(name, value);
                if name.is_empty() {
                    d.put("tars_ret", value);
                }
            }
        }
    }
}

/// The answer to [`TARS_PING`]: result 0 and no results, in the request's encoding
/// (nothing for a oneway ping). The v1 reply is byte for byte TarsCpp's: an empty
/// buffer and status, no description, no context.
fn ping_reply(request: &RequestPacket) -> Reply {
    if request.is_oneway() {
        return Reply::None;
    }
    if request.version == VERSION_TUP {
        // TarsCpp means to send an empty TUP map here but, encoding it into the wrong
        // packet, sends an empty buffer; the empty map is what a TUP reader expects.
        Reply::Tup(request.tup_reply(TARSSERVERSUCCESS, "", &TupData::new()))
    } else {
        Reply::Tars(ResponsePacket::reply_to(
            request,
            TARSSERVERSUCCESS,
            Vec::new(),
        ))
    }
}

/// An error reply in the request's encoding (nothing for a oneway request).
pub fn error_reply(request: &RequestPacket, code: i32, desc: &str) -> Reply {
    if request.is_oneway() {
        return Reply::None;
    }
    if request.version == VERSION_TUP {
        Reply::Tup(request.tup_reply(code, desc, &TupData::new()))
    } else {
        let mut r = ResponsePacket::reply_to(request, code, Vec::new());
        r.result_desc = Some(desc.to_owned());
        Reply::Tars(r)
    }
}
