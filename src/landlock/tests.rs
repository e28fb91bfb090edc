//! The ruleset on this host's kernel: an agent started the way synwire-run starts it (without a
//! cgroup) is denied exactly what the kernel's Landlock ABI can restrict, and the status says so.
//! Each assertion follows from the ABI (none, 1 to the newest), so the tests hold on any kernel;
//! the VM suite runs them on 5.10, 6.1 and 6.12 (tests/vm/suite/src/landlock_tests.rs).

use std::ffi::OsString;
use std::net::TcpListener;

use nix::sys::wait::{waitpid, WaitStatus};

use super::*;
use crate::plan::ExecPlan;
use crate::profile::privilege::Scope;
use crate::security::SecPlan;
use crate::spawn::{spawn, Spawn, Spawned};
use crate::sys::SigMask;

fn abi() -> Option<u32> {
    abi_version().ok()
}

fn filesystem(write: &str) -> Filesystem {
    Filesystem {
        enforce: Enforce::BestEffort,
        read: vec!["/".into()],
        write: vec![write.into(), "/dev/null".into()],
        bind_tcp: None,
        connect_tcp: None,
        scope: Scope::default(),
        view: Default::default(),
        hide: Vec::new(),
    }
}

/// Runs `command` under `fs`'s ruleset: its exit code, and the status the launch would report.
fn agent(fs: &Filesystem, command: &[&str]) -> (i32, Status) {
    let prepared = prepare(fs, None).unwrap();
    let mut sec = SecPlan::default();
    let status = match prepared {
        Some(p) => {
            sec.set_landlock(p.ruleset);
            p.status
        }
        None => Status::unsupported(),
    };
    let env = vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
    let plan = ExecPlan::new(command.iter().map(OsString::from).collect(), env).unwrap();
    let s = Spawn {
        plan: &plan,
        cgroup: None,
        ns: None,
        sec: &sec,
        old_mask: SigMask(0),
        wait_set: SigMask(0),
        force_fork: false,
    };
    let Ok(Spawned::Running(child)) = spawn(&s) else {
        panic!("the agent did not start");
    };
    match waitpid(nix::unistd::Pid::from_raw(child.pid), None).unwrap() {
        WaitStatus::Exited(_, code) => (code, status),
        other => panic!("the agent did not exit: {other:?}"),
    }
}

#[test]
fn the_status_is_what_this_kernels_abi_restricts_of_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut fs = filesystem(dir.path().to_str().unwrap());
    fs.connect_tcp = Some(vec![443]);
    let (code, status) = agent(&fs, &["true"]);
    assert_eq!(code, 0);
    assert_eq!(status, Status::of(abi(), &Requested::of(&fs)));
}

#[test]
fn a_write_outside_the_write_trees_is_denied_where_the_kernel_has_landlock() {
    let inside = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let fs = filesystem(inside.path().to_str().unwrap());
    let script = r#"echo a > "$1/in" || exit 2; echo b > "$2/out" 2>/dev/null && exit 3; exit 0"#;
    let (code, _) = agent(
        &fs,
        &[
            "sh",
            "-c",
            script,
            "sh",
            inside.path().to_str().unwrap(),
            outside.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, if abi().is_some() { 0 } else { 3 });
}

#[test]
fn tcp_connect_is_limited_to_the_listed_ports_from_abi_4() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    let mut fs = filesystem(dir.path().to_str().unwrap());
    let denied = abi().is_some_and(|v| v >= 4);
    for (ports, allowed) in [(vec![], !denied), (vec![port], true)] {
        fs.connect_tcp = Some(ports.clone());
        let (code, status) = agent(&fs, &["bash", "-c", &connect]);
        assert_eq!(code == 0, allowed, "connect_tcp = {ports:?}: {status:?}");
        assert_eq!(
            status.unhandled.contains(&"connect_tcp"),
            !denied && abi().is_some()
        );
    }
}

#[test]
fn device_ioctls_outside_the_write_trees_are_denied_from_abi_5() {
    let dir = tempfile::tempdir().unwrap();
    let fs = filesystem(dir.path().to_str().unwrap());
    // TCGETS on /dev/zero: "Inappropriate ioctl for device" from the driver, unless Landlock
    // stops it first with EACCES.
    let script = "stty -F /dev/zero 2>&1 | grep -q 'Permission denied'";
    let (code, status) = agent(&fs, &["sh", "-c", script]);
    let denied = abi().is_some_and(|v| v >= 5);
    assert_eq!(code == 0, denied, "{status:?}");
    assert_eq!(
        status.unhandled.contains(&"ioctl_dev"),
        !denied && abi().is_some()
    );
}

#[test]
fn signals_to_processes_outside_the_agents_domain_are_denied_from_abi_6_unless_unscoped() {
    let dir = tempfile::tempdir().unwrap();
    let mut fs = filesystem(dir.path().to_str().unwrap());
    let scoped = abi().is_some_and(|v| v >= 6);
    for (scope, denied) in [
        (Scope::default(), scoped),
        (
            Scope {
                abstract_unix_socket: true,
                signal: false,
            },
            false,
        ),
    ] {
        fs.scope = scope;
        // The parent is this test, outside the agent's domain; the agent's own child is inside.
        let (code, status) = agent(
            &fs,
            &["sh", "-c", "sleep 5 & kill $! || exit 2; kill -0 $PPID"],
        );
        assert_ne!(
            code, 2,
            "the agent could not signal its own child: {status:?}"
        );
        assert_eq!(code != 0, denied, "{scope:?}: {status:?}");
    }
}
