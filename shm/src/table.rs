//! The table: create/open, lock-free lookups and counters, locked inserts/deletes/sets.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cell::IntCell;
use crate::error::{Result, ShmError};
use crate::hazard::Fast;
use crate::layout::*;
use crate::lock::{crash_point, Backoff, OP_DELETE, OP_INSERT, OP_SET};
use crate::mem::Region;
use crate::procinfo::{make_token, my_token, token_alive};
use crate::schema::{Column, ColumnKind, Row, Schema, Value};

/// Lock-free lookups that keep racing with slot reuse give up after this many restarts
/// and look the key up under the lock, where nothing moves.
pub(crate) const MAX_RESTARTS: usize = 64;
/// How long a read-only reader waits for a half-written row before giving up.
const READONLY_WAIT: Duration = Duration::from_secs(1);

/// The shared state behind a [`Table`] (and its cell handles).
pub(crate) struct Inner {
    pub(crate) region: Region,
    pub(crate) geo: Geometry,
    pub(crate) schema: Arc<Schema>,
    pub(crate) path: PathBuf,
    pub(crate) seed: u64,
    pub(crate) owner: u64,
    /// Tells this process's `Inner`s apart in thread-local hazard registrations.
    pub(crate) uid: u64,
}

/// State of a reader waiting for a row's writer.
struct RowWait {
    started: Instant,
    last_check: Instant,
    backoff: Backoff,
}

/// The outcome of one lock-free walk of a chain.
pub(crate) enum Walk {
    Found(usize, u64),
    Missing,
    Restart,
}

impl Inner {
    #[inline]
    pub(crate) fn w(&self, off: usize) -> &AtomicU64 {
        self.region.u64_at(off)
    }

    #[inline]
    pub(crate) fn slot_w(&self, slot: usize, field: usize) -> &AtomicU64 {
        self.region.u64_at(self.geo.slot(slot) + field)
    }

    /// The read-mostly words of a slot (kgen, seq, hash, link, key).
    #[inline]
    pub(crate) fn meta(&self, slot: usize) -> &[AtomicU64; META_WORDS] {
        self.region.u64_array(self.geo.slot(slot))
    }

    /// A slot's chain link: (next, bucket).
    #[inline]
    pub(crate) fn link_of(&self, slot: usize) -> (u32, u32) {
        split_link(self.slot_w(slot, S_LINK).load(Ordering::Acquire))
    }

    #[inline]
    pub(crate) fn kgen(&self, slot: usize) -> &AtomicU64 {
        self.slot_w(slot, S_KGEN)
    }

    #[inline]
    pub(crate) fn cell(&self, slot: usize, w: usize) -> &AtomicU64 {
        self.region.u64_at(self.geo.cell(slot, w))
    }

    #[inline]
    fn head(&self, bucket: usize) -> &AtomicU32 {
        self.region.u32_at(self.geo.bucket(bucket))
    }

    #[inline]
    fn bucket_of(&self, hash: u64) -> usize {
        (hash as usize) & (self.geo.n_buckets - 1)
    }

    /// Decodes a chain link (slot index + 1, 0 = end), refusing out-of-range values.
    fn link(&self, raw: u32) -> Result<Option<usize>> {
        match raw as usize {
            0 => Ok(None),
            n if n <= self.geo.slots => Ok(Some(n - 1)),
            n => Err(ShmError::Corrupt(format!(
                "chain link {n} beyond the last slot"
            ))),
        }
    }

    /// One lock-free walk of the key's chain. Each slot's fields are read between two
    /// loads of its incarnation; a change, a slot being reinitialised (kgen % 4 == 2),
    /// or a slot that now belongs to another bucket means the walk raced with reuse and
    /// must restart. Free slots are walked through: their `next` stays valid until reuse.
    #[inline]
    pub(crate) fn walk(&self, key: &KeyBuf, hash: u64) -> Walk {
        let b = self.bucket_of(hash);
        let mut cur = self.head(b).load(Ordering::Acquire) as usize;
        let mut steps = 0usize;
        while cur != 0 {
            let i = cur - 1;
            steps += 1;
            if i >= self.geo.slots || steps > self.geo.slots {
                return Walk::Restart;
            }
            let meta = self.meta(i);
            let kg = meta[S_KGEN / 8].load(Ordering::Acquire);
            if kg % 4 == 2 {
                return Walk::Restart;
            }
            let (next, sb) = split_link(meta[S_LINK / 8].load(Ordering::Relaxed));
            let mut matched = false;
            if kg % 2 == 1
                && meta[S_HASH / 8].load(Ordering::Relaxed) == hash
                && meta[S_KEYLEN / 8].load(Ordering::Relaxed) == key.len as u64
            {
                let stored = &meta[S_KEY / 8..S_KEY / 8 + KEY_WORDS];
                matched = stored
                    .iter()
                    .zip(&key.words[..key.nwords()])
                    .all(|(s, k)| s.load(Ordering::Relaxed) == *k);
            }
            fence(Ordering::Acquire);
            if meta[S_KGEN / 8].load(Ordering::Relaxed) != kg || sb as usize != b {
                return Walk::Restart;
            }
            if matched {
                return Walk::Found(i, kg);
            }
            cur = next as usize;
        }
        Walk::Missing
    }

