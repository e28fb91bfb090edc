//! Least privilege (issue 4): the agent's capabilities, no_new_privs, user and groups,
//! environment, inherited descriptors and rlimits, as the agent itself sees them in /proc, and
//! every invalid value refused before anything is created. Unified layout only; every name
//! starts with `sec/`.

use std::collections::BTreeMap;

use crate::harness::user;
use crate::harness::{ensure, run_with, Caller, Run, Setup, Spawn, PATH, VMTEST};
use crate::layout::{self, Env};
use crate::tests::{root, TestFn};

/// The agent prints these lines of its /proc/self/status, then tries to bind port 80 (what
/// CAP_NET_BIND_SERVICE is for).
const SHOW_STATUS: &str =
    "grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):' /proc/self/status; \
     /usr/bin/synwire-vmtest bind 80";

const ZERO: &str = "0000000000000000";
/// CAP_NET_BIND_SERVICE (10) alone.
const NET_BIND: &str = "0000000000000400";
const CAP_SETS: [&str; 5] = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"];

/// The caller's secret and the variables `[env]` passes by default, set in synwire-run's
/// environment (PATH is the harness's).
const CALLER_ENV: [(&str, &str); 5] = [
    ("SECRET_TOKEN", "tok-7f3a9c"),
    ("HOME", "/tmp/sec-home"),
    ("LANG", "C.UTF-8"),
    ("TERM", "vt100"),
    ("OTHER_VAR", "other"),
];

/// Descriptors the caller leaves open: three in a row, and one far above.
const CALLER_FDS: [i32; 4] = [3, 4, 5, 20];

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    let mut add = |name: &str, f: TestFn| t.push((name.to_string(), f));
    for m in [Spawn::Clone3, Spawn::Fork] {
        let n = m.name();
        add(
            &format!("sec/caps/none/{n}"),
            Box::new(move |e| caps_none(e, m)),
        );
        add(
            &format!("sec/caps/user-ambient/{n}"),
            Box::new(move |e| caps_user_ambient(e, m)),
        );
        add(
            &format!("sec/user/names/{n}"),
            Box::new(move |e| user_names(e, m)),
        );
        add(
            &format!("sec/fds/closed/{n}"),
            Box::new(move |e| fds_closed(e, root(e), m, &[])),
        );
        add(
            &format!("sec/fds/preserve/{n}"),
            Box::new(move |e| fds_preserve(e, root(e), m, &[])),
        );
    }
    add(
        "sec/caps/keep-one",
        Box::new(|e| caps_keep_one(e, "NET_BIND_SERVICE")),
    );
    add(
        "sec/caps/keep-one-lowercase",
        Box::new(|e| caps_keep_one(e, "cap_net_bind_service")),
    );
    add("sec/caps/user-drops", Box::new(caps_user_drops));
    add("sec/caps/default", Box::new(|e| caps_inherited(e, None)));
    add(
        "sec/caps/all",
        Box::new(|e| caps_inherited(e, Some("[security]\ncapabilities = \"all\"\n"))),
    );
    add("sec/nnp/off", Box::new(nnp_off));
    add(
        "sec/caps/unshare-all/root",
        Box::new(|e| caps_none_unshare_all(e, root(e))),
    );
    add(
        "sec/caps/unshare-all/user",
        Box::new(|e| caps_none_unshare_all(e, user(e))),
    );
    add("sec/user/numeric", Box::new(user_numeric));
    add("sec/user/primary-group", Box::new(user_primary_group));
    add("sec/env/default-keeps", Box::new(env_default_keeps));
    add(
        "sec/env/clear/root",
        Box::new(|e| env_clear(e, root(e), &[])),
    );
    add(
        "sec/env/clear/user",
        Box::new(|e| env_clear(e, user(e), &[])),
    );
    add(
        "sec/env/clear/user-unshare-all",
        Box::new(|e| env_clear(e, user(e), &["--unshare", "all"])),
    );
    add("sec/env/clear-pass-set", Box::new(env_clear_pass_set));
    add("sec/env/set-unset", Box::new(env_set_unset));
    add(
        "sec/fds/closed/unshare-all",
        Box::new(|e| fds_closed(e, root(e), Spawn::Clone3, &["--unshare", "all"])),
    );
    add(
        "sec/fds/closed/user",
        Box::new(|e| fds_closed(e, user(e), Spawn::Clone3, &[])),
    );
    add(
        "sec/fds/closed/user-unshare-all",
        Box::new(|e| fds_closed(e, user(e), Spawn::Clone3, &["--unshare", "all"])),
    );
    add(
        "sec/fds/preserve/user",
        Box::new(|e| fds_preserve(e, user(e), Spawn::Clone3, &[])),
    );
    add(
        "sec/fds/preserve/unshare-all",
        Box::new(|e| fds_preserve(e, root(e), Spawn::Clone3, &["--unshare", "all"])),
    );
    add("sec/rlimits/root", Box::new(|e| rlimits(e, root(e), &[])));
    add("sec/rlimits/root-raises", Box::new(rlimits_root_raises));
    add(
        "sec/rlimits/fsize-enforced",
        Box::new(rlimits_fsize_enforced),
    );
    add(
        "sec/error/user-in-userns/root",
        Box::new(|e| error_user_in_userns(e, root(e))),
    );
    add(
        "sec/error/user-in-userns/user",
        Box::new(|e| error_user_in_userns(e, user(e))),
    );
    add("sec/rlimits/user", Box::new(|e| rlimits(e, user(e), &[])));
    add(
        "sec/rlimits/unshare-all",
        Box::new(|e| rlimits(e, root(e), &["--unshare", "all"])),
    );
    for (name, text, needles) in BAD_PROFILES {
        add(
            &format!("sec/error/{name}"),
            Box::new(move |e| error_profile(e, &root(e), name, text, needles)),
        );
    }
    add("sec/error/user-not-root", Box::new(error_user_not_root));
    add(
        "sec/error/rlimit-above-hard",
        Box::new(error_rlimit_above_hard),
    );
    add(
        "sec/error/preserve-fds-not-open",
        Box::new(error_preserve_fds_not_open),
    );
}

