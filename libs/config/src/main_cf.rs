//! main.cf: parsing, validation, `$name` expansion and typed access.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, Diagnostic, read_file};
use crate::lines::{ORPHAN_MESSAGE, logical_lines, split_list};
use crate::params::{self, Kind};

/// A `name=value` setting that replaces main.cf's value (master.cf `-o`, or `mailgate -o`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub name: String,
    pub value: String,
    /// Where the override was written, for diagnostics.
    pub origin: PathBuf,
    pub line: usize,
}

#[derive(Clone, Debug)]
struct Setting {
    value: String,
    file: PathBuf,
    line: usize,
}

/// A validated main.cf with its overrides applied.
#[derive(Clone, Debug)]
pub struct MainConfig {
    config_dir: PathBuf,
    settings: BTreeMap<String, Setting>,
    extra_references: Vec<String>,
    hostname: String,
    /// Expanded values of every known and every explicitly set parameter.
    expanded: HashMap<String, String>,
}

/// Deep enough for any sane configuration, shallow enough to never exhaust the stack.
const MAX_EXPANSION_DEPTH: usize = 64;

impl MainConfig {
    /// Reads `DIR/main.cf`.
    pub fn load(config_dir: &Path) -> Result<MainConfig, ConfigError> {
        MainConfig::load_with_references(config_dir, &[])
    }

    /// Reads `DIR/main.cf`, also accepting user-defined parameters named in
    /// `extra_references` (the `$name` references of master.cf `-o` values).
    pub fn load_with_references(
        config_dir: &Path,
        extra_references: &[String],
    ) -> Result<MainConfig, ConfigError> {
        let path = config_dir.join("main.cf");
        let text = read_file(&path)?;
        MainConfig::parse(&text, &path, config_dir, extra_references)
    }

    /// Parses main.cf text; `origin` names the file in diagnostics.
    pub fn parse(
        text: &str,
        origin: &Path,
        config_dir: &Path,
        extra_references: &[String],
    ) -> Result<MainConfig, ConfigError> {
        let mut diagnostics = Vec::new();
        let mut settings = BTreeMap::new();
        let (lines, orphans) = logical_lines(text);
        for line in orphans {
            diagnostics.push(Diagnostic::new(origin, line, ORPHAN_MESSAGE));
        }
        for logical in lines {
            let Some((name, value)) = logical.text.split_once('=') else {
                diagnostics.push(Diagnostic::new(
                    origin,
                    logical.line,
                    format!("expected \"name = value\", found \"{}\"", logical.text),
                ));
                continue;
            };
            let name = name.trim();
            if let Err(message) = check_name(name) {
                diagnostics.push(Diagnostic::new(origin, logical.line, message));
                continue;
            }
            settings.insert(
                name.to_string(),
                Setting {
                    value: value.trim().to_string(),
                    file: origin.to_path_buf(),
                    line: logical.line,
                },
            );
        }
        MainConfig::build(
            config_dir,
            settings,
            extra_references.to_vec(),
            host_name(),
            diagnostics,
        )
    }

    /// A copy with `overrides` applied, validated like main.cf itself.
    pub fn with_overrides(&self, overrides: &[Override]) -> Result<MainConfig, ConfigError> {
        let mut settings = self.settings.clone();
        let mut diagnostics = Vec::new();
        for o in overrides {
            let name = o.name.trim();
            if let Err(message) = check_name(name) {
                diagnostics.push(Diagnostic::new(&o.origin, o.line, message));
                continue;
            }
            settings.insert(
                name.to_string(),
                Setting {
                    value: o.value.trim().to_string(),
                    file: o.origin.clone(),
                    line: o.line,
                },
            );
        }
        MainConfig::build(
            &self.config_dir,
            settings,
            self.extra_references.clone(),
            self.hostname.clone(),
            diagnostics,
        )
    }

