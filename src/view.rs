//! `[filesystem] view = "read-only"`: the agent sees the host's tree with every mount read-only
//! but the `write` paths, and a private /tmp. It is built in a mount namespace of its own, so
//! nothing on the host changes and nothing is left to undo: the namespace dies with the agent.
//!
//! Before anything is created, [`resolve`] decides whether the view can be had (a mount
//! namespace needs CAP_SYS_ADMIN, or a user namespace for an unprivileged caller, which it adds)
//! and, where it cannot, fails under `enforce = "required"` or runs with Landlock alone and says
//! so. Just before fork [`ViewPlan::new`] lists what the child does, as C strings: the mount
//! points of /proc/self/mountinfo (the new namespace is a copy of ours, so it has the same), the
//! write paths, /tmp. The child's steps are in `postfork::view`: each mount point outside the
//! write paths is remounted `MS_BIND|MS_REMOUNT|MS_RDONLY` with the flags it had (nosuid, nodev,
//! noexec, atime: statvfs), which is what makes even root get EROFS and works on every kernel
//! (mount_setattr would need 5.12); each write path is bound onto itself, recursively, and that
//! bind remounted writable; a fresh tmpfs covers /tmp.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cgroup::Unenforced;
use crate::ns::{userns_obstacle, Namespaces, UsernsObstacle};
use crate::profile::privilege::{Enforce, Filesystem, View};

/// What the child does to build the view, prepared before fork.
#[derive(Debug)]
pub struct ViewPlan {
    /// Every mount point outside the write paths: remounted read-only.
    pub read_only: Vec<CString>,
    /// The write paths, canonical: bound onto themselves and remounted writable.
    pub write: Vec<CString>,
    /// `/tmp`, which gets a fresh tmpfs; None when a write path is inside /tmp (the host's /tmp
    /// stays, read-only but for those paths).
    pub tmp: Option<CString>,
    pub tmpfs: CString,
    /// The Landlock ruleset and the rights of a `write` directory in it: the private /tmp gets
    /// them (a rule on the host's /tmp does not reach a file system mounted over it).
    pub tmp_rule: Option<(std::os::fd::RawFd, u64)>,
    /// Hidden files: an empty read-only file is bound over each.
    pub hide_files: Vec<CString>,
    /// Hidden directories: an empty read-only tmpfs is mounted over each.
    pub hide_dirs: Vec<CString>,
    /// The tmpfs options of a hidden directory.
    pub hide_data: CString,
    /// Where the empty file is made for the hidden files: a tmpfs mounted on /proc for a moment
    /// (a directory every system has, and one `hide` cannot name), then detached.
    pub staging: CString,
    pub staging_file: CString,
    /// The working directory, entered again once the view is built: the old one may be the
    /// read-only mount under a write path's bind.
    pub cwd: Option<CString>,
}

/// `filesystem_view` in the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    /// "host" or "read-only", as the profile asks.
    pub view: &'static str,
    /// "enforced", "not enforced" (best effort where no mount namespace could be had), or "off"
    /// for the host's view without `hide`.
    pub status: &'static str,
    /// How many `hide` paths are covered (those that exist, outside a private /tmp).
    pub hidden: usize,
}

impl Status {
    /// True when the child builds the view.
    pub fn enforced(self) -> bool {
        self.status == "enforced"
    }

