//! A compromised worker, for tests/hostile_peers.rs: takes a uid and gid,
//! connects to a service's socket and sends it what a hostile process of
//! that uid might, then prints on one line what came back.
//!
//! ```text
//! hostile-peer [--as UID:GID] [--fs-root] SOCKET SCENARIO [ARG]
//! ```
//! `--fs-root` keeps root's file system identity (fsuid 0) for the
//! connect, so the socket's directory and mode do not stop it: what is
//! tested is then the service's own check of the peer's (effective) uid.
//! Output: `connect failed: ...`, `closed` when the service ended the
//! connection without an answer, or the answer.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use mailgate_ipc::Channel;
use mailgate_ipc::envelope::{Envelope, Recipient, now_micros};
use mailgate_ipc::protocol::{cleanup, delivery, qmgr, scanner, verify};
use mailgate_ipc::submit::local_client;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::unistd::{Gid, Uid};

const MESSAGE: &[u8] = b"From: a@sender.example\r\nTo: b@example.com\r\nSubject: hostile peer\r\n\r\nHOSTILE-PEER-MARKER\r\n";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut identity = None;
    let mut fs_root = false;
    loop {
        match args.first().map(String::as_str) {
            Some("--as") => {
                let spec = args.get(1).cloned().unwrap_or_default();
                let (uid, gid) = spec.split_once(':').expect("--as UID:GID");
                identity = Some((uid.parse().expect("uid"), gid.parse().expect("gid")));
                args.drain(..2);
            }
            Some("--fs-root") => {
                fs_root = true;
                args.remove(0);
            }
            _ => break,
        }
    }
    let (socket, scenario) = match (args.first(), args.get(1)) {
        (Some(socket), Some(scenario)) => (socket.clone(), scenario.clone()),
        _ => {
            eprintln!("usage: hostile-peer [--as UID:GID] [--fs-root] SOCKET SCENARIO [ARG]");
            std::process::exit(2)
        }
    };
    let arg = args.get(2).cloned().unwrap_or_default();
    if let Some((uid, gid)) = identity {
        become_user(uid, gid, fs_root);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(run(Path::new(&socket), &scenario, &arg));
    println!("{outcome}");
}

fn become_user(uid: u32, gid: u32, fs_root: bool) {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setgroups(&[gid]).expect("setgroups");
    nix::unistd::setresgid(gid, gid, gid).expect("setresgid");
    if fs_root {
        // Saved uid 0 lets fsuid go back to 0; the effective uid (what
        // SO_PEERCRED reports) stays `uid`.
        nix::unistd::setresuid(uid, uid, Uid::from_raw(0)).expect("setresuid");
        // SAFETY: setfsuid/setfsgid take plain ids.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
    } else {
        nix::unistd::setresuid(uid, uid, uid).expect("setresuid");
    }
}

async fn run(socket: &Path, scenario: &str, arg: &str) -> String {
    if scenario == "policy" {
        return policy(socket).await;
    }
    let mut channel = match Channel::connect(socket).await {
        Ok(channel) => channel,
        Err(e) => return format!("connect failed: {e}"),
    };
    let result = match scenario {
        "act-delete-all" => act(&mut channel, qmgr::Target::All).await,
        "act-delete" => act(&mut channel, qmgr::Target::Ids(vec![arg.to_string()])).await,
        "wake-with-fds" => wake_with_fds(&channel, arg.parse().unwrap_or(1)).await,
        "begin-with-fds" => begin_with_fds(&mut channel).await,
        "commit" => commit(&mut channel, arg).await,
        "deliver" => deliver(&mut channel, arg).await,
        "probe" => probe(&mut channel, arg).await,
        "verify" => query(&mut channel, arg).await,
        "anvil" => anvil_connect(&mut channel, arg).await,
        "scan" => scan(&mut channel, arg).await,
        other => Ok(format!("unknown scenario {other}")),
    };
    result.unwrap_or_else(|e| e)
}

/// A policy delegation request (the greylist service's protocol), as
/// smtpd sends one: the answer's action, or `closed`.
async fn policy(socket: &Path) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match tokio::net::UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(e) => return format!("connect failed: {e}"),
    };
    let request = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n\
                   client_address=192.0.2.1\nclient_name=unknown\n\
                   sender=alice@sender.example\nrecipient=bob@example.com\n\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return "closed".into();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if answer.ends_with(b"\n\n") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    answer
        .lines()
        .find(|l| l.starts_with("action="))
        .map_or_else(|| "closed".to_string(), str::to_string)
}

