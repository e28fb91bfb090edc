//! Asking a systemd manager for a transient scope (what `systemd-run --scope` does), and whether
//! our own unit has `Delegate=yes` where systemd left no mark on its cgroup.
//!
//! Root asks PID 1, anyone else their own user manager. Each manager is tried at its private
//! socket first (no bus daemon in between, as systemctl and systemd-run do), then at the bus
//! address of the environment, then at the default bus socket; every failure is kept so that a
//! refusal can say what was tried.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dbus::{self, Addr, Arg, Call, Conn, DbusError, Got, Value};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long one manager gets to answer a call or finish the scope's start job.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Which systemd manager we ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// PID 1, for root.
    System,
    /// The user manager of this uid.
    User(u32),
}

impl Manager {
    /// Root asks PID 1 (also under sudo); anyone else their own user manager.
    pub fn for_euid(euid: u32) -> Manager {
        if euid == 0 {
            Manager::System
        } else {
            Manager::User(euid)
        }
    }

    /// The `systemctl` flag that reaches this manager.
    pub fn systemctl(self) -> &'static str {
        match self {
            Manager::System => "systemctl",
            Manager::User(_) => "systemctl --user",
        }
    }

    /// The manager in words, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Manager::System => "the system manager (PID 1)",
            Manager::User(_) => "your user manager",
        }
    }
}

/// One place to reach a manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: Addr,
    /// A bus daemon listens there (Hello, AddMatch); false for a manager's private socket.
    pub via_daemon: bool,
}

/// The places to try for `manager`, in order. `env` reads the environment; `owned_dir` says
/// whether a directory exists and belongs to the uid (a runtime directory inherited from another
/// user, as after `runuser -u`, is not ours).
pub fn endpoints(
    manager: Manager,
    env: &dyn Fn(&str) -> Option<String>,
    owned_dir: &dyn Fn(&Path) -> bool,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    let mut push = |addr: Addr, via_daemon: bool| {
        let e = Endpoint { addr, via_daemon };
        if !out.contains(&e) {
            out.push(e);
        }
    };
    match manager {
        Manager::System => {
            push(Addr::Path("/run/systemd/private".into()), false);
            if let Some(a) = env("DBUS_SYSTEM_BUS_ADDRESS") {
                dbus::parse_address(&a)
                    .into_iter()
                    .for_each(|a| push(a, true));
            }
            push(Addr::Path("/run/dbus/system_bus_socket".into()), true);
        }
        Manager::User(uid) => {
            // $XDG_RUNTIME_DIR when it is ours, else /run/user/UID (sudo -u and runuser -u
            // leave none, or the caller's).
            let runtime = env("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|d| d.is_absolute() && owned_dir(d))
                .or_else(|| {
                    let d = PathBuf::from(format!("/run/user/{uid}"));
                    owned_dir(&d).then_some(d)
                });
            if let Some(r) = &runtime {
                push(Addr::Path(r.join("systemd/private")), false);
            }
            if let Some(a) = env("DBUS_SESSION_BUS_ADDRESS") {
                dbus::parse_address(&a)
                    .into_iter()
                    .for_each(|a| push(a, true));
            }
            if let Some(r) = &runtime {
                push(Addr::Path(r.join("bus")), true);
            }
        }
    }
    out
}

/// Why no manager gave us what we asked: one line per place tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tried(pub Vec<String>);

impl std::fmt::Display for Tried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no socket to try (no runtime directory of ours)");
        }
        write!(f, "{}", self.0.join("; "))
    }
}

fn real_endpoints(manager: Manager) -> Vec<Endpoint> {
    let uid = match manager {
        Manager::System => 0,
        Manager::User(u) => u,
    };
    endpoints(
        manager,
        &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        &|d| std::fs::metadata(d).is_ok_and(|m| m.is_dir() && m.uid() == uid),
    )
}

