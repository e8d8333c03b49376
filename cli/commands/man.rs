//! `dvx man`.

use crate::docs;

/// Print the manual page of dvx (roff), or the command reference as Markdown.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx man | man -l -\n  dvx man > /usr/local/share/man/man1/dvx.1\n  dvx man --markdown > book/src/cli-help.md"
)]
pub struct Args {
    /// The whole command reference (every command's --help) as Markdown, as the book keeps it.
    #[arg(long)]
    markdown: bool,
}

pub fn run(a: Args) -> dvx_engine::Result<()> {
    Ok(docs::man(a.markdown)?)
}
