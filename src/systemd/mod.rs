//! Talking to systemd: a minimal D-Bus client ([`dbus`]) and the one request synwire-run makes of
//! a manager, a transient scope with delegation ([`scope`]). Only used where the cgroup placement
//! needs systemd's help (see [`crate::cgroup::delegate`]).

pub mod dbus;
pub mod scope;
