//! The kinds of process in the tree, as data. Each kind is described once — its role
//! number, its word, its title, the signals it acts on, what it gets when its parent
//! dies — and each kind the manager supervises is a [`Pool`]: how many run, how their
//! ids are given, what starts a new generation, which liveness rules apply, whether the
//! server waits for them to be ready, and its entry point.
//!
//! The manager's verbs (spawn, reap, murder, manage) walk [`POOLS`] and never ask which
//! kind they hold; the master asks [`ready`]; `status` asks [`status_word`]. A new kind
//! of supervised process is one more `Pool` in [`POOLS`] (with its role number in
//! [`Role`]) plus the module of its entry point.

use std::io;
use std::os::fd::RawFd;

use crate::process::{self, ChildBoot, Holds, Shared, Started};
use crate::scoreboard::{ProcRow, ProcState, Role};
use crate::service::Service;
use crate::settings::Settings;
use crate::signals::{self, Action};
use crate::taskq::ReplyChannel;
use crate::{log, sys, task, worker, EXIT_BOOT_ERROR};

/// What is true of every process of one kind, wherever it runs.
#[derive(Debug)]
pub(crate) struct Kind {
    /// The number its scoreboard rows carry.
    pub role: Role,
    /// What logs call it (`event worker 3 (pid 42)`), and its title: `<word> process`.
    pub word: &'static str,
    /// What `status` prints in its ROLE column (short: the column is 8 wide).
    pub status_word: &'static str,
    /// The signal actions it acts on; every other signal keeps its default.
    pub signals: &'static [Action],
    /// The signal it gets when its parent dies (`PR_SET_PDEATHSIG`); None for the master,
    /// which is nobody's child in the tree.
    pub parent_death: Option<i32>,
    /// The inherited descriptors it keeps; every other one is closed when it starts.
    pub holds: Holds,
}

/// The signal actions of a process that serves and drains.
const WORKER_SIGNALS: &[Action] = &[Action::Stop, Action::FastStop, Action::ReopenLogs];

/// The master: binds, holds the pid file, supervises the manager.
pub(crate) const MASTER: Kind = Kind {
    role: Role::Master,
    word: "master",
    status_word: "master",
    signals: signals::ALL,
    parent_death: None,
    holds: HOLDS_ALL,
};

/// The master and the manager hold every inherited descriptor (they pass them on).
const HOLDS_ALL: Holds = Holds {
    listeners: true,
    task_submit: true,
    task_take: true,
};

/// The manager: forks and watches the pools. It has no requests to finish, so it goes
/// with the master at once.
pub(crate) const MANAGER: Kind = Kind {
    role: Role::Manager,
    word: "manager",
    status_word: "manager",
    signals: signals::ALL,
    parent_death: Some(libc::SIGKILL),
    holds: HOLDS_ALL,
};

/// The liveness rules the manager applies to a pool's processes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    /// Killed when its heartbeat is older than `worker_timeout`.
    pub heartbeat: bool,
    /// Killed when one request (or task) has run longer than `request_timeout`.
    pub request: bool,
}

/// A child's entry point: it has its title, signals and scoreboard row ([`Started`]),
/// and returns its exit code when it is done.
pub(crate) type Entry = fn(&Shared, &Service, &ChildBoot, Started) -> io::Result<i32>;

/// One kind of process the manager supervises.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Who its processes are.
    pub kind: Kind,
    /// How many run at start. Ids are handed out in [`POOLS`] order: each pool takes the
    /// next `size` numbers after the previous pool's.
    pub size: fn(&Settings) -> u32,
    /// Whether TTIN / TTOU resize it, and the fewest it keeps (ids added by TTIN follow
    /// the highest id in use).
    pub resize: Option<u32>,
    /// The signal actions that start a new generation (a rolling reload) of it.
    pub reloaded_by: &'static [Action],
    /// Which timeouts the manager enforces on it.
    pub liveness: Liveness,
    /// Whether the server is ready only once all its processes are up.
    pub counts_toward_ready: bool,
    /// Whether its processes send tasks: each gets its own reply channel from the
    /// manager.
    pub sends_tasks: bool,
    /// What its processes run.
    pub entry: Entry,
}

/// The event workers: serve the adapters' connections.
pub(crate) const EVENT_WORKERS: Pool = Pool {
    kind: Kind {
        role: Role::EventWorker,
        word: "event worker",
        status_word: "worker",
        signals: WORKER_SIGNALS,
        parent_death: Some(libc::SIGTERM),
        holds: Holds {
            listeners: true,
            task_submit: true,
            task_take: false,
        },
    },
    size: |s| s.worker_num.max(1) as u32,
    resize: Some(1),
    reloaded_by: &[Action::Reload],
    liveness: Liveness {
        heartbeat: true,
        request: true,
    },
    counts_toward_ready: true,
    sends_tasks: true,
    entry: worker::serve,
};

