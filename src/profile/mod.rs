//! Profiles: the declarative TOML that says what an agent may use. This module owns reading a
//! profile (a built-in or a file), checking every key with an error that names the file, the line,
//! the column and the key, and applying the command-line overrides. The result, [`Profile`], holds
//! only validated values.

pub mod env;
mod format;
pub mod network;
pub mod privilege;
pub mod render;
pub mod search;
pub mod seccomp;
mod source;
pub mod units;
mod users;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::signals::{signal_name, signal_number};
pub use format::parse;
use format::Val;
use source::Source;
pub use units::{parse_duration, parse_size, Size};

/// Built-in profiles, compiled in from profiles/*.toml.
pub const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.toml")),
    ("small", include_str!("../../profiles/small.toml")),
    ("medium", include_str!("../../profiles/medium.toml")),
    ("large", include_str!("../../profiles/large.toml")),
    ("isolated", include_str!("../../profiles/isolated.toml")),
    ("agent", include_str!("../../profiles/agent.toml")),
    ("agent-net", include_str!("../../profiles/agent-net.toml")),
];

/// A validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The name it was asked for by (a built-in name or the path given).
    pub name: String,
    pub description: Option<String>,
    pub limits: Limits,
    pub stop: Stop,
    /// `[cgroup] required`: false runs degraded where limits cannot be enforced.
    pub cgroup_required: bool,
    /// `[cgroup] manager`: "auto", "systemd" (always a transient scope), "cgroupfs" (never).
    pub cgroup_manager: ManagerMode,
    pub namespaces: Namespaces,
    pub security: privilege::Security,
    pub env: env::EnvSpec,
    pub rlimits: privilege::Rlimits,
    /// `[filesystem]`: Landlock rules; None without the section.
    pub filesystem: Option<privilege::Filesystem>,
    /// `[seccomp]`: the system-call filter; off without a list.
    pub seccomp: seccomp::Seccomp,
    /// `[network]`: the host's network, none, or only the hosts of `allow` through the proxy.
    pub network: network::Network,
}

pub use crate::ns::{Namespaces, NAMES as NAMESPACE_NAMES};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// memory.max
    pub memory: Option<Size>,
    /// memory.high
    pub memory_high: Option<Size>,
    /// memory.swap.max
    pub swap: Option<Size>,
    /// CPUs' worth of time, for cpu.max.
    pub cpu: Option<f64>,
    /// cpu.weight, 1..=10000.
    pub cpu_weight: Option<u32>,
    /// pids.max
    pub pids: Option<u64>,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// What an OOM kill in the agent's cgroup does to the rest of the agent.
    pub oom_policy: OomPolicy,
}

/// `[limits] oom_policy`: like systemd's OOMPolicy=stop and =continue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OomPolicy {
    /// The first OOM kill ends the whole agent (exit 137, outcome `oom_killed`), even processes
    /// that made themselves OOM-immune (oom_score_adj -1000, which memory.oom.group spares).
    #[default]
    Kill,
    /// The agent runs on; the summary and the statistics say how many processes were killed.
    Continue,
}

impl OomPolicy {
    pub fn name(self) -> &'static str {
        match self {
            OomPolicy::Kill => "kill",
            OomPolicy::Continue => "continue",
        }
    }

    fn parse(s: &str) -> Option<OomPolicy> {
        match s {
            "kill" => Some(OomPolicy::Kill),
            "continue" => Some(OomPolicy::Continue),
            _ => None,
        }
    }
}

/// Who arranges the agents' cgroups: `[cgroup] manager` and `--scope` / `--no-scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManagerMode {
    /// Ask systemd for a scope only where the placement rule would refuse (a login session).
    #[default]
    Auto,
    /// Always run in a transient scope of our own.
    Systemd,
    /// Never ask systemd: today's placement rule, refusals included.
    Cgroupfs,
}

impl ManagerMode {
    pub const NAMES: &'static [&'static str] = &["auto", "systemd", "cgroupfs"];

    pub fn parse(s: &str) -> Option<ManagerMode> {
        match s {
            "auto" => Some(ManagerMode::Auto),
            "systemd" => Some(ManagerMode::Systemd),
            "cgroupfs" => Some(ManagerMode::Cgroupfs),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ManagerMode::Auto => "auto",
            ManagerMode::Systemd => "systemd",
            ManagerMode::Cgroupfs => "cgroupfs",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Sent to the agent when the timeout expires.
    pub signal: i32,
    /// How long the agent has after `signal` before everything in its cgroup is killed.
    pub grace: Duration,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: libc::SIGTERM,
            grace: Duration::from_secs(10),
        }
    }
}

/// cpu.max's period; a quota below 1000 µs is refused by the kernel.
pub const CPU_PERIOD_US: u64 = 100_000;
const CPU_MIN: f64 = 0.01;
const CPU_MAX: f64 = 65536.0;
/// PID_MAX_LIMIT: pids.max cannot usefully exceed it.
const PIDS_MAX: u64 = 4_194_304;
/// Below this a memory limit cannot start any program; it is almost always a unit mistake.
const MEMORY_MIN: u64 = 1 << 20;

impl Limits {
    /// The cpu.max line for `cpu`: "quota period".
    pub fn cpu_max(&self) -> Option<String> {
        self.cpu.map(|c| {
            format!(
                "{} {CPU_PERIOD_US}",
                (c * CPU_PERIOD_US as f64).round() as u64
            )
        })
    }

    /// True when any limit needs the memory controller.
    pub fn needs_memory(&self) -> bool {
        self.memory.is_some() || self.memory_high.is_some() || self.swap.is_some()
    }

    pub fn needs_cpu(&self) -> bool {
        self.cpu.is_some() || self.cpu_weight.is_some()
    }

