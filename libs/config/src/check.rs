//! `mailgate check`: load everything the services will load and report every problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::clamd::ClamdTransfer;
use crate::error::{ConfigError, Diagnostic};
use crate::lists::{DomainList, NetworkList};
use crate::main_cf::MainConfig;
use crate::master_cf::MasterConfig;
use crate::table::Table;

/// Parameters whose items are all lookup tables.
const TABLE_PARAMETERS: &[&str] = &[
    "relay_recipient_maps",
    "transport_maps",
    "header_checks",
    "body_checks",
    "mime_header_checks",
    "nested_header_checks",
    "greylist_whitelist_clients",
    "greylist_whitelist_recipients",
];

const RESTRICTION_PARAMETERS: &[&str] = &[
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
    "smtpd_etrn_restrictions",
];

/// Checks master.cf, main.cf, every service's `-o` overrides, every table the
/// configuration names, and the domain and network lists. Empty means the
/// configuration is good.
pub fn check(config_dir: &Path) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let master = match MasterConfig::load(config_dir) {
        Ok(m) => Some(m),
        Err(e) => {
            diagnostics.extend(e.into_diagnostics());
            None
        }
    };
    let references = master
        .as_ref()
        .map(MasterConfig::parameter_references)
        .unwrap_or_default();
    let main = match MainConfig::load_with_references(config_dir, &references) {
        Ok(c) => c,
        Err(e) => {
            diagnostics.extend(e.into_diagnostics());
            return diagnostics;
        }
    };
    let mut checker = Checker {
        seen: HashSet::new(),
        tables: HashSet::new(),
        diagnostics,
    };
    checker.check_values(&main);
    for service in master.iter().flat_map(|m| m.services.iter()) {
        if service.overrides.is_empty() {
            continue;
        }
        match main.with_overrides(&service.overrides) {
            Ok(config) => checker.check_values(&config),
            Err(e) => checker.diagnostics.extend(e.into_diagnostics()),
        }
    }
    if let Some(master) = &master {
        checker.check_content_scanner(&main, master);
    }
    checker.diagnostics
}

impl Checker {
    /// content_scanner must name a Unix service of master.cf: otherwise
    /// every message would get a 4xx at run time.
    fn check_content_scanner(&mut self, main: &MainConfig, master: &MasterConfig) {
        let scanner = main.get("content_scanner");
        let scanner = scanner.trim();
        let served = master
            .services
            .iter()
            .any(|s| s.name == scanner && s.kind == crate::ServiceKind::Unix);
        if !scanner.is_empty() && !served {
            let (file, line) = main
                .origin("content_scanner")
                .map(|(f, l)| (f.to_path_buf(), l))
                .unwrap_or_else(|| (main.config_dir().join("main.cf"), 0));
            self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                format!("content_scanner = {scanner}: master.cf has no unix service of that name"),
            ));
        }
    }
}

