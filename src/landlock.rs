//! Landlock (Linux 5.13+): the `[filesystem]` section. The ruleset is built before fork (paths
//! opened, rules added: none of that restricts synwire-run itself); the child then sets
//! no_new_privs and calls landlock_restrict_self on the prepared descriptor, two raw syscalls.
//! The policy is explicit: `required` fails with exit 125 where the kernel has no Landlock or a
//! rule cannot be added; `best_effort` applies what the kernel supports and warns. What was
//! enforced goes into the statistics.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::profile::privilege::{Enforce, Filesystem};
use crate::sys;

// landlock(7) filesystem access rights, by ABI version.
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const ABI1_ALL: u64 = (1 << 13) - 1; // EXECUTE .. MAKE_SYM
const REFER: u64 = 1 << 13; // ABI 2
const TRUNCATE: u64 = 1 << 14; // ABI 3
/// Rights that apply to a regular file (the rest only to directories).
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE;

fn handled(abi: u32) -> u64 {
    let mut h = ABI1_ALL;
    if abi >= 2 {
        h |= REFER;
    }
    if abi >= 3 {
        h |= TRUNCATE;
    }
    h
}

/// What was enforced, for the statistics (JSON key `landlock`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// "enforced", "partial" (the kernel's ABI lacks rights listed in `unhandled`),
    /// "unsupported" (no Landlock here; best_effort ran without it) or "off" (no [filesystem]).
    pub status: &'static str,
    pub abi: Option<u32>,
    pub unhandled: Vec<&'static str>,
}

impl Status {
    pub fn off() -> Status {
        Status {
            status: "off",
            abi: None,
            unhandled: Vec::new(),
        }
    }

    /// No Landlock in this kernel; `best_effort` runs without it.
    pub fn unsupported() -> Status {
        Status {
            status: "unsupported",
            abi: None,
            unhandled: Vec::new(),
        }
    }
}

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
    #[error("invalid [filesystem] {key} path {}: {source}; create it or remove it from the list", path.display())]
    Path {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot add the Landlock rule for {}: {source}", path.display())]
    Rule { path: PathBuf, source: io::Error },
    #[error("cannot create the Landlock ruleset: {0}")]
    Create(io::Error),
}

/// The kernel's Landlock ABI version.
pub fn abi_version() -> io::Result<u32> {
    sys::landlock_abi()
}

/// Builds the ruleset for `fs`. Ok(None): best effort on a kernel without Landlock.
pub fn prepare(fs: &Filesystem) -> Result<Option<Prepared>, LandlockError> {
    let abi = match abi_version() {
        Ok(v) => v,
        Err(e) if fs.enforce == Enforce::Required => return Err(LandlockError::Unsupported(e)),
        Err(e) => {
            tracing::warn!("[filesystem] not enforced: this kernel has no Landlock ({e}); it needs Linux 5.13+");
            return Ok(None);
        }
    };
    let handled = handled(abi);
    let mut unhandled = Vec::new();
    if abi < 2 {
        unhandled.push("refer");
    }
    if abi < 3 {
        unhandled.push("truncate");
    }
    // Open every path first: a missing one is a configuration error either way.
    let rules = open_rules(fs, handled)?;
    let ruleset = sys::landlock_create_ruleset(handled).map_err(LandlockError::Create)?;
    for (path, fd, allowed) in rules {
        sys::landlock_add_path_rule(&ruleset, &fd, allowed)
            .map_err(|source| LandlockError::Rule { path, source })?;
    }
    let status = if unhandled.is_empty() {
        "enforced"
    } else {
        "partial"
    };
    if !unhandled.is_empty() {
        tracing::debug!(
            "Landlock ABI {abi}: not restricted: {}",
            unhandled.join(", ")
        );
    }
    Ok(Some(Prepared {
        ruleset,
        status: Status {
            status,
            abi: Some(abi),
            unhandled,
        },
    }))
}

/// Opens every path of `fs` with the rights it is given there, of those the kernel `handled`.
fn open_rules(
    fs: &Filesystem,
    handled: u64,
) -> Result<Vec<(PathBuf, OwnedFd, u64)>, LandlockError> {
    let mut rules = Vec::new();
    for (key, paths, rights) in [
        ("read", &fs.read, EXECUTE | READ_FILE | READ_DIR),
        ("write", &fs.write, handled),
    ] {
        for p in paths {
            let path = absolute(p);
            let fd = open_path(&path).map_err(|source| LandlockError::Path {
                key,
                path: path.clone(),
                source,
            })?;
            let is_dir = std::fs::metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            let allowed = if is_dir { rights } else { rights & FILE_RIGHTS } & handled;
            rules.push((path, fd, allowed));
        }
    }
    Ok(rules)
}

fn absolute(p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

fn open_path(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    sys::open_path(&c)
}
