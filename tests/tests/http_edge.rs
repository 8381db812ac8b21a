//! The HTTP edge against slow and strange clients: a real gateway on a random port, talked to
//! over raw TCP so that the tests control every byte and every pause.
//!
//! Each test configures a small limit (1 s, or 4 connections) and asserts that the gateway
//! acts within a few seconds of it, then that an ordinary request is still served.

use std::time::{Duration, Instant};

use integration_tests::harness::gateway::InProcessGateway;
use integration_tests::test_env;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slack allowed past a configured limit: scheduling on a loaded 2-core machine, not design.
const SLACK: Duration = Duration::from_secs(3);
/// How long a client keeps dribbling before the test gives up on the server reacting.
const GIVE_UP: Duration = Duration::from_secs(12);

/// How a connection ended, seen from the client.
#[derive(Debug)]
enum Ended {
    /// The server closed it (EOF or reset) after sending these bytes (maybe none).
    Closed(Vec<u8>),
    /// Still open when the test gave up.
    StillOpen(Vec<u8>),
}

/// Sends `head` at once, then `dribble` one byte every `every`, while reading whatever the
/// server answers; returns when the server closes the connection or after `GIVE_UP`. The
/// client never closes first.
async fn dribble(port: u16, head: &[u8], dribble: &[u8], every: Duration) -> (Ended, Duration) {
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_vec();
    let dribble = dribble.to_vec();
    let writing = tokio::spawn(async move {
        if writer.write_all(&head).await.is_err() {
            return;
        }
        for byte in dribble.iter().cycle() {
            tokio::time::sleep(every).await;
            // A write error means the server is gone: the reader will see it too.
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
        // Nothing (more) to send: hold the connection open, without even a half-close.
        std::future::pending::<()>().await;
        drop(writer);
    });
    let mut received = Vec::new();
    let ended = tokio::time::timeout(GIVE_UP, async {
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    writing.abort();
    let elapsed = started.elapsed();
    match ended {
        Ok(()) => (Ended::Closed(received), elapsed),
        Err(_) => (Ended::StillOpen(received), elapsed),
    }
}

/// A fresh connection (no pooling) asks the public listener for `/openapi.json` (the probes
/// are on the internal one); true on a 200.
async fn public_ok(gateway: &InProcessGateway) -> bool {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    matches!(client.get(gateway.url("/openapi.json")).send().await, Ok(r) if r.status() == 200)
}

#[tokio::test]
async fn headers_sent_one_byte_at_a_time_are_cut_off_at_the_header_timeout() {
    let env = test_env().await;
    let limit = Duration::from_secs(1);
    let gateway = InProcessGateway::start(env, |s| s.http.header_read_timeout = limit).await;

    // Slowloris: a request line, then an endless header, a byte every 100 ms.
    let (ended, elapsed) = dribble(
        gateway.port,
        b"POST /registrations HTTP/1.1\r\nHost: gateway\r\nX-Slow: ",
        b"a",
        Duration::from_millis(100),
    )
    .await;
    assert!(matches!(ended, Ended::Closed(_)), "a dribbling client still connected after {elapsed:?}: {ended:?}");
    assert!(elapsed < limit + SLACK, "closed only after {elapsed:?} (limit {limit:?})");

    // A client that connects and says nothing is not kept either.
    let (ended, elapsed) = dribble(gateway.port, b"", b"", Duration::from_secs(3600)).await;
    assert!(matches!(ended, Ended::Closed(_)), "a silent client still connected after {elapsed:?}");
    assert!(elapsed < limit + SLACK, "silent client closed only after {elapsed:?}");

    // An ordinary client sends its headers at once: unaffected.
    assert!(public_ok(&gateway).await, "an ordinary request is served");
    gateway.stop(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_body_sent_one_byte_at_a_time_is_answered_408_at_the_body_timeout_and_not_published() {
    let env = test_env().await;
    let limit = Duration::from_secs(1);
    let gateway = InProcessGateway::start(env, |s| s.http.body_read_timeout = limit).await;

    let body = br#"{"email": "slow@example.com", "name": "Slow Loris", "password": "a long passphrase"}"#;
    let head = format!(
        "POST /registrations HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    // At 10 bytes a second the whole body would take 8 s.
    let (ended, elapsed) = dribble(gateway.port, head.as_bytes(), body, Duration::from_millis(100)).await;
    let Ended::Closed(answer) = ended else {
        panic!("a slow body still being read after {elapsed:?}: {ended:?}");
    };
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "answered {answer:?}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/problem+json"), "{answer}");
    assert!(lower.contains("connection: close"), "{answer}");
    assert!(answer.contains("/problems/body-timed-out"), "{answer}");
    assert!(elapsed < limit + SLACK, "answered only after {elapsed:?} (limit {limit:?})");

    // A body sent at once is still accepted, and only it reaches the topic.
    let response = reqwest::Client::new()
        .post(gateway.url("/registrations"))
        .header("content-type", "application/json")
        .body(&body[..])
        .send()
        .await
        .expect("POST /registrations");
    assert_eq!(response.status(), 202);
    assert_eq!(gateway.records_on_topic(env), 1, "the timed-out request was not published");
    gateway.stop(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_service_resumes_when_the_others_end() {
    let env = test_env().await;
    let max = 4;
    let gateway = InProcessGateway::start(env, |s| {
        s.http.max_connections = max;
        // Long enough that the held connections are not closed by it during the test.
        s.http.header_read_timeout = Duration::from_secs(60);
    })
    .await;

    // `max` clients each send half a request and hold their connection.
    let mut held = Vec::new();
    for _ in 0..max {
        let mut stream = TcpStream::connect(("127.0.0.1", gateway.port)).await.expect("connect");
        stream.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n").await.unwrap();
        held.push(stream);
    }
    // Connections are accepted in order: every later one is beyond the limit.
    for extra in 0..6 {
        let (ended, elapsed) = dribble(
            gateway.port,
            b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n\r\n",
            b"",
            Duration::from_secs(3600),
        )
        .await;
        match ended {
            Ended::Closed(answer) => assert!(
                answer.is_empty(),
                "connection {extra} beyond the limit was served: {}",
                String::from_utf8_lossy(&answer)
            ),
            Ended::StillOpen(answer) => panic!(
                "connection {extra} beyond the limit of {max} stayed open {elapsed:?}: {}",
                String::from_utf8_lossy(&answer)
            ),
        }
        assert!(elapsed < SLACK, "connection {extra} beyond the limit closed only after {elapsed:?}");
    }

    // The held ones were being served all along: they finish their request.
    for stream in &mut held {
        stream.write_all(b"\r\n").await.unwrap();
        let mut answer = [0u8; 12];
        tokio::time::timeout(SLACK, stream.read_exact(&mut answer))
            .await
            .expect("a held connection is answered")
            .expect("read the answer");
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
    drop(held);

    // Once they are gone, new clients are served again.
    let deadline = Instant::now() + SLACK;
    while !public_ok(&gateway).await {
        assert!(Instant::now() < deadline, "still refused {SLACK:?} after the held connections closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway.stop(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_client_that_never_finishes_its_headers() {
    let env = test_env().await;
    let gateway = InProcessGateway::start(env, |s| s.http.header_read_timeout = Duration::from_secs(2)).await;
    let mut stream = TcpStream::connect(("127.0.0.1", gateway.port)).await.expect("connect");
    stream.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    gateway.stop(Duration::from_secs(2) + SLACK).await;
    drop(stream);
}
