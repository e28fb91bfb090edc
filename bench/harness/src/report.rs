//! The results table and the pass/fail lines, from the files `bench/run` collects in one
//! directory:
//!
//! - `host-1.json`, `host-2.json`, …: hyperfine's JSON exports of the launch-overhead rounds on
//!   this machine (the same commands each round)
//! - `info.txt`, `measures.txt`: `key value` lines (the machine; RSS, size, sigterm, teardown,
//!   concurrent)
//! - `systemd.csv`, `systemd.txt` (optional): the same hyperfine run inside the systemd VM
//! - `spawn.txt` (optional): `KERNEL CLONE3_MS FORK_MS` per kernel, from the VM rig
//! - `net.txt` (optional): `KERNEL ROW PROXY_MIBS DIRECT_MIBS STREAMS BYTES`, from the VM rig's
//!   net/throughput
//!
//! Prints Markdown on stdout; fails when a target is missed.

use std::collections::BTreeMap;
use std::path::Path;

/// The hyperfine command names `bench/run` uses; the targets look rows up by them.
pub const BARE: &str = "/bin/true (bare)";
pub const FLOOR: &str = "floor: mkdir + clone3 into the cgroup + wait + rmdir";
pub const DEFAULT: &str = "synwire-run -q (default profile)";
pub const ALL_NS: &str = "synwire-run -q --unshare all";
pub const BWRAP: &str = "bwrap --unshare-all --dev-bind / /";
pub const CGEXEC: &str = "cgexec -g CONTROLLER:synwire-bench";
/// The systemd VM's rows for the scope path.
pub const VM_SCOPE: &str = "synwire-run -q --scope --profile small (its own transient scope)";
pub const VM_SYSTEMD_RUN: &str = "systemd-run --scope";

const MIB: f64 = 1024.0 * 1024.0;

struct Row {
    name: String,
    median_ms: f64,
    mean_ms: f64,
    stddev_ms: f64,
}

fn read(dir: &Path, name: &str) -> Result<Option<String>, String> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("read {}: {e}", dir.join(name).display())),
    }
}

fn keys(text: Option<String>) -> BTreeMap<String, String> {
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// hyperfine's CSV: `command,mean,stddev,median,user,system,min,max`, in seconds.
fn hyperfine_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no {name} column in hyperfine's CSV"))
    };
    let (c, mean, sd, med) = (
        col("command")?,
        col("mean")?,
        col("stddev")?,
        col("median")?,
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| {
                f.get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|s| s * 1000.0)
                    .ok_or(format!("bad hyperfine CSV line {l:?}"))
            };
            Ok(Row {
                name: f.get(c).unwrap_or(&"").trim_matches('"').to_string(),
                median_ms: num(med)?,
                mean_ms: num(mean)?,
                stddev_ms: num(sd)?,
            })
        })
        .collect()
}

/// Several hyperfine JSON exports of the same commands (rounds), merged: each command's times
/// from every round pooled, then summarised, so that a slow moment of the machine is spread over
/// all commands instead of landing on whichever one ran then.
fn hyperfine_rounds(texts: &[String]) -> Result<(Vec<Row>, usize), String> {
    let mut order: Vec<String> = Vec::new();
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for text in texts {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("hyperfine JSON: {e}"))?;
        for r in v["results"]
            .as_array()
            .ok_or("hyperfine JSON without results")?
        {
            let name = r["command"].as_str().ok_or("result without command")?;
            let t = r["times"].as_array().ok_or("result without times")?;
            if !times.contains_key(name) {
                order.push(name.to_string());
            }
            times
                .entry(name.to_string())
                .or_default()
                .extend(t.iter().filter_map(|x| x.as_f64()).map(|s| s * 1000.0));
        }
    }
    let rows = order
        .into_iter()
        .map(|name| {
            let mut t = times.remove(&name).unwrap_or_default();
            t.sort_by(f64::total_cmp);
            let n = t.len().max(1) as f64;
            let mean = t.iter().sum::<f64>() / n;
            let var = t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            let median = match t.len() {
                0 => f64::NAN,
                l if l % 2 == 1 => t[l / 2],
                l => (t[l / 2 - 1] + t[l / 2]) / 2.0,
            };
            Row {
                name,
                median_ms: median,
                mean_ms: mean,
                stddev_ms: var.sqrt(),
            }
        })
        .collect();
    Ok((rows, texts.len()))
}

fn overhead_table(rows: &[Row]) -> String {
    let bare = rows.iter().find(|r| r.name == BARE).map(|r| r.median_ms);
    let mut out = String::from(
        "| Command | Median | Over bare | × bare | Mean ± σ |\n|:---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let (over, times) = match bare {
            Some(b) if r.name != BARE => (
                format!("{:+.2} ms", r.median_ms - b),
                format!("{:.2}", r.median_ms / b),
            ),
            _ => ("".into(), "1.00".into()),
        };
        out.push_str(&format!(
            "| `{}` | {:.2} ms | {over} | {times} | {:.2} ± {:.2} ms |\n",
            r.name, r.median_ms, r.mean_ms, r.stddev_ms
        ));
    }
    out
}

