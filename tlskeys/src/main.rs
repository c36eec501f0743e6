//! tlskeys: the one process that holds the TLS private keys, as OpenSMTPD's
//! ca process. smtpd and relay, which talk to the network, get certificate
//! chains from it and ask it to sign each handshake; they never read a key
//! file, so a compromised smtpd or relay has no key to steal.
//!
//! It reads every key file any service's configuration names (main.cf and
//! master.cf `-o` overrides) while still root, then runs as its own user
//! (tlskeys_owner) in an empty chroot (tlskeys_directory), with no network
//! and no files: it can accept on its inherited socket, read and write the
//! connections it accepted, and nothing else. It answers only smtpd's and
//! relay's uids (its profile's callers, checked with SO_PEERCRED), and signs
//! only what a TLS handshake signs (see
//! mailgate_tls::protocol::handshake_context).

mod serve;
mod store;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use mailgate_config::MasterConfig;
use mailgate_log::info;
use mailgate_sandbox::{Worker, die, profiles};

use crate::store::{Store, configured_sources};

fn main() -> ExitCode {
    let mut worker = Worker::start("tlskeys");
    let master = MasterConfig::load(&worker.handoff.config_dir).unwrap_or_else(|e| die(e));
    let sources = configured_sources(&worker.config, &master).unwrap_or_else(|e| die(e));
    let store = Store::load(&sources).unwrap_or_else(|e| die(e));
    let home = worker.config.get("tlskeys_directory");
    prepare_home(Path::new(&home));
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&profiles::TLSKEYS);
    info!("holding {} private key(s)", store.len());
    let shutdown = worker.shutdown();
    let runtime = worker.runtime();
    runtime.block_on(serve::serve(
        listener,
        store,
        worker.callers(),
        worker.handoff.sessions as usize,
        shutdown.wait(),
    ))
}

/// The chroot: an empty directory, root's, that tlskeys cannot write.
fn prepare_home(home: &Path) {
    if let Err(e) = std::fs::create_dir_all(home) {
        die(format!(
            "tlskeys_directory = {}: cannot create it: {e}",
            home.display()
        ));
    }
    if nix::unistd::geteuid().is_root()
        && let Err(e) = std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755))
    {
        die(format!(
            "tlskeys_directory = {}: cannot set its mode: {e}",
            home.display()
        ));
    }
}
