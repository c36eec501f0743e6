//! What the master reads from the configuration directory: the services
//! to run (one [`ServiceSpec`] per process of each master.cf entry on each
//! of its endpoints) and the table files to watch.

use std::path::{Path, PathBuf};

use mailgate_config::processes::{self, ProcessPlan};
use mailgate_config::{MainConfig, MasterConfig, Override, ServiceEntry};
use mailgate_ipc::handoff::Handoff;
use mailgate_sandbox::Mode;

use crate::listeners::{Endpoint, endpoints};
use crate::supervisor::MasterError;

/// Everything read from the configuration directory.
pub struct Settings {
    pub config: MainConfig,
    pub services: Vec<ServiceSpec>,
    pub table_files: Vec<PathBuf>,
}

/// One process to keep running: one of the processes of a master.cf entry
/// on one endpoint. The processes of an entry share its listening socket.
pub struct ServiceSpec {
    /// "127.0.0.1:2525/Inet/127.0.0.1:2525#1" or "cleanup/Unix/PATH#2":
    /// stable across reloads.
    pub key: String,
    pub endpoint: Endpoint,
    /// A Unix socket's mode, from the program's profile (who may call it).
    pub socket_mode: u32,
    pub program: PathBuf,
    pub handoff: Handoff,
    /// maxproc 1 means one instance: on reload the old process must be gone
    /// before the new one starts (two queue managers would race).
    pub exclusive: bool,
}

pub fn load_settings(
    config_dir: &Path,
    overrides: &[(String, String)],
) -> Result<Settings, MasterError> {
    let master_cf =
        MasterConfig::load(config_dir).map_err(|e| MasterError::Config(e.to_string()))?;
    let config = MainConfig::load_with_references(config_dir, &master_cf.parameter_references())
        .map_err(|e| MasterError::Config(e.to_string()))?;
    let command_line: Vec<Override> = overrides
        .iter()
        .map(|(name, value)| Override {
            name: name.clone(),
            value: value.clone(),
            origin: PathBuf::from("command line"),
            line: 0,
        })
        .collect();
    let config = config
        .with_overrides(&command_line)
        .map_err(|e| MasterError::Config(e.to_string()))?;
    // The same check as `mailgate check`: nothing it refuses ever runs,
    // including a setting mailgate would not carry out.
    let report = mailgate_config::check(config_dir, &command_line);
    if !report.errors.is_empty() {
        let list: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
        return Err(MasterError::Config(list.join("\n")));
    }
    let daemon_directory = match config.get("daemon_directory") {
        dir if dir.is_empty() => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .ok_or_else(|| {
                MasterError::Setup("cannot find the directory of the master binary".into())
            })?,
        dir => PathBuf::from(dir),
    };
    let queue_directory = PathBuf::from(config.get("queue_directory"));
    let cores = processes::cores();
    let mut services = Vec::new();
    let mut table_files = Vec::new();
    collect_table_files(&config, &mut table_files);
    for entry in &master_cf.services {
        let service_config = config
            .with_overrides(&entry.overrides)
            .map_err(|e| MasterError::Config(e.to_string()))?;
        collect_table_files(&service_config, &mut table_files);
        // A bad value would only show as workers dying at start-up.
        Mode::parse(&service_config.get("sandbox_mode"))
            .map_err(|e| MasterError::Config(format!("service {}: {e}", entry.name)))?;
        let program = daemon_directory.join(entry.program());
        if !program.is_file() {
            return Err(MasterError::Config(format!(
                "{}:{}: service {}: no program {}",
                entry.file.display(),
                entry.line,
                entry.name,
                program.display()
            )));
        }
        let plan = processes::plan(entry, &service_config, cores)
            .map_err(|e| MasterError::Config(format!("service {}: {e}", entry.name)))?;
        let socket_mode = mailgate_sandbox::profiles::Profile::of_program(entry.program())
            .map_or(0o660, |profile| profile.socket_mode());
        for endpoint in endpoints(entry, &config, &queue_directory)
            .map_err(|e| MasterError::Config(e.to_string()))?
        {
            for (index, handoff) in handoffs(entry, config_dir, &command_line, &plan)
                .into_iter()
                .enumerate()
            {
                services.push(ServiceSpec {
                    socket_mode,
                    key: format!("{}/{:?}/{endpoint}#{}", entry.name, entry.kind, index + 1),
                    handoff,
                    endpoint: endpoint.clone(),
                    program: program.clone(),
                    exclusive: entry.maxproc == Some(1),
                });
            }
        }
    }
    table_files.sort();
    table_files.dedup();
    Ok(Settings {
        config,
        services,
        table_files,
    })
}

/// What each process of `entry` is started with: its share of maxproc and
/// its place among the service's processes.
fn handoffs(
    entry: &ServiceEntry,
    config_dir: &Path,
    command_line: &[Override],
    plan: &ProcessPlan,
) -> Vec<Handoff> {
    let overrides: Vec<(String, String, usize)> = command_line
        .iter()
        .chain(entry.overrides.iter())
        .map(|o| (o.name.clone(), o.value.clone(), o.line))
        .collect();
    let count = plan.sessions.len() as u32;
    plan.sessions
        .iter()
        .zip(1..)
        .map(|(&sessions, process)| Handoff {
            config_dir: config_dir.to_path_buf(),
            service: entry.name.clone(),
            kind: format!("{:?}", entry.kind).to_lowercase(),
            command: entry.command.clone(),
            chroot: entry.chroot,
            unprivileged: entry.unprivileged,
            sessions,
            process,
            processes: count,
            overrides: overrides.clone(),
            args: entry.args.clone(),
        })
        .collect()
}

const FILE_TABLE_TYPES: [&str; 7] = [
    "hash", "btree", "lmdb", "texthash", "cidr", "regexp", "pcre",
];

/// Source files of every file-backed lookup table named in any parameter,
/// so the master can reload when one changes.
fn collect_table_files(config: &MainConfig, out: &mut Vec<PathBuf>) {
    for (name, _) in config.all() {
        if !config.is_known(&name) {
            continue;
        }
        for item in config.list(&name) {
            let Some((kind, path)) = item.split_once(':') else {
                continue;
            };
            let kind = kind.trim_start_matches("proxy:");
            if FILE_TABLE_TYPES.contains(&kind) && !path.is_empty() {
                let path = Path::new(path);
                out.push(if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    config.config_dir().join(path)
                });
            }
        }
    }
}
