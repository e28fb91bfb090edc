//! The statistics file (`--stats-file`), written so that nobody else chooses what it overwrites.
//!
//! The threat: the file's directory is shared (/tmp, sticky and writable by everyone), and another
//! user has planted a symlink there, at the target's name or at a temporary name synwire-run
//! might use, pointing at a file of the caller's (root's: /etc/shadow). Writing through it would
//! overwrite that file. So nothing is ever written through a name:
//! - the directory is opened once (O_PATH) and every later step is relative to that descriptor;
//! - the JSON goes into a new file under a random name, created with O_CREAT|O_EXCL|O_NOFOLLOW:
//!   the kernel refuses any name that exists, a symlink (dangling or not) included, so the file
//!   written is always one synwire-run has just created; a name that is taken is replaced by a
//!   fresh one, a few times. O_EXCL is what keeps a planted name from being used; the 16 random
//!   bytes (the agent id's source, getrandom GRND_INSECURE) only keep others from taking the
//!   names first;
//! - that file is renamed over the target: rename(2) replaces the name itself, so a symlink or a
//!   hard link planted there is replaced and what it pointed at is left untouched. A reader never
//!   sees half a file.
//!
//! It does not rely on `fs.protected_symlinks` or `fs.protected_regular`, which a host may turn
//! off. In a sticky directory only a name's owner (or CAP_FOWNER, which root has) may replace it:
//! a caller who is not root and finds another user's file or symlink at the target gets
//! [`StatsFileError::OwnedByAnother`], which names the owner, and nothing is written.
//!
//! What is trusted: the directory's path, as the caller wrote it, symlinks in it included: it is
//! the caller's choice, as with any output file. A directory another user may rename things in
//! without the sticky bit protects no name at all; choose one that only trusted users can change.
//!
//! The file is written by synwire-run's own process, after the agent has ended, with its own
//! credentials: never as the agent's `[security] user`. Under sudo that is root, which the
//! caller asked for; the steps above are what make root's write safe. The mode is 0666 less the
//! umask, as for any new file.
//!
//! Not O_TMPFILE + linkat: linkat(2) cannot replace a name, so a temporary name and the rename
//! are needed anyway; linking an O_TMPFILE file needs CAP_DAC_READ_SEARCH (AT_EMPTY_PATH) or a
//! mounted /proc (/proc/self/fd); and some filesystems lack O_TMPFILE, so the path above would be
//! needed as a fallback regardless. One path, the one tested. No fsync either: after a power loss
//! the file may be empty or absent, which a statistics file can afford at the end of every run.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// How many random names to try when one is taken: by chance (never, with 128 bits), or by
/// someone who keeps creating names in the directory, which can only fail the write.
const ATTEMPTS: usize = 8;

/// The prefix of the temporary name: hidden, and short enough that any target name may be used.
const TMP_PREFIX: &str = ".synwire-stats-";

/// Why the statistics file was not written. Each names the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StatsFileError {
    #[error("cannot write the statistics to {}: it does not name a file; give --stats-file a file name", path.display())]
    NotAFile { path: PathBuf },
    #[error("cannot write the statistics to {}: {} is not a directory; create it or choose another --stats-file", path.display(), dir.display())]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("cannot write the statistics to {}: cannot open its directory {}: {source}; check that it still exists", path.display(), dir.display())]
    OpenDirectory {
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("cannot write the statistics to {}: cannot create a file in {}: {source}; check that you may write to that directory", path.display(), dir.display())]
    Create {
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("cannot write the statistics to {}: {source}; check the free space and quota of its filesystem", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot write the statistics to {}: it belongs to uid {owner} and its directory is sticky (as /tmp is), so only its owner may replace it; remove it as that user, or choose a --stats-file in a directory of your own", path.display())]
    OwnedByAnother { path: PathBuf, owner: u32 },
    #[error("cannot write the statistics to {}: cannot replace it: {source}; check that it is not a directory and that it may be replaced", path.display())]
    Replace { path: PathBuf, source: io::Error },
}

/// Before the agent starts: refuses a path whose file cannot be written at the end (no file
/// name, no directory), so that the agent's work is not lost to a typo.
pub fn check(path: &Path) -> Result<(), StatsFileError> {
    let (dir, _) = split(path)?;
    if dir.is_dir() {
        Ok(())
    } else {
        Err(StatsFileError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        })
    }
}

/// Writes `bytes` as the file `path`, whole, never through a name planted in its directory (the
/// module's documentation says how).
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), StatsFileError> {
    write_with(path, bytes, random_name)
}

