//! `mailgate check`: validate the configuration, like `postfix check`.

use std::io::Write;
use std::path::{Path, PathBuf};

use mailgate_config::{Diagnostic, MasterConfig};
use mailgate_store::StoreSpec;

use crate::error::{Error, say};
use crate::locate::Invocation;

/// What a configuration check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Mistakes: the gateway must not start with any.
    pub errors: Vec<Diagnostic>,
    /// Legal but worth knowing, such as a service that runs without chroot.
    pub warnings: Vec<Diagnostic>,
}

/// Checks master.cf, main.cf, the tables and lists they name, and the `-o` settings.
pub fn examine(invocation: &Invocation) -> Findings {
    let dir = &invocation.config_dir;
    let report = mailgate_config::check(dir, &invocation.overrides());
    let mut findings = Findings {
        errors: report.errors,
        warnings: report.warnings,
    };
    let master = MasterConfig::load(dir).ok();
    if let Some(master) = &master {
        findings
            .warnings
            .extend(master.services.iter().filter(|s| !s.chroot).map(|s| {
                Diagnostic::new(
                    &s.file,
                    s.line,
                    format!("service {} runs without chroot", s.name),
                )
            }));
    }
    if let Some(master) = &master {
        findings
            .errors
            .extend(operator_services(invocation, master));
    }
    let scans = master
        .as_ref()
        .is_some_and(|m| m.services.iter().any(|s| s.command == "scanner"));
    if scans {
        match unevaluated_spam_rules(invocation) {
            Ok(rules) => findings.warnings.extend(rules),
            Err(e) => findings.errors.push(e),
        }
    }
    if let Some(master) = &master {
        findings.errors.extend(state_stores(invocation, master));
    }
    findings
}

