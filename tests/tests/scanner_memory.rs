//! The scanner's memory under a burst of large messages: 30 concurrent
//! 9 MB HTML messages (the shape that once cost 24 times their size, and
//! kept it), with the scanner allowed 30 scans at once. Its peak RSS must
//! stay within the bound SECURITY.md states, and after the burst it must
//! give the memory back.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use mailgate_tests::{Backend, Client, Gateway};

const SCANS: usize = 30;
const SIZE: usize = 9 * 1024 * 1024;
/// The stated bound (SECURITY.md): 64 MB of baseline plus, per concurrent
/// scan, 3 times the message size (the content, mailgate-mime's decoded
/// copy of it, and the spam engine's work on its first 400 KB).
const PEAK_BOUND: u64 = 64 * 1024 * 1024 + (SCANS * 3 * SIZE) as u64;
/// After the burst: the baseline and a little.
const IDLE_BOUND: u64 = 128 * 1024 * 1024;

fn status_kb(pid: i32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn html_message(n: usize) -> String {
    let mut body = String::with_capacity(SIZE + 1024);
    body.push_str("<html><body>\n");
    let mut i = 0;
    while body.len() < SIZE {
        body.push_str(&format!(
            "<p style=\"color:#{:06x}\">cheap <b>offer</b> {i} <a href=\"http://x{i}.example/\">here</a></p>\n",
            i * 7919 % 0xffffff
        ));
        i += 1;
    }
    body.push_str("</body></html>\n");
    format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: big {n}\nMIME-Version: 1.0\n\
         Content-Type: text/html; charset=utf-8\n\n{body}BIG-{n}\n"
    )
}

#[test]
fn thirty_concurrent_nine_megabyte_scans_stay_within_the_bound() {
    let backend = Backend::start();
    let home = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let settings = format!(
        "content_scanner = scanner\nscanner_directory = {}\nspam_bayes_directory =\n\
         spam_stock_rules_directory =\nscanner_timeout = 600s\nmessage_size_limit = 20000000\n\
         spam_kill_level = 1000\n",
        home.path().display()
    );
    let gateway = Gateway::configure(&backend, &settings);
    gateway.add_master_cf(&format!("scanner unix n - y - {SCANS} scanner"));
    let gateway = gateway.launch();
    let started = Instant::now();
    let port = gateway.port;
    let clients: Vec<_> = (0..SCANS)
        .map(|n| {
            std::thread::spawn(move || {
                let text = html_message(n);
                let mut client = Client::connect(port, "127.0.0.1").expect("connect");
                client.send_message("a@sender.example", &["b@example.com"], &text)
            })
        })
        .collect();
    for client in clients {
        let reply = client.join().expect("client");
        assert!(reply.starts_with("250"), "{reply}");
    }
    let pid = gateway.worker_pids("scanner")[0].as_raw();
    let peak = status_kb(pid, "VmHWM:") * 1024;
    let now = status_kb(pid, "VmRSS:") * 1024;
    eprintln!(
        "scanner: {SCANS} scans of {} MB in {:.1} s, peak RSS {} MB (bound {} MB), after {} MB",
        SIZE >> 20,
        started.elapsed().as_secs_f64(),
        peak >> 20,
        PEAK_BOUND >> 20,
        now >> 20
    );
    assert!(peak > 0 && peak <= PEAK_BOUND, "peak RSS {peak}");
    assert!(now <= IDLE_BOUND, "RSS after the scans {now}");
}