    /// Finds a live row without taking the lock: (slot, incarnation).
    #[inline]
    pub(crate) fn find(&self, key: &KeyBuf, hash: u64) -> Result<Option<(usize, u64)>> {
        for _ in 0..MAX_RESTARTS {
            match self.walk(key, hash) {
                Walk::Found(i, kg) => return Ok(Some((i, kg))),
                Walk::Missing => return Ok(None),
                Walk::Restart => std::hint::spin_loop(),
            }
        }
        if self.region.writable() {
            let _guard = self.lock()?;
            return self.find_locked(key, hash);
        }
        Err(ShmError::Busy("a lookup racing with constant slot reuse"))
    }

    /// Finds a row while holding the lock (nothing moves, so one walk is final).
    pub(crate) fn find_locked(&self, key: &KeyBuf, hash: u64) -> Result<Option<(usize, u64)>> {
        match self.walk(key, hash) {
            Walk::Found(i, kg) => Ok(Some((i, kg))),
            Walk::Missing => Ok(None),
            Walk::Restart => Err(ShmError::Corrupt(format!(
                "chain of bucket {} is broken or cyclic",
                self.bucket_of(hash)
            ))),
        }
    }

    /// Whether `slot` is linked into `bucket`'s chain. Caller holds the lock.
    pub(crate) fn chain_contains(&self, bucket: usize, slot: usize) -> Result<bool> {
        let mut cur = self.link(self.head(bucket).load(Ordering::Acquire))?;
        let mut steps = 0;
        while let Some(i) = cur {
            if i == slot {
                return Ok(true);
            }
            steps += 1;
            if steps > self.geo.slots {
                return Err(ShmError::Corrupt(format!(
                    "chain of bucket {bucket} is cyclic"
                )));
            }
            cur = self.link(self.link_of(i).0)?;
        }
        Ok(false)
    }

    /// Unlinks `slot` from `bucket`'s chain. Caller holds the lock. The slot keeps its
    /// own `next`, so a reader standing on it can still walk on.
    pub(crate) fn unlink(&self, bucket: usize, slot: usize) -> Result<()> {
        let next = self.link_of(slot).0;
        let head = self.head(bucket);
        if self.link(head.load(Ordering::Acquire))? == Some(slot) {
            head.store(next, Ordering::Release);
            return Ok(());
        }
        let mut cur = self.link(head.load(Ordering::Acquire))?;
        let mut steps = 0;
        while let Some(i) = cur {
            let (raw, bucket_of_i) = self.link_of(i);
            let n = self.link(raw)?;
            if n == Some(slot) {
                self.slot_w(i, S_LINK)
                    .store(make_link(next, bucket_of_i), Ordering::Release);
                return Ok(());
            }
            steps += 1;
            if steps > self.geo.slots {
                return Err(ShmError::Corrupt(format!(
                    "chain of bucket {bucket} is cyclic"
                )));
            }
            cur = n;
        }
        Err(ShmError::Corrupt(format!(
            "slot {slot} not found in bucket {bucket}"
        )))
    }

    /// Finds a free slot that no lock-free writer has published. Caller holds the lock
    /// and has checked that fewer than `capacity` rows are live, so at least
    /// `SPARE_SLOTS + 1` slots are free, and each of the at most `HAZ_ENTRIES` (=
    /// `SPARE_SLOTS`) entries pins at most one of them: one scan always finds one.
    fn find_free(&self) -> Result<usize> {
        let cap = self.geo.slots;
        let start = (self.w(H_CURSOR).load(Ordering::Relaxed) as usize) % cap;
        for n in 0..cap {
            let i = (start + n) % cap;
            if self.kgen(i).load(Ordering::Acquire) % 4 != 0 {
                continue;
            }
            // A writer that looked the old row up may still add to its cells: reusing
            // the slot now could corrupt the new row.
            if crate::hazard::published(self, i) {
                continue;
            }
            self.w(H_CURSOR).store((i + 1) as u64, Ordering::Relaxed);
            return Ok(i);
        }
        Err(ShmError::Corrupt(
            "row count below capacity but no free slot that no writer pins".into(),
        ))
    }

