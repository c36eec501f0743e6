//! The texts header rules read, SpamAssassin's `get()`: pseudo-headers
//! (`ALL`, `ToCc`, `MESSAGEID`, `EnvelopeFrom`, `X-Spam-Relays-*`), the
//! `:raw`/`:addr`/`:name` forms, instances joined by newlines. The rules' header
//! specifications are numbered once when the engine is built, and each message's
//! values are computed at most once per specification.

use crate::evals;
use crate::msg::{self, Message};
use crate::rules::{HeaderForm, HeaderSpec, Kind, Rule, Test};

/// The distinct header specifications of `header` rules, and for each rule the
/// number of its specification.
pub(crate) fn number(rules: &[Rule]) -> (Vec<HeaderSpec>, Vec<Option<usize>>) {
    let mut specs: Vec<HeaderSpec> = Vec::new();
    let mut of_rule = vec![None; rules.len()];
    for (i, r) in rules.iter().enumerate() {
        let Test::Regex {
            header: Some(spec), ..
        } = &r.test
        else {
            continue;
        };
        if r.kind != Kind::Header {
            continue;
        }
        let id = match specs.iter().position(|s| s == spec) {
            Some(id) => id,
            None => {
                specs.push(spec.clone());
                specs.len() - 1
            }
        };
        of_rule[i] = Some(id);
    }
    (specs, of_rule)
}

/// Header values as rules read them, computed once per message and specification.
pub(crate) struct HeaderCache<'a> {
    specs: &'a [HeaderSpec],
    values: Vec<Option<Option<Vec<u8>>>>,
}

impl<'a> HeaderCache<'a> {
    pub(crate) fn new(specs: &'a [HeaderSpec]) -> HeaderCache<'a> {
        HeaderCache {
            specs,
            values: vec![None; specs.len()],
        }
    }

    /// The value of specification `id`; `None` when the message has no such header.
    pub(crate) fn get(&mut self, msg: &Message, id: usize) -> Option<&[u8]> {
        let specs = self.specs;
        self.values[id]
            .get_or_insert_with(|| header_value(msg, &specs[id]))
            .as_deref()
    }
}

/// `exists:NAME`; the pseudo-headers (ToCc, MESSAGEID, ...) exist when one of
/// the headers behind them does, as SpamAssassin's `get` returns a value.
pub(crate) fn header_exists(msg: &Message, name: &str) -> bool {
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

/// The value a header rule matches.
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
