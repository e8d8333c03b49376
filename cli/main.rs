//! The dvx command line: parsing, output and progress. Every decision lives in the libraries;
//! each command is a module of `commands`, with its arguments and what it prints.

mod commands;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use dvx_engine::store::ErrorClass;

use commands::Cli;
use output::Out;

fn main() -> ExitCode {
    // A file-size limit (a full disk in tests, quotas) must surface as an error, not kill us.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    // A closed pipe (`dvx log | head`) ends dvx quietly, as it does other Unix tools.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // --json is global, so clap cannot tell which commands lack JSON output: refuse it here, as
    // a usage error, before anything runs.
    if let Some(e) = cli.json_usage_error() {
        let _ = e.print();
        return ExitCode::from(ErrorClass::Invalid.exit_code());
    }
    let out = Out::new(cli.quiet, cli.verbose);
    match commands::run(cli, &out) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            ExitCode::from(e.class().exit_code())
        }
    }
}
