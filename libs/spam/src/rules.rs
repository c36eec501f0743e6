//! Reading SpamAssassin rule files into a rule set: the directives, `if`/`ifplugin`
//! blocks, `replace_rules` templates and the four score sets.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::SpamError;
use crate::evals;
use crate::expr::{self, Expr};
use crate::perlre::{self, Literal};
use crate::prefilter;

/// SpamAssassin's version as `if (version >= ...)` compares it: 4.0.1, whose stock
/// rules and behaviour this engine follows.
pub const SA_VERSION: f64 = 4.000001;

/// Plugins whose directives and eval tests this engine implements; `ifplugin` blocks
/// of any other plugin are skipped as SpamAssassin skips them when it is not loaded.
pub const PLUGINS: &[&str] = &[
    "Mail::SpamAssassin::Plugin::Bayes",
    "Mail::SpamAssassin::Plugin::BodyEval",
    "Mail::SpamAssassin::Plugin::HTMLEval",
    "Mail::SpamAssassin::Plugin::HeaderEval",
    "Mail::SpamAssassin::Plugin::MIMEEval",
    "Mail::SpamAssassin::Plugin::MIMEHeader",
    "Mail::SpamAssassin::Plugin::ReplaceTags",
    "Mail::SpamAssassin::Plugin::WLBLEval",
    "Mail::SpamAssassin::Plugin::Check",
    "Mail::SpamAssassin::Plugin::AutoLearnThreshold",
    // Their tests are answered by the scanner's sender checks (sender_auth.rs).
    "Mail::SpamAssassin::Plugin::SPF",
    "Mail::SpamAssassin::Plugin::DKIM",
    "Mail::SpamAssassin::Plugin::DMARC",
    // 25_dmarc.cf's name for it, which SpamAssassin's parser maps to DMARC.
    "Mail::SpamAssassin::Plugin::Dmarc",
];

/// `can(...)` features this engine has: rule syntax it understands.
const FEATURES: &[&str] = &[
    "Mail::SpamAssassin::Conf::feature_bug6558_free",
    "Mail::SpamAssassin::Conf::feature_welcomelist_blocklist",
    "Mail::SpamAssassin::Conf::compat_welcomelist_blocklist",
    "Mail::SpamAssassin::Conf::perl_min_version_5010000",
    "Mail::SpamAssassin::Conf::feature_originating_ip_headers",
    "Mail::SpamAssassin::Conf::feature_edns",
    "Mail::SpamAssassin::Plugin::BodyEval::has_check_body_length",
    "Mail::SpamAssassin::Plugin::SPF::has_check_for_spf_errors",
    "Mail::SpamAssassin::Plugin::DKIM::has_arc",
];

/// Where a rule reads the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Header,
    Body,
    RawBody,
    Full,
    Uri,
    MimeHeader,
    Meta,
}

impl Kind {
    fn from_directive(d: &str) -> Option<Kind> {
        Some(match d {
            "header" => Kind::Header,
            "body" => Kind::Body,
            "rawbody" => Kind::RawBody,
            "full" => Kind::Full,
            "uri" => Kind::Uri,
            "mimeheader" => Kind::MimeHeader,
            "meta" => Kind::Meta,
            _ => return None,
        })
    }
}

/// How a `header` rule reads its header (`From:addr`, `Subject:raw`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HeaderForm {
    #[default]
    Decoded,
    Raw,
    Addr,
    Name,
}

/// What a `header`/`mimeheader` rule reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSpec {
    pub name: String,
    pub form: HeaderForm,
    /// `:first` / `:last`: only one instance of a repeated header.
    pub only: Option<bool>,
}

/// A rule's test, before its regex is compiled.
#[derive(Clone, Debug)]
pub enum Source {
    Regex {
        literal: Literal,
        header: Option<HeaderSpec>,
        negate: bool,
        if_unset: Option<String>,
    },
    Exists(String),
    Eval {
        function: String,
        args: Vec<String>,
    },
    Meta(Expr),
}

/// A rule as defined in a file.
#[derive(Clone, Debug)]
pub struct RuleDef {
    pub name: String,
    pub kind: Kind,
    pub source: Source,
    pub file: PathBuf,
    pub line: usize,
    /// Whether a regex PCRE2 rejects is an error (site files) or makes the rule
    /// unsupported (stock rules).
    pub strict: bool,
}

