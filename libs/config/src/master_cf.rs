//! master.cf: the services the master runs.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, Diagnostic, read_file};
use crate::lines::{ORPHAN_MESSAGE, logical_lines, strip_braces, tokens};
use crate::main_cf::{Override, references};

#[derive(Clone, Debug, PartialEq)]
pub enum ServiceKind {
    Inet,
    Unix,
    UnixDgram,
    Fifo,
    Pass,
}

impl ServiceKind {
    fn parse(text: &str) -> Option<ServiceKind> {
        Some(match text {
            "inet" => ServiceKind::Inet,
            "unix" => ServiceKind::Unix,
            "unix-dgram" => ServiceKind::UnixDgram,
            "fifo" => ServiceKind::Fifo,
            "pass" => ServiceKind::Pass,
            _ => return None,
        })
    }
}

/// One master.cf entry.
#[derive(Clone, Debug)]
pub struct ServiceEntry {
    /// As written: "smtp", "cleanup", "127.0.0.1:2525", "[::1]:2525", "2525".
    pub name: String,
    pub kind: ServiceKind,
    pub private: bool,
    pub unprivileged: bool,
    pub chroot: bool,
    /// None for "-" and "0".
    pub wakeup: Option<Duration>,
    /// None for "-" (the caller applies default_process_limit); Some(0) means no limit.
    pub maxproc: Option<u32>,
    pub command: String,
    /// Command arguments other than `-o` settings.
    pub args: Vec<String>,
    pub overrides: Vec<Override>,
    pub file: PathBuf,
    pub line: usize,
}

impl ServiceEntry {
    /// The program in daemon_directory that runs this service: Postfix's
    /// delivery-agent commands `smtp` and `lmtp` are both served by relay
    /// (told which by the command it is started for).
    pub fn program(&self) -> &str {
        match self.command.as_str() {
            "smtp" | "lmtp" => "relay",
            other => other,
        }
    }

    /// For inet services: the host part (None = all of inet_interfaces) and the port.
    /// None for other service kinds.
    pub fn inet_address(&self) -> Option<(Option<String>, u16)> {
        if self.kind != ServiceKind::Inet {
            return None;
        }
        parse_inet_address(&self.name).ok()
    }
}

/// A parsed master.cf.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    pub services: Vec<ServiceEntry>,
}

impl MasterConfig {
    /// Reads `DIR/master.cf`.
    pub fn load(config_dir: &Path) -> Result<MasterConfig, ConfigError> {
        let path = config_dir.join("master.cf");
        let text = read_file(&path)?;
        MasterConfig::parse(&text, &path)
    }

