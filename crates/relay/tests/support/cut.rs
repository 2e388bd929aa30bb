//! A TCP forwarder that a test can cut and restore: one relay's line to Redis, severed while
//! Redis stays up for the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};

/// Forwards connections on a loopback port to `target` until cut.
pub struct CuttableLink {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped on every cut: connections of an older generation stop.
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableLink {
    /// Listens on a free loopback port.
    pub async fn start(target: SocketAddr) -> CuttableLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (g, mine) = (g.clone(), g.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
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