fn median(rows: &[Row], name: &str) -> Result<f64, String> {
    rows.iter()
        .find(|r| r.name == name)
        .map(|r| r.median_ms)
        .ok_or(format!("no `{name}` row in the hyperfine results"))
}

fn num(m: &BTreeMap<String, String>, key: &str) -> Result<f64, String> {
    m.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no {key} in the measurements"))
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

pub fn print(dir: &Path) -> Result<(), String> {
    let info = keys(read(dir, "info.txt")?);
    let m = keys(read(dir, "measures.txt")?);
    let mut rounds = Vec::new();
    for i in 1.. {
        match read(dir, &format!("host-{i}.json"))? {
            Some(t) => rounds.push(t),
            None => break,
        }
    }
    if rounds.is_empty() {
        return Err(format!("no host-1.json in {}", dir.display()));
    }
    let (host, nrounds) = hyperfine_rounds(&rounds)?;
    let get = |k: &str| info.get(k).map_or("?", String::as_str);

    let mut out = format!(
        "### Launch overhead on the host\n\nLinux {}, {} CPUs, {}; hyperfine `-N` (no shell), {} runs of each command in {nrounds} rounds of {} (each after {} warm-ups), every command in every round, pooled. {}\n\n",
        get("kernel"),
        get("cpus"),
        get("cgroups"),
        get("runs"),
        get("runs_per_round"),
        get("warmup"),
        get("cgexec"),
    );
    out.push_str(&overhead_table(&host));

    let kb = |k: &str| num(&m, k).map(|v| v * 1024.0);
    let rss = [
        ("default profile", kb("rss.default_kb")?),
        ("small", kb("rss.small_kb")?),
        ("--unshare all", kb("rss.all_kb")?),
    ];
    let peak = rss.iter().map(|r| r.1).fold(0.0, f64::max);
    let size = num(&m, "binary.bytes")?;
    let left = num(&m, "teardown.left")?;
    let n = num(&m, "concurrent.agents")?;
    out.push_str("\n### synwire-run itself (host)\n\n| Measure | Value |\n|:---|:---|\n");
    out.push_str(&format!(
        "| Peak RSS (`/usr/bin/time -v`, maximum resident set) | {} |\n",
        rss.iter()
            .map(|(k, v)| format!("{:.2} MiB {k}", v / MIB))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "| Stripped static binary | {:.2} MiB ({size} bytes, {}) |\n",
        size / MIB,
        m.get("binary.kind").map_or("", String::as_str)
    ));
    out.push_str(&format!(
        "| SIGTERM to the agent's handler, median (p90) of {} | through synwire-run {} ({}); sent to the agent directly {} ({}) |\n",
        get_or(&m, "sigterm.rounds"),
        us(num(&m, "sigterm.synwire-run.median_us")?),
        us(num(&m, "sigterm.synwire-run.p90_us")?),
        us(num(&m, "sigterm.direct.median_us")?),
        us(num(&m, "sigterm.direct.p90_us")?),
    ));
    out.push_str(&format!(
        "| Teardown (agent exit to synwire-run exit), median (p90) of {} | {left:.0} processes left behind: {} ({}); none left: {} ({}) |\n",
        get_or(&m, "teardown.rounds"),
        us(num(&m, &format!("teardown.{left}.median_us"))?),
        us(num(&m, &format!("teardown.{left}.p90_us"))?),
        us(num(&m, "teardown.0.median_us")?),
        us(num(&m, "teardown.0.p90_us")?),
    ));
    let leaked = num(&m, "concurrent.leaked_cgroups")?;
    let surviving = num(&m, "concurrent.surviving_processes")?;
    let failed = num(&m, "concurrent.failed")?;
    let overlapped = num(&m, "concurrent.cgroups_while_running")?;
    out.push_str(&format!(
        "| {n:.0} concurrent agents | all {overlapped:.0} running at once after {} ms, all done in {} ms ({} agents/s); {failed:.0} failed, {leaked:.0} leaked cgroups, {surviving:.0} surviving processes |\n",
        get_or(&m, "concurrent.all_running_ms"),
        get_or(&m, "concurrent.total_ms"),
        get_or(&m, "concurrent.per_second"),
    ));

    let mut vm_scope = None;
    if let Some(csv) = read(dir, "systemd.csv")? {
        let vm = keys(read(dir, "systemd.txt")?);
        let rows = hyperfine_csv(&csv)?;
        vm_scope = Some((median(&rows, VM_SCOPE)?, median(&rows, VM_SYSTEMD_RUN)?));
        out.push_str(&format!(
            "\n### Inside the systemd VM\n\nDebian bookworm, systemd {}, Linux {} under qemu TCG (emulated: compare the ratios, not the milliseconds), pure cgroup v2; hyperfine {} runs. synwire-run runs in a `Delegate=yes` service, as in production.\n\n",
            vm.get("systemd").map_or("?", String::as_str),
            vm.get("kernel").map_or("?", String::as_str),
            vm.get("runs").map_or("?", String::as_str),
        ));
        out.push_str(&overhead_table(&rows));
    }
    if let Some(spawn) = read(dir, "spawn.txt")? {
        out.push_str("\n### clone3(CLONE_INTO_CGROUP) against the cgroup.procs fallback\n\nA whole launch of `synwire-run -q --profile small -- true` (busybox VM, qemu TCG, medians of 15, interleaved): the fallback forks, then the parent writes the child's PID to cgroup.procs before releasing it.\n\n| Kernel | clone3 | fork + cgroup.procs | Difference |\n|:---|---:|---:|---:|\n");
        for l in spawn.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let [k, c, fk] = f.as_slice() {
                let (c, fk): (f64, f64) = (
                    c.parse().map_err(|_| format!("bad spawn line {l:?}"))?,
                    fk.parse().map_err(|_| format!("bad spawn line {l:?}"))?,
                );
                out.push_str(&format!(
                    "| {k} | {c:.1} ms | {fk:.1} ms | {:+.1} ms |\n",
                    fk - c
                ));
            }
        }
    }

    if let Some(net) = read(dir, "net.txt")? {
        out.push_str("\n### The network proxy's throughput\n\nIn the VM rig (qemu TCG, 2 vCPUs on one host thread): an agent fetches from a server in the VM's own network namespace through `--network proxy` (CONNECT, or SOCKS5), beside the same fetch with `--network host` straight to the server. Every byte is checked; MiB/s from the first connect to the last byte.\n\n| Kernel | Streams | Through the proxy | Direct | Proxy / direct |\n|:---|:---|---:|---:|---:|\n");
        for l in net.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let [k, row, p, d, n, bytes] = f.as_slice() {
                let bad = || format!("bad net line {l:?}");
                let (p, d): (f64, f64) =
                    (p.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
                let bytes: f64 = bytes.parse().map_err(|_| bad())?;
                let how = if row.starts_with("socks") {
                    "SOCKS5"
                } else {
                    "CONNECT"
                };
                out.push_str(&format!(
                    "| {k} | {n} x {:.0} MiB ({how}) | {p:.1} MiB/s | {d:.1} MiB/s | {:.2} |\n",
                    bytes / MIB,
                    p / d
                ));
            }
        }
    }

    let bare = median(&host, BARE)?;
    let default = median(&host, DEFAULT)?;
    let all = median(&host, ALL_NS)?;
    let bwrap = median(&host, BWRAP)?;
    let cgexec = median(&host, CGEXEC).ok();
    let floor = median(&host, FLOOR)?;
    let mut targets = vec![
        (
            default - floor <= 0.3,
            format!(
                "default profile {default:.3} ms against the floor launcher {floor:.3} ms median, {:+.3} ms (target: at most floor + 0.3 ms)",
                default - floor
            ),
        ),
        (
            default - bare <= 2.0,
            format!(
                "default profile adds {:.3} ms median over the bare command (target: at most 2 ms)",
                default - bare
            ),
        ),
        match cgexec {
            Some(c) => (
                default < c,
                format!(
                    "default profile {default:.3} ms against cgexec {c:.3} ms median (target: faster than cgexec)"
                ),
            ),
            None => (
                false,
                "cgexec was not measured (see the note above the table)".to_string(),
            ),
        },
        (
            all <= 0.85 * bwrap,
            format!(
                "every namespace {all:.3} ms against bwrap --unshare-all {bwrap:.3} ms median, {:.2} × (target: at most 0.85 × bwrap)",
                all / bwrap
            ),
        ),
        (
            peak <= 4.0 * MIB,
            format!("peak RSS {:.2} MiB (target: at most 4 MiB)", peak / MIB),
        ),
        (
            size <= 4.0 * MIB,
            format!(
                "stripped static binary {:.2} MiB (target: at most 4 MiB)",
                size / MIB
            ),
        ),
        (
            failed == 0.0 && leaked == 0.0 && surviving == 0.0 && overlapped == n,
            format!(
                "{n:.0} concurrent agents: {overlapped:.0} ran at once, {failed:.0} failed, {leaked:.0} leaked cgroups, {surviving:.0} surviving processes (target: all complete, nothing leaked)"
            ),
        ),
    ];
    if let Some((scope, systemd_run)) = vm_scope {
        targets.push((
            scope <= systemd_run,
            format!(
                "systemd VM: synwire-run --scope --profile small {scope:.1} ms against systemd-run --scope true {systemd_run:.1} ms median (target: not slower)"
            ),
        ));
    }
    out.push_str("\n### Targets\n\n```\n");
    for (ok, line) in &targets {
        out.push_str(&format!("{} {line}\n", if *ok { "PASS" } else { "FAIL" }));
    }
    out.push_str("```\n");
    print!("{out}");
    targets.retain(|(ok, _)| !ok);
    if targets.is_empty() {
        Ok(())
    } else {
        Err(format!("{} target(s) missed", targets.len()))
    }
}

fn get_or<'a>(m: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    m.get(k).map_or("?", String::as_str)
}
