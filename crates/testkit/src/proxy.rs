//! A TCP load balancer in front of several servers, as operators put one (or a DNS name) in front of
//! SPIRE servers: each new connection goes to the first backend that accepts it, so when one dies,
//! new connections reach the next.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

/// A running balancer; stops when dropped.
#[derive(Debug)]
pub struct FailoverProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Connections forwarded to each backend so far, in backend order.
    counts: Arc<Vec<AtomicUsize>>,
    task: tokio::task::JoinHandle<()>,
}

impl FailoverProxy {
    /// Listens on a free loopback port and forwards to `backends`, preferring the first.
    pub async fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let counts: Arc<Vec<AtomicUsize>> = Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let tally = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (backends, tally) = (backends.clone(), tally.clone());
                tokio::spawn(async move {
                    for (i, backend) in backends.iter().enumerate() {
                        if let Ok(mut server) = TcpStream::connect(backend).await {
                            tally[i].fetch_add(1, Ordering::SeqCst);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                    // No backend: the client sees the connection closed.
                });
            }
        });
        Self { port, counts, task }
    }

    /// Connections forwarded to backend `i` so far.
    pub fn forwarded_to(&self, i: usize) -> usize {
        self.counts[i].load(Ordering::SeqCst)
    }
}

impl Drop for FailoverProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