/// What the stats and web services need that main.cf must say: the stats
/// service follows maillog_file, and the web page needs its logins. Without
/// them the service would only die at start-up, so these are errors.
fn operator_services(invocation: &Invocation, master: &MasterConfig) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let Ok(main) = invocation.load() else {
        return errors;
    };
    for service in &master.services {
        let config = match main.with_overrides(&service.overrides) {
            Ok(config) => config,
            Err(_) => continue,
        };
        let mut error = |text: String| {
            errors.push(Diagnostic::new(
                &service.file,
                service.line,
                format!("service {}: {text}", service.name),
            ));
        };
        match service.command.as_str() {
            "stats" => {
                if config.get("maillog_file").trim().is_empty() {
                    error(
                        "the stats service counts the lines of maillog_file, which is empty; \
                         set maillog_file = /var/log/mailgate.log (pflogsumm reads it too)"
                            .into(),
                    );
                }
                if service.maxproc != Some(1) {
                    error(
                        "the stats service is the one writer of its file: set maxproc to 1".into(),
                    );
                }
            }
            "web" => {
                if config.list("web_admin_users").is_empty() {
                    error(
                        "web_admin_users is empty, so nobody could log in to the web page".into(),
                    );
                }
                let kind = config.get("web_sasl_type");
                if kind != "dovecot" {
                    error(format!(
                        "web_sasl_type = {kind}: only dovecot (Dovecot's auth socket) is implemented"
                    ));
                }
                let sasl = config.get("web_sasl_path");
                let spool = config.get("queue_directory");
                if sasl.starts_with('/') && !std::path::Path::new(&sasl).starts_with(&spool) {
                    error(format!(
                        "web_sasl_path = {sasl}: the web service is chrooted into queue_directory \
                         ({spool}); put the login backend's socket there (e.g. private/auth)"
                    ));
                }
                let cert = config.get("web_tls_cert_file");
                if !cert.is_empty() {
                    for name in ["web_tls_cert_file", "web_tls_key_file"] {
                        let path = config.get(name);
                        if let Err(e) = std::fs::File::open(&path) {
                            error(format!("{name} = {path}: {e}"));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    errors
}

/// Spam rules the engine cannot evaluate (eval tests it does not
/// implement): they never hit, so an administrator must see them listed,
/// never silently dropped. The Bayes store is left closed: a running
/// scanner holds its lock.
fn unevaluated_spam_rules(invocation: &Invocation) -> Result<Vec<Diagnostic>, Diagnostic> {
    // When main.cf itself does not load, check() has already said why.
    let Ok(main) = invocation.load() else {
        return Ok(Vec::new());
    };
    let mut config = mailgate_spam::EngineConfig::from_main_cf(&main);
    config.bayes_dir = None;
    let engine = mailgate_spam::Engine::load(&config)
        .map_err(|e| Diagnostic::new(Path::new(""), 0, format!("spam rules: {e}")))?;
    let rules = engine.unsupported_rules();
    let ignored = engine.ignored_directives();
    let mut out = Vec::with_capacity(rules.len() + ignored.len() + 2);
    if !ignored.is_empty() {
        out.push(Diagnostic::new(
            Path::new(""),
            0,
            format!(
                "{} directives in the site's spam rule files are not carried out by mailgate:",
                ignored.len()
            ),
        ));
    }
    out.extend(ignored.into_iter().map(|d| {
        Diagnostic::new(
            &d.file,
            d.line,
            format!("{} {}: not implemented", d.name, d.test).replace("  ", " "),
        )
    }));
    if !rules.is_empty() {
        out.push(Diagnostic::new(
            Path::new(""),
            0,
            format!(
                "{} spam rules cannot be evaluated and never hit:",
                rules.len()
            ),
        ));
    }
    out.extend(rules.into_iter().map(|rule| {
        Diagnostic::new(
            &rule.file,
            rule.line,
            format!("{}: {}", rule.name, rule.test),
        )
    }));
    Ok(out)
}

/// `mailgate check`: the warnings and errors, and on success one line on
/// standard output that starts with `ok:` and says what was checked.
pub fn report(invocation: &Invocation) -> Result<(), Error> {
    let findings = examine(invocation);
    let warnings = findings.warnings.len();
    tell(findings)?;
    let line = summary(invocation, warnings);
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(()),
    }
}

/// `ok: DIR: 7 services in master.cf (smtpd, cleanup, ...), 12 parameters set in main.cf`.
fn summary(invocation: &Invocation, warnings: usize) -> String {
    let dir = &invocation.config_dir;
    let master = MasterConfig::load(dir).ok();
    let services = master.as_ref().map_or(0, |m| m.services.len());
    let mut programs: Vec<&str> = Vec::new();
    for service in master.iter().flat_map(|m| m.services.iter()) {
        if !programs.contains(&service.command.as_str()) {
            programs.push(&service.command);
        }
    }
    let parameters = invocation.load().map_or(0, |c| c.explicit().len());
    let mut line = format!(
        "ok: {}: {services} service{} in master.cf ({}), {parameters} parameter{} set in main.cf",
        dir.display(),
        if services == 1 { "" } else { "s" },
        programs.join(", "),
        if parameters == 1 { "" } else { "s" },
    );
    if warnings > 0 {
        line.push_str(&format!(
            ", {warnings} warning{}",
            if warnings == 1 { "" } else { "s" }
        ));
    }
    line
}

/// Each greylist and verify service's store (greylist_database,
/// address_verify_map) must parse, and two services cannot share one redb
/// file: only one process at a time can open it, so the second would die
/// at every start.
fn state_stores(invocation: &Invocation, master: &MasterConfig) -> Vec<Diagnostic> {
    // When main.cf itself does not load, check() has already said why.
    let Ok(main) = invocation.load() else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, &str)> = Vec::new();
    let mut out = Vec::new();
    for service in &master.services {
        let parameter = match service.command.as_str() {
            "greylist" => "greylist_database",
            "verify" => "address_verify_map",
            _ => continue,
        };
        // Bad overrides are reported by check() too.
        let Ok(config) = main.with_overrides(&service.overrides) else {
            continue;
        };
        let place = |message: String| Diagnostic::new(&service.file, service.line, message);
        let mut value = config.get(parameter);
        if parameter == "address_verify_map" {
            // Postfix's btree:... is a redb file; empty keeps the cache in
            // memory.
            value = mailgate_config::verify::cache_map(&value);
            if value.is_empty() {
                continue;
            }
        }
        match StoreSpec::parse(&value) {
            Err(e) => out.push(place(format!("service {}: {parameter}: {e}", service.name))),
            Ok(StoreSpec::Redb(path)) => {
                // maxproc 1 makes the master wait for the old process at a
                // reload; otherwise the new one finds the file locked, dies
                // at start-up and is throttled.
                if parameter == "address_verify_map" && service.maxproc != Some(1) {
                    out.push(place(format!(
                        "service {}: maxproc must be 1 when address_verify_map is a redb: file (one process at a time can open it; Postfix too runs one verify)",
                        service.name
                    )));
                }
                match files.iter().find(|(file, _)| *file == path) {
                    Some((_, other)) => out.push(place(format!(
                        "services {other} and {} both keep their state in redb:{}: one process at a time can open a redb file; give one its own (-o {parameter}=redb:...) or share a redis: store",
                        service.name,
                        path.display()
                    ))),
                    None => files.push((path, &service.name)),
                }
            }
            Ok(StoreSpec::Redis { .. }) => {}
        }
    }
    out
}

/// Prints the warnings, and fails with the errors if there are any.
pub fn run(invocation: &Invocation) -> Result<(), Error> {
    tell(examine(invocation))
}

fn tell(findings: Findings) -> Result<(), Error> {
    for warning in &findings.warnings {
        say(format_args!("warning: {warning}"));
    }
    if findings.errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(findings.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locate::Setting;
    use crate::testdir::TestDir;

    #[test]
    fn findings() {
        let dir = TestDir::new();
        dir.write(
            "master.cf",
            "smtp inet n - - - - smtpd\ncleanup unix n - n - 0 cleanup\n",
        );
        dir.write("main.cf", "relayhost = [10.0.0.1]\n");
        let mut inv = Invocation {
            config_dir: dir.path().to_path_buf(),
            settings: Vec::new(),
        };
        let f = examine(&inv);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        let master = dir.path().join("master.cf").display().to_string();
        let warnings: Vec<String> = f.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            vec![format!("{master}:2: service cleanup runs without chroot")]
        );

        inv.settings = vec![
            Setting::parse("smtpd_timeout=forever").unwrap(),
            Setting::parse("relayhost=[10.0.0.2]").unwrap(),
        ];
        let errors: Vec<String> = examine(&inv).errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("command line: smtpd_timeout: invalid time value"));
        assert!(matches!(run(&inv), Err(Error::Config(e)) if e.len() == 1));

        dir.write("main.cf", "relayhost = [10.0.0.1]\nno_such_thing = 1\n");
        let errors = examine(&inv).errors;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .to_string()
                .contains("main.cf:2: unknown parameter")
        );
    }
}