/// `write` with the temporary names drawn from `next_name`.
fn write_with(
    path: &Path,
    bytes: &[u8],
    mut next_name: impl FnMut() -> io::Result<String>,
) -> Result<(), StatsFileError> {
    let (dir, name) = split(path)?;
    let dirfd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StatsFileError::OpenDirectory {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        source: e.into(),
    })?;
    let (tmp, mut file) =
        create(&dirfd, &mut next_name).map_err(|source| StatsFileError::Create {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            source,
        })?;
    let written = file
        .write_all(bytes)
        .map_err(|source| StatsFileError::Write {
            path: path.to_path_buf(),
            source,
        });
    drop(file);
    let result = written.and_then(|()| replace(&dirfd, &tmp, name, path));
    if result.is_err() {
        // Our own name: in a sticky directory nobody else may have removed or replaced it, and
        // unlinking a name never follows a symlink.
        let _ = rustix::fs::unlinkat(&dirfd, tmp.as_str(), AtFlags::empty());
    }
    result
}

/// The directory `path` is in ("." for a bare name) and its file name.
fn split(path: &Path) -> Result<(&Path, &OsStr), StatsFileError> {
    let name = path.file_name().ok_or_else(|| StatsFileError::NotAFile {
        path: path.to_path_buf(),
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// A new file in `dirfd` under a name from `next_name` that did not exist: O_EXCL fails on
/// anything there, a symlink included, and O_NOFOLLOW says so twice.
fn create(
    dirfd: &OwnedFd,
    next_name: &mut impl FnMut() -> io::Result<String>,
) -> io::Result<(String, File)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // 0666 less the umask, as File::create.
    let mode = Mode::from_bits_truncate(0o666);
    for _ in 0..ATTEMPTS {
        let tmp = next_name()?;
        match rustix::fs::openat(dirfd, tmp.as_str(), flags, mode) {
            Ok(fd) => return Ok((tmp, File::from(fd))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::EXIST.into())
}

/// Renames `tmp` over `name`, both in `dirfd`.
fn replace(dirfd: &OwnedFd, tmp: &str, name: &OsStr, path: &Path) -> Result<(), StatsFileError> {
    match rustix::fs::renameat(dirfd, tmp, dirfd, name) {
        Ok(()) => Ok(()),
        Err(e) => Err(
            match sticky_owner(dirfd, name).filter(|_| e == Errno::PERM) {
                Some(owner) => StatsFileError::OwnedByAnother {
                    path: path.to_path_buf(),
                    owner,
                },
                None => StatsFileError::Replace {
                    path: path.to_path_buf(),
                    source: e.into(),
                },
            },
        ),
    }
}

/// The owner of `name` when the sticky bit is what keeps us from replacing it: its directory is
/// sticky and the name belongs to another user.
fn sticky_owner(dirfd: &OwnedFd, name: &OsStr) -> Option<u32> {
    const S_ISVTX: u32 = 0o1000;
    let dir = rustix::fs::fstat(dirfd).ok()?;
    let target = rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let me = rustix::process::geteuid().as_raw();
    (dir.st_mode & S_ISVTX != 0 && target.st_uid != me).then_some(target.st_uid)
}

/// `.synwire-stats-` and 32 random hexadecimal digits.
fn random_name() -> io::Result<String> {
    let bytes = crate::sys::random_id_bytes()?;
    let mut name = String::from(TMP_PREFIX);
    for b in bytes {
        name.push_str(&format!("{b:02x}"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const VICTIM: &str = "the victim's own contents\n";

    /// A directory for the statistics, and a victim file outside it.
    struct Scene {
        dir: tempfile::TempDir,
        _outside: tempfile::TempDir,
        victim: PathBuf,
    }

    impl Scene {
        fn new() -> Scene {
            let dir = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let victim = outside.path().join("victim");
            std::fs::write(&victim, VICTIM).unwrap();
            Scene {
                dir,
                _outside: outside,
                victim,
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// Plants `name -> victim` in the directory.
        fn plant(&self, name: &str) {
            symlink(&self.victim, self.path(name)).unwrap();
        }

        fn victim_intact(&self) {
            assert_eq!(std::fs::read_to_string(&self.victim).unwrap(), VICTIM);
        }

        /// The directory's entries, sorted: what a temporary file left behind would show up in.
        fn entries(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }

        /// `name` is a regular file (not a symlink) holding `text`.
        fn holds(&self, name: &str, text: &str) {
            let meta = std::fs::symlink_metadata(self.path(name)).unwrap();
            assert!(meta.file_type().is_file(), "{name}: {meta:?}");
            assert_eq!(std::fs::read_to_string(self.path(name)).unwrap(), text);
        }

        /// `name` is still a symlink to the victim.
        fn still_planted(&self, name: &str) {
            assert_eq!(std::fs::read_link(self.path(name)).unwrap(), self.victim);
        }
    }

    fn names(list: &[&str]) -> impl FnMut() -> io::Result<String> {
        let mut it: std::vec::IntoIter<String> = list
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter();
        move || it.next().ok_or_else(|| io::Error::other("out of names"))
    }

    #[test]
    fn a_symlink_planted_at_the_target_is_replaced_and_what_it_points_at_is_left_intact() {
        let s = Scene::new();
        s.plant("stats.json");
        write(&s.path("stats.json"), b"{}\n").unwrap();
        s.victim_intact();
        s.holds("stats.json", "{}\n");
        assert_eq!(s.entries(), ["stats.json"], "no temporary file is left");
    }

    #[test]
    fn a_hard_link_planted_at_the_target_is_replaced_and_its_file_left_intact() {
        let s = Scene::new();
        std::fs::hard_link(&s.victim, s.path("stats.json")).unwrap();
        write(&s.path("stats.json"), b"{}\n").unwrap();
        s.victim_intact();
        s.holds("stats.json", "{}\n");
    }

    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_never_followed_and_a_fresh_name_is_drawn() {
        let s = Scene::new();
        s.plant(".planted");
        // Dangling: O_CREAT without O_EXCL would create its target.
        let missing = s.victim.with_file_name("created-through-a-symlink");
        symlink(&missing, s.path(".dangling")).unwrap();
        write_with(
            &s.path("stats.json"),
            b"{\"a\": 1}\n",
            names(&[".planted", ".dangling", ".fresh"]),
        )
        .unwrap();
        s.victim_intact();
        assert!(!missing.exists(), "a dangling symlink was followed");
        s.still_planted(".planted");
        s.holds("stats.json", "{\"a\": 1}\n");
        assert_eq!(s.entries(), [".dangling", ".planted", "stats.json"]);
    }

    #[test]
    fn the_old_predictable_temporary_name_is_left_alone() {
        // `.NAME.tmp<pid>` was the temporary name before: root followed a symlink planted there.
        let s = Scene::new();
        let old = format!(".stats.json.tmp{}", std::process::id());
        s.plant(&old);
        write(&s.path("stats.json"), b"{}\n").unwrap();
        s.victim_intact();
        s.still_planted(&old);
        s.holds("stats.json", "{}\n");
    }

    #[test]
    fn temporary_names_are_hidden_random_and_short() {
        let (a, b) = (random_name().unwrap(), random_name().unwrap());
        assert_ne!(a, b);
        for n in [&a, &b] {
            let hex = n.strip_prefix(TMP_PREFIX).unwrap();
            assert_eq!(hex.len(), 32, "{n}");
            assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{n}");
        }
    }

    #[test]
    fn names_that_stay_taken_end_in_an_error_naming_the_directory() {
        let s = Scene::new();
        let taken = [".t"; ATTEMPTS + 1];
        s.plant(".t");
        let e = write_with(&s.path("stats.json"), b"{}\n", names(&taken)).unwrap_err();
        assert!(matches!(e, StatsFileError::Create { .. }), "{e:?}");
        assert!(
            e.to_string().contains(&s.dir.path().display().to_string()),
            "{e}"
        );
        s.victim_intact();
        assert_eq!(s.entries(), [".t"]);
    }

    #[test]
    fn a_directory_at_the_target_is_refused_and_no_temporary_file_is_left() {
        let s = Scene::new();
        std::fs::create_dir(s.path("stats.json")).unwrap();
        let e = write(&s.path("stats.json"), b"{}\n").unwrap_err();
        assert!(matches!(e, StatsFileError::Replace { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains(&s.path("stats.json").display().to_string()),
            "{e}"
        );
        assert_eq!(s.entries(), ["stats.json"]);
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_working_directory() {
        assert_eq!(
            split(Path::new("s.json")).unwrap(),
            (Path::new("."), OsStr::new("s.json"))
        );
        assert_eq!(
            split(Path::new("/tmp/s.json")).unwrap(),
            (Path::new("/tmp"), OsStr::new("s.json"))
        );
    }

    #[test]
    fn a_missing_directory_or_no_file_name_is_refused_before_the_run() {
        let e = check(Path::new("/nonexistent-dir/s.json")).unwrap_err();
        assert!(matches!(e, StatsFileError::NoDirectory { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent-dir/s.json"), "{e}");
        for p in ["/", "..", "dir/.."] {
            let e = check(Path::new(p)).unwrap_err();
            assert!(matches!(e, StatsFileError::NotAFile { .. }), "{p}: {e:?}");
        }
        check(Path::new("s.json")).unwrap();
    }
}
