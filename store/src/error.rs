//! The one error type of dvx-store. Every variant carries the path or id it is about and
//! knows a hint for the user.

use std::io;
use std::path::{Path, PathBuf};

use crate::id::Id;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not a dvx project (or any parent up to /): {}", .0.display())]
    NotAProject(PathBuf),
    #[error("already a dvx project: {}", .0.display())]
    AlreadyInitialized(PathBuf),
    #[error("{}: no such file or folder", .0.display())]
    PathNotFound(PathBuf),
    #[error("{}: outside the project at {}", .path.display(), .root.display())]
    OutsideWorkspace { path: PathBuf, root: PathBuf },
    #[error("{path}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{path}: refusing to write it: {reason}")]
    UnsafePath { path: String, reason: String },
    #[error(
        "{path}: dvx and git keep their own files here ({reason}); dvx never tracks or writes it"
    )]
    ReservedPath { path: String, reason: String },
    #[error("{path}: {}", beyond(.path, .link))]
    BeyondSymlink { path: String, link: String },
    #[error("{}: permission denied", .0.display())]
    PermissionDenied(PathBuf),
    #[error("disk full while writing {}", .0.display())]
    DiskFull(PathBuf),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unknown revision {0:?}")]
    UnknownRevision(String),
    /// A project whose store does not exist yet (a fresh `git clone`), asked about data.
    #[error("nothing fetched yet: this project has no dvx store{}", pinned_note(.pinned))]
    NothingFetched { pinned: Option<Id> },
    /// A git revision from before the project used dvx.
    #[error("git revision {rev} ({}) has no dvx.lock", &.git_commit[..12.min(.git_commit.len())])]
    NoLockAtGitRev { rev: String, git_commit: String },
    /// dvx.lock pins a commit the store lacks (git brought a newer dvx.lock than dvx has).
    #[error("dvx.lock pins commit {}, which is not fetched yet", .0.short())]
    PinnedNotFetched(Id),
    #[error("ambiguous revision {rev:?}: matches {count} commits")]
    AmbiguousRevision { rev: String, count: usize },
    #[error("{path}: not found in commit {commit}")]
    NotInRevision { path: String, commit: String },
    #[error("corrupt {kind} {id}: {detail}")]
    CorruptObject {
        kind: &'static str,
        id: Id,
        detail: String,
    },
    #[error("missing {kind} {id}")]
    MissingObject { kind: &'static str, id: Id },
    #[error("another dvx is writing to this project ({holder})")]
    Locked { holder: String },
    #[error("{}:{line}:{column}: {message}", .path.display())]
    LockFileSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: edited by hand: {detail}", .path.display())]
    LockFileEdited { path: PathBuf, detail: String },
    /// A settings file; `line` 0 when the problem has no single place.
    #[error("{}{}: {message}", .path.display(), at(*.line, *.column))]
    Config {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A setting that does not come from a file, such as an environment variable.
    #[error("{source_name}: {message}")]
    Setting {
        source_name: String,
        message: String,
        hint: String,
    },
    #[error("uncommitted changes would be overwritten: {}", .0.join(", "))]
    UncommittedChanges(Vec<String>),
    #[error("branch or tag {0:?} already exists")]
    RefExists(String),
    #[error("{name:?} is not a valid {what} name")]
    InvalidRefName { name: String, what: &'static str },
    #[error("cannot delete branch {0:?}: it is checked out")]
    DeleteCurrentBranch(String),
    #[error("nothing is tracked yet")]
    NothingTracked,
    #[error("{}: not tracked", .0)]
    NotTracked(String),
    #[error("the store database failed: {0}")]
    Db(String),
    #[error("the store database{} in {} is damaged: {detail}", if *.log { "'s write-ahead log" } else { "" }, .path.display())]
    DbCorrupt {
        path: PathBuf,
        detail: String,
        /// The damage is in the write-ahead log (found while replaying it at open).
        log: bool,
    },
    #[error("git: {0}")]
    Git(String),
    #[error("no remote named {0:?}")]
    UnknownRemote(String),
}

fn pinned_note(commit: &Option<Id>) -> String {
    match commit {
        Some(c) => format!(" (dvx.lock pins commit {})", c.short()),
        None => String::new(),
    }
}

fn beyond(path: &str, link: &str) -> String {
    if path == link {
        "is a symbolic link; dvx does not work through one here".into()
    } else {
        format!("beyond a symbolic link at {link}")
    }
}

fn at(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// What kind of failure an error is: the exit status a script can rely on follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The operation was valid but failed: a stage failed, a push was rejected, the network,
    /// the disk, another writer.
    Failed,
    /// The command was given something invalid: a path, a revision, a name, or a file it
    /// reads (dvx.yaml, config.toml, dvx.lock).
    Invalid,
    /// Stored data is damaged or missing: corrupt or missing objects, a damaged database, a
    /// tampered tree, a remote that holds damaged data.
    Integrity,
}

impl ErrorClass {
    /// The exit status: 1 failed, 2 invalid input (as for a usage error), 3 integrity.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Failed => 1,
            ErrorClass::Invalid => 2,
            ErrorClass::Integrity => 3,
        }
    }
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        use ErrorClass::*;
        use StoreError::*;
        match self {
            NotAProject(_) | AlreadyInitialized(_) | PathNotFound(_) | OutsideWorkspace { .. } => {
                Invalid
            }
            InvalidPath { .. } | UnknownRevision(_) | AmbiguousRevision { .. } => Invalid,
            NothingFetched { .. } | PinnedNotFetched(_) => Failed,
            NoLockAtGitRev { .. } => Invalid,
            NotInRevision { .. } | LockFileSyntax { .. } | LockFileEdited { .. } => Invalid,
            Config { .. } | Setting { .. } | RefExists(_) | InvalidRefName { .. } => Invalid,
            DeleteCurrentBranch(_) => Invalid,
            NotTracked(_) | UnknownRemote(_) | ReservedPath { .. } | BeyondSymlink { .. } => {
                Invalid
            }
            UnsafePath { .. } | CorruptObject { .. } | MissingObject { .. } | DbCorrupt { .. } => {
                Integrity
            }
            PermissionDenied(_) | DiskFull(_) | Io { .. } | Locked { .. } => Failed,
            UncommittedChanges(_) | NothingTracked | Db(_) | Git(_) => Failed,
        }
    }

    /// One line telling the user what to do next.
    pub fn hint(&self) -> Option<String> {
        use StoreError::*;
        Some(match self {
            NotAProject(_) => "run `dvx init` in the project's top folder first".into(),
            AlreadyInitialized(_) => "nothing to do; `dvx status` shows its state".into(),
            PathNotFound(_) => "check the spelling; paths are relative to the current folder".into(),
            OutsideWorkspace { .. } => "dvx only tracks paths inside the project folder".into(),
            InvalidPath { .. } => "change the path named above (or leave it out) and run the command again".into(),
            UnsafePath { .. } => {
                "the stored data names a path outside the project; the store may be tampered with: run `dvx fsck`".into()
            }
            ReservedPath { .. } => {
                "git's and dvx's own files (.git, .dvx, dvx.lock, .dvx-tmp-*) are never data: leave them out; if stored data names one, it was tampered with: run `dvx fsck`".into()
            }
            BeyondSymlink { link, .. } => format!(
                "{link} may lead outside the project, so dvx never reads or writes through it: use the folder it points to, or replace the link by a real folder"
            ),
            PermissionDenied(_) => "check the file's permissions (`ls -l`)".into(),
            DiskFull(_) => "free some space (`dvx gc` removes unreachable data) and run the command again; nothing was changed".into(),
            Io { .. } => return None,
            UnknownRevision(_) => "list revisions with `dvx log`, `dvx branch` or `dvx tag` (a git branch, tag or commit works too, through its dvx.lock)".into(),
            NoLockAtGitRev { .. } => "it predates dvx in this project: `git log -- dvx.lock` lists the revisions that have one".into(),
            NothingFetched { .. } | PinnedNotFetched(_) => {
                "run `dvx pull` to fetch what dvx.lock pins from the default remote (`dvx remote list` shows it)".into()
            }
            AmbiguousRevision { .. } => "give more hex digits of the commit id".into(),
            NotInRevision { .. } => "list what the commit holds with `dvx ls REV`".into(),
            CorruptObject { .. } | MissingObject { .. } => {
                "run `dvx fsck` to list every damaged object; fetch them again from a remote or re-add the data".into()
            }
            Locked { .. } => "wait for it to finish and run the command again".into(),
            LockFileSyntax { .. } | LockFileEdited { .. } => {
                "dvx.lock is written by dvx: restore it with `git checkout dvx.lock`, or rewrite it from a commit with `dvx checkout --force REV`".into()
            }
            Config { .. } => "fix the file by hand; the book's format page lists every setting".into(),
            Setting { hint, .. } => hint.clone(),
            UncommittedChanges(_) => "commit them with `dvx commit`, or pass --force to discard them".into(),
            RefExists(_) => "pick another name, or delete the old one with -d".into(),
            InvalidRefName { .. } => "use letters, digits, '-', '_', '.' and '/' (no '..', no leading '-')".into(),
            DeleteCurrentBranch(_) => "check out another branch first".into(),
            NothingTracked => "track data with `dvx add PATH`".into(),
            NotTracked(_) => "`dvx status` and `dvx ls` show what is tracked".into(),
            Db(_) => "if another dvx was killed, run the command again; otherwise run `dvx fsck`".into(),
            DbCorrupt { log: true, .. } => {
                "a write-ahead log file is damaged: `dvx fsck --recover` keeps everything before the damage and drops the rest (fetch it again from a remote); see the book's security page".into()
            }
            DbCorrupt { .. } => {
                "run `dvx fsck` to see what is damaged; data on a remote can be fetched again (see the book's security page)".into()
            }
            Git(_) => return None,
            UnknownRemote(_) => "list remotes with `dvx remote list`; add one with `dvx remote add NAME URL`".into(),
        })
    }

    /// Attach a path to an I/O error, recognising the cases users can act on.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> StoreError {
        let path = path.as_ref().to_path_buf();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => {
                StoreError::DiskFull(path)
            }
            Some(libc::EACCES) | Some(libc::EPERM) => StoreError::PermissionDenied(path),
            _ if source.kind() == io::ErrorKind::NotFound => StoreError::PathNotFound(path),
            _ => StoreError::Io { path, source },
        }
    }

    pub fn corrupt(kind: &'static str, id: Id, detail: impl Into<String>) -> StoreError {
        StoreError::CorruptObject {
            kind,
            id,
            detail: detail.into(),
        }
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> StoreError {
        let s = e.into_string();
        if s.contains("No space left") {
            return StoreError::DiskFull(PathBuf::from(".dvx/db"));
        }
        StoreError::Db(s)
    }
}

impl From<git2::Error> for StoreError {
    fn from(e: git2::Error) -> StoreError {
        StoreError::Git(e.message().to_string())
    }
}

/// Extension to attach paths to io results tersely.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| StoreError::io(path, e))
    }
}
