//! Call statistics for tarsstat (`StatF.reportMicMsg`), aggregated across every process
//! of the server in shared memory.
//!
//! Workers [`StatTable::record`] each served request (server side: the slave is this
//! server, the master is the caller) and each call made through a client proxy (client
//! side: the master is this server). Task worker 0 calls [`StatTable::take_report`]
//! every report interval and sends the server-side entries with `bFromClient = false`
//! and the client-side ones with `bFromClient = true`, as TarsCpp's StatReport does.
//! The side is part of the key, so the two never merge.
//!
//! Per key the table keeps `count` (successful calls), `timeout_count`, `exec_count`
//! (calls that failed otherwise), `total_rsp_time`, the true minimum and maximum
//! response time of the successful calls, and the latency buckets TarsCpp uses.
//! TarsCpp's `StatReport::resetStatInterv` (servant/libservant/StatReport.cpp) sets the
//! points 5, 10, 50, 100, 200, 500, 1000, 2000, 3000 ms, and `getIntervCount` counts a
//! call of `t` ms under the first point `p` with `t < p` (a call of 3000 ms or more is in
//! no bucket) and sends every point, zeros included. We do the same on the wire; calls
//! of 3000 ms or more are additionally counted in an overflow cell that is kept in the
//! table (visible to inspection) but not sent, since tarsstat knows only those points.
//! Unlike TarsCpp, a timeout or exception is not put into the first bucket (TarsCpp
//! buckets its response time of 0), and the minimum is a true minimum: TarsCpp keeps the
//! least *non-zero* time and TarsPHP always reports 0; here a 0 ms call is a real 0, and
//! an entry with no successful call reports min = max = 0 with count = 0.
//!
//! See [`super::aggregate`] for how records made during a flush are kept.

use std::collections::BTreeMap;
use std::path::Path;

use tarsfork_tars::framework::tars::{StatMicMsgBody, StatMicMsgHead};

use super::aggregate::{Capacity, Harvest, Result, Shape, Store, Taken, BLOB_MAX};

/// The latency bucket bounds in ms, as TarsCpp's StatReport (see the module doc).
pub const STAT_INTERVALS_MS: [i32; 9] = [5, 10, 50, 100, 200, 500, 1000, 2000, 3000];

const COUNT: usize = 0;
const TIMEOUT: usize = 1;
const EXEC: usize = 2;
const TOTAL: usize = 3;
const BUCKET0: usize = 4;
const OVERFLOW: usize = BUCKET0 + STAT_INTERVALS_MS.len();
const SHAPE: Shape = Shape {
    counters: OVERFLOW + 1,
    extremes: true,
};
/// The encoding version byte of a stat key blob.
const BLOB_VERSION: u8 = 1;

/// Which end of a call an entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Side {
    /// A call this server served: slave = this server, master = the caller.
    #[default]
    Server,
    /// A call this server made through a client proxy: master = this server.
    Client,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered: counted with its response time.
    Success,
    /// No answer in time.
    Timeout,
    /// Failed otherwise (exception, error return as the caller defines it).
    Exception,
}

/// The key of a statistics entry: the StatMicMsgHead fields, borrowed so a record
/// allocates nothing, plus the side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatHead<'a> {
    /// server side or client side
    pub side: Side,
    /// caller (`App.Server`; client side: ours, `App.Server@version` as TarsCpp)
    pub master_name: &'a str,
    /// callee (`App.Server`; server side: ours)
    pub slave_name: &'a str,
    /// function (Tars) or route (HTTP)
    pub interface_name: &'a str,
    /// caller's IP
    pub master_ip: &'a str,
    /// callee's IP (server side: left empty, tarsstat fills in the peer address)
    pub slave_ip: &'a str,
    /// callee's port
    pub slave_port: i32,
    /// the call's return value
    pub return_value: i32,
    /// callee's set name
    pub slave_set_name: &'a str,
    /// callee's set area
    pub slave_set_area: &'a str,
    /// callee's set group
    pub slave_set_id: &'a str,
    /// framework version
    pub tars_version: &'a str,
}

