//! The client against small servers written here with the library's own
//! server helpers (the test against a real postgrey is in the workspace's
//! tests/): connection reuse, request limits, retries, timeouts, and what a
//! broken server gets the caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailgate_policy::{
    Action, Endpoint, Limits, PolicyClient, PolicyError, PolicySettings, ProtocolError, Request,
    read_request, state, write_action,
};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};

/// How a test server behaves on each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers every request with `action=DUNNO sender=<sender>`.
    Echo,
    /// Answers one request, then closes the connection.
    OneThenClose,
    /// Reads the request and never answers.
    Silent,
    /// Answers with garbage.
    Garbage,
}

struct Server {
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn serve_connection<S>(stream: S, behaviour: Behaviour, requests: Arc<AtomicUsize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut io = BufReader::new(stream);
    let limits = Limits::default();
    while let Ok(Some(request)) = read_request(&mut io, &limits).await {
        requests.fetch_add(1, Ordering::SeqCst);
        match behaviour {
            Behaviour::Silent => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Behaviour::Garbage => {
                let _ = io.get_mut().write_all(b"this is not a reply\n\n").await;
                return;
            }
            Behaviour::Echo | Behaviour::OneThenClose => {
                let text = format!(
                    "DUNNO sender={} context={} state={}",
                    request.sender, request.policy_context, request.protocol_state
                );
                let action = Action::new(&text).unwrap();
                if write_action(io.get_mut(), &action).await.is_err() {
                    return;
                }
                if matches!(behaviour, Behaviour::OneThenClose) {
                    return;
                }
            }
        }
    }
}

async fn tcp_server(behaviour: Behaviour) -> (Server, Endpoint) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_connection(stream, behaviour, r.clone()));
        }
    });
    let endpoint = Endpoint::parse(&format!("inet:127.0.0.1:{port}")).unwrap();
    (Server { accepted, requests }, endpoint)
}

fn settings() -> PolicySettings {
    PolicySettings {
        timeout: Duration::from_millis(500),
        retry_delay: Duration::from_millis(50),
        ..PolicySettings::default()
    }
}

fn request(sender: &str) -> Request {
    Request {
        sender: sender.to_string(),
        client_address: "192.0.2.1".to_string(),
        ..Request::smtpd(state::RCPT)
    }
}

#[tokio::test]
async fn one_connection_serves_many_requests() {
    let (server, endpoint) = tcp_server(Behaviour::Echo).await;
    let client = PolicyClient::new(endpoint, settings()).unwrap();
    for i in 0..5 {
        let action = client.query(&request(&format!("s{i}@x"))).await.unwrap();
        assert_eq!(action.verb(), "DUNNO");
        assert!(
            action.text().starts_with(&format!("sender=s{i}@x ")),
            "{action}"
        );
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    // Concurrent queries each get their own connection, then share them.
    let queries = (0..4).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.query(&request(&format!("c{i}@x"))).await })
    });
    for query in queries {
        assert_eq!(query.await.unwrap().unwrap().verb(), "DUNNO");
    }
    assert!(server.accepted.load(Ordering::SeqCst) <= 5);
}

#[tokio::test]
async fn request_limit_and_policy_context_are_applied() {
    let (server, endpoint) = tcp_server(Behaviour::Echo).await;
    let client = PolicyClient::new(
        endpoint,
        PolicySettings {
            request_limit: 2,
            policy_context: "gw1".to_string(),
            ..settings()
        },
    )
    .unwrap();
    for _ in 0..4 {
        let action = client.query(&request("a@x")).await.unwrap();
        assert!(action.text().contains("context=gw1"), "{action}");
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_server_closing_idle_connections_costs_no_failure_and_no_delay() {
    let (server, endpoint) = tcp_server(Behaviour::OneThenClose).await;
    let client = PolicyClient::new(
        endpoint,
        PolicySettings {
            retry_delay: Duration::from_secs(30),
            try_limit: 1,
            ..settings()
        },
    )
    .unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(client.query(&request("a@x")).await.unwrap().verb(), "DUNNO");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_silent_server_times_out_after_each_attempt() {
    let (server, endpoint) = tcp_server(Behaviour::Silent).await;
    let client = PolicyClient::new(endpoint, settings()).unwrap();
    let started = Instant::now();
    let e = client.query(&request("a@x")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(e, PolicyError::Timeout { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("timeout after 0.5s while talking to inet:127.0.0.1:"),
        "{e}"
    );
    // Two attempts (try_limit 2) of 0.5 s each, 50 ms apart.
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn garbage_is_a_protocol_error_and_the_default_action_applies() {
    let (_server, endpoint) = tcp_server(Behaviour::Garbage).await;
    let client = PolicyClient::new(endpoint, settings()).unwrap();
    let e = client.query(&request("a@x")).await.unwrap_err();
    match &e {
        PolicyError::Protocol { error, .. } => {
            assert!(matches!(error, ProtocolError::NotAnAttribute { .. }), "{e}")
        }
        other => panic!("{other}"),
    }
    let action = client.query_or_default(&request("a@x")).await;
    assert_eq!(action.as_str(), "451 4.3.5 Server configuration problem");
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error_after_the_tries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = Endpoint::parse(&format!("inet:127.0.0.1:{port}")).unwrap();
    let client = PolicyClient::new(endpoint, settings()).unwrap();
    let e = client.query(&request("a@x")).await.unwrap_err();
    assert!(matches!(e, PolicyError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("connect to inet:127.0.0.1:"), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
}

#[tokio::test]
async fn unix_sockets_work_with_paths_relative_to_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("private")).unwrap();
    let listener = UnixListener::bind(dir.path().join("private/policy")).unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let r = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, Behaviour::Echo, r.clone()));
        }
    });
    // Workers run with the queue directory as their current directory.
    std::env::set_current_dir(dir.path()).unwrap();
    let client =
        PolicyClient::new(Endpoint::parse("unix:private/policy").unwrap(), settings()).unwrap();
    let action = client.query(&request("u@x")).await.unwrap();
    assert!(action.text().contains("sender=u@x "), "{action}");
    assert!(action.text().ends_with("state=RCPT"), "{action}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}
