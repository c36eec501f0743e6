//! The Bayes classifier in SpamAssassin's manner: its tokenizer (header tokens
//! prefixed with the header name, body tokens with decompositions, URL domain and
//! address breakouts, long tokens as skips), Robinson's f(w) per token and Fisher's
//! chi-square combining over the most significant tokens, with SpamAssassin's
//! constants. Tokens are stored as 64-bit hashes in a redb database, as SA stores the
//! first bytes of a SHA-1: the token text itself is never needed again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::SpamError;
use crate::msg::Message;

/// Robinson's s: the strength given to the prior for rare tokens.
const FW_S_CONSTANT: f64 = 0.030;
/// Robinson's x: the probability assumed for an unseen token.
const FW_X_CONSTANT: f64 = 0.538;
/// Tokens whose probability is closer to 0.5 than this carry no weight.
const MIN_PROB_STRENGTH: f64 = 0.346;
/// At most this many tokens are combined, the strongest first.
const N_SIGNIFICANT_TOKENS: usize = 150;
/// Below this many learned spams or hams the classifier abstains (bayes_min_*_num).
pub const MIN_LEARNED: u64 = 200;
/// Longer tokens are shortened to a "sk:" skip token unless they contain '*'.
const MAX_TOKEN_LENGTH: usize = 15;

/// Token counts: spam count in the high half, ham count in the low half.
const TOKENS: TableDefinition<u64, u64> = TableDefinition::new("tokens");
/// Messages learned, by message hash: 1 spam, 2 ham.
const SEEN: TableDefinition<u64, u8> = TableDefinition::new("seen");
/// `nspam`, `nham`.
const VARS: TableDefinition<&str, u64> = TableDefinition::new("vars");

const STOP_WORDS: &[&str] = &[
    "able",
    "all",
    "already",
    "and",
    "any",
    "are",
    "because",
    "both",
    "can",
    "come",
    "each",
    "email",
    "even",
    "few",
    "first",
    "for",
    "from",
    "give",
    "has",
    "have",
    "http",
    "information",
    "into",
    "it's",
    "just",
    "know",
    "like",
    "long",
    "look",
    "made",
    "mail",
    "mailing",
    "mailto",
    "make",
    "many",
    "more",
    "most",
    "new",
    "not",
    "now",
    "one",
    "only",
    "other",
    "our",
    "people",
    "please",
    "receive",
    "right",
    "same",
    "see",
    "some",
    "subject",
    "than",
    "that",
    "them",
    "this",
    "those",
    "time",
    "want",
    "were",
    "what",
    "where",
    "with",
    "world",
    "you",
    "your",
    "you're",
];

/// Headers that say nothing about the content or are per-delivery noise.
const IGNORED_HEADERS: &[&str] = &[
    "sender",
    "x-sender",
    "delivered-to",
    "delivered-by",
    "envelope-to",
    "x-original-to",
    "x-envelope-to",
    "x-rcpt-to",
    "lines",
    "content-length",
    "x-mime-autoconverted",
    "x-uidl",
    "status",
    "x-status",
    "x-keywords",
    "dkim-signature",
    "domainkey-signature",
    "x-virus-scanned",
    "x-original-date",
];

/// Headers counted only as present: their values are unique per message.
const PRESENCE_ONLY: &[&str] = &[
    "x-face",
    "x-gpg-fingerprint",
    "references",
    "message-id",
    "in-reply-to",
];

/// 64-bit FNV-1a: stable across runs and platforms, which the store needs.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn is_stop_word(t: &[u8]) -> bool {
    t.len() <= 11
        && std::str::from_utf8(t)
            .is_ok_and(|s| STOP_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)))
}

/// Whether a byte survives SpamAssassin's `tr/-A-Za-z0-9,\@\*\!_'"\$.\241-\377 / /cs`.
fn token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b',' | b'@' | b'*' | b'!' | b'_' | b'\'' | b'"' | b'$' | b'.'
        )
        || c >= 0xa1
}

