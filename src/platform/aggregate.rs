//! The shared-memory aggregation engine under [`super::stats`] and [`super::props`]:
//! many processes add to counters and track minima and maxima per key; one process
//! (task worker 0) periodically takes what accumulated and resets it, losing nothing
//! recorded meanwhile.
//!
//! # Files
//!
//! Three `tarsfork-shm` tables in one directory, created by the master before it forks:
//!
//! | file | key | columns |
//! | --- | --- | --- |
//! | `<name>.keys` | 16-byte id (hash of the blob) | `blob` (the encoded key, ≤ 1024 bytes), `counters`, `extremes` |
//! | `<name>.sums` | `C` id bank chunk | `v0`..`v15`: counters, added to by every process |
//! | `<name>.ext` | `X` id nonce · `P` nonce · `G` | `c0`..`c5`: has/min/max of bank 0 and of bank 1 · seq/pid/start · epoch/dropped/reserve |
//!
//! Keys are always hashed: a StatMicMsgHead (names, IPs, port, return value, set) rarely
//! fits the 63-byte key limit, and one uniform path beats two. The full key lives in the
//! `blob` column and is compared on first use in each process, so a hash collision is
//! detected (and reported as an error) rather than merging two keys.
//!
//! # Why banks, and why per-process extremes
//!
//! The shm crate offers lock-free `fetch_add`, `load` and `store` on cells, but no
//! compare-and-swap. Counters need only `fetch_add`. A maximum shared by several writers
//! needs a CAS (load-compare-store loses a concurrent larger value), and the flusher's
//! "read and reset" of a maximum needs a swap. So each process keeps its own min/max row
//! per key (`X`; one writer, so load-compare-store is exact; a process is named by a
//! nonce of its pid and start time), and the flusher reads those rows only once no
//! process can still be writing them.
//!
//! Every process records into one of two banks chosen by the parity of a shared epoch.
//! The flusher increments the epoch, then waits until every process has left any record
//! it began under the old epoch: each process has a sequence number, odd while inside a
//! record, and a SeqCst fence on each side makes this a Dekker handshake (either the
//! recorder sees the new epoch, or the flusher sees it inside its record). Then the old
//! bank is quiescent: the flusher reads its counters and subtracts exactly what it read
//! (so even a late add stays for a later report), and reads and clears its extremes.
//!
//! A record therefore lands wholly in one report: its count, its time and its min/max.
//! The one loss: a process stopped (SIGSTOP, or descheduled for longer than
//! [`QUIESCE_WAIT`]) in the middle of a record whose extremes the flusher then clears;
//! its counts still arrive in a later report, its min/max contribution may not.
//! If the shm crate gains `IntCell::compare_exchange` (or `fetch_min`/`fetch_max` and
//! `swap`), the per-process rows could become one shared row per key and bank.
//!
//! # Processes
//!
//! A process's cache of resolved cells is reset in a forked child, detected by a
//! generation counter that a `pthread_atfork` handler bumps (a `getpid()` per record
//! cost 320 ns on the development VM, three times the rest of the record). Rows of
//! exited processes are harvested, then deleted; shared rows are never deleted, which
//! is what makes the cached `IntCell`s safe.
//!
//! # Sizes
//!
//! `sums` holds two chunks per key and bank; `ext` holds four extremes rows per key or
//! 64 per process, whichever is more, plus a reserve of one row per process for the
//! process rows. When the extremes rows run out, further (key, process) pairs are
//! recorded without extremes: counts stay exact. Each flush scans `sums` and `ext`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tarsfork_shm::{Column, IntCell, Schema, ShmError, Table, Value};

use crate::sys::ident::ProcessId;

/// Counters per `sums` row.
pub(crate) const WIDTH: usize = 16;
/// Largest encoded key.
pub const BLOB_MAX: usize = 1024;
/// Longest the flusher waits, per flush, for processes still inside a record.
pub const QUIESCE_WAIT: Duration = Duration::from_millis(20);

const SUM_COLS: [&str; WIDTH] = [
    "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14",
    "v15",
];
/// X rows: has, min, max of bank 0, then of bank 1; P rows: seq, pid, start; G: epoch, dropped.
const EXT_COLS: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
const EPOCH_KEY: &[u8] = b"G";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A table operation failed.
    #[error("{op} on {path}: {source}")]
    Shm {
        /// what we were doing
        op: &'static str,
        /// the table file
        path: PathBuf,
        /// the cause
        #[source]
        source: ShmError,
    },
    /// The directory for the tables could not be created.
    #[error("creating {path}: {source}")]
    Dir {
        /// the directory
        path: PathBuf,
        /// the cause
        source: std::io::Error,
    },
    /// An encoded key is longer than [`BLOB_MAX`].
    #[error("encoded key of {len} bytes exceeds the {BLOB_MAX}-byte limit")]
    KeyTooLong {
        /// its length
        len: usize,
    },
    /// Two different keys hash to the same id, or one key is used with two shapes.
    #[error("key id {id} is registered for a different key or shape")]
    Collision {
        /// the id in hex
        id: String,
    },
    /// A key's definition is not acceptable (e.g. a property without policies).
    #[error("{what}")]
    Invalid {
        /// what is wrong
        what: String,
    },
    /// The store was opened read-only (inspection): it cannot be written or reset.
    #[error("the store at {path} is open read-only")]
    ReadOnly {
        /// the directory
        path: PathBuf,
    },
}

