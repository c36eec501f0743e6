//! The texts SpamAssassin's body and rawbody rules read, made from decoded
//! parts as SpamAssassin makes them.

/// Body "lines" longer than this are split, as SpamAssassin's
/// split_into_array_of_short_lines does, so that regexes see bounded input.
pub(super) const MAX_LINE: usize = 2048;

/// What SpamAssassin's body and rawbody rules read of a part (its
/// body_part_scan_size and rawbody_part_scan_size).
pub(super) const BODY_PART_SCAN_SIZE: usize = 50_000;
pub(super) const RAWBODY_PART_SCAN_SIZE: usize = 500_000;

/// The first `size` bytes of a part's text, extended to the first of `breaks`
/// found within 1 KB after them.
pub(super) fn scan_prefix<'a>(text: &'a [u8], size: usize, breaks: &[u8]) -> &'a [u8] {
    let Some(rest) = text.get(size..).filter(|r| !r.is_empty()) else {
        return text;
    };
    breaks
        .iter()
        .find_map(|&b| rest.iter().position(|&c| c == b).filter(|&p| p <= 1024))
        .map_or(&text[..size], |p| &text[..size + p + 1])
}

/// SpamAssassin keeps at most 20 lines of a run of blank (white-space) lines in
/// a body: the first and the last 19.
pub(super) fn limit_blank_lines(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const MAX_BLANK: usize = 20;
    let blank = |l: &[u8]| l.iter().all(|c| c.is_ascii_whitespace() || *c == 0x0b);
    // Most bodies have no such run: find one before copying anything.
    let mut run = 0;
    let long_run = body.split_inclusive(|&c| c == b'\n').any(|l| {
        run = if blank(l) { run + 1 } else { 0 };
        run > MAX_BLANK
    });
    if !long_run {
        return std::borrow::Cow::Borrowed(body);
    }
    let lines: Vec<&[u8]> = body.split_inclusive(|&c| c == b'\n').collect();
    let mut keep = vec![true; lines.len()];
    let mut i = 0;
    let mut changed = false;
    while i < lines.len() {
        if !blank(lines[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && blank(lines[i]) {
            i += 1;
        }
        // A run at the very start keeps one line more, as SpamAssassin counts it.
        let (first_kept, run) = if start == 0 {
            (2, i.saturating_sub(1))
        } else {
            (start + 1, i - start)
        };
        if run > MAX_BLANK {
            keep[first_kept..first_kept + run - MAX_BLANK].fill(false);
            changed = true;
        }
    }
    if !changed {
        return std::borrow::Cow::Borrowed(body);
    }
    std::borrow::Cow::Owned(
        lines
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .flat_map(|(l, _)| l.iter().copied())
            .collect(),
    )
}

pub(super) fn crlf_to_lf(mut data: Vec<u8>) -> Vec<u8> {
    let mut w = 0;
    for r in 0..data.len() {
        if data[r] == b'\r' && data.get(r + 1) == Some(&b'\n') {
            continue;
        }
        data[w] = data[r];
        w += 1;
    }
    data.truncate(w);
    data
}

/// Collapses white space as SpamAssassin does for body rules: a run of white
/// space with two or more line breaks becomes one line break (white space on
/// either side of them a space), any other run a space. The lines are what body
/// rules run on.
pub(super) fn paragraphs(text: &[u8], out: &mut Vec<Vec<u8>>) {
    let is_space = |c: u8| c.is_ascii_whitespace() || c == 0x0b;
    let mut line: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !is_space(text[i]) {
            line.push(text[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_space(text[i]) {
            i += 1;
        }
        let run = &text[start..i];
        let first = run.iter().position(|&c| c == b'\n');
        let last = run.iter().rposition(|&c| c == b'\n');
        match (first, last) {
            (Some(f), Some(l)) if f < l => {
                if f > 0 {
                    line.push(b' ');
                }
                line.push(b'\n');
                split_body_line(std::mem::take(&mut line), out);
                if l + 1 < run.len() {
                    line.push(b' ');
                }
            }
            _ => line.push(b' '),
        }
    }
    if !line.is_empty() {
        split_body_line(line, out);
    }
}

/// SpamAssassin's split_into_array_of_short_lines: a line over 2 KB is cut after
/// its last space in the first 2 KB, so that regexes see bounded input.
pub(super) fn split_body_line(mut line: Vec<u8>, out: &mut Vec<Vec<u8>>) {
    while line.len() > MAX_LINE {
        let cut = line[..=MAX_LINE]
            .iter()
            .rposition(|&c| c == b' ')
            .map_or(MAX_LINE, |p| p + 1);
        let rest = line.split_off(cut);
        out.push(line);
        line = rest;
    }
    out.push(line);
}

pub(super) fn push_short_lines(mut line: Vec<u8>, out: &mut Vec<Vec<u8>>) {
    while line.len() > MAX_LINE {
        // Split after whitespace past 1 KB so that a URL is rarely cut in half.
        let cut = line[1024..]
            .iter()
            .position(|&c| c == b' ' || c == b'-')
            .map_or(1024, |p| 1024 + p + 1)
            .min(line.len());
        let rest = line.split_off(cut);
        out.push(line);
        line = rest;
    }
    out.push(line);
}

/// rawbody rules see decoded text in chunks of up to about 2 KB, broken at lines.
pub(super) fn raw_chunks(text: &[u8], out: &mut Vec<Vec<u8>>) {
    let mut cur = Vec::new();
    for line in text.split_inclusive(|&c| c == b'\n') {
        if !cur.is_empty() && cur.len() + line.len() > MAX_LINE {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(line);
        if cur.len() > MAX_LINE {
            push_short_lines(std::mem::take(&mut cur), out);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
}
