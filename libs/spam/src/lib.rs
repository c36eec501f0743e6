//! Spam scoring in SpamAssassin's rule language, with a Bayes classifier.
//!
//! `Engine::load` reads every rule file and opens the Bayes store (before the
//! scanner enters its sandbox); `Engine::score` then only reads memory and the open
//! store, from any number of threads at once.

mod bayes;
mod dates;
mod evals;
mod expr;
mod html;
mod journal;
mod msg;
mod perlre;
mod prefilter;
mod relays;
mod rules;
mod snapshot;
mod tokenizer;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use mailgate_config::MainConfig;

pub use bayes::LearnOutcome;
pub use journal::{AutoLearn, Journal, Synced, sync as sync_journals};
pub use rules::UnsupportedRule;
pub use snapshot::{StoreLock, scanner_snapshot};

use crate::expr::Expr;
use crate::msg::Message;
use crate::rules::{HeaderForm, HeaderSpec, Kind, Loader, Rule, RuleSet, Test};

/// The GTUBE test string: any message containing it is spam.
pub const GTUBE: &[u8] = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// mailgate's adjustments to the stock rules' scores (see the file for why).
const MAILGATE_CF: &str = include_str!("mailgate.cf");

/// The score GTUBE gets when the stock rules do not define it.
const GTUBE_SCORE: f64 = 1000.0;

/// What can go wrong loading rules or using the Bayes store.
#[derive(Debug)]
pub enum SpamError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bad line in a rule file.
    Rule {
        file: PathBuf,
        line: usize,
        message: String,
    },
    Bayes {
        path: PathBuf,
        message: String,
    },
    /// `learn` was called on an engine without a Bayes store.
    NoBayesStore,
}

impl fmt::Display for SpamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpamError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SpamError::Rule {
                file,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", file.display()),
            SpamError::Bayes { path, message } => {
                write!(f, "Bayes store {}: {message}", path.display())
            }
            SpamError::NoBayesStore => write!(
                f,
                "Bayes is disabled or has no directory (spam_bayes_enabled, spam_bayes_directory)"
            ),
        }
    }
}

impl std::error::Error for SpamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpamError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Which class a message is learned as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

/// How the engine is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// The site's rule files (local.cf and friends), read after the stock rules.
    pub rule_files: Vec<PathBuf>,
    /// SpamAssassin's stock rules, read when the directory exists.
    pub stock_rules_dir: Option<PathBuf>,
    pub bayes_dir: Option<PathBuf>,
    /// Overrides the rule files' required_score.
    pub required_score: Option<f64>,
    pub bayes_enabled: bool,
    /// Whether network tests run; selects the score set. No network test is
    /// implemented, so this only changes scores as SpamAssassin's sets do.
    pub network_tests: bool,
    /// Learn automatically from messages scoring at or above `auto_learn_spam` (spam)
    /// or at or below `auto_learn_ham` (ham), scores without Bayes.
    pub auto_learn: bool,
    pub auto_learn_spam: f64,
    pub auto_learn_ham: f64,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            rule_files: Vec::new(),
            stock_rules_dir: None,
            bayes_dir: None,
            required_score: None,
            bayes_enabled: true,
            network_tests: false,
            auto_learn: false,
            auto_learn_spam: 12.0,
            auto_learn_ham: 0.1,
        }
    }
}

impl EngineConfig {
    /// The configuration main.cf's spam_* parameters describe.
    pub fn from_main_cf(config: &MainConfig) -> EngineConfig {
        let path = |name: &str| {
            let v = config.get(name);
            (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()))
        };
        let float = |name: &str, default: f64| config.get(name).trim().parse().unwrap_or(default);
        EngineConfig {
            rule_files: config
                .list("spam_rules_files")
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            stock_rules_dir: path("spam_stock_rules_directory"),
            bayes_dir: path("spam_bayes_directory"),
            required_score: None,
            bayes_enabled: config.bool("spam_bayes_enabled"),
            network_tests: config.bool("spam_network_tests"),
            auto_learn: config.bool("spam_bayes_auto_learn"),
            auto_learn_spam: float("spam_bayes_auto_learn_threshold_spam", 12.0),
            auto_learn_ham: float("spam_bayes_auto_learn_threshold_nonspam", 0.1),
        }
    }
}