/// Result of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// How many tables rows the store must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// distinct keys (stat heads, properties)
    pub keys: usize,
    /// processes recording at the same time (workers, task workers, the master)
    pub processes: usize,
}

/// What the store needs to know about a key besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// how many counters
    pub counters: usize,
    /// whether it tracks a min and a max
    pub extremes: bool,
}

/// One key's accumulation, as taken or peeked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taken {
    /// the encoded key
    pub blob: Vec<u8>,
    /// the counters, `Shape::counters` of them
    pub counters: Vec<i64>,
    /// (min, max) over the values recorded, None if none was
    pub extremes: Option<(i64, i64)>,
}

/// The result of a flush.
#[derive(Debug, Clone, Default)]
pub(crate) struct Harvest {
    /// every key with something recorded
    pub taken: Vec<Taken>,
    /// records that could not be stored since the last flush (table full, collision)
    pub dropped: i64,
    /// processes still inside a record after [`QUIESCE_WAIT`]
    pub stragglers: usize,
}

type Id = [u8; 16];

/// Per key: the counters summed so far and the (min, max) merged so far.
type Acc = HashMap<Id, (Vec<i64>, Option<(i64, i64)>)>;

/// Adds a `sums` row's counters (chunk `chunk`) into `acc`.
fn fold_sums(acc: &mut Acc, id: Id, chunk: u8, values: &[Value]) {
    let base = usize::from(chunk) * WIDTH;
    let counters = &mut acc.entry(id).or_default().0;
    if counters.len() < base + values.len() {
        counters.resize(base + values.len(), 0);
    }
    for (i, v) in values.iter().enumerate() {
        let c = &mut counters[base + i];
        *c = c.wrapping_add(v.as_int().unwrap_or(0));
    }
}

/// Merges one (min, max) into `acc`.
fn fold_extremes(acc: &mut Acc, id: Id, min: i64, max: i64) {
    let slot = &mut acc.entry(id).or_default().1;
    *slot = Some(match *slot {
        Some((lo, hi)) => (lo.min(min), hi.max(max)),
        None => (min, max),
    });
}

/// The id inside a `C` or `X` key.
fn key_id(key: &[u8]) -> Id {
    let mut id = [0u8; 16];
    if let Some(part) = key.get(1..17) {
        id.copy_from_slice(part);
    }
    id
}

fn hex(id: &Id) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 128-bit id of a blob: two SipHash runs with different prefixes. All processes run
/// the same binary, so the id is the same in each; equality of blobs is still checked.
fn blob_id(blob: &[u8]) -> Id {
    let mut id = [0u8; 16];
    for (half, salt) in id.chunks_exact_mut(8).zip([0x5aa5u16, 0xc33c]) {
        #[allow(deprecated)] // SipHasher's keyed stability is what we want here
        let mut h = std::hash::SipHasher::new_with_keys(u64::from(salt), 0x7461_7273);
        blob.hash(&mut h);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    id
}

fn sum_key(id: &Id, bank: u8, chunk: u8) -> [u8; 19] {
    let mut k = [0u8; 19];
    k[0] = b'C';
    k[1..17].copy_from_slice(id);
    k[17] = bank;
    k[18] = chunk;
    k
}

fn ext_key(id: &Id, nonce: &[u8; 8]) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = b'X';
    k[1..17].copy_from_slice(id);
    k[17..].copy_from_slice(nonce);
    k
}

fn proc_key(nonce: &[u8; 8]) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'P';
    k[1..].copy_from_slice(nonce);
    k
}

/// One process's min/max cells for one key and bank.
struct Ext {
    has: IntCell,
    min: IntCell,
    max: IntCell,
}

/// A key resolved in this process: its cells in both banks.
struct Entry {
    sums: [Vec<IntCell>; 2],
    ext: [Option<Ext>; 2],
}

/// Bumped in every child right after fork (a `pthread_atfork` handler), so the record
/// path can tell it runs in a new process with one relaxed load instead of a getpid()
/// system call (measured at 320 ns on the development VM, most of a record's cost).
static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static FORK_TRACKING: OnceLock<bool> = OnceLock::new();

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

/// Registers the fork handler once per program; false if that failed (then every
/// record compares pids instead). Called when a store is created or opened, i.e. in
/// the master before it forks.
fn fork_tracking() -> bool {
    // The handler does one atomic add on a static: async-signal-safe, as it must be.
    *FORK_TRACKING.get_or_init(|| crate::sys::on_fork_in_child(after_fork_in_child))
}