    fn build(
        config_dir: &Path,
        settings: BTreeMap<String, Setting>,
        extra_references: Vec<String>,
        hostname: String,
        mut diagnostics: Vec<Diagnostic>,
    ) -> Result<MainConfig, ConfigError> {
        let mut referenced: BTreeSet<String> = extra_references.iter().cloned().collect();
        for setting in settings.values() {
            referenced.extend(references(&setting.value));
        }
        // Restriction classes are user-defined parameters named without a '$'.
        if let Some(classes) = settings.get("smtpd_restriction_classes") {
            referenced.extend(split_list(&classes.value));
        }
        for (name, setting) in &settings {
            if params::find(name).is_none() && !referenced.contains(name) {
                let message = if crate::restrictions::is_restriction_name(name) {
                    // Seed 001 writes `reject_unauth_pipelining = yes`:
                    // Postfix ignores the line, so the defence is never on.
                    format!(
                        "unknown parameter \"{name}\": {name} is a restriction, not a parameter; \
                         name it in a restriction list (such as smtpd_data_restrictions = {name})"
                    )
                } else {
                    let hint = params::suggest(name)
                        .map(|known| format!("; did you mean \"{known}\"?"))
                        .unwrap_or_default();
                    format!(
                        "unknown parameter \"{name}\" (not a mailgate parameter, and not used as ${name} by any other setting){hint}"
                    )
                };
                diagnostics.push(Diagnostic::new(&setting.file, setting.line, message));
            }
        }

        let mut config = MainConfig {
            config_dir: config_dir.to_path_buf(),
            settings,
            extra_references,
            hostname,
            expanded: HashMap::new(),
        };
        let names: Vec<String> = params::all()
            .iter()
            .map(|p| p.name.to_string())
            .chain(config.settings.keys().cloned())
            .collect();
        let mut expander = Expander {
            config: &config,
            memo: HashMap::new(),
        };
        let mut expanded = HashMap::new();
        for name in names {
            let result = expander.expand_name(&name, &mut Vec::new());
            let setting = config.settings.get(&name);
            match (result, setting) {
                (Ok(value), Some(setting)) => {
                    if let Some(param) = params::find(&name)
                        && let Err(message) = params::validate(param.kind, &value)
                    {
                        let shown = if value == setting.value {
                            message
                        } else {
                            format!("{message}, after expanding \"{}\"", setting.value)
                        };
                        diagnostics.push(Diagnostic::new(
                            &setting.file,
                            setting.line,
                            format!("{name}: {shown}"),
                        ));
                    }
                    expanded.insert(name, value);
                }
                (Ok(value), None) => {
                    expanded.insert(name, value);
                }
                (Err(message), Some(setting)) => {
                    diagnostics.push(Diagnostic::new(
                        &setting.file,
                        setting.line,
                        format!("{name}: {message}"),
                    ));
                }
                // A default can only fail through an explicit setting, which is reported.
                (Err(_), None) => {
                    expanded.insert(name, String::new());
                }
            }
        }
        if let Some(setting) = config.settings.get("mynetworks_style")
            && let Some(value) = expanded.get("mynetworks_style")
            && !crate::mynetworks::STYLES.contains(&value.trim().to_ascii_lowercase().as_str())
        {
            diagnostics.push(Diagnostic::new(
                &setting.file,
                setting.line,
                format!(
                    "mynetworks_style: bad value \"{value}\"; specify exactly one of host, subnet, class"
                ),
            ));
        }
        if !diagnostics.is_empty() {
            diagnostics.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            diagnostics.dedup();
            return Err(ConfigError::Invalid(diagnostics));
        }
        config.expanded = expanded;
        Ok(config)
    }

    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The expanded value of a parameter, default applied.
    ///
    /// # Panics
    /// When `name` is neither in the parameter table nor set in main.cf: that is a
    /// programming error in the caller.
    pub fn get(&self, name: &str) -> String {
        match self.expanded.get(name) {
            Some(value) => value.clone(),
            None => panic!("BUG: unknown configuration parameter \"{name}\""),
        }
    }

    /// A yes/no parameter. Panics (a caller bug) when `name` is not a boolean parameter.
    pub fn bool(&self, name: &str) -> bool {
        self.typed(name, &[Kind::Bool], params::parse_bool)
    }

    /// An integer (or size) parameter. Panics (a caller bug) for other kinds.
    pub fn int(&self, name: &str) -> i64 {
        self.typed(name, &[Kind::Int, Kind::Size], params::parse_int)
    }

    /// A time parameter. Panics (a caller bug) for other kinds.
    pub fn time(&self, name: &str) -> Duration {
        let unit = match params::find(name).map(|p| p.kind) {
            Some(Kind::Time(unit)) => unit,
            _ => panic!("BUG: parameter \"{name}\" is not a time parameter"),
        };
        self.typed(name, &[Kind::Time(unit)], |v| params::parse_time(v, unit))
    }

