//! Profiles: the declarative TOML that says what an agent may use. This module owns reading a
//! profile (a built-in or a file), checking every key with an error that names the file, the line,
//! the column and the key, and applying the command-line overrides. The result, [`Profile`], holds
//! only validated values.

pub mod privilege;
pub mod render;
pub mod search;
pub mod units;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use units::{parse_duration, parse_size, Size};

/// Built-in profiles, compiled in from profiles/*.toml.
pub const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.toml")),
    ("small", include_str!("../../profiles/small.toml")),
    ("medium", include_str!("../../profiles/medium.toml")),
    ("large", include_str!("../../profiles/large.toml")),
    ("isolated", include_str!("../../profiles/isolated.toml")),
    ("agent", include_str!("../../profiles/agent.toml")),
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
    pub env: privilege::EnvSpec,
    pub rlimits: privilege::Rlimits,
    /// `[filesystem]`: Landlock rules; None without the section.
    pub filesystem: Option<privilege::Filesystem>,
}

pub use crate::ns::{Namespaces, NAMES as NAMESPACE_NAMES};

/// A valid hostname: 1 to 64 letters, digits, `-` and `.`.
fn check_hostname(h: &str) -> Result<(), String> {
    if !h.is_empty()
        && h.len() <= 64
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        Ok(())
    } else {
        Err("a hostname is 1 to 64 letters, digits, `-` and `.`".into())
    }
}

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
    Ok(profile)
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

// ---- the file format -------------------------------------------------------------------------

type Val = Option<Spanned<toml::Value>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Val,
    extends: Val,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    stop: RawStop,
    #[serde(default)]
    cgroup: RawCgroup,
    #[serde(default)]
    namespaces: RawNamespaces,
    #[serde(default)]
    security: privilege::RawSecurity,
    #[serde(default)]
    env: privilege::RawEnv,
    #[serde(default)]
    rlimits: privilege::RawRlimits,
    filesystem: Option<privilege::RawFilesystem>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNamespaces {
    user: Val,
    pid: Val,
    net: Val,
    mount: Val,
    uts: Val,
    ipc: Val,
    cgroup: Val,
    hostname: Val,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Val,
    memory_high: Val,
    swap: Val,
    cpu: Val,
    cpu_weight: Val,
    pids: Val,
    timeout: Val,
    oom_policy: Val,
    // The synwire library's ResourceLimits names.
    memory_bytes: Val,
    cpu_quota: Val,
    max_pids: Val,
    exec_timeout_secs: Val,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStop {
    signal: Val,
    grace: Val,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCgroup {
    required: Val,
    manager: Val,
}

/// Turns spans into "line:column" errors for one source text.
struct Source<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, offset: usize, message: String) -> ProfileError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ProfileError::Invalid {
            origin: self.origin.to_string(),
            line,
            column,
            message,
        }
    }

    /// The dotted key at `offset`: the table header above it and the key on its line.
    fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let header_of = |l: &str| -> Option<String> {
            let l = l.trim();
            (l.starts_with('[') && !l.starts_with("[[")).then(|| {
                l.trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
        };
        if let Some(h) = header_of(line) {
            return h;
        }
        let key = line
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string();
        let table = self.text[..line_start].lines().rev().find_map(header_of);
        match table {
            Some(t) if !t.is_empty() => format!("{t}.{key}"),
            _ => key,
        }
    }

    fn de_error(&self, e: toml::de::Error) -> ProfileError {
        let offset = e.span().map_or(0, |s| s.start);
        let msg = e.message().trim().to_string();
        let message = if msg.starts_with("unknown field") {
            let expected = msg
                .split_once("expected ")
                .map(|(_, rest)| {
                    format!(
                        "; the keys allowed here are {}",
                        rest.trim_start_matches("one of ")
                    )
                })
                .unwrap_or_default();
            format!(
                "unknown key `{}`{expected}; fix its spelling or remove it",
                self.key_at(offset)
            )
        } else if e.span().is_some_and(|s| s.start != s.end) && !msg.contains("expected `") {
            format!("`{}`: {msg}", self.key_at(offset))
        } else {
            format!("{msg}; this is not valid TOML")
        };
        self.error(offset, message)
    }

    fn bad(&self, v: &Spanned<toml::Value>, key: &str, what: String) -> ProfileError {
        self.error(v.span().start, format!("`{key}` = {}: {what}", v.get_ref()))
    }

    fn string<'v>(&self, v: &'v Spanned<toml::Value>, key: &str) -> Result<&'v str, ProfileError> {
        v.get_ref()
            .as_str()
            .ok_or_else(|| self.bad(v, key, "expected a string".into()))
    }

    fn boolean(&self, v: &Spanned<toml::Value>, key: &str) -> Result<bool, ProfileError> {
        v.get_ref()
            .as_bool()
            .ok_or_else(|| self.bad(v, key, "expected true or false".into()))
    }

    fn size(&self, v: &Spanned<toml::Value>, key: &str) -> Result<Size, ProfileError> {
        match v.get_ref() {
            toml::Value::String(s) => parse_size(s).map_err(|m| self.bad(v, key, m)),
            toml::Value::Integer(i) if *i >= 0 => Ok(Size::Bytes(*i as u64)),
            _ => Err(self.bad(v, key, format!("expected {}", units::SIZE_HELP))),
        }
    }

    fn bytes(&self, v: &Spanned<toml::Value>, key: &str) -> Result<Size, ProfileError> {
        match v.get_ref() {
            toml::Value::Integer(i) if *i >= 0 => Ok(Size::Bytes(*i as u64)),
            _ => Err(self.bad(v, key, "expected a whole number of bytes".into())),
        }
    }

    fn float(&self, v: &Spanned<toml::Value>, key: &str) -> Result<f64, ProfileError> {
        match v.get_ref() {
            toml::Value::Float(f) => Ok(*f),
            toml::Value::Integer(i) => Ok(*i as f64),
            _ => Err(self.bad(v, key, "expected a number such as 0.5 or 2".into())),
        }
    }

    fn uint(&self, v: &Spanned<toml::Value>, key: &str) -> Result<u64, ProfileError> {
        match v.get_ref() {
            toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            _ => Err(self.bad(v, key, "expected a whole number".into())),
        }
    }

    fn duration(&self, v: &Spanned<toml::Value>, key: &str) -> Result<Duration, ProfileError> {
        match v.get_ref() {
            toml::Value::String(s) => parse_duration(s).map_err(|m| self.bad(v, key, m)),
            toml::Value::Integer(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
            _ => Err(self.bad(v, key, format!("expected {}", units::DURATION_HELP))),
        }
    }

    fn check<T>(
        &self,
        v: &Spanned<toml::Value>,
        key: &str,
        r: Result<T, String>,
    ) -> Result<T, ProfileError> {
        r.map_err(|m| self.bad(v, key, m))
    }
}