/// A word-at-a-time multiply-rotate hash (the FxHash recipe) for this process's cache:
/// SipHash of a ~100-byte head cost 70 ns a record. The keys are bounded by the table
/// capacity, so flooding the cache with collisions is bounded too.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// This process's part: reset after fork (the child inherits the parent's cache, whose
/// per-process rows are the parent's).
struct Local {
    /// FORK_GEN when this cache was set up (u64::MAX: never)
    gen: u64,
    /// whether FORK_GEN is maintained; if not, `pid` is compared on every record
    tracked: bool,
    pid: i32,
    nonce: [u8; 8],
    /// this process's sequence cell and the shared epoch cell
    cells: Option<(IntCell, IntCell)>,
    entries: FastMap<Vec<u8>, Entry>,
    scratch: Vec<u8>,
}

impl Local {
    /// Whether this cache belongs to another process (the parent, or none yet).
    fn forked(&self) -> bool {
        if self.tracked {
            self.gen != FORK_GEN.load(Ordering::Relaxed)
        } else {
            self.pid != crate::sys::getpid()
        }
    }
}

/// The lock-free part of a record: enter (odd sequence, then a SeqCst fence before
/// reading the epoch: the recorder's half of the handshake in [`Store::take`]), add to
/// the counters and fold the extremes of the epoch's bank, leave (even sequence, a
/// release store that publishes everything above). The sequence cell has one writer,
/// this process, so plain stores do (two locked adds would cost ~30 ns more).
fn apply(seq: &IntCell, epoch: &IntCell, entry: &Entry, adds: &[(usize, i64)], value: Option<i64>) {
    let s = seq.load();
    seq.store(s.wrapping_add(1) | 1);
    fence(Ordering::SeqCst);
    let bank = (epoch.load() & 1) as usize;
    let sums = &entry.sums[bank];
    for &(i, delta) in adds {
        if let Some(cell) = sums.get(i) {
            cell.fetch_add(delta);
        }
    }
    if let (Some(v), Some(ext)) = (value, entry.ext[bank].as_ref()) {
        // This process is the only writer of its X rows; the flusher touches them only
        // while the bank is quiescent.
        if ext.has.load() == 0 {
            ext.min.store(v);
            ext.max.store(v);
            ext.has.store(1);
        } else {
            if v < ext.min.load() {
                ext.min.store(v);
            }
            if v > ext.max.load() {
                ext.max.store(v);
            }
        }
    }
    seq.store((s | 1).wrapping_add(1));
}

/// The engine: see the module doc.
pub(crate) struct Store {
    dir: PathBuf,
    keys: Table,
    sums: Table,
    ext: Table,
    local: Mutex<Local>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

fn shm<T>(op: &'static str, table: &Table, r: std::result::Result<T, ShmError>) -> Result<T> {
    r.map_err(|source| StoreError::Shm {
        op,
        path: table.path().to_path_buf(),
        source,
    })
}

fn shm_at<T>(op: &'static str, path: &Path, r: std::result::Result<T, ShmError>) -> Result<T> {
    r.map_err(|source| StoreError::Shm {
        op,
        path: path.to_path_buf(),
        source,
    })
}

fn schemas() -> std::result::Result<(Schema, Schema, Schema), ShmError> {
    let keys = Schema::new(vec![
        Column::string("blob", BLOB_MAX),
        Column::int("counters"),
        Column::int("extremes"),
    ])?;
    let sums = Schema::new(SUM_COLS.iter().map(|c| Column::int(c)).collect())?;
    let ext = Schema::new(EXT_COLS.iter().map(|c| Column::int(c)).collect())?;
    Ok((keys, sums, ext))
}

fn paths(dir: &Path, name: &str) -> [PathBuf; 3] {
    ["keys", "sums", "ext"].map(|suffix| dir.join(format!("{name}.{suffix}")))
}

impl Store {
    /// Creates the three tables `<dir>/<name>.{keys,sums,ext}` (the directory too).
    /// `max_counters` is the largest number of counters one key has.
    pub(crate) fn create(
        dir: &Path,
        name: &str,
        cap: Capacity,
        max_counters: usize,
    ) -> Result<Store> {
        let dir_err = |source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let fd = std::fs::File::open(dir).map_err(dir_err)?;
        Store::create_at(fd.as_fd(), dir, name, cap, max_counters)
    }

