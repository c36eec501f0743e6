//! A connection's byte stream that starts plain and may turn into TLS
//! (STARTTLS): the SMTP client's, the SMTP server's, an IMAP client's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};

/// Plain, or TLS (`T` is tokio-rustls's client or server stream over `S`).
pub enum Stream<S, T> {
    Plain(S),
    Tls(Box<T>),
    /// Only while switching, or after a failed handshake.
    Gone,
}

/// The client side's stream.
pub type ClientStream<S> = Stream<S, tokio_rustls::client::TlsStream<S>>;
/// The server side's stream.
pub type ServerStream<S> = Stream<S, tokio_rustls::server::TlsStream<S>>;

impl<S, T> Stream<S, T> {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

/// Takes the plain socket out of a reader for the TLS handshake, dropping
/// whatever the reader buffered: bytes the peer sent after agreeing to
/// STARTTLS were sent in clear and must never be read as coming over TLS
/// (the STARTTLS command injection class, CVE-2011-0411).
pub fn take_plain<S, T>(reader: &mut BufReader<Stream<S, T>>) -> Option<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    match std::mem::replace(reader.get_mut(), Stream::Gone) {
        Stream::Plain(s) => Some(s),
        other => {
            *reader.get_mut() = other;
            None
        }
    }
}

/// Takes the plain socket out of a stream that is not buffered (the
/// caller dropped its own buffered input first).
pub fn take_plain_stream<S, T>(stream: &mut Stream<S, T>) -> Option<S> {
    match std::mem::replace(stream, Stream::Gone) {
        Stream::Plain(s) => Some(s),
        other => {
            *stream = other;
            None
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection gone")
}

impl<S, T> AsyncRead for Stream<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S, T> AsyncWrite for Stream<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn buffered_plaintext_is_dropped_with_the_reader() {
        let (mut server, client) = tokio::io::duplex(1024);
        server
            .write_all(b"220 Ready to start TLS\r\n250 injected\r\n")
            .await
            .unwrap();
        let mut reader: BufReader<ClientStream<tokio::io::DuplexStream>> =
            BufReader::new(Stream::Plain(client));
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "220 Ready to start TLS\r\n");
        let mut plain = take_plain(&mut reader).unwrap();
        // The injected line was read into the reader's buffer, and is gone.
        drop(server);
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut rest)
            .await
            .unwrap();
        assert!(rest.is_empty());
        assert!(take_plain(&mut reader).is_none());
    }
}
