//! HeaderEval's tests of the header: Received headers that a free-mail service
//! would not have written, ratware's traces, characters that should have been
//! encoded, and SpamAssassin's guess at the envelope sender.

use std::sync::LazyLock;

use pcre2::bytes::Regex;

use crate::msg::{self, Message};

/// SpamAssassin's IP_ADDRESS: IPv4, IPv6, and IPv4 mapped in IPv6.
const IP_ADDRESS: &str = r"(?i:\b(?<!:)(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\b|(?:IPv6:|(?<![a-f0-9:]))(?:(?:(?:[a-f0-9]{1,4}:){6}|::(?:[a-f0-9]{1,4}:){0,5}|(?:[a-f0-9]{1,4}:){1,5}:|[a-f0-9]{1,4}::(?:[a-f0-9]{1,4}:){1,4}|(?:[a-f0-9]{1,4}:){2}:(?:[a-f0-9]{1,4}:){1,3}|(?:[a-f0-9]{1,4}:){3}:(?:[a-f0-9]{1,4}:){1,2}|(?:[a-f0-9]{1,4}:){4}:[a-f0-9]{1,4}:)(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)|(?:[a-f0-9]{1,4}:){7}[a-f0-9]{1,4}|:(?::[a-f0-9]{1,4}){1,7}|(?:[a-f0-9]{1,4}:){1,7}:|[a-f0-9]{1,4}:(?::[a-f0-9]{1,4}){1,6}|(?:[a-f0-9]{1,4}:){2}(?::[a-f0-9]{1,4}){1,5}|(?:[a-f0-9]{1,4}:){3}(?::[a-f0-9]{1,4}){1,4}|(?:[a-f0-9]{1,4}:){4}(?::[a-f0-9]{1,4}){1,3}|(?:[a-f0-9]{1,4}:){5}(?::[a-f0-9]{1,4}){1,2}|(?:[a-f0-9]{1,4}:){6}:[a-f0-9]{1,4}|::)(?![a-f0-9:]))";

/// A regex compiled once; `{IP}` in the pattern stands for IP_ADDRESS.
struct Re(LazyLock<Option<Regex>>);

macro_rules! re {
    ($pattern:expr) => {
        Re(LazyLock::new(|| {
            Regex::new(&$pattern.replace("{IP}", IP_ADDRESS)).ok()
        }))
    };
}

impl Re {
    fn is_match(&self, text: &[u8]) -> bool {
        self.0
            .as_ref()
            .is_some_and(|r| r.is_match(text).unwrap_or(false))
    }

    fn capture(&self, text: &[u8]) -> Option<Vec<u8>> {
        let caps = self.0.as_ref()?.captures(text).ok()??;
        Some(caps.get(1)?.as_bytes().to_vec())
    }
}

/// SpamAssassin's `get(NAME)`: every instance decoded, unfolded and trimmed, each
/// followed by a newline; `None` when there is none.
fn get(m: &Message, name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for v in msg::header_values(&m.headers, name) {
        let o = out.get_or_insert_with(Vec::new);
        o.extend_from_slice(msg::decode_header(v).trim_ascii());
        o.push(b'\n');
    }
    out
}

fn get_or_empty(m: &Message, name: &str) -> Vec<u8> {
    get(m, name).unwrap_or_default()
}

