//! Lookup tables (`type:name`) and access(5)-style address lookups.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ConfigError, Diagnostic, read_file};
use crate::lines::{ORPHAN_MESSAGE, logical_lines, split_list, strip_braces};
use crate::net::{Net, canonical};

/// An opened lookup table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Table {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spec: String,
    file: Option<PathBuf>,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// hash, btree, lmdb, texthash and inline: keys folded to lower case.
    Text(HashMap<String, String>),
    Static(String),
    Cidr(Vec<(Net, String)>),
    Regex(Vec<Rule>),
}

/// How the text source of hash, btree, lmdb and texthash tables is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextFormat {
    /// postmap(1): "key whitespace value".
    Postmap,
    /// postalias(1), aliases(5): "name: value".
    Aliases,
}

const SUPPORTED: &str = "hash, btree, lmdb, texthash, inline, static, cidr, regexp and pcre";

impl Table {
    /// Opens a table from its spec, e.g. "hash:/etc/mailgate/transport",
    /// "regexp:header_checks" (relative to `config_dir`), "inline:{a=b}", "static:OK".
    pub fn open(spec: &str, config_dir: &Path) -> Result<Table, ConfigError> {
        Table::open_as(spec, config_dir, TextFormat::Postmap)
    }

    /// Opens an alias table (alias_maps): its text files are in aliases(5)
    /// syntax ("name: address, address"), as postalias reads them.
    pub fn open_aliases(spec: &str, config_dir: &Path) -> Result<Table, ConfigError> {
        Table::open_as(spec, config_dir, TextFormat::Aliases)
    }

    fn open_as(spec: &str, config_dir: &Path, format: TextFormat) -> Result<Table, ConfigError> {
        let spec = spec.trim();
        // proxy: only changes who opens the table in Postfix; the content is the same.
        let mut body = spec;
        while let Some(rest) = body.strip_prefix("proxy:") {
            body = rest;
        }
        let Some((kind, name)) = body.split_once(':') else {
            return Err(invalid(format!(
                "\"{spec}\" is not a lookup table (expected type:name, such as hash:/etc/mailgate/transport)"
            )));
        };
        let file_path = || {
            if name.is_empty() {
                return Err(invalid(format!("table \"{spec}\" has no file name")));
            }
            Ok(config_dir.join(name))
        };
        let (file, source) = match kind {
            "hash" | "btree" | "lmdb" | "texthash" => {
                let path = file_path()?;
                let text = read_file(&path)?;
                let map = match format {
                    TextFormat::Postmap => parse_text_table(&text, &path)?,
                    TextFormat::Aliases => crate::aliases::parse_alias_table(&text, &path)?,
                };
                (Some(path.clone()), Source::Text(map))
            }
            "inline" => {
                let map = parse_inline(spec, name)?;
                if format == TextFormat::Aliases {
                    crate::aliases::check_inline_aliases(spec, &map)?;
                }
                (None, Source::Text(map))
            }
            "static" => {
                let value = strip_braces(name).unwrap_or(name);
                (None, Source::Static(value.to_string()))
            }
            "cidr" => {
                let path = file_path()?;
                let text = read_file(&path)?;
                (Some(path.clone()), Source::Cidr(parse_cidr(&text, &path)?))
            }
            "regexp" | "pcre" => {
                let dialect = if kind == "pcre" {
                    Dialect::Pcre
                } else {
                    Dialect::Posix
                };
                // Postfix 3.7's inline form: regexp:{{/pattern/ result}, ...}.
                if let Some(inner) = strip_braces(name) {
                    let rules: Vec<String> = split_list(inner)
                        .iter()
                        .map(|item| strip_braces(item).unwrap_or(item).to_string())
                        .collect();
                    let text = rules.join("\n");
                    (
                        None,
                        Source::Regex(parse_regex_table(&text, Path::new(spec), dialect)?),
                    )
                } else {
                    let path = file_path()?;
                    let text = read_file(&path)?;
                    (
                        Some(path.clone()),
                        Source::Regex(parse_regex_table(&text, &path, dialect)?),
                    )
                }
            }
            _ => {
                return Err(invalid(format!(
                    "unsupported table type \"{kind}\" in \"{spec}\" (mailgate supports {SUPPORTED})"
                )));
            }
        };
        Ok(Table {
            inner: Arc::new(Inner {
                spec: spec.to_string(),
                file,
                source,
            }),
        })
    }

    pub fn spec(&self) -> &str {
        &self.inner.spec
    }

    /// Files the table was read from (for change detection).
    pub fn source_files(&self) -> Vec<PathBuf> {
        self.inner.file.iter().cloned().collect()
    }

    /// Looks up one key, exactly as given (text tables fold case).
    pub fn lookup(&self, key: &str) -> Option<String> {
        match &self.inner.source {
            Source::Text(map) => map.get(&key.to_lowercase()).cloned(),
            Source::Static(value) => Some(value.clone()),
            Source::Cidr(entries) => {
                let text = key
                    .strip_prefix('[')
                    .and_then(|k| k.strip_suffix(']'))
                    .unwrap_or(key);
                let ip: IpAddr = canonical(text.parse().ok()?);
                entries
                    .iter()
                    .find(|(net, _)| net.contains(ip))
                    .map(|(_, result)| result.clone())
            }
            Source::Regex(rules) => eval_rules(rules, key),
        }
    }