    /// Like [`Store::create`], in the directory open as `dir` (at `dir_path`): each
    /// table file is made relative to the descriptor, `O_EXCL | O_NOFOLLOW`.
    pub(crate) fn create_at(
        dir_fd: BorrowedFd<'_>,
        dir: &Path,
        name: &str,
        cap: Capacity,
        max_counters: usize,
    ) -> Result<Store> {
        let [kp, sp, ep] = paths(dir, name);
        let [kn, sn, en] = ["keys", "sums", "ext"].map(|suffix| format!("{name}.{suffix}"));
        let create = |n: &str, schema: &Schema, capacity: usize| {
            Table::create_at(dir_fd, dir, n, schema, capacity)
        };
        let (ks, ss, es) = shm_at("building the schema of", &kp, schemas())?;
        let keys_cap = cap.keys.max(1);
        // Most keys fit one chunk (stats always do; properties unless they have long
        // Distr policies), so room for two per key and bank is plenty.
        let chunks = max_counters.div_ceil(WIDTH).clamp(1, 2);
        let procs = cap.processes.max(1);
        let keys = shm_at("creating", &kp, create(&kn, &ks, keys_cap))?;
        let sums = shm_at("creating", &sp, create(&sn, &ss, keys_cap * 2 * chunks))?;
        // Per process: its P row and an X row per key and bank it recorded; plus G.
        // Extremes: one row per key a process has recorded, per live process. Every
        // process recording every key (procs × keys rows) would be far larger than any
        // server needs and would all be touched by each flush's scan; so the table holds
        // four rows per key or 64 per process, whichever is more. When it is full, new
        // (key, process) pairs are recorded without extremes: counts stay exact.
        let ext_cap = procs + 1 + (keys_cap * 4).max(procs * 64);
        let ext = shm_at("creating", &ep, create(&en, &es, ext_cap))?;
        shm(
            "creating the epoch row in",
            &ext,
            // c2: rows kept free for process rows (extremes never take them).
            ext.set(
                EPOCH_KEY,
                &[("c0", Value::Int(0)), ("c2", Value::Int(procs as i64 + 1))],
            ),
        )?;
        Ok(Store::from_tables(dir, keys, sums, ext))
    }

    /// Opens the tables read-write (another process of the server, by path).
    pub(crate) fn open(dir: &Path, name: &str) -> Result<Store> {
        Store::open_with(dir, name, Table::open_with_schema)
    }

    /// Opens the tables read-only, for inspection: [`Store::peek`] works, writes do not.
    pub(crate) fn open_readonly(dir: &Path, name: &str) -> Result<Store> {
        Store::open_with(dir, name, |p, _| Table::open_readonly(p))
    }

    fn open_with(
        dir: &Path,
        name: &str,
        open: impl Fn(&Path, &Schema) -> std::result::Result<Table, ShmError>,
    ) -> Result<Store> {
        let [kp, sp, ep] = paths(dir, name);
        let (ks, ss, es) = shm_at("building the schema of", &kp, schemas())?;
        let keys = shm_at("opening", &kp, open(&kp, &ks))?;
        let sums = shm_at("opening", &sp, open(&sp, &ss))?;
        let ext = shm_at("opening", &ep, open(&ep, &es))?;
        Ok(Store::from_tables(dir, keys, sums, ext))
    }

    fn from_tables(dir: &Path, keys: Table, sums: Table, ext: Table) -> Store {
        Store {
            dir: dir.to_path_buf(),
            keys,
            sums,
            ext,
            local: Mutex::new(Local {
                gen: u64::MAX,
                tracked: fork_tracking(),
                pid: 0,
                nonce: [0; 8],
                cells: None,
                entries: FastMap::default(),
                scratch: Vec::with_capacity(256),
            }),
        }
    }

