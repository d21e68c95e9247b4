//! The respawn policy: when a supervised process that died is forked again. The master
//! applies it to the manager, the manager to each id of its pools.
//!
//! The rule depends on whether the process was ready (had reported idle in the
//! scoreboard) before it died:
//!
//! - **Died before it was ready**: it cannot start (a bad deploy, a missing resource,
//!   a crash during boot). Crash-loop backoff for its id: 100 ms, doubling per such
//!   death in a row, up to 10 s, so a process that cannot run does not spin the machine
//!   on fork(). The record clears once a process of the id is ready.
//! - **Died after it was ready**: killed from outside (kill -9, the OOM killer, a
//!   liveness kill) or crashed while serving. Respawned at once, however short its
//!   life: every event worker accepts on the same listeners, so holding one back only
//!   leaves its adapters with fewer accepting workers — with none once the others are
//!   killed too, which is how an earlier rule (any death within 1 s of start backed
//!   off) left an adapter without a worker for seconds under a kill every 100 ms.
//!
//! What keeps a process that crashes right after it is ready (a panic on its first
//! request) from a fork loop is a respawn [`Budget`] shared by every id of the
//! supervisor: a token bucket that every respawn after a death takes from. An empty
//! bucket delays respawns to its refill rate, not by seconds, so it caps the fork rate
//! without ever opening a long gap. Forks that are not respawns after a death (start,
//! reload, TTIN) take nothing.

use std::collections::HashMap;

/// First delay; doubles per consecutive death before ready.
const START_MS: i64 = 100;
/// The delay never grows past this.
const MAX_MS: i64 = 10_000;

/// The fewest respawns the pools' budget allows per second, and at once: well above the
/// rate of any kills from outside we ride out (the chaos target kills 10 a second).
const POOL_BUDGET_MIN: u32 = 20;
/// Per supervised process, respawns per second and at once, for large pools: a kill
/// of every worker at once is respawned at once.
const POOL_BUDGET_PER_PROCESS: u32 = 2;
/// The manager's budget: a re-forked manager starts a whole new set of pools while the
/// old ones drain, so it may be re-forked 3 times at once, then once a second.
const MANAGER_BURST: u32 = 3;
const MANAGER_PER_SEC: u32 = 1;

/// The delay after `failures` consecutive deaths before ready (≥ 1): 100 ms doubling,
/// capped at 10 s.
pub(crate) fn delay_ms(failures: u32) -> i64 {
    (START_MS << failures.saturating_sub(1).min(16)).min(MAX_MS)
}

/// The crash-loop record of one supervised id.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CrashLoop {
    /// Deaths before ready in a row.
    failures: u32,
    /// When the respawn is due (monotonic ms); 0 when no delay is running.
    until_ms: i64,
    /// A process of this id died (or could not be forked) and has no successor yet.
    pending: bool,
}

impl CrashLoop {
    /// Deaths before ready in a row.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// When the respawn is due (monotonic ms); 0 when no delay is running.
    pub(crate) fn until_ms(&self) -> i64 {
        self.until_ms
    }

    /// One more death before ready at `now`: the delay before the respawn.
    fn fail(&mut self, now: i64) -> i64 {
        self.failures = self.failures.saturating_add(1);
        let delay = delay_ms(self.failures);
        self.until_ms = now + delay;
        self.pending = true;
        delay
    }
}

/// A token bucket of respawns: `burst` at once, refilled at `per_sec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    burst: u32,
    per_sec: u32,
    /// Thousandths of a token, as of `at_ms`.
    milli: i64,
    at_ms: i64,
}

impl Budget {
    /// A full bucket at `now`.
    pub(crate) fn new(burst: u32, per_sec: u32, now: i64) -> Budget {
        Budget {
            burst: burst.max(1),
            per_sec: per_sec.max(1),
            milli: i64::from(burst.max(1)) * 1000,
            at_ms: now,
        }
    }

    /// The manager's budget for pools of `processes` processes in all.
    pub(crate) fn for_pools(processes: usize, now: i64) -> Budget {
        let n = u32::try_from(processes)
            .unwrap_or(u32::MAX)
            .saturating_mul(POOL_BUDGET_PER_PROCESS)
            .max(POOL_BUDGET_MIN);
        Budget::new(n, n, now)
    }

    /// The master's budget for re-forking the manager.
    pub(crate) fn for_manager(now: i64) -> Budget {
        Budget::new(MANAGER_BURST, MANAGER_PER_SEC, now)
    }

