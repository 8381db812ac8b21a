//! Talks to the container engine behind `DOCKER_HOST` before testcontainers does: whether one
//! answers, whether it accepts the Docker API version testcontainers sends, and the removal
//! of containers that earlier test processes left behind.
//!
//! testcontainers 0.27 (bollard 0.20) sends every request as `/v1.52/...` and never
//! negotiates down; Docker Engine 28 and older answer 400 "client version 1.52 is too new".
//! Asking first turns that into one clear message instead of a failure deep inside a test.
//! Plain HTTP/1.0 over the socket: three small requests need no client library.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The Docker API version testcontainers sends, fixed by the crate (bollard's default).
pub const CLIENT_API_VERSION: &str = "1.52";

/// The label on every container the tests start: the pid of the test process.
pub const PID_LABEL: &str = "signup.integration-tests.pid";

/// Where the Docker API is: `DOCKER_HOST` as testcontainers reads it (`unix://`, `tcp://`).
#[derive(Clone, Debug)]
pub enum Endpoint {
    Unix(String),
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// What the engine said.
#[derive(Debug)]
pub enum Probe {
    /// Nothing answers there (or it is a TLS endpoint, which this probe does not speak).
    Absent { endpoint: String, reason: String },
    /// It answers, but refuses [`CLIENT_API_VERSION`]; `server_api` is its newest version.
    TooOld { endpoint: String, server_api: String, answer: String },
    /// It accepts [`CLIENT_API_VERSION`].
    Ready { endpoint: Endpoint, server: String },
}

/// The endpoint testcontainers will use: `DOCKER_HOST`, else the default socket. (TLS
/// endpoints and ~/.testcontainers.properties are left to testcontainers itself.)
pub fn endpoint() -> Option<Endpoint> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    if std::env::var_os("DOCKER_TLS_VERIFY").is_some() {
        return None;
    }
    if let Some(path) = host.strip_prefix("unix://") {
        Some(Endpoint::Unix(path.to_owned()))
    } else {
        host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")).map(|a| Endpoint::Tcp(a.to_owned()))
    }
}

/// Asks the engine behind [`endpoint`] whether it can serve testcontainers.
pub async fn probe() -> Probe {
    let Some(endpoint) = endpoint() else {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        return Probe::Absent { endpoint: host, reason: "a TLS or unsupported DOCKER_HOST".into() };
    };
    if let Err(e) = request(&endpoint, "GET", "/_ping").await {
        return Probe::Absent { endpoint: endpoint.to_string(), reason: e.to_string() };
    }
    match request(&endpoint, "GET", &format!("/v{CLIENT_API_VERSION}/version")).await {
        Ok((200, body)) => Probe::Ready { endpoint, server: describe(&body) },
        Ok((_, answer)) => {
            // The unversioned path answers on every engine, with its newest API version.
            let server_api = match request(&endpoint, "GET", "/version").await {
                Ok((200, body)) => field(&body, "ApiVersion").unwrap_or_else(|| "unknown".into()),
                _ => "unknown".into(),
            };
            Probe::TooOld { endpoint: endpoint.to_string(), server_api, answer: answer.trim().to_owned() }
        }
        Err(e) => Probe::Absent { endpoint: endpoint.to_string(), reason: e.to_string() },
    }
}

/// Removes the containers of earlier test processes that are gone: the shared environment is
/// a static, never dropped, so testcontainers cannot remove it when a test binary exits.
pub async fn remove_orphans(endpoint: &Endpoint) {
    let filters = format!(r#"{{"label":["{PID_LABEL}"]}}"#);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("all", "true")
        .append_pair("filters", &filters)
        .finish();
    let path = format!("/v{CLIENT_API_VERSION}/containers/json?{query}");
    let Ok((200, body)) = request(endpoint, "GET", &path).await else { return };
    let Ok(serde_json::Value::Array(containers)) = serde_json::from_str(&body) else { return };
    for container in containers {
        let pid = container["Labels"][PID_LABEL].as_str().unwrap_or_default();
        let (Some(id), false) = (container["Id"].as_str(), process_alive(pid)) else { continue };
        let _ = request(endpoint, "DELETE", &format!("/v{CLIENT_API_VERSION}/containers/{id}?force=true&v=true")).await;
    }
}

fn process_alive(pid: &str) -> bool {
    !pid.is_empty() && std::path::Path::new("/proc").join(pid).exists()
}

fn describe(version_body: &str) -> String {
    let v = |k| field(version_body, k).unwrap_or_else(|| "?".into());
    format!("engine {} (API {})", v("Version"), v("ApiVersion"))
}

fn field(json: &str, key: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(json).ok()?.get(key)?.as_str().map(str::to_owned)
}

/// One HTTP/1.0 request (the server closes the connection after the answer: no chunking).
pub async fn request(endpoint: &Endpoint, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let exchange = async {
        match endpoint {
            Endpoint::Unix(socket) => exchange(tokio::net::UnixStream::connect(socket).await?, method, path).await,
            Endpoint::Tcp(addr) => exchange(tokio::net::TcpStream::connect(addr).await?, method, path).await,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer to {method} {path} within 10 s")))
    })
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:.80}")))?;
    Ok((status, body.to_owned()))
}