/// What a closed connection or any other failure reads as.
fn closed(e: mailgate_ipc::IpcError) -> String {
    match e {
        mailgate_ipc::IpcError::Closed => "closed".to_string(),
        mailgate_ipc::IpcError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            "closed".to_string()
        }
        other => format!("closed ({other})"),
    }
}

async fn act(channel: &mut Channel, target: qmgr::Target) -> Result<String, String> {
    let request = qmgr::Request::Act {
        action: qmgr::Action::Delete,
        target,
    };
    let reply: qmgr::ActReply = channel.call(&request, &[]).await.map_err(closed)?;
    Ok(format!(
        "done={} deferred={} missing={}",
        reply.done.len(),
        reply.deferred_until_idle.len(),
        reply.missing.len()
    ))
}

/// A frame: length, descriptor count as announced, body.
fn frame<M: serde::Serialize>(message: &M, announced: u8) -> Vec<u8> {
    let body = postcard::to_stdvec(message).expect("encode");
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.push(announced);
    frame.extend_from_slice(&body);
    frame
}

/// Sends bytes with descriptors attached, whatever the frame announces.
fn send_raw(channel: &Channel, bytes: &[u8], fds: &[RawFd]) -> Result<(), String> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [std::io::IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(
        channel.stream().as_raw_fd(),
        &iov,
        &rights,
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(|e| format!("sendmsg: {e}"))
}

/// `count` Wake frames, each announcing no descriptor and carrying four;
/// then the connection is held open until stdin closes, so the test can
/// count the service's open descriptors meanwhile.
async fn wake_with_fds(channel: &Channel, count: usize) -> Result<String, String> {
    let file = tempfile::tempfile().map_err(|e| e.to_string())?;
    let fds = [file.as_raw_fd(); 4];
    let wake = frame(&qmgr::Request::Wake, 0);
    let mut sent = 0;
    for _ in 0..count {
        channel
            .stream()
            .writable()
            .await
            .map_err(|e| e.to_string())?;
        if send_raw(channel, &wake, &fds).is_err() {
            break;
        }
        sent += 1;
    }
    println!("sent {sent}");
    let _ = std::io::stdout().flush();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    Ok("done".into())
}

/// Begin, announcing no descriptor and carrying four.
async fn begin_with_fds(channel: &mut Channel) -> Result<String, String> {
    let file = tempfile::tempfile().map_err(|e| e.to_string())?;
    send_raw(
        channel,
        &frame(&cleanup::Request::Begin, 0),
        &[file.as_raw_fd(); 4],
    )?;
    let (reply, _) = channel.recv::<cleanup::Reply>().await.map_err(closed)?;
    Ok(format!("{reply:?}"))
}

fn envelope() -> Envelope {
    Envelope {
        sender: "a@sender.example".into(),
        recipients: vec![Recipient::new("b@example.com".into(), None)],
        client: local_client(),
        body_type: None,
        smtputf8: false,
        dsn_ret: None,
        dsn_envid: None,
        arrival: now_micros(),
    }
}

/// Message content in a memfd: `sealed` seals it against any change,
/// `unsealed` leaves it changeable, `sparse` makes it 64 GiB of nothing
/// (sealed), `mismatch` seals it and announces another size. Returns the
/// descriptor and the size to announce.
fn content(kind: &str) -> Result<(OwnedFd, u64), String> {
    let fd = memfd_create(
        c"hostile",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| e.to_string())?;
    let mut file = std::fs::File::from(fd);
    let mut size = MESSAGE.len() as u64;
    if kind == "sparse" {
        size = 64 << 30;
        file.set_len(size).map_err(|e| e.to_string())?;
    } else {
        file.write_all(MESSAGE).map_err(|e| e.to_string())?;
    }
    if kind != "unsealed" {
        let seals = SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE
            | SealFlag::F_SEAL_SEAL;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| e.to_string())?;
    }
    if kind == "mismatch" {
        size += 1000;
    }
    Ok((OwnedFd::from(file), size))
}

async fn commit(channel: &mut Channel, kind: &str) -> Result<String, String> {
    let started: cleanup::Reply = channel
        .call(&cleanup::Request::Begin, &[])
        .await
        .map_err(closed)?;
    if !matches!(started, cleanup::Reply::Started { .. }) {
        return Ok(format!("{started:?}"));
    }
    let (fd, size) = content(kind)?;
    let request = cleanup::Request::Commit {
        envelope: Box::new(envelope()),
        actions: Box::default(),
        size,
    };
    let reply: cleanup::Reply = channel
        .call(&request, &[fd.as_fd()])
        .await
        .map_err(closed)?;
    Ok(format!("{reply:?}"))
}