    /// A decimal number parameter (spam score levels). Panics (a caller bug) for other kinds.
    pub fn score(&self, name: &str) -> f64 {
        self.typed(name, &[Kind::Score], params::parse_score)
    }

    /// A size (or non-negative integer) parameter. Panics (a caller bug) for other kinds.
    pub fn size(&self, name: &str) -> u64 {
        self.typed(name, &[Kind::Size, Kind::Int], params::parse_size)
    }

    fn typed<T>(&self, name: &str, kinds: &[Kind], parse: impl Fn(&str) -> Option<T>) -> T {
        let Some(param) = params::find(name) else {
            panic!("BUG: unknown configuration parameter \"{name}\"");
        };
        if !kinds.contains(&param.kind) {
            panic!(
                "BUG: parameter \"{name}\" is of kind {:?}, not {kinds:?}",
                param.kind
            );
        }
        let value = self.get(name);
        match parse(&value) {
            Some(v) => v,
            // Explicit values are validated at load time, so only a bad default gets here.
            None => panic!("BUG: parameter \"{name}\" has invalid value \"{value}\""),
        }
    }

    /// The expanded value split as a Postfix list (whitespace and/or commas; `{...}`
    /// groups stay one item, braces kept).
    pub fn list(&self, name: &str) -> Vec<String> {
        split_list(&self.get(name))
    }

    /// Explicitly set parameters with their raw values, sorted (like `postconf -n`).
    pub fn explicit(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(name, s)| (name.clone(), s.value.clone()))
            .collect()
    }

    /// Every known parameter (and every user-defined one) with its raw value, sorted
    /// (like `postconf`). Computed defaults are shown computed.
    pub fn all(&self) -> Vec<(String, String)> {
        let mut out: BTreeMap<String, String> = params::all()
            .iter()
            .map(|p| (p.name.to_string(), self.raw_default(p.name)))
            .collect();
        for (name, s) in &self.settings {
            out.insert(name.clone(), s.value.clone());
        }
        out.into_iter().collect()
    }

    /// True for table parameters and user-defined parameters set in main.cf:
    /// exactly the names `get` accepts.
    pub fn is_known(&self, name: &str) -> bool {
        self.expanded.contains_key(name)
    }

    /// Where a parameter was set (file and line), if it was set explicitly.
    pub(crate) fn origin(&self, name: &str) -> Option<(&Path, usize)> {
        self.settings.get(name).map(|s| (s.file.as_path(), s.line))
    }

    fn raw_default(&self, name: &str) -> String {
        match name {
            "myhostname" => self.hostname.clone(),
            // Computed from the (possibly explicit) myhostname, so show the result.
            "mydomain" => self.expanded.get(name).cloned().unwrap_or_default(),
            "mynetworks" if self.settings.contains_key("mynetworks_style") => {
                self.expanded.get(name).cloned().unwrap_or_default()
            }
            _ => params::find(name).map_or_else(String::new, |p| p.default.to_string()),
        }
    }
}

/// Parameter names are letters, digits and underscores.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing parameter name before \"=\"".to_string());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "bad parameter name \"{name}\" (only letters, digits and _ are allowed)"
        ));
    }
    Ok(())
}

/// The machine's host name, made fully qualified the way Postfix does when it has no dot.
fn host_name() -> String {
    let name = nix::unistd::gethostname()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    };
    if name.contains('.') {
        name
    } else {
        format!("{name}.localdomain")
    }
}

/// Names referenced as `$name`, `${name...}` or `$(name...)` in `text`.
pub(crate) fn references(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        match bytes.get(i) {
            Some(b'$') => {
                i += 1;
                continue;
            }
            Some(b'{') | Some(b'(') => i += 1,
            _ => {}
        }
        let start = i;
        while i < bytes.len() && is_name_byte(bytes[i]) {
            i += 1;
        }
        if i > start {
            out.push(text[start..i].to_string());
        }
    }
    out
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Expander<'a> {
    config: &'a MainConfig,
    memo: HashMap<String, String>,
}

