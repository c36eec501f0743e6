//! Rule scores learned from labelled mail, as SpamAssassin's own scores were
//! made from mass-check results, and an honest measure of them.
//!
//! Each message is run through the rules once (`Engine::features`); its Bayes
//! tokens are kept. Bayes is then trained in memory on some folds and asked
//! about the others, so that a message's Bayes rule always comes from a
//! classifier that never saw it. The scores are fitted by logistic regression
//! on those rule hits: the margin is the message's score minus the required
//! score, and each score is pulled towards its stock value (a Gaussian prior),
//! so a rule the mail says little about keeps SpamAssassin's judgement. Scores
//! keep their stock sign (`nice` rules stay at or below 0) and no rule may
//! reach the required score alone. Bayes, the one test that weighs thousands
//! of tokens, may: the rules for its top range (BAYES_99 and BAYES_999, which
//! hit together) may add up to the required score, no more, when the mail
//! shows that a message Bayes is that sure of is spam.
//! The prior's strength is chosen by cross-validation inside the training
//! mail; `cross_validate` fits each fold's scores without that fold, so no
//! score is judged on mail it was fitted on.

use std::collections::HashMap;

use crate::bayes::{self, MIN_LEARNED};
use crate::evals::Eval;
use crate::rules::Test;
use crate::{Engine, EngineConfig, Loader, SpamError, msg::Message};

/// No rule may score more than this (nor less than its negative).
pub const MAX_RULE_SCORE: f64 = 4.0;
/// The logistic's scale in points: a message 1 point past the required score
/// is spam with probability 0.73.
const TEMPERATURE: f64 = 1.0;
/// Prior strengths tried by the inner cross-validation.
const LAMBDAS: [f64; 6] = [0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01];
const SWEEPS: usize = 300;

/// What the rules and the tokenizer make of one message.
pub struct Features {
    /// Rules that hit before Bayes, as (rule index, value).
    values: Vec<(u32, f64)>,
    tokens: Vec<u64>,
    id: u64,
}

/// A labelled message, with the fold it belongs to.
pub struct Sample {
    pub features: Features,
    pub spam: bool,
    pub fold: usize,
    /// The message's weight in the fit (1 unless the caller balances sources).
    pub weight: f64,
}

/// The outcome for one message of `cross_validate`.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub score: f64,
    pub bayes: Option<f64>,
}

/// Learned scores, by rule name, and the prior strength chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub scores: Vec<(String, f64)>,
    pub lambda: f64,
}

impl Engine {
    /// The engine `mailgate scores` fits: the stock rules and the site's files
    /// with their own scores (never the built-in learned ones, so that fitting
    /// again gives the same file), in the score set with Bayes.
    pub fn load_for_fit(config: &EngineConfig) -> Result<Engine, SpamError> {
        let mut loader = Loader::new();
        if let Some(dir) = &config.stock_rules_dir
            && dir.is_dir()
        {
            for file in crate::stock_files(dir)? {
                loader.load_file(&file, false)?;
            }
        }
        for file in &config.rule_files {
            loader.load_file(file, true)?;
        }
        let score_set = usize::from(config.network_tests) + 2;
        let set = loader.finish(score_set)?;
        Ok(Engine::build(set, score_set, None, config.clone()))
    }

