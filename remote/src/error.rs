//! The one error type of dvx-remote: what went wrong talking to a remote, with a hint, or a
//! store error met on the way.

use dvx_store::{ErrorClass, StoreError};

pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}{message}", remote_prefix(.remote))]
    Remote {
        remote: String,
        message: String,
        kind: RemoteErrorKind,
    },
    /// Push or pull without a branch named while HEAD is on none: `branches` end at HEAD's
    /// commit (to get on), empty when none does.
    #[error("HEAD is detached at {}: name the branch{}", .commit.short(), if *.push { " or tag to push" } else { " to pull" })]
    Detached {
        commit: dvx_store::Id,
        branches: Vec<String>,
        push: bool,
    },
}

fn remote_prefix(remote: &str) -> String {
    if remote.is_empty() {
        String::new()
    } else {
        format!("remote {remote}: ")
    }
}

impl RemoteError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RemoteError::Store(e) => e.hint(),
            RemoteError::Remote { kind, .. } => kind.hint(),
            RemoteError::Detached {
                commit,
                branches,
                push,
            } => {
                let verb = if *push { "push" } else { "pull" };
                Some(match branches.first() {
                    Some(b) => format!(
                        "branch {b} is at this commit: `dvx checkout {b}` gets on it (no file changes), then `dvx {verb}`"
                    ),
                    None => format!(
                        "no branch is at {}: `dvx branch NAME && dvx checkout NAME` makes one here, or `dvx {verb} REMOTE BRANCH` names one",
                        commit.short()
                    ),
                })
            }
        }
    }

    /// Damaged or unsafe data on the remote is an integrity problem; the rest failed.
    pub fn class(&self) -> ErrorClass {
        match self {
            RemoteError::Store(e) => e.class(),
            RemoteError::Remote {
                kind: RemoteErrorKind::Corrupt | RemoteErrorKind::Unsafe,
                ..
            } => ErrorClass::Integrity,
            RemoteError::Remote { .. } => ErrorClass::Failed,
            RemoteError::Detached { .. } => ErrorClass::Invalid,
        }
    }

    /// The kind, when the remote itself is the cause.
    pub fn kind(&self) -> Option<RemoteErrorKind> {
        match self {
            RemoteError::Remote { kind, .. } => Some(*kind),
            RemoteError::Store(_) | RemoteError::Detached { .. } => None,
        }
    }
}

/// What went wrong with a remote, for the hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteErrorKind {
    /// The server could not be reached, or stopped answering.
    Network,
    /// Credentials missing, wrong, or without permission.
    Auth,
    /// The URL names nothing dvx can use.
    NotFound,
    /// A ref moved on the remote: someone else pushed.
    Rejected,
    /// The remote holds damaged or missing data.
    Corrupt,
    /// The remote's settings are wrong.
    Config,
    /// Local and remote branch both have commits of their own.
    Diverged,
    /// The remote's data names paths or modes dvx never writes into a workspace.
    Unsafe,
}

impl RemoteErrorKind {
    pub fn hint(self) -> Option<String> {
        Some(match self {
            RemoteErrorKind::Network => "check the URL and endpoint and that the server is up; running the command again resumes where it stopped".into(),
            RemoteErrorKind::Auth => "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, --profile, or .dvx/config.local.toml)".into(),
            RemoteErrorKind::NotFound => "check the URL; a new remote is set up by the first `dvx push`".into(),
            RemoteErrorKind::Rejected => "run `dvx fetch` (or `dvx pull`) first, then push again".into(),
            RemoteErrorKind::Corrupt => "the remote's copy is damaged: push again from a clone that has the data (nothing was written locally)".into(),
            RemoteErrorKind::Config => "see `dvx remote list`; change it with `dvx remote add --force NAME URL ...`".into(),
            RemoteErrorKind::Unsafe => "the remote's data reaches into git's or dvx's own files (.git, .dvx, dvx.lock, .dvx-tmp-*) or asks for file modes dvx never restores: no dvx wrote it, or it was tampered with. Nothing was written locally; do not use this remote until whoever controls it has looked".into(),
            RemoteErrorKind::Diverged => "dvx does not merge data: check out the remote's commit (`dvx checkout REMOTE/BRANCH`) and redo your change on it, or `dvx push --force` to replace the remote's".into(),
        })
    }
}

/// A "not found" that is about the bucket (or container), not the object.
pub(crate) fn no_bucket(e: &object_store::Error) -> bool {
    let s = error_chain(e).to_ascii_lowercase();
    s.contains("nosuchbucket")
        || s.contains("containernotfound")
        || s.contains("bucket does not exist")
}

/// The messages of an error and its sources, joined.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A network failure in a few words (the full chain of a client error is long).
pub(crate) fn summarize_network(full: &str) -> String {
    let l = full.to_ascii_lowercase();
    if l.contains("connection refused") || l.contains("tcp connect") {
        "cannot connect to the server (connection refused)".into()
    } else if l.contains("timed out") || l.contains("timeout") {
        "the server did not answer in time".into()
    } else if l.contains("dns") || l.contains("resolve") {
        "cannot resolve the server's name".into()
    } else if l.contains("connection reset") || l.contains("broken pipe") || l.contains("closed") {
        "the connection was dropped".into()
    } else {
        let first = full.lines().next().unwrap_or(full);
        first.chars().take(300).collect()
    }
}
