//! A cheap test before the regexes, as SpamAssassin's `sa-compile` has one: the
//! literal strings without which a rule's regex cannot match, searched for all
//! rules at once in one Aho-Corasick pass over the text. A rule none of whose
//! strings occur cannot hit, so its regex is not run; most body rules are skipped
//! this way on most mail.
//!
//! The pass may only ever say "maybe" too often, never "no" wrongly: strings are
//! compared ignoring ASCII case (a superset of what a case-sensitive regex needs),
//! and a pattern whose meaning might differ between the parser used here
//! (regex-syntax) and PCRE2 gets no strings and always runs. Lookarounds, which
//! regex-syntax lacks, are removed first: they match no text, so the strings the
//! rest needs are needed by the whole. Other constructs PCRE2 has and
//! regex-syntax lacks (backreferences, possessive quantifiers, `\Q`, ...) make the
//! parse fail; `/x` patterns are left alone because the two disagree on white space
//! inside a character class there.

use aho_corasick::AhoCorasick;
use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::perlre::Literal;

/// A string set is a "one of these must occur" fact; sets larger than this cost
/// more than they save and are given up.
const MAX_STRINGS: usize = 64;
/// Strings shorter than this occur in almost every message.
const MIN_LEN: usize = 3;
/// A character class of at most this many bytes (ignoring case) is expanded.
const MAX_CLASS: usize = 4;

type Set = Vec<Vec<u8>>;

/// Strings, ASCII-lowercased, one of which every match of the pattern contains;
/// `None` when no useful set can be proved.
pub fn required_strings(literal: &Literal) -> Option<Set> {
    if literal.flags.contains('x') {
        return None;
    }
    let hir = ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(literal.flags.contains('i'))
        .multi_line(literal.flags.contains('m'))
        .dot_matches_new_line(literal.flags.contains('s'))
        .build()
        .parse(&without_lookarounds(&literal.pattern)?)
        .ok()?;
    let set = best(facts(&hir))?;
    (min_len(&set) >= MIN_LEN).then_some(set)
}

/// The pattern without its lookahead and lookbehind groups, which match no text;
/// `None` when a group is not closed.
fn without_lookarounds(pattern: &str) -> Option<String> {
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if [&b"(?="[..], b"(?!", b"(?<=", b"(?<!"]
            .iter()
            .any(|p| rest.starts_with(p))
        {
            i = group_end(bytes, i)?;
            continue;
        }
        let next = token_end(bytes, i)?;
        out.push_str(pattern.get(i..next)?);
        i = next;
    }
    Some(out)
}

/// Where the group opening at `open` ends, just past its `)`.
fn group_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i = token_end(bytes, i)?;
    }
    None
}

/// Where the token at `i` ends: an escape is two bytes, a character class runs to
/// its closing `]` (a `]` first in the class is a member), anything else is one.
fn token_end(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes[i] {
        b'\\' => (i + 2 <= bytes.len()).then_some(i + 2),
        b'[' => {
            let mut j = i + 1;
            if bytes.get(j) == Some(&b'^') {
                j += 1;
            }
            if bytes.get(j) == Some(&b']') {
                j += 1;
            }
            while *bytes.get(j)? != b']' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            Some(j + 1)
        }
        _ => Some(i + 1),
    }
}

/// What is known of the strings a piece of a pattern matches.
struct Facts {
    /// All of them, when they are few.
    exact: Option<Set>,
    /// A set one of which each of them contains.
    required: Option<Set>,
}

fn facts(hir: &Hir) -> Facts {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => exact(vec![Vec::new()]),
        HirKind::Literal(lit) => exact(vec![lit.0.to_ascii_lowercase()]),
        HirKind::Class(class) => match class_bytes(class) {
            Some(bytes) => exact(bytes.into_iter().map(|b| vec![b]).collect()),
            None => unknown(),
        },
        HirKind::Capture(c) => facts(&c.sub),
        HirKind::Repetition(rep) => {
            let sub = facts(&rep.sub);
            if rep.min == 0 {
                // Optional: only `x?` keeps a (widened) exact set.
                let optional = match (rep.max, sub.exact) {
                    (Some(1), Some(e)) => union(e, vec![Vec::new()]),
                    _ => None,
                };
                return Facts {
                    exact: optional,
                    required: None,
                };
            }
            let repeated = (rep.max == Some(rep.min) && rep.min <= 4)
                .then(|| {
                    let one = sub.exact.as_ref()?;
                    (1..rep.min).try_fold(one.clone(), |acc, _| cross(&acc, one))
                })
                .flatten();
            Facts {
                exact: repeated,
                required: best(sub),
            }
        }
        HirKind::Concat(children) => concat(children),
        HirKind::Alternation(children) => {
            let all: Vec<Facts> = children.iter().map(facts).collect();
            let exact = all
                .iter()
                .map(|f| f.exact.clone())
                .try_fold(Vec::new(), |acc, e| union(acc, e?));
            let required = all
                .into_iter()
                .map(best)
                .try_fold(Vec::new(), |acc, r| union(acc, r?));
            Facts { exact, required }
        }
    }
}