/// `s/\s+/ /gs`, which the Received tests apply to make their patterns simple.
fn squash(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &c in text {
        if c.is_ascii_whitespace() || c == 0x0b {
            if out.last() != Some(&b' ') {
                out.push(b' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `get('NAME:addr')`: the first address in the headers.
fn first_address(m: &Message, name: &str) -> Vec<u8> {
    msg::header_values(&m.headers, name)
        .map(|v| msg::first_addr(&msg::decode_header(v)))
        .find(|a| !a.is_empty())
        .unwrap_or_default()
}

/// gated_through_received_hdr_remover: mail whose Received headers a list server
/// removed (ezmlm, MSN groups), or that has none, cannot be judged by them.
pub fn received_headers_removed(m: &Message) -> bool {
    static EZMLM: Re = re!(r"(?m)^contact \S+@\S+; run by ezmlm$");
    static DELIVERED: Re = re!(r"(?m)^mailing list \S+@\S+");
    static QMAIL: Re = re!(r"qmail \d+ invoked (?:from network|by .{3,20})\); \d+ ... \d+");
    static MSN_GROUPS: Re = re!(r"from groups\.msn\.com \(\S+\.msn\.com ");
    let Some(rcvd) = get(m, "received") else {
        return true;
    };
    if get(m, "mailing-list").is_some_and(|l| EZMLM.is_match(&l))
        && DELIVERED.is_match(&get_or_empty(m, "delivered-to"))
        && QMAIL.is_match(&rcvd)
    {
        return true;
    }
    MSN_GROUPS.is_match(&rcvd)
}

/// check_for_forged_yahoo_received_headers.
pub fn forged_yahoo(m: &Message) -> bool {
    static FROM: Re = re!(r"(?i)\byahoo\.com$");
    static REPLY: Re = re!(r"(?i)@reply\.yahoo\.com$");
    static TRUSTED: Re = re!(r" rdns=\S+\.yahoo\.com ");
    static UNTRUSTED: Re = re!(r"^[^\]]+ rdns=\S+\.yahoo\.com ");
    // Received headers Yahoo's own web mail, SMTP and groups servers write.
    static GENUINE: Re = re!(concat!(
        r"by web\S+\.mail\S*\.yahoo\.com via HTTP",
        r"|by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP",
        r"|by smtp\S+\.yahoo\.com with SMTP",
        r"|from \[{IP}\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP",
        r"|by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+",
    ));
    static BULK: Re = re!(r"\bmailer\d+\.bulk\.scd\.yahoo\.com\b");
    let from = first_address(m, "from");
    if !FROM.is_match(&from) {
        return false;
    }
    let mut rcvd = get_or_empty(m, "received");
    if !get_or_empty(m, "resent-from").is_empty()
        && !get_or_empty(m, "resent-to").is_empty()
        && let Some(x) = get(m, "x-received")
    {
        rcvd = x;
    }
    let rcvd = squash(&rcvd);
    if received_headers_removed(m) {
        return false;
    }
    let relays = |name| m.relays.pseudo_header(name).unwrap_or_default();
    if TRUSTED.is_match(&relays("X-Spam-Relays-Trusted"))
        || UNTRUSTED.is_match(&relays("X-Spam-Relays-Untrusted"))
        || GENUINE.is_match(&rcvd)
    {
        return false;
    }
    !(BULK.is_match(&rcvd) && REPLY.is_match(&from))
}

/// check_for_fake_aol_relay_in_rcvd: AOL's relay host names (`rly-xx01.`), which
/// spammers forge, without AOL's own marks.
pub fn fake_aol_relay(m: &Message) -> bool {
    static RELAY: Re = re!(r"(?i) rly-[a-z][a-z]\d\d\.");
    static AOL: Re = re!(r"/AOL-\d+\.\d+\.\d+\)|ESMTP id (?:RELAY|MAILRELAY|MAILIN)");
    let rcvd = squash(&get_or_empty(m, "received"));
    RELAY.is_match(&rcvd) && !AOL.is_match(&rcvd)
}

/// What the Hotmail check found: a relay claiming to be Hotmail that is not,
/// or a Hotmail address with no Hotmail relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hotmail {
    pub forged: bool,
    pub missing: bool,
}

/// _check_for_forged_hotmail_received_headers.
pub fn hotmail(m: &Message) -> Hotmail {
    static PICKUP: Re = re!(r"from mail pickup service by hotmail\.com with Microsoft SMTPSVC;");
    static IP: Re = re!("{IP}");
    static ORIGINATOR: Re = re!(r"hotmail\.com|msonline\-outlook");
    static BY_IP: Re = re!(concat!(
        r"from (?:\S*\.)?hotmail.com \(\S+\.hotmail(?:\.msn)?\.com[ \)]",
        r"|from \S*\.hotmail.com \(\[{IP}\][ \):]",
        r"|from \S+ by \S+\.hotmail(?:\.msn)?\.com with HTTP;",
        r"|from \[66\.218.\S+\] by \S+\.yahoo\.com",
    ));
    static BY_ORIGINATOR: Re = re!(concat!(
        r"from \S*\.outbound\.protection\.outlook\.com \(\S+\.outbound\.protection\.outlook\.com[ \)]",
        r"|from \S*\.(?:eur|nam)prd\d+\.prod\.outlook\.com \({IP}\)",
    ));
    static HELO: Re = re!(r"(?:from |HELO |helo=)\S*hotmail\.com\b");
    static FROM: Re = re!(r"(?i)\bhotmail\.com$");
    let mut out = Hotmail::default();
    let rcvd = squash(&get_or_empty(m, "received"));
    if PICKUP.is_match(&rcvd) || msn_groups(m) {
        return out;
    }
    let ip = get(m, "x-originating-ip").is_some_and(|v| IP.is_match(&v));
    let orig = get(m, "x-originatororg").is_some_and(|v| ORIGINATOR.is_match(&v));
    if received_headers_removed(m)
        || (ip && BY_IP.is_match(&rcvd))
        || (orig && BY_ORIGINATOR.is_match(&rcvd))
    {
        return out;
    }
    if HELO.is_match(&rcvd) {
        out.forged = true;
    } else if FROM.is_match(&first_address(m, "from")) {
        out.missing = true;
    }
    out
}

/// check_for_msn_groups_headers: mail from an MSN group, which Hotmail passes on
/// without its own Received headers.
fn msn_groups(m: &Message) -> bool {
    static TO: Re = re!(r"(?i)<(\S+)@groups\.msn\.com>");
    static SERVER: Re = re!(r"from mail pickup service by ((?:p\d\d\.)groups\.msn\.com)\b");
    let Some(list) = TO.capture(&get_or_empty(m, "to")) else {
        return false;
    };
    let Some(server) = SERVER.capture(&get_or_empty(m, "received")) else {
        return false;
    };
    let id = get_or_empty(m, "message-id");
    let quote = |b: &[u8]| super::pcre2_quote(&String::from_utf8_lossy(b));
    let matches = |pattern: String, text: &[u8]| {
        Regex::new(&pattern).is_ok_and(|r| r.is_match(text).unwrap_or(false))
    };
    if list == b"notifications" {
        return matches(format!(r"^<\S+@{}>", quote(&server)), &id);
    }
    let list = quote(&list);
    matches(format!(r"^<{list}-\S+@groups\.msn\.com>"), &id)
        && envelope_from(m).is_some_and(|e| matches(format!(r"{list}-bounce@groups\.msn\.com"), &e))
}

/// check_for_forged_eudoramail_received_headers.
pub fn forged_eudoramail(m: &Message) -> bool {
    static FROM: Re = re!(r"(?i)\beudoramail\.com$");
    static IP: Re = re!("{IP}");
    static WHOWHERE: Re = re!(r"by \S*whowhere.com;");
    if !FROM.is_match(&first_address(m, "from")) || received_headers_removed(m) {
        return false;
    }
    let ip = get(m, "x-sender-ip").is_some_and(|v| IP.is_match(&v));
    !(ip && WHOWHERE.is_match(&squash(&get_or_empty(m, "received"))))
}

/// check_for_forged_juno_received_headers.
pub fn forged_juno(m: &Message) -> bool {
    static FROM: Re = re!(r"(?i)\bjuno\.com$");
    static JUNO_RELAY: Re = re!(r"from.*\b(?:juno|untd)\.com.*[\[\(]{IP}[\]\)].*by");
    static COOKIE: Re = re!(r" cookie\.(?:juno|untd)\.com ");
    if !FROM.is_match(&first_address(m, "from")) || received_headers_removed(m) {
        return false;
    }
    let xorig = get_or_empty(m, "x-originating-ip");
    let mailer = get_or_empty(m, "x-mailer");
    let rcvd = get_or_empty(m, "received");
    if !xorig.is_empty() {
        // Old-style Juno: its relay and its mailer.
        return (!JUNO_RELAY.is_match(&rcvd) && !COOKIE.is_match(&rcvd))
            || crate::html::find(&mailer, b"Juno ").is_none();
    }
    // New-style Juno has no X-Originating-IP, yet SpamAssassin's test of it ends
    // by requiring one: without it, a juno.com sender is always forged.
    true
}

/// check_for_forged_gmail_received_headers: a gmail.com sender without Google's
/// own headers.
pub fn forged_gmail(m: &Message) -> bool {
    static FROM: Re = re!(r"(?i)\bgmail\.com$");
    static X_RECEIVED: Re =
        re!(r"by 10\.\S+ with SMTP id \S+|by 2002\:a\d\d\:\w+\:\S+ with SMTP id \S+");
    static RECEIVED: Re = re!(r"by smtp\.googlemail\.com with ESMTPSA id \S+");
    const MIN_LENGTH: usize = 60;
    if !FROM.is_match(&first_address(m, "from")) {
        return false;
    }
    if X_RECEIVED.is_match(&get_or_empty(m, "x-received"))
        || RECEIVED.is_match(&get_or_empty(m, "received"))
    {
        return false;
    }
    let state = get_or_empty(m, "x-gm-message-state");
    let source = get_or_empty(m, "x-google-smtp-source");
    !(state.len() >= MIN_LENGTH && source.len() >= MIN_LENGTH)
}

/// check_ratware_name_id: a Message-ID of 28 capitals and the From address, with
/// that address also quoted as the sender's name.
pub fn ratware_name_id(m: &Message) -> bool {
    static ID: Re = re!(r"<[A-Z]{28}\.([^>]+?)>");
    let id: Vec<u8> = [
        "x-message-id",
        "resent-message-id",
        "x-original-message-id",
        "message-id",
    ]
    .iter()
    .flat_map(|n| get(m, n))
    .flatten()
    .collect();
    let Some(addr) = ID.capture(&id) else {
        return false;
    };
    let pattern = format!(
        r#""[^"]+"\s*<{}>"#,
        super::pcre2_quote(&String::from_utf8_lossy(&addr))
    );
    Regex::new(&pattern).is_ok_and(|r| r.is_match(&get_or_empty(m, "from")).unwrap_or(false))
}

/// check_illegal_chars: the share and count of 8-bit and control characters in
/// a header (`ALL` for all of them) as written, where they should be encoded.
pub fn illegal_chars(m: &Message, header: &str, ratio: f64, count: f64) -> bool {
    let name = header.strip_suffix(":raw").unwrap_or(header);
    let mut text = Vec::new();
    for h in &m.headers {
        let all = name == "ALL";
        if !all && !h.name.eq_ignore_ascii_case(name) {
            continue;
        }
        if all {
            text.extend_from_slice(h.name.as_bytes());
            text.extend_from_slice(b": ");
            text.extend_from_slice(&h.raw);
        } else {
            // The raw value, unfolded.
            let mut lines = h.raw.split(|&c| c == b'\n');
            text.extend_from_slice(lines.next().unwrap_or_default().trim_ascii_start());
            for l in lines {
                text.push(b' ');
                text.extend_from_slice(l.trim_ascii_start());
            }
        }
        text.push(b'\n');
    }
    if !text.iter().any(|c| !c.is_ascii_whitespace()) {
        return false;
    }
    let control = |c: &u8| matches!(c, 0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f);
    // Valid UTF-8 without control characters is fine (SMTPUTF8).
    if !text.is_ascii() && std::str::from_utf8(&text).is_ok() && !text.iter().any(control) {
        return false;
    }
    let mut illegal = text.iter().filter(|c| control(c) || **c >= 0x7f).count();
    // One cent, pound or registered sign in a subject is allowed.
    if illegal > 0
        && name.eq_ignore_ascii_case("subject")
        && text
            .iter()
            .filter(|c| matches!(c, 0xa2 | 0xa3 | 0xae))
            .count()
            == 1
    {
        illegal -= 1;
    }
    illegal as f64 / text.len() as f64 >= ratio && illegal as f64 >= count
}

/// SpamAssassin's get_envelope_from: the SMTP sender as a relay or the local
/// delivery recorded it. A header that an earlier hop could have added (one
/// below a Received header) is not trusted.
pub fn envelope_from(m: &Message) -> Option<Vec<u8>> {
    // The envelope sender the last untrusted relay (or else the first trusted
    // one) received, as its Received header says. Without one recorded, the
    // relay parser leaves it empty, as it does for `<>`, so an empty one is
    // taken as not recorded.
    let hop = m.relays.untrusted.first().or(m.relays.trusted.last());
    if let Some(hop) = hop
        && hop.envfrom.find('@').is_some_and(|at| at > 0)
    {
        return Some(hop.envfrom.clone().into_bytes());
    }
    let first_addr = |name: &str| {
        msg::header_values(&m.headers, name)
            .next()
            .map(|v| msg::first_addr(&msg::decode_header(v)))
            .filter(|a| !a.is_empty())
    };
    // Fetchmail copies a list's X-Sender into the envelope.
    if first_addr("x-sender").is_some_and(|a| a.contains(&b'@'))
        && msg::header_values(&m.headers, "received")
            .any(|v| crate::html::find(v, b"(fetchmail").is_some())
    {
        return None;
    }
    let first_received = m
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("received"));
    let below_received = |name: &str| {
        let last = m
            .headers
            .iter()
            .rposition(|h| h.name.eq_ignore_ascii_case(name));
        matches!((first_received, last), (Some(r), Some(l)) if r < l)
    };
    if let Some(a) = first_addr("x-envelope-from") {
        return (!below_received("x-envelope-from")).then_some(a);
    }
    ["envelope-sender", "return-path"]
        .iter()
        .find_map(|n| first_addr(n).filter(|_| !below_received(n)))
}

/// check_for_matching_env_and_hdr_from: the envelope sender is the From address
/// (or both are unknown).
pub fn env_and_hdr_from_match(m: &Message) -> bool {
    let env = envelope_from(m)
        .map(|e| msg::first_addr(&e))
        .unwrap_or_default();
    env.eq_ignore_ascii_case(&first_address(m, "from"))
}
