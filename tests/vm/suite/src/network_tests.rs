//! `[network]` on real kernels: `mode = "proxy"` lets the agent reach exactly the hosts in `allow`
//! through synwire-run's HTTP and SOCKS5 proxies and nothing else (no direct TCP, not even to the
//! VM's own addresses, no DNS), `none` leaves it only `lo`, and the statistics count what was
//! allowed and denied. The far side is net_fixtures.rs: a server on the VM's extra address
//! 10.77.0.1 (on `lo`, so the proxy in the VM's namespace reaches it) named by /etc/hosts.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{ensure, run, start, user, Caller, Run, Spawn, SIGNALED, VMTEST};
use crate::layout::Env;
use crate::net_fixtures::Net;
use crate::net_helpers::pattern_fnv;
use crate::tests::{note, root, TestFn};

pub fn add_all(t: &mut Vec<(String, TestFn)>) {
    let mut add = |name: &str, f: TestFn| t.push((format!("net/{name}"), f));
    add("mode-keys", Box::new(mode_keys));
    add("allow-host-implies-proxy", Box::new(allow_implies_proxy));
    add("allowed/root", Box::new(|e| allowed(e, root(e))));
    add("allowed/user", Box::new(|e| allowed(e, user(e))));
    add("denied", Box::new(denied));
    add("wildcard", Box::new(wildcard));
    add("link-local", Box::new(link_local));
    add("bypass", Box::new(bypass));
    add("none", Box::new(none));
    add(
        "none-without-user-namespaces",
        Box::new(none_without_userns),
    );
    add(
        "loopback-forward/root",
        Box::new(|e| loopback_forward(e, root(e))),
    );
    add(
        "loopback-forward/user-agent-net",
        Box::new(|e| loopback_forward(e, user(e))),
    );
    add("many-intact", Box::new(many_intact));
    add("agent-killed-mid-transfer", Box::new(agent_killed));
    add("launcher-sigterm-mid-transfer", Box::new(launcher_sigterm));
    add("slow-peer-timeout", Box::new(slow_peer_timeout));
    add("throughput", Box::new(throughput));
}

/// Body size of the ordinary fetches.
const BODY: u64 = 100_000;

/// The `network` object of the statistics.
fn network(r: &Run) -> Result<&Value, String> {
    r.stat("network")
}

fn mode(r: &Run) -> Result<String, String> {
    let n = network(r)?;
    n.get("mode")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("network has no string mode: {n}"))
}

fn expect_mode(r: &Run, want: &str) -> Result<(), String> {
    let m = mode(r)?;
    ensure(m == want, || {
        format!("network.mode {m:?}, expected {want:?}; {}", r.show())
    })
}

/// `network.KIND["host:port"]`, 0 when absent.
fn count(r: &Run, kind: &str, key: &str) -> Result<u64, String> {
    let n = network(r)?;
    let map = n
        .get(kind)
        .ok_or_else(|| format!("network has no {kind:?}: {n}"))?;
    let map = map
        .as_object()
        .ok_or_else(|| format!("network.{kind} is not an object: {n}"))?;
    Ok(map.get(key).and_then(Value::as_u64).unwrap_or(0))
}

fn expect_count(r: &Run, kind: &str, key: &str, want: u64) -> Result<(), String> {
    let got = count(r, kind, key)?;
    ensure(got == want, || {
        format!(
            "network.{kind}[{key:?}] = {got}, expected {want}: {}; {}",
            network(r).map(Value::to_string).unwrap_or_default(),
            r.show()
        )
    })
}

/// `sh -c SCRIPT` as the agent, with synwire-run's `opts` first.
fn run_sh(env: &Env, caller: &Caller, opts: &[&str], script: &str) -> Result<Run, String> {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--", "sh", "-c", script]);
    run(env, caller, Spawn::Clone3, &args)
}