/// Tokenizes one line of text into `out`. `body` enables the body breakouts.
fn tokenize_line(text: &[u8], prefix: &str, body: bool, out: &mut HashSet<Vec<u8>>) {
    for raw in text.split(|&c| !token_byte(c)) {
        // "..." and "--" runs inside words split them, and count as tokens.
        for token in split_runs(raw) {
            let token = trim_punct(token);
            if token.len() < 3 || is_stop_word(token) {
                continue;
            }
            let mut push = |t: &[u8]| {
                let mut v = Vec::with_capacity(prefix.len() + t.len());
                v.extend_from_slice(prefix.as_bytes());
                v.extend_from_slice(t);
                out.insert(v);
            };
            if body {
                if token
                    .windows(3)
                    .any(|w| w[1] == b'@' && w[0] != b' ' && w[2] != b' ')
                {
                    for part in token.split(|&c| c == b'@') {
                        if !part.is_empty() {
                            let mut t = b"UD:".to_vec();
                            t.extend_from_slice(part);
                            push(&t);
                        }
                    }
                } else if token
                    .windows(2)
                    .any(|w| w[0] == b'.' && w[1].is_ascii_alphabetic())
                {
                    let mut t = b"UD:".to_vec();
                    t.extend_from_slice(token);
                    push(&t);
                    let mut bit = token;
                    while let Some(dot) = bit.iter().position(|&c| c == b'.') {
                        bit = &bit[dot + 1..];
                        if bit.is_empty() {
                            break;
                        }
                        let mut t = b"UD:".to_vec();
                        t.extend_from_slice(bit);
                        push(&t);
                    }
                }
            }
            let mut token = token.to_vec();
            if token.len() > MAX_TOKEN_LENGTH && !token.contains(&b'*') {
                let mut t = b"sk:".to_vec();
                t.extend_from_slice(&token[..7]);
                token = t;
            }
            if body {
                let odd =
                    |c: &u8| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b':' || *c == b'*');
                if token.iter().any(odd) {
                    let d: Vec<u8> = token.iter().filter(|c| !odd(c)).copied().collect();
                    push(&d);
                }
                if token.iter().any(u8::is_ascii_uppercase) {
                    let lower = token.to_ascii_lowercase();
                    if lower.iter().any(odd) {
                        let d: Vec<u8> = lower.iter().filter(|c| !odd(c)).copied().collect();
                        push(&d);
                    }
                    push(&lower);
                }
            }
            push(&token);
        }
    }
}

fn split_runs(token: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < token.len() {
        let c = token[i];
        if (c == b'.' || c == b'-') && i > 0 {
            let run = token[i..].iter().take_while(|&&x| x == c).count();
            let min = if c == b'.' { 3 } else { 2 };
            if run >= min && i + run < token.len() {
                out.push(&token[start..i]);
                out.push(&token[i..i + run]);
                i += run;
                start = i;
                continue;
            }
        }
        i += 1;
    }
    out.push(&token[start..]);
    out
}

fn trim_punct(t: &[u8]) -> &[u8] {
    let p = |c: &u8| matches!(c, b'-' | b'\'' | b'"' | b'.' | b',');
    let start = t.iter().position(|c| !p(c)).unwrap_or(t.len());
    let end = t.iter().rposition(|c| !p(c)).map_or(start, |e| e + 1);
    &t[start..end.max(start)]
}

/// The distinct tokens of a message.
pub fn tokenize(msg: &Message) -> HashSet<Vec<u8>> {
    let mut out = HashSet::new();
    for h in &msg.headers {
        let name = h.name.to_ascii_lowercase();
        if IGNORED_HEADERS.contains(&name.as_str()) || name.starts_with("x-spam-") {
            continue;
        }
        let prefix = format!("H{name}:");
        if PRESENCE_ONLY.contains(&name.as_str()) {
            out.insert(prefix.into_bytes());
            continue;
        }
        let value = crate::msg::decode_header(&h.raw);
        tokenize_line(&value, &prefix, false, &mut out);
    }
    for line in msg.visible_text.split(|&c| c == b'\n') {
        tokenize_line(line, "", true, &mut out);
    }
    for uri in &msg.uris {
        tokenize_line(uri.as_bytes(), "U:", false, &mut out);
    }
    out
}

