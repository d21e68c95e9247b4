//! What an application registers: the swoole-style callbacks, and the contexts they get.
//!
//! | callback | runs in | swoole |
//! |---|---|---|
//! | [`Service::on_master_start`] | master, after listeners are bound | onStart |
//! | [`Service::on_manager_start`] | manager | onManagerStart |
//! | [`Service::on_worker_start`] / [`Service::on_worker_stop`] | each event worker | onWorkerStart / onWorkerStop |
//! | the handler given to [`Service::new`] | event worker, per HTTP request | onRequest |
//! | [`Service::on_task_start`] / [`Service::on_task`] | each task worker | onWorkerStart / onTask |
//! | [`Service::on_finish`] | the event worker that sent an async task | onFinish |

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::http::{Request, Response};
use crate::platform::props::{Policy, PropTable, Property};
use crate::scoreboard::Cell;
use crate::settings::Settings;
use crate::sys;
use crate::taskq::{self, Kind, Message, TaskError};

type HookFn = Box<dyn Fn(&Settings)>;
type StartFn<C> = Box<dyn Fn(&mut C) -> Result<(), String>>;
type RequestFn = Box<dyn Fn(&Request, &mut Ctx) -> Response>;
type TaskFn = Box<dyn Fn(&mut TaskCtx, &[u8]) -> Vec<u8>>;
type FinishFn = Box<dyn Fn(&mut Ctx, u64, &[u8])>;
/// Makes one worker's instance of a servant.
pub type ServantFactory = Box<dyn Fn() -> Box<dyn tarsfork_tars::proxy::Dispatch>>;
type StopFn = Box<dyn Fn(&mut Ctx)>;

/// A service: the callbacks tarsfork runs in each process role.
pub struct Service {
    pub(crate) on_master_start: Option<HookFn>,
    pub(crate) on_manager_start: Option<HookFn>,
    pub(crate) on_worker_start: Option<StartFn<Ctx>>,
    pub(crate) on_worker_stop: Option<StopFn>,
    pub(crate) on_request: RequestFn,
    pub(crate) on_task_start: Option<StartFn<TaskCtx>>,
    pub(crate) on_task: Option<TaskFn>,
    pub(crate) on_finish: Option<FinishFn>,
    /// Tars servants by object name (`HelloObj`), each made once per worker.
    pub(crate) servants: Vec<(String, ServantFactory)>,
    /// Files pulled from tarsconfig at start.
    pub(crate) config_files: Vec<String>,
}

impl Service {
    /// A service whose HTTP adapters answer with `on_request`.
    pub fn new(on_request: impl Fn(&Request, &mut Ctx) -> Response + 'static) -> Service {
        Service {
            on_master_start: None,
            on_manager_start: None,
            on_worker_start: None,
            on_worker_stop: None,
            on_request: Box::new(on_request),
            on_task_start: None,
            on_task: None,
            on_finish: None,
            servants: Vec::new(),
            config_files: Vec::new(),
        }
    }

    /// Runs in the master once listeners, pid file and shared memory exist.
    pub fn on_master_start(mut self, f: impl Fn(&Settings) + 'static) -> Self {
        self.on_master_start = Some(Box::new(f));
        self
    }

    /// Runs in the manager before it forks the workers.
    pub fn on_manager_start(mut self, f: impl Fn(&Settings) + 'static) -> Self {
        self.on_manager_start = Some(Box::new(f));
        self
    }

    /// Runs in every event worker before it accepts. An `Err` is a fatal boot error: the
    /// worker exits with [`crate::EXIT_BOOT_ERROR`] and the server stops with the message.
    pub fn on_worker_start(mut self, f: impl Fn(&mut Ctx) -> Result<(), String> + 'static) -> Self {
        self.on_worker_start = Some(Box::new(f));
        self
    }

    /// Runs in an event worker on its way out (after draining).
    pub fn on_worker_stop(mut self, f: impl Fn(&mut Ctx) + 'static) -> Self {
        self.on_worker_stop = Some(Box::new(f));
        self
    }

    /// Runs in every task worker before it takes tasks (register timers here).
    pub fn on_task_start(
        mut self,
        f: impl Fn(&mut TaskCtx) -> Result<(), String> + 'static,
    ) -> Self {
        self.on_task_start = Some(Box::new(f));
        self
    }

    /// Runs a task in a task worker; the returned bytes go back to the sender.
    pub fn on_task(mut self, f: impl Fn(&mut TaskCtx, &[u8]) -> Vec<u8> + 'static) -> Self {
        self.on_task = Some(Box::new(f));
        self
    }

