//! What the master hands a worker it starts: the command line it builds and
//! the descriptors it leaves open.
//!
//! `PROGRAM -c CONFIG_DIR -n SERVICE -t TYPE -p COMMAND [-r] [-u] -m MAXPROC [-o NAME=VALUE]... [-- ARGS...]`
//! with the service's listening socket on descriptor 3 and the read end of a
//! pipe on descriptor 4 whose other end only the master holds: when it reads
//! end-of-file, the master is gone and the worker exits.

use std::os::fd::RawFd;
use std::path::PathBuf;

pub const LISTEN_FD: RawFd = 3;
pub const MASTER_WATCH_FD: RawFd = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub config_dir: PathBuf,
    /// master.cf's service name, such as `smtp`, `cleanup` or `127.0.0.1:2525`.
    pub service: String,
    /// master.cf's type column: `inet` or `unix`.
    pub kind: String,
    /// master.cf's command column as written: one program may serve
    /// several commands (relay serves `smtp` and `lmtp`).
    pub command: String,
    /// master.cf's chroot column.
    pub chroot: bool,
    /// master.cf's unpriv column.
    pub unprivileged: bool,
    /// master.cf's maxproc column: how many sessions (or deliveries) this
    /// process serves at once.
    pub maxproc: u32,
    /// `-o` overrides from master.cf, as (name, value, master.cf line).
    pub overrides: Vec<(String, String, usize)>,
    pub args: Vec<String>,
}

impl Handoff {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "-c".to_string(),
            self.config_dir.display().to_string(),
            "-n".to_string(),
            self.service.clone(),
            "-t".to_string(),
            self.kind.clone(),
            "-p".to_string(),
            self.command.clone(),
            "-m".to_string(),
            self.maxproc.to_string(),
        ];
        if self.chroot {
            args.push("-r".to_string());
        }
        if self.unprivileged {
            args.push("-u".to_string());
        }
        for (name, value, line) in &self.overrides {
            args.push("-o".to_string());
            args.push(format!("{line}:{name}={value}"));
        }
        args.push("--".to_string());
        args.extend(self.args.iter().cloned());
        args
    }

    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> Result<Handoff, String> {
        let mut handoff = Handoff {
            config_dir: PathBuf::new(),
            service: String::new(),
            kind: String::new(),
            command: String::new(),
            chroot: false,
            unprivileged: false,
            maxproc: 1,
            overrides: Vec::new(),
            args: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("option {flag} needs a value"))
            };
            match arg.as_str() {
                "-c" => handoff.config_dir = PathBuf::from(value("-c")?),
                "-n" => handoff.service = value("-n")?,
                "-t" => handoff.kind = value("-t")?,
                "-p" => handoff.command = value("-p")?,
                "-m" => {
                    handoff.maxproc = value("-m")?
                        .parse()
                        .map_err(|_| "option -m needs a number".to_string())?
                }
                "-r" => handoff.chroot = true,
                "-u" => handoff.unprivileged = true,
                "-o" => {
                    let spec = value("-o")?;
                    let (line, assignment) = spec
                        .split_once(':')
                        .and_then(|(l, a)| Some((l.parse().ok()?, a)))
                        .ok_or_else(|| format!("bad -o value {spec:?}"))?;
                    let (name, val) = assignment
                        .split_once('=')
                        .ok_or_else(|| format!("bad -o value {spec:?}"))?;
                    handoff
                        .overrides
                        .push((name.to_string(), val.to_string(), line));
                }
                "--" => {
                    handoff.args = it.cloned().collect();
                    break;
                }
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if handoff.config_dir.as_os_str().is_empty() || handoff.service.is_empty() {
            return Err("started without -c and -n: workers are started by the master".into());
        }
        Ok(handoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let handoff = Handoff {
            config_dir: "/etc/mailgate".into(),
            service: "127.0.0.1:2525".into(),
            kind: "inet".into(),
            command: "smtpd".into(),
            chroot: true,
            unprivileged: true,
            maxproc: 100,
            overrides: vec![("smtpd_banner".into(), "a = b".into(), 7)],
            args: vec!["-v".into()],
        };
        assert_eq!(Handoff::parse(&handoff.to_args()).unwrap(), handoff);
        assert!(Handoff::parse(&[]).is_err());
    }
}
