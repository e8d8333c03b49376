//! HEAD, branches and tags, and revision syntax (`HEAD~2`, `main`, `v1`, hex prefixes).

use crate::db::{ObjKind, CF_OBJECTS, CF_REFS};
use crate::error::{Result, StoreError};
use crate::id::Id;
use crate::store::{Store, Txn};

pub const HEAD: &str = "HEAD";
pub const HEADS: &str = "refs/heads/";
pub const TAGS: &str = "refs/tags/";
/// Where fetched branches are kept: `refs/remotes/REMOTE/BRANCH`.
pub const REMOTES: &str = "refs/remotes/";
pub const DEFAULT_BRANCH: &str = "main";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// On a branch (which may not have a commit yet).
    Branch(String),
    Detached(Id),
}

impl Store {
    pub fn read_ref(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .get(CF_REFS, name.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn head(&self) -> Result<Head> {
        match self.read_ref(HEAD)? {
            Some(v) => match v.strip_prefix("ref: ") {
                Some(r) => Ok(Head::Branch(r.strip_prefix(HEADS).unwrap_or(r).to_string())),
                None => Ok(Head::Detached(v.parse().map_err(|_| {
                    StoreError::Db(format!("HEAD holds an invalid value {v:?}"))
                })?)),
            },
            None => Ok(Head::Branch(DEFAULT_BRANCH.into())),
        }
    }

    /// The commit a ref points at (following HEAD's symbolic form).
    pub fn ref_target(&self, name: &str) -> Result<Option<Id>> {
        let Some(v) = self.read_ref(name)? else {
            return Ok(None);
        };
        if let Some(r) = v.strip_prefix("ref: ") {
            return self.ref_target(r);
        }
        v.parse()
            .map(Some)
            .map_err(|_| StoreError::Db(format!("ref {name} holds an invalid value {v:?}")))
    }

    pub fn head_commit(&self) -> Result<Option<Id>> {
        self.ref_target(HEAD)
    }

    /// Branch (or tag) names with their commits, sorted.
    pub fn list_refs(&self, prefix: &str) -> Result<Vec<(String, Id)>> {
        let mut out = Vec::new();
        for (k, v) in self.db.scan_prefix(CF_REFS, prefix.as_bytes())? {
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let id = String::from_utf8_lossy(&v)
                .parse()
                .map_err(|_| StoreError::Db(format!("ref {name} holds an invalid id")))?;
            out.push((name, id));
        }
        Ok(out)
    }

    /// Resolve a revision to a commit id.
    pub fn resolve(&self, rev: &str) -> Result<Id> {
        match self.resolve_here(rev) {
            // A stand-in for a store not created yet knows no revision, and says why.
            Err(StoreError::UnknownRevision(_)) if self.nothing_fetched => {
                Err(StoreError::NothingFetched { pinned: None })
            }
            r => r,
        }
    }

    fn resolve_here(&self, rev: &str) -> Result<Id> {
        let unknown = || StoreError::UnknownRevision(rev.to_string());
        // Suffixes: ~N and ^ (first parent), applied left to right.
        let split = rev.find(['~', '^']).unwrap_or(rev.len());
        let (base, mut rest) = rev.split_at(split);
        let mut id = self.resolve_base(base)?.ok_or_else(unknown)?;
        while !rest.is_empty() {
            let (steps, tail) = if let Some(r) = rest.strip_prefix('~') {
                let end = r.find(['~', '^']).unwrap_or(r.len());
                let n = if end == 0 {
                    1
                } else {
                    r[..end].parse::<usize>().map_err(|_| unknown())?
                };
                (n, &r[end..])
            } else if let Some(r) = rest.strip_prefix('^') {
                (1, r)
            } else {
                return Err(unknown());
            };
            for _ in 0..steps {
                id = *self.get_commit(&id)?.parents.first().ok_or_else(unknown)?;
            }
            rest = tail;
        }
        Ok(id)
    }

    fn resolve_base(&self, base: &str) -> Result<Option<Id>> {
        if base == HEAD || base == "@" {
            return self.head_commit();
        }
        if base.starts_with("refs/") {
            return self.ref_target(base);
        }
        for prefix in [HEADS, TAGS, REMOTES] {
            if let Some(id) = self.ref_target(&format!("{prefix}{base}"))? {
                return Ok(Some(id));
            }
        }
        if base.len() >= 4 && base.len() <= 64 && base.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.commit_by_prefix(&base.to_ascii_lowercase());
        }
        Ok(None)
    }

    /// Whether `ancestor` is `desc` or one of its ancestors (commits missing locally end
    /// that line of the search).
    pub fn is_ancestor(&self, ancestor: &Id, desc: &Id) -> Result<bool> {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![*desc];
        while let Some(id) = stack.pop() {
            if id == *ancestor {
                return Ok(true);
            }
            if !seen.insert(id) || !self.has_object(ObjKind::Commit, &id)? {
                continue;
            }
            stack.extend(self.get_commit(&id)?.parents);
        }
        Ok(false)
    }

    fn commit_by_prefix(&self, hex_prefix: &str) -> Result<Option<Id>> {
        self.find_by_prefix(ObjKind::Commit, hex_prefix)
    }

    /// The one object of `kind` whose id starts with `hex_prefix` (lowercase hex, at least 4
    /// digits); an error naming the count if several do.
    pub fn find_by_prefix(&self, kind: ObjKind, hex_prefix: &str) -> Result<Option<Id>> {
        let even = &hex_prefix[..hex_prefix.len() / 2 * 2];
        let mut key = vec![kind as u8];
        key.extend(hex::decode(even).unwrap_or_default());
        let mut found = Vec::new();
        self.db.for_each_prefix(CF_OBJECTS, &key, |k, _| {
            if let Some(id) = Id::from_slice(&k[1..]) {
                if id.to_hex().starts_with(hex_prefix) {
                    found.push(id);
                }
            }
            Ok(found.len() < 2)
        })?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(Some(found[0])),
            n => Err(StoreError::AmbiguousRevision {
                rev: hex_prefix.to_string(),
                count: n,
            }),
        }
    }
}

impl Txn<'_> {
    pub fn set_ref(&self, name: &str, id: &Id) {
        self.put(CF_REFS, name.as_bytes(), id.to_hex().as_bytes());
    }

    pub fn set_head(&self, head: &Head) {
        let v = match head {
            Head::Branch(b) => format!("ref: {HEADS}{b}"),
            Head::Detached(id) => id.to_hex(),
        };
        self.put(CF_REFS, HEAD.as_bytes(), v.as_bytes());
    }

    /// Move whatever HEAD names (its branch, or HEAD itself when detached) to `id`.
    pub fn advance_head(&self, head: &Head, id: &Id) {
        match head {
            Head::Branch(b) => self.set_ref(&format!("{HEADS}{b}"), id),
            Head::Detached(_) => self.set_head(&Head::Detached(*id)),
        }
    }

    pub fn delete_ref(&self, name: &str) {
        self.delete(CF_REFS, name.as_bytes());
    }
}

/// Branch and tag names: like git's rules, simplified.
pub fn validate_ref_name(name: &str, what: &'static str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && name != HEAD
        && name != "@"
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidRefName {
            name: name.to_string(),
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        assert!(validate_ref_name("feature/x-1", "branch").is_ok());
        for bad in ["", "-x", "a..b", "HEAD", "a b", "x.lock", "a/"] {
            assert!(validate_ref_name(bad, "branch").is_err(), "{bad}");
        }
    }
}
