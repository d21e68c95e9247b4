//! The event worker: a mio loop that accepts on the listeners inherited from the master
//! and serves each connection with the protocol of its adapter (HTTP/1.1 or Tars RPC,
//! see [`protocol`]), and drains gracefully.
//!
//! The loop never names a protocol: it owns the listeners, the connection table
//! ([`conn`]), the sweep of idle and lingering connections, and the drain; a
//! connection's bytes go to its [`protocol::Protocol`], made by the opener registered
//! for its adapter's `protocol=` in `protocol::opener`.
//!
//! Draining (TERM from the manager, a rolling reload, `max_request`): stop accepting,
//! finish every request already received, let each protocol wind its connections down
//! (HTTP answers the next request on each keep-alive connection with `Connection:
//! close`; Tars answers what it was sent), close connections only where no request can
//! race the close (after such an answer, or after a long idle between requests), and
//! leave when none is left or `max_wait_time` has passed. A request in flight is never
//! dropped by a reload.

mod conn;
mod http;
mod protocol;
mod requests;
mod tars;
#[cfg(test)]
mod tests;

use std::io;
use std::time::{Duration, SystemTime};

use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::platform::callstats::Served;
use crate::process::{ChildBoot, Shared, Started};
use crate::scoreboard::{ProcHandle, ProcState};
use crate::service::{Ctx, Service, TaskClient, Timers};
use crate::signals::{self, Action};
use crate::{log, sys, EXIT_BOOT_ERROR};

use conn::{Conn, Origin};
use protocol::{App, Opener, Openers};
use requests::Requests;

const WAKE: Token = Token(0);
const MASTER_GONE: Token = Token(1);
const TASK_REPLY: Token = Token(2);
const LISTENER_BASE: usize = 16;
const CONN_BASE: usize = 1 << 20;

/// How often idle, linger and protocol deadlines are checked.
const SWEEP_EVERY_MS: i64 = 50;
/// Read chunk size.
const READ_CHUNK: usize = 16 * 1024;

/// Where the worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting and serving.
    Serving,
    /// Not accepting; finishing connections until the deadline (monotonic ms).
    Draining { deadline: i64 },
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
    /// Makes the protocol object of each connection accepted here.
    open: Opener,
}

struct Worker<'a> {
    shared: &'a Shared,
    poll: Poll,
    listeners: Vec<(TcpListener, usize)>,
    adapters: Vec<Adapter>,
    /// Boxed, so taking a connection out for an event moves a pointer, not the state.
    conns: Vec<Option<Box<Conn>>>,
    free: Vec<usize>,
    live: usize,
    phase: Phase,
    handle: ProcHandle,
    /// What protocols are lent while they serve: the service, its context, the request
    /// accounting and the clock.
    app: App<'a>,
    timers: Timers<Ctx>,
    /// One read buffer for every connection (reads land here, only the bytes read are
    /// copied into the connection's protocol).
    scratch: Vec<u8>,
    /// When the connections were last swept for timeouts.
    last_sweep: i64,
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
    let mut openers = Openers::new(shared, service);
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
            open: openers.get(l.protocol),
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
        poll,
        listeners,
        adapters,
        conns: Vec::new(),
        free: Vec::new(),
        live: 0,
        phase: Phase::Serving,
        app: App {
            service,
            ctx: Ctx::new(boot.id, tasks, shared.props.clone()),
            requests: Requests::new(handle.clone(), Served::new(shared), max_request),
            wall: SystemTime::now(),
        },
        handle,
        timers: Timers::new(),
        scratch: vec![0u8; READ_CHUNK],
        last_sweep: 0,
    };
    crate::platform::callstats::observe_client_calls(shared);

    if let Some(start) = &service.on_worker_start {
        if let Err(msg) = start(&mut w.app.ctx) {
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
        stop(&mut w.app.ctx);
    }
    Ok(code)
}

impl Worker<'_> {
    fn adopt_timers(&mut self) {
        self.timers.adopt(&mut self.app.ctx.new_timers);
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
            let turn = self.app.requests.tick();
            self.handle.heartbeat_at(turn);
            self.app.wall = SystemTime::now();
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
            self.timers.run_due(&mut self.app.ctx, now);
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
        self.app.requests.set_draining();
        for (l, _) in self.listeners.iter_mut() {
            let _ = self.poll.registry().deregister(l);
        }
        self.listeners.clear();
        // Each protocol winds its connections down its own way; those idle between
        // requests long enough are closed by `sweep`.
        for idx in 0..self.conns.len() {
            let keep = match self.conns[idx].as_mut() {
                None => continue,
                Some(conn) => conn.call(self.poll.registry(), &mut self.app, |p, out, host| {
                    p.on_drain(out, host);
                    None
                }),
            };
            if !keep {
                self.close(idx);
            }
        }
    }

    fn on_task_socket(&mut self) {
        if let Some(tc) = self.app.ctx.task_client() {
            tc.flush_outbox();
            tc.receive_ready();
        }
        self.dispatch_finished();
    }

    fn dispatch_finished(&mut self) {
        crate::service::dispatch_task_results(self.app.service, &mut self.app.ctx);
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
            let from = Origin {
                peer: peer.ip().to_string(),
                adapter: listener_index,
                port: a.port,
            };
            let token = Token(CONN_BASE + idx);
            let mut conn = Conn::new(stream, token, from, (a.open)(), sys::monotonic_ms());
            if conn.register(self.poll.registry()).is_err() {
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
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let keep = conn.drive(
            readable,
            writable,
            &mut self.scratch,
            self.poll.registry(),
            &mut self.app,
        );
        if !keep {
            self.close(idx);
        }
        // Timers the application added while serving join the others.
        self.adopt_timers();
        // Once the connection is back in the table, so its protocol hears of the drain.
        if self.app.requests.max_reached() {
            self.begin_drain("max_request reached");
        }
    }

    /// Closes the connection at `idx`, if there is one.
    fn close(&mut self, idx: usize) {
        let Some(mut conn) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        conn.deregister(self.poll.registry());
        let a = &self.adapters[conn.adapter];
        a.conns.add(-1);
        a.mine.add(-1);
        drop(conn);
        self.free.push(idx);
        self.live -= 1;
    }

    /// Idle timeouts, drain closes, linger and protocol deadlines.
    fn sweep(&mut self, now: i64) {
        let draining = self.phase != Phase::Serving;
        for idx in 0..self.conns.len() {
            let keep = match self.conns[idx].as_mut() {
                None => continue,
                Some(conn) => {
                    let idle_limit = self.adapters[conn.adapter].idle_ms;
                    conn.sweep(
                        now,
                        idle_limit,
                        draining,
                        self.poll.registry(),
                        &mut self.app,
                    )
                }
            };
            if !keep {
                self.close(idx);
            }
        }
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