    /// Registers a Tars servant by its object name (`HelloObj`), as TarsPHP's
    /// services.php does: the adapter whose `servant=` key ends in `.HelloObj` serves it
    /// under that full name (`TestApp.HelloServer.HelloObj`). `make` runs once in each
    /// event worker (wrap a generated `XxxServant` in its `XxxServer`).
    pub fn servant(
        mut self,
        object: &str,
        make: impl Fn() -> Box<dyn tarsfork_tars::proxy::Dispatch> + 'static,
    ) -> Self {
        self.servants.push((object.to_string(), Box::new(make)));
        self
    }

    /// Pulls `file` from tarsconfig (ConfigF.loadConfig) into the config directory when
    /// the server starts, before any worker does (TarsCpp's `addConfig`). A failed pull
    /// stops the start unless an earlier copy of the file is there.
    pub fn config_file(mut self, file: &str) -> Self {
        self.config_files.push(file.to_string());
        self
    }

    /// Receives, in the event worker that sent it, the result of a `task(data)`.
    pub fn on_finish(mut self, f: impl Fn(&mut Ctx, u64, &[u8]) + 'static) -> Self {
        self.on_finish = Some(Box::new(f));
        self
    }
}

/// A timer callback of a context `C`.
pub(crate) type TimerFn<C> = Box<dyn FnMut(&mut C)>;

/// Timers registered through `tick`, run by the process loop.
pub(crate) struct Timers<C> {
    entries: Vec<(Duration, i64, TimerFn<C>)>,
}

impl<C> Timers<C> {
    pub(crate) fn new() -> Self {
        Timers {
            entries: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, every: Duration, f: TimerFn<C>) {
        let every = every.max(Duration::from_millis(1));
        self.entries
            .push((every, sys::monotonic_ms() + every.as_millis() as i64, f));
    }

    /// Milliseconds until the next timer is due (None: no timers).
    pub(crate) fn next_due_in(&self, now: i64) -> Option<i64> {
        self.entries
            .iter()
            .map(|(_, at, _)| (at - now).max(0))
            .min()
    }

    /// Takes over the timers a callback registered on its context (`tick` queues them
    /// there, since a callback cannot reach the loop's timers while they run).
    pub(crate) fn adopt(&mut self, queued: &mut Vec<(Duration, TimerFn<C>)>) {
        for (every, f) in queued.drain(..) {
            self.add(every, f);
        }
    }

    /// Runs the due timers. Timers a callback adds wait in its context's queue until
    /// [`Timers::adopt`] takes them.
    pub(crate) fn run_due(&mut self, ctx: &mut C, now: i64) {
        for (every, at, f) in self.entries.iter_mut() {
            if *at <= now {
                f(ctx);
                let step = every.as_millis() as i64;
                // Skip missed periods instead of firing a burst after a stall.
                *at += step * ((now - *at) / step + 1);
            }
        }
    }
}

/// The event worker's context, handed to every callback that runs there.
pub struct Ctx {
    worker_id: u32,
    tasks: Option<TaskClient>,
    props: Option<PropTable>,
    pub(crate) new_timers: Vec<(Duration, TimerFn<Ctx>)>,
}

impl Ctx {
    pub(crate) fn new(worker_id: u32, tasks: Option<TaskClient>, props: Option<PropTable>) -> Ctx {
        Ctx {
            worker_id,
            tasks,
            props,
            new_timers: Vec::new(),
        }
    }

    /// Registers (or finds) application property `name` with its policies (Sum, Avg,
    /// Max, Min, Count, Distr); report values on the returned handle from any process:
    /// they are aggregated across processes in shared memory and sent to tarsproperty
    /// every `report-interval` by task worker 0.
    pub fn property(&self, name: &str, policies: &[Policy]) -> Result<Property, String> {
        property(self.props.as_ref(), name, policies)
    }

    /// This worker's id (0..worker_num-1, stable across respawns).
    pub fn worker_id(&self) -> u32 {
        self.worker_id
    }

    /// Sends `data` to a task worker; its result arrives in `on_finish` with the returned id.
    pub fn task(&mut self, data: &[u8]) -> Result<u64, TaskError> {
        self.tasks
            .as_mut()
            .ok_or(TaskError::NoTaskWorkers)?
            .send(data, Kind::Async)
    }

    /// Sends `data` to a task worker and waits up to `timeout` for its result.
    pub fn task_wait(&mut self, data: &[u8], timeout: Duration) -> Result<Vec<u8>, TaskError> {
        let client = self.tasks.as_mut().ok_or(TaskError::NoTaskWorkers)?;
        let id = client.send(data, Kind::Wait)?;
        client.wait_for(id, timeout)
    }

    /// Runs `f` every `every` in this worker (TarsPHP's timer server).
    pub fn tick(&mut self, every: Duration, f: impl FnMut(&mut Ctx) + 'static) {
        self.new_timers.push((every, Box::new(f)));
    }

