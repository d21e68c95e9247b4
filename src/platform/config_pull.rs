//! Config files pulled from tarsconfig (ConfigF.loadConfig): the files an application
//! lists with [`crate::Service::config_file`] at start, and any file on the admin
//! command `tars.loadconfig <file>`. Each lands atomically (temp file + rename) in the
//! config directory: the directory of the `--config` file, where tarsnode keeps the
//! server's own config.

use std::io::Write;
use std::path::PathBuf;

use tarsfork_tars::framework::tars::ConfigFProxy;

use crate::platform::locator::Locator;
use crate::settings::Settings;
use crate::sys;

/// The directory pulled files are written to.
pub(crate) fn config_dir(settings: &Settings) -> PathBuf {
    settings
        .source
        .as_ref()
        .and_then(|p| p.parent().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| settings.datapath.clone())
}

/// Pulls `file` from tarsconfig into the config directory; returns where it went.
pub(crate) fn pull(
    settings: &Settings,
    locator: &mut Locator,
    file: &str,
) -> Result<PathBuf, String> {
    if file.is_empty() || file.contains('/') || file.contains('\0') || file.starts_with('.') {
        return Err(format!("{file:?} is not a plain file name"));
    }
    let obj = settings
        .config
        .as_ref()
        .ok_or("no `config` object (tars.tarsconfig.ConfigObj) in <server>")?;
    let proxy = locator
        .proxy(obj)
        .ok_or_else(|| format!("{}: no address (locator down or unknown object)", obj.name))?;
    let (ret, content) = ConfigFProxy::new(proxy)
        .load_config(&settings.app, &settings.server, file)
        .map_err(|e| format!("loadConfig {file}: {e}"))?;
    if ret != 0 {
        return Err(format!("tarsconfig answered {ret} for {file}"));
    }
    let dir = config_dir(settings);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let target = dir.join(file);
    let tmp = dir.join(format!(".{file}.tmp.{}", sys::getpid()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(content.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("write {}: {e}", target.display()));
    }
    Ok(target)
}
