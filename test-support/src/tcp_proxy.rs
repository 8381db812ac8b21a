//! A fault-injecting TCP proxy: services connect to the database through it, and a test can
//! cut every connection (and refuse new ones) for as long as it likes, which is exactly what
//! "the database is unreachable for 10 seconds" looks like from the service.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub listen_addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped on every cut so open connections notice and close.
    generation: watch::Sender<u64>,
}

impl TcpProxy {
    /// Listens on a random loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let listen_addr = listener.local_addr().expect("proxy addr");
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let proxy = TcpProxy { listen_addr, cut: cut.clone(), generation: generation.clone() };
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                if cut.load(Ordering::SeqCst) {
                    drop(inbound); // refused: the client sees the connection reset
                    continue;
                }
                let mut cuts = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    // Without this, Nagle's algorithm meets delayed ACKs on every small
                    // request/response pair and each database round trip stalls ~40 ms.
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// `DATABASE_URL` that goes through this proxy instead of straight to `url`'s host.
    pub fn rewrite_url(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("database url parses");
        parsed.set_host(Some("127.0.0.1")).expect("set host");
        parsed.set_port(Some(self.listen_addr.port())).expect("set port");
        parsed.to_string()
    }
}

/// The socket address of a `mysql://host:port/...` URL.
pub fn database_socket_addr(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).expect("database url parses");
    let host = parsed.host_str().expect("host");
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    format!("{host}:{}", parsed.port().unwrap_or(3306)).parse().expect("host:port")
}
