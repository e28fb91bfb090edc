//! What a profile asks Landlock to restrict ([`Requested`]) and what a kernel of a given Landlock
//! ABI restricts of it ([`Status`]): a pure function of the two, so the statistics say the truth on
//! every kernel and the unit tests cover every ABI without one.

use landlock::{Access, AccessFs, AccessNet, BitFlags, Scope, ABI};
use serde::Serialize;

use crate::profile::privilege::Filesystem;

/// The newest Landlock ABI synwire-run requests the rights of: the newest the landlock crate
/// knows. Each ABI only adds rights, and a kernel restricts those of its own ABI; the rest are
/// listed as `unhandled`.
pub const NEWEST: ABI = ABI::V10;

/// The rights a `[filesystem]` section asks Landlock to restrict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    /// Always every filesystem right: what `read` and `write` do not grant is denied.
    pub fs: BitFlags<AccessFs>,
    /// TCP bind and connect, each only when the profile lists its ports.
    pub net: BitFlags<AccessNet>,
    /// `scope`: abstract UNIX sockets and signals.
    pub scope: BitFlags<Scope>,
}

impl Requested {
    pub fn of(fs: &Filesystem) -> Requested {
        let mut net = BitFlags::EMPTY;
        if fs.bind_tcp.is_some() {
            net |= AccessNet::BindTcp;
        }
        if fs.connect_tcp.is_some() {
            net |= AccessNet::ConnectTcp;
        }
        let mut scope = BitFlags::EMPTY;
        if fs.scope.abstract_unix_socket {
            scope |= Scope::AbstractUnixSocket;
        }
        if fs.scope.signal {
            scope |= Scope::Signal;
        }
        Requested {
            fs: AccessFs::from_all(NEWEST),
            net,
            scope,
        }
    }
}

/// What was enforced, for the statistics (JSON key `landlock`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// "enforced" (every requested right), "partial" (the kernel's ABI lacks the rights listed in
    /// `unhandled`), "unsupported" (no Landlock here; best_effort ran without it) or "off" (no
    /// `[filesystem]`).
    pub status: &'static str,
    /// The kernel's Landlock ABI version.
    pub abi: Option<u32>,
    /// The requested rights this kernel cannot restrict, by their kernel names.
    pub unhandled: Vec<&'static str>,
}

impl Status {
    pub fn off() -> Status {
        Status {
            status: "off",
            abi: None,
            unhandled: Vec::new(),
        }
    }

    /// No Landlock in this kernel; `best_effort` runs without it.
    pub fn unsupported() -> Status {
        Status {
            status: "unsupported",
            abi: None,
            unhandled: Vec::new(),
        }
    }

    /// What a kernel with Landlock ABI `abi` (None: without Landlock) restricts of `req`.
    pub fn of(abi: Option<u32>, req: &Requested) -> Status {
        let Some(version) = abi.filter(|&v| v > 0) else {
            return Status::unsupported();
        };
        // A kernel newer than the crate restricts at least what the crate's newest ABI does.
        let kernel = ABI::from(i32::try_from(version).unwrap_or(i32::MAX));
        let mut unhandled: Vec<&'static str> = (req.fs & !AccessFs::from_all(kernel))
            .iter()
            // ABI 1 cannot handle `refer`, but it always denies linking or renaming a file into
            // another directory: that right is restricted, more than asked.
            .filter(|&r| !(r == AccessFs::Refer && kernel == ABI::V1))
            .map(fs_name)
            .collect();
        unhandled.extend(
            (req.net & !AccessNet::from_all(kernel))
                .iter()
                .map(net_name),
        );
        unhandled.extend(
            (req.scope & !Scope::from_all(kernel))
                .iter()
                .map(scope_name),
        );
        Status {
            status: if unhandled.is_empty() {
                "enforced"
            } else {
                "partial"
            },
            abi: Some(version),
            unhandled,
        }
    }
}

/// LANDLOCK_ACCESS_FS_*, lowercase.
fn fs_name(r: AccessFs) -> &'static str {
    match r {
        AccessFs::Execute => "execute",
        AccessFs::WriteFile => "write_file",
        AccessFs::ReadFile => "read_file",
        AccessFs::ReadDir => "read_dir",
        AccessFs::RemoveDir => "remove_dir",
        AccessFs::RemoveFile => "remove_file",
        AccessFs::MakeChar => "make_char",
        AccessFs::MakeDir => "make_dir",
        AccessFs::MakeReg => "make_reg",
        AccessFs::MakeSock => "make_sock",
        AccessFs::MakeFifo => "make_fifo",
        AccessFs::MakeBlock => "make_block",
        AccessFs::MakeSym => "make_sym",
        AccessFs::Refer => "refer",
        AccessFs::Truncate => "truncate",
        AccessFs::IoctlDev => "ioctl_dev",
        AccessFs::ResolveUnix => "resolve_unix",
        _ => "unknown_fs_right",
    }
}

