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
//! | [`Service::on_task_error`] | the event worker whose async task failed | (none) |

use std::collections::{HashSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use crate::http::{Request, Response};
use crate::platform::props::{Policy, PropTable, Property};
use crate::scoreboard::Cell;
use crate::settings::Settings;
use crate::sys;
use crate::taskq::{self, Kind, Message, ReplyChannel, TaskError};

type HookFn = Box<dyn Fn(&Settings)>;
type StartFn<C> = Box<dyn Fn(&mut C) -> Result<(), String>>;
type RequestFn = Box<dyn Fn(&Request, &mut Ctx) -> Response>;
type TaskFn = Box<dyn Fn(&mut TaskCtx, &[u8]) -> Vec<u8>>;
type FinishFn = Box<dyn Fn(&mut Ctx, u64, &[u8])>;
type TaskErrorFn = Box<dyn Fn(&mut Ctx, u64, &TaskError)>;
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
    pub(crate) on_task_error: Option<TaskErrorFn>,
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
            on_task_error: None,
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

    /// Receives, in the event worker that sent it, the failure of a `task(data)` that
    /// will never have a result: today [`TaskError::WorkerDied`] (the task worker
    /// running it died). Exactly one of `on_finish` and `on_task_error` runs for a task
    /// whose outcome is known. Without this callback the failure is logged.
    pub fn on_task_error(mut self, f: impl Fn(&mut Ctx, u64, &TaskError) + 'static) -> Self {
        self.on_task_error = Some(Box::new(f));
        self
    }
}

