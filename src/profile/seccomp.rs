//! `[seccomp]`: whether the agent runs under a system-call filter, what a denied call does, and
//! which calls the filter denies beyond or short of the built-in list. Every name is checked
//! against the system call tables here, so a misspelt one stops synwire-run before anything is
//! created; the filter itself is built by [`crate::seccomp`].

use serde::Deserialize;

use super::privilege::strings;
use super::{ProfileError, Source, Val};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeccomp {
    default: Val,
    action: Val,
    deny: Val,
    allow: Val,
}

/// `[seccomp]`, validated: names are system calls of x86-64 or aarch64.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seccomp {
    /// The built-in deny list ([`crate::seccomp::DEFAULT`]).
    pub default: bool,
    pub action: Action,
    /// More calls denied, whatever their arguments.
    pub deny: Vec<String>,
    /// Calls taken out of the built-in list.
    pub allow: Vec<String>,
}

impl Seccomp {
    /// True when the agent gets a filter: the built-in list, or calls of its own.
    pub fn enabled(&self) -> bool {
        self.default || !self.deny.is_empty()
    }
}

/// What a denied call does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Action {
    /// It fails with EPERM.
    #[default]
    Errno,
    /// The agent dies of SIGSYS (exit 159).
    Kill,
    /// It runs, and the kernel logs it (audit type 1326): to find what an agent would need.
    Log,
}

impl Action {
    pub const NAMES: &'static [&'static str] = &["errno", "kill", "log"];

    pub fn name(self) -> &'static str {
        match self {
            Action::Errno => "errno",
            Action::Kill => "kill",
            Action::Log => "log",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "errno" => Some(Action::Errno),
            "kill" => Some(Action::Kill),
            "log" => Some(Action::Log),
            _ => None,
        }
    }
}

pub(super) fn seccomp(src: &Source, raw: &RawSeccomp) -> Result<Seccomp, ProfileError> {
    let mut s = Seccomp::default();
    if let Some(v) = &raw.default {
        s.default = src.boolean(v, "seccomp.default")?;
    }
    if let Some(v) = &raw.action {
        let a = src.string(v, "seccomp.action")?;
        s.action = Action::parse(a).ok_or_else(|| {
            src.bad(
                v,
                "seccomp.action",
                "expected \"errno\" (a denied call fails with EPERM), \"kill\" (the agent dies of SIGSYS) or \"log\" (it runs, and the kernel logs it)".into(),
            )
        })?;
    }
    if let Some(v) = &raw.deny {
        s.deny = names(src, v, "seccomp.deny")?;
    }
    if let Some(v) = &raw.allow {
        let key = "seccomp.allow";
        s.allow = names(src, v, key)?;
        if let Some(name) = s.allow.iter().find(|n| !crate::seccomp::in_default(n)) {
            return Err(src.bad(
                v,
                key,
                format!("`{name}` is not in the built-in list, so there is nothing to take out of it; `allow` only removes calls from that list (docs/security.md names them)"),
            ));
        }
        if let Some(name) = s.allow.iter().find(|n| s.deny.contains(n)) {
            return Err(src.bad(
                v,
                key,
                format!("`{name}` is in seccomp.deny too; keep it in one of the two lists"),
            ));
        }
    }
    Ok(s)
}

/// A list of system call names, each known on x86-64 or aarch64.
fn names(
    src: &Source,
    v: &toml::Spanned<toml::Value>,
    key: &str,
) -> Result<Vec<String>, ProfileError> {
    if v.get_ref().is_str() {
        return Err(src.bad(
            v,
            key,
            "expected a list of system call names, such as [\"ptrace\"]".into(),
        ));
    }
    let names = strings(src, v, key)?;
    if let Some(name) = names.iter().find(|n| !crate::seccomp::known(n)) {
        return Err(src.bad(
            v,
            key,
            format!("`{name}` is not a system call of x86-64 or aarch64; check its spelling (the names of syscalls(2), such as \"ptrace\" or \"io_uring_setup\")"),
        ));
    }
    Ok(names)
}
