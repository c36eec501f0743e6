//! The verify profiles, proven in child processes: each enters the sandbox
//! the way the service does (its store opened before; chroot into the
//! spool and mail_owner when run as root), then either does what the
//! service does (its cache read and written, a query accepted, a delivery
//! agent's socket in private/ reached) and must exit 0, or tries one call
//! its profile forbids and must die of SIGSYS.
//!
//! Each case is this binary re-executed with `--probe PROFILE CASE DIR`, so
//! the child is single-threaded when it enters the sandbox, like a worker.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mailgate_sandbox::probe_harness::{self, Expect, fail};
use mailgate_sandbox::profiles::{Profile, VERIFY, VERIFY_MEMORY, VERIFY_REDIS};
use mailgate_sandbox::{Mode, Placement, enter, lookup_user};
use mailgate_store::{Store, StoreOptions, StoreSpec};

const MAIL_OWNER: &str = "mailgate";

const CASES: &[(&str, &str, Expect)] = &[
    ("verify", "allowed", Expect::Works),
    ("verify", "inet-socket", Expect::Sigsys),
    ("verify", "unlink", Expect::Sigsys),
    ("verify", "execve", Expect::Sigsys),
    ("verify-redis", "allowed", Expect::Works),
    ("verify-redis", "pwrite", Expect::Sigsys),
    ("verify-memory", "allowed", Expect::Works),
    ("verify-memory", "inet-socket", Expect::Sigsys),
    ("verify-memory", "pwrite", Expect::Sigsys),
];

fn main() -> ExitCode {
    probe_harness::main("sandbox", CASES, prepare, probe)
}

/// The case's spool: private/ for a delivery agent's socket, and a file
/// the probes may not touch.
fn prepare(dir: &Path) -> Result<(), String> {
    let private = dir.join("private");
    fs::create_dir(&private).map_err(|e| e.to_string())?;
    for path in [dir, private.as_path()] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    fs::write(dir.join("other-file"), "not to be touched\n").map_err(|e| e.to_string())
}

/// What the service holds from before its sandbox.
struct Held {
    store: Store,
    /// Its listening socket, with a client (smtpd) waiting.
    listener: TcpListener,
    _client: TcpStream,
    /// A delivery agent's socket in private/, for the probes.
    _agent: UnixListener,
    /// For the Redis profile: a server to reach.
    redis: Option<TcpListener>,
}

fn probe(name: &str, case: &str, dir: &Path) -> ExitCode {
    let profile: &Profile = match name {
        "verify" => &VERIFY,
        "verify-redis" => &VERIFY_REDIS,
        _ => &VERIFY_MEMORY,
    };
    let store = match name {
        "verify" => {
            let spec = StoreSpec::Redb(dir.join("verify_cache.redb"));
            Store::open(&spec, "verify", StoreOptions::default())
                .unwrap_or_else(|e| fail(&e.to_string()))
        }
        _ => Store::in_memory("verify", 1000),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let client = TcpStream::connect(address).unwrap_or_else(|e| fail(&e.to_string()));
    let agent_path = dir.join("private/smtp");
    let agent = UnixListener::bind(&agent_path).unwrap_or_else(|e| fail(&e.to_string()));
    fs::set_permissions(&agent_path, fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let redis = (name == "verify-redis")
        .then(|| TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string())));
    let scratch = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("scratch"))
        .unwrap_or_else(|e| fail(&e.to_string()));
    // The configuration the Landlock rules read: for the Redis profile,
    // the port TCP may go to.
    let main_cf = match &redis {
        Some(redis) => {
            let port = redis
                .local_addr()
                .unwrap_or_else(|e| fail(&e.to_string()))
                .port();
            format!("address_verify_map = redis:127.0.0.1:{port}\n")
        }
        None => String::new(),
    };
    fs::write(dir.join("main.cf"), main_cf).unwrap_or_else(|e| fail(&e.to_string()));
    let config = mailgate_config::MainConfig::load(dir).unwrap_or_else(|e| fail(&e.to_string()));
    let held = Held {
        store,
        listener,
        _client: client,
        _agent: agent,
        redis,
    };

    let identity = nix::unistd::geteuid()
        .is_root()
        .then(|| lookup_user("mail_owner", MAIL_OWNER).unwrap_or_else(|e| fail(&e.to_string())));
    let place = Placement {
        root: identity.as_ref().map(|_| dir),
        chdir_to: dir,
        identity: identity.as_ref(),
        config: Some(&config),
    };
    enter(profile, &place, Mode::Enforce).unwrap_or_else(|e| fail(&e.to_string()));

    match case {
        "allowed" => allowed(held),
        "inet-socket" => raw_socket(libc::AF_INET),
        "unlink" => {
            // SAFETY: a NUL-terminated path that outlives the call.
            unsafe { libc::unlink(c"other-file".as_ptr()) };
        }
        "execve" => {
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: NUL-terminated path and NULL-terminated vectors that
            // outlive the call.
            unsafe { libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), envp.as_ptr()) };
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

/// What the service does: a tokio runtime, accept on its socket, its cache
/// written, read, pruned and closed, a connection to a delivery agent's
/// socket (and to Redis, for that profile); files cannot be opened.
fn allowed(held: Held) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    runtime.block_on(async {
        held.listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| fail(&e.to_string()));
        let listener = tokio::net::TcpListener::from_std(held.listener)
            .unwrap_or_else(|e| fail(&e.to_string()));
        listener
            .accept()
            .await
            .unwrap_or_else(|e| fail(&format!("accept: {e}")));
        let store = held.store;
        for i in 0..20 {
            let key = format!("user{i}@example.com");
            store
                .set(
                    &key,
                    b"0:0:1800000000:250 2.1.5 Ok",
                    Duration::from_secs(if i % 2 == 0 { 3600 } else { 0 }),
                )
                .await
                .unwrap_or_else(|e| fail(&format!("set: {e}")));
            store
                .get(&key)
                .await
                .unwrap_or_else(|e| fail(&format!("get: {e}")));
        }
        let pruned = store
            .prune()
            .await
            .unwrap_or_else(|e| fail(&format!("prune: {e}")));
        if pruned != 10 {
            fail(&format!("pruned {pruned}, expected 10"));
        }
        drop(store);
        tokio::net::UnixStream::connect("private/smtp")
            .await
            .unwrap_or_else(|e| fail(&format!("unix connect: {e}")));
        if let Some(redis) = held.redis {
            let address = redis.local_addr().unwrap_or_else(|e| fail(&e.to_string()));
            tokio::net::TcpStream::connect(address)
                .await
                .unwrap_or_else(|e| fail(&format!("tcp connect: {e}")));
        }
        match fs::File::open("other-file") {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
            other => fail(&format!("open: expected EACCES, got {other:?}")),
        }
    });
    drop(runtime);
}
