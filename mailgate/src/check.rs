//! `mailgate check`: validate the configuration, like `postfix check`.

use std::path::Path;

use mailgate_config::{Diagnostic, MasterConfig};

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
    let scans = master
        .as_ref()
        .is_some_and(|m| m.services.iter().any(|s| s.command == "scanner"));
    if scans {
        match unevaluated_spam_rules(invocation) {
            Ok(rules) => findings.warnings.extend(rules),
            Err(e) => findings.errors.push(e),
        }
    }
    findings
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
    let mut out = Vec::with_capacity(rules.len() + 1);
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

/// Prints the warnings, and fails with the errors if there are any.
pub fn run(invocation: &Invocation) -> Result<(), Error> {
    let findings = examine(invocation);
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
