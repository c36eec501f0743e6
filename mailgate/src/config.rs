//! `mailgate config`: show main.cf parameters, like `postconf`.

use std::io::{self, Write};

use mailgate_config::MainConfig;

use crate::error::Error;
use crate::locate::Invocation;

/// Which values to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Every parameter with its value in effect (`postconf`).
    Effective,
    /// Only parameters set in main.cf or with `-o` (`postconf -n`).
    Explicit,
    /// Built-in defaults (`postconf -d`).
    Defaults,
}

/// Prints `name = value` lines to stdout: all parameters, or those in `names` in the
/// order given. Unknown names fail the command after everything else is printed.
pub fn run(invocation: &Invocation, source: Source, names: &[String]) -> Result<(), Error> {
    let config = match source {
        // Defaults do not depend on main.cf, so they show even when it is broken.
        Source::Defaults => MainConfig::parse(
            "",
            &invocation.config_dir.join("main.cf"),
            &invocation.config_dir,
            &[],
        )
        .map_err(|e| Error::Config(e.into_diagnostics()))?,
        Source::Effective | Source::Explicit => invocation.load()?,
    };
    let (mut lines, unknown) = select(&config, source, names);
    if source == Source::Effective {
        // Empty means "beside the mailgate program": show where that is.
        for (name, value) in &mut lines {
            if name == "daemon_directory" && value.is_empty() {
                *value = crate::locate::daemon_directory(&config)?
                    .display()
                    .to_string();
            }
        }
    }
    let mut out = io::stdout().lock();
    let written = lines
        .iter()
        .try_for_each(|(name, value)| writeln!(out, "{}", format_line(name, value)))
        .and_then(|()| out.flush());
    match written {
        // The reader went away (`mailgate config | head`): nothing left to do.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(Error::Output(e)),
        Ok(()) => {}
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::UnknownParameters(unknown))
    }
}

/// The `(name, value)` pairs to print, and the names asked for that do not exist.
fn select(
    config: &MainConfig,
    source: Source,
    names: &[String],
) -> (Vec<(String, String)>, Vec<String>) {
    let listed = match source {
        Source::Explicit => config.explicit(),
        Source::Effective | Source::Defaults => config.all(),
    };
    if names.is_empty() {
        return (listed, Vec::new());
    }
    let mut lines = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        if let Some(pair) = listed.iter().find(|(n, _)| n == name) {
            lines.push(pair.clone());
        } else if source != Source::Explicit || !config.is_known(name) {
            // With -n, a known parameter that is not set is simply not shown.
            unknown.push(name.clone());
        }
    }
    (lines, unknown)
}

/// `name = value`, without a trailing space when the value is empty (as postconf).
fn format_line(name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{name} =")
    } else {
        format!("{name} = {value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> MainConfig {
        MainConfig::parse(text, Path::new("main.cf"), Path::new("/etc/mailgate"), &[]).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selection() {
        let c = config(
            "relayhost = [10.0.0.1]\nmy_checks = reject\nsmtpd_client_restrictions = $my_checks\n",
        );
        let (lines, unknown) = select(&c, Source::Explicit, &[]);
        assert!(unknown.is_empty());
        assert_eq!(
            lines,
            vec![
                ("my_checks".into(), "reject".into()),
                ("relayhost".into(), "[10.0.0.1]".into()),
                ("smtpd_client_restrictions".into(), "$my_checks".into()),
            ]
        );
        let (lines, unknown) = select(
            &c,
            Source::Explicit,
            &names(&["relayhost", "myorigin", "nonsense"]),
        );
        assert_eq!(lines, vec![("relayhost".into(), "[10.0.0.1]".into())]);
        assert_eq!(unknown, vec!["nonsense"]);

        let (lines, unknown) = select(&c, Source::Effective, &names(&["myorigin", "my_checks"]));
        assert!(unknown.is_empty());
        assert_eq!(
            lines,
            vec![
                ("myorigin".into(), "$myhostname".into()),
                ("my_checks".into(), "reject".into())
            ]
        );
        let (all, _) = select(&c, Source::Effective, &[]);
        assert!(all.contains(&("queue_directory".into(), "/var/spool/mailgate".into())));
        assert!(all.contains(&("relayhost".into(), "[10.0.0.1]".into())));

        let d = config("");
        let (lines, unknown) = select(&d, Source::Defaults, &names(&["relayhost", "my_checks"]));
        assert_eq!(lines, vec![("relayhost".into(), String::new())]);
        assert_eq!(unknown, vec!["my_checks"]);
    }

    #[test]
    fn line_format() {
        assert_eq!(format_line("relayhost", ""), "relayhost =");
        assert_eq!(
            format_line("mail_owner", "mailgate"),
            "mail_owner = mailgate"
        );
    }
}