    /// Runs every rule but Bayes over a message and tokenizes it.
    pub fn features(&self, message: &[u8]) -> Features {
        let msg = Message::parse(message);
        let tokens = self.bayes_tokens(&msg);
        let values = self
            .values(&msg, None, None)
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (i as u32, *v))
            .collect();
        Features {
            values,
            tokens,
            id: bayes::message_id(&msg),
        }
    }

    /// The scored rules a message hits with this Bayes probability, as (rule
    /// index, value).
    fn hits(&self, f: &Features, bayes: Option<f64>) -> Vec<(usize, f64)> {
        let mut values = vec![0.0; self.rules.len()];
        for &(i, v) in &f.values {
            values[i as usize] = v;
        }
        for (i, r) in self.rules.iter().enumerate() {
            if let Test::Eval(e @ Eval::Bayes { .. }) = &r.test {
                values[i] = f64::from(u8::from(e.bayes_hit(bayes)));
            }
        }
        self.run_metas(&mut values);
        values
            .iter()
            .enumerate()
            .filter(|&(i, v)| *v != 0.0 && !self.rules[i].name.starts_with("__"))
            .map(|(i, v)| (i, *v))
            .collect()
    }

    /// Whether a rule's score is learned: not a user setting (the lists,
    /// GTUBE), not a rule under test (`T_`), not one scored so high that it is
    /// meant to decide alone.
    fn fitted(&self, i: usize) -> bool {
        let r = &self.rules[i];
        !r.name.starts_with("T_")
            && !r.tflags.iter().any(|f| f == "userconf")
            && r.scores[self.score_set].abs() < 10.0
    }

    /// The bounds of a rule's learned score: its stock sign, and below the
    /// required score.
    fn bounds(&self, i: usize) -> (f64, f64) {
        let r = &self.rules[i];
        let cap = MAX_RULE_SCORE.min(self.required * 0.9);
        if r.tflags.iter().any(|f| f == "nice") || r.scores[self.score_set] < 0.0 {
            (-cap, 0.0)
        } else {
            (0.0, cap)
        }
    }
}

/// Token counts of some learned mail.
#[derive(Default)]
struct Counts {
    tokens: HashMap<u64, (u32, u32)>,
    spam: u64,
    ham: u64,
}

impl Counts {
    fn add(&mut self, f: &Features, spam: bool) {
        for &t in &f.tokens {
            let e = self.tokens.entry(t).or_default();
            if spam { e.0 += 1 } else { e.1 += 1 }
        }
        if spam { self.spam += 1 } else { self.ham += 1 }
    }
}

/// Bayes trained in memory, one count table per fold: asked about a message,
/// it leaves out the folds named.
struct FoldBayes {
    total: Counts,
    folds: Vec<Counts>,
}

impl FoldBayes {
    /// Learns every sample as `mailgate learn` would: a message learned twice
    /// (the same Message-ID) counts once, as the class learned last (spam after
    /// ham, as the bench learns them).
    fn new(samples: &[Sample], nfolds: usize) -> FoldBayes {
        let mut last: HashMap<u64, usize> = HashMap::new();
        let mut order: Vec<usize> = (0..samples.len()).collect();
        order.sort_by_key(|&i| samples[i].spam);
        for i in order {
            last.insert(samples[i].features.id, i);
        }
        let mut learned: Vec<usize> = last.into_values().collect();
        learned.sort_unstable();
        let mut b = FoldBayes {
            total: Counts::default(),
            folds: (0..nfolds).map(|_| Counts::default()).collect(),
        };
        for i in learned {
            let s = &samples[i];
            b.total.add(&s.features, s.spam);
            b.folds[s.fold].add(&s.features, s.spam);
        }
        b
    }

    /// The probability of a message with Bayes trained on all folds but `out`.
    fn classify(&self, f: &Features, out: &[usize]) -> Option<f64> {
        let less = |pick: fn(&Counts) -> u64| {
            let gone: u64 = out.iter().map(|&k| pick(&self.folds[k])).sum();
            pick(&self.total) - gone
        };
        let (ns, nh) = (less(|c| c.spam), less(|c| c.ham));
        if ns < MIN_LEARNED || nh < MIN_LEARNED {
            return None;
        }
        let mut counts = Vec::with_capacity(f.tokens.len());
        for t in &f.tokens {
            let Some(&(mut s, mut h)) = self.total.tokens.get(t) else {
                continue;
            };
            for &k in out {
                if let Some(&(fs, fh)) = self.folds[k].tokens.get(t) {
                    s -= fs;
                    h -= fh;
                }
            }
            if s + h > 0 {
                counts.push((u64::from(s), u64::from(h)));
            }
        }
        Some(bayes::probability(&counts, ns, nh))
    }
}

