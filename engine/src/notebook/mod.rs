//! Notebook stages: a Jupyter notebook run by papermill as a stage's command.
//!
//! - [`normalize`]: the notebook's cells and the canonical form its key hashes;
//! - [`inject`]: the parameters papermill injects;
//! - [`volatile`]: comparing executed notebooks without what changes on every run (`dvx verify`);
//! - [`html`]: a self-contained page of an executed notebook (`dvx show RUN --html`).
//!
//! papermill is found through `DVX_PAPERMILL`, else `[notebook] papermill` in the project's
//! `.dvx/config.toml`, else `papermill` on PATH.

pub mod html;
pub mod inject;
pub mod normalize;
pub mod volatile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dvx_store::{Id, StoreError};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::job::shell_quote;
use crate::record::RunRecord;
pub use normalize::Parsed;

/// The kind a notebook dependency has in keys and dvx.lock: its id is the normalized
/// notebook's ([`normalize::normalized_id`]), not the file's.
pub const DEP_KIND: &str = "notebook";

/// What a notebook execution needs beyond the stage: the program, the notebook papermill
/// reads, where the executed one goes and what to inject.
#[derive(Clone, Debug)]
pub struct NotebookJob {
    /// papermill (a path or a name on PATH).
    pub papermill: String,
    /// The `.ipynb` papermill reads (a percent-format script converted by [`runnable`]).
    pub source: PathBuf,
    /// Plain stages: the report's path. Datum stages: its name inside the datum's output
    /// folder.
    pub report: PathBuf,
    pub kernel: Option<String>,
    /// The stage's parameter values, keyed `FILE:KEY`.
    pub params: BTreeMap<String, Value>,
}

fn err(stage: &str, message: String, hint: &str) -> EngineError {
    EngineError::Notebook {
        stage: stage.to_string(),
        message,
        hint: hint.to_string(),
    }
}

/// papermill: `DVX_PAPERMILL`, else `[notebook] papermill` of the project's settings, else
/// `papermill` on PATH; an error naming all three when none is there.
pub fn papermill(config: &toml::Table, stage: &str) -> Result<String> {
    let configured = std::env::var("DVX_PAPERMILL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            config
                .get("notebook")
                .and_then(|t| t.get("papermill"))
                .and_then(|v| v.as_str())
                .map(String::from)
        });
    let found = match &configured {
        Some(p) if p.contains('/') => Path::new(p).is_file().then(|| p.clone()),
        Some(p) => on_path(p),
        None => on_path("papermill"),
    };
    found.ok_or_else(|| {
        let what = configured.unwrap_or_else(|| "papermill".into());
        err(
            stage,
            format!("cannot run the notebook: papermill (`{what}`) was not found"),
            "install papermill and a kernel (`pip install papermill ipykernel`), or name the program with DVX_PAPERMILL or `[notebook] papermill = \"/path/to/papermill\"` in .dvx/config.toml",
        )
    })
}