    /// Parses master.cf text; `origin` names the file in diagnostics.
    pub fn parse(text: &str, origin: &Path) -> Result<MasterConfig, ConfigError> {
        let mut diagnostics = Vec::new();
        let mut services: Vec<ServiceEntry> = Vec::new();
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        let (lines, orphans) = logical_lines(text);
        for line in orphans {
            diagnostics.push(Diagnostic::new(origin, line, ORPHAN_MESSAGE));
        }
        for logical in lines {
            let fields = tokens(&logical.text, char::is_whitespace);
            let line = logical.line;
            let mut error =
                |message: String| diagnostics.push(Diagnostic::new(origin, line, message));
            if fields.len() < 8 {
                error(format!(
                    "expected at least 8 fields (service type private unpriv chroot wakeup maxproc command), found {}",
                    fields.len()
                ));
                continue;
            }
            let text = |i: usize| fields[i].1;
            let name = text(0);
            let mut ok = true;
            let Some(kind) = ServiceKind::parse(text(1)) else {
                error(format!(
                    "unknown service type \"{}\" (expected inet, unix, unix-dgram, fifo or pass)",
                    text(1)
                ));
                continue;
            };
            if kind == ServiceKind::Inet
                && let Err(message) = parse_inet_address(name)
            {
                error(message);
                ok = false;
            }
            let mut flag = |column: &str, value: &str, default: bool| match value {
                "y" => Some(true),
                "n" => Some(false),
                "-" => Some(default),
                _ => {
                    error(format!(
                        "{column} field must be y, n or -, found \"{value}\""
                    ));
                    None
                }
            };
            let private = flag("private", text(2), kind != ServiceKind::Inet);
            let unprivileged = flag("unpriv", text(3), true);
            let chroot = flag("chroot", text(4), true);
            let wakeup = parse_wakeup(text(5)).map_err(&mut error);
            let maxproc = parse_maxproc(text(6)).map_err(&mut error);
            let command = text(7).to_string();

            let mut args = Vec::new();
            let mut overrides = Vec::new();
            let mut rest = fields[8..].iter();
            while let Some(&(offset, arg)) = rest.next() {
                if arg != "-o" {
                    if arg != "-v" {
                        diagnostics.push(Diagnostic::new(
                            origin,
                            logical.line_at(offset),
                            format!(
                                "{}: argument \"{arg}\" is not implemented (mailgate's \
                                 services take -o name=value and -v)",
                                fields[0].1
                            ),
                        ));
                        ok = false;
                    }
                    args.push(arg.to_string());
                    continue;
                }
                let arg_line = logical.line_at(offset);
                let Some(&(_, setting)) = rest.next() else {
                    diagnostics.push(Diagnostic::new(
                        origin,
                        arg_line,
                        "-o must be followed by name=value",
                    ));
                    ok = false;
                    continue;
                };
                let inner = strip_braces(setting).unwrap_or(setting);
                match inner.split_once('=') {
                    Some((n, v)) if !n.trim().is_empty() => overrides.push(Override {
                        name: n.trim().to_string(),
                        value: v.trim().to_string(),
                        origin: origin.to_path_buf(),
                        line: arg_line,
                    }),
                    _ => {
                        diagnostics.push(Diagnostic::new(
                            origin,
                            arg_line,
                            format!("-o {setting}: expected name=value"),
                        ));
                        ok = false;
                    }
                }
            }
            let key = (name.to_string(), text(1).to_string());
            if let Some(first) = seen.get(&key) {
                diagnostics.push(Diagnostic::new(
                    origin,
                    line,
                    format!(
                        "duplicate service \"{name}\" of type {} (first defined at line {first})",
                        text(1)
                    ),
                ));
                ok = false;
            } else {
                seen.insert(key, line);
            }
            let (Some(private), Some(unprivileged), Some(chroot), Ok(wakeup), Ok(maxproc), true) =
                (private, unprivileged, chroot, wakeup, maxproc, ok)
            else {
                continue;
            };
            services.push(ServiceEntry {
                name: name.to_string(),
                kind,
                private,
                unprivileged,
                chroot,
                wakeup,
                maxproc,
                command,
                args,
                overrides,
                file: origin.to_path_buf(),
                line,
            });
        }
        if diagnostics.is_empty() {
            Ok(MasterConfig { services })
        } else {
            diagnostics.sort_by_key(|d| d.line);
            Err(ConfigError::Invalid(diagnostics))
        }
    }

    /// All parameter names referenced as `$name`/`${name}` in `-o` values, sorted.
    pub fn parameter_references(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .services
            .iter()
            .flat_map(|s| s.overrides.iter())
            .flat_map(|o| references(&o.value))
            .collect();
        names.into_iter().collect()
    }
}

fn parse_wakeup(text: &str) -> Result<Option<Duration>, String> {
    if text == "-" {
        return Ok(None);
    }
    // A trailing '?' means "do not wake if the service is not used"; mailgate wakes anyway.
    let digits = text.strip_suffix('?').unwrap_or(text);
    match digits.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(Duration::from_secs(n))),
        _ => Err(format!(
            "wakeup field must be -, 0 or a number of seconds, found \"{text}\""
        )),
    }
}

fn parse_maxproc(text: &str) -> Result<Option<u32>, String> {
    if text == "-" {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(format!(
            "maxproc field must be - or a number of processes, found \"{text}\""
        )),
    }
}

