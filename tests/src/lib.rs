//! The end-to-end test harness: a real gateway (the master from
//! target/, on a temporary configuration and spool), a real backend
//! (Postfix's smtp-sink, recording every message it receives), and an SMTP
//! client that can connect from any loopback address.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};

pub mod dkim;
pub mod dovecot;
pub mod tls;
use nix::unistd::Pid;

pub mod amavis;
pub mod browser;
pub mod milters;
pub mod peers;
pub mod postfix;
pub mod rspamd;
pub use peers::{Postgrey, Redis};
pub use postfix::StockPostfix;

/// Lets the unprivileged users of chrooted workers (and Postfix's) reach a
/// temporary directory: tempfile makes them 0700.
pub fn make_traversable(dir: &Path) {
    if is_root() {
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
}

/// How long any wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The directory holding the workspace's binaries (target/debug or
/// target/release): the test executable lives in its deps/ subdirectory.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .expect("deps dir")
        .parent()
        .expect("profile dir");
    let dir = dir.to_path_buf();
    assert!(
        dir.join("master").is_file(),
        "{} has no master binary: build the workspace first (cargo build --workspace --bins)",
        dir.display()
    );
    dir
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `condition` until it holds or PATIENCE runs out.
pub fn wait_for<T>(what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Postfix's smtp-sink, writing each message it accepts to a file.
pub struct Backend {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// One message as the backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message with smtp-sink's own Received header removed, LF line ends.
    pub message: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Vec<String> {
        let mut values = Vec::new();
        let mut current: Option<String> = None;
        for line in self.message.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(value) = current.as_mut() {
                    value.push('\n');
                    value.push_str(line);
                }
                continue;
            }
            if let Some(value) = current.take() {
                values.push(value);
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                current = Some(v.trim_start().to_string());
            }
        }
        values.extend(current);
        values
    }

    pub fn body(&self) -> &str {
        self.message
            .split_once("\n\n")
            .map(|(_, b)| b)
            .unwrap_or("")
    }
}

impl Backend {
    pub fn start() -> Backend {
        Backend::start_on(free_port())
    }

    /// A backend on a given port (to bring one back after a test took it
    /// away).
    pub fn start_on(port: u16) -> Backend {
        Backend::launch(port, &[])
    }

    /// A backend started with extra smtp-sink options, such as
    /// `["-f", "RCPT"]` to refuse every recipient with a 5xx.
    pub fn start_with(args: &[&str]) -> Backend {
        Backend::launch(free_port(), args)
    }

    fn launch(port: u16, args: &[&str]) -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new("smtp-sink");
        if is_root() {
            // smtp-sink refuses to run as root without a user to become.
            nix::unistd::chown(dir.path(), Some(nobody().0), Some(nobody().1)).expect("chown");
            command.args(["-u", "nobody"]);
        }
        let template = format!("{}/%H%M%S.", dir.path().display());
        let child = command
            .args(args)
            .args(["-d", &template, &format!("127.0.0.1:{port}"), "100"])
            .stdout(Stdio::null())
            .spawn()
            .expect("smtp-sink (Debian package postfix) must be installed");
        wait_for("smtp-sink to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Backend { port, dir, child }
    }

    /// Every complete message received so far.
    pub fn messages(&self) -> Vec<Received> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(self.dir.path()) else {
            return out;
        };
        for entry in entries.flatten() {
            let Ok(text) = fs::read_to_string(entry.path()) else {
                continue;
            };
            if let Some(received) = parse_dump(&text) {
                out.push(received);
            }
        }
        out
    }

    /// Waits until a message whose text contains `marker` has arrived.
    pub fn wait_for_message(&self, marker: &str) -> Received {
        wait_for(
            &format!("a message containing {marker:?} at the backend"),
            || {
                self.messages()
                    .into_iter()
                    .find(|m| m.message.contains(marker))
            },
        )
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nobody() -> (nix::unistd::Uid, nix::unistd::Gid) {
    let user = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody");
    (user.uid, user.gid)
}

/// smtp-sink's dump: X-Client-*, X-Helo-Args, X-Mail-Args and X-Rcpt-Args
/// lines, its own Received header, then the message. A dump is complete
/// once the message's last line ("." excluded) is written; tests look for a
/// marker at the end of the body, so a partial file never passes.
fn parse_dump(text: &str) -> Option<Received> {
    let mut mail_from = None;
    let mut rcpt_to = Vec::new();
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.peek() {
        if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
            mail_from = Some(v.trim_end().to_string());
        } else if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
            rcpt_to.push(v.trim_end().to_string());
        } else if !line.starts_with("X-") {
            break;
        }
        lines.next();
    }
    // smtp-sink's own Received header: the first header and its folds.
    let first = lines.next()?;
    if !first.starts_with("Received: ") {
        return None;
    }
    while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
        lines.next();
    }
    let mut message: String = lines.collect();
    // smtp-sink ends each dump with an empty line of its own.
    if message.ends_with("\n\n") {
        message.pop();
    }
    Some(Received {
        mail_from: mail_from?,
        rcpt_to,
        message,
    })
}