    /// Inserts a new row (the key is known missing). Caller holds the lock.
    fn insert_locked(&self, key: &KeyBuf, hash: u64, image: &[u64]) -> Result<usize> {
        let count = self.w(H_COUNT).load(Ordering::Acquire);
        if count >= self.geo.capacity as u64 {
            return Err(ShmError::Full {
                capacity: self.geo.capacity,
            });
        }
        let i = self.find_free()?;
        let b = self.bucket_of(hash);
        self.begin(OP_INSERT, i, b, 0, 0);
        crash_point!(1);
        let kg = self.kgen(i).load(Ordering::Acquire);
        // Free -> being initialised: walkers that meet it restart.
        self.kgen(i).store(kg.wrapping_add(2), Ordering::Relaxed);
        fence(Ordering::Release);
        crash_point!(2);
        self.slot_w(i, S_HASH).store(hash, Ordering::Relaxed);
        self.slot_w(i, S_KEYLEN)
            .store(key.len as u64, Ordering::Relaxed);
        for (w, word) in key.words.iter().enumerate() {
            self.slot_w(i, S_KEY + w * 8)
                .store(*word, Ordering::Relaxed);
        }
        let head = self.head(b).load(Ordering::Acquire);
        self.slot_w(i, S_LINK)
            .store(make_link(head, b as u32), Ordering::Relaxed);
        for (w, word) in image.iter().enumerate() {
            self.cell(i, w).store(*word, Ordering::Relaxed);
        }
        crash_point!(3);
        // Live, then reachable: a slot is never linked before it is complete.
        self.kgen(i).store(kg.wrapping_add(3), Ordering::Release);
        crash_point!(4);
        self.head(b).store((i + 1) as u32, Ordering::Release);
        crash_point!(5);
        self.w(H_COUNT)
            .store(count.saturating_add(1), Ordering::Release);
        crash_point!(6);
        self.end();
        Ok(i)
    }

    /// Deletes the live row in `slot`. Caller holds the lock.
    fn delete_locked(&self, slot: usize) -> Result<()> {
        let b = self.link_of(slot).1 as usize;
        if b >= self.geo.n_buckets {
            return Err(ShmError::Corrupt(format!("slot {slot} names bucket {b}")));
        }
        let count = self.w(H_COUNT).load(Ordering::Acquire);
        self.begin(OP_DELETE, slot, b, 0, 0);
        crash_point!(11);
        // Free first, so lock-free writers' re-check fails from now on; then unlink.
        self.make_free(slot);
        crash_point!(12);
        self.unlink(b, slot)?;
        crash_point!(13);
        self.w(H_COUNT)
            .store(count.saturating_sub(1), Ordering::Release);
        crash_point!(14);
        self.end();
        Ok(())
    }

    /// Overwrites the masked cells of a live row under its seqlock. Caller holds the lock.
    fn update_locked(&self, slot: usize, mask: u32, image: &[u64]) -> Result<()> {
        for (w, word) in image.iter().enumerate() {
            self.w(self.geo.image_off + w * 8)
                .store(*word, Ordering::Relaxed);
        }
        crash_point!(21);
        let seq = self.slot_w(slot, S_SEQ).load(Ordering::Acquire);
        self.begin(OP_SET, slot, 0, seq, mask);
        crash_point!(22);
        self.slot_w(slot, S_SEQ)
            .store(seq.wrapping_add(1), Ordering::Relaxed);
        crash_point!(23);
        // Step 24 stops after the first column, leaving the row half written.
        let first = mask & mask.wrapping_neg();
        self.write_cells(slot, first, |w| image[w]);
        crash_point!(24);
        self.write_cells(slot, mask & !first, |w| image[w]);
        crash_point!(25);
        self.slot_w(slot, S_SEQ)
            .store(seq.wrapping_add(2), Ordering::Release);
        crash_point!(26);
        self.end();
        Ok(())
    }

    /// Waits while a row's seqlock is held by a writer (`seq` is the odd value seen).
    /// Every millisecond it looks at the lock: a dead holder is recovered (read-write
    /// handles; taking the lock repairs the half-done set), a free lock with the seqlock
    /// still at the same odd value means no writer exists (a damaged file), and a
    /// read-only handle gives up after `READONLY_WAIT`. A live writer, even a stopped
    /// one, is waited for.
    fn wait_for_writer(&self, slot: usize, seq: u64, wait: &mut RowWait) -> Result<()> {
        wait.backoff.snooze();
        if wait.last_check.elapsed() < Duration::from_millis(1) {
            return Ok(());
        }
        wait.last_check = Instant::now();
        let holder = self.lock_holder();
        if holder == 0 && self.slot_w(slot, S_SEQ).load(Ordering::Acquire) == seq {
            return Err(ShmError::Corrupt(format!(
                "slot {slot} seqlock is open but nobody holds the lock"
            )));
        }
        if self.region.writable() {
            if holder != 0 && !crate::procinfo::token_alive(holder) {
                drop(self.lock()?);
            }
        } else if wait.started.elapsed() >= READONLY_WAIT {
            return Err(ShmError::Busy(
                "a row being written (a dead writer is repaired by read-write handles)",
            ));
        }
        Ok(())
    }