/// A script running `net-get METHOD URL` for each pair, one line each.
fn gets(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(how, url)| format!("{VMTEST} net-get {how} {url}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn lines(r: &Run) -> Vec<&str> {
    r.stdout.lines().collect()
}

/// The agent's lines must be exactly `want`.
fn expect_lines(r: &Run, want: &[String]) -> Result<(), String> {
    r.expect_code(0)?;
    let got = lines(r);
    ensure(got == want, || {
        let net = r
            .stat("network")
            .map(ToString::to_string)
            .unwrap_or_default();
        format!(
            "agent printed {got:?}, expected {want:?}; network stats {net}; {}",
            r.show()
        )
    })
}

fn ok_line(bytes: u64) -> String {
    format!("status 200 bytes {bytes} fnv={}", pattern_fnv(bytes))
}

/// A 403 line naming `host` and the `[network] allow` key.
fn expect_refused_line(line: &str, host: &str) -> Result<(), String> {
    ensure(
        line.starts_with("status 403 body ")
            && line.contains(host)
            && line.contains("[network] allow"),
        || format!("expected a 403 naming {host} and `[network] allow`, got {line:?}"),
    )
}

/// Default: host; `--set network.mode=…` and `--network` both select; proxy with an empty
/// allow list is still proxy.
fn mode_keys(env: &Env) -> Result<(), String> {
    let r = run(env, &root(env), Spawn::Clone3, &["-q", "--", "true"])?;
    r.expect_code(0)?;
    let n = network(&r)?;
    ensure(n == &serde_json::json!({"mode": "host"}), || {
        format!("default network stats {n}, expected {{\"mode\":\"host\"}}")
    })?;
    for (args, want) in [
        (&["--set", "network.mode=none"][..], "none"),
        (&["--network", "host"][..], "host"),
        (&["--set", "network.mode=proxy"][..], "proxy"),
        (&["--network", "proxy"][..], "proxy"),
    ] {
        let mut a = vec!["-q"];
        a.extend(args);
        a.extend(["--", "true"]);
        let r = run(env, &root(env), Spawn::Clone3, &a)?;
        r.expect_code(0)?;
        expect_mode(&r, want)?;
    }
    Ok(())
}

fn allow_implies_proxy(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let allow = format!("allowed.test:{}", net.port());
    let url = net.url("allowed.test", &format!("/bytes/{BODY}"));
    let r = run_sh(
        env,
        &root(env),
        &["-q", "--allow-host", &allow],
        &gets(&[("http", &url)]),
    )?;
    expect_lines(&r, &[ok_line(BODY)])?;
    expect_mode(&r, "proxy")?;
    expect_count(&r, "allowed", &allow, 1)
}

/// An allowed host over the three ways in, the environment they come from, and the count.
fn allowed(env: &Env, caller: Caller) -> Result<(), String> {
    let net = Net::setup()?;
    let allow = format!("allowed.test:{}", net.port());
    let url = net.url("allowed.test", &format!("/bytes/{BODY}"));
    let script = format!(
        "echo \"$HTTP_PROXY $HTTPS_PROXY $http_proxy $https_proxy $ALL_PROXY $all_proxy $NO_PROXY $no_proxy\"; {}",
        gets(&[("http", &url), ("connect", &url), ("socks", &url)])
    );
    let r = run_sh(
        env,
        &caller,
        &["-q", "--network", "proxy", "--allow-host", &allow],
        &script,
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    let vars: Vec<&str> = l.first().map_or(vec![], |v| v.split(' ').collect());
    let http_ok = vars.len() == 8
        && vars[..4].iter().all(|v| *v == vars[0])
        && vars[0].starts_with("http://127.0.0.1:")
        && vars[4] == vars[5]
        && vars[4].starts_with("socks5h://127.0.0.1:")
        && vars[6] == vars[7]
        && vars[6] == "localhost,127.0.0.1,::1";
    ensure(http_ok, || {
        format!(
            "the proxy variables in the agent: {:?}; {}",
            l.first(),
            r.show()
        )
    })?;
    let want = vec![ok_line(BODY); 3];
    ensure(l.len() == 4 && l[1..] == want, || {
        format!("expected {want:?} after the variables; {}", r.show())
    })?;
    expect_mode(&r, "proxy")?;
    expect_count(&r, "allowed", &allow, 3)?;
    let denied = network(&r)?.get("denied").cloned().unwrap_or(Value::Null);
    ensure(denied.as_object().is_some_and(|m| m.is_empty()), || {
        format!("network.denied {denied}, expected empty")
    })
}

/// A host not in `allow`: 403 naming it and the key over HTTP and CONNECT, SOCKS reply 2, all
/// three counted, and the summary line says so.
fn denied(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let port = net.port();
    let allow = format!("allowed.test:{port}");
    let ok = net.url("allowed.test", "/hello");
    let bad = net.url("denied.test", "/hello");
    let before = net.server.accepted();
    let r = run_sh(
        env,
        &root(env),
        &["--allow-host", &allow],
        &gets(&[
            ("connect", &ok),
            ("http", &bad),
            ("connect", &bad),
            ("socks", &bad),
        ]),
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == 4, || format!("expected 4 lines; {}", r.show()))?;
    ensure(l[0].starts_with("status 200 bytes 6 "), || {
        format!("the allowed fetch: {}", r.show())
    })?;
    expect_refused_line(l[1], "denied.test")?;
    expect_refused_line(l[2], "denied.test")?;
    ensure(l[3] == "socks-reply 2", || {
        format!("SOCKS to a denied host: {:?}, expected socks-reply 2", l[3])
    })?;
    let key = format!("denied.test:{port}");
    expect_count(&r, "denied", &key, 3)?;
    expect_count(&r, "allowed", &allow, 1)?;
    ensure(net.server.accepted() == before + 1, || {
        format!(
            "the server saw {} connections, expected only the allowed one",
            net.server.accepted() - before
        )
    })?;
    let summary = r.stderr.lines().find(|l| l.contains("network:"));
    ensure(
        summary.is_some_and(|s| s.contains("denied") && s.contains(&key)),
        || {
            format!(
                "no `network: … denied ({key})` line in the summary: {}",
                r.show()
            )
        },
    )
}

/// `*.wild.test:PORT` allows a subdomain, not the apex.
fn wildcard(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let port = net.port();
    let allow = format!("*.wild.test:{port}");
    let sub = net.url("sub.wild.test", &format!("/bytes/{BODY}"));
    let apex = net.url("wild.test", &format!("/bytes/{BODY}"));
    let r = run_sh(
        env,
        &root(env),
        &["-q", "--allow-host", &allow],
        &gets(&[
            ("connect", &sub),
            ("socks", &sub),
            ("connect", &apex),
            ("socks", &apex),
        ]),
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == 4, || format!("expected 4 lines; {}", r.show()))?;
    ensure(l[0] == ok_line(BODY) && l[1] == ok_line(BODY), || {
        format!("sub.wild.test under {allow}: {}", r.show())
    })?;
    expect_refused_line(l[2], "wild.test")?;
    ensure(l[3] == "socks-reply 2", || {
        format!("SOCKS to the apex: {:?}", l[3])
    })?;
    expect_count(&r, "allowed", &format!("sub.wild.test:{port}"), 2)?;
    expect_count(&r, "denied", &format!("wild.test:{port}"), 2)
}

/// meta.test resolves to 169.254.169.254: listed by name it is still refused; with the address
/// listed too it is no longer a refusal (nothing listens there, so the attempt fails instead).
fn link_local(env: &Env) -> Result<(), String> {
    let _net = Net::setup()?;
    let url = "http://meta.test/latest/meta-data/";
    let r = run_sh(
        env,
        &root(env),
        &["-q", "--allow-host", "meta.test"],
        &gets(&[("http", url), ("connect", url), ("socks", url)]),
    )?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.len() == 3, || format!("expected 3 lines; {}", r.show()))?;
    expect_refused_line(l[0], "meta.test")?;
    expect_refused_line(l[1], "meta.test")?;
    ensure(l[2] == "socks-reply 2", || {
        format!("SOCKS to meta.test: {:?}", l[2])
    })?;
    expect_count(&r, "denied", "meta.test:80", 3)?;
    expect_count(&r, "allowed", "meta.test:80", 0)?;
    let r = run_sh(
        env,
        &root(env),
        &[
            "-q",
            "--allow-host",
            "meta.test",
            "--allow-host",
            "169.254.169.254",
        ],
        &gets(&[("connect", url)]),
    )?;
    r.expect_code(0)?;
    ensure(
        !r.stdout.contains("[network] allow") && !r.stdout.starts_with("status 200"),
        || format!("with 169.254.169.254 listed: {}", r.show()),
    )?;
    expect_count(&r, "denied", "meta.test:80", 0)
}

/// The probes that ignore the proxy: a name, 127.0.0.1 (the server listens there too, in the
/// VM's namespace), the VM's other address, and DNS.
fn bypass_script(net: &Net) -> String {
    let p = net.port().to_string();
    format!("{VMTEST} net-direct tcp allowed.test {p} tcp 127.0.0.1 {p} tcp 10.77.0.1 {p} dns")
}

fn bypass(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let p = net.port();
    let script = bypass_script(&net);
    // The control: the same probes reach everything from the host's network.
    let r = run_sh(env, &root(env), &["-q", "--network", "host"], &script)?;
    expect_lines(
        &r,
        &[
            format!("tcp allowed.test:{p} ok"),
            format!("tcp 127.0.0.1:{p} ok"),
            format!("tcp 10.77.0.1:{p} ok"),
            "dns 10.77.0.1 ok".into(),
        ],
    )?;
    let before = (net.server.accepted(), net.dns.queries());
    let allow = format!("allowed.test:{p}");
    for caller in [root(env), user(env)] {
        let r = run_sh(env, &caller, &["-q", "--allow-host", &allow], &script)?;
        r.expect_code(0)?;
        let l = lines(&r);
        let reached: Vec<&&str> = l.iter().filter(|l| l.ends_with(" ok")).collect();
        ensure(l.len() == 4 && reached.is_empty(), || {
            format!(
                "in proxy mode (uid {:?}) direct probes got through or misbehaved: {}",
                caller.uid,
                r.show()
            )
        })?;
        note(&format!(
            "net/bypass uid {:?}: {}",
            caller.uid,
            l.join(", ")
        ));
    }
    let after = (net.server.accepted(), net.dns.queries());
    ensure(before == after, || {
        format!("the server or the DNS responder was reached: (connections, queries) {before:?} -> {after:?}")
    })
}

/// `--network none`: only `lo`, up; nothing of the VM's reachable; `network.mode` none.
fn none(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let script = format!("{VMTEST} ifaces; {}", bypass_script(&net));
    let r = run_sh(env, &root(env), &["-q", "--network", "none"], &script)?;
    r.expect_code(0)?;
    let l = lines(&r);
    ensure(l.first() == Some(&"lo up") && l.len() == 5, || {
        format!("expected only `lo up`, then 4 probe lines: {}", r.show())
    })?;
    ensure(l[1..].iter().all(|l| !l.ends_with(" ok")), || {
        format!("a direct probe got through: {}", r.show())
    })?;
    let n = network(&r)?;
    ensure(
        n == &serde_json::json!({"mode": "none", "via": ["namespace"]}),
        || format!("network stats {n}, expected {{\"mode\":\"none\",\"via\":[\"namespace\"]}}"),
    )
}

/// 100 tunnels of 1 MiB at once, each byte checked.
fn many_intact(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let allow = format!("allowed.test:{}", net.port());
    let n = 100;
    let bytes = 1 << 20;
    let url = net.url("allowed.test", &format!("/bytes/{bytes}"));
    let t0 = Instant::now();
    let r = run(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--allow-host",
            &allow,
            "--",
            VMTEST,
            "net-many",
            &n.to_string(),
            &bytes.to_string(),
            &url,
        ],
    )?;
    note(&format!(
        "net/many-intact: {n} x {bytes} bytes in {:?}",
        t0.elapsed()
    ));
    r.expect_code(0)?;
    ensure(
        r.stdout.lines().last() == Some(&format!("intact {n}/{n}")),
        || format!("not every transfer arrived intact: {}", r.show()),
    )?;
    expect_count(&r, "allowed", &allow, n)
}

