//! The binary: parse the command line, set up diagnostics, run, map the result to an exit code.
#![deny(unsafe_code)]

use clap::Parser;

/// dlmalloc (the pure-Rust port Rust's own wasm targets use), not the C library's allocator:
/// musl's mallocng maps and unmaps memory for the many small, short-lived allocations of a
/// launch (40 mmap and 28 munmap calls for `-- true`), which cost more than everything
/// synwire-run does on its own; dlmalloc keeps freed memory for reuse. synwire-run starts no
/// threads, and nothing allocates after fork, so its global lock is never contended.
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
use synwire_run::error::EXIT_OWN_ERROR;

fn main() {
    let cli = match synwire_run::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_OWN_ERROR } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    synwire_run::log::init(cli.verbose);
    let code = match synwire_run::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
