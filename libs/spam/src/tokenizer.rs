//! SpamAssassin's Bayes tokenizer (Plugin/Bayes.pm `tokenize`): the Subject and
//! the visible body text with body breakouts and decompositions, the URI list, and
//! the headers SpamAssassin keeps for Bayes, each with its pre-chewing (address
//! headers broken into name, user and domain tokens, Message-IDs split at likely
//! ID boundaries, only the last two Received headers with IDs and dates removed
//! and IPs cut to /24, Content-Type boundaries reduced to their shape), the relay
//! pseudo-headers, and SpamAssassin's header name compression. Headers that only
//! say which list or filter carried the mail (`List-*`, `X-Spam-*`, ...) are left
//! out as SpamAssassin leaves them out, along with `bayes_ignore_header` names.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use pcre2::bytes::{Captures, Regex};

use crate::msg::{Header, Message, decode_header};
use crate::relays;

/// Longer tokens are shortened to a "sk:" skip token unless they contain '*'.
const MAX_TOKEN_LENGTH: usize = 15;
/// SpamAssassin reads at most this much of each text (body_part_scan_size).
const BODY_SCAN_SIZE: usize = 50_000;
/// Per-source token caps, as SpamAssassin's.
const MAX_BODY_TOKENS: usize = 50_000;
const MAX_URI_TOKENS: usize = 10_000;
const MAX_HEADER_TOKENS: usize = 10_000;

/// SpamAssassin's English stop words (60_bayes_stopwords.cf `bayes_stopword_en`,
/// matched whole and case-insensitively).
const STOP_WORDS: &[&str] = &[
    "able",
    "already",
    "all",
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
    "have",
    "has",
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
    "much",
    "need",
    "not",
    "now",
    "number",
    "off",
    "only",
    "one",
    "out",
    "own",
    "people",
    "place",
    "right",
    "same",
    "see",
    "such",
    "that",
    "this",
    "through",
    "the",
    "time",
    "using",
    "web",
    "where",
    "why",
    "with",
    "without",
    "world",
    "work",
    "year",
    "years",
    "you",
    "you're",
    "your",
];

/// Headers SpamAssassin never tokenizes (Bayes.pm `$IGNORED_HDRS`), lowercase.
/// List headers are among them: a list that carries spam discussion would
/// otherwise become a sign of ham, and a list that carries spam a sign of spam.
const IGNORED_HEADERS: &[&str] = &[
    "sender",
    "x-sender",
    "delivered-to",
    "delivery-date",
    "envelope-to",
    "x-envelope-to",
    "x-mime-autoconverted",
    "x-converted-to-plain-text",
    "subject",
    "date",
    "x-list",
    "mailing-list",
    "x-mailing-list",
    "x-unsub",
    "x-unsubscribe",
    "x-mailman-version",
    "x-beenthere",
    "x-loop",
    "mail-followup-to",
    "x-egroups-return",
    "x-egroups-from",
    "x-mdmailing-list",
    "x-xemacs-list",
    "x-sympa-to",
    "resent-from",
    "resent-to",
    "resent-date",
    "x-resent-from",
    "x-resent-to",
    "x-resent-date",
    "original-from",
    "original-to",
    "original-date",
    "x-original-from",
    "x-original-to",
    "x-original-date",
    "x-mailscanner",
    "x-mailscanner-spamcheck",
    "x-antispam",
    "x-rbl-warning",
    "x-mdaemon-deliver-to",
    "x-virus-scanned",
    "x-mass-check-id",
    "x-pyzor",
    "x-filtered-by",
    "x-scanned-by",
    "x-scanner",
    "x-ap-spam-score",
    "x-ap-spam-status",
    "x-ripe-spam-status",
    "x-smtpd",
    "spam-apparently-to",
    "spam",
    "x-perlmx-spam",
    "x-bogosity",
    "content-class",
    "thread-index",
    "thread-topic",
    "x-originalarrivaltime",
    "status",
    "x-status",
    "x-flags",
    "x-keywords",
    "replied",
    "forwarded",
    "lines",
    "content-length",
    "x-uid",
    "x-uidl",
    "x-imapbase",
    "x-vm-bookmark",
    "x-vm-pop-retrieved",
    "x-vm-imap-retrieved",
    "x-vm-labels",
    "x-vm-last-modified",
    "x-vm-summary-format",
    "x-vm-vheader",
    "x-vm-message-order",
    "x-gnus-mail-source",
    "xref",
];