/// Writes `/tmp/sec-NAME.toml` and returns its path.
fn profile(name: &str, text: &str) -> Result<String, String> {
    let path = format!("/tmp/sec-{}.toml", name.replace('/', "-"));
    std::fs::write(&path, text).map_err(|e| format!("write {path}: {e}"))?;
    Ok(path)
}

/// Runs `SHOW_STATUS` as the agent with profile text `prof` (None: no --profile) and `extra`
/// arguments.
fn status_run(
    env: &Env,
    caller: &Caller,
    m: Spawn,
    setup: &Setup,
    name: &str,
    prof: Option<&str>,
    extra: &[&str],
) -> Result<Status, String> {
    let path = prof.map(|p| profile(name, p)).transpose()?;
    let mut args = vec!["-q"];
    if let Some(p) = &path {
        args.extend(["--profile", p]);
    }
    args.extend(extra);
    args.extend(["--", "sh", "-c", SHOW_STATUS]);
    let r = run_with(env, caller, m, setup, &args)?;
    r.expect_code(0)?;
    Status::parse(r)
}

/// The agent's /proc/self/status lines (values with runs of blanks made one space) and the
/// outcome of its bind to port 80.
struct Status {
    fields: BTreeMap<String, String>,
    bind: String,
    run: Run,
}

impl Status {
    fn parse(run: Run) -> Result<Status, String> {
        let mut fields = BTreeMap::new();
        let mut bind = String::new();
        for l in run.stdout.lines() {
            if l.starts_with("bound ") || l.starts_with("bind ") {
                bind = l.to_string();
            } else if let Some((k, v)) = l.split_once(':') {
                let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
                fields.insert(k.to_string(), v);
            }
        }
        ensure(
            fields.contains_key("NoNewPrivs") && !bind.is_empty(),
            || format!("no status or bind line from the agent: {}", run.show()),
        )?;
        Ok(Status { fields, bind, run })
    }

    fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map(String::as_str)
            .unwrap_or("<missing>")
    }

    /// Every (key, value) of `want` as the agent saw it.
    fn expect(&self, want: &[(&str, &str)]) -> Result<(), String> {
        let wrong: Vec<String> = want
            .iter()
            .filter(|(k, v)| self.get(k) != *v)
            .map(|(k, v)| format!("{k} {:?} (expected {v:?})", self.get(k)))
            .collect();
        ensure(wrong.is_empty(), || {
            format!("agent status: {}; {}", wrong.join(", "), self.run.show())
        })
    }

    fn expect_caps(&self, sets: &[&str], value: &str) -> Result<(), String> {
        let want: Vec<(&str, &str)> = sets.iter().map(|s| (*s, value)).collect();
        self.expect(&want)
    }

    fn expect_bind(&self, allowed: bool) -> Result<(), String> {
        ensure(self.bind.starts_with("bound ") == allowed, || {
            format!(
                "binding port 80 should {}: {:?}; {}",
                if allowed { "work" } else { "fail" },
                self.bind,
                self.run.show()
            )
        })
    }
}

/// A status field four times (real, effective, saved, filesystem ids).
fn ids(id: u32) -> String {
    vec![id.to_string(); 4].join(" ")
}

/// The runner's own /proc/self/status field `key`.
fn our_status(key: &str) -> Result<String, String> {
    let s = layout::read(std::path::Path::new("/proc/self/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {key} in our /proc/self/status"))
}

/// `capabilities = []` for root: nothing in any of the five sets, no_new_privs, and port 80 is
/// refused to root.
fn caps_none(env: &Env, m: Spawn) -> Result<(), String> {
    let s = status_run(
        env,
        &root(env),
        m,
        &Setup::default(),
        "caps-none",
        Some("[security]\ncapabilities = []\n"),
        &[],
    )?;
    s.expect_caps(&CAP_SETS, ZERO)?;
    s.expect(&[("NoNewPrivs", "1"), ("Uid", &ids(0))])?;
    s.expect_bind(false)
}

/// One capability kept by root: only bit 10 in the effective, permitted and bounding sets.
fn caps_keep_one(env: &Env, name: &str) -> Result<(), String> {
    let s = status_run(
        env,
        &root(env),
        Spawn::Clone3,
        &Setup::default(),
        "caps-keep-one",
        Some(&format!("[security]\ncapabilities = [\"{name}\"]\n")),
        &[],
    )?;
    s.expect_caps(&["CapEff", "CapPrm", "CapBnd"], NET_BIND)?;
    s.expect(&[("NoNewPrivs", "1")])?;
    s.expect_bind(true)
}

/// Switching to nobody keeps the capability through the ambient set, so the programs nobody
/// runs still have it.
fn caps_user_ambient(env: &Env, m: Spawn) -> Result<(), String> {
    let s = status_run(
        env,
        &root(env),
        m,
        &Setup::default(),
        "caps-user-ambient",
        Some("[security]\nuser = \"nobody\"\ncapabilities = [\"NET_BIND_SERVICE\"]\n"),
        &[],
    )?;
    s.expect_caps(&["CapEff", "CapPrm", "CapBnd", "CapAmb"], NET_BIND)?;
    s.expect(&[("Uid", &ids(65534)), ("NoNewPrivs", "1")])?;
    s.expect_bind(true)
}

/// Switching to nobody without `capabilities` leaves it none to use, as after su.
fn caps_user_drops(env: &Env) -> Result<(), String> {
    let s = status_run(
        env,
        &root(env),
        Spawn::Clone3,
        &Setup::default(),
        "caps-user-drops",
        Some("[security]\nuser = \"nobody\"\n"),
        &[],
    )?;
    s.expect_caps(&["CapEff", "CapPrm", "CapAmb"], ZERO)?;
    s.expect(&[("Uid", &ids(65534)), ("NoNewPrivs", "1")])?;
    s.expect_bind(false)
}

