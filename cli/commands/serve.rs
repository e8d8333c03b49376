//! `dvx serve`.

use std::net::SocketAddr;
use std::process::ExitCode;

use dvx_serve::{Options, ServeError, TOKEN_ENV};

use super::Ctx;

/// Serve web pages of the pipeline, its runs and lineage (with JSON twins under /api/),
/// and Prometheus metrics, until Ctrl-C or SIGTERM.
#[derive(clap::Args)]
#[command(
    after_help = "Pages: / (the stage graph by state), /runs, /runs/RUN, /lineage?target=PATH@REV;\n\
                  the same under /api/ as JSON (the shapes of `dvx status/log/show/lineage --json`);\n\
                  /metrics (Prometheus) and /healthz.\n\n\
                  Examples:\n  dvx serve                               # http://127.0.0.1:8080\n  dvx serve --addr 127.0.0.1:0            # a free port, printed at start\n  DVX_SERVE_TOKEN=secret dvx serve --addr 0.0.0.0:8080   # other machines need the token"
)]
pub struct Args {
    /// Address to listen on. Anything but loopback needs a token.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
    addr: SocketAddr,
    /// Token every request must carry (prefer the DVX_SERVE_TOKEN variable: `ps` shows
    /// arguments).
    #[arg(long, value_name = "TOKEN", hide_default_value = true)]
    token: Option<String>,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<ExitCode> {
    let token = a
        .token
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|t| !t.is_empty());
    let opts = Options {
        root: ctx.cwd.clone(),
        addr: a.addr,
        token,
    };
    let res = dvx_serve::serve(opts, |at| {
        // Always said, even with -q: a script started with port 0 needs to know the port.
        eprintln!("dvx serve: listening on http://{at}");
    });
    match res {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Engine errors print as every command's do.
        Err(ServeError::Engine(e)) => Err(e),
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            Ok(ExitCode::from(e.class().exit_code()))
        }
    }
}