/// A rule ready to run.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    pub test: Test,
    pub scores: [f64; 4],
    pub describe: Option<String>,
    pub tflags: Vec<String>,
    pub priority: i32,
}

/// A compiled test.
#[derive(Debug)]
pub enum Test {
    Regex {
        regex: perlre::Matcher,
        /// Strings one of which any match contains (see prefilter.rs).
        required: Option<Vec<Vec<u8>>>,
        header: Option<HeaderSpec>,
        negate: bool,
        if_unset: Option<String>,
    },
    Exists(String),
    Eval(evals::Eval),
    /// An eval test this engine does not implement: it never hits, and is listed.
    Unsupported(String),
    Meta(Expr),
}

/// A rule the engine cannot evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupportedRule {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    /// The test as written, e.g. `eval:check_rbl('zen', ...)`, or why it failed.
    pub test: String,
}

/// Everything the rule files say.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub required_score: Option<f64>,
    pub welcomelist_from: Vec<String>,
    pub blocklist_from: Vec<String>,
    pub welcomelist_to: Vec<String>,
    pub unsupported: Vec<UnsupportedRule>,
    /// Directives of the site's own files (not the stock rules) that this
    /// engine does not carry out (`rewrite_header`, `trusted_networks`,
    /// plugin settings...): `mailgate check` names each with file:line.
    /// The `name` is the directive, the `test` the rest of its line.
    pub ignored: Vec<UnsupportedRule>,
    pub bayes_auto_learn: Option<bool>,
    pub auto_learn_spam: Option<f64>,
    pub auto_learn_ham: Option<f64>,
    /// `bayes_ignore_header` names, lowercase.
    pub bayes_ignore_headers: HashSet<String>,
    /// `enlist_addrlist (NAME) address-glob...`, by list name.
    pub addrlists: HashMap<String, Vec<String>>,
    /// `enlist_uri_host (NAME) [!]host...`: hosts (and domains) listed, or
    /// excepted (`!`, false), by list name.
    pub uri_host_lists: HashMap<String, HashMap<String, bool>>,
    /// The SPF and DKIM plugins' welcomelists.
    pub auth_welcomelists: crate::sender_auth::AuthWelcomelists,
}

/// The parser's state across files: later definitions override earlier ones, as a
/// site's local.cf overrides the stock rules.
#[derive(Default)]
pub struct Loader {
    defs: Vec<RuleDef>,
    index: HashMap<String, usize>,
    scores: HashMap<String, [f64; 4]>,
    describe: HashMap<String, String>,
    tflags: HashMap<String, Vec<String>>,
    priority: HashMap<String, i32>,
    replace_rules: Vec<String>,
    tags: HashMap<String, String>,
    pre: HashMap<String, String>,
    inter: HashMap<String, String>,
    post: HashMap<String, String>,
    replace_start: Option<String>,
    replace_end: Option<String>,
    set: RuleSet,
    /// Whether errors in the file being read are fatal (site files) or only make the
    /// rule unsupported (the stock rules, which target Perl and may use constructs
    /// PCRE2 lacks).
    strict: bool,
}

fn err(file: &Path, line: usize, message: impl Into<String>) -> SpamError {
    SpamError::Rule {
        file: file.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Strips a comment: `#` starts one unless escaped as `\#`.
fn strip_comment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                out.push('\\');
                out.push('#');
                chars.next();
            }
            '#' => break,
            c => out.push(c),
        }
    }
    out
}

fn condition_true(text: &str) -> Result<bool, String> {
    let e = expr::parse(text)?;
    let mut bad = None;
    let v = expr::eval(&e, &mut |x| match x {
        Expr::Ident(n) if n == "version" => SA_VERSION,
        Expr::Ident(n) if n == "perl_version" => 5.036,
        Expr::Call(f, a) if f == "plugin" => f64::from(u8::from(PLUGINS.contains(&a.as_str()))),
        Expr::Call(f, a) if f == "can" || f == "has" => {
            f64::from(u8::from(FEATURES.contains(&a.as_str())))
        }
        other => {
            bad = Some(format!("unknown term {other:?} in condition"));
            0.0
        }
    });
    match bad {
        Some(b) => Err(b),
        None => Ok(v != 0.0),
    }
}

