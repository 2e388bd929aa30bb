//! The open-files limit: every WebSocket client is a socket here and another in the relay
//! (which inherits this process's limit when this tool starts it), so tens of thousands of
//! clients need a limit far above the usual 1,024 or 20,000.

use rlimit::Resource;

use super::{Error, Result};

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raised {
    /// Soft limit before.
    pub(crate) before: u64,
    /// Soft limit now.
    pub(crate) now: u64,
}

/// The limit to ask for: `needed`, but not beyond the kernel's `nr_open` ceiling.
pub(crate) fn target(needed: u64, hard: u64, nr_open: Option<u64>) -> u64 {
    let ceiling = nr_open.unwrap_or(u64::MAX);
    needed.max(hard.min(ceiling)).min(ceiling)
}

/// Raises RLIMIT_NOFILE to at least `needed` (soft and, when permitted, hard: as root the hard
/// limit can be raised too); fails with what to do when that is not possible.
pub(crate) fn raise(needed: u64) -> Result<Raised> {
    let (soft, hard) = Resource::NOFILE
        .get()
        .map_err(|e| Error::Machine(format!("cannot read RLIMIT_NOFILE: {e}")))?;
    if soft >= needed {
        return Ok(Raised {
            before: soft,
            now: soft,
        });
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let want = target(needed, hard, nr_open);
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it, go as far as the hard limit.
    if Resource::NOFILE.set(want, want.max(hard)).is_err() {
        let _ = Resource::NOFILE.set(hard.min(want), hard);
    }
    let now = Resource::NOFILE.get_soft().unwrap_or(soft);
    if now < needed {
        return Err(Error::Machine(format!(
            "this run needs about {needed} open files, and RLIMIT_NOFILE is {now} (hard limit \
             {hard}{}): raising the hard limit needs CAP_SYS_RESOURCE (root outside a \
             restricted container); raise it first (`ulimit -Hn {needed}; ulimit -n {needed}`) \
             or run fewer WebSocket clients",
            nr_open.map_or(String::new(), |n| format!(", kernel nr_open {n}"))
        )));
    }
    Ok(Raised { before: soft, now })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_stay_under_the_kernel_ceiling() {
        assert_eq!(target(60_000, 20_000, Some(1_048_576)), 60_000);
        assert_eq!(target(10_000, 20_000, Some(1_048_576)), 20_000);
        assert_eq!(target(2_000_000, 20_000, Some(1_048_576)), 1_048_576);
        assert_eq!(target(60_000, 20_000, None), 60_000);
    }

    #[test]
    fn a_limit_already_high_enough_is_left_alone() {
        let r = raise(16).unwrap();
        assert_eq!(r.before, r.now);
    }
}
