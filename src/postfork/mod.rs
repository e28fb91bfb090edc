//! Every line that runs after fork/clone in a process that has not exec'd: the agent's child up
//! to execve ([`child`], with [`security`] for least privilege), the PID 1 of a new pid namespace
//! ([`init`], which forks the agent and never execs), the guardian ([`guard`], which never execs),
//! the forks that start them ([`fork`]) and the system calls they make ([`raw`]).
//!
//! After fork only the forking thread exists, on a copy of the parent's memory: a lock another
//! thread held at that instant (the allocator's, stdout's, the environment's, the tracing
//! subscriber's) stays held forever. So the code here only makes async-signal-safe system calls
//! on data prepared before fork (C strings, argv and envp arrays, descriptors), reports a failure
//! as an errno over a pipe, and leaves with _exit, never exit (the parent's atexit handlers and
//! stdio buffers) and never a panic (the handler allocates and prints; in a build that unwinds
//! it would run the parent's code in the child).
//!
//! The lints below police that. clippy.toml lists, with a reason each, the macros (format!, vec!,
//! print!, panic! and the asserts, tracing's), methods (unwrap and expect, to_owned, collect,
//! std::process::exit, std::env, std::fs, libc's exit, malloc, getenv, and libc's and nix's
//! setgroups, setgid and setuid, which synchronise every thread through a signal) and types
//! (Vec, String, Box, CString, PathBuf, Mutex, File) that code here must not use; the rest of
//! the workspace allows them (Cargo.toml). Indexing and slicing, which panic out of bounds, are
//! denied too: code here uses `get`. Allowed on purpose: nanosleep (std::thread::sleep) is
//! async-signal-safe; arithmetic stays plain (release builds do not check overflow, and every sum
//! here is bounded).
//!
//! Only [`fork`] and [`raw`] may use `unsafe` (the crate denies it elsewhere); [`raw`] goes
//! through rustix wherever it has a safe wrapper.
#![deny(
    clippy::disallowed_macros,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::exit,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

pub(crate) mod child;
pub(crate) mod fork;
pub(crate) mod guard;
pub(crate) mod init;
pub(crate) mod raw;
pub(crate) mod security;
pub(crate) mod view;
