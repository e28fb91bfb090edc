//! The final statistics: one JSON object (--stats-file, written by [`file`]) and a short human
//! summary on stderr. The one place that prints results.

pub mod file;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::cgroup::Unenforced;
use crate::profile::units::{human_bytes, human_duration};
use crate::spawn::SpawnMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Exited,
    Signaled,
    OomKilled,
    TimedOut,
    ExecFailed,
}

/// Everything a run reports. Field names are the JSON schema; None is null ("the kernel cannot
/// tell").
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub id: String,
    pub profile: String,
    pub cgroup: Option<String>,
    pub command: Vec<String>,
    pub outcome: Outcome,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub signal_name: Option<String>,
    pub wall_time_us: u64,
    pub cpu_usage_us: Option<u64>,
    pub cpu_user_us: Option<u64>,
    pub cpu_system_us: Option<u64>,
    pub cpu_throttled_us: Option<u64>,
    pub cpu_nr_throttled: Option<u64>,
    pub cpu_limit: Option<f64>,
    pub memory_peak_bytes: Option<u64>,
    /// "memory.peak" or "rusage" (the largest single process, from wait4).
    pub memory_peak_source: Option<&'static str>,
    pub memory_limit_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_peak: Option<u64>,
    /// Forks and clones the kernel refused at the tasks limit (pids.events `max`).
    pub pids_limit_hits: Option<u64>,
    pub pids_limit: Option<u64>,
    /// Processes still in the cgroup when the main one exited, killed by teardown.
    pub leftover_processes: Option<u64>,
    pub spawn: Option<SpawnMode>,
    pub unenforced: Vec<Unenforced>,
    /// What Landlock enforced for `[filesystem]`.
    pub landlock: crate::landlock::Status,
    /// Whether the read-only view of `[filesystem]` was built.
    pub filesystem_view: crate::view::Status,
    /// Whether the `[seccomp]` filter was installed, and its action.
    pub seccomp: crate::seccomp::Status,
    /// `[network]`: the mode, and in `proxy` mode the hosts allowed and denied.
    pub network: crate::net::setup::Status,
    /// Why the exec failed, for outcome exec_failed.
    pub error: Option<String>,
}

impl Stats {
    /// Writes the JSON object to `path`, whole and safely in a shared directory ([`file`]).
    pub fn write_json(&self, path: &Path) -> Result<(), file::StatsFileError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| file::StatsFileError::Write {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        text.push('\n');
        file::write(path, text.as_bytes())
    }

    /// The human summary: three short lines.
    pub fn human(&self) -> String {
        let mut out = format!(
            "synwire-run: agent {} ({}) {}{}\n",
            short(&self.id),
            self.profile,
            self.how_it_ended(),
            self.limits_hit()
        );
        if self.outcome == Outcome::ExecFailed {
            return out;
        }
        out.push_str(&self.time_line());
        out.push_str(&self.memory_line());
        out.push_str(&self.landlock_line());
        out.push_str(&self.seccomp_line());
        out.push_str(&self.network.line().unwrap_or_default());
        out
    }

    /// How the agent ended, for the first line.
    fn how_it_ended(&self) -> String {
        match self.outcome {
            Outcome::Exited => format!("exited with code {}", self.exit_code),
            Outcome::Signaled if self.killed_by_seccomp() => {
                if self.seccomp.action == Some("kill") {
                    format!(
                        "killed by the seccomp filter (SIGSYS, exit code {}): it made a system call that [seccomp] denies, or one of another ABI; the kernel log names the call (dmesg or the audit log: type=1326 … syscall=N)",
                        self.exit_code
                    )
                } else {
                    format!(
                        "killed by SIGSYS (exit code {}): the seccomp filter kills a process at a system call of another ABI (32-bit x86, x32 or arm32)",
                        self.exit_code
                    )
                }
            }
            Outcome::Signaled => format!(
                "killed by {} (exit code {})",
                self.signal_name.as_deref().unwrap_or("a signal"),
                self.exit_code
            ),
            Outcome::OomKilled => format!(
                "killed by the out-of-memory killer (exit code {}): it needed more than its memory limit of {}; raise --memory or limits.memory",
                self.exit_code,
                self.memory_limit_bytes.map_or("(none)".into(), human_bytes)
            ),
            Outcome::TimedOut => format!("timed out and was stopped (exit code {})", self.exit_code),
            Outcome::ExecFailed => format!(
                "could not start the command (exit code {})",
                self.exit_code
            ),
        }
    }