/// One fitting problem: rows of (feature, value), labels, the fixed part of
/// each margin, and per feature its prior and bounds.
struct Problem {
    rows: Vec<Vec<(usize, f64)>>,
    spam: Vec<bool>,
    weight: Vec<f64>,
    offset: Vec<f64>,
    /// Each row's inner fold, for choosing the prior strength.
    fold: Vec<usize>,
}

/// The learned features: rule indexes, priors, bounds, and the feature whose
/// score is capped together with another (BAYES_99 and BAYES_999: together,
/// at most the required score).
struct Space {
    rules: Vec<usize>,
    prior: Vec<f64>,
    bounds: Vec<(f64, f64)>,
    partner: Vec<Option<usize>>,
    /// The cap on a feature and its partner together.
    pair_cap: f64,
}

impl Space {
    fn new(engine: &Engine) -> Space {
        let rules: Vec<usize> = (0..engine.rules.len())
            .filter(|&i| !engine.rules[i].name.starts_with("__") && engine.fitted(i))
            .collect();
        let mut partner = vec![None; rules.len()];
        // Bayes rules whose ranges nest hit together: their sum is capped.
        let ranges: Vec<(usize, f64, f64)> = rules
            .iter()
            .enumerate()
            .filter_map(|(j, &i)| match &engine.rules[i].test {
                Test::Eval(Eval::Bayes { min, max }) => Some((j, *min, *max)),
                _ => None,
            })
            .collect();
        for &(a, amin, amax) in &ranges {
            for &(b, bmin, bmax) in &ranges {
                if a != b && amin >= bmin && amax <= bmax && (amin, amax) != (bmin, bmax) {
                    partner[a] = Some(b);
                    partner[b] = Some(a);
                }
            }
        }
        Space {
            prior: rules
                .iter()
                .map(|&i| engine.rules[i].scores[engine.score_set])
                .collect(),
            bounds: rules.iter().map(|&i| engine.bounds(i)).collect(),
            rules,
            partner,
            pair_cap: engine.required,
        }
    }

    /// A problem from samples with their Bayes probabilities; `fold_of` gives
    /// each row's inner fold.
    fn problem(
        &self,
        engine: &Engine,
        samples: &[(&Sample, Option<f64>)],
        fold_of: impl Fn(&Sample) -> usize,
    ) -> Problem {
        let index: HashMap<usize, usize> = self
            .rules
            .iter()
            .enumerate()
            .map(|(j, &i)| (i, j))
            .collect();
        let mut p = Problem {
            rows: Vec::with_capacity(samples.len()),
            spam: Vec::with_capacity(samples.len()),
            weight: Vec::with_capacity(samples.len()),
            offset: Vec::with_capacity(samples.len()),
            fold: Vec::with_capacity(samples.len()),
        };
        for (s, bayes) in samples {
            let mut row = Vec::new();
            let mut offset = -engine.required;
            for (i, v) in engine.hits(&s.features, *bayes) {
                match index.get(&i) {
                    Some(&j) => row.push((j, v)),
                    None => offset += engine.rules[i].scores[engine.score_set] * v,
                }
            }
            p.rows.push(row);
            p.spam.push(s.spam);
            p.weight.push(s.weight);
            p.offset.push(offset);
            p.fold.push(fold_of(s));
        }
        p
    }