/// The task workers: run the tasks event workers send, and the framework's own work.
pub(crate) const TASK_WORKERS: Pool = Pool {
    kind: Kind {
        role: Role::TaskWorker,
        word: "task worker",
        status_word: "task",
        signals: WORKER_SIGNALS,
        parent_death: Some(libc::SIGTERM),
        holds: Holds {
            listeners: false,
            task_submit: false,
            task_take: true,
        },
    },
    size: |s| s.task_worker_num as u32,
    resize: None,
    reloaded_by: &[Action::Reload, Action::ReloadTasks],
    liveness: Liveness {
        heartbeat: true,
        request: true,
    },
    counts_toward_ready: true,
    sends_tasks: false,
    entry: task::serve,
};

/// Every pool the manager runs, in id order.
pub(crate) const POOLS: &[&Pool] = &[&EVENT_WORKERS, &TASK_WORKERS];

impl Kind {
    /// The title `ps` shows: `<App>.<Server>: <word> process`.
    pub(crate) fn title(&self, settings: &Settings) -> String {
        format!("{}: {} process", settings.full_name(), self.word)
    }

    /// In a fresh child of `parent`: take this kind's title and log label, keep only
    /// the descriptors this kind holds (and `own`), drop privileges when `user=` /
    /// `group=` ask for it, and ask to be told when the parent dies. The death signal
    /// is asked for last: a change of credentials clears it.
    pub(crate) fn enter(
        &self,
        shared: &mut Shared,
        label: &str,
        parent: i32,
        own: &[RawFd],
    ) -> io::Result<()> {
        sys::proctitle::set_title(&self.title(&shared.settings));
        log::set_role(label);
        shared.keep_only(self.holds, own)?;
        if let Some(run_as) = shared.run_as {
            run_as
                .enter()
                .map_err(|e| io::Error::other(format!("dropping privileges failed: {e}")))?;
            log::after_privilege_drop();
        }
        if let Some(sig) = self.parent_death {
            if let Err(e) = sys::die_with_parent(sig, parent) {
                log::error(&format!("prctl(PR_SET_PDEATHSIG) failed: {e}"));
            }
        }
        Ok(())
    }

    /// Installs this kind's signal handlers, unblocks signals, adds the scoreboard row.
    pub(crate) fn start(&self, shared: &Shared, boot: &ChildBoot) -> io::Result<Started> {
        let wake = signals::install(self.signals)?;
        sys::unblock_all_signals()?;
        let handle = shared.register_self(boot)?;
        Ok(Started {
            wake,
            handle,
            task_reply: None,
        })
    }
}

impl Pool {
    /// How logs name process `id` of this pool: `event worker 3`.
    pub(crate) fn label(&self, id: u32) -> String {
        format!("{} {id}", self.kind.word)
    }
}

/// In a fresh child of the manager (`parent`): becomes process `boot.id` of `pool`,
/// runs it, and exits with its code. Never returns. `task_reply` is the reply channel
/// the manager made for it (processes of pools that send tasks). A child that cannot
/// become its kind (the privilege drop failed) exits with [`EXIT_BOOT_ERROR`], which
/// stops the server instead of respawning it forever.
pub(crate) fn run_child(
    shared: &mut Shared,
    service: &Service,
    pool: &Pool,
    boot: &ChildBoot,
    parent: i32,
    task_reply: Option<ReplyChannel>,
) -> ! {
    let label = pool.label(boot.id);
    let own = task_reply
        .as_ref()
        .map(ReplyChannel::fds)
        .unwrap_or([-1, -1]);
    if let Err(e) = pool.kind.enter(shared, &label, parent, &own) {
        log::error(&format!("{label} cannot start: {e}"));
        process::exit_with(&label, Ok(EXIT_BOOT_ERROR));
    }
    let outcome = pool.kind.start(shared, boot).and_then(|mut started| {
        started.task_reply = task_reply;
        (pool.entry)(shared, service, boot, started)
    });
    process::exit_with(&label, outcome)
}

/// The ids each pool of [`POOLS`] starts with: consecutive, in table order.
pub(crate) fn first_ids(settings: &Settings) -> Vec<Vec<u32>> {
    let mut next = 0;
    POOLS
        .iter()
        .map(|p| {
            let size = (p.size)(settings);
            let ids = (next..next + size).collect();
            next += size;
            ids
        })
        .collect()
}

/// Every kind of process.
fn kinds() -> impl Iterator<Item = &'static Kind> {
    [&MASTER, &MANAGER]
        .into_iter()
        .chain(POOLS.iter().map(|p| &p.kind))
}

/// The description of `role`.
pub(crate) fn kind_of(role: Role) -> Option<&'static Kind> {
    kinds().find(|k| k.role == role)
}

/// What `status` prints for a row's role: `unknown` for a number no kind has.
pub(crate) fn status_word(role: Option<Role>) -> &'static str {
    role.and_then(kind_of).map_or("unknown", |k| k.status_word)
}