/// Tries every endpoint of `manager` with `f` until one succeeds.
fn with_manager<T>(
    manager: Manager,
    mut f: impl FnMut(&mut Conn) -> Result<T, DbusError>,
) -> Result<T, Tried> {
    let euid = nix::unistd::geteuid().as_raw();
    let mut tried = Tried::default();
    let endpoints = real_endpoints(manager);
    if let Manager::User(uid) = manager {
        if !endpoints.iter().any(|e| !e.via_daemon) {
            // No private socket means no runtime directory of ours: no user manager runs.
            tried.0.push(format!(
                "/run/user/{uid} does not exist (no user manager runs for uid {uid}; a login session or `loginctl enable-linger` starts one)"
            ));
        }
    }
    for e in endpoints {
        let r = Conn::open(&e.addr, euid, e.via_daemon, TIMEOUT).and_then(|mut c| f(&mut c));
        match r {
            Ok(v) => return Ok(v),
            Err(err) => {
                tracing::debug!("systemd manager at {}: {err}", e.addr);
                tried.0.push(match err {
                    DbusError::Call { .. } => format!("{}: {err}", e.addr),
                    _ => err.to_string(),
                });
            }
        }
    }
    Err(tried)
}

fn manager_call<'a>(member: &'a str, args: Vec<Arg>) -> Call<'a> {
    Call {
        destination: Some(SYSTEMD),
        path: SYSTEMD_PATH,
        interface: MANAGER,
        member,
        args,
    }
}

/// What the scope should be.
pub struct ScopeRequest<'a> {
    /// `synwire-XXXXXXXX.scope`
    pub unit: &'a str,
    pub description: &'a str,
    /// The process to move in (ours).
    pub pid: u32,
}

/// Starts a transient scope with `Delegate=yes` in `synwire.slice` holding `pid`, and waits for
/// its start job to finish. systemd removes the scope once it is empty (CollectMode=).
pub fn start_scope(manager: Manager, req: &ScopeRequest) -> Result<String, Tried> {
    with_manager(manager, |c| start_on(c, req))
}

fn start_on(c: &mut Conn, req: &ScopeRequest) -> Result<String, DbusError> {
    let t0 = std::time::Instant::now();
    let props = vec![
        ("Description".into(), Value::Str(req.description.into())),
        ("PIDs".into(), Value::U32s(vec![req.pid])),
        ("Delegate".into(), Value::Bool(true)),
        ("Slice".into(), Value::Str("synwire.slice".into())),
        (
            "CollectMode".into(),
            Value::Str("inactive-or-failed".into()),
        ),
    ];
    let waits = subscribe(c)?;
    let start = c.send(&manager_call(
        "StartTransientUnit",
        vec![
            Arg::Val(Value::Str(req.unit.into())),
            Arg::Val(Value::Str("fail".into())),
            Arg::Props(props),
            Arg::AuxUnits(vec![]),
        ],
    ))?;
    for w in waits {
        c.reply(w)?;
    }
    let reply = c.reply(start)?;
    tracing::trace!(
        "{}: StartTransientUnit answered after {:?}",
        c.addr(),
        t0.elapsed()
    );
    let job = dbus::first_str(&reply)
        .ok_or(DbusError::Call {
            name: "StartTransientUnit".into(),
            message: "the reply holds no job path".into(),
        })?
        .to_string();
    wait_job(c, job, req.unit, t0)
}

/// On a bus daemon: asks for the manager's JobRemoved signals. The daemon passes on only the
/// signals we match; the manager emits JobRemoved on a bus only while someone is subscribed. A
/// private socket gets every signal unasked. Returns the calls whose replies are to be read.
fn subscribe(c: &mut Conn) -> Result<Vec<u32>, DbusError> {
    let mut waits = Vec::new();
    if c.via_daemon {
        waits.push(c.send(&Call {
            destination: Some(dbus::DBUS),
            path: "/org/freedesktop/DBus",
            interface: dbus::DBUS,
            member: "AddMatch",
            args: vec![Arg::Val(Value::Str(format!(
                "type='signal',sender='{SYSTEMD}',path='{SYSTEMD_PATH}',interface='{MANAGER}',member='JobRemoved'"
            )))],
        })?);
        waits.push(c.send(&manager_call("Subscribe", vec![]))?);
    }
    Ok(waits)
}

