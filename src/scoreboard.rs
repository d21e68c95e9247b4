//! The process scoreboard: one row per live process (and per id waiting in crash-loop
//! backoff) in a shared-memory table of the `tarsfork-shm` crate.
//!
//! The manager reads it to judge liveness and readiness, `tarsfork status` reads it from
//! outside without signalling anyone, and `tarsfork table dump scoreboard` shows it raw.
//! A process writes only its own row; the hot-path writes (heartbeat, request start,
//! counters) are single atomic stores on cells resolved once at start, never a lock.

use tarsfork_shm::{Column, IntCell, Schema, Table, Value};

use crate::error::Error;
use crate::rundir::RunDir;
use crate::sys::{self, ident::ProcessId};

/// The file name of the scoreboard table inside the server's shared-memory directory.
pub const TABLE_NAME: &str = "scoreboard";
/// The file name of the per-adapter counters table.
pub const ADAPTERS_TABLE: &str = "adapters";
/// The file name of the framework's own state (heartbeat schedule, flags).
pub const PLATFORM_TABLE: &str = "platform";

/// The role a process plays, as its scoreboard row records it. The number is the
/// row's encoding (a `status` of another build reads it); what a role is — its title,
/// its words, its signals, how it is supervised — is its description in `pool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Binds, supervises the manager.
    Master = 0,
    /// Forks and watches the pools.
    Manager = 1,
    /// Serves requests.
    EventWorker = 2,
    /// Runs tasks.
    TaskWorker = 3,
}

impl Role {
    /// Every role, for decoding.
    pub const ALL: [Role; 4] = [
        Role::Master,
        Role::Manager,
        Role::EventWorker,
        Role::TaskWorker,
    ];

    /// The number stored in the row.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The role a stored number names; None for a number no role has (a row written by
    /// another build, or garbage), which must never be taken for some other role.
    pub fn from_code(v: i64) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == v)
    }
}

/// What a process is doing, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    /// Forked, running its start callback.
    Starting = 0,
    /// Waiting for work.
    Idle = 1,
    /// Inside a request or task.
    Busy = 2,
    /// Finishing its connections before it exits.
    Draining = 3,
    /// Not running: waiting out a crash-loop backoff before its respawn.
    Backoff = 4,
}

impl ProcState {
    /// The word `status` prints.
    pub fn name(self) -> &'static str {
        match self {
            ProcState::Starting => "starting",
            ProcState::Idle => "idle",
            ProcState::Busy => "busy",
            ProcState::Draining => "draining",
            ProcState::Backoff => "backoff",
        }
    }

    /// Whether a process in this state has been ready: it reported idle once (busy and
    /// draining come only after that). The respawn policy asks it of a dead process.
    pub fn has_been_ready(self) -> bool {
        matches!(
            self,
            ProcState::Idle | ProcState::Busy | ProcState::Draining
        )
    }

    fn from_i64(v: i64) -> ProcState {
        match v {
            0 => ProcState::Starting,
            2 => ProcState::Busy,
            3 => ProcState::Draining,
            4 => ProcState::Backoff,
            _ => ProcState::Idle,
        }
    }
}

const COLUMNS: &[&str] = &[
    "pid",
    "role",
    "id",
    "generation",
    "state",
    "requests",
    "started_ms",
    "started_wall_ms",
    "heartbeat_ms",
    "request_start_ms",
    "tasks_pending",
    "backoff_until_ms",
    "failures",
    "proc_start",
    "task_sender",
    "task_id",
    "replies_dropped",
];

fn schema() -> Result<Schema, Error> {
    Schema::new(COLUMNS.iter().map(|c| Column::int(c)).collect()).map_err(shm_err)
}

fn adapters_schema() -> Result<Schema, Error> {
    Schema::new(vec![Column::int("connections"), Column::int("requests")]).map_err(shm_err)
}

fn shm_err(e: impl std::fmt::Display) -> Error {
    Error::Shm(e.to_string())
}

/// An atomic integer cell in shared memory (a handle resolved once).
#[derive(Clone)]
pub struct Cell(IntCell);

impl Cell {
    /// Adds `delta` and returns the new value.
    pub fn add(&self, delta: i64) -> i64 {
        self.0.fetch_add(delta).wrapping_add(delta)
    }
    /// Stores `v`.
    pub fn store(&self, v: i64) {
        self.0.store(v);
    }
    /// Loads the value.
    pub fn load(&self) -> i64 {
        self.0.load()
    }
}

