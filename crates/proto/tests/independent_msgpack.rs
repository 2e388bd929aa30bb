//! The golden vectors read by an independent MessagePack implementation (Python's `msgpack`),
//! proof that the bytes are standard MessagePack and not just what our own codec accepts.
//!
//! Uses `$LOCKSTEP_PYTHON` (set by the README's test command to `target/py/bin/python`, a
//! virtualenv that has `msgpack`), else `python3`. A missing interpreter or module fails the
//! test with the command that installs it: it is a dependency of the test suite, not a reason
//! to skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn python_msgpack_reads_every_vector_as_its_json_twin() {
    let python = std::env::var("LOCKSTEP_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let out = Command::new(&python)
        .arg(dir.join("check_msgpack.py"))
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{python}` ({e}): run ./scripts/test.sh (it creates the \
                 virtualenv target/py with msgpack and sets LOCKSTEP_PYTHON)"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "independent MessagePack check failed:\n{stdout}\n{stderr}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    let passed: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(
        passed,
        lockstep_proto::MessageType::ALL.len(),
        "expected every message type to be checked: {summary}"
    );
}
