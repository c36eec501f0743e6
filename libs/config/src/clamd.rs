//! `clamd_transfer`: how the scanner hands a message to clamd. Parsed here,
//! not in the scanner, so that `mailgate check` and the scanner give the
//! same answer.

use std::fmt;

use crate::main_cf::MainConfig;

/// The clamd command the scanner uses, after `auto` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClamdTransfer {
    /// `INSTREAM`: the message bytes, in chunks, over the socket. Works over
    /// Unix and TCP sockets.
    Instream,
    /// `FILDES`: the message's descriptor itself, passed with SCM_RIGHTS;
    /// clamd reads the file, nothing is copied. Unix sockets only.
    Fildes,
}

/// Why `clamd_transfer` is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClamdTransferError {
    /// Not one of the values the parameter takes.
    Unknown { value: String },
    /// `fildes` with `clamd_socket = inet:...`: a descriptor cannot travel
    /// over TCP.
    FildesOverInet { socket: String },
}

impl fmt::Display for ClamdTransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdTransferError::Unknown { value } => write!(
                f,
                "invalid value \"{value}\" (expected auto, instream or fildes)"
            ),
            ClamdTransferError::FildesOverInet { socket } => write!(
                f,
                "fildes passes the message's file descriptor, which only works over a Unix \
                 socket, but clamd_socket = {socket}; use instream or auto for clamd over TCP"
            ),
        }
    }
}

impl std::error::Error for ClamdTransferError {}

impl ClamdTransfer {
    /// Resolves a `clamd_transfer` value against the `clamd_socket` it is
    /// used with: `auto` is FILDES over a Unix socket and INSTREAM over TCP.
    /// Values are case-insensitive, as Postfix's are. Whether the socket
    /// itself is well formed is the scanner's check; here only `inet:` (TCP)
    /// versus anything else (a Unix socket) matters.
    pub fn parse(transfer: &str, socket: &str) -> Result<ClamdTransfer, ClamdTransferError> {
        let inet = socket.trim().starts_with("inet:");
        match transfer.trim().to_ascii_lowercase().as_str() {
            "auto" if inet => Ok(ClamdTransfer::Instream),
            "auto" | "fildes" if !inet => Ok(ClamdTransfer::Fildes),
            "fildes" => Err(ClamdTransferError::FildesOverInet {
                socket: socket.trim().to_string(),
            }),
            "instream" => Ok(ClamdTransfer::Instream),
            _ => Err(ClamdTransferError::Unknown {
                value: transfer.trim().to_string(),
            }),
        }
    }

    /// `clamd_transfer` and `clamd_socket` from main.cf.
    pub fn from_main_cf(config: &MainConfig) -> Result<ClamdTransfer, ClamdTransferError> {
        ClamdTransfer::parse(&config.get("clamd_transfer"), &config.get("clamd_socket"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIX: &str = "unix:/var/lib/mailgate/scanner/clamd/clamd.ctl";
    const INET: &str = "inet:127.0.0.1:3310";

    #[test]
    fn auto_follows_the_socket() {
        assert_eq!(
            ClamdTransfer::parse("auto", UNIX),
            Ok(ClamdTransfer::Fildes)
        );
        assert_eq!(
            ClamdTransfer::parse("auto", "/run/clamd.ctl"),
            Ok(ClamdTransfer::Fildes)
        );
        assert_eq!(
            ClamdTransfer::parse("auto", INET),
            Ok(ClamdTransfer::Instream)
        );
    }

    #[test]
    fn explicit_values_any_case() {
        assert_eq!(
            ClamdTransfer::parse("instream", UNIX),
            Ok(ClamdTransfer::Instream)
        );
        assert_eq!(
            ClamdTransfer::parse("INSTREAM", INET),
            Ok(ClamdTransfer::Instream)
        );
        assert_eq!(
            ClamdTransfer::parse(" Fildes ", UNIX),
            Ok(ClamdTransfer::Fildes)
        );
    }

    #[test]
    fn fildes_over_tcp_is_refused_with_the_socket_named() {
        let e = ClamdTransfer::parse("fildes", INET).unwrap_err();
        assert_eq!(
            e,
            ClamdTransferError::FildesOverInet {
                socket: INET.into()
            }
        );
        let text = e.to_string();
        assert!(
            text.contains("clamd_socket = inet:127.0.0.1:3310") && text.contains("Unix socket"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_value_is_named_with_the_choices() {
        for bad in ["stream", "", "fildes instream", "scan"] {
            let e = ClamdTransfer::parse(bad, UNIX).unwrap_err();
            assert_eq!(
                e,
                ClamdTransferError::Unknown {
                    value: bad.trim().into()
                }
            );
            let text = e.to_string();
            assert!(
                text.contains(&format!("\"{bad}\"")) && text.contains("auto, instream or fildes"),
                "{text}"
            );
        }
        // A bad value is an error whatever the socket.
        assert!(matches!(
            ClamdTransfer::parse("tcp", INET),
            Err(ClamdTransferError::Unknown { .. })
        ));
        assert!(matches!(
            ClamdTransfer::parse("tcp", ""),
            Err(ClamdTransferError::Unknown { .. })
        ));
    }

    #[test]
    fn the_default_is_auto() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.cf");
        let load = |text: &str| MainConfig::parse(text, &main, dir.path(), &[]).unwrap();
        let config = load(&format!("clamd_socket = {UNIX}\n"));
        assert_eq!(config.get("clamd_transfer"), "auto");
        assert_eq!(
            ClamdTransfer::from_main_cf(&config),
            Ok(ClamdTransfer::Fildes)
        );
        let config = load(&format!("clamd_socket = {INET}\n"));
        assert_eq!(
            ClamdTransfer::from_main_cf(&config),
            Ok(ClamdTransfer::Instream)
        );
        let config = load(&format!(
            "clamd_socket = {UNIX}\nclamd_transfer = instream\n"
        ));
        assert_eq!(
            ClamdTransfer::from_main_cf(&config),
            Ok(ClamdTransfer::Instream)
        );
    }
}
