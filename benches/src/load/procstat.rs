//! RSS and CPU time of a process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
//!
//! Sampled once a second for the relay (when this tool started it, or `--relay-pid` named it)
//! and for the load generator itself: comparing the two shows which one is the bottleneck.

use std::time::Instant;

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ProcReading {
    /// Resident set size, KiB (`VmRSS`).
    pub(crate) rss_kb: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub(crate) hwm_kb: u64,
    /// User plus system CPU time, clock ticks (`utime + stime`).
    pub(crate) cpu_ticks: u64,
    /// Threads.
    pub(crate) threads: u64,
}

/// `VmRSS` and `VmHWM` (KiB) from the text of `/proc/<pid>/status`.
pub(crate) fn parse_status(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some((field("VmRSS")?, field("VmHWM").unwrap_or(0)))
}

/// `utime + stime` (ticks) and the thread count from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(20)?))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on, which is also
/// the fallback).
pub(crate) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// Reads a process now (`None`: this process).
pub(crate) fn read(pid: Option<u32>) -> Option<ProcReading> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    };
    let (rss_kb, hwm_kb) = parse_status(&std::fs::read_to_string(format!("{dir}/status")).ok()?)?;
    let (cpu_ticks, threads) = parse_stat(&std::fs::read_to_string(format!("{dir}/stat")).ok()?)?;
    Some(ProcReading {
        rss_kb,
        hwm_kb,
        cpu_ticks,
        threads,
    })
}

/// A process's readings over time, with CPU use between readings.
#[derive(Debug)]
pub(crate) struct Sampler {
    pid: Option<u32>,
    ticks_per_sec: f64,
    last: Option<(Instant, ProcReading)>,
}

/// A reading with the CPU used since the previous one.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Sample {
    /// Resident set size, KiB.
    pub(crate) rss_kb: u64,
    /// Peak resident set size so far, KiB.
    pub(crate) hwm_kb: u64,
    /// CPU time so far, seconds.
    pub(crate) cpu_s: f64,
    /// CPU use since the previous sample, percent of one core.
    pub(crate) cpu_pct: f64,
    /// Threads.
    pub(crate) threads: u64,
}

impl Sampler {
    /// Samples `pid` (`None`: this process).
    pub(crate) fn new(pid: Option<u32>, ticks_per_sec: u64) -> Sampler {
        Sampler {
            pid,
            ticks_per_sec: ticks_per_sec.max(1) as f64,
            last: None,
        }
    }

    /// Reads the process now; `None` once it is gone.
    pub(crate) fn sample(&mut self) -> Option<Sample> {
        let now = Instant::now();
        let r = read(self.pid)?;
        let cpu_pct = match self.last {
            Some((then, prev)) => {
                let wall = now.duration_since(then).as_secs_f64();
                let used = r.cpu_ticks.saturating_sub(prev.cpu_ticks) as f64 / self.ticks_per_sec;
                if wall > 0.0 { 100.0 * used / wall } else { 0.0 }
            }
            None => 0.0,
        };
        self.last = Some((now, r));
        Some(Sample {
            rss_kb: r.rss_kb,
            hwm_kb: r.hwm_kb,
            cpu_s: r.cpu_ticks as f64 / self.ticks_per_sec,
            cpu_pct,
            threads: r.threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tlockstep\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t 1234567 kB\nVmSize:\t 1200000 kB\nVmHWM:\t   98765 kB\nVmRSS:\t   45678 kB\n\
        RssAnon:\t   40000 kB\nThreads:\t5\n";

    // A command name with a space and a parenthesis, as a process may choose.
    const STAT: &str = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 2616 0 0 0 \
        1234 567 0 0 20 0 7 0 8840 1254998016 11419 18446744073709551615 1 1 0 0 0 0 0 \
        4096 17987 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn status_gives_rss_and_peak() {
        assert_eq!(parse_status(STATUS), Some((45_678, 98_765)));
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn stat_gives_cpu_ticks_and_threads() {
        assert_eq!(parse_stat(STAT), Some((1234 + 567, 7)));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let mut s = Sampler::new(None, clock_ticks());
        let a = s.sample().unwrap();
        assert!(a.rss_kb > 0);
        assert!(a.threads >= 1);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let b = s.sample().unwrap();
        assert!(b.cpu_s >= a.cpu_s);
        assert!(b.cpu_pct >= 0.0);
    }
}