    /// Fits the scores on the rows `keep` selects, by cyclic coordinate descent
    /// with Newton steps projected onto the bounds. Deterministic: the same
    /// rows give the same scores, bit for bit.
    fn fit(&self, p: &Problem, keep: &dyn Fn(usize) -> bool, lambda: f64) -> Vec<f64> {
        let n = self.rules.len();
        let mut columns: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let rows: Vec<usize> = (0..p.rows.len()).filter(|&r| keep(r)).collect();
        for &r in &rows {
            for &(j, v) in &p.rows[r] {
                columns[j].push((r, v));
            }
        }
        let mut w: Vec<f64> = self
            .prior
            .iter()
            .zip(&self.bounds)
            .map(|(p, (lo, hi))| p.clamp(*lo, *hi))
            .collect();
        let mut margin: Vec<f64> = vec![0.0; p.rows.len()];
        for &r in &rows {
            margin[r] = p.offset[r] + p.rows[r].iter().map(|&(j, v)| w[j] * v).sum::<f64>();
        }
        let total = rows.iter().map(|&r| p.weight[r]).sum::<f64>().max(1e-9);
        for _ in 0..SWEEPS {
            let mut moved = 0.0f64;
            for j in 0..n {
                if columns[j].is_empty() {
                    continue;
                }
                let (mut grad, mut hess) = (0.0, 0.0);
                for &(r, v) in &columns[j] {
                    let q = sigmoid(margin[r] / TEMPERATURE);
                    let y = f64::from(u8::from(p.spam[r]));
                    let weight = p.weight[r];
                    grad += weight * (q - y) * v / TEMPERATURE;
                    hess += weight * q * (1.0 - q) * v * v / (TEMPERATURE * TEMPERATURE);
                }
                grad = grad / total + 2.0 * lambda * (w[j] - self.prior[j]);
                hess = hess / total + 2.0 * lambda;
                let (lo, mut hi) = self.bounds[j];
                if let Some(k) = self.partner[j] {
                    hi = hi.min(self.pair_cap - w[k].max(0.0)).max(lo);
                }
                let new = (w[j] - grad / hess).clamp(lo, hi);
                let delta = new - w[j];
                if delta != 0.0 {
                    for &(r, v) in &columns[j] {
                        margin[r] += delta * v;
                    }
                    w[j] = new;
                    moved = moved.max(delta.abs());
                }
            }
            if moved < 1e-7 {
                break;
            }
        }
        w
    }

    /// Chooses the prior strength by cross-validation over the problem's inner
    /// folds: the one whose held-out rows have the lowest log-loss.
    fn choose_lambda(&self, p: &Problem) -> f64 {
        let mut folds: Vec<usize> = p.fold.clone();
        folds.sort_unstable();
        folds.dedup();
        let mut best = (f64::INFINITY, LAMBDAS[0]);
        for lambda in LAMBDAS {
            let mut loss = 0.0;
            for &k in &folds {
                let w = self.fit(p, &|r| p.fold[r] != k, lambda);
                for r in (0..p.rows.len()).filter(|&r| p.fold[r] == k) {
                    let m = margin(p, r, &w) / TEMPERATURE;
                    let z = if p.spam[r] { -m } else { m };
                    loss += p.weight[r] * softplus(z);
                }
            }
            if loss < best.0 {
                best = (loss, lambda);
            }
        }
        best.1
    }
}

