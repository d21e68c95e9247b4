//! What each served call and each outgoing proxy call puts into the statistics table,
//! with the StatMicMsgHead fields filled the way @tars/rpc fills them:
//!
//! - served (server side, `bFromClient = false`): master = the kind of caller
//!   (`tars_client` for iVersion 1, `tup_client` for TUP, `one_way_client` for oneway,
//!   `not_tars_client` for HTTP), slave = this server's module name, interface = the
//!   function (Tars) or the path (HTTP), master ip = the peer, slave port = the
//!   adapter's port (so HTTP adapters are told apart), return value = iRet (Tars) or the
//!   status code (HTTP). A non-zero iRet or an HTTP 5xx counts as an exception.
//! - outgoing (client side, `bFromClient = true`): master = this module, slave =
//!   `App.Server` of the servant called, interface = the function, slave ip/port = its
//!   address, return value = the server's code. The framework's own calls (objects named
//!   `tars.…`: keepAlive, the reports themselves) are not recorded.

use tarsfork_tars::proxy::{set_call_observer, CallError, CallRecord as ProxyCall};

use crate::log;
use crate::platform::stats::{Outcome, Side, StatHead, StatTable};
use crate::process::Shared;

/// The interface name of calls to functions, servants or paths that do not exist.
const UNKNOWN: &str = "<unknown>";

/// What a protocol knows about one call it served: the kind of caller, the name called
/// and its result. The worker adds who called, on which port and for how long
/// ([`CallRecord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call<'r> {
    /// StatMicMsgHead's master name: the kind of caller.
    caller: &'static str,
    /// The function or path; [`UNKNOWN`] for names that do not exist.
    name: &'r str,
    /// iRet, or the HTTP status.
    ret: i32,
    outcome: Outcome,
}

impl<'r> Call<'r> {
    /// A served Tars call. Calls answered -3/-4 (no such function or servant) are
    /// recorded under one name, so a client inventing names cannot fill the table.
    pub(crate) fn tars(version: i16, oneway: bool, func: &'r str, ret: i32) -> Self {
        let caller = if oneway {
            "one_way_client"
        } else if version != 1 {
            "tup_client"
        } else {
            "tars_client"
        };
        let outcome = if ret == 0 {
            Outcome::Success
        } else {
            Outcome::Exception
        };
        let name = if ret == -3 || ret == -4 {
            UNKNOWN
        } else {
            func
        };
        Call {
            caller,
            name,
            ret,
            outcome,
        }
    }

    /// A served HTTP request. A 404 is recorded under one name, so requests for
    /// invented paths cannot fill the table.
    pub(crate) fn http(path: &'r str, status: u16) -> Self {
        let outcome = if status >= 500 {
            Outcome::Exception
        } else {
            Outcome::Success
        };
        Call {
            caller: "not_tars_client",
            name: if status == 404 { UNKNOWN } else { path },
            ret: i32::from(status),
            outcome,
        }
    }
}

/// One served call as the statistics record it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallRecord<'r> {
    /// What was called and how it ended.
    pub call: Call<'r>,
    /// The client's IP.
    pub peer: &'r str,
    /// The adapter's port (statistics tell adapters apart by it).
    pub port: i32,
    /// How long serving it took.
    pub ms: i64,
}

/// The server-side recorder of one process.
pub(crate) struct Served<'a> {
    table: &'a StatTable,
    module: String,
}

impl<'a> Served<'a> {
    /// The recorder, when `<client> stat` is configured.
    pub(crate) fn new(shared: &'a Shared) -> Option<Served<'a>> {
        Some(Served {
            table: shared.stats.as_ref()?,
            module: shared.settings.client.modulename.clone(),
        })
    }

    /// Records one served call.
    pub(crate) fn record(&self, r: &CallRecord<'_>) {
        let head = StatHead {
            side: Side::Server,
            master_name: r.call.caller,
            slave_name: &self.module,
            interface_name: r.call.name,
            master_ip: r.peer,
            slave_port: r.port,
            return_value: r.call.ret,
            ..StatHead::default()
        };
        if let Err(e) = self.table.record(&head, r.call.outcome, r.ms) {
            log::debug(&format!("stat record dropped: {e}"));
        }
    }
}

/// Records this process's outgoing proxy calls (client side) from now on.
pub(crate) fn observe_client_calls(shared: &Shared) {
    // The table inherited from the master: a child never reopens shared memory by path
    // (after a privilege drop it could not, and it needs no access to the directory).
    let Some(table) = shared.stats.clone() else {
        return;
    };
    let module = shared.settings.client.modulename.clone();
    let local_ip = shared.settings.localip.clone().unwrap_or_default();
    set_call_observer(Some(Box::new(move |c: &ProxyCall<'_>| {
        if c.servant.starts_with("tars.") {
            return;
        }
        let slave: String = c.servant.split('.').take(2).collect::<Vec<_>>().join(".");
        let (ret, outcome) = match c.result {
            Ok(()) => (0, Outcome::Success),
            Err(CallError::Timeout { .. }) => (0, Outcome::Timeout),
            Err(CallError::Server { code, .. }) => (*code, Outcome::Exception),
            Err(_) => (0, Outcome::Exception),
        };
        let ip = c.addr.ip().to_string();
        let head = StatHead {
            side: Side::Client,
            master_name: &module,
            slave_name: &slave,
            interface_name: c.func,
            master_ip: &local_ip,
            slave_ip: &ip,
            slave_port: i32::from(c.addr.port()),
            return_value: ret,
            ..StatHead::default()
        };
        let ms = i64::try_from(c.elapsed.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = table.record(&head, outcome, ms) {
            log::debug(&format!("stat record dropped: {e}"));
        }
    })));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tars_calls_name_their_caller_and_hide_invented_names() {
        let v1 = Call::tars(1, false, "hello", 0);
        assert_eq!(
            (v1.caller, v1.name, v1.outcome),
            ("tars_client", "hello", Outcome::Success)
        );
        assert_eq!(Call::tars(3, false, "hello", 0).caller, "tup_client");
        assert_eq!(Call::tars(3, true, "hello", 0).caller, "one_way_client");
        let failed = Call::tars(1, false, "hello", -1);
        assert_eq!((failed.name, failed.outcome), ("hello", Outcome::Exception));
        assert_eq!(Call::tars(1, false, "invented", -3).name, UNKNOWN);
        assert_eq!(Call::tars(1, false, "invented", -4).name, UNKNOWN);
    }

    #[test]
    fn http_requests_count_5xx_as_exceptions_and_hide_404_paths() {
        let ok = Call::http("/a", 200);
        assert_eq!((ok.caller, ok.name, ok.ret), ("not_tars_client", "/a", 200));
        assert_eq!(ok.outcome, Outcome::Success);
        assert_eq!(Call::http("/a", 500).outcome, Outcome::Exception);
        assert_eq!(Call::http("/a", 499).outcome, Outcome::Success);
        assert_eq!(Call::http("/invented", 404).name, UNKNOWN);
    }
}
