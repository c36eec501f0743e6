//! Proves each service's real profile: a child process enters the sandbox
//! through the same `mailgate_sandbox::enter` a worker uses (chroot and
//! mail_owner when run as root, as `./run-tests` does), then either does
//! what the service does (tokio runtime, signals, Unix peers, descriptor
//! passing, and the service's own calls) and must exit 0, or tries one call
//! its profile forbids and must die of SIGSYS (or get the configured error).
//!
//! Each case is this binary re-executed with `--probe SERVICE CASE SPOOL`,
//! so the child is single-threaded when it enters the sandbox, like a worker.

use std::fs;
use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use mailgate_sandbox::probe_harness::{self, Expect, REFUSED, fail};
use mailgate_sandbox::profiles::{self, Profile, Promise};
use mailgate_sandbox::{Mode, Placement, enter, lookup_user};

/// The user the sandboxed child becomes when the test runs as root.
const MAIL_OWNER: &str = "mailgate";

/// (service, case, expected outcome). Cases named `log-mode-...` run with
/// sandbox_mode = log, so seccomp only logs the call and what is shown is
/// Landlock's answer: the second wall on its own.
const CASES: &[(&str, &str, Expect)] = &[
    ("smtpd", "allowed", Expect::Works),
    ("smtpd", "execve", Expect::Sigsys),
    ("smtpd", "fork", Expect::Sigsys),
    ("smtpd", "netlink-socket", Expect::Sigsys),
    ("smtpd", "unlink", Expect::Sigsys),
    ("smtpd", "exec-memory", Expect::Sigsys),
    ("smtpd", "log-mode-execve", Expect::Works),
    ("smtpd", "unappend-log", Expect::Sigsys),
    ("smtpd", "truncate-log", Expect::Sigsys),
    ("smtpd", "abstract-unix", Expect::Refused),
    ("smtpd", "log-mode-signal", Expect::Refused),
    ("smtpd", "tcp-connect", Expect::Refused),
    ("smtpd", "tcp-bind", Expect::Refused),
    ("smtpd", "dns-port", Expect::Works),
    ("smtpd", "log-mode-mkdir", Expect::Refused),
    ("smtpd", "log-mode-unix-bind", Expect::Refused),
    ("cleanup", "allowed", Expect::Works),
    ("cleanup", "execve", Expect::Sigsys),
    ("cleanup", "fork", Expect::Sigsys),
    ("cleanup", "inet-socket", Expect::Sigsys),
    ("cleanup", "memfd", Expect::Sigsys),
    ("cleanup", "unappend-log", Expect::Sigsys),
    ("cleanup", "truncate-log", Expect::Sigsys),
    ("cleanup", "abstract-unix", Expect::Refused),
    ("cleanup", "outside-its-queues", Expect::Refused),
    ("cleanup", "move-between-queues", Expect::Refused),
    ("cleanup", "log-mode-tcp-connect", Expect::Refused),
    ("cleanup", "mark-ready", Expect::Works),
    ("cleanup", "chmod-other-mode", Expect::Sigsys),
    ("smtpd", "mark-ready", Expect::Sigsys),
    ("qmgr", "allowed", Expect::Works),
    ("qmgr", "execve", Expect::Sigsys),
    ("qmgr", "fork", Expect::Sigsys),
    ("qmgr", "inet-socket", Expect::Sigsys),
    ("qmgr", "unappend-log", Expect::Sigsys),
    ("qmgr", "truncate-log", Expect::Sigsys),
    ("qmgr", "abstract-unix", Expect::Refused),
    ("qmgr", "outside-its-queues", Expect::Refused),
    ("qmgr", "log-mode-tcp-connect", Expect::Refused),
    ("qmgr", "log-mode-signal", Expect::Refused),
    ("relay", "allowed", Expect::Works),
    ("relay", "execve", Expect::Sigsys),
    ("relay", "fork", Expect::Sigsys),
    ("relay", "netlink-socket", Expect::Sigsys),
    ("relay", "unlink", Expect::Sigsys),
    ("relay", "unix-bind", Expect::Refused),
    ("relay", "unappend-log", Expect::Sigsys),
    ("relay", "tcp-bind", Expect::Refused),
    ("relay", "log-mode-unix-bind", Expect::Refused),
    ("relay", "log-mode-signal", Expect::Refused),
    ("scanner", "allowed", Expect::Works),
    ("scanner", "execve", Expect::Sigsys),
    ("scanner", "fork", Expect::Sigsys),
    ("scanner", "inet-socket", Expect::Sigsys),
    ("scanner", "unlink", Expect::Sigsys),
    ("scanner", "memfd", Expect::Sigsys),
    ("scanner", "abstract-unix", Expect::Refused),
    ("scanner", "log-mode-tcp-connect", Expect::Refused),
    ("scanner", "log-mode-mkdir", Expect::Refused),
    ("scanner", "log-mode-signal", Expect::Refused),
    ("scan", "allowed", Expect::Works),
    ("scan", "write-file", Expect::Sigsys),
    ("scan", "log-mode-mkdir", Expect::Refused),
    ("scan", "log-mode-signal", Expect::Refused),
    ("learn", "allowed", Expect::Works),
    ("learn", "log-mode-mkdir", Expect::Refused),
    ("web", "outside-its-queues", Expect::Refused),
    ("web", "log-mode-tcp-connect", Expect::Refused),
    ("stats", "log-mode-mkdir", Expect::Refused),
    ("stats", "log-mode-signal", Expect::Refused),
    ("greylist", "log-mode-tcp-connect", Expect::Refused),
    ("greylist", "log-mode-mkdir", Expect::Refused),
    ("anvil", "allowed", Expect::Works),
    ("anvil", "execve", Expect::Sigsys),
    ("anvil", "fork", Expect::Sigsys),
    ("anvil", "inet-socket", Expect::Sigsys),
    ("anvil", "unlink", Expect::Sigsys),
    ("anvil", "memfd", Expect::Sigsys),
    ("anvil", "abstract-unix", Expect::Sigsys),
    ("anvil", "log-mode-mkdir", Expect::Refused),
    ("anvil", "log-mode-signal", Expect::Refused),
    ("worker", "handoff-twice", Expect::Works),
];