/// `(?:X-)?List-(...)` in `$IGNORED_HDRS`.
const LIST_HEADERS: &[&str] = &[
    "archive",
    "help",
    "id",
    "owner",
    "post",
    "subscribe",
    "unsubscribe",
    "host",
    "manager",
    "admin",
    "comment",
    "name",
    "url",
];

/// SpamAssassin's `$MARK_PRESENCE_ONLY_HDRS`: their value becomes "1", which is
/// too short to be a token, so in effect they are ignored too.
const PRESENCE_ONLY: &[&str] = &[
    "x-face",
    "dkim-signature",
    "domainkey-signature",
    "x-google-dkim-signature",
    "arc-message-signature",
    "arc-seal",
    "autocrypt",
];

/// SpamAssassin's `%HEADER_NAME_COMPRESSION` (case-sensitive, as there).
const NAME_COMPRESSION: &[(&str, &str)] = &[
    ("Message-Id", "*m"),
    ("Message-ID", "*M"),
    ("Received", "*r"),
    ("User-Agent", "*u"),
    ("References", "*f"),
    ("In-Reply-To", "*i"),
    ("From", "*F"),
    ("Reply-To", "*R"),
    ("Return-Path", "*p"),
    ("Return-path", "*rp"),
    ("X-Mailer", "*x"),
    ("X-Authentication-Warning", "*a"),
    ("Organization", "*o"),
    ("Organisation", "*o"),
    ("Content-Type", "*ct"),
    ("Content-Disposition", "*cd"),
    ("Content-Transfer-Encoding", "*ce"),
    ("x-spam-relays-trusted", "*RT"),
    ("x-spam-relays-untrusted", "*RU"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    Header,
    Body,
    Uri,
}

fn is_stop_word(t: &[u8]) -> bool {
    t.len() <= 11
        && STOP_WORDS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(t))
}

/// The ASCII bytes tokens are made of (`[A-Za-z0-9,@*!_'"$. -]`).
fn token_ascii(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b',' | b'@' | b'*' | b'!' | b'_' | b'\'' | b'"' | b'$' | b'.'
        )
}

/// The text with every byte that cannot be part of a token made a space: tokens
/// are the ASCII above, whole UTF-8 characters and single bytes 0xA1-0xFF
/// (SpamAssassin bug 7130).
fn token_text(text: &[u8]) -> Vec<u8> {
    let cont = |b: Option<&u8>| b.is_some_and(|b| (0x80..=0xbf).contains(b));
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        let len = match c {
            0x00..=0x7f => {
                out.push(if token_ascii(c) { c } else { b' ' });
                i += 1;
                continue;
            }
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 1,
        };
        if len > 1 && (1..len).all(|k| cont(text.get(i + k))) {
            out.extend_from_slice(&text[i..i + len]);
            i += len;
        } else {
            out.push(if c >= 0xa1 { c } else { b' ' });
            i += 1;
        }
    }
    out
}

/// Whether a header name is one SpamAssassin's `$IGNORED_HDRS` leaves out. All
/// `X-Spam-*` headers are left out here: they are earlier filters' verdicts.
#[expect(
    clippy::string_slice,
    reason = "after an ASCII digit checked just before"
)]
fn ignored_header(lower: &str) -> bool {
    if IGNORED_HEADERS.contains(&lower) || lower.starts_with("x-spam") {
        return true;
    }
    let list = lower.strip_prefix("x-").unwrap_or(lower);
    if let Some(rest) = list.strip_prefix("list-")
        && LIST_HEADERS.contains(&rest)
    {
        return true;
    }
    if lower.starts_with("x-spamcop-") || lower.starts_with("x-bugzilla-") {
        return true;
    }
    if let Some(rest) = lower.strip_prefix("x-dcc-")
        && rest.ends_with("-metrics")
    {
        return true;
    }
    // X-VM-v<digit>-Data
    if let Some(rest) = lower.strip_prefix("x-vm-v")
        && rest.len() == 6
        && rest.as_bytes()[0].is_ascii_digit()
        && &rest[1..] == "-data"
    {
        return true;
    }
    false
}

