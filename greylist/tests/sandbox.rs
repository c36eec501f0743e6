//! The greylist profiles, proven in child processes: each enters the
//! sandbox the way the service does (its store opened before; chroot and
//! mail_owner when run as root), then either does what the service does
//! and must exit 0, or tries one call its profile forbids and must die of
//! SIGSYS.
//!
//! Each case is this binary re-executed with `--probe PROFILE CASE DIR`, so
//! the child is single-threaded when it enters the sandbox, like a worker.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mailgate_sandbox::probe_harness::{self, Expect, fail};
use mailgate_sandbox::profiles::{GREYLIST, GREYLIST_REDIS, Profile};
use mailgate_sandbox::{Mode, Placement, enter, lookup_user};
use mailgate_store::{Store, StoreOptions, StoreSpec};

const MAIL_OWNER: &str = "mailgate";

const CASES: &[(&str, &str, Expect)] = &[
    ("greylist", "allowed", Expect::Works),
    ("greylist", "inet-socket", Expect::Sigsys),
    ("greylist", "unix-socket", Expect::Sigsys),
    ("greylist", "flock-lock", Expect::Sigsys),
    ("greylist", "unlink", Expect::Sigsys),
    ("greylist-redis", "allowed", Expect::Works),
    ("greylist-redis", "unix-socket", Expect::Sigsys),
    ("greylist-redis", "pwrite", Expect::Sigsys),
];

fn main() -> ExitCode {
    probe_harness::main("sandbox", CASES, prepare, probe)
}

/// The case's spool, with a file the probes may not touch.
fn prepare(dir: &Path) -> Result<(), String> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    fs::write(dir.join("other-file"), "not to be touched\n").map_err(|e| e.to_string())
}

fn probe(name: &str, case: &str, dir: &Path) -> ExitCode {
    let profile: &Profile = match name {
        "greylist" => &GREYLIST,
        _ => &GREYLIST_REDIS,
    };
    // What the service holds from before its sandbox: its store, a
    // listening socket (with a client waiting), and for the Redis profile
    // a server to reach.
    let store = (name == "greylist").then(|| {
        let spec = StoreSpec::Redb(dir.join("greylist.redb"));
        Store::open(&spec, "greylist", StoreOptions::default())
            .unwrap_or_else(|e| fail(&e.to_string()))
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let _client = TcpStream::connect(address).unwrap_or_else(|e| fail(&e.to_string()));
    let scratch = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("scratch"))
        .unwrap_or_else(|e| fail(&e.to_string()));

    let identity = nix::unistd::geteuid()
        .is_root()
        .then(|| lookup_user("mail_owner", MAIL_OWNER).unwrap_or_else(|e| fail(&e.to_string())));
    // The Redis profile's Landlock rule allows the port greylist_database
    // names: here, the test's own listener.
    fs::write(
        dir.join("main.cf"),
        format!("greylist_database = redis:127.0.0.1:{}\n", address.port()),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    let config = mailgate_config::MainConfig::load(dir).unwrap_or_else(|e| fail(&e.to_string()));
    let place = Placement {
        root: identity.as_ref().map(|_| dir),
        chdir_to: dir,
        identity: identity.as_ref(),
        config: Some(&config),
    };
    enter(profile, &place, Mode::Enforce).unwrap_or_else(|e| fail(&e.to_string()));

    match case {
        "allowed" => allowed(store, listener),
        "inet-socket" => raw_socket(libc::AF_INET),
        "unix-socket" => raw_socket(libc::AF_UNIX),
        "flock-lock" => {
            // SAFETY: flock(2) on a descriptor this process holds.
            unsafe { libc::flock(scratch.as_raw_fd(), libc::LOCK_EX) };
        }
        "unlink" => {
            // SAFETY: a NUL-terminated path that outlives the call.
            unsafe { libc::unlink(c"other-file".as_ptr()) };
        }
        "pwrite" => {
            // SAFETY: the buffer outlives the call; the descriptor is held.
            unsafe { libc::pwrite(scratch.as_raw_fd(), c"x".as_ptr().cast(), 1, 0) };
        }
        other => fail(&format!("unknown case {other}")),
    }
    ExitCode::SUCCESS
}

fn raw_socket(domain: libc::c_int) {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    if fd >= 0 {
        // SAFETY: socket just returned this descriptor; nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// What the service does: a tokio runtime, accept on its socket, its store
/// read, written, pruned and closed (redb releases its locks); files cannot
/// be opened. With Redis: a TCP connection out.
fn allowed(store: Option<Store>, listener: TcpListener) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    runtime.block_on(async {
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| fail(&e.to_string()));
        let listener =
            tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| fail(&e.to_string()));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| fail(&e.to_string()));
        listener
            .accept()
            .await
            .unwrap_or_else(|e| fail(&format!("accept: {e}")));
        match store {
            Some(store) => {
                for i in 0..50 {
                    let key = format!("t:192.0.2.0/a{i}@x/b@y");
                    store
                        .set(
                            &key,
                            b"1,2",
                            Duration::from_secs(if i % 2 == 0 { 3600 } else { 0 }),
                        )
                        .await
                        .unwrap_or_else(|e| fail(&format!("set: {e}")));
                    store
                        .get(&key)
                        .await
                        .unwrap_or_else(|e| fail(&format!("get: {e}")));
                }
                store
                    .remove("t:192.0.2.0/a0@x/b@y")
                    .await
                    .unwrap_or_else(|e| fail(&format!("remove: {e}")));
                let pruned = store
                    .prune()
                    .await
                    .unwrap_or_else(|e| fail(&format!("prune: {e}")));
                if pruned != 25 {
                    fail(&format!("pruned {pruned}, expected 25"));
                }
                drop(store);
            }
            None => {
                let (accepted, connected) =
                    tokio::join!(listener.accept(), tokio::net::TcpStream::connect(address));
                accepted.unwrap_or_else(|e| fail(&format!("accept: {e}")));
                connected.unwrap_or_else(|e| fail(&format!("tcp connect: {e}")));
            }
        }
        match fs::File::open("other-file") {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
            other => fail(&format!("open: expected EACCES, got {other:?}")),
        }
    });
    drop(runtime);
}