fn main() -> ExitCode {
    probe_harness::main("profiles", CASES, make_spool, probe)
}

/// A spool as the master makes it: the queues, owned by mail_owner when
/// the test runs as root.
fn make_spool(spool: &Path) -> Result<(), String> {
    let owner = if nix::unistd::geteuid().is_root() {
        Some(lookup_user("mail_owner", MAIL_OWNER).map_err(|e| {
            format!("{e} (./run-tests creates it; the probes run as that user when root)")
        })?)
    } else {
        None
    };
    for dir in [
        "",
        "incoming",
        "active",
        "deferred",
        "hold",
        "corrupt",
        "quarantine",
        "private",
        "data",
    ] {
        let path = spool.join(dir);
        fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        if let Some(owner) = &owner {
            nix::unistd::chown(&path, Some(owner.uid), Some(owner.gid))
                .map_err(|e| e.to_string())?;
        }
    }
    fs::write(
        spool.join("main.cf"),
        "a file smtpd and relay may not open\n",
    )
    .map_err(|e| e.to_string())
}

/// The user the probe becomes, when the test runs as root.
fn lookup_identity() -> Option<mailgate_sandbox::Identity> {
    nix::unistd::geteuid()
        .is_root()
        .then(|| lookup_user("mail_owner", MAIL_OWNER).unwrap_or_else(|e| fail(&e.to_string())))
}

fn profile(service: &str) -> Profile {
    *profiles::ALL
        .iter()
        .find(|p| p.service == service)
        .unwrap_or_else(|| fail(&format!("no profile {service}")))
}

