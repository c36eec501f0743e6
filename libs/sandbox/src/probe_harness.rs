//! The runner of the sandbox probe tests (libs/sandbox/tests/profiles.rs,
//! greylist's and verify's tests/sandbox.rs): each case is the test binary
//! re-executed as `--probe PROFILE CASE DIR`, so the child is
//! single-threaded when it enters the sandbox, like a worker; it must exit
//! 0 (what the service does works), die of SIGSYS (a call its profile
//! forbids) or exit [`REFUSED`] (a call Landlock refuses). Test support,
//! kept here so the three tests share one runner; no worker calls it.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// Everything the service needs works: exit status 0.
    Works,
    /// Killed by its own filter.
    Sigsys,
    /// The call was made (seccomp let it through, or only logged it) and
    /// failed with the error Landlock gives: exit status [`REFUSED`].
    Refused,
}

/// The exit status of a probe whose call was refused as expected.
pub const REFUSED: u8 = 3;

/// Ends a probe that could not set itself up (exit status 2: neither a
/// pass nor an expected failure).
pub fn fail(why: &str) -> ! {
    eprintln!("probe: {why}");
    std::process::exit(2)
}

/// The test binary's `main`. As a child (`--probe PROFILE CASE DIR`) it
/// runs `probe`; for `cargo test -- --list` it names itself `name`;
/// otherwise it runs every case of `cases` (profile, case, outcome) in a
/// child, each with a fresh directory that `prepare` fills first, and
/// reports as libtest does.
pub fn main(
    name: &str,
    cases: &[(&str, &str, Expect)],
    prepare: impl Fn(&Path) -> Result<(), String>,
    probe: impl FnOnce(&str, &str, &Path) -> ExitCode,
) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--probe") && args.len() == 5 {
        return probe(&args[2], &args[3], Path::new(&args[4]));
    }
    // This binary has no harness: it answers the listing itself and
    // otherwise runs every case.
    if args.iter().any(|a| a == "--list") {
        println!("{name}: test");
        return ExitCode::SUCCESS;
    }
    let mut failed = 0;
    for (n, &(profile, case, expect)) in cases.iter().enumerate() {
        let outcome = run_case(n, profile, case, &prepare);
        let ok = outcome == Ok(expect);
        println!(
            "test {profile}::{case} ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            eprintln!("  {profile}::{case}: expected {expect:?}, got {outcome:?}");
            failed += 1;
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        cases.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A directory of its own for one case, removed afterwards.
struct CaseDir(PathBuf);

impl Drop for CaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one case in a child and says how it ended.
fn run_case(
    n: usize,
    profile: &str,
    case: &str,
    prepare: &impl Fn(&Path) -> Result<(), String>,
) -> Result<Expect, String> {
    let dir =
        CaseDir(std::env::temp_dir().join(format!("mailgate-probe-{}-{n}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir(&dir.0).map_err(|e| format!("{}: {e}", dir.0.display()))?;
    prepare(&dir.0)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .args(["--probe", profile, case])
        .arg(&dir.0)
        .status()
        .map_err(|e| e.to_string())?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(Expect::Works),
        (Some(code), _) if code == i32::from(REFUSED) => Ok(Expect::Refused),
        (_, Some(libc::SIGSYS)) => Ok(Expect::Sigsys),
        (code, signal) => Err(format!("exit status {code:?}, signal {signal:?}")),
    }
}
