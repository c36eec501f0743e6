//! The `eval:` tests implemented natively: Bayes first, then cheap ones that carry
//! weight in the stock scores. Any other eval test is listed as unsupported.

use crate::msg::{self, Message};

/// An implemented eval test with its arguments parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Eval {
    Bayes {
        min: f64,
        max: f64,
    },
    FromInWelcomelist,
    FromInBlocklist,
    ToInWelcomelist,
    MissingToHeader,
    MimeHtml,
    MimeHtmlOnly,
    HtmlTest(String),
    HtmlTagExists(String),
    HtmlImageOnly {
        min: f64,
        max: f64,
    },
    HtmlImageRatio {
        min: f64,
        max: f64,
    },
    SubjectAllCaps,
    ParseFlag(String),
    HeaderCount {
        name: String,
        min: f64,
        max: f64,
    },
    BodyLength {
        max: f64,
    },
    Base64Length {
        min: f64,
        max: f64,
    },
    Gtube,
    /// Date header minus Received time within [min, max) hours.
    ShiftedDate {
        min: Option<f64>,
        max: Option<f64>,
    },
}

/// What an eval test may look at besides the message.
pub struct Context<'a> {
    pub msg: &'a Message,
    pub bayes: Option<f64>,
    pub welcomelist_from: &'a [String],
    pub blocklist_from: &'a [String],
    pub welcomelist_to: &'a [String],
}

fn num(args: &[String], i: usize, default: f64) -> f64 {
    args.get(i)
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(default)
}

impl Eval {
    /// The implementation of `function(args)`, if there is one.
    pub fn new(function: &str, args: &[String]) -> Option<Eval> {
        Some(match function {
            "check_bayes" => Eval::Bayes {
                min: num(args, 0, 0.0),
                max: num(args, 1, 1.0),
            },
            "check_from_in_whitelist" | "check_from_in_welcomelist" => Eval::FromInWelcomelist,
            "check_from_in_blacklist" | "check_from_in_blocklist" => Eval::FromInBlocklist,
            "check_to_in_whitelist" | "check_to_in_welcomelist" => Eval::ToInWelcomelist,
            "check_for_missing_to_header" => Eval::MissingToHeader,
            "check_for_mime_html" => Eval::MimeHtml,
            "check_for_mime_html_only" => Eval::MimeHtmlOnly,
            "html_test" => Eval::HtmlTest(args.first()?.clone()),
            "html_tag_exists" => Eval::HtmlTagExists(args.first()?.to_ascii_lowercase()),
            "html_image_only" => Eval::HtmlImageOnly {
                min: num(args, 0, 0.0),
                max: num(args, 1, f64::MAX),
            },
            "html_image_ratio" => Eval::HtmlImageRatio {
                min: num(args, 0, 0.0),
                max: num(args, 1, f64::MAX),
            },
            "subject_is_all_caps" => Eval::SubjectAllCaps,
            "check_msg_parse_flags" => Eval::ParseFlag(args.first()?.clone()),
            "check_header_count_range" => Eval::HeaderCount {
                name: args.first()?.clone(),
                min: num(args, 1, 0.0),
                max: num(args, 2, f64::MAX),
            },
            "check_body_length" => Eval::BodyLength {
                max: num(args, 0, 0.0),
            },
            "check_base64_length" => Eval::Base64Length {
                min: num(args, 0, 0.0),
                max: num(args, 1, f64::MAX),
            },
            "check_gtube" => Eval::Gtube,
            "check_for_shifted_date" => {
                let hours = |i: usize| {
                    let a = args.get(i)?.trim().trim_matches(['\'', '"']);
                    a.parse::<f64>().ok()
                };
                Eval::ShiftedDate {
                    min: hours(0),
                    max: hours(1),
                }
            }
            _ => return None,
        })
    }