/// What the probe holds from before the sandbox, as a worker holds what the
/// master handed it.
struct Inherited {
    /// A Unix listener in private/, standing for a peer service.
    peer: UnixListener,
    /// A TCP listener with one connection waiting in its backlog.
    tcp: TcpListener,
    _client: TcpStream,
    /// A listener in the abstract namespace, made outside the sandbox (as a
    /// host daemon's would be).
    abstract_name: String,
    _abstract: UnixListener,
    /// A file opened before the sandbox, as a tool's inputs are.
    file: fs::File,
    /// A process of the user the probe becomes, started outside the sandbox.
    neighbour: std::process::Child,
}

/// The descriptors the master hands a worker are taken once: a second take
/// fails and leaves them alone (they are never owned, so closed, twice).
fn handoff_twice() -> ExitCode {
    // Two pipes, kept open (and leaked) for the test's life, their read
    // ends copied onto 3 and 4 as the master's would be.
    let pipes: Vec<_> = (0..2)
        .map(|_| nix::unistd::pipe().unwrap_or_else(|e| fail(&e.to_string())))
        .collect();
    for (fd, (read, _)) in [30, 40].into_iter().zip(&pipes) {
        // SAFETY: dup2 onto numbers this process does not use.
        if unsafe { libc::dup2(read.as_raw_fd(), fd) } < 0 {
            fail("dup2");
        }
    }
    drop(pipes);
    for (from, to) in [(30, 3), (40, 4)] {
        // SAFETY: 3 and 4 are free now; their copies become the handoff.
        if unsafe { libc::dup2(from, to) } < 0 {
            fail("dup2");
        }
    }
    let first = mailgate_sandbox::take_handoff_descriptors()
        .unwrap_or_else(|e| fail(&format!("first take: {e}")));
    if mailgate_sandbox::take_handoff_descriptors().is_ok() {
        fail("a second take got the descriptors again");
    }
    drop(first);
    ExitCode::SUCCESS
}

