//! DKIM keys and signatures made by python3-dkim (dkimpy), a signer
//! independent of the mail-auth crate the gateway verifies with.

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
    use std::io::Write;
    let mut child = std::process::Command::new("dkimsign")
        .args(["sel1", domain])
        .arg(&key.key)
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
