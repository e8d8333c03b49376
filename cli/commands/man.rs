//! `dvx man`: the manual page, or the Markdown command reference the book keeps (a test
//! checks it is current), generated from the argument definitions.

use std::io::Write;

use clap::CommandFactory;
use dvx_engine::store::StoreError;

use super::Cli;

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

/// Width the generated reference is wrapped at, whatever the terminal.
const WIDTH: usize = 100;

pub fn run(a: Args) -> dvx_engine::Result<()> {
    let markdown = a.markdown;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let cmd = Cli::command().term_width(WIDTH);
    let res = if markdown {
        w.write_all(reference(cmd).as_bytes())
    } else {
        clap_mangen::Man::new(cmd).render(&mut w)
    };
    Ok(res.map_err(|e| StoreError::io("<stdout>", e))?)
}

/// Every command's long help, in the order `dvx --help` lists them, as Markdown.
fn reference(mut cmd: clap::Command) -> String {
    let mut out = String::from(
        "# Command-line help\n\n\
         Generated from the program's own argument definitions by `dvx man --markdown`; a test\n\
         fails when it is out of date. The [command reference](commands.md) explains each\n\
         command with examples and output.\n",
    );
    cmd.build();
    section(&mut out, &mut cmd, "dvx");
    out
}

fn section(out: &mut String, cmd: &mut clap::Command, path: &str) {
    let level = "#".repeat((path.matches(' ').count() + 2).min(4));
    let help = cmd.render_long_help().to_string();
    out.push_str(&format!(
        "\n{level} `{path}`\n\n```text\n{}\n```\n",
        help.trim_end()
    ));
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        if let Some(sub) = cmd.find_subcommand_mut(&name) {
            section(out, sub, &format!("{path} {name}"));
        }
    }
}
