//! Syncplay under the same script: `syncplay-server` and one `syncplay` client per player
//! (Debian packages `syncplay-server` and `syncplay`), each client driving its own headless
//! mpv, all through the TCP link emulator.
//!
//! `syncplay-server` has no option to choose its address: it listens on every interface. So
//! it runs in a network namespace of its own (`unshare --net`) where the only interface is
//! loopback. Inside, a helper of ours ([`serve_in_namespace`], this binary's hidden
//! `netns-forward` command) brings `lo` up, starts the server, and offers it on a Unix socket;
//! Unix socket paths are shared across network namespaces, so the TCP proxy outside connects
//! to that socket. The helper stops (and stops the server) when its stdin closes, i.e. when
//! the bench stops it or dies.
//!
//! Each client gets a home folder with a `syncplay.ini` (`readyAtStart = True`; no update
//! check), `QT_QPA_PLATFORM=offscreen`, and mpv options after `--`: its IPC socket (which
//! Syncplay itself also uses, and the bench joins as a second client), `--config=no`,
//! `--vo=null --ao=null`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UnixListener};
use tokio::process::Command;

use super::link::{TcpProxy, Upstream};
use super::mpv::Mpv;
use super::process::{MpvGuard, Proc, output};
use super::report::RunResult;
use super::sampler::PositionSource;
use super::scenario::{self, FAST_CLOCK_ARG};
use super::{Context, Result, err};
use crate::RunContext;

/// The server's port inside its namespace (nothing else listens there).
const PORT: u16 = 8999;

