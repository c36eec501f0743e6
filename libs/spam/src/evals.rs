//! The `eval:` tests implemented natively: Bayes first, then cheap ones that carry
//! weight in the stock scores. Any other eval test is listed as unsupported.

use crate::msg::{self, Message};
use pcre2::bytes::Regex;
use std::sync::LazyLock;

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
    /// Outlook-style Message-ID whose time stamp disagrees with Date and Received.
    OutlookMessageId,
    /// A header with an unexpanded `%VARIABLE` from a bulk mailer's template.
    UnresolvedTemplate,
    /// Seven or more recipients in sorted order.
    SortedRecipients,
    /// Similarity of recipient addresses within [min, max); `None` is unbounded.
    SimilarRecipients {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// The To: address (`address`) or its local part (`user`) in the Subject.
    ToInSubject(String),
    /// From: a yahoo.com address, but no Received header from Yahoo's servers.
    ForgedYahooReceived,
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
            "check_outlook_message_id" => Eval::OutlookMessageId,
            "check_unresolved_template" => Eval::UnresolvedTemplate,
            "sorted_recipients" => Eval::SortedRecipients,
            "similar_recipients" => {
                // SpamAssassin passes the literal word `undef` for an open bound.
                let bound = |i: usize| args.get(i)?.trim().parse::<f64>().ok();
                Eval::SimilarRecipients {
                    min: bound(0),
                    max: bound(1),
                }
            }
            "check_for_to_in_subject" => Eval::ToInSubject(args.first()?.trim().to_string()),
            "check_for_forged_yahoo_received_headers" => Eval::ForgedYahooReceived,
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
            Eval::OutlookMessageId => outlook_message_id(m),
            Eval::UnresolvedTemplate => unresolved_template(m),
            Eval::SortedRecipients => recipient_order(m).0,
            Eval::SimilarRecipients { min, max } => {
                let similar = recipient_order(m).1;
                min.is_none_or(|v| similar >= v) && max.is_none_or(|v| similar < v)
            }
            Eval::ToInSubject(test) => to_in_subject(m, test),
            Eval::ForgedYahooReceived => forged_yahoo_received(m),
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

/// HeaderEval's check_outlook_message_id: Outlook's Message-ID carries a time
/// stamp in 1/429.4967296 s units; ratware copying the format gets it wrong. The
/// stamp must be far (250 units) from both the Date and the Received time.
fn outlook_message_id(m: &Message) -> bool {
    // SpamAssassin's MESSAGEID: these headers in this order, the first non-empty.
    let id = [
        "x-message-id",
        "resent-message-id",
        "x-original-message-id",
        "message-id",
    ]
    .iter()
    .flat_map(|n| msg::header_values(&m.headers, n))
    .map(|v| msg::decode_header(v).trim_ascii_start().to_vec())
    .find(|v| !v.is_empty());
    let Some(token) = id.as_deref().and_then(outlook_time_token) else {
        return false;
    };
    const FUDGE: i64 = 250;
    let expected = |value: Option<Vec<u8>>| {
        let secs = value
            .and_then(|v| crate::dates::parse_rfc822(&String::from_utf8_lossy(&v)))
            .unwrap_or(0);
        (secs as f64 * 0.0023283064365387 + 27111902.8329849) as i64
    };
    if (token - expected(m.header("date"))).abs() < FUDGE {
        return false;
    }
    // As in SpamAssassin, the date is parsed from all Received headers together,
    // which yields the first date found in them.
    (token - expected(m.header("received"))).abs() >= FUDGE
}

/// The time stamp in `<XXXXtttttttt$xxxxxxxx$xxxxxxxx@`, lowercase hex only.
fn outlook_time_token(id: &[u8]) -> Option<i64> {
    let hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let rest = id.strip_prefix(b"<")?;
    if rest.len() < 31
        || !hex(&rest[..12])
        || rest[12] != b'$'
        || !hex(&rest[13..21])
        || rest[21] != b'$'
        || !hex(&rest[22..30])
        || rest.get(30) != Some(&b'@')
    {
        return None;
    }
    i64::from_str_radix(std::str::from_utf8(&rest[4..12]).ok()?, 16).ok()
}

/// HeaderEval's check_unresolved_template: `%[A-Z][A-Z_-]` in a header other than
/// those where a percent sign is normal (addresses, subjects, ids, encodings).
fn unresolved_template(m: &Message) -> bool {
    const EXEMPT: &[&str] = &[
        "x-vms-to",
        "x-uidl",
        "x-face",
        "to",
        "cc",
        "from",
        "subject",
        "references",
        "in-reply-to",
        "message-id",
        "x-message-id",
        "resent-message-id",
        "x-original-message-id",
    ];
    m.headers.iter().any(|h| {
        !EXEMPT.iter().any(|e| h.name.eq_ignore_ascii_case(e))
            && msg::decode_header(&h.raw).windows(3).any(|w| {
                w[0] == b'%'
                    && w[1].is_ascii_uppercase()
                    && matches!(w[2], b'A'..=b'Z' | b'_' | b'-')
            })
    })
}

/// The recipient addresses as written (case kept), To then Cc, then Bcc when
/// those give fewer than five: SpamAssassin's input to its recipient tests.
fn recipient_list(m: &Message) -> Vec<Vec<u8>> {
    let from = |names: &[&str]| -> Vec<Vec<u8>> {
        names
            .iter()
            .flat_map(|n| msg::header_values(&m.headers, n))
            .flat_map(|v| {
                split_addresses(&msg::decode_header(v))
                    .into_iter()
                    .map(msg::first_addr)
                    .filter(|a| a.contains(&b'@'))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut all = from(&["to", "cc"]);
    if all.len() < TOCC_SIMILAR_COUNT {
        all.extend(from(&["bcc"]));
    }
    all
}

/// Splits an address list at commas outside quotes, comments and angle brackets.
fn split_addresses(v: &[u8]) -> Vec<&[u8]> {
    let (mut out, mut start, mut quoted, mut depth, mut angle) =
        (Vec::new(), 0, false, 0u32, false);
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            b'<' if !quoted && depth == 0 => angle = true,
            b'>' if !quoted && depth == 0 => angle = false,
            b',' if !quoted && depth == 0 && !angle => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&v[start.min(v.len())..]);
    out
}

const TOCC_SORTED_COUNT: usize = 7;
const TOCC_SIMILAR_COUNT: usize = 5;
const TOCC_SIMILAR_LENGTH: usize = 2;

/// HeaderEval's _check_recipients: whether the recipients are sorted, and how
/// similar they are (share of address pairs with the same first two characters
/// of the local part, plus pairs on different hosts starting alike).
fn recipient_order(m: &Message) -> (bool, f64) {
    // Adjacent duplicates (case-insensitive) count once; at most 256 addresses.
    let mut address: Vec<Vec<u8>> = Vec::new();
    for a in recipient_list(m) {
        if address.last().is_none_or(|p| !p.eq_ignore_ascii_case(&a)) {
            address.push(a);
        }
        if address.len() == 256 {
            break;
        }
    }
    let sorted = address.len() >= TOCC_SORTED_COUNT && address.is_sorted();
    if address.len() < TOCC_SIMILAR_COUNT {
        return (sorted, 0.0);
    }
    let prefix = |s: &[u8]| s[..s.len().min(TOCC_SIMILAR_LENGTH)].to_vec();
    let fqhn: Vec<&[u8]> = address
        .iter()
        .map(|a| {
            a.iter()
                .position(|&c| c == b'@')
                .map_or(&[][..], |p| &a[p + 1..])
        })
        .collect();
    let (mut hits, mut combinations) = (0u64, 0u64);
    for i in 0..address.len() {
        for j in i + 1..address.len() {
            if prefix(&address[i]) == prefix(&address[j]) {
                hits += 1;
            }
            if prefix(fqhn[i]) == prefix(fqhn[j]) && fqhn[i] != fqhn[j] {
                hits += 1;
            }
            combinations += 1;
        }
    }
    (sorted, hits as f64 / combinations as f64)
}

/// HeaderEval's check_for_to_in_subject: the first To: address, or its local
/// part (`user`) as the whole subject, after a Re:/Fw: and one word, or as a
/// salutation ("joe: ...", "..., joe!").
fn to_in_subject(m: &Message, test: &str) -> bool {
    let Some(to) = msg::header_values(&m.headers, "to")
        .flat_map(|v| {
            split_addresses(&msg::decode_header(v))
                .into_iter()
                .map(msg::first_addr)
                .collect::<Vec<_>>()
        })
        .find(|a| !a.is_empty())
    else {
        return false;
    };
    let subject = m.header("subject").unwrap_or_default();
    let quoted = |b: &[u8]| pcre2_quote(&String::from_utf8_lossy(b));
    let user = &to[..to.iter().position(|&c| c == b'@').unwrap_or(to.len())];
    let needle = if test == "address" { &to[..] } else { user };
    // Every pattern below needs the text itself in the subject; most subjects lack
    // it, and then no regex need be compiled for this message.
    if !contains_ignoring_ascii_case(&subject, needle) {
        return false;
    }
    let pattern = match test {
        "address" => format!(r"(?i)\b{}\b", quoted(&to)),
        "user" => {
            let u = quoted(user);
            format!(
                r"(?i)^(?:(?:re|fw):\s*(?:\w+\s+)?{u}$|(?-i:{u})\s*[,:;!?-](?:$|\s)|{u}$|,\s*{u}[,:;!?-]$)"
            )
        }
        _ => return false,
    };
    pcre2::bytes::Regex::new(&pattern).is_ok_and(|re| re.is_match(&subject).unwrap_or(false))
}

fn contains_ignoring_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// HeaderEval's gated_through_received_hdr_remover: mail whose Received headers
/// were stripped by a list server (ezmlm, MSN groups), or that has none, cannot be
/// judged by its Received headers.
fn received_headers_removed(m: &Message) -> bool {
    static EZMLM: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?m)^contact \S+@\S+; run by ezmlm$").ok());
    static DELIVERED: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?m)^mailing list \S+@\S+").ok());
    static QMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"qmail \d+ invoked (?:from network|by .{3,20})\); \d+ ... \d+").ok()
    });
    static MSN_GROUPS: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"from groups\.msn\.com \(\S+\.msn\.com ").ok());
    let Some(rcvd) = m.header("received") else {
        return true;
    };
    let list = m.header("mailing-list").unwrap_or_default();
    let dlto = m.header("delivered-to").unwrap_or_default();
    if matches(&EZMLM, &list) && matches(&DELIVERED, &dlto) && matches(&QMAIL, &rcvd) {
        return true;
    }
    matches(&MSN_GROUPS, &rcvd)
}

