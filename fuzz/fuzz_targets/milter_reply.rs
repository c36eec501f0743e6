//! smtpd's milter client against any bytes from a milter: negotiation,
//! the replies to every event, and the modifications at the end of a
//! message, applied to a small message. Frames, strings and edits are
//! bounded whatever the milter claims; nothing panics.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mailgate_milter::{
    DefaultAction, Defaults, Envelope, MacroLists, Macros, Milter, Milters, parse_list,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The milter's side: the fuzz input to read, and a sink for what the
/// client writes.
struct Scripted {
    input: Vec<u8>,
    at: usize,
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.input.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: s\r\n folded\r\n\r\nbody\r\nline\r\n";

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let defaults = Defaults {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            content_timeout: Duration::from_secs(1),
            default_action: DefaultAction::Tempfail,
        };
        let spec = parse_list("inet:127.0.0.1:1", &defaults)
            .expect("spec")
            .remove(0);
        let stream = Box::pin(Scripted {
            input: data.to_vec(),
            at: 0,
        });
        let milter = Milter::over(spec, &MacroLists::postfix_defaults(), stream).await;
        let mut milters = Milters::from_milters(vec![milter]);
        let m = Macros::default();
        milters
            .connect("unknown", Some("127.0.0.1".parse().expect("ip")), 25, &m)
            .await;
        milters.helo("client.example", &m).await;
        milters.mail(&["<a@example.org>".into()], &m).await;
        milters.rcpt(&["<b@example.com>".into()], &m).await;
        milters.data(&m).await;
        let mut envelope = Envelope {
            sender: "a@example.org".into(),
            recipients: vec!["b@example.com".into()],
        };
        let outcome = milters.message(MESSAGE, &mut envelope, &m, 1 << 20).await;
        if let Some(content) = outcome.content {
            assert!(content.len() <= 1 << 20);
        }
        milters.quit().await;
    });
});