/// Without `capabilities` (or with "all") root's agent keeps root's capabilities; no_new_privs is
/// on by default even without a [security] section.
fn caps_inherited(env: &Env, prof: Option<&str>) -> Result<(), String> {
    let s = status_run(
        env,
        &root(env),
        Spawn::Clone3,
        &Setup::default(),
        "caps-inherited",
        prof,
        &[],
    )?;
    let eff = our_status("CapEff")?;
    ensure(eff != ZERO, || {
        "the runner (root) has no capabilities".into()
    })?;
    s.expect(&[
        ("CapEff", &eff),
        ("CapPrm", &our_status("CapPrm")?),
        ("CapBnd", &our_status("CapBnd")?),
        ("NoNewPrivs", "1"),
    ])?;
    s.expect_bind(true)
}

fn nnp_off(env: &Env) -> Result<(), String> {
    let s = status_run(
        env,
        &root(env),
        Spawn::Clone3,
        &Setup::default(),
        "nnp-off",
        Some("[security]\nno_new_privileges = false\n"),
        &[],
    )?;
    s.expect(&[("NoNewPrivs", "0")])
}

/// Root of a new user namespace has every capability there; `capabilities = []` takes them all.
fn caps_none_unshare_all(env: &Env, caller: Caller) -> Result<(), String> {
    let s = status_run(
        env,
        &caller,
        Spawn::Clone3,
        &Setup::default(),
        "caps-none-unshare-all",
        Some("[security]\ncapabilities = []\n"),
        &["--unshare", "all"],
    )?;
    s.expect_caps(&CAP_SETS, ZERO)?;
    s.expect(&[("NoNewPrivs", "1"), ("Uid", &ids(0))])?;
    s.expect_bind(false)
}

/// A root caller with supplementary groups 10 and 20: the agent keeps them without a switch, and
/// has none after switching to nobody:nogroup.
fn user_names(env: &Env, m: Spawn) -> Result<(), String> {
    let setup = Setup {
        groups: vec![10, 20],
        ..Setup::default()
    };
    let s = status_run(env, &root(env), m, &setup, "user-none", None, &[])?;
    s.expect(&[("Uid", &ids(0)), ("Groups", "10 20")])?;
    let s = status_run(
        env,
        &root(env),
        m,
        &setup,
        "user-names",
        Some("[security]\nuser = \"nobody\"\ngroup = \"nogroup\"\n"),
        &[],
    )?;
    s.expect(&[("Uid", &ids(65534)), ("Gid", &ids(65534)), ("Groups", "")])
}

/// uid and gid as numbers, and as a string of digits.
fn user_numeric(env: &Env) -> Result<(), String> {
    let setup = Setup {
        groups: vec![10],
        ..Setup::default()
    };
    for (name, prof, uid, gid) in [
        ("user-numeric", "user = 1000\ngroup = 2001\n", 1000, 2001),
        (
            "user-numeric-str",
            "user = \"65534\"\ngroup = \"1000\"\n",
            65534,
            1000,
        ),
    ] {
        let s = status_run(
            env,
            &root(env),
            Spawn::Clone3,
            &setup,
            name,
            Some(&format!("[security]\n{prof}")),
            &[],
        )?;
        s.expect(&[("Uid", &ids(uid)), ("Gid", &ids(gid)), ("Groups", "")])?;
    }
    Ok(())
}

/// Without `group` the user's primary group from /etc/passwd: `agent` is uid 2000, gid 2001.
fn user_primary_group(env: &Env) -> Result<(), String> {
    for (name, user) in [("user-primary", "\"agent\""), ("user-primary-num", "2000")] {
        let s = status_run(
            env,
            &root(env),
            Spawn::Clone3,
            &Setup::default(),
            name,
            Some(&format!("[security]\nuser = {user}\n")),
            &[],
        )?;
        s.expect(&[("Uid", &ids(2000)), ("Gid", &ids(2001)), ("Groups", "")])?;
    }
    Ok(())
}

fn caller_env() -> Setup {
    Setup {
        env: CALLER_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Setup::default()
    }
}

