//! The one way to build the job of an execution, for `dvx run` and for `dvx verify`: verify
//! must reproduce run exactly, so the environment dvx sets, the `${input}`/`${output}`
//! templating and the container's mounts and work folder are written once, here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::container::{self, Image, Mount, Runtime};
use crate::exec::Job;
use crate::spec::Resources;

/// Quote for `sh`: the value stays one word whatever it holds.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Replace `${input}` and `${output}` in each command by the quoted paths.
pub fn template(cmds: &[String], input: &str, output: &str) -> Vec<String> {
    let (qi, qo) = (shell_quote(input), shell_quote(output));
    cmds.iter()
        .map(|c| c.replace("${input}", &qi).replace("${output}", &qo))
        .collect()
}

/// The container's work folder for a stage's `wdir`.
pub fn container_workdir(wdir: &str) -> String {
    if wdir.is_empty() {
        container::WORK.to_string()
    } else {
        format!("{}/{wdir}", container::WORK)
    }
}

/// What a stage's execution is, before it knows where it runs.
pub struct Recipe<'a> {
    pub stage: &'a str,
    pub cmds: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    /// The project folder the commands see (verify: its scratch copy of the inputs).
    pub root: &'a Path,
    pub wdir: &'a str,
    pub timeout: Option<Duration>,
    /// Notebook stages: papermill runs the notebook instead of `cmds`.
    pub notebook: Option<crate::notebook::NotebookJob>,
}

/// A datum's execution: its id, the matched input and its own output folder (on the host).
pub struct DatumIo<'a> {
    pub id: &'a str,
    pub input: PathBuf,
    pub output: PathBuf,
    /// A folder holding the match at its path below the input folder (`DVX_INPUT_DIR`), made
    /// by [`link_input`]; for the whole input (`glob: "/"`) the input folder itself.
    pub input_dir: PathBuf,
    /// Several inputs combined: each match with its place in `input_dir` (`name/sub`).
    pub members: Vec<MemberIo>,
    /// The members are a `group` (so the variables name folders).
    pub group: bool,
}

/// One member of a combined datum: its input's name, its place below the input folder
/// (`name/sub`) and where it is on the host.
pub struct MemberIo {
    pub name: String,
    pub place: String,
    pub host: PathBuf,
}

/// `DVX_INPUT_<NAME>` for an input name: upper case, other characters than letters and
/// digits as `_`.
pub fn input_var(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("DVX_INPUT_{n}")
}

/// A combined datum's variables below `dir` (as the commands see it): `DVX_INPUT` (the one
/// match, or `dir` when there are several) and `DVX_INPUT_<NAME>` for each input (its match;
/// in a `group`, whose size varies, always its folder in `dir`).
pub fn member_vars(dir: &str, members: &[MemberIo], group: bool) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let input = match members {
        [one] if !group => format!("{dir}/{}", one.place),
        _ => dir.to_string(),
    };
    vars.push(("DVX_INPUT".to_string(), input));
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.dedup();
    for name in names {
        let mine: Vec<&MemberIo> = members.iter().filter(|m| m.name == name).collect();
        let v = match mine.as_slice() {
            [one] if !group => format!("{dir}/{}", one.place),
            _ => format!("{dir}/{name}"),
        };
        vars.push((input_var(name), v));
    }
    vars
}

/// The container path of a datum's input: the match keeps its path below the input folder,
/// so `$(basename "$DVX_INPUT")` is the same name in a container as on the host.
pub fn container_input(base: &str, id: &str) -> String {
    match crate::datum::sub_path(id) {
        "" => base.to_string(),
        sub => format!("{base}/{sub}"),
    }
}

/// Fill `dir` with the datum's input at its path below the input folder (`sub`), as
/// Pachyderm's `/pfs/<input>` holds it: folders are made, files are symbolic links to the
/// input's files, so code that walks the folder finds the files without copying them.
pub fn link_input(dir: &Path, sub: &str, input: &Path) -> std::io::Result<()> {
    fn mirror(from: &Path, to: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(from)?;
        if meta.is_dir() {
            std::fs::create_dir_all(to)?;
            for e in std::fs::read_dir(from)? {
                let e = e?;
                mirror(&e.path(), &to.join(e.file_name()))?;
            }
            Ok(())
        } else {
            std::os::unix::fs::symlink(from, to)
        }
    }
    std::fs::create_dir_all(dir)?;
    if sub.is_empty() {
        return Ok(());
    }
    let to = dir.join(sub);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    mirror(input, &to)
}

