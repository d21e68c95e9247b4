//! Single-process behaviour: every operation, limits and errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use tarsfork_shm::{Column, Schema, ShmError, Table, Value, MAX_KEY_LEN, SPARE_SLOTS};

fn schema() -> Schema {
    Schema::new(vec![
        Column::int("hits"),
        Column::float("load"),
        Column::string("name", 10),
    ])
    .unwrap()
}

#[test]
fn set_get_incr_del_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::create(&dir.path().join("t"), &schema(), 16).unwrap();
    assert_eq!(t.get(b"a").unwrap(), None);
    t.set(
        b"a",
        &[("name", Value::str("alpha")), ("hits", Value::Int(7))],
    )
    .unwrap();
    let row = t.get(b"a").unwrap().unwrap();
    assert_eq!(row.int("hits"), Some(7));
    assert_eq!(row.float("load"), Some(0.0));
    assert_eq!(row.text("name").as_deref(), Some("alpha"));
    // Partial set keeps the other cells.
    t.set(b"a", &[("load", Value::Float(1.5))]).unwrap();
    let row = t.get(b"a").unwrap().unwrap();
    assert_eq!(row.int("hits"), Some(7));
    assert_eq!(row.float("load"), Some(1.5));
    assert_eq!(t.incr(b"a", "hits", 5).unwrap(), 12);
    assert_eq!(t.decr(b"a", "hits", 2).unwrap(), 10);
    assert_eq!(t.incr_float(b"a", "load", 0.25).unwrap(), 1.75);
    // incr on a missing key creates a zeroed row.
    assert_eq!(t.incr(b"b", "hits", -4).unwrap(), -4);
    assert_eq!(
        t.get(b"b").unwrap().unwrap().text("name").as_deref(),
        Some("")
    );
    assert_eq!(t.len(), 2);
    assert!(t.exists(b"b").unwrap());
    assert!(t.del(b"b").unwrap());
    assert!(!t.del(b"b").unwrap());
    assert!(!t.exists(b"b").unwrap());
    assert_eq!(t.len(), 1);
    t.store_int(b"a", "hits", 99).unwrap();
    assert_eq!(t.load_int(b"a", "hits").unwrap(), Some(99));
    assert_eq!(t.load_int(b"zz", "hits").unwrap(), None);
    assert!(matches!(
        t.store_int(b"zz", "hits", 1),
        Err(ShmError::KeyNotFound)
    ));
    let cell = t.int_cell(b"a", "hits").unwrap();
    cell.store(5);
    assert_eq!(cell.fetch_add(2), 5);
    assert_eq!(t.load_int(b"a", "hits").unwrap(), Some(7));
    assert!(cell.is_current());
    t.del(b"a").unwrap();
    assert!(!cell.is_current());
    t.verify().unwrap();
}

#[test]
fn limits_are_errors_not_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::create(&dir.path().join("t"), &schema(), 2).unwrap();
    let long = vec![b'k'; MAX_KEY_LEN + 1];
    assert!(matches!(
        t.set(&long, &[]),
        Err(ShmError::KeyTooLong { len: 64, max: 63 })
    ));
    assert!(matches!(
        t.incr(&long, "hits", 1),
        Err(ShmError::KeyTooLong { .. })
    ));
    let max = vec![b'k'; MAX_KEY_LEN];
    t.set(&max, &[]).unwrap();
    assert!(t.exists(&max).unwrap());
    assert!(matches!(
        t.set(b"x", &[("name", Value::str("01234567890"))]),
        Err(ShmError::ValueTooLong {
            len: 11,
            max: 10,
            ..
        })
    ));
    assert!(matches!(
        t.set(b"x", &[("nope", Value::Int(1))]),
        Err(ShmError::NoSuchColumn(_))
    ));
    assert!(matches!(
        t.set(b"x", &[("hits", Value::str("1"))]),
        Err(ShmError::TypeMismatch { .. })
    ));
    assert!(matches!(
        t.incr(b"x", "name", 1),
        Err(ShmError::TypeMismatch { .. })
    ));
    t.set(b"x", &[("name", Value::str("0123456789"))]).unwrap();
    assert!(matches!(
        t.set(b"y", &[]),
        Err(ShmError::Full { capacity: 2 })
    ));
    assert!(matches!(
        t.incr(b"y", "hits", 1),
        Err(ShmError::Full { capacity: 2 })
    ));
    assert_eq!(t.len(), 2);
    t.del(b"x").unwrap();
    t.set(b"y", &[]).unwrap();
    t.verify().unwrap();
}

#[test]
fn deleted_slots_are_reused_for_a_million_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let t = Table::create(&dir.path().join("t"), &schema(), 1024).unwrap();
    for i in 0..1000u32 {
        t.set(
            format!("base{i}").as_bytes(),
            &[("hits", Value::Int(i.into()))],
        )
        .unwrap();
    }
    for i in 0..1_000_000u32 {
        let k = format!("churn{}", i % 24);
        t.set(k.as_bytes(), &[]).unwrap();
        assert!(t.del(k.as_bytes()).unwrap());
    }
    assert_eq!(t.len(), 1000);
    for i in 0..1000u32 {
        assert_eq!(
            t.load_int(format!("base{i}").as_bytes(), "hits").unwrap(),
            Some(i.into())
        );
    }
    let report = t.verify().unwrap();
    assert_eq!(report.rows, 1000);
    // The 24 slack slots plus the spare slots every table has (README, layout).
    assert_eq!(report.free, 24 + SPARE_SLOTS);
}

