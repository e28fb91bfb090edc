//! The least-privilege sections of a profile: `[security]`, `[rlimits]` and `[filesystem]`, checked
//! with errors that name the key, the value and its position. Users and groups are resolved by
//! [`super::users`], so that an unknown one stops synwire-run before anything is created.

use serde::Deserialize;
use toml::Spanned;

use super::users::id_or_name;
use super::{parse_duration, ProfileError, Size, Source, Val};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurity {
    no_new_privileges: Val,
    capabilities: Val,
    user: Val,
    group: Val,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRlimits {
    nofile: Val,
    core: Val,
    cpu: Val,
    fsize: Val,
    nproc: Val,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilesystem {
    enforce: Val,
    read: Val,
    write: Val,
    bind_tcp: Val,
    connect_tcp: Val,
    scope: Val,
    view: Val,
    hide: Val,
}

/// `[filesystem]` (Landlock, and the read-only view), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub enforce: Enforce,
    /// Readable (and executable) trees.
    pub read: Vec<String>,
    /// Writable trees; everything else is denied.
    pub write: Vec<String>,
    /// TCP ports the agent may bind; None: binding is not restricted.
    pub bind_tcp: Option<Vec<u16>>,
    /// TCP ports the agent may connect to; None: connecting is not restricted.
    pub connect_tcp: Option<Vec<u16>>,
    /// What the agent may not reach outside its Landlock domain.
    pub scope: Scope,
    /// How the agent sees the file system: the host's as it is, or read-only but for `write`.
    pub view: View,
    /// Paths covered by an empty directory or file, as written ("~" is the caller's home).
    pub hide: Vec<String>,
}

/// `filesystem.view`: the agent's mount tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum View {
    /// The host's mounts as they are.
    #[default]
    Host,
    /// A mount namespace where every mount is read-only but the `write` paths, with a private
    /// /tmp ([`crate::view`]).
    ReadOnly,
}

impl View {
    /// Its name in the profile and the statistics.
    pub fn name(self) -> &'static str {
        match self {
            View::Host => "host",
            View::ReadOnly => "read-only",
        }
    }
}

/// `filesystem.scope`: Landlock's scoping (ABI 6). Both by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// No connecting to abstract UNIX sockets created outside the agent's domain.
    pub abstract_unix_socket: bool,
    /// No signals to processes outside the agent's domain.
    pub signal: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            abstract_unix_socket: true,
            signal: true,
        }
    }
}

impl Scope {
    /// The names `filesystem.scope` takes, in the order it is printed.
    pub const NAMES: [&'static str; 2] = ["abstract_unix_socket", "signal"];

    /// The names of the scopes set.
    pub fn names(self) -> Vec<&'static str> {
        let [a, s] = Self::NAMES;
        [(self.abstract_unix_socket, a), (self.signal, s)]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforce {
    BestEffort,
    Required,
}

/// `[security]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub no_new_privileges: bool,
    /// Capabilities the agent keeps, as a bit mask; None: left as inherited (also "all").
    pub capabilities: Option<u64>,
    /// uid and gid to switch to (supplementary groups cleared).
    pub user: Option<u32>,
    pub group: Option<u32>,
    /// The names as written, for messages.
    pub user_name: Option<String>,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            no_new_privileges: true,
            capabilities: None,
            user: None,
            group: None,
            user_name: None,
        }
    }
}

/// `[rlimits]`, validated: (resource, value) pairs, soft = hard = value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rlimits {
    pub limits: Vec<(Rlimit, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rlimit {
    Nofile,
    Core,
    Cpu,
    Fsize,
    Nproc,
}

impl Rlimit {
    pub fn resource(self) -> rustix::process::Resource {
        use rustix::process::Resource;
        match self {
            Rlimit::Nofile => Resource::Nofile,
            Rlimit::Core => Resource::Core,
            Rlimit::Cpu => Resource::Cpu,
            Rlimit::Fsize => Resource::Fsize,
            Rlimit::Nproc => Resource::Nproc,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Rlimit::Nofile => "rlimits.nofile",
            Rlimit::Core => "rlimits.core",
            Rlimit::Cpu => "rlimits.cpu",
            Rlimit::Fsize => "rlimits.fsize",
            Rlimit::Nproc => "rlimits.nproc",
        }
    }
}

/// capability(7) names by number (CAP_CHOWN is 0).
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// "NET_BIND_SERVICE", "cap_net_bind_service" -> 10.
pub fn capability_number(name: &str) -> Option<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .map(|i| i as u32)
}