/// Runs `/usr/bin/env` as the agent with the caller's environment CALLER_ENV; returns its
/// variables, sorted.
fn env_run(
    env: &Env,
    caller: &Caller,
    name: &str,
    prof: Option<&str>,
    extra: &[&str],
) -> Result<(Vec<String>, Run), String> {
    let path = prof.map(|p| profile(name, p)).transpose()?;
    let mut args = vec!["-q"];
    if let Some(p) = &path {
        args.extend(["--profile", p]);
    }
    args.extend(extra);
    args.extend(["--", "/usr/bin/env"]);
    let r = run_with(env, caller, Spawn::Clone3, &caller_env(), &args)?;
    r.expect_code(0)?;
    let mut vars: Vec<String> = r.stdout.lines().map(str::to_string).collect();
    vars.sort();
    Ok((vars, r))
}

fn expect_exact_env(got: &[String], r: &Run, want: &[&str]) -> Result<(), String> {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    ensure(got == want, || {
        format!(
            "agent environment {got:?}, expected exactly {want:?}; {}",
            r.show()
        )
    })
}

/// Without [env] the agent has the caller's environment, secret included (so the other env
/// tests see a real secret to remove).
fn env_default_keeps(env: &Env) -> Result<(), String> {
    let (vars, r) = env_run(env, &root(env), "env-default", None, &[])?;
    for want in ["SECRET_TOKEN=tok-7f3a9c", "OTHER_VAR=other", "LANG=C.UTF-8"] {
        ensure(vars.iter().any(|v| v == want), || {
            format!("agent environment lacks {want}: {}", r.show())
        })?;
    }
    Ok(())
}

/// `clear = true`: only PATH, HOME, LANG and TERM come through; the secret does not.
fn env_clear(env: &Env, caller: Caller, extra: &[&str]) -> Result<(), String> {
    let (vars, r) = env_run(
        env,
        &caller,
        "env-clear",
        Some("[env]\nclear = true\n"),
        extra,
    )?;
    let path = format!("PATH={PATH}");
    expect_exact_env(
        &vars,
        &r,
        &[&path, "HOME=/tmp/sec-home", "LANG=C.UTF-8", "TERM=vt100"],
    )
}

/// `pass` replaces the default list; `set` adds to it.
fn env_clear_pass_set(env: &Env) -> Result<(), String> {
    let prof = "[env]\nclear = true\npass = [\"OTHER_VAR\"]\nset = { AGENT_MODE = \"sandbox\" }\n";
    let (vars, r) = env_run(env, &root(env), "env-pass-set", Some(prof), &[])?;
    expect_exact_env(&vars, &r, &["OTHER_VAR=other", "AGENT_MODE=sandbox"])
}

/// Without clear: `unset` removes the secret, `set` adds one variable and overrides another, the
/// rest stays.
fn env_set_unset(env: &Env) -> Result<(), String> {
    let prof =
        "[env]\nset = { AGENT_MODE = \"sandbox\", LANG = \"C\" }\nunset = [\"SECRET_TOKEN\"]\n";
    let (vars, r) = env_run(env, &root(env), "env-set-unset", Some(prof), &[])?;
    let path = format!("PATH={PATH}");
    for want in [
        "AGENT_MODE=sandbox",
        "LANG=C",
        "OTHER_VAR=other",
        "TERM=vt100",
        path.as_str(),
    ] {
        ensure(vars.iter().any(|v| v == want), || {
            format!("agent environment lacks {want}: {}", r.show())
        })?;
    }
    ensure(
        !vars
            .iter()
            .any(|v| v.starts_with("SECRET_TOKEN=") || v.starts_with("LANG=C.UTF-8")),
        || format!("SECRET_TOKEN or the old LANG still set: {}", r.show()),
    )
}

fn fds_setup() -> Setup {
    Setup {
        fds: CALLER_FDS.to_vec(),
        ..Setup::default()
    }
}

/// Runs `synwire-vmtest fds` as the agent while the caller holds CALLER_FDS open; checks its line.
fn fds_run(env: &Env, caller: &Caller, m: Spawn, args: &[&str], want: &str) -> Result<(), String> {
    let mut all = vec!["-q"];
    all.extend(args);
    all.extend(["--", VMTEST, "fds"]);
    let r = run_with(env, caller, m, &fds_setup(), &all)?;
    r.expect_code(0)?;
    ensure(r.stdout.trim_end() == want, || {
        format!("agent descriptors: expected {want:?}; {}", r.show())
    })
}