#[test]
fn open_validates_and_schema_mismatch_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let t = Table::create(&path, &schema(), 8).unwrap();
    t.set(b"k", &[("hits", Value::Int(3))]).unwrap();
    let o = Table::open(&path).unwrap();
    assert_eq!(o.load_int(b"k", "hits").unwrap(), Some(3));
    Table::open_with_schema(&path, &schema()).unwrap();
    let other = Schema::new(vec![
        Column::int("hits"),
        Column::int("load"),
        Column::string("name", 10),
    ])
    .unwrap();
    assert!(matches!(
        Table::open_with_schema(&path, &other),
        Err(ShmError::SchemaMismatch { .. })
    ));
    let ro = Table::open_readonly(&path).unwrap();
    assert!(matches!(ro.set(b"k", &[]), Err(ShmError::ReadOnly)));
    assert!(matches!(ro.incr(b"k", "hits", 1), Err(ShmError::ReadOnly)));
    assert_eq!(ro.get(b"k").unwrap().unwrap().int("hits"), Some(3));
    assert!(matches!(
        Table::create(&path, &schema(), 8),
        Err(ShmError::Io { .. })
    ));
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    assert!(matches!(Table::open(&junk), Err(ShmError::BadMagic { .. })));
    std::fs::write(&junk, b"short").unwrap();
    assert!(matches!(
        Table::open(&junk),
        Err(ShmError::BadHeader { .. })
    ));
    // A FIFO at the path: refused at once, not a blocking open.
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(matches!(
        Table::open_readonly(&fifo),
        Err(ShmError::BadHeader { .. })
    ));
    assert!(tarsfork_shm::inspect::list_tables(dir.path())
        .unwrap()
        .iter()
        .all(|i| i.name != "fifo"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    t.unlink().unwrap();
    assert!(!path.exists());
}

#[test]
fn inspector_renders_text_json_and_lists_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workers");
    let t = Table::create(&path, &schema(), 8).unwrap();
    t.set(
        b"w1",
        &[("hits", Value::Int(12)), ("name", Value::str("idle"))],
    )
    .unwrap();
    t.set(b"w2", &[("load", Value::Float(0.5))]).unwrap();
    std::fs::write(dir.path().join("not-a-table"), b"hello").unwrap();
    let other = Table::create(&dir.path().join("conns"), &schema(), 4).unwrap();

    let text = tarsfork_shm::inspect::render_text(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("rows=2 capacity=8"), "{text}");
    assert!(lines[0].contains("(alive)"), "{text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["key", "hits", "load", "name"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["w1", "12", "0", "idle"]
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["w2", "0", "0.5"]
    );

    let json: serde_json::Value =
        serde_json::from_str(&tarsfork_shm::inspect::render_json(&path).unwrap()).unwrap();
    assert_eq!(json["len"], 2);
    assert_eq!(json["capacity"], 8);
    assert_eq!(json["owner_pid"], std::process::id());
    assert_eq!(json["columns"][2]["type"], "string");
    assert_eq!(json["columns"][2]["max_len"], 10);
    assert_eq!(json["rows"][0]["key"], "w1");
    assert_eq!(json["rows"][0]["hits"], 12);
    assert_eq!(json["rows"][0]["name"], "idle");
    assert_eq!(json["rows"][1]["load"], 0.5);

    let list = tarsfork_shm::inspect::list_tables(dir.path()).unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["conns", "workers"]);
    assert_eq!(list[1].len, 2);
    assert_eq!(list[0].capacity, 4);
    assert!(list[1].owner_alive);
    assert_eq!(list[1].memory_size, t.memory_size());
    drop(other);
}

#[test]
fn memory_size_matches_the_layout_in_the_readme() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new(vec![
        Column::int("requests"),
        Column::int("heartbeat"),
        Column::float("load"),
        Column::string("state", 16),
    ])
    .unwrap();
    let t = Table::create(&dir.path().join("t"), &schema, 1024).unwrap();
    // header, buckets, intent image (rounded to 128), hazard entries, slots + spares
    let unrounded = 4096 + 4096 + 128 + 32768 + (1024 + 256) * 192;
    assert_eq!(t.memory_size(), (unrounded as usize).div_ceil(4096) * 4096);
}

#[test]
fn memory_size_is_the_mapped_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let t = Table::create(&path, &schema(), 1000).unwrap();
    let file_len = std::fs::metadata(&path).unwrap().len() as usize;
    assert_eq!(t.memory_size(), file_len);
    // Header page + 1024 buckets + 1000 slots of at least 128 + 64 bytes.
    assert!(t.memory_size() >= 4096 + 1024 * 4 + 1000 * 192);
    assert_eq!(t.memory_size() % 4096, 0);
    assert_eq!(t.capacity(), 1000);
}

#[test]
fn tables_at_a_directory_descriptor_refuse_symlinks_and_existing_files() {
    use std::os::fd::AsFd;
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::File::open(dir.path()).unwrap();
    let schema = Schema::new(vec![Column::int("n")]).unwrap();
    let victim = dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, dir.path().join("t")).unwrap();
    assert!(Table::create_at(d.as_fd(), dir.path(), "t", &schema, 4).is_err());
    assert!(!victim.exists(), "the symlink was followed");
    assert!(Table::open_readonly_at(d.as_fd(), dir.path(), "t").is_err());
    assert!(Table::create_at(d.as_fd(), dir.path(), "../x", &schema, 4).is_err());
    let t = Table::create_at(d.as_fd(), dir.path(), "u", &schema, 4).unwrap();
    t.incr(b"k", "n", 2).unwrap();
    assert!(
        Table::create_at(d.as_fd(), dir.path(), "u", &schema, 4).is_err(),
        "an existing table file is never reused"
    );
    let ro = Table::open_readonly_at(d.as_fd(), dir.path(), "u").unwrap();
    assert_eq!(ro.load_int(b"k", "n").unwrap(), Some(2));
    assert_eq!(ro.path(), dir.path().join("u"));
}
