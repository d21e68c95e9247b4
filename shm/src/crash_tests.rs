//! Deterministic crash recovery: every step of insert, delete and set is interrupted as
//! if the process had been killed there (lock word left naming a dead process, intent
//! record set), then the next user of the table must recover and find it whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;

use crate::layout::H_LOCK;
use crate::lock::crash;
use crate::procinfo::make_token;
use crate::{Column, Schema, ShmError, Table, Value};

const INSERT_STEPS: [u32; 6] = [1, 2, 3, 4, 5, 6];
const DELETE_STEPS: [u32; 4] = [11, 12, 13, 14];
const SET_STEPS: [u32; 6] = [21, 22, 23, 24, 25, 26];

/// A token naming a process that has exited and been reaped.
fn dead_token() -> u64 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    make_token(pid, 0)
}

fn table(dir: &tempfile::TempDir) -> Table {
    let schema = Schema::new(vec![
        Column::int("a"),
        Column::int("b"),
        Column::string("s", 8),
    ])
    .unwrap();
    let t = Table::create(&dir.path().join("t"), &schema, 8).unwrap();
    t.set(b"x", &[("a", Value::Int(1)), ("b", Value::Int(2))])
        .unwrap();
    t.set(b"y", &[("s", Value::str("why"))]).unwrap();
    t
}

/// Runs `op` with a crash at `step`, then makes the lock look held by a dead process.
fn crash_at(t: &Table, step: u32, op: impl FnOnce(&Table) -> crate::Result<()>) {
    crash::AT.set(step);
    let r = op(t);
    crash::AT.set(0);
    assert!(crash::CRASHED.get(), "step {step} was never reached");
    crash::CRASHED.set(false);
    assert!(matches!(r, Err(ShmError::Busy("simulated crash"))), "{r:?}");
    t.inner.w(H_LOCK).store(dead_token(), Ordering::Release);
}

#[test]
fn insert_interrupted_at_every_step_is_repaired() {
    for step in INSERT_STEPS {
        let dir = tempfile::tempdir().unwrap();
        let t = table(&dir);
        crash_at(&t, step, |t| {
            t.set(b"new", &[("a", Value::Int(5)), ("b", Value::Int(6))])
        });
        // Lock-free readers work while the lock is still held by the dead process, and
        // iteration shows the new row only once it is linked (step 5 on).
        assert_eq!(t.load_int(b"x", "a").unwrap(), Some(1));
        let keys: Vec<Vec<u8>> = t.iter().map(|r| r.unwrap().key().to_vec()).collect();
        assert_eq!(
            keys.contains(&b"new".to_vec()),
            step >= 5,
            "step {step}: {keys:?}"
        );
        assert_eq!(keys.len(), if step >= 5 { 3 } else { 2 });
        let report = t.verify().unwrap();
        assert_eq!(t.recoveries(), 1, "step {step}");
        let row = t.get(b"new").unwrap();
        // Published (steps 5, 6) means complete; before that the insert is cancelled.
        if step >= 5 {
            let row = row.unwrap();
            assert_eq!((row.int("a"), row.int("b")), (Some(5), Some(6)));
            assert_eq!(report.rows, 3);
        } else {
            assert_eq!(row, None, "step {step}");
            assert_eq!(report.rows, 2);
        }
        assert_eq!(t.len(), report.rows);
        // The table goes on working, and a cancelled insert's slot is free again: the
        // table fills to exactly its capacity.
        for k in 0..(8 - report.rows) as u8 {
            t.set(&[b'k', k], &[]).unwrap();
        }
        assert!(matches!(t.set(b"more", &[]), Err(ShmError::Full { .. })));
        assert_eq!(t.verify().unwrap().rows, 8);
    }
}

#[test]
fn delete_interrupted_at_every_step_completes() {
    for step in DELETE_STEPS {
        let dir = tempfile::tempdir().unwrap();
        let t = table(&dir);
        crash_at(&t, step, |t| t.del(b"x").map(|_| ()));
        let report = t.verify().unwrap();
        assert_eq!(t.recoveries(), 1);
        assert_eq!(t.get(b"x").unwrap(), None, "step {step}");
        assert_eq!(report.rows, 1);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.get(b"y").unwrap().unwrap().text("s").as_deref(),
            Some("why")
        );
        t.set(b"x", &[("a", Value::Int(9))]).unwrap();
        assert_eq!(t.load_int(b"x", "a").unwrap(), Some(9));
        t.verify().unwrap();
    }
}

#[test]
fn set_interrupted_at_every_step_is_never_half_visible() {
    for step in SET_STEPS {
        let dir = tempfile::tempdir().unwrap();
        let t = table(&dir);
        crash_at(&t, step, |t| {
            t.set(b"x", &[("a", Value::Int(7)), ("b", Value::Int(8))])
        });
        // A reader meeting the open seqlock recovers the dead writer itself.
        let row = t.get(b"x").unwrap().unwrap();
        let pair = (row.int("a").unwrap(), row.int("b").unwrap());
        // Once the seqlock was opened (step 23 on) the set is finished by the repair;
        // before, it never happened. Never one column old and one new.
        if step >= 23 {
            assert_eq!(pair, (7, 8), "step {step}");
        } else {
            assert_eq!(pair, (1, 2), "step {step}");
        }
        t.verify().unwrap();
        assert_eq!(t.recoveries(), 1);
        assert_eq!(t.len(), 2);
    }
}

#[test]
fn a_live_holder_is_never_robbed() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(&dir);
    // Our own token: alive. Another thread's set must wait, not steal.
    let me = crate::procinfo::my_token();
    t.inner.w(H_LOCK).store(me, Ordering::Release);
    let t2 = t.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let r = t2.set(b"z", &[]);
        tx.send(()).unwrap();
        r
    });
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(50))
        .is_err());
    assert_eq!(t.inner.w(H_LOCK).load(Ordering::Acquire), me);
    t.inner.w(H_LOCK).store(0, Ordering::Release);
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    waiter.join().unwrap().unwrap();
    assert!(t.exists(b"z").unwrap());
    assert_eq!(t.recoveries(), 0);
}