/// Descriptors the caller leaves open do not reach the agent.
fn fds_closed(env: &Env, caller: Caller, m: Spawn, extra: &[&str]) -> Result<(), String> {
    fds_run(env, &caller, m, extra, "fds 0 1 2")
}

/// `--preserve-fds 2`: 3 and 4 reach the agent, still on the caller's files; 5 and 20 do not.
fn fds_preserve(env: &Env, caller: Caller, m: Spawn, extra: &[&str]) -> Result<(), String> {
    let mut args = vec!["--preserve-fds", "2"];
    args.extend(extra);
    let uid = caller.uid.unwrap_or(0);
    let want = format!("fds 0 1 2 3:/tmp/synwire-fd-{uid}-3 4:/tmp/synwire-fd-{uid}-4");
    fds_run(env, &caller, m, &args, &want)
}

/// The agent's /proc/self/limits shows soft = hard = the profile's value for each limit.
fn rlimits(env: &Env, caller: Caller, extra: &[&str]) -> Result<(), String> {
    let path = profile(
        "rlimits",
        "[rlimits]\nnofile = 777\ncore = 0\ncpu = \"10m\"\nfsize = \"1GiB\"\nnproc = 333\n",
    )?;
    let mut args = vec!["-q", "--profile", &path];
    args.extend(extra);
    args.extend(["--", "cat", "/proc/self/limits"]);
    let r = run_with(env, &caller, Spawn::Clone3, &Setup::default(), &args)?;
    r.expect_code(0)?;
    for (row, want) in [
        ("Max open files", "777"),
        ("Max core file size", "0"),
        ("Max cpu time", "600"),
        ("Max file size", "1073741824"),
        ("Max processes", "333"),
    ] {
        let got: Vec<&str> = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(row))
            .map(|rest| rest.split_whitespace().take(2).collect())
            .unwrap_or_default();
        ensure(got == [want, want], || {
            format!(
                "{row}: soft and hard {got:?}, expected {want}; {}",
                r.show()
            )
        })?;
    }
    Ok(())
}

/// Root may raise a hard limit: nofile above the VM's default hard limit of 4096.
fn rlimits_root_raises(env: &Env) -> Result<(), String> {
    let path = profile("rlimits-raise", "[rlimits]\nnofile = 65536\n")?;
    let r = run_with(
        env,
        &root(env),
        Spawn::Clone3,
        &Setup::default(),
        &[
            "-q",
            "--profile",
            &path,
            "--",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ],
    )?;
    r.expect_code(0)?;
    ensure(r.stdout == "65536\n65536\n", || {
        format!("expected nofile 65536 soft and hard: {}", r.show())
    })
}

/// `fsize` is enforced, not only shown: writing past it kills the writer with SIGXFSZ (exit
/// status 128 + 25 in the shell).
fn rlimits_fsize_enforced(env: &Env) -> Result<(), String> {
    let path = profile("rlimits-fsize", "[rlimits]\nfsize = \"4KiB\"\n")?;
    let script = "head -c 8192 /dev/zero > /tmp/sec-fsize; echo $?; wc -c < /tmp/sec-fsize";
    let r = run_with(
        env,
        &root(env),
        Spawn::Clone3,
        &Setup::default(),
        &["-q", "--profile", &path, "--", "sh", "-c", script],
    )?;
    let _ = std::fs::remove_file("/tmp/sec-fsize");
    r.expect_code(0)?;
    let l: Vec<&str> = r.stdout.split_whitespace().collect();
    ensure(l == ["153", "4096"], || {
        format!(
            "expected the writer killed by SIGXFSZ at 4096 bytes: {}",
            r.show()
        )
    })
}

/// `user = "nobody"` with `--unshare all`: the new user namespace maps only the caller (as root),
/// so nobody cannot be had there; refused with 125 before anything is created, not after the
/// cgroup exists.
fn error_user_in_userns(env: &Env, caller: Caller) -> Result<(), String> {
    let path = profile("user-userns", "[security]\nuser = \"nobody\"\n")?;
    expect_error(
        env,
        &caller,
        &Setup::default(),
        &["--profile", &path, "--unshare", "all", "--", "true"],
        &["security.user", "user namespace"],
    )
}

