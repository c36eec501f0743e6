//! The IPC frame decoder (length, descriptor count, postcard body) on any
//! bytes a peer writes to a service socket, decoded as each service's
//! request type. The bytes go through a real Unix socket pair.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailgate_ipc::Channel;
use mailgate_ipc::protocol::{cleanup, delivery, qmgr, scanner, verify};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

async fn drain<M: DeserializeOwned>(data: &[u8]) {
    let (mut writer, reader) = tokio::net::UnixStream::pair().expect("socketpair");
    let mut channel = Channel::new(reader);
    let data = data.to_vec();
    let send = tokio::spawn(async move {
        let _ = writer.write_all(&data).await;
        let _ = writer.shutdown().await;
    });
    // Every frame until an error or the end: at most as many as bytes.
    while channel.recv::<M>().await.is_ok() {}
    let _ = send.await;
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frames)) = data.split_first() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        match pick % 10 {
            0 => drain::<cleanup::Request>(frames).await,
            1 => drain::<cleanup::Reply>(frames).await,
            2 => drain::<scanner::Request>(frames).await,
            3 => drain::<scanner::Reply>(frames).await,
            4 => drain::<qmgr::Request>(frames).await,
            5 => drain::<delivery::Reply>(frames).await,
            6 => drain::<delivery::AgentRequest>(frames).await,
            7 => drain::<delivery::ProbeReply>(frames).await,
            8 => drain::<verify::Request>(frames).await,
            _ => drain::<verify::Reply>(frames).await,
        }
    });
});
