//! LMTP over a Unix-domain socket, as Postfix's `lmtp:unix:PATH`: Dovecot's
//! and Cyrus's usual setup (`lmtp:unix:private/dovecot-lmtp`). A relative
//! path is relative to the queue directory, which is relay's chroot and
//! working directory, as it is Postfix's. One session per delivery: no
//! connection is kept.

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::UnixStream;

use crate::client::{self, Message};
use crate::settings::Settings;
use crate::status::Status;
use crate::tls::OpenError;

/// The socket path of an `unix:PATH` next hop, if it is one.
pub fn socket_path(nexthop: &str) -> Option<Result<PathBuf, String>> {
    let path = nexthop.trim().strip_prefix("unix:")?;
    if path.is_empty() || path.bytes().any(|b| b.is_ascii_control()) {
        return Some(Err(format!(
            "bad LMTP socket path in next hop \"{nexthop}\""
        )));
    }
    Some(Ok(PathBuf::from(path)))
}

/// `relay=` label as Postfix's lmtp(8) logs a Unix socket peer:
/// `myhostname[path]`.
pub fn label(settings: &Settings, path: &Path) -> String {
    format!("{}[{}]", settings.myhostname, path.display())
}

/// One LMTP session on the socket at `path`: the statuses of `message`'s
/// recipients, one per recipient accepted at RCPT TO and refused ones
/// with their RCPT reply; Err when no transaction could be run (connect,
/// greeting or LHLO failed).
pub async fn deliver(
    path: &Path,
    settings: &Settings,
    message: &Message<'_>,
) -> Result<Vec<Status>, Status> {
    let relay = label(settings, path);
    let stream = tokio::time::timeout(settings.timeouts.connect, UnixStream::connect(path))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
        .and_then(|connected| connected)
        .map_err(|e| {
            Status::deferred(
                "4.4.1",
                format!(
                    "connect to {}: {}",
                    path.display(),
                    crate::deliver::describe(&e)
                ),
            )
        })?;
    let connection = client::open(
        stream,
        relay,
        &settings.helo_name,
        settings.timeouts,
        None,
        true,
        false,
    )
    .await
    .map_err(|e| match e {
        OpenError::Refused(status) | OpenError::TlsHandshake(status) => status,
    })?;
    let delivered = connection.send_mail(message, false).await?;
    if let Some(mut connection) = delivered.connection {
        connection.quit().await;
    }
    Ok(delivered.statuses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_next_hops() {
        assert_eq!(
            socket_path("unix:private/dovecot-lmtp").unwrap().unwrap(),
            PathBuf::from("private/dovecot-lmtp")
        );
        assert_eq!(
            socket_path("unix:/run/dovecot/lmtp").unwrap().unwrap(),
            PathBuf::from("/run/dovecot/lmtp")
        );
        assert!(socket_path("unix:").unwrap().is_err());
        assert!(socket_path("unix:a\nb").unwrap().is_err());
        assert!(socket_path("[127.0.0.1]:24").is_none());
        assert!(socket_path("inet:[127.0.0.1]:24").is_none());
    }
}