/// The levels, named as amavisd-new names them, that turn a score into
/// what the gateway does; the scanner and `mailgate scan` share them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Levels {
    /// X-Spam-Status, X-Spam-Score, X-Spam-Level at or above this.
    pub tag: f64,
    /// X-Spam-Flag: YES and the subject tag at or above this.
    pub tag2: f64,
    /// spam_kill_action at or above this.
    pub kill: f64,
}

impl Levels {
    pub fn from_main_cf(config: &MainConfig) -> Levels {
        Levels {
            tag: config.score("spam_tag_level"),
            tag2: config.score("spam_tag2_level"),
            kill: config.score("spam_kill_level"),
        }
    }

    /// pass, tag (X-Spam headers), spam (flagged and subject-tagged) or
    /// kill (spam_kill_action).
    pub fn action(&self, score: f64) -> &'static str {
        if score >= self.kill {
            "kill"
        } else if score >= self.tag2 {
            "spam"
        } else if score >= self.tag {
            "tag"
        } else {
            "pass"
        }
    }
}

/// The outcome of scoring one message.
#[derive(Clone, Debug, PartialEq)]
pub struct SpamReport {
    pub score: f64,
    pub required: f64,
    /// Rules that hit and count (sub-rules `__*` are left out), highest score first.
    pub hits: Vec<RuleHit>,
    pub bayes_probability: Option<f64>,
    /// Set when auto-learn is on and the message is clear enough to learn from;
    /// the caller decides where it goes (the scanner's journal).
    pub auto_learn: Option<AutoLearn>,
}

