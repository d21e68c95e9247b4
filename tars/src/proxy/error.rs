//! Why a call through a [`super::Proxy`] failed.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::frame::FrameError;
use crate::packet::PacketError;

use super::conn::Broken;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The servant has no endpoint to call (the registry lists none active).
    #[error("{servant}: no active endpoint is known")]
    NoEndpoint {
        /// The servant called.
        servant: String,
    },
    /// No connection could be made (to the last endpoint tried: the call moved on
    /// from every endpoint that refused).
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

impl CallError {
    /// The error for a call whose connection broke after the request was sent.
    pub(crate) fn broken(func: &str, addr: SocketAddr, why: Broken) -> CallError {
        let func = func.to_owned();
        match why {
            Broken::Closed => CallError::Closed { func, addr },
            Broken::Io(kind, message) => CallError::Io {
                func,
                addr,
                source: io::Error::new(kind, message),
            },
            Broken::Frame(source) => CallError::Frame { func, source },
            Broken::Packet(source) => CallError::Packet { func, source },
        }
    }
}
