//! The profile's tests: every built-in, every key with its checks and messages, the overrides.
//! One file above 400 lines because it is only tests, each a sentence about the format.

use super::*;

fn err(text: &str) -> String {
    parse("t", "/p/t.toml", text).unwrap_err().to_string()
}

#[test]
fn builtins_parse_with_their_documented_limits() {
    for (name, _) in BUILTINS {
        load(name, &Overrides::default()).unwrap();
    }
    let small = load("small", &Overrides::default()).unwrap();
    assert_eq!(small.limits.memory, Some(Size::Bytes(512 << 20)));
    assert_eq!(small.limits.cpu_max().as_deref(), Some("50000 100000"));
    assert_eq!(small.limits.pids, Some(64));
    let medium = load("medium", &Overrides::default()).unwrap();
    assert_eq!(medium.limits.memory, Some(Size::Bytes(2 << 30)));
    assert_eq!(medium.limits.cpu_max().as_deref(), Some("100000 100000"));
    assert_eq!(medium.limits.pids, Some(256));
    let large = load("large", &Overrides::default()).unwrap();
    assert_eq!(large.limits.memory, Some(Size::Bytes(8 << 30)));
    assert_eq!(large.limits.cpu_max().as_deref(), Some("200000 100000"));
    assert_eq!(large.limits.pids, Some(1024));
    let default = load("default", &Overrides::default()).unwrap();
    assert_eq!(default.limits, Limits::default());
    assert!(default.cgroup_required);
}

#[test]
fn the_documented_example_parses() {
    let p = parse(
        "x",
        "x.toml",
        r#"
description = "Interactive coding agent"
[limits]
memory = "512MiB"      # memory.max
memory_high = "448MiB"
swap = "0"
cpu = 0.5
cpu_weight = 100
pids = 64
timeout = "30m"
[stop]
signal = "SIGTERM"
grace = "10s"
[cgroup]
required = true
manager = "cgroupfs"
"#,
    )
    .unwrap();
    assert_eq!(p.description.as_deref(), Some("Interactive coding agent"));
    assert_eq!(p.limits.memory_high, Some(Size::Bytes(448 << 20)));
    assert_eq!(p.limits.swap, Some(Size::Bytes(0)));
    assert_eq!(p.limits.cpu_weight, Some(100));
    assert_eq!(p.limits.timeout, Some(Duration::from_secs(1800)));
    assert_eq!(p.stop.signal, libc::SIGTERM);
    assert_eq!(p.stop.grace, Duration::from_secs(10));
    assert_eq!(p.cgroup_manager, ManagerMode::Cgroupfs);
}