/// The child: enter the sandbox, then run the case.
fn probe(service: &str, case: &str, spool: &Path) -> ExitCode {
    if service == "worker" && case == "handoff-twice" {
        return handoff_twice();
    }
    let profile = profile(service);
    let peer = UnixListener::bind(spool.join("private/peer"))
        .unwrap_or_else(|e| fail(&format!("bind: {e}")));
    fs::set_permissions(
        spool.join("private/peer"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap_or_else(|e| fail(&format!("chmod: {e}")));
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&format!("bind: {e}")));
    let address = tcp.local_addr().unwrap_or_else(|e| fail(&e.to_string()));
    let client = TcpStream::connect(address).unwrap_or_else(|e| fail(&e.to_string()));
    let abstract_name = format!("mailgate-probe-{}", std::process::id());
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name)
            .unwrap_or_else(|e| fail(&e.to_string()));
        UnixListener::bind_addr(&address).unwrap_or_else(|e| fail(&format!("bind: {e}")))
    };
    let mut file = tempfile::tempfile().unwrap_or_else(|e| fail(&e.to_string()));
    file.write_all(b"Subject: probe\r\n\r\nbody\r\n")
        .unwrap_or_else(|e| fail(&e.to_string()));
    // The worker's own file, as a queue file it made would be (fchmod
    // needs the owner).
    if let Some(identity) = lookup_identity() {
        nix::unistd::fchown(&file, Some(identity.uid), Some(identity.gid))
            .unwrap_or_else(|e| fail(&format!("fchown: {e}")));
    }
    let mut neighbour = Command::new("sleep");
    neighbour.arg("5");
    if let Some(identity) = lookup_identity() {
        use std::os::unix::process::CommandExt;
        neighbour
            .uid(identity.uid.as_raw())
            .gid(identity.gid.as_raw());
    }
    let neighbour = neighbour
        .spawn()
        .unwrap_or_else(|e| fail(&format!("sleep: {e}")));
    let inherited = Inherited {
        neighbour,
        peer,
        tcp,
        _client: client,
        abstract_name,
        _abstract: abstract_listener,
        file,
    };

    let identity = lookup_identity();
    let mode = if case.starts_with("log-mode") {
        Mode::Log
    } else {
        Mode::Enforce
    };
    let tool = profile.root == profiles::Root::Unchanged;
    let place = Placement {
        root: identity.as_ref().filter(|_| !tool).map(|_| spool),
        chdir_to: spool,
        identity: identity.as_ref(),
        config: None,
    };
    let landlock = enter(&profile, &place, mode).unwrap_or_else(|e| fail(&e.to_string()));
    if !matches!(landlock, mailgate_sandbox::LandlockState::Enforced { .. }) {
        fail(&format!("Landlock {landlock} (this kernel should have it)"));
    }

    match case {
        "allowed" => allowed(service, inherited),
        "execve" | "log-mode-execve" => {
            let path = c"/nonexistent/probe";
            let argv = [path.as_ptr(), std::ptr::null()];
            // SAFETY: path and argv are NUL-terminated and outlive the call;
            // execv returns only on failure.
            unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
            // Only log mode gets here: the call was allowed, and failed.
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
                fail("execv in log mode: expected ENOENT");
            }
        }
        "fork" => {
            // SAFETY: the child of a successful fork exits at once without
            // touching any state; here the filter kills the caller first.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(0) };
            }
        }
        "inet-socket" => raw_socket(libc::AF_INET),
        "netlink-socket" => raw_socket(libc::AF_NETLINK),
        "unlink" => {
            // SAFETY: a NUL-terminated path that outlives the call.
            unsafe { libc::unlink(c"main.cf".as_ptr()) };
        }
        "memfd" => {
            let _ = nix::sys::memfd::memfd_create(c"probe", nix::sys::memfd::MFdFlags::empty());
        }
        "unix-socket" => raw_socket(libc::AF_UNIX),
        "unappend-log" => {
            // Take O_APPEND off the log every worker writes on stderr.
            // SAFETY: fcntl on a descriptor number; no pointers.
            unsafe { libc::fcntl(2, libc::F_SETFL, 0) };
        }
        "truncate-log" => {
            // SAFETY: ftruncate on a descriptor number; no pointers.
            unsafe { libc::ftruncate(2, 0) };
        }
        // A queue file finished: the one mode fchmod may set (spool's
        // READY_MODE). Any other (readable by others) is a kill.
        "mark-ready" => {
            // SAFETY: fchmod on a descriptor it holds; no pointers.
            if unsafe { libc::fchmod(inherited.file.as_raw_fd(), 0o600) } != 0 {
                fail(&format!("fchmod 0600: {}", std::io::Error::last_os_error()));
            }
        }
        "chmod-other-mode" => {
            // SAFETY: fchmod on a descriptor it holds; no pointers.
            unsafe { libc::fchmod(inherited.file.as_raw_fd(), 0o644) };
        }
        "write-file" => {
            // SAFETY: a valid buffer of the stated length.
            unsafe { libc::pwrite(inherited.file.as_raw_fd(), b"x".as_ptr().cast(), 1, 0) };
        }
        "abstract-unix" => {
            use std::os::linux::net::SocketAddrExt;
            let address =
                std::os::unix::net::SocketAddr::from_abstract_name(&inherited.abstract_name)
                    .unwrap_or_else(|e| fail(&e.to_string()));
            refused(
                std::os::unix::net::UnixStream::connect_addr(&address).map(drop),
                libc::EPERM,
            );
        }
        "log-mode-signal" => {
            // A process of the same user, started before the sandbox: only
            // Landlock's signal scope stands between them.
            let pid = inherited.neighbour.id() as libc::pid_t;
            // SAFETY: kill takes no pointers.
            let r = unsafe { libc::kill(pid, libc::SIGTERM) };
            refused(errno_result(r), libc::EPERM);
        }
        "log-mode-mkdir" => refused(fs::create_dir("made"), libc::EACCES),
        "dns-port" => {
            // TCP to the DNS servers' port (53 without a configuration) is
            // allowed: whatever answers, Landlock does not refuse it.
            if let Err(e) = TcpStream::connect("127.0.0.1:53")
                && e.raw_os_error() == Some(libc::EACCES)
            {
                fail("TCP to port 53 refused");
            }
        }
        "tcp-connect" | "log-mode-tcp-connect" => {
            let address = inherited
                .tcp
                .local_addr()
                .unwrap_or_else(|e| fail(&e.to_string()));
            refused(TcpStream::connect(address).map(drop), libc::EACCES);
        }
        "tcp-bind" => refused(TcpListener::bind("127.0.0.1:0").map(drop), libc::EACCES),
        "unix-bind" | "log-mode-unix-bind" => {
            refused(
                UnixListener::bind("private/squatter").map(drop),
                libc::EACCES,
            );
        }
        "outside-its-queues" => {
            // Where the profile's Landlock rules give nothing: the top of
            // the spool, private/, and for cleanup the queues qmgr owns.
            expect_errno(fs::File::open("main.cf").map(drop), libc::EACCES);
            expect_errno(fs::File::create("private/planted").map(drop), libc::EACCES);
            // cleanup writes incoming/ hold/ quarantine/ only; the web page
            // only reads deferred/; qmgr has nothing in quarantine/.
            let planted = match service {
                "cleanup" | "web" => "deferred/planted",
                _ => "quarantine/planted",
            };
            expect_errno(fs::File::create(planted).map(drop), libc::EACCES);
            std::process::exit(i32::from(REFUSED));
        }
        "move-between-queues" => {
            fs::write("incoming/moving", b"x").unwrap_or_else(|e| fail(&e.to_string()));
            refused(fs::rename("incoming/moving", "hold/moving"), libc::EXDEV);
        }
        "exec-memory" => {
            // SAFETY: an anonymous mapping with no address hint; nothing
            // uses it.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
        }
        other => fail(&format!("unknown case {other}")),
    }
    ExitCode::SUCCESS
}

