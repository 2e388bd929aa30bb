//! What tests of the relay and of its clients share: a real `redis-server` started by the test
//! on a free loopback port, with nothing saved to disk, stopped (killed) when dropped. It can
//! be stopped and started again on the same port, as a Redis restart.
//!
//! Not used by the relay itself; test code only (it panics when `redis-server` is missing,
//! with how to install it).

#![allow(clippy::panic, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
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
