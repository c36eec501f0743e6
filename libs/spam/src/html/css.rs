//! The CSS and colour handling of SpamAssassin's HTML.pm: which colours text is
//! drawn in, whether it is displayed, and HTML's colour names and notations.

use std::sync::LazyLock;

use pcre2::bytes::Regex;

use super::{Style, colors, is_perl_space};

/// `#rrggbb` (lowercase) as numbers.
pub(super) fn rgb(color: &str) -> Option<[u8; 3]> {
    let hex = color.strip_prefix('#').unwrap_or(color);
    if hex.len() != 6 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let part = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([part(0)?, part(2)?, part(4)?])
}

/// A style attribute's colours, display and visibility.
#[expect(
    clippy::string_slice,
    reason = "cuts at an index rfind returned in the same string"
)]
pub(super) fn apply_css(style: &mut Style, css: &[u8], parent_bg: &str) {
    for decl in css.split(|&c| c == b';') {
        let decl = String::from_utf8_lossy(decl);
        if let Some((background, value)) = css_color(&decl) {
            let mut value = value.to_lowercase();
            if let Some(at) = value.rfind("important")
                && value[at..].len() == "important".len()
            {
                let before = value[..at].trim_end_matches(is_perl_space_char);
                if let Some(bang) = before.strip_suffix('!') {
                    value = bang.trim_end_matches(is_perl_space_char).to_string();
                }
            }
            let color = if value.contains("rgb") {
                let digits: String = value
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == ',')
                    .collect();
                let mut parts = digits.split(',').map(|p| {
                    p.bytes().fold(0u64, |n, d| {
                        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    })
                });
                let mut channel = || parts.next().unwrap_or(0).min(255);
                Some(format!(
                    "#{:02x}{:02x}{:02x}",
                    channel(),
                    channel(),
                    channel()
                ))
            } else if value == "inherit" {
                None
            } else if value == "transparent" {
                Some(value)
            } else {
                Some(name_to_rgb(value.as_bytes()))
            };
            if let Some(c) = color {
                if background {
                    style.bg = c;
                } else {
                    style.fg = c;
                }
            }
        } else if let Some(value) = css_value(&decl, "background", false) {
            let layers = css_background_layers(&value.to_lowercase());
            if let Some(c) = layers
                .last()
                .into_iter()
                .flatten()
                .map(|v| name_to_rgb(v.as_bytes()))
                .find(|c| c != "invalid")
            {
                style.bg = c;
            }
        } else if let Some((name, value)) = css_property(&decl) {
            match name {
                "display" => style.undisplayed = value.eq_ignore_ascii_case("none"),
                "visibility" => style.hidden = value.eq_ignore_ascii_case("hidden"),
                _ => {}
            }
        }
    }
    if style.bg == "transparent" {
        style.bg = parent_bg.to_string();
    }
    if style.fg == "transparent" {
        style.fg = style.bg.clone();
    }
}

fn is_perl_space_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_perl_space)
}

/// The value of `^\s*NAME:\s*(.+?)\s*$`: `.` does not cross a line break.
fn css_value<'a>(decl: &'a str, name: &str, caseless: bool) -> Option<&'a str> {
    let d = decl.trim_start_matches(is_perl_space_char);
    let head = d.as_bytes().get(..name.len())?;
    let matches = if caseless {
        head.eq_ignore_ascii_case(name.as_bytes())
    } else {
        head == name.as_bytes()
    };
    if !matches || d.as_bytes().get(name.len()) != Some(&b':') {
        return None;
    }
    // The name and colon are ASCII, so the value starts on a character boundary.
    let value = d
        .get(name.len() + 1..)?
        .trim_start_matches(is_perl_space_char)
        .trim_end_matches(is_perl_space_char);
    (!value.is_empty() && !value.contains('\n')).then_some(value)
}

/// `color:` or `background-color:` (any case), with whether it is the background.
fn css_color(decl: &str) -> Option<(bool, &str)> {
    css_value(decl, "color", true)
        .map(|v| (false, v))
        .or_else(|| css_value(decl, "background-color", true).map(|v| (true, v)))
}

/// `^\s*([a-z_-]+)\s*:\s*(\S.*?)\s*$` (any case; the name as written).
#[expect(clippy::string_slice, reason = "cuts after a run of ASCII letters")]
fn css_property(decl: &str) -> Option<(&str, &str)> {
    let d = decl.trim_start_matches(is_perl_space_char);
    let name_len = d
        .bytes()
        .take_while(|c| c.is_ascii_alphabetic() || matches!(c, b'_' | b'-'))
        .count();
    if name_len == 0 {
        return None;
    }
    let rest = d[name_len..]
        .trim_start_matches(is_perl_space_char)
        .strip_prefix(':')?;
    let value = rest
        .trim_start_matches(is_perl_space_char)
        .trim_end_matches(is_perl_space_char);
    (!value.is_empty() && !value.contains('\n')).then_some((&d[..name_len], value))
}

