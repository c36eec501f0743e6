//! DKIM keys and signatures made by python3-dkim (dkimpy), a signer
//! independent of the mail-auth crate the gateway verifies with.

use std::collections::BTreeMap;

/// A DKIM key made by python3-dkim's dknewkey (an independent signer):
/// the private key file and the TXT record's strings (dnsmasq takes a
/// record longer than 255 bytes as several strings, split at commas).
pub struct DkimKey {
    _dir: tempfile::TempDir,
    pub key: std::path::PathBuf,
    /// The TXT record's strings, joined by commas as dnsmasq takes them.
    pub txt: String,
}

pub fn dkim_key() -> DkimKey {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("dknewkey")
        .arg("sel1")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("dknewkey (Debian package python3-dkim)");
    assert!(status.success());
    let record = std::fs::read_to_string(dir.path().join("sel1.dns")).unwrap();
    let record = record.trim();
    let chunks: Vec<String> = record
        .as_bytes()
        .chunks(200)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    DkimKey {
        key: dir.path().join("sel1.key"),
        txt: chunks.join(","),
        _dir: dir,
    }
}

/// The message signed by python3-dkim's dkimsign for `domain`, selector
/// sel1.
pub fn dkim_signed(key: &DkimKey, domain: &str, message: &str) -> String {
    dkim_signed_as(key, domain, None, message)
}

/// The same with an i= (`--identity`), such as `@news.example.org`.
pub fn dkim_signed_as(
    key: &DkimKey,
    domain: &str,
    identity: Option<&str>,
    message: &str,
) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("dkimsign")
        .args(["sel1", domain])
        .arg(&key.key)
        .args(identity.map(|i| format!("--identity={i}")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dkimsign (Debian package python3-dkim)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.replace('\n', "\r\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
}

/// The message as a forwarder (`fwd.test`, selector sel1 of `key`)
/// passes it on: its own Authentication-Results and an ARC set over them,
/// made by python3-dkim's arcsign.
pub fn arc_sealed(key: &DkimKey, message: &str) -> String {
    use std::io::Write;
    let input = format!(
        "Authentication-Results: fwd.test; dkim=pass header.d=orig.test; spf=pass smtp.mailfrom=orig.test\n{message}"
    );
    let mut child = std::process::Command::new("arcsign")
        .args(["sel1", "fwd.test"])
        .arg(&key.key)
        .arg("fwd.test")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("arcsign (Debian package python3-dkim)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.replace('\n', "\r\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let sealed = String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n");
    assert!(sealed.starts_with("ARC-Seal:"), "{sealed}");
    sealed
}

/// The rule names (with scores) in an X-Spam-Status value whose names
/// start with SPF_, DKIM_, DMARC_, ARC_ or USER_IN_.
pub fn auth_rules(status: &str) -> BTreeMap<String, String> {
    let tests = status
        .split_once("tests=")
        .map(|(_, t)| t)
        .unwrap_or_default()
        .trim_start_matches('[');
    // The list ends at `]` (mailgate) or at the first name not followed by
    // a comma (SpamAssassin's " autolearn=..."); folding adds white space.
    let mut names = Vec::new();
    for item in tests.split(',') {
        let item = item.trim();
        let name = item
            .split([' ', '\t', '\n', ']'])
            .next()
            .unwrap_or_default();
        names.push(name.to_string());
        if name.len() != item.len() {
            break;
        }
    }
    names
        .into_iter()
        .filter(|t| {
            ["SPF_", "DKIM_", "DMARC_", "ARC_", "USER_IN_"]
                .iter()
                .any(|p| t.starts_with(p))
        })
        .map(|t| match t.split_once('=') {
            Some((name, score)) => (name.to_string(), score.to_string()),
            None => (t, String::new()),
        })
        .collect()
}

/// Debian's spamassassin on `message` as the final delivery would hand it
/// over (with Return-Path), network tests on and its DNS queries sent to
/// `dns`: the SPF_, DKIM_, DMARC_, ARC_ and USER_IN_ rules it hits.
pub fn spamassassin(
    dns: &crate::DnsServer,
    sender: &str,
    message: &str,
) -> BTreeMap<String, String> {
    use std::io::Write;
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("spamassassin")
        .args([
            "-t",
            "-x",
            &format!("--cf=dns_server {}:{}", dns.ip, dns.port),
            "--cf=dns_available yes",
            "--cf=skip_rbl_checks 1",
            "--cf=use_bayes 0",
            "--cf=envelope_sender_header Return-Path",
            // The gateway knows the envelope sender first-hand, as
            // SpamAssassin inside amavisd-new does; by default it would not
            // take it from a header added behind a trusted relay (the
            // tests' 127.0.0.0/8 client) for its SPF welcomelists.
            "--cf=always_trust_envelope_sender 1",
        ])
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spamassassin (Debian package spamassassin)");
    let input = format!("Return-Path: <{sender}>\n{message}").replace('\n', "\r\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or_default();
    let mut status = String::new();
    let mut inside = false;
    for line in head.lines() {
        if line.starts_with("X-Spam-Status:") {
            inside = true;
            status.push_str(line);
        } else if inside && line.starts_with([' ', '\t']) {
            status.push_str(line);
        } else {
            inside = false;
        }
    }
    assert!(
        !status.is_empty(),
        "no X-Spam-Status from spamassassin:\n{text}"
    );
    auth_rules(&status)
}

/// Runs one of python3-dkim's verifiers (`dkimverify`, `arcverify -v`...)
/// on `message` (LF line ends made CRLF), in a private mount namespace
/// whose /etc/resolv.conf names `dns`, so the keys come from the test's
/// DNS server; `dir` holds the files it needs. Returns (success, stdout
/// and stderr).
pub fn dkimpy_verify(
    command: &str,
    dns: &crate::DnsServer,
    dir: &std::path::Path,
    message: &str,
) -> (bool, String) {
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {}\noptions timeout:2 attempts:1\n", dns.ip),
    )
    .unwrap();
    let file = dir.join("to-verify.eml");
    std::fs::write(&file, message.replace('\n', "\r\n")).unwrap();
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec {command} < {}",
        resolv.display(),
        file.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("unshare and {command} (Debian package python3-dkim): {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