    /// Every key and value of a table that is a list (hash, btree, lmdb,
    /// texthash, inline), keys in lower case and sorted; None for pattern
    /// tables, which cannot be listed.
    pub fn entries(&self) -> Option<Vec<(String, String)>> {
        match &self.inner.source {
            Source::Text(map) => {
                let mut entries: Vec<(String, String)> =
                    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                entries.sort();
                Some(entries)
            }
            _ => None,
        }
    }

    /// Every result a table can give, where they are known before a
    /// lookup: None for a regexp or pcre table with a result that uses $n.
    pub fn results(&self) -> Option<Vec<String>> {
        match &self.inner.source {
            Source::Text(map) => Some(map.values().cloned().collect()),
            Source::Static(value) => Some(vec![value.clone()]),
            Source::Cidr(entries) => Some(entries.iter().map(|(_, r)| r.clone()).collect()),
            Source::Regex(rules) => {
                let mut out = Vec::new();
                literal_results(rules, &mut out).then_some(out)
            }
        }
    }

    /// Every rule's result of a regexp or pcre table with the line it is
    /// written on, `$n` written `${n}`, for checks of what the results
    /// say; None for other tables. The file is the table's own, None for
    /// an inline table.
    pub fn rule_results(&self) -> Option<RuleResults<'_>> {
        match &self.inner.source {
            Source::Regex(rules) => {
                let mut out = Vec::new();
                rule_results(rules, &mut out);
                Some((self.inner.file.as_deref(), out))
            }
            _ => None,
        }
    }

    /// True for tables that match the whole key by pattern (regexp, pcre, cidr, static):
    /// callers look such a table up once instead of trying partial keys.
    pub fn is_pattern_table(&self) -> bool {
        !matches!(self.inner.source, Source::Text(_))
    }
}

/// A regexp or pcre table's file (None when inline) and its rules'
/// results with their lines.
pub type RuleResults<'a> = (Option<&'a Path>, Vec<(usize, String)>);

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(vec![Diagnostic::unplaced(message)])
}

pub(crate) fn finish<T>(value: T, diagnostics: Vec<Diagnostic>) -> Result<T, ConfigError> {
    if diagnostics.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid(diagnostics))
    }
}

/// Opens every table named in a parameter value's items; all errors are collected.
pub fn open_tables(value_items: &[String], config_dir: &Path) -> Result<Vec<Table>, ConfigError> {
    let mut tables = Vec::new();
    let mut diagnostics = Vec::new();
    for item in value_items {
        match Table::open(item, config_dir) {
            Ok(t) => tables.push(t),
            Err(e) => diagnostics.extend(e.into_diagnostics()),
        }
    }
    finish(tables, diagnostics)
}

/// postmap(1) source format: "key whitespace value".
fn parse_text_table(text: &str, path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let mut map = HashMap::new();
    let (lines, orphans) = logical_lines(text);
    let mut diagnostics: Vec<Diagnostic> = orphans
        .into_iter()
        .map(|l| Diagnostic::new(path, l, ORPHAN_MESSAGE))
        .collect();
    for line in lines {
        match line.text.split_once(char::is_whitespace) {
            Some((key, value)) => {
                // Like postmap, the first entry for a key wins.
                map.entry(key.to_lowercase())
                    .or_insert_with(|| value.trim().to_string());
            }
            None => diagnostics.push(Diagnostic::new(
                path,
                line.line,
                format!("expected \"key whitespace value\", found \"{}\"", line.text),
            )),
        }
    }
    diagnostics.sort_by_key(|d| d.line);
    finish(map, diagnostics)
}

/// "inline:{ key=value, { key = value with spaces } }".
fn parse_inline(spec: &str, body: &str) -> Result<HashMap<String, String>, ConfigError> {
    let Some(inner) = strip_braces(body) else {
        return Err(invalid(format!(
            "inline table \"{spec}\" must be written as inline:{{ key=value, ... }}"
        )));
    };
    let mut map = HashMap::new();
    let mut diagnostics = Vec::new();
    for item in split_list(inner) {
        let entry = strip_braces(&item).unwrap_or(&item);
        match entry.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                map.entry(key.trim().to_lowercase())
                    .or_insert_with(|| value.trim().to_string());
            }
            _ => diagnostics.push(Diagnostic::unplaced(format!(
                "inline table \"{spec}\": entry \"{item}\" is not key=value"
            ))),
        }
    }
    finish(map, diagnostics)
}