/// Exits with REFUSED when `result` failed with `errno`; fails otherwise.
fn refused(result: std::io::Result<()>, errno: libc::c_int) {
    expect_errno(result, errno);
    std::process::exit(i32::from(REFUSED))
}

/// Returns when `result` failed with `errno`; fails otherwise.
fn expect_errno(result: std::io::Result<()>, errno: libc::c_int) {
    match result {
        Err(e) if e.raw_os_error() == Some(errno) => {}
        other => fail(&format!("expected errno {errno}, got {other:?}")),
    }
}

/// A C call's -1 as the error it set.
fn errno_result(r: libc::c_int) -> std::io::Result<()> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn raw_socket(domain: libc::c_int) {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    if fd >= 0 {
        // SAFETY: socket just returned this descriptor; nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// The calls the service makes in normal operation, inside a tokio runtime
/// built after the sandbox as a worker builds it.
fn allowed(service: &str, inherited: Inherited) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    runtime.block_on(async {
        common(service, &inherited).await;
        match service {
            "smtpd" => {
                smtpd(&inherited).await;
                open_is_refused();
            }
            "cleanup" | "qmgr" => spool_files(),
            "relay" => {
                relay(&inherited).await;
                open_is_refused();
            }
            "scanner" | "anvil" => open_is_refused(),
            "scan" => {
                read_inherited(&inherited);
                open_is_refused();
            }
            "learn" => {
                read_inherited(&inherited);
                write_inherited(&inherited);
                open_is_refused();
            }
            other => fail(&format!("no case for {other}")),
        }
    });
    // Threads end, the runtime shuts down: also part of a worker's life.
    drop(runtime);
}

async fn common(service: &str, inherited: &Inherited) {
    use tokio::signal::unix::{SignalKind, signal};
    let _term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(&format!("signal: {e}")));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                tokio::task::yield_now().await;
                i
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap_or_else(|e| fail(&format!("task: {e}")));
    }
    // Blocking pool: another thread, started under the filter.
    tokio::task::spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(1)))
        .await
        .unwrap_or_else(|e| fail(&format!("spawn_blocking: {e}")));
    if !profile(service).keeps(Promise::Accept) {
        return;
    }
    // Accept on the inherited TCP listener, as smtpd does.
    let tcp = inherited
        .tcp
        .try_clone()
        .unwrap_or_else(|e| fail(&format!("dup: {e}")));
    tcp.set_nonblocking(true)
        .unwrap_or_else(|e| fail(&format!("nonblocking: {e}")));
    let tcp = tokio::net::TcpListener::from_std(tcp).unwrap_or_else(|e| fail(&e.to_string()));
    let (stream, _) = tcp
        .accept()
        .await
        .unwrap_or_else(|e| fail(&format!("accept: {e}")));
    let _ = stream.peer_addr();
    let _ = stream.set_nodelay(true);
    // The service's own socket: accept, pass a descriptor over it (every
    // message file travels so).
    let (a, b) = tokio::net::UnixStream::pair().unwrap_or_else(|e| fail(&e.to_string()));
    pass_descriptor(&a, &b, stream.as_fd()).await;
    if !profile(service).keeps(Promise::UnixConnect) {
        return;
    }
    // A Unix peer: connect by path, accept, pass a descriptor over it.
    let peer = inherited
        .peer
        .try_clone()
        .unwrap_or_else(|e| fail(&format!("dup: {e}")));
    peer.set_nonblocking(true)
        .unwrap_or_else(|e| fail(&format!("nonblocking: {e}")));
    let peer = tokio::net::UnixListener::from_std(peer).unwrap_or_else(|e| fail(&e.to_string()));
    let connecting = tokio::net::UnixStream::connect("private/peer");
    let (accepted, connected) = tokio::join!(peer.accept(), connecting);
    let (server, _) = accepted.unwrap_or_else(|e| fail(&format!("unix accept: {e}")));
    let client = connected.unwrap_or_else(|e| fail(&format!("unix connect: {e}")));
    pass_descriptor(&client, &server, stream.as_fd()).await;
}