fn parse_score_values(args: &[&str]) -> Option<[f64; 4]> {
    let vals: Option<Vec<f64>> = args
        .iter()
        .map(|a| a.trim_matches(|c| c == '(' || c == ')').parse::<f64>().ok())
        .collect();
    let vals = vals?;
    match vals.as_slice() {
        [one] => Some([*one; 4]),
        [a, b, c, d, ..] => Some([*a, *b, *c, *d]),
        [first, ..] => Some([*first; 4]),
        [] => None,
    }
}

fn parse_header_spec(text: &str) -> HeaderSpec {
    let mut parts = text.split(':');
    let name = parts.next().unwrap_or_default().to_string();
    let mut spec = HeaderSpec {
        name,
        form: HeaderForm::Decoded,
        only: None,
    };
    for m in parts {
        match m {
            "raw" => spec.form = HeaderForm::Raw,
            "addr" => spec.form = HeaderForm::Addr,
            "name" => spec.form = HeaderForm::Name,
            "first" => spec.only = Some(true),
            "last" => spec.only = Some(false),
            _ => {}
        }
    }
    spec
}

/// Parses the test part of a rule line for a given kind.
#[expect(
    clippy::string_slice,
    reason = "rule-file text, cut where find found ASCII"
)]
fn parse_source(kind: Kind, rest: &str) -> Result<Source, String> {
    let rest = rest.trim();
    if let Some(call) = rest.strip_prefix("eval:") {
        let open = call.find('(').ok_or("eval: test without '('")?;
        let close = call.rfind(')').ok_or("eval: test without ')'")?;
        if close < open {
            return Err("eval: test with misplaced parentheses".into());
        }
        let function = call[..open].trim().to_string();
        let args = split_args(&call[open + 1..close]);
        return Ok(Source::Eval { function, args });
    }
    match kind {
        Kind::Meta => Ok(Source::Meta(expr::parse(rest)?)),
        Kind::Header | Kind::MimeHeader => {
            if let Some(name) = rest.strip_prefix("exists:") {
                return Ok(Source::Exists(name.trim().to_string()));
            }
            let (name, _) = rest
                .split_once(|c: char| c.is_whitespace() || c == '=' || c == '!')
                .ok_or("header rule without operator")?;
            let after = rest[name.len()..].trim_start();
            let (negate, after) = if let Some(a) = after.strip_prefix("=~") {
                (false, a)
            } else if let Some(a) = after.strip_prefix("!~") {
                (true, a)
            } else {
                return Err(format!("expected =~ or !~ after \"{name}\""));
            };
            let (literal, tail) =
                perlre::split_literal(after).ok_or("malformed regular expression")?;
            let if_unset = tail
                .trim()
                .strip_prefix("[if-unset:")
                .and_then(|t| t.strip_suffix(']'))
                .map(|t| t.trim().to_string());
            Ok(Source::Regex {
                literal,
                header: Some(parse_header_spec(name)),
                negate,
                if_unset,
            })
        }
        _ => {
            let (literal, _) = perlre::split_literal(rest).ok_or("malformed regular expression")?;
            Ok(Source::Regex {
                literal,
                header: None,
                negate: false,
                if_unset: None,
            })
        }
    }
}

/// Splits eval arguments: comma-separated, quotes removed.
fn split_args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, ',') => out.push(std::mem::take(&mut cur).trim().to_string()),
            (None, c) => cur.push(c),
        }
    }
    if !cur.trim().is_empty() || !out.is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