/// cidr_table(5): "network/prefix result", first match wins.
fn parse_cidr(text: &str, path: &Path) -> Result<Vec<(Net, String)>, ConfigError> {
    let mut entries = Vec::new();
    let (lines, orphans) = logical_lines(text);
    let mut diagnostics: Vec<Diagnostic> = orphans
        .into_iter()
        .map(|l| Diagnostic::new(path, l, ORPHAN_MESSAGE))
        .collect();
    for line in lines {
        let Some((pattern, result)) = line.text.split_once(char::is_whitespace) else {
            diagnostics.push(Diagnostic::new(
                path,
                line.line,
                format!(
                    "expected \"network/prefix result\", found \"{}\"",
                    line.text
                ),
            ));
            continue;
        };
        match Net::parse(pattern) {
            Ok(net) => entries.push((net, result.trim().to_string())),
            Err(message) => diagnostics.push(Diagnostic::new(path, line.line, message)),
        }
    }
    diagnostics.sort_by_key(|d| d.line);
    finish(entries, diagnostics)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Posix,
    Pcre,
}

enum Matcher {
    Posix(regex::Regex),
    Pcre(pcre2::bytes::Regex),
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Posix(r) => write!(f, "regexp {:?}", r.as_str()),
            Matcher::Pcre(r) => write!(f, "pcre {:?}", r.as_str()),
        }
    }
}

impl Matcher {
    fn groups(&self) -> usize {
        match self {
            Matcher::Posix(r) => r.captures_len() - 1,
            Matcher::Pcre(r) => r.captures_len() - 1,
        }
    }

    fn is_match(&self, key: &str) -> bool {
        match self {
            Matcher::Posix(r) => r.is_match(key),
            // A match error (such as a backtracking limit) counts as no match.
            Matcher::Pcre(r) => r.is_match(key.as_bytes()).unwrap_or(false),
        }
    }

