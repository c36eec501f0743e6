//! What cleanup reads from and adds to the message header.

use mailgate_ipc::envelope::Envelope;

use crate::Settings;

/// What cleanup needs to know about the header the client sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    pub message_id: Option<String>,
    pub has_date: bool,
}

/// Reads the header section (up to the first empty line, or all of a
/// message that has no body). Header names are matched case-insensitively;
/// folded values are unfolded.
pub fn scan(content: &[u8]) -> HeaderFacts {
    let mut facts = HeaderFacts::default();
    let mut current: Option<(String, String)> = None;
    let finish = |field: Option<(String, String)>, facts: &mut HeaderFacts| {
        if let Some((name, value)) = field {
            match name.as_str() {
                "message-id" if facts.message_id.is_none() => {
                    facts.message_id = Some(value.trim().to_string())
                }
                "date" => facts.has_date = true,
                _ => {}
            }
        }
    };
    for line in content.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, value)) = current.as_mut() {
                value.push_str(&text);
            }
            continue;
        }
        finish(current.take(), &mut facts);
        match text.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(' ') => {
                current = Some((name.to_ascii_lowercase(), value.to_string()));
            }
            // Not a header line: the header section has ended (a message
            // without the empty separator line).
            _ => break,
        }
    }
    finish(current.take(), &mut facts);
    facts
}

/// The Received header in Postfix's form:
/// `from HELO (NAME [ADDR])\r\n\tby MYHOSTNAME (MAIL_NAME) with PROTO id ID\r\n\tfor <RCPT>; DATE`
/// ("for" only when there is exactly one recipient, as Postfix does, so a
/// header never lists the other recipients of a message; the recipient as
/// the client gave it, before address rewriting). `comments` go
/// on their own lines between "from" and "by" (smtpd's TLS details and
/// authenticated sender; a comment may itself be folded with `\n\t`).
pub fn received(
    settings: &Settings,
    envelope: &Envelope,
    comments: &[String],
    for_recipient: Option<&str>,
    queue_id: &str,
    unix_now: i64,
) -> String {
    let client = &envelope.client;
    let comments: String = comments
        .iter()
        .map(|c| format!("\r\n\t{}", c.replace("\r\n", "\n").replace('\n', "\r\n")))
        .collect();
    let mut header = format!(
        "Received: from {} ({} [{}]){comments}\r\n\tby {} ({}) with {} id {}",
        if client.helo.is_empty() {
            "unknown"
        } else {
            &client.helo
        },
        client.name,
        client.addr,
        settings.myhostname,
        settings.mail_name,
        client.protocol,
        queue_id
    );
    if let Some(only) = for_recipient {
        header.push_str(&format!("\r\n\tfor <{only}>"));
    }
    header.push_str(&format!("; {}\r\n", mailgate_log::rfc5322_date(unix_now)));
    header
}

/// A Message-ID in Postfix's form, unique because queue IDs are.
pub fn message_id(settings: &Settings, queue_id: &str, unix_now: i64) -> String {
    let stamp = mailgate_log::local_time(unix_now)
        .map(|tm| {
            format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            )
        })
        .unwrap_or_default();
    format!("<{stamp}.{queue_id}@{}>", settings.myorigin)
}

/// The message without the Authentication-Results fields that claim to
/// be ours (RFC 8601 section 5: a field with this server's authserv-id
/// that arrives from outside is a forgery; the gateway adds its own after
/// its checks). None when there is none to remove. Only the header section
/// is looked at.
pub fn strip_our_authentication_results(content: &[u8], authserv_id: &str) -> Option<Vec<u8>> {
    // Only the header is looked at; the body is copied whole, and only
    // when a field is removed (most messages have none of ours).
    let mut drop_ranges: Vec<(usize, usize)> = Vec::new();
    let mut dropping = false;
    let mut offset = 0;
    for line in content.split_inclusive(|&b| b == b'\n') {
        let start = offset;
        offset += line.len();
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break;
        } else if bare[0] == b' ' || bare[0] == b'\t' {
            if dropping {
                // A continuation line: the folded rest of the field.
                push_range(&mut drop_ranges, start, offset);
            }
            continue;
        }
        dropping = false;
        let Some(colon) = bare.iter().position(|&b| b == b':') else {
            break;
        };
        let name = &bare[..colon];
        if name.is_empty() || name.contains(&b' ') {
            break;
        }
        if name.eq_ignore_ascii_case(b"authentication-results") {
            // The authserv-id may be on a continuation line.
            let value = field_value(content, line);
            if authserv_id_of(&value).eq_ignore_ascii_case(authserv_id) {
                dropping = true;
                push_range(&mut drop_ranges, start, offset);
            }
        }
    }
    if drop_ranges.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(content.len());
    let mut kept = 0;
    for (from, to) in drop_ranges {
        out.extend_from_slice(&content[kept..from]);
        kept = to;
    }
    out.extend_from_slice(&content[kept..]);
    Some(out)
}

