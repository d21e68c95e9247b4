//! The event worker: a mio loop that accepts on the listeners inherited from the master,
//! serves HTTP/1.1 connections, and drains gracefully.
//!
//! Draining (TERM from the manager, a rolling reload, `max_request`): stop accepting,
//! finish every request already received, answer the next request on each keep-alive
//! connection with `Connection: close`, close connections only where no request can race
//! the close (after such an answer, or after a long idle), and leave when none is left or
//! `max_wait_time` has passed. A request in flight is never dropped by a reload.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use tarsfork_tars::frame::FrameSplitter;
use tarsfork_tars::packet::{
    RequestPacket, ResponsePacket, TupData, TARSSERVERNOSERVANTERR, VERSION_TARS,
};
use tarsfork_tars::proxy::{Dispatch, Reply};

use crate::http::{HttpDate, ParseStatus, Request, RequestParser, Response};
use crate::platform::callstats::Served;
use crate::process::{ChildBoot, Shared, Started};
use crate::scoreboard::{ProcHandle, ProcState};
use crate::service::{Ctx, Service, TaskClient, Timers};
use crate::settings::Protocol;
use crate::signals::{self, Action};
use crate::{log, sys, EXIT_BOOT_ERROR};

const WAKE: Token = Token(0);
const MASTER_GONE: Token = Token(1);
const TASK_REPLY: Token = Token(2);
const LISTENER_BASE: usize = 16;
const CONN_BASE: usize = 1 << 20;

/// How long a connection may sit idle, while draining, before we close it: a client that
/// sends continuously is never idle this long, so no request races the close.
const DRAIN_IDLE_CLOSE_MS: i64 = 1000;
/// How long a lingering close waits for the peer's FIN.
const LINGER_MS: i64 = 2000;
/// How often idle and linger deadlines are checked.
const SWEEP_EVERY_MS: i64 = 50;
/// Read chunk size.
const READ_CHUNK: usize = 16 * 1024;
/// Output buffered past this stops reading from the client (backpressure).
const MAX_OUTPUT: usize = 1 << 20;

/// Where the worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting and serving.
    Serving,
    /// Not accepting; finishing connections until the deadline (monotonic ms).
    Draining { deadline: i64 },
}

/// What a connection speaks.
enum Wire {
    /// HTTP/1.1 requests.
    Http(RequestParser),
    /// Length-prefixed Tars RPC frames.
    Tars(FrameSplitter),
}

/// Largest Tars frame accepted; a longer one closes the connection.
const MAX_TARS_FRAME: usize = tarsfork_tars::frame::DEFAULT_MAX_FRAME;

struct Conn {
    stream: TcpStream,
    token: Token,
    /// The client's IP, for statistics.
    peer: String,
    adapter: usize,
    wire: Wire,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    out_pos: usize,
    last_active: i64,
    close_after_write: bool,
    /// Write side shut down; reading and discarding until EOF or this deadline.
    lingering_until: Option<i64>,
    want_write: bool,
    read_paused: bool,
}

struct Adapter {
    idle_ms: i64,
    /// The listening port (statistics tell adapters apart by it).
    port: i32,
    settings: crate::settings::AdapterSettings,
    /// Open connections of the adapter, all workers together.
    conns: crate::scoreboard::Cell,
    /// This worker's share of them.
    mine: crate::scoreboard::Cell,
}

struct Worker<'a> {
    shared: &'a Shared,
    service: &'a Service,
    poll: Poll,
    listeners: Vec<(TcpListener, usize)>,
    adapters: Vec<Adapter>,
    /// Boxed, so taking a connection out for an event moves a pointer, not the state.
    conns: Vec<Option<Box<Conn>>>,
    free: Vec<usize>,
    live: usize,
    phase: Phase,
    handle: ProcHandle,
    ctx: Ctx,
    timers: Timers<Ctx>,
    served: u64,
    max_request: u64,
    date: HttpDate,
    /// One read buffer for every connection (reads land here, only the bytes read are
    /// copied into the connection's own buffer).
    scratch: Vec<u8>,
    /// When the connections were last swept for timeouts.
    last_sweep: i64,
    /// The monotonic clock (ms), read when `poll` returns and after each request: the
    /// time of connection events and of the next request's start, without a clock read
    /// of their own.
    now: i64,
    /// This worker's servants by full name (`App.Server.Obj`).
    servants: Vec<(String, Box<dyn Dispatch>)>,
    /// Server-side call statistics (when `<client> stat` is configured).
    stats: Option<Served<'a>>,
    /// The Tars request being served, reused from one request to the next.
    request: RequestPacket,
}