    /// The wall and CPU time, and the throttling.
    fn time_line(&self) -> String {
        let us = |v: u64| human_duration(Duration::from_micros(v));
        let mut line = format!("  wall {}", us(self.wall_time_us));
        if let Some(cpu) = self.cpu_usage_us {
            line.push_str(&format!(
                ", cpu {} (user {}, system {})",
                us(cpu),
                self.cpu_user_us.map_or("?".into(), us),
                self.cpu_system_us.map_or("?".into(), us)
            ));
        }
        if let (Some(t), Some(n)) = (self.cpu_throttled_us, self.cpu_nr_throttled) {
            line.push_str(&format!(", throttled {} in {n} periods", us(t)));
            if let Some(c) = self.cpu_limit {
                line.push_str(&format!(" (limit {c} CPUs)"));
            }
        }
        line.push('\n');
        line
    }

    /// The memory and tasks peaks against their limits, OOM kills, leftovers.
    fn memory_line(&self) -> String {
        let mut line = String::from("  memory peak ");
        line.push_str(&self.memory_peak_bytes.map_or("unknown".into(), human_bytes));
        if self.memory_peak_source == Some("rusage") {
            line.push_str(" (largest process)");
        }
        if let Some(l) = self.memory_limit_bytes {
            line.push_str(&format!(" of {}", human_bytes(l)));
        }
        line.push_str(&format!(
            ", tasks peak {}",
            self.pids_peak.map_or("unknown".into(), |p| p.to_string())
        ));
        if let Some(l) = self.pids_limit {
            line.push_str(&format!(" of {l}"));
        }
        if let Some(k) = self.oom_kills {
            line.push_str(&format!(", oom kills {k}"));
        }
        if let Some(n) = self.leftover_processes.filter(|n| *n > 0) {
            line.push_str(&format!(
                ", {n} leftover process{} killed",
                if n == 1 { "" } else { "es" }
            ));
        }
        line.push('\n');
        line
    }

    /// What Landlock enforced; nothing without `[filesystem]`.
    fn landlock_line(&self) -> String {
        let mut out = String::new();
        if self.landlock.status != "off" {
            out.push_str(&format!("  landlock {}", self.landlock.status));
            if let Some(abi) = self.landlock.abi {
                out.push_str(&format!(" (ABI {abi})"));
            }
            if !self.landlock.unhandled.is_empty() {
                out.push_str(&format!(
                    ", not restricted by this kernel: {}",
                    self.landlock.unhandled.join(", ")
                ));
            }
            out.push('\n');
        }
        out
    }
}

impl Stats {
    /// True when the agent died of SIGSYS under a filter: the kernel's SECCOMP_RET_KILL_PROCESS,
    /// which the filter returns for a denied call under `action = "kill"` and for a call of
    /// another ABI under any action. (The call itself is not in the wait status; the kernel's
    /// audit log has it, which synwire-run does not read.)
    fn killed_by_seccomp(&self) -> bool {
        self.seccomp.enforced() && self.signal == Some(libc::SIGSYS)
    }

    /// The `[seccomp]` filter and its action; nothing without one.
    fn seccomp_line(&self) -> String {
        match self.seccomp.action {
            Some(action) if self.seccomp.enforced() => {
                format!("  seccomp enforced, action {action}\n")
            }
            _ => String::new(),
        }
    }

