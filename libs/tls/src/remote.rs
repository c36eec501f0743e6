//! A private key that lives in tlskeys: rustls's `SigningKey` whose
//! signatures are made by the key-holding process over its Unix socket.
//!
//! rustls asks for a signature synchronously, in the middle of processing
//! a handshake message. The call is a blocking round trip on a pooled Unix
//! connection; inside a multi-threaded tokio runtime it runs under
//! `block_in_place`, so the worker thread's other sessions move elsewhere
//! while it waits.

use std::fmt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

use crate::protocol::{self, KeyInfo, Reply, Request, Source};

/// How many idle connections to tlskeys are kept.
const POOL: usize = 16;

/// Connections to tlskeys, shared by every key of a process.
pub struct KeyClient {
    socket: PathBuf,
    timeout: Duration,
    idle: Mutex<Vec<UnixStream>>,
}

impl fmt::Debug for KeyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyClient({})", self.socket.display())
    }
}

impl KeyClient {
    pub fn new(socket: PathBuf, timeout: Duration) -> Arc<KeyClient> {
        Arc::new(KeyClient {
            socket,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// One request and its reply. A pooled connection that fails (tlskeys
    /// restarted) is dropped and the request is tried once more on a new
    /// one.
    pub fn call(&self, request: &Request) -> std::io::Result<Reply> {
        let pooled = self.lock().pop();
        if let Some(mut stream) = pooled
            && let Ok(reply) = protocol::call(&mut stream, request)
        {
            self.put_back(stream);
            return Ok(reply);
        }
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let reply = protocol::call(&mut stream, request)?;
        self.put_back(stream);
        Ok(reply)
    }

    /// The certified keys for the given sources: certificate chains from
    /// tlskeys, each with a key that signs through it, and the key's
    /// description for the log ("2048 bits", "prime256v1").
    pub fn certified_keys(
        self: &Arc<Self>,
        sources: Vec<Source>,
    ) -> Result<Vec<Described>, String> {
        let reply = blocking(|| self.call(&Request::Certificates { sources }))
            .map_err(|e| format!("cannot reach tlskeys: {e}"))?;
        let infos = match reply {
            Reply::Certificates(infos) => infos,
            Reply::Refused(why) => return Err(format!("tlskeys refused: {why}")),
            Reply::Signature(_) | Reply::DkimAlgorithm(_) => {
                return Err("tlskeys answered out of turn".into());
            }
        };
        let mut keys = Vec::with_capacity(infos.len());
        for info in infos {
            let chain: Vec<CertificateDer<'static>> =
                info.chain.iter().map(|c| c.clone().into()).collect();
            let detail = info.detail.clone();
            let key = Arc::new(RemoteKey {
                client: Arc::clone(self),
                info,
            });
            let certified = CertifiedKey::new(chain, key);
            certified
                .keys_match()
                .map_err(|e| format!("certificate and key do not match: {e}"))?;
            keys.push((Arc::new(certified), detail));
        }
        Ok(keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<UnixStream>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn put_back(&self, stream: UnixStream) {
        let mut idle = self.lock();
        if idle.len() < POOL {
            idle.push(stream);
        }
    }
}

/// Runs a blocking call, telling a multi-threaded tokio runtime first.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A certified key and its description for the log ("2048 bits").
pub type Described = (Arc<CertifiedKey>, Option<String>);

/// A key held by tlskeys.
pub struct RemoteKey {
    client: Arc<KeyClient>,
    info: KeyInfo,
}

impl fmt::Debug for RemoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteKey({})", self.info.kind)
    }
}

impl RemoteKey {
    pub fn info(&self) -> &KeyInfo {
        &self.info
    }
}

impl SigningKey for RemoteKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = self
            .info
            .schemes
            .iter()
            .map(|s| SignatureScheme::from(*s))
            .find(|s| offered.contains(s))?;
        Some(Box::new(RemoteSigner {
            client: Arc::clone(&self.client),
            key_id: self.info.key_id,
            scheme,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.info.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.info.schemes.first().map(|s| SignatureScheme::from(*s)) {
            Some(SignatureScheme::ED25519) => SignatureAlgorithm::ED25519,
            Some(
                SignatureScheme::ECDSA_NISTP256_SHA256
                | SignatureScheme::ECDSA_NISTP384_SHA384
                | SignatureScheme::ECDSA_NISTP521_SHA512,
            ) => SignatureAlgorithm::ECDSA,
            _ => SignatureAlgorithm::RSA,
        }
    }
}

struct RemoteSigner {
    client: Arc<KeyClient>,
    key_id: [u8; 32],
    scheme: SignatureScheme,
}

impl fmt::Debug for RemoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteSigner({:?})", self.scheme)
    }
}

impl Signer for RemoteSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let request = Request::Sign {
            key_id: self.key_id,
            scheme: u16::from(self.scheme),
            message: message.to_vec(),
        };
        match blocking(|| self.client.call(&request)) {
            Ok(Reply::Signature(signature)) => Ok(signature),
            Ok(Reply::Refused(why)) => Err(Error::General(format!("tlskeys refused: {why}"))),
            Ok(Reply::Certificates(_) | Reply::DkimAlgorithm(_)) => {
                Err(Error::General("tlskeys answered out of turn".into()))
            }
            Err(e) => Err(Error::General(format!("cannot reach tlskeys: {e}"))),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
