//! The trust path from Received headers, as SpamAssassin's
//! Message::Metadata::Received builds it: each Received line that names a
//! connecting IP becomes a relay (ip, rdns, helo, by, ident, envfrom, id, auth),
//! newest first; the relays are split into trusted and untrusted (and internal and
//! external) and rendered as SpamAssassin's X-Spam-Relays-* pseudo-headers, which
//! header rules and Bayes read.
//!
//! With no trusted_networks configured SpamAssassin infers trust: relays are
//! trusted while they come from private addresses or authenticated clients; the
//! first other relay and everything after it are untrusted. Internal follows
//! trusted in that case, and so it does here.

use crate::msg::{Header, decode_header};

/// The pseudo-header names, lowercase as SpamAssassin's metadata keys.
pub const PSEUDO_HEADERS: &[&str] = &[
    "x-spam-relays-trusted",
    "x-spam-relays-untrusted",
    "x-spam-relays-internal",
    "x-spam-relays-external",
];

/// At most this many Received headers are parsed.
const MAX_RECEIVED: usize = 50;

/// Headers that carry the originating client's IP (`originating_ip_headers`).
const ORIGINATING_IP_HEADERS: &[&str] = &[
    "x-yahoo-post-ip",
    "x-originating-ip",
    "x-apparently-from",
    "x-senderip",
];

/// One relay: a hop that handed the message on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relay {
    pub ip: String,
    pub rdns: String,
    pub helo: String,
    pub by: String,
    pub ident: String,
    pub envfrom: String,
    pub id: String,
    pub auth: String,
    pub internal: bool,
}

impl Relay {
    /// SpamAssassin's `make_relay_as_string`.
    fn as_string(&self) -> String {
        format!(
            "[ ip={} rdns={} helo={} by={} ident={} envfrom={} intl={} id={} auth={} msa=0 ]",
            self.ip,
            self.rdns,
            self.helo,
            self.by,
            self.ident,
            self.envfrom,
            u8::from(self.internal),
            self.id,
            self.auth
        )
    }
}

/// A message's relays, newest first, split by trust.
#[derive(Clone, Debug, Default)]
pub struct Relays {
    pub trusted: Vec<Relay>,
    pub untrusted: Vec<Relay>,
}

impl Relays {
    /// Parses the Received headers (and originating-IP headers) of a message.
    pub fn parse(headers: &[Header]) -> Relays {
        let mut lines: Vec<Vec<u8>> = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("received"))
            .take(MAX_RECEIVED)
            .map(|h| decode_header(&h.raw))
            .collect();
        for name in ORIGINATING_IP_HEADERS {
            if let Some(h) = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
                && let Some(ip) = find_ipv4(&h.raw)
            {
                lines.push(format!("from X-Originating-IP: {ip}").into_bytes());
            }
        }
        let mut out = Relays::default();
        let mut in_trusted = true;
        for line in &lines {
            let Some(mut relay) = parse_received(line) else {
                continue;
            };
            if in_trusted && !is_private(&relay.ip) && relay.auth.is_empty() {
                in_trusted = false;
            }
            relay.internal = in_trusted;
            if in_trusted {
                out.trusted.push(relay);
            } else {
                out.untrusted.push(relay);
            }
        }
        out
    }

    /// The four pseudo-headers with their values (internal and external are the
    /// trusted and untrusted relays, as without configured networks).
    pub fn pseudo_headers(&self) -> [(&'static str, Vec<u8>); 4] {
        let render = |rs: &[Relay]| {
            rs.iter()
                .map(Relay::as_string)
                .collect::<Vec<_>>()
                .join(" ")
                .into_bytes()
        };
        let (t, u) = (render(&self.trusted), render(&self.untrusted));
        [
            (PSEUDO_HEADERS[0], t.clone()),
            (PSEUDO_HEADERS[1], u.clone()),
            (PSEUDO_HEADERS[2], t),
            (PSEUDO_HEADERS[3], u),
        ]
    }

    /// The value of an X-Spam-Relays-* pseudo-header by (any-case) name.
    pub fn pseudo_header(&self, name: &str) -> Option<Vec<u8>> {
        let lower = name.to_ascii_lowercase();
        self.pseudo_headers()
            .into_iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, v)| v)
    }
}

/// SpamAssassin's IP_PRIVATE for IPv4.
fn is_private(ip: &str) -> bool {
    let o: Vec<u8> = ip.split('.').filter_map(|p| p.parse().ok()).collect();
    if o.len() != 4 {
        // IPv6 and anything odd: only loopback counts as private here.
        return ip == "::1";
    }
    matches!(
        (o[0], o[1]),
        (10 | 127, _) | (169, 254) | (172, 16..=31) | (192, 168) | (100, 64..=127)
    )
}

/// The first dotted-quad IPv4 address in a text.
fn find_ipv4(text: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit()
            && (i == 0 || !text[i - 1].is_ascii_alphanumeric() && text[i - 1] != b'.')
        {
            if let Some((ip, _)) = ipv4_at(&text[i..]) {
                return Some(ip);
            }
            i += text[i..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || **c == b'.')
                .count();
            continue;
        }
        i += 1;
    }
    None
}