    fn refill(&mut self, now: i64) {
        let cap = i64::from(self.burst) * 1000;
        // ms × tokens/s = thousandths of a token.
        let gained = (now - self.at_ms)
            .max(0)
            .saturating_mul(i64::from(self.per_sec));
        self.milli = self.milli.saturating_add(gained).min(cap);
        self.at_ms = now;
    }

    /// Takes a token at `now` if there is one.
    pub(crate) fn take(&mut self, now: i64) -> bool {
        self.refill(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    /// When the next token is there (monotonic ms; `now` if one is).
    pub(crate) fn next_token_ms(&mut self, now: i64) -> i64 {
        self.refill(now);
        let missing = 1000 - self.milli;
        if missing <= 0 {
            now
        } else {
            // Round up, so that at the returned time the token is whole.
            now + (missing + i64::from(self.per_sec) - 1) / i64::from(self.per_sec)
        }
    }
}

/// Whether a process of an id may be forked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Fork it. `after_backoff`: the id was waiting out a crash-loop delay (which
    /// `status` shows until now).
    Go { after_backoff: bool },
    /// Crash-loop backoff: not before `until` (monotonic ms).
    Backoff { until: i64 },
    /// The respawn budget is spent: not before `until` (monotonic ms).
    Budget { until: i64 },
}

/// The respawn policy of one supervisor's ids: a crash-loop record per id and the
/// shared budget.
#[derive(Debug)]
pub(crate) struct Respawns {
    ids: HashMap<u32, CrashLoop>,
    budget: Budget,
    /// The budget was found empty and that has been logged, until a respawn goes again.
    dry: bool,
}

impl Respawns {
    /// No deaths yet, a full `budget`.
    pub(crate) fn new(budget: Budget) -> Respawns {
        Respawns {
            ids: HashMap::new(),
            budget,
            dry: false,
        }
    }

    /// A process of `id` died at `now`; `was_ready` says whether it had reported ready.
    /// Returns the crash-loop delay before its respawn, or None: at once (budget
    /// permitting).
    pub(crate) fn died(&mut self, id: u32, was_ready: bool, now: i64) -> Option<i64> {
        let c = self.ids.entry(id).or_default();
        if was_ready {
            *c = CrashLoop {
                pending: true,
                ..CrashLoop::default()
            };
            None
        } else {
            Some(c.fail(now))
        }
    }

    /// A process of `id` could not even be forked: counts as a death before ready, so
    /// the caller does not spin on the failing call. Returns the delay.
    pub(crate) fn fork_failed(&mut self, id: u32, now: i64) -> i64 {
        self.ids.entry(id).or_default().fail(now)
    }

    /// A process of `id` is ready: its crash-loop record clears.
    pub(crate) fn ready(&mut self, id: u32) {
        if let Some(c) = self.ids.get_mut(&id) {
            c.failures = 0;
        }
    }

    /// Whether a process of `id` may be forked at `now`. A fork that replaces no death
    /// (start, reload, TTIN) always may; a respawn after a death waits out its id's
    /// backoff, then takes a token from the budget. `Go` counts the respawn as done.
    pub(crate) fn check(&mut self, id: u32, now: i64) -> Verdict {
        let Some(c) = self.ids.get_mut(&id).filter(|c| c.pending) else {
            return Verdict::Go {
                after_backoff: false,
            };
        };
        if c.until_ms > now {
            return Verdict::Backoff { until: c.until_ms };
        }
        if !self.budget.take(now) {
            return Verdict::Budget {
                until: self.budget.next_token_ms(now),
            };
        }
        let after_backoff = c.until_ms != 0;
        c.until_ms = 0;
        c.pending = false;
        self.dry = false;
        Verdict::Go { after_backoff }
    }

    /// True the first time the budget is found empty since a respawn last went: when
    /// to log that respawns are being held back.
    pub(crate) fn newly_dry(&mut self) -> bool {
        !std::mem::replace(&mut self.dry, true)
    }

    /// The crash-loop record of `id`, if it ever died.
    pub(crate) fn record(&self, id: u32) -> Option<&CrashLoop> {
        self.ids.get(&id)
    }

    /// The ids with a crash-loop record.
    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go() -> Verdict {
        Verdict::Go {
            after_backoff: false,
        }
    }

    #[test]
    fn delay_doubles_from_100_ms_to_a_10_s_cap() {
        let delays: Vec<i64> = (1..=9).map(delay_ms).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(delay_ms(1000), 10_000);
        assert_eq!(delay_ms(u32::MAX), 10_000);
    }

