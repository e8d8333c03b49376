//! `dvx remote add|list|remove|default`.

use dvx_engine::remote::Project;
use dvx_engine::store::config::RemoteConfig;
use dvx_engine::store::{Access, Repo};
use dvx_engine::sync::absolute_url;

use super::Ctx;

#[derive(clap::Subcommand)]
pub enum Cmd {
    Add(AddArgs),
    List(ListArgs),
    Remove(RemoveArgs),
    Default(DefaultArgs),
}

/// Add a remote (the first one becomes the default).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx remote add origin s3://team-data/cats\n  dvx remote add local s3://bucket/prefix --endpoint http://127.0.0.1:9000\n  dvx remote add backup /mnt/share/cats\n  dvx remote add origin gs://bucket/prefix --force     # change it\n\nCredentials are never written here: they come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY\n(or GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT_KEY), --profile, or\n.dvx/config.local.toml, which git ignores."
)]
pub struct AddArgs {
    name: String,
    url: String,
    #[command(flatten)]
    conn: RemoteConfig,
    /// Replace a remote of that name.
    #[arg(long)]
    force: bool,
}

/// List remotes.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx remote list\n  dvx remote list --json")]
pub struct ListArgs {}

/// Remove a remote (and the branches fetched from it).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx remote remove backup")]
pub struct RemoveArgs {
    name: String,
}

/// Make a remote the default for push, pull and fetch.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx remote default origin")]
pub struct DefaultArgs {
    name: String,
}

impl Cmd {
    /// The command as typed, when it has no JSON output.
    pub fn without_json(&self) -> Option<&'static str> {
        match self {
            Cmd::Add(_) => Some("remote add"),
            Cmd::List(_) => None,
            Cmd::Remove(_) => Some("remote remove"),
            Cmd::Default(_) => Some("remote default"),
        }
    }
}

pub fn run(cmd: Cmd, ctx: &Ctx) -> dvx_engine::Result<()> {
    let (cwd, out) = (&ctx.cwd, ctx.out);
    match cmd {
        Cmd::Add(a) => {
            let repo = Repo::open(cwd, Access::Write("dvx remote add"))?;
            let url = absolute_url(cwd, &a.url);
            let rc = RemoteConfig {
                url: url.clone(),
                ..a.conn
            };
            Project(&repo).add_remote(&a.name, rc, a.force)?;
            out.say(&format!("added remote {}: {url}", a.name));
        }
        Cmd::List(_) => {
            let repo = Repo::open(cwd, Access::Read)?;
            let default = repo.config.core.remote.as_deref();
            if ctx.json {
                let v: Vec<serde_json::Value> = repo
                    .config
                    .remote
                    .iter()
                    .map(|(n, r)| {
                        let mut v = serde_json::to_value(r).unwrap_or_default();
                        v["name"] = n.clone().into();
                        v["default"] = (default == Some(n.as_str())).into();
                        v
                    })
                    .collect();
                out.json(&v);
            } else {
                for (n, r) in &repo.config.remote {
                    let star = if default == Some(n.as_str()) {
                        "*"
                    } else {
                        " "
                    };
                    let ep = r
                        .endpoint
                        .as_ref()
                        .map(|e| format!(" (endpoint {e})"))
                        .unwrap_or_default();
                    out.say(&format!("{star} {n}\t{}{ep}", r.url));
                }
            }
        }
        Cmd::Remove(a) => {
            let repo = Repo::open(cwd, Access::Write("dvx remote remove"))?;
            Project(&repo).remove_remote(&a.name)?;
            out.say(&format!("removed remote {}", a.name));
        }
        Cmd::Default(a) => {
            let repo = Repo::open(cwd, Access::Write("dvx remote default"))?;
            Project(&repo).set_default_remote(&a.name)?;
            out.say(&format!("default remote: {}", a.name));
        }
    }
    Ok(())
}
