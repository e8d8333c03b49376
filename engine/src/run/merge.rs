//! A datum stage's output: every datum's folder merged into the stage's out folder, either
//! all of them again or, from the output of the last run, only the datums that changed.

use super::table::{Row, Table};
use super::*;

/// A stage's merged output and the table rows of the datums merged into it.
pub(super) struct Merged {
    /// The out folder and everything in it, by project path.
    pub files: BTreeMap<String, Flat>,
    /// A row for each datum whose record was merged (every datum, or those that changed).
    pub rows: Vec<(String, Row)>,
}

fn folder() -> Flat {
    Flat {
        kind: EntryKind::Dir,
        mode: 0o755,
        size: 0,
        id: Id([0; 32]),
    }
}

/// Whether anything in `files` lies under the folder `dir`.
fn has_children(files: &BTreeMap<String, Flat>, dir: &str) -> bool {
    let under = format!("{dir}/");
    files
        .range(under.clone()..)
        .next()
        .is_some_and(|(p, _)| p.starts_with(&under))
}

fn collision(s: &Stage, prev: &str, who: &str, path: &str) -> EngineError {
    EngineError::Failed {
        stage: s.name.clone(),
        datum: None,
        message: format!("datums {prev} and {who} both wrote {path}"),
    }
}

impl Engine<'_> {
    /// One record's folder, by project path under `out`, and its table row.
    fn datum_files(&self, out: &str, r: &DatumRun) -> Result<(BTreeMap<String, Flat>, Row)> {
        let mut flat = BTreeMap::new();
        if let Some(t) = &r.out {
            worktree::flatten(&self.repo.store, t, out, &mut flat)?;
        }
        let empty_dirs = flat
            .iter()
            .any(|(p, f)| f.kind == EntryKind::Dir && !has_children(&flat, p));
        let row = Row {
            key: r.key,
            out: r.out,
            empty_dirs,
        };
        Ok((flat, row))
    }

    /// Merge every datum's output folder into the stage's out folder; two datums writing one
    /// path is an error naming both.
    pub(super) fn merge_datums(&self, s: &Stage, records: &[DatumRun]) -> Result<Merged> {
        let mut files = BTreeMap::new();
        files.insert(s.datum_out(), folder());
        // Every path in `files` but the out folder itself came from one of `records`.
        let rows = self.merge_records(s, &mut files, records, &|_| {
            Ok("(another datum)".to_string())
        })?;
        Ok(Merged { files, rows })
    }

    /// Merge `records` into `files`. A path they write that is already there (other than a
    /// folder both have) is an error naming both writers; `earlier` names the writer of a path
    /// that none of `records` wrote.
    fn merge_records(
        &self,
        s: &Stage,
        files: &mut BTreeMap<String, Flat>,
        records: &[DatumRun],
        earlier: &dyn Fn(&str) -> Result<String>,
    ) -> Result<Vec<(String, Row)>> {
        let out_path = s.datum_out();
        let mut owner: HashMap<String, String> = HashMap::new();
        let mut rows = Vec::with_capacity(records.len());
        for r in records {
            let who = r.datum.clone().unwrap_or_default();
            let (flat, row) = self.datum_files(&out_path, r)?;
            if let Some(d) = &r.datum {
                rows.push((d.clone(), row));
            }
            for (p, f) in flat {
                if let Some(m) = files.get(&p) {
                    if f.kind != EntryKind::Dir || m.kind != EntryKind::Dir {
                        let prev = match owner.get(&p) {
                            Some(o) => o.clone(),
                            None => earlier(&p)?,
                        };
                        return Err(collision(s, &prev, &who, &p));
                    }
                }
                owner.insert(p.clone(), who.clone());
                files.insert(p, f);
            }
        }
        Ok(rows)
    }

    /// Merge into `base`, the stage output the table describes: take out the files of the
    /// datums that changed or went away, as their rows name them, and merge the records of
    /// this run (`records`: the datums that changed, executed or restored). The datums kept
    /// are never read.
    pub(super) fn merge_delta(
        &self,
        s: &Stage,
        base: &Id,
        table: &Table,
        dropped: &[&str],
        records: &[DatumRun],
    ) -> Result<Merged> {
        let out_path = s.datum_out();
        let store = &self.repo.store;
        let mut files = BTreeMap::new();
        files.insert(out_path.clone(), folder());
        worktree::flatten(store, base, &out_path, &mut files)?;
        let mut emptied = Vec::new();
        for d in dropped {
            let Some(old) = table.rows.get(*d).and_then(|r| r.out) else {
                continue;
            };
            let mut flat = BTreeMap::new();
            worktree::flatten(store, &old, &out_path, &mut flat)?;
            for (p, f) in flat {
                if f.kind == EntryKind::Dir {
                    emptied.push(p);
                } else {
                    files.remove(&p);
                }
            }
        }
        // Deepest first, so that a folder whose only content was a folder goes too. No kept
        // datum has an empty folder of its own (the table is not used then), so a folder
        // with nothing left in it was only the changed datums'.
        emptied.sort_unstable_by(|a, b| b.cmp(a));
        for d in emptied {
            if !has_children(&files, &d) {
                files.remove(&d);
            }
        }
        let rows = self.merge_records(s, &mut files, records, &|p| {
            self.owner_in(s, dropped, &out_path, p)
        })?;
        Ok(Merged { files, rows })
    }

    /// Which kept datum (one of the table's not `dropped`) wrote `path`, for the error that
    /// names both writers. Reads the whole table and every kept datum's folder until it finds
    /// it: only a failing run gets here.
    fn owner_in(&self, s: &Stage, dropped: &[&str], out: &str, path: &str) -> Result<String> {
        let table = Table::read(&self.repo.store, &s.name)?;
        let mut names: Vec<&String> = table
            .rows
            .keys()
            .filter(|d| !dropped.contains(&d.as_str()))
            .collect();
        names.sort();
        for d in names {
            if let Some(old) = table.rows[d].out {
                let mut flat = BTreeMap::new();
                worktree::flatten(&self.repo.store, &old, out, &mut flat)?;
                if flat.contains_key(path) {
                    return Ok(d.clone());
                }
            }
        }
        Ok("(an earlier run's datum)".into())
    }
}