impl SpamReport {
    /// SpamAssassin's `tests=` list: the hit rule names, comma-separated.
    pub fn rule_names(&self) -> String {
        self.hits
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleHit {
    pub name: String,
    pub score: f64,
    pub description: Option<String>,
}

/// A loaded rule set with its Bayes store.
pub struct Engine {
    rules: Vec<Rule>,
    /// Indexes of non-meta rules, in priority order.
    plain: Vec<usize>,
    /// Indexes of meta rules, dependencies first.
    metas: Vec<usize>,
    /// Skips the regexes of rules whose text lacks their strings, by kind.
    prefilters: Vec<(Kind, prefilter::Prefilter)>,
    /// Whether a rule's regex runs only when its prefilter found its strings.
    gated: Vec<bool>,
    /// Each rule's `max_hits`.
    max_hits: Vec<u32>,
    set: RuleSet,
    required: f64,
    score_set: usize,
    store: Option<bayes::Store>,
    config: EngineConfig,
    has_gtube_rule: bool,
}

/// Whether a message carries the GTUBE string.
pub fn is_gtube(message: &[u8]) -> bool {
    html::find(message, GTUBE).is_some()
}

impl Engine {
    /// Reads the stock rules (when the directory exists), then the site's files in
    /// order, and opens the Bayes store. A bad line in a site file is an error naming
    /// file:line; stock rules PCRE2 cannot compile are listed as unsupported.
    pub fn load(config: &EngineConfig) -> Result<Engine, SpamError> {
        Engine::load_with(config, false)
    }

    fn load_with(config: &EngineConfig, read_only: bool) -> Result<Engine, SpamError> {
        let mut loader = Loader::new();
        if let Some(dir) = &config.stock_rules_dir
            && dir.is_dir()
        {
            for file in stock_files(dir)? {
                loader.load_file(&file, false)?;
            }
            // Settings that adjust the stock rules apply only when they are loaded.
            loader.load_text(MAILGATE_CF, Path::new("(built-in mailgate.cf)"), true)?;
        }
        for file in &config.rule_files {
            loader.load_file(file, true)?;
        }
        Engine::finish(loader, config, read_only)
    }

    /// As [`Engine::load`], with the Bayes store opened for scoring only
    /// (the scanner, `mailgate scan`): such an engine never writes the
    /// store, not even its header when it is dropped. `learn` fails on it.
    pub fn load_read_only(config: &EngineConfig) -> Result<Engine, SpamError> {
        Engine::load_with(config, true)
    }

    /// Picks the score set (SpamAssassin's four: Bayes on or off, network
    /// tests on or off) and opens the Bayes store.
    fn finish(loader: Loader, config: &EngineConfig, read_only: bool) -> Result<Engine, SpamError> {
        let bayes = config.bayes_enabled && config.bayes_dir.is_some();
        let score_set = usize::from(config.network_tests) + if bayes { 2 } else { 0 };
        let set = loader.finish(score_set)?;
        let store = match (&config.bayes_dir, config.bayes_enabled) {
            (Some(dir), true) if read_only => bayes::Store::open_read_only(dir)?,
            (Some(dir), true) => Some(bayes::Store::open(dir)?),
            _ => None,
        };
        Ok(Engine::build(set, score_set, store, config.clone()))
    }

    /// An engine from rule text, for tests and `mailgate scan -r`-style checks.
    pub fn from_rules(text: &str, config: &EngineConfig) -> Result<Engine, SpamError> {
        let mut loader = Loader::new();
        loader.load_text(text, Path::new("(rules)"), true)?;
        Engine::finish(loader, config, false)
    }

    fn build(
        mut set: RuleSet,
        score_set: usize,
        store: Option<bayes::Store>,
        config: EngineConfig,
    ) -> Engine {
        let mut rules = std::mem::take(&mut set.rules);
        rules.sort_by_key(|r| r.priority);
        let index: HashMap<String, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        let plain = (0..rules.len())
            .filter(|&i| rules[i].kind != Kind::Meta)
            .collect();
        let mut meta_refs = HashMap::new();
        for (i, r) in rules.iter_mut().enumerate() {
            if let Test::Meta(e) = &mut r.test {
                *e = expr::resolve(e, &|n| index.get(n).copied());
                let mut refs = Vec::new();
                expr::rule_refs(e, &mut refs);
                meta_refs.insert(i, refs);
            }
        }
        // Dependencies first (depth-first post-order); a cycle is cut where found.
        let mut metas = Vec::new();
        let mut state = vec![0u8; rules.len()];
        fn visit(
            i: usize,
            refs: &HashMap<usize, Vec<usize>>,
            state: &mut [u8],
            out: &mut Vec<usize>,
        ) {
            if state[i] != 0 {
                return;
            }
            state[i] = 1;
            if let Some(r) = refs.get(&i) {
                for &j in r {
                    visit(j, refs, state, out);
                }
                out.push(i);
            }
            state[i] = 2;
        }
        for i in 0..rules.len() {
            visit(i, &meta_refs, &mut state, &mut metas);
        }
        let (prefilters, gated) = prefilters(&rules);
        let max_hits = rules.iter().map(max_hits).collect();
        let has_gtube_rule = rules.iter().any(|r| r.name == "GTUBE");
        let required = config.required_score.or(set.required_score).unwrap_or(5.0);
        Engine {
            rules,
            plain,
            metas,
            prefilters,
            gated,
            max_hits,
            set,
            required,
            score_set,
            store,
            config,
            has_gtube_rule,
        }
    }

    /// How many rules will run.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The required score in effect.
    pub fn required_score(&self) -> f64 {
        self.required
    }

    /// Rules that cannot be evaluated (unimplemented eval tests, regexes PCRE2
    /// rejects), with where they are defined.
    pub fn unsupported_rules(&self) -> Vec<UnsupportedRule> {
        self.set.unsupported.clone()
    }

    /// Learned spam and ham counts, when there is a Bayes store.
    pub fn bayes_counts(&self) -> Result<Option<(u64, u64)>, SpamError> {
        self.store.as_ref().map(bayes::Store::counts).transpose()
    }

    /// Scores a message. Never panics: any input is some message.
    pub fn score(&self, message: &[u8]) -> SpamReport {
        let msg = Message::parse(message);
        let tokens = self.store.as_ref().map(|_| {
            bayes::token_hashes(&tokenizer::tokenize(&msg, &self.set.bayes_ignore_headers))
        });
        let bayes_probability = match (&self.store, &tokens) {
            // A store that cannot be read makes Bayes abstain for this message
            // rather than failing the scan.
            (Some(store), Some(t)) => store.classify(t).ok().flatten(),
            _ => None,
        };
        let cx = evals::Context {
            msg: &msg,
            bayes: bayes_probability,
            welcomelist_from: &self.set.welcomelist_from,
            blocklist_from: &self.set.blocklist_from,
            welcomelist_to: &self.set.welcomelist_to,
        };
        let possible = self.possible_rules(&msg);
        let mut values = vec![0.0f64; self.rules.len()];
        let mut headers = HeaderCache::default();
        for &i in &self.plain {
            let rule = &self.rules[i];
            values[i] = if possible[i] {
                self.run(i, &cx, &mut headers)
            } else {
                // The regex cannot match, so the rule hits only if negated.
                f64::from(u8::from(matches!(
                    rule.test,
                    Test::Regex { negate: true, .. }
                )))
            };
        }
        for &i in &self.metas {
            let Test::Meta(e) = &self.rules[i].test else {
                continue;
            };
            let v = expr::eval(e, &mut |x| match x {
                Expr::Rule(j) => values[*j],
                _ => 0.0,
            });
            values[i] = f64::from(u8::from(v != 0.0));
        }
        let mut hits: Vec<RuleHit> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if values[i] == 0.0 || r.name.starts_with("__") {
                continue;
            }
            // A `multiple` rule scores once per match, as in SpamAssassin.
            let score = r.scores[self.score_set] * values[i];
            hits.push(RuleHit {
                name: r.name.clone(),
                score,
                description: r.describe.clone(),
            });
        }
        if !self.has_gtube_rule && is_gtube(&msg.full) {
            hits.push(RuleHit {
                name: "GTUBE".into(),
                score: GTUBE_SCORE,
                description: Some("Generic Test for Unsolicited Bulk Email".into()),
            });
        }
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.name.cmp(&b.name))
        });
        let score = (hits.iter().map(|h| h.score).sum::<f64>() * 1000.0).round() / 1000.0;
        let auto_learn = match tokens {
            Some(tokens) if self.config.auto_learn => {
                self.auto_learn_class(&values, score)
                    .map(|class| AutoLearn {
                        class,
                        message_id: bayes::message_id(&msg),
                        tokens,
                    })
            }
            _ => None,
        };
        SpamReport {
            score,
            required: self.required,
            hits,
            bayes_probability,
            auto_learn,
        }
    }

    /// SpamAssassin's AutoLearnThreshold: the class to learn a message as, when
    /// its score without Bayes (and without `noautolearn` rules) is past a
    /// threshold. Spam also needs 3 points from header rules and 3 from body
    /// rules (unless a rule has `autolearn_force`), so that no single kind of
    /// evidence trains the classifier; and neither class is learned against the
    /// classifier's own strong opinion or the final verdict.
    fn auto_learn_class(&self, values: &[f64], score: f64) -> Option<Class> {
        let has = |r: &Rule, flag: &str| r.tflags.iter().any(|f| f == flag);
        let side = |kind: Kind| match kind {
            Kind::Header | Kind::MimeHeader => Some(true),
            Kind::Body | Kind::RawBody | Kind::Uri => Some(false),
            Kind::Full | Kind::Meta => None,
        };
        let (mut points, mut head, mut body, mut learned) = (0.0, 0.0, 0.0, 0.0);
        let mut forced = false;
        for (i, r) in self.rules.iter().enumerate() {
            if values[i] == 0.0
                || r.name.starts_with("__")
                || has(r, "noautolearn")
                || has(r, "userconf")
            {
                continue;
            }
            if has(r, "learn") {
                learned += r.scores[self.score_set];
                continue;
            }
            forced |= has(r, "autolearn_force");
            // Points are counted as if Bayes were off.
            let s = r.scores[self.score_set & !2];
            if s == 0.0 {
                continue;
            }
            points += s;
            let forced_side = if has(r, "autolearn_header") {
                Some(true)
            } else if has(r, "autolearn_body") {
                Some(false)
            } else {
                None
            };
            match (forced_side.or_else(|| side(r.kind)), &r.test) {
                (Some(true), _) => head += s,
                (Some(false), _) => body += s,
                // A meta's points split by the kinds of the rules it uses.
                (None, Test::Meta(e)) => {
                    let mut refs = Vec::new();
                    expr::rule_refs(e, &mut refs);
                    let kinds = refs.iter().filter_map(|&j| side(self.rules[j].kind));
                    let (h, b) = kinds.fold((0.0, 0.0), |(h, b), is_head| {
                        if is_head { (h + 1.0, b) } else { (h, b + 1.0) }
                    });
                    if h + b > 0.0 {
                        head += s * h / (h + b);
                        body += s * b / (h + b);
                    }
                }
                (None, _) => {}
            }
        }
        let is_spam = score >= self.required;
        if points < self.config.auto_learn_ham {
            (learned <= 1.0 && !is_spam).then_some(Class::Ham)
        } else if points >= self.config.auto_learn_spam {
            let enough = forced || (head >= 3.0 && body >= 3.0);
            (enough && learned >= -1.0 && is_spam).then_some(Class::Spam)
        } else {
            None
        }
    }

    /// Learns one message as spam or ham, or forgets it.
    pub fn learn(
        &self,
        message: &[u8],
        class: Class,
        forget: bool,
    ) -> Result<LearnOutcome, SpamError> {
        let mut out = self.learn_batch(&[message], class, forget)?;
        Ok(out.pop().unwrap_or(LearnOutcome::NotLearned))
    }

    /// Learns many messages in one transaction (one disk sync for the batch).
    pub fn learn_batch(
        &self,
        messages: &[&[u8]],
        class: Class,
        forget: bool,
    ) -> Result<Vec<LearnOutcome>, SpamError> {
        let store = self.store.as_ref().ok_or(SpamError::NoBayesStore)?;
        let batch: Vec<(u64, _)> = messages
            .iter()
            .map(|m| {
                let msg = Message::parse(m);
                (
                    bayes::message_id(&msg),
                    bayes::token_hashes(&tokenizer::tokenize(&msg, &self.set.bayes_ignore_headers)),
                )
            })
            .collect();
        store.learn(&batch, class == Class::Spam, forget)
    }

    /// Which rules may hit: all but the gated ones whose strings the prefilters did
    /// not find in the text the rule reads.
    fn possible_rules(&self, msg: &Message) -> Vec<bool> {
        let mut possible: Vec<bool> = self.gated.iter().map(|g| !g).collect();
        for (kind, filter) in &self.prefilters {
            match kind {
                Kind::Body => msg
                    .body_lines
                    .iter()
                    .for_each(|l| filter.mark(l, &mut possible)),
                Kind::RawBody => msg
                    .rawbody_lines
                    .iter()
                    .for_each(|l| filter.mark(l, &mut possible)),
                Kind::Full => filter.mark(&msg.full, &mut possible),
                Kind::Uri => msg
                    .uris
                    .iter()
                    .for_each(|u| filter.mark(u.as_bytes(), &mut possible)),
                Kind::Header | Kind::MimeHeader | Kind::Meta => {}
            }
        }
        possible
    }

    /// A rule's value for this message: 1 or 0, or for a `tflags multiple` rule
    /// how many times its regex matched, up to its `maxhits`, as metas such as
    /// `__BODY_TEXT_LINE < 3` count them.
    fn run(&self, i: usize, cx: &evals::Context, headers: &mut HeaderCache) -> f64 {
        let rule = &self.rules[i];
        let limit = self.max_hits[i];
        let msg = cx.msg;
        let flag = |b: bool| f64::from(u8::from(b));
        match &rule.test {
            Test::Eval(e) => flag(e.run(cx)),
            Test::Exists(name) => flag(header_exists(msg, name)),
            Test::Meta(_) | Test::Unsupported(_) => 0.0,
            Test::Regex {
                regex,
                header,
                negate,
                if_unset,
                ..
            } => {
                let count = |texts: &mut dyn Iterator<Item = &[u8]>| {
                    f64::from(count_matches(regex, texts, limit))
                };
                match rule.kind {
                    Kind::Header => {
                        let Some(spec) = header else { return 0.0 };
                        let value = match (headers.get(msg, spec), if_unset) {
                            (Some(v), _) => v,
                            (None, Some(d)) => d.as_bytes(),
                            (None, None) => b"",
                        };
                        let n = count(&mut std::iter::once(value));
                        if *negate { flag(n == 0.0) } else { n }
                    }
                    Kind::MimeHeader => {
                        let Some(spec) = header else { return 0.0 };
                        let values = msg.part_headers.iter().flat_map(|hs| {
                            msg::header_values(hs, &spec.name).map(|v| {
                                if spec.form == HeaderForm::Raw {
                                    std::borrow::Cow::Borrowed(v)
                                } else {
                                    std::borrow::Cow::Owned(msg::decode_header(v))
                                }
                            })
                        });
                        let values: Vec<_> = values.collect();
                        let n = count(&mut values.iter().map(|v| v.as_ref()));
                        if *negate { flag(n == 0.0) } else { n }
                    }
                    Kind::Body => count(&mut msg.body_lines.iter().map(Vec::as_slice)),
                    Kind::RawBody => count(&mut msg.rawbody_lines.iter().map(Vec::as_slice)),
                    Kind::Full => count(&mut std::iter::once(msg.full.as_slice())),
                    Kind::Uri => count(&mut msg.uris.iter().map(|u| u.as_bytes())),
                    Kind::Meta => 0.0,
                }
            }
        }
    }
}

