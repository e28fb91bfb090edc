//! `synwire-bench`: the measuring half of `bench/run`. hyperfine measures the launch overhead;
//! this program measures what hyperfine cannot (the time from SIGTERM to the agent's handler, the
//! teardown of an agent that left processes behind, many agents at once), plays the agents those
//! measurements need, and turns every result into the table and the pass/fail lines of the README.
//!
//! Every measurement synchronises on pipes: an agent writes one byte when it is ready, and the
//! clock starts or stops on that byte, never on a sleep.

mod agents;
mod measure;
mod report;

use std::process::ExitCode;

const USAGE: &str = "usage: synwire-bench sigterm SYNWIRE_RUN ROUNDS
       synwire-bench teardown SYNWIRE_RUN ROUNDS LEFTOVERS
       synwire-bench concurrent SYNWIRE_RUN AGENTS AGENTS_DIR
       synwire-bench report RESULTS_DIR
       synwire-bench agent-sigterm | agent-leave N | agent-hold";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["agent-sigterm"] => agents::sigterm(),
        ["agent-leave", n] => number(n).and_then(agents::leave),
        ["agent-hold"] => agents::hold(),
        ["sigterm", bin, rounds] => number(rounds).and_then(|r| measure::sigterm(bin, r)),
        ["teardown", bin, rounds, left] => {
            number(rounds).and_then(|r| number(left).and_then(|n| measure::teardown(bin, r, n)))
        }
        ["concurrent", bin, n, dir] => number(n).and_then(|n| measure::concurrent(bin, n, dir)),
        ["report", dir] => report::print(dir.as_ref()),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synwire-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn number(s: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a number\n{USAGE}"))
}