    /// Capture groups of a match (index 0 = whole match); None when no match.
    fn captures(&self, key: &str) -> Option<Vec<Option<String>>> {
        match self {
            Matcher::Posix(r) => r.captures(key).map(|c| {
                c.iter()
                    .map(|m| m.map(|m| m.as_str().to_string()))
                    .collect()
            }),
            Matcher::Pcre(r) => r.captures(key.as_bytes()).ok().flatten().map(|c| {
                (0..c.len())
                    .map(|i| {
                        c.get(i)
                            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Debug)]
enum Part {
    Literal(String),
    Group(usize),
}

#[derive(Debug)]
enum Rule {
    Match {
        matcher: Matcher,
        negate: bool,
        result: Vec<Part>,
        /// Where the rule is written, for `mailgate check`.
        line: usize,
    },
    If {
        matcher: Matcher,
        negate: bool,
        rules: Vec<Rule>,
    },
}

fn eval_rules(rules: &[Rule], key: &str) -> Option<String> {
    for rule in rules {
        match rule {
            Rule::Match {
                matcher,
                negate: true,
                result,
                ..
            } => {
                if !matcher.is_match(key) {
                    return Some(substitute(result, &[]));
                }
            }
            Rule::Match {
                matcher,
                negate: false,
                result,
                ..
            } => {
                if let Some(groups) = matcher.captures(key) {
                    return Some(substitute(result, &groups));
                }
            }
            Rule::If {
                matcher,
                negate,
                rules,
            } => {
                if matcher.is_match(key) != *negate
                    && let Some(found) = eval_rules(rules, key)
                {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// The results of `rules` into `out`; false when one uses $n.
fn rule_results(rules: &[Rule], out: &mut Vec<(usize, String)>) {
    for rule in rules {
        match rule {
            Rule::Match { result, line, .. } => {
                let text = result
                    .iter()
                    .map(|part| match part {
                        Part::Literal(text) => text.clone(),
                        Part::Group(n) => format!("${{{n}}}"),
                    })
                    .collect();
                out.push((*line, text));
            }
            Rule::If { rules, .. } => rule_results(rules, out),
        }
    }
}

fn literal_results(rules: &[Rule], out: &mut Vec<String>) -> bool {
    for rule in rules {
        match rule {
            Rule::Match { result, .. } => {
                if result.iter().any(|p| matches!(p, Part::Group(_))) {
                    return false;
                }
                out.push(substitute(result, &[]));
            }
            Rule::If { rules, .. } => {
                if !literal_results(rules, out) {
                    return false;
                }
            }
        }
    }
    true
}

fn substitute(parts: &[Part], groups: &[Option<String>]) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Group(n) => {
                if let Some(Some(text)) = groups.get(*n) {
                    out.push_str(text);
                }
            }
        }
    }
    out
}

/// An open `if` block while parsing: its line, its condition (matcher, negated) and
/// the rules read so far.
type Block = (usize, Option<(Matcher, bool)>, Vec<Rule>);

/// regexp_table(5) / pcre_table(5).
fn parse_regex_table(text: &str, path: &Path, dialect: Dialect) -> Result<Vec<Rule>, ConfigError> {
    let (lines, orphans) = logical_lines(text);
    let mut diagnostics: Vec<Diagnostic> = orphans
        .into_iter()
        .map(|l| Diagnostic::new(path, l, ORPHAN_MESSAGE))
        .collect();
    // Open `if` blocks; the bottom entry is the file itself.
    let mut stack: Vec<Block> = vec![(0, None, Vec::new())];
    for line in lines {
        let text = line.text.as_str();
        if text == "endif" {
            if stack.len() == 1 {
                diagnostics.push(Diagnostic::new(
                    path,
                    line.line,
                    "endif without a matching if",
                ));
                continue;
            }
            if let Some((_, Some((matcher, negate)), rules)) = stack.pop()
                && let Some(parent) = stack.last_mut()
            {
                parent.2.push(Rule::If {
                    matcher,
                    negate,
                    rules,
                });
            }
            continue;
        }
        let (is_if, pattern_text) = match text.strip_prefix("if") {
            Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
            _ => (false, text),
        };
        let parsed = parse_pattern(pattern_text, dialect).and_then(|(matcher, negate, rest)| {
            if is_if {
                if rest.is_empty() {
                    Ok((matcher, negate, None))
                } else {
                    Err(format!("unexpected text \"{rest}\" after the if pattern"))
                }
            } else if rest.is_empty() {
                Err("missing result after the pattern".to_string())
            } else {
                let result = parse_result(rest, matcher.groups(), negate)?;
                Ok((matcher, negate, Some(result)))
            }
        });
        match parsed {
            Ok((matcher, negate, None)) => {
                stack.push((line.line, Some((matcher, negate)), Vec::new()))
            }
            Ok((matcher, negate, Some(result))) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push(Rule::Match {
                        matcher,
                        negate,
                        result,
                        line: line.line,
                    });
                }
            }
            Err(message) => diagnostics.push(Diagnostic::new(path, line.line, message)),
        }
    }
    while stack.len() > 1 {
        if let Some((line, _, _)) = stack.pop() {
            diagnostics.push(Diagnostic::new(path, line, "if without a matching endif"));
        }
    }
    diagnostics.sort_by_key(|d| d.line);
    let rules = stack.pop().map(|(_, _, rules)| rules).unwrap_or_default();
    finish(rules, diagnostics)
}

/// Parses `[!]/pattern/flags`; returns the matcher, the negation and the remaining text.
fn parse_pattern(text: &str, dialect: Dialect) -> Result<(Matcher, bool, &str), String> {
    let (negate, text) = match text.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, text),
    };
    let mut chars = text.char_indices();
    let Some((_, delimiter)) = chars.next() else {
        return Err("missing pattern".to_string());
    };
    if delimiter.is_alphanumeric() || delimiter.is_whitespace() || delimiter == '\\' {
        return Err(format!(
            "expected a pattern such as /regular expression/, found \"{text}\""
        ));
    }
    let mut pattern = String::new();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            pattern.push(c);
            if let Some((_, escaped)) = chars.next() {
                pattern.push(escaped);
            }
        } else if c == delimiter {
            end = Some(i + c.len_utf8());
            break;
        } else {
            pattern.push(c);
        }
    }
    let Some(end) = end else {
        return Err(format!("missing closing '{delimiter}' in \"{text}\""));
    };
    let after = &text[end..];
    let flags_len = after.find(char::is_whitespace).unwrap_or(after.len());
    let (flags, rest) = after.split_at(flags_len);
    let matcher = compile(&pattern, flags, dialect)?;
    Ok((matcher, negate, rest.trim()))
}

fn compile(pattern: &str, flags: &str, dialect: Dialect) -> Result<Matcher, String> {
    // Postfix tables match case-insensitively unless the i flag toggles it.
    let mut caseless = true;
    let (mut extended, mut multi_line, mut dotall, mut ungreedy, mut anchored) =
        (false, false, false, false, false);
    for flag in flags.chars() {
        match (flag, dialect) {
            ('i', _) => caseless = !caseless,
            ('x', _) => extended = true,
            ('m', _) => multi_line = true,
            ('s', Dialect::Pcre) => dotall = true,
            ('U', Dialect::Pcre) => ungreedy = true,
            ('A', Dialect::Pcre) => anchored = true,
            (_, Dialect::Posix) => {
                return Err(format!(
                    "unknown flag '{flag}' (regexp tables accept i, m and x)"
                ));
            }
            (_, Dialect::Pcre) => {
                return Err(format!(
                    "unknown flag '{flag}' (pcre tables accept i, m, s, x, A and U)"
                ));
            }
        }
    }
    match dialect {
        Dialect::Posix => regex::RegexBuilder::new(pattern)
            .case_insensitive(caseless)
            .ignore_whitespace(extended)
            .multi_line(multi_line)
            .build()
            .map(Matcher::Posix)
            .map_err(|e| format!("bad regular expression /{pattern}/: {e}")),
        Dialect::Pcre => {
            let mut full = String::new();
            if ungreedy {
                full.push_str("(?U)");
            }
            if anchored {
                full.push_str("\\A(?:");
            }
            full.push_str(pattern);
            if anchored {
                // In x mode a trailing comment would swallow the parenthesis: end the line.
                full.push_str(if extended { "\n)" } else { ")" });
            }
            pcre2::bytes::RegexBuilder::new()
                .caseless(caseless)
                .extended(extended)
                .multi_line(multi_line)
                .dotall(dotall)
                .utf(true)
                .build(&full)
                .map(Matcher::Pcre)
                .map_err(|e| format!("bad regular expression /{pattern}/: {e}"))
        }
    }
}

/// A result text with `$1`, `${1}` and `$$`, checked against the pattern's groups.
fn parse_result(text: &str, groups: usize, negate: bool) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        literal.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (digits, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(close) => (&inner[..close], close + 2),
                None => return Err(format!("missing '}}' in result \"{text}\"")),
            }
        } else {
            let len = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            (&after[..len], len)
        };
        if let Some(tail) = after.strip_prefix('$') {
            literal.push('$');
            rest = tail;
            continue;
        }
        if digits.is_empty() {
            // A '$' not followed by a group number is kept as written.
            literal.push('$');
            rest = after;
            continue;
        }
        let n: usize = digits
            .parse()
            .map_err(|_| format!("bad substitution \"${digits}\" in result \"{text}\""))?;
        if negate {
            return Err(format!("a negated pattern cannot use ${n} in its result"));
        }
        if n > groups {
            return Err(format!(
                "result uses ${n}, but the pattern has only {groups} group(s)"
            ));
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Group(n));
        rest = &after[consumed..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// Options for `lookup_address`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressLookup {
    /// Also look up the parent domains of the address's domain.
    pub parent_domains: bool,
    /// Parent domains are looked up bare ("example.com") instead of as ".example.com"
    /// (Postfix: smtpd_access_maps listed in parent_domain_matches_subdomains).
    pub parent_bare: bool,
    /// recipient_delimiter: "user+ext@domain" is also tried as "user@domain".
    pub recipient_delimiter: Option<char>,
}