/// Splits an inet service name into host and port: "host:port", "[v6]:port" or "port".
fn parse_inet_address(name: &str) -> Result<(Option<String>, u16), String> {
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("inet service \"{name}\": missing ']'"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!("inet service \"{name}\": expected [address]:port"));
        };
        (Some(host), port)
    } else {
        match name.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                    "inet service \"{name}\": write IPv6 addresses in brackets, as [::1]:25"
                ));
            }
            Some((host, port)) => (Some(host), port),
            None => (None, name),
        }
    };
    if host == Some("") {
        return Err(format!(
            "inet service \"{name}\": empty host name before ':'"
        ));
    }
    let port = match port {
        "smtp" => 25,
        "submission" => 587,
        "smtps" | "submissions" => 465,
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "inet service \"{name}\": bad port \"{p}\" (use a number, smtp, submission, smtps or submissions)"
                ));
            }
        },
    };
    Ok((host.map(str::to_string), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = "\
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:2525 inet n   -       y       -       100     smtpd
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       y       300     1       qmgr
smtp      unix  -       -       y       -       -       relay
relay     unix  -       -       y       -       -       relay
  -o smtp_helo_timeout=5s
";

    fn parse(text: &str) -> Result<MasterConfig, ConfigError> {
        MasterConfig::parse(text, Path::new("master.cf"))
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .into_diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn shipped_master_cf() {
        let m = parse(SHIPPED).unwrap();
        assert_eq!(m.services.len(), 5);
        let smtpd = &m.services[0];
        assert_eq!(smtpd.name, "127.0.0.1:2525");
        assert_eq!(smtpd.kind, ServiceKind::Inet);
        assert!(!smtpd.private && smtpd.unprivileged && smtpd.chroot);
        assert_eq!(smtpd.maxproc, Some(100));
        assert_eq!(smtpd.wakeup, None);
        assert_eq!(smtpd.command, "smtpd");
        assert_eq!(smtpd.line, 2);
        assert_eq!(smtpd.inet_address(), Some((Some("127.0.0.1".into()), 2525)));
        let cleanup = &m.services[1];
        assert!(!cleanup.private);
        assert_eq!(cleanup.maxproc, Some(0));
        assert_eq!(cleanup.inet_address(), None);
        let qmgr = &m.services[2];
        assert_eq!(qmgr.wakeup, Some(Duration::from_secs(300)));
        assert_eq!(qmgr.maxproc, Some(1));
        let smtp = &m.services[3];
        assert!(smtp.private);
        assert_eq!(smtp.maxproc, None);
        assert_eq!(smtp.command, "relay");
        let relay = &m.services[4];
        assert_eq!(relay.overrides.len(), 1);
        assert_eq!(relay.overrides[0].name, "smtp_helo_timeout");
        assert_eq!(relay.overrides[0].value, "5s");
        assert_eq!(relay.overrides[0].line, 7);
        assert_eq!(relay.overrides[0].origin, Path::new("master.cf"));
    }

    #[test]
    fn arguments_other_than_v_and_o_are_refused() {
        let err = parse("smtp inet n - n - - smtpd -v -D\n").unwrap_err();
        let text = format!("{err}");
        assert!(
            text.contains("smtp: argument \"-D\" is not implemented"),
            "{text}"
        );
        assert!(!text.contains("\"-v\""), "{text}");
    }

    #[test]
    fn seed_content_filter_services() {
        // From the CentOS proxy tutorial (seed 003) and the Italian talk (seed 001).
        let text = "\
amavisfeed unix    -       -       n        -      4     lmtp
    -o lmtp_data_done_timeout=1200
    -o disable_dns_lookups=yes
    -o max_use=20
127.0.0.1:10025 inet n    -       n       -       -     smtpd
    -o content_filter=
    -o smtpd_client_restrictions=permit_mynetworks,reject
    -o smtpd_helo_restrictions=
    -o mynetworks=127.0.0.0/8
    -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks
smtp inet n - n - - smtpd -v
smtp-amavis unix - - n - 2 smtp
 -o smtp_data_done_timeout=1200
 -o { smtpd_recipient_restrictions = permit_mynetworks, $my_extra }
pickup    fifo  n       -       y       60?     1       pickup
";
        let m = parse(text).unwrap();
        assert_eq!(m.services.len(), 5);
        assert_eq!(m.services[0].overrides.len(), 3);
        assert!(!m.services[0].chroot);
        let feed = &m.services[1];
        assert_eq!(feed.inet_address(), Some((Some("127.0.0.1".into()), 10025)));
        assert_eq!(feed.overrides[0].value, "");
        assert_eq!(feed.overrides[0].line, 6);
        assert_eq!(feed.overrides[2].name, "smtpd_helo_restrictions");
        let smtp = &m.services[2];
        assert_eq!(smtp.inet_address(), Some((None, 25)));
        assert_eq!(smtp.args, vec!["-v"]);
        let amavis = &m.services[3];
        assert_eq!(amavis.overrides[1].name, "smtpd_recipient_restrictions");
        assert_eq!(amavis.program(), "relay");
        assert_eq!(m.services[0].program(), "relay");
        assert_eq!(feed.program(), "smtpd");
        assert_eq!(amavis.overrides[1].value, "permit_mynetworks, $my_extra");
        assert_eq!(m.services[4].kind, ServiceKind::Fifo);
        assert_eq!(m.services[4].wakeup, Some(Duration::from_secs(60)));
        assert_eq!(m.parameter_references(), vec!["my_extra"]);
    }

    #[test]
    fn inet_addresses() {
        assert_eq!(
            parse_inet_address("[::1]:2525"),
            Ok((Some("::1".into()), 2525))
        );
        assert_eq!(parse_inet_address("2525"), Ok((None, 2525)));
        assert_eq!(parse_inet_address("submission"), Ok((None, 587)));
        assert_eq!(parse_inet_address("smtps"), Ok((None, 465)));
        assert_eq!(
            parse_inet_address("mx.example.com:submissions"),
            Ok((Some("mx.example.com".into()), 465))
        );
        assert!(parse_inet_address("::1:25").is_err());
        assert!(parse_inet_address("imap").is_err());
        assert!(parse_inet_address("host:0").is_err());
        assert!(parse_inet_address("host:99999").is_err());
        assert!(parse_inet_address(":25").is_err());
        assert!(parse_inet_address("[::1]").is_err());
    }

    #[test]
    fn bad_lines_are_all_reported() {
        let text = "\
smtp inet n - n - - 
smtp inet x - n - - smtpd
bounce unix n - y soon 0 bounce
qmgr unix n - y 300 many qmgr
relay stream - - y - - relay
imap inet n - y - - smtpd
relay unix - - y - - relay -o
cleanup unix n - y - 0 cleanup
cleanup unix n - y - 0 cleanup
  -o nonsense
    boom
";
        let errs = errors(text);
        assert_eq!(errs.len(), 10, "{errs:#?}");
        assert!(errs[0].starts_with("master.cf:1: expected at least 8 fields"));
        assert!(errs[1].starts_with("master.cf:2: private field must be y, n or -"));
        assert!(errs[2].starts_with("master.cf:3: wakeup field"));
        assert!(errs[3].starts_with("master.cf:4: maxproc field"));
        assert!(errs[4].starts_with("master.cf:5: unknown service type \"stream\""));
        assert!(errs[5].starts_with("master.cf:6: inet service \"imap\": bad port"));
        assert!(errs[6].starts_with("master.cf:7: -o must be followed"));
        assert!(errs[7].starts_with(
            "master.cf:9: duplicate service \"cleanup\" of type unix (first defined at line 8)"
        ));
        assert!(errs[8].starts_with("master.cf:10: -o nonsense: expected name=value"));
        assert!(errs[9].starts_with("master.cf:11: cleanup: argument \"boom\" is not implemented"));
    }

    #[test]
    fn load_from_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            MasterConfig::load(dir.path()),
            Err(ConfigError::Io { .. })
        ));
        std::fs::write(dir.path().join("master.cf"), SHIPPED).unwrap();
        let m = MasterConfig::load(dir.path()).unwrap();
        assert_eq!(m.services[0].file, dir.path().join("master.cf"));
    }
}