/// The scoreboard and the adapter counters of one server.
pub struct Scoreboard {
    table: Table,
    adapters: Table,
    /// Framework state shared by whichever process does the framework's work (absent
    /// when opened read-only from outside).
    platform: Option<Table>,
}

/// One row as read back.
#[derive(Debug, Clone)]
pub struct ProcRow {
    /// The row's key (`p<pid>` for processes, `b<id>` for ids in backoff).
    pub key: String,
    /// Process id (0 for a backoff row).
    pub pid: i32,
    /// Role; None when the stored number names no role this build knows.
    pub role: Option<Role>,
    /// Worker id (0..N-1 workers, N.. task workers); 0 for master and manager.
    pub id: u32,
    /// Reload generation the process was started in.
    pub generation: u64,
    /// State.
    pub state: ProcState,
    /// Requests (or tasks) served.
    pub requests: i64,
    /// CLOCK_MONOTONIC ms at start.
    pub started_ms: i64,
    /// Wall-clock ms at start.
    pub started_wall_ms: i64,
    /// CLOCK_MONOTONIC ms of the last heartbeat.
    pub heartbeat_ms: i64,
    /// CLOCK_MONOTONIC ms the current request started (0: none).
    pub request_start_ms: i64,
    /// Tasks sent and not yet answered (workers) or queued (task workers).
    pub tasks_pending: i64,
    /// For backoff rows: when the respawn is due (CLOCK_MONOTONIC ms).
    pub backoff_until_ms: i64,
    /// Consecutive early deaths of this id.
    pub failures: i64,
    /// The process start time in clock ticks (with the pid: one process across pid reuse).
    pub proc_start: u64,
    /// Task workers: the pid of the event worker whose task runs now (0: none).
    pub task_sender: i32,
    /// Task workers: the id of the task that runs now (0: none).
    pub task_id: u64,
    /// Replies (or failure notices) this process dropped because the receiver was full
    /// or gone.
    pub replies_dropped: i64,
}

impl ProcRow {
    /// The process this row describes (pid and start time).
    pub fn identity(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start: self.proc_start,
        }
    }
}

/// The cells a process writes on its hot path.
#[derive(Clone)]
pub struct ProcHandle {
    state: Cell,
    heartbeat: Cell,
    request_start: Cell,
    requests: Cell,
    task_sender: Cell,
    task_id: Cell,
    dropped: Cell,
    /// Pending tasks of this process.
    pub pending: Cell,
}

impl ProcHandle {
    /// Stamps the heartbeat with now.
    pub fn heartbeat(&self) {
        self.heartbeat_at(sys::monotonic_ms());
    }
    /// Stamps the heartbeat with `now` (the monotonic clock in ms, already read).
    pub fn heartbeat_at(&self, now: i64) {
        self.heartbeat.store(now);
    }
    /// Sets the state.
    pub fn set_state(&self, s: ProcState) {
        self.state.store(s as i64);
    }
    /// A request (or task) started at `now`.
    pub fn begin_request(&self, now: i64) {
        self.request_start.store(now);
        self.state.store(ProcState::Busy as i64);
    }
    /// A task worker starts task `task_id` of the event worker `sender` at `now`: the
    /// row says whose task it runs, so that if this process dies the manager can tell
    /// the sender at once.
    pub fn begin_task(&self, sender: i32, task_id: u64, now: i64) {
        self.task_sender.store(i64::from(sender));
        self.task_id.store(task_id as i64);
        self.begin_request(now);
    }
    /// The task finished (its reply sent or dropped).
    pub fn end_task(&self) {
        self.end_request();
        self.task_id.store(0);
        self.task_sender.store(0);
    }
    /// A reply could not be delivered (receiver full or gone).
    pub fn reply_dropped(&self) {
        self.dropped.add(1);
    }
    /// The request finished.
    pub fn end_request(&self) {
        self.request_start.store(0);
        self.requests.add(1);
        // A draining worker stays draining.
        if self.state.load() == ProcState::Busy as i64 {
            self.state.store(ProcState::Idle as i64);
        }
    }
}

fn proc_key(pid: i32) -> String {
    format!("p{pid}")
}

fn share_key(adapter: &str, pid: i32) -> String {
    format!("{adapter}#{pid}")
}

fn backoff_key(id: u32) -> String {
    format!("b{id}")
}