fn presence_only(lower: &str) -> bool {
    if PRESENCE_ONLY.contains(&lower) {
        return true;
    }
    // X-(?:Gnu-?PG|PGP|GPG)(?:-Key)?-Fingerprint
    let Some(rest) = lower
        .strip_prefix("x-")
        .and_then(|r| r.strip_suffix("-fingerprint"))
    else {
        return false;
    };
    let rest = rest.strip_suffix("-key").unwrap_or(rest);
    matches!(rest, "gnupg" | "gnu-pg" | "pgp" | "gpg")
}

/// Lowercases a Title-Case word at the start of the text or of a sentence
/// (SpamAssassin's IGNORE_TITLE_CASE), so that "Hello" at a line start and
/// "hello" inside one are one token.
fn lower_title_case(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < text.len() {
        let start = i == 0 || {
            // Preceded by `\.\s+`.
            let ws = text[..i]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_whitespace())
                .count();
            ws > 0 && i > ws && text[i - ws - 1] == b'.'
        };
        if start && text[i].is_ascii_uppercase() {
            let run = text[i + 1..]
                .iter()
                .take_while(|c| !c.is_ascii_uppercase())
                .count();
            let run_text = &text[i + 1..i + 1 + run];
            let ends_word = run >= 1
                && (i + 1 + run == text.len() || run_text[1..].iter().any(u8::is_ascii_whitespace));
            if ends_word {
                out.get_or_insert_with(|| text.to_vec())[i] = text[i].to_ascii_lowercase();
            }
        }
        i += 1;
    }
    match out {
        Some(v) => std::borrow::Cow::Owned(v),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// Collects tokens, stopping a source at its cap.
struct Sink {
    tokens: HashSet<Vec<u8>>,
    added: usize,
    cap: usize,
}

impl Sink {
    fn push(&mut self, prefix: &[u8], t: &[u8]) {
        if self.added >= self.cap {
            return;
        }
        let mut v = Vec::with_capacity(prefix.len() + t.len());
        v.extend_from_slice(prefix);
        v.extend_from_slice(t);
        if !v.is_empty() {
            self.added += 1;
            self.tokens.insert(v);
        }
    }

    fn full(&self) -> bool {
        self.added >= self.cap
    }

    /// Starts a new source with its own cap.
    fn source(&mut self, cap: usize) {
        self.added = 0;
        self.cap = cap;
    }
}

/// `U*user`, `D*domain` and `D*` for each parent domain of an address.
fn mail_addr_tokens(addr: &[u8], out: &mut impl FnMut(&[u8], &[u8])) {
    let Some(at) = addr.iter().rposition(|&c| c == b'@') else {
        return;
    };
    let (user, domain) = (&addr[..at], &addr[at + 1..]);
    if user.is_empty() || domain.is_empty() {
        return;
    }
    out(b"U*", user);
    out(b"D*", domain);
    let mut bit = domain;
    while let Some(dot) = bit.iter().position(|&c| c == b'.') {
        if dot == 0 || dot + 1 >= bit.len() {
            break;
        }
        bit = &bit[dot + 1..];
        out(b"D*", bit);
    }
}

/// Tokenizes one line of text (SpamAssassin's `_tokenize_line`).
fn tokenize_line(text: &[u8], prefix: &[u8], region: Region, out: &mut Sink) {
    let text = if region == Region::Header {
        std::borrow::Cow::Borrowed(text)
    } else {
        lower_title_case(text)
    };
    let text = token_text(&text);
    for raw in text.split(|&c| c == b' ') {
        // "..." and "--" runs inside words split them, and count as tokens.
        for token in split_runs(raw) {
            if out.full() {
                return;
            }
            let token = trim_punct(token);
            if token.len() < 3 || is_stop_word(token) {
                continue;
            }
            if region != Region::Header {
                let at = token
                    .windows(3)
                    .any(|w| w[1] == b'@' && !w[0].is_ascii_whitespace());
                if at {
                    mail_addr_tokens(token, &mut |p: &[u8], t: &[u8]| out.push(p, t));
                } else if token
                    .windows(2)
                    .any(|w| w[0] == b'.' && w[1].is_ascii_alphabetic())
                {
                    out.push(b"UD:", token);
                    let mut bit = token;
                    while let Some(dot) = bit.iter().position(|&c| c == b'.') {
                        if dot == 0 || dot + 1 >= bit.len() {
                            break;
                        }
                        bit = &bit[dot + 1..];
                        out.push(b"UD:", bit);
                    }
                }
            }
            let mut token = std::borrow::Cow::Borrowed(token);
            if token.len() > MAX_TOKEN_LENGTH && !token.contains(&b'*') {
                if let Some(chars) = utf8_chars(&token) {
                    for c in chars {
                        let mut t = b"u8:".to_vec();
                        t.extend_from_slice(c);
                        out.push(prefix, &t);
                    }
                    continue;
                }
                if region != Region::Uri {
                    let mut t = b"sk:".to_vec();
                    t.extend_from_slice(&token[..7]);
                    token = std::borrow::Cow::Owned(t);
                }
            }
            if region != Region::Header {
                let odd =
                    |c: &u8| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b':' || *c == b'*');
                if token.iter().any(odd) {
                    let d: Vec<u8> = token.iter().filter(|c| !odd(c)).copied().collect();
                    out.push(prefix, &d);
                }
                if token.iter().any(u8::is_ascii_uppercase) {
                    let lower = token.to_ascii_lowercase();
                    out.push(prefix, &lower);
                    if lower.iter().any(odd) {
                        let d: Vec<u8> = lower.iter().filter(|c| !odd(c)).copied().collect();
                        out.push(prefix, &d);
                    }
                }
            }
            out.push(prefix, &token);
        }
    }
}