/// Picks a key or its synwire-library alias; both at once is an error.
fn one_of<'a>(
    src: &Source,
    a: (&'a Val, &'static str),
    b: (&'a Val, &'static str),
) -> Result<Option<(&'a Spanned<toml::Value>, &'static str)>, ProfileError> {
    match (a.0, b.0) {
        (Some(_), Some(vb)) => Err(src.bad(
            vb,
            &format!("limits.{}", b.1),
            format!(
                "`limits.{}` is already set and this is its alias; keep one of them",
                a.1
            ),
        )),
        (Some(va), None) => Ok(Some((va, a.1))),
        (None, Some(vb)) => Ok(Some((vb, b.1))),
        (None, None) => Ok(None),
    }
}

/// Parses and validates a profile's text. `origin` names it in errors.
pub fn parse(name: &str, origin: &str, text: &str) -> Result<Profile, ProfileError> {
    let src = Source { origin, text };
    let raw: RawProfile = toml::from_str(text).map_err(|e| src.de_error(e))?;
    let mut limits = Limits::default();
    let l = &raw.limits;

    if let Some((v, k)) = one_of(
        &src,
        (&l.memory, "memory"),
        (&l.memory_bytes, "memory_bytes"),
    )? {
        let key = format!("limits.{k}");
        let size = if k == "memory" {
            src.size(v, &key)?
        } else {
            src.bytes(v, &key)?
        };
        limits.memory = Some(src.check(v, &key, check_memory(size))?);
    }
    if let Some(v) = &l.memory_high {
        let size = src.size(v, "limits.memory_high")?;
        limits.memory_high = Some(src.check(v, "limits.memory_high", check_memory(size))?);
        if let (Some(Size::Bytes(high)), Some(Size::Bytes(max))) =
            (limits.memory_high, limits.memory)
        {
            if high > max {
                return Err(src.bad(
                    v,
                    "limits.memory_high",
                    format!(
                        "it exceeds limits.memory ({}), so it would never apply; lower it",
                        Size::Bytes(max)
                    ),
                ));
            }
        }
    }
    if let Some(v) = &l.swap {
        limits.swap = Some(src.size(v, "limits.swap")?);
    }
    if let Some((v, k)) = one_of(&src, (&l.cpu, "cpu"), (&l.cpu_quota, "cpu_quota"))? {
        let key = format!("limits.{k}");
        let c = src.float(v, &key)?;
        limits.cpu = Some(src.check(v, &key, check_cpu(c))?);
    }
    if let Some(v) = &l.cpu_weight {
        let w = src.uint(v, "limits.cpu_weight")?;
        if !(1..=10000).contains(&w) {
            return Err(src.bad(
                v,
                "limits.cpu_weight",
                "out of range: cpu.weight goes from 1 to 10000 (100 is the default share)".into(),
            ));
        }
        limits.cpu_weight = Some(w as u32);
    }
    if let Some((v, k)) = one_of(&src, (&l.pids, "pids"), (&l.max_pids, "max_pids"))? {
        let key = format!("limits.{k}");
        let p = src.uint(v, &key)?;
        limits.pids = Some(src.check(v, &key, check_pids(p))?);
    }
    if let Some((v, k)) = one_of(
        &src,
        (&l.timeout, "timeout"),
        (&l.exec_timeout_secs, "exec_timeout_secs"),
    )? {
        let key = format!("limits.{k}");
        let d = if k == "timeout" {
            src.duration(v, &key)?
        } else {
            Duration::from_secs(src.uint(v, &key)?)
        };
        limits.timeout = Some(src.check(v, &key, check_timeout(d))?);
    }
    if let Some(v) = &l.oom_policy {
        let s = src.string(v, "limits.oom_policy")?;
        limits.oom_policy = OomPolicy::parse(s).ok_or_else(|| {
            src.bad(
                v,
                "limits.oom_policy",
                "expected \"kill\" (the first OOM kill ends the whole agent) or \"continue\" (the agent runs on)".into(),
            )
        })?;
    }

    let mut stop = Stop::default();
    if let Some(v) = &raw.stop.signal {
        let s = src.string(v, "stop.signal")?;
        stop.signal = signal_number(s).ok_or_else(|| {
            src.bad(
                v,
                "stop.signal",
                "not a signal name; use e.g. \"SIGTERM\", \"SIGINT\" or \"SIGUSR1\"".into(),
            )
        })?;
    }
    if let Some(v) = &raw.stop.grace {
        stop.grace = src.duration(v, "stop.grace")?;
    }
    let cgroup_required = match &raw.cgroup.required {
        Some(v) => src.boolean(v, "cgroup.required")?,
        None => true,
    };
    let cgroup_manager = match &raw.cgroup.manager {
        Some(v) => {
            let m = src.string(v, "cgroup.manager")?;
            ManagerMode::parse(m).ok_or_else(|| {
                src.bad(
                    v,
                    "cgroup.manager",
                    format!("expected one of {}", ManagerMode::NAMES.join(", ")),
                )
            })?
        }
        None => Default::default(),
    };
    let mut namespaces = Namespaces::default();
    let n = &raw.namespaces;
    // The keys of `[namespaces]`, in the order of the table of kinds.
    let keys = [&n.user, &n.pid, &n.net, &n.mount, &n.uts, &n.ipc, &n.cgroup];
    for (kind, v) in crate::ns::KINDS.iter().zip(keys) {
        if let Some(v) = v {
            let on = src.boolean(v, &format!("namespaces.{}", kind.name))?;
            kind.set_in(&mut namespaces, on);
        }
    }
    if let Some(v) = &n.hostname {
        let h = src.string(v, "namespaces.hostname")?;
        src.check(v, "namespaces.hostname", check_hostname(h))?;
        namespaces.hostname = h.to_string();
    }
    if let Some(v) = &raw.extends {
        src.string(v, "extends")?;
    }
    let description = match &raw.description {
        Some(v) => Some(src.string(v, "description")?.to_string()),
        None => None,
    };
    Ok(Profile {
        name: name.to_string(),
        description,
        limits,
        stop,
        cgroup_required,
        cgroup_manager,
        namespaces,
        security: privilege::security(&src, &raw.security)?,
        env: privilege::env(&src, &raw.env)?,
        rlimits: privilege::rlimits(&src, &raw.rlimits)?,
        filesystem: privilege::filesystem(&src, &raw.filesystem)?,
    })
}

/// "SIGTERM", "TERM", "sigterm" or "15" -> 15.
pub fn signal_number(s: &str) -> Option<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

/// The name of signal `n` ("SIGTERM"), or its number.
pub fn signal_name(n: i32) -> String {
    SIGNALS
        .iter()
        .find(|(_, v)| *v == n)
        .map_or_else(|| format!("signal {n}"), |(name, _)| format!("SIG{name}"))
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

#[cfg(test)]
mod tests;