    /// Reads the cells (and the key if asked) of a live row consistently: between two
    /// equal even seqlock values and an unchanged incarnation. None if the row is gone.
    pub(crate) fn read_row(
        &self,
        slot: usize,
        kg: u64,
        with_key: bool,
    ) -> Result<Option<(Vec<u8>, Vec<u64>)>> {
        let mut image = vec![0u64; self.geo.row_words];
        let mut key_words = [0u64; KEY_WORDS];
        let mut wait = RowWait {
            started: Instant::now(),
            last_check: Instant::now(),
            backoff: Backoff::new(),
        };
        loop {
            if self.kgen(slot).load(Ordering::Acquire) != kg {
                return Ok(None);
            }
            let s1 = self.slot_w(slot, S_SEQ).load(Ordering::Acquire);
            if s1 % 2 == 1 {
                self.wait_for_writer(slot, s1, &mut wait)?;
                continue;
            }
            for (w, word) in image.iter_mut().enumerate() {
                *word = self.cell(slot, w).load(Ordering::Relaxed);
            }
            let mut key_len = 0u64;
            if with_key {
                key_len = self.slot_w(slot, S_KEYLEN).load(Ordering::Relaxed);
                for (w, word) in key_words.iter_mut().enumerate() {
                    *word = self.slot_w(slot, S_KEY + w * 8).load(Ordering::Relaxed);
                }
            }
            fence(Ordering::Acquire);
            if self.slot_w(slot, S_SEQ).load(Ordering::Relaxed) != s1
                || self.kgen(slot).load(Ordering::Relaxed) != kg
            {
                continue;
            }
            let key = if with_key {
                let len = usize::try_from(key_len)
                    .ok()
                    .filter(|l| *l <= MAX_KEY_LEN)
                    .ok_or_else(|| {
                        ShmError::Corrupt(format!("slot {slot} key length {key_len}"))
                    })?;
                crate::schema::unpack_bytes(&key_words, len)
            } else {
                Vec::new()
            };
            return Ok(Some((key, image)));
        }
    }

    fn decode(&self, slot: usize, key: Vec<u8>, image: &[u64]) -> Result<Row> {
        let values = self
            .schema
            .decode(image)
            .ok_or_else(|| ShmError::Corrupt(format!("slot {slot} has an over-long string")))?;
        Ok(Row {
            key,
            values,
            schema: Arc::clone(&self.schema),
        })
    }
}