/// A DNS record for the test DNS server.
#[derive(Clone, Debug)]
pub enum Record<'a> {
    /// (domain, exchange, preference); the domain becomes authoritative.
    Mx(&'a str, &'a str, u16),
    /// An A or AAAA record and the matching PTR record.
    Host(&'a str, &'a str),
    /// An address record only, for the name and every name under it (a
    /// DNS list entry such as 2.0.0.127.zen.test).
    Address(&'a str, &'a str),
    /// A PTR record only: (address, name).
    Ptr(&'a str, &'a str),
    Txt(&'a str, &'a str),
    /// Answer NXDOMAIN for unknown names under this domain (otherwise the
    /// server refuses, which a resolver must take as a temporary failure).
    Zone(&'a str),
}

/// A real DNS server (Debian's dnsmasq), answering only from the records it
/// is given. Reverse lookups are answered from Host and Ptr records, and
/// are NXDOMAIN for every other address.
pub struct DnsServer {
    /// The address it listens on (127.0.0.1, or its own loopback address
    /// on port 53, for servers that cannot be given a port).
    pub ip: IpAddr,
    pub port: u16,
    child: Child,
}

impl DnsServer {
    /// MX records as (domain, host, preference), authoritative for those
    /// domains, and addresses as (host, ip).
    pub fn start(mx: &[(&str, &str, u16)], addresses: &[(&str, &str)]) -> DnsServer {
        let mut records: Vec<Record> = mx.iter().map(|(d, h, p)| Record::Mx(d, h, *p)).collect();
        records.extend(addresses.iter().map(|(h, ip)| Record::Host(h, ip)));
        DnsServer::with(&records)
    }

    /// On 127.0.0.1 and a free port.
    pub fn with(records: &[Record]) -> DnsServer {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        // dnsmasq also listens on TCP: the UDP port that was free may be
        // taken for TCP by another test; then it exits and we try another.
        for _ in 0..20 {
            if let Some(server) = DnsServer::try_launch(ip, free_udp_port(), records) {
                return server;
            }
        }
        panic!("dnsmasq did not start on any of 20 free ports");
    }

    /// On port 53 of a loopback address of its own (127.53.x.y), where a
    /// resolv.conf can point a program that uses the system resolver.
    pub fn on_port_53(records: &[Record]) -> DnsServer {
        loop {
            let n = fastrand_u16();
            let ip: IpAddr = format!("127.53.{}.{}", n >> 8, (n & 0xff).max(1))
                .parse()
                .expect("ip");
            if std::net::UdpSocket::bind((ip, 53)).is_ok()
                && let Some(server) = DnsServer::try_launch(ip, 53, records)
            {
                return server;
            }
        }
    }

