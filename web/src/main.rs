//! web: the optional web page (master.cf's `web` service, off by default):
//! the traffic graphs and counters, the queue (list, show, hold, release,
//! delete), the quarantine (view, release, delete) and the recent log.
//!
//! Its own process and sandbox profile (WEB): chrooted into the spool as
//! mail_owner, it reads queue files and the statistics file and moves
//! quarantined messages, asks qmgr for every change to queued mail, and
//! checks logins with Dovecot's auth service over a Unix socket in the
//! spool. It connects to no network. TLS keys and the log are read or
//! opened before the sandbox. Logins are limited to web_admin_users; every
//! change needs the session's CSRF token, and the pages carry no script.

mod app;
mod auth;
mod http;
mod pages;
mod server;
mod session;
mod spool;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use mailgate_config::MainConfig;
use mailgate_sandbox::{Worker, die, profiles};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::auth::DovecotAuth;
use crate::session::Sessions;

/// What the web service takes from main.cf, read once at start.
struct Settings {
    admins: Vec<String>,
    /// The login backend's socket, relative to the spool.
    sasl_path: PathBuf,
    tls: Option<TlsAcceptor>,
    session_timeout: std::time::Duration,
    log: Option<std::fs::File>,
}

impl Settings {
    fn from(config: &MainConfig) -> Result<Settings, String> {
        let admins = config.list("web_admin_users");
        if admins.is_empty() {
            return Err("web_admin_users is empty: nobody could log in".into());
        }
        let kind = config.get("web_sasl_type");
        if kind != "dovecot" {
            return Err(format!(
                "web_sasl_type = {kind}: only dovecot is implemented"
            ));
        }
        let sasl_path = PathBuf::from(config.get("web_sasl_path"));
        let sasl_path = match sasl_path.strip_prefix("/") {
            // Absolute paths are only reachable when they are in the spool.
            Ok(_) => {
                let spool = PathBuf::from(config.get("queue_directory"));
                match sasl_path.strip_prefix(&spool) {
                    Ok(inside) => inside.to_path_buf(),
                    Err(_) => {
                        return Err(format!(
                            "web_sasl_path = {}: must be inside queue_directory ({}), the web service's chroot",
                            sasl_path.display(),
                            spool.display()
                        ));
                    }
                }
            }
            Err(_) => sasl_path,
        };
        let cert = config.get("web_tls_cert_file");
        let tls = if cert.is_empty() {
            None
        } else {
            Some(tls_acceptor(
                Path::new(&cert),
                Path::new(&config.get("web_tls_key_file")),
            )?)
        };
        let log_path = config.get("maillog_file");
        let log = if log_path.is_empty() {
            None
        } else {
            Some(
                std::fs::File::open(&log_path)
                    .map_err(|e| format!("maillog_file = {log_path}: {e}"))?,
            )
        };
        Ok(Settings {
            admins,
            sasl_path,
            tls,
            session_timeout: config.time("web_session_timeout"),
            log,
        })
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("web_tls_cert_file = {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "web_tls_cert_file = {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("web_tls_key_file = {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("web_tls_cert_file and web_tls_key_file: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn main() -> ExitCode {
    let mut worker = Worker::start("web");
    let settings = Settings::from(&worker.config).unwrap_or_else(|e| die(e));
    let listener = worker.take_listener();
    let limit = worker.handoff.maxproc as usize;
    let app = Arc::new(App {
        sessions: Sessions::new(settings.session_timeout),
        auth: Box::new(DovecotAuth {
            socket: settings.sasl_path,
        }),
        admins: settings.admins,
        log: settings.log,
        tls: settings.tls.is_some(),
    });
    let mut worker = worker.enter_sandbox(&profiles::WEB);
    let shutdown = worker.shutdown();
    let runtime = worker.runtime(2);
    runtime.block_on(async move {
        tokio::select! {
            _ = server::serve(listener, app, settings.tls, limit) => {}
            _ = shutdown.wait() => {}
        }
    });
    ExitCode::SUCCESS
}
