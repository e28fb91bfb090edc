//! The final statistics: one JSON object (--stats-file) and a short human summary on stderr. The
//! one place that prints results.

use std::io::Write;
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
    pub pids_limit: Option<u64>,
    /// Processes still in the cgroup when the main one exited, killed by teardown.
    pub leftover_processes: Option<u64>,
    pub spawn: Option<SpawnMode>,
    pub unenforced: Vec<Unenforced>,
    /// What Landlock enforced for `[filesystem]`.
    pub landlock: crate::landlock::Status,
    /// Why the exec failed, for outcome exec_failed.
    pub error: Option<String>,
}

impl Stats {
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        // Written whole to a temporary name, then renamed: a reader never sees half a file.
        let tmp = path.with_file_name(format!(
            ".{}.tmp{}",
            path.file_name()
                .map_or("stats".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// The human summary: three short lines.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let how = match self.outcome {
            Outcome::Exited => format!("exited with code {}", self.exit_code),
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
        };
        out.push_str(&format!(
            "synwire-run: agent {} ({}) {how}\n",
            short(&self.id),
            self.profile
        ));
        if self.outcome == Outcome::ExecFailed {
            return out;
        }
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
        out.push_str(&line);
        out.push('\n');
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
        out.push_str(&line);
        out.push('\n');
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

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
