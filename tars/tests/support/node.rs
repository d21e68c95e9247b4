//! Running the Tars.js helpers in `tests/interop/` (node with @tars/stream installed by
//! `npm ci --prefix tests/interop`), bounded in time and cleaned up by pid.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `tests/interop` of the workspace.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

/// Runs `node <script> <args>` in `tests/interop` with `input` on stdin and returns
/// stdout; panics with a clear message if node or @tars/stream is missing, the script
/// fails, or it runs longer than `limit` (then it is killed by pid).
pub fn run_node(script: &str, args: &[&str], input: &[u8], limit: Duration) -> Vec<u8> {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/@tars/stream").is_dir(),
        "@tars/stream is not installed in {}: run `npm ci --prefix tests/interop`",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node (is it installed?): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A failed write shows up as the script's error below.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // Kill exactly the child we started.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "node {script} ran longer than {limit:?}; killed pid {}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    let out = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(status.success(), "node {script} failed ({status}): {err}");
    out
}