    /// The dns_nameservers value for mailgate.
    pub fn nameserver(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// None when dnsmasq exits (its port was taken).
    fn try_launch(ip: IpAddr, port: u16, records: &[Record]) -> Option<DnsServer> {
        let mut command = Command::new("dnsmasq");
        command.args([
            "--keep-in-foreground",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--no-negcache",
            "--user=root",
            "--pid-file=",
            "--log-facility=/dev/null",
            "--local=/in-addr.arpa/",
            "--local=/ip6.arpa/",
        ]);
        command.arg(format!("--listen-address={ip}"));
        command.arg(format!("--port={port}"));
        for record in records {
            match record {
                Record::Mx(domain, host, preference) => {
                    command.arg(format!("--mx-host={domain},{host},{preference}"));
                    command.arg(format!("--local=/{domain}/"));
                }
                Record::Host(host, addr) => {
                    command.arg(format!("--host-record={host},{addr}"));
                }
                Record::Address(name, addr) => {
                    command.arg(format!("--address=/{name}/{addr}"));
                }
                Record::Ptr(addr, name) => {
                    let ip: IpAddr = addr.parse().expect("PTR address");
                    let reversed = match ip {
                        IpAddr::V4(v4) => {
                            let o = v4.octets();
                            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
                        }
                        IpAddr::V6(_) => panic!("IPv6 PTR records are not needed yet"),
                    };
                    command.arg(format!("--ptr-record={reversed},{name}"));
                }
                Record::Txt(name, text) => {
                    command.arg(format!("--txt-record={name},{text}"));
                }
                Record::Zone(domain) => {
                    command.arg(format!("--local=/{domain}/"));
                }
            }
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian package dnsmasq-base) must be installed");
        let up = wait_for("dnsmasq to answer", || {
            if dns_answers(ip, port) {
                Some(true)
            } else if let Ok(Some(_)) = child.try_wait() {
                Some(false)
            } else {
                None
            }
        });
        up.then_some(DnsServer { ip, port, child })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free UDP port")
}

/// A pseudo-random number, different across processes and calls.
fn fastrand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
}

/// True when something answers a DNS query (for ".", type NS) on the port.
fn dns_answers(ip: IpAddr, port: u16) -> bool {
    let Ok(socket) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let query = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
    let mut answer = [0u8; 512];
    socket.send_to(&query, (ip, port)).is_ok() && socket.recv(&mut answer).is_ok()
}

/// The EICAR test string, which every antivirus reports as a virus.
pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Debian's clamd, on a private socket under the scanner's directory, with
/// a signature database written here: one signature for the EICAR string.
pub struct Clamd {
    child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Clamd {
    /// Starts clamd under `home` (the scanner's directory, so that a
    /// chrooted scanner reaches its socket) and waits until it answers.
    pub fn start(home: &Path) -> Clamd {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::net::UnixStream;
        let dir = home.join("clamd");
        let db = dir.join("db");
        fs::create_dir_all(&db).expect("clamd dirs");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let hex: String = EICAR.bytes().map(|b| format!("{b:02x}")).collect();
        fs::write(
            db.join("mailgate-test.ndb"),
            format!("Mailgate.Test.EICAR:0:*:{hex}\n"),
        )
        .expect("signature");
        let socket = dir.join("clamd.sock");
        let log = dir.join("clamd.log");
        let conf = dir.join("clamd.conf");
        fs::write(
            &conf,
            format!(
                "Foreground yes\nLocalSocket {}\nLocalSocketMode 666\nDatabaseDirectory {}\n\
                 LogFile {}\nLogClean yes\n",
                socket.display(),
                db.display(),
                log.display()
            ),
        )
        .expect("clamd.conf");
        let child = Command::new("clamd")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd (Debian package clamav-daemon) must be installed");
        let clamd = Clamd { child, socket, log };
        wait_for("clamd to answer PING", || {
            let mut s = UnixStream::connect(&clamd.socket).ok()?;
            s.write_all(b"zPING\0").ok()?;
            let mut answer = String::new();
            s.read_to_string(&mut answer).ok()?;
            answer.starts_with("PONG").then_some(())
        });
        clamd
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway on a temporary configuration directory and spool.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub port: u16,
    master: Option<Child>,
    /// The DNS server the gateway uses unless the test names its own
    /// (dns_nameservers in `extra`): no test asks the machine's resolver.
    _dns: Option<DnsServer>,
}

/// The main.cf every test starts from; tests add lines to it.
pub fn base_main_cf(dir: &Path, backend_port: u16) -> String {
    format!(
        "myhostname = gw.example.com\n\
         queue_directory = {spool}\n\
         mail_owner = {owner}\n\
         maillog_file = {log}\n\
         inet_interfaces = 127.0.0.1\n\
         mynetworks = 127.0.0.1/32\n\
         relay_domains = example.com\n\
         transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{backend_port} }}\n\
         smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
         queue_run_delay = 2s\n\
         minimal_backoff_time = 2s\n\
         maximal_backoff_time = 4s\n\
         master_drain_time = 5s\n\
         table_check_interval = 1s\n\
         smtpd_error_sleep_time = 0\n",
        spool = dir.join("spool").display(),
        log = dir.join("maillog").display(),
        owner = test_mail_owner(),
    )
}

/// The unprivileged user the tests' gateways run as (created by the test
/// script when the tests run as root).
pub fn test_mail_owner() -> String {
    "mailgate".to_string()
}

pub fn master_cf(smtpd_port: u16) -> String {
    format!(
        "127.0.0.1:{smtpd_port} inet n - y - 100 smtpd\n\
         cleanup unix n - y - 0 cleanup\n\
         qmgr unix n - y 300 1 qmgr\n\
         smtp unix - - y - - relay\n\
         relay unix - - y - - relay\n\
         error unix - - y - - relay\n\
         discard unix - - y - - relay\n\
         anvil unix - - y - 1 anvil\n"
    )
}

impl Gateway {
    /// Writes main.cf (the base plus `extra` lines) and master.cf, starts
    /// `mailgate start`, and waits until smtpd answers.
    pub fn start(backend: &Backend, extra: &str) -> Gateway {
        let gateway = Gateway::configure(backend, extra);
        gateway.launch()
    }

    pub fn configure(backend: &Backend, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        // The chrooted workers, as mail_owner, must be able to reach the
        // spool through this directory.
        make_traversable(dir.path());
        let port = free_port();
        let dns = (!extra.contains("dns_nameservers")).then(|| DnsServer::with(&[]));
        let mut main_cf = base_main_cf(dir.path(), backend.port);
        if let Some(dns) = &dns {
            main_cf.push_str(&format!("dns_nameservers = {}\n", dns.nameserver()));
        }
        let main_cf = format!("{main_cf}{extra}\n");
        fs::write(dir.path().join("main.cf"), main_cf).expect("main.cf");
        fs::write(dir.path().join("master.cf"), master_cf(port)).expect("master.cf");
        Gateway {
            dir,
            port,
            master: None,
            _dns: dns,
        }
    }

    /// Adds the content scanner service to master.cf: call between
    /// `configure` and `launch`, with `content_scanner = scanner` in main.cf.
    pub fn with_scanner(self) -> Gateway {
        let path = self.path("master.cf");
        let mut text = fs::read_to_string(&path).expect("master.cf");
        text.push_str("scanner unix n - y - 8 scanner\n");
        fs::write(&path, text).expect("master.cf");
        self
    }

    /// Appends lines to master.cf: call between `configure` and `launch`.
    pub fn with_master_cf(self, lines: &str) -> Gateway {
        let path = self.path("master.cf");
        let mut text = fs::read_to_string(&path).expect("master.cf");
        text.push_str(lines);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        fs::write(&path, text).expect("master.cf");
        self
    }

    /// TLS for smtpd with `pki`'s certificate (written as key.pem and
    /// cert.pem in the gateway's directory), the tlskeys service that holds
    /// its key, and `level` for smtpd_tls_security_level.
    pub fn with_tls(self, pki: &tls::TestPki, level: &str) -> Gateway {
        pki.write(self.dir.path(), "");
        self.add_main_cf(&format!(
            "smtpd_tls_security_level = {level}\n\
             smtpd_tls_cert_file = cert.pem\n\
             smtpd_tls_key_file = key.pem\n\
             smtpd_tls_received_header = yes\n\
             tlskeys_directory = {}\n",
            self.dir.path().join("tlskeys").display()
        ));
        self.with_master_cf("tlskeys unix - - y - - tlskeys\n")
    }

    /// Appends lines to master.cf (a service such as greylist): call
    /// between `configure` and `launch`.
    pub fn add_master_cf(&self, lines: &str) {
        let path = self.path("master.cf");
        let text = fs::read_to_string(&path).expect("master.cf");
        fs::write(&path, format!("{text}{lines}\n")).expect("master.cf");
    }

    /// Appends lines to main.cf (for settings that name files in the
    /// gateway's own directory).
    pub fn add_main_cf(&self, lines: &str) {
        let path = self.path("main.cf");
        let text = fs::read_to_string(&path).expect("main.cf");
        fs::write(&path, format!("{text}{lines}\n")).expect("main.cf");
    }

    pub fn launch(mut self) -> Gateway {
        self.spawn_master();
        self
    }

    /// `launch` for a gateway whose smtpd greets with `code` instead of
    /// 220 (a milter that refuses every connection).
    pub fn launch_greeting(mut self, code: &str) -> Gateway {
        self.start_master(code);
        self
    }

    /// `mailgate start`, then a wait until smtpd greets.
    fn spawn_master(&mut self) {
        self.start_master("220");
    }

    fn start_master(&mut self, code: &str) {
        // free_port's port can be taken by another test before the master
        // binds it; then the master stops at once, and the gateway moves
        // to another port (the log says why, if it was something else).
        for _ in 0..3 {
            let mut child = Command::new(bin_dir().join("mailgate"))
                .arg("-c")
                .arg(self.dir.path())
                .arg("start")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start mailgate");
            // Polled as wait_for does, but a timeout says what the port
            // last answered and shows the gateway's log.
            let deadline = Instant::now() + PATIENCE;
            let mut last;
            let greeted = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                // A short wait for each greeting: whatever else holds the
                // port (the master then stops: "cannot listen") may accept
                // and never greet, and the master's exit must be seen.
                match Client::connect_waiting(self.port, "127.0.0.1", Duration::from_secs(5)) {
                    Ok(mut client) => {
                        let greeting = client.greeting.clone();
                        client.send("QUIT");
                        if greeting.starts_with(code) {
                            break true;
                        }
                        last = format!("the greeting {greeting:?}");
                    }
                    Err(e) => last = format!("connect: {e}"),
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    panic!(
                        "timed out waiting for smtpd to greet on port {} (last: {last}); the log:\n{}",
                        self.port,
                        self.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            self.master = Some(child);
            if greeted {
                return;
            }
            let old = self.port;
            self.port = free_port();
            let path = self.path("master.cf");
            let text = fs::read_to_string(&path).expect("master.cf");
            fs::write(
                &path,
                text.replacen(
                    &format!("127.0.0.1:{old} "),
                    &format!("127.0.0.1:{} ", self.port),
                    1,
                ),
            )
            .expect("master.cf");
        }
        panic!("the master stopped three times at start:\n{}", self.log());
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn spool(&self, queue: &str) -> PathBuf {
        self.dir.path().join("spool").join(queue)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("maillog")).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for(&format!("log line containing {needle:?}"), || {
            self.log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        })
    }

    pub fn master_pid(&self) -> Pid {
        Pid::from_raw(self.master.as_ref().expect("started").id() as i32)
    }

    /// Pids of the running worker processes whose command is `program`.
    pub fn worker_pids(&self, program: &str) -> Vec<Pid> {
        children_of(self.master_pid())
            .into_iter()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == program)
                    .unwrap_or(false)
            })
            .collect()
    }

    pub fn signal_master(&self, signal: Signal) {
        kill(self.master_pid(), signal).expect("signal master");
    }

    /// `mailgate -c DIR ARGS...`, returning (exit status, stdout, stderr).
    pub fn admin(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(bin_dir().join("mailgate"))
            .arg("-c")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run mailgate");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `mailgate -c DIR sendmail ARGS...` with `input` on its standard
    /// input, returning (exit status, stderr).
    pub fn sendmail(&self, args: &[&str], input: &str) -> (i32, String) {
        let mut child = Command::new(bin_dir().join("mailgate"))
            .arg("-c")
            .arg(self.dir.path())
            .arg("sendmail")
            .args(args)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mailgate sendmail");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write message");
        let output = child.wait_with_output().expect("wait");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// SIGKILL to the master and every worker at once, as a power cut
    /// would end them, then a fresh start on the same configuration and
    /// spool.
    pub fn kill_all_and_restart(&mut self) {
        let mut master = self.master.take().expect("started");
        let master_pid = Pid::from_raw(master.id() as i32);
        let workers = children_of(master_pid);
        let _ = kill(master_pid, Signal::SIGKILL);
        for pid in workers {
            let _ = kill(pid, Signal::SIGKILL);
        }
        let _ = master.wait();
        self.spawn_master();
    }

    /// Stops the gateway with SIGTERM and waits for the master to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.master.take().expect("started");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        child.wait().expect("wait master")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.master.take() {
            terminate(&mut child);
        }
    }
}

/// SIGTERM, up to 10 s to exit, then SIGKILL.
pub(crate) fn terminate(child: &mut Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// A line-oriented SMTP client over a real TCP connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    pub greeting: String,
}

impl Client {
    /// Connects to 127.0.0.1:`port` from the loopback address `from`
    /// (127.0.0.2, ... make distinct clients).
    pub fn connect(port: u16, from: &str) -> std::io::Result<Client> {
        Client::connect_waiting(port, from, PATIENCE)
    }