    #[test]
    fn deaths_before_ready_back_off_and_a_ready_process_clears_them() {
        let mut r = Respawns::new(Budget::new(100, 100, 0));
        assert_eq!(r.check(1, 0), go(), "a first start is never held");
        assert_eq!(r.died(1, false, 1000), Some(100));
        assert_eq!(r.check(1, 1099), Verdict::Backoff { until: 1100 });
        assert_eq!(
            r.check(1, 1100),
            Verdict::Go {
                after_backoff: true
            }
        );
        assert_eq!(r.died(1, false, 2000), Some(200));
        assert_eq!(r.fork_failed(1, 2200), 400, "a failed fork counts too");
        assert_eq!(
            r.record(1).map(|c| (c.failures(), c.until_ms())),
            Some((3, 2600))
        );
        assert_eq!(r.check(2, 2200), go(), "other ids are not held");
        assert!(matches!(r.check(1, 2600), Verdict::Go { .. }));
        r.ready(1);
        assert_eq!(r.died(1, false, 9000), Some(100), "the count starts over");
    }

    #[test]
    fn a_ready_process_killed_at_once_is_respawned_at_once_every_time() {
        // The chaos target: a kill every 100 ms, each a few ms after the respawn was
        // ready. The old rule (uptime under 1 s = crash loop) backed these off.
        let mut r = Respawns::new(Budget::for_pools(3, 0));
        let mut now = 0;
        for _ in 0..1000 {
            now += 100;
            assert_eq!(r.died(0, true, now), None);
            assert_eq!(r.check(0, now), go(), "at {now} ms");
        }
        assert_eq!(r.record(0).map(CrashLoop::failures), Some(0));
    }

    #[test]
    fn ready_then_dead_at_once_in_a_loop_is_held_to_the_budget_rate() {
        // A worker that panics on its first request: ready, then dead, as fast as the
        // manager forks it. The budget lets 20 go at once, then 20 a second.
        let mut r = Respawns::new(Budget::for_pools(3, 0));
        let mut forks = 0;
        for ms in 0..10_000 {
            if let Verdict::Go { .. } = r.check(0, ms) {
                forks += 1;
                r.died(0, true, ms);
            }
        }
        assert!((200..=221).contains(&forks), "{forks} forks in 10 s");
        // And it never holds one back by more than a token's refill (50 ms at 20/s).
        let Verdict::Budget { until } = r.check(0, 10_000) else {
            panic!("the budget is spent")
        };
        assert!((10_001..=10_050).contains(&until), "{until}");
        assert_eq!(r.check(0, until), go());
    }

    #[test]
    fn the_budget_is_shared_by_every_id_and_sized_by_the_pools() {
        let mut r = Respawns::new(Budget::for_pools(3, 0));
        for id in 0..20 {
            r.died(id, true, 0);
            assert_eq!(r.check(id, 0), go());
        }
        r.died(20, true, 0);
        assert_eq!(r.check(20, 0), Verdict::Budget { until: 50 });
        assert!(r.newly_dry() && !r.newly_dry(), "logged once per dry spell");
        assert_eq!(r.check(20, 50), go());
        assert!(r.newly_dry(), "a respawn went: the next dry spell is new");

        let mut big = Respawns::new(Budget::for_pools(500, 0));
        for id in 0..500 {
            big.died(id, true, 0);
            assert_eq!(big.check(id, 0), go(), "every worker killed at once: {id}");
        }
    }

    #[test]
    fn the_budget_refills_at_its_rate_up_to_its_burst() {
        let mut b = Budget::new(3, 1, 0);
        assert!(b.take(0) && b.take(0) && b.take(0) && !b.take(0));
        assert_eq!(b.next_token_ms(0), 1000);
        assert!(!b.take(999) && b.take(1000));
        assert!(b.take(1_000_000) && b.take(1_000_000) && b.take(1_000_000));
        assert!(!b.take(1_000_000), "never more than the burst");
        assert_eq!(Budget::for_manager(0), Budget::new(3, 1, 0));
    }

    #[test]
    fn deaths_before_ready_still_take_from_the_budget() {
        let mut r = Respawns::new(Budget::new(1, 1, 0));
        r.died(0, false, 0);
        assert_eq!(
            r.check(0, 100),
            Verdict::Go {
                after_backoff: true
            }
        );
        r.died(1, false, 0);
        assert_eq!(r.check(1, 100), Verdict::Budget { until: 1100 });
        assert_eq!(
            r.check(1, 1100),
            Verdict::Go {
                after_backoff: true
            }
        );
    }
}