/// SCM_RIGHTS over a connected pair, as every message file travels.
async fn pass_descriptor(
    from: &tokio::net::UnixStream,
    to: &tokio::net::UnixStream,
    fd: std::os::fd::BorrowedFd<'_>,
) {
    use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
    let fds = [fd.as_raw_fd()];
    from.writable()
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    sendmsg::<()>(
        from.as_raw_fd(),
        &[std::io::IoSlice::new(b"x")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .unwrap_or_else(|e| fail(&format!("sendmsg: {e}")));
    to.readable().await.unwrap_or_else(|e| fail(&e.to_string()));
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        to.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap_or_else(|e| fail(&format!("recvmsg: {e}")));
    let mut received = 0;
    for cmsg in msg.cmsgs().unwrap_or_else(|e| fail(&e.to_string())) {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor for us.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                received += 1;
            }
        }
    }
    if received != 1 {
        fail("no descriptor arrived");
    }
}

/// smtpd: the message content as a sealed memfd.
async fn smtpd(inherited: &Inherited) {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create(
        c"message",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .unwrap_or_else(|e| fail(&format!("memfd_create: {e}")));
    let mut file = fs::File::from(fd);
    file.write_all(b"Subject: probe\r\n\r\nbody\r\n")
        .unwrap_or_else(|e| fail(&e.to_string()));
    let seals = SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
        .unwrap_or_else(|e| fail(&format!("F_ADD_SEALS: {e}")));
    fcntl(&file, FcntlArg::F_GET_SEALS).unwrap_or_else(|e| fail(&format!("F_GET_SEALS: {e}")));
    file.rewind().unwrap_or_else(|e| fail(&e.to_string()));
    let mut text = String::new();
    file.read_to_string(&mut text)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let _ = file
        .metadata()
        .unwrap_or_else(|e| fail(&format!("fstat: {e}")));
    let peer = inherited
        .peer
        .try_clone()
        .unwrap_or_else(|e| fail(&e.to_string()));
    peer.set_nonblocking(true)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let peer = tokio::net::UnixListener::from_std(peer).unwrap_or_else(|e| fail(&e.to_string()));
    let (accepted, connected) = tokio::join!(
        peer.accept(),
        tokio::net::UnixStream::connect("private/peer")
    );
    let (server, _) = accepted.unwrap_or_else(|e| fail(&e.to_string()));
    let client = connected.unwrap_or_else(|e| fail(&e.to_string()));
    pass_descriptor(&client, &server, file.as_fd()).await;
}

/// cleanup and qmgr: write, fsync, rename into place, list, remove.
fn spool_files() {
    let temp = PathBuf::from("incoming/probe.tmp");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&temp)
        .unwrap_or_else(|e| fail(&format!("create: {e}")));
    file.write_all(b"queue file")
        .unwrap_or_else(|e| fail(&e.to_string()));
    file.sync_all()
        .unwrap_or_else(|e| fail(&format!("fsync: {e}")));
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &temp,
        nix::fcntl::AT_FDCWD,
        "incoming/probe",
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .unwrap_or_else(|e| fail(&format!("renameat2: {e}")));
    fs::rename("incoming/probe", "incoming/moved")
        .unwrap_or_else(|e| fail(&format!("rename: {e}")));
    fs::File::open("incoming")
        .and_then(|dir| dir.sync_all())
        .unwrap_or_else(|e| fail(&format!("fsync directory: {e}")));
    let names: Vec<_> = fs::read_dir("incoming")
        .unwrap_or_else(|e| fail(&format!("read_dir: {e}")))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry.metadata().ok()?;
            Some(entry.file_name())
        })
        .collect();
    if names.len() != 1 {
        fail(&format!("expected one queue file, found {names:?}"));
    }
    let file = fs::File::options()
        .write(true)
        .open("incoming/moved")
        .unwrap_or_else(|e| fail(&format!("open: {e}")));
    file.set_modified(std::time::SystemTime::now())
        .unwrap_or_else(|e| fail(&format!("utimensat: {e}")));
    fs::remove_file("incoming/moved").unwrap_or_else(|e| fail(&format!("unlink: {e}")));
}