    pub(crate) fn task_client(&mut self) -> Option<&mut TaskClient> {
        self.tasks.as_mut()
    }
}

/// The task worker's context.
pub struct TaskCtx {
    pub(crate) task_worker_id: u32,
    pub(crate) props: Option<PropTable>,
    pub(crate) new_timers: Vec<(Duration, TimerFn<TaskCtx>)>,
}

impl TaskCtx {
    /// This task worker's id (worker_num..worker_num+task_worker_num-1, as swoole numbers them).
    pub fn id(&self) -> u32 {
        self.task_worker_id
    }

    /// Runs `f` every `every` in this task worker.
    pub fn tick(&mut self, every: Duration, f: impl FnMut(&mut TaskCtx) + 'static) {
        self.new_timers.push((every, Box::new(f)));
    }

    /// Registers (or finds) application property `name`; see [`Ctx::property`].
    pub fn property(&self, name: &str, policies: &[Policy]) -> Result<Property, String> {
        property(self.props.as_ref(), name, policies)
    }
}

fn property(
    table: Option<&PropTable>,
    name: &str,
    policies: &[Policy],
) -> Result<Property, String> {
    let table = table.ok_or("no properties table in this process")?;
    Property::new(table, name, policies).map_err(|e| e.to_string())
}

/// An event worker's end of the task channel.
pub(crate) struct TaskClient {
    sock: UnixDatagram,
    token: u64,
    worker_id: u32,
    next_id: u64,
    buf: Vec<u8>,
    /// Async tasks the queue had no room for yet (sent when the socket is writable).
    pub(crate) outbox: VecDeque<Vec<u8>>,
    /// Results of async tasks, waiting for `on_finish`.
    pub(crate) finished: VecDeque<(u64, Vec<u8>)>,
    pending: Cell,
}

impl TaskClient {
    pub(crate) fn new(sock: UnixDatagram, token: u64, worker_id: u32, pending: Cell) -> TaskClient {
        TaskClient {
            sock,
            token,
            worker_id,
            next_id: 1,
            buf: Vec::with_capacity(256),
            outbox: VecDeque::new(),
            finished: VecDeque::new(),
            pending,
        }
    }

    pub(crate) fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    fn send(&mut self, data: &[u8], kind: Kind) -> Result<u64, TaskError> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = Message {
            task_id: id,
            kind,
            from_id: self.worker_id,
            data,
        };
        taskq::encode(&mut self.buf, self.token, &msg)?;
        if kind == Kind::Wait {
            // Wait for room in the queue: the caller blocks anyway.
            self.sock.set_nonblocking(false)?;
            let sent = self.sock.send(&self.buf);
            self.sock.set_nonblocking(true)?;
            sent?;
        } else if !self.outbox.is_empty() {
            self.outbox.push_back(self.buf.clone());
        } else {
            match self.sock.send(&self.buf) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.outbox.push_back(self.buf.clone())
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.pending.add(1);
        Ok(id)
    }

    /// Sends queued async tasks while the queue has room.
    pub(crate) fn flush_outbox(&mut self) {
        while let Some(front) = self.outbox.front() {
            match self.sock.send(front) {
                Ok(_) => {
                    self.outbox.pop_front();
                }
                Err(_) => break,
            }
        }
    }

    /// Reads every result waiting on the socket into `finished`.
    pub(crate) fn receive_ready(&mut self) {
        let mut rbuf = vec![0u8; taskq::MAX_PAYLOAD + 64];
        while let Ok(n) = self.sock.recv(&mut rbuf) {
            if let Some(m) = taskq::decode(&rbuf[..n], self.token) {
                if m.kind == Kind::Result {
                    self.pending.add(-1);
                    self.finished.push_back((m.task_id, m.data.to_vec()));
                }
            }
        }
    }

    fn wait_for(&mut self, id: u64, timeout: Duration) -> Result<Vec<u8>, TaskError> {
        let deadline = sys::monotonic_ms() + timeout.as_millis() as i64;
        let mut rbuf = vec![0u8; taskq::MAX_PAYLOAD + 64];
        loop {
            let left = deadline - sys::monotonic_ms();
            if left <= 0 {
                return Err(TaskError::Timeout(timeout.as_millis() as u64));
            }
            let ready = sys::poll_readable(&[self.fd()], Some(Duration::from_millis(left as u64)))?;
            if !ready[0] {
                continue;
            }
            while let Ok(n) = self.sock.recv(&mut rbuf) {
                let Some(m) = taskq::decode(&rbuf[..n], self.token) else {
                    continue;
                };
                if m.kind != Kind::Result {
                    continue;
                }
                self.pending.add(-1);
                if m.task_id == id {
                    return Ok(m.data.to_vec());
                }
                self.finished.push_back((m.task_id, m.data.to_vec()));
            }
        }
    }
}