    /// The directory holding the tables.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the table files (only the creating process may).
    pub(crate) fn unlink(&self) -> Result<()> {
        shm("unlinking", &self.keys, self.keys.unlink())?;
        shm("unlinking", &self.sums, self.sums.unlink())?;
        shm("unlinking", &self.ext, self.ext.unlink())
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        // A panic while holding the guard leaves a cache that is at worst missing an
        // entry; it stays usable.
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_only(&self) -> StoreError {
        StoreError::ReadOnly {
            path: self.dir.clone(),
        }
    }

    /// Records into key `encode(buf)`: adds `adds` (counter index, delta) and, if the
    /// key tracks extremes and `value` is given, folds `value` into its min and max.
    /// Lock-free once the key was used by this process before.
    pub(crate) fn record(
        &self,
        shape: Shape,
        encode: impl FnOnce(&mut Vec<u8>),
        adds: &[(usize, i64)],
        value: Option<i64>,
    ) -> Result<()> {
        if !self.ext.is_writable() {
            return Err(self.read_only());
        }
        let mut guard = self.local();
        let local = &mut *guard;
        if local.forked() {
            if let Err(e) = self.become_process(local) {
                self.note_dropped();
                return Err(e);
            }
        }
        local.scratch.clear();
        encode(&mut local.scratch);
        if let (Some((seq, epoch)), Some(entry)) =
            (&local.cells, local.entries.get(local.scratch.as_slice()))
        {
            apply(seq, epoch, entry, adds, value);
            return Ok(());
        }
        let entry = match self.resolve(&local.scratch, &local.nonce, shape) {
            Ok(e) => e,
            Err(e) => {
                self.note_dropped();
                return Err(e);
            }
        };
        if let Some((seq, epoch)) = &local.cells {
            apply(seq, epoch, &entry, adds, value);
        }
        local.entries.insert(local.scratch.clone(), entry);
        Ok(())
    }

    fn note_dropped(&self) {
        // Best effort: a count of records that could not be stored, for the report log.
        let _ = self.ext.incr(EPOCH_KEY, "c1", 1);
    }

    /// Sets up this process's P row (after start or fork) and drops inherited handles.
    fn become_process(&self, local: &mut Local) -> Result<()> {
        local.entries.clear();
        local.cells = None;
        // Read before the pid: a fork in between would bump it and be noticed next time.
        let gen = FORK_GEN.load(Ordering::Relaxed);
        let me = ProcessId::current();
        let upid = u32::try_from(me.pid).unwrap_or(0);
        let start = me.start;
        let mut nonce = [0u8; 8];
        nonce[..4].copy_from_slice(&upid.to_le_bytes());
        // The start time tells this process from an earlier one with the same pid.
        nonce[4..].copy_from_slice(&(start as u32).to_le_bytes());
        let pkey = proc_key(&nonce);
        let ext = &self.ext;
        shm(
            "registering the process in",
            ext,
            ext.set(
                &pkey,
                &[
                    ("c0", Value::Int(0)),
                    ("c1", Value::Int(i64::from(upid))),
                    ("c2", Value::Int(start as i64)),
                ],
            ),
        )?;
        let seq = shm(
            "resolving the process row in",
            ext,
            ext.int_cell(&pkey, "c0"),
        );
        let epoch = shm("resolving the epoch in", ext, ext.int_cell(EPOCH_KEY, "c0"));
        local.cells = Some((seq?, epoch?));
        local.nonce = nonce;
        local.pid = me.pid;
        local.gen = gen;
        Ok(())
    }

    /// Registers `blob` with its shape in the keys table (first use anywhere), or
    /// checks that the registered one is the same key with the same shape.
    pub(crate) fn register(&self, blob: &[u8], shape: Shape) -> Result<Id> {
        if blob.len() > BLOB_MAX {
            return Err(StoreError::KeyTooLong { len: blob.len() });
        }
        let id = blob_id(blob);
        let keys = &self.keys;
        match shm("reading a key of", keys, keys.get(&id))? {
            Some(row) => {
                let same = row.bytes("blob") == Some(blob)
                    && row.int("counters") == Some(shape.counters as i64)
                    && row.int("extremes") == Some(i64::from(shape.extremes));
                if !same {
                    return Err(StoreError::Collision { id: hex(&id) });
                }
            }
            None => {
                // Two processes may register the same key at once: both write the same
                // values, so the second `set` is harmless.
                shm(
                    "registering a key in",
                    keys,
                    keys.set(
                        &id,
                        &[
                            ("blob", Value::Bytes(blob.to_vec())),
                            ("counters", Value::Int(shape.counters as i64)),
                            ("extremes", Value::Int(i64::from(shape.extremes))),
                        ],
                    ),
                )?;
            }
        }
        Ok(id)
    }

    /// Registers or checks `blob` and resolves this process's cells for it in both banks.
    fn resolve(&self, blob: &[u8], nonce: &[u8; 8], shape: Shape) -> Result<Entry> {
        let id = self.register(blob, shape)?;
        let collision = || StoreError::Collision { id: hex(&id) };
        let mut sums: [Vec<IntCell>; 2] = [Vec::new(), Vec::new()];
        let mut exts: [Option<Ext>; 2] = [None, None];
        for bank in 0..2u8 {
            let cells = &mut sums[usize::from(bank)];
            for i in 0..shape.counters {
                let chunk = u8::try_from(i / WIDTH).map_err(|_| collision())?;
                let key = sum_key(&id, bank, chunk);
                let col = SUM_COLS[i % WIDTH];
                if i % WIDTH == 0 {
                    // Creates the zeroed row if missing; lock-free if present.
                    shm(
                        "creating counters in",
                        &self.sums,
                        self.sums.incr(&key, col, 0),
                    )?;
                }
                cells.push(shm(
                    "resolving a counter in",
                    &self.sums,
                    self.sums.int_cell(&key, col),
                )?);
            }
        }
        if shape.extremes {
            let key = ext_key(&id, nonce);
            let ext = &self.ext;
            // Full (short of the rows reserved for processes): this process records
            // this key without extremes (see `create`). Two processes may pass the check
            // at once and eat into the reserve by a row each; the reserve has slack.
            let reserve = shm("reading the reserve in", ext, ext.load_int(EPOCH_KEY, "c2"))?
                .and_then(|r| usize::try_from(r).ok())
                .unwrap_or(0);
            let full = ext.len() + reserve >= ext.capacity();
            if full && !shm("looking up extremes in", ext, ext.exists(&key))? {
                return Ok(Entry { sums, ext: exts });
            }
            match ext.incr(&key, "c0", 0) {
                Err(ShmError::Full { .. }) => return Ok(Entry { sums, ext: exts }),
                r => shm("creating extremes in", ext, r)?,
            };
            let cell = |c| shm("resolving extremes in", ext, ext.int_cell(&key, c));
            for (bank, cols) in [(0, ["c0", "c1", "c2"]), (1, ["c3", "c4", "c5"])] {
                exts[bank] = Some(Ext {
                    has: cell(cols[0])?,
                    min: cell(cols[1])?,
                    max: cell(cols[2])?,
                });
            }
        }
        Ok(Entry { sums, ext: exts })
    }

    /// How many processes have a row (tests check that a forked child gets its own).
    #[cfg(test)]
    pub(crate) fn process_rows(&self) -> usize {
        self.ext
            .iter()
            .filter_map(|r| r.ok())
            .filter(|r| r.key().first() == Some(&b'P'))
            .count()
    }

    /// Takes everything recorded since the last take and resets it (see the module doc).
    /// With `idle_keys`, registered keys with nothing recorded are included (zeroed).
    pub(crate) fn take(&self, idle_keys: bool) -> Result<Harvest> {
        if !self.ext.is_writable() {
            return Err(self.read_only());
        }
        let ext = &self.ext;
        let new_epoch = shm("advancing the epoch in", ext, ext.incr(EPOCH_KEY, "c0", 1))?;
        // The flusher's half of the handshake: the epoch write, then the fence, then
        // reading the recorders' sequence numbers.
        fence(Ordering::SeqCst);
        let bank = (new_epoch.wrapping_sub(1) & 1) as u8;
        let (alive, stragglers) = self.quiesce()?;

        let mut acc = Acc::new();
        for row in self.sums.iter() {
            let row = shm("reading counters of", &self.sums, row)?;
            let key = row.key();
            if key.len() != 19 || key[0] != b'C' || key[17] != bank {
                continue;
            }
            for (i, v) in row.values().iter().enumerate() {
                let v = v.as_int().unwrap_or(0);
                if v != 0 {
                    // Subtract exactly what was read: an add that arrives after the
                    // read (a straggler) stays for the next take of this bank.
                    shm(
                        "resetting counters in",
                        &self.sums,
                        self.sums.incr(key, SUM_COLS[i], v.wrapping_neg()),
                    )?;
                }
            }
            fold_sums(&mut acc, key_id(key), key[18], row.values());
        }

        let mut gone: Vec<Vec<u8>> = Vec::new();
        let mut remaining: HashMap<[u8; 8], usize> = HashMap::new();
        let (has_col, other_has_col) = if bank == 0 { (0, 3) } else { (3, 0) };
        for row in ext.iter() {
            let row = shm("reading extremes of", ext, row)?;
            let key = row.key();
            if key.len() != 25 || key[0] != b'X' {
                continue;
            }
            let mut nonce = [0u8; 8];
            nonce.copy_from_slice(&key[17..]);
            let vals = row.values();
            let int = |i: usize| vals.get(i).and_then(Value::as_int).unwrap_or(0);
            if int(has_col) != 0 {
                fold_extremes(&mut acc, key_id(key), int(has_col + 1), int(has_col + 2));
                shm(
                    "clearing extremes in",
                    ext,
                    ext.store_int(key, EXT_COLS[has_col], 0),
                )?;
            }
            // A process missing from the list registered after it was made: it is
            // alive (and recording in the new bank). Only a listed, exited owner's rows
            // may go, once both banks are harvested; deleting a live owner's row would
            // send its cached cells into a freed slot.
            if alive.get(&nonce).copied().unwrap_or(true) {
                continue;
            }
            if int(other_has_col) != 0 {
                *remaining.entry(nonce).or_default() += 1;
            } else {
                gone.push(key.to_vec());
            }
        }
        for key in &gone {
            shm(
                "deleting extremes of an exited process in",
                ext,
                ext.del(key),
            )?;
        }
        for (nonce, is_alive) in &alive {
            if !is_alive && remaining.get(nonce).copied().unwrap_or(0) == 0 {
                shm(
                    "deleting an exited process in",
                    ext,
                    ext.del(&proc_key(nonce)),
                )?;
            }
        }

        let dropped = shm(
            "reading the drop count in",
            ext,
            ext.load_int(EPOCH_KEY, "c1"),
        )?
        .unwrap_or(0);
        if dropped != 0 {
            shm(
                "resetting the drop count in",
                ext,
                ext.incr(EPOCH_KEY, "c1", -dropped),
            )?;
        }
        Ok(Harvest {
            taken: self.finish(acc, idle_keys)?,
            dropped,
            stragglers,
        })
    }

    /// Waits (bounded) until no process is inside a record begun before the epoch
    /// changed. Returns each process's liveness by nonce, and how many were still
    /// inside a record when the wait ended.
    fn quiesce(&self) -> Result<(HashMap<[u8; 8], bool>, usize)> {
        let ext = &self.ext;
        let mut procs = Vec::new();
        for row in ext.iter() {
            let row = shm("listing processes in", ext, row)?;
            let key = row.key();
            if key.len() != 9 || key[0] != b'P' {
                continue;
            }
            let mut nonce = [0u8; 8];
            nonce.copy_from_slice(&key[1..]);
            let pid = row.int("c1").unwrap_or(0);
            let start = row.int("c2").unwrap_or(0);
            let alive = ProcessId {
                pid: i32::try_from(pid).unwrap_or(0),
                start: u64::try_from(start).unwrap_or(0),
            }
            .is_alive();
            procs.push((nonce, alive));
        }
        let deadline = Instant::now() + QUIESCE_WAIT;
        let mut stragglers = 0;
        for (nonce, alive) in &procs {
            if !alive {
                continue;
            }
            let key = proc_key(nonce);
            let Some(first) = shm("reading a process row in", ext, ext.load_int(&key, "c0"))?
            else {
                continue;
            };
            if first & 1 == 0 {
                continue;
            }
            loop {
                std::thread::sleep(Duration::from_micros(50));
                let now = shm("reading a process row in", ext, ext.load_int(&key, "c0"))?;
                if now != Some(first) {
                    break;
                }
                if Instant::now() >= deadline {
                    stragglers += 1;
                    break;
                }
            }
        }
        Ok((procs.into_iter().collect(), stragglers))
    }

    /// What has accumulated in both banks, without resetting anything (inspection).
    pub(crate) fn peek(&self, idle_keys: bool) -> Result<Vec<Taken>> {
        let mut acc = Acc::new();
        for row in self.sums.iter() {
            let row = shm("reading counters of", &self.sums, row)?;
            let key = row.key();
            if key.len() == 19 && key[0] == b'C' {
                fold_sums(&mut acc, key_id(key), key[18], row.values());
            }
        }
        for row in self.ext.iter() {
            let row = shm("reading extremes of", &self.ext, row)?;
            let key = row.key();
            let vals = row.values();
            let int = |i: usize| vals.get(i).and_then(Value::as_int).unwrap_or(0);
            if key.len() != 25 || key[0] != b'X' {
                continue;
            }
            for has in [0, 3] {
                if int(has) != 0 {
                    fold_extremes(&mut acc, key_id(key), int(has + 1), int(has + 2));
                }
            }
        }
        self.finish(acc, idle_keys)
    }

    /// Pairs accumulations with their blobs; keeps keys with anything recorded, and
    /// with `idle_keys` every registered key.
    fn finish(&self, mut acc: Acc, idle_keys: bool) -> Result<Vec<Taken>> {
        if idle_keys {
            for row in self.keys.iter() {
                let row = shm("listing keys of", &self.keys, row)?;
                if let Ok(id) = <Id>::try_from(row.key()) {
                    acc.entry(id).or_insert_with(|| (Vec::new(), None));
                }
            }
        }
        let mut out = Vec::with_capacity(acc.len());
        for (id, (mut counters, extremes)) in acc {
            if !idle_keys && extremes.is_none() && counters.iter().all(|&c| c == 0) {
                continue;
            }
            let Some(row) = shm("reading a key of", &self.keys, self.keys.get(&id))? else {
                continue;
            };
            let Some(blob) = row.bytes("blob") else {
                continue;
            };
            let n = usize::try_from(row.int("counters").unwrap_or(0)).unwrap_or(0);
            counters.resize(n, 0);
            out.push(Taken {
                blob: blob.to_vec(),
                counters,
                extremes,
            });
        }
        out.sort_by(|a, b| a.blob.cmp(&b.blob));
        Ok(out)
    }
}

/// Forking helpers for the multi-process tests of this module and its siblings.
#[cfg(test)]
pub(crate) mod forktest {
    use std::time::{Duration, Instant};