impl Loader {
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Reads one rule file. `strict` makes a bad rule an error naming file:line.
    pub fn load_file(&mut self, path: &Path, strict: bool) -> Result<(), SpamError> {
        let bytes = std::fs::read(path).map_err(|source| SpamError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Rule files carry raw octets in regexes (`\xe1` is usually escaped, but not
        // always); a lossy conversion keeps the line structure and ASCII syntax intact.
        let text = String::from_utf8_lossy(&bytes);
        self.load_text(&text, path, strict)
    }

    /// Reads rule text as if from `path`.
    pub fn load_text(&mut self, text: &str, path: &Path, strict: bool) -> Result<(), SpamError> {
        self.strict = strict;
        // Each entry: whether this block's lines are used.
        let mut stack: Vec<(bool, bool)> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = strip_comment(raw);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (directive, rest) = match line.split_once(char::is_whitespace) {
                Some((d, r)) => (d, r.trim()),
                None => (line, ""),
            };
            let directive_lc = directive.to_ascii_lowercase();
            let active = stack.iter().all(|(on, _)| *on);
            match directive_lc.as_str() {
                "if" => {
                    let on = match condition_true(rest) {
                        Ok(v) => v,
                        Err(e) if strict => return Err(err(path, line_no, e)),
                        Err(_) => false,
                    };
                    stack.push((on, on));
                    continue;
                }
                "ifplugin" => {
                    let on = PLUGINS.contains(&rest);
                    stack.push((on, on));
                    continue;
                }
                "else" => {
                    match stack.last_mut() {
                        Some(top) => top.0 = !top.1,
                        None => return Err(err(path, line_no, "\"else\" without \"if\"")),
                    }
                    continue;
                }
                "endif" => {
                    if stack.pop().is_none() {
                        return Err(err(path, line_no, "\"endif\" without \"if\""));
                    }
                    continue;
                }
                _ => {}
            }
            if !active {
                continue;
            }
            self.directive(&directive_lc, rest, path, line_no)?;
        }
        if !stack.is_empty() {
            return Err(err(path, text.lines().count(), "\"if\" without \"endif\""));
        }
        Ok(())
    }

    fn directive(
        &mut self,
        directive: &str,
        rest: &str,
        path: &Path,
        line: usize,
    ) -> Result<(), SpamError> {
        if directive.contains("list_") {
            let args: Vec<&str> = rest.split_whitespace().collect();
            if self.set.auth_welcomelists.directive(directive, &args) {
                return Ok(());
            }
        }
        let mut words = rest.split_whitespace();
        match directive {
            "header" | "body" | "rawbody" | "full" | "uri" | "mimeheader" | "meta" => {
                let kind = Kind::from_directive(directive).unwrap_or(Kind::Body);
                let Some((name, test)) = rest.split_once(char::is_whitespace) else {
                    return self.bad(path, line, rest, "rule without a test");
                };
                match parse_source(kind, test) {
                    Ok(source) => self.define(RuleDef {
                        name: name.to_string(),
                        kind,
                        source,
                        file: path.to_path_buf(),
                        line,
                        strict: self.strict,
                    }),
                    Err(e) => return self.bad(path, line, name, &e),
                }
            }
            "score" => {
                let name = words.next().unwrap_or_default();
                let args: Vec<&str> = words.collect();
                match parse_score_values(&args) {
                    Some(s) if !name.is_empty() => {
                        self.scores.insert(name.to_string(), s);
                    }
                    _ => return self.bad(path, line, name, "score needs 1 or 4 numbers"),
                }
            }
            "describe" => {
                if let Some((name, text)) = rest.split_once(char::is_whitespace) {
                    self.describe
                        .insert(name.to_string(), text.trim().to_string());
                }
            }
            "tflags" => {
                if let Some(name) = words.next() {
                    self.tflags
                        .insert(name.to_string(), words.map(str::to_string).collect());
                }
            }
            "priority" => {
                let name = words.next().unwrap_or_default();
                match words.next().and_then(|p| p.parse::<i32>().ok()) {
                    Some(p) => {
                        self.priority.insert(name.to_string(), p);
                    }
                    None => return self.bad(path, line, name, "priority needs a number"),
                }
            }
            "required_score" | "required_hits" => match rest.parse::<f64>() {
                Ok(v) => self.set.required_score = Some(v),
                Err(_) => return self.bad(path, line, rest, "required_score needs a number"),
            },
            "whitelist_from" | "welcomelist_from" => {
                self.set
                    .welcomelist_from
                    .extend(words.map(str::to_ascii_lowercase));
            }
            "unwhitelist_from" | "unwelcomelist_from" => {
                let gone: Vec<String> = words.map(str::to_ascii_lowercase).collect();
                self.set.welcomelist_from.retain(|w| !gone.contains(w));
            }
            "blacklist_from" | "blocklist_from" => {
                self.set
                    .blocklist_from
                    .extend(words.map(str::to_ascii_lowercase));
            }
            "unblacklist_from" | "unblocklist_from" => {
                let gone: Vec<String> = words.map(str::to_ascii_lowercase).collect();
                self.set.blocklist_from.retain(|w| !gone.contains(w));
            }
            "whitelist_to" | "welcomelist_to" => {
                self.set
                    .welcomelist_to
                    .extend(words.map(str::to_ascii_lowercase));
            }
            "replace_rules" => self.replace_rules.extend(words.map(str::to_string)),
            "replace_tag" | "replace_pre" | "replace_inter" | "replace_post" => {
                let Some((tag, value)) = rest.split_once(char::is_whitespace) else {
                    return self.bad(path, line, rest, "replace tag without a value");
                };
                let map = match directive {
                    "replace_tag" => &mut self.tags,
                    "replace_pre" => &mut self.pre,
                    "replace_inter" => &mut self.inter,
                    _ => &mut self.post,
                };
                map.insert(tag.to_string(), value.trim().to_string());
            }
            "replace_start" => self.replace_start = Some(rest.to_string()),
            "replace_end" => self.replace_end = Some(rest.to_string()),
            "enlist_addrlist" | "enlist_uri_host" | "delist_uri_host" => {
                let Some(list) = words
                    .next()
                    .and_then(|w| w.strip_prefix('('))
                    .and_then(|w| w.strip_suffix(')'))
                    .filter(|w| !w.is_empty())
                else {
                    return self.bad(path, line, rest, "expected a list name in parentheses");
                };
                let list = list.to_string();
                if directive == "enlist_addrlist" {
                    let entry = self.set.addrlists.entry(list).or_default();
                    entry.extend(words.map(str::to_ascii_lowercase));
                } else {
                    let hosts = self.set.uri_host_lists.entry(list).or_default();
                    for w in words.map(str::to_ascii_lowercase) {
                        match (directive, w.strip_prefix('!')) {
                            ("delist_uri_host", _) => {
                                hosts.remove(w.trim_start_matches('!'));
                            }
                            (_, Some(host)) => {
                                hosts.insert(host.to_string(), false);
                            }
                            (_, None) => {
                                hosts.insert(w, true);
                            }
                        }
                    }
                }
            }
            "adsp_override" => {
                if let Err(why) = self.set.auth_welcomelists.adsp_override(rest) {
                    return self.bad(path, line, rest, why);
                }
            }
            "bayes_ignore_header" => {
                self.set
                    .bayes_ignore_headers
                    .extend(words.map(str::to_ascii_lowercase));
            }
            "bayes_auto_learn" => self.set.bayes_auto_learn = Some(rest == "1"),
            "bayes_auto_learn_threshold_spam" => self.set.auto_learn_spam = rest.parse().ok(),
            "bayes_auto_learn_threshold_nonspam" => {
                self.set.auto_learn_ham = rest.parse().ok();
            }
            // Everything else configures plugins this engine does not have, DNS
            // lists, reporting templates or per-user settings: it changes no rule
            // that runs here. In the stock files that is expected; in the
            // site's own files the administrator asked for something, so it
            // is recorded for `mailgate check` to name.
            _ => {
                if self.strict {
                    self.set.ignored.push(UnsupportedRule {
                        name: directive.to_string(),
                        file: path.to_path_buf(),
                        line,
                        test: rest.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    fn bad(&mut self, path: &Path, line: usize, name: &str, why: &str) -> Result<(), SpamError> {
        if self.strict {
            return Err(err(path, line, format!("{name}: {why}")));
        }
        self.set.unsupported.push(UnsupportedRule {
            name: name.to_string(),
            file: path.to_path_buf(),
            line,
            test: format!("unparsable: {why}"),
        });
        Ok(())
    }

    fn define(&mut self, def: RuleDef) {
        match self.index.get(&def.name) {
            Some(&i) => self.defs[i] = def,
            None => {
                self.index.insert(def.name.clone(), self.defs.len());
                self.defs.push(def);
            }
        }
    }

    /// Expands `<TAG>` runs with the replace_* tables, as SpamAssassin's ReplaceTags.
    #[expect(
        clippy::string_slice,
        reason = "rule-file text, cut where find found ASCII markers"
    )]
    fn replace_tags(&self, pattern: &str) -> String {
        let start = self.replace_start.as_deref().unwrap_or("<");
        let end = self.replace_end.as_deref().unwrap_or(">");
        let mut pattern = pattern.to_string();
        let (mut pre, mut inter, mut post) = (String::new(), String::new(), String::new());
        for (kind, table, slot) in [
            ("pre", &self.pre, &mut pre),
            ("inter", &self.inter, &mut inter),
            ("post", &self.post, &mut post),
        ] {
            let marker = format!("{start}{kind} ");
            while let Some(at) = pattern.find(&marker) {
                let Some(close) = pattern[at..].find(end).map(|c| at + c) else {
                    break;
                };
                let tag = pattern[at + marker.len()..close].trim().to_string();
                *slot = table.get(&tag).cloned().unwrap_or_default();
                pattern.replace_range(at..close + end.len(), "");
            }
        }
        let mut out = String::with_capacity(pattern.len() * 4);
        let mut rest = pattern.as_str();
        let mut prev_was_tag = false;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix(start)
                && let Some(close) = after.find(end)
                && let Some(value) = self.tags.get(&after[..close])
            {
                if prev_was_tag {
                    out.push_str(&inter);
                }
                out.push_str(&pre);
                out.push_str("(?:");
                out.push_str(&self.expand_tag_value(value, 0));
                out.push(')');
                out.push_str(&post);
                prev_was_tag = true;
                rest = &after[close + end.len()..];
                continue;
            }
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            prev_was_tag = false;
        }
        out
    }

    /// Tag values may themselves use tags.
    #[expect(
        clippy::string_slice,
        reason = "rule-file text, cut where find found ASCII"
    )]
    fn expand_tag_value(&self, value: &str, depth: usize) -> String {
        if depth > 4 || !value.contains('<') {
            return value.to_string();
        }
        let mut out = String::new();
        let mut rest = value;
        while let Some(at) = rest.find('<') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            match after
                .find('>')
                .and_then(|c| self.tags.get(&after[..c]).map(|v| (c, v)))
            {
                Some((c, v)) => {
                    out.push_str("(?:");
                    out.push_str(&self.expand_tag_value(v, depth + 1));
                    out.push(')');
                    rest = &after[c + 1..];
                }
                None => {
                    out.push('<');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Compiles every rule: applies replace_rules, resolves scores for the given
    /// score set (0: no Bayes, no network; 1: network; 2: Bayes; 3: both) and drops
    /// rules whose score there is zero, as SpamAssassin does not run them.
    pub fn finish(mut self, score_set: usize) -> Result<RuleSet, SpamError> {
        let replace: std::collections::HashSet<String> =
            self.replace_rules.iter().cloned().collect();
        let defs = std::mem::take(&mut self.defs);
        for mut def in defs {
            let name = def.name.clone();
            let default_score = if name.starts_with("__") {
                0.0
            } else if name.starts_with("T_") {
                0.01
            } else {
                1.0
            };
            let scores = self
                .scores
                .get(&name)
                .copied()
                .unwrap_or([default_score; 4]);
            let is_sub = name.starts_with("__");
            if !is_sub && scores[score_set] == 0.0 {
                continue;
            }
            let tflags = self.tflags.remove(&name).unwrap_or_default();
            let test = match std::mem::replace(&mut def.source, Source::Exists(String::new())) {
                Source::Regex {
                    mut literal,
                    header,
                    negate,
                    if_unset,
                } => {
                    if replace.contains(&name) {
                        literal.pattern = self.replace_tags(&literal.pattern);
                    }
                    match perlre::compile_literal(&literal) {
                        Ok(regex) => Test::Regex {
                            regex,
                            required: prefilter::required_strings(&literal),
                            header,
                            negate,
                            if_unset,
                        },
                        Err(e) if def.strict => {
                            return Err(err(&def.file, def.line, format!("{name}: {e}")));
                        }
                        Err(e) => Test::Unsupported(format!("regex PCRE2 rejects: {e}")),
                    }
                }
                Source::Exists(h) => Test::Exists(h),
                Source::Meta(e) => Test::Meta(e),
                Source::Eval { function, args } => match evals::Eval::new(&function, &args) {
                    Some(e) => Test::Eval(e),
                    None => Test::Unsupported(format!("eval:{function}({})", args.join(", "))),
                },
            };
            if let Test::Unsupported(why) = &test {
                self.set.unsupported.push(UnsupportedRule {
                    name: name.clone(),
                    file: def.file.clone(),
                    line: def.line,
                    test: why.clone(),
                });
                continue;
            }
            self.set.rules.push(Rule {
                describe: self.describe.get(&name).cloned(),
                priority: self.priority.get(&name).copied().unwrap_or(0),
                name,
                kind: def.kind,
                test,
                scores,
                tflags,
            });
        }
        Ok(self.set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> RuleSet {
        let mut l = Loader::new();
        l.load_text(text, Path::new("test.cf"), true).unwrap();
        l.finish(0).unwrap()
    }

    #[test]
    fn site_directives_not_carried_out_are_recorded() {
        let set = load(
            "required_score 6\n\
             rewrite_header Subject *****SPAM*****\n\
             trusted_networks 10.0.0.0/8\n\
             score_typo X 1\n",
        );
        let named: Vec<(String, usize, String)> = set
            .ignored
            .iter()
            .map(|d| (d.name.clone(), d.line, d.test.clone()))
            .collect();
        assert_eq!(
            named,
            vec![
                ("rewrite_header".into(), 2, "Subject *****SPAM*****".into()),
                ("trusted_networks".into(), 3, "10.0.0.0/8".into()),
                ("score_typo".into(), 4, "X 1".into()),
            ]
        );
        // The stock files configure plugins the engine does not have: not
        // the administrator's request, not listed.
        let mut l = Loader::new();
        l.load_text("rewrite_header Subject x\n", Path::new("stock.cf"), false)
            .unwrap();
        assert!(l.finish(0).unwrap().ignored.is_empty());
    }

    fn rule<'a>(set: &'a RuleSet, name: &str) -> &'a Rule {
        set.rules.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn directives() {
        let set = load(
            "header LOCAL_RCVD Received =~ /.*\\(\\S+\\.domain\\.com\\s+\\[.*\\]\\)/\n\
             score LOCAL_RCVD -50\n\
             describe LOCAL_RCVD From our own relay # a comment\n\
             tflags LOCAL_RCVD nice\n\
             priority LOCAL_RCVD -100\n\
             body B1 /cheap\\s+pills/i\n\
             score B1 1.0 2.0 3.0 4.0\n\
             rawbody RB m{<b>}i\n\
             full F1 /^X-Foo/m\n\
             uri U1 /example\\.com/\n\
             mimeheader M1 Content-Type =~ /zip/\n\
             header E1 exists:X-Mailer\n\
             header A1 From:addr =~ /\\@example\\.com$/i [if-unset: none]\n\
             header N1 Subject !~ /./\n\
             required_score 6.5\n\
             whitelist_from *@good.example\n\
             blocklist_from bad@example.com\n\
             whitelist_to boss@example.com\n",
        );
        let r = rule(&set, "LOCAL_RCVD");
        assert_eq!(r.scores, [-50.0; 4]);
        assert_eq!(r.describe.as_deref(), Some("From our own relay"));
        assert_eq!(r.tflags, ["nice"]);
        assert_eq!(r.priority, -100);
        assert_eq!(rule(&set, "B1").scores, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(rule(&set, "RB").kind, Kind::RawBody);
        assert_eq!(rule(&set, "F1").kind, Kind::Full);
        assert_eq!(rule(&set, "U1").kind, Kind::Uri);
        assert_eq!(rule(&set, "M1").kind, Kind::MimeHeader);
        assert!(matches!(&rule(&set, "E1").test, Test::Exists(h) if h == "X-Mailer"));
        match &rule(&set, "A1").test {
            Test::Regex {
                header, if_unset, ..
            } => {
                assert_eq!(header.as_ref().unwrap().form, HeaderForm::Addr);
                assert_eq!(if_unset.as_deref(), Some("none"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &rule(&set, "N1").test,
            Test::Regex { negate: true, .. }
        ));
        assert_eq!(set.required_score, Some(6.5));
        assert_eq!(set.welcomelist_from, ["*@good.example"]);
        assert_eq!(set.blocklist_from, ["bad@example.com"]);
        assert_eq!(set.welcomelist_to, ["boss@example.com"]);
    }

    #[test]
    fn score_sets_and_zero_scores() {
        let mut l = Loader::new();
        l.load_text(
            "body A /a/\nscore A 0 0 1.5 1.5\nbody Z /z/\nscore Z 0\nbody __S /s/\n",
            Path::new("t.cf"),
            true,
        )
        .unwrap();
        let set = l.finish(2).unwrap();
        assert_eq!(rule(&set, "A").scores[2], 1.5);
        assert!(set.rules.iter().all(|r| r.name != "Z"));
        assert!(set.rules.iter().any(|r| r.name == "__S"));
    }

    #[test]
    fn conditionals() {
        let set = load(
            "ifplugin Mail::SpamAssassin::Plugin::Bayes\nbody IN1 /a/\nendif\n\
             ifplugin Mail::SpamAssassin::Plugin::Razor2\nbody OUT1 /a/\nelse\nbody IN2 /a/\nendif\n\
             if (version >= 3.004000)\nbody IN3 /a/\nendif\n\
             if version < 3.0\nbody OUT2 /a/\nendif\n\
             if !plugin(Mail::SpamAssassin::Plugin::Pyzor)\nbody IN4 /a/\nendif\n\
             if !plugin(Mail::SpamAssassin::Plugin::DKIM)\nbody OUT4 /a/\nendif\n\
             if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\nbody IN5 /a/\nendif\n\
             if can(Mail::SpamAssassin::Conf::feature_nonexistent)\nbody OUT3 /a/\nendif\n",
        );
        let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["IN1", "IN2", "IN3", "IN4", "IN5"]);
    }

    #[test]
    fn replace_rules_templates() {
        let set = load(
            "replace_tag A (?:[aA@4])\nreplace_tag B [bB8]\nreplace_inter W1 \\W?\n\
             replace_post P2 {1,2}\n\
             body FUZZY /<inter W1><post P2><A><B>/i\nreplace_rules FUZZY\n\
             body PLAIN /<A>/\n",
        );
        let Test::Regex { regex, .. } = &rule(&set, "FUZZY").test else {
            panic!()
        };
        assert!(regex.is_match(b"x 4-8 y"));
        assert!(regex.is_match(b"aab"));
        let Test::Regex { regex, .. } = &rule(&set, "PLAIN").test else {
            panic!()
        };
        assert!(regex.is_match(b"<A>"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let mut l = Loader::new();
        let e = l
            .load_text(
                "body OK /a/\nbody BAD /unterminated\n",
                Path::new("local.cf"),
                true,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "local.cf:2: BAD: malformed regular expression"
        );
        let mut l = Loader::new();
        l.load_text("body BAD /a(/\n", Path::new("local.cf"), true)
            .unwrap();
        let e = l.finish(0).unwrap_err().to_string();
        assert!(e.starts_with("local.cf:1: BAD: "), "{e}");
        let mut l = Loader::new();
        let e = l
            .load_text("if version > 3\n", Path::new("x.cf"), true)
            .unwrap_err();
        assert!(e.to_string().contains("without \"endif\""));
    }

    #[test]
    fn unsupported_evals_are_listed() {
        let mut l = Loader::new();
        l.load_text(
            "header RBL eval:check_rbl('zen', 'zen.example.')\nscore RBL 1\n",
            Path::new("n.cf"),
            true,
        )
        .unwrap();
        let set = l.finish(0).unwrap();
        assert!(set.rules.is_empty());
        assert_eq!(set.unsupported.len(), 1);
        assert_eq!(set.unsupported[0].line, 1);
        assert!(set.unsupported[0].test.starts_with("eval:check_rbl("));
    }

    #[test]
    fn later_definitions_override() {
        let set = load("body A /a/\nscore A 2\nbody A /b/\nscore A 3\n");
        assert_eq!(set.rules.len(), 1);
        assert_eq!(rule(&set, "A").scores, [3.0; 4]);
    }
}