/// parse_css_background: the layers of a CSS background, each a list of values.
fn css_background_layers(background: &str) -> Vec<Vec<String>> {
    let (mut layers, mut tokens, mut token) = (Vec::new(), Vec::new(), String::new());
    // 0: between values, 1: in parentheses, 2: in "...", 3: in '...'.
    let mut stack: Vec<u8> = Vec::new();
    let mut state = 0u8;
    for ch in background.chars() {
        match (state, ch) {
            (0, ' ') => {
                if !token.is_empty() {
                    tokens.push(std::mem::take(&mut token));
                }
            }
            (0, ',') => {
                if !token.is_empty() {
                    tokens.push(std::mem::take(&mut token));
                }
                layers.push(std::mem::take(&mut tokens));
            }
            (0 | 1, '(' | '"' | '\'') if !(state == 1 && ch == '(') => {
                token.push(ch);
                stack.push(state);
                state = match ch {
                    '(' => 1,
                    '"' => 2,
                    _ => 3,
                };
            }
            (1, ')') => {
                token.push(ch);
                tokens.push(std::mem::take(&mut token));
                state = stack.pop().unwrap_or(0);
            }
            (2, '"') | (3, '\'') => {
                token.push(ch);
                state = stack.pop().unwrap_or(0);
            }
            _ => token.push(ch),
        }
    }
    if !token.is_empty() {
        tokens.push(token);
    }
    if !tokens.is_empty() {
        layers.push(tokens);
    }
    layers
}

/// name_to_rgb: a colour as `#rrggbb`, or `invalid`.
pub(super) fn name_to_rgb(color: &[u8]) -> String {
    static HEX_OR_RGB: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)^[#a-f0-9]*$|rgb\([\d%, ]*\)").ok());
    static RGB_PERCENT: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)rgb\((\d+)%,\s*(\d+)%,\s*(\d+)%\s*\)").ok());
    static RGB: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)rgb\((\d+),\s*(\d+),\s*(\d+)\s*\)").ok());
    let lower = String::from_utf8_lossy(color).to_lowercase();
    let c = lower.trim_matches(is_perl_space_char);
    if let Ok(i) = colors::NAMED_COLORS.binary_search_by(|(n, _)| (*n).cmp(c)) {
        return format!("#{:06x}", colors::NAMED_COLORS[i].1);
    }
    let is_match = |re: &LazyLock<Option<Regex>>| {
        re.as_ref()
            .is_some_and(|r| r.is_match(c.as_bytes()).unwrap_or(false))
    };
    if !is_match(&HEX_OR_RGB) {
        return "invalid".into();
    }
    let numbers = |re: &LazyLock<Option<Regex>>, c: &str| -> Option<[f64; 3]> {
        let caps = re.as_ref()?.captures(c.as_bytes()).ok()??;
        let n = |i: usize| -> Option<f64> {
            std::str::from_utf8(caps.get(i)?.as_bytes())
                .ok()?
                .parse()
                .ok()
        };
        Some([n(1)?, n(2)?, n(3)?])
    };
    let dec2hex = |n: f64| format!("{:02x}", n as u64);
    let mut c = c.to_string();
    if let Some(p) = numbers(&RGB_PERCENT, &c) {
        c = format!(
            "#{}{}{}",
            dec2hex((p[0] / 100.0 * 255.0).trunc()),
            dec2hex((p[1] / 100.0 * 255.0).trunc()),
            dec2hex((p[2] / 100.0 * 255.0).trunc())
        );
    }
    if let Some(d) = numbers(&RGB, &c) {
        c = format!("#{}{}{}", dec2hex(d[0]), dec2hex(d[1]), dec2hex(d[2]));
    }
    if !c.starts_with('#') {
        return "invalid".into();
    }
    let mut hex: String = c.chars().filter(char::is_ascii_hexdigit).collect();
    if hex.len() > 6 {
        hex.truncate(6);
    }
    if hex.len() > 3 && hex.len() < 6 {
        hex.truncate(3);
    }
    while !hex.len().is_multiple_of(3) {
        hex.push('0');
    }
    if hex.len() == 3 {
        hex = hex.chars().flat_map(|ch| [ch, ch]).collect();
    }
    format!("#{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours() {
        assert_eq!(name_to_rgb(b" Red "), "#ff0000");
        assert_eq!(name_to_rgb(b"#abc"), "#aabbcc");
        assert_eq!(name_to_rgb(b"#abcd"), "#aabbcc");
        assert_eq!(name_to_rgb(b"#1234567"), "#123456");
        assert_eq!(name_to_rgb(b"ffffff"), "invalid");
        assert_eq!(name_to_rgb(b"rgb(255, 0, 16)"), "#ff0010");
        assert_eq!(name_to_rgb(b"rgb(100%, 0%, 50%)"), "#ff007f");
        assert_eq!(name_to_rgb(b"blurple"), "invalid");
        assert_eq!(
            css_background_layers("url(\"a b.png\") no-repeat, #fff"),
            [vec!["url(\"a b.png\")", "no-repeat"], vec!["#fff"]]
        );
    }
}