impl StatHead<'_> {
    fn strings(&self) -> [&str; 9] {
        [
            self.master_name,
            self.slave_name,
            self.interface_name,
            self.master_ip,
            self.slave_ip,
            self.slave_set_name,
            self.slave_set_area,
            self.slave_set_id,
            self.tars_version,
        ]
    }

    /// Appends the key's bytes: version, side, port, return value, then each string as
    /// a u16 length and its bytes. A head whose encoding would exceed the store's limit
    /// (e.g. a hostile interface name) appends a bounded filler one byte over the limit
    /// instead, which the store rejects without copying the long strings.
    fn encode(&self, out: &mut Vec<u8>) {
        let strings = self.strings();
        let len = 10 + strings.iter().map(|s| 2 + s.len()).sum::<usize>();
        if len > BLOB_MAX {
            out.resize(out.len() + BLOB_MAX + 1, 0);
            return;
        }
        out.push(BLOB_VERSION);
        out.push(match self.side {
            Side::Server => 0,
            Side::Client => 1,
        });
        out.extend_from_slice(&self.slave_port.to_le_bytes());
        out.extend_from_slice(&self.return_value.to_le_bytes());
        for s in strings {
            // Cannot fail: each string is shorter than BLOB_MAX, checked above.
            let n = u16::try_from(s.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }

    /// The head as sent to tarsstat.
    pub fn to_tars(&self) -> StatMicMsgHead {
        StatMicMsgHead {
            master_name: self.master_name.to_owned(),
            slave_name: self.slave_name.to_owned(),
            interface_name: self.interface_name.to_owned(),
            master_ip: self.master_ip.to_owned(),
            slave_ip: self.slave_ip.to_owned(),
            slave_port: self.slave_port,
            return_value: self.return_value,
            slave_set_name: self.slave_set_name.to_owned(),
            slave_set_area: self.slave_set_area.to_owned(),
            slave_set_id: self.slave_set_id.to_owned(),
            tars_version: self.tars_version.to_owned(),
        }
    }
}

/// Rebuilds a head from its blob; None if the blob is not one (hostile or damaged).
fn decode(blob: &[u8]) -> Option<(Side, StatMicMsgHead)> {
    let (&version, rest) = blob.split_first()?;
    if version != BLOB_VERSION {
        return None;
    }
    let (&side, mut rest) = rest.split_first()?;
    let side = match side {
        0 => Side::Server,
        1 => Side::Client,
        _ => return None,
    };
    let mut int = || -> Option<i32> {
        let (b, r) = rest.split_first_chunk::<4>()?;
        rest = r;
        Some(i32::from_le_bytes(*b))
    };
    let slave_port = int()?;
    let return_value = int()?;
    let mut strings: [String; 9] = Default::default();
    for s in &mut strings {
        let (len, r) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_le_bytes(*len));
        let bytes = r.get(..len)?;
        *s = String::from_utf8_lossy(bytes).into_owned();
        rest = &r[len..];
    }
    if !rest.is_empty() {
        return None;
    }
    let [master_name, slave_name, interface_name, master_ip, slave_ip, slave_set_name, slave_set_area, slave_set_id, tars_version] =
        strings;
    Some((
        side,
        StatMicMsgHead {
            master_name,
            slave_name,
            interface_name,
            master_ip,
            slave_ip,
            slave_port,
            return_value,
            slave_set_name,
            slave_set_area,
            slave_set_id,
            tars_version,
        },
    ))
}

/// The bucket of a successful call of `ms` milliseconds (TarsCpp's rule, see the
/// module doc): the index of the first bound above it, or the overflow cell.
fn bucket(ms: i64) -> usize {
    STAT_INTERVALS_MS
        .iter()
        .position(|&p| ms < i64::from(p))
        .map_or(OVERFLOW, |i| BUCKET0 + i)
}