    pub fn off() -> Status {
        Status {
            view: View::Host.name(),
            status: "off",
            hidden: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("[filesystem] view = \"read-only\" with enforce = \"required\", but no mount namespace can be created here: {why}; or set enforce = \"best_effort\" to run with Landlock alone")]
    Unavailable { why: String },
    #[error("cannot read /proc/self/mountinfo for the read-only view: {0}; /proc must be mounted")]
    MountInfo(io::Error),
    #[error("invalid [filesystem] write path {}: {source}; create it or remove it from the list", path.display())]
    WritePath { path: PathBuf, source: io::Error },
    #[error("invalid [filesystem] hide path {}: the view cannot cover / or what is in /proc; remove it from the list", path.display())]
    HidePath { path: PathBuf },
    #[error("invalid [filesystem] hide path {path}: there is no home directory to expand `~` to (no $HOME, no passwd entry); write the path in full")]
    NoHome { path: String },
}

/// Decides, before anything is created, whether the view of `fs` can be built: adds the mount
/// namespace to `ns` (and a user namespace where we lack CAP_SYS_ADMIN), or, where that cannot
/// be had, fails under `required` and otherwise returns what runs unenforced. `privileged`:
/// we have CAP_SYS_ADMIN.
pub fn resolve(
    fs: Option<&Filesystem>,
    ns: &mut Namespaces,
    privileged: impl FnOnce() -> bool,
) -> Result<(Status, Option<Unenforced>), ViewError> {
    let Some(fs) = fs.filter(|fs| fs.view == View::ReadOnly || !fs.hide.is_empty()) else {
        return Ok((Status::off(), None));
    };
    let enforced = Status {
        view: fs.view.name(),
        status: "enforced",
        hidden: 0,
    };
    if ns.user || privileged() {
        ns.mount = true;
        return Ok((enforced, None));
    }
    let why = match userns_obstacle() {
        None => {
            ns.user = true;
            ns.mount = true;
            return Ok((enforced, None));
        }
        Some(o) => obstacle_text(o),
    };
    if fs.enforce == Enforce::Required {
        return Err(ViewError::Unavailable { why: why.into() });
    }
    let what = match fs.view {
        View::ReadOnly => "read-only view ([filesystem] view and hide; Landlock alone applies)",
        View::Host => "[filesystem] hide (Landlock alone applies)",
    };
    let unenforced = Unenforced {
        what: what.into(),
        why: why.into(),
    };
    Ok((
        Status {
            view: fs.view.name(),
            status: "not enforced",
            hidden: 0,
        },
        Some(unenforced),
    ))
}

/// Why an unprivileged caller gets no user namespace, and the fix.
fn obstacle_text(o: UsernsObstacle) -> &'static str {
    match o {
        UsernsObstacle::NotBuilt => "this kernel has no user namespaces (CONFIG_USER_NS) and synwire-run lacks CAP_SYS_ADMIN: run as root",
        UsernsObstacle::NoneAllowed => "synwire-run lacks CAP_SYS_ADMIN and user namespaces are disabled (user.max_user_namespaces=0): raise that sysctl, or run as root",
        UsernsObstacle::UnprivilegedOff => "synwire-run lacks CAP_SYS_ADMIN and unprivileged user namespaces are disabled: `sysctl kernel.unprivileged_userns_clone=1`, or run as root",
        UsernsObstacle::AppArmor => "synwire-run lacks CAP_SYS_ADMIN and AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): allow synwire-run `userns,` in an AppArmor profile, or run as root",
    }
}

impl ViewPlan {
    /// The child's steps for the view of `fs`, from this mount namespace's mount points.
    pub fn new(fs: &Filesystem) -> Result<ViewPlan, ViewError> {
        let mounts = match fs.view {
            View::ReadOnly => mount_points(&read_mountinfo()?),
            View::Host => Vec::new(),
        };
        ViewPlan::with_mounts(fs, mounts)
    }

    /// How many hidden paths the child covers.
    pub fn hidden(&self) -> usize {
        self.hide_files.len() + self.hide_dirs.len()
    }

