//! One kept TCP connection to one endpoint, shared by every proxy of the process that
//! calls there, with calls pipelined by request id.
//!
//! A caller registers its request id, writes its whole frame (writes are serialised so
//! frames never interleave), then waits for the reply with that id. Whoever waits and
//! finds nobody reading becomes the reader: it reads from the socket, files every reply
//! under its id, wakes the others and, once its own reply is in (or its time is up),
//! hands the reading on. A single thread thus reads its own replies directly; several
//! threads share one connection without one stealing another's reply. Replies for ids
//! nobody waits for any more (calls that timed out) are dropped.
//!
//! A connection is never used by a process other than the one that made it: after a
//! `fork` the child sees another pid and makes its own.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::codec::TarsReader;
use crate::frame::{FrameError, FrameSplitter};
use crate::packet::{PacketError, VERSION_TUP};

/// Why a connection can no longer be used. Every call waiting on it fails with this.
#[derive(Debug, Clone)]
pub(crate) enum Broken {
    /// The peer closed it.
    Closed,
    /// Reading or writing failed.
    Io(io::ErrorKind, String),
    /// A reply frame had an impossible length.
    Frame(FrameError),
    /// A reply did not decode far enough to find its request id.
    Packet(PacketError),
}

/// Why a wait for a reply ended without one.
#[derive(Debug)]
pub(crate) enum WaitError {
    /// The deadline passed.
    Timeout,
    /// The connection broke (the request may have run).
    Broken(Broken),
}

#[derive(Debug)]
struct Shared {
    next_id: i32,
    /// Registered request ids and, once arrived, their reply frames.
    waiting: Vec<(i32, Option<Vec<u8>>)>,
    /// A caller is reading the socket for everyone.
    reading: bool,
    broken: Option<Broken>,
}

/// A kept, pipelined connection (see the module documentation).
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    pid: u32,
    write_lock: Mutex<()>,
    shared: Mutex<Shared>,
    arrived: Condvar,
    /// Touched only by the caller that holds `reading`.
    splitter: Mutex<FrameSplitter>,
}