fn sat_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// One flush: the entries to send, by side, each once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MicReport {
    /// served calls: send with `bFromClient = false`
    pub server: Vec<(StatMicMsgHead, StatMicMsgBody)>,
    /// calls made through client proxies: send with `bFromClient = true`
    pub client: Vec<(StatMicMsgHead, StatMicMsgBody)>,
    /// calls of 3000 ms or more per entry are counted but in no bucket; this is their
    /// total over the report (for logs)
    pub over_last_bucket: i64,
    /// records that could not be stored since the last flush (table full)
    pub dropped: i64,
    /// processes that were still inside a record when the flush gave up waiting
    pub stragglers: usize,
}

impl MicReport {
    fn from_taken(taken: Vec<Taken>) -> MicReport {
        let mut report = MicReport::default();
        for t in taken {
            let Some((side, head)) = decode(&t.blob) else {
                continue;
            };
            let c = |i: usize| t.counters.get(i).copied().unwrap_or(0);
            let interval_count: BTreeMap<i32, i32> = STAT_INTERVALS_MS
                .iter()
                .enumerate()
                .map(|(i, &p)| (p, sat_i32(c(BUCKET0 + i))))
                .collect();
            let (min, max) = t.extremes.unwrap_or((0, 0));
            let body = StatMicMsgBody {
                count: sat_i32(c(COUNT)),
                timeout_count: sat_i32(c(TIMEOUT)),
                exec_count: sat_i32(c(EXEC)),
                interval_count,
                total_rsp_time: c(TOTAL),
                max_rsp_time: sat_i32(max),
                min_rsp_time: sat_i32(min),
            };
            report.over_last_bucket += c(OVERFLOW);
            match side {
                Side::Server => report.server.push((head, body)),
                Side::Client => report.client.push((head, body)),
            }
        }
        report
    }
}

/// The statistics table: create it in the master before forking; record in any process
/// (a clone shares this process's handle on the same tables).
#[derive(Debug, Clone)]
pub struct StatTable {
    store: std::sync::Arc<Store>,
}

/// The file name prefix of the tables in the directory.
const NAME: &str = "stat";

impl StatTable {
    /// Creates the table files `stat.{keys,sums,ext}` in `dir` (created if missing).
    pub fn create(dir: &Path, capacity: Capacity) -> Result<StatTable> {
        Ok(StatTable {
            store: std::sync::Arc::new(Store::create(dir, NAME, capacity, SHAPE.counters)?),
        })
    }

    /// Creates the table files in the directory open as `dir_fd` (at `dir`), each made
    /// relative to the descriptor (`O_EXCL | O_NOFOLLOW`).
    pub fn create_at(
        dir_fd: std::os::fd::BorrowedFd<'_>,
        dir: &Path,
        capacity: Capacity,
    ) -> Result<StatTable> {
        Ok(StatTable {
            store: std::sync::Arc::new(Store::create_at(
                dir_fd,
                dir,
                NAME,
                capacity,
                SHAPE.counters,
            )?),
        })
    }

    /// Opens the table of a running server by its directory, read-write.
    pub fn open(dir: &Path) -> Result<StatTable> {
        Ok(StatTable {
            store: std::sync::Arc::new(Store::open(dir, NAME)?),
        })
    }

    /// Opens the table read-only for inspection ([`StatTable::peek`]).
    pub fn open_readonly(dir: &Path) -> Result<StatTable> {
        Ok(StatTable {
            store: std::sync::Arc::new(Store::open_readonly(dir, NAME)?),
        })
    }

    /// The directory of the table files.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Records one call. Lock-free once this process has recorded this head before
    /// (the first record of a head in a process resolves and caches its cells).
    /// Negative times count as 0.
    pub fn record(&self, head: &StatHead<'_>, outcome: Outcome, rsp_time_ms: i64) -> Result<()> {
        let ms = rsp_time_ms.max(0);
        let (adds, value): ([(usize, i64); 3], _) = match outcome {
            Outcome::Success => ([(COUNT, 1), (TOTAL, ms), (bucket(ms), 1)], Some(ms)),
            Outcome::Timeout => ([(TIMEOUT, 1), (TIMEOUT, 0), (TIMEOUT, 0)], None),
            Outcome::Exception => ([(EXEC, 1), (EXEC, 0), (EXEC, 0)], None),
        };
        let adds = if value.is_some() {
            &adds[..]
        } else {
            &adds[..1]
        };
        self.store
            .record(SHAPE, |buf| head.encode(buf), adds, value)
    }