/// A dotted-quad IPv4 address at the start of `text`, with its length.
fn ipv4_at(text: &[u8]) -> Option<(String, usize)> {
    let mut parts = 0;
    let mut i = 0;
    loop {
        let digits = text[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 3 {
            return None;
        }
        let n: u16 = std::str::from_utf8(&text[i..i + digits])
            .ok()?
            .parse()
            .ok()?;
        if n > 255 {
            return None;
        }
        i += digits;
        parts += 1;
        if parts == 4 {
            break;
        }
        if text.get(i) != Some(&b'.') {
            return None;
        }
        i += 1;
    }
    if text.get(i).is_some_and(|c| {
        c.is_ascii_digit() || *c == b'.' && text.get(i + 1).is_some_and(u8::is_ascii_digit)
    }) {
        return None;
    }
    Some((String::from_utf8_lossy(&text[..i]).into_owned(), i))
}

/// The word after `keyword` (matched case-insensitively as a whole word).
#[expect(
    clippy::string_slice,
    reason = "indexes found in the ASCII-lowercased copy, whose byte layout is the same"
)]
fn word_after<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find(keyword) {
        let at = from + p;
        let before_ok = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
        let end = at + keyword.len();
        if before_ok
            && lower
                .as_bytes()
                .get(end)
                .is_some_and(u8::is_ascii_whitespace)
        {
            return text[end..].split_whitespace().next();
        }
        from = end;
    }
    None
}

/// Characters SpamAssassin replaces with '!' in relay fields.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_whitespace()
                || c == '['
                || c == ']'
                || c == '('
                || c == ')'
                || c == '='
                || c == ';'
            {
                '!'
            } else {
                c
            }
        })
        .collect()
}

