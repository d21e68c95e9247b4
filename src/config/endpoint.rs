//! Tars endpoint strings (`tcp -h HOST -p PORT -t MS`) and object strings
//! (`Name@ep1:ep2`), parsed and printed back in the form tarsnode writes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The `-t` of an endpoint that has none, in milliseconds (TarsCpp `TC_Endpoint`'s default).
pub const DEFAULT_ENDPOINT_TIMEOUT_MS: u64 = 3000;

/// An example used in every endpoint error, so the fix is one copy away.
const ENDPOINT_EXAMPLE: &str = "tcp -h 127.0.0.1 -p 8080 -t 60000";

/// What is wrong with an endpoint or object string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Nothing but whitespace.
    #[error("the endpoint is empty; expected e.g. `{ENDPOINT_EXAMPLE}`")]
    Empty,
    /// The first word is not a transport.
    #[error("unknown transport `{0}`; an endpoint starts with tcp, udp or ssl")]
    UnknownTransport(String),
    /// An option flag at the end with no value after it.
    #[error("option {0} has no value after it")]
    MissingValue(String),
    /// The same option twice.
    #[error("option {0} is given twice")]
    Duplicate(String),
    /// A word that is neither an option nor an option's value.
    #[error("unexpected `{0}`; the options are -h HOST -p PORT [-t TIMEOUT_MS] [-b BIND]")]
    Unexpected(String),
    /// No `-h`.
    #[error("missing -h HOST")]
    MissingHost,
    /// No `-p`.
    #[error("missing -p PORT")]
    MissingPort,
    /// `-p` is not a port number.
    #[error("port `{0}` is not a number from 0 to 65535")]
    BadPort(String),
    /// `-t` is not a number of milliseconds.
    #[error("timeout -t `{0}` is not a whole number of milliseconds")]
    BadTimeout(String),
    /// An object string with nothing before `@`, or with spaces in its name.
    #[error("object name `{0}` is empty or contains spaces; expected e.g. `tars.tarsnode.ServerObj@{ENDPOINT_EXAMPLE}`")]
    BadObjectName(String),
    /// An object string's endpoint list has an empty member (`Obj@` or `a::b`).
    #[error("an endpoint after '@' is empty; expected e.g. `Obj@{ENDPOINT_EXAMPLE}`")]
    EmptyObjectEndpoint,
}

/// The transport word at the start of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `tcp`
    Tcp,
    /// `udp`
    Udp,
    /// `ssl` (TLS over TCP)
    Ssl,
}

impl Transport {
    /// The word as written in endpoints.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Ssl => "ssl",
        }
    }

    /// True for the transports that listen on a TCP socket (tcp, ssl).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    fn from_word(word: &str) -> Option<Transport> {
        match word.to_ascii_lowercase().as_str() {
            "tcp" => Some(Transport::Tcp),
            "udp" => Some(Transport::Udp),
            "ssl" => Some(Transport::Ssl),
            _ => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed endpoint: `tcp|udp|ssl -h HOST -p PORT [-t TIMEOUT_MS] [-b BIND]`, options in
/// any order. Other single-dash options TarsCpp knows (`-e`, `-a`, `-w`, …) are kept in
/// `extra`, in order, so that printing gives back what the platform wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// tcp, udp or ssl.
    pub transport: Transport,
    /// `-h`: an IP address or host name.
    pub host: String,
    /// `-p`: the port (0 lets the OS choose one when listening).
    pub port: u16,
    /// `-t`: idle/call timeout in milliseconds, if given.
    pub timeout_ms: Option<u64>,
    /// `-b`: local address to bind outgoing connections to, if given.
    pub bind: Option<String>,
    /// Any other `-x value` options, in the order written.
    pub extra: Vec<(String, String)>,
}

impl Endpoint {
    /// An endpoint with just transport, host and port.
    pub fn new(transport: Transport, host: impl Into<String>, port: u16) -> Endpoint {
        Endpoint {
            transport,
            host: host.into(),
            port,
            timeout_ms: None,
            bind: None,
            extra: Vec::new(),
        }
    }