/// How many times `regex` matches in `texts`, counting at most `limit`; with a
/// limit of 1, only whether it matches, which is all most rules need.
fn count_matches(
    regex: &pcre2::bytes::Regex,
    texts: &mut dyn Iterator<Item = &[u8]>,
    limit: u32,
) -> u32 {
    let mut n = 0;
    for text in texts {
        if limit == 1 {
            if regex.is_match(text).unwrap_or(false) {
                return 1;
            }
            continue;
        }
        for m in regex.find_iter(text) {
            if m.is_err() {
                break;
            }
            n += 1;
            if n >= limit {
                return n;
            }
        }
    }
    n
}

/// `tflags multiple maxhits=N`: how many matches a rule counts (1 without
/// `multiple`, no limit without `maxhits`).
fn max_hits(rule: &Rule) -> u32 {
    if !rule.tflags.iter().any(|f| f == "multiple") {
        return 1;
    }
    rule.tflags
        .iter()
        .find_map(|f| f.strip_prefix("maxhits=")?.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(u32::MAX)
}

/// One prefilter for each kind of rule that reads one or more whole texts (body
/// lines, raw body lines, the full message, URIs), over the regex rules of that
/// kind whose required strings are known; and which rules are gated by them.
fn prefilters(rules: &[Rule]) -> (Vec<(Kind, prefilter::Prefilter)>, Vec<bool>) {
    let mut gated = vec![false; rules.len()];
    let mut filters = Vec::new();
    for kind in [Kind::Body, Kind::RawBody, Kind::Full, Kind::Uri] {
        let strings: Vec<(usize, Vec<Vec<u8>>)> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == kind)
            .filter_map(|(i, r)| match &r.test {
                Test::Regex {
                    required: Some(s), ..
                } => Some((i, s.clone())),
                _ => None,
            })
            .collect();
        let indexes: Vec<usize> = strings.iter().map(|(i, _)| *i).collect();
        if let Some(filter) = prefilter::Prefilter::new(strings) {
            indexes.iter().for_each(|&i| gated[i] = true);
            filters.push((kind, filter));
        }
    }
    (filters, gated)
}