/// Parses one unfolded Received line into a relay; `None` when it names no
/// connecting IP (local submissions, qmail's "invoked by" lines, garbage).
#[expect(
    clippy::string_slice,
    reason = "indexes found in the ASCII-lowercased copy or at ASCII bytes"
)]
fn parse_received(line: &[u8]) -> Option<Relay> {
    let text = String::from_utf8_lossy(line);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("from x-originating-ip: ") {
        let ip = text["from X-Originating-IP: ".len()..].trim().to_string();
        return Some(Relay {
            ip,
            ..Relay::default()
        });
    }
    let rest = lower.strip_prefix("from ")?;
    // The "from" clause runs to " by ".
    let from_end = rest.find(" by ").map_or(rest.len(), |p| p);
    let from_clause = &text[5..5 + from_end];
    let after = &text[(5 + from_end).min(text.len())..];
    let mut relay = Relay::default();
    // The IP: bracketed first, else in parentheses, else anywhere in the clause.
    let fb = from_clause.as_bytes();
    let mut ip_pos = None;
    for (i, &c) in fb.iter().enumerate() {
        if (c == b'[' || c == b'(')
            && let Some((ip, len)) = ipv4_at(&fb[i + 1..])
            && matches!(fb.get(i + 1 + len), Some(b']' | b')' | b':'))
        {
            ip_pos = Some((i, ip));
            break;
        }
    }
    let (ip_at, ip) = match ip_pos {
        Some(p) => p,
        None => {
            let ip = find_ipv4(fb)?;
            (from_clause.find(&ip).unwrap_or(0), ip)
        }
    };
    relay.ip = ip;
    let first_word = from_clause.split_whitespace().next().unwrap_or("");
    let lower_clause = from_clause.to_ascii_lowercase();
    let helo_param = word_after(from_clause, "helo")
        .or_else(|| {
            lower_clause.find("helo=").map(|p| {
                from_clause[p + 5..]
                    .split([' ', ')', ']'])
                    .next()
                    .unwrap_or("")
            })
        })
        .map(|h| h.trim_matches(|c| c == ')' || c == '(').to_string());
    // The word just before the IP's opening bracket, inside the same parenthesis:
    // "(rdns [ip])" or "(ident@rdns [ip])".
    let before_ip = from_clause[..ip_at].trim_end();
    let paren_word = before_ip
        .rsplit(['(', ' '])
        .next()
        .filter(|w| !w.is_empty() && before_ip.contains('('))
        .unwrap_or("");
    if first_word.starts_with('[') || first_word.starts_with('(') {
        // Exim: "from [ip] (helo=x)".
        relay.helo = helo_param.unwrap_or_default();
    } else if lower_clause.contains("helo=") {
        // Exim: "from rdns ([ip] helo=x)".
        relay.rdns = first_word.to_string();
        relay.helo = helo_param.unwrap_or_default();
    } else if let Some(h) = helo_param {
        // qmail: "from rdns (HELO x) (ip)".
        relay.helo = h;
        if !first_word.eq_ignore_ascii_case("unknown") {
            relay.rdns = first_word.to_string();
        }
    } else {
        // Sendmail, Postfix: "from helo (rdns [ip])".
        relay.helo = first_word.to_string();
        let (ident, rdns) = paren_word.rsplit_once('@').unwrap_or(("", paren_word));
        relay.ident = ident.to_string();
        if !rdns.eq_ignore_ascii_case("unknown") && ipv4_at(rdns.as_bytes()).is_none() {
            relay.rdns = rdns.to_string();
        }
    }
    relay.by = word_after(after, "by")
        .unwrap_or("")
        .trim_end_matches(';')
        .to_string();
    relay.id = word_after(after, "id")
        .unwrap_or("")
        .trim_end_matches([';', ','])
        .to_string();
    if let Some(p) = lower.find("envelope-from") {
        let v = text[p + "envelope-from".len()..]
            .trim_start_matches([' ', '='])
            .split([' ', ')', ';'])
            .next()
            .unwrap_or("");
        relay.envfrom = v.trim_matches(['<', '>']).to_string();
    }
    if let Some(proto) = word_after(after, "with") {
        let p = proto.to_ascii_uppercase();
        if matches!(
            p.trim_end_matches(';'),
            "ESMTPA" | "ESMTPSA" | "LMTPA" | "LMTPSA" | "ASMTP"
        ) {
            relay.auth = p.trim_end_matches(';').to_string();
        }
    }
    for f in [
        &mut relay.rdns,
        &mut relay.helo,
        &mut relay.by,
        &mut relay.ident,
        &mut relay.envfrom,
        &mut relay.id,
    ] {
        *f = clean(f);
    }
    Some(relay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Message;

    fn relay(line: &str) -> Relay {
        parse_received(line.as_bytes()).expect("parses")
    }

    #[test]
    fn sendmail_and_postfix() {
        let r = relay(
            "from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.org \
             (8.12.5/8.12.5) with ESMTP id g7M1abc123 for <x@example.org>",
        );
        assert_eq!(r.ip, "192.0.2.1");
        assert_eq!(r.rdns, "mail.example.com");
        assert_eq!(r.helo, "mail.example.com");
        assert_eq!(r.by, "mx.example.org");
        assert_eq!(r.id, "g7M1abc123");
        let r = relay("from helo.example (unknown [198.51.100.9]) by mx.example.org (Postfix)");
        assert_eq!((r.rdns.as_str(), r.helo.as_str()), ("", "helo.example"));
        let r = relay("from bob (bob@host.example [203.0.113.5]) by mx.example.org");
        assert_eq!((r.ident.as_str(), r.rdns.as_str()), ("bob", "host.example"));
    }

    #[test]
    fn exim_and_qmail() {
        let r = relay(
            "from [203.0.113.7] (helo=pc1) by mx.example.org with esmtp (Exim 3.35 #1) id 17abc-0001-00",
        );
        assert_eq!(
            (r.ip.as_str(), r.helo.as_str(), r.rdns.as_str()),
            ("203.0.113.7", "pc1", "")
        );
        let r = relay("from host.example ([203.0.113.8] helo=pc2) by mx.example.org");
        assert_eq!((r.rdns.as_str(), r.helo.as_str()), ("host.example", "pc2"));
        let r = relay("from unknown (HELO pc3) (203.0.113.9) by mx.example.org with SMTP");
        assert_eq!(
            (r.ip.as_str(), r.helo.as_str(), r.rdns.as_str()),
            ("203.0.113.9", "pc3", "")
        );
        assert!(parse_received(b"(qmail 1234 invoked by uid 500); 1 Aug 2002").is_none());
        assert!(parse_received(b"by mx.example.org with local").is_none());
    }

    #[test]
    fn trust_is_inferred() {
        let m = Message::parse(
            b"Received: from inside (inside [10.0.0.2]) by mx.example.org\n\
              Received: from spammer.example (dsl.example.net [198.51.100.20]) by inside\n\
              Received: from pc (pc [192.168.1.5]) by spammer.example\n\
              X-Originating-IP: [203.0.113.1]\n\nbody\n",
        );
        let r = Relays::parse(&m.headers);
        assert_eq!(r.trusted.len(), 1);
        assert_eq!(r.untrusted.len(), 3);
        assert_eq!(r.untrusted[2].ip, "203.0.113.1");
        let u = String::from_utf8(r.pseudo_header("X-Spam-Relays-Untrusted").unwrap()).unwrap();
        assert!(u.starts_with(
            "[ ip=198.51.100.20 rdns=dsl.example.net helo=spammer.example by=inside "
        ));
        assert!(u.contains(" intl=0 "));
        let t = String::from_utf8(r.pseudo_header("X-Spam-Relays-Internal").unwrap()).unwrap();
        assert!(t.contains("ip=10.0.0.2 ") && t.contains(" intl=1 "));
    }

    #[test]
    fn hostile_lines() {
        for l in [
            "from",
            "from [",
            "from (1.2.3.4",
            "from x (y [999.1.1.1]) by",
            "from \u{fffd}[1.2.3.4] by",
        ] {
            let _ = parse_received(l.as_bytes());
        }
        assert_eq!(find_ipv4(b"v1.2.3.4.5"), None);
        assert_eq!(find_ipv4(b"at 1.2.3.4."), Some("1.2.3.4".into()));
    }
}