    /// Parses an endpoint string.
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let mut words = text.split_whitespace();
        let first = words.next().ok_or(EndpointError::Empty)?;
        let transport = Transport::from_word(first)
            .ok_or_else(|| EndpointError::UnknownTransport(first.to_string()))?;
        let (mut host, mut port, mut timeout_ms, mut bind) = (None, None, None, None);
        let mut extra: Vec<(String, String)> = Vec::new();
        while let Some(word) = words.next() {
            let is_flag = word.len() >= 2
                && word.starts_with('-')
                && word[1..].chars().all(|c| c.is_ascii_alphabetic());
            if !is_flag {
                return Err(EndpointError::Unexpected(word.to_string()));
            }
            let value = words
                .next()
                .ok_or_else(|| EndpointError::MissingValue(word.to_string()))?;
            let duplicate = || EndpointError::Duplicate(word.to_string());
            match word {
                "-h" => set_once(&mut host, value.to_string(), duplicate)?,
                "-p" => {
                    let p = value
                        .parse::<u16>()
                        .map_err(|_| EndpointError::BadPort(value.to_string()))?;
                    set_once(&mut port, p, duplicate)?;
                }
                "-t" => {
                    let t = value
                        .parse::<u64>()
                        .map_err(|_| EndpointError::BadTimeout(value.to_string()))?;
                    set_once(&mut timeout_ms, t, duplicate)?;
                }
                "-b" => set_once(&mut bind, value.to_string(), duplicate)?,
                _ => {
                    if extra.iter().any(|(k, _)| k == word) {
                        return Err(duplicate());
                    }
                    extra.push((word.to_string(), value.to_string()));
                }
            }
        }
        Ok(Endpoint {
            transport,
            host: host.ok_or(EndpointError::MissingHost)?,
            port: port.ok_or(EndpointError::MissingPort)?,
            timeout_ms,
            bind,
            extra,
        })
    }

    /// The `-t` timeout, or TarsCpp's default of 3 s when the endpoint has none.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_ENDPOINT_TIMEOUT_MS))
    }

    /// `host:port`, with brackets around an IPv6 host (`[::1]:80`), for messages and
    /// for `ToSocketAddrs`.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The socket address when the host is an IP literal (no name lookup here).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// True when both would listen on the same socket: same kind of socket (stream or
    /// datagram), same port, and the same host or one of them a wildcard address.
    /// Port 0 (an OS-chosen port) never clashes.
    pub fn clashes_with(&self, other: &Endpoint) -> bool {
        if self.port == 0 || self.port != other.port {
            return false;
        }
        if self.transport.is_stream() != other.transport.is_stream() {
            return false;
        }
        let wildcard = |h: &str| {
            h.parse::<IpAddr>()
                .map(|ip| ip.is_unspecified())
                .unwrap_or(false)
        };
        self.host == other.host || wildcard(&self.host) || wildcard(&other.host)
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    duplicate: impl Fn() -> EndpointError,
) -> Result<(), EndpointError> {
    if slot.is_some() {
        return Err(duplicate());
    }
    *slot = Some(value);
    Ok(())
}

impl FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -h {} -p {}", self.transport, self.host, self.port)?;
        if let Some(t) = self.timeout_ms {
            write!(f, " -t {t}")?;
        }
        if let Some(b) = &self.bind {
            write!(f, " -b {b}")?;
        }
        for (k, v) in &self.extra {
            write!(f, " {k} {v}")?;
        }
        Ok(())
    }
}

/// An object string: `Name` alone (resolved through the locator) or
/// `Name@ep1:ep2` (used as written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// The object name, e.g. `tars.tarsnode.ServerObj`.
    pub name: String,
    /// The endpoints after `@`; empty when the name must be resolved.
    pub endpoints: Vec<Endpoint>,
}

impl ObjectRef {
    /// Parses `Name` or `Name@ep1:ep2`. Endpoints are separated by a `:` that is
    /// followed by a transport word, so an IPv6 host (`-h ::1`) is not split.
    pub fn parse(text: &str) -> Result<ObjectRef, EndpointError> {
        let text = text.trim();
        let (name, rest) = match text.split_once('@') {
            Some((name, rest)) => (name.trim(), Some(rest)),
            None => (text, None),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(EndpointError::BadObjectName(name.to_string()));
        }
        let mut endpoints = Vec::new();
        if let Some(rest) = rest {
            for part in split_endpoints(rest) {
                if part.trim().is_empty() {
                    return Err(EndpointError::EmptyObjectEndpoint);
                }
                endpoints.push(Endpoint::parse(part)?);
            }
        }
        Ok(ObjectRef {
            name: name.to_string(),
            endpoints,
        })
    }
}

/// Splits `ep1:ep2` at each `:` that starts a new endpoint (followed by a transport word).
fn split_endpoints(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (pos, _) in text.match_indices(':') {
        let after = text[pos + 1..].trim_start();
        let word = after.split_whitespace().next().unwrap_or("");
        // A trailing ':' leaves an empty last part, which the caller reports.
        if Transport::from_word(word).is_some() || after.is_empty() {
            parts.push(&text[start..pos]);
            start = pos + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

impl FromStr for ObjectRef {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectRef::parse(s)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (i, e) in self.endpoints.iter().enumerate() {
            f.write_str(if i == 0 { "@" } else { ":" })?;
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
