//! Running the independent Python implementations the tests compare the relay against.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `$LOCKSTEP_PYTHON` (the virtualenv `./scripts/test.sh` makes), else `python3`.
pub fn interpreter() -> String {
    std::env::var("LOCKSTEP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// How a Python run ended.
pub struct Outcome {
    pub success: bool,
    /// The exit status, or how long it ran before it was killed.
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `python args...` to completion, killing it after `timeout`. `install` says how to get
/// the interpreter when it cannot even start: a missing dependency fails the test, it does not
/// skip it.
pub fn run(python: &str, args: &[String], timeout: Duration, install: &str) -> Outcome {
    let mut child = Command::new(python)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{python}` ({e}): {install}"));
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
        if let Some(status) = child.try_wait().expect("wait for Python") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        success: status.is_some_and(|s| s.success()),
        status: status.map_or_else(
            || format!("killed after {} s", timeout.as_secs()),
            |s| s.to_string(),
        ),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}