/// The 3- and 4-byte UTF-8 characters of a long token that has continuation-byte
/// pairs, which SpamAssassin keeps as `u8:` tokens (bug 7135); `None` otherwise.
fn utf8_chars(token: &[u8]) -> Option<Vec<&[u8]>> {
    if !token
        .windows(2)
        .any(|w| w.iter().all(|c| (0x80..=0xbf).contains(c)))
    {
        return None;
    }
    let cont = |c: u8| (0x80..=0xbf).contains(&c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < token.len() {
        let c = token[i];
        let len = match c {
            0xe0..=0xef => 3,
            0xf0..=0xf4 if token.get(i + 1).is_some_and(|&b| cont(b)) => 4,
            _ => 0,
        };
        if len > 0 && i + len <= token.len() && token[i + 1..i + len].iter().all(|&b| cont(b)) {
            out.push(&token[i..i + len]);
            i += len;
        } else {
            i += 1;
        }
    }
    (!out.is_empty()).then_some(out)
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

fn re(pattern: &str) -> Regex {
    // The patterns are constants tested below; a failure is a programming error
    // caught by the unit tests, never by input.
    Regex::new(pattern).expect("constant tokenizer regex")
}

/// Replaces every match of `re` in `text` (or only the first, without `global`)
/// with what `with` makes of it.
fn replace(
    re: &Regex,
    text: &[u8],
    global: bool,
    mut with: impl FnMut(&Captures) -> Vec<u8>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Ok(caps) = caps else { break };
        let Some(m) = caps.get(0) else { break };
        out.extend_from_slice(&text[last..m.start()]);
        out.extend_from_slice(&with(&caps));
        last = m.end();
        if !global {
            break;
        }
    }
    out.extend_from_slice(&text[last..]);
    out
}

fn group<'a>(caps: &Captures<'a>, i: usize) -> &'a [u8] {
    caps.get(i).map_or(&[][..], |m| m.as_bytes())
}

static MSGID_OE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"<([0-9a-f]{4})[0-9a-f]{4}[0-9a-f]{4}\$([0-9a-f]{4})[0-9a-f]{4}\$([0-9a-f]{8})@(\S+)>")
});
static MSGID_EXIM: LazyLock<Regex> =
    LazyLock::new(|| re(r"<[A-Za-z0-9]{7}-[A-Za-z0-9]{6}-0[A-Za-z0-9]@"));