/// Robinson's f(w) for a token seen `s` times in `ns` spams and `h` times in `nh` hams.
pub fn token_probability(s: u64, h: u64, ns: u64, nh: u64) -> Option<f64> {
    if ns == 0 || nh == 0 {
        return None;
    }
    let ratio_s = s as f64 / ns as f64;
    let ratio_h = h as f64 / nh as f64;
    if ratio_s == 0.0 && ratio_h == 0.0 {
        return None;
    }
    let prob = ratio_s / (ratio_s + ratio_h);
    let n = (s + h) as f64;
    Some((FW_S_CONSTANT * FW_X_CONSTANT + n * prob) / (FW_S_CONSTANT + n))
}

/// The chi-square survival function for `x2` with `v` (even) degrees of freedom.
pub fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// Fisher/Robinson chi-square combining, as SpamAssassin's CombineChi: 1 spam,
/// 0 ham, 0.5 undecided.
pub fn combine(probs: &[f64]) -> f64 {
    if probs.is_empty() {
        return 0.5;
    }
    // Sums of logs instead of SA's products with frexp rescaling: the same value
    // without underflow.
    let s: f64 = probs.iter().map(|p| (1.0 - p).max(1e-300).ln()).sum();
    let h: f64 = probs.iter().map(|p| p.max(1e-300).ln()).sum();
    let n = probs.len() * 2;
    let s = 1.0 - chi2q(-2.0 * s, n);
    let h = 1.0 - chi2q(-2.0 * h, n);
    ((s - h) + 1.0) / 2.0
}

/// The token store: a redb file in the Bayes directory.
pub struct Store {
    db: Database,
    path: PathBuf,
}

/// The result of learning or forgetting one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    Learned,
    /// It had been learned as the other class; now it counts as this one.
    Relearned,
    /// It had already been learned as this class: nothing changed.
    AlreadyLearned,
    Forgotten,
    /// `--forget` for a message that was never learned.
    NotLearned,
}

