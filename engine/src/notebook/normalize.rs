//! Reading a notebook (`.ipynb` JSON, or a percent-format `.py` script) into its cells, and the
//! canonical form its key is the hash of: what the notebook computes, not how it was last saved.
//!
//! The normalized document (specified in `schemas/notebook.md`) is
//! `{"cells":[{"parameters":true?,"source":TEXT,"type":TYPE},...],"format":1,"kernel":NAME}`,
//! compact JSON with keys sorted. Outputs, execution counts, cell ids, attachments and every
//! metadata field other than the `parameters` tag are left out, so running or re-saving a
//! notebook keeps its key, while editing any cell, adding or moving one, changing a cell's
//! type, moving the `parameters` tag or running it in another kernel changes it.

use dvx_store::Id;
use serde::Serialize;
use serde_json::{json, Value};

/// Version of the normalized document; bump it to change the encoding on purpose.
pub const NORMALIZED_FORMAT: u32 = 1;

/// The kernel a notebook names nowhere (a percent-format script without a header) runs in.
pub const DEFAULT_KERNEL: &str = "python3";

/// One cell, as far as the key and the parameters go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// `code`, `markdown` or `raw`.
    pub kind: String,
    /// The source, lines joined, `\r\n` as `\n`.
    pub source: String,
    pub tags: Vec<String>,
}

impl Cell {
    pub fn is_parameters(&self) -> bool {
        self.tags.iter().any(|t| t == "parameters")
    }
}

/// A notebook's cells and the kernel its metadata names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub cells: Vec<Cell>,
    pub kernel: Option<String>,
}

impl Parsed {
    pub fn has_parameters_cell(&self) -> bool {
        self.cells.iter().any(Cell::is_parameters)
    }
}

/// True for a path dvx reads as a percent-format script rather than `.ipynb` JSON.
pub fn is_percent_script(path: &str) -> bool {
    path.ends_with(".py")
}

/// A source field: a string or a list of strings, joined.
pub fn source_text(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    };
    s.replace("\r\n", "\n")
}

/// Read `.ipynb` JSON (nbformat 4).
pub fn parse_ipynb(bytes: &[u8]) -> Result<Parsed, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a notebook (invalid JSON: {e})"))?;
    let cells = v
        .get("cells")
        .and_then(Value::as_array)
        .ok_or("not a notebook (no `cells` list; nbformat 4 is needed)")?;
    let cells = cells
        .iter()
        .map(|c| Cell {
            kind: c
                .get("cell_type")
                .and_then(Value::as_str)
                .unwrap_or("code")
                .to_string(),
            source: c.get("source").map(source_text).unwrap_or_default(),
            tags: c
                .pointer("/metadata/tags")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let kernel = v
        .pointer("/metadata/kernelspec/name")
        .and_then(Value::as_str)
        .map(String::from);
    Ok(Parsed { cells, kernel })
}

/// Read a percent-format script (`# %%` starts a code cell, `# %% [markdown]` a markdown cell
/// whose lines lose their `# `; `tags=["parameters"]` on the marker line tags the cell), as
/// jupytext writes it. A leading `# ---` ... `# ---` header is skipped, except for its
/// `kernelspec` `name:`.
pub fn parse_percent(text: &str) -> Parsed {
    let text = text.replace("\r\n", "\n");
    let mut lines: Vec<&str> = text.lines().collect();
    let mut kernel = None;
    if lines.first().map(|l| l.trim_end()) == Some("# ---") {
        if let Some(end) = lines.iter().skip(1).position(|l| l.trim_end() == "# ---") {
            let header = &lines[1..=end];
            let mut in_spec = false;
            for l in header {
                let body = l.trim_start_matches('#');
                let trimmed = body.trim();
                if trimmed.starts_with("kernelspec:") {
                    in_spec = true;
                } else if in_spec {
                    if let Some(name) = trimmed.strip_prefix("name:") {
                        kernel = Some(name.trim().trim_matches(['"', '\'']).to_string());
                        in_spec = false;
                    } else if !body.starts_with("   ") {
                        in_spec = false;
                    }
                }
            }
            lines.drain(..=end + 1);
        }
    }
    let mut cells = Vec::new();
    let mut current: Option<(Cell, Vec<&str>)> = None;
    let mut preamble: Vec<&str> = Vec::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix("# %%") {
            if let Some(c) = current.take() {
                cells.push(finish(c));
            } else if preamble.iter().any(|l| !l.trim().is_empty()) {
                let c = Cell {
                    kind: "code".into(),
                    source: String::new(),
                    tags: Vec::new(),
                };
                cells.push(finish((c, std::mem::take(&mut preamble))));
            }
            current = Some((marker(rest), Vec::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push(line);
        } else {
            preamble.push(line);
        }
    }
    if let Some(c) = current.take() {
        cells.push(finish(c));
    } else if preamble.iter().any(|l| !l.trim().is_empty()) {
        let c = Cell {
            kind: "code".into(),
            source: String::new(),
            tags: Vec::new(),
        };
        cells.push(finish((c, preamble)));
    }
    Parsed { cells, kernel }
}

/// The cell a `# %%` line starts: its type from `[markdown]`/`[md]`/`[raw]`, its tags.
fn marker(rest: &str) -> Cell {
    let kind = if rest.contains("[markdown]") || rest.contains("[md]") {
        "markdown"
    } else if rest.contains("[raw]") {
        "raw"
    } else {
        "code"
    };
    let tags = rest
        .find("tags=")
        .and_then(|i| {
            let list = &rest[i + 5..];
            let end = list.find(']')?;
            serde_json::from_str::<Vec<String>>(&list[..=end]).ok()
        })
        .unwrap_or_default();
    Cell {
        kind: kind.into(),
        source: String::new(),
        tags,
    }
}

fn finish((mut cell, body): (Cell, Vec<&str>)) -> Cell {
    let start = body.iter().position(|l| !l.trim().is_empty());
    let end = body.iter().rposition(|l| !l.trim().is_empty());
    let body: Vec<&str> = match (start, end) {
        (Some(s), Some(e)) => body[s..=e].to_vec(),
        _ => Vec::new(),
    };
    let body: Vec<String> = if cell.kind == "code" {
        body.iter().map(|l| l.to_string()).collect()
    } else {
        body.iter()
            .map(|l| {
                l.strip_prefix("# ")
                    .or_else(|| l.strip_prefix('#'))
                    .unwrap_or(l)
                    .to_string()
            })
            .collect()
    };
    cell.source = body.join("\n");
    cell
}

/// Read a notebook file's bytes by its name: `.py` as a percent-format script, else JSON.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Parsed, String> {
    if is_percent_script(path) {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "a percent-format notebook must be UTF-8 text".to_string())?;
        Ok(parse_percent(text))
    } else {
        parse_ipynb(bytes)
    }
}

