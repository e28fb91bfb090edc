//! The binary: parse the command line, set up diagnostics, run, map the result to an exit code.

use clap::Parser;
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