/// Pids of the processes running `synwire-vmtest HELPER …` (argv[1] is `helper`; synwire-run,
/// whose later arguments name the helper too, is not one of them).
fn pids_running(helper: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).nth(1) == Some(helper.as_bytes()))
        })
        .collect()
}

/// The agent streams an endless body through a tunnel; `kill` ends it (or its launcher). The
/// server's side of the tunnel must be closed soon after, and nothing left running.
fn mid_transfer(env: &Env, how: &str) -> Result<(), String> {
    let net = Net::setup()?;
    let allow = format!("allowed.test:{}", net.port());
    let url = net.url("allowed.test", "/endless");
    let mut s = start(
        env,
        &root(env),
        Spawn::Clone3,
        &[
            "-q",
            "--allow-host",
            &allow,
            "--",
            VMTEST,
            "net-stream",
            &url,
        ],
    )?;
    let ready = s.read_line();
    if ready.as_deref() != Ok("ready") {
        let r = s.finish();
        return Err(format!(
            "the agent did not get ready: {ready:?}; {}",
            r.show()
        ));
    }
    let killed_at = Instant::now();
    match how {
        "agent" => {
            let pids = pids_running("net-stream");
            ensure(!pids.is_empty(), || "no net-stream process found".into())?;
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        _ => nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .map_err(|e| format!("kill synwire-run: {e}"))?,
    }
    let closed = net.server.wait_closed("/endless", Duration::from_secs(5));
    let took = killed_at.elapsed();
    let r = s.finish();
    let c = closed.map_err(|e| format!("{e}; {}", r.show()))?;
    note(&format!(
        "net/{how}: tunnel closed {took:?} after the kill ({} bytes sent, {})",
        c.sent, c.how
    ));
    match how {
        "agent" => r.expect_code(128 + 9),
        // The agent died of the SIGTERM forwarded to it: synwire-run dies of it too, after its
        // statistics (or exits 143).
        _ => ensure(
            matches!(r.code, Some(c) if c == 128 + 15 || c == SIGNALED + 15),
            || format!("expected death by SIGTERM or 143: {}", r.show()),
        ),
    }
}

fn agent_killed(env: &Env) -> Result<(), String> {
    mid_transfer(env, "agent")
}

fn launcher_sigterm(env: &Env) -> Result<(), String> {
    mid_transfer(env, "launcher")
}

/// A server that accepts and never answers does not hold the agent past `--timeout`.
fn slow_peer_timeout(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let allow = format!("allowed.test:{}", net.port());
    let url = net.url("allowed.test", "/slow");
    for how in ["http", "connect", "socks"] {
        let t0 = Instant::now();
        let r = run(
            env,
            &root(env),
            Spawn::Clone3,
            &[
                "-q",
                "--timeout",
                "1s",
                "--allow-host",
                &allow,
                "--",
                VMTEST,
                "net-get",
                how,
                &url,
            ],
        )?;
        let took = t0.elapsed();
        r.expect_code(124)?;
        r.expect_outcome("timed_out")?;
        note(&format!(
            "net/slow-peer-timeout {how}: exit 124 after {took:?}"
        ));
        ensure(took < Duration::from_secs(8), || {
            format!(
                "a 1 s timeout took {took:?} with a slow peer ({how}); {}",
                r.show()
            )
        })?;
        net.server
            .wait_closed("/slow", Duration::from_secs(5))
            .map_err(|e| format!("after the timeout ({how}): {e}"))?;
    }
    Ok(())
}

/// `localhost:PORT` in the allow list: clients go direct to localhost (NO_PROXY names it), so the
/// agent's own 127.0.0.1:PORT is forwarded to the host's, through the policy and counted; a port
/// not listed stays closed. As root with the default profile, and as uid 1000 under `agent-net`
/// (user and pid namespaces: the listeners come from the pid namespace's init; the environment
/// cleared but for the proxy variables, with which a CONNECT fetch also goes through).
fn loopback_forward(env: &Env, caller: Caller) -> Result<(), String> {
    let net = Net::setup()?;
    let p = net.port();
    let unlisted = p.wrapping_add(1).max(1);
    let mut script =
        format!("{VMTEST} net-direct tcp 127.0.0.1 {p} tcp localhost {p} tcp 127.0.0.1 {unlisted}");
    let allow = format!("localhost:{p}");
    let also = format!("allowed.test:{p}");
    let mut opts = vec!["-q", "--allow-host", &allow];
    let agent_net = caller.uid.is_some();
    if agent_net {
        // agent-net end to end: [env] clear = true keeps the proxy variables, and the proxy
        // serves from the pid namespace's init's listeners under the view and the filter.
        opts.extend(["--profile", "agent-net", "--allow-host", &also]);
        let url = net.url("allowed.test", &format!("/bytes/{BODY}"));
        script.push_str(&format!("; {}", gets(&[("connect", &url)])));
    }
    let before = net.server.accepted();
    let r = run_sh(env, &caller, &opts, &script)?;
    r.expect_code(0)?;
    let l = lines(&r);
    let want_lines = if agent_net { 4 } else { 3 };
    ensure(
        l.len() == want_lines
            && l.get(3).is_none_or(|l| *l == ok_line(BODY))
            && l[0] == format!("tcp 127.0.0.1:{p} ok")
            && l[1] == format!("tcp localhost:{p} ok")
            && !l[2].ends_with(" ok"),
        || {
            format!(
                "expected the listed port forwarded and the other closed: {}",
                r.show()
            )
        },
    )?;
    let want_accepted = if agent_net { 3 } else { 2 };
    ensure(net.server.accepted() == before + want_accepted, || {
        format!(
            "the server saw {} connections, expected {want_accepted}",
            net.server.accepted() - before
        )
    })?;
    expect_count(&r, "allowed", &format!("localhost:{p}"), 2)
}

/// Bytes of the one stream, and of each of the many, at full size.
const TPUT_ONE: u64 = 64 << 20;
const TPUT_MANY: u64 = 2 << 20;
/// How many streams at once.
const TPUT_N: u64 = 100;
/// Seconds the passes after the first may take together, estimated from the first's rate.
const TPUT_BUDGET: f64 = 40.0;
/// The smallest share of the full sizes the passes are scaled down to on a slow host.
const TPUT_MIN_SCALE: f64 = 1.0 / 16.0;

/// The seconds in `net-tput`'s last line, which must say that all `n` fetches of `bytes` arrived
/// intact: `intact N/N bytes N*BYTES secs S`.
fn tput_secs(stdout: &str, n: u64, bytes: u64) -> Result<f64, String> {
    let last = stdout.lines().last().unwrap_or("");
    let prefix = format!("intact {n}/{n} bytes {} secs ", n * bytes);
    last.strip_prefix(prefix.as_str())
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .ok_or_else(|| format!("expected a last line `{prefix}SECS`, got {last:?}"))
}

/// MiB/s of `net-tput HOW N BYTES` against the server, as the agent measured it (connect to last
/// byte, not synwire-run's launch), under synwire-run's `opts`. Every byte must arrive intact and,
/// through a proxy, every stream be counted as allowed.
fn tput(env: &Env, net: &Net, opts: &[&str], how: &str, n: u64, bytes: u64) -> Result<f64, String> {
    let url = net.url("allowed.test", &format!("/bytes/{bytes}"));
    let (n_arg, bytes_arg) = (n.to_string(), bytes.to_string());
    let mut args = vec!["-q"];
    args.extend(opts);
    args.extend(["--", VMTEST, "net-tput", how, &n_arg, &bytes_arg, &url]);
    let r = run(env, &root(env), Spawn::Clone3, &args)?;
    r.expect_code(0)?;
    let secs = tput_secs(&r.stdout, n, bytes)
        .map_err(|e| format!("net-tput {how} {n} x {bytes}: {e}; {}", r.show()))?;
    if how != "direct" {
        expect_count(&r, "allowed", &format!("allowed.test:{}", net.port()), n)?;
    }
    Ok((n * bytes) as f64 / secs / f64::from(1 << 20))
}

/// `bytes` times `scale`, in whole KiB, at least 64 KiB.
fn scaled(bytes: u64, scale: f64) -> u64 {
    ((bytes as f64 * scale) as u64 / 1024).max(64) * 1024
}

/// What the proxy costs: one stream through CONNECT against the same one straight to the server
/// (`--network host`), 100 at once each way, and one through SOCKS5; printed, not judged (the
/// VMs emulate every instruction, so only the ratios mean much), but every byte checked. A slow
/// host scales the sizes down after the first pass, so the test stays within about a minute.
fn throughput(env: &Env) -> Result<(), String> {
    let net = Net::setup()?;
    let allow = format!("allowed.test:{}", net.port());
    let proxy: &[&str] = &["--allow-host", &allow];
    let host: &[&str] = &["--network", "host"];
    let mut direct_one = tput(env, &net, host, "direct", 1, TPUT_ONE)?;
    // The rest in bytes sent straight: proxy-1, direct-100, proxy-100 and socks-1, a proxied byte
    // counted twice (it is copied once more, in the same emulated CPUs), and direct-1 again
    // should the sizes shrink.
    let rest = (5 * TPUT_ONE + 3 * TPUT_N * TPUT_MANY) as f64 / f64::from(1 << 20);
    let scale = (TPUT_BUDGET * direct_one / rest).clamp(TPUT_MIN_SCALE, 1.0);
    let (one, many) = (scaled(TPUT_ONE, scale), scaled(TPUT_MANY, scale));
    if one != TPUT_ONE {
        note(&format!(
            "net-throughput: direct-1 at {direct_one:.1} MiB/s, sizes scaled by {scale:.3}"
        ));
        direct_one = tput(env, &net, host, "direct", 1, one)?;
    }
    let proxy_one = tput(env, &net, proxy, "connect", 1, one)?;
    note(&format!(
        "net-throughput proxy-1: {proxy_one:.1} MiB/s (direct {direct_one:.1} MiB/s), 1 x {one} bytes"
    ));
    let direct_many = tput(env, &net, host, "direct", TPUT_N, many)?;
    let proxy_many = tput(env, &net, proxy, "connect", TPUT_N, many)?;
    note(&format!(
        "net-throughput proxy-{TPUT_N}: {proxy_many:.1} MiB/s (direct {direct_many:.1} MiB/s), {TPUT_N} x {many} bytes"
    ));
    let socks_one = tput(env, &net, proxy, "socks", 1, one)?;
    note(&format!(
        "net-throughput socks-1: {socks_one:.1} MiB/s (direct {direct_one:.1} MiB/s), 1 x {one} bytes"
    ));
    Ok(())
}

/// `user.max_user_namespaces = 0`: a uid-1000 caller gets no network namespace, and `--network
/// none` cuts the network with Landlock (TCP, ABI 4+: Linux 6.7+) and a seccomp filter on socket
/// families instead: nothing in the host's network namespace is reached (its addresses, its
/// 127.0.0.1), while AF_UNIX sockets still work and the same probes reach everything under
/// `--network host` (the control). The statistics say how (`network.via`), the summary says why.
fn none_without_userns(env: &Env) -> Result<(), String> {
    const SYSCTL: &str = "/proc/sys/user/max_user_namespaces";
    let net = Net::setup()?;
    let p = net.port();
    let probes = format!(
        "{VMTEST} net-direct tcp 10.77.0.1 {p} tcp 127.0.0.1 {p} tcp allowed.test {p}; {VMTEST} try-syscalls socket-unix"
    );
    let saved = std::fs::read_to_string(SYSCTL).map_err(|e| format!("{SYSCTL}: {e}"))?;
    crate::layout::write(std::path::Path::new(SYSCTL), "0")?;
    let result = (|| {
        let control = run_sh(env, &user(env), &["-q", "--network", "host"], &probes)?;
        control.expect_code(0)?;
        let reached = lines(&control)
            .iter()
            .filter(|l| l.starts_with("tcp ") && l.ends_with(" ok"))
            .count();
        ensure(reached == 3, || {
            format!("the control did not reach the server: {}", control.show())
        })?;
        let before = net.server.accepted();
        let r = run_sh(env, &user(env), &["--network", "none"], &probes)?;
        r.expect_code(0)?;
        let l = lines(&r);
        let tcp: Vec<&&str> = l.iter().filter(|l| l.starts_with("tcp ")).collect();
        ensure(
            tcp.len() == 3 && tcp.iter().all(|l| l.ends_with(" EACCES")),
            || format!("expected every TCP probe refused with EACCES: {}", r.show()),
        )?;
        ensure(l.contains(&"socket-unix ok"), || {
            format!("AF_UNIX sockets must still work: {}", r.show())
        })?;
        ensure(net.server.accepted() == before, || {
            "the server was reached from --network none".to_string()
        })?;
        let want: &[&str] = if env.kernel >= (6, 7) {
            &["landlock", "seccomp"]
        } else {
            &["seccomp"]
        };
        let n = network(&r)?;
        ensure(
            n == &serde_json::json!({"mode": "none", "via": want}),
            || format!("network stats {n}, expected via {want:?}"),
        )?;
        ensure(
            r.stderr
                .contains(&format!("network: none, through {}", want.join(" and "))),
            || format!("the summary does not say how: {}", r.show()),
        )
    })();
    let restored = crate::layout::write(std::path::Path::new(SYSCTL), saved.trim());
    result.and(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tput_lines() {
        let out = "fail 3: eof\nintact 2/2 bytes 2048 secs 0.500000\n";
        assert_eq!(tput_secs(out, 2, 1024), Ok(0.5));
        assert!(tput_secs(out, 2, 1000).is_err());
        assert!(tput_secs("intact 1/2 bytes 1024 secs 0.5\n", 2, 1024).is_err());
        assert!(tput_secs("intact 2/2 bytes 2048 secs 0.000000\n", 2, 1024).is_err());
        assert!(tput_secs("", 2, 1024).is_err());
    }

    #[test]
    fn scaling() {
        assert_eq!(scaled(TPUT_ONE, 1.0), TPUT_ONE);
        assert_eq!(scaled(TPUT_MANY, 0.5), TPUT_MANY / 2);
        assert_eq!(scaled(TPUT_MANY, TPUT_MIN_SCALE), 128 * 1024);
        assert_eq!(scaled(1000, 0.01), 64 * 1024);
    }
}