/// A concatenation matches each child's string in turn: runs of children with
/// exact sets multiply into longer strings; a child without one ends the run.
fn concat(children: &[Hir]) -> Facts {
    let mut run: Set = vec![Vec::new()];
    let mut whole_is_exact = true;
    let mut required: Option<Set> = None;
    for child in children {
        // `x{m,}`: a match begins with m strings of x and ends with one, so the run
        // continues into the first m and restarts from the last.
        if let HirKind::Repetition(rep) = child.kind()
            && rep.min >= 1
            && rep.max != Some(rep.min)
            && rep.min <= 4
            && let Some(one) = facts(&rep.sub).exact
        {
            let first = (1..rep.min).try_fold(one.clone(), |acc, _| cross(&acc, &one));
            let before = first.and_then(|f| cross(&run, &f));
            required = better(required, before);
            run = one;
            whole_is_exact = false;
            continue;
        }
        let f = facts(child);
        required = better(required, f.required);
        match f.exact {
            Some(e) => match cross(&run, &e) {
                Some(longer) => run = longer,
                None => {
                    required = better(required, Some(std::mem::replace(&mut run, e)));
                    whole_is_exact = false;
                }
            },
            None => {
                required = better(
                    required,
                    Some(std::mem::replace(&mut run, vec![Vec::new()])),
                );
                whole_is_exact = false;
            }
        }
    }
    if whole_is_exact {
        Facts {
            exact: Some(run),
            required,
        }
    } else {
        Facts {
            exact: None,
            required: better(required, Some(run)),
        }
    }
}

fn exact(set: Set) -> Facts {
    Facts {
        exact: Some(set),
        required: None,
    }
}

fn unknown() -> Facts {
    Facts {
        exact: None,
        required: None,
    }
}

/// The bytes of a small class, lowercased and without repeats.
fn class_bytes(class: &Class) -> Option<Vec<u8>> {
    let ranges: Vec<(u32, u32)> = match class {
        Class::Bytes(c) => c
            .ranges()
            .iter()
            .map(|r| (u32::from(r.start()), u32::from(r.end())))
            .collect(),
        Class::Unicode(c) => c
            .ranges()
            .iter()
            .map(|r| (u32::from(r.start()), u32::from(r.end())))
            .collect(),
    };
    let mut bytes = Vec::new();
    for (start, end) in ranges {
        if end - start >= 2 * MAX_CLASS as u32 || end > 0xff {
            return None;
        }
        for b in start..=end {
            let b = u8::try_from(b).ok()?.to_ascii_lowercase();
            if !bytes.contains(&b) {
                bytes.push(b);
            }
        }
    }
    (bytes.len() <= MAX_CLASS).then_some(bytes)
}

/// Every string of `a` followed by every string of `b`; `None` when too many.
fn cross(a: &Set, b: &Set) -> Option<Set> {
    if a.len() * b.len() > MAX_STRINGS {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let s = [x.as_slice(), y.as_slice()].concat();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Some(out)
}

/// The strings of both; `None` when too many.
fn union(mut set: Set, more: Set) -> Option<Set> {
    for s in more {
        if !set.contains(&s) {
            set.push(s);
        }
    }
    (set.len() <= MAX_STRINGS).then_some(set)
}

fn min_len(set: &Set) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

/// The more selective of two sets: longer shortest string, then fewer strings.
fn better(a: Option<Set>, b: Option<Set>) -> Option<Set> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let key = |s: &Set| (min_len(s), std::cmp::Reverse(s.len()));
            Some(if key(&b) > key(&a) { b } else { a })
        }
        (a, b) => a.or(b).filter(|s| min_len(s) > 0),
    }
}

/// The best set a piece offers.
fn best(f: Facts) -> Option<Set> {
    better(f.exact.filter(|e| min_len(e) > 0), f.required)
}