    /// The plan, given the mount points to make read-only (none for the host's view with
    /// `hide`, which binds no write path and keeps the host's /tmp).
    fn with_mounts(fs: &Filesystem, mounts: Vec<PathBuf>) -> Result<ViewPlan, ViewError> {
        let read_only_view = fs.view == View::ReadOnly;
        let write = fs
            .write
            .iter()
            .map(|p| {
                std::fs::canonicalize(p).map_err(|source| ViewError::WritePath {
                    path: p.into(),
                    source,
                })
            })
            .collect::<Result<Vec<PathBuf>, _>>()?;
        let tmp = Path::new("/tmp");
        // A write path inside /tmp keeps the host's /tmp (read-only but for it): a private one
        // would hide it. `/tmp` itself asks for a writable /tmp, which the private one is.
        let private_tmp = read_only_view && !write.iter().any(|w| w.starts_with(tmp) && w != tmp);
        if read_only_view && !private_tmp {
            tracing::debug!("read-only view: a write path is inside /tmp, so /tmp stays the host's (read-only but for the write paths), not a private tmpfs");
        }
        let write: Vec<PathBuf> = match read_only_view {
            true => write
                .into_iter()
                .filter(|w| !(private_tmp && w == tmp))
                .collect(),
            false => Vec::new(),
        };
        let read_only = mounts
            .into_iter()
            .filter(|m| !write.iter().any(|w| m.starts_with(w)))
            .map(|m| c_path(&m))
            .collect();
        let (hide_files, hide_dirs) = hidden(&fs.hide, private_tmp.then_some(tmp))?;
        let c = |s: &str| CString::new(s).expect("no NUL");
        Ok(ViewPlan {
            read_only,
            write: write.iter().map(|w| c_path(w)).collect(),
            tmp: private_tmp.then(|| c_path(tmp)),
            tmpfs: c("tmpfs"),
            tmp_rule: None,
            hide_files,
            hide_dirs,
            hide_data: c("mode=0555"),
            staging: c("/proc"),
            staging_file: c("/proc/synwire-empty"),
            cwd: std::env::current_dir().ok().map(|d| c_path(&d)),
        })
    }
}

fn read_mountinfo() -> Result<String, ViewError> {
    std::fs::read_to_string("/proc/self/mountinfo").map_err(ViewError::MountInfo)
}

/// The hide paths as the child covers them: "~" expanded, symbolic links resolved, split into
/// files and directories. A path that does not exist is skipped, and so is one in the private
/// /tmp (`tmp`), which hides it already.
fn hidden(hide: &[String], tmp: Option<&Path>) -> Result<(Vec<CString>, Vec<CString>), ViewError> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for written in hide {
        let path = expand_home(written)?;
        let Ok(real) = std::fs::canonicalize(&path) else {
            tracing::debug!("[filesystem] hide {written}: no such path here; skipped");
            continue;
        };
        if real == Path::new("/") || real.starts_with("/proc") {
            return Err(ViewError::HidePath { path: real });
        }
        if tmp.is_some_and(|t| real.starts_with(t)) {
            tracing::debug!("[filesystem] hide {written}: in /tmp, which is private; skipped");
            continue;
        }
        if real.is_dir() {
            dirs.push(c_path(&real));
        } else {
            files.push(c_path(&real));
        }
    }
    Ok((files, dirs))
}

/// `~` and `~/…` in the caller's home: $HOME, or the passwd entry of our uid.
fn expand_home(written: &str) -> Result<PathBuf, ViewError> {
    let rest = match written.strip_prefix('~') {
        Some("") => "",
        Some(r) if r.starts_with('/') => r.trim_start_matches('/'),
        _ => return Ok(PathBuf::from(written)),
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .ok_or_else(|| ViewError::NoHome {
            path: written.into(),
        })?;
    Ok(home.join(rest))
}

/// A path as a C string (a path from the kernel or the file system has no NUL).
fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// The mount points of a mountinfo text (its fifth field, octal escapes undone), in its order.
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|m| PathBuf::from(std::ffi::OsString::from(unescape(m))))
        .collect()
}