struct Checker {
    /// (parameter origin, value) pairs already checked, so a table named in main.cf is
    /// not reported again for every service that inherits it.
    seen: HashSet<(PathBuf, usize, String, String)>,
    /// Table specs already opened.
    tables: HashSet<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Checker {
    fn check_values(&mut self, config: &MainConfig) {
        let dir = config.config_dir();
        for name in TABLE_PARAMETERS {
            for spec in config.list(name) {
                self.table(config, name, &spec);
            }
        }
        let classes = config.list("smtpd_restriction_classes");
        let restriction_lists = RESTRICTION_PARAMETERS
            .iter()
            .map(|n| n.to_string())
            .chain(classes.into_iter().filter(|c| config.is_known(c)));
        for name in restriction_lists {
            let items = config.list(&name);
            for pair in items.windows(2) {
                if pair[0].starts_with("check_") && pair[0].ends_with("_access") {
                    self.table(config, &name, &pair[1]);
                }
            }
        }
        let parents = config.list("parent_domain_matches_subdomains");
        for name in ["relay_domains", "mydestination"] {
            let listed = parents.iter().any(|p| p == name);
            let value = config.get(name);
            self.once(config, name, &value, |_| {
                DomainList::parse(&config.list(name), dir, listed).map(drop)
            });
        }
        let value = config.get("mynetworks");
        self.once(config, "mynetworks", &value, |_| {
            NetworkList::parse(&config.list("mynetworks"), dir).map(drop)
        });
        // Whether it fits depends on clamd_socket too (fildes needs a Unix socket).
        let value = format!(
            "{} with {}",
            config.get("clamd_transfer"),
            config.get("clamd_socket")
        );
        self.once(config, "clamd_transfer", &value, |_| {
            ClamdTransfer::from_main_cf(config)
                .map(drop)
                .map_err(|e| ConfigError::Invalid(vec![Diagnostic::unplaced(e.to_string())]))
        });
    }

    /// Opens a table once per spec: defaults such as mime_header_checks = $header_checks
    /// name the same table again.
    fn table(&mut self, config: &MainConfig, name: &str, spec: &str) {
        if self.tables.insert(spec.to_string()) {
            let dir = config.config_dir();
            self.once(config, name, spec, |spec| Table::open(spec, dir).map(drop));
        }
    }

    /// Runs one check unless the same value from the same place was already checked,
    /// placing its diagnostics at the parameter's setting.
    fn once(
        &mut self,
        config: &MainConfig,
        name: &str,
        value: &str,
        check: impl FnOnce(&str) -> Result<(), ConfigError>,
    ) {
        let (file, line) = config.origin(name).map_or_else(
            || (config.config_dir().join("main.cf"), 0),
            |(f, l)| (f.to_path_buf(), l),
        );
        if !self
            .seen
            .insert((file.clone(), line, name.to_string(), value.to_string()))
        {
            return;
        }
        match check(value) {
            Ok(()) => {}
            Err(ConfigError::Io { path, source }) => self.diagnostics.push(Diagnostic::new(
                &file,
                line,
                format!("{name}: cannot read {}: {source}", path.display()),
            )),
            Err(ConfigError::Invalid(list)) => self
                .diagnostics
                .extend(list.into_iter().map(|d| d.place(&file, line, name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER_CF: &str = "\
127.0.0.1:2525 inet n   -       y       -       100     smtpd
  -o smtpd_recipient_restrictions=check_recipient_access,hash:svc_access,$extra_checks
cleanup   unix  n       -       y       -       0       cleanup
relay     unix  -       -       y       -       -       relay
  -o smtp_helo_timeout=5s
";

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn run(dir: &Path) -> Vec<String> {
        check(dir).iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn good_configuration_has_no_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", MASTER_CF);
        write(
            d,
            "main.cf",
            "myhostname = spam.example.com\n\
             relay_domains = example.com, hash:relay_domains\n\
             relay_recipient_maps = hash:relay_recipients\n\
             transport_maps = hash:transport\n\
             extra_checks = check_sender_access regexp:sender_checks\n\
             smtpd_helo_restrictions = check_helo_access pcre:helo_checks, permit\n\
             header_checks = regexp:header_checks\n\
             mynetworks = 127.0.0.0/8 cidr:mynetworks.cidr\n",
        );
        write(d, "relay_domains", "example.org OK\n");
        write(
            d,
            "relay_recipients",
            "usuario1@example.com OK\nusuario2@example.com OK\n",
        );
        write(d, "transport", "example.com smtp:[mail.example.com]\n");
        write(d, "svc_access", "spammer@ REJECT\n");
        write(d, "sender_checks", "/@example\\.com$/ REJECT spoofed\n");
        write(
            d,
            "helo_checks",
            "/^spam\\.example\\.com$/ REJECT You are not in the server room\n",
        );
        write(d, "header_checks", "/^Subject: retire early/ REJECT\n");
        write(d, "mynetworks.cidr", "192.168.40.2/32 OK\n");
        assert_eq!(run(d), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n  -o smtpd_delay_reject=sometimes\n  -o smtpd_client_restrictions=check_client_access,hash:nowhere\n",
        );
        write(
            d,
            "main.cf",
            "transport_maps = hash:transport\n\
             relay_recipient_maps = nis:relay\n\
             header_checks = regexp:header_checks\n\
             mynetworks = 10.0.0.1/8\n\
             relay_domains = user@example.com\n",
        );
        write(d, "transport", "example.com\n");
        write(d, "header_checks", "/unterminated REJECT\n");
        let errs = run(d);
        let master = d.join("master.cf").display().to_string();
        let main = d.join("main.cf").display().to_string();
        let transport = d.join("transport").display().to_string();
        let headers = d.join("header_checks").display().to_string();
        let expected = [
            format!("{main}:2: relay_recipient_maps: unsupported table type \"nis\""),
            format!("{transport}:1: expected \"key whitespace value\""),
            format!("{headers}:1: missing closing '/'"),
            format!("{main}:5: relay_domains: \"user@example.com\" is not a domain name"),
            format!("{main}:4: mynetworks: bad network \"10.0.0.1/8\""),
            format!("{master}:2: smtpd_delay_reject: invalid boolean"),
        ];
        assert_eq!(errs.len(), expected.len(), "{errs:#?}");
        for (err, want) in errs.iter().zip(&expected) {
            assert!(
                err.starts_with(want.as_str()),
                "{err}\n  should start with\n{want}"
            );
        }

        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\n  -o smtpd_client_restrictions=check_client_access,hash:nowhere\n",
        );
        write(d, "main.cf", "\n");
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].starts_with(&format!(
            "{master}:2: smtpd_client_restrictions: cannot read {}",
            d.join("nowhere").display()
        )));
    }

    #[test]
    fn content_scanner_must_name_a_service() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\ncontent_scanner = scanner\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("main.cf:2: content_scanner = scanner: master.cf has no unix service")
        );
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\nscanner unix n - y - 8 scanner\n",
        );
        assert!(run(d).is_empty());
    }

