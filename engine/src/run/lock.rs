//! dvx.lock's `stages` section: what each stage's last successful run was.

use super::*;

/// What dvx.lock remembers of a stage's last successful run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockedStage {
    pub cmd: Vec<String>,
    pub deps: BTreeMap<String, Option<InputId>>,
    pub key: Id,
    pub outs: BTreeMap<String, Option<LockedOut>>,
    pub params: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datums: Option<u64>,
    /// Container stages: the image that ran (`NAME@sha256:ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedOut {
    pub kind: String,
    pub id: Id,
    pub size: u64,
}

impl<'de> Deserialize<'de> for InputId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            kind: String,
            id: Id,
        }
        let r = Raw::deserialize(d)?;
        let kind = match r.kind.as_str() {
            "file" => "file",
            "dir" => "dir",
            "symlink" => "symlink",
            crate::notebook::DEP_KIND => crate::notebook::DEP_KIND,
            _ => return Err(serde::de::Error::custom("unknown kind")),
        };
        Ok(InputId { kind, id: r.id })
    }
}

pub(super) fn locked_stages(root: &Path) -> Result<BTreeMap<String, LockedStage>> {
    Ok(LockFile::read(root)?
        .and_then(|l| l.other.get("stages").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

impl Engine<'_> {
    pub(super) fn write_stage_locks(&mut self, new: BTreeMap<String, LockedStage>) -> Result<()> {
        let Some(mut lock) = LockFile::read(&self.repo.root)? else {
            return Ok(());
        };
        let mut all = self.locked.clone();
        all.extend(new);
        // Forget stages that are no longer in dvx.yaml.
        let names: std::collections::HashSet<&str> = self
            .pipeline
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        all.retain(|k, _| names.contains(k.as_str()));
        lock.other.insert(
            "stages".into(),
            serde_json::to_value(&all).unwrap_or(Value::Null),
        );
        lock.write(&self.repo.root, &self.repo.tmp_dir())?;
        self.locked = all;
        Ok(())
    }

    pub(super) fn locked_entry(
        &self,
        s: &Stage,
        p: &Prepared,
        outs: &BTreeMap<String, Option<Flat>>,
    ) -> LockedStage {
        LockedStage {
            cmd: s.cmd.clone(),
            deps: p.deps.clone(),
            key: p.key,
            outs: outs
                .iter()
                .map(|(k, f)| {
                    (
                        k.clone(),
                        f.map(|f| LockedOut {
                            kind: f.kind.as_str().into(),
                            id: f.id,
                            size: f.size,
                        }),
                    )
                })
                .collect(),
            params: p.params.clone(),
            datums: s.input.as_ref().map(|_| p.datums.len() as u64),
            image: self.pinned_image(s),
        }
    }
}