#[test]
fn synwire_library_aliases() {
    let p = parse(
        "x",
        "x.toml",
        "[limits]\nmemory_bytes = 1073741824\ncpu_quota = 0.25\nmax_pids = 10\nexec_timeout_secs = 60\n",
    )
    .unwrap();
    assert_eq!(p.limits.memory, Some(Size::Bytes(1 << 30)));
    assert_eq!(p.limits.cpu_max().as_deref(), Some("25000 100000"));
    assert_eq!(p.limits.pids, Some(10));
    assert_eq!(p.limits.timeout, Some(Duration::from_secs(60)));
    let e = err("[limits]\nmemory = \"1G\"\nmemory_bytes = 5000000\n");
    assert!(
        e.contains("/p/t.toml:3:16") && e.contains("limits.memory_bytes") && e.contains("keep one"),
        "{e}"
    );
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let e = err("description = \"x\"\n[limits]\nmemroy = \"1G\"\n");
    assert!(e.starts_with("invalid profile /p/t.toml:3:1:"), "{e}");
    assert!(e.contains("unknown key `limits.memroy`"), "{e}");
    assert!(e.contains("`memory`"), "lists the allowed keys: {e}");
    let e = err("[limts]\nmemory = 1\n");
    assert!(e.contains(":1:2:") && e.contains("`limts`"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = err("[limits]\npids = \"many\"\n");
    assert!(
        e.contains("/p/t.toml:2:8") && e.contains("`limits.pids`") && e.contains("whole number"),
        "{e}"
    );
    let e = err("[limits]\ncpu = \"half\"\n");
    assert!(e.contains("`limits.cpu`") && e.contains("0.5"), "{e}");
    let e = err("[cgroup]\nrequired = \"yes\"\n");
    assert!(
        e.contains(":2:12:") && e.contains("`cgroup.required`"),
        "{e}"
    );
    let e = err("[cgroup]\nmanager = \"dbus\"\n");
    assert!(
        e.contains(":2:11:") && e.contains("`cgroup.manager`") && e.contains("auto, systemd"),
        "{e}"
    );
    let e = err("description = 5\n");
    assert!(e.contains("`description`") && e.contains("string"), "{e}");
}

#[test]
fn out_of_range_values() {
    for (text, key, col) in [
        ("[limits]\ncpu_weight = 20000\n", "limits.cpu_weight", 14),
        ("[limits]\ncpu = 0\n", "limits.cpu", 7),
        ("[limits]\npids = 0\n", "limits.pids", 8),
        ("[limits]\nmemory = \"512\"\n", "limits.memory", 10),
        ("[limits]\nmemory = \"12Q\"\n", "limits.memory", 10),
        ("[limits]\ntimeout = \"0s\"\n", "limits.timeout", 11),
        ("[limits]\ntimeout = \"soon\"\n", "limits.timeout", 11),
        (
            "[limits]\nmemory = \"1G\"\nmemory_high = \"2G\"\n",
            "limits.memory_high",
            15,
        ),
        ("[stop]\nsignal = \"SIGFOO\"\n", "stop.signal", 10),
        ("[stop]\ngrace = -1\n", "stop.grace", 9),
    ] {
        let e = err(text);
        let line = text.lines().count();
        assert!(
            e.contains(&format!("/p/t.toml:{line}:{col}:")),
            "{text:?}: {e}"
        );
        assert!(e.contains(&format!("`{key}`")), "{text:?}: {e}");
    }
    assert!(err("[limits]\nmemory = \"512\"\n").contains("\"512MiB\""));
}

#[test]
fn syntax_errors_have_positions() {
    let e = err("[limits\n");
    assert!(
        e.contains("/p/t.toml:1:8") && e.contains("not valid TOML"),
        "{e}"
    );
}

#[test]
fn overrides_replace_profile_limits_and_are_validated() {
    let o = Overrides {
        memory: Some("1GiB".into()),
        cpu: Some("1.5".into()),
        pids: Some("32".into()),
        timeout: Some("90s".into()),
        ..Default::default()
    };
    let p = load("small", &o).unwrap();
    assert_eq!(p.limits.memory, Some(Size::Bytes(1 << 30)));
    assert_eq!(p.limits.cpu_max().as_deref(), Some("150000 100000"));
    assert_eq!(p.limits.pids, Some(32));
    assert_eq!(p.limits.timeout, Some(Duration::from_secs(90)));
    for (o, flag) in [
        (
            Overrides {
                memory: Some("lots".into()),
                ..Default::default()
            },
            "--memory `lots`",
        ),
        (
            Overrides {
                cpu: Some("-1".into()),
                ..Default::default()
            },
            "--cpu `-1`",
        ),
        (
            Overrides {
                pids: Some("0".into()),
                ..Default::default()
            },
            "--pids `0`",
        ),
        (
            Overrides {
                timeout: Some("x".into()),
                ..Default::default()
            },
            "--timeout `x`",
        ),
    ] {
        let e = load("default", &o).unwrap_err().to_string();
        assert!(e.starts_with(&format!("invalid {flag}")), "{e}");
    }
}

#[test]
fn unknown_profile_and_missing_file() {
    let e = load("smal", &Overrides::default()).unwrap_err().to_string();
    assert!(
        e.contains("`smal`") && e.contains("default, small, medium, large"),
        "{e}"
    );
    let e = load("/nonexistent/p.toml", &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/p.toml") && e.contains("No such file"),
        "{e}"
    );
    assert!(is_path("./x") && is_path("x.toml") && !is_path("small"));
}

#[test]
fn signals() {
    assert_eq!(signal_number("SIGTERM"), Some(libc::SIGTERM));
    assert_eq!(signal_number("int"), Some(libc::SIGINT));
    assert_eq!(signal_number("9"), Some(9));
    assert_eq!(signal_number("SIGNOPE"), None);
    assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
}

#[test]
fn namespaces_section_and_unshare_flag() {
    let p = parse(
        "x",
        "x.toml",
        "[namespaces]\nuser = true\npid = true\nuts = true\nhostname = \"box-1\"\n",
    )
    .unwrap();
    assert_eq!(p.namespaces.names(), ["user", "pid", "uts"]);
    assert_eq!(p.namespaces.hostname, "box-1");
    let none = load("default", &Overrides::default()).unwrap();
    assert!(!none.namespaces.any());
    assert_eq!(none.namespaces.hostname, "synwire");

    let o = Overrides {
        unshare: Some("net,ipc".into()),
        ..Default::default()
    };
    let p = load("default", &o).unwrap();
    assert_eq!(p.namespaces.names(), ["net", "ipc"]);
    let o = Overrides {
        unshare: Some("all".into()),
        ..Default::default()
    };
    assert_eq!(
        load("small", &o).unwrap().namespaces.names(),
        NAMESPACE_NAMES
    );
    let o = Overrides {
        unshare: Some("pid,netw".into()),
        ..Default::default()
    };
    let e = load("default", &o).unwrap_err().to_string();
    assert!(
        e.contains("invalid --unshare `pid,netw`") && e.contains("`netw`"),
        "{e}"
    );

    let e = err("[namespaces]\npid = \"yes\"\n");
    assert!(e.contains(":2:7:") && e.contains("`namespaces.pid`"), "{e}");
    let e = err("[namespaces]\nhostname = \"no spaces\"\n");
    assert!(
        e.contains(":2:12:") && e.contains("`namespaces.hostname`"),
        "{e}"
    );
    let e = err("[namespaces]\nnetwork = true\n");
    assert!(e.contains("unknown key `namespaces.network`"), "{e}");
}

#[test]
fn isolated_is_small_plus_every_namespace() {
    let iso = load("isolated", &Overrides::default()).unwrap();
    let small = load("small", &Overrides::default()).unwrap();
    assert_eq!(iso.limits, small.limits);
    assert_eq!(iso.namespaces.names(), NAMESPACE_NAMES);
}

#[test]
fn the_agent_profile() {
    let a = load("agent", &Overrides::default()).unwrap();
    let small = load("small", &Overrides::default()).unwrap();
    assert_eq!(a.limits, small.limits);
    assert_eq!(a.namespaces.names(), NAMESPACE_NAMES);
    assert!(a.env.clear);
    assert_eq!(a.env.pass, ["PATH", "HOME", "LANG", "TERM"]);
    assert_eq!(a.security.capabilities, Some(0));
    assert!(a.security.no_new_privileges);
    let fs = a.filesystem.unwrap();
    assert_eq!(fs.enforce, privilege::Enforce::BestEffort);
    assert_eq!(fs.write, [".", "/tmp", "/dev/null"]);
}

#[test]
fn filesystem_section() {
    let p = parse(
        "x",
        "x.toml",
        "[filesystem]\nenforce = \"required\"\nread = [\"/usr\"]\nwrite = [\"/tmp\"]\n",
    )
    .unwrap();
    let fs = p.filesystem.unwrap();
    assert_eq!(fs.enforce, privilege::Enforce::Required);
    assert!(parse("x", "x.toml", "").unwrap().filesystem.is_none());
    let e = err("[filesystem]\nenforce = \"sometimes\"\n");
    assert!(
        e.contains(":2:11:") && e.contains("`filesystem.enforce`"),
        "{e}"
    );
    let e = err("[filesystem]\nwrite = [\"/no/such/dir-xyz\"]\n");
    assert!(
        e.contains("`filesystem.write`") && e.contains("/no/such/dir-xyz"),
        "{e}"
    );
}

#[test]
fn filesystem_network_and_scope_keys() {
    // Without the keys: TCP unrestricted, both scopes, as before they existed.
    let fs = parse("x", "x.toml", "[filesystem]\n")
        .unwrap()
        .filesystem
        .unwrap();
    assert_eq!((fs.bind_tcp, fs.connect_tcp), (None, None));
    assert_eq!(fs.scope, privilege::Scope::default());
    assert_eq!(fs.scope.names(), ["abstract_unix_socket", "signal"]);
    let text = "[filesystem]\nbind_tcp = []\nconnect_tcp = [443, 0, 65535]\nscope = [\"signal\"]\n";
    let fs = parse("x", "x.toml", text).unwrap().filesystem.unwrap();
    assert_eq!(fs.bind_tcp, Some(vec![]));
    assert_eq!(fs.connect_tcp, Some(vec![443, 0, 65535]));
    assert_eq!(fs.scope.names(), ["signal"]);
    for (text, needle) in [
        (
            "[filesystem]\nbind_tcp = [65536]\n",
            ":2:12: `filesystem.bind_tcp`",
        ),
        (
            "[filesystem]\nconnect_tcp = 443\n",
            ":2:15: `filesystem.connect_tcp`",
        ),
        ("[filesystem]\nconnect_tcp = [\"https\"]\n", "0 to 65535"),
        (
            "[filesystem]\nscope = [\"ptrace\"]\n",
            "`ptrace` is not a Landlock scope",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn filesystem_view_and_hide_keys() {
    let fs = parse("x", "x.toml", "[filesystem]\n")
        .unwrap()
        .filesystem
        .unwrap();
    assert_eq!(fs.view, privilege::View::Host);
    assert!(fs.hide.is_empty());
    let text = "[filesystem]\nview = \"read-only\"\nhide = [\"~/.ssh\", \"/no/such/path\"]\n";
    let fs = parse("x", "x.toml", text).unwrap().filesystem.unwrap();
    assert_eq!(fs.view, privilege::View::ReadOnly);
    // Kept as written: `~` is expanded, and missing paths skipped, at launch.
    assert_eq!(fs.hide, ["~/.ssh", "/no/such/path"]);
    for (text, needle) in [
        (
            "[filesystem]\nview = \"readonly\"\n",
            ":2:8: `filesystem.view`",
        ),
        ("[filesystem]\nhide = \"/etc\"\n", "`filesystem.hide`"),
    ] {
        let e = err(text);
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn security_env_rlimits_sections() {
    let p = parse(
        "x",
        "x.toml",
        "[security]\nno_new_privileges = false\ncapabilities = [\"NET_BIND_SERVICE\", \"cap_kill\"]\nuser = \"root\"\n\
         [env]\nunset = [\"AWS_SECRET_ACCESS_KEY\"]\nset = { AGENT_MODE = \"sandbox\" }\n\
         [rlimits]\nnofile = 1024\ncore = 0\ncpu = \"10m\"\nfsize = \"1GiB\"\nnproc = 512\n",
    )
    .unwrap();
    assert!(!p.security.no_new_privileges);
    assert_eq!(p.security.capabilities, Some((1 << 10) | (1 << 5)));
    assert_eq!((p.security.user, p.security.group), (Some(0), Some(0)));
    assert_eq!(p.env.unset, ["AWS_SECRET_ACCESS_KEY"]);
    assert_eq!(
        p.env.set.get("AGENT_MODE").map(String::as_str),
        Some("sandbox")
    );
    use privilege::Rlimit::*;
    assert_eq!(
        p.rlimits.limits,
        [
            (Nofile, 1024),
            (Core, 0),
            (Nproc, 512),
            (Cpu, 600),
            (Fsize, 1 << 30)
        ]
    );
    let all = parse("x", "x.toml", "[security]\ncapabilities = \"all\"\n").unwrap();
    assert_eq!(all.security.capabilities, None);
    let none = parse("x", "x.toml", "").unwrap();
    assert!(none.security.no_new_privileges && none.security.capabilities.is_none());
    let e = err("[security]\ncapabilities = [\"SYS_FLY\"]\n");
    assert!(
        e.contains(":2:16:") && e.contains("`SYS_FLY` is not a capability"),
        "{e}"
    );
    let e = err("[rlimits]\nnofile = 2\n");
    assert!(e.contains("`rlimits.nofile`"), "{e}");
}

#[test]
fn oom_policy_is_kill_unless_continue_is_asked_for() {
    for (name, _) in BUILTINS {
        let p = load(name, &Overrides::default()).unwrap();
        assert_eq!(p.limits.oom_policy, OomPolicy::Kill, "{name}");
    }
    let p = parse("t", "t", "[limits]\noom_policy = \"continue\"\n").unwrap();
    assert_eq!(p.limits.oom_policy, OomPolicy::Continue);
    let e = err("[limits]\noom_policy = \"stop\"\n");
    assert!(
        e.contains("/p/t.toml:2:")
            && e.contains("limits.oom_policy")
            && e.contains("\"kill\"")
            && e.contains("\"continue\""),
        "{e}"
    );
    let e = err("[limits]\noom_policy = true\n");
    assert!(
        e.contains("limits.oom_policy") && e.contains("string"),
        "{e}"
    );
    let o = Overrides {
        sets: vec!["limits.oom_policy=continue".into()],
        ..Default::default()
    };
    let p = load("small", &o).unwrap();
    assert_eq!(p.limits.oom_policy, OomPolicy::Continue);
    assert_eq!(p.limits.memory, Some(Size::Bytes(512 << 20)));
    let o = Overrides {
        sets: vec!["limits.oom_policy=sometimes".into()],
        ..Default::default()
    };
    let e = load("small", &o).unwrap_err().to_string();
    assert!(
        e.contains("--set") && e.contains("limits.oom_policy"),
        "{e}"
    );
    let text = p.to_toml();
    assert!(text.contains("oom_policy = \"continue\""), "{text}");
    assert_eq!(parse("small", "rendered", &text).unwrap(), p);
}

#[test]
fn every_namespace_of_the_table_is_a_key_of_its_own_in_the_namespaces_section() {
    for name in NAMESPACE_NAMES {
        let p = parse("t", "/p/t.toml", &format!("[namespaces]\n{name} = true\n")).unwrap();
        assert_eq!(p.namespaces.names(), [name]);
        let e = err(&format!("[namespaces]\n{name} = 1\n"));
        assert!(e.contains(&format!("`namespaces.{name}`")), "{e}");
    }
}

#[test]
fn the_network_section_and_its_flags() {
    use network::Mode;
    let p = parse(
        "t",
        "t",
        "[network]\nmode = \"proxy\"\nallow = [\"pypi.org\", \"*.pythonhosted.org\", \"localhost:11434\"]\n",
    )
    .unwrap();
    assert_eq!(p.network.mode, Mode::Proxy);
    assert_eq!(p.network.allow.len(), 3);
    assert_eq!(
        load("default", &Overrides::default()).unwrap().network.mode,
        Mode::Host
    );
    let net = load("agent-net", &Overrides::default()).unwrap();
    assert_eq!(net.network.mode, Mode::Proxy);
    assert!(net.network.allow.is_empty());
    assert_eq!(
        net.limits,
        load("agent", &Overrides::default()).unwrap().limits
    );

    let e = err("[network]\nmode = \"off\"\n");
    assert!(
        e.contains("/p/t.toml:2:8") && e.contains("network.mode"),
        "{e}"
    );
    assert!(e.contains("\"none\" (loopback only)"), "{e}");
    let e = err("[network]\nallow = \"pypi.org\"\n");
    assert!(e.contains("expected a list of hosts"), "{e}");
    let e = err("[network]\nallow = [\"https://pypi.org/simple\"]\n");
    assert!(
        e.contains("/p/t.toml:2:9") && e.contains("https://pypi.org/simple"),
        "{e}"
    );

    // --allow-host adds and implies proxy; --network overrides the mode.
    let o = Overrides {
        allow_hosts: vec!["api.openai.com".into(), "Example.COM.:8443".into()],
        ..Default::default()
    };
    let p = load("default", &o).unwrap();
    assert_eq!(p.network.mode, Mode::Proxy);
    assert_eq!(p.network.allow, ["api.openai.com", "Example.COM.:8443"]);
    let o = Overrides {
        network: Some("none".into()),
        ..Default::default()
    };
    assert_eq!(load("agent-net", &o).unwrap().network.mode, Mode::None);
    let o = Overrides {
        network: Some("none".into()),
        allow_hosts: vec!["pypi.org".into()],
        ..Default::default()
    };
    let e = load("default", &o).unwrap_err().to_string();
    assert!(
        e.contains("--allow-host") && e.contains("--network proxy"),
        "{e}"
    );
    let o = Overrides {
        allow_hosts: vec!["*".into()],
        ..Default::default()
    };
    let e = load("default", &o).unwrap_err().to_string();
    assert!(e.contains("--allow-host `*`"), "{e}");
}
