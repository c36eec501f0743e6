//! tlskeys: the one process that holds the TLS private keys, as OpenSMTPD's
//! ca process. smtpd and relay, which talk to the network, get certificate
//! chains from it and ask it to sign each handshake; they never read a key
//! file, so a compromised smtpd or relay has no key to steal.
//!
//! It reads every key file any service's configuration names (main.cf and
//! master.cf `-o` overrides) while still root, then runs as its own user
//! (tlskeys_owner) in an empty chroot (tlskeys_directory), with no network
//! and no files: it can accept on its inherited socket, read and write the
//! connections it accepted, and nothing else. It answers only smtpd's,
//! relay's and cleanup's uids (its profile's callers, checked with
//! SO_PEERCRED), and signs only what a TLS handshake signs (see
//! mailgate_tls::protocol::handshake_context) with a TLS key, and only
//! DKIM-Signature data of the key's own domain and selector with a DKIM key
//! of dkim_key_table (dkim_context), for cleanup.

mod dkim;
mod serve;
mod store;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use mailgate_config::MasterConfig;
use mailgate_log::info;
use mailgate_sandbox::{Worker, die, profiles};

use crate::dkim::DkimKeys;
use crate::serve::Roles;
use crate::store::{Store, configured_sources};

fn main() -> ExitCode {
    let mut worker = Worker::start("tlskeys");
    let master = MasterConfig::load(&worker.handoff.config_dir).unwrap_or_else(|e| die(e));
    let sources = configured_sources(&worker.config, &master).unwrap_or_else(|e| die(e));
    let dkim = DkimKeys::load(&worker.config).unwrap_or_else(|e| die(e));
    let store = Store::load(&sources, dkim).unwrap_or_else(|e| die(e));
    let roles = roles(&worker.config);
    let home = worker.config.get("tlskeys_directory");
    prepare_home(Path::new(&home));
    let listener = worker.take_listener();
    let mut worker = worker.enter_sandbox(&profiles::TLSKEYS);
    info!(
        "holding {} private key(s), {} DKIM key(s)",
        store.len(),
        store.dkim_keys()
    );
    let shutdown = worker.shutdown();
    let runtime = worker.runtime();
    runtime.block_on(serve::serve(
        listener,
        store,
        worker.callers(),
        roles,
        worker.handoff.sessions as usize,
        shutdown.wait(),
    ))
}

/// Who may ask what: smtpd_owner and relay_owner for TLS, mail_owner
/// (cleanup) for DKIM; without root, every process is this same user.
fn roles(config: &mailgate_config::MainConfig) -> Roles {
    if !nix::unistd::geteuid().is_root() {
        let me = nix::unistd::geteuid().as_raw();
        return Roles {
            tls: vec![me],
            dkim: me,
        };
    }
    let uid = |parameter: &'static str| {
        mailgate_sandbox::lookup_user(parameter, &config.get(parameter))
            .unwrap_or_else(|e| die(e))
            .uid
            .as_raw()
    };
    Roles {
        tls: vec![uid("smtpd_owner"), uid("relay_owner")],
        dkim: uid("mail_owner"),
    }
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