/// How a datum stage's run starts from its table (see [`Engine::datum_plan`]).
#[derive(Default)]
pub(super) struct DatumPlan {
    /// With `base`, only the rows of the datums not kept.
    pub table: Table,
    /// The output this run merges into, when it merges only the datums that changed.
    pub base: Option<Id>,
    /// With `base`: for each of the run's datums (in its order), whether its files are in
    /// `base` already (its key is the one in the table).
    pub kept: Vec<bool>,
}

impl DatumPlan {
    /// Whether the run's `i`th datum is kept.
    pub fn is_kept(&self, i: usize) -> bool {
        self.kept.get(i).copied().unwrap_or(false)
    }

    /// How many of the run's datums are kept.
    pub fn kept_count(&self) -> usize {
        self.kept.iter().filter(|k| **k).count()
    }

    /// The table's datums whose rows this run replaces or deletes: those not kept (changed,
    /// or gone from the input), or every one when the run merges all datums again.
    pub fn dropped(&self) -> Vec<&str> {
        self.table.rows.keys().map(String::as_str).collect()
    }
}

impl Engine<'_> {
    /// Read a datum stage's table and decide whether this run can start from the output it
    /// describes (`usable`: the run cache may be used for every datum).
    pub(super) fn datum_plan(&self, s: &Stage, p: &Prepared, usable: bool) -> Result<DatumPlan> {
        let out = s.datum_out();
        if out.is_empty() {
            return Ok(DatumPlan::default());
        }
        let store = &self.repo.store;
        let full = || -> Result<DatumPlan> {
            Ok(DatumPlan {
                table: Table::read(store, &s.name)?,
                ..Default::default()
            })
        };
        let locked = self
            .locked
            .get(&s.name)
            .and_then(|l| l.outs.get(&out))
            .and_then(|o| o.as_ref())
            .filter(|o| o.kind == EntryKind::Dir.as_str())
            .map(|o| o.id);
        let Some(base) = locked.filter(|_| usable) else {
            return full();
        };
        let current: Vec<(&str, &Id)> = p.datums.iter().map(|(d, k)| (d.id.as_str(), k)).collect();
        let (table, kept) = Table::read_changed(store, &s.name, &current)?;
        let kept_count = kept.iter().filter(|k| **k).count();
        // When most datums changed, merging all of them again costs less than reading the
        // old folders of those that changed.
        if !table.describes(Some(&base)) || table.empty_dirs || kept_count * 2 < p.datums.len() {
            return full();
        }
        // Everything the merge will read must be here (a `gc` may have taken an old folder).
        let mut trees = vec![base];
        trees.extend(table.rows.values().filter_map(|r| r.out));
        for id in &trees {
            if !store.has_object(dvx_store::db::ObjKind::Tree, id)? {
                return full();
            }
        }
        Ok(DatumPlan {
            table,
            base: Some(base),
            kept,
        })
    }
}