/// LANDLOCK_ACCESS_NET_*, lowercase.
fn net_name(r: AccessNet) -> &'static str {
    match r {
        AccessNet::BindTcp => "bind_tcp",
        AccessNet::ConnectTcp => "connect_tcp",
        AccessNet::BindUdp => "bind_udp",
        AccessNet::ConnectSendUdp => "connect_send_udp",
        _ => "unknown_net_right",
    }
}

/// LANDLOCK_SCOPE_*, lowercase.
fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::AbstractUnixSocket => "scope_abstract_unix_socket",
        Scope::Signal => "scope_signal",
        _ => "unknown_scope",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::privilege::{Enforce, Scope as ProfileScope};

    fn profile(tcp: bool, scope: ProfileScope) -> Filesystem {
        Filesystem {
            enforce: Enforce::BestEffort,
            read: vec!["/".into()],
            write: vec!["/tmp".into()],
            bind_tcp: tcp.then(Vec::new),
            connect_tcp: tcp.then(|| vec![443]),
            scope,
            view: Default::default(),
            hide: Vec::new(),
        }
    }

    /// The `[filesystem]` of a profile written before network rules existed.
    fn plain() -> Requested {
        Requested::of(&profile(false, ProfileScope::default()))
    }

    fn with_tcp() -> Requested {
        Requested::of(&profile(true, ProfileScope::default()))
    }

    #[test]
    fn without_landlock_nothing_is_restricted_and_nothing_is_listed() {
        for abi in [None, Some(0)] {
            assert_eq!(Status::of(abi, &with_tcp()), Status::unsupported());
        }
    }

    #[test]
    fn each_abi_lists_exactly_the_requested_rights_it_cannot_restrict() {
        let scopes = ["scope_abstract_unix_socket", "scope_signal"];
        let rows: [(u32, &[&str]); 10] = [
            // ABI 1 always denies reparenting: `refer` is not listed.
            (1, &["truncate", "ioctl_dev", "resolve_unix"]),
            (2, &["truncate", "ioctl_dev", "resolve_unix"]),
            (3, &["ioctl_dev", "resolve_unix"]),
            (4, &["ioctl_dev", "resolve_unix"]),
            (5, &["resolve_unix"]),
            (6, &["resolve_unix"]),
            (7, &["resolve_unix"]),
            (8, &["resolve_unix"]),
            (9, &[]),
            (10, &[]),
        ];
        for (abi, fs) in rows {
            let mut want: Vec<&str> = fs.to_vec();
            if abi < 6 {
                want.extend(scopes);
            }
            let s = Status::of(Some(abi), &plain());
            assert_eq!(s.unhandled, want, "ABI {abi}");
            assert_eq!(s.abi, Some(abi));
            let enforced = if want.is_empty() {
                "enforced"
            } else {
                "partial"
            };
            assert_eq!(s.status, enforced, "ABI {abi}");
        }
    }

    #[test]
    fn tcp_rules_are_unhandled_before_abi_4_and_listed_only_when_the_profile_has_them() {
        let tcp = ["bind_tcp", "connect_tcp"];
        for abi in 1..=3 {
            let s = Status::of(Some(abi), &with_tcp());
            assert!(
                s.unhandled.ends_with(&[
                    "bind_tcp",
                    "connect_tcp",
                    "scope_abstract_unix_socket",
                    "scope_signal"
                ]),
                "ABI {abi}: {s:?}"
            );
            let plain = Status::of(Some(abi), &plain());
            assert!(
                !plain.unhandled.iter().any(|r| tcp.contains(r)),
                "{plain:?}"
            );
        }
        for abi in 4..=10 {
            let s = Status::of(Some(abi), &with_tcp());
            assert!(
                !s.unhandled.iter().any(|r| tcp.contains(r)),
                "ABI {abi}: {s:?}"
            );
        }
    }

    #[test]
    fn a_profile_without_scopes_is_enforced_on_abi_9_and_lists_no_scope_on_abi_5() {
        let none = ProfileScope {
            abstract_unix_socket: false,
            signal: false,
        };
        let req = Requested::of(&profile(true, none));
        assert!(req.scope.is_empty());
        assert_eq!(Status::of(Some(9), &req).status, "enforced");
        assert_eq!(Status::of(Some(5), &req).unhandled, ["resolve_unix"]);
    }

    #[test]
    fn a_kernel_newer_than_the_crate_restricts_everything_requested() {
        let s = Status::of(Some(42), &with_tcp());
        assert_eq!((s.status, s.abi), ("enforced", Some(42)));
        assert!(s.unhandled.is_empty());
    }

    #[test]
    fn the_filesystem_rights_are_those_of_the_newest_abi_and_only_tcp_is_requested() {
        let req = with_tcp();
        assert_eq!(req.fs, AccessFs::from_all(NEWEST));
        assert_eq!(req.net, AccessNet::BindTcp | AccessNet::ConnectTcp);
        assert_eq!(req.scope, Scope::from_all(NEWEST));
        assert!(plain().net.is_empty());
    }
}
