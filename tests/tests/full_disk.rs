//! A full spool: qmgr cannot move a deferred message out of active/
//! (writing its updated record needs space), and moves it as soon as
//! space returns, without a restart. The spool is a small tmpfs this test
//! mounts (the tests run as root) and fills.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use mailgate_tests::{Backend, Client, Gateway, message, wait_for};

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(at).expect("spool directory");
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=755"),
            "tmpfs",
        ])
        .arg(at)
        .status()
        .expect("mount");
    assert!(status.success(), "mount a tmpfs on {}", at.display());
    Mount(at.to_path_buf())
}

/// Writes until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.write_all(&[0u8]);
}

/// An SMTP server that answers MAIL with 451 only once `gate` says so;
/// `reached` hears when a client has sent MAIL.
fn gated_server() -> (u16, mpsc::Sender<()>, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut out = stream.try_clone().expect("clone");
            let _ = out.write_all(b"220 gated.example ESMTP\r\n");
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 gated.example\r\n",
                    "MAIL" => {
                        let _ = reached_tx.send(());
                        let _ = gate_rx.recv();
                        b"451 4.3.0 not now\r\n"
                    }
                    "QUIT" => {
                        let _ = out.write_all(b"221 bye\r\n");
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                if out.write_all(reply).is_err() {
                    break;
                }
            }
        }
    });
    (port, gate_tx, reached_rx)
}

#[test]
fn a_message_stranded_in_active_by_a_full_disk_moves_when_space_returns() {
    let backend = Backend::start();
    let (port, gate, reached) = gated_server();
    let extra = format!(
        "relay_domains = example.com, later.test\n\
         transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{} later.test=smtp:[127.0.0.1]:{port} }}\n\
         queue_run_delay = 1s\n",
        backend.port
    );
    let gateway = Gateway::configure(&backend, &extra);
    let spool = gateway.path("spool");
    let mount = mount_tmpfs(&spool, "2m");
    let gateway = gateway.launch();

    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["u@later.test"],
        &message("full", "FULL"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.send("QUIT");
    // The message is in active/, its delivery waiting at MAIL: fill the disk.
    reached.recv().expect("relay reached the server");
    let filler = spool.join("filler");
    fill(&filler);
    gate.send(()).expect("open the gate");
    gateway.wait_for_log("cannot move to deferred");
    let active = gateway.spool("active");
    let count = |dir: &Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        count(&active),
        1,
        "the message stays in active/ while the disk is full"
    );

    std::fs::remove_file(&filler).expect("free the space");
    gateway.wait_for_log("moved to deferred after an earlier failure");
    wait_for("the message to leave active/", || {
        (count(&active) == 0).then_some(())
    });
    assert_eq!(count(&gateway.spool("deferred")), 1);
    drop(gateway);
    drop(mount);
}
