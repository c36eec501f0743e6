//! Where things are: the configuration directory, the command-line overrides, the
//! master's pid file and the directory of the daemon programs.

use std::path::{Path, PathBuf};

use mailgate_config::{MainConfig, MasterConfig, Override};
use mailgate_ipc::spool;

use crate::error::Error;

/// The configuration directory when `-c` is not given.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/mailgate";

/// The origin that diagnostics name for `-o` settings.
pub const COMMAND_LINE: &str = "command line";

/// The master's pid file inside the spool's `pid/` directory.
const MASTER_PID_FILE: &str = "master.pid";

/// One `-o name=value` from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

impl Setting {
    /// Parses `name=value` (clap value parser for `-o`).
    pub fn parse(text: &str) -> Result<Setting, String> {
        match text.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => Ok(Setting {
                name: name.trim().to_string(),
                value: value.trim().to_string(),
            }),
            _ => Err(format!("expected name=value, found \"{text}\"")),
        }
    }

    /// The setting as the master's `-o` argument.
    pub fn to_arg(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

/// The configuration this invocation works with: `-c DIR` and the `-o` settings.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub config_dir: PathBuf,
    pub settings: Vec<Setting>,
}

impl Invocation {
    /// The `-o` settings as main.cf overrides, placed at "command line".
    pub fn overrides(&self) -> Vec<Override> {
        self.settings
            .iter()
            .map(|s| Override {
                name: s.name.clone(),
                value: s.value.clone(),
                origin: PathBuf::from(COMMAND_LINE),
                line: 0,
            })
            .collect()
    }

    /// Loads main.cf with the `-o` settings applied. Parameters that only master.cf
    /// `-o` values reference (as `$name`) are accepted, as `check` accepts them; a
    /// broken master.cf is `check`'s business, not a reason to refuse main.cf here.
    pub fn load(&self) -> Result<MainConfig, Error> {
        let references = MasterConfig::load(&self.config_dir)
            .map(|m| m.parameter_references())
            .unwrap_or_default();
        MainConfig::load_with_references(&self.config_dir, &references)
            .and_then(|main| main.with_overrides(&self.overrides()))
            .map_err(|e| Error::Config(e.into_diagnostics()))
    }
}

/// `QUEUE_DIR/pid/master.pid`.
pub fn pid_file(config: &MainConfig) -> PathBuf {
    pid_file_in(Path::new(&config.get("queue_directory")))
}

/// The master's pid file in the spool `queue_directory`.
pub fn pid_file_in(queue_directory: &Path) -> PathBuf {
    queue_directory.join(spool::PID).join(MASTER_PID_FILE)
}

/// queue_directory from a main.cf that does not load (an error elsewhere in
/// it): the `-o` setting, else the last `queue_directory = ...` line, else
/// the default. A value that refers to other parameters (`$name`) cannot be
/// trusted without the rest of the file, so the default is used then.
pub fn queue_directory_leniently(invocation: &Invocation) -> PathBuf {
    const NAME: &str = "queue_directory";
    let default = || {
        MainConfig::parse("", Path::new("main.cf"), &invocation.config_dir, &[])
            .map(|c| c.get(NAME))
            .unwrap_or_else(|_| "/var/spool/mailgate".to_string())
    };
    let from_command_line = invocation
        .settings
        .iter()
        .rev()
        .find(|s| s.name == NAME)
        .map(|s| s.value.clone());
    let value = from_command_line.or_else(|| {
        let text = std::fs::read_to_string(invocation.config_dir.join("main.cf")).ok()?;
        last_setting(&text, NAME)
    });
    match value {
        Some(v) if !v.is_empty() && !v.contains('$') => PathBuf::from(v),
        _ => PathBuf::from(default()),
    }
}

/// The value of the last `name = value` line in main.cf text, with
/// continuation lines (starting with white space) joined.
fn last_setting(text: &str, name: &str) -> Option<String> {
    let mut found = None;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_mut()
                && !line.trim_start().starts_with('#')
            {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some(value) = current.take() {
            found = Some(value);
        }
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == name
        {
            current = Some(value.trim().to_string());
        }
    }
    current.or(found).map(|v| v.trim().to_string())
}