/// The container an execution runs in, for stages with `image:`.
pub struct ContainerOf {
    pub runtime: Runtime,
    pub image: Image,
    pub network: bool,
    pub resources: Resources,
}

impl Recipe<'_> {
    /// The job: `DVX_STAGE` (and for a datum `DVX_INPUT`, `DVX_OUTPUT`, `DVX_DATUM_ID`, with
    /// the paths the commands will see), the templated commands, and in a container the
    /// project read-only at `/dvx/work` with either the datum's input and output folder or
    /// each of `outs` writable at its place.
    pub fn build(&self, datum: Option<DatumIo>, outs: &[&str], image: Option<ContainerOf>) -> Job {
        let mut env = self.env.clone();
        env.insert("DVX_STAGE".into(), self.stage.to_string());
        // What DVC sets for a stage's command. Tools built for DVC pipelines read them to
        // learn that a pipeline runs them: DVCLive, seeing DVC_ROOT, stops saving an
        // experiment (git refs under refs/exps) on every run. A stage's own `env` wins.
        let root_seen = if image.is_some() {
            container::WORK.to_string()
        } else {
            self.root.to_string_lossy().into_owned()
        };
        env.entry("DVC_ROOT".into()).or_insert(root_seen);
        env.entry("DVC_STAGE".into())
            .or_insert_with(|| self.stage.to_string());
        let mut cmds = match &self.notebook {
            // The report is a project path, or a datum's name in its output folder.
            Some(nb) => vec![match &datum {
                Some(d) => crate::notebook::command(
                    nb,
                    &d.output.join(&nb.report),
                    Some((&d.input.to_string_lossy(), &d.output.to_string_lossy())),
                ),
                None => crate::notebook::command(nb, &self.root.join(&nb.report), None),
            }],
            None => self.cmds.to_vec(),
        };
        let mut mounts = vec![Mount::ro(self.root.to_path_buf(), container::WORK)];
        match &datum {
            Some(d) if !d.members.is_empty() => {
                let (dir, output) = if image.is_some() {
                    for m in &d.members {
                        mounts.push(Mount::ro(
                            m.host.clone(),
                            format!("{}/{}", container::IN, m.place),
                        ));
                    }
                    mounts.push(Mount::rw(d.output.clone(), container::OUT));
                    (container::IN.to_string(), container::OUT.to_string())
                } else {
                    (
                        d.input_dir.to_string_lossy().into_owned(),
                        d.output.to_string_lossy().into_owned(),
                    )
                };
                let vars = member_vars(&dir, &d.members, d.group);
                cmds = template(&cmds, &vars[0].1, &output);
                env.extend(vars);
                env.insert("DVX_INPUT_DIR".into(), dir);
                env.insert("DVX_OUTPUT".into(), output);
                env.insert("DVX_DATUM_ID".into(), d.id.to_string());
            }
            Some(d) => {
                let (input, output, input_dir) = if image.is_some() {
                    let input = container_input(container::IN, d.id);
                    mounts.push(Mount::ro(d.input.clone(), input.clone()));
                    mounts.push(Mount::rw(d.output.clone(), container::OUT));
                    (input, container::OUT.to_string(), container::IN.to_string())
                } else {
                    (
                        d.input.to_string_lossy().into_owned(),
                        d.output.to_string_lossy().into_owned(),
                        d.input_dir.to_string_lossy().into_owned(),
                    )
                };
                cmds = template(&cmds, &input, &output);
                env.insert("DVX_INPUT_DIR".into(), input_dir);
                env.insert("DVX_INPUT".into(), input);
                env.insert("DVX_OUTPUT".into(), output);
                env.insert("DVX_DATUM_ID".into(), d.id.to_string());
            }
            None if image.is_some() => {
                for o in outs {
                    mounts.push(Mount::rw(
                        self.root.join(o),
                        format!("{}/{o}", container::WORK),
                    ));
                }
            }
            None => {}
        }
        Job {
            cmds,
            cwd: self.root.join(self.wdir),
            env,
            timeout: self.timeout,
            live: None,
            container: image.map(|c| container::Spec {
                runtime: c.runtime,
                image: c.image,
                stage: self.stage.to_string(),
                mounts,
                workdir: container_workdir(self.wdir),
                network: c.network,
                resources: c.resources,
                batch: Vec::new(),
                log_dir: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe<'a>(cmds: &'a [String], env: &'a BTreeMap<String, String>) -> Recipe<'a> {
        Recipe {
            stage: "count",
            cmds,
            env,
            root: Path::new("/p"),
            wdir: "sub",
            timeout: Some(Duration::from_secs(5)),
            notebook: None,
        }
    }

    #[test]
    fn a_datum_job_gets_its_paths_quoted_and_in_the_environment() {
        let cmds = vec!["wc -l ${input} > ${output}/n".to_string()];
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let job = recipe(&cmds, &env).build(
            Some(DatumIo {
                id: "it's.txt",
                input: PathBuf::from("/p/in/it's.txt"),
                output: PathBuf::from("/p/.dvx/tmp/o"),
                input_dir: PathBuf::from("/p/.dvx/tmp/i"),
                members: Vec::new(),
                group: false,
            }),
            &[],
            None,
        );
        assert_eq!(job.cmds, ["wc -l '/p/in/it'\\''s.txt' > '/p/.dvx/tmp/o'/n"]);
        assert_eq!(job.env["DVX_INPUT"], "/p/in/it's.txt");
        assert_eq!(job.env["DVX_OUTPUT"], "/p/.dvx/tmp/o");
        assert_eq!(job.env["DVX_DATUM_ID"], "it's.txt");
        assert_eq!(job.env["DVX_INPUT_DIR"], "/p/.dvx/tmp/i");
        assert_eq!(job.env["DVX_STAGE"], "count");
        assert_eq!(job.env["DVC_STAGE"], "count");
        assert_eq!(job.env["DVC_ROOT"], "/p");
        assert_eq!(job.env["A"], "1");
        assert_eq!(job.cwd, Path::new("/p/sub"));
        assert!(job.container.is_none());
    }

    #[test]
    fn combined_datums_name_each_input() {
        let m = |name: &str, place: &str| MemberIo {
            name: name.into(),
            place: place.into(),
            host: PathBuf::new(),
        };
        let vars = member_vars(
            "/in",
            &[m("imgs", "imgs/a.png"), m("my-model", "my-model/m.pkl")],
            false,
        );
        assert_eq!(
            vars,
            [
                ("DVX_INPUT".to_string(), "/in".to_string()),
                ("DVX_INPUT_IMGS".to_string(), "/in/imgs/a.png".to_string()),
                (
                    "DVX_INPUT_MY_MODEL".to_string(),
                    "/in/my-model/m.pkl".to_string()
                ),
            ]
        );
        let group = member_vars("/in", &[m("logs", "logs/a-1"), m("logs", "logs/a-2")], true);
        assert_eq!(
            group[1],
            ("DVX_INPUT_LOGS".to_string(), "/in/logs".to_string())
        );
        let alone = member_vars("/in", &[m("logs", "logs/a-1")], true);
        assert_eq!(
            (alone[0].1.as_str(), alone[1].1.as_str()),
            ("/in", "/in/logs")
        );
        let union = member_vars("/in", &[m("a", "a/x")], false);
        assert_eq!(union[0].1, "/in/a/x");
    }

    #[test]
    fn in_a_container_the_input_keeps_its_name_and_path() {
        assert_eq!(container_input("/dvx/in", "a/b.txt"), "/dvx/in/a/b.txt");
        assert_eq!(container_input("/dvx/in", "/"), "/dvx/in");
    }

    #[test]
    fn the_input_folder_holds_the_match_at_its_path() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("in/a");
        std::fs::create_dir_all(src.join("deep")).unwrap();
        std::fs::write(src.join("deep/x.txt"), "x").unwrap();
        let dir = t.path().join("farm");
        link_input(&dir, "a", &src).unwrap();
        assert!(dir.join("a/deep").symlink_metadata().unwrap().is_dir());
        assert_eq!(
            std::fs::read_to_string(dir.join("a/deep/x.txt")).unwrap(),
            "x"
        );
        let one = t.path().join("one");
        link_input(&one, "a/deep/x.txt", &src.join("deep/x.txt")).unwrap();
        assert_eq!(
            std::fs::read_to_string(one.join("a/deep/x.txt")).unwrap(),
            "x"
        );
    }

    #[test]
    fn a_stage_job_without_datum_keeps_its_commands() {
        let cmds = vec!["make ${input}".to_string()];
        let env = BTreeMap::new();
        let job = recipe(&cmds, &env).build(None, &["out.txt"], None);
        assert_eq!(job.cmds, cmds);
        assert!(!job.env.contains_key("DVX_INPUT"));
        assert_eq!(container_workdir(""), container::WORK);
        assert_eq!(container_workdir("a/b"), format!("{}/a/b", container::WORK));
    }
}
