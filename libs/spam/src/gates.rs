//! Which rules' regexes need to run for a message. A regex rule whose required
//! strings (prefilter.rs) do not occur in the text it reads cannot match, so it
//! is not run: one Aho-Corasick pass per kind of text (body paragraphs, raw body
//! lines, the full message, URIs) and one per header specification (the value a
//! `header` rule reads) marks the rules that may.

use crate::header_text::HeaderCache;
use crate::msg::Message;
use crate::prefilter::Prefilter;
use crate::rules::{Kind, Rule, Test};

/// The prefilters of an engine's rules.
#[derive(Debug)]
pub(crate) struct Gates {
    texts: Vec<(Kind, Prefilter)>,
    headers: Vec<HeaderGate>,
    /// Whether a rule's regex runs only when its prefilter found its strings.
    pub(crate) gated: Vec<bool>,
}

/// The prefilter of the `header` rules reading one header specification.
#[derive(Debug)]
struct HeaderGate {
    spec: usize,
    filter: Prefilter,
    /// The gated rules with an `[if-unset: ...]` text: when the header is
    /// missing they read that text, which the filter does not see, so they run.
    if_unset: Vec<usize>,
}

impl Gates {
    /// The prefilters of `rules`; `header_of` numbers each header rule's
    /// specification (header_text::number).
    pub(crate) fn new(rules: &[Rule], header_of: &[Option<usize>]) -> Gates {
        let mut gated = vec![false; rules.len()];
        let mut texts = Vec::new();
        for kind in [Kind::Body, Kind::RawBody, Kind::Full, Kind::Uri] {
            let strings = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.kind == kind)
                .filter_map(|(i, r)| Some((i, required(r)?.to_vec())))
                .collect();
            if let Some(filter) = build(strings, &mut gated) {
                texts.push((kind, filter));
            }
        }
        let specs = header_of.iter().flatten().max().map_or(0, |m| m + 1);
        let mut headers = Vec::new();
        for spec in 0..specs {
            let members: Vec<usize> = (0..rules.len())
                .filter(|&i| header_of[i] == Some(spec) && required(&rules[i]).is_some())
                .collect();
            let strings = members
                .iter()
                .filter_map(|&i| Some((i, required(&rules[i])?.to_vec())))
                .collect();
            if let Some(filter) = build(strings, &mut gated) {
                let if_unset = members
                    .into_iter()
                    .filter(|&i| {
                        matches!(
                            &rules[i].test,
                            Test::Regex {
                                if_unset: Some(_),
                                ..
                            }
                        )
                    })
                    .collect();
                headers.push(HeaderGate {
                    spec,
                    filter,
                    if_unset,
                });
            }
        }
        Gates {
            texts,
            headers,
            gated,
        }
    }

    /// Which rules may hit: all but the gated ones whose strings the prefilters
    /// did not find in the text the rule reads.
    pub(crate) fn possible(&self, msg: &Message, headers: &mut HeaderCache) -> Vec<bool> {
        let mut possible: Vec<bool> = self.gated.iter().map(|g| !g).collect();
        for (kind, filter) in &self.texts {
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
        for gate in &self.headers {
            match headers.get(msg, gate.spec) {
                Some(value) => gate.filter.mark(value, &mut possible),
                None => gate.if_unset.iter().for_each(|&i| possible[i] = true),
            }
        }
        possible
    }
}

/// A regex rule's required strings.
fn required(rule: &Rule) -> Option<&[Vec<u8>]> {
    match &rule.test {
        Test::Regex {
            required: Some(s), ..
        } => Some(s),
        _ => None,
    }
}

/// The prefilter of `(rule, strings)` pairs, marking those rules gated.
fn build(strings: Vec<(usize, Vec<Vec<u8>>)>, gated: &mut [bool]) -> Option<Prefilter> {
    let rules: Vec<usize> = strings.iter().map(|(i, _)| *i).collect();
    let filter = Prefilter::new(strings)?;
    rules.into_iter().for_each(|i| gated[i] = true);
    Some(filter)
}