fn on_path(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// Read and parse the notebook at `rel` below `root`.
pub fn read(root: &Path, rel: &str, stage: &str) -> Result<(Vec<u8>, Parsed)> {
    let abs = root.join(rel);
    let bytes = std::fs::read(&abs).map_err(|e| StoreError::io(&abs, e))?;
    let parsed = normalize::parse(rel, &bytes).map_err(|m| {
        err(
            stage,
            format!("{rel}: {m}"),
            "a notebook stage runs a Jupyter notebook (.ipynb, nbformat 4) or a percent-format script (.py with `# %%` cells)",
        )
    })?;
    Ok((bytes, parsed))
}

/// The `.ipynb` papermill reads for the notebook at `rel`: the file itself, or, for a
/// percent-format script, its conversion written into `scratch` (named by its content).
pub fn runnable(root: &Path, rel: &str, scratch: &Path, stage: &str) -> Result<(PathBuf, Parsed)> {
    let (bytes, parsed) = read(root, rel, stage)?;
    if !normalize::is_percent_script(rel) {
        return Ok((root.join(rel), parsed));
    }
    let json = serde_json::to_vec_pretty(&normalize::to_ipynb(&parsed)).unwrap_or_default();
    let dest = scratch.join(format!("notebook-{}.ipynb", Id::of(&bytes).short()));
    std::fs::create_dir_all(scratch).map_err(|e| StoreError::io(scratch, e))?;
    std::fs::write(&dest, json).map_err(|e| StoreError::io(&dest, e))?;
    Ok((dest, parsed))
}

/// The name of a datum's executed notebook in its output folder: the datum's last path part
/// with `.ipynb` (`a.csv` → `a.csv.ipynb`).
pub fn datum_report(datum: &str) -> String {
    let last = datum.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match last {
        "" => "notebook.ipynb".to_string(),
        l => format!("{l}.ipynb"),
    }
}

/// The shell command that runs papermill: `report` where the executed notebook goes, and for
/// a datum its input and output paths to inject.
pub fn command(job: &NotebookJob, report: &Path, datum: Option<(&str, &str)>) -> String {
    let injected = inject::injected(&job.params, datum);
    let mut cmd = format!(
        "{} {} {} --no-progress-bar --log-output",
        shell_quote(&job.papermill),
        shell_quote(&job.source.to_string_lossy()),
        shell_quote(&report.to_string_lossy()),
    );
    if let Some(k) = &job.kernel {
        cmd.push_str(&format!(" -k {}", shell_quote(k)));
    }
    if !injected.is_empty() {
        let yaml = serde_json::to_string(&Value::Object(injected)).unwrap_or_default();
        cmd.push_str(&format!(" -y {}", shell_quote(&yaml)));
    }
    cmd
}

/// Why a notebook execution failed, from its executed (partial) notebook: the first cell with
/// an error output, numbered among the notebook's own cells (not the ones papermill adds),
/// with its first line and the error's name and value.
pub fn failure(executed: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(executed).ok()?;
    let mut index = 0;
    for c in v.get("cells")?.as_array()? {
        let tags: Vec<&str> = c
            .pointer("/metadata/tags")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if tags
            .iter()
            .any(|t| *t == "injected-parameters" || *t == "papermill-error-cell-tag")
        {
            continue;
        }
        index += 1;
        let Some(error) = c
            .get("outputs")
            .and_then(Value::as_array)
            .and_then(|o| o.iter().find(|o| o["output_type"] == "error"))
        else {
            continue;
        };
        let source = c
            .get("source")
            .map(normalize::source_text)
            .unwrap_or_default();
        let first = source
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let first: String = first.chars().take(80).collect();
        let ename = error["ename"].as_str().unwrap_or("Error");
        let evalue = html::strip_ansi(error["evalue"].as_str().unwrap_or(""));
        let count = c["execution_count"]
            .as_u64()
            .map(|n| format!(", In [{n}]"))
            .unwrap_or_default();
        return Some(format!(
            "the notebook failed in cell {index}{count} (`{first}`): {ename}: {evalue}"
        ));
    }
    None
}

/// A kernel papermill could not find, from its standard error.
pub fn missing_kernel(stderr: &str) -> Option<String> {
    let at = stderr.find("No such kernel named ")?;
    let rest = &stderr[at + "No such kernel named ".len()..];
    let name: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '\'' && *c != '"')
        .collect();
    Some(format!(
        "the notebook's kernel `{name}` is not installed; `jupyter kernelspec list` shows the kernels there are (set `kernel:` on the stage, or install it with `python -m ipykernel install --user --name {name}`)"
    ))
}

/// The warning for a notebook without a cell tagged `parameters`, as papermill's own.
pub fn no_parameters_cell(stage: &str, path: &str) -> String {
    format!(
        "stage {stage}: notebook {path} has no cell tagged `parameters`; the parameters are injected at the top (tag the cell holding their defaults `parameters`)"
    )
}