fn matches(re: &LazyLock<Option<Regex>>, text: &[u8]) -> bool {
    re.as_ref()
        .is_some_and(|r| r.is_match(text).unwrap_or(false))
}

/// HeaderEval's check_for_forged_yahoo_received_headers.
fn forged_yahoo_received(m: &Message) -> bool {
    static FROM: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?i)\byahoo\.com$").ok());
    static REPLY: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)@reply\.yahoo\.com$").ok());
    static TRUSTED: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r" rdns=\S+\.yahoo\.com ").ok());
    static UNTRUSTED: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"^[^\]]+ rdns=\S+\.yahoo\.com ").ok());
    // Received headers Yahoo's own web mail, SMTP and groups servers write.
    static GENUINE: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(concat!(
            r"by web\S+\.mail\S*\.yahoo\.com via HTTP",
            r"|by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP",
            r"|by smtp\S+\.yahoo\.com with SMTP",
            r"|from \[(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP",
            r"|by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+",
        ))
        .ok()
    });
    static BULK: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"\bmailer\d+\.bulk\.scd\.yahoo\.com\b").ok());

    let from = msg::header_values(&m.headers, "from")
        .next()
        .map(|v| msg::first_addr(&msg::decode_header(v)))
        .unwrap_or_default();
    if !matches(&FROM, &from) {
        return false;
    }
    let mut rcvd = m.header("received").unwrap_or_default();
    let nonempty = |n: &str| m.header(n).is_some_and(|v| !v.is_empty());
    if nonempty("resent-from") && nonempty("resent-to") && nonempty("x-received") {
        rcvd = m.header("x-received").unwrap_or_default();
    }
    // SpamAssassin collapses all whitespace to single spaces first.
    let rcvd: Vec<u8> = rcvd
        .split(|c| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(&b' ');
    if received_headers_removed(m) {
        return false;
    }
    let trusted = m
        .relays
        .pseudo_header("X-Spam-Relays-Trusted")
        .unwrap_or_default();
    let untrusted = m
        .relays
        .pseudo_header("X-Spam-Relays-Untrusted")
        .unwrap_or_default();
    if matches(&TRUSTED, &trusted) || matches(&UNTRUSTED, &untrusted) || matches(&GENUINE, &rcvd) {
        return false;
    }
    !(matches(&BULK, &rcvd) && matches(&REPLY, &from))
}

