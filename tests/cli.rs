//! Command-line behaviour that needs no privileges and creates no cgroup: everything here fails
//! (or finishes) before synwire-run touches the cgroup hierarchy, so it runs on any host. What
//! involves the kernel's cgroups is tested in the VM suite (tests/vm).

use std::path::Path;
use std::process::{Command, Output};

fn synwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synwire-run"))
        .args(args)
        .env_remove("SYNWIRE_LOG")
        .output()
        .expect("run synwire-run")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn a_profile_with_an_unknown_key_exits_125_naming_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "agent.toml",
        "description = \"x\"\n[limits]\nmemroy = \"1G\"\n",
    );
    let stats = dir.path().join("stats.json");
    let o = synwire(&[
        "--profile",
        &p,
        "--stats-file",
        stats.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(e.contains(&format!("{p}:3:1")), "{e}");
    assert!(e.contains("`limits.memroy`"), "{e}");
    assert!(e.starts_with("synwire-run: error: "), "{e}");
    assert!(!stats.exists(), "nothing is created for an invalid profile");
}

#[test]
fn out_of_range_and_wrong_type_values_exit_125() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("[limits]\ncpu_weight = 0\n", ":2:14: `limits.cpu_weight`"),
        ("[limits]\npids = \"lots\"\n", ":2:8: `limits.pids`"),
        ("[stop]\ngrace = \"soon\"\n", ":2:9: `stop.grace`"),
    ] {
        let p = write(dir.path(), "p.toml", text);
        let o = synwire(&["-p", &p, "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "{text}");
        assert!(stderr(&o).contains(needle), "{text}: {}", stderr(&o));
    }
}

#[test]
fn unknown_profiles_and_bad_overrides_exit_125() {
    let o = synwire(&["--profile", "tiny", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("unknown profile `tiny`"),
        "{}",
        stderr(&o)
    );
    for (flag, value) in [
        ("--memory", "12Q"),
        ("--cpu", "zero"),
        ("--pids", "-3"),
        ("--timeout", "later"),
        ("--allow-host", "https://pypi.org/simple"),
        ("--allow-host", "*"),
        ("--allow-host", "example.com:0"),
    ] {
        let o = synwire(&[&format!("{flag}={value}"), "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "{flag}");
        assert!(
            stderr(&o).contains(&format!("invalid {flag} `{value}`")),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn usage_errors_exit_125_and_help_exits_0() {
    let o = synwire(&[]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("synwire-run [OPTIONS] -- COMMAND"),
        "{}",
        stderr(&o)
    );
    let o = synwire(&["--no-such-flag", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = synwire(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--profile",
        "--memory",
        "--cpu",
        "--pids",
        "--timeout",
        "--stats-file",
        "--quiet",
        "--verbose",
        "--cgroup-parent",
        "--allow-degraded",
    ] {
        assert!(help.contains(flag), "help lists {flag}");
    }
}

#[test]
fn a_command_not_in_path_exits_127_with_an_exec_failed_report() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("s.json");
    let o = synwire(&[
        "--stats-file",
        stats.to_str().unwrap(),
        "--",
        "synwire-no-such-command",
    ]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("synwire-no-such-command: command not found"),
        "{}",
        stderr(&o)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["outcome"], "exec_failed");
    assert_eq!(json["exit_code"], 127);
    assert_eq!(
        json["command"],
        serde_json::json!(["synwire-no-such-command"])
    );
    assert!(json["cgroup"].is_null());
}

#[test]
fn the_landlock_statistics_say_what_this_kernel_restricts_of_the_profile() {
    // Landlock is prepared before the command is looked up: an exec failure reports it too.
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[filesystem]\nread = [\"/\"]\nwrite = [\"{}\"]\nconnect_tcp = [443]\n",
        dir.path().display()
    );
    let p = write(dir.path(), "p.toml", &text);
    let stats = dir.path().join("s.json");
    let o = synwire(&[
        "-p",
        &p,
        "--stats-file",
        stats.to_str().unwrap(),
        "--",
        "synwire-no-such-command",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let fs = synwire_run::profile::parse("p", &p, &text)
        .unwrap()
        .filesystem
        .unwrap();
    use synwire_run::landlock::{abi_version, Requested, Status};
    let want = Status::of(abi_version().ok(), &Requested::of(&fs));
    assert_eq!(json["landlock"], serde_json::to_value(&want).unwrap());
    // The shape: status, abi, unhandled.
    let keys: Vec<_> = json["landlock"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["abi", "status", "unhandled"]);
}

#[test]
fn a_file_without_execute_permission_found_in_path_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tool", "#!/bin/sh\n");
    let o = Command::new(env!("CARGO_BIN_EXE_synwire-run"))
        .args(["-q", "--", "tool"])
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(126));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
}

#[test]
fn a_stats_file_replaces_a_symlink_planted_at_its_name_and_leaves_its_target_intact() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = write(outside.path(), "victim", "the victim's own contents\n");
    let stats = dir.path().join("s.json");
    std::os::unix::fs::symlink(&victim, &stats).unwrap();
    // The old temporary name, `.NAME.tmp<pid>`, cannot be planted for a pid not known yet: the
    // unit tests in src/report/file.rs plant it.
    let o = synwire(&[
        "-q",
        "--stats-file",
        stats.to_str().unwrap(),
        "--",
        "synwire-no-such-command",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the victim's own contents\n"
    );
    assert!(std::fs::symlink_metadata(&stats).unwrap().is_file());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["outcome"], "exec_failed");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
}

#[test]
fn a_stats_file_in_a_missing_directory_is_refused_before_anything_runs() {
    let o = synwire(&["--stats-file", "/nonexistent-dir/s.json", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("/nonexistent-dir/s.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_least_privilege_values_exit_125_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        (
            "[security]\ncapabilities = [\"NET_FLY\"]\n",
            "`NET_FLY` is not a capability",
        ),
        (
            "[security]\nuser = \"no-such-user-xyz\"\n",
            "`security.user`",
        ),
        (
            "[security]\ngroup = \"no-such-group-xyz\"\n",
            "`security.group`",
        ),
        ("[rlimits]\nnofile = \"many\"\n", "`rlimits.nofile`"),
        ("[rlimits]\nfsize = \"12Q\"\n", "`rlimits.fsize`"),
        ("[env]\npass = \"PATH\"\n", "`env.pass`"),
        ("[env]\nset = { A = 1 }\n", "`env.set.A`"),
        (
            "[filesystem]\nbind_tcp = [70000]\n",
            "`filesystem.bind_tcp`",
        ),
        ("[filesystem]\nscope = [\"ptrace\"]\n", "`filesystem.scope`"),
    ] {
        let p = write(dir.path(), "p.toml", text);
        let o = synwire(&["-p", &p, "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{text}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{p}:2:")),
            "{text}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn invalid_seccomp_values_exit_125_naming_the_key_and_the_name() {
    let dir = tempfile::tempdir().unwrap();
    for (text, at, needles) in [
        (
            "[seccomp]\ndeny = [\"getpid\", \"ptace\"]\n",
            ":2:",
            &["`seccomp.deny`", "`ptace` is not a system call"][..],
        ),
        (
            "[seccomp]\nallow = [\"mkdir\"]\n",
            ":2:",
            &["`seccomp.allow`", "`mkdir` is not in the built-in list"],
        ),
        (
            "[seccomp]\ndeny = [\"ptrace\"]\nallow = [\"ptrace\"]\n",
            ":3:",
            &["`seccomp.allow`", "`ptrace` is in seccomp.deny too"],
        ),
        (
            "[seccomp]\naction = \"trap\"\n",
            ":2:",
            &["`seccomp.action`", "\"errno\"", "\"kill\"", "\"log\""],
        ),
        (
            "[seccomp]\ndefault = \"yes\"\n",
            ":2:",
            &["`seccomp.default`", "true or false"],
        ),
        (
            "[seccomp]\ndeny = \"ptrace\"\n",
            ":2:",
            &[
                "`seccomp.deny`",
                "a list of system call names, such as [\"ptrace\"]",
            ],
        ),
        (
            "[seccomp]\nkill = true\n",
            ":2:",
            &[
                "unknown key `seccomp.kill`",
                "`default`, `action`, `deny`, `allow`",
            ],
        ),
    ] {
        let p = write(dir.path(), "p.toml", text);
        let o = synwire(&["-p", &p, "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "{text}: {}", stderr(&o));
        for needle in needles.iter().chain([&format!("{p}{at}").as_str()]) {
            assert!(stderr(&o).contains(needle), "{text}: {}", stderr(&o));
        }
    }
    // The same checks for --set, without a position.
    let o = synwire(&["--set", "seccomp.deny=[\"ptace\"]", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("invalid --set `seccomp.deny=[\"ptace\"]`") && e.contains("`ptace`"),
        "{e}"
    );
}

#[test]
fn profile_prints_the_seccomp_section_and_set_turns_the_built_in_list_on() {
    let home = tempfile::tempdir().unwrap();
    let vars = [("HOME", home.path())];
    let o = synwire_env(
        &["profile", "default", "--set", "seccomp.default=true"],
        &vars,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("[seccomp]\ndefault = true\n"), "{out}");
    let o = synwire_env(
        &[
            "profile",
            "small",
            "--resolved",
            "--set",
            "seccomp.action=kill",
            "--set",
            "seccomp.deny=[\"uname\"]",
            "--set",
            "seccomp.allow=[\"ptrace\"]",
        ],
        &vars,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains(
            "[seccomp]\ndefault = false\naction = \"kill\"\ndeny = [\"uname\"]\nallow = [\"ptrace\"]\n"
        ),
        "{out}"
    );
    let back = synwire_run::profile::parse("small", "printed", &out).unwrap();
    assert_eq!(back.seccomp.deny, ["uname"]);
}

#[test]
fn preserve_fds_requires_the_descriptors_to_be_open() {
    let o = synwire(&["--preserve-fds", "40", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("--preserve-fds 40") && stderr(&o).contains("is not open"),
        "{}",
        stderr(&o)
    );
}

fn synwire_env(args: &[&str], vars: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_synwire-run"));
    c.args(args)
        .env_remove("SYNWIRE_LOG")
        .env_remove("SYNWIRE_PROFILE_PATH");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("run synwire-run")
}

#[test]
fn profiles_lists_search_path_files_before_builtins_and_marks_shadowed_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "coder.toml",
        "description = \"Coding agent\"\nextends = \"small\"\n",
    );
    write(dir.path(), "small.toml", "description = \"My small\"\n");
    let home = tempfile::tempdir().unwrap();
    let o = synwire_env(
        &["profiles"],
        &[("SYNWIRE_PROFILE_PATH", dir.path()), ("HOME", home.path())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("coder ") && lines[0].contains("Coding agent"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("small ") && lines[1].contains("My small"),
        "{out}"
    );
    let builtin_small = lines
        .iter()
        .find(|l| l.starts_with("small ") && l.contains("built-in"))
        .unwrap();
    assert!(builtin_small.contains("(shadowed)"), "{out}");
    for name in ["default", "medium", "large", "isolated", "agent"] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{name} "))),
            "{name}: {out}"
        );
    }
}

#[test]
fn profile_prints_the_effective_merged_profile_which_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "coder.toml",
        "extends = \"small\"\n[limits]\ntimeout = \"30m\"\n",
    );
    let home = tempfile::tempdir().unwrap();
    let vars = [("SYNWIRE_PROFILE_PATH", dir.path()), ("HOME", home.path())];
    let o = synwire_env(&["profile", "coder", "--set", "limits.pids=7"], &vars);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.starts_with("# synwire-run profile coder: coder ("),
        "{out}"
    );
    let table: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(table["limits"]["memory"].as_str(), Some("512MiB"), "{out}");
    assert_eq!(table["limits"]["timeout"].as_str(), Some("1800s"), "{out}");
    assert_eq!(table["limits"]["pids"].as_integer(), Some(7), "{out}");
    assert!(
        table["limits"].get("oom_policy").is_none(),
        "a default: {out}"
    );
    // Saved, it is a profile of its own.
    let saved = write(dir.path(), "saved.toml", &out);
    let o = synwire_env(&["profile", &saved], &vars);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn profile_prints_only_the_keys_a_built_in_sets_and_resolved_prints_every_key() {
    use synwire_run::profile::{self, search};
    let (dir, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let vars = [("SYNWIRE_PROFILE_PATH", dir.path()), ("HOME", home.path())];
    // The directories synwire-run searches with these variables (/etc/synwire/profiles too).
    let dirs = search::search_dirs_from(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.as_os_str().to_owned())
    });
    let keys = |t: &toml::Table| -> Vec<String> {
        let mut out = Vec::new();
        for (name, value) in t {
            out.push(name.clone());
            if let Some(section) = value.as_table() {
                out.extend(section.keys().map(|k| format!("{name}.{k}")));
            }
        }
        out
    };
    for (name, _) in profile::BUILTINS {
        let (want, _, source) = search::load_chain_table(&dirs, name, &[]).unwrap();
        let o = synwire_env(&["profile", name], &vars);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let back =
            profile::parse(name, "printed", &out).unwrap_or_else(|e| panic!("{name}: {e}\n{out}"));
        assert_eq!(back, want, "{name}:\n{out}");
        let set = keys(&source);
        for key in keys(&toml::from_str(&out).unwrap()) {
            assert!(
                set.contains(&key),
                "{name}: `{key}` is not set by the profile:\n{out}"
            );
        }
        // --resolved: every key, those the profile leaves to their default too.
        let o = synwire_env(&["profile", name, "--resolved"], &vars);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let resolved = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(
            profile::parse(name, "resolved", &resolved).unwrap(),
            want,
            "{name}"
        );
        let all = keys(&toml::from_str(&resolved).unwrap());
        for key in [
            "limits.oom_policy",
            "cgroup.manager",
            "namespaces.pid",
            "env.clear",
            "seccomp.default",
            "seccomp.action",
        ] {
            assert!(
                all.contains(&key.to_string()),
                "{name} --resolved lacks {key}:\n{resolved}"
            );
        }
    }
}

#[test]
fn an_extends_cycle_and_a_bad_set_exit_125() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", "extends = \"b\"\n");
    write(dir.path(), "b.toml", "extends = \"a\"\n");
    let home = tempfile::tempdir().unwrap();
    let vars = [("SYNWIRE_PROFILE_PATH", dir.path()), ("HOME", home.path())];
    let o = synwire_env(&["profile", "a"], &vars);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("a -> b -> a"), "{}", stderr(&o));
    let o = synwire_env(&["--set", "limits.cpu_weight=0", "--", "true"], &vars);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("invalid --set `limits.cpu_weight=0`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn completions_and_man_page_are_generated() {
    let o = synwire(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("synwire-run") && out.contains("--profile"),
        "{out}"
    );
    let o = synwire(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(".TH synwire-run 1") && out.contains("allow\\-degraded"),
        "{out}"
    );
}

#[test]
fn check_json_is_one_array_of_checks() {
    let o = synwire(&["check", "--json"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks = v.as_array().unwrap();
    assert!(checks.len() >= 8, "{v}");
    for c in checks {
        assert!(c["check"].is_string() && c["detail"].is_string(), "{c}");
        assert!(
            matches!(c["status"].as_str(), Some("OK" | "WARN" | "FAIL")),
            "{c}"
        );
    }
    assert!(checks.iter().any(|c| c["check"] == "cgroup2"), "{v}");
    // The exit code follows the FAIL lines.
    let failed = checks.iter().any(|c| c["status"] == "FAIL");
    assert_eq!(o.status.code(), Some(i32::from(failed)));
}

#[test]
fn check_says_each_fix_once_and_keeps_every_finding() {
    let o = synwire(&["check"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let fixes: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("fix"))
        .filter_map(|l| l.split_once(": ").map(|(_, fix)| fix))
        .filter(|f| !f.starts_with("as for \""))
        .collect();
    for (i, f) in fixes.iter().enumerate() {
        assert!(!fixes[..i].contains(f), "printed twice: {f}\n{out}");
    }
    // Every finding of --json has its line, and every fix it names is printed.
    let json = synwire(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    for c in v.as_array().unwrap() {
        let (check, detail) = (c["check"].as_str().unwrap(), c["detail"].as_str().unwrap());
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("{check:<26} {detail}"))),
            "no line for {check}: {detail}\n{out}"
        );
        if let Some(fix) = c["fix"].as_str() {
            assert!(fixes.contains(&fix), "fix never printed: {fix}\n{out}");
        }
    }
}

/// `synwire-run check --json` with clone3(2) failing with `errno` (a seccomp filter, as container
/// runtimes install, or as a kernel without the call or the flag answers); None: no filter. The
/// finding for clone3 CLONE_INTO_CGROUP.
fn clone3_finding(errno: Option<u32>) -> serde_json::Value {
    use std::os::unix::process::CommandExt;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: Option<u32> = Some(0xc000_003e);
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: Option<u32> = Some(0xc000_00b7);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const AUDIT_ARCH: Option<u32> = None;
    let arch = AUDIT_ARCH.expect("no AUDIT_ARCH for this architecture: add it here");
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    // struct seccomp_data: the syscall number at 0, the architecture at 4.
    let filter = [
        stmt(load, 4),
        jeq(arch, 0, 3),
        stmt(load, 0),
        jeq(libc::SYS_clone3 as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | errno.unwrap_or(0)),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let mut c = Command::new(env!("CARGO_BIN_EXE_synwire-run"));
    c.args(["check", "--json"]).env_remove("SYNWIRE_LOG");
    if errno.is_some() {
        // SAFETY: between fork and exec the closure makes two prctl calls on data built before
        // the fork (`filter` is moved in); it allocates nothing.
        unsafe {
            c.pre_exec(move || {
                let prog = libc::sock_fprog {
                    len: filter.len() as u16,
                    filter: filter.as_ptr() as *mut libc::sock_filter,
                };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        &prog as *const libc::sock_fprog,
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let o = c.output().expect("run synwire-run check");
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "clone3 CLONE_INTO_CGROUP")
        .cloned()
        .unwrap_or_else(|| panic!("no clone3 finding: {v}"))
}

#[test]
fn check_probes_clone3_and_names_why_a_seccomp_filter_or_an_old_kernel_refuses_it() {
    for (errno, needle) in [
        (libc::ENOSYS, "no: no clone3 here (ENOSYS"),
        (libc::EPERM, "no: clone3 is forbidden (EPERM"),
        (
            libc::E2BIG,
            "no: clone3 refuses the flag (E2BIG), as kernels before 5.7 do",
        ),
    ] {
        let c = clone3_finding(Some(errno as u32));
        assert_eq!(c["status"], "WARN", "{errno}: {c}");
        assert!(
            c["detail"].as_str().unwrap().starts_with(needle),
            "{errno}: {c}"
        );
        assert!(
            c["fix"].as_str().unwrap().contains("falls back to fork"),
            "{c}"
        );
    }
    // Unfiltered, the probe gets an answer it knows, whatever this kernel has.
    let c = clone3_finding(None);
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail == "yes (probed)" || detail.starts_with("no: "),
        "{c}"
    );
}

#[test]
fn diagnostics_carry_no_colour_when_stderr_is_not_a_terminal() {
    let o = synwire(&["--memory", "12Q", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).starts_with("synwire-run: error: "),
        "{}",
        stderr(&o)
    );
    assert!(
        !o.stderr.contains(&0x1b),
        "escape codes in {:?}",
        stderr(&o)
    );
}

#[test]
fn help_names_every_built_in_profile() {
    let o = synwire(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    let line = help
        .lines()
        .skip_while(|l| !l.contains("-p, --profile"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    for (name, _) in synwire_run::profile::BUILTINS {
        assert!(line.contains(name), "--help does not name `{name}`: {line}");
    }
}