/// The page of a notebook execution's executed notebook (`dvx show RUN --html PAGE`).
pub fn render_run(store: &dvx_store::store::Store, run: &Id, rec: &RunRecord) -> Result<String> {
    let missing = |why: &str| {
        err(
            &rec.stage,
            format!("run {} {why}", run.short()),
            "`dvx show RUN` prints what the run recorded; notebook stages record the executed notebook",
        )
    };
    let nb = rec
        .notebook
        .as_ref()
        .ok_or_else(|| missing("is not a notebook execution"))?;
    let id = nb
        .executed
        .ok_or_else(|| missing("left no executed notebook (papermill wrote none)"))?;
    let mut bytes = Vec::new();
    store.write_file_to(&id, &mut bytes)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| missing(&format!("holds an executed notebook that is not JSON: {e}")))?;
    let status = if rec.ok() {
        "ok".to_string()
    } else {
        format!(
            "failed: {}",
            rec.error
                .clone()
                .unwrap_or_else(|| format!("exit {:?}", rec.exit))
        )
    };
    let mut about = vec![format!(
        "run {} · {}{} · {} · {}",
        run.short(),
        nb.path,
        rec.datum
            .as_ref()
            .map(|d| format!(" · datum {d}"))
            .unwrap_or_default(),
        rec.start,
        status
    )];
    for (k, v) in &rec.params {
        about.push(format!("param {k} = {v}"));
    }
    Ok(html::render(
        &v,
        &format!("{} — {}", rec.stage, nb.report),
        &about,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_command_quotes_everything_and_injects_json() {
        let job = NotebookJob {
            papermill: "/v/bin/papermill".into(),
            source: "/p/nb's.ipynb".into(),
            report: "r.ipynb".into(),
            kernel: Some("python3".into()),
            params: BTreeMap::from([("params.yaml:train.lr".to_string(), json!(0.5))]),
        };
        let c = command(&job, Path::new("/p/out/r.ipynb"), None);
        assert_eq!(
            c,
            r#"'/v/bin/papermill' '/p/nb'\''s.ipynb' '/p/out/r.ipynb' --no-progress-bar --log-output -k 'python3' -y '{"lr":0.5}'"#
        );
        let d = command(
            &NotebookJob {
                kernel: None,
                params: BTreeMap::new(),
                ..job
            },
            Path::new("/o/a.ipynb"),
            Some(("/in/a.csv", "/o")),
        );
        assert!(
            d.ends_with(r#"-y '{"input_path":"/in/a.csv","output_path":"/o"}'"#),
            "{d}"
        );
    }

    #[test]
    fn a_failure_names_the_cell_and_the_error() {
        let nb = json!({"cells": [
            {"cell_type": "markdown", "metadata": {"tags": ["papermill-error-cell-tag"]}, "source": "An Exception was encountered"},
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1", "outputs": []},
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "x = 2", "outputs": []},
            {"cell_type": "markdown", "metadata": {}, "source": "text"},
            {"cell_type": "code", "metadata": {}, "execution_count": 3, "source": ["\n", "raise ValueError('bad x')\n"],
             "outputs": [{"output_type": "error", "ename": "ValueError", "evalue": "bad \u{1b}[0;31mx", "traceback": []}]},
        ]});
        assert_eq!(
            failure(&serde_json::to_vec(&nb).unwrap()).unwrap(),
            "the notebook failed in cell 3, In [3] (`raise ValueError('bad x')`): ValueError: bad x"
        );
        assert_eq!(failure(b"{\"cells\": []}"), None);
    }

    #[test]
    fn a_missing_kernel_is_named() {
        let m = missing_kernel("Traceback...\njupyter_client.kernelspec.NoSuchKernel: No such kernel named nope-kernel\n").unwrap();
        assert!(
            m.contains("`nope-kernel`") && m.contains("jupyter kernelspec list"),
            "{m}"
        );
        assert_eq!(missing_kernel("fine"), None);
    }

    #[test]
    fn datum_reports_are_named_after_the_datum() {
        assert_eq!(datum_report("a.csv"), "a.csv.ipynb");
        assert_eq!(datum_report("x/b"), "b.ipynb");
        assert_eq!(datum_report("/"), "notebook.ipynb");
    }

    #[test]
    fn papermill_is_found_in_the_settings_or_not_at_all() {
        let t = tempfile::tempdir().unwrap();
        let prog = t.path().join("pm");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        let table: toml::Table = toml::from_str(&format!(
            "[notebook]\npapermill = {:?}\n",
            prog.to_string_lossy()
        ))
        .unwrap();
        if std::env::var_os("DVX_PAPERMILL").is_none() {
            assert_eq!(papermill(&table, "s").unwrap(), prog.to_string_lossy());
            let gone: toml::Table =
                toml::from_str("[notebook]\npapermill = \"/nowhere/papermill\"\n").unwrap();
            let e = papermill(&gone, "s").unwrap_err();
            assert!(e.to_string().contains("/nowhere/papermill"), "{e}");
            assert!(e.hint().unwrap().contains("DVX_PAPERMILL"));
        }
    }
}