/// Where the master and the other daemon programs are: daemon_directory, or when that
/// is empty, the directory that holds this `mailgate` program.
pub fn daemon_directory(config: &MainConfig) -> Result<PathBuf, Error> {
    let configured = config.get("daemon_directory");
    if !configured.is_empty() {
        return Ok(PathBuf::from(configured));
    }
    let exe = std::env::current_exe().map_err(Error::CurrentExe)?;
    match exe.parent() {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Err(Error::CurrentExe(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} has no parent directory", exe.display()),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> MainConfig {
        MainConfig::parse(text, Path::new("main.cf"), Path::new("/etc/mailgate"), &[]).unwrap()
    }

    #[test]
    fn settings_parse() {
        assert_eq!(
            Setting::parse("relayhost = [10.0.0.1]:25").unwrap(),
            Setting {
                name: "relayhost".into(),
                value: "[10.0.0.1]:25".into()
            }
        );
        let s = Setting::parse("smtpd_banner=a=b").unwrap();
        assert_eq!(s.value, "a=b");
        assert_eq!(s.to_arg(), "smtpd_banner=a=b");
        assert_eq!(Setting::parse("content_filter=").unwrap().value, "");
        assert!(Setting::parse("relayhost").is_err());
        assert!(Setting::parse("=x").is_err());
        assert!(Setting::parse(" =x").is_err());
    }

    #[test]
    fn overrides_are_placed_at_the_command_line() {
        let inv = Invocation {
            config_dir: "/nonexistent".into(),
            settings: vec![Setting::parse("smtpd_delay_reject=perhaps").unwrap()],
        };
        let o = inv.overrides();
        assert_eq!(o[0].origin, Path::new(COMMAND_LINE));
        let err = config("")
            .with_overrides(&o)
            .unwrap_err()
            .into_diagnostics();
        assert!(
            err[0]
                .to_string()
                .starts_with("command line: smtpd_delay_reject: invalid boolean"),
            "{err:?}"
        );
    }

    #[test]
    fn pid_file_is_in_the_spool() {
        assert_eq!(
            pid_file(&config("")),
            Path::new("/var/spool/mailgate/pid/master.pid")
        );
        assert_eq!(
            pid_file(&config("queue_directory = /srv/q\n")),
            Path::new("/srv/q/pid/master.pid")
        );
    }

    #[test]
    fn daemon_directory_defaults_to_ours() {
        assert_eq!(
            daemon_directory(&config("daemon_directory = /usr/libexec/mailgate\n")).unwrap(),
            Path::new("/usr/libexec/mailgate")
        );
        let ours = std::env::current_exe().unwrap();
        assert_eq!(
            daemon_directory(&config("")).unwrap(),
            ours.parent().unwrap()
        );
    }

    #[test]
    fn queue_directory_from_a_broken_main_cf() {
        let dir = crate::testdir::TestDir::new();
        dir.write(
            "main.cf",
            "queue_directory = /srv/old\nno_such_parameter = 1\nqueue_directory =\n  /srv/spool\n",
        );
        let mut inv = Invocation {
            config_dir: dir.path().to_path_buf(),
            settings: Vec::new(),
        };
        assert!(inv.load().is_err());
        assert_eq!(queue_directory_leniently(&inv), Path::new("/srv/spool"));
        inv.settings = vec![Setting::parse("queue_directory=/srv/other").unwrap()];
        assert_eq!(queue_directory_leniently(&inv), Path::new("/srv/other"));
        inv.settings.clear();
        dir.write("main.cf", "queue_directory = $somewhere/q\nbroken\n");
        assert_eq!(
            queue_directory_leniently(&inv),
            Path::new("/var/spool/mailgate")
        );
        assert_eq!(
            last_setting("a = 1\n#queue_directory = /x\n", "queue_directory"),
            None
        );
    }

    #[test]
    fn load_reports_main_cf_problems() {
        let inv = Invocation {
            config_dir: "/nonexistent/mailgate-test".into(),
            settings: Vec::new(),
        };
        match inv.load() {
            Err(Error::Config(d)) => assert!(d[0].to_string().contains("main.cf: cannot read")),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
}