/// The strings of many rules, searched for together.
#[derive(Debug)]
pub struct Prefilter {
    automaton: AhoCorasick,
    /// For each string, the rules (by the caller's index) that need it.
    rules_of_string: Vec<Vec<usize>>,
}

impl Prefilter {
    /// Builds the search for `(rule, strings)` pairs; `None` when there are none.
    pub fn new(rules: Vec<(usize, Set)>) -> Option<Prefilter> {
        let mut strings: Vec<Vec<u8>> = Vec::new();
        let mut rules_of_string: Vec<Vec<usize>> = Vec::new();
        for (rule, set) in rules {
            for s in set {
                match strings.iter().position(|x| *x == s) {
                    Some(p) => rules_of_string[p].push(rule),
                    None => {
                        strings.push(s);
                        rules_of_string.push(vec![rule]);
                    }
                }
            }
        }
        if strings.is_empty() {
            return None;
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&strings)
            .ok()?;
        Some(Prefilter {
            automaton,
            rules_of_string,
        })
    }

    /// Marks in `possible` every rule one of whose strings occurs in `text`.
    pub fn mark(&self, text: &[u8], possible: &mut [bool]) {
        for m in self.automaton.find_overlapping_iter(text) {
            for &rule in &self.rules_of_string[m.pattern().as_usize()] {
                possible[rule] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pattern: &str, flags: &str) -> Option<Vec<String>> {
        let lit = Literal {
            pattern: pattern.into(),
            flags: flags.into(),
        };
        required_strings(&lit).map(|set| {
            let mut v: Vec<String> = set
                .into_iter()
                .map(|s| String::from_utf8(s).unwrap())
                .collect();
            v.sort();
            v
        })
    }

    #[test]
    fn literals_alternations_and_classes() {
        assert_eq!(strings("viagra", ""), Some(vec!["viagra".into()]));
        assert_eq!(strings("ViAgRa", "i"), Some(vec!["viagra".into()]));
        assert_eq!(
            strings(r"\b(?:cheap|free) pills\b", ""),
            Some(vec!["cheap pills".into(), "free pills".into()])
        );
        assert_eq!(
            strings("v[i1]agra", ""),
            Some(vec!["v1agra".into(), "viagra".into()])
        );
        // The longest piece of a concatenation interrupted by a wide class.
        assert_eq!(
            strings(r"click\s+here\s+to\s+unsubscribe", "i"),
            Some(vec!["unsubscribe".into()])
        );
        assert_eq!(
            strings(r"(?:buy|order)\s+(?:now|today)", ""),
            Some(vec!["buy".into(), "order".into()])
        );
        assert_eq!(strings("(?:abc)+x", ""), Some(vec!["abcx".into()]));
        assert_eq!(strings("xlot+ery", ""), Some(vec!["xlot".into()]));
        // Lookarounds match no text and are ignored.
        assert_eq!(
            strings(r"\bI won(?!\xe2\x80\x99t)(?![`'\x92]t)\b", "i"),
            Some(vec!["i won".into()])
        );
        assert_eq!(
            strings(r"(?<![(a])price(?=[)])", ""),
            Some(vec!["price".into()])
        );
        assert_eq!(strings("ab(?:c)?", ""), None, "ab is too short");
        assert_eq!(
            strings("abc(?:de)?", ""),
            Some(vec!["abc".into(), "abcde".into()])
        );
    }

    #[test]
    fn nothing_proved_means_the_rule_always_runs() {
        assert_eq!(strings(r"\d{5,}", ""), None);
        assert_eq!(strings("(?:abc)*", ""), None);
        assert_eq!(strings("abc|.", ""), None);
        assert_eq!(strings("a.c", ""), None);
        // PCRE2-only syntax fails to parse here: no strings.
        assert_eq!(strings(r"(abc)\1", ""), None);
        assert_eq!(strings(r"\Qa.b\E", ""), None);
        assert_eq!(strings("abc++", ""), None);
        // /x: class white space means different things to the two parsers.
        assert_eq!(strings("[a b]cde", "x"), None);
    }

    #[test]
    fn marks_rules_whose_strings_occur_ignoring_case() {
        let p = Prefilter::new(vec![
            (0, vec![b"viagra".to_vec()]),
            (2, vec![b"unsubscribe".to_vec(), b"viagra".to_vec()]),
            (3, vec![b"lottery".to_vec()]),
        ])
        .unwrap();
        let mut possible = [false; 4];
        p.mark(b"Buy VIAGRA now", &mut possible);
        assert_eq!(possible, [true, false, true, false]);
        assert!(Prefilter::new(Vec::new()).is_none());
    }
}
