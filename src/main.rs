//! `lmgc`: compress, decompress and inspect gradient files.
//!
//! Exit codes: 0 success, 1 bad input or usage, 2 internal error (a bug).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match std::panic::catch_unwind(|| cli::run(args)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
        // The panic message has been printed by the default hook.
        Err(_) => ExitCode::from(2),
    }
}
