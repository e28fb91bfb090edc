//! The last stage: what the agent used and how it ended, the exit code, and how the command line
//! ends (the summary, the statistics file, and after a clean stop the agent's own signal).

use std::time::Duration;

use super::Output;
use crate::cgroup::CgroupStats;
use crate::error::{Error, EXIT_TIMEOUT};
use crate::plan::ExecFailure;
use crate::profile::{self, OomPolicy};
use crate::report::{Outcome, Stats};
use crate::supervise::{Exit, Status};
use crate::sys;

/// A launch that has ended.
#[derive(Debug)]
pub struct Finished {
    /// The summary and the statistics; None when the agent was never started (a stop signal
    /// came first), which leaves nothing to report.
    stats: Option<Box<Stats>>,
    code: i32,
    /// After a clean stop, the signal synwire-run ends by once it has reported.
    end_by: Option<i32>,
}

impl Finished {
    /// The command could not be executed (exit 127 or 126), after `wall`.
    pub(super) fn exec_failed(mut stats: Stats, failure: ExecFailure, wall: Duration) -> Finished {
        tracing::error!("{}", failure.message);
        stats.outcome = Outcome::ExecFailed;
        stats.exit_code = failure.code;
        stats.wall_time_us = wall.as_micros() as u64;
        stats.error = Some(failure.message);
        Finished {
            code: stats.exit_code,
            stats: Some(Box::new(stats)),
            end_by: None,
        }
    }

    /// The agent was not started: exit `code`, and end by `end_by`.
    pub(super) fn not_started(code: i32, end_by: Option<i32>) -> Finished {
        Finished {
            stats: None,
            code,
            end_by,
        }
    }

    /// The agent ran and ended as `exit` says; `cg` is what its cgroup accounted.
    pub(super) fn ended(
        mut stats: Stats,
        cg: &CgroupStats,
        exit: &Exit,
        policy: OomPolicy,
    ) -> Finished {
        account(&mut stats, cg, exit);
        let oom = cg.oom_kills.unwrap_or(0) > 0;
        // Under oom_policy "kill" any OOM kill ended the agent, whatever its main process did (an
        // OOM-immune parent survives memory.oom.group and may even exit 0 after the kill).
        let oom_ended = exit.oom_killed || (oom && policy == OomPolicy::Kill);
        (stats.outcome, stats.exit_code, stats.signal) = match exit.status {
            _ if oom_ended => (Outcome::OomKilled, 128 + libc::SIGKILL, Some(libc::SIGKILL)),
            Status::Signaled(s) if exit.timed_out => (Outcome::TimedOut, EXIT_TIMEOUT, Some(s)),
            Status::Exited(_) if exit.timed_out => (Outcome::TimedOut, EXIT_TIMEOUT, None),
            Status::Signaled(libc::SIGKILL) if oom => {
                (Outcome::OomKilled, 128 + libc::SIGKILL, Some(libc::SIGKILL))
            }
            Status::Signaled(s) => (Outcome::Signaled, 128 + s, Some(s)),
            Status::Exited(c) => (Outcome::Exited, c, None),
        };
        stats.signal_name = stats.signal.map(profile::signal_name);
        // Asked to stop by SIGTERM, SIGINT or SIGHUP, and the agent died of it: a clean stop,
        // which ends synwire-run by the same signal (systemd counts that as success; shells see
        // 128+N).
        let end_by = match (stats.outcome, exit.status) {
            (Outcome::Signaled, Status::Signaled(s)) if exit.stop_requests.has(s) => Some(s),
            _ => None,
        };
        Finished {
            code: stats.exit_code,
            stats: Some(Box::new(stats)),
            end_by,
        }
    }

    /// The exit code synwire-run gives this launch.
    pub fn exit_code(&self) -> i32 {
        self.code
    }

    /// The statistics; None when the agent was never started.
    pub fn stats(&self) -> Option<&Stats> {
        self.stats.as_deref()
    }

    /// After a clean stop, the signal the agent died of, which synwire-run ends by.
    pub fn end_by(&self) -> Option<i32> {
        self.end_by
    }

    /// Prints the summary on stderr (unless quiet) and writes the statistics file.
    pub fn report(&self, out: &Output) -> Result<(), Error> {
        let Some(stats) = &self.stats else {
            return Ok(());
        };
        if !out.quiet {
            // Not eprint!: a closed stderr pipe must not turn the agent's status into a panic.
            use std::io::Write;
            let _ = std::io::stderr().write_all(stats.human().as_bytes());
        }
        if let Some(path) = &out.stats_file {
            stats.write_json(path)?;
        }
        Ok(())
    }

    /// Ends as the command line does: reports, then after a clean stop ends synwire-run by the
    /// agent's signal. Returns the exit code (also where that signal is discarded).
    pub fn exit(self, out: &Output) -> Result<i32, Error> {
        self.report(out)?;
        if let Some(sig) = self.end_by {
            end_by_signal(sig);
        }
        Ok(self.code)
    }
}

/// What the agent used: the cgroup's accounting where it has it, wait4's rusage otherwise.
fn account(stats: &mut Stats, cg: &CgroupStats, exit: &Exit) {
    let rusage_cpu = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    stats.cpu_user_us = cg.cpu_user_us.or(Some(rusage_cpu(exit.rusage.ru_utime)));
    stats.cpu_system_us = cg.cpu_system_us.or(Some(rusage_cpu(exit.rusage.ru_stime)));
    stats.cpu_usage_us = cg.cpu_usage_us.or(Some(
        stats.cpu_user_us.unwrap_or(0) + stats.cpu_system_us.unwrap_or(0),
    ));
    stats.cpu_throttled_us = cg.cpu_throttled_us;
    stats.cpu_nr_throttled = cg.cpu_nr_throttled;
    (stats.memory_peak_bytes, stats.memory_peak_source) = match cg.memory_peak_bytes {
        Some(p) => (Some(p), Some("memory.peak")),
        None => (Some(exit.rusage.ru_maxrss as u64 * 1024), Some("rusage")),
    };
    stats.oom_kills = cg.oom_kills;
    stats.pids_peak = cg.pids_peak;
    stats.pids_limit_hits = cg.pids_limit_hits;
}

/// Ends synwire-run by `sig` with its default action, after everything else is done. Returns
/// only where the kernel discards it (synwire-run is PID 1 of a namespace); the caller then
/// exits 128+N as usual.
fn end_by_signal(sig: i32) {
    tracing::debug!("ending by {}, as the agent did", profile::signal_name(sig));
    sys::deliver_to_self(sig);
}
