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

/// Large blocks (RocksDB's memtable arenas, write batches, pack buffers) always come from
/// mmap and go back to the system when freed. glibc otherwise raises its mmap threshold after
/// the first such free, serves later blocks from its per-thread heaps, and keeps them there:
/// `dvx add` of a million files peaked at 241 MB resident for 67 MB of heap in use; with a
/// fixed threshold, 132 MB.
fn bound_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

fn main() -> ExitCode {
    // A file-size limit (a full disk in tests, quotas) must surface as an error, not kill us.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    // A closed pipe (`dvx log | head`) ends dvx quietly, as it does other Unix tools.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    bound_malloc();
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