    #[test]
    fn clamd_transfer_must_be_known_and_fit_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let main = d.join("main.cf").display().to_string();
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nclamd_socket = unix:/srv/clamd.ctl\nclamd_transfer = fdpass\n",
        );
        assert_eq!(
            run(d),
            [format!(
                "{main}:3: clamd_transfer: invalid value \"fdpass\" (expected auto, instream or fildes)"
            )]
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nclamd_transfer = fildes\nclamd_socket = inet:127.0.0.1:3310\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with(&format!("{main}:2: clamd_transfer: fildes passes"))
                && errs[0].contains("clamd_socket = inet:127.0.0.1:3310"),
            "{errs:#?}"
        );
        // A service's -o counts too; auto and instream fit both sockets.
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd\nscanner unix n - y - 8 scanner\n  -o clamd_transfer=fildes\n",
        );
        write(
            d,
            "main.cf",
            "myhostname = gw.example.com\nclamd_socket = inet:127.0.0.1:3310\n",
        );
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("master.cf:3: clamd_transfer: fildes passes"),
            "{errs:#?}"
        );
        write(d, "master.cf", "smtp inet n - y - - smtpd\n");
        for transfer in ["auto", "instream", "INSTREAM"] {
            write(
                d,
                "main.cf",
                &format!(
                    "myhostname = gw.example.com\nclamd_socket = inet:127.0.0.1:3310\nclamd_transfer = {transfer}\n"
                ),
            );
            assert_eq!(run(d), Vec::<String>::new(), "{transfer}");
        }
    }

    #[test]
    fn missing_files_and_broken_main_cf() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let errs = run(d);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].contains("master.cf: cannot read"));
        assert!(errs[1].contains("main.cf: cannot read"));
        write(
            d,
            "master.cf",
            "smtp inet n - y - - smtpd -o smtpd_banner=$my_banner\n",
        );
        write(d, "main.cf", "my_banner = hello\nunused_thing = 1\n");
        let errs = run(d);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("main.cf:2: unknown parameter \"unused_thing\""));
    }
}
