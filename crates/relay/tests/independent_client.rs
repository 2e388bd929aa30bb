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

use std::path::Path;
use std::time::Duration;

/// The script's own limit is 20 s; this one catches a hung interpreter.
const TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL: &str = "run ./scripts/test.sh (it creates the virtualenv target/py with msgpack and \
                       aioquic and sets LOCKSTEP_PYTHON), or: python3 -m venv target/py && \
                       target/py/bin/pip install msgpack aioquic && \
                       export LOCKSTEP_PYTHON=$PWD/target/py/bin/python";

/// Runs `python script args...` (or `python -c ...`), killing it after `TIMEOUT`.
fn run_python(python: &str, script: &Path, args: &[String]) -> support::python::Outcome {
    let mut all = vec![script.display().to_string()];
    all.extend_from_slice(args);
    support::python::run(python, &all, TIMEOUT, INSTALL)
}

/// The value of one series in Prometheus text, e.g. `name{label="value"}`.
fn series(text: &str, selector: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(selector)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {selector} in the metrics:\n{text}"))
}

#[tokio::test]
async fn aioquic_client_handshakes_and_pings_with_a_pinned_certificate() {
    let python = support::python::interpreter();
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
