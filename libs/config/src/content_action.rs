//! The actions of header_checks, mime_header_checks, nested_header_checks
//! and body_checks results, read as Postfix's cleanup_act reads them
//! (cleanup_message.c): the action word, case-insensitive, then its
//! optional text. A result cleanup cannot act on gets Postfix's warning,
//! and the line it matched is then treated as if nothing matched, as in
//! Postfix; `mailgate check` reports the same warnings for the table
//! entries whose result it can read beforehand.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::error::Diagnostic;
use crate::main_cf::MainConfig;
use crate::master_cf::{MasterConfig, ServiceKind};
use crate::table::Table;

/// One action, with its optional text (leading white space removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentAction<'a> {
    Reject(&'a str),
    Warn(&'a str),
    Info(&'a str),
    /// `transport:destination`, the message's content filter.
    Filter(&'a str),
    /// Log, then no more header or body checks for this message.
    Pass(&'a str),
    Discard(&'a str),
    Hold(&'a str),
    Prepend(&'a str),
    Replace(&'a str),
    /// `user@domain`, instead of all recipients.
    Redirect(&'a str),
    /// `user@domain`, one more recipient.
    Bcc(&'a str),
    /// Log and delete the line.
    Strip(&'a str),
    /// Delete the line.
    Ignore,
    /// DUNNO and OK: as if nothing matched.
    Dunno,
}

/// Reads a table's result. `map_class` is the parameter the table is from
/// ("header_checks"), for the warnings; `header` is true for the header
/// tables, where PREPEND and REPLACE text must be a header. Err is the
/// warning Postfix logs for a result it ignores.
pub fn parse<'a>(
    result: &'a str,
    map_class: &str,
    header: bool,
) -> Result<ContentAction<'a>, String> {
    let value = result.trim();
    let (command, text) = match value.split_once([' ', '\t']) {
        Some((command, rest)) => (command, rest.trim_start_matches([' ', '\t'])),
        None => (value, ""),
    };
    let is = |name: &str| command.eq_ignore_ascii_case(name);
    let header_text = |action: &str| {
        if text.is_empty() {
            Err(format!("{action} action without text in {map_class} map"))
        } else if header && !is_header(text) {
            Err(format!(
                "bad {action} header text \"{text}\" in {map_class} map -- need \"headername: headervalue\""
            ))
        } else {
            Ok(())
        }
    };
    let address = |what: &str| {
        if text.contains('@') {
            Ok(())
        } else {
            Err(format!(
                "bad {what} \"{text}\" in {map_class} map -- need user@domain"
            ))
        }
    };
    Ok(if is("REJECT") {
        ContentAction::Reject(text)
    } else if is("WARN") {
        ContentAction::Warn(text)
    } else if is("INFO") {
        ContentAction::Info(text)
    } else if is("FILTER") {
        if text.is_empty() {
            return Err(format!(
                "missing FILTER command argument in {map_class} map"
            ));
        }
        if !text.contains(':') {
            return Err(format!(
                "bad FILTER command {text} in {map_class} -- need transport:destination"
            ));
        }
        ContentAction::Filter(text)
    } else if is("PASS") {
        ContentAction::Pass(text)
    } else if is("DISCARD") {
        ContentAction::Discard(text)
    } else if is("HOLD") {
        ContentAction::Hold(text)
    } else if is("PREPEND") {
        header_text("PREPEND")?;
        ContentAction::Prepend(text)
    } else if is("REPLACE") {
        header_text("REPLACE")?;
        ContentAction::Replace(text)
    } else if is("REDIRECT") {
        address("REDIRECT target")?;
        ContentAction::Redirect(text)
    } else if is("BCC") {
        address("BCC address")?;
        ContentAction::Bcc(text)
    } else if is("STRIP") {
        ContentAction::Strip(text)
    } else if is("IGNORE") {
        ContentAction::Ignore
    } else if is("DUNNO") || is("OK") {
        ContentAction::Dunno
    } else {
        return Err(format!("unknown command in {map_class} map: {value}"));
    })
}

/// True when a result's action word is one of the actions above, whatever
/// its text.
pub fn is_known(result: &str) -> bool {
    let command = result.trim().split([' ', '\t']).next().unwrap_or("");
    [
        "REJECT", "WARN", "INFO", "FILTER", "PASS", "DISCARD", "HOLD", "PREPEND", "REPLACE",
        "REDIRECT", "BCC", "STRIP", "IGNORE", "DUNNO", "OK",
    ]
    .iter()
    .any(|known| command.eq_ignore_ascii_case(known))
}

/// The content check parameters, with whether their tables see headers.
const TABLES: &[(&str, bool)] = &[
    ("header_checks", true),
    ("mime_header_checks", true),
    ("nested_header_checks", true),
    ("body_checks", false),
    ("milter_header_checks", true),
];

/// The table whose entries apply to the headers milters add or change.
const MILTER_TABLE: &str = "milter_header_checks";

/// What is ignored in a milter_header_checks entry that cleanup's own
/// tables carry out: PASS (Postfix logs "unsupported command") and PREPEND
/// (not implemented in Postfix either; logged).
fn milter_warning(action: &ContentAction, result: &str) -> Option<String> {
    match action {
        ContentAction::Pass(_) => Some(format!(
            "unsupported command in {MILTER_TABLE} map: {}",
            result.trim()
        )),
        ContentAction::Prepend(_) => Some(format!(
            "the {MILTER_TABLE} PREPEND action is not implemented (as in Postfix)"
        )),
        _ => None,
    }
}

/// `mailgate check`'s warnings about the content check tables: every
/// entry whose result cleanup would log a warning for and ignore (an
/// unknown action, FILTER without transport:destination, REDIRECT or BCC
/// without user@domain, PREPEND or REPLACE without header text), at the
/// entry's file and line (a regexp or pcre file), or at the parameter's
/// setting. A result built from `$n` is judged by its action word only.
/// Tables that do not open are reported with the other tables. Entries of
/// milter_header_checks are judged as its own actions: PASS and PREPEND
/// are not carried out there.
pub(crate) fn table_warnings(config: &MainConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for entry in entries(config) {
        let warning = match parse(&entry.result, entry.parameter, entry.header) {
            Ok(action) if entry.parameter == MILTER_TABLE => {
                match milter_warning(&action, &entry.result) {
                    Some(w) => w,
                    None => continue,
                }
            }
            Ok(_) => continue,
            Err(w) => w,
        };
        // `${n}` is filled in at the lookup: only the action word is
        // known now.
        if entry.result.contains("${") && !warning.starts_with("unknown command") {
            continue;
        }
        let outcome = if entry.parameter == MILTER_TABLE {
            "the milter header checks log this and ignore the entry"
        } else {
            "cleanup logs this and ignores the entry"
        };
        out.push(Diagnostic::new(
            entry.file,
            entry.line,
            format!("{}: {warning}; {outcome}", entry.spec),
        ));
    }
    out
}

/// `mailgate check`'s warnings about FILTER results naming a transport
/// master.cf does not serve: the message would wait in the queue for it.
pub(crate) fn filter_warnings(config: &MainConfig, master: &MasterConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for entry in entries(config) {
        let Ok(ContentAction::Filter(filter)) = parse(&entry.result, entry.parameter, entry.header)
        else {
            continue;
        };
        let transport = filter.split_once(':').map_or("", |(t, _)| t).trim();
        if transport.contains('$') {
            continue;
        }
        let served = master
            .services
            .iter()
            .any(|s| s.name == transport && s.kind == ServiceKind::Unix);
        if !served {
            out.push(Diagnostic::new(
                entry.file,
                entry.line,
                format!(
                    "{}: FILTER {filter}: master.cf has no unix service \"{transport}\"; \
                     the messages it matches would wait in the queue",
                    entry.spec
                ),
            ));
        }
    }
    out
}

/// One result of a content check table, where it is written.
struct Entry {
    parameter: &'static str,
    header: bool,
    spec: String,
    file: PathBuf,
    line: usize,
    result: String,
}

/// Every result of the content check tables that can be read beforehand:
/// a regexp or pcre file's rules at their lines, other tables' results at
/// the parameter's setting. Each once, though mime_header_checks and
/// nested_header_checks name header_checks' tables by default; none whose
/// action word is built from `$n`.
fn entries(config: &MainConfig) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for &(parameter, header) in TABLES {
        for spec in config.list(parameter) {
            let Ok(table) = Table::open(&spec, config.config_dir()) else {
                continue;
            };
            let (file, line) = config.origin(parameter).map_or_else(
                || (config.config_dir().join("main.cf"), 0),
                |(f, l)| (f.to_path_buf(), l),
            );
            let results: Vec<(PathBuf, usize, String)> = match table.rule_results() {
                Some((Some(path), rules)) => rules
                    .into_iter()
                    .map(|(line, result)| (path.to_path_buf(), line, result))
                    .collect(),
                _ => table
                    .results()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|result| (file.clone(), line, result))
                    .collect(),
            };
            for (file, line, result) in results {
                if result
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.contains('$'))
                {
                    continue;
                }
                // A file shared with cleanup's tables is judged again as
                // milter_header_checks, whose actions differ.
                let milter = parameter == MILTER_TABLE;
                if seen.insert((file.clone(), line, result.clone(), milter)) {
                    out.push(Entry {
                        parameter,
                        header,
                        spec: spec.clone(),
                        file,
                        line,
                        result,
                    });
                }
            }
        }
    }
    out
}

/// `Name: value`, as Postfix's is_header: a name of printable ASCII but
/// ':', then optional white space, then ':'.
pub fn is_header(text: &str) -> bool {
    let name_end = text
        .bytes()
        .position(|b| !(b.is_ascii_graphic() && b != b':'))
        .unwrap_or(text.len());
    name_end > 0
        && text[name_end..]
            .trim_start_matches([' ', '\t'])
            .starts_with(':')
}

#[cfg(test)]
mod tests {
    use super::ContentAction::*;
    use super::*;

    fn hc(result: &str) -> Result<ContentAction<'_>, String> {
        parse(result, "header_checks", true)
    }

    #[test]
    fn actions_and_their_text() {
        assert_eq!(
            hc("filter smtp:[127.0.0.1]:10025"),
            Ok(Filter("smtp:[127.0.0.1]:10025"))
        );
        assert_eq!(hc("FILTER amavis:"), Ok(Filter("amavis:")));
        assert_eq!(hc("REDIRECT  a@b.example"), Ok(Redirect("a@b.example")));
        assert_eq!(hc("Bcc\tcopy@b.example"), Ok(Bcc("copy@b.example")));
        assert_eq!(hc("REJECT"), Ok(Reject("")));
        assert_eq!(hc("pass trusted"), Ok(Pass("trusted")));
        assert_eq!(hc("STRIP"), Ok(Strip("")));
        assert_eq!(hc("OK"), Ok(Dunno));
        assert_eq!(hc("IGNORE whatever"), Ok(Ignore));
        assert_eq!(hc("PREPEND X-A: b"), Ok(Prepend("X-A: b")));
        assert_eq!(
            parse("PREPEND no header", "body_checks", false),
            Ok(Prepend("no header"))
        );
    }

    #[test]
    fn mistakes_get_postfix_warnings() {
        assert_eq!(
            hc("FILTER nocolon"),
            Err("bad FILTER command nocolon in header_checks -- need transport:destination".into())
        );
        assert_eq!(
            hc("FILTER"),
            Err("missing FILTER command argument in header_checks map".into())
        );
        assert_eq!(
            hc("REDIRECT nobody"),
            Err("bad REDIRECT target \"nobody\" in header_checks map -- need user@domain".into())
        );
        assert_eq!(
            parse("BCC x", "body_checks", false),
            Err("bad BCC address \"x\" in body_checks map -- need user@domain".into())
        );
        assert_eq!(
            hc("REPLACE no header"),
            Err(
                "bad REPLACE header text \"no header\" in header_checks map -- need \"headername: headervalue\""
                    .into()
            )
        );
        assert_eq!(
            hc("PREPEND"),
            Err("PREPEND action without text in header_checks map".into())
        );
        assert_eq!(
            hc("REJECTX text"),
            Err("unknown command in header_checks map: REJECTX text".into())
        );
    }

    #[test]
    fn check_warns_about_entries_cleanup_would_ignore() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
        write(
            "master.cf",
            "127.0.0.1:2525 inet n - y - 100 smtpd\ncleanup unix n - y - 0 cleanup\nanvil unix - - y - 1 anvil\n\
             smtp unix - - y - - relay\n",
        );
        write(
            "main.cf",
            "header_checks = regexp:header_checks\nbody_checks = pcre:body_checks, inline:{ {x=bcc nobody} }\n\
             milter_header_checks = regexp:milter_header_checks\n",
        );
        write(
            "header_checks",
            "/^X-Ok:/ FILTER smtp:[127.0.0.1]:10025\n\
             /^X-Filter:/ FILTER nocolon\n\
             # a comment\n\
             /^X-Unknown:/ FROB it\n\
             /^X-Group: (.*)/ REDIRECT $1\n\
             /^X-Group2: (.*)/ FROB $1\n\
             if /^X-/\n\
             /^X-Nested:/ BCC\n\
             endif\n\
             /^X-Fine: (.*)/ REPLACE X-Other: $1\n\
             /^X-Nowhere:/ FILTER amavis:[127.0.0.1]:10024\n",
        );
        write(
            "body_checks",
            "/^fine/ BCC copy@example.com\n/^bad/ DELAY 1h\n",
        );
        write(
            "milter_header_checks",
            "/^X-Spam: yes/ REJECT\n/^X-Trusted:/ PASS\n/^X-Add:/ PREPEND X-Seen: yes\n\
             /^X-Copy:/ BCC nobody\n/^X-Fine:/ STRIP\n",
        );
        let report = crate::check(d, &[]);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let warnings: Vec<String> = report.warnings.iter().map(|w| w.to_string()).collect();
        let hc = d.join("header_checks");
        let bc = d.join("body_checks");
        let main_cf = d.join("main.cf");
        let ignored = "; cleanup logs this and ignores the entry";
        let mc = d.join("milter_header_checks");
        let milter_ignored = "; the milter header checks log this and ignore the entry";
        assert_eq!(
            warnings,
            [
                format!(
                    "{}:2: regexp:header_checks: bad FILTER command nocolon in header_checks -- need transport:destination{ignored}",
                    hc.display()
                ),
                format!(
                    "{}:4: regexp:header_checks: unknown command in header_checks map: FROB it{ignored}",
                    hc.display()
                ),
                format!(
                    "{}:6: regexp:header_checks: unknown command in header_checks map: FROB ${{1}}{ignored}",
                    hc.display()
                ),
                format!(
                    "{}:8: regexp:header_checks: bad BCC address \"\" in header_checks map -- need user@domain{ignored}",
                    hc.display()
                ),
                format!(
                    "{}:2: pcre:body_checks: unknown command in body_checks map: DELAY 1h{ignored}",
                    bc.display()
                ),
                format!(
                    "{}:2: inline:{{ {{x=bcc nobody}} }}: bad BCC address \"nobody\" in body_checks map -- need user@domain{ignored}",
                    main_cf.display()
                ),
                format!(
                    "{}:2: regexp:milter_header_checks: unsupported command in milter_header_checks map: PASS{milter_ignored}",
                    mc.display()
                ),
                format!(
                    "{}:3: regexp:milter_header_checks: the milter_header_checks PREPEND action is not implemented (as in Postfix){milter_ignored}",
                    mc.display()
                ),
                format!(
                    "{}:4: regexp:milter_header_checks: bad BCC address \"nobody\" in milter_header_checks map -- need user@domain{milter_ignored}",
                    mc.display()
                ),
                format!(
                    "{}:11: regexp:header_checks: FILTER amavis:[127.0.0.1]:10024: master.cf has no unix service \"amavis\"; the messages it matches would wait in the queue",
                    hc.display()
                ),
            ]
        );
    }

    #[test]
    fn known_commands() {
        assert!(is_known("bcc"));
        assert!(is_known(" FILTER nocolon"));
        assert!(!is_known("FROB x"));
        assert!(!is_known(""));
    }

    #[test]
    fn headers() {
        assert!(is_header("X-A: b"));
        assert!(is_header("X-A : b"));
        assert!(is_header("X-A:"));
        assert!(!is_header(": b"));
        assert!(!is_header("X A: b"));
        assert!(!is_header("no colon"));
    }
}