/// The key the null sender is looked up with (smtpd_null_access_lookup_key).
const NULL_ADDRESS_KEY: &str = "<>";

/// access(5) lookup of an e-mail address: for text tables "user@domain" (with and then
/// without the address extension), "domain", parent domains if enabled, "user@"; for
/// pattern tables the whole address once.
pub fn lookup_address(table: &Table, address: &str, opts: &AddressLookup) -> Option<String> {
    if address.is_empty() || address == NULL_ADDRESS_KEY {
        return table.lookup(NULL_ADDRESS_KEY);
    }
    if table.is_pattern_table() {
        return table.lookup(address);
    }
    address_keys(address, opts)
        .iter()
        .find_map(|key| table.lookup(key))
}

/// The access(5) key sequence for a text table.
fn address_keys(address: &str, opts: &AddressLookup) -> Vec<String> {
    let mut keys = Vec::new();
    let (local, domain) = match crate::address::split_address(address) {
        Some((local, domain)) => (local, Some(domain)),
        None => (address, None),
    };
    let base_local = strip_extension(local, opts.recipient_delimiter);
    match &domain {
        Some(domain) => {
            keys.push(format!("{local}@{domain}"));
            if let Some(base) = base_local {
                keys.push(format!("{base}@{domain}"));
            }
            keys.push(domain.clone());
            if opts.parent_domains {
                keys.extend(parent_keys(domain, opts.parent_bare));
            }
        }
        None => {
            keys.push(local.to_string());
            if let Some(base) = base_local {
                keys.push(base.to_string());
            }
        }
    }
    keys.push(format!("{local}@"));
    if let Some(base) = base_local {
        keys.push(format!("{base}@"));
    }
    keys
}

/// "user+ext" -> "user" when the delimiter is set and present.
pub(crate) fn strip_extension(local: &str, delimiter: Option<char>) -> Option<&str> {
    let delimiter = delimiter?;
    match local.split_once(delimiter) {
        Some((base, _)) if !base.is_empty() => Some(base),
        _ => None,
    }
}

/// Parent domains of `domain`, bare ("example.com", "com") or dotted (".example.com", ".com").
/// Address literals such as "[192.0.2.1]" have no parents.
pub(crate) fn parent_keys(domain: &str, bare: bool) -> Vec<String> {
    if domain.starts_with('[') {
        return Vec::new();
    }
    let mut keys = Vec::new();
    let mut rest = domain;
    while let Some((_, parent)) = rest.split_once('.') {
        if parent.is_empty() {
            break;
        }
        keys.push(if bare {
            parent.to_string()
        } else {
            format!(".{parent}")
        });
        rest = parent;
    }
    keys
}

#[cfg(test)]
mod inline_regexp_tests {
    use super::*;

