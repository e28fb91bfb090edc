//! The agents the measurements run under synwire-run. Each writes one byte to stdout at the moment
//! the measuring side needs to know about.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use signal_hook::consts::SIGTERM;

/// Writes `R` once its SIGTERM handler is installed; the handler itself writes one more byte
/// (signal-hook's pipe action: a write(2) from inside the handler), then the agent exits 0.
pub fn sigterm() -> Result<(), String> {
    let out = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("dup stdout: {e}"))?;
    signal_hook::low_level::pipe::register(SIGTERM, out)
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM])
        .map_err(|e| format!("SIGTERM iterator: {e}"))?;
    ready(b'R')?;
    signals.forever().next();
    Ok(())
}

/// Starts `n` sleeping processes that outlive it, writes `E` and exits 0 without waiting for them:
/// the processes an agent leaves behind for synwire-run's teardown.
pub fn leave(n: usize) -> Result<(), String> {
    for i in 0..n {
        Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sleeper {i}: {e}"))?;
    }
    ready(b'E')
}

/// Writes `r` and holds until stdin reaches end of file: many of these prove that many agents
/// run at the same time.
pub fn hold() -> Result<(), String> {
    ready(b'r')?;
    let mut sink = Vec::new();
    std::io::stdin()
        .read_to_end(&mut sink)
        .map_err(|e| format!("read stdin: {e}"))?;
    Ok(())
}

fn ready(byte: u8) -> Result<(), String> {
    let mut out = std::io::stdout();
    out.write_all(&[byte])
        .and_then(|()| out.flush())
        .map_err(|e| format!("write stdout: {e}"))
}
