//! TLS on the client connection: STARTTLS (RFC 3207) and wrapper mode
//! (SMTPS, smtpd_tls_wrappermode). The handshake's signature is made by
//! tlskeys (mailgate_tls::server); the connection layer only swaps the
//! plain socket for the TLS stream.
//!
//! After 220 the session forgets everything the client said in clear:
//! input pipelined after STARTTLS is discarded (the CVE-2011-0411 class of
//! command injection), and HELO, the transaction and any AUTH are reset
//! (RFC 3207 section 4.2).

use mailgate_log::{info, warning};
use mailgate_tls::stream::{Stream, take_plain_stream};
use mailgate_tls::summary::{Details, Trust};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;

use crate::reply::Reply;
use crate::session::{End, Session};

/// What the session keeps of its TLS handshake.
pub struct TlsSession {
    pub details: Details,
}

impl TlsSession {
    /// The comment lines smtpd_tls_received_header puts in Received.
    pub fn received_comments(&self) -> Vec<String> {
        vec![
            self.details.received_comment(),
            "(No client certificate requested)".to_string(),
        ]
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// Whether STARTTLS is announced: TLS configured and not yet on.
    pub(crate) fn starttls_offered(&self) -> bool {
        self.settings.tls.as_ref().is_some_and(|t| !t.wrapper) && !self.conn.stream.is_tls()
    }

    /// The STARTTLS command. Ok: the reply to queue (an error); Err: the
    /// session ends (the handshake failed, or went well and the caller
    /// continues with `Ok(None)`).
    pub(crate) async fn starttls(&mut self) -> Result<Option<Reply>, End> {
        if self.conn.stream.is_tls() {
            return Ok(Some(Reply::new(554, "5.5.1 Error: TLS already active")));
        }
        let Some(tls) = self.settings.tls.clone() else {
            return Ok(Some(Reply::new(
                502,
                "5.5.1 Error: command not implemented",
            )));
        };
        if tls.wrapper {
            return Ok(Some(Reply::new(
                502,
                "5.5.1 Error: command not implemented",
            )));
        }
        if let Err(e) = tls.config() {
            warning!("cannot start TLS: {e}");
            return Ok(Some(Reply::new(
                454,
                "4.7.0 TLS not available due to local problem",
            )));
        }
        self.conn
            .queue(&Reply::new(220, "2.0.0 Ready to start TLS"));
        let timeout = self.shared.timing().timeout;
        self.conn
            .flush(timeout)
            .await
            .map_err(crate::session::io_end)?;
        // Anything the client sent after STARTTLS came in clear.
        self.conn.discard_input();
        self.handshake().await?;
        // RFC 3207 4.2: the client starts over.
        self.txn = None;
        self.st.reset_transaction();
        self.st.helo = None;
        self.esmtp = false;
        self.st.sasl_username = None;
        self.st.sasl_method = None;
        Ok(None)
    }

    /// The TLS handshake on the plain socket (after STARTTLS's 220, or at
    /// once in wrapper mode), and the log line as Postfix writes it.
    pub(crate) async fn handshake(&mut self) -> Result<(), End> {
        let Some(tls) = self.settings.tls.clone() else {
            return Err(End::Dropped);
        };
        let label = self.st.peer.label();
        let (config, keys) = match tls.config() {
            Ok(built) => built,
            Err(e) => {
                warning!("cannot start TLS: {e}");
                return Err(End::Dropped);
            }
        };
        let Some(plain) = take_plain_stream(&mut self.conn.stream) else {
            return Err(End::Dropped);
        };
        let accept = async {
            let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), plain).await?;
            let signature = keys.signature(start.client_hello().signature_schemes());
            let stream = start.into_stream(config).await?;
            Ok::<_, std::io::Error>((stream, signature))
        };
        let (stream, signature) = match tokio::time::timeout(tls.handshake_timeout, accept).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                info!("SSL_accept error from {label}: {e}");
                return Err(End::Lost);
            }
            Err(_) => {
                info!("SSL_accept error from {label}: timed out");
                return Err(End::Lost);
            }
        };
        let Some(mut details) = Details::of(stream.get_ref().1) else {
            return Err(End::Lost);
        };
        details.server_signature = signature;
        info!("{}", details.log_line(Trust::Anonymous, "from", &label));
        self.conn.stream = Stream::Tls(Box::new(stream));
        self.st.tls = true;
        self.tls = Some(TlsSession { details });
        Ok(())
    }
}
