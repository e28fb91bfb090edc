//! Everything the child needs, resolved before fork: the program path (searched in PATH as a
//! shell would), argv and envp as C strings, and the `/bin/sh` fallback for scripts without `#!`.
//! After this point nothing is parsed or allocated for the child.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::sys::{CArgv, PidSlot};

/// Where PATH is unset, the search path a shell would use.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// An exec failure, with the exit code a shell gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFailure {
    /// 127: not found; 126: found but not executable.
    pub code: i32,
    pub message: String,
}

pub struct ExecPlan {
    /// The command as given, for reports.
    pub command: Vec<OsString>,
    pub path: CString,
    pub argv: CArgv,
    pub envp: CArgv,
    /// `/bin/sh PATH ARGS…` for when execve says ENOEXEC (a script without `#!`), as execvp does.
    pub sh_path: CString,
    pub sh_argv: CArgv,
    /// LISTEN_PID, rewritten in the child to the agent's own PID (socket activation).
    pub listen_pid: Option<PidSlot>,
}

fn cstring(s: &OsStr) -> Result<CString, ExecFailure> {
    CString::new(s.as_bytes()).map_err(|_| ExecFailure {
        code: 126,
        message: format!("{}: an argument contains a NUL byte", s.to_string_lossy()),
    })
}

impl ExecPlan {
    /// Resolves `command[0]` and prepares the vectors. `env` is the agent's environment.
    pub fn new(
        command: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    ) -> Result<ExecPlan, ExecFailure> {
        let program = command.first().ok_or_else(|| ExecFailure {
            code: 127,
            message: "no command given".into(),
        })?;
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone());
        let resolved = resolve(program, path_var.as_deref())?;
        let path = cstring(resolved.as_os_str())?;
        let argv: Vec<CString> = command
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(|_| ExecFailure {
                    code: 126,
                    message: format!(
                        "environment variable {} contains a NUL byte",
                        k.to_string_lossy()
                    ),
                })
            })
            .collect::<Result<_, _>>()?;
        let listen_pid = env.iter().position(|(k, _)| k == "LISTEN_PID");
        let sh_path = CString::new("/bin/sh").expect("no NUL");
        let mut sh_argv = vec![sh_path.clone(), path.clone()];
        sh_argv.extend(argv.iter().skip(1).cloned());
        let mut envp = CArgv::new(envp);
        let listen_pid = listen_pid.map(|idx| {
            let slot = PidSlot::new(b"LISTEN_PID=");
            envp.point_at(idx, &slot);
            slot
        });
        Ok(ExecPlan {
            command,
            path,
            argv: CArgv::new(argv),
            envp,
            sh_path,
            sh_argv: CArgv::new(sh_argv),
            listen_pid,
        })
    }

    /// The program's name for messages.
    pub fn program(&self) -> String {
        self.command[0].to_string_lossy().into_owned()
    }
}

/// Searches `program` in `path_var` like execvp: a name with a `/` is used as is; otherwise the
/// first executable regular file along PATH wins (an empty entry is the current directory).
pub fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ExecFailure> {
    let name = program.to_string_lossy();
    if program.is_empty() {
        return Err(ExecFailure {
            code: 127,
            message: "the command is an empty string".into(),
        });
    }
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied: Option<PathBuf> = None;
    for dir in path_var.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if meta.permissions().mode() & 0o111 != 0
            && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
        {
            return Ok(candidate);
        }
        denied.get_or_insert(candidate);
    }
    Err(match denied {
        Some(p) => ExecFailure {
            code: 126,
            message: format!("{name}: permission denied: {} is not executable; `chmod +x` it or run it through its interpreter", p.display()),
        },
        None => ExecFailure {
            code: 127,
            message: format!("{name}: command not found in PATH ({}); check the name or give its full path", path_var.to_string_lossy()),
        },
    })
}

/// The message and code for an execve errno, reported by the child over its CLOEXEC pipe.
pub fn exec_errno(program: &str, path: &str, errno: i32) -> ExecFailure {
    let err = std::io::Error::from_raw_os_error(errno);
    match errno {
        libc::ENOENT => ExecFailure {
            code: 127,
            message: format!("{program}: cannot execute {path}: no such file or directory (for a script: is the interpreter in its #! line installed?)"),
        },
        libc::EACCES | libc::EPERM => ExecFailure {
            code: 126,
            message: format!("{program}: cannot execute {path}: permission denied; `chmod +x` it, or check that its filesystem is not mounted noexec"),
        },
        _ => ExecFailure {
            code: 126,
            message: format!("{program}: cannot execute {path}: {err}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn resolves_like_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let noexec = a.join("tool");
        fs::write(&noexec, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&noexec, fs::Permissions::from_mode(0o644)).unwrap();
        let exec = b.join("tool");
        fs::write(&exec, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&exec, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(a.join("subdir")).unwrap();

        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(
            resolve(OsStr::new("tool"), Some(OsStr::new(&path))).unwrap(),
            exec
        );
        let only_a = a.display().to_string();
        let e = resolve(OsStr::new("tool"), Some(OsStr::new(&only_a))).unwrap_err();
        assert_eq!(e.code, 126, "{e:?}");
        let e = resolve(OsStr::new("subdir"), Some(OsStr::new(&only_a))).unwrap_err();
        assert_eq!(e.code, 127, "a directory is not a command: {e:?}");
        let e = resolve(OsStr::new("no-such-tool-xyz"), Some(OsStr::new(&path))).unwrap_err();
        assert_eq!(e.code, 127);
        assert!(
            e.message.contains("command not found") && e.message.contains(&only_a),
            "{}",
            e.message
        );
        assert_eq!(
            resolve(OsStr::new("./x"), None).unwrap(),
            PathBuf::from("./x")
        );
        assert_eq!(resolve(OsStr::new(""), None).unwrap_err().code, 127);
    }

    #[test]
    fn builds_argv_envp_and_the_sh_fallback() {
        let plan = ExecPlan::new(
            vec!["/bin/echo".into(), "hi there".into()],
            vec![("A".into(), "1".into())],
        )
        .unwrap();
        assert_eq!(plan.path.to_str().unwrap(), "/bin/echo");
        assert_eq!(plan.argv.strings().len(), 2);
        assert_eq!(plan.envp.strings()[0].to_str().unwrap(), "A=1");
        let sh: Vec<_> = plan
            .sh_argv
            .strings()
            .iter()
            .map(|s| s.to_str().unwrap())
            .collect();
        assert_eq!(sh, ["/bin/sh", "/bin/echo", "hi there"]);
        assert_eq!(exec_errno("x", "/x", libc::ENOENT).code, 127);
        assert_eq!(exec_errno("x", "/x", libc::EACCES).code, 126);
    }
}
