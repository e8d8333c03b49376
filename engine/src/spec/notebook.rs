//! `notebook:`, `kernel:` and `report:` of a stage: a Jupyter notebook run by papermill.

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Span;
use serde::Serialize;

use super::{rel_path, Ctx, Out};
use crate::error::Result;

/// A notebook stage's notebook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notebook {
    /// Project-relative path of the notebook (`.ipynb`, or a percent-format `.py`).
    pub path: String,
    /// Project-relative path of the executed notebook (plain stages; datum stages write
    /// theirs into each datum's output folder).
    pub report: Option<String>,
    /// The Jupyter kernel to run it in; None: the one the notebook names.
    pub kernel: Option<String>,
}

/// What a notebook stage adds to its stage: the notebook, the command shown for it (in the
/// key, dvx.lock and run records) and the report as an output.
pub(super) struct Parsed {
    pub notebook: Notebook,
    pub cmd: String,
    pub report: Option<Out>,
}

/// Read `notebook`, `kernel` and `report`; `None` when the stage has no `notebook`.
pub(super) fn parse(
    cx: &Ctx,
    name: &str,
    wdir: &str,
    map: &MarkedMappingNode,
    name_span: &Span,
    datum: bool,
) -> Result<Option<Parsed>> {
    let Some(n) = map.get_node("notebook") else {
        for field in ["kernel", "report"] {
            if let Some(f) = map.get_node(field) {
                return Err(cx.err(
                    f.span(),
                    format!("{field}: only for notebook stages (set `notebook`)"),
                ));
            }
        }
        return Ok(None);
    };
    let written = cx.string(n, "notebook")?;
    if !(written.ends_with(".ipynb") || written.ends_with(".py")) {
        return Err(cx.err(
            n.span(),
            "notebook: expected a Jupyter notebook (`.ipynb`) or a percent-format script (`.py`)",
        ));
    }
    let path = rel_path(cx, wdir, &written, n.span(), "notebook")?;
    if let Some(c) = map.get_node("cmd") {
        return Err(cx.err(
            c.span(),
            format!("stage `{name}`: a notebook stage runs its notebook; leave out `cmd` (or make it two stages)"),
        ));
    }
    for field in ["image", "executor"] {
        if let Some(f) = map.get_node(field) {
            let local = field == "executor" && cx.string(f, field).is_ok_and(|e| e == "local");
            if !local {
                return Err(cx.err(
                    f.span(),
                    format!("{field}: notebook stages run on this machine (papermill and its kernel are found here)"),
                ));
            }
        }
    }
    let kernel = match map.get_node("kernel") {
        Some(k) => {
            let s = cx.string(k, "kernel")?;
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                return Err(cx.err(
                    k.span(),
                    "kernel: expected a kernel name such as `python3` (`jupyter kernelspec list` shows them)",
                ));
            }
            Some(s)
        }
        None => None,
    };
    let (report, report_written) = match (map.get_node("report"), datum) {
        (Some(r), true) => {
            return Err(cx.err(
                r.span(),
                "report: a datum stage writes each datum's executed notebook into its output folder (`DATUM.ipynb`); leave out `report`",
            ))
        }
        (Some(r), false) => {
            let w = cx.string(r, "report")?;
            if !w.ends_with(".ipynb") {
                return Err(cx.err(r.span(), "report: the executed notebook is a `.ipynb` file"));
            }
            let out = Out {
                path: rel_path(cx, wdir, &w, r.span(), "report")?,
                cache: true,
                persist: false,
                props: None,
                at: Ctx::pos(r.span()),
            };
            (Some(out), w)
        }
        (None, true) => (None, "$DVX_OUTPUT/DATUM.ipynb".to_string()),
        (None, false) => {
            return Err(cx.err(
                name_span,
                format!("stage `{name}`: a notebook stage needs `report:`, the path of the executed notebook (such as `reports/{}.ipynb`)", stem(&written)),
            ))
        }
    };
    let mut cmd = format!("papermill {written} {report_written}");
    if let Some(k) = &kernel {
        cmd.push_str(&format!(" -k {k}"));
    }
    Ok(Some(Parsed {
        notebook: Notebook {
            path,
            report: report.as_ref().map(|o| o.path.clone()),
            kernel,
        },
        cmd,
        report,
    }))
}

fn stem(path: &str) -> &str {
    let last = path.rsplit('/').next().unwrap_or(path);
    last.rsplit_once('.').map_or(last, |(s, _)| s)
}