/// Perl's `\Q...\E`: every character but letters, digits and `_` escaped.
fn pcre2_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c.is_ascii() {
            out.push('\\');
        }
        out.push(c);
    }
    out
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

    fn parse(text: &str) -> Message {
        Message::parse(text.replace('\n', "\r\n").as_bytes())
    }

    #[test]
    fn outlook_message_id() {
        // Token for 2002-08-14 12:00:00 UTC is about 0x3c1e_2a2c; this one is far off.
        let forged = "Message-ID: <0000deadbeef$01234567$89abcdef@example.com>\n\
                      Date: Wed, 14 Aug 2002 12:00:00 +0000\n\
                      Received: from x by y; Wed, 14 Aug 2002 12:00:00 +0000\n\n\
                      hi\n";
        assert!(super::outlook_message_id(&parse(forged)));
        let secs = crate::dates::parse_rfc822("Wed, 14 Aug 2002 12:00:00 +0000").unwrap();
        let token = (secs as f64 * 0.0023283064365387 + 27111902.8329849) as i64;
        let genuine = forged.replace("deadbeef", &format!("{token:08x}"));
        assert!(!super::outlook_message_id(&parse(&genuine)));
        assert!(!super::outlook_message_id(&parse(
            "Message-ID: <abc@example.com>\n\nhi\n"
        )));
        assert!(!super::outlook_message_id(&parse(
            "Message-ID: <0000\n\nhi\n"
        )));
    }

    #[test]
    fn unresolved_template() {
        assert!(super::unresolved_template(&parse(
            "X-Mailer: %MAILER_NAME\nSubject: hi\n\nbody\n"
        )));
        assert!(!super::unresolved_template(&parse(
            "Subject: 50%OFF\nTo: %JOE <joe@x>\n\nbody\n"
        )));
        assert!(!super::unresolved_template(&parse(
            "X-Rate: 100%ok\n\nbody\n"
        )));
    }

    #[test]
    fn recipients() {
        let sorted = "To: a1@x.com, b2@y.com, c3@z.com, \"Dee, D\" <d4@w.com>\nCc: e5@v.com, f6@u.com, g7@t.com\n\nhi\n";
        let (is_sorted, similar) = super::recipient_order(&parse(sorted));
        assert!(is_sorted);
        assert_eq!(similar, 0.0);
        let unsorted = sorted.replace("a1@", "z1@");
        assert!(!super::recipient_order(&parse(&unsorted)).0);
        // Five of a kind: every pair shares "jo" and a different host starting "ex".
        let similar = "To: jo1@ex1.com, jo2@ex2.com, jo3@ex3.com, jo4@ex4.com, jo5@ex5.com\n\nhi\n";
        let (_, ratio) = super::recipient_order(&parse(similar));
        assert_eq!(ratio, 2.0);
        let eval = Eval::new("similar_recipients", &["0.65".into(), "undef".into()]).unwrap();
        assert_eq!(
            eval,
            Eval::SimilarRecipients {
                min: Some(0.65),
                max: None
            }
        );
        // Fewer than five recipients: not assessed.
        assert_eq!(
            super::recipient_order(&parse("To: a@b, c@d\n\nhi\n")),
            (false, 0.0)
        );
    }

    #[test]
    fn to_in_subject() {
        let m = |subject: &str| {
            parse(&format!(
                "To: Joe <joe@example.com>\nSubject: {subject}\n\nhi\n"
            ))
        };
        assert!(super::to_in_subject(&m("joe, your account"), "user"));
        assert!(super::to_in_subject(&m("Re: hello joe"), "user"));
        assert!(super::to_in_subject(&m("joe"), "user"));
        assert!(!super::to_in_subject(&m("Special offer for joe"), "user"));
        assert!(!super::to_in_subject(&m("Joe, your account"), "user"));
        assert!(!super::to_in_subject(&m("joey is here"), "user"));
        assert!(super::to_in_subject(
            &m("mail for joe@example.com today"),
            "address"
        ));
        assert!(!super::to_in_subject(
            &parse("To: (a.b*c+)@x\nSubject: (a.b*c+)\n\nhi\n"),
            "nonsense"
        ));
        assert!(super::to_in_subject(
            &parse("To: a.b*c+@x\nSubject: a.b*c+\n\nhi\n"),
            "user"
        ));
    }

    #[test]
    fn forged_yahoo() {
        let forged = "Received: from [10.1.2.3] by mx.example.net with SMTP; Wed, 14 Aug 2002 12:00:00 +0000\n\
                      From: Joe <joe@yahoo.com>\n\nhi\n";
        assert!(super::forged_yahoo_received(&parse(forged)));
        let genuine = "Received: from [10.1.2.3] by web12.mail.yahoo.com via HTTP; Wed, 14 Aug 2002 12:00:00 +0000\n\
                       From: Joe <joe@yahoo.com>\n\nhi\n";
        assert!(!super::forged_yahoo_received(&parse(genuine)));
        // Not from Yahoo, or no Received headers to judge by.
        assert!(!super::forged_yahoo_received(&parse(
            &forged.replace("yahoo.com>", "example.com>")
        )));
        assert!(!super::forged_yahoo_received(&parse(
            "From: joe@yahoo.com\n\nhi\n"
        )));
    }
}