/// Waits for the JobRemoved of `job`, the start job of `unit`: Ok once it is done.
fn wait_job(
    c: &mut Conn,
    job: String,
    unit: &str,
    t0: std::time::Instant,
) -> Result<String, DbusError> {
    loop {
        let s = c.next_signal()?;
        if !s.is_signal(MANAGER, "JobRemoved") {
            continue;
        }
        if let [Got::U32(_), Got::Str(path), Got::Str(_unit), Got::Str(result)] = &s.body[..] {
            if *path == job {
                tracing::trace!("{}: JobRemoved after {:?}", c.addr(), t0.elapsed());
                return if result == "done" {
                    Ok(job)
                } else {
                    Err(DbusError::Call {
                        name: format!("the start job of {unit}"),
                        message: format!("ended `{result}` (see `journalctl -b -u {unit}`)"),
                    })
                };
            }
        }
    }
}

/// Asks the manager whether the unit holding `pid` has `Delegate=yes`. `iface` is the unit type's
/// interface (`org.freedesktop.systemd1.Service` or `.Scope`).
pub fn unit_delegates(manager: Manager, pid: u32, iface: &str) -> Result<bool, Tried> {
    with_manager(manager, |c| {
        let unit = c.call(&manager_call(
            "GetUnitByPID",
            vec![Arg::Val(Value::U32(pid))],
        ))?;
        let path = dbus::first_str(&unit)
            .ok_or(DbusError::Call {
                name: "GetUnitByPID".into(),
                message: "the reply holds no unit path".into(),
            })?
            .to_string();
        let got = c.call(&Call {
            destination: Some(SYSTEMD),
            path: &path,
            interface: "org.freedesktop.DBus.Properties",
            member: "Get",
            args: vec![
                Arg::Val(Value::Str(iface.into())),
                Arg::Val(Value::Str("Delegate".into())),
            ],
        })?;
        Ok(matches!(got.body.first(), Some(Got::Bool(true))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn eps(
        m: Manager,
        vars: &[(&str, &str)],
        owned: &'static [&'static str],
    ) -> Vec<(String, bool)> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        endpoints(m, &|k| vars.get(k).cloned(), &|d| {
            owned.contains(&d.to_str().unwrap())
        })
        .into_iter()
        .map(|e| (e.addr.to_string(), e.via_daemon))
        .collect()
    }

    #[test]
    fn root_asks_pid1_at_its_private_socket_then_the_system_bus() {
        assert_eq!(
            eps(Manager::for_euid(0), &[], &[]),
            vec![
                ("/run/systemd/private".into(), false),
                ("/run/dbus/system_bus_socket".into(), true)
            ]
        );
        assert_eq!(
            eps(
                Manager::System,
                &[("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/tmp/sys")],
                &[]
            )[1],
            ("/tmp/sys".into(), true)
        );
    }

    #[test]
    fn a_user_asks_its_own_user_manager() {
        let m = Manager::for_euid(1000);
        assert_eq!(m, Manager::User(1000));
        assert_eq!(
            eps(
                m,
                &[
                    ("XDG_RUNTIME_DIR", "/run/user/1000"),
                    ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus")
                ],
                &["/run/user/1000"]
            ),
            vec![
                ("/run/user/1000/systemd/private".into(), false),
                ("/run/user/1000/bus".into(), true)
            ]
        );
    }

    #[test]
    fn runuser_and_sudo_u_find_the_runtime_directory_of_the_uid() {
        // runuser -u user keeps root's environment: its runtime directory is not ours.
        let got = eps(
            Manager::User(1000),
            &[
                ("XDG_RUNTIME_DIR", "/run/user/0"),
                ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/0/bus"),
            ],
            &["/run/user/1000"],
        );
        assert_eq!(got[0], ("/run/user/1000/systemd/private".into(), false));
        assert!(got.contains(&("/run/user/1000/bus".into(), true)));
        // sudo -u user: no variables at all.
        assert_eq!(
            eps(Manager::User(1000), &[], &["/run/user/1000"]),
            vec![
                ("/run/user/1000/systemd/private".into(), false),
                ("/run/user/1000/bus".into(), true)
            ]
        );
        // No runtime directory (no user manager ever started): nothing but the environment.
        assert!(eps(Manager::User(1000), &[], &[]).is_empty());
    }
}