/// A delivery request for a "queue file" holding the message; `arg` is
/// the next hop, with `,beyond` to name a content range past its end.
async fn deliver(channel: &mut Channel, arg: &str) -> Result<String, String> {
    let (nexthop, beyond) = match arg.split_once(',') {
        Some((hop, "beyond")) => (hop, true),
        _ => (arg, false),
    };
    let mut file = tempfile::tempfile().map_err(|e| e.to_string())?;
    file.write_all(MESSAGE).map_err(|e| e.to_string())?;
    let request = delivery::Request {
        queue_id: "0661AAAAAAAAAA".into(),
        transport: "smtp".into(),
        nexthop: nexthop.into(),
        sender: "a@sender.example".into(),
        recipients: vec![delivery::RecipientRequest {
            index: 0,
            address: "b@example.com".into(),
            original: None,
        }],
        body_type: None,
        smtputf8: false,
        content_offset: 0,
        content_length: MESSAGE.len() as u64 + if beyond { 1 << 20 } else { 0 },
        arrival: now_micros(),
        active_since: now_micros(),
        client: mailgate_ipc::submit::local_client(),
    };
    let fd: BorrowedFd<'_> = file.as_fd();
    let request = delivery::AgentRequest::Deliver(request);
    let reply: delivery::Reply = channel.call(&request, &[fd]).await.map_err(closed)?;
    Ok(reply
        .results
        .iter()
        .map(|r| format!("{:?} {} {}", r.outcome, r.dsn, r.reason))
        .collect::<Vec<_>>()
        .join("; "))
}

/// An address probe, as the verify service asks one: `arg` is the next
/// hop, with `,inject` for a recipient that would add a command to the
/// dialogue.
async fn probe(channel: &mut Channel, arg: &str) -> Result<String, String> {
    let (nexthop, recipient) = match arg.split_once(',') {
        Some((hop, "inject")) => (hop, "b@example.com>\r\nDATA\r\n<c@example.com"),
        _ => (arg, "b@example.com"),
    };
    let request = delivery::AgentRequest::Probe(delivery::Probe {
        transport: "smtp".into(),
        nexthop: nexthop.into(),
        sender: String::new(),
        recipient: recipient.into(),
    });
    let reply: delivery::ProbeReply = channel.call(&request, &[]).await.map_err(closed)?;
    Ok(format!(
        "{:?} {} {}",
        reply.outcome, reply.dsn, reply.reason
    ))
}

/// A question to the verify service, as smtpd asks it.
async fn query(channel: &mut Channel, address: &str) -> Result<String, String> {
    let request = verify::Request::Query {
        address: address.to_string(),
    };
    let reply: verify::Reply = channel.call(&request, &[]).await.map_err(closed)?;
    Ok(format!("{:?} {}", reply.status, reply.text))
}

/// An anvil Connect for master.cf service `service` and client 192.0.2.1,
/// twice: the counts anvil answers, or `closed`.
async fn anvil_connect(channel: &mut Channel, service: &str) -> Result<String, String> {
    use mailgate_ipc::protocol::anvil::{Reply, Request};
    let request = Request::Connect {
        service: service.to_string(),
        client: "192.0.2.1".parse().expect("address"),
    };
    let mut out = Vec::new();
    for _ in 0..2 {
        let reply: Reply = channel.call(&request, &[]).await.map_err(closed)?;
        out.push(format!("{reply:?}"));
    }
    Ok(out.join(" "))
}

async fn scan(channel: &mut Channel, kind: &str) -> Result<String, String> {
    let (fd, size) = content(kind)?;
    let request = scanner::Request {
        queue_id: "0661AAAAAAAAAA".into(),
        sender: "a@sender.example".into(),
        recipients: vec!["b@example.com".into()],
        client: mailgate_ipc::envelope::ClientInfo {
            name: "unknown".into(),
            addr: "192.0.2.1".into(),
            port: 25,
            helo: "hostile.example".into(),
            protocol: "ESMTP".into(),
        },
        received: "Received: from hostile.example (unknown [192.0.2.1])\r\n\tby mailgate".into(),
        size,
        sender_auth: Default::default(),
    };
    let reply: scanner::Reply = channel
        .call(&request, &[fd.as_fd()])
        .await
        .map_err(closed)?;
    Ok(match reply {
        scanner::Reply::Verdict(v) => format!("Verdict {:?}", v.action),
        scanner::Reply::Failed { reason } => format!("Failed {reason}"),
    })
}