    use tarsfork_shm::{Column, Schema, Table};

    /// Forks `n` children; child `i` runs `body(i)` and exits with 0 if it returned
    /// true, 1 otherwise (without running the parent's destructors).
    pub(crate) fn spawn(n: usize, body: impl Fn(usize) -> bool) -> Vec<libc::pid_t> {
        warm_up_shm();
        (0..n)
            .map(|i| {
                // SAFETY: the child only runs `body` (our own code on an inherited shm
                // mapping) and leaves with _exit; glibc keeps malloc usable after fork.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(i)))
                        .unwrap_or(false);
                    // SAFETY: ends the child at once, skipping the parent's destructors
                    // (which would remove the parent's temp dir).
                    unsafe { libc::_exit(if ok { 0 } else { 1 }) };
                }
                pid
            })
            .collect()
    }

    /// Makes this (multi-threaded, test harness) process finish the shm crate's one-time
    /// fork-handler registration before forking: a child forked while another thread is
    /// inside that `Once` would wait for it forever. Servers fork single-threaded and
    /// never meet this.
    fn warm_up_shm() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::new(vec![Column::int("x")]).unwrap();
        let t = Table::create(&dir.path().join("warm"), &schema, 1).unwrap();
        // The second incr is lock-free, which registers the fork handler.
        t.incr(b"k", "x", 1).unwrap();
        t.incr(b"k", "x", 1).unwrap();
    }

