//! The demo service, which is also the `tarsfork` command.
//!
//! - `GET /` → 200 `hello`
//! - `GET /monitor/monitor` → 200 `{"code":0}` (the TarsPHP health probe)
//! - `GET /slow?ms=N` → sleeps N ms in the worker, then 200 `slow`
//! - `GET /task?data=X` → `task_wait` on a task worker, which echoes X with its id
//! - `GET /crash` → the worker aborts (for trying out respawns by hand)
//!
//! Fault injection for the tests: with `TARSFORK_DEMO_FAIL_BOOT` set in its environment,
//! every event worker's `on_worker_start` fails, which must stop the server with that
//! message instead of respawning forever.

use std::process::ExitCode;
use std::time::Duration;

use tarsfork::http::{Request, Response};
use tarsfork::{Ctx, Service};

/// Longest sleep `/slow` accepts, so a typo cannot park a worker for hours.
const MAX_SLOW_MS: u64 = 600_000;

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
        "/crash" => std::process::abort(),
        _ => Response::text(404, "not found\n"),
    }
}

fn main() -> ExitCode {
    let service = Service::new(on_request)
        .on_worker_start(|_ctx| match std::env::var("TARSFORK_DEMO_FAIL_BOOT") {
            Ok(why) => Err(format!("TARSFORK_DEMO_FAIL_BOOT is set ({why})")),
            Err(_) => Ok(()),
        })
        .on_task(|tctx, data| {
            let mut out = data.to_vec();
            out.extend_from_slice(format!(" (task worker {})", tctx.id()).as_bytes());
            out
        });
    tarsfork::run(service)
}