fn margin(p: &Problem, r: usize, w: &[f64]) -> f64 {
    p.offset[r] + p.rows[r].iter().map(|&(j, v)| w[j] * v).sum::<f64>()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// A score as the engine sums it: rounded to thousandths.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A learned score as written: rounded to thousandths, but never 0, since a
/// rule scored 0 does not run and the metas built on it would then change
/// (SpamAssassin's own generated scores keep such rules at 0.001 for the same
/// reason). A rule the fit drives to 0 gets 0.0001 (or -0.0001 if it is
/// `nice`): it keeps running, and a total, summed to thousandths, does not
/// move.
fn written(x: f64, bounds: (f64, f64)) -> f64 {
    let r = round3(x);
    if r != 0.0 {
        r
    } else if bounds.1 > 0.0 {
        0.0001
    } else {
        -0.0001
    }
}

/// Fits scores on all samples: each message's Bayes rule comes from Bayes
/// trained on the other folds, and the prior strength from cross-validation
/// over the same folds.
pub fn fit(engine: &Engine, samples: &[Sample], nfolds: usize) -> Scores {
    let bayes = FoldBayes::new(samples, nfolds);
    let space = Space::new(engine);
    let rows: Vec<(&Sample, Option<f64>)> = samples
        .iter()
        .map(|s| (s, bayes.classify(&s.features, &[s.fold])))
        .collect();
    let p = space.problem(engine, &rows, |s| s.fold);
    let lambda = space.choose_lambda(&p);
    let w = space.fit(&p, &|_| true, lambda);
    scores(engine, &space, &p, &w, lambda)
}

/// The learned scores of the rules the mail exercised, by name.
fn scores(engine: &Engine, space: &Space, p: &Problem, w: &[f64], lambda: f64) -> Scores {
    let mut seen = vec![false; space.rules.len()];
    for row in &p.rows {
        for &(j, _) in row {
            seen[j] = true;
        }
    }
    let mut scores: Vec<(String, f64)> = space
        .rules
        .iter()
        .enumerate()
        .filter(|&(j, _)| seen[j])
        .map(|(j, &i)| (engine.rules[i].name.clone(), written(w[j], space.bounds[j])))
        .collect();
    scores.sort_by(|a, b| a.0.cmp(&b.0));
    Scores { scores, lambda }
}

/// Nested cross-validation: for each fold, Bayes is trained on the other
/// folds and the scores are fitted on them (their Bayes rules from Bayes
/// trained without the test fold and their own, the prior strength chosen over
/// them), and the fold is scored with those. Returns each sample's verdict, in
/// order, and each fold's scores.
pub fn cross_validate(
    engine: &Engine,
    samples: &[Sample],
    nfolds: usize,
) -> (Vec<Verdict>, Vec<Scores>) {
    let bayes = FoldBayes::new(samples, nfolds);
    let space = Space::new(engine);
    let mut verdicts = vec![
        Verdict {
            score: 0.0,
            bayes: None
        };
        samples.len()
    ];
    let mut all = Vec::new();
    for k in 0..nfolds {
        let train: Vec<(&Sample, Option<f64>)> = samples
            .iter()
            .filter(|s| s.fold != k)
            .map(|s| (s, bayes.classify(&s.features, &[k, s.fold])))
            .collect();
        let p = space.problem(engine, &train, |s| s.fold);
        let lambda = space.choose_lambda(&p);
        let w = space.fit(&p, &|_| true, lambda);
        let fitted = scores(engine, &space, &p, &w, lambda);
        let by_rule: HashMap<usize, f64> = space
            .rules
            .iter()
            .enumerate()
            .map(|(j, &i)| (i, written(w[j], space.bounds[j])))
            .collect();
        for (n, s) in samples.iter().enumerate().filter(|(_, s)| s.fold == k) {
            let prob = bayes.classify(&s.features, &[k]);
            let score: f64 = engine
                .hits(&s.features, prob)
                .into_iter()
                .map(|(i, v)| {
                    let score = by_rule
                        .get(&i)
                        .map_or(engine.rules[i].scores[engine.score_set], |&w| w);
                    score * v
                })
                .sum();
            verdicts[n] = Verdict {
                score: round3(score),
                bayes: prob,
            };
        }
        all.push(fitted);
    }
    (verdicts, all)
}

/// The scores file: `score` lines in SpamAssassin's syntax, the stock scores
/// kept for the sets without Bayes. `about` is a comment saying what it was
/// fitted on.
pub fn scores_file(engine: &Engine, scores: &Scores, about: &str) -> String {
    let mut out = String::new();
    for line in about.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str(&format!(
        "# Prior strength (chosen by cross-validation): {}\n\n",
        scores.lambda
    ));
    let by_name: HashMap<&str, usize> = engine
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    for (name, s) in &scores.scores {
        let Some(&i) = by_name.get(name.as_str()) else {
            continue;
        };
        let stock = engine.rules[i].scores;
        out.push_str(&format!("score {name} {} {} {s} {s}\n", stock[0], stock[1]));
    }
    out
}

#[cfg(test)]
#[path = "fit_tests.rs"]
mod tests;