    /// What the limits did that the outcome does not already say, for the first line: OOM kills
    /// the agent outlived (`oom_policy = "continue"`), forks refused at the tasks limit.
    fn limits_hit(&self) -> String {
        let mut out = String::new();
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        if let Some(n) = self.oom_kills.filter(|n| *n > 0) {
            if self.outcome != Outcome::OomKilled {
                out.push_str(&format!(
                    "; the out-of-memory killer ended {} of it (memory limit {})",
                    plural(n, "process", "processes"),
                    self.memory_limit_bytes.map_or("(none)".into(), human_bytes)
                ));
            }
        }
        if let Some(n) = self.pids_limit_hits.filter(|n| *n > 0) {
            out.push_str(&format!(
                "; {} failed at its tasks limit{}",
                plural(n, "fork", "forks"),
                self.pids_limit
                    .map_or(String::new(), |l| format!(" of {l}"))
            ));
        }
        out
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(outcome: Outcome, code: i32) -> Stats {
        Stats {
            id: "0123456789".into(),
            profile: "small".into(),
            cgroup: None,
            command: vec!["x".into()],
            outcome,
            exit_code: code,
            signal: None,
            signal_name: None,
            wall_time_us: 1,
            cpu_usage_us: None,
            cpu_user_us: None,
            cpu_system_us: None,
            cpu_throttled_us: None,
            cpu_nr_throttled: None,
            cpu_limit: None,
            memory_peak_bytes: None,
            memory_peak_source: None,
            memory_limit_bytes: Some(512 << 20),
            oom_kills: Some(0),
            pids_peak: None,
            pids_limit: Some(64),
            pids_limit_hits: Some(0),
            leftover_processes: None,
            spawn: None,
            unenforced: Vec::new(),
            filesystem_view: crate::view::Status::off(),
            landlock: crate::landlock::Status::off(),
            seccomp: crate::seccomp::Status::off(),
            network: crate::net::setup::Status::new(crate::profile::network::Mode::Host),
            error: None,
        }
    }

    fn first_line(s: &Stats) -> String {
        s.human().lines().next().unwrap().to_string()
    }

    #[test]
    fn the_first_line_says_what_the_limits_did() {
        let quiet = stats(Outcome::Exited, 0);
        assert_eq!(
            first_line(&quiet),
            "synwire-run: agent 01234567 (small) exited with code 0"
        );
        let mut s = stats(Outcome::Exited, 0);
        s.oom_kills = Some(12);
        s.pids_limit_hits = Some(1);
        let line = first_line(&s);
        assert!(
            line.contains("exited with code 0; the out-of-memory killer ended 12 processes of it (memory limit 512 MiB)")
                && line.ends_with("; 1 fork failed at its tasks limit of 64"),
            "{line}"
        );
        // An OOM-killed outcome says it already.
        let mut s = stats(Outcome::OomKilled, 137);
        s.oom_kills = Some(3);
        assert!(!first_line(&s).contains("ended 3"), "{}", first_line(&s));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["pids_limit_hits"], 0);
        assert_eq!(json["oom_kills"], 3);
    }

    #[test]
    fn the_summary_has_the_times_the_peaks_and_what_landlock_enforced() {
        let mut s = stats(Outcome::Signaled, 143);
        s.signal_name = Some("SIGTERM".into());
        s.wall_time_us = 1_500_000;
        s.cpu_usage_us = Some(1_200_000);
        s.cpu_user_us = Some(1_000_000);
        s.cpu_system_us = Some(200_000);
        s.cpu_throttled_us = Some(300_000);
        s.cpu_nr_throttled = Some(4);
        s.cpu_limit = Some(0.5);
        s.memory_peak_bytes = Some(100 << 20);
        s.memory_peak_source = Some("memory.peak");
        s.pids_peak = Some(5);
        s.leftover_processes = Some(2);
        s.landlock = crate::landlock::Status {
            status: "partial",
            abi: Some(2),
            unhandled: vec!["truncate"],
        };
        assert_eq!(
            s.human(),
            "synwire-run: agent 01234567 (small) killed by SIGTERM (exit code 143)\n  \
             wall 1.500s, cpu 1.200s (user 1.000s, system 0.200s), throttled 0.300s in 4 periods (limit 0.5 CPUs)\n  \
             memory peak 100 MiB of 512 MiB, tasks peak 5 of 64, oom kills 0, 2 leftover processes killed\n  \
             landlock partial (ABI 2), not restricted by this kernel: truncate\n"
        );
    }

    #[test]
    fn an_agent_the_filter_killed_is_reported_as_such() {
        let mut s = stats(Outcome::Signaled, 159);
        s.signal = Some(libc::SIGSYS);
        s.signal_name = Some("SIGSYS".into());
        // Without a filter, SIGSYS is a signal like any other.
        assert!(first_line(&s).ends_with("killed by SIGSYS (exit code 159)"));
        s.seccomp = crate::seccomp::Status {
            status: "enforced",
            action: Some("kill"),
        };
        let line = first_line(&s);
        assert!(
            line.contains("killed by the seccomp filter (SIGSYS, exit code 159): it made a system call that [seccomp] denies"),
            "{line}"
        );
        assert!(
            s.human().ends_with("  seccomp enforced, action kill\n"),
            "{}",
            s.human()
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["seccomp"],
            serde_json::json!({"status": "enforced", "action": "kill"})
        );
        // Under errno only a call of another ABI kills.
        s.seccomp.action = Some("errno");
        assert!(first_line(&s).contains("another ABI"), "{}", first_line(&s));
    }
}