    #[test]
    fn inline_regexp_tables() {
        let t = Table::open("regexp:{{/^[^A-Z]/ Bogus}, {/^x/ X}}", Path::new("/")).unwrap();
        // Case-insensitive, as regexp tables are by default: only what does
        // not start with a letter.
        assert_eq!(t.lookup("\u{16}\u{3}").as_deref(), Some("Bogus"));
        assert_eq!(t.lookup("lower"), None);
        assert!(t.is_pattern_table());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn errors(result: Result<Table, ConfigError>) -> Vec<String> {
        result
            .unwrap_err()
            .into_diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn text_tables_all_types() {
        let dir = tempfile::tempdir().unwrap();
        // The transport table of the Catalan tutorial (seed 000), tabs and all.
        write(
            dir.path(),
            "transport",
            "local\t\tsmtp:10.138.0.2:25\noriol.joor.net \tsmtp:10.138.0.2:25\nJoor.NET\tsmtp:10.138.0.2:25\n# comment\noriolrius.cat\tsmtp:10.138.0.2:25 \nmulti  first\n   second\njoor.net duplicate\n",
        );
        for kind in ["hash", "btree", "lmdb", "texthash"] {
            let t = Table::open(&format!("{kind}:transport"), dir.path()).unwrap();
            assert_eq!(t.lookup("joor.net").as_deref(), Some("smtp:10.138.0.2:25"));
            assert_eq!(t.lookup("JOOR.net").as_deref(), Some("smtp:10.138.0.2:25"));
            assert_eq!(
                t.lookup("oriolrius.cat").as_deref(),
                Some("smtp:10.138.0.2:25")
            );
            assert_eq!(t.lookup("multi").as_deref(), Some("first second"));
            assert_eq!(t.lookup("nothere"), None);
            assert!(!t.is_pattern_table());
            assert_eq!(t.source_files(), vec![dir.path().join("transport")]);
            assert_eq!(t.spec(), format!("{kind}:transport"));
        }
        let abs = format!("proxy:hash:{}", dir.path().join("transport").display());
        assert!(
            Table::open(&abs, Path::new("/nonexistent"))
                .unwrap()
                .lookup("local")
                .is_some()
        );
    }

    #[test]
    fn text_table_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bad", "  orphan\ngood OK\nlonely\n");
        let errs = errors(Table::open("hash:bad", dir.path()));
        let file = dir.path().join("bad").display().to_string();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0], format!("{file}:1: {ORPHAN_MESSAGE}"));
        assert!(errs[1].starts_with(&format!("{file}:3: expected \"key whitespace value\"")));
        assert!(matches!(
            Table::open("hash:missing", dir.path()),
            Err(ConfigError::Io { .. })
        ));
        assert!(
            errors(Table::open("unix:passwd.byname", dir.path()))[0]
                .contains("unsupported table type \"unix\"")
        );
        assert!(errors(Table::open("justaname", dir.path()))[0].contains("is not a lookup table"));
        assert!(errors(Table::open("hash:", dir.path()))[0].contains("has no file name"));
    }

    #[test]
    fn inline_and_static() {
        let t = Table::open(
            "inline:{ Key=value, { other = value with spaces }, x=}",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(t.lookup("key").as_deref(), Some("value"));
        assert_eq!(t.lookup("OTHER").as_deref(), Some("value with spaces"));
        assert_eq!(t.lookup("x").as_deref(), Some(""));
        assert!(t.source_files().is_empty());
        assert!(!t.is_pattern_table());
        assert!(errors(Table::open("inline:a=b", Path::new("/")))[0].contains("inline:{"));
        assert!(errors(Table::open("inline:{a}", Path::new("/")))[0].contains("not key=value"));
        let s = Table::open("static:{REJECT go away}", Path::new("/")).unwrap();
        assert_eq!(s.lookup("anything").as_deref(), Some("REJECT go away"));
        assert!(s.is_pattern_table());
        let s = Table::open("static:OK", Path::new("/")).unwrap();
        assert_eq!(s.lookup("").as_deref(), Some("OK"));
    }

    #[test]
    fn cidr_tables() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "clients.cidr",
            "# first match wins\n192.168.40.2/32 OK\n192.168.0.0/16 REJECT internal only\n2001:db8::/32 OK v6\n[::1] OK loopback\n10.1.2.3 DUNNO\n",
        );
        let t = Table::open("cidr:clients.cidr", dir.path()).unwrap();
        assert!(t.is_pattern_table());
        assert_eq!(t.lookup("192.168.40.2").as_deref(), Some("OK"));
        assert_eq!(
            t.lookup("192.168.1.1").as_deref(),
            Some("REJECT internal only")
        );
        assert_eq!(
            t.lookup("::ffff:192.168.1.1").as_deref(),
            Some("REJECT internal only")
        );
        assert_eq!(t.lookup("2001:db8::25").as_deref(), Some("OK v6"));
        assert_eq!(t.lookup("[::1]").as_deref(), Some("OK loopback"));
        assert_eq!(t.lookup("10.1.2.3").as_deref(), Some("DUNNO"));
        assert_eq!(t.lookup("10.1.2.4"), None);
        assert_eq!(t.lookup("not-an-ip"), None);
        write(
            dir.path(),
            "bad.cidr",
            "10.0.0.1/8 OK\nnonsense\n300.0.0.0/8 OK\n",
        );
        let errs = errors(Table::open("cidr:bad.cidr", dir.path()));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains(":1: non-zero host bits"));
        assert!(errs[1].contains(":2: expected \"network/prefix result\""));
        assert!(errs[2].contains(":3: \"300.0.0.0\" is not an IP address"));
    }

    // helo_checks from the FreeBSD tutorial (seed 002) and header/body checks from seed 001.
    const HELO_CHECKS: &str = r#"/^spam\.example\.com$/ REJECT You are not in the server room