static MSGID_SENDMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"<20\d\d[01]\d[0123]\d[012]\d[012345]\d[012345]\d\.[A-F0-9]{10,12}@"));

/// SpamAssassin's `_pre_chew_message_id`.
fn chew_message_id(val: &[u8]) -> Vec<u8> {
    let v = replace(&MSGID_OE, val, true, |c| {
        let mut o = b" OEA".to_vec();
        o.extend_from_slice(group(c, 1));
        o.extend_from_slice(b" OEB");
        o.extend_from_slice(group(c, 2));
        o.extend_from_slice(b" OEC");
        o.extend_from_slice(group(c, 3));
        o.push(b' ');
        o.extend_from_slice(group(c, 4));
        o.push(b' ');
        o
    });
    let v = replace(&MSGID_EXIM, &v, false, |_| Vec::new());
    let v = replace(&MSGID_SENDMAIL, &v, true, |_| Vec::new());
    v.into_iter()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == b'_' {
                c
            } else {
                b' '
            }
        })
        .collect()
}

static RCVD_IDS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"\swith\sSMTP\sid\sg[\dA-Z]{10,12}\s",
        r"\swith\sESMTP\sid\s[\dA-F]{10,12}\s",
        r"\bid\s[a-zA-Z0-9]{7,20}\b",
        r"\bid\s[A-Za-z0-9]{7}-[A-Za-z0-9]{6}-0[A-Za-z0-9]",
    ]
    .into_iter()
    .map(re)
    .collect()
});
static RCVD_DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s)?
        [0-3\s]?[0-9]\s
        (?:Jan|Feb|Ma[ry]|Apr|Ju[nl]|Aug|Sep|Oct|Nov|Dec)\s
        (?:19|20)?[0-9]{2}\s
        [0-2][0-9](?:\:[0-5][0-9]){1,2}\s
        (?:\s*\(|\)|\s*(?:[+-][0-9]{4})|\s*(?:UT|[A-Z]{2,3}T))*")
});
static RCVD_IP: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(\d{1,3}\.)(\d{1,3}\.)(\d{1,3})(\.\d{1,3})\b"));
static RCVD_NOISE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:with|from|for|SMTP|ESMTP)\b"));

/// SpamAssassin's `_pre_chew_received`: queue IDs and dates out, IPs as their /24
/// plus an `ip*` token of the whole address, the commonest words out.
fn chew_received(val: &[u8]) -> Vec<u8> {
    let mut v = val.to_vec();
    for r in RCVD_IDS.iter() {
        v = replace(r, &v, true, |_| b" ".to_vec());
    }
    v = replace(&RCVD_DATE, &v, true, |_| Vec::new());
    // (SpamAssassin's exception for 10/8 and 192.168/16 compares a group that
    // includes the dot, so never applies; every address is cut to its /24.)
    v = replace(&RCVD_IP, &v, true, |c| {
        let (a, b, cc, d) = (group(c, 1), group(c, 2), group(c, 3), group(c, 4));
        let mut o = Vec::new();
        o.extend_from_slice(a);
        o.extend_from_slice(b);
        o.extend_from_slice(cc);
        o.extend_from_slice(b" ip*");
        o.extend_from_slice(a);
        o.extend_from_slice(b);
        o.extend_from_slice(cc);
        o.extend_from_slice(d);
        o.push(b' ');
        o
    });
    replace(&RCVD_NOISE, &v, true, |_| b" ".to_vec())
}