impl Scoreboard {
    /// Creates the tables in the verified directory `dir` (the master, before forking),
    /// each relative to its descriptor (`O_EXCL | O_NOFOLLOW`).
    pub fn create(dir: &RunDir, max_procs: usize, adapters: usize) -> Result<Scoreboard, Error> {
        let create = |name: &str, schema: &Schema, rows: usize| {
            Table::create_at(dir.fd(), dir.path(), name, schema, rows).map_err(shm_err)
        };
        let table = create(TABLE_NAME, &schema()?, max_procs)?;
        // One total per adapter plus one share per adapter and process.
        let adapters = create(
            ADAPTERS_TABLE,
            &adapters_schema()?,
            adapters.max(1) * (max_procs + 1),
        )?;
        let platform = create(
            PLATFORM_TABLE,
            &Schema::new(vec![Column::int("value")]).map_err(shm_err)?,
            64,
        )?;
        Ok(Scoreboard {
            table,
            adapters,
            platform: Some(platform),
        })
    }

    /// Opens a running server's scoreboard from outside, read-only (`tarsfork status`),
    /// in its verified directory.
    pub fn open_readonly(dir: &RunDir) -> Result<Scoreboard, Error> {
        let open =
            |name: &str| Table::open_readonly_at(dir.fd(), dir.path(), name).map_err(shm_err);
        Ok(Scoreboard {
            table: open(TABLE_NAME)?,
            adapters: open(ADAPTERS_TABLE)?,
            platform: None,
        })
    }

    /// The owner's clean exit: remove the table files.
    pub fn unlink(&self) {
        let _ = self.table.unlink();
        let _ = self.adapters.unlink();
        if let Some(p) = &self.platform {
            let _ = p.unlink();
        }
    }

    /// Adds the calling process's row and returns its hot-path handle.
    pub fn register(&self, role: Role, id: u32, generation: u64) -> Result<ProcHandle, Error> {
        let me = ProcessId::current();
        let pid = me.pid;
        let key = proc_key(pid);
        let now = sys::monotonic_ms();
        let values = [
            ("pid", Value::Int(pid as i64)),
            ("role", Value::Int(role.code())),
            ("id", Value::Int(id as i64)),
            ("generation", Value::Int(generation as i64)),
            ("state", Value::Int(ProcState::Starting as i64)),
            ("requests", Value::Int(0)),
            ("started_ms", Value::Int(now)),
            ("started_wall_ms", Value::Int(sys::wall_ms())),
            ("heartbeat_ms", Value::Int(now)),
            ("request_start_ms", Value::Int(0)),
            ("tasks_pending", Value::Int(0)),
            ("backoff_until_ms", Value::Int(0)),
            ("failures", Value::Int(0)),
            ("proc_start", Value::Int(me.start as i64)),
            ("task_sender", Value::Int(0)),
            ("task_id", Value::Int(0)),
            ("replies_dropped", Value::Int(0)),
        ];
        self.table.set(key.as_bytes(), &values).map_err(shm_err)?;
        let cell = |c: &str| -> Result<Cell, Error> {
            Ok(Cell(
                self.table.int_cell(key.as_bytes(), c).map_err(shm_err)?,
            ))
        };
        Ok(ProcHandle {
            state: cell("state")?,
            heartbeat: cell("heartbeat_ms")?,
            request_start: cell("request_start_ms")?,
            requests: cell("requests")?,
            task_sender: cell("task_sender")?,
            task_id: cell("task_id")?,
            dropped: cell("replies_dropped")?,
            pending: cell("tasks_pending")?,
        })
    }

    /// Removes a reaped process's row; returns the state it last reported (None when it
    /// never added its row).
    pub fn remove(&self, pid: i32) -> Option<ProcState> {
        let key = proc_key(pid);
        let state = self.table.load_int(key.as_bytes(), "state").ok().flatten();
        let _ = self.table.del(key.as_bytes());
        state.map(ProcState::from_i64)
    }

    /// Shows id `id` as waiting in backoff until `until_ms`.
    pub fn set_backoff(&self, role: Role, id: u32, until_ms: i64, failures: u32) {
        let values = [
            ("pid", Value::Int(0)),
            ("role", Value::Int(role.code())),
            ("id", Value::Int(id as i64)),
            ("state", Value::Int(ProcState::Backoff as i64)),
            ("backoff_until_ms", Value::Int(until_ms)),
            ("failures", Value::Int(failures as i64)),
            ("started_ms", Value::Int(sys::monotonic_ms())),
            ("started_wall_ms", Value::Int(sys::wall_ms())),
        ];
        let _ = self.table.set(backoff_key(id).as_bytes(), &values);
    }