    pub fn run(&self, cx: &Context) -> bool {
        let m = cx.msg;
        match self {
            // SpamAssassin's check_bayes: (min, max], with min 0 meaning from 0.
            Eval::Bayes { min, max } => cx
                .bayes
                .is_some_and(|p| (*min == 0.0 || p > *min) && p <= *max),
            Eval::FromInWelcomelist => senders(m).iter().any(|a| listed(a, cx.welcomelist_from)),
            Eval::FromInBlocklist => senders(m).iter().any(|a| listed(a, cx.blocklist_from)),
            Eval::ToInWelcomelist => recipients(m).iter().any(|a| listed(a, cx.welcomelist_to)),
            Eval::MissingToHeader => {
                m.header("to").is_none() && m.header("apparently-to").is_none()
            }
            Eval::MimeHtml => m.parts.iter().any(|p| p.content_type == "text/html"),
            Eval::MimeHtmlOnly => {
                m.parts.iter().any(|p| p.content_type == "text/html")
                    && !m.parts.iter().any(|p| p.content_type == "text/plain")
            }
            Eval::HtmlTest(what) => match what.as_str() {
                "html" => m.html.is_some(),
                _ => false,
            },
            Eval::HtmlTagExists(tag) => m.html.as_ref().is_some_and(|h| h.tags.contains(tag)),
            Eval::HtmlImageOnly { min, max } => m.html.as_ref().is_some_and(|h| {
                let len = h.text.iter().filter(|c| !c.is_ascii_whitespace()).count() as f64;
                h.image_count > 0 && len > *min && len <= *max
            }),
            Eval::HtmlImageRatio { min, max } => m.html.as_ref().is_some_and(|h| {
                if h.image_area == 0 {
                    return false;
                }
                let len = h.text.iter().filter(|c| !c.is_ascii_whitespace()).count() as f64;
                let ratio = len / h.image_area as f64;
                ratio > *min && ratio <= *max
            }),
            Eval::SubjectAllCaps => subject_all_caps(&m.header("subject").unwrap_or_default()),
            Eval::ParseFlag(flag) => match flag.as_str() {
                "missing_head_body_separator" => m.missing_separator,
                _ => false,
            },
            Eval::HeaderCount { name, min, max } => {
                let n = msg::header_values(&m.headers, name).count() as f64;
                n >= *min && n <= *max
            }
            Eval::BodyLength { max } => {
                let body: usize = m.parts.iter().map(|p| p.raw_len).sum();
                (body as f64) <= *max
            }
            Eval::Base64Length { min, max } => m.parts.iter().any(|p| {
                let l = p.base64_longest_line as f64;
                l > 0.0 && l >= *min && l <= *max
            }),
            Eval::Gtube => crate::is_gtube(&m.full),
            Eval::ShiftedDate { min, max } => {
                let diff = crate::dates::date_diff(m) as f64;
                min.is_none_or(|h| diff >= h * 3600.0) && max.is_none_or(|h| diff < h * 3600.0)
            }
        }
    }
}

fn addresses(m: &Message, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| msg::header_values(&m.headers, n))
        .flat_map(|v| {
            let decoded = msg::decode_header(v);
            decoded
                .split(|&c| c == b',')
                .map(|a| String::from_utf8_lossy(&msg::first_addr(a)).to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|a| a.contains('@'))
        .collect()
}

/// The addresses welcomelist_from and blocklist_from are checked against, as SA's
/// all_from_addrs: author, sender and envelope sender.
fn senders(m: &Message) -> Vec<String> {
    addresses(
        m,
        &[
            "from",
            "resent-from",
            "sender",
            "envelope-from",
            "return-path",
        ],
    )
}

fn recipients(m: &Message) -> Vec<String> {
    addresses(m, &["to", "cc", "resent-to", "resent-cc"])
}

/// SpamAssassin list entries are globs: `*` any run, `?` one character.
fn listed(addr: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| glob(p.as_bytes(), addr.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn subject_all_caps(subject: &[u8]) -> bool {
    let s = String::from_utf8_lossy(subject);
    let mut s = s.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let prefix = ["re:", "fwd:", "fw:", "aw:", "antwort:", "sv:"]
            .iter()
            .find(|p| lower.starts_with(*p));
        match prefix {
            Some(p) => s = s[p.len()..].trim_start(),
            None => break,
        }
    }
    if !s.contains(char::is_whitespace) || s.len() < 10 {
        return false;
    }
    let letters: String = s.chars().filter(char::is_ascii_alphabetic).collect();
    !letters.is_empty() && letters == letters.to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"*@example.com", b"joe@example.com"));
        assert!(glob(b"j?e@*", b"joe@x"));
        assert!(!glob(b"*@example.com", b"joe@example.org"));
    }

    #[test]
    fn caps() {
        assert!(subject_all_caps(b"Re: FREE MONEY NOW"));
        assert!(!subject_all_caps(b"FREE"));
        assert!(!subject_all_caps(b"Free money now"));
    }
}