/// Profiles with one invalid value each, and what the error must name (the key and the value).
const BAD_PROFILES: [(&str, &str, &[&str]); 14] = [
    (
        "capability-unknown",
        "[security]\ncapabilities = [\"NET_BIND_SERVIC\"]\n",
        &["security.capabilities", "NET_BIND_SERVIC"],
    ),
    (
        "capabilities-not-list",
        "[security]\ncapabilities = \"some\"\n",
        &["security.capabilities", "some"],
    ),
    (
        "user-unknown",
        "[security]\nuser = \"no-such-user\"\n",
        &["security.user", "no-such-user"],
    ),
    (
        "group-unknown",
        "[security]\nuser = \"nobody\"\ngroup = \"no-such-group\"\n",
        &["security.group", "no-such-group"],
    ),
    (
        "nnp-not-bool",
        "[security]\nno_new_privileges = \"yes\"\n",
        &["security.no_new_privileges", "yes"],
    ),
    (
        "security-unknown-key",
        "[security]\ncapability = []\n",
        &["capability"],
    ),
    (
        "rlimit-nofile-word",
        "[rlimits]\nnofile = \"lots\"\n",
        &["rlimits.nofile", "lots"],
    ),
    (
        "rlimit-nproc-negative",
        "[rlimits]\nnproc = -5\n",
        &["rlimits.nproc", "-5"],
    ),
    (
        "rlimit-cpu-malformed",
        "[rlimits]\ncpu = \"forever\"\n",
        &["rlimits.cpu", "forever"],
    ),
    (
        "rlimit-fsize-malformed",
        "[rlimits]\nfsize = \"12XB\"\n",
        &["rlimits.fsize", "12XB"],
    ),
    (
        "env-pass-not-list",
        "[env]\nclear = true\npass = \"PATH\"\n",
        &["env.pass", "PATH"],
    ),
    (
        "env-pass-not-strings",
        "[env]\npass = [\"PATH\", 7]\n",
        &["env.pass", "7"],
    ),
    (
        "env-unset-not-list",
        "[env]\nunset = \"SECRET_TOKEN\"\n",
        &["env.unset", "SECRET_TOKEN"],
    ),
    (
        "env-set-not-string",
        "[env]\nset = { AGENT_MODE = 1 }\n",
        &["env.set", "AGENT_MODE"],
    ),
];

fn error_profile(
    env: &Env,
    caller: &Caller,
    name: &str,
    text: &str,
    needles: &[&str],
) -> Result<(), String> {
    let path = profile(&format!("error-{name}"), text)?;
    expect_error(
        env,
        caller,
        &Setup::default(),
        &["--profile", &path, "--", "true"],
        needles,
    )
}

/// Only root may switch user.
fn error_user_not_root(env: &Env) -> Result<(), String> {
    error_profile(
        env,
        &user(env),
        "user-not-root",
        "[security]\nuser = \"nobody\"\n",
        &["security.user", "root"],
    )
}

/// A non-root caller cannot raise a hard limit (uid 1000's nofile hard limit is far below this).
fn error_rlimit_above_hard(env: &Env) -> Result<(), String> {
    error_profile(
        env,
        &user(env),
        "rlimit-above-hard",
        "[rlimits]\nnofile = 100000000\n",
        &["rlimits.nofile", "100000000"],
    )
}

/// `--preserve-fds 2` from a caller that has no descriptor 3.
fn error_preserve_fds_not_open(env: &Env) -> Result<(), String> {
    expect_error(
        env,
        &root(env),
        &Setup::default(),
        &["--preserve-fds", "2", "--", "true"],
        &["--preserve-fds", "3"],
    )
}

fn expect_error(
    env: &Env,
    caller: &Caller,
    setup: &Setup,
    args: &[&str],
    needles: &[&str],
) -> Result<(), String> {
    crate::harness::expect_own_error(env, caller, Spawn::Clone3, setup, args, needles)
}
