//! Tests of score fitting on a small made-up corpus.

use super::*;
use crate::{Class, EngineConfig};

const RULES: &str = "body PILLS /cheap pills/\nscore PILLS 1.0\n\
    body MEETING /meeting/\nscore MEETING -0.5\ntflags MEETING nice\n\
    body RARE /zebra/\nscore RARE 2.0\n\
    body GTUBE_LIKE /xyzzy/\nscore GTUBE_LIKE 1000\n\
    body BAYES_00 eval:check_bayes('0.00', '0.01')\nscore BAYES_00 0 0 -1.9 -1.9\ntflags BAYES_00 nice learn\n\
    body BAYES_50 eval:check_bayes('0.40', '0.60')\nscore BAYES_50 0 0 0.8 0.8\n\
    body BAYES_99 eval:check_bayes('0.99', '1.00')\nscore BAYES_99 0 0 3.5 3.5\n\
    body BAYES_999 eval:check_bayes('0.999', '1.00')\nscore BAYES_999 0 0 0.2 0.2\n";

fn engine() -> Engine {
    let mut loader = Loader::new();
    loader
        .load_text(RULES, std::path::Path::new("(rules)"), true)
        .unwrap();
    Engine::build(loader.finish(2).unwrap(), 2, None, EngineConfig::default())
}

/// Spam sells pills (mostly) in spammy words; ham talks of meetings. Each
/// message has a unique Message-ID and a word of its own.
fn message(spam: bool, n: usize) -> Vec<u8> {
    let words = if spam {
        [
            "offer",
            "winner",
            "casino",
            "refinance",
            "bonus",
            "guaranteed",
        ]
    } else {
        ["agenda", "minutes", "project", "review", "tuesday", "draft"]
    };
    let topic = if spam && !n.is_multiple_of(3) {
        "cheap pills"
    } else if !spam && n % 4 == 1 {
        "meeting"
    } else {
        "hello"
    };
    format!(
        "Message-ID: <{n}.{spam}@example>\nSubject: {} {n}\n\n{topic} {} {} {} {} unique{n}x\n",
        words[n % 6],
        words[(n + 1) % 6],
        words[(n + 2) % 6],
        words[(n + 3) % 6],
        words[(n + 4) % 6]
    )
    .into_bytes()
}

fn samples(e: &Engine) -> Vec<Sample> {
    // Enough that Bayes trained on three folds of five has 200 of each class.
    (0..1000)
        .map(|n| {
            let spam = n % 2 == 0;
            Sample {
                features: e.features(&message(spam, n)),
                spam,
                fold: n % 5,
                weight: 1.0,
            }
        })
        .collect()
}

#[test]
fn fitting_is_deterministic_and_bounded() {
    let e = engine();
    let s = samples(&e);
    let a = fit(&e, &s, 5);
    assert_eq!(a, fit(&e, &s, 5));
    // A zero would switch a rule off, and the metas built on it with it.
    assert!(a.scores.iter().all(|(_, s)| *s != 0.0), "{a:?}");
    let score = |name: &str| a.scores.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    // The pills rule is learned up, within the cap; the nice rule stays <= 0.
    let pills = score("PILLS").unwrap();
    assert!(pills > 1.0 && pills <= MAX_RULE_SCORE, "{pills}");
    assert!(score("MEETING").unwrap() <= 0.0);
    // A rule the mail never exercised is not written, nor a user setting.
    assert_eq!(score("RARE"), None);
    assert_eq!(score("GTUBE_LIKE"), None);
    // The Bayes rules that hit together stay within the required score.
    let top = score("BAYES_99").unwrap_or(0.0) + score("BAYES_999").unwrap_or(0.0);
    assert!(top <= e.required + 1e-9, "{top}");
    let file = scores_file(&e, &a, "test");
    assert!(
        file.contains(&format!("score PILLS 1 1 {pills} {pills}\n")),
        "{file}"
    );
}

#[test]
fn cross_validation_scores_every_message_once() {
    let e = engine();
    let s = samples(&e);
    let (verdicts, per_fold) = cross_validate(&e, &s, 5);
    assert_eq!(verdicts.len(), s.len());
    assert_eq!(per_fold.len(), 5);
    let right = s
        .iter()
        .zip(&verdicts)
        .filter(|(s, v)| s.spam == (v.score >= e.required))
        .count();
    assert!(right > s.len() * 9 / 10, "{right} of {}", s.len());
    // Every message's Bayes answer came from Bayes trained without its fold.
    assert!(verdicts.iter().all(|v| v.bayes.is_some()));
}

/// The in-memory Bayes of the fitting gives, for a fold, the probability the
/// on-disk store gives after `learn` on the other folds.
#[test]
fn in_memory_bayes_classifies_as_the_store() {
    let e = engine();
    let s = samples(&e);
    let folds = FoldBayes::new(&s, 5);
    let dir = tempfile::tempdir().unwrap();
    let store = crate::bayes::Store::open(dir.path()).unwrap();
    for class in [Class::Ham, Class::Spam] {
        let batch: Vec<(u64, Vec<u64>)> = s
            .iter()
            .filter(|x| x.fold != 2 && x.spam == (class == Class::Spam))
            .map(|x| (x.features.id, x.features.tokens.clone()))
            .collect();
        store.learn(&batch, class == Class::Spam, false).unwrap();
    }
    for x in s.iter().filter(|x| x.fold == 2) {
        let stored = store.classify(&x.features.tokens).unwrap();
        assert!(stored.is_some());
        assert_eq!(stored, folds.classify(&x.features, &[2]));
    }
}
