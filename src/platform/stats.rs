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

use super::aggregate::{Capacity, Harvest, Result, Shape, Store, Taken};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// A call this server served: slave = this server, master = the caller.
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

impl Default for Side {
    fn default() -> Side {
        Side::Server
    }
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
    /// a u16 length and its bytes. Strings over 65535 bytes are cut to make the blob
    /// too long, which the store rejects (so no two heads share a blob).
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(BLOB_VERSION);
        out.push(match self.side {
            Side::Server => 0,
            Side::Client => 1,
        });
        out.extend_from_slice(&self.slave_port.to_le_bytes());
        out.extend_from_slice(&self.return_value.to_le_bytes());
        for s in self.strings() {
            match u16::try_from(s.len()) {
                Ok(len) => {
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                Err(_) => out.resize(out.len() + s.len(), 0),
            }
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

/// The statistics table: create it in the master before forking; record in any process.
#[derive(Debug)]
pub struct StatTable {
    store: Store,
}

/// The file name prefix of the tables in the directory.
const NAME: &str = "stat";

impl StatTable {
    /// Creates the table files `stat.{keys,sums,ext}` in `dir` (created if missing).
    pub fn create(dir: &Path, capacity: Capacity) -> Result<StatTable> {
        Ok(StatTable {
            store: Store::create(dir, NAME, capacity, SHAPE.counters)?,
        })
    }

    /// Opens the table of a running server by its directory, read-write.
    pub fn open(dir: &Path) -> Result<StatTable> {
        Ok(StatTable {
            store: Store::open(dir, NAME)?,
        })
    }

    /// Opens the table read-only for inspection ([`StatTable::peek`]).
    pub fn open_readonly(dir: &Path) -> Result<StatTable> {
        Ok(StatTable {
            store: Store::open_readonly(dir, NAME)?,
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
        let adds = if value.is_some() { &adds[..] } else { &adds[..1] };
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