    /// Id `id` left backoff.
    pub fn clear_backoff(&self, id: u32) {
        let _ = self.table.del(backoff_key(id).as_bytes());
    }

    /// The connection counters of adapter `name` for the calling process: the adapter's
    /// total (what `maxconns` limits) and this process's share of it, which the manager
    /// takes back out of the total when it reaps the process (a worker killed with open
    /// connections must not leak them into the count).
    pub fn adapter_conns(&self, name: &str) -> Result<(Cell, Cell), Error> {
        let total = self.counter(name.as_bytes())?;
        let mine = self.counter(share_key(name, sys::getpid()).as_bytes())?;
        mine.store(0);
        Ok((total, mine))
    }

    fn counter(&self, key: &[u8]) -> Result<Cell, Error> {
        if !self.adapters.exists(key).map_err(shm_err)? {
            self.adapters.incr(key, "connections", 0).map_err(shm_err)?;
        }
        Ok(Cell(
            self.adapters
                .int_cell(key, "connections")
                .map_err(shm_err)?,
        ))
    }

    /// A named framework cell (e.g. when the next keepAlive is due), created at 0.
    pub fn platform_cell(&self, name: &str) -> Result<Cell, Error> {
        let t = self
            .platform
            .as_ref()
            .ok_or_else(|| Error::Shm("the platform table is not open".into()))?;
        if !t.exists(name.as_bytes()).map_err(shm_err)? {
            t.incr(name.as_bytes(), "value", 0).map_err(shm_err)?;
        }
        Ok(Cell(t.int_cell(name.as_bytes(), "value").map_err(shm_err)?))
    }

    /// How many event workers are up (idle, busy or draining): the honest-heartbeat test.
    pub fn live_workers(&self) -> usize {
        self.rows()
            .iter()
            .filter(|r| {
                r.role == Some(Role::EventWorker)
                    && r.pid > 0
                    && matches!(
                        r.state,
                        ProcState::Idle | ProcState::Busy | ProcState::Draining
                    )
            })
            .count()
    }

    /// A reaped process's connections leave the adapters' totals.
    pub fn release_connections(&self, pid: i32, adapters: &[String]) {
        for name in adapters {
            let key = share_key(name, pid);
            if let Ok(Some(left)) = self.adapters.load_int(key.as_bytes(), "connections") {
                if left != 0 {
                    let _ = self.adapters.incr(name.as_bytes(), "connections", -left);
                }
                let _ = self.adapters.del(key.as_bytes());
            }
        }
    }

    /// The processes in the table (master included), by identity: what to KILL when
    /// the tree must go.
    pub fn tree(&self) -> Vec<ProcessId> {
        self.rows()
            .iter()
            .filter(|r| r.pid > 0)
            .map(ProcRow::identity)
            .collect()
    }

    /// Every row, processes and backoff entries.
    pub fn rows(&self) -> Vec<ProcRow> {
        let mut out = Vec::new();
        for row in self.table.iter() {
            let Ok(row) = row else { continue };
            let int = |c: &str| row.int(c).unwrap_or(0);
            out.push(ProcRow {
                key: String::from_utf8_lossy(row.key()).into_owned(),
                pid: int("pid") as i32,
                role: Role::from_code(int("role")),
                id: int("id") as u32,
                generation: int("generation") as u64,
                state: ProcState::from_i64(int("state")),
                requests: int("requests"),
                started_ms: int("started_ms"),
                started_wall_ms: int("started_wall_ms"),
                heartbeat_ms: int("heartbeat_ms"),
                request_start_ms: int("request_start_ms"),
                tasks_pending: int("tasks_pending"),
                backoff_until_ms: int("backoff_until_ms"),
                failures: int("failures"),
                proc_start: int("proc_start") as u64,
                task_sender: int("task_sender") as i32,
                task_id: int("task_id") as u64,
                replies_dropped: int("replies_dropped"),
            });
        }
        // Unknown roles sort last.
        out.sort_by_key(|r| (r.role.map_or(i64::MAX, Role::code), r.id, r.started_ms));
        out
    }

    /// Current connections per adapter.
    pub fn adapter_connections(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for row in self.adapters.iter().flatten() {
            if row.key().contains(&b'#') {
                continue;
            }
            out.push((
                String::from_utf8_lossy(row.key()).into_owned(),
                row.int("connections").unwrap_or(0),
            ));
        }
        out
    }
}
