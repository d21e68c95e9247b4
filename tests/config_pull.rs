//! Config files from tarsconfig (ConfigF.loadConfig): at start for the files the service
//! lists, and on the admin command `tars.loadconfig`; written into the config directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use support::fake_tars::FakeServant;
use support::*;
use tarsfork_tars::framework::tars::{ConfigFServant, ConfigFServer, ConfigInfo};
use tarsfork_tars::proxy::{Current, ServantError};

/// tarsconfig with a fixed set of files; records (app, server, file) asked.
struct Files(
    BTreeMap<String, String>,
    Arc<Mutex<Vec<(String, String, String)>>>,
);

type R<T> = Result<T, ServantError>;

impl ConfigFServant for Files {
    fn list_config(&mut self, _: &Current<'_>, _: &str, _: &str) -> R<(i32, Vec<String>)> {
        Ok((0, self.0.keys().cloned().collect()))
    }
    fn load_config(
        &mut self,
        _: &Current<'_>,
        app: &str,
        server: &str,
        file: &str,
    ) -> R<(i32, String)> {
        self.1
            .lock()
            .unwrap()
            .push((app.into(), server.into(), file.into()));
        Ok(match self.0.get(file) {
            Some(c) => (0, c.clone()),
            None => (-1, String::new()),
        })
    }
    fn load_config_by_host(
        &mut self,
        _: &Current<'_>,
        _: &str,
        _: &str,
        _: &str,
    ) -> R<(i32, String)> {
        Ok((-1, String::new()))
    }
    fn check_config(&mut self, _: &Current<'_>, _: &str, _: &str, _: &str) -> R<(i32, String)> {
        Ok((0, String::new()))
    }
    fn list_config_by_info(&mut self, _: &Current<'_>, _: &ConfigInfo) -> R<(i32, Vec<String>)> {
        Ok((0, Vec::new()))
    }
    fn load_config_by_info(&mut self, _: &Current<'_>, _: &ConfigInfo) -> R<(i32, String)> {
        Ok((-1, String::new()))
    }
    fn check_config_by_info(&mut self, _: &Current<'_>, _: &ConfigInfo) -> R<(i32, String)> {
        Ok((0, String::new()))
    }
}

type Asked = Arc<Mutex<Vec<(String, String, String)>>>;

fn tarsconfig(files: &[(&str, &str)]) -> (FakeServant, Asked) {
    let asked: Asked = Arc::default();
    let map = files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let fake = FakeServant::start(Arc::new(Mutex::new(ConfigFServer(Files(
        map,
        asked.clone(),
    )))));
    (fake, asked)
}

fn server(config_port: u16) -> Server {
    Server::new(Opts {
        extra: vec![format!(
            "config=tars.tarsconfig.ConfigObj@tcp -h 127.0.0.1 -p {config_port} -t 3000"
        )],
        ..Opts::default().with_admin()
    })
}

#[test]
fn loadconfig_admin_command_writes_the_file_into_the_config_dir() {
    let (fake, asked) = tarsconfig(&[("app.conf", "x=1\ny=2\n")]);
    let s = server(fake.port);
    s.start();
    let answer = s.admin().notify("tars.loadconfig app.conf").unwrap();
    let path = s.config.parent().unwrap().join("app.conf");
    assert!(answer.contains("loaded app.conf"), "{answer}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x=1\ny=2\n");
    assert_eq!(
        asked.lock().unwrap()[0],
        ("TestApp".into(), "HelloServer".into(), "app.conf".into())
    );
    let missing = s.admin().notify("tars.loadconfig nope.conf").unwrap();
    assert!(
        missing.contains("failed") && missing.contains("-1"),
        "{missing}"
    );
    let evil = s.admin().notify("tars.loadconfig ../../etc/x").unwrap();
    assert!(evil.contains("not a plain file name"), "{evil}");
    s.stop();
}

#[test]
fn files_the_service_lists_are_pulled_before_workers_start() {
    let (fake, _) = tarsconfig(&[("a.conf", "alpha"), ("b.conf", "beta")]);
    let s = server(fake.port);
    let out = s.cmd_env(
        &["start"],
        &[("TARSFORK_DEMO_CONFIG_FILES", "a.conf,b.conf")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = s.config.parent().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("a.conf")).unwrap(),
        "alpha"
    );
    assert_eq!(std::fs::read_to_string(dir.join("b.conf")).unwrap(), "beta");
    s.stop();
}

#[test]
fn a_failed_pull_without_an_earlier_copy_stops_the_start() {
    let (fake, _) = tarsconfig(&[]);
    let s = server(fake.port);
    let out = s.cmd_env(
        &["start"],
        &[("TARSFORK_DEMO_CONFIG_FILES", "missing.conf")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.conf") && err.contains("-1"), "{err}");
}
