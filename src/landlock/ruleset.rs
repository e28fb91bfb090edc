//! The ruleset itself, built with the landlock crate: the paths opened, the access rights handled
//! (each with its compatibility level), the rules added. The crate drops what the kernel's ABI
//! lacks; nothing here restricts synwire-run: the descriptor goes to the child.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, ABI,
};

use super::status::{Requested, NEWEST};
use super::LandlockError;
use crate::profile::privilege::{Enforce, Filesystem};
use crate::sys;

/// One path rule, its path opened before the ruleset exists.
#[derive(Debug)]
pub(super) struct PathRule {
    pub key: &'static str,
    pub path: PathBuf,
    pub fd: OwnedFd,
    pub access: BitFlags<AccessFs>,
}

/// Opens every path of `fs` with the rights it is given there: `read` reads and executes,
/// `write` has every right. A file gets only the rights that apply to files. `notify_socket` is
/// the agent's NOTIFY_SOCKET, which it may connect to (`resolve_unix`) wherever it is: systemd's
/// readiness notification must reach the service manager.
pub(super) fn path_rules(
    fs: &Filesystem,
    notify_socket: Option<&Path>,
) -> Result<Vec<PathRule>, LandlockError> {
    let mut rules = Vec::new();
    for (key, paths, rights) in [
        ("read", &fs.read, AccessFs::from_read(NEWEST)),
        ("write", &fs.write, AccessFs::from_all(NEWEST)),
    ] {
        for p in paths {
            let path = absolute(p);
            let (fd, is_dir) = open_path(&path).map_err(|source| LandlockError::Path {
                key,
                path: path.clone(),
                source,
            })?;
            let access = if is_dir {
                rights
            } else {
                rights & AccessFs::from_file(NEWEST)
            };
            rules.push(PathRule {
                key,
                path,
                fd,
                access,
            });
        }
    }
    if let Some(path) = notify_socket.filter(|p| p.is_absolute()) {
        match open_path(path) {
            Ok((fd, _)) => rules.push(PathRule {
                key: "NOTIFY_SOCKET",
                path: path.to_path_buf(),
                fd,
                access: AccessFs::ResolveUnix.into(),
            }),
            Err(e) => tracing::debug!(
                "NOTIFY_SOCKET {}: {e}; no Landlock rule for it",
                path.display()
            ),
        }
    }
    Ok(rules)
}

/// Creates the ruleset for `req` and adds `paths` and the TCP ports of `fs`. `required`: the
/// ABI-1 filesystem rights and the requested TCP rights must be restricted (a hard requirement
/// for the crate); everything newer is best effort. Returns the ruleset's descriptor.
pub(super) fn create(
    fs: &Filesystem,
    req: &Requested,
    paths: Vec<PathRule>,
) -> Result<Option<OwnedFd>, LandlockError> {
    let level = match fs.enforce {
        Enforce::Required => CompatLevel::HardRequirement,
        Enforce::BestEffort => CompatLevel::BestEffort,
    };
    let create = |ruleset: Ruleset| -> Result<RulesetCreated, landlock::RulesetError> {
        let mut ruleset = ruleset
            .set_compatibility(level)
            .handle_access(AccessFs::from_all(ABI::V1))?
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(req.fs)?;
        if !req.net.is_empty() {
            ruleset = ruleset
                .set_compatibility(level)
                .handle_access(req.net)?
                .set_compatibility(CompatLevel::BestEffort);
        }
        if !req.scope.is_empty() {
            ruleset = ruleset.scope(req.scope)?;
        }
        // Rules are best effort: the crate leaves out the rights this kernel lacks.
        Ok(ruleset.create()?.set_compatibility(CompatLevel::BestEffort))
    };
    let mut ruleset = create(Ruleset::default()).map_err(LandlockError::Create)?;
    for rule in paths {
        ruleset = ruleset
            .add_rule(PathBeneath::new(rule.fd, rule.access))
            .map_err(|source| LandlockError::Rule {
                key: rule.key,
                path: rule.path,
                source,
            })?;
    }
    for (key, ports, right) in [
        ("bind_tcp", &fs.bind_tcp, AccessNet::BindTcp),
        ("connect_tcp", &fs.connect_tcp, AccessNet::ConnectTcp),
    ] {
        for &port in ports.iter().flatten() {
            ruleset = ruleset
                .add_rule(NetPort::new(port, right))
                .map_err(|source| LandlockError::Port { key, port, source })?;
        }
    }
    // None only if the crate found no Landlock after all, where the probe before said there was.
    Ok(ruleset.into())
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

/// The path opened with O_PATH, and whether it is a directory.
fn open_path(path: &Path) -> io::Result<(OwnedFd, bool)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fd = sys::open_path(&c)?;
    let mode = rustix::fs::fstat(&fd)?.st_mode;
    let is_dir = rustix::fs::FileType::from_raw_mode(mode) == rustix::fs::FileType::Directory;
    Ok((fd, is_dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::privilege::Scope;

    fn fs(read: &[&str], write: &[&str]) -> Filesystem {
        Filesystem {
            enforce: Enforce::BestEffort,
            read: read.iter().map(|s| s.to_string()).collect(),
            write: write.iter().map(|s| s.to_string()).collect(),
            bind_tcp: None,
            connect_tcp: None,
            scope: Scope::default(),
            view: Default::default(),
            hide: Vec::new(),
        }
    }

    #[test]
    fn read_trees_get_read_and_execute_write_trees_every_right_and_files_only_file_rights() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let (d, f) = (dir.path().to_str().unwrap(), file.to_str().unwrap());
        let rules = path_rules(&fs(&[d, f], &[d, f]), None).unwrap();
        let got: Vec<_> = rules.iter().map(|r| (r.key, r.access)).collect();
        let file_rights = AccessFs::from_file(NEWEST);
        assert_eq!(
            got,
            [
                ("read", AccessFs::from_read(NEWEST)),
                ("read", AccessFs::from_read(NEWEST) & file_rights),
                ("write", AccessFs::from_all(NEWEST)),
                ("write", file_rights),
            ]
        );
        // Devices are files: `write = ["/dev/null"]` lets the agent use ioctl on it.
        assert!(file_rights.contains(AccessFs::IoctlDev));
        assert!(!AccessFs::from_read(NEWEST).contains(AccessFs::IoctlDev));
    }

    #[test]
    fn a_missing_path_names_its_key_and_path() {
        let e = path_rules(&fs(&[], &["/no/such/dir-xyz"]), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("write") && msg.contains("/no/such/dir-xyz"),
            "{msg}"
        );
    }

    #[test]
    fn the_notify_socket_may_be_connected_to_and_nothing_else_there() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("notify");
        let _bound = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        let rules = path_rules(&fs(&[], &[]), Some(&sock)).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].key, "NOTIFY_SOCKET");
        assert_eq!(rules[0].access, AccessFs::ResolveUnix);
        // An abstract socket (`@name`) or a missing one gets no rule.
        let none = dir.path().join("gone");
        assert!(path_rules(&fs(&[], &[]), Some(&none)).unwrap().is_empty());
        assert!(path_rules(&fs(&[], &[]), Some(Path::new("@notify")))
            .unwrap()
            .is_empty());
    }
}
