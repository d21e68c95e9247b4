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

use tarsfork_tars::proxy::{set_call_observer, CallError, CallRecord};

use crate::log;
use crate::platform::stats::{Outcome, Side, StatHead, StatTable};
use crate::process::Shared;

/// The interface name of calls to functions, servants or paths that do not exist.
const UNKNOWN: &str = "<unknown>";

/// The server-side recorder of one process.
pub(crate) struct Served<'a> {
    table: &'a StatTable,
    module: String,
}

impl<'a> Served<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Option<Served<'a>> {
        Some(Served {
            table: shared.stats.as_ref()?,
            module: shared.settings.client.modulename.clone(),
        })
    }

    /// One served Tars call. Calls answered -3/-4 (no such function or servant) are
    /// recorded under one name, so a client inventing names cannot fill the table.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tars(
        &self,
        version: i16,
        oneway: bool,
        func: &str,
        peer: &str,
        port: i32,
        ret: i32,
        ms: i64,
    ) {
        let master = if oneway {
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
        let func = if ret == -3 || ret == -4 {
            UNKNOWN
        } else {
            func
        };
        self.record(master, func, peer, port, ret, outcome, ms);
    }

    /// One served HTTP request. A 404 is recorded under one name, so requests for
    /// invented paths cannot fill the table.
    pub(crate) fn http(&self, path: &str, peer: &str, port: i32, status: u16, ms: i64) {
        let path = if status == 404 { UNKNOWN } else { path };
        let outcome = if status >= 500 {
            Outcome::Exception
        } else {
            Outcome::Success
        };
        self.record(
            "not_tars_client",
            path,
            peer,
            port,
            i32::from(status),
            outcome,
            ms,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        master: &str,
        interface: &str,
        peer: &str,
        port: i32,
        ret: i32,
        outcome: Outcome,
        ms: i64,
    ) {
        let head = StatHead {
            side: Side::Server,
            master_name: master,
            slave_name: &self.module,
            interface_name: interface,
            master_ip: peer,
            slave_port: port,
            return_value: ret,
            ..StatHead::default()
        };
        if let Err(e) = self.table.record(&head, outcome, ms) {
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
    set_call_observer(Some(Box::new(move |c: &CallRecord<'_>| {
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