    /// `connect`, waiting at most `patience` for each reply (the greeting
    /// too).
    pub fn connect_waiting(port: u16, from: &str, patience: Duration) -> std::io::Result<Client> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        let local: IpAddr = from.parse().expect("loopback address");
        socket.bind(&SocketAddr::new(local, 0).into())?;
        socket.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(patience))?;
        let mut client = Client {
            reader: BufReader::new(stream),
            greeting: String::new(),
        };
        client.greeting = client.reply();
        Ok(client)
    }

    /// Sends one command line and returns the (possibly multi-line) reply.
    pub fn send(&mut self, line: &str) -> String {
        self.write_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Writes without waiting for a reply. A write to a server that went
    /// away is not an error here: the next reply reads as empty.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        let _ = stream.write_all(bytes).and_then(|()| stream.flush());
    }

    /// Reads one reply; multi-line replies are joined with '\n'. Empty on
    /// end-of-file.
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return lines.join("\n"),
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }

    /// EHLO, MAIL, RCPT..., DATA, the message, ".": returns the final reply.
    pub fn send_message(&mut self, from: &str, to: &[&str], message: &str) -> String {
        let ehlo = self.send("EHLO client.example.org");
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        self.transaction(from, to, message)
    }

    /// MAIL, RCPT..., DATA, the message, ".": returns the first refusal or
    /// the final reply.
    pub fn transaction(&mut self, from: &str, to: &[&str], message: &str) -> String {
        let reply = self.send(&format!("MAIL FROM:<{from}>"));
        if !reply.starts_with("250") {
            return reply;
        }
        for rcpt in to {
            let reply = self.send(&format!("RCPT TO:<{rcpt}>"));
            if !reply.starts_with("250") {
                return reply;
            }
        }
        let reply = self.send("DATA");
        if !reply.starts_with("354") {
            return reply;
        }
        let mut data = message.replace("\r\n", "\n").replace('\n', "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        // Dot-stuffing, as every SMTP client does.
        let stuffed = data
            .split_inclusive("\r\n")
            .map(|line| {
                if line.starts_with('.') {
                    format!(".{line}")
                } else {
                    line.to_string()
                }
            })
            .collect::<String>();
        self.write_raw(stuffed.as_bytes());
        self.send(".")
    }
}

/// A minimal message with a unique marker at the end of the body.
pub fn message(subject: &str, marker: &str) -> String {
    format!("From: a@sender.example\nTo: b@example.com\nSubject: {subject}\n\nHello.\n{marker}\n")
}

/// Base64 with lines of 76 characters, as MIME wants it.
pub fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push('\n');
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A message with a text part holding `marker` and one base64 attachment.
pub fn with_attachment(marker: &str, name: &str, ctype: &str, data: &[u8]) -> String {
    format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: attachment\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"XX\"\n\n--XX\nContent-Type: text/plain\n\n\
         {marker}\n--XX\nContent-Type: {ctype}; name=\"{name}\"\n\
         Content-Disposition: attachment; filename=\"{name}\"\n\
         Content-Transfer-Encoding: base64\n\n{}\n--XX--\n",
        base64(data)
    )
}