static CT_BOUNDARY: LazyLock<Regex> = LazyLock::new(|| re(r#"(?i)boundary=["'](.*?)["']"#));
static CT_STOP: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:text|charset)\b"));

/// SpamAssassin's `_pre_chew_content_type`: a boundary becomes its shape (hex
/// digits as H, separator runs as their own tokens).
fn chew_content_type(val: &[u8]) -> Vec<u8> {
    let mut boundary: Option<Vec<u8>> = None;
    let mut v = replace(&CT_BOUNDARY, val, true, |c| {
        boundary = Some(group(c, 1).to_vec());
        b" ".to_vec()
    });
    if let Some(b) = boundary {
        for c in b {
            match c {
                b'-' | b'_' | b'.' | b'=' => {
                    v.push(b' ');
                    v.push(c);
                    v.push(b' ');
                }
                c if c.is_ascii_hexdigit() => v.push(b'H'),
                c => v.push(c),
            }
        }
    }
    replace(&CT_STOP, &v, true, |_| b" ".to_vec())
}

/// The (display name, address) pairs of an address header.
fn parse_addresses(val: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut items = Vec::new();
    let (mut quoted, mut angle, mut paren) = (false, false, 0usize);
    let mut start = 0;
    for (i, &c) in val.iter().enumerate() {
        match c {
            b'"' if paren == 0 => quoted = !quoted,
            b'<' if !quoted && paren == 0 => angle = true,
            b'>' if !quoted && paren == 0 => angle = false,
            b'(' if !quoted => paren += 1,
            b')' if !quoted => paren = paren.saturating_sub(1),
            b',' if !quoted && !angle && paren == 0 => {
                items.push(&val[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&val[start..]);
    let mut out = Vec::new();
    for item in items {
        let item = item.trim_ascii();
        if item.is_empty() {
            continue;
        }
        let (phrase, addr) = match (
            item.iter().position(|&c| c == b'<'),
            item.iter().rposition(|&c| c == b'>'),
        ) {
            (Some(lt), Some(gt)) if gt > lt => (item[..lt].to_vec(), item[lt + 1..gt].to_vec()),
            _ => {
                // addr (Name): the comment is the name.
                let open = item.iter().position(|&c| c == b'(');
                let close = item.iter().rposition(|&c| c == b')');
                match (open, close) {
                    (Some(o), Some(c)) if c > o => {
                        let mut addr = item[..o].to_vec();
                        addr.extend_from_slice(&item[c + 1..]);
                        (item[o + 1..c].to_vec(), addr)
                    }
                    _ => (Vec::new(), item.to_vec()),
                }
            }
        };
        let phrase: Vec<u8> = phrase.into_iter().filter(|&c| c != b'"').collect();
        let addr = addr.trim_ascii().to_vec();
        out.push((phrase, addr));
    }
    out
}

/// SpamAssassin's `_pre_chew_addr_header`: `N*` for each word of a display name,
/// `U*`/`D*` for each address.
fn chew_addresses(val: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (phrase, addr) in parse_addresses(val) {
        for w in phrase
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
        {
            out.extend_from_slice(b"N*");
            out.extend_from_slice(w);
            out.push(b' ');
        }
        mail_addr_tokens(&addr, &mut |prefix: &[u8], t: &[u8]| {
            out.extend_from_slice(prefix);
            out.extend_from_slice(t);
            out.push(b' ');
        });
    }
    out
}

/// The header name SpamAssassin's tokens carry.
fn compressed_name(name: &str) -> &str {
    NAME_COMPRESSION
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, c)| c)
}

fn is_addr_header(lower: &str) -> bool {
    let base = lower
        .strip_prefix("x-")
        .or_else(|| lower.strip_prefix("resent-"))
        .unwrap_or(lower);
    matches!(
        base,
        "return-path"
            | "from"
            | "to"
            | "cc"
            | "reply-to"
            | "errors-to"
            | "mail-followup-to"
            | "sender"
    )
}

/// The header texts SpamAssassin tokenizes, by (compressed) name, in a stable order.
fn header_texts(
    headers: &[Header],
    relays: &relays::Relays,
    ignore: &HashSet<String>,
) -> Vec<(String, Vec<u8>)> {
    let mut parsed: Vec<(String, Vec<u8>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut add = |name: &str, val: &[u8]| match index.get(name) {
        Some(&i) => {
            parsed[i].1.push(b' ');
            parsed[i].1.extend_from_slice(val);
        }
        None => {
            index.insert(name.to_string(), parsed.len());
            parsed.push((name.to_string(), val.to_vec()));
        }
    };
    let received: Vec<&Header> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("received"))
        .collect();
    let mut chosen: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("received"))
        .filter(|h| !ignored_header(&h.name.to_ascii_lowercase()))
        .map(|h| (h.name.clone(), decode_header(&h.raw)))
        .collect();
    for (name, text) in relays.pseudo_headers() {
        chosen.push((name.to_string(), text));
    }
    // The last two Received headers: the first hops, where spamware and HELO
    // names show.
    for h in received.iter().rev().take(2) {
        chosen.push(("Received".to_string(), decode_header(&h.raw)));
    }
    for (name, val) in chosen {
        let lower = name.to_ascii_lowercase();
        if ignore.contains(&lower) || val.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let val = if matches!(
            lower.as_str(),
            "message-id" | "x-message-id" | "resent-message-id"
        ) {
            chew_message_id(&val)
        } else if is_addr_header(&lower) {
            chew_addresses(&val)
        } else if name == "Received" {
            chew_received(&val)
        } else if name == "Content-Type" {
            chew_content_type(&val)
        } else if name == "MIME-Version" {
            replace(&MIME_1_0, &val, false, |_| Vec::new())
        } else if presence_only(&lower) {
            b"1".to_vec()
        } else if relays::PSEUDO_HEADERS.contains(&lower.as_str()) {
            // The relay fields' names (rdns=, helo=, ...) carry nothing.
            replace(&RELAY_KEYS, &val, true, |_| b" ".to_vec())
        } else {
            val
        };
        if matches!(lower.as_str(), "in-reply-to" | "references" | "message-id") {
            add("*MI", &val);
        }
        if matches!(lower.as_str(), "from" | "to" | "cc") {
            add("*Ad", &val);
        }
        if matches!(lower.as_str(), "x-mailer" | "user-agent") {
            add("*UA", &val);
        }
        add(compressed_name(&name), &val);
    }
    parsed
}

static MIME_1_0: LazyLock<Regex> = LazyLock::new(|| re(r"1\.0"));
static RELAY_KEYS: LazyLock<Regex> = LazyLock::new(|| re(r" [a-z]+="));

/// The distinct tokens of a message. `ignore` holds the lowercase names of the
/// `bayes_ignore_header` settings.
pub fn tokenize(msg: &Message, ignore: &HashSet<String>) -> HashSet<Vec<u8>> {
    let mut out = Sink {
        tokens: HashSet::new(),
        added: 0,
        cap: MAX_BODY_TOKENS,
    };
    // The visible text, with the Subject as its first line.
    let subject = msg.header("subject").unwrap_or_default();
    tokenize_line(&subject, b"", Region::Body, &mut out);
    let body = &msg.visible_text[..msg.visible_text.len().min(BODY_SCAN_SIZE * 4)];
    for line in body.split(|&c| c == b'\n') {
        tokenize_line(line, b"", Region::Body, &mut out);
    }
    out.source(MAX_URI_TOKENS);
    for uri in &msg.uris {
        tokenize_line(uri.as_bytes(), b"", Region::Uri, &mut out);
    }
    out.source(MAX_HEADER_TOKENS);
    for (name, text) in header_texts(&msg.headers, &msg.relays, ignore) {
        let prefix = format!("H{name}:");
        tokenize_line(&text, prefix.as_bytes(), Region::Header, &mut out);
    }
    out.tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(m: &[u8]) -> HashSet<Vec<u8>> {
        tokenize(&Message::parse(m), &HashSet::new())
    }

    #[test]
    fn tokenizer_follows_sa() {
        let t = toks(
            b"From: Joe Bloggs <joe@mail.example.com>\nSubject: Cheap Pills\nMessage-ID: <1@x>\n\n\
              Visit www.pills-example.com CHEAP... for $31,000,000 the and\n",
        );
        let has = |s: &str| t.contains(s.as_bytes());
        // The Subject is body text, not a header token.
        assert!(has("cheap"));
        assert!(has("Pills"));
        assert!(!t.iter().any(|x| x.starts_with(b"HSubject")));
        assert!(has("H*F:N*Joe"));
        assert!(has("H*F:U*joe"));
        assert!(has("H*F:D*mail.example.com"));
        assert!(has("H*F:D*example.com"));
        assert!(has("H*Ad:N*Bloggs"));
        assert!(has("UD:www.pills-example.com"));
        assert!(has("UD:pills-example.com"));
        assert!(has("CHEAP"));
        assert!(has("$31,000,000"));
        assert!(has("31000000"));
        assert!(!has("and"));
        assert!(!has("the"));
        assert!(
            toks(b"Subject: x\n\nsupercalifragilisticexpialidocious\n")
                .contains(&b"sk:superca"[..])
        );
    }

    #[test]
    fn list_and_filter_headers_are_ignored() {
        let t = toks(
            b"List-Id: <spam.lists.example.org>\nX-BeenThere: foo@lists.example.org\n\
              List-Unsubscribe: <mailto:leave@lists.example.org>\nX-Spam-Status: No\n\
              X-Face: abcdefghijklmnop\nPrecedence: bulk\nX-Mailer: Foo Mail 1.2\n\nhi there\n",
        );
        assert!(!t.iter().any(|x| x.starts_with(b"HList")));
        assert!(!t.iter().any(|x| x.starts_with(b"HX-BeenThere")));
        assert!(!t.iter().any(|x| x.starts_with(b"HX-Spam")));
        assert!(!t.iter().any(|x| x.starts_with(b"HX-Face")));
        assert!(t.contains(&b"HPrecedence:bulk"[..]));
        assert!(t.contains(&b"H*x:Foo"[..]));
        assert!(t.contains(&b"H*UA:Foo"[..]));
        let ignore: HashSet<String> = ["precedence".to_string()].into();
        let m = Message::parse(b"Precedence: bulk\n\nhi\n");
        assert!(
            !tokenize(&m, &ignore)
                .iter()
                .any(|x| x.starts_with(b"HPrec"))
        );
    }

    #[test]
    fn received_and_message_id_are_pre_chewed() {
        let t = toks(
            b"Received: from a.example.net (a.example.net [192.0.2.77]) by mx.example.org \
              (8.12.1/8.12.1) with ESMTP id g7LAbcd12345 for <x@example.org>; \
              Wed, 21 Aug 2002 10:00:00 +0100\n\
              Message-Id: <20020821100000.ABCDEF0123@mx.example.org>\n\
              Content-Type: multipart/alternative; boundary=\"----=_NextPart_000_00AB_01C2\"\n\n\
              body\n",
        );
        let has = |s: &str| t.contains(s.as_bytes());
        assert!(has("H*r:192.0.2"));
        assert!(has("H*r:ip*192.0.2.77"));
        assert!(has("H*r:a.example.net"));
        assert!(!has("H*r:g7LAbcd12345"));
        assert!(!has("H*r:Aug"));
        assert!(!has("H*r:ESMTP"));
        // Sendmail's date-and-queue-ID prefix is dropped; the host splits.
        assert!(has("H*m:example"));
        assert!(!t.iter().any(|x| x.starts_with(b"H*m:20020821")));
        assert!(has("H*ct:multipart"));
        assert!(has("H*ct:alternative"));
        assert!(has("H*ct:NHxtPHrt"));
        assert!(has("H*ct:HHHH"));
        assert!(!has("H*ct:charset"));
    }

    #[test]
    fn title_case_and_utf8() {
        assert_eq!(
            &*lower_title_case(b"Hello world. Again here"),
            b"hello world. again here"
        );
        assert_eq!(&*lower_title_case(b"HELLO World"), b"HELLO World");
        let t = toks("Subject: x\n\n\u{4e2d}\u{6587}\u{4e2d}\u{6587}\u{4e2d}\u{6587}\n".as_bytes());
        assert!(t.contains("u8:\u{4e2d}".as_bytes()));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for m in [
            &b"From: <<<@@@>>>,,,\"\n\n"[..],
            b"To: (((\nReceived: 1.2.3.4.5.6.7\nContent-Type: x; boundary=\"\n\n",
            b"\xff\xfe@\xe4\xb8\nSubject: \xe4\xb8\xad\xe4\n\n\xf0\x9f\x98\n",
            b"Message-ID: <aaaa$\n\n",
        ] {
            let _ = toks(m);
        }
    }
}
