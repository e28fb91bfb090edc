//! `synwire-vmtest`: the real-kernel integration suite for synwire-run and its small helper
//! programs. It runs as root inside the VM started by `tests/vm/run` (PID 1's child), never on a
//! development machine: it mounts nothing itself but creates and removes cgroups freely.
//!
//! `synwire-vmtest suite --layout unified|hybrid [--filter S]` builds a systemd-like cgroup layout
//! (layout.rs), runs every test (tests.rs) through the harness (harness.rs) and prints one line per
//! test and `N passed, M failed`. The other subcommands are the helpers (helpers.rs) that tests run
//! as agent commands.

mod errno;
mod escape_tests;
mod fallback_tests;
mod harness;
mod helpers;
mod landlock_helpers;
mod landlock_tests;
mod layout;
mod lifecycle_tests;
mod net_fixtures;
mod net_helpers;
mod network_tests;
mod ns_tests;
mod room_tests;
mod sec_tests;
mod seccomp_tests;
mod signal_tests;
mod stats_file_tests;
mod syscall_probes;
mod systemd_sim_tests;
mod tests;
mod torture_tests;
mod view_tests;

use std::process::ExitCode;

const USAGE: &str =
    "usage: synwire-vmtest suite --layout unified|hybrid [--filter S] | torture-rows
       synwire-vmtest hog MIB | forkbomb | sleepers N | spin SECS | trap-term | trap-signals
       synwire-vmtest trap-any [EXIT_SIG] | oom-parent MIB [exit]
       synwire-vmtest ignore-term | daemonize | count-int | ifaces | on-tty PTS -- CMD...
       synwire-vmtest as-user UID GID CGROUP -- CMD... | in-cgroup CGROUP -- CMD...
       synwire-vmtest prep [--fds N,...] [--groups G,...] -- CMD... | fds | bind PORT
       synwire-vmtest container [--orchestrate] -- CMD... | deny-clone3 ERRNO -- CMD...
       synwire-vmtest ioctl-tty PATH... | tcp-connect PORT... | abstract NAME
       synwire-vmtest try-syscalls [NAME...] | try-write PATH...
       synwire-vmtest net-get http|connect|socks URL | net-stream URL | net-many N BYTES URL
       synwire-vmtest net-tput connect|socks|direct N BYTES URL
       synwire-vmtest net-direct (tcp HOST PORT | dns [RESOLV_CONF])...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("suite") => return suite(&args[1..]),
        Some("torture-rows") => {
            torture_rows();
            Ok(())
        }
        Some("hog") => helpers::hog(&args[1..]),
        Some("forkbomb") => helpers::forkbomb(),
        Some("sleepers") => helpers::sleepers(&args[1..]),
        Some("spin") => helpers::spin(&args[1..]),
        Some("trap-term") => helpers::trap_term(),
        Some("trap-signals") => helpers::trap_signals(),
        Some("trap-any") => helpers::trap_any(&args[1..]),
        Some("oom-parent") => helpers::oom_parent(&args[1..]),
        Some("count-int") => helpers::count_int(),
        Some("on-tty") => helpers::on_tty(&args[1..]),
        Some("ignore-term") => helpers::ignore_term(),
        Some("daemonize") => helpers::daemonize(),
        Some("ifaces") => helpers::ifaces(),
        Some("as-user") => helpers::as_user(&args[1..]),
        Some("in-cgroup") => helpers::in_cgroup(&args[1..]),
        Some("prep") => helpers::prep(&args[1..]),
        Some("fds") => helpers::fds(),
        Some("bind") => helpers::bind(&args[1..]),
        Some("container") => helpers::container(&args[1..]),
        Some("deny-clone3") => helpers::deny_clone3(&args[1..]),
        Some("ioctl-tty") => landlock_helpers::ioctl_tty(&args[1..]),
        Some("tcp-connect") => landlock_helpers::tcp_connect(&args[1..]),
        Some("abstract") => landlock_helpers::abstract_socket(&args[1..]),
        Some("try-syscalls") => syscall_probes::try_syscalls(&args[1..]),
        Some("try-write") => view_tests::try_write(&args[1..]),
        Some("net-get") => net_helpers::net_get(&args[1..]),
        Some("net-stream") => net_helpers::net_stream(&args[1..]),
        Some("net-many") => net_helpers::net_many(&args[1..]),
        Some("net-tput") => net_helpers::net_tput(&args[1..]),
        Some("net-direct") => net_helpers::net_direct(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synwire-vmtest: {e}");
            ExitCode::from(2)
        }
    }
}

/// The torture rows, one name a line in the table's order: tests/vm/run runs this on the host to
/// know which rows every kernel's log must have.
fn torture_rows() {
    let mut rows = Vec::new();
    torture_tests::add_all(&mut rows);
    for (name, _) in rows {
        println!("{}", name.trim_start_matches("torture/"));
    }
}

fn suite(args: &[String]) -> ExitCode {
    let mut layout = None;
    let mut filter = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--layout" => layout = it.next().cloned(),
            "--filter" => filter = it.next().cloned(),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let layout = match layout.as_deref() {
        Some("unified") => layout::Layout::Unified,
        Some("hybrid") => layout::Layout::Hybrid,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let env = match layout::setup(layout) {
        Ok(env) => env,
        Err(e) => {
            // The rig counts a VM without a summary line as failed; say why.
            println!("FAIL setup: {e}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "# synwire-vmtest: kernel {}.{}, {:?} layout, cgroup2 at {}",
        env.kernel.0,
        env.kernel.1,
        env.layout,
        env.mount.display()
    );
    let (passed, failed) = tests::run_all(&env, filter.as_deref());
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
