//! What tests of the relay and of its clients share: a real `redis-server` started by the test
//! on a free loopback port, with nothing saved to disk, stopped (killed) when dropped. It can
//! be stopped and started again on the same port, as a Redis restart. And a TCP line to it
//! that a test can cut or stall ([`CuttableLink`]): one relay cut off from Redis while Redis
//! stays up for the others, or a Redis slow to answer.
//!
//! Not used by the relay itself; test code only (it panics when `redis-server` is missing,
//! with how to install it).

#![allow(clippy::panic, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running (or stopped) `redis-server`.
pub struct RedisServer {
    addr: SocketAddr,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free loopback port; panics with how to install it when it is missing.
    pub fn start() -> RedisServer {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut server = RedisServer { addr, child: None };
        server.restart();
        server
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Kills it (a crash, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): run ./scripts/test.sh (it installs it) \
                     or apt-get install redis-server"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.answers() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on {} did not answer within 10 s", self.addr);
    }

    /// Whether it answers PING.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

use tokio::net::{TcpListener as AsyncTcpListener, TcpStream};

/// Forwards connections on a loopback port to `target` until cut.
pub struct CuttableLink {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    /// Bumped on every cut: connections of an older generation stop.
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableLink {
    /// Listens on a free loopback port.
    pub async fn start(target: SocketAddr) -> CuttableLink {
        let listener = AsyncTcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("its address");
        let cut = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, g, st) = (cut.clone(), generation.clone(), stalled.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (g, mine, st) = (g.clone(), g.load(Ordering::SeqCst), st.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    // As Redis and its clients do: no Nagle delay on small writes.
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let copy = async {
                        tokio::select! {
                            () = pump(ri, wo, st.clone()) => {}
                            () = pump(ro, wi, st) => {}
                        }
                    };
                    let watch = async {
                        while g.load(Ordering::SeqCst) == mine {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = watch => {}
                    }
                });
            }
        });
        CuttableLink {
            addr,
            cut,
            stalled,
            generation,
            task,
        }
    }

    /// `redis://` URL through the link.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Severs every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Holds every byte (connections stay open) until `unstall`.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Passes the held bytes on, and everything after.
    pub fn unstall(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CuttableLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies one direction, holding bytes while `stalled`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
