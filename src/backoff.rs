//! Crash-loop backoff: a process that dies soon after its start is respawned after a
//! delay that doubles with each such death in a row, so a process that cannot run does
//! not spin the machine on fork(). The master applies it to the manager, the manager to
//! each worker id.

/// A process that dies sooner than this after its start counts as a crash-loop failure.
pub(crate) const MIN_UPTIME_MS: i64 = 1000;
/// First delay; doubles per consecutive early death.
const START_MS: i64 = 100;
/// The delay never grows past this.
const MAX_MS: i64 = 10_000;

/// The delay after `failures` consecutive early deaths (≥ 1): 100 ms doubling, capped
/// at 10 s.
pub(crate) fn delay_ms(failures: u32) -> i64 {
    (START_MS << failures.saturating_sub(1).min(16)).min(MAX_MS)
}

/// The crash-loop record of one supervised process (one id of a pool, or the manager).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CrashLoop {
    /// Early deaths in a row.
    failures: u32,
    /// When the respawn is due (monotonic ms); 0 when no delay is running.
    until_ms: i64,
}

impl CrashLoop {
    /// The process died at `now` after running `uptime_ms`. An early death counts one
    /// more failure and returns the delay before the respawn; a death after a good run
    /// clears the record and returns None (respawn at once).
    pub(crate) fn died(&mut self, uptime_ms: i64, now: i64) -> Option<i64> {
        if uptime_ms < MIN_UPTIME_MS {
            Some(self.fail(now))
        } else {
            *self = CrashLoop::default();
            None
        }
    }

    /// The process could not even be started (fork failed): counts as an early death so
    /// the caller does not spin on the failing call. Returns the delay.
    pub(crate) fn fail(&mut self, now: i64) -> i64 {
        self.failures = self.failures.saturating_add(1);
        let delay = delay_ms(self.failures);
        self.until_ms = now + delay;
        delay
    }

    /// Early deaths in a row.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// When the respawn is due (monotonic ms); 0 when no delay was ever set.
    pub(crate) fn until_ms(&self) -> i64 {
        self.until_ms
    }

    /// Whether the respawn must still wait at `now`.
    pub(crate) fn waiting(&self, now: i64) -> bool {
        self.until_ms > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn early_deaths_add_up_and_a_good_run_clears_them() {
        let mut c = CrashLoop::default();
        assert!(!c.waiting(0));
        assert_eq!(c.died(10, 1000), Some(100));
        assert_eq!(c.died(MIN_UPTIME_MS - 1, 2000), Some(200));
        assert_eq!((c.failures(), c.until_ms()), (2, 2200));
        assert!(c.waiting(2199) && !c.waiting(2200));
        assert_eq!(
            c.fail(3000),
            400,
            "a failed fork counts like an early death"
        );
        assert_eq!(c.died(MIN_UPTIME_MS, 9000), None);
        assert_eq!(c, CrashLoop::default());
        assert_eq!(c.died(0, 9000), Some(100), "the count starts over");
    }
}
