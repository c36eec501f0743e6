//! SMTP command lines: the verb, its argument, the ESMTP parameters of MAIL
//! and RCPT. A parse failure carries the reply the client gets.

use mailgate_ipc::envelope::BodyType;

use crate::address::{Address, ReversePath, parse_path};
use crate::reply::Reply;

/// The command verbs, for the per-command counters of the disconnect log
/// line and for "lost connection after VERB".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Helo,
    Ehlo,
    Starttls,
    Xforward,
    Auth,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Vrfy,
    Help,
    Quit,
    Unknown,
}

impl Verb {
    /// In the order Postfix prints its counters.
    pub const ALL: [Verb; 14] = [
        Verb::Helo,
        Verb::Ehlo,
        Verb::Starttls,
        Verb::Xforward,
        Verb::Auth,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Rset,
        Verb::Noop,
        Verb::Vrfy,
        Verb::Help,
        Verb::Quit,
        Verb::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Starttls => "STARTTLS",
            Verb::Xforward => "XFORWARD",
            Verb::Auth => "AUTH",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Vrfy => "VRFY",
            Verb::Help => "HELP",
            Verb::Quit => "QUIT",
            Verb::Unknown => "UNKNOWN",
        }
    }

    /// NOOP, VRFY, RSET and HELP do not move a transaction forward; a flood
    /// of them is counted against smtpd_junk_command_limit.
    pub fn is_junk(self) -> bool {
        matches!(self, Verb::Noop | Verb::Vrfy | Verb::Rset | Verb::Help)
    }

    fn from_word(word: &str) -> Verb {
        Verb::ALL
            .into_iter()
            .find(|v| *v != Verb::Unknown && v.name().eq_ignore_ascii_case(word))
            .unwrap_or(Verb::Unknown)
    }
}

/// MAIL FROM parameters (RFC 1870, 6152, 6531, 3461).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    pub smtputf8: bool,
    pub ret: Option<String>,
    pub envid: Option<String>,
}

/// RCPT TO parameters (RFC 3461). NOTIFY is checked but not yet kept: the
/// envelope has no field for it until DSN is implemented.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub orcpt: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Starttls,
    /// The attribute=value list, unparsed (smtpd checks who may send it
    /// before it reads it).
    Xforward(String),
    /// The mechanism and the initial response, as one argument.
    Auth(String),
    Mail(ReversePath, MailParams),
    Rcpt(Address, RcptParams),
    Data,
    Rset,
    Noop,
    Vrfy(String),
    Help,
    Quit,
}

/// What the parser needs from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ParseOptions {
    pub smtputf8_enable: bool,
    pub strict_rfc821_envelopes: bool,
}

/// Parses one command line (without its line end).
pub fn parse(line: &str, opts: ParseOptions) -> (Verb, Result<Command, Reply>) {
    let (word, arg) = match line.split_once(' ') {
        Some((word, arg)) => (word, arg),
        None => (line, ""),
    };
    let verb = Verb::from_word(word);
    let arg = arg.trim_matches(' ');
    let command = match verb {
        Verb::Helo => need_arg(arg, "HELO hostname").map(|a| Command::Helo(a.to_string())),
        Verb::Ehlo => need_arg(arg, "EHLO hostname").map(|a| Command::Ehlo(a.to_string())),
        Verb::Starttls => no_arg(arg, "STARTTLS", Command::Starttls),
        Verb::Xforward => Ok(Command::Xforward(arg.to_string())),
        Verb::Auth => need_arg(arg, "AUTH mechanism").map(|a| Command::Auth(a.to_string())),
        Verb::Mail => parse_mail(arg, opts),
        Verb::Rcpt => parse_rcpt(arg, opts),
        Verb::Data => no_arg(arg, "DATA", Command::Data),
        Verb::Rset => no_arg(arg, "RSET", Command::Rset),
        Verb::Quit => no_arg(arg, "QUIT", Command::Quit),
        // RFC 5321 lets NOOP and HELP take an argument, which is ignored.
        Verb::Noop => Ok(Command::Noop),
        Verb::Help => Ok(Command::Help),
        Verb::Vrfy => need_arg(arg, "VRFY address").map(|a| Command::Vrfy(a.to_string())),
        Verb::Unknown => Err(Reply::new(500, "5.5.2 Error: command not recognized")),
    };
    (verb, command)
}

