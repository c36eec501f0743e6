//! aliases(5) tables (alias_maps): "name: address, address", read as
//! postalias(1) reads them. A gateway delivers nothing locally, so an alias
//! may only forward to addresses: the `|command`, `/file` and
//! `:include:/file` targets of local(8) are refused with the file and line,
//! and the gateway does not start with them.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{ConfigError, Diagnostic};
use crate::lines::{ORPHAN_MESSAGE, logical_lines};
use crate::table::finish;

/// One item of an alias's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Address(String),
    Command(String),
    File(String),
    Include(String),
}

impl Target {
    /// Why the gateway cannot carry this target out, or None for an address.
    fn refusal(&self) -> Option<String> {
        let (what, text) = match self {
            Target::Address(_) => return None,
            Target::Command(t) => ("delivery to a command", t),
            Target::File(t) => ("delivery to a file", t),
            Target::Include(t) => ("an :include: file", t),
        };
        Some(format!(
            "\"{text}\": {what} is not supported: mailgate delivers nothing locally \
             and runs no commands (forward the alias to an address)"
        ))
    }
}

/// The items of an alias value: separated by commas or white space outside
/// double quotes; quotes and angle brackets are removed.
pub(crate) fn targets(value: &str) -> Vec<Target> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' | ' ' | '\t' if !quoted => {
                if !current.is_empty() {
                    items.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
        .into_iter()
        .map(|item| {
            let bare = item.trim_start_matches('<').trim_end_matches('>');
            let unquoted = bare
                .strip_prefix('"')
                .and_then(|b| b.strip_suffix('"'))
                .unwrap_or(bare);
            if unquoted.starts_with('|') {
                Target::Command(unquoted.to_string())
            } else if unquoted.starts_with('/') {
                Target::File(unquoted.to_string())
            } else if unquoted
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case(":include:"))
            {
                Target::Include(unquoted.to_string())
            } else {
                // "\name": local(8)'s "no further alias expansion"; the
                // gateway has no mailbox for it either way.
                Target::Address(unquoted.trim_start_matches('\\').to_string())
            }
        })
        .collect()
}

/// postalias(1) source format. Every problem is reported with its line.
pub(crate) fn parse_alias_table(
    text: &str,
    path: &Path,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut map = HashMap::new();
    let (lines, orphans) = logical_lines(text);
    let mut diagnostics: Vec<Diagnostic> = orphans
        .into_iter()
        .map(|l| Diagnostic::new(path, l, ORPHAN_MESSAGE))
        .collect();
    for line in lines {
        let (key, value) = match split_entry(&line.text) {
            Ok(entry) => entry,
            Err(message) => {
                diagnostics.push(Diagnostic::new(path, line.line, message));
                continue;
            }
        };
        for target in targets(value) {
            if let Some(why) = target.refusal() {
                diagnostics.push(Diagnostic::new(
                    path,
                    line.line,
                    format!("alias \"{key}\": {why}"),
                ));
            }
        }
        // Like postalias, the first entry for a name wins.
        map.entry(key.to_lowercase())
            .or_insert_with(|| value.trim().to_string());
    }
    diagnostics.sort_by_key(|d| d.line);
    finish(map, diagnostics)
}

/// "name: value", the name local (no domain), perhaps quoted.
fn split_entry(text: &str) -> Result<(String, &str), String> {
    let (key, value) = if let Some(rest) = text.strip_prefix('"') {
        let end = rest
            .find('"')
            .ok_or_else(|| format!("unterminated quoted name in \"{text}\""))?;
        let after = rest[end + 1..].trim_start();
        let value = after
            .strip_prefix(':')
            .ok_or_else(|| format!("need name:value pair, found \"{text}\""))?;
        (rest[..end].to_string(), value)
    } else {
        let (key, value) = text
            .split_once(':')
            .ok_or_else(|| format!("need name:value pair, found \"{text}\""))?;
        (key.trim().to_string(), value)
    };
    if key.is_empty() || value.trim().is_empty() {
        return Err(format!("need name:value pair, found \"{text}\""));
    }
    if key.contains('@') || key.contains('%') {
        return Err(format!(
            "alias \"{key}\": name must be local and have no domain"
        ));
    }
    Ok((key, value))
}

/// The same refusals for an inline: alias table.
pub(crate) fn check_inline_aliases(
    spec: &str,
    map: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let mut problems: Vec<String> = map
        .iter()
        .flat_map(|(key, value)| {
            targets(value).into_iter().filter_map(move |t| {
                t.refusal()
                    .map(|why| format!("{spec}: alias \"{key}\": {why}"))
            })
        })
        .collect();
    problems.sort();
    match problems.len() {
        0 => Ok(()),
        _ => Err(ConfigError::Invalid(
            problems.into_iter().map(Diagnostic::unplaced).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        match parse_alias_table(text, Path::new("aliases")) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .into_diagnostics()
                .into_iter()
                .map(|d| format!("{}: {}", d.line, d.message))
                .collect(),
        }
    }

    #[test]
    fn entries_continuations_quotes_and_first_wins() {
        let map = parse_alias_table(
            "# comment\npostmaster: admin@example.com\nabuse:\tsec@example.com,\n  noc@example.com\n\
             \"odd name\": x@example.com\nPostmaster: second@example.com\n",
            Path::new("aliases"),
        )
        .unwrap();
        assert_eq!(map["postmaster"], "admin@example.com");
        assert_eq!(map["abuse"], "sec@example.com, noc@example.com");
        assert_eq!(map["odd name"], "x@example.com");
        assert_eq!(
            targets(&map["abuse"]),
            vec![
                Target::Address("sec@example.com".into()),
                Target::Address("noc@example.com".into())
            ]
        );
    }

    #[test]
    fn commands_files_includes_and_bad_lines_are_refused_with_their_line() {
        let got = messages(
            "ok: a@example.com\nbin: \"|/usr/bin/procmail -a x\"\nlog: /var/log/mail.copy\n\
             list: :include:/etc/mail/list\nnocolon a@example.com\nx@y: a@example.com\nempty:\n",
        );
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(
            got[0].starts_with(
                "2: alias \"bin\": \"|/usr/bin/procmail -a x\": delivery to a command"
            )
        );
        assert!(got[1].starts_with("3: alias \"log\": \"/var/log/mail.copy\": delivery to a file"));
        assert!(
            got[2].starts_with("4: alias \"list\": \":include:/etc/mail/list\": an :include: file")
        );
        assert!(got[3].starts_with("5: need name:value pair"));
        assert!(got[4].contains("name must be local"));
        assert!(got[5].starts_with("7: need name:value pair"));
    }
}