/// An event worker's loop (its pool's entry point): serves until it has drained and
/// returns its exit code.
pub(crate) fn serve(
    shared: &Shared,
    service: &Service,
    boot: &ChildBoot,
    started: Started,
) -> io::Result<i32> {
    let Started {
        wake,
        handle,
        task_reply,
    } = started;
    let poll = Poll::new()?;
    let registry = poll.registry();
    registry.register(&mut SourceFd(&wake.fd()), WAKE, Interest::READABLE)?;
    let master_fd = shared.master_alive_fd();
    registry.register(&mut SourceFd(&master_fd), MASTER_GONE, Interest::READABLE)?;

    let tasks = TaskClient::for_worker(
        shared,
        task_reply,
        boot.id,
        handle.pending.clone(),
        registry,
        TASK_REPLY,
    )?;

    let mut listeners = Vec::new();
    let mut adapters = Vec::new();
    for (i, l) in shared.listeners.iter().enumerate() {
        let a = &shared.settings.adapters[l.adapter];
        let (conns, mine) = shared
            .scoreboard
            .adapter_conns(&a.name)
            .map_err(|e| io::Error::other(e.to_string()))?;
        adapters.push(Adapter {
            port: i32::from(a.endpoint.port),
            conns,
            mine,
            idle_ms: a.idle_timeout().as_millis() as i64,
            settings: a.clone(),
        });
        let std_listener = l.listener.try_clone()?;
        std_listener.set_nonblocking(true)?;
        let mut ml = TcpListener::from_std(std_listener);
        registry.register(&mut ml, Token(LISTENER_BASE + i), Interest::READABLE)?;
        listeners.push((ml, i));
    }

    let max_request = if shared.settings.max_request > 0 {
        let grace = shared.settings.max_request_grace;
        let jitter = if grace > 0 { rand_below(grace + 1) } else { 0 };
        shared.settings.max_request + jitter
    } else {
        0
    };
    let mut w = Worker {
        shared,
        service,
        poll,
        listeners,
        adapters,
        conns: Vec::new(),
        free: Vec::new(),
        live: 0,
        phase: Phase::Serving,
        handle,
        ctx: Ctx::new(boot.id, tasks, shared.props.clone()),
        timers: Timers::new(),
        served: 0,
        max_request,
        date: HttpDate::new(std::time::SystemTime::now()),
        scratch: vec![0u8; READ_CHUNK],
        last_sweep: 0,
        now: sys::monotonic_ms(),
        servants: make_servants(shared, service),
        stats: Served::new(shared),
        request: RequestPacket::default(),
    };
    crate::platform::callstats::observe_client_calls(shared);

    if let Some(start) = &service.on_worker_start {
        if let Err(msg) = start(&mut w.ctx) {
            log::error(&format!(
                "on_worker_start failed in event worker {}: {msg}",
                boot.id
            ));
            return Ok(EXIT_BOOT_ERROR);
        }
    }
    w.adopt_timers();
    w.handle.set_state(ProcState::Idle);
    w.handle.heartbeat();
    let code = w.event_loop(&wake)?;
    if let Some(stop) = &service.on_worker_stop {
        stop(&mut w.ctx);
    }
    Ok(code)
}