/// Undoes the kernel's `\NNN` octal escapes (space, tab, newline, backslash) in a mountinfo field.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_come_from_the_fifth_field_with_escapes_undone() {
        let text = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    30 22 0:25 / /mnt/my\\040disk rw,nosuid - tmpfs tmpfs rw\n\
                    31 22 0:26 / /a\\134b ro - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(text),
            [
                PathBuf::from("/"),
                PathBuf::from("/mnt/my disk"),
                PathBuf::from("/a\\b")
            ]
        );
        assert_eq!(unescape("x\\04"), "x\\04");
    }

    fn read_only(fs_write: Vec<String>, enforce: Enforce) -> Filesystem {
        Filesystem {
            enforce,
            read: Vec::new(),
            write: fs_write,
            bind_tcp: None,
            connect_tcp: None,
            scope: Default::default(),
            view: View::ReadOnly,
            hide: Vec::new(),
        }
    }

    #[test]
    fn the_view_asks_for_a_mount_namespace_and_a_user_namespace_only_without_privilege() {
        let fs = read_only(Vec::new(), Enforce::Required);
        let mut ns = Namespaces::default();
        let (status, unenforced) = resolve(Some(&fs), &mut ns, || true).unwrap();
        assert_eq!(status.status, "enforced");
        assert!(ns.mount && !ns.user && unenforced.is_none());

        let mut ns = Namespaces::default();
        match resolve(Some(&fs), &mut ns, || false) {
            Ok((status, None)) => {
                assert_eq!(status.status, "enforced");
                assert!(ns.mount && ns.user);
            }
            Err(e) => assert!(e.to_string().contains("best_effort"), "{e}"),
            Ok(other) => panic!("{other:?}"),
        }

        let mut ns = Namespaces::default();
        let host = Filesystem {
            view: View::Host,
            ..fs
        };
        let (status, _) = resolve(Some(&host), &mut ns, || unreachable!()).unwrap();
        assert_eq!(status, Status::off());
        assert!(!ns.any());
    }

    #[test]
    fn the_plan_leaves_the_write_paths_mounts_alone_and_keeps_tmp_private_unless_written() {
        let dir = tempfile::tempdir().unwrap();
        let write = dir.path().to_str().unwrap().to_string();
        let plan = ViewPlan::new(&read_only(vec![write.clone()], Enforce::Required)).unwrap();
        assert!(plan.read_only.iter().any(|m| m.as_bytes() == b"/"));
        let canonical = std::fs::canonicalize(&write).unwrap();
        assert_eq!(plan.write, [c_path(&canonical)]);
        assert_eq!(plan.tmp.is_none(), canonical.starts_with("/tmp"));
        // /tmp itself in `write`: the private /tmp is writable, nothing is bound.
        let plan = ViewPlan::new(&read_only(vec!["/tmp".into()], Enforce::Required)).unwrap();
        assert_eq!(plan.tmp.as_deref(), Some(c"/tmp"));
        assert!(plan.write.is_empty());
    }

    #[test]
    fn hide_paths_are_split_into_files_and_directories_and_the_missing_skipped() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let hide = [
            real.to_str().unwrap(),
            file.to_str().unwrap(),
            "/no/such/path-xyz",
        ]
        .map(String::from);
        // No private /tmp here: the checkout (and so this directory) may itself be under /tmp.
        let (files, dirs) = hidden(&hide, None).unwrap();
        assert_eq!(files, [c_path(&real.join("secret"))]);
        assert_eq!(dirs, [c_path(&real)]);
        let e = hidden(&["/proc/self".into()], None).unwrap_err();
        assert!(e.to_string().contains("/proc"), "{e}");
        assert!(hidden(&["/".into()], None).is_err());
        let (_, in_tmp) = hidden(&["/tmp".into()], Some(Path::new("/tmp"))).unwrap();
        assert!(in_tmp.is_empty());
    }

    #[test]
    fn a_tilde_is_the_callers_home() {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(home) = home.filter(|h| !h.as_os_str().is_empty()) {
            assert_eq!(expand_home("~").unwrap(), home);
            assert_eq!(expand_home("~/.ssh").unwrap(), home.join(".ssh"));
        }
        assert_eq!(expand_home("~x").unwrap(), PathBuf::from("~x"));
        assert_eq!(expand_home("/a/~").unwrap(), PathBuf::from("/a/~"));
    }
}