/// `exists:NAME`; the pseudo-headers (ToCc, MESSAGEID, ...) exist when one of
/// the headers behind them does, as SpamAssassin's `get` returns a value.
fn header_exists(msg: &Message, name: &str) -> bool {
    let pseudo = matches!(name, "ALL" | "ToCc" | "MESSAGEID" | "EnvelopeFrom")
        || is_relays_pseudo_header(name);
    if !pseudo {
        return msg
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name));
    }
    let spec = HeaderSpec {
        name: name.to_string(),
        form: HeaderForm::Raw,
        only: None,
    };
    header_value(msg, &spec).is_some()
}

fn is_relays_pseudo_header(name: &str) -> bool {
    name.get(..14)
        .is_some_and(|p| p.eq_ignore_ascii_case("X-Spam-Relays-"))
}

/// Header values as rules read them, computed once per message and form.
#[derive(Default)]
struct HeaderCache {
    values: HashMap<(String, HeaderForm, Option<bool>), Option<Vec<u8>>>,
}

impl HeaderCache {
    fn get(&mut self, msg: &Message, spec: &HeaderSpec) -> Option<&[u8]> {
        let key = (spec.name.clone(), spec.form, spec.only);
        self.values
            .entry(key)
            .or_insert_with(|| header_value(msg, spec))
            .as_deref()
    }
}

