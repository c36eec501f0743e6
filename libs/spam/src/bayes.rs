//! The Bayes classifier in SpamAssassin's manner (tokens from `tokenizer`):
//! Robinson's f(w) per token and Fisher's
//! chi-square combining over the most significant tokens, with SpamAssassin's
//! constants. Tokens are stored as 64-bit hashes in a redb database, as SA stores the
//! first bytes of a SHA-1: the token text itself is never needed again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition};

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

/// Token counts: spam count in the high half, ham count in the low half.
const TOKENS: TableDefinition<u64, u64> = TableDefinition::new("tokens");
/// Messages learned, by message hash: 1 spam, 2 ham.
const SEEN: TableDefinition<u64, u8> = TableDefinition::new("seen");
/// `nspam`, `nham`.
const VARS: TableDefinition<&str, u64> = TableDefinition::new("vars");

/// 64-bit FNV-1a: stable across runs and platforms, which the store needs.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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

/// A message's spam probability from the (spam, ham) counts of its known
/// tokens, with `ns` spams and `nh` hams learned: SpamAssassin's selection of
/// the strongest tokens and chi-square combining. The store and the in-memory
/// counts of `mailgate scores` share it, so both classify alike.
pub fn probability(counts: &[(u64, u64)], ns: u64, nh: u64) -> f64 {
    let mut probs: Vec<f64> = counts
        .iter()
        .filter_map(|&(s, h)| token_probability(s, h, ns, nh))
        .filter(|prob| (prob - 0.5).abs() >= MIN_PROB_STRENGTH)
        .collect();
    probs.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
    probs.truncate(N_SIGNIFICANT_TOKENS);
    combine(&probs)
}

/// The token store: a redb file in the Bayes directory.
pub struct Store {
    db: Db,
    path: PathBuf,
}

/// The store opened for learning, or only for scoring. A process that only
/// scores (the scanner, `mailgate scan`) opens it read-only: closing a
/// read-write redb database writes its header, a write those processes'
/// sandboxes forbid (the scanner died of SIGSYS at every stop and reload).
enum Db {
    Write(Database),
    Read(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::Write(db) => db.begin_read(),
            Db::Read(db) => db.begin_read(),
        }
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, redb::Error> {
        match self {
            Db::Write(db) => Ok(db.begin_write()?),
            Db::Read(_) => Err(redb::Error::Io(std::io::Error::other(
                "the Bayes store is open for scoring only",
            ))),
        }
    }
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
        Ok(Store {
            db: Db::Write(db),
            path,
        })
    }

    /// Opens `DIR/bayes.redb` for scoring only. A store that does not exist
    /// yet, or that a crash left unclean, is first created or repaired by a
    /// read-write open closed at once (this runs before any sandbox).
    pub fn open_read_only(dir: &Path) -> Result<Option<Store>, SpamError> {
        let path = dir.join("bayes.redb");
        if !path.exists() {
            drop(Store::open(dir)?);
        }
        let db = match ReadOnlyDatabase::open(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::RepairAborted) => {
                drop(Store::open(dir)?);
                ReadOnlyDatabase::open(&path).map_err(|e| db_err(&path, e))?
            }
            Err(e) => return Err(db_err(&path, e)),
        };
        let store = Store {
            db: Db::Read(db),
            path,
        };
        // A store made by an older mailgate may lack a table: learn() makes
        // them, and a store without them is read as an empty one.
        match store.counts() {
            Ok(_) => Ok(Some(store)),
            Err(_) => Ok(None),
        }
    }

    /// Learned spam and ham counts.
    pub fn counts(&self) -> Result<(u64, u64), SpamError> {
        let p = &self.path;
        let txn = self.db.begin_read().map_err(|e| db_err(p, e))?;
        learned_counts(p, &txn)
    }

    /// The spam probability of a message, or `None` while too little is learned.
    pub fn classify(&self, tokens: &[u64]) -> Result<Option<f64>, SpamError> {
        let p = &self.path;
        let txn = self.db.begin_read().map_err(|e| db_err(p, e))?;
        let (ns, nh) = learned_counts(p, &txn)?;
        if ns < MIN_LEARNED || nh < MIN_LEARNED {
            return Ok(None);
        }
        let table = txn.open_table(TOKENS).map_err(|e| db_err(p, e))?;
        let mut counts = Vec::with_capacity(tokens.len());
        for &t in tokens {
            if let Some(v) = table.get(t).map_err(|e| db_err(p, e))? {
                let v = v.value();
                counts.push((v >> 32, v & 0xffff_ffff));
            }
        }
        Ok(Some(probability(&counts, ns, nh)))
    }

    /// Learns (or with `forget`, unlearns) messages given as (message hash, token
    /// hashes), in one transaction: one fsync for a whole batch. Learning a message
    /// already learned as the same class changes nothing, so a batch may be
    /// replayed.
    pub fn learn(
        &self,
        batch: &[(u64, Vec<u64>)],
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
                    for &key in toks {
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

/// A message's tokens as the store keys them: hashed, each once.
pub fn token_hashes(tokens: &HashSet<Vec<u8>>) -> Vec<u64> {
    let mut hashes: Vec<u64> = tokens.iter().map(|t| hash(t)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes
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
        let toks = token_hashes(&crate::tokenizer::tokenize(&m, &HashSet::new()));
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
        assert!(toks.iter().all(|&t| table.get(t).unwrap().is_none()));
    }
}