/// relay: SMTP out over TCP and DNS over UDP.
async fn relay(inherited: &Inherited) {
    let address = inherited
        .tcp
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| fail(&format!("tcp connect: {e}")));
    stream
        .set_nodelay(true)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&format!("udp bind: {e}")));
    let me = udp.local_addr().unwrap_or_else(|e| fail(&e.to_string()));
    udp.connect(me)
        .await
        .unwrap_or_else(|e| fail(&format!("udp connect: {e}")));
    udp.send(b"query")
        .await
        .unwrap_or_else(|e| fail(&format!("udp send: {e}")));
    let mut buf = [0u8; 16];
    udp.recv(&mut buf)
        .await
        .unwrap_or_else(|e| fail(&format!("udp recv: {e}")));
    // Allowed (a host without IPv6 may still refuse it with an error).
    let _ = tokio::net::TcpSocket::new_v6();
}

/// The tools: read the message files through the descriptors opened before.
fn read_inherited(inherited: &Inherited) {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 8];
    inherited
        .file
        .read_exact_at(&mut buf, 0)
        .unwrap_or_else(|e| fail(&format!("pread: {e}")));
    let _ = inherited
        .file
        .metadata()
        .unwrap_or_else(|e| fail(&e.to_string()));
}

/// learn: write, sync and grow the store it opened before.
fn write_inherited(inherited: &Inherited) {
    use std::os::unix::fs::FileExt;
    inherited
        .file
        .write_all_at(b"learned", 4)
        .unwrap_or_else(|e| fail(&format!("pwrite: {e}")));
    inherited
        .file
        .set_len(4096)
        .unwrap_or_else(|e| fail(&format!("ftruncate: {e}")));
    inherited
        .file
        .sync_data()
        .unwrap_or_else(|e| fail(&format!("fdatasync: {e}")));
}

/// smtpd and relay open no files: open gets EACCES (not a kill).
fn open_is_refused() {
    match fs::File::open("main.cf") {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
        other => fail(&format!("open main.cf: expected EACCES, got {other:?}")),
    }
}
