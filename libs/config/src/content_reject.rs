//! The reply of a content check's REJECT (header_checks, body_checks,
//! milter_header_checks), as Postfix's cleanup_act makes it: the optional
//! text's own RFC 3463 code, or 5.7.1 in front of it; a code of class 4
//! defers (451), one that is neither 4 nor 5 is made a 4 (with a warning
//! for the log); no text is "message content rejected".

/// A REJECT's reply, and the warning to log when its code was not 4.x.x
/// or 5.x.x.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// 451 or 550.
    pub code: u16,
    /// The enhanced status code, `5.7.1` when the text has none.
    pub status: String,
    pub text: String,
    pub warning: Option<String>,
}

pub fn reject_reply(optional_text: &str) -> Rejection {
    let given = optional_text.trim();
    let (status, text) = match given.split_once(' ').unwrap_or((given, "")) {
        (first, rest) if crate::status::class(first).is_some() => (first.to_string(), rest.trim()),
        _ => ("5.7.1".to_string(), given),
    };
    let mut status = status;
    let mut warning = None;
    if !status.starts_with(['4', '5']) {
        warning = Some(format!("bad DSN action in {given} -- need 4.x.x or 5.x.x"));
        status.replace_range(0..1, "4");
    }
    Rejection {
        code: if status.starts_with('4') { 451 } else { 550 },
        status,
        text: if text.is_empty() {
            "message content rejected".to_string()
        } else {
            text.to_string()
        },
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> (u16, String, String, bool) {
        let r = reject_reply(text);
        (r.code, r.status, r.text, r.warning.is_some())
    }

    #[test]
    fn replies_as_postfix_gives_them() {
        let r = |c: u16, s: &str, t: &str, w: bool| (c, s.to_string(), t.to_string(), w);
        assert_eq!(
            reply(""),
            r(550, "5.7.1", "message content rejected", false)
        );
        assert_eq!(reply("no spam"), r(550, "5.7.1", "no spam", false));
        assert_eq!(reply("5.7.0 go away"), r(550, "5.7.0", "go away", false));
        assert_eq!(
            reply("4.7.1 try later"),
            r(451, "4.7.1", "try later", false)
        );
        assert_eq!(reply("2.0.0 odd"), r(451, "4.0.0", "odd", true));
        assert_eq!(
            reply("5.7.0"),
            r(550, "5.7.0", "message content rejected", false)
        );
        assert_eq!(reply("5.x.1 text"), r(550, "5.7.1", "5.x.1 text", false));
    }
}
