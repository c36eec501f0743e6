//! Postfix "logical line" reading, shared by main.cf, master.cf and table files:
//! `#` comments and blank lines are skipped, and a line starting with whitespace
//! continues the previous logical line.

/// One logical line, possibly joined from several physical lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    /// Physical line number (1-based) where the logical line starts.
    pub line: usize,
    /// The joined text; continuation lines are joined with one space.
    pub text: String,
    /// (byte offset in `text`, physical line) for each physical line joined in.
    segments: Vec<(usize, usize)>,
}

impl LogicalLine {
    /// The physical line that holds byte `offset` of `text`.
    pub fn line_at(&self, offset: usize) -> usize {
        self.segments
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .map_or(self.line, |(_, line)| *line)
    }
}

/// Splits `text` into logical lines. Returns the lines and the numbers of lines that
/// start with whitespace but have nothing to continue.
pub(crate) fn logical_lines(text: &str) -> (Vec<LogicalLine>, Vec<usize>) {
    let mut lines: Vec<LogicalLine> = Vec::new();
    let mut orphans = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let physical = raw.trim_end();
        let trimmed = physical.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if physical.len() != trimmed.len() {
            match lines.last_mut() {
                Some(last) => {
                    last.text.push(' ');
                    last.segments.push((last.text.len(), number));
                    last.text.push_str(trimmed);
                }
                None => orphans.push(number),
            }
            continue;
        }
        lines.push(LogicalLine {
            line: number,
            text: trimmed.to_string(),
            segments: vec![(0, number)],
        });
    }
    (lines, orphans)
}

/// Message for a line reported by `logical_lines` as an orphan continuation.
pub(crate) const ORPHAN_MESSAGE: &str =
    "line starts with whitespace but there is no line before it to continue";

/// Splits text into tokens at separator characters, keeping `{ ... }` groups (with
/// their braces) inside one token, as Postfix does. Returns (byte offset, token).
pub(crate) fn tokens(text: &str, is_separator: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        if start.is_none() {
            if is_separator(c) {
                continue;
            }
            start = Some(i);
        }
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 && is_separator(c) => {
                if let Some(s) = start.take() {
                    out.push((s, &text[s..i]));
                }
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// Postfix list syntax: items separated by whitespace and/or commas, braces group.
pub fn split_list(text: &str) -> Vec<String> {
    tokens(text, |c| c.is_whitespace() || c == ',')
        .into_iter()
        .map(|(_, t)| t.to_string())
        .collect()
}

/// Strips one level of `{ }` around a token, trimming whitespace inside.
pub fn strip_braces(token: &str) -> Option<&str> {
    token
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_and_skips_comments() {
        let text = "# comment\na = 1\n  2,\n\n   # indented comment\n\t3\nb=x\r\n";
        let (lines, orphans) = logical_lines(text);
        assert!(orphans.is_empty());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, 2);
        assert_eq!(lines[0].text, "a = 1 2, 3");
        assert_eq!(lines[0].line_at(0), 2);
        assert_eq!(lines[0].line_at(6), 3);
        assert_eq!(lines[0].line_at(9), 6);
        assert_eq!(lines[1].text, "b=x");
        assert_eq!(lines[1].line, 7);
    }

    #[test]
    fn orphan_continuation_is_reported() {
        let (lines, orphans) = logical_lines("  leading\nkey value\n");
        assert_eq!(orphans, vec![1]);
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn list_splitting_keeps_brace_groups() {
        assert_eq!(
            split_list("a, b  c,,d inline:{x=y, {z = w w}} , e"),
            vec!["a", "b", "c", "d", "inline:{x=y, {z = w w}}", "e"]
        );
        assert_eq!(split_list(" , "), Vec::<String>::new());
        assert_eq!(split_list("unbalanced:{a b"), vec!["unbalanced:{a b"]);
        assert_eq!(strip_braces("{ a = b }"), Some("a = b"));
        assert_eq!(strip_braces("a"), None);
    }
}
