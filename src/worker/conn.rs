//! One client connection of the event worker: reads into the worker's scratch buffer,
//! hands the bytes to the connection's protocol, writes the queued output with
//! backpressure, and closes with a lingering close (write side shut, the client's last
//! bytes read and discarded until its FIN) so an answer in flight is never destroyed
//! by a reset.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::sys;

use super::protocol::{self, App, Host, Output, Protocol, Switch};

/// How long a connection may sit idle, while draining, before we close it: a client that
/// sends continuously is never idle this long, so no request races the close.
const DRAIN_IDLE_CLOSE_MS: i64 = 1000;
/// How long a lingering close waits for the peer's FIN.
const LINGER_MS: i64 = 2000;

/// One accepted connection and its protocol.
pub(super) struct Conn {
    stream: TcpStream,
    token: Token,
    /// The client's IP, for statistics.
    peer: String,
    /// The listener (and adapter) it was accepted on.
    pub(super) adapter: usize,
    /// The adapter's port, for statistics.
    port: i32,
    protocol: Box<dyn Protocol>,
    out: Output,
    last_active: i64,
    /// Write side shut down; reading and discarding until EOF or this deadline.
    lingering_until: Option<i64>,
    /// Registered for writability: output is waiting for the socket.
    want_write: bool,
    /// Reading stopped because output backed up; resumes once it is written.
    read_paused: bool,
}

/// Where a connection came from.
pub(super) struct Origin {
    /// The client's IP.
    pub peer: String,
    /// The listener (and adapter) index.
    pub adapter: usize,
    /// The adapter's port.
    pub port: i32,
}

impl Conn {
    /// A connection served by `protocol`, registered later with [`Conn::register`].
    pub(super) fn new(
        stream: TcpStream,
        token: Token,
        from: Origin,
        protocol: Box<dyn Protocol>,
        now: i64,
    ) -> Box<Conn> {
        Box::new(Conn {
            stream,
            token,
            peer: from.peer,
            adapter: from.adapter,
            port: from.port,
            protocol,
            out: Output::default(),
            last_active: now,
            lingering_until: None,
            want_write: false,
            read_paused: false,
        })
    }

    /// Starts watching the socket for input.
    pub(super) fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.stream, self.token, Interest::READABLE)
    }

    /// Stops watching the socket (before it is closed).
    pub(super) fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }

    /// Reads, serves and writes as far as the socket allows. `false`: close it now.
    pub(super) fn drive(
        &mut self,
        readable: bool,
        writable: bool,
        scratch: &mut [u8],
        registry: &Registry,
        app: &mut App<'_>,
    ) -> bool {
        if let Some(until) = self.lingering_until {
            return self.discard(until);
        }
        if writable || self.want_write {
            match self.flush(registry) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(_) => return false,
            }
            if self.out.is_closing() {
                return self.start_linger();
            }
        }
        if readable || self.read_paused {
            if std::mem::take(&mut self.read_paused) {
                // What the pause left buffered is served before anything new is read.
                self.run(app, |p, out, host| p.on_input(&[], out, host));
            }
            let mut eof = false;
            while !self.out.is_closing() && !self.out.is_full() {
                match self.stream.read(scratch) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        let input = scratch.get(..n).unwrap_or_default();
                        self.run(app, |p, out, host| p.on_input(input, out, host));
                        // A short read drained the socket: the next arrival is a new
                        // edge, so skip the read that would only say EWOULDBLOCK.
                        if n < scratch.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            self.read_paused = self.out.is_full();
            self.last_active = app.requests.now();
            if eof {
                if self.out.is_sent() {
                    // The client closed; anything half-received can never be answered.
                    return false;
                }
                self.out.close();
            }
        }
        self.finish(registry)
    }

    /// One call of the protocol outside a read (drain, deadline, and later a push from
    /// elsewhere), then what it queued is written. `false`: close it now.
    pub(super) fn call(
        &mut self,
        registry: &Registry,
        app: &mut App<'_>,
        serve: impl FnOnce(&mut dyn Protocol, &mut Output, &mut Host<'_, '_>) -> Option<Switch>,
    ) -> bool {
        if self.lingering_until.is_some() {
            return true;
        }
        self.run(app, serve);
        self.finish(registry)
    }

    /// The sweep's verdict at `now` (idle timeouts, drain closes, linger and protocol
    /// deadlines). `idle_limit`: the adapter's idle timeout (0: none). `false`: close
    /// it now.
    pub(super) fn sweep(
        &mut self,
        now: i64,
        idle_limit: i64,
        draining: bool,
        registry: &Registry,
        app: &mut App<'_>,
    ) -> bool {
        if let Some(until) = self.lingering_until {
            return now < until;
        }
        let idle_for = now - self.last_active;
        if idle_limit > 0 && idle_for >= idle_limit {
            return false;
        }
        let between = self.protocol.is_idle() && self.out.is_sent();
        if draining && between && idle_for >= DRAIN_IDLE_CLOSE_MS {
            return false;
        }
        match self.protocol.deadline() {
            Some(at) if now >= at => self.call(registry, app, |p, out, host| {
                p.on_deadline(out, host);
                None
            }),
            _ => true,
        }
    }

    /// Runs one protocol call with the worker's `app` lent as its [`Host`].
    fn run(
        &mut self,
        app: &mut App<'_>,
        serve: impl FnOnce(&mut dyn Protocol, &mut Output, &mut Host<'_, '_>) -> Option<Switch>,
    ) {
        let mut host = Host {
            app,
            peer: &self.peer,
            port: self.port,
        };
        protocol::switching(&mut self.protocol, &mut self.out, &mut host, serve);
    }

    /// Writes what is queued; once all is out on a closing connection, starts the
    /// lingering close. `false`: close it now.
    fn finish(&mut self, registry: &Registry) -> bool {
        match self.flush(registry) {
            Ok(true) if self.out.is_closing() => self.start_linger(),
            // Reading was paused and the output is gone at once: no event would resume
            // it, so ask for one (writability is reported at once) and let the other
            // connections have this turn.
            Ok(true) if self.read_paused => self.want_writable(registry).is_ok(),
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Watches for writability too, until the output is all written.
    fn want_writable(&mut self, registry: &Registry) -> io::Result<()> {
        if !self.want_write {
            self.want_write = true;
            registry.reregister(
                &mut self.stream,
                self.token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
        Ok(())
    }

    /// Writes pending output. `Ok(true)`: all written.
    fn flush(&mut self, registry: &Registry) -> io::Result<bool> {
        while let Some(pending) = self
            .out
            .buf
            .get(self.out.written..)
            .filter(|p| !p.is_empty())
        {
            match self.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.want_writable(registry)?;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.buf.clear();
        self.out.written = 0;
        if self.want_write {
            self.want_write = false;
            registry.reregister(&mut self.stream, self.token, Interest::READABLE)?;
        }
        Ok(true)
    }

    fn start_linger(&mut self) -> bool {
        if sys::shutdown_write(self.stream.as_raw_fd()).is_err() {
            return false;
        }
        self.lingering_until = Some(sys::monotonic_ms() + LINGER_MS);
        true
    }

    /// Discards what the client still sends until its FIN, so our close never turns
    /// into a reset that could destroy the answer in flight. `false`: close it now.
    fn discard(&mut self, until: i64) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return false,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return sys::monotonic_ms() < until;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }
}