/// The value a header rule matches, SpamAssassin's `get()`: pseudo-headers, the
/// `:raw`/`:addr`/`:name` forms, instances joined by newlines.
fn header_value(msg: &Message, spec: &HeaderSpec) -> Option<Vec<u8>> {
    let single = [spec.name.as_str()];
    let names: &[&str] = match spec.name.as_str() {
        "ALL" => {
            let mut out = Vec::new();
            for h in &msg.headers {
                out.extend_from_slice(h.name.as_bytes());
                out.extend_from_slice(b": ");
                if spec.form == HeaderForm::Raw {
                    out.extend_from_slice(&h.raw);
                } else {
                    out.extend_from_slice(&msg::decode_header(&h.raw));
                }
                out.push(b'\n');
            }
            return Some(out);
        }
        "ToCc" => &["To", "Cc"],
        "MESSAGEID" => &["Message-Id", "Resent-Message-Id", "X-Message-Id"],
        // SpamAssassin's guess at the envelope sender, shared with the evals.
        "EnvelopeFrom" => return evals::envelope_from(msg),
        n if is_relays_pseudo_header(n) => return msg.relays.pseudo_header(n),
        _ => &single,
    };
    let mut values: Vec<&[u8]> = names
        .iter()
        .flat_map(|n| msg::header_values(&msg.headers, n))
        .collect();
    match spec.only {
        Some(true) => values.truncate(1),
        Some(false) => {
            let last = values.pop();
            values = last.into_iter().collect();
        }
        None => {}
    }
    if values.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        match spec.form {
            HeaderForm::Raw => out.extend_from_slice(v),
            HeaderForm::Decoded => out.extend_from_slice(&msg::decode_header(v)),
            HeaderForm::Addr => out.extend_from_slice(&msg::first_addr(&msg::decode_header(v))),
            HeaderForm::Name => {
                out.extend_from_slice(&msg::display_name(&msg::decode_header(v)));
            }
        }
    }
    Some(out)
}

/// The stock rule files: `*.cf` in name order, as SpamAssassin reads a directory.
fn stock_files(dir: &Path) -> Result<Vec<PathBuf>, SpamError> {
    let io = |source| SpamError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cf"))
        // Its regression tests are not rules for real mail.
        .filter(|p| p.file_name().is_none_or(|n| n != "regression_tests.cf"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
