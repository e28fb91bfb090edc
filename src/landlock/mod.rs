//! Landlock (Linux 5.13+): the `[filesystem]` section. The ruleset is built before fork with the
//! landlock crate ([`ruleset`]: paths opened, rights handled, rules added; none of that restricts
//! synwire-run itself); the child then sets no_new_privs and calls landlock_restrict_self on the
//! prepared descriptor, two raw syscalls (postfork/security.rs).
//!
//! It asks for every right of the newest ABI the crate knows: the filesystem always, TCP bind and
//! connect when the profile lists ports, and the scopes it keeps (abstract UNIX sockets, signals).
//! The policy is explicit: `required` fails with exit 125 where the kernel has no Landlock,
//! cannot restrict the TCP ports the profile lists, or a rule cannot be added; `best_effort`
//! applies what the kernel supports and warns. What the kernel's ABI restricts of the request
//! ([`Status::of`]) goes into the statistics.

mod ruleset;
mod status;
#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub use status::{Requested, Status, NEWEST};

use crate::profile::privilege::{Enforce, Filesystem};
use crate::sys;

/// A ruleset ready for the child.
#[derive(Debug)]
pub struct Prepared {
    pub ruleset: OwnedFd,
    pub status: Status,
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("[filesystem] enforce = \"required\", but this kernel has no Landlock ({0}); it needs Linux 5.13+ with landlock in the LSM list (CONFIG_LSM or lsm=), or set enforce = \"best_effort\"")]
    Unsupported(io::Error),
    #[error("[filesystem] enforce = \"required\" with {keys}, but this kernel's Landlock (ABI {abi}) cannot restrict TCP ports; that needs ABI 4 (Linux 6.7+): remove {keys}, or set enforce = \"best_effort\"")]
    NoTcp { abi: u32, keys: &'static str },
    #[error("invalid [filesystem] {key} path {}: {source}; create it or remove it from the list", path.display())]
    Path {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot add the Landlock rule for [filesystem] {key} path {}: {source}", path.display())]
    Rule {
        key: &'static str,
        path: PathBuf,
        source: landlock::RulesetError,
    },
    #[error("cannot add the Landlock rule for [filesystem] {key} port {port}: {source}")]
    Port {
        key: &'static str,
        port: u16,
        source: landlock::RulesetError,
    },
    #[error("cannot create the Landlock ruleset: {0}")]
    Create(landlock::RulesetError),
}

/// The kernel's Landlock ABI version.
pub fn abi_version() -> io::Result<u32> {
    sys::landlock_abi()
}

/// The rights a `write` directory gets in a ruleset on a kernel of Landlock ABI `abi`, as the
/// kernel's bit mask (those the ruleset handles there).
pub fn write_dir_access(abi: u32) -> u64 {
    use landlock::{Access, AccessFs, ABI};
    AccessFs::from_all(ABI::from(i32::try_from(abi).unwrap_or(i32::MAX)).min(NEWEST)).bits()
}

/// For `check`: the ABI, and what of everything a `[filesystem]` may ask for it cannot restrict.
pub fn abi_detail(abi: u32) -> String {
    let all = Requested::of(&Filesystem {
        enforce: Enforce::BestEffort,
        read: Vec::new(),
        write: Vec::new(),
        bind_tcp: Some(Vec::new()),
        connect_tcp: Some(Vec::new()),
        scope: Default::default(),
        view: Default::default(),
        hide: Vec::new(),
    });
    let status = Status::of(Some(abi), &all);
    if status.unhandled.is_empty() {
        format!("ABI {abi}")
    } else {
        format!(
            "ABI {abi}; not restricted by this kernel: {}",
            status.unhandled.join(", ")
        )
    }
}

/// Builds the ruleset for `fs`. `notify_socket`: the agent's NOTIFY_SOCKET, which it may connect
/// to. Ok(None): best effort on a kernel without Landlock.
pub fn prepare(
    fs: &Filesystem,
    notify_socket: Option<&Path>,
) -> Result<Option<Prepared>, LandlockError> {
    let abi = match abi_version() {
        Ok(v) => v,
        Err(e) => return without_landlock(fs, e),
    };
    let req = Requested::of(fs);
    let status = Status::of(Some(abi), &req);
    if ["bind_tcp", "connect_tcp"]
        .iter()
        .any(|r| status.unhandled.contains(r))
    {
        let keys = match (&fs.bind_tcp, &fs.connect_tcp) {
            (Some(_), Some(_)) => "bind_tcp and connect_tcp",
            (Some(_), None) => "bind_tcp",
            _ => "connect_tcp",
        };
        if fs.enforce == Enforce::Required {
            return Err(LandlockError::NoTcp { abi, keys });
        }
        // What the profile names outright and the kernel ignores whole: say it, not only in
        // the statistics.
        tracing::warn!("[filesystem] {keys} not enforced: this kernel's Landlock (ABI {abi}) cannot restrict TCP ports; that needs Linux 6.7+");
    }
    // Open every path first: a missing one is a configuration error either way.
    let paths = ruleset::path_rules(fs, notify_socket)?;
    let Some(ruleset) = ruleset::create(fs, &req, paths)? else {
        return without_landlock(fs, io::Error::from_raw_os_error(libc::ENOSYS));
    };
    if !status.unhandled.is_empty() {
        tracing::debug!(
            "Landlock ABI {abi}: not restricted: {}",
            status.unhandled.join(", ")
        );
    }
    Ok(Some(Prepared { ruleset, status }))
}

/// A ruleset that handles TCP bind and connect and allows neither, and nothing else: the network
/// cut of `[network] mode = "none"` where the agent gets no network namespace. None where the
/// kernel's Landlock cannot restrict TCP (ABI 4, Linux 6.7+) or there is no Landlock.
pub fn network_cut() -> Option<OwnedFd> {
    use landlock::{Access, AccessNet, Ruleset, RulesetAttr, ABI};
    if abi_version().ok()? < 4 {
        return None;
    }
    let created = Ruleset::default()
        .handle_access(AccessNet::from_all(ABI::V4))
        .and_then(|r| r.create())
        .map_err(|e| tracing::debug!("the Landlock network cut failed: {e}"))
        .ok()?;
    created.into()
}

/// The kernel has no Landlock (`e` says why): an error under `required`, a warning otherwise.
fn without_landlock(fs: &Filesystem, e: io::Error) -> Result<Option<Prepared>, LandlockError> {
    if fs.enforce == Enforce::Required {
        return Err(LandlockError::Unsupported(e));
    }
    tracing::warn!(
        "[filesystem] not enforced: this kernel has no Landlock ({e}); it needs Linux 5.13+"
    );
    Ok(None)
}