/// The nbformat 4 JSON papermill runs, for a parsed percent-format script.
pub fn to_ipynb(p: &Parsed) -> Value {
    let kernel = p.kernel.as_deref().unwrap_or(DEFAULT_KERNEL);
    let cells: Vec<Value> = p
        .cells
        .iter()
        .map(|c| {
            let mut lines: Vec<String> = c.source.split_inclusive('\n').map(String::from).collect();
            if lines.is_empty() {
                lines.push(String::new());
            }
            let mut cell = json!({
                "cell_type": c.kind,
                "metadata": if c.tags.is_empty() { json!({}) } else { json!({"tags": c.tags}) },
                "source": lines,
            });
            if c.kind == "code" {
                cell["execution_count"] = Value::Null;
                cell["outputs"] = json!([]);
            }
            cell
        })
        .collect();
    json!({
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": kernel, "display_name": kernel, "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    })
}

#[derive(Serialize)]
struct NormCell<'a> {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    parameters: bool,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct NormDoc<'a> {
    cells: Vec<NormCell<'a>>,
    format: u32,
    kernel: &'a str,
}

/// The normalized document's bytes; `kernel` (the stage's `kernel:`) wins over the notebook's.
pub fn normalized(p: &Parsed, kernel: Option<&str>) -> Vec<u8> {
    let doc = NormDoc {
        cells: p
            .cells
            .iter()
            .map(|c| NormCell {
                parameters: c.is_parameters(),
                source: &c.source,
                kind: &c.kind,
            })
            .collect(),
        format: NORMALIZED_FORMAT,
        kernel: kernel.or(p.kernel.as_deref()).unwrap_or(DEFAULT_KERNEL),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The id a notebook dependency has in keys: BLAKE3 of its normalized document.
pub fn normalized_id(p: &Parsed, kernel: Option<&str>) -> Id {
    Id::of(&normalized(p, kernel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb(cells: Value, kernel: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "cells": cells,
            "metadata": {"kernelspec": {"name": kernel, "display_name": "Python 3"}},
            "nbformat": 4, "nbformat_minor": 5,
        }))
        .unwrap()
    }

    fn base() -> Value {
        json!([
            {"cell_type": "code", "id": "a1", "metadata": {"tags": ["parameters"]},
             "source": ["lr = 0.1\n", "epochs = 2"], "execution_count": null, "outputs": []},
            {"cell_type": "markdown", "id": "b2", "metadata": {}, "source": "# Title"},
            {"cell_type": "code", "id": "c3", "metadata": {}, "source": "print(lr * epochs)",
             "execution_count": null, "outputs": []},
        ])
    }

    fn id_of(bytes: &[u8]) -> Id {
        normalized_id(&parse_ipynb(bytes).unwrap(), None)
    }

    /// Golden: the normalized notebook's id. A change invalidates every notebook stage's
    /// run cache; bump NORMALIZED_FORMAT deliberately instead of editing the value.
    #[test]
    fn golden_normalized_id() {
        let p = parse_ipynb(&nb(base(), "python3")).unwrap();
        assert_eq!(
            String::from_utf8(normalized(&p, None)).unwrap(),
            r##"{"cells":[{"parameters":true,"source":"lr = 0.1\nepochs = 2","type":"code"},{"source":"# Title","type":"markdown"},{"source":"print(lr * epochs)","type":"code"}],"format":1,"kernel":"python3"}"##
        );
        // BLAKE3 of the document above: `b3sum` of it prints the same.
        assert_eq!(
            normalized_id(&p, None).to_hex(),
            "fd018d571c38b157281a12cecccebfad5649b85acb66d4ab00343aed7dcb0370"
        );
    }

    #[test]
    fn outputs_counts_ids_and_metadata_do_not_count() {
        let plain = id_of(&nb(base(), "python3"));
        let mut ran = base();
        ran[2]["outputs"] = json!([{"output_type": "stream", "name": "stdout", "text": "0.2\n"}]);
        ran[2]["execution_count"] = json!(7);
        ran[2]["id"] = json!("zzz");
        ran[2]["metadata"] = json!({"execution": {"iopub.status.busy": "2024-01-01T00:00:00Z"}});
        let mut bytes = nb(ran, "python3");
        // Other top-level metadata and formatting do not count either.
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["metadata"]["papermill"] = json!({"duration": 1.5});
        bytes = serde_json::to_vec_pretty(&v).unwrap();
        assert_eq!(id_of(&bytes), plain);
    }

    #[test]
    fn sources_types_tags_order_and_kernel_count() {
        let plain = id_of(&nb(base(), "python3"));
        let mut edited = base();
        edited[2]["source"] = json!("print(lr * epochs * 2)");
        assert_ne!(id_of(&nb(edited, "python3")), plain);
        let mut retyped = base();
        retyped[1]["cell_type"] = json!("raw");
        assert_ne!(id_of(&nb(retyped, "python3")), plain);
        let mut untagged = base();
        untagged[0]["metadata"] = json!({});
        assert_ne!(id_of(&nb(untagged, "python3")), plain);
        let mut swapped = base();
        swapped.as_array_mut().unwrap().swap(1, 2);
        assert_ne!(id_of(&nb(swapped, "python3")), plain);
        assert_ne!(id_of(&nb(base(), "ir")), plain);
        // The stage's `kernel:` wins over the notebook's metadata.
        let p = parse_ipynb(&nb(base(), "ir")).unwrap();
        assert_eq!(normalized_id(&p, Some("python3")), plain);
    }

    #[test]
    fn percent_scripts_read_like_their_notebook() {
        let script = "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     name: python3\n# ---\n\n# %% tags=[\"parameters\"]\nlr = 0.1\nepochs = 2\n\n# %% [markdown]\n# # Title\n\n# %%\nprint(lr * epochs)\n";
        let p = parse_percent(script);
        assert_eq!(p.kernel.as_deref(), Some("python3"));
        assert_eq!(p, parse_ipynb(&nb(base(), "python3")).unwrap());
        // Its nbformat JSON reads back to the same cells.
        let back = parse_ipynb(&serde_json::to_vec(&to_ipynb(&p)).unwrap()).unwrap();
        assert_eq!(back, p);
        // Code before the first marker is a cell of its own; no header, the default kernel.
        let loose = parse_percent("import os\n\n# %%\nx = 1\n");
        assert_eq!(loose.cells.len(), 2);
        assert_eq!(loose.cells[0].source, "import os");
        assert_eq!(loose.kernel, None);
        assert!(!loose.has_parameters_cell());
    }

    #[test]
    fn what_is_not_a_notebook_says_so() {
        assert!(parse_ipynb(b"{\"cells\": 3}")
            .unwrap_err()
            .contains("cells"));
        assert!(parse_ipynb(b"nope").unwrap_err().contains("invalid JSON"));
    }
}