/// A fixed-capacity shared-memory hash table of typed rows (see the crate docs).
///
/// `Table` is cheap to clone (it shares one mapping). A `Table` created or opened before
/// `fork()` stays valid in the children: the mapping is MAP_SHARED.
#[derive(Clone)]
pub struct Table {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.inner.path)
            .field("capacity", &self.inner.geo.capacity)
            .field("writable", &self.inner.region.writable())
            .finish()
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ShmError + 'a {
    move |source| ShmError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Table {
    /// Creates the table file (`O_EXCL`, mode 0600) sized for `capacity` rows, and maps
    /// it shared. The calling process becomes the owner. Call it before forking.
    pub fn create(path: &Path, schema: &Schema, capacity: usize) -> Result<Table> {
        let geo = Geometry::new(schema, capacity)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err("create table file", path))?;
        Self::init_or_remove(file, path, schema, geo, || {
            let _ = std::fs::remove_file(path);
        })
    }

    /// Like [`Table::create`], for the file `name` in the directory open as `dir`
    /// (whose path, `dir_path`, is only used to name the table in messages): the file is
    /// made with `O_EXCL | O_NOFOLLOW` relative to the descriptor, so nothing planted at
    /// the name, and no rename of the directory, can redirect it.
    pub fn create_at(
        dir: BorrowedFd<'_>,
        dir_path: &Path,
        name: &str,
        schema: &Schema,
        capacity: usize,
    ) -> Result<Table> {
        let path = dir_path.join(name);
        let geo = Geometry::new(schema, capacity)?;
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        let file = crate::mem::open_at(dir, name, flags, 0o600)
            .map_err(io_err("create table file", &path))?;
        Self::init_or_remove(file, &path, schema, geo, || {
            let _ = crate::mem::unlink_at(dir, name);
        })
    }

    fn init_or_remove(
        file: File,
        path: &Path,
        schema: &Schema,
        geo: Geometry,
        remove: impl FnOnce(),
    ) -> Result<Table> {
        match Self::init(file, path, schema, geo) {
            Ok(t) => Ok(t),
            Err(e) => {
                // Never leave a half-made table behind for others to open.
                remove();
                Err(e)
            }
        }
    }

    fn init(file: File, path: &Path, schema: &Schema, geo: Geometry) -> Result<Table> {
        // The umask may only have narrowed 0600; make it exactly 0600 anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod table file", path))?;
        file.set_len(geo.total as u64)
            .map_err(io_err("size table file", path))?;
        let region =
            Region::map(&file, geo.total, true).map_err(io_err("mmap table file", path))?;
        let owner = my_token();
        let seed = RandomState::new().hash_one(owner);
        let inner = Inner {
            region,
            geo,
            schema: Arc::new(schema.clone()),
            path: path.to_owned(),
            seed,
            owner,
            uid: crate::hazard::NEXT_UID.fetch_add(1, Ordering::Relaxed),
        };
        let put = |off: usize, v: u64| inner.w(off).store(v, Ordering::Relaxed);
        put(H_VERSION, LAYOUT_VERSION);
        put(H_HEADER_SIZE, HEADER_SIZE as u64);
        put(H_CAPACITY, geo.capacity as u64);
        put(H_BUCKETS, geo.n_buckets as u64);
        put(H_COLUMNS, schema.columns().len() as u64);
        put(H_ROW_WORDS, geo.row_words as u64);
        put(H_SLOT_SIZE, geo.slot_size as u64);
        put(H_BUCKETS_OFF, geo.buckets_off as u64);
        put(H_IMAGE_OFF, geo.image_off as u64);
        put(H_SLOTS_OFF, geo.slots_off as u64);
        put(H_TOTAL, geo.total as u64);
        put(H_OWNER_PID, u64::from(crate::procinfo::token_pid(owner)));
        put(H_OWNER_START, crate::procinfo::token_start(owner));
        put(H_SEED, seed);
        for (c, col) in schema.columns().iter().enumerate() {
            let base = H_COLDESC + c * COLDESC_SIZE;
            let mut name = [0u64; 4];
            crate::schema::pack_bytes(col.name().as_bytes(), &mut name);
            for (w, word) in name.iter().enumerate() {
                put(base + w * 8, *word);
            }
            put(base + 32, col.kind().code());
            put(base + 40, col.kind().max_len() as u64);
        }
        // The magic goes last: an opener that sees it sees the whole header.
        inner.w(H_MAGIC).store(MAGIC, Ordering::Release);
        Ok(Table {
            inner: Arc::new(inner),
        })
    }

    /// Opens an existing table read-write, validating the header. Fails with
    /// [`ShmError::OwnerGone`] if the creating process has exited.
    pub fn open(path: &Path) -> Result<Table> {
        Self::open_impl(path, true, None)
    }

    /// Like [`Table::open`], and also checks that the table has exactly `schema`.
    pub fn open_with_schema(path: &Path, schema: &Schema) -> Result<Table> {
        Self::open_impl(path, true, Some(schema))
    }

    /// Opens a table read-only for inspection (works even if the owner is gone). Every
    /// write returns [`ShmError::ReadOnly`]; reads never block longer than about 1 s.
    pub fn open_readonly(path: &Path) -> Result<Table> {
        Self::open_impl(path, false, None)
    }

    /// Like [`Table::open_readonly`], for the file `name` in the directory open as
    /// `dir` (`O_NOFOLLOW`, relative to the descriptor; `dir_path` names it in messages).
    pub fn open_readonly_at(dir: BorrowedFd<'_>, dir_path: &Path, name: &str) -> Result<Table> {
        let path = dir_path.join(name);
        let file = crate::mem::open_at(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(io_err("open table file", &path))?;
        Self::open_file(file, &path, false, None)
    }

    fn open_impl(path: &Path, writable: bool, expect: Option<&Schema>) -> Result<Table> {
        // O_NONBLOCK: opening a FIFO someone put at the path must not hang (regular
        // files ignore the flag).
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io_err("open table file", path))?;
        Self::open_file(file, path, writable, expect)
    }

    fn open_file(
        file: File,
        path: &Path,
        writable: bool,
        expect: Option<&Schema>,
    ) -> Result<Table> {
        let meta = file.metadata().map_err(io_err("stat table file", path))?;
        let bad = |what: String| ShmError::BadHeader {
            path: path.to_owned(),
            what,
        };
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let len = meta.len();
        if len < HEADER_SIZE as u64 {
            return Err(bad(format!(
                "file of {len} bytes is shorter than the header"
            )));
        }
        // Map the header alone first: the file's size is not trusted until the header
        // has been checked against it.
        let header =
            Region::map(&file, HEADER_SIZE, false).map_err(io_err("mmap table header", path))?;
        let get = |off: usize| header.u64_at(off).load(Ordering::Acquire);
        if get(H_MAGIC) != MAGIC {
            return Err(ShmError::BadMagic {
                path: path.to_owned(),
            });
        }
        let version = get(H_VERSION);
        if version != LAYOUT_VERSION {
            return Err(ShmError::Version {
                path: path.to_owned(),
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let n_cols = get(H_COLUMNS);
        if n_cols == 0 || n_cols > crate::schema::MAX_COLUMNS as u64 {
            return Err(bad(format!("{n_cols} columns")));
        }
        let mut columns = Vec::new();
        for c in 0..n_cols as usize {
            let base = H_COLDESC + c * COLDESC_SIZE;
            let words: Vec<u64> = (0..4).map(|w| get(base + w * 8)).collect();
            let mut name = crate::schema::unpack_bytes(&words, 32);
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            name.truncate(end);
            let name = String::from_utf8(name)
                .map_err(|_| bad(format!("column {c} name is not UTF-8")))?;
            let kind = ColumnKind::from_code(get(base + 32), get(base + 40))
                .ok_or_else(|| bad(format!("column {name:?} has an unknown type")))?;
            columns.push(match kind {
                ColumnKind::Int => Column::int(&name),
                ColumnKind::Float => Column::float(&name),
                ColumnKind::Str { max_len } => Column::string(&name, max_len),
            });
        }
        let schema = Schema::new(columns).map_err(|e| bad(e.to_string()))?;
        let capacity = usize::try_from(get(H_CAPACITY)).map_err(|_| bad("capacity".into()))?;
        let geo = Geometry::new(&schema, capacity).map_err(|e| bad(e.to_string()))?;
        let recorded = [
            (H_HEADER_SIZE, HEADER_SIZE, "header size"),
            (H_BUCKETS, geo.n_buckets, "bucket count"),
            (H_ROW_WORDS, geo.row_words, "row size"),
            (H_SLOT_SIZE, geo.slot_size, "slot size"),
            (H_BUCKETS_OFF, geo.buckets_off, "bucket offset"),
            (H_IMAGE_OFF, geo.image_off, "image offset"),
            (H_SLOTS_OFF, geo.slots_off, "slot offset"),
            (H_TOTAL, geo.total, "total size"),
        ];
        for (off, want, what) in recorded {
            if get(off) != want as u64 {
                return Err(bad(format!(
                    "{what} {} does not match the schema ({want})",
                    get(off)
                )));
            }
        }
        if len != geo.total as u64 {
            return Err(bad(format!(
                "file is {len} bytes, the header says {}",
                geo.total
            )));
        }
        if let Some(want) = expect {
            check_schema(path, want, &schema)?;
        }
        let owner_pid = u32::try_from(get(H_OWNER_PID)).map_err(|_| bad("owner pid".into()))?;
        let owner = make_token(owner_pid, get(H_OWNER_START));
        let seed = get(H_SEED);
        drop(header);
        if writable && !token_alive(owner) {
            return Err(ShmError::OwnerGone {
                path: path.to_owned(),
                pid: owner_pid,
            });
        }
        let region =
            Region::map(&file, geo.total, writable).map_err(io_err("mmap table file", path))?;
        Ok(Table {
            inner: Arc::new(Inner {
                region,
                geo,
                schema: Arc::new(schema),
                path: path.to_owned(),
                seed,
                owner,
                uid: crate::hazard::NEXT_UID.fetch_add(1, Ordering::Relaxed),
            }),
        })
    }

    #[inline]
    fn key(&self, key: &[u8]) -> Result<(KeyBuf, u64)> {
        let k = KeyBuf::new(key)?;
        let h = hash_key(self.inner.seed, &k.words, k.len);
        Ok((k, h))
    }

    fn writable(&self) -> Result<()> {
        if self.inner.region.writable() {
            Ok(())
        } else {
            Err(ShmError::ReadOnly)
        }
    }

    /// Sets the named columns of `key`'s row, inserting the row (other cells zero) if it
    /// is missing. The whole update is visible at once to readers.
    pub fn set(&self, key: &[u8], values: &[(&str, Value)]) -> Result<()> {
        self.writable()?;
        let (k, h) = self.key(key)?;
        let (mask, image) = self.inner.schema.encode(values)?;
        let inner = &*self.inner;
        let _guard = inner.lock()?;
        match inner.find_locked(&k, h)? {
            Some((slot, _)) => inner.update_locked(slot, mask, &image)?,
            None => {
                inner.insert_locked(&k, h, &image)?;
            }
        }
        Ok(())
    }

    /// A consistent copy of `key`'s row, or None.
    pub fn get(&self, key: &[u8]) -> Result<Option<Row>> {
        let (k, h) = self.key(key)?;
        let inner = &*self.inner;
        for _ in 0..MAX_RESTARTS {
            let Some((slot, kg)) = inner.find(&k, h)? else {
                return Ok(None);
            };
            if let Some((_, image)) = inner.read_row(slot, kg, false)? {
                return inner.decode(slot, key.to_vec(), &image).map(Some);
            }
        }
        Err(ShmError::Busy(
            "a row that keeps being deleted and reinserted",
        ))
    }

    /// Runs a lock-free single-cell operation on `key`'s row; if the row is missing,
    /// `create` gives the initial image and result, inserted under the lock.
    fn cell_op<R>(
        &self,
        key: &[u8],
        word: usize,
        hot: Option<&str>,
        op: impl Fn(&AtomicU64) -> R,
        create: Option<&dyn Fn() -> (Vec<u64>, R)>,
    ) -> Result<Option<R>> {
        if key.len() > MAX_KEY_LEN {
            return Err(ShmError::KeyTooLong {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        match crate::hazard::fast_op(&self.inner, key, word, hot, &op) {
            Fast::Done(r) => return Ok(Some(r)),
            Fast::Missing if create.is_none() => return Ok(None),
            Fast::Missing | Fast::Locked => {}
        }
        // A missing row (or no hazard entry to be had): under the lock no row can be
        // deleted or inserted, so the cell can be used directly.
        let inner = &*self.inner;
        let k = KeyBuf::pack(key);
        let h = hash_key(inner.seed, &k.words, k.len);
        let _guard = inner.lock()?;
        if let Some((slot, _)) = inner.find_locked(&k, h)? {
            return Ok(Some(op(inner.cell(slot, word))));
        }
        let Some(create) = create else {
            return Ok(None);
        };
        let (image, r) = create();
        inner.insert_locked(&k, h, &image)?;
        Ok(Some(r))
    }

    /// Adds `delta` to an int cell (wrapping) and returns the new value; creates a zeroed
    /// row first if `key` is missing. Lock-free when the row exists.
    #[inline]
    pub fn incr(&self, key: &[u8], column: &str, delta: i64) -> Result<i64> {
        // Repeated `incr`s of one row (a counter) take the thread's hot-row shortcut,
        // kept inline and small; it is only ever armed by `incr_full` on a writable table.
        match crate::hot::hot_incr(&self.inner, key, column, delta) {
            Some(v) => Ok(v),
            None => self.incr_full(key, column, delta),
        }
    }

    /// `incr` without the shortcut: resolves the column, then the lock-free path (which
    /// arms the shortcut), else the lock.
    #[inline(never)]
    fn incr_full(&self, key: &[u8], column: &str, delta: i64) -> Result<i64> {
        self.writable()?;
        let inner = &*self.inner;
        let word = match inner.schema.word_of(column, ColumnKind::Int) {
            Some(word) => word,
            None => inner.schema.offset(inner.schema.int_column(column)?),
        };
        let rows = inner.geo.row_words;
        let create = move || {
            let mut image = vec![0u64; rows];
            image[word] = delta as u64;
            (image, delta)
        };
        let r = self.cell_op(
            key,
            word,
            Some(column),
            |cell| (cell.fetch_add(delta as u64, Ordering::AcqRel) as i64).wrapping_add(delta),
            Some(&create),
        )?;
        r.ok_or(ShmError::KeyNotFound)
    }

    /// `incr` by `-delta`.
    pub fn decr(&self, key: &[u8], column: &str, delta: i64) -> Result<i64> {
        self.incr(key, column, delta.wrapping_neg())
    }

    /// Adds `delta` to a float cell (compare-and-swap loop) and returns the new value;
    /// creates a zeroed row first if `key` is missing. Lock-free when the row exists.
    pub fn incr_float(&self, key: &[u8], column: &str, delta: f64) -> Result<f64> {
        self.writable()?;
        let inner = &*self.inner;
        let c = inner.schema.float_column(column)?;
        let word = inner.schema.offset(c);
        let rows = inner.geo.row_words;
        let create = move || {
            let mut image = vec![0u64; rows];
            image[word] = delta.to_bits();
            (image, delta)
        };
        let add = |cell: &AtomicU64| {
            let mut cur = cell.load(Ordering::Acquire);
            loop {
                let new = f64::from_bits(cur) + delta;
                match cell.compare_exchange_weak(
                    cur,
                    new.to_bits(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return new,
                    Err(seen) => cur = seen,
                }
            }
        };
        let r = self.cell_op(key, word, None, add, Some(&create))?;
        r.ok_or(ShmError::KeyNotFound)
    }

    /// `incr_float` by `-delta`.
    pub fn decr_float(&self, key: &[u8], column: &str, delta: f64) -> Result<f64> {
        self.incr_float(key, column, -delta)
    }

    /// Atomically stores one int cell of an existing row, without the table lock.
    /// [`ShmError::KeyNotFound`] if the row is missing.
    pub fn store_int(&self, key: &[u8], column: &str, value: i64) -> Result<()> {
        self.writable()?;
        let c = self.inner.schema.int_column(column)?;
        let word = self.inner.schema.offset(c);
        self.cell_op(
            key,
            word,
            None,
            |cell| cell.store(value as u64, Ordering::Release),
            None,
        )?
        .ok_or(ShmError::KeyNotFound)
    }

    /// Atomically loads one int cell, without the table lock; None if the row is missing.
    pub fn load_int(&self, key: &[u8], column: &str) -> Result<Option<i64>> {
        let c = self.inner.schema.int_column(column)?;
        let word = self.inner.schema.offset(c);
        let (k, h) = self.key(key)?;
        let inner = &*self.inner;
        for _ in 0..MAX_RESTARTS {
            let Some((slot, kg)) = inner.find(&k, h)? else {
                return Ok(None);
            };
            let v = inner.cell(slot, word).load(Ordering::Acquire);
            // The value belongs to the row only if the slot was not reused meanwhile.
            if inner.kgen(slot).load(Ordering::Acquire) == kg {
                return Ok(Some(v as i64));
            }
        }
        Err(ShmError::Busy(
            "a row that keeps being deleted and reinserted",
        ))
    }

    /// Resolves `key`'s int `column` to a handle whose `store`/`load`/`fetch_add` are
    /// single atomic instructions. [`ShmError::KeyNotFound`] if the row is missing.
    pub fn int_cell(&self, key: &[u8], column: &str) -> Result<IntCell> {
        let c = self.inner.schema.int_column(column)?;
        let word = self.inner.schema.offset(c);
        let (k, h) = self.key(key)?;
        let Some((slot, kg)) = self.inner.find(&k, h)? else {
            return Err(ShmError::KeyNotFound);
        };
        Ok(IntCell::new(Arc::clone(&self.inner), slot, kg, word))
    }

    /// Deletes `key`'s row; false if it was not there.
    pub fn del(&self, key: &[u8]) -> Result<bool> {
        self.writable()?;
        let (k, h) = self.key(key)?;
        let inner = &*self.inner;
        let _guard = inner.lock()?;
        match inner.find_locked(&k, h)? {
            Some((slot, _)) => {
                inner.delete_locked(slot)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether `key` has a row.
    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        let (k, h) = self.key(key)?;
        Ok(self.inner.find(&k, h)?.is_some())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.inner.w(H_COUNT).load(Ordering::Acquire) as usize
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most rows the table can hold.
    pub fn capacity(&self) -> usize {
        self.inner.geo.capacity
    }

    /// Bytes mapped: the whole file (header, buckets, slots).
    pub fn memory_size(&self) -> usize {
        self.inner.region.len()
    }

    /// The table's schema.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// The table file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Pid of the process that created the table.
    pub fn owner_pid(&self) -> u32 {
        crate::procinfo::token_pid(self.inner.owner)
    }

    /// Whether the creating process is still running (pid-reuse safe).
    pub fn owner_alive(&self) -> bool {
        token_alive(self.inner.owner)
    }

    /// Whether the calling process created the table.
    pub fn is_owner(&self) -> bool {
        my_token() == self.inner.owner
    }

    /// How many times a dead lock holder was detected and its operation repaired.
    pub fn recoveries(&self) -> u64 {
        self.inner.w(H_RECOVERIES).load(Ordering::Relaxed)
    }

    /// The pid holding the table lock right now, if any (for inspection).
    pub fn lock_holder_pid(&self) -> Option<u32> {
        match self.inner.lock_holder() {
            0 => None,
            token => Some(crate::procinfo::token_pid(token)),
        }
    }

    /// Whether this handle may write.
    pub fn is_writable(&self) -> bool {
        self.inner.region.writable()
    }

    /// Removes the table file (the owner's clean shutdown). Mappings stay valid until
    /// dropped. Other processes (forked children included) get [`ShmError::NotOwner`];
    /// dropping a `Table` never removes anything.
    pub fn unlink(&self) -> Result<()> {
        let me = my_token();
        if me != self.inner.owner {
            return Err(ShmError::NotOwner {
                path: self.inner.path.clone(),
                owner: self.owner_pid(),
                me: crate::procinfo::token_pid(me),
            });
        }
        std::fs::remove_file(&self.inner.path)
            .map_err(io_err("unlink table file", &self.inner.path))
    }

    /// Iterates over the rows in slot order. Each row is a consistent snapshot, and each
    /// key is yielded at most once; rows inserted or deleted during the iteration may or
    /// may not be seen. Rows present throughout are always seen. (Each row found costs
    /// one lookup, to confirm it is linked.)
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            table: self,
            slot: 0,
            seen: HashSet::new(),
        }
    }

    /// Checks the structural invariants (see the README); takes the lock on a writable
    /// table so the structure is still, and reports the first violation.
    pub fn verify(&self) -> Result<VerifyReport> {
        let _guard = if self.inner.region.writable() {
            Some(self.inner.lock()?)
        } else {
            None
        };
        crate::verify::verify(&self.inner)
    }
}

pub use crate::verify::VerifyReport;

/// Iterator over a table's rows; see [`Table::iter`].
pub struct Iter<'a> {
    table: &'a Table,
    slot: usize,
    /// Keys already yielded: a key deleted and reinserted into a later slot during the
    /// iteration would otherwise come out twice.
    seen: HashSet<Vec<u8>>,
}

impl Iterator for Iter<'_> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        let inner = &*self.table.inner;
        while self.slot < inner.geo.slots {
            let slot = self.slot;
            self.slot += 1;
            let kg = inner.kgen(slot).load(Ordering::Acquire);
            if kg % 4 != 3 {
                continue;
            }
            match inner.read_row(slot, kg, true) {
                Ok(Some((key, image))) => {
                    // Only rows reachable through their chain are in the table: a live
                    // slot that is not (yet) linked belongs to an insert in progress, or
                    // to one cancelled by a crash that no one has repaired yet.
                    let k = KeyBuf::pack(&key);
                    match inner.find(&k, hash_key(inner.seed, &k.words, k.len)) {
                        Ok(Some(found)) if found == (slot, kg) => {}
                        Ok(_) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                    if !self.seen.insert(key.clone()) {
                        continue;
                    }
                    return Some(inner.decode(slot, key, &image));
                }
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

fn check_schema(path: &Path, want: &Schema, have: &Schema) -> Result<()> {
    let mismatch = |what: String| ShmError::SchemaMismatch {
        path: path.to_owned(),
        what,
    };
    if want.columns().len() != have.columns().len() {
        return Err(mismatch(format!(
            "expected {} columns, table has {}",
            want.columns().len(),
            have.columns().len()
        )));
    }
    for (w, h) in want.columns().iter().zip(have.columns()) {
        if w != h {
            return Err(mismatch(format!(
                "expected column {:?} {:?}, table has {:?} {:?}",
                w.name(),
                w.kind(),
                h.name(),
                h.kind()
            )));
        }
    }
    Ok(())
}