impl Worker<'_> {
    fn adopt_timers(&mut self) {
        self.timers.adopt(&mut self.ctx.new_timers);
    }

    fn event_loop(&mut self, wake: &signals::Wakeup) -> io::Result<i32> {
        let mut events = Events::with_capacity(512);
        let mut now = sys::monotonic_ms();
        loop {
            let mut timeout = 500i64;
            if let Some(t) = self.timers.next_due_in(now) {
                timeout = timeout.min(t);
            }
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(timeout as u64)))
            {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.now = sys::monotonic_ms();
            self.handle.heartbeat_at(self.now);
            self.date.update(std::time::SystemTime::now());
            for ev in events.iter() {
                match ev.token() {
                    WAKE => wake.drain(),
                    MASTER_GONE => {
                        // The master is gone (its end of the life pipe closed): nobody
                        // owns the listeners any more, so leave at once.
                        log::warn("master process is gone; event worker exiting");
                        return Ok(0);
                    }
                    TASK_REPLY => self.on_task_socket(),
                    Token(t) if (LISTENER_BASE..CONN_BASE).contains(&t) => {
                        self.accept(t - LISTENER_BASE);
                    }
                    Token(t) => {
                        self.on_conn_event(t - CONN_BASE, ev.is_readable(), ev.is_writable())
                    }
                }
            }
            for action in signals::take_if_any() {
                match action {
                    Action::Stop => self.begin_drain("stop requested"),
                    Action::FastStop => return Ok(0),
                    Action::ReopenLogs => log::reopen(),
                    _ => {}
                }
            }
            // The manager may have died (we got TERM from PDEATHSIG): drain like a stop.
            now = sys::monotonic_ms();
            self.timers.run_due(&mut self.ctx, now);
            self.adopt_timers();
            self.dispatch_finished();
            if now - self.last_sweep >= SWEEP_EVERY_MS {
                self.last_sweep = now;
                self.sweep(now);
            }
            if let Phase::Draining { deadline } = self.phase {
                if self.live == 0 {
                    return Ok(0);
                }
                if now >= deadline {
                    log::warn(&format!(
                        "max_wait_time reached with {} connection(s) open; closing them",
                        self.live
                    ));
                    return Ok(0);
                }
            }
        }
    }

    fn begin_drain(&mut self, why: &str) {
        if self.phase != Phase::Serving {
            return;
        }
        log::info(&format!(
            "draining ({why}), {} connection(s) open",
            self.live
        ));
        let deadline = sys::monotonic_ms() + self.shared.settings.max_wait_time.as_millis() as i64;
        self.phase = Phase::Draining { deadline };
        self.handle.set_state(ProcState::Draining);
        for (l, _) in self.listeners.iter_mut() {
            let _ = self.poll.registry().deregister(l);
        }
        self.listeners.clear();
        // Connections parked between requests get their `Connection: close` on the next
        // request; those idle already long enough are closed by `sweep`.
    }

    fn on_task_socket(&mut self) {
        if let Some(tc) = self.ctx.task_client() {
            tc.flush_outbox();
            tc.receive_ready();
        }
        self.dispatch_finished();
    }

    fn dispatch_finished(&mut self) {
        crate::service::dispatch_task_results(self.service, &mut self.ctx);
    }

    fn accept(&mut self, listener_index: usize) {
        loop {
            if self.phase != Phase::Serving {
                return;
            }
            let Some(pos) = self
                .listeners
                .iter()
                .position(|(_, i)| *i == listener_index)
            else {
                return;
            };
            let (stream, peer) = match self.listeners[pos].0.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and let the next readiness retry.
                    log::error(&format!("accept failed: {e}"));
                    return;
                }
            };
            let a = &self.adapters[listener_index];
            if !a.settings.allows(peer.ip()) {
                continue;
            }
            let open = a.conns.add(1);
            if a.settings.maxconns > 0 && open as usize > a.settings.maxconns {
                a.conns.add(-1);
                continue;
            }
            a.mine.add(1);
            let _ = stream.set_nodelay(true);
            let idx = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let wire = match self.shared.listeners[listener_index].protocol {
                Protocol::Tars => Wire::Tars(FrameSplitter::new(MAX_TARS_FRAME)),
                Protocol::NotTars => Wire::Http(RequestParser::new(self.shared.http_limits)),
            };
            let mut conn = Box::new(Conn {
                stream,
                token: Token(CONN_BASE + idx),
                peer: peer.ip().to_string(),
                adapter: listener_index,
                wire,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                out_pos: 0,
                last_active: sys::monotonic_ms(),
                close_after_write: false,
                lingering_until: None,
                want_write: false,
                read_paused: false,
            });
            if self
                .poll
                .registry()
                .register(&mut conn.stream, Token(CONN_BASE + idx), Interest::READABLE)
                .is_err()
            {
                a.conns.add(-1);
                a.mine.add(-1);
                self.free.push(idx);
                continue;
            }
            self.conns[idx] = Some(conn);
            self.live += 1;
            // Edge-triggered: the request may already be there.
            self.on_conn_event(idx, true, false);
        }
    }

    fn on_conn_event(&mut self, idx: usize, readable: bool, writable: bool) {
        let Some(Some(mut conn)) = self.conns.get_mut(idx).map(Option::take) else {
            return;
        };
        let keep = self.drive(&mut conn, readable, writable);
        if keep {
            self.conns[idx] = Some(conn);
        } else {
            self.close(idx, conn);
        }
    }

    fn close(&mut self, idx: usize, mut conn: Box<Conn>) {
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let a = &self.adapters[conn.adapter];
        a.conns.add(-1);
        a.mine.add(-1);
        drop(conn);
        self.free.push(idx);
        self.live -= 1;
    }

    /// Reads, serves and writes as far as the socket allows. `false`: close it now.
    fn drive(&mut self, conn: &mut Conn, readable: bool, writable: bool) -> bool {
        if let Some(until) = conn.lingering_until {
            // Discard what the client still sends until its FIN, so our close never
            // turns into a reset that could destroy the answer in flight.
            let mut sink = [0u8; 4096];
            loop {
                match conn.stream.read(&mut sink) {
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
        if writable || conn.want_write {
            match self.flush(conn) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(_) => return false,
            }
            if conn.close_after_write {
                return self.start_linger(conn);
            }
        }
        if readable || conn.read_paused {
            conn.read_paused = false;
            let mut eof = false;
            let mut scratch = std::mem::take(&mut self.scratch);
            loop {
                if conn.outbuf.len() > MAX_OUTPUT {
                    conn.read_paused = true;
                    break;
                }
                match conn.stream.read(&mut scratch) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        let go_on = match &mut conn.wire {
                            Wire::Http(_) => {
                                conn.inbuf.extend_from_slice(&scratch[..n]);
                                self.serve_buffered(conn)
                            }
                            Wire::Tars(splitter) => {
                                splitter.feed(&scratch[..n]);
                                self.serve_frames(conn)
                            }
                        };
                        // A short read drained the socket: the next arrival is a new
                        // edge, so skip the read that would only say EWOULDBLOCK.
                        if n < scratch.len() || !go_on {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.scratch = scratch;
                        return false;
                    }
                }
            }
            self.scratch = scratch;
            conn.last_active = self.now;
            if eof && conn.outbuf.len() == conn.out_pos {
                // The client closed; anything half-received can never be answered.
                return false;
            }
            if eof {
                conn.close_after_write = true;
            }
        }
        match self.flush(conn) {
            Ok(true) => {
                if conn.close_after_write {
                    return self.start_linger(conn);
                }
                true
            }
            Ok(false) => true,
            Err(_) => false,
        }
    }

    /// Answers every complete Tars frame buffered. `false`: stop reading (the
    /// connection is closing or output is backed up). A bad frame or packet closes
    /// this connection only, after the answers already written.
    fn serve_frames(&mut self, conn: &mut Conn) -> bool {
        // One packet for every request of this worker: its strings and buffer keep
        // their allocations from one request to the next.
        let mut request = std::mem::take(&mut self.request);
        let keep_reading = self.serve_frames_with(conn, &mut request);
        self.request = request;
        keep_reading
    }

    fn serve_frames_with(&mut self, conn: &mut Conn, request: &mut RequestPacket) -> bool {
        let Wire::Tars(splitter) = &mut conn.wire else {
            return false;
        };
        while !conn.close_after_write {
            match splitter.next_frame() {
                Ok(Some(frame)) => match request.decode_reusing(frame) {
                    Ok(()) => {}
                    Err(e) => {
                        log::debug(&format!(
                            "closing a Tars connection: bad request packet: {e}"
                        ));
                        conn.close_after_write = true;
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    log::debug(&format!("closing a Tars connection: {e}"));
                    conn.close_after_write = true;
                    break;
                }
            };
            let started = self.now;
            self.handle.begin_request(started);
            // A handful of servants: comparing bytes beats hashing every name.
            let servant = self
                .servants
                .iter_mut()
                .find(|(name, _)| name.as_bytes() == request.servant_name.as_bytes());
            let reply = match servant {
                Some((_, servant)) => servant.dispatch(request),
                None => no_such_servant(request),
            };
            self.handle.end_request();
            // The end of this request is the start of the next one in this turn.
            self.now = sys::monotonic_ms();
            if let Some(st) = &self.stats {
                let ms = self.now - started;
                let ret = reply.ret().unwrap_or(0);
                let port = self.adapters[conn.adapter].port;
                st.tars(
                    request.version,
                    request.is_oneway(),
                    &request.func_name,
                    &conn.peer,
                    port,
                    ret,
                    ms,
                );
            }
            self.served += 1;
            if let Err(e) = reply.append_frame(&mut conn.outbuf) {
                log::error(&format!(
                    "cannot encode the reply to {}.{}: {e}",
                    request.servant_name, request.func_name
                ));
            }
            if self.max_request > 0
                && self.served >= self.max_request
                && self.phase == Phase::Serving
            {
                self.begin_drain("max_request reached");
            }
            if conn.outbuf.len() > MAX_OUTPUT {
                return false;
            }
        }
        !conn.close_after_write
    }

    /// Parses and answers every complete request in `inbuf`. `false`: stop reading
    /// (the connection is closing or output is backed up).
    fn serve_buffered(&mut self, conn: &mut Conn) -> bool {
        let Wire::Http(parser) = &mut conn.wire else {
            return false;
        };
        let mut start = 0;
        let mut go_on = true;
        while start < conn.inbuf.len() && !conn.close_after_write {
            match parser.parse(&conn.inbuf[start..]) {
                Ok(ParseStatus::Complete { request, consumed }) => {
                    start += consumed;
                    let keep = self.answer(&request, &mut conn.outbuf, &conn.peer, conn.adapter);
                    if !keep {
                        conn.close_after_write = true;
                    }
                    parser.recycle(request);
                    if conn.outbuf.len() > MAX_OUTPUT {
                        go_on = false;
                        break;
                    }
                }
                Ok(ParseStatus::Partial { consumed }) => {
                    start += consumed;
                    if parser.write_continue(&mut conn.outbuf) {
                        conn.want_write = true;
                    }
                    break;
                }
                Err(err) => {
                    // A malformed request closes this connection only.
                    let meta = crate::http::ResponseMeta {
                        version: 1,
                        keep_alive: false,
                        head: false,
                        date: Some(self.date.as_str()),
                    };
                    err.response().write_to(&mut conn.outbuf, meta);
                    conn.close_after_write = true;
                    go_on = false;
                    break;
                }
            }
        }
        conn.inbuf.drain(..start);
        go_on && !conn.close_after_write
    }

    /// Answers one HTTP request into `out`; false when the connection must close after it.
    fn answer(&mut self, request: &Request, out: &mut Vec<u8>, peer: &str, adapter: usize) -> bool {
        let started = self.now;
        self.handle.begin_request(started);
        let response: Response = (self.service.on_request)(request, &mut self.ctx);
        self.adopt_timers();
        self.handle.end_request();
        // The end of this request is the start of the next one in this turn.
        self.now = sys::monotonic_ms();
        if let Some(st) = &self.stats {
            let ms = self.now - started;
            st.http(
                request.path(),
                peer,
                self.adapters[adapter].port,
                response.status(),
                ms,
            );
        }
        self.served += 1;
        let draining = self.phase != Phase::Serving
            || (self.max_request > 0 && self.served >= self.max_request);
        let mut meta = request.response_meta();
        meta.keep_alive = request.keep_alive() && !draining;
        meta.date = Some(self.date.as_str());
        let keep_alive = response.write_to(out, meta);
        if self.max_request > 0 && self.served >= self.max_request && self.phase == Phase::Serving {
            self.begin_drain("max_request reached");
        }
        keep_alive
    }

    /// Writes pending output. `Ok(true)`: all written.
    fn flush(&mut self, conn: &mut Conn) -> io::Result<bool> {
        while conn.out_pos < conn.outbuf.len() {
            match conn.stream.write(&conn.outbuf[conn.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !conn.want_write {
                        conn.want_write = true;
                        let token = conn.token;
                        self.poll.registry().reregister(
                            &mut conn.stream,
                            token,
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
                    }
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        conn.outbuf.clear();
        conn.out_pos = 0;
        if conn.want_write {
            conn.want_write = false;
            let token = conn.token;
            self.poll
                .registry()
                .reregister(&mut conn.stream, token, Interest::READABLE)?;
        }
        Ok(true)
    }

    fn start_linger(&mut self, conn: &mut Conn) -> bool {
        if sys::shutdown_write(conn.stream.as_raw_fd()).is_err() {
            return false;
        }
        conn.lingering_until = Some(sys::monotonic_ms() + LINGER_MS);
        true
    }

    /// Idle timeouts, drain closes and linger deadlines, once per loop turn.
    fn sweep(&mut self, now: i64) {
        let draining = self.phase != Phase::Serving;
        for idx in 0..self.conns.len() {
            let close = match &self.conns[idx] {
                None => false,
                Some(c) => {
                    let idle_for = now - c.last_active;
                    let between = match &c.wire {
                        Wire::Http(p) => p.is_between_requests() && c.inbuf.is_empty(),
                        Wire::Tars(s) => !s.has_partial(),
                    } && c.out_pos == c.outbuf.len();
                    match c.lingering_until {
                        Some(until) => now >= until,
                        None => {
                            let idle_limit = self.adapters[c.adapter].idle_ms;
                            (idle_limit > 0 && idle_for >= idle_limit)
                                || (draining && between && idle_for >= DRAIN_IDLE_CLOSE_MS)
                        }
                    }
                }
            };
            if close {
                if let Some(conn) = self.conns[idx].take() {
                    self.close(idx, conn);
                }
            }
        }
    }
}

/// Each Tars adapter's servant, made for this worker from the service's factories.
fn make_servants(shared: &Shared, service: &Service) -> Vec<(String, Box<dyn Dispatch>)> {
    let mut out: Vec<(String, Box<dyn Dispatch>)> = Vec::new();
    for a in shared
        .settings
        .adapters
        .iter()
        .filter(|a| a.protocol == Protocol::Tars)
    {
        let object = a.servant.rsplit('.').next().unwrap_or(&a.servant);
        match service.servants.iter().find(|(name, _)| name == object) {
            Some((_, make)) => {
                if !out.iter().any(|(name, _)| *name == a.servant) {
                    out.push((a.servant.clone(), make()));
                }
            }
            None => log::warn(&format!(
                "no servant registered for object {object} (adapter {}); its calls get {TARSSERVERNOSERVANTERR}",
                a.name
            )),
        }
    }
    out
}

/// The reply to a call for a servant this server does not have (iRet -4).
fn no_such_servant(request: &RequestPacket) -> Reply {
    if request.is_oneway() {
        return Reply::None;
    }
    let desc = format!("no servant {:?} here", request.servant_name);
    if request.version == VERSION_TARS {
        let mut r = ResponsePacket::reply_to(request, TARSSERVERNOSERVANTERR, Vec::new());
        r.result_desc = Some(desc);
        Reply::Tars(r)
    } else {
        Reply::Tup(request.tup_reply(TARSSERVERNOSERVANTERR, &desc, &TupData::new()))
    }
}

/// A small random number for the `max_request_grace` jitter (no RNG crate needed).
fn rand_below(n: u64) -> u64 {
    let seed = (sys::getpid() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (sys::wall_ms() as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut x = seed;
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    x % n.max(1)
}
