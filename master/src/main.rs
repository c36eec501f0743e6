//! The master: root, single-threaded, no async runtime. It creates the
//! spool and the listening sockets, starts every master.cf service from
//! daemon_directory with its socket as an inherited descriptor, restarts
//! services that die, reloads on SIGHUP (and when a table changes), and
//! drains on SIGTERM.

mod listeners;
mod settings;
mod spool;
mod supervisor;

use std::path::PathBuf;
use std::process::ExitCode;

use mailgate_log::{fatal, info};

use crate::supervisor::Master;

fn main() -> ExitCode {
    mailgate_log::init("mailgate", "master");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config_dir, overrides) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            fatal!("{e}");
            eprintln!("usage: master -c CONFIG_DIR [-o name=value]...");
            return ExitCode::from(2);
        }
    };
    let mut master = match Master::start(config_dir, overrides) {
        Ok(master) => master,
        Err(e) => {
            fatal!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let status = master.run();
    info!("stopped");
    status
}

fn parse_args(args: &[String]) -> Result<(PathBuf, Vec<(String, String)>), String> {
    let mut config_dir = None;
    let mut overrides = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" => config_dir = Some(PathBuf::from(it.next().ok_or("-c needs a directory")?)),
            "-o" => {
                let spec = it.next().ok_or("-o needs name=value")?;
                let (name, value) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("-o {spec}: expected name=value"))?;
                overrides.push((name.trim().to_string(), value.trim().to_string()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((
        config_dir.unwrap_or_else(|| PathBuf::from("/etc/mailgate")),
        overrides,
    ))
}
