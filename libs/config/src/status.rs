//! RFC 3463 enhanced status codes (`class.subject.detail`) as they appear
//! in access table results, content check actions, SMTP replies and
//! delivery reports: one syntax check for every reader of them.

/// The class digit of an enhanced status code: one digit, then a subject
/// and a detail of one to three digits each. None when `code` is not one.
pub fn class(code: &str) -> Option<char> {
    let mut parts = code.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let digits = |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let mut class_chars = class.chars();
    match (class_chars.next(), class_chars.next()) {
        (Some(c), None) if c.is_ascii_digit() && digits(subject) && digits(detail) => Some(c),
        _ => None,
    }
}

/// An enhanced status code of class 2, 4 or 5, the classes RFC 3463
/// defines.
pub fn is_valid(code: &str) -> bool {
    matches!(class(code), Some('2' | '4' | '5'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_not_codes() {
        assert_eq!(class("5.7.1"), Some('5'));
        assert_eq!(class("4.123.999"), Some('4'));
        assert_eq!(class("2.0.0"), Some('2'));
        assert_eq!(class("3.1.1"), Some('3'));
        for bad in [
            "", "5", "5.7", "5.7.1.1", "55.7.1", "5.1234.1", "5..1", "5.x.1", "x.1.1", "5.7.1 ",
            "５.7.1",
        ] {
            assert_eq!(class(bad), None, "{bad:?}");
        }
        assert!(is_valid("4.7.1"));
        assert!(!is_valid("3.1.1"));
        assert!(!is_valid("1.0.0"));
    }
}