fn syntax(usage: &str) -> Reply {
    Reply::new(501, format!("5.5.4 Syntax: {usage}"))
}

fn need_arg<'a>(arg: &'a str, usage: &str) -> Result<&'a str, Reply> {
    if arg.is_empty() {
        Err(syntax(usage))
    } else {
        Ok(arg)
    }
}

fn no_arg(arg: &str, usage: &str, command: Command) -> Result<Command, Reply> {
    if arg.is_empty() {
        Ok(command)
    } else {
        Err(syntax(usage))
    }
}

/// `prefix` ("FROM:" or "TO:") case-insensitively, then optional spaces
/// (Postfix accepts `MAIL FROM: <a@b>`).
fn after_prefix<'a>(arg: &'a str, prefix: &str) -> Option<&'a str> {
    let head = arg.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| arg[prefix.len()..].trim_start_matches(' '))
}

fn parse_mail(arg: &str, opts: ParseOptions) -> Result<Command, Reply> {
    let usage = || syntax("MAIL FROM:<address>");
    let rest = after_prefix(arg, "FROM:").ok_or_else(usage)?;
    let (path, params_text) = parse_path(rest, true, opts.strict_rfc821_envelopes)
        .map_err(|_| Reply::new(501, "5.1.7 Bad sender address syntax"))?;
    let mut params = MailParams::default();
    for (keyword, value) in split_params(params_text)? {
        let upper = keyword.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("SIZE", Some(v)) if is_digits(v) => {
                // A number too large for u64 is certainly over any limit.
                params.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("SIZE", _) => return Err(Reply::new(501, "5.5.4 Bad message size syntax")),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {
                params.body = Some(BodyType::SevenBit);
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                params.body = Some(BodyType::EightBitMime);
            }
            ("BODY", _) => return Err(Reply::new(501, "5.5.4 Bad BODY keyword syntax")),
            ("SMTPUTF8", None) if opts.smtputf8_enable => params.smtputf8 = true,
            ("RET", Some(v))
                if v.eq_ignore_ascii_case("FULL") || v.eq_ignore_ascii_case("HDRS") =>
            {
                params.ret = Some(v.to_ascii_uppercase());
            }
            ("RET", _) => return Err(Reply::new(501, "5.5.4 Bad RET parameter syntax")),
            // RFC 3461: at most 100 characters of xtext.
            ("ENVID", Some(v)) if v.len() <= 100 && is_xtext(v) => {
                params.envid = Some(v.to_string());
            }
            ("ENVID", _) => return Err(Reply::new(501, "5.5.4 Bad ENVID parameter syntax")),
            _ => return Err(unsupported(keyword)),
        }
    }
    Ok(Command::Mail(path, params))
}

fn parse_rcpt(arg: &str, opts: ParseOptions) -> Result<Command, Reply> {
    let usage = || syntax("RCPT TO:<address>");
    let rest = after_prefix(arg, "TO:").ok_or_else(usage)?;
    let bad = || Reply::new(501, "5.1.3 Bad recipient address syntax");
    let (path, params_text) =
        parse_path(rest, false, opts.strict_rfc821_envelopes).map_err(|_| bad())?;
    let ReversePath::Mailbox(address) = path else {
        return Err(bad());
    };
    let mut params = RcptParams::default();
    for (keyword, value) in split_params(params_text)? {
        let upper = keyword.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("NOTIFY", Some(v)) if is_notify(v) => {}
            ("NOTIFY", _) => return Err(Reply::new(501, "5.5.4 Bad NOTIFY parameter syntax")),
            ("ORCPT", Some(v)) if is_orcpt(v) => params.orcpt = Some(v.to_string()),
            ("ORCPT", _) => return Err(Reply::new(501, "5.5.4 Bad ORCPT parameter syntax")),
            _ => return Err(unsupported(keyword)),
        }
    }
    Ok(Command::Rcpt(address, params))
}

fn unsupported(keyword: &str) -> Reply {
    Reply::new(555, format!("5.5.4 Unsupported option: {keyword}"))
}