    pub fn needs_pids(&self) -> bool {
        self.pids.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile `{name}`: no {name}.toml in {searched}, and not a built-in ({builtins}); install it in one of those directories, or pass a path to a TOML file (containing `/` or ending in `.toml`)")]
    Unknown {
        name: String,
        builtins: String,
        searched: String,
    },
    #[error("profile `extends` chain loops: {chain}; break the cycle")]
    Cycle { chain: String },
    #[error("cannot read profile {}: {source}; check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid profile {origin}:{line}:{column}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid {flag} `{value}`: {message}")]
    Flag {
        flag: &'static str,
        value: String,
        message: String,
    },
}

/// Command-line overrides of `[limits]`, as typed.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub memory: Option<String>,
    pub cpu: Option<String>,
    pub pids: Option<String>,
    pub timeout: Option<String>,
    /// `--unshare LIST`, added to the profile's namespaces.
    pub unshare: Option<String>,
    /// `--set KEY=VALUE`, applied to the merged profile.
    pub sets: Vec<String>,
    /// `--network MODE`.
    pub network: Option<String>,
    /// `--allow-host HOST[:PORT]`, added to `[network] allow`; implies `proxy`.
    pub allow_hosts: Vec<String>,
}

/// True when a `--profile` argument names a file rather than a built-in.
pub fn is_path(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".toml")
}

/// Loads the profile `arg` names (a path, or a name along the search path or among the
/// built-ins) with its `extends` chain and `--set` assignments, then applies `overrides`.
pub fn load(arg: &str, overrides: &Overrides) -> Result<Profile, ProfileError> {
    let (mut profile, _) = search::load_chain(&search::search_dirs(), arg, &overrides.sets)?;
    apply_overrides(&mut profile.limits, overrides)?;
    if let Some(list) = &overrides.unshare {
        profile
            .namespaces
            .unshare(list)
            .map_err(|message| ProfileError::Flag {
                flag: "--unshare",
                value: list.to_string(),
                message,
            })?;
    }
    apply_network(&mut profile.network, overrides)?;
    Ok(profile)
}

/// `--network MODE` and `--allow-host HOST[:PORT]` (which implies `proxy` unless `--network`
/// says otherwise).
fn apply_network(n: &mut network::Network, o: &Overrides) -> Result<(), ProfileError> {
    for host in &o.allow_hosts {
        crate::net::Policy::parse(std::slice::from_ref(host)).map_err(|e| ProfileError::Flag {
            flag: "--allow-host",
            value: host.clone(),
            message: e.to_string(),
        })?;
        n.allow.push(host.clone());
    }
    if !o.allow_hosts.is_empty() {
        n.mode = network::Mode::Proxy;
    }
    if let Some(v) = &o.network {
        n.mode = network::Mode::parse(v).ok_or_else(|| ProfileError::Flag {
            flag: "--network",
            value: v.clone(),
            message: network::MODE_HELP.into(),
        })?;
        if n.mode != network::Mode::Proxy && !o.allow_hosts.is_empty() {
            return Err(ProfileError::Flag {
                flag: "--allow-host",
                value: o.allow_hosts.join(","),
                message: format!(
                    "hosts are allowed through the proxy only, and --network {v} has none; drop --network {v} or use --network proxy"
                ),
            });
        }
    }
    Ok(())
}

pub fn builtin_names() -> String {
    BUILTINS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn apply_overrides(limits: &mut Limits, o: &Overrides) -> Result<(), ProfileError> {
    let flag = |flag: &'static str, value: &str, message: String| ProfileError::Flag {
        flag,
        value: value.to_string(),
        message,
    };
    if let Some(v) = &o.memory {
        let size = parse_size(v)
            .and_then(check_memory)
            .map_err(|m| flag("--memory", v, m))?;
        limits.memory = Some(size);
    }
    if let Some(v) = &o.cpu {
        let cpu = v
            .trim()
            .parse::<f64>()
            .map_err(|_| {
                format!("expected a number of CPUs such as 0.5 or 2 ({CPU_MIN} to {CPU_MAX})")
            })
            .and_then(check_cpu)
            .map_err(|m| flag("--cpu", v, m))?;
        limits.cpu = Some(cpu);
    }
    if let Some(v) = &o.pids {
        let pids = v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("expected a whole number of tasks from 1 to {PIDS_MAX}"))
            .and_then(check_pids)
            .map_err(|m| flag("--pids", v, m))?;
        limits.pids = Some(pids);
    }
    if let Some(v) = &o.timeout {
        let t = parse_duration(v)
            .and_then(check_timeout)
            .map_err(|m| flag("--timeout", v, m))?;
        limits.timeout = Some(t);
    }
    Ok(())
}

fn check_memory(s: Size) -> Result<Size, String> {
    match s {
        Size::Bytes(b) if b < MEMORY_MIN => Err(format!(
            "{b} bytes is below the 1 MiB minimum that any program needs; write the unit, e.g. \"{b}MiB\""
        )),
        s => Ok(s),
    }
}

fn check_cpu(c: f64) -> Result<f64, String> {
    if c.is_finite() && (CPU_MIN..=CPU_MAX).contains(&c) {
        Ok(c)
    } else {
        Err(format!(
            "{c} is out of range: CPUs go from {CPU_MIN} to {CPU_MAX}"
        ))
    }
}

fn check_pids(p: u64) -> Result<u64, String> {
    if (1..=PIDS_MAX).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "{p} is out of range: tasks go from 1 to {PIDS_MAX}"
        ))
    }
}

fn check_timeout(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("a timeout must be longer than zero; leave it out for no timeout".into())
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests;