/// Locks ignoring poison: every critical section leaves the state consistent, and a
/// panicking caller must not take the connection down for the others.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Conn {
    /// Connects to `peer`.
    pub(crate) fn connect(
        peer: SocketAddr,
        timeout: Duration,
        max_frame: usize,
    ) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&peer, timeout.max(Duration::from_millis(1)))?;
        // Requests are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            peer,
            pid: std::process::id(),
            write_lock: Mutex::new(()),
            shared: Mutex::new(Shared {
                next_id: 1,
                waiting: Vec::new(),
                reading: false,
                broken: None,
            }),
            arrived: Condvar::new(),
            splitter: Mutex::new(FrameSplitter::new(max_frame)),
        })
    }

    /// The endpoint's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// True when a new call may be sent here: made by this process, not broken, and
    /// not closed by the peer while idle (a server that restarted, or closed an idle
    /// connection: a request written there would be lost with no way to know whether
    /// it ran, so this is checked before, not after).
    pub(crate) fn is_usable(&self) -> bool {
        if self.pid != std::process::id() {
            return false;
        }
        let mut shared = lock(&self.shared);
        if shared.broken.is_some() {
            return false;
        }
        if shared.reading || !shared.waiting.is_empty() {
            // Calls are in flight: their reader will notice a close.
            return true;
        }
        // Nobody reads now (and nobody starts while `shared` is held): peek without
        // waiting for whether the peer has closed or reset the connection.
        let peeked = self
            .stream
            .set_nonblocking(true)
            .and_then(|()| self.stream.peek(&mut [0u8; 1]));
        let restored = self.stream.set_nonblocking(false);
        let verdict = match peeked {
            Ok(0) => Some(Broken::Closed),
            // Bytes nobody asked for (late replies) are no reason to drop it.
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Broken::Io(e.kind(), e.to_string())),
        };
        let verdict =
            verdict.or_else(|| restored.err().map(|e| Broken::Io(e.kind(), e.to_string())));
        match verdict {
            Some(b) => {
                shared.broken = Some(b);
                false
            }
            None => true,
        }
    }

    /// A fresh request id, registered to receive its reply unless `oneway`.
    pub(crate) fn register(&self, oneway: bool) -> i32 {
        let mut shared = lock(&self.shared);
        let id = loop {
            let id = shared.next_id;
            // Ids are positive and skip those still awaited after a wrap.
            shared.next_id = id.checked_add(1).unwrap_or(1);
            if !shared.waiting.iter().any(|(w, _)| *w == id) {
                break id;
            }
        };
        if !oneway {
            shared.waiting.push((id, None));
        }
        id
    }

    /// Forgets `id` (its call gave up); a late reply will be dropped.
    pub(crate) fn forget(&self, id: i32) {
        lock(&self.shared).waiting.retain(|(w, _)| *w != id);
    }

    /// Writes one whole request frame. On failure the connection is broken; the peer
    /// cannot have received the whole frame, so the request did not run.
    pub(crate) fn send(&self, frame: &[u8], timeout: Duration) -> io::Result<()> {
        let written = {
            let _turn = lock(&self.write_lock);
            let mut w = &self.stream;
            self.stream
                .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
                .and_then(|()| w.write_all(frame))
        };
        if let Err(e) = &written {
            self.break_with(Broken::Io(e.kind(), e.to_string()));
        }
        written
    }

    /// Waits until the reply to `id` arrives (its frame body, length prefix removed) or
    /// `deadline` passes. Either way `id` is no longer registered afterwards.
    pub(crate) fn wait(&self, id: i32, deadline: Instant) -> Result<Vec<u8>, WaitError> {
        let mut shared = lock(&self.shared);
        loop {
            if let Some(at) = shared
                .waiting
                .iter()
                .position(|(w, r)| *w == id && r.is_some())
            {
                let (_, reply) = shared.waiting.swap_remove(at);
                return reply.ok_or(WaitError::Timeout);
            }
            if let Some(b) = &shared.broken {
                let b = b.clone();
                shared.waiting.retain(|(w, _)| *w != id);
                return Err(WaitError::Broken(b));
            }
            let now = Instant::now();
            if now >= deadline {
                shared.waiting.retain(|(w, _)| *w != id);
                return Err(WaitError::Timeout);
            }
            if shared.reading {
                shared = self
                    .arrived
                    .wait_timeout(shared, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            shared.reading = true;
            drop(shared);
            let outcome = self.read_some(deadline - now);
            shared = lock(&self.shared);
            shared.reading = false;
            match outcome {
                Ok(frames) => {
                    for frame in frames {
                        match reply_id(&frame) {
                            Ok(rid) => {
                                if let Some(slot) = shared
                                    .waiting
                                    .iter_mut()
                                    .find(|(w, r)| *w == rid && r.is_none())
                                {
                                    slot.1 = Some(frame);
                                }
                            }
                            Err(e) => {
                                shared.broken = Some(Broken::Packet(e));
                                break;
                            }
                        }
                    }
                }
                Err(b) => shared.broken = Some(b),
            }
            // Replies for others, a new reader needed, or a broken connection: wake all.
            self.arrived.notify_all();
        }
    }

    /// One read (at most `left`), split into whole frame bodies. A timeout gives none.
    fn read_some(&self, left: Duration) -> Result<Vec<Vec<u8>>, Broken> {
        let mut splitter = lock(&self.splitter);
        let mut src = &self.stream;
        let read = self
            .stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .and_then(|()| splitter.read_from(&mut src));
        match read {
            Ok(0) => return Err(Broken::Closed),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(Broken::Io(e.kind(), e.to_string())),
        }
        let mut frames = Vec::new();
        loop {
            match splitter.next_frame() {
                Ok(Some(body)) => frames.push(body.to_vec()),
                Ok(None) => return Ok(frames),
                Err(e) => return Err(Broken::Frame(e)),
            }
        }
    }

    fn break_with(&self, why: Broken) {
        let mut shared = lock(&self.shared);
        if shared.broken.is_none() {
            shared.broken = Some(why);
        }
        self.arrived.notify_all();
    }
}

/// The request id of a reply body: a v1 ResponsePacket has it at tag 3, a TUP reply
/// (RequestPacket-shaped) at tag 4; both start with the version at tag 1.
fn reply_id(body: &[u8]) -> Result<i32, PacketError> {
    let decode = |source| PacketError::Decode {
        what: "reply packet",
        source,
    };
    let mut r = TarsReader::new(body);
    let version: i16 = r.read_required(1).map_err(decode)?;
    let tag = if version == VERSION_TUP { 4 } else { 3 };
    r.read_required(tag).map_err(decode)
}