/// Inside the namespace: brings up `lo`, runs `syncplay-server`, and forwards connections
/// from the Unix socket `unix` to it until stdin closes, the server exits or `lifetime` ends.
pub(crate) async fn serve_in_namespace(unix: &Path, log: &Path, lifetime: Duration) -> Result<()> {
    output("ip", &["link", "set", "lo", "up"], Duration::from_secs(5)).await?;
    // setpriv: the server gets SIGKILL if this helper dies, however it dies.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--", "syncplay-server"])
        .args(["--port", &PORT.to_string(), "--isolate-rooms"]);
    let mut server = Proc::spawn("syncplay-server", cmd, log, false)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Bounded by the deadline.
    while TcpStream::connect(("127.0.0.1", PORT)).await.is_err() {
        if server.exited() || Instant::now() >= deadline {
            return err(format!(
                "syncplay-server did not listen; see {}",
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_file(unix);
    let listener = UnixListener::bind(unix).context(|| format!("bind {}", unix.display()))?;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let end = tokio::time::sleep(lifetime);
    tokio::pin!(end);
    let mut check = tokio::time::interval(Duration::from_millis(500));
    // Bounded by `lifetime`.
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", PORT)).await {
                        let _ = upstream.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
            n = stdin.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { break },
            () = &mut end => break,
            _ = check.tick() => if server.exited() { break },
        }
    }
    let _ = std::fs::remove_file(unix);
    server.stop(Duration::from_secs(2)).await;
    Ok(())
}

/// The server in its namespace, reachable at a Unix socket.
struct Server {
    proc: Proc,
    socket: PathBuf,
}

impl Server {
    async fn start(dir: &Path, lifetime: Duration) -> Result<Server> {
        let socket = dir.join("syncplay-server.sock");
        let exe = std::env::current_exe().context(|| "find this executable".into())?;
        // --kill-child: the helper gets SIGKILL if `unshare` is killed (as on drop).
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--kill-child=KILL"])
            .arg("--")
            .arg(exe)
            .arg("netns-forward")
            .arg("--unix")
            .arg(&socket)
            .arg("--log")
            .arg(dir.join("syncplay-server.log"))
            .arg("--lifetime-secs")
            .arg(lifetime.as_secs().to_string());
        let mut proc = Proc::spawn(
            "syncplay-server (own network namespace)",
            cmd,
            &dir.join("netns.log"),
            true,
        )?;
        let deadline = Instant::now() + Duration::from_secs(25);
        // Bounded by the deadline.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if proc.exited() || Instant::now() >= deadline {
                return err(format!(
                    "syncplay-server did not come up in its namespace; see {} and {}",
                    dir.join("netns.log.err").display(),
                    dir.join("syncplay-server.log.err").display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Server { proc, socket })
    }

    async fn stop(mut self) {
        self.proc.close_stdin();
        self.proc.wait_or_stop(Duration::from_secs(5)).await;
    }
}

/// One `syncplay` client and the mpv it started.
struct Client {
    proc: Option<Proc>,
    name: String,
    mpv: MpvGuard,
}

fn mpv_path() -> PathBuf {
    let usr = PathBuf::from("/usr/bin/mpv");
    if usr.is_file() {
        return usr;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("mpv"))
                .find(|p| p.is_file())
        })
        .unwrap_or(usr)
}

async fn start_client(
    ctx: &RunContext,
    dir: &Path,
    index: usize,
    server: std::net::SocketAddr,
    fast: bool,
) -> Result<(Client, PathBuf)> {
    let name = format!("P{}", index + 1);
    let home = dir.join(format!("home-{name}"));
    std::fs::create_dir_all(&home).context(|| format!("create {}", home.display()))?;
    std::fs::write(
        home.join("syncplay.ini"),
        "[general]\ncheckForUpdatesAutomatically = False\n\n[client_settings]\nreadyAtStart = True\n",
    )
    .context(|| "write syncplay.ini".into())?;
    let ipc = dir.join(format!("{name}.sock"));
    let mut cmd = Command::new("syncplay");
    cmd.args(["--no-gui", "--no-store", "--host"])
        .arg(server.to_string())
        .args(["--name", &name, "--room", "bench", "--player-path"])
        .arg(mpv_path())
        .arg(&ctx.clip)
        .arg("--")
        .arg(format!("--input-ipc-server={}", ipc.display()))
        .args(["--config=no", "--vo=null", "--ao=null"]);
    if fast {
        cmd.arg(FAST_CLOCK_ARG);
    }
    cmd.env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("PYTHONUNBUFFERED", "1");
    let proc = Proc::spawn(
        &format!("syncplay {name}"),
        cmd,
        &dir.join(format!("{name}.log")),
        false,
    )?;
    Ok((
        Client {
            proc: Some(proc),
            name,
            mpv: MpvGuard(None),
        },
        ipc,
    ))
}

/// Runs the script with Syncplay under `ctx`'s condition.
pub(crate) async fn run(ctx: &RunContext, result: &mut RunResult) -> Result<()> {
    let dir = ctx.dir.join(format!("syncplay-{}", ctx.condition.name));
    std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
    let lifetime = ctx.lifetime();
    let server = Server::start(&dir, lifetime).await?;
    let outcome = async {
        let proxy = TcpProxy::start(
            Upstream::Unix(server.socket.clone()),
            ctx.condition.link,
            ctx.seed,
            lifetime,
        )
        .context(|| "start the TCP proxy".into())?;
        let mut clients = Vec::new();
        let outcome = async {
            let mut sockets = Vec::new();
            for i in 0..ctx.players {
                let fast = ctx.condition.fast_player && i + 1 == ctx.players;
                let (client, ipc) = start_client(ctx, &dir, i, proxy.addr(), fast).await?;
                clients.push(client);
                sockets.push(ipc);
            }
            let mut players = Vec::new();
            for s in &sockets {
                players.push(Arc::new(Mpv::connect(s, Duration::from_secs(30)).await?));
            }
            for (c, p) in clients.iter_mut().zip(&players) {
                c.mpv.0 = p.get_f64("pid").await?.map(|pid| pid as u32);
            }
            wait_loaded(&players).await?;
            // Everyone is in the room once player 1 lists them all.
            let others: Vec<String> = clients
                .iter()
                .skip(1)
                .map(|c| format!("<{}>", c.name))
                .collect();
            let mut seen = vec![false; others.len()];
            if let Some(first) = clients.first_mut().and_then(|c| c.proc.as_mut()) {
                first
                    .wait_line(Duration::from_secs(30), |line| {
                        for (i, o) in others.iter().enumerate() {
                            seen[i] |= line.contains(o.as_str());
                        }
                        seen.iter().all(|&s| s).then_some(())
                    })
                    .await?;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let source = PositionSource::detect(&players[0]).await?;
            result.position_source = Some(source.property().into());
            println!(
                "{} all {} players in the room; script starts",
                ctx.label,
                players.len()
            );
            let holds = scenario::drive(&ctx.label, &players, &ctx.steps, source).await?;
            result.set_holds(&holds);
            result.link.insert("tcp".into(), proxy.stats());
            for p in &players {
                let _ = p.request(json!(["quit"])).await;
            }
            Ok::<(), super::Error>(())
        }
        .await;
        for mut c in clients {
            if let Some(p) = c.proc.take() {
                p.wait_or_stop(Duration::from_secs(3)).await;
            }
            // Dropping `c` stops its mpv if it is still running.
        }
        outcome
    }
    .await;
    server.stop().await;
    outcome
}

/// Waits until every player has loaded the clip (it has a duration).
pub(crate) async fn wait_loaded(players: &[Arc<Mpv>]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in players {
        // Bounded by the deadline.
        while p.get_f64("duration").await?.is_none() {
            if Instant::now() >= deadline {
                return err(format!(
                    "mpv at {} did not load the clip",
                    p.path().display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