pub(super) fn strings(
    src: &Source,
    v: &Spanned<toml::Value>,
    key: &str,
) -> Result<Vec<String>, ProfileError> {
    let bad = || src.bad(v, key, "expected a list of strings".into());
    v.get_ref()
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
        .collect()
}

pub(super) fn security(src: &Source, raw: &RawSecurity) -> Result<Security, ProfileError> {
    let mut s = Security::default();
    if let Some(v) = &raw.no_new_privileges {
        s.no_new_privileges = src.boolean(v, "security.no_new_privileges")?;
    }
    if let Some(v) = &raw.capabilities {
        let key = "security.capabilities";
        s.capabilities = match v.get_ref() {
            toml::Value::String(a) if a.eq_ignore_ascii_case("all") => None,
            toml::Value::Array(_) => {
                let mut mask = 0u64;
                for name in strings(src, v, key)? {
                    let n = capability_number(&name).ok_or_else(|| {
                        src.bad(v, key, format!("`{name}` is not a capability; use names from capabilities(7) such as \"NET_BIND_SERVICE\", or \"all\""))
                    })?;
                    mask |= 1 << n;
                }
                Some(mask)
            }
            _ => {
                return Err(src.bad(
                    v,
                    key,
                    "expected a list of capability names, or \"all\"".into(),
                ))
            }
        };
    }
    let mut primary = None;
    if let Some(v) = &raw.user {
        let (uid, gid) = id_or_name(src, v, "security.user", "/etc/passwd")?;
        s.user = Some(uid);
        s.user_name = Some(v.get_ref().to_string().trim_matches('"').to_string());
        primary = gid;
    }
    if let Some(v) = &raw.group {
        s.group = Some(id_or_name(src, v, "security.group", "/etc/group")?.0);
    } else if let Some(uid) = s.user {
        // The user's primary group, as login(1) would give; a bare uid without one gets gid = uid.
        s.group = Some(primary.unwrap_or(uid));
    }
    Ok(s)
}

pub(super) fn filesystem(
    src: &Source,
    raw: &Option<RawFilesystem>,
) -> Result<Option<Filesystem>, ProfileError> {
    let Some(raw) = raw else { return Ok(None) };
    let enforce = match &raw.enforce {
        None => Enforce::BestEffort,
        Some(v) => match v.get_ref().as_str() {
            Some("best_effort") => Enforce::BestEffort,
            Some("required") => Enforce::Required,
            _ => {
                return Err(src.bad(
                    v,
                    "filesystem.enforce",
                    "expected \"best_effort\" or \"required\"".into(),
                ))
            }
        },
    };
    let mut fs = Filesystem {
        enforce,
        read: Vec::new(),
        write: Vec::new(),
        bind_tcp: ports(src, &raw.bind_tcp, "filesystem.bind_tcp")?,
        connect_tcp: ports(src, &raw.connect_tcp, "filesystem.connect_tcp")?,
        scope: match &raw.scope {
            Some(v) => scope(src, v)?,
            None => Scope::default(),
        },
        view: match &raw.view {
            None => View::Host,
            Some(v) => match v.get_ref().as_str() {
                Some("host") => View::Host,
                Some("read-only") => View::ReadOnly,
                _ => {
                    return Err(src.bad(
                        v,
                        "filesystem.view",
                        "expected \"host\" or \"read-only\"".into(),
                    ))
                }
            },
        },
        hide: match &raw.hide {
            Some(v) => strings(src, v, "filesystem.hide")?,
            None => Vec::new(),
        },
    };
    for (key, v, out) in [
        ("filesystem.read", &raw.read, &mut fs.read),
        ("filesystem.write", &raw.write, &mut fs.write),
    ] {
        if let Some(v) = v {
            *out = strings(src, v, key)?;
            if let Some(missing) = out.iter().find(|p| std::fs::symlink_metadata(p).is_err()) {
                return Err(src.bad(
                    v,
                    key,
                    format!("`{missing}` does not exist; create it or remove it from the list"),
                ));
            }
        }
    }
    Ok(Some(fs))
}

