//! An independent WebTransport client (Python's `aioquic`, `tests/independent/webtransport_client.py`)
//! against a relay started in-process: it fetches `/api/config`, pins the published certificate
//! hash, completes the extended CONNECT, `hello` → `welcome`, and one `ping` → `pong` datagram
//! exchange. Proof the relay is not only compatible with its own `wtransport` client.
//!
//! Uses `$LOCKSTEP_PYTHON` (set by `./scripts/test.sh` to `target/py/bin/python`, a virtualenv
//! with `msgpack` and `aioquic`), else `python3`. A missing interpreter or module fails the
//! test with the command that installs it: it is a dependency of the test suite, not a reason
//! to skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The script's own limit is 20 s; this one catches a hung interpreter.
const TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL: &str = "run ./scripts/test.sh (it creates the virtualenv target/py with msgpack and \
                       aioquic and sets LOCKSTEP_PYTHON), or: python3 -m venv target/py && \
                       target/py/bin/pip install msgpack aioquic && \
                       export LOCKSTEP_PYTHON=$PWD/target/py/bin/python";

struct Outcome {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Runs `python script args...`, killing it after `TIMEOUT`.
fn run_python(python: &str, script: &Path, args: &[String]) -> Outcome {
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{python}` ({e}): {INSTALL}"));
    // Drain the pipes on their own threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the Python client") {
            break Some(status);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Outcome {
        success: status.is_some_and(|s| s.success()),
        status: status.map_or_else(
            || format!("killed after {} s", TIMEOUT.as_secs()),
            |s| s.to_string(),
        ),
        stdout,
        stderr,
    }
}

/// The value of one series in Prometheus text, e.g. `name{label="value"}`.
fn series(text: &str, selector: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(selector)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {selector} in the metrics:\n{text}"))
}

#[tokio::test]
async fn aioquic_client_handshakes_and_pings_with_a_pinned_certificate() {
    let python = std::env::var("LOCKSTEP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/webtransport_client.py");

    // The modules first, so a missing one fails with the install command, not a traceback.
    let probe = run_python(
        &python,
        Path::new("-c"),
        &["import msgpack, aioquic, cryptography".into()],
    );
    assert!(
        probe.success,
        "`{python}` cannot import msgpack and aioquic ({}): {INSTALL}\n{}",
        probe.status,
        probe.stderr.trim()
    );

    let relay = support::relay(|_| {}).await;
    let config_url = format!("http://{}/api/config", relay.http_addr());
    let args = vec!["--config-url".to_string(), config_url];
    let outcome = tokio::task::spawn_blocking(move || run_python(&python, &script, &args))
        .await
        .expect("the Python client's runner");
    assert!(
        outcome.success,
        "the aioquic WebTransport client failed ({}):\nstdout:\n{}\nstderr:\n{}",
        outcome.status, outcome.stdout, outcome.stderr
    );
    let summary = outcome.stdout.lines().last().unwrap_or_default();
    println!("python client: {summary}");
    assert!(
        summary.starts_with("handshake ok") && summary.contains("pinned sha-256 OK"),
        "unexpected summary from the Python client: {}",
        outcome.stdout
    );

    let metrics = relay.metrics().render();
    assert_eq!(
        series(
            &metrics,
            "lockstep_connections_total{transport=\"webtransport\"}"
        ),
        1.0,
        "the relay should have seen exactly one WebTransport connection"
    );
    assert!(
        series(&metrics, "lockstep_messages_out_total{type=\"pong\"}") >= 1.0,
        "the relay should have answered a ping"
    );
}
