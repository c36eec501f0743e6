//! `mailgate scores --ham PATH... --spam PATH... [-o FILE | --cv]`: learns the
//! rule scores from a site's own labelled mail (as SpamAssassin's were learned
//! from mass-check results) and writes a scores file for `spam_rules_files`;
//! with `--cv`, measures instead, by nested cross-validation, how the engine
//! does on mail that neither its Bayes nor its scores were fitted on.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use mailgate_spam::{
    BAYES_MIN_LEARNED, Engine, EngineConfig, Levels, Sample, TokenOptions, cross_validate, fit,
    scores_file,
};
use rayon::prelude::*;

use crate::error::{Error, say};
use crate::locate::Invocation;
use crate::scan::{self, Source, SpamCmdError};

#[derive(Debug, Args)]
pub struct ScoresArgs {
    /// Legitimate mail: Maildir folders, directories or mbox files. With
    /// --cv each PATH is reported on its own (easy ham, hard ham...).
    #[arg(long, value_name = "PATH", required = true)]
    pub ham: Vec<PathBuf>,
    /// Spam, as for --ham.
    #[arg(long, value_name = "PATH", required = true)]
    pub spam: Vec<PathBuf>,
    /// How many folds the mail is split into (by a hash of each file's name).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(3..=20))]
    pub folds: u8,
    /// Measure by nested cross-validation instead of writing scores: each
    /// fold is scored by Bayes and scores fitted on the other folds only.
    #[arg(long, conflicts_with = "output")]
    pub cv: bool,
    /// With --cv, also write one JSON object per message (path, class, fold,
    /// score, spam, bayes) to FILE.
    #[arg(long, value_name = "FILE", requires = "cv")]
    pub verdicts: Option<PathBuf>,
    /// With --cv, measure with Bayes tokens beyond SpamAssassin's (osb,
    /// links, mime; comma-separated). The engine itself uses SpamAssassin's.
    #[arg(long, value_name = "LIST", value_parser = TokenOptions::parse, requires = "cv")]
    pub bayes_tokens: Option<TokenOptions>,
    /// Weigh each --ham PATH (and each --spam PATH) alike in the fit,
    /// whatever its size, instead of every message alike.
    #[arg(long)]
    pub balance: bool,
    /// Write the scores file to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// One labelled message.
struct Labelled {
    source: Source,
    /// Which PATH it came from (its index among --ham then --spam).
    class: usize,
    spam: bool,
    fold: usize,
}

/// The fold of a message: a hash of its file name (and its place in an mbox),
/// so that the split does not depend on where the corpus lies or on its order.
pub fn fold_of(source: &Source, folds: usize) -> usize {
    let mut name = source
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(i) = source.index {
        let _ = write!(name, ":{}", i + 1);
    }
    // 64-bit FNV-1a: stable across runs and machines.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % folds as u64) as usize
}

fn class_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub fn run(invocation: &Invocation, args: &ScoresArgs) -> Result<(), Error> {
    let config = invocation.load()?;
    let levels = Levels::from_main_cf(&config);
    let defaults = EngineConfig::from_main_cf(&config);
    let engine_config = EngineConfig {
        required_score: Some(levels.tag2),
        bayes_tokens: args.bayes_tokens.unwrap_or(defaults.bayes_tokens),
        ..defaults
    };
    let engine = Engine::load_for_fit(&engine_config).map_err(SpamCmdError::Engine)?;
    let folds = usize::from(args.folds);
    let classes: Vec<(&PathBuf, bool)> = args
        .ham
        .iter()
        .map(|p| (p, false))
        .chain(args.spam.iter().map(|p| (p, true)))
        .collect();
    let mut mail = Vec::new();
    for (class, (path, spam)) in classes.iter().enumerate() {
        for source in scan::collect(std::slice::from_ref(*path))? {
            let fold = fold_of(&source, folds);
            mail.push(Labelled {
                source,
                class,
                spam: *spam,
                fold,
            });
        }
    }
    // Bayes answers only once it has learned BAYES_MIN_LEARNED of each class;
    // the fitting trains it on all folds but two (--cv) or one.
    let spams = mail.iter().filter(|m| m.spam).count();
    let fewest = spams.min(mail.len() - spams);
    let kept = folds - 1 - usize::from(args.cv);
    if (fewest * kept / folds) < BAYES_MIN_LEARNED as usize {
        say(format_args!(
            "warning: with {fewest} messages of the smaller class, Bayes trained on {kept} \
             folds of {folds} learns fewer than {BAYES_MIN_LEARNED} of it and abstains: \
             the Bayes rules keep their stock scores"
        ));
    }
    // With --balance, each ham PATH weighs as much as the others together
    // (and likewise each spam PATH); without, every message weighs 1.
    let weights: Vec<f64> = classes
        .iter()
        .enumerate()
        .map(|(c, (_, spam))| {
            if !args.balance {
                return 1.0;
            }
            let side = mail.iter().filter(|m| m.spam == *spam).count() as f64;
            let paths = classes.iter().filter(|(_, s)| s == spam).count() as f64;
            let own = mail.iter().filter(|m| m.class == c).count().max(1) as f64;
            side / paths / own
        })
        .collect();
    let samples = mail
        .par_iter()
        .map(|m| {
            let message = scan::read(&m.source)?;
            Ok(Sample {
                features: engine.features(&message),
                spam: m.spam,
                fold: m.fold,
                weight: weights[m.class],
            })
        })
        .collect::<Result<Vec<Sample>, SpamCmdError>>()?;
    let out = if args.cv {
        let (verdicts, _) = cross_validate(&engine, &samples, folds);
        if let Some(file) = &args.verdicts {
            let mut text = String::new();
            for (m, v) in mail.iter().zip(&verdicts) {
                let line = serde_json::json!({
                    "path": m.source.to_string(),
                    "class": class_name(classes[m.class].0),
                    "fold": m.fold,
                    "score": v.score,
                    "spam": v.score >= levels.tag2,
                    "bayes": v.bayes,
                });
                text.push_str(&line.to_string());
                text.push('\n');
            }
            write_file(file, &text)?;
        }
        let scores: Vec<f64> = verdicts.iter().map(|v| v.score).collect();
        report(&mail, &scores, &classes, folds, levels.tag2)
    } else {
        let scores = fit(&engine, &samples, folds);
        let hams = mail.iter().filter(|m| !m.spam).count();
        let about = format!(
            "Rule scores learned by `mailgate scores` from {hams} ham and {} spam\n\
             messages ({folds} folds), for the score sets with Bayes; the sets without\n\
             keep the stock scores. Read after the stock rules: a site's own file in\n\
             spam_rules_files overrides it.",
            mail.len() - hams
        );
        let text = scores_file(&engine, &scores, &about);
        if let Some(file) = &args.output {
            return write_file(file, &text);
        }
        text
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Output)
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| {
        Error::from(SpamCmdError::Read {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Flagged (ham) or caught (spam) per class, per fold and overall.
fn report(
    mail: &[Labelled],
    scores: &[f64],
    classes: &[(&PathBuf, bool)],
    folds: usize,
    level: f64,
) -> String {
    let mut out = format!("nested {folds}-fold cross-validation, spam at {level} or more\n");
    for (c, (path, spam)) in classes.iter().enumerate() {
        let what = if *spam { "caught" } else { "flagged as spam" };
        let mut line = String::new();
        let mut per_fold = Vec::new();
        let (mut n, mut hit) = (0usize, 0usize);
        for k in 0..folds {
            let in_fold: Vec<bool> = mail
                .iter()
                .zip(scores)
                .filter(|(m, _)| m.class == c && m.fold == k)
                .map(|(_, s)| *s >= level)
                .collect();
            let h = in_fold.iter().filter(|&&x| x).count();
            per_fold.push(pct(h, in_fold.len()));
            n += in_fold.len();
            hit += h;
        }
        let _ = writeln!(
            line,
            "{}: {n} messages, {hit} {what} ({}%; folds {})",
            class_name(path),
            pct(hit, n),
            per_fold.join(", ")
        );
        out.push_str(&line);
    }
    out
}

fn pct(part: usize, whole: usize) -> String {
    format!("{:.2}", 100.0 * part as f64 / whole.max(1) as f64)
}
