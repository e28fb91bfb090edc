//! The profile's file format: the TOML as serde reads it (unknown keys refused), and [`parse`],
//! which checks every key with an error that names the file, the line, the column and the key.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::env;
use super::network;
use super::seccomp;
use super::source::Source;
use super::{
    check_cpu, check_memory, check_pids, check_timeout, privilege, signal_number, Limits,
    ManagerMode, Namespaces, OomPolicy, Profile, ProfileError, Size, Stop,
};

pub(super) type Val = Option<Spanned<toml::Value>>;

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
    env: env::RawEnv,
    #[serde(default)]
    rlimits: privilege::RawRlimits,
    filesystem: Option<privilege::RawFilesystem>,
    #[serde(default)]
    seccomp: seccomp::RawSeccomp,
    #[serde(default)]
    network: network::RawNetwork,
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
    let src = &Source { origin, text };
    let raw: RawProfile = toml::from_str(text).map_err(|e| src.de_error(e))?;
    let limits = limits(src, &raw.limits)?;
    let stop = stop(src, &raw.stop)?;
    let (cgroup_required, cgroup_manager) = cgroup(src, &raw.cgroup)?;
    let namespaces = namespaces(src, &raw.namespaces)?;
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
        security: privilege::security(src, &raw.security)?,
        env: env::env(src, &raw.env)?,
        rlimits: privilege::rlimits(src, &raw.rlimits)?,
        filesystem: privilege::filesystem(src, &raw.filesystem)?,
        seccomp: seccomp::seccomp(src, &raw.seccomp)?,
        network: network::network(src, &raw.network)?,
    })
}

/// `[limits]`.
fn limits(src: &Source, l: &RawLimits) -> Result<Limits, ProfileError> {
    let mut limits = Limits::default();
    memory(src, l, &mut limits)?;
    if let Some((v, k)) = one_of(src, (&l.cpu, "cpu"), (&l.cpu_quota, "cpu_quota"))? {
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
    if let Some((v, k)) = one_of(src, (&l.pids, "pids"), (&l.max_pids, "max_pids"))? {
        let key = format!("limits.{k}");
        let p = src.uint(v, &key)?;
        limits.pids = Some(src.check(v, &key, check_pids(p))?);
    }
    if let Some((v, k)) = one_of(
        src,
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
    Ok(limits)
}

/// `[limits]` memory, memory_high (below memory) and swap.
fn memory(src: &Source, l: &RawLimits, limits: &mut Limits) -> Result<(), ProfileError> {
    if let Some((v, k)) = one_of(
        src,
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
    Ok(())
}

/// `[stop]`.
fn stop(src: &Source, raw: &RawStop) -> Result<Stop, ProfileError> {
    let mut stop = Stop::default();
    if let Some(v) = &raw.signal {
        let s = src.string(v, "stop.signal")?;
        stop.signal = signal_number(s).ok_or_else(|| {
            src.bad(
                v,
                "stop.signal",
                "not a signal name; use e.g. \"SIGTERM\", \"SIGINT\" or \"SIGUSR1\"".into(),
            )
        })?;
    }
    if let Some(v) = &raw.grace {
        stop.grace = src.duration(v, "stop.grace")?;
    }
    Ok(stop)
}

/// `[cgroup]`: required, manager.
fn cgroup(src: &Source, raw: &RawCgroup) -> Result<(bool, ManagerMode), ProfileError> {
    let cgroup_required = match &raw.required {
        Some(v) => src.boolean(v, "cgroup.required")?,
        None => true,
    };
    let cgroup_manager = match &raw.manager {
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
    Ok((cgroup_required, cgroup_manager))
}

/// `[namespaces]`.
fn namespaces(src: &Source, n: &RawNamespaces) -> Result<Namespaces, ProfileError> {
    let mut namespaces = Namespaces::default();
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
    Ok(namespaces)
}

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