/// Adds [from, to) to ranges, joining it to the last one when they touch.
fn push_range(ranges: &mut Vec<(usize, usize)>, from: usize, to: usize) {
    match ranges.last_mut() {
        Some(last) if last.1 == from => last.1 = to,
        _ => ranges.push((from, to)),
    }
}

/// The unfolded value of the field starting at `line` (a slice of
/// `content`).
fn field_value(content: &[u8], line: &[u8]) -> String {
    let start = line.as_ptr() as usize - content.as_ptr() as usize;
    let mut value = String::new();
    for (i, piece) in content[start..].split(|&b| b == b'\n').enumerate() {
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        if i == 0 {
            let text = String::from_utf8_lossy(piece);
            value.push_str(text.split_once(':').map_or("", |(_, v)| v));
        } else if piece.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            value.push_str(&String::from_utf8_lossy(piece));
        } else {
            break;
        }
    }
    value
}

/// The authserv-id of an Authentication-Results value (RFC 8601 section
/// 2.2): the first token, after any comments, lower case.
pub fn authserv_id_of(value: &str) -> String {
    let mut rest = value.trim_start();
    while let Some(after) = rest.strip_prefix('(') {
        let mut depth = 1;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = after[end..].trim_start();
    }
    rest.split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::envelope::{ClientInfo, Recipient};

    #[test]
    fn scan_finds_folded_message_id_and_date() {
        let facts =
            scan(b"Subject: x\r\nMessage-ID:\r\n <a@b>\r\nDATE: now\r\n\r\nMessage-ID: <no>\r\n");
        assert_eq!(facts.message_id.as_deref(), Some("<a@b>"));
        assert!(facts.has_date);
        assert_eq!(
            scan(b"\r\nMessage-ID: <body@x>\r\n"),
            HeaderFacts::default()
        );
        assert_eq!(
            scan(b"no header here\r\nDate: x\r\n"),
            HeaderFacts::default()
        );
    }

    #[test]
    fn authserv_ids() {
        assert_eq!(authserv_id_of("gw.example.com; spf=pass"), "gw.example.com");
        assert_eq!(
            authserv_id_of(" GW.Example.COM;dkim=pass"),
            "gw.example.com"
        );
        assert_eq!(
            authserv_id_of("(forged) gw.example.com 1; none"),
            "gw.example.com"
        );
        assert_eq!(authserv_id_of("\"gw.example.com\"; none"), "gw.example.com");
        assert_eq!(authserv_id_of("(unclosed"), "");
        assert_eq!(authserv_id_of(""), "");
    }

    #[test]
    fn only_our_authentication_results_are_removed() {
        let message =
            b"Authentication-Results: GW.example.com;\r\n\tdkim=pass header.d=bank.example\r\n\
Subject: x\r\n\
Authentication-Results:\r\n gw.example.com; spf=pass\r\n\
Authentication-Results: mx.other.example; dkim=fail\r\n\
\r\n\
Authentication-Results: gw.example.com; in the body\r\n";
        let out = strip_our_authentication_results(message, "gw.example.com").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Subject: x\r\nAuthentication-Results: mx.other.example; dkim=fail\r\n\r\n\
Authentication-Results: gw.example.com; in the body\r\n"
        );
        assert_eq!(
            strip_our_authentication_results(b"Subject: x\r\n\r\nbody\r\n", "gw.example.com"),
            None
        );
    }

    #[test]
    fn received_has_postfix_shape() {
        mailgate_log::init("mailgate", "cleanup");
        let settings = Settings {
            myhostname: "gw.example.com".into(),
            mail_name: "mailgate".into(),
            myorigin: "example.com".into(),
            ..Settings::default()
        };
        let mut envelope = Envelope {
            sender: "a@example.org".into(),
            recipients: vec![Recipient::new("b@example.com".into(), None)],
            client: ClientInfo {
                name: "unknown".into(),
                addr: "192.0.2.1".into(),
                port: 4000,
                helo: "client.example.org".into(),
                protocol: "ESMTP".into(),
            },
            body_type: None,
            smtputf8: false,
            dsn_ret: None,
            dsn_envid: None,
            arrival: 0,
        };
        let header = received(
            &settings,
            &envelope,
            &[],
            Some("b@example.com"),
            "0123ABC",
            0,
        );
        assert!(header.starts_with(
            "Received: from client.example.org (unknown [192.0.2.1])\r\n\tby gw.example.com (mailgate) with ESMTP id 0123ABC\r\n\tfor <b@example.com>; "
        ));
        assert!(header.ends_with("\r\n"));
        envelope
            .recipients
            .push(Recipient::new("c@example.com".into(), None));
        assert!(!received(&settings, &envelope, &[], None, "X", 0).contains("for <"));
        let date = mailgate_log::rfc5322_date(0);
        assert!(date.contains(" 1970 ") || date.contains(" 1969 "), "{date}");
    }
}