impl Expander<'_> {
    fn expand_name(&mut self, name: &str, stack: &mut Vec<String>) -> Result<String, String> {
        if let Some(value) = self.memo.get(name) {
            return Ok(value.clone());
        }
        if stack.iter().any(|n| n == name) {
            let mut chain = stack.clone();
            chain.push(name.to_string());
            return Err(format!(
                "parameter expansion loop: {}",
                chain
                    .iter()
                    .map(|n| format!("${n}"))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ));
        }
        if stack.len() >= MAX_EXPANSION_DEPTH {
            return Err("parameter expansion nested too deeply".to_string());
        }
        stack.push(name.to_string());
        let raw = params::find(name).is_some_and(|p| p.kind == Kind::Raw);
        let result = match self.config.settings.get(name) {
            Some(setting) if raw => Ok(setting.value.clone()),
            None if raw => {
                Ok(params::find(name).map_or_else(String::new, |p| p.default.to_string()))
            }
            Some(setting) => self.expand_text(&setting.value.clone(), stack),
            None => match name {
                "myhostname" => Ok(self.config.hostname.clone()),
                "mydomain" => self
                    .expand_name("myhostname", stack)
                    .map(|host| domain_of_host(&host)),
                // Computed from mynetworks_style when that is set.
                "mynetworks" if self.config.settings.contains_key("mynetworks_style") => {
                    let style = self.expand_name("mynetworks_style", stack)?;
                    let interfaces = self.expand_name("inet_interfaces", stack)?;
                    let style = style.trim().to_ascii_lowercase();
                    if !crate::mynetworks::STYLES.contains(&style.as_str()) {
                        // Reported at mynetworks_style; nobody is trusted.
                        return Ok(String::new());
                    }
                    let own = crate::mynetworks::own_addresses(&split_list(&interfaces));
                    Ok(crate::mynetworks::networks(&style, &own).join(" "))
                }
                // Undefined names expand to nothing, as in Postfix.
                _ => match params::find(name) {
                    Some(param) => self.expand_text(param.default, stack),
                    None => Ok(String::new()),
                },
            },
        };
        stack.pop();
        if let Ok(value) = &result {
            self.memo.insert(name.to_string(), value.clone());
        }
        result
    }

    fn expand_text(&mut self, text: &str, stack: &mut Vec<String>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let next = after.chars().next();
            match next {
                Some('$') => {
                    out.push('$');
                    rest = &after[1..];
                }
                Some(open @ ('{' | '(')) => {
                    let close = if open == '{' { '}' } else { ')' };
                    let Some(end) = matching_close(after, open, close) else {
                        return Err(format!("missing '{close}' in \"{text}\""));
                    };
                    out.push_str(&self.expand_braced(&after[1..end], stack)?);
                    rest = &after[end + 1..];
                }
                Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                    let len = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    out.push_str(&self.expand_name(&after[..len], stack)?);
                    rest = &after[len..];
                }
                // A lone '$' is kept literally.
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The inside of `${...}`: `name`, `name?value` or `name:value`.
    fn expand_braced(&mut self, inner: &str, stack: &mut Vec<String>) -> Result<String, String> {
        let len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let (name, rest) = inner.split_at(len);
        if name.is_empty() {
            return Err(format!("missing parameter name in \"${{{inner}}}\""));
        }
        let value = self.expand_name(name, stack)?;
        let mut alternative = |text: &str| {
            // Postfix 3 also allows the alternative in braces: ${name?{text}}.
            let text = crate::lines::strip_braces(text).unwrap_or(text);
            self.expand_text(text, stack)
        };
        // Postfix 3: ${name?{if set}:{if not}}.
        if let Some(branches) = rest.strip_prefix('?')
            && let Some((set, unset)) = two_branches(branches)
        {
            let chosen = if value.is_empty() { unset } else { set };
            return self.expand_text(chosen, stack);
        }
        match rest.chars().next() {
            None => Ok(value),
            Some('?') if value.is_empty() => Ok(String::new()),
            Some('?') => alternative(&rest[1..]),
            Some(':') if value.is_empty() => alternative(&rest[1..]),
            Some(':') => Ok(String::new()),
            Some(_) => Err(format!(
                "bad parameter expression \"${{{inner}}}\" (expected ${{name}}, ${{name?value}} or ${{name:value}})"
            )),
        }
    }
}

/// `{a}:{b}` split into its two branches, braces removed.
fn two_branches(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    if !text.starts_with('{') {
        return None;
    }
    let end = matching_close(text, '{', '}')?;
    let first = &text[1..end];
    let rest = text[end + 1..].trim_start().strip_prefix(':')?.trim();
    let second_end = matching_close(rest, '{', '}')?;
    (second_end == rest.len() - 1).then(|| (first.trim(), rest[1..second_end].trim()))
}