# Somebody HELO'ing with our IP address?
/^192\.0\.2\.1$/ REJECT You are not my IP
/^\[192.0.2\.1\]$/ REJECT You are not my IP
/^[0-9.]+$/ REJECT U are not RFC2821 compliant
"#;
    const HEADER_CHECKS: &str = r#"/^Subject: retire early.*$/ REJECT
/^Subject: Mens Health Manual\.\.\..*/ REJECT
/^From: "Martina & Laura" <blackgirls@libero.it>/ REJECT
/name=.+\.(hta|com|pif|vbs|exe|bat|scr)"?$/ REJECT attachment .$1 not allowed
/^Subject: (.*) viagra/i    REJECT ${1} is spam, $$5 fee
!/^Received:/ DUNNO not received
"#;

    fn regex_tables(dir: &Path) -> Vec<Table> {
        write(dir, "helo_checks", HELO_CHECKS);
        write(dir, "header_checks", HEADER_CHECKS);
        ["regexp", "pcre"]
            .iter()
            .flat_map(|kind| {
                vec![
                    Table::open(&format!("{kind}:helo_checks"), dir).unwrap(),
                    Table::open(&format!("{kind}:header_checks"), dir).unwrap(),
                ]
            })
            .collect()
    }

    #[test]
    fn regexp_and_pcre_tables() {
        let dir = tempfile::tempdir().unwrap();
        for pair in regex_tables(dir.path()).chunks(2) {
            let (helo, headers) = (&pair[0], &pair[1]);
            assert!(helo.is_pattern_table());
            assert_eq!(
                helo.lookup("SPAM.example.com").as_deref(),
                Some("REJECT You are not in the server room")
            );
            assert_eq!(
                helo.lookup("[192.0.2.1]").as_deref(),
                Some("REJECT You are not my IP")
            );
            assert_eq!(
                helo.lookup("10.0.0.1").as_deref(),
                Some("REJECT U are not RFC2821 compliant")
            );
            assert_eq!(helo.lookup("mail.example.org"), None);
            assert_eq!(
                headers.lookup("Subject: Retire early now").as_deref(),
                Some("REJECT")
            );
            assert_eq!(
                headers
                    .lookup("Content-Type: x; name=\"doc.PIF\"")
                    .as_deref(),
                Some("REJECT attachment .PIF not allowed")
            );
            // The i flag toggles to case-sensitive.
            assert_eq!(
                headers.lookup("Subject: cheap viagra").as_deref(),
                Some("REJECT cheap is spam, $5 fee")
            );
            assert_eq!(
                headers.lookup("Subject: cheap VIAGRA").as_deref(),
                Some("DUNNO not received")
            );
            assert_eq!(headers.lookup("Received: from x"), None);
            assert_eq!(
                headers.source_files(),
                vec![dir.path().join("header_checks")]
            );
        }
    }

    #[test]
    fn if_endif_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let text = "\
if /@example\\.com$/
/^postmaster@/ OK postmaster
if !/^admin/
/^(.+)\\+(.+)@/ FILTER $1 ext=$2
endif
endif
/#x/ OK hash-delimited-with-slash
/a b/x  REJECT extended
|^xx (a)$| $1 other delimiter
/^line2$/m MULTI
";
        write(dir.path(), "rules", text);
        for kind in ["regexp", "pcre"] {
            let t = Table::open(&format!("{kind}:rules"), dir.path()).unwrap();
            assert_eq!(
                t.lookup("postmaster@example.com").as_deref(),
                Some("OK postmaster")
            );
            assert_eq!(
                t.lookup("bob+news@example.com").as_deref(),
                Some("FILTER bob ext=news")
            );
            assert_eq!(t.lookup("admin+x@example.com"), None);
            assert_eq!(t.lookup("bob+news@example.org"), None);
            assert_eq!(
                t.lookup("#x").as_deref(),
                Some("OK hash-delimited-with-slash")
            );
            assert_eq!(t.lookup("xx a").as_deref(), Some("a other delimiter"));
            assert_eq!(t.lookup("ab").as_deref(), Some("REJECT extended"));
            assert_eq!(t.lookup("line1\nline2").as_deref(), Some("MULTI"));
        }
        write(dir.path(), "p", "/^a.c$/s DOT\n/ab+?/U X\n/b/A ANCHORED\n");
        let t = Table::open("pcre:p", dir.path()).unwrap();
        assert_eq!(t.lookup("a\nc").as_deref(), Some("DOT"));
        assert_eq!(t.lookup("cb"), None);
        assert_eq!(t.lookup("bc").as_deref(), Some("ANCHORED"));
    }

    #[test]
    fn regexp_errors() {
        let dir = tempfile::tempdir().unwrap();
        let text = "\
/unterminated REJECT
/(a)/ REJECT $2
!/(a)/ REJECT $1
/a/q REJECT
/[/ REJECT
/ok/
endif
if /x/ trailing
plain text
if /y/
/z/ OK
";
        write(dir.path(), "bad", text);
        for kind in ["regexp", "pcre"] {
            let errs = errors(Table::open(&format!("{kind}:bad"), dir.path()));
            assert_eq!(errs.len(), 10, "{kind}: {errs:#?}");
            let expect = [
                ":1: missing closing '/'",
                ":2: result uses $2, but the pattern has only 1 group(s)",
                ":3: a negated pattern cannot use $1",
                ":4: unknown flag 'q'",
                ":5: bad regular expression",
                ":6: missing result",
                ":7: endif without a matching if",
                ":8: unexpected text \"trailing\"",
                ":9: expected a pattern",
                ":10: if without a matching endif",
            ];
            for (err, want) in errs.iter().zip(expect) {
                assert!(err.contains(want), "{kind}: {err} should contain {want}");
            }
        }
    }

    #[test]
    fn open_tables_collects_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "k v\n");
        let items = vec!["hash:a".to_string(), "static:OK".to_string()];
        assert_eq!(open_tables(&items, dir.path()).unwrap().len(), 2);
        let items = vec!["nis:x".to_string(), "hash:a".to_string(), "foo".to_string()];
        let errs = open_tables(&items, dir.path())
            .unwrap_err()
            .into_diagnostics();
        assert_eq!(errs.len(), 2);
    }

    #[test]
    fn access_lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "access",
            "usuario1+list@example.com full-ext\nusuario1@example.com full\nexample.com domain\n.parent.org dotted-parent\nparent.org bare-parent\npostmaster@ localpart\nabuse+x@ localpart-ext\n<> null-sender\n",
        );
        let t = Table::open("hash:access", dir.path()).unwrap();
        let none = AddressLookup::default();
        let look = |a: &str, o: &AddressLookup| lookup_address(&t, a, o);
        assert_eq!(look("usuario1@EXAMPLE.com", &none).as_deref(), Some("full"));
        assert_eq!(
            look("usuario1+list@example.com", &none).as_deref(),
            Some("full-ext")
        );
        let plus = AddressLookup {
            recipient_delimiter: Some('+'),
            ..none
        };
        assert_eq!(
            look("usuario1+other@example.com", &plus).as_deref(),
            Some("full")
        );
        assert_eq!(
            look("usuario1+other@example.com", &none).as_deref(),
            Some("domain")
        );
        assert_eq!(
            look("someone@example.com", &none).as_deref(),
            Some("domain")
        );
        assert_eq!(look("someone@sub.example.com", &none), None);
        let dotted = AddressLookup {
            parent_domains: true,
            ..none
        };
        assert_eq!(
            look("x@a.b.parent.org", &dotted).as_deref(),
            Some("dotted-parent")
        );
        let bare = AddressLookup {
            parent_domains: true,
            parent_bare: true,
            ..none
        };
        assert_eq!(
            look("x@a.b.parent.org", &bare).as_deref(),
            Some("bare-parent")
        );
        assert_eq!(
            look("x@parent.org", &dotted).as_deref(),
            Some("bare-parent")
        );
        assert_eq!(look("x@sub.example.com", &bare).as_deref(), Some("domain"));
        assert_eq!(
            look("postmaster@anywhere.net", &none).as_deref(),
            Some("localpart")
        );
        assert_eq!(
            look("abuse+x@anywhere.net", &none).as_deref(),
            Some("localpart-ext")
        );
        assert_eq!(
            look("postmaster+x@anywhere.net", &plus).as_deref(),
            Some("localpart")
        );
        assert_eq!(look("postmaster", &none).as_deref(), Some("localpart"));
        assert_eq!(look("<>", &none).as_deref(), Some("null-sender"));
        assert_eq!(look("", &none).as_deref(), Some("null-sender"));
        assert_eq!(look("x@[192.0.2.1]", &dotted), None);

        write(dir.path(), "re", "/^postmaster@/ OK re\n");
        let re = Table::open("regexp:re", dir.path()).unwrap();
        assert_eq!(
            lookup_address(&re, "postmaster@x.org", &dotted).as_deref(),
            Some("OK re")
        );
        assert_eq!(lookup_address(&re, "x@postmaster.org", &dotted), None);
    }

    #[test]
    fn parent_key_forms() {
        assert_eq!(parent_keys("a.b.c", true), vec!["b.c", "c"]);
        assert_eq!(parent_keys("a.b.c", false), vec![".b.c", ".c"]);
        assert!(parent_keys("com", false).is_empty());
        assert!(parent_keys("[10.0.0.1]", true).is_empty());
    }
}
