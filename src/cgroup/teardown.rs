//! The end of an agent cgroup: kill what is left, wait for `populated 0`, read the statistics,
//! remove it (or leave it to the systemd scope it lives in). Also the safety net that does the
//! same on every error path (`Drop`), and the kill and wait that `gc` and the stale pass use on
//! cgroups of other launchers.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{io_err, stats, write_file, AgentCgroup, CgroupError, CgroupStats, EventsFile};

/// How long teardown waits for a killed cgroup to empty before it gives up with a warning.
const EMPTY_WAIT: Duration = Duration::from_secs(10);

impl AgentCgroup {
    /// Kills what is left, waits for the cgroup to empty, reads the statistics and removes it.
    /// Returns the statistics and how many processes were left behind.
    /// `stopped`: a stop signal (SIGTERM, SIGINT, SIGHUP) reached synwire-run; in a transient scope
    /// of our own the removal is then left to systemd ([`AgentCgroup::leave_to_scope`]).
    /// `settled` is called once nothing in the cgroup can outlive synwire-run any more (it is
    /// empty, or `cgroup.kill` took): the guardian's release.
    pub fn teardown(
        &mut self,
        stopped: bool,
        settled: impl FnOnce(),
    ) -> (CgroupStats, Option<u64>) {
        let left = count_procs(&self.dir).map(|n| n as u64);
        // Already empty (the common end): nothing to kill and nothing to wait for.
        let empty = left == Some(0) && self.is_empty().unwrap_or(false);
        if empty || self.kill_all().map_err(|e| tracing::warn!("{e}")).is_ok() {
            settled();
        }
        let emptied = if empty {
            // What wait_empty would do before finding it empty: reap the orphans that reached
            // us as subreaper.
            crate::sys::reap_any();
            Ok(true)
        } else {
            self.wait_empty(EMPTY_WAIT)
        };
        match emptied {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "processes in {} did not exit within {}s of SIGKILL (stuck in the kernel?); the cgroup may stay behind",
                self.dir.display(),
                EMPTY_WAIT.as_secs()
            ),
            Err(e) => tracing::warn!("{e}"),
        }
        let stats = self.stats();
        if stopped && self.in_own_scope {
            self.leave_to_scope();
        } else if let Err(e) = self.remove() {
            tracing::warn!(
                "{e}; remove it with `rmdir {}` once it is empty",
                self.dir.display()
            );
        }
        (stats, left)
    }

    /// Kills everything in the cgroup: cgroup.kill where the kernel has it (5.14+), else freeze,
    /// SIGKILL every process listed, thaw, until none is left.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        kill_dir(&self.dir)
    }

    /// True once cgroup.events says `populated 0`.
    pub fn is_empty(&self) -> Result<bool, CgroupError> {
        let events = self.dir.join("cgroup.events");
        let text = crate::sys::read_file(&events).map_err(io_err("read", &events))?;
        Ok(stats::key_value(&text, "populated") == Some(0))
    }

    /// Waits until the cgroup is empty, reaping our own children (orphans that reach us as
    /// subreaper) between checks. Gives up after `limit`.
    pub fn wait_empty(&self, limit: Duration) -> Result<bool, CgroupError> {
        wait_dir_empty(&self.dir, limit, Reap::OurChildren)
    }

    /// Leaves the (empty) cgroup for systemd to remove with our transient scope.
    ///
    /// When systemd stops a scope it walks the scope's cgroups, signalling every process; a
    /// cgroup removed under that walk fails it (ENODEV reading `cgroup.procs`), and systemd
    /// then skips the wait and SIGKILLs what is left of the scope at once — synwire-run in the
    /// middle of its teardown, without statistics (seen as exit 137 on a `systemctl stop`).
    /// After a stop request in our own scope the rmdir is therefore left to systemd, which
    /// removes the whole tree when the scope ends, as soon as synwire-run exits.
    pub fn leave_to_scope(&mut self) {
        tracing::debug!(
            "leaving {} to systemd, which removes it with the scope",
            self.dir.display()
        );
        self.removed = true;
    }

    /// Removes the (empty) cgroup, retrying on EBUSY for a bounded time.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        let mut delay = Duration::from_millis(1);
        let start = Instant::now();
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => {
                    self.removed = true;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    self.removed = true;
                    return Ok(());
                }
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && start.elapsed() < Duration::from_secs(5) =>
                {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(io_err("remove", &self.dir)(e)),
            }
        }
    }
}

impl Drop for AgentCgroup {
    /// The safety net for error paths: kill and remove whatever is left.
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.kill_all();
            let _ = self.wait_empty(Duration::from_secs(2));
            let _ = self.remove();
        }
    }
}

/// How many processes the cgroup at `dir` holds (the lines of its cgroup.procs); None when it
/// cannot be read.
pub fn count_procs(dir: &Path) -> Option<usize> {
    crate::sys::read_file(dir.join("cgroup.procs"))
        .map(|t| t.lines().count())
        .ok()
}

/// Kills everything in the cgroup at `dir` (see [`AgentCgroup::kill_all`]).
pub fn kill_dir(dir: &Path) -> Result<(), CgroupError> {
    let kill = dir.join("cgroup.kill");
    match write_file(&kill, "1") {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("write", &kill)(e)),
    }
    let freeze = dir.join("cgroup.freeze");
    let frozen = write_file(&freeze, "1").is_ok();
    let procs = dir.join("cgroup.procs");
    for _ in 0..1000 {
        let pids = crate::sys::read_file(&procs).map_err(io_err("read", &procs))?;
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if !frozen {
            std::thread::yield_now();
        }
    }
    if frozen {
        let _ = write_file(&freeze, "0");
    }
    Ok(())
}

/// Whether a wait for a cgroup to empty reaps our own children meanwhile: our agent's cgroup
/// holds them (orphans reach us as subreaper, and a zombie keeps it populated); another
/// launcher's never does, and reaping there would take our running agent's exit from the
/// supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reap {
    OurChildren,
    Nothing,
}

/// Waits until the cgroup at `dir` is empty, up to `limit`, reaping our own children meanwhile
/// with [`Reap::OurChildren`]. cgroup.events signals a change with POLLPRI (read through the same
/// descriptor, see [`EventsFile`]); it is re-read at least every 100 ms, for children of ours to
/// reap.
pub fn wait_dir_empty(dir: &Path, limit: Duration, reap: Reap) -> Result<bool, CgroupError> {
    let start = Instant::now();
    let path = dir.join("cgroup.events");
    let mut events = EventsFile::open(&path).map_err(io_err("open", &path))?;
    loop {
        if reap == Reap::OurChildren {
            crate::sys::reap_any();
        }
        let text = events.read().map_err(io_err("read", &path))?;
        if stats::key_value(text, "populated") == Some(0) {
            return Ok(true);
        }
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(false);
        }
        crate::sys::poll_pri(events.fd(), left.min(Duration::from_millis(100)));
    }
}