/// A list of TCP ports (0 to 65535), or None without the key.
fn ports(src: &Source, v: &Val, key: &str) -> Result<Option<Vec<u16>>, ProfileError> {
    let Some(v) = v else { return Ok(None) };
    let bad = || {
        src.bad(
            v,
            key,
            "expected a list of TCP ports (0 to 65535), such as [443]; [] allows none".into(),
        )
    };
    v.get_ref()
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|p| {
            p.as_integer()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<u16>, _>>()
        .map(Some)
}

/// `filesystem.scope`: a list of [`Scope::NAMES`].
fn scope(src: &Source, v: &Spanned<toml::Value>) -> Result<Scope, ProfileError> {
    let key = "filesystem.scope";
    let mut s = Scope {
        abstract_unix_socket: false,
        signal: false,
    };
    for name in strings(src, v, key)? {
        match name.as_str() {
            "abstract_unix_socket" => s.abstract_unix_socket = true,
            "signal" => s.signal = true,
            _ => {
                return Err(src.bad(
                    v,
                    key,
                    format!("`{name}` is not a Landlock scope; use \"abstract_unix_socket\" and \"signal\", or [] for neither"),
                ))
            }
        }
    }
    Ok(s)
}

pub(super) fn rlimits(src: &Source, raw: &RawRlimits) -> Result<Rlimits, ProfileError> {
    let mut r = Rlimits::default();
    for (which, v) in [
        (Rlimit::Nofile, &raw.nofile),
        (Rlimit::Core, &raw.core),
        (Rlimit::Nproc, &raw.nproc),
        (Rlimit::Cpu, &raw.cpu),
        (Rlimit::Fsize, &raw.fsize),
    ] {
        let Some(v) = v else { continue };
        let key = which.key();
        let value = match which {
            // At least a second, however it is written (the duration form always rounded up to
            // 1 s), so both spellings, and the rendering, mean the same limit.
            Rlimit::Cpu => match v.get_ref() {
                toml::Value::String(s) => {
                    let d = parse_duration(s).map_err(|m| src.bad(v, key, m))?;
                    d.as_secs()
                }
                _ => src.uint(v, key)?,
            }
            .max(1),
            Rlimit::Fsize | Rlimit::Core => match src.size(v, key)? {
                Size::Bytes(b) => b,
                Size::Max => libc::RLIM_INFINITY,
            },
            _ => src.uint(v, key)?,
        };
        if which == Rlimit::Nofile && value < 3 {
            return Err(src.bad(
                v,
                key,
                "below 3 no program can hold stdin, stdout and stderr".into(),
            ));
        }
        r.limits.push((which, value));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names() {
        assert_eq!(capability_number("NET_BIND_SERVICE"), Some(10));
        assert_eq!(capability_number("cap_sys_admin"), Some(21));
        assert_eq!(capability_number("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("FLY"), None);
    }

    #[test]
    fn an_rlimit_cpu_of_zero_is_one_second_however_it_is_written() {
        // Found by fuzz/run: `cpu = 0` kept 0, rendered as "0s", which reads back as 1 s.
        for text in ["[rlimits]\ncpu = 0\n", "[rlimits]\ncpu = \"0s\"\n"] {
            let p = super::super::parse("t", "t.toml", text).unwrap();
            assert_eq!(p.rlimits.limits, [(Rlimit::Cpu, 1)], "{text}");
        }
    }
}
