//! keepAlive and reportVersion from task worker 0 to a recording tarsnode (ServerF),
//! served here by the tars2rs-generated dispatcher.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::fake_tars::FakeServant;
use support::*;
use tarsfork_tars::framework::tars::{ServerFServant, ServerFServer, ServerInfo};
use tarsfork_tars::proxy::{Current, ServantError};

/// (when, function, adapter or version, pid)
type Calls = Arc<Mutex<Vec<(Instant, String, String, i32)>>>;

struct Recorder(Calls);

impl ServerFServant for Recorder {
    fn keep_alive(&mut self, _c: &Current<'_>, info: &ServerInfo) -> Result<i32, ServantError> {
        assert_eq!(
            (info.application.as_str(), info.server_name.as_str()),
            ("TestApp", "HelloServer")
        );
        self.0.lock().unwrap().push((
            Instant::now(),
            "keepAlive".into(),
            info.adapter.clone(),
            info.pid,
        ));
        Ok(0)
    }
    fn keep_activing(&mut self, _c: &Current<'_>, _i: &ServerInfo) -> Result<i32, ServantError> {
        Ok(0)
    }
    fn report_version(
        &mut self,
        _c: &Current<'_>,
        app: &str,
        server: &str,
        version: &str,
    ) -> Result<i32, ServantError> {
        assert_eq!((app, server), ("TestApp", "HelloServer"));
        self.0
            .lock()
            .unwrap()
            .push((Instant::now(), "reportVersion".into(), version.into(), 0));
        Ok(0)
    }
    fn get_latest_keep_alive_time(&mut self, _c: &Current<'_>) -> Result<u32, ServantError> {
        Ok(0)
    }
}

/// A fake tarsnode on a free port.
fn fake_node() -> (FakeServant, Calls) {
    let calls: Calls = Arc::default();
    let node = FakeServant::start(Arc::new(Mutex::new(ServerFServer(Recorder(calls.clone())))));
    (node, calls)
}

const ADAPTERS: [&str; 2] = ["TestApp.HelloServer.HttpObjAdapter", "AdminAdapter"];

fn server_with_node(node_port: u16, workers: usize) -> Server {
    Server::new(Opts {
        workers,
        extra: vec![
            format!("node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p {node_port} -t 60000"),
            "keepalive-interval=300".into(),
        ],
        ..Opts::default()
    })
}

fn keepalives(calls: &Calls, adapter: &str) -> Vec<(Instant, i32)> {
    calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.1 == "keepAlive" && c.2 == adapter)
        .map(|c| (c.0, c.3))
        .collect()
}

#[test]
fn keepalive_for_every_adapter_with_the_master_pid_and_one_report_version() {
    let (node, calls) = fake_node();
    let port = node.port;
    let s = server_with_node(port, 2);
    let t0 = Instant::now();
    let master = s.start();
    let all = wait_for(Duration::from_millis(1500), || {
        ADAPTERS
            .iter()
            .all(|a| !keepalives(&calls, a).is_empty())
            .then(|| t0.elapsed())
    });
    assert!(
        all.is_some(),
        "keepAlive for every adapter + AdminAdapter within two intervals: {:?}",
        calls.lock().unwrap()
    );
    std::thread::sleep(Duration::from_millis(1000));
    for a in ADAPTERS {
        let k = keepalives(&calls, a);
        assert!(
            k.iter().all(|(_, pid)| *pid == master),
            "pid is the master's"
        );
        assert!(k.len() >= 3, "{a}: every 300 ms: {}", k.len());
    }
    let versions: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.1 == "reportVersion")
        .map(|c| c.2.clone())
        .collect();
    assert_eq!(versions.len(), 1, "reportVersion once: {versions:?}");
    assert!(versions[0].starts_with("tarsfork-"));
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn keepalive_goes_on_without_duplicates_after_task_worker_0_is_killed() {
    let (node, calls) = fake_node();
    let port = node.port;
    let s = server_with_node(port, 2);
    s.start();
    wait_for(Duration::from_secs(2), || {
        (!keepalives(&calls, ADAPTERS[0]).is_empty()).then_some(())
    })
    .unwrap();
    let task0 = s.pids_of("task")[0];
    kill(task0, libc::SIGKILL);
    let replaced = wait_for(Duration::from_secs(5), || {
        s.pids_of("task").into_iter().find(|p| *p != task0)
    });
    assert!(replaced.is_some());
    let after = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let k = keepalives(&calls, ADAPTERS[0]);
    assert!(
        k.iter().filter(|(t, _)| *t > after).count() >= 3,
        "keepAlive continues after the replacement"
    );
    for w in k.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(
            gap >= Duration::from_millis(200),
            "no duplicate burst: two keepAlives {gap:?} apart"
        );
    }
    assert_eq!(
        calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.1 == "reportVersion")
            .count(),
        1,
        "still one reportVersion"
    );
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn keepalive_stops_while_every_worker_is_down() {
    let (node, calls) = fake_node();
    let port = node.port;
    let s = server_with_node(port, 1);
    s.start();
    wait_for(Duration::from_secs(2), || {
        (!keepalives(&calls, ADAPTERS[0]).is_empty()).then_some(())
    })
    .unwrap();
    // Kill the only worker each time it comes back, until its backoff is long.
    let mut last = 0;
    for _ in 0..6 {
        let pid = wait_for(Duration::from_secs(10), || {
            s.procs()
                .into_iter()
                .find(|p| p.1 == "worker" && p.0 > 0 && p.0 != last)
                .map(|p| p.0)
        })
        .unwrap();
        kill(pid, libc::SIGKILL);
        last = pid;
    }
    // The last death starts a 3.2 s backoff: no worker is up, so no keepAlive.
    std::thread::sleep(Duration::from_millis(400));
    let before = keepalives(&calls, ADAPTERS[0]).len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        keepalives(&calls, ADAPTERS[0]).len(),
        before,
        "no keepAlive while no worker is up"
    );
    assert!(s.log().contains("keepAlive withheld"), "{}", s.log());
    // It resumes when the worker is back.
    s.wait_role_up("worker", 1, Duration::from_secs(10));
    let resumed = wait_for(Duration::from_secs(2), || {
        (keepalives(&calls, ADAPTERS[0]).len() > before).then_some(())
    });
    assert!(resumed.is_some());
    assert!(s.cmd(&["stop"]).status.success());
}

#[test]
fn a_node_that_is_down_costs_nothing_but_task_worker_0_time() {
    let dead_port = free_port();
    let s = server_with_node(dead_port, 2);
    s.start();
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..5 {
        assert_eq!(s.get("/").0, 200);
    }
    assert_eq!(
        s.get("/task?data=x").0,
        200,
        "task worker 0 still serves tasks"
    );
    let refused = format!("cannot connect to 127.0.0.1:{dead_port}");
    assert!(s.log().contains(&refused), "{}", s.log());
    assert!(s.cmd(&["stop"]).status.success());
}
