//! The demo service, which is also the `tarsfork` command.
//!
//! - `GET /` → 200 `hello`
//! - `GET /monitor/monitor` → 200 `{"code":0}` (the TarsPHP health probe)
//! - `GET /slow?ms=N` → sleeps N ms in the worker, then 200 `slow`
//! - `GET /task?data=X` → `task_wait` on a task worker, which echoes X with its id
//! - `GET /task_async?data=X` → `task(X)`, answers the task id at once; the result
//!   arrives in this worker's `on_finish`, and `GET /finished?id=N` (on the same
//!   keep-alive connection, so the same worker) shows it, or 404 until it is there
//! - `GET /ticks` → how often this worker's 50 ms timer and the task worker's 50 ms
//!   timer have fired (`worker=N task=M`)
//! - `GET /crash` → the worker aborts (for trying out respawns by hand)
//!
//! Fault injection for the tests: with `TARSFORK_DEMO_FAIL_BOOT` set in its environment,
//! every event worker's `on_worker_start` fails, which must stop the server with that
//! message instead of respawning forever.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use tarsfork::http::{Request, Response};
use tarsfork::{Ctx, Service, TaskCtx};

/// Longest sleep `/slow` accepts, so a typo cannot park a worker for hours.
const MAX_SLOW_MS: u64 = 600_000;
/// The task that asks a task worker for its timer count.
const TICKS_TASK: &[u8] = b"\0ticks";

thread_local! {
    /// Results delivered to `on_finish` in this worker, by task id.
    static FINISHED: RefCell<HashMap<u64, String>> = RefCell::new(HashMap::new());
    /// Timer firings in this process.
    static TICKS: Cell<u64> = const { Cell::new(0) };
}

fn on_request(req: &Request, ctx: &mut Ctx) -> Response {
    match req.path() {
        "/" => Response::text(200, "hello"),
        "/monitor/monitor" => Response::json(200, r#"{"code":0}"#),
        "/slow" => {
            let ms = req
                .query_param("ms")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(100)
                .min(MAX_SLOW_MS);
            std::thread::sleep(Duration::from_millis(ms));
            Response::text(200, "slow")
        }
        "/task" => {
            let data = req.query_param("data").unwrap_or_default().into_owned();
            match ctx.task_wait(data.as_bytes(), Duration::from_secs(5)) {
                Ok(reply) => Response::text(200, String::from_utf8_lossy(&reply).into_owned()),
                Err(e) => Response::text(503, format!("task failed: {e}\n")),
            }
        }
        "/task_async" => {
            let data = req.query_param("data").unwrap_or_default().into_owned();
            match ctx.task(data.as_bytes()) {
                Ok(id) => Response::text(200, id.to_string()),
                Err(e) => Response::text(503, format!("task failed: {e}\n")),
            }
        }
        "/finished" => {
            let id = req.query_param("id").and_then(|v| v.parse::<u64>().ok());
            match id.and_then(|id| FINISHED.with(|f| f.borrow().get(&id).cloned())) {
                Some(result) => Response::text(200, result),
                None => Response::text(404, "not finished\n"),
            }
        }
        "/ticks" => {
            let task = ctx
                .task_wait(TICKS_TASK, Duration::from_secs(5))
                .map(|r| String::from_utf8_lossy(&r).into_owned())
                .unwrap_or_else(|e| format!("error: {e}"));
            Response::text(200, format!("worker={} task={task}", TICKS.with(Cell::get)))
        }
        "/crash" => std::process::abort(),
        _ => Response::text(404, "not found\n"),
    }
}

fn on_task(tctx: &mut TaskCtx, data: &[u8]) -> Vec<u8> {
    if data == TICKS_TASK {
        return TICKS.with(Cell::get).to_string().into_bytes();
    }
    let mut out = data.to_vec();
    out.extend_from_slice(format!(" (task worker {})", tctx.id()).as_bytes());
    out
}

fn tick() {
    TICKS.with(|t| t.set(t.get() + 1));
}

fn main() -> ExitCode {
    let service = Service::new(on_request)
        .on_worker_start(|ctx| {
            if let Ok(why) = std::env::var("TARSFORK_DEMO_FAIL_BOOT") {
                return Err(format!("TARSFORK_DEMO_FAIL_BOOT is set ({why})"));
            }
            ctx.tick(Duration::from_millis(50), |_| tick());
            Ok(())
        })
        .on_finish(|_ctx, id, result| {
            let text = String::from_utf8_lossy(result).into_owned();
            FINISHED.with(|f| f.borrow_mut().insert(id, text));
        })
        .on_task_start(|tctx| {
            tctx.tick(Duration::from_millis(50), |_| tick());
            Ok(())
        })
        .on_task(on_task);
    tarsfork::run(service)
}
