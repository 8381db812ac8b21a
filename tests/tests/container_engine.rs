//! The testcontainers path against an engine too old for it: with `KAFKA_BOOTSTRAP_SERVERS`
//! and `DATABASE_URL` unset and `DOCKER_HOST` pointing at a stub that answers like Docker
//! Engine 28 (API 1.51: `/_ping` and `/version` answer, every `/v1.52/...` path is refused
//! with the 400 Docker sends), resolving the test environment must fail at once with a message
//! naming both versions and both ways out, and must never try to create a container.
//!
//! The environment is resolved in a child process (this binary, running only the ignored
//! `resolve_environment`), because it is read from the process's environment once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::test_env;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves Docker 28's answers on 127.0.0.1 and records every request line.
async fn docker_28_stub() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the stub");
    let port = listener.local_addr().expect("stub address").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = head.lines().next().unwrap_or_default().to_owned();
                log.lock().unwrap().push(line.clone());
                let path = line.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = if path.starts_with("/v1.52/") {
                    (
                        "400 Bad Request",
                        r#"{"message":"client version 1.52 is too new. Maximum supported API version is 1.51"}"#,
                    )
                } else if path.ends_with("/_ping") {
                    ("200 OK", "OK")
                } else if path.ends_with("/version") {
                    ("200 OK", r#"{"Version":"28.5.2","ApiVersion":"1.51","MinAPIVersion":"1.24","Os":"linux"}"#)
                } else {
                    ("404 Not Found", r#"{"message":"page not found"}"#)
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nApi-Version: 1.51\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn an_engine_older_than_api_1_52_fails_at_once_with_both_ways_out() {
    let (port, seen) = docker_28_stub().await;
    let started = Instant::now();
    let child = tokio::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--ignored", "--exact", "resolve_environment", "--nocapture", "--test-threads=1"])
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env_remove("DATABASE_URL")
        .env_remove("DOCKER_TLS_VERIFY")
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child).await.expect("the child ends").expect("run child");
    let took = started.elapsed();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    assert!(!out.status.success(), "resolving against a Docker 28 stub must fail; output:\n{text}");
    for needle in ["API 1.51 at most", "sends API 1.52", "Docker Engine 29 or newer", "scripts/local-services.sh up"] {
        assert!(text.contains(needle), "the message lacks {needle:?}; output:\n{text}");
    }
    assert!(text.contains("client version 1.52 is too new"), "the engine's own answer is quoted; output:\n{text}");
    // At once: no timeout and no retries, only the three probe requests.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|l| l.starts_with("GET /v1.52/version")), "the versioned probe was sent: {seen:?}");
    assert!(!seen.iter().any(|l| l.contains("/containers/")), "no container was asked for: {seen:?}");
}

/// Run only by the test above, in a child process whose environment it sets.
#[tokio::test]
#[ignore = "a helper: resolves the environment from the child's variables"]
async fn resolve_environment() {
    test_env().await;
}