/// Index in `text` (which starts with `open`) of the matching `close`.
fn matching_close(text: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Postfix's mydomain default: myhostname minus its first label, or "localdomain".
fn domain_of_host(host: &str) -> String {
    match host.split_once('.') {
        // Postfix wants at least two labels left ("example.com", not "com").
        Some((_, rest)) if rest.contains('.') => rest.to_string(),
        _ => "localdomain".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MainConfig, ConfigError> {
        MainConfig::parse(text, Path::new("main.cf"), Path::new("/etc/mailgate"), &[])
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_diagnostics().iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.get("default_transport"), "smtp");
        assert_eq!(c.get("mydestination"), "");
        assert_eq!(c.list("mynetworks"), vec!["127.0.0.0/8", "[::1]/128"]);
        assert_eq!(c.size("message_size_limit"), 10_240_000);
        assert_eq!(c.int("message_size_limit"), 10_240_000);
        assert_eq!(
            c.time("maximal_queue_lifetime"),
            Duration::from_secs(5 * 86400)
        );
        assert_eq!(c.time("delay_warning_time"), Duration::ZERO);
        assert_eq!(c.time("master_drain_time"), Duration::from_secs(30));
        assert_eq!(c.time("table_check_interval"), Duration::from_secs(5));
        assert!(c.bool("smtpd_delay_reject"));
        assert!(!c.bool("smtpd_helo_required"));
        assert_eq!(c.int("smtpd_hard_error_limit"), 20);
        let host = c.get("myhostname");
        assert!(host.contains('.'));
        assert_eq!(c.get("myorigin"), host);
        assert_eq!(c.get("smtpd_banner"), format!("{host} ESMTP mailgate"));
        assert!(c.explicit().is_empty());
        assert!(
            c.all()
                .iter()
                .any(|(n, v)| n == "myorigin" && v == "$myhostname")
        );
        assert!(c.is_known("relayhost"));
        assert!(!c.is_known("no_such_thing"));
    }

    #[test]
    fn mynetworks_from_its_style() {
        let c = parse("inet_interfaces = 127.0.0.1\nmynetworks_style = subnet\n").unwrap();
        assert_eq!(c.list("mynetworks"), vec!["127.0.0.0/8"]);
        assert!(
            c.all()
                .contains(&("mynetworks".into(), "127.0.0.0/8".into()))
        );
        let c = parse("inet_interfaces = 127.0.0.1\nmynetworks_style = host\n").unwrap();
        assert_eq!(c.list("mynetworks"), vec!["127.0.0.1/32"]);
        assert_eq!(c.get("smtpd_client_event_limit_exceptions"), "127.0.0.1/32");
        // An explicit mynetworks wins; without a style, mailgate's default.
        let c = parse("mynetworks_style = class\nmynetworks = 10.0.0.0/8\n").unwrap();
        assert_eq!(c.list("mynetworks"), vec!["10.0.0.0/8"]);
        let c = parse("inet_interfaces = 127.0.0.1\n").unwrap();
        assert_eq!(c.list("mynetworks"), vec!["127.0.0.0/8", "[::1]/128"]);
        assert_eq!(
            errors("mynetworks_style = wide\n"),
            vec![
                "main.cf:1: mynetworks_style: bad value \"wide\"; specify exactly one of host, subnet, class"
            ]
        );
    }

    #[test]
    fn mydomain_follows_myhostname() {
        let c = parse("myhostname = spam.example.com\n").unwrap();
        assert_eq!(c.get("mydomain"), "example.com");
        assert!(
            c.all()
                .contains(&("mydomain".to_string(), "example.com".to_string()))
        );
        let c = parse("myhostname = gateway.com\n").unwrap();
        assert_eq!(c.get("mydomain"), "localdomain");
    }

    #[test]
    fn seed_main_cf_snippet() {
        // From the FreeBSD spam gateway tutorial (seed 002), paths unchanged.
        let text = "\
queue_directory = /var/spool/postfix
command_directory = /usr/local/sbin
daemon_directory = /usr/local/libexec/postfix
data_directory = /var/db/postfix
mail_owner = postfix
unknown_local_recipient_reject_code = 550
myhostname = spam.example.com
mydomain = example.com
myorigin = $mydomain
inet_interfaces = all
mynetworks = 192.168.40.2/32
relay_domains = example.com
relay_recipient_maps = hash:/usr/local/etc/postfix/relay_recipients
smtpd_banner = $myhostname ESMTP $mail_name
debug_peer_level = 2
sendmail_path = /usr/local/sbin/sendmail
setgid_group = maildrop
transport_maps = hash:/usr/local/etc/postfix/transport
smtpd_helo_required = yes
header_checks = regexp:/etc/postfix/header_checks  
";
        let c = parse(text).unwrap();
        assert_eq!(c.get("myorigin"), "example.com");
        assert_eq!(c.get("smtpd_banner"), "spam.example.com ESMTP mailgate");
        assert!(c.bool("smtpd_helo_required"));
        assert_eq!(c.get("header_checks"), "regexp:/etc/postfix/header_checks");
        assert_eq!(c.explicit().len(), 20);
        assert_eq!(c.explicit()[0].0, "command_directory");
        assert_eq!(
            c.list("mime_header_checks"),
            vec!["regexp:/etc/postfix/header_checks"]
        );
    }

    #[test]
    fn continuation_comments_and_last_wins() {
        let text = "\
# restrictions
smtpd_recipient_restrictions =
    permit_mynetworks,
    # a comment inside does not end the value
    reject_unauth_destination
mydestination = $myhostname localhost $mydomain
relayhost = first

relayhost = [mail.$mydomain]
";
        let c = parse(text).unwrap();
        assert_eq!(
            c.list("smtpd_recipient_restrictions"),
            vec!["permit_mynetworks", "reject_unauth_destination"]
        );
        assert_eq!(c.get("relayhost"), format!("[mail.{}]", c.get("mydomain")));
        assert!(
            c.explicit()
                .contains(&("relayhost".into(), "[mail.$mydomain]".into()))
        );
    }

    #[test]
    fn conditional_expansion() {
        let text = "\
myhostname = mx.example.org
flag = yes
empty =
a = ${flag?on}|${flag:off}|${empty?on}|${empty:off}|$(flag)|${flag?{x y}}|$$|cost $ 5|$undefined.
b = ${flag?$myhostname}
";
        let refs = ["a".to_string(), "b".to_string()];
        let c = MainConfig::parse(text, Path::new("main.cf"), Path::new("/"), &refs).unwrap();
        assert_eq!(c.get("a"), "on|||off|yes|x y|$|cost $ 5|.");
        assert_eq!(c.get("b"), "mx.example.org");
        assert_eq!(c.get("flag"), "yes");
    }

    #[test]
    fn user_defined_parameters_must_be_referenced() {
        assert!(parse("my_checks = reject\nsmtpd_client_restrictions = $my_checks\n").is_ok());
        let errs = errors("\n\nmy_checks = reject\n");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("main.cf:3: unknown parameter \"my_checks\""),
            "{errs:?}"
        );
        let c = MainConfig::parse(
            "my_checks = reject\n",
            Path::new("main.cf"),
            Path::new("/etc/mailgate"),
            &["my_checks".to_string()],
        )
        .unwrap();
        assert_eq!(c.get("my_checks"), "reject");
        assert!(c.is_known("my_checks"));
    }

    #[test]
    fn restriction_classes_are_user_defined_parameters() {
        let text = "smtpd_restriction_classes = strict\nstrict = reject_unknown_sender_domain\n";
        let c = parse(text).unwrap();
        assert_eq!(c.list("strict"), vec!["reject_unknown_sender_domain"]);
    }

    #[test]
    fn config_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<MainConfig>();
        shareable::<crate::Table>();
        shareable::<crate::Router>();
        shareable::<crate::DomainList>();
        shareable::<crate::NetworkList>();
        shareable::<crate::MasterConfig>();
    }

    #[test]
    fn all_errors_are_collected_with_lines() {
        let text = "\
smtpd_helo_required = maybe
smtpd_timeout = 5 minutes
message_size_limit = 10M
smtpd_hard_error_limit = lots
sendmail_pth = /usr/sbin/sendmail
this is not an assignment
bad-name = 1
  # fine
spam_kill_level = high
";
        let errs = errors(text);
        assert_eq!(errs.len(), 8, "{errs:#?}");
        assert!(errs[0].starts_with("main.cf:1: smtpd_helo_required: invalid boolean"));
        assert!(errs[1].starts_with("main.cf:2: smtpd_timeout: invalid time value"));
        assert!(errs[2].starts_with("main.cf:3: message_size_limit: invalid size"));
        assert!(errs[3].starts_with("main.cf:4: smtpd_hard_error_limit: invalid number"));
        assert!(errs[4].starts_with("main.cf:5: unknown parameter \"sendmail_pth\""));
        assert!(
            errs[4].ends_with("; did you mean \"sendmail_path\"?"),
            "{}",
            errs[4]
        );
        assert!(errs[5].starts_with("main.cf:6: expected \"name = value\""));
        assert!(errs[6].starts_with("main.cf:7: bad parameter name"));
        assert!(errs[7].starts_with("main.cf:9: spam_kill_level: invalid score"));
    }

    #[test]
    fn typed_values_are_checked_after_expansion() {
        let c = parse("t = 10\nsmtpd_timeout = ${t}m\n").unwrap();
        assert_eq!(c.time("smtpd_timeout"), Duration::from_secs(600));
        let errs = errors("t = ten\nsmtpd_timeout = ${t}m\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("main.cf:2: smtpd_timeout: invalid time value \"tenm\""));
        assert!(errs[0].contains("after expanding \"${t}m\""));
    }

    #[test]
    fn expansion_loops_are_errors() {
        let errs = errors("a = $b\nb = ${c}\nc = x $a\nsmtpd_banner = $a\n");
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(
            errs[0].starts_with("main.cf:1: a: parameter expansion loop: $a -> $b -> $c -> $a")
        );
        let errs = errors("myhostname = mail.$mydomain\n");
        assert!(errs[0].contains("loop"), "{errs:?}");
        let errs = errors("relayhost = ${oops\n");
        assert!(errs[0].contains("missing '}'"));
        let errs = errors("relayhost = ${x!y}\nx = 1\n");
        assert!(errs[0].contains("bad parameter expression"), "{errs:?}");
    }

    #[test]
    fn orphan_continuation_is_an_error() {
        let errs = errors("   relayhost = x\n");
        assert_eq!(errs, vec![format!("main.cf:1: {ORPHAN_MESSAGE}")]);
    }

    #[test]
    fn overrides() {
        let c = parse("smtpd_timeout = 60s\n").unwrap();
        let o = |name: &str, value: &str, line| Override {
            name: name.into(),
            value: value.into(),
            origin: "master.cf".into(),
            line,
        };
        let c2 = c
            .with_overrides(&[o("smtpd_timeout", "5s", 3), o("content_filter", "", 4)])
            .unwrap();
        assert_eq!(c2.time("smtpd_timeout"), Duration::from_secs(5));
        assert_eq!(c.time("smtpd_timeout"), Duration::from_secs(60));
        assert!(
            c2.explicit()
                .contains(&("content_filter".into(), String::new()))
        );
        let err = c
            .with_overrides(&[
                o("smtpd_delay_reject", "perhaps", 7),
                o("no_such_param", "1", 8),
                o("bad name", "1", 9),
            ])
            .unwrap_err();
        let lines: Vec<String> = err
            .into_diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].starts_with("master.cf:7: smtpd_delay_reject: invalid boolean"));
        assert!(lines[1].starts_with("master.cf:8: unknown parameter"));
        assert!(lines[2].starts_with("master.cf:9: bad parameter name"));
    }

    #[test]
    fn references_are_found() {
        assert_eq!(
            references("$a ${b} $(c) ${d?$e} $$f $ 5"),
            vec!["a", "b", "c", "d", "e"]
        );
    }

    #[test]
    #[should_panic(expected = "BUG: unknown configuration parameter")]
    fn unknown_get_panics() {
        parse("").unwrap().get("no_such_parameter");
    }

    #[test]
    #[should_panic(expected = "BUG: parameter \"relayhost\"")]
    fn wrong_kind_panics() {
        parse("").unwrap().bool("relayhost");
    }

    #[test]
    fn load_reads_main_cf_from_dir() {
        let dir = tempfile::tempdir().unwrap();
        match MainConfig::load(dir.path()) {
            Err(ConfigError::Io { path, .. }) => assert_eq!(path, dir.path().join("main.cf")),
            other => panic!("expected Io error, got {other:?}"),
        }
        std::fs::write(dir.path().join("main.cf"), "relayhost = [10.0.0.5]\n").unwrap();
        let c = MainConfig::load(dir.path()).unwrap();
        assert_eq!(c.get("relayhost"), "[10.0.0.5]");
        assert_eq!(c.config_dir(), dir.path());
    }
}