/// Hands every finished async task of this worker to `on_finish` (a result) or to
/// `on_task_error` (a failure), in the order they arrived.
pub(crate) fn dispatch_task_results(service: &Service, ctx: &mut Ctx) {
    while let Some((id, outcome)) = ctx.task_client().and_then(|tc| tc.finished.pop_front()) {
        match outcome {
            Ok(data) => {
                if let Some(f) = &service.on_finish {
                    f(ctx, id, &data);
                }
            }
            Err(e) => match &service.on_task_error {
                Some(f) => f(ctx, id, &e),
                None => crate::log::warn(&format!("task {id} failed: {e}")),
            },
        }
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

    /// Sends `data` to a task worker and waits up to `timeout` for its result. If the
    /// task worker running it dies, returns [`TaskError::WorkerDied`] at once.
    pub fn task_wait(&mut self, data: &[u8], timeout: Duration) -> Result<Vec<u8>, TaskError> {
        let client = self.tasks.as_mut().ok_or(TaskError::NoTaskWorkers)?;
        let deadline = sys::monotonic_ms() + timeout.as_millis() as i64;
        let id = client.send_wait(data, deadline, timeout)?;
        client.wait_for(id, deadline, timeout)
    }

    /// [`Ctx::task_wait`] for a task that may safely run twice: if the task worker
    /// running it dies, the task is queued once more (within the same `timeout`) instead
    /// of failing. A second death is returned as [`TaskError::WorkerDied`].
    pub fn task_wait_idempotent(
        &mut self,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, TaskError> {
        let started = sys::monotonic_ms();
        match self.task_wait(data, timeout) {
            Err(TaskError::WorkerDied { task_worker, how }) => {
                let left = timeout.as_millis() as i64 - (sys::monotonic_ms() - started);
                if left <= 0 {
                    return Err(TaskError::WorkerDied { task_worker, how });
                }
                crate::log::info(&format!(
                    "task worker {task_worker} died with {how} while running an idempotent task; queueing it once more"
                ));
                self.task_wait(data, Duration::from_millis(left as u64))
            }
            other => other,
        }
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

/// An event worker's end of the task channel: the queue's sending end (shared with
/// every event worker) and this worker's own reply channel.
pub(crate) struct TaskClient {
    /// The queue's sending end (a duplicate of the inherited one).
    submit: OwnedFd,
    reply: ReplyChannel,
    worker_id: u32,
    pid: i32,
    next_id: u64,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
    /// The worker's event loop: the queue's sending end is registered there for
    /// writability only while async tasks wait in the outbox (every event worker shares
    /// that socket, and each task taken would wake them all otherwise).
    registry: mio::Registry,
    token: mio::Token,
    /// Async tasks the queue had no room for yet (sent when the socket is writable).
    outbox: VecDeque<Vec<u8>>,
    /// Async tasks sent and not yet answered.
    waiting: HashSet<u64>,
    /// Outcomes of async tasks, waiting for `on_finish` / `on_task_error`.
    pub(crate) finished: VecDeque<(u64, Result<Vec<u8>, TaskError>)>,
    pending: Cell,
}

impl TaskClient {
    /// The task client of an event worker, when the server has task workers: takes the
    /// worker's reply channel (made by the manager) and registers it with the worker's
    /// event loop under `token` (readable: results arrive).
    pub(crate) fn for_worker(
        shared: &crate::process::Shared,
        reply: Option<ReplyChannel>,
        worker_id: u32,
        pending: Cell,
        registry: &mio::Registry,
        token: mio::Token,
    ) -> std::io::Result<Option<TaskClient>> {
        let submit = shared.task_queue.as_ref().and_then(|q| q.submit());
        let (Some(submit), Some(reply)) = (submit, reply) else {
            return Ok(None);
        };
        registry.register(
            &mut mio::unix::SourceFd(&reply.recv.as_raw_fd()),
            token,
            mio::Interest::READABLE,
        )?;
        Ok(Some(TaskClient {
            submit: submit.try_clone_to_owned()?,
            reply,
            worker_id,
            pid: sys::getpid(),
            next_id: 1,
            buf: Vec::with_capacity(256),
            rbuf: vec![0u8; taskq::MAX_PAYLOAD + 64],
            registry: registry.try_clone()?,
            token,
            outbox: VecDeque::new(),
            waiting: HashSet::new(),
            finished: VecDeque::new(),
            pending,
        }))
    }

    /// Encodes a new task into `self.buf` and returns its id.
    fn encode(&mut self, data: &[u8], kind: Kind) -> Result<u64, TaskError> {
        let id = self.next_id;
        let msg = Message {
            task_id: id,
            kind,
            from_id: self.worker_id,
            from_pid: self.pid,
            data,
        };
        taskq::encode(&mut self.buf, &msg)?;
        self.next_id += 1;
        Ok(id)
    }

    fn send_now(&self, task: &[u8]) -> std::io::Result<()> {
        taskq::send_task(self.submit.as_fd(), task, self.reply.send.as_fd())
    }

    /// Queues an async task: sent now, or kept in the outbox while the queue is full.
    fn send(&mut self, data: &[u8], kind: Kind) -> Result<u64, TaskError> {
        let id = self.encode(data, kind)?;
        if self.outbox.is_empty() {
            match self.send_now(&self.buf) {
                Ok(()) => {}
                Err(e) if taskq::is_full(&e) => self.park(self.buf.clone())?,
                Err(e) => return Err(e.into()),
            }
        } else {
            self.outbox.push_back(self.buf.clone());
        }
        self.waiting.insert(id);
        self.pending.add(1);
        Ok(id)
    }

    /// Keeps a task for later and asks the loop to say when the queue has room.
    fn park(&mut self, task: Vec<u8>) -> std::io::Result<()> {
        self.outbox.push_back(task);
        if self.outbox.len() == 1 {
            self.registry.register(
                &mut mio::unix::SourceFd(&self.submit.as_raw_fd()),
                self.token,
                mio::Interest::WRITABLE,
            )?;
        }
        Ok(())
    }

    /// Puts a `task_wait` task on the queue, waiting for room until `deadline`.
    fn send_wait(
        &mut self,
        data: &[u8],
        deadline: i64,
        timeout: Duration,
    ) -> Result<u64, TaskError> {
        let id = self.encode(data, Kind::Wait)?;
        loop {
            match self.send_now(&self.buf) {
                Ok(()) => break,
                Err(e) if taskq::is_full(&e) => {}
                Err(e) => return Err(e.into()),
            }
            let left = deadline - sys::monotonic_ms();
            if left <= 0 {
                return Err(TaskError::Timeout(timeout.as_millis() as u64));
            }
            // Too many descriptors in flight is not pollable: wait a little instead.
            let step = Duration::from_millis(left.min(5) as u64);
            if !sys::dgram::wait_writable(self.submit.as_fd(), step)? {
                continue;
            }
        }
        self.pending.add(1);
        Ok(id)
    }

    /// Sends queued async tasks while the queue has room.
    pub(crate) fn flush_outbox(&mut self) {
        while let Some(front) = self.outbox.front() {
            match self.send_now(front) {
                Ok(()) => {
                    self.outbox.pop_front();
                }
                Err(e) if taskq::is_full(&e) => return,
                Err(e) => {
                    crate::log::error(&format!("task queue: an async task was lost: {e}"));
                    self.outbox.pop_front();
                }
            }
        }
        let _ = self
            .registry
            .deregister(&mut mio::unix::SourceFd(&self.submit.as_raw_fd()));
    }

    /// Routes one reply that is not the one a `task_wait` waits for: an async task's
    /// outcome goes to `finished`; anything else (the late result of a `task_wait` that
    /// timed out) is dropped.
    fn route(&mut self, m: &Message<'_>) {
        if !self.waiting.remove(&m.task_id) {
            return;
        }
        self.pending.add(-1);
        let outcome = match m.kind {
            Kind::Result => Ok(m.data.to_vec()),
            _ => Err(died(m)),
        };
        self.finished.push_back((m.task_id, outcome));
    }

    /// Reads every reply waiting on the socket.
    pub(crate) fn receive_ready(&mut self) {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        while let Ok(n) = taskq::recv_reply(self.reply.recv.as_fd(), &mut rbuf) {
            if let Some(m) = taskq::decode(&rbuf[..n]).filter(is_reply) {
                self.route(&m);
            }
        }
        self.rbuf = rbuf;
    }

    /// Waits for the outcome of the `task_wait` task `id` until `deadline`.
    fn wait_for(
        &mut self,
        id: u64,
        deadline: i64,
        timeout: Duration,
    ) -> Result<Vec<u8>, TaskError> {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let outcome = loop {
            let left = deadline - sys::monotonic_ms();
            if left <= 0 {
                break Err(TaskError::Timeout(timeout.as_millis() as u64));
            }
            let ready = match sys::poll_readable(
                &[self.reply.recv.as_raw_fd()],
                Some(Duration::from_millis(left as u64)),
            ) {
                Ok(r) => r,
                Err(e) => break Err(e.into()),
            };
            if !ready[0] {
                continue;
            }
            let mut found = None;
            while let Ok(n) = taskq::recv_reply(self.reply.recv.as_fd(), &mut rbuf) {
                let Some(m) = taskq::decode(&rbuf[..n]).filter(is_reply) else {
                    continue;
                };
                if m.task_id == id {
                    found = Some(match m.kind {
                        Kind::Result => Ok(m.data.to_vec()),
                        _ => Err(died(&m)),
                    });
                    break;
                }
                self.route(&m);
            }
            if let Some(outcome) = found {
                break outcome;
            }
        };
        self.rbuf = rbuf;
        // Answered, failed or given up: it is no longer pending.
        self.pending.add(-1);
        outcome
    }
}

fn is_reply(m: &Message<'_>) -> bool {
    matches!(m.kind, Kind::Result | Kind::Failed)
}

/// The error a failure notice stands for.
fn died(m: &Message<'_>) -> TaskError {
    TaskError::WorkerDied {
        task_worker: m.from_id,
        how: String::from_utf8_lossy(m.data).into_owned(),
    }
}