/// Learned spam and ham counts, as one read transaction sees them.
fn learned_counts(p: &Path, txn: &redb::ReadTransaction) -> Result<(u64, u64), SpamError> {
    let vars = txn.open_table(VARS).map_err(|e| db_err(p, e))?;
    let get = |k| -> Result<u64, SpamError> {
        Ok(vars
            .get(k)
            .map_err(|e| db_err(p, e))?
            .map_or(0, |v| v.value()))
    };
    Ok((get("nspam")?, get("nham")?))
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> SpamError {
    SpamError::Bayes {
        path: path.to_path_buf(),
        message: e.into().to_string(),
    }
}

impl Store {
    /// Opens or creates `DIR/bayes.redb`.
    pub fn open(dir: &Path) -> Result<Store, SpamError> {
        std::fs::create_dir_all(dir).map_err(|source| SpamError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("bayes.redb");
        let db = Database::create(&path).map_err(|e| db_err(&path, e))?;
        let txn = db.begin_write().map_err(|e| db_err(&path, e))?;
        txn.open_table(TOKENS).map_err(|e| db_err(&path, e))?;
        txn.open_table(SEEN).map_err(|e| db_err(&path, e))?;
        txn.open_table(VARS).map_err(|e| db_err(&path, e))?;
        txn.commit().map_err(|e| db_err(&path, e))?;
        Ok(Store { db, path })
    }

    /// Learned spam and ham counts.
    pub fn counts(&self) -> Result<(u64, u64), SpamError> {
        let p = &self.path;
        let txn = self.db.begin_read().map_err(|e| db_err(p, e))?;
        learned_counts(p, &txn)
    }

    /// The spam probability of a message, or `None` while too little is learned.
    pub fn classify(&self, tokens: &HashSet<Vec<u8>>) -> Result<Option<f64>, SpamError> {
        let p = &self.path;
        let txn = self.db.begin_read().map_err(|e| db_err(p, e))?;
        let (ns, nh) = learned_counts(p, &txn)?;
        if ns < MIN_LEARNED || nh < MIN_LEARNED {
            return Ok(None);
        }
        let table = txn.open_table(TOKENS).map_err(|e| db_err(p, e))?;
        let mut probs = Vec::new();
        for t in tokens {
            let Some(v) = table.get(hash(t)).map_err(|e| db_err(p, e))? else {
                continue;
            };
            let v = v.value();
            if let Some(prob) = token_probability(v >> 32, v & 0xffff_ffff, ns, nh)
                && (prob - 0.5).abs() >= MIN_PROB_STRENGTH
            {
                probs.push(prob);
            }
        }
        probs.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
        probs.truncate(N_SIGNIFICANT_TOKENS);
        Ok(Some(combine(&probs)))
    }

    /// Learns (or with `forget`, unlearns) messages given as (message hash, tokens),
    /// in one transaction: one fsync for a whole batch.
    pub fn learn(
        &self,
        batch: &[(u64, HashSet<Vec<u8>>)],
        spam: bool,
        forget: bool,
    ) -> Result<Vec<LearnOutcome>, SpamError> {
        let p = &self.path;
        let txn = self.db.begin_write().map_err(|e| db_err(p, e))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut tokens = txn.open_table(TOKENS).map_err(|e| db_err(p, e))?;
            let mut seen = txn.open_table(SEEN).map_err(|e| db_err(p, e))?;
            let mut vars = txn.open_table(VARS).map_err(|e| db_err(p, e))?;
            let mut ns = vars
                .get("nspam")
                .map_err(|e| db_err(p, e))?
                .map_or(0, |v| v.value());
            let mut nh = vars
                .get("nham")
                .map_err(|e| db_err(p, e))?
                .map_or(0, |v| v.value());
            let class = if spam { 1u8 } else { 2u8 };
            for (id, toks) in batch {
                let before = seen.get(*id).map_err(|e| db_err(p, e))?.map(|v| v.value());
                // What to take away (the class it was learned as) and what to add.
                let (remove, add, outcome) = match (before, forget) {
                    (None, true) => (None, None, LearnOutcome::NotLearned),
                    (Some(c), true) => (Some(c), None, LearnOutcome::Forgotten),
                    (Some(c), false) if c == class => (None, None, LearnOutcome::AlreadyLearned),
                    (Some(c), false) => (Some(c), Some(class), LearnOutcome::Relearned),
                    (None, false) => (None, Some(class), LearnOutcome::Learned),
                };
                for (c, delta) in [(remove, -1i64), (add, 1)] {
                    let Some(c) = c else { continue };
                    let is_spam = c == 1;
                    for t in toks {
                        let key = hash(t);
                        let v = tokens
                            .get(key)
                            .map_err(|e| db_err(p, e))?
                            .map_or(0, |v| v.value());
                        let (mut s, mut h) = ((v >> 32) as i64, (v & 0xffff_ffff) as i64);
                        if is_spam {
                            s = (s + delta).clamp(0, u32::MAX as i64);
                        } else {
                            h = (h + delta).clamp(0, u32::MAX as i64);
                        }
                        if s == 0 && h == 0 {
                            tokens.remove(key).map_err(|e| db_err(p, e))?;
                        } else {
                            tokens
                                .insert(key, ((s as u64) << 32) | h as u64)
                                .map_err(|e| db_err(p, e))?;
                        }
                    }
                    let n = if is_spam { &mut ns } else { &mut nh };
                    *n = n.saturating_add_signed(delta);
                }
                match add {
                    Some(c) => {
                        seen.insert(*id, c).map_err(|e| db_err(p, e))?;
                    }
                    None if remove.is_some() => {
                        seen.remove(*id).map_err(|e| db_err(p, e))?;
                    }
                    None => {}
                }
                outcomes.push(outcome);
            }
            vars.insert("nspam", ns).map_err(|e| db_err(p, e))?;
            vars.insert("nham", nh).map_err(|e| db_err(p, e))?;
        }
        txn.commit().map_err(|e| db_err(p, e))?;
        Ok(outcomes)
    }
}

/// The identity of a message for the seen table: its Message-ID when it has one,
/// else its content.
pub fn message_id(msg: &Message) -> u64 {
    match msg.header("message-id") {
        Some(id) if !id.trim_ascii().is_empty() => hash(id.trim_ascii()),
        _ => hash(&msg.full),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_follows_sa() {
        let m = Message::parse(
            b"From: Joe <joe@example.com>\nSubject: Cheap Pills\nMessage-ID: <1@x>\n\n\
              Visit www.pills-example.com CHEAP... for $31,000,000 the and\n",
        );
        let t = tokenize(&m);
        let has = |s: &str| t.contains(s.as_bytes());
        assert!(has("Hsubject:Cheap"));
        assert!(has("Hmessage-id:"));
        assert!(!t.iter().any(|x| x.starts_with(b"Hmessage-id:<")));
        assert!(has("UD:www.pills-example.com"));
        assert!(has("UD:pills-example.com"));
        assert!(has("CHEAP"));
        assert!(has("cheap"));
        assert!(has("$31,000,000"));
        assert!(has("31000000"));
        assert!(!has("and"));
        let long = Message::parse(b"Subject: x\n\nsupercalifragilisticexpialidocious\n");
        assert!(tokenize(&long).contains(&b"sk:superca"[..]));
    }

    #[test]
    fn chi_square_math() {
        assert!((chi2q(0.0, 2) - 1.0).abs() < 1e-12);
        // chi2q(x, 2) = exp(-x/2).
        assert!((chi2q(4.0, 2) - (-2.0f64).exp()).abs() < 1e-12);
        assert_eq!(combine(&[]), 0.5);
        assert!(combine(&[0.99; 20]) > 0.99);
        assert!(combine(&[0.01; 20]) < 0.01);
        assert!((combine(&[0.99, 0.01]) - 0.5).abs() < 1e-9);
        // Robinson: an unseen-in-ham token seen once in spam is not certain.
        let p = token_probability(1, 0, 100, 100).unwrap();
        assert!(p > 0.9 && p < 1.0);
        assert!(token_probability(0, 0, 100, 100).is_none());
    }

    #[test]
    fn learn_and_forget_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = Message::parse(b"Subject: buy now\nMessage-ID: <a@b>\n\nviagra cialis\n");
        let toks = tokenize(&m);
        let id = message_id(&m);
        let batch = vec![(id, toks.clone())];
        assert_eq!(
            store.learn(&batch, true, false).unwrap(),
            [LearnOutcome::Learned]
        );
        assert_eq!(
            store.learn(&batch, true, false).unwrap(),
            [LearnOutcome::AlreadyLearned]
        );
        assert_eq!(store.counts().unwrap(), (1, 0));
        assert_eq!(
            store.learn(&batch, false, false).unwrap(),
            [LearnOutcome::Relearned]
        );
        assert_eq!(store.counts().unwrap(), (0, 1));
        assert_eq!(
            store.learn(&batch, false, true).unwrap(),
            [LearnOutcome::Forgotten]
        );
        assert_eq!(store.counts().unwrap(), (0, 0));
        assert_eq!(
            store.learn(&batch, false, true).unwrap(),
            [LearnOutcome::NotLearned]
        );
        // Everything forgotten: no token is left behind.
        let txn = store.db.begin_read().unwrap();
        let table = txn.open_table(TOKENS).unwrap();
        assert!(toks.iter().all(|t| table.get(hash(t)).unwrap().is_none()));
    }
}
