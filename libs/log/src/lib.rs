//! Log lines in Postfix's syslog form:
//! `Nov 23 06:04:04 gw mailgate/smtpd[1234]: connect from host[ip]`.
//!
//! Every process writes whole lines to its standard error with one `write(2)`
//! each. The master points the children's stderr at `maillog_file` (opened
//! with O_APPEND, so concurrent lines never interleave) or leaves it on its
//! own stderr. Nothing here opens a file after start-up, so logging keeps
//! working inside a chroot and under seccomp.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::{Once, RwLock};

struct Identity {
    host: String,
    program: String,
    pid: u32,
}

/// Who is writing: set by [`init`], replaced by a later call (a process
/// names itself before it has read `syslog_name`, then again after).
static IDENTITY: RwLock<Option<Identity>> = RwLock::new(None);
static TZSET: Once = Once::new();

/// How many `-v` master.cf gave the service: above 0, `debug!` lines are
/// written (as Postfix's `-v` makes its services log their protocol).
static VERBOSE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the verbosity (the number of `-v` on the service's master.cf line).
pub fn set_verbose(level: u8) {
    VERBOSE.store(level, std::sync::atomic::Ordering::Relaxed);
}

/// True when `debug!` lines are written.
pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed) > 0
}

unsafe extern "C" {
    /// POSIX tzset(3); the libc crate does not bind it.
    fn tzset();
}

/// Sets the program name (`mailgate/smtpd`: main.cf's `syslog_name`, then
/// the service) and the host name shown on each line, and reads the time
/// zone while /etc/localtime is still reachable. The first call must come
/// before chroot and before any thread starts; a later call (once the
/// configuration is read, or after a reload) replaces the name.
pub fn init(syslog_name: &str, service: &str) {
    TZSET.call_once(|| {
        // SAFETY: tzset only reads TZ and /etc/localtime into libc's
        // globals; the first init runs before any thread exists in the
        // process that could race it, and later ones skip it.
        unsafe { tzset() }
    });
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or("").to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let identity = Identity {
        host,
        program: format!("{syslog_name}/{service}"),
        pid: std::process::id(),
    };
    *IDENTITY.write().unwrap_or_else(|e| e.into_inner()) = Some(identity);
}

/// Severity prefixes as Postfix writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
    Fatal,
}

impl Level {
    fn prefix(self) -> &'static str {
        match self {
            Level::Info => "",
            Level::Warning => "warning: ",
            Level::Error => "error: ",
            Level::Fatal => "fatal: ",
        }
    }
}

/// Formats one log line (without the trailing newline).
pub fn format_line(level: Level, args: Arguments<'_>) -> String {
    let identity = IDENTITY.read().unwrap_or_else(|e| e.into_inner());
    let (host, program, pid) = match identity.as_ref() {
        Some(id) => (id.host.as_str(), id.program.as_str(), id.pid),
        None => ("localhost", "mailgate", std::process::id()),
    };
    format!(
        "{} {host} {program}[{pid}]: {}{args}",
        timestamp(),
        level.prefix()
    )
}

/// Writes one line to stderr in a single write.
pub fn write(level: Level, args: Arguments<'_>) {
    let mut line = escape_controls(format_line(level, args));
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A line is one record, shown as text. A control character inside it
/// (from a hostile peer's text: a header, an attachment name) would forge
/// a second record (CR, LF, U+2028, U+2029), rewrite the terminal of
/// whoever reads the log (ESC sequences), or hide text (BS, NUL, bidi
/// overrides), so each is shown escaped: `\n`, `\r`, `\t`, `\x1B`,
/// `\u{202E}`. A backslash is left as it is, as Postfix leaves it.
pub fn escape_controls(line: String) -> String {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}')
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !line.contains(hostile) {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && hostile(c) => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c if hostile(c) => out.push_str(&format!("\\u{{{:04X}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Broken-down local time for a Unix timestamp, in the zone read by
/// [`init`]; also used for the dates in mail headers.
pub fn local_time(unix_seconds: i64) -> Option<libc::tm> {
    let t = unix_seconds as libc::time_t;
    // SAFETY: an all-zero tm is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // thread-safe variant and uses the zone loaded by tzset in init().
    let result = unsafe { libc::localtime_r(&t, &mut tm) };
    (!result.is_null()).then_some(tm)
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A mail header date, `Mon, 23 Nov 2026 06:29:05 +0000 (UTC)`, in local time.
pub fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let Some(tm) = local_time(unix) else {
        return "Thu, 1 Jan 1970 00:00:00 +0000".to_string();
    };
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: localtime_r set tm_zone to a NUL-terminated string owned
        // by libc's time zone data, which lives as long as the process.
        let name = unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) };
        format!(" ({})", name.to_string_lossy())
    };
    format!(
        "{}, {:>2} {} {:04} {:02}:{:02}:{:02} {sign}{:02}{:02}{zone}",
        DAYS[tm.tm_wday.clamp(0, 6) as usize],
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset.abs() / 60,
        offset.abs() % 60
    )
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `Mmm dd hh:mm:ss` in local time, as syslog writes it.
fn timestamp() -> String {
    match local_time(unix_now()) {
        Some(tm) => format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            MONTHS[tm.tm_mon.clamp(0, 11) as usize],
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        ),
        None => "Jan  1 00:00:00".to_string(),
    }
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::write($crate::Level::Info, format_args!($($arg)*)) };
}

/// A line only written under `-v` (at info level, as Postfix writes its
/// verbose lines); its arguments are not even formatted otherwise.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::verbose() {
            $crate::write($crate::Level::Info, format_args!($($arg)*))
        }
    };
}

#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => { $crate::write($crate::Level::Warning, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::write($crate::Level::Error, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! fatal {
    ($($arg:tt)*) => { $crate::write($crate::Level::Fatal, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_postfix_shape() {
        init("mailgate", "smtpd");
        let line = format_line(Level::Warning, format_args!("hello {}", 42));
        let re_ok = line.contains(" mailgate/smtpd[")
            && line.ends_with("]: warning: hello 42")
            && line.as_bytes()[3] == b' '
            && line[7..15].chars().filter(|c| *c == ':').count() == 2;
        assert!(re_ok, "unexpected shape: {line}");
        // A later init (syslog_name read from main.cf) renames the program.
        init("postfix-out", "smtpd");
        let line = format_line(Level::Info, format_args!("x"));
        assert!(line.contains(" postfix-out/smtpd["), "{line}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let line = "name=\"a\x1b[2Jb\x07\x00c\td\re\nf\u{85}g\u{202E}h\u{2028}i \\ é\"";
        assert_eq!(
            escape_controls(line.to_string()),
            "name=\"a\\x1B[2Jb\\x07\\x00c\\td\\re\\nf\\u{0085}g\\u{202E}h\\u{2028}i \\ é\""
        );
        assert_eq!(escape_controls("plain".into()), "plain");
    }
}