/// Whether every pool that counts toward readiness has all its processes up (idle or
/// busy) in `rows`, counting only processes started at or after `since_ms` (monotonic):
/// the workers of an earlier manager may still be up, draining or not yet told.
pub(crate) fn ready(rows: &[ProcRow], settings: &Settings, since_ms: i64) -> bool {
    POOLS.iter().filter(|p| p.counts_toward_ready).all(|p| {
        let up = rows
            .iter()
            .filter(|r| {
                r.role == Some(p.kind.role)
                    && r.started_ms >= since_ms
                    && matches!(r.state, ProcState::Idle | ProcState::Busy)
            })
            .count();
        up >= (p.size)(settings) as usize
    })
}

/// The pools' sizes as the ready report says them: `2 event worker(s), 1 task worker(s)`.
pub(crate) fn sizes(settings: &Settings) -> String {
    POOLS
        .iter()
        .map(|p| format!("{} {}(s)", (p.size)(settings), p.kind.word))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_kind_has_its_own_role_number_title_and_words() {
        let all: Vec<&Kind> = kinds().collect();
        assert_eq!(all.len(), Role::ALL.len(), "one description per role");
        let distinct = |f: &dyn Fn(&Kind) -> String| {
            all.iter().map(|k| f(k)).collect::<HashSet<_>>().len() == all.len()
        };
        assert!(distinct(&|k| k.role.code().to_string()));
        assert!(distinct(&|k| k.word.to_string()));
        assert!(distinct(&|k| k.status_word.to_string()));
        let settings = Settings::embedded_default();
        assert!(distinct(&|k| k.title(&settings)));
        for k in &all {
            assert_eq!(Role::from_code(k.role.code()), Some(k.role), "{k:?}");
            assert!(std::ptr::eq(kind_of(k.role).unwrap(), *k), "{k:?}");
            assert!(k.status_word.len() <= 8, "{k:?} fits the ROLE column");
        }
    }

    #[test]
    fn titles_and_status_words_are_the_documented_ones() {
        let settings = Settings::embedded_default();
        let app = settings.full_name();
        let titles: Vec<String> = kinds().map(|k| k.title(&settings)).collect();
        let want: Vec<String> = [
            "master process",
            "manager process",
            "event worker process",
            "task worker process",
        ]
        .iter()
        .map(|t| format!("{app}: {t}"))
        .collect();
        assert_eq!(titles, want);
        let words: Vec<&str> = Role::ALL.iter().map(|r| status_word(Some(*r))).collect();
        assert_eq!(words, ["master", "manager", "worker", "task"]);
    }

    #[test]
    fn an_unknown_role_number_names_no_kind() {
        for code in [-1, 4, 5, 99, i64::MAX, i64::MIN] {
            assert_eq!(Role::from_code(code), None, "{code}");
        }
        assert_eq!(status_word(Role::from_code(42)), "unknown");
    }

    #[test]
    fn pools_take_consecutive_ids_and_readiness_counts_each_pool() {
        let mut settings = Settings::embedded_default();
        settings.worker_num = 2;
        settings.task_worker_num = 1;
        assert_eq!(sizes(&settings), "2 event worker(s), 1 task worker(s)");
        assert_eq!(first_ids(&settings), [vec![0, 1], vec![2]]);
        settings.task_worker_num = 0;
        assert_eq!(first_ids(&settings), [vec![0, 1], vec![]]);
        settings.task_worker_num = 1;
        let row = |role: Role, state: ProcState| ProcRow {
            key: String::new(),
            pid: 1,
            role: Some(role),
            id: 0,
            generation: 1,
            state,
            requests: 0,
            started_ms: 0,
            started_wall_ms: 0,
            heartbeat_ms: 0,
            request_start_ms: 0,
            tasks_pending: 0,
            backoff_until_ms: 0,
            failures: 0,
            proc_start: 0,
            task_sender: 0,
            task_id: 0,
            replies_dropped: 0,
        };
        let mut rows = vec![
            row(Role::EventWorker, ProcState::Idle),
            row(Role::EventWorker, ProcState::Busy),
        ];
        assert!(!ready(&rows, &settings, 0), "no task worker yet");
        rows.push(row(Role::TaskWorker, ProcState::Starting));
        assert!(!ready(&rows, &settings, 0), "a starting one is not up");
        rows.push(ProcRow {
            role: None,
            ..row(Role::TaskWorker, ProcState::Idle)
        });
        assert!(
            !ready(&rows, &settings, 0),
            "an unknown role counts for no pool"
        );
        rows.push(row(Role::TaskWorker, ProcState::Idle));
        assert!(ready(&rows, &settings, 0));
        assert!(
            !ready(&rows, &settings, 1),
            "processes started before `since` (an earlier manager's) do not count"
        );
    }
}