/// `KEYWORD[=value]` items separated by spaces. A keyword is letters, digits
/// and '-' (RFC 5321 esmtp-keyword), which also makes it safe to echo.
fn split_params(text: &str) -> Result<Vec<(&str, Option<&str>)>, Reply> {
    let mut out = Vec::new();
    for item in text.split(' ').filter(|s| !s.is_empty()) {
        let (keyword, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        let keyword_ok = keyword.starts_with(|c: char| c.is_ascii_alphanumeric())
            && keyword
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !keyword_ok {
            return Err(Reply::new(501, "5.5.4 Bad parameter syntax"));
        }
        out.push((keyword, value));
    }
    Ok(out)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// RFC 3461 xtext: printable ASCII but '+' and '=', or "+HH" (upper-case hex).
fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                match (b.get(i + 1), b.get(i + 2)) {
                    (Some(&h), Some(&l)) if hex(h) && hex(l) => i += 3,
                    _ => return false,
                }
            }
            b'=' => return false,
            c if (b'!'..=b'~').contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

/// NEVER, or a comma-separated set of SUCCESS, FAILURE and DELAY.
fn is_notify(s: &str) -> bool {
    if s.eq_ignore_ascii_case("NEVER") {
        return true;
    }
    s.split(',').all(|item| {
        ["SUCCESS", "FAILURE", "DELAY"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(item))
    })
}

/// `addr-type;xtext`, such as `rfc822;user+40example.com`.
fn is_orcpt(s: &str) -> bool {
    match s.split_once(';') {
        Some((kind, addr)) => {
            !kind.is_empty()
                && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !addr.is_empty()
                && addr.len() <= 500
                && is_xtext(addr)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: ParseOptions = ParseOptions {
        smtputf8_enable: true,
        strict_rfc821_envelopes: false,
    };

    fn ok(line: &str) -> Command {
        match parse(line, OPTS) {
            (_, Ok(c)) => c,
            (_, Err(r)) => panic!("{line}: {r}"),
        }
    }

    fn err(line: &str) -> String {
        match parse(line, OPTS) {
            (_, Ok(c)) => panic!("{line}: parsed as {c:?}"),
            (_, Err(r)) => r.to_string(),
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            ok("ehlo client.example"),
            Command::Ehlo("client.example".into())
        );
        assert_eq!(ok("HeLo  x "), Command::Helo("x".into()));
        assert_eq!(ok("DATA"), Command::Data);
        assert_eq!(ok("noop whatever"), Command::Noop);
        assert_eq!(ok("HELP me"), Command::Help);
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("VRFY root"), Command::Vrfy("root".into()));
        assert_eq!(parse("XYZZY", OPTS).0, Verb::Unknown);
        assert_eq!(err("XYZZY"), "500 5.5.2 Error: command not recognized");
        assert_eq!(err(""), "500 5.5.2 Error: command not recognized");
        assert_eq!(err("EHLO"), "501 5.5.4 Syntax: EHLO hostname");
        assert_eq!(err("DATA now"), "501 5.5.4 Syntax: DATA");
        assert_eq!(err("VRFY"), "501 5.5.4 Syntax: VRFY address");
    }

    #[test]
    fn mail_from() {
        let Command::Mail(path, params) = ok("MAIL FROM:<a@b.example>") else {
            panic!()
        };
        assert_eq!(path.to_string(), "a@b.example");
        assert_eq!(params, MailParams::default());
        assert!(matches!(
            ok("mail from: <>"),
            Command::Mail(ReversePath::Null, _)
        ));
        let Command::Mail(_, params) =
            ok("MAIL FROM:<a@b.example> SIZE=1000 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1")
        else {
            panic!()
        };
        assert_eq!(
            params,
            MailParams {
                size: Some(1000),
                body: Some(BodyType::EightBitMime),
                smtputf8: true,
                ret: Some("HDRS".into()),
                envid: Some("QQ+2B1".into()),
            }
        );
        let Command::Mail(_, params) = ok("MAIL FROM:<> SIZE=99999999999999999999999") else {
            panic!()
        };
        assert_eq!(params.size, Some(u64::MAX));
        assert_eq!(err("MAIL <a@b>"), "501 5.5.4 Syntax: MAIL FROM:<address>");
        assert_eq!(
            err("MAIL FROM:<a@@b>"),
            "501 5.1.7 Bad sender address syntax"
        );
        assert_eq!(err("MAIL FROM:"), "501 5.1.7 Bad sender address syntax");
        assert_eq!(
            err("MAIL FROM:<> SIZE=1k"),
            "501 5.5.4 Bad message size syntax"
        );
        assert_eq!(
            err("MAIL FROM:<> SIZE"),
            "501 5.5.4 Bad message size syntax"
        );
        assert_eq!(
            err("MAIL FROM:<> BODY=BINARYMIME"),
            "501 5.5.4 Bad BODY keyword syntax"
        );
        assert_eq!(
            err("MAIL FROM:<> RET=ALL"),
            "501 5.5.4 Bad RET parameter syntax"
        );
        assert_eq!(
            err("MAIL FROM:<> ENVID=a=b"),
            "501 5.5.4 Bad ENVID parameter syntax"
        );
        assert_eq!(
            err("MAIL FROM:<> ENVID=+4"),
            "501 5.5.4 Bad ENVID parameter syntax"
        );
        assert_eq!(
            err("MAIL FROM:<> AUTH=<>"),
            "555 5.5.4 Unsupported option: AUTH"
        );
        assert_eq!(err("MAIL FROM:<> =x"), "501 5.5.4 Bad parameter syntax");
        assert_eq!(
            err("MAIL FROM:<> SMTPUTF8=yes"),
            "555 5.5.4 Unsupported option: SMTPUTF8"
        );
        let no_utf8 = ParseOptions {
            smtputf8_enable: false,
            ..OPTS
        };
        assert!(parse("MAIL FROM:<> SMTPUTF8", no_utf8).1.is_err());
    }

    #[test]
    fn rcpt_to() {
        let Command::Rcpt(address, params) =
            ok("RCPT TO:<u@x.example> NOTIFY=SUCCESS,delay ORCPT=rfc822;u+40x.example")
        else {
            panic!()
        };
        assert_eq!(address.to_string(), "u@x.example");
        assert_eq!(params.orcpt.as_deref(), Some("rfc822;u+40x.example"));
        assert!(matches!(ok("rcpt to: <postmaster>"), Command::Rcpt(..)));
        assert_eq!(err("RCPT TO:<>"), "501 5.1.3 Bad recipient address syntax");
        assert_eq!(
            err("RCPT TO:<a b@c>"),
            "501 5.1.3 Bad recipient address syntax"
        );
        assert_eq!(err("RCPT <a@b>"), "501 5.5.4 Syntax: RCPT TO:<address>");
        assert_eq!(
            err("RCPT TO:<a@b> NOTIFY=NEVER,DELAY"),
            "501 5.5.4 Bad NOTIFY parameter syntax"
        );
        assert_eq!(
            err("RCPT TO:<a@b> ORCPT=a@b"),
            "501 5.5.4 Bad ORCPT parameter syntax"
        );
        assert_eq!(
            err("RCPT TO:<a@b> SIZE=1"),
            "555 5.5.4 Unsupported option: SIZE"
        );
        let strict = ParseOptions {
            strict_rfc821_envelopes: true,
            ..OPTS
        };
        assert!(parse("RCPT TO:a@b", strict).1.is_err());
        assert!(parse("RCPT TO:a@b", OPTS).1.is_ok());
    }

    #[test]
    fn xtext() {
        assert!(is_xtext("abc+2B+3D"));
        assert!(!is_xtext("a+2"));
        assert!(!is_xtext("a+2b"));
        assert!(!is_xtext("a b"));
        assert!(!is_xtext("é"));
        assert!(is_xtext(""));
    }

    #[test]
    fn junk_verbs() {
        assert!(Verb::Noop.is_junk() && Verb::Vrfy.is_junk() && Verb::Rset.is_junk());
        assert!(Verb::Help.is_junk() && !Verb::Mail.is_junk());
    }

    /// Hostile input never panics the parser (invariant 4): random lines
    /// built from the characters that matter to it.
    #[test]
    fn random_lines_do_not_panic() {
        let alphabet: Vec<char> = "<>@\"\\:,.%![] =+;-aZ09\té".chars().collect();
        let prefixes = ["MAIL FROM:", "RCPT TO:", "EHLO ", "VRFY ", ""];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut line = prefixes[(next() % 5) as usize].to_string();
            for _ in 0..(next() % 40) {
                line.push(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            let _ = parse(&line, OPTS);
        }
    }
}