    /// Takes every entry recorded since the last take and subtracts what it took;
    /// records made meanwhile are kept for the next take. Entries with nothing
    /// recorded are left out.
    pub fn take_report(&self) -> Result<MicReport> {
        let Harvest {
            taken,
            dropped,
            stragglers,
        } = self.store.take(false)?;
        Ok(MicReport {
            dropped,
            stragglers,
            ..MicReport::from_taken(taken)
        })
    }

    /// What has accumulated and not been taken yet, without taking it.
    pub fn peek(&self) -> Result<MicReport> {
        Ok(MicReport::from_taken(self.store.peek(false)?))
    }

    /// Removes the table files (only the creating process may).
    pub fn unlink(&self) -> Result<()> {
        self.store.unlink()
    }
}

#[cfg(test)]
mod tests {
    use super::super::aggregate::forktest;
    use super::*;
    use std::time::Duration;

    fn table(dir: &Path) -> StatTable {
        StatTable::create(
            dir,
            Capacity {
                keys: 64,
                processes: 8,
            },
        )
        .unwrap()
    }

    fn server_head(func: &str) -> StatHead<'_> {
        StatHead {
            side: Side::Server,
            master_name: "TestApp.Caller",
            slave_name: "TestApp.HelloServer",
            interface_name: func,
            master_ip: "10.0.0.7",
            slave_port: 18601,
            ..StatHead::default()
        }
    }

    fn client_head() -> StatHead<'static> {
        StatHead {
            side: Side::Client,
            master_name: "TestApp.HelloServer@rust-0.1",
            slave_name: "TestApp.Other",
            interface_name: "ping",
            slave_ip: "10.0.0.9",
            slave_port: 10000,
            return_value: -7,
            slave_set_name: "s",
            slave_set_area: "a",
            slave_set_id: "1",
            ..StatHead::default()
        }
    }

    /// What a reference (single-threaded, in-memory) aggregation of the same calls gives.
    #[derive(Debug, Default, Clone, PartialEq)]
    struct Expect {
        count: i64,
        timeouts: i64,
        execs: i64,
        total: i64,
        min: Option<i64>,
        max: Option<i64>,
        buckets: BTreeMap<i32, i64>,
    }

    impl Expect {
        fn add(&mut self, outcome: Outcome, ms: i64) {
            match outcome {
                Outcome::Timeout => self.timeouts += 1,
                Outcome::Exception => self.execs += 1,
                Outcome::Success => {
                    self.count += 1;
                    self.total += ms;
                    self.min = Some(self.min.map_or(ms, |m| m.min(ms)));
                    self.max = Some(self.max.map_or(ms, |m| m.max(ms)));
                    if let Some(&p) = STAT_INTERVALS_MS.iter().find(|&&p| ms < i64::from(p)) {
                        *self.buckets.entry(p).or_default() += 1;
                    }
                }
            }
        }

        /// Folds a reported body in (as a reader summing reports would).
        fn absorb(&mut self, body: &StatMicMsgBody) {
            self.count += i64::from(body.count);
            self.timeouts += i64::from(body.timeout_count);
            self.execs += i64::from(body.exec_count);
            self.total += body.total_rsp_time;
            if body.count > 0 {
                let (lo, hi) = (i64::from(body.min_rsp_time), i64::from(body.max_rsp_time));
                self.min = Some(self.min.map_or(lo, |m| m.min(lo)));
                self.max = Some(self.max.map_or(hi, |m| m.max(hi)));
            }
            for (&p, &n) in &body.interval_count {
                if n != 0 {
                    *self.buckets.entry(p).or_default() += i64::from(n);
                }
            }
        }
    }

    /// The call `i` of child `k`: a spread of times over every bucket and beyond, a
    /// unique minimum (child 2 has the only 0 ms call) and maximum (child 1, 4321 ms).
    fn call(k: usize, i: usize) -> (Outcome, i64) {
        let outcome = match (i * 7 + k) % 23 {
            0 => Outcome::Timeout,
            1 => Outcome::Exception,
            _ => Outcome::Success,
        };
        let ms = match (k, i) {
            (2, 500) => 0,
            (1, 900) => 4321,
            _ => 1 + ((i * 37 + k * 11) % 3500) as i64,
        };
        (outcome, ms)
    }

    fn side_body<'r>(r: &'r MicReport, side: Side, func: &str) -> Option<&'r StatMicMsgBody> {
        let list = match side {
            Side::Server => &r.server,
            Side::Client => &r.client,
        };
        list.iter()
            .find(|(h, _)| h.interface_name == func)
            .map(|(_, b)| b)
    }

    #[test]
    fn forked_recorders_give_exact_totals() {
        const KIDS: usize = 4;
        const CALLS: usize = 5000;
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let head = server_head("testHello");
        let client = client_head();
        let kids = forktest::spawn(KIDS, |k| {
            (0..CALLS).all(|i| {
                let (o, ms) = call(k, i);
                t.record(&head, o, ms).is_ok() && t.record(&client, o, ms + 1).is_ok()
            })
        });
        assert!(forktest::wait_all(&kids, Duration::from_secs(120)));
        let mut want = Expect::default();
        let mut want_client = Expect::default();
        for k in 0..KIDS {
            for i in 0..CALLS {
                let (o, ms) = call(k, i);
                want.add(o, ms);
                want_client.add(o, ms + 1);
            }
        }
        assert_eq!((want.min, want.max), (Some(0), Some(4321)));
        let r = t.take_report().unwrap();
        assert_eq!((r.server.len(), r.client.len(), r.dropped), (1, 1, 0));
        let (h, body) = &r.server[0];
        assert_eq!(*h, head.to_tars());
        assert_eq!(r.client[0].0, client.to_tars());
        let mut got = Expect::default();
        got.absorb(body);
        assert_eq!(got, want);
        // Every TarsCpp point is sent, zeros included.
        assert_eq!(
            body.interval_count.keys().copied().collect::<Vec<_>>(),
            STAT_INTERVALS_MS.to_vec()
        );
        let mut got_client = Expect::default();
        got_client.absorb(&r.client[0].1);
        assert_eq!(got_client, want_client);
        let over = (0..KIDS)
            .flat_map(|k| (0..CALLS).map(move |i| call(k, i)))
            .filter(|&(o, ms)| o == Outcome::Success && ms >= 3000)
            .count() as i64;
        let over_client = (0..KIDS)
            .flat_map(|k| (0..CALLS).map(move |i| call(k, i)))
            .filter(|&(o, ms)| o == Outcome::Success && ms + 1 >= 3000)
            .count() as i64;
        assert_eq!(r.over_last_bucket, over + over_client);
        assert_eq!(t.take_report().unwrap(), MicReport::default());
    }

    #[test]
    fn a_flush_racing_with_recorders_loses_nothing() {
        const KIDS: usize = 3;
        const CALLS: usize = 20_000;
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let funcs = ["a", "b"];
        let kids = forktest::spawn(KIDS, |k| {
            (0..CALLS).all(|i| {
                let (o, ms) = call(k, i);
                t.record(&server_head(funcs[i % 2]), o, ms).is_ok()
            })
        });
        let mut got = [Expect::default(), Expect::default()];
        let mut flushes = 0;
        let mut fold = |r: &MicReport| {
            assert!(r.client.is_empty());
            for (f, g) in funcs.iter().zip(got.iter_mut()) {
                if let Some(b) = side_body(r, Side::Server, f) {
                    g.absorb(b);
                }
            }
        };
        let all_done = loop {
            let r = t.take_report().unwrap();
            flushes += 1;
            fold(&r);
            let mut status = 0;
            // SAFETY: polls our own children without blocking.
            let running = kids
                .iter()
                .filter(|&&pid| unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0)
                .count();
            if running == 0 || flushes > 200_000 {
                break running == 0;
            }
            std::thread::sleep(Duration::from_micros(300));
        };
        // Reap (they have all exited; waitpid above reaped those it saw exit).
        forktest::wait_all(&kids, Duration::from_secs(60));
        assert!(all_done, "recorders did not finish");
        // Whatever the last flush did not see is still in the table.
        fold(&t.take_report().unwrap());
        fold(&t.take_report().unwrap());
        let mut want = [Expect::default(), Expect::default()];
        for k in 0..KIDS {
            for i in 0..CALLS {
                let (o, ms) = call(k, i);
                want[i % 2].add(o, ms);
            }
        }
        assert!(flushes > 3, "only {flushes} flushes raced the recorders");
        assert_eq!(got, want, "after {flushes} flushes");
    }

    #[test]
    fn min_and_max_are_true_and_per_period() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let h = server_head("f");
        // Only failures: reported (count 0), with no invented times.
        t.record(&h, Outcome::Timeout, 900).unwrap();
        t.record(&h, Outcome::Exception, 5).unwrap();
        let r = t.take_report().unwrap();
        let b = &r.server[0].1;
        assert_eq!((b.count, b.timeout_count, b.exec_count), (0, 1, 1));
        assert_eq!(
            (b.min_rsp_time, b.max_rsp_time, b.total_rsp_time),
            (0, 0, 0)
        );
        assert!(b.interval_count.values().all(|&n| n == 0));
        // A real 0 ms call is the minimum (TarsCpp and TarsPHP would not say so).
        for ms in [40, 0, 7] {
            t.record(&h, Outcome::Success, ms).unwrap();
        }
        let b = t.take_report().unwrap().server[0].1.clone();
        assert_eq!(
            (b.count, b.min_rsp_time, b.max_rsp_time, b.total_rsp_time),
            (3, 0, 40, 47)
        );
        // The next period starts fresh: the old minimum does not stick.
        t.record(&h, Outcome::Success, 12).unwrap();
        t.record(&h, Outcome::Success, -3).unwrap();
        let b = t.take_report().unwrap().server[0].1.clone();
        assert_eq!((b.count, b.min_rsp_time, b.max_rsp_time), (2, 0, 12));
        t.record(&h, Outcome::Success, 15).unwrap();
        let b = t.take_report().unwrap().server[0].1.clone();
        assert_eq!((b.min_rsp_time, b.max_rsp_time), (15, 15));
        // Nothing recorded: nothing reported.
        assert!(t.take_report().unwrap().server.is_empty());
    }

    #[test]
    fn parent_and_child_extremes_merge_after_fork() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let h = server_head("g");
        t.record(&h, Outcome::Success, 50).unwrap();
        // The child inherits the parent's cache; it must record into rows of its own.
        let kids = forktest::spawn(1, |_| {
            t.record(&h, Outcome::Success, 3).is_ok() && t.record(&h, Outcome::Success, 80).is_ok()
        });
        assert!(forktest::wait_all(&kids, Duration::from_secs(30)));
        assert_eq!(t.store.process_rows(), 2, "the child registered itself");
        t.record(&h, Outcome::Success, 60).unwrap();
        let b = t.take_report().unwrap().server[0].1.clone();
        assert_eq!(
            (b.count, b.min_rsp_time, b.max_rsp_time, b.total_rsp_time),
            (4, 3, 80, 193)
        );
    }

    #[test]
    fn buckets_follow_tarscpp_bounds() {
        for (ms, want) in [
            (0, Some(5)),
            (4, Some(5)),
            (5, Some(10)),
            (49, Some(50)),
            (50, Some(100)),
            (2999, Some(3000)),
            (3000, None),
            (i64::MAX, None),
        ] {
            let got = STAT_INTERVALS_MS
                .get(bucket(ms).wrapping_sub(BUCKET0))
                .copied();
            assert_eq!(got, want, "{ms} ms");
        }
    }

    #[test]
    fn heads_round_trip_and_hostile_blobs_are_skipped() {
        let c = client_head();
        let mut blob = Vec::new();
        c.encode(&mut blob);
        assert_eq!(decode(&blob), Some((Side::Client, c.to_tars())));
        for cut in 0..blob.len() {
            assert_eq!(decode(&blob[..cut]), None, "cut at {cut}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        let mut bad_side = blob.clone();
        bad_side[1] = 9;
        assert_eq!(decode(&bad_side), None);
        // Sides never merge.
        let mut server = Vec::new();
        StatHead {
            side: Side::Server,
            ..c
        }
        .encode(&mut server);
        assert_ne!(server, blob);
    }

    #[test]
    fn inspection_sees_without_taking() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        t.record(&server_head("p"), Outcome::Success, 9).unwrap();
        let ro = StatTable::open_readonly(dir.path()).unwrap();
        let seen = ro.peek().unwrap();
        assert_eq!(seen.server[0].1.count, 1);
        assert!(ro.take_report().is_err());
        assert!(ro.record(&server_head("p"), Outcome::Success, 1).is_err());
        assert_eq!(t.take_report().unwrap().server, seen.server);
    }

    #[test]
    fn an_oversized_head_is_refused_cheaply() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let long = "x".repeat(1 << 20);
        let h = server_head(&long);
        assert!(t.record(&h, Outcome::Success, 1).is_err());
        let mut blob = Vec::new();
        h.encode(&mut blob);
        assert_eq!(blob.len(), BLOB_MAX + 1);
        // Just under the limit is fine.
        let fits = "y".repeat(BLOB_MAX - 200);
        t.record(&server_head(&fits), Outcome::Success, 1).unwrap();
        let r = t.take_report().unwrap();
        assert_eq!(r.dropped, 1);
        assert_eq!(r.server.len(), 1);
        assert_eq!(r.server[0].0.interface_name, fits);
    }

    /// Kills (SIGKILL) and reaps a child when dropped, so a failing test leaves none.
    struct Child(libc::pid_t);

    impl Drop for Child {
        fn drop(&mut self) {
            // SAFETY: kills and reaps our own child (idempotent if already reaped).
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }

    #[test]
    fn a_stopped_or_killed_recorder_blocks_no_flush_and_loses_no_count() {
        use tarsfork_shm::{Column, Schema, Table};
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        // The child counts its completed records here, after each record returns.
        let schema = Schema::new(vec![Column::int("n")]).unwrap();
        let acks = Table::create(&dir.path().join("acks"), &schema, 4).unwrap();
        acks.incr(b"a", "n", 0).unwrap();
        let acked = acks.int_cell(b"a", "n").unwrap();
        let h = server_head("busy");
        let pid = forktest::spawn(1, |_| loop {
            if t.record(&h, Outcome::Success, 4).is_ok() {
                acked.fetch_add(1);
            }
        })[0];
        let child = Child(pid);
        let mut counted = 0i64;
        let mut stragglers = 0;
        let mut fold = |r: MicReport| {
            counted += r
                .server
                .iter()
                .map(|(_, b)| i64::from(b.count))
                .sum::<i64>();
            stragglers += r.stragglers;
        };
        std::thread::sleep(Duration::from_millis(30));
        // Stopped at a random instant, the child is often inside a record: the flush
        // then waits QUIESCE_WAIT for it, gives up, and its late adds must still count.
        for _ in 0..20 {
            // SAFETY: stops and resumes our own child.
            unsafe { libc::kill(child.0, libc::SIGSTOP) };
            std::thread::sleep(Duration::from_millis(2));
            fold(t.take_report().unwrap());
            fold(t.take_report().unwrap());
            // SAFETY: as above.
            unsafe { libc::kill(child.0, libc::SIGCONT) };
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(child);
        fold(t.take_report().unwrap());
        fold(t.take_report().unwrap());
        let acked = acked.load();
        assert!(acked > 0);
        // A kill between a record and its ack leaves one record unacknowledged.
        assert!(
            counted == acked || counted == acked + 1,
            "counted {counted}, acknowledged {acked} ({stragglers} stragglers)"
        );
        // The dead recorder's rows are gone; only its (fast-path) state is left behind.
        assert_eq!(t.store.process_rows(), 0);
    }
}