    /// Waits for every child up to `limit`; kills the rest with SIGKILL on timeout.
    /// Returns whether every child exited with status 0 in time.
    pub(crate) fn wait_all(pids: &[libc::pid_t], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut pending: Vec<libc::pid_t> = pids.to_vec();
        let mut ok = true;
        while !pending.is_empty() {
            pending.retain(|&pid| {
                let mut status = 0;
                // SAFETY: polls our own child without blocking.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    ok &= libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                    return false;
                }
                r == 0
            });
            if Instant::now() >= deadline {
                for &pid in &pending {
                    // SAFETY: kills and reaps our own child that overran the limit.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                }
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        counters: 20,
        extremes: true,
    };

    fn store(dir: &Path) -> Store {
        Store::create(
            dir,
            "t",
            Capacity {
                keys: 16,
                processes: 4,
            },
            20,
        )
        .unwrap()
    }

    #[test]
    fn counters_span_chunks_and_extremes_are_true() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for v in [7, 0, 3] {
            s.record(
                SHAPE,
                |b| b.extend_from_slice(b"k1"),
                &[(0, 1), (19, v)],
                Some(v),
            )
            .unwrap();
        }
        let h = s.take(false).unwrap();
        assert_eq!(h.taken.len(), 1);
        let t = &h.taken[0];
        assert_eq!(t.blob, b"k1");
        assert_eq!(t.counters.len(), 20);
        assert_eq!((t.counters[0], t.counters[19]), (3, 10));
        assert_eq!(t.extremes, Some((0, 7)));
        // Taken means reset: nothing is left, and the next period starts empty.
        assert!(s.take(false).unwrap().taken.is_empty());
        assert!(s.peek(false).unwrap().is_empty());
        assert_eq!(s.peek(true).unwrap().len(), 1);
        s.record(SHAPE, |b| b.extend_from_slice(b"k1"), &[(0, 1)], Some(42))
            .unwrap();
        let h = s.take(false).unwrap();
        assert_eq!(h.taken[0].extremes, Some((42, 42)));
        assert_eq!(h.taken[0].counters[0], 1);
    }

    #[test]
    fn shape_mismatch_and_long_keys_are_errors_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.record(SHAPE, |b| b.push(1), &[(0, 1)], None).unwrap();
        let other = Shape {
            counters: 2,
            extremes: false,
        };
        // A second process sees the registered shape (this one has the key cached).
        let s2 = Store::open(dir.path(), "t").unwrap();
        assert!(matches!(
            s2.record(other, |b| b.push(1), &[(0, 1)], None),
            Err(StoreError::Collision { .. })
        ));
        assert!(matches!(
            s.record(SHAPE, |b| b.resize(BLOB_MAX + 1, 0), &[], None),
            Err(StoreError::KeyTooLong { .. })
        ));
        assert_eq!(s.take(false).unwrap().dropped, 2);
        let ro = Store::open_readonly(dir.path(), "t").unwrap();
        assert!(matches!(ro.take(false), Err(StoreError::ReadOnly { .. })));
        assert!(matches!(
            ro.record(SHAPE, |b| b.push(1), &[], None),
            Err(StoreError::ReadOnly { .. })
        ));
    }

