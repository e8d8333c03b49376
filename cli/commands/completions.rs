//! `dvx completions`.

use clap::CommandFactory;

use super::Cli;

/// Print a shell completion script.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx completions bash > /etc/bash_completion.d/dvx\n  dvx completions zsh > \"${fpath[1]}/_dvx\"\n  dvx completions fish > ~/.config/fish/completions/dvx.fish"
)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn run(a: Args) -> dvx_engine::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "dvx", &mut std::io::stdout());
    Ok(())
}