    #[test]
    fn rows_of_exited_processes_are_harvested_then_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let kids = forktest::spawn(3, |i| {
            let v = 10 + i as i64;
            s.record(SHAPE, |b| b.extend_from_slice(b"k"), &[(0, 1)], Some(v))
                .is_ok()
        });
        assert!(forktest::wait_all(&kids, Duration::from_secs(30)));
        // Three P rows and three X rows, plus G.
        assert_eq!(s.ext.len(), 1 + 3 + 3);
        let h = s.take(false).unwrap();
        assert_eq!(h.taken[0].counters[0], 3);
        assert_eq!(h.taken[0].extremes, Some((10, 12)));
        assert_eq!(h.stragglers, 0);
        // Both banks of the exited processes are harvested: their rows are gone.
        assert_eq!(s.ext.len(), 1);
        assert!(s.take(false).unwrap().taken.is_empty());
        s.ext.verify().unwrap();
    }

    #[test]
    fn a_full_extremes_table_keeps_counts_exact() {
        let dir = tempfile::tempdir().unwrap();
        let cap = Capacity {
            keys: 16,
            processes: 1,
        };
        let s = Store::create(dir.path(), "t", cap, 1).unwrap();
        let shape = Shape {
            counters: 1,
            extremes: true,
        };
        // 5 processes × 16 keys want 80 extremes rows; the table holds 64, two of
        // them kept for process rows. One after the other, so that the outcome is
        // deterministic: the fifth process still gets its process row.
        for k in 0..5i64 {
            let kids = forktest::spawn(1, |_| {
                (0..16u8).all(|key| s.record(shape, |b| b.push(key), &[(0, 1)], Some(k)).is_ok())
            });
            assert!(forktest::wait_all(&kids, Duration::from_secs(60)));
        }
        assert_eq!(s.process_rows(), 5);
        assert_eq!(s.ext.len(), s.ext.capacity() - 1);
        let h = s.take(false).unwrap();
        assert_eq!(h.dropped, 0);
        assert_eq!(h.taken.len(), 16);
        for t in &h.taken {
            assert_eq!(t.counters, vec![5]);
            // The first three processes had room for every key; the fifth for none.
            let (lo, hi) = t.extremes.expect("some process had room");
            assert_eq!(lo, 0);
            assert!(hi == 2 || hi == 3, "{hi}");
        }
    }
}
