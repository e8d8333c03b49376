//! dvx.yaml: the pipeline definition, parsed with the line and column of every value so that
//! each mistake is reported where it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{Node, Span};
use serde::Serialize;

use crate::error::{EngineError, Result};

mod expand;
mod fields;
mod input;
mod notebook;
mod project;
mod triggers;
use expand::{check_expansion, foreach_items, matrix_items, substitute, too_many_stages};
use fields::{parse_image, parse_outs, parse_params, parse_resources, parse_timeout};
pub use input::{Combine, How, Input, Named};
pub use notebook::Notebook;
pub use project::{Artifact, Plot, Sections};

pub const PIPELINE_FILE: &str = "dvx.yaml";
pub const DEFAULT_PARAMS: &str = "params.yaml";

/// The longest `timeout` (a year): far past any real run, and it fits `Duration`, `Instant`
/// arithmetic and the runtimes' flags with room to spare (also times a container batch).
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;
/// The most `retries` of one execution.
pub const MAX_RETRIES: u64 = 100;
/// The most stages a pipeline may have, after `foreach` and `matrix` expand. Checked before
/// expanding, so that a small file cannot ask for more memory than the machine has.
pub const MAX_STAGES: usize = 200_000;
/// The most text (bytes) `foreach` and `matrix` may generate altogether, for the same reason.
pub const MAX_EXPANDED_BYTES: usize = 256 << 20;
/// `resources.cpus` and `resources.gpus` at most.
pub const MAX_CPUS: f64 = 4096.0;
pub const MAX_GPUS: u32 = 1024;

/// Where something was written (1-based).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// A span starting here, for errors about values read out of their node.
    fn span(&self) -> Span {
        Span::new_start(marked_yaml::Marker::new(0, 0, self.line, self.column))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Out {
    /// Project-relative path.
    pub path: String,
    /// `cache: false`: tracked for staleness but not stored (like DVC).
    pub cache: bool,
    /// `persist: true`: not deleted before the stage runs.
    pub persist: bool,
    /// A plot's properties (`x`, `y`, `template`, ...), as JSON; only for `plots` entries.
    #[serde(skip)]
    pub props: Option<serde_json::Value>,
    #[serde(skip)]
    pub at: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ParamRef {
    /// Project-relative params file.
    pub file: String,
    /// Dotted key inside it.
    pub key: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Stage {
    pub name: String,
    pub cmd: Vec<String>,
    pub deps: Vec<String>,
    pub outs: Vec<Out>,
    pub metrics: Vec<Out>,
    /// DVC's stage `plots:`: outputs like `metrics`, drawn by plot commands.
    pub plots: Vec<Out>,
    pub params: Vec<ParamRef>,
    pub env: BTreeMap<String, String>,
    /// Project-relative working folder ("" is the top).
    pub wdir: String,
    pub retries: u32,
    /// Seconds.
    pub timeout: Option<u64>,
    pub always_changed: bool,
    pub frozen: bool,
    pub input: Option<Input>,
    /// The container image the commands run in (`NAME[:TAG|@DIGEST]`); None runs them here.
    pub image: Option<String>,
    /// Container stages only: network access (off by default).
    pub network: bool,
    /// Container stages only: limits passed to the runtime.
    pub resources: Resources,
    /// Container datum stages only: how many datums run in one container (1: one each).
    pub batch: u32,
    /// Where the executions run (`executor:`): None follows `dvx run --executor`.
    pub executor: Option<ExecutorKind>,
    /// Datum stages: a datum that writes nothing fails instead of warning.
    pub require_output: bool,
    /// Notebook stages: the notebook papermill runs as the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notebook: Option<Notebook>,
    #[serde(skip)]
    pub at: Pos,
    #[serde(skip)]
    pub dep_at: Vec<Pos>,
}

/// `resources:` of a container stage, as validated text for the runtime's flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// CPUs, such as `2` or `0.5`.
    pub cpus: Option<String>,
    /// Memory, such as `512m` or `2g`.
    pub memory: Option<String>,
    /// GPUs: `all` or a count.
    pub gpus: Option<String>,
}

impl Stage {
    /// Outputs, metrics and plots files together.
    pub fn all_outs(&self) -> impl Iterator<Item = &Out> {
        self.outs
            .iter()
            .chain(self.metrics.iter())
            .chain(self.plots.iter())
    }

    /// True for a metrics or plots file that lies inside one of the stage's `outs`.
    pub fn inside_own_out(&self, o: &Out) -> bool {
        !self.outs.iter().any(|x| std::ptr::eq(x, o))
            && self
                .outs
                .iter()
                .any(|x| x.path != o.path && dvx_store::paths::is_under(&o.path, &x.path))
    }

    /// The cached output a datum stage's executions write into ("" when it has none).
    pub fn datum_out(&self) -> String {
        self.outs
            .iter()
            .find(|o| o.cache)
            .map(|o| o.path.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub struct Pipeline {
    pub file: PathBuf,
    pub stages: Vec<Stage>,
    /// The top-level `metrics`, `params`, `plots` and `artifacts` of a DVC-style file.
    pub sections: Sections,
    /// When `dvx serve` runs the pipeline by itself (`triggers:`).
    pub triggers: Vec<crate::trigger::Trigger>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

const STAGE_FIELDS: &[&str] = &[
    "cmd",
    "deps",
    "outs",
    "metrics",
    "plots",
    "params",
    "env",
    "wdir",
    "retries",
    "timeout",
    "always_changed",
    "frozen",
    "input",
    "image",
    "network",
    "resources",
    "batch",
    "executor",
    "require_output",
    "notebook",
    "kernel",
    "report",
    "desc",
    "meta",
];

/// Where a stage's executions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Processes (or containers) on this machine.
    Local,
    /// Jobs on a Slurm cluster, data through a remote.
    Slurm,
    /// Jobs on a Ray cluster (its job submission API), data through a remote.
    Ray,
    /// `batch/v1` Jobs on a Kubernetes cluster, data through a remote.
    Kubernetes,
}

impl ExecutorKind {
    pub fn parse(s: &str) -> Option<ExecutorKind> {
        match s {
            "local" => Some(ExecutorKind::Local),
            "slurm" => Some(ExecutorKind::Slurm),
            "ray" => Some(ExecutorKind::Ray),
            "kubernetes" => Some(ExecutorKind::Kubernetes),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
            ExecutorKind::Ray => "ray",
            ExecutorKind::Kubernetes => "kubernetes",
        }
    }

    /// Every name [`parse`](Self::parse) accepts, for messages.
    pub const NAMES: &'static str = "local, slurm, ray, kubernetes";

    /// Runs elsewhere, with data through a remote (so `resources` and `batch` mean
    /// something without a container).
    pub fn is_cluster(self) -> bool {
        self != ExecutorKind::Local
    }
}

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn pos(span: &Span) -> Pos {
        span.start()
            .map(|m| Pos {
                line: m.line(),
                column: m.column(),
            })
            .unwrap_or(Pos { line: 1, column: 1 })
    }
    fn err(&self, span: &Span, msg: impl Into<String>) -> EngineError {
        let p = Self::pos(span);
        EngineError::spec(self.file, p.line, p.column, msg)
    }
    fn string(&self, n: &Node, what: &str) -> Result<String> {
        match n {
            Node::Scalar(s) => Ok(s.as_str().to_string()),
            _ => Err(self.err(n.span(), format!("{what}: expected a string"))),
        }
    }
    fn strings(&self, n: &Node, what: &str) -> Result<Vec<(String, Pos)>> {
        match n {
            Node::Scalar(s) => Ok(vec![(s.as_str().to_string(), Self::pos(s.span()))]),
            Node::Sequence(seq) => seq
                .iter()
                .map(|x| Ok((self.string(x, what)?, Self::pos(x.span()))))
                .collect(),
            Node::Mapping(_) => Err(self.err(
                n.span(),
                format!("{what}: expected a string or a list of strings"),
            )),
        }
    }
    fn boolean(&self, n: &Node, what: &str) -> Result<bool> {
        n.as_scalar()
            .and_then(MarkedScalarNode::as_bool)
            .ok_or_else(|| self.err(n.span(), format!("{what}: expected true or false")))
    }
    fn uint(&self, n: &Node, what: &str) -> Result<u64> {
        n.as_scalar()
            .and_then(|s| s.as_str().parse::<u64>().ok())
            .ok_or_else(|| self.err(n.span(), format!("{what}: expected a whole number >= 0")))
    }
    fn mapping<'n>(&self, n: &'n Node, what: &str) -> Result<&'n MarkedMappingNode> {
        n.as_mapping()
            .ok_or_else(|| self.not_mapping(n.span(), what))
    }
    /// `mapping`, for a tree the caller takes apart.
    fn mapping_mut<'n>(&self, n: &'n mut Node, what: &str) -> Result<&'n mut MarkedMappingNode> {
        let span = *n.span();
        n.as_mapping_mut()
            .ok_or_else(|| self.not_mapping(&span, what))
    }
    fn not_mapping(&self, span: &Span, what: &str) -> EngineError {
        self.err(span, format!("{what}: expected a mapping (key: value)"))
    }
}

/// Parse `dvx.yaml` as read from disk: text that is not UTF-8 is reported where it stops being.
pub fn parse_bytes(file: &Path, bytes: &[u8]) -> Result<Pipeline> {
    let text = dvx_store::limits::utf8(bytes).map_err(|(line, column)| {
        EngineError::spec(
            file,
            line,
            column,
            "not valid UTF-8 text (the first invalid byte is here); save the file as UTF-8",
        )
    })?;
    parse(file, text)
}

/// Parse `dvx.yaml` text. `root` is the project top (paths are made project-relative).
pub fn parse(file: &Path, text: &str) -> Result<Pipeline> {
    let cx = Ctx { file };
    let options = marked_yaml::LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let top = marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        let (m, what) = load_error(&e);
        EngineError::spec(file, m.0, m.1, what)
    })?;
    let mut top = top;
    let top = cx.mapping_mut(&mut top, "the top level")?;
    // The stages are taken out of the tree and each stage's part dropped once it is parsed:
    // a 100k-stage file's tree was as large as its stages, and both were held at once.
    let stages_node = top.remove("stages");
    let triggers_node = top.remove("triggers");
    let mut sections = Sections::default();
    for (k, v) in top.iter() {
        match k.as_str() {
            other if project::is_section(other) => {
                project::parse_section(&cx, other, v, &mut sections)?
            }
            other => {
                return Err(cx.err(
                    k.span(),
                    format!("unknown top-level key `{other}`; expected `stages`, `triggers`, `metrics`, `params`, `plots` or `artifacts`"),
                ))
            }
        }
    }
    let Some(mut stages_node) = stages_node else {
        return Err(EngineError::spec(
            file,
            1,
            1,
            "missing `stages:` (a map of stage names to stages)",
        ));
    };
    let stages_map = cx.mapping_mut(&mut stages_node, "stages")?;
    let mut stages = Vec::with_capacity(stages_map.len());
    while let Some((key, node)) = stages_map.pop_front() {
        let (k, v) = (&key, &node);
        let name = k.as_str();
        check_stage_name(&cx, k)?;
        let map = cx.mapping(v, &format!("stage `{name}`"))?;
        // foreach/do and matrix both expand into one stage per entry, named `name@entry`.
        let expansion = if let Some(each) = map.get_node("foreach") {
            let body = map.get_node("do").ok_or_else(|| {
                cx.err(
                    k.span(),
                    format!("stage `{name}`: `foreach` needs a `do:` with the stage to repeat"),
                )
            })?;
            for (key, _) in map.iter() {
                if !matches!(key.as_str(), "foreach" | "do") {
                    return Err(cx.err(
                        key.span(),
                        format!("stage `{name}`: only `foreach` and `do` belong beside `foreach`, not `{}`", key.as_str()),
                    ));
                }
            }
            Some((body.clone(), foreach_items(&cx, each)?))
        } else if let Some(matrix) = map.get_node("matrix") {
            let mut rest = map.clone();
            rest.remove("matrix");
            let budget = MAX_STAGES.saturating_sub(stages.len());
            // Refusals point at the `matrix` key: a block mapping's own span starts oddly.
            let key = map
                .iter()
                .find(|(k, _)| k.as_str() == "matrix")
                .map(|(k, _)| *k.span())
                .unwrap_or(*matrix.span());
            Some((
                Node::Mapping(rest),
                matrix_items(&cx, matrix, budget, &key)?,
            ))
        } else {
            None
        };
        if let Some((body, items)) = expansion {
            check_expansion(&cx, k.span(), name, stages.len(), &body, &items)?;
            for (suffix, vars) in items {
                let node = substitute(&cx, &body, &vars)?;
                stages.push(parse_stage(
                    &cx,
                    &format!("{name}@{suffix}"),
                    &node,
                    k.span(),
                )?);
            }
        } else {
            if stages.len() >= MAX_STAGES {
                return Err(cx.err(k.span(), too_many_stages()));
            }
            stages.push(parse_stage(&cx, name, v, k.span())?);
        }
    }
    let mut seen = std::collections::HashMap::new();
    for s in &stages {
        if let Some(prev) = seen.insert(s.name.clone(), s.at) {
            return Err(EngineError::spec(
                file,
                s.at.line,
                s.at.column,
                format!(
                    "stage name `{}` appears twice (also at line {}); foreach and matrix entries must differ",
                    s.name, prev.line
                ),
            ));
        }
    }
    let triggers = match triggers_node {
        Some(n) => {
            let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
            triggers::parse(&cx, &n, &names)?
        }
        None => Vec::new(),
    };
    Ok(Pipeline {
        file: file.to_path_buf(),
        stages,
        sections,
        triggers,
    })
}

fn load_error(e: &marked_yaml::LoadError) -> ((usize, usize), String) {
    use marked_yaml::LoadError::*;
    let fallback = marked_yaml::Marker::new(0, 0, 1, 1);
    let (m, what) = match e {
        TopLevelMustBeMapping(m) => (
            m,
            "the top level must be a mapping with `stages:`".to_string(),
        ),
        TopLevelMustBeSequence(m) => (m, "unexpected top level".to_string()),
        UnexpectedAnchor(m) => (m, "YAML anchors and aliases are not supported".to_string()),
        MappingKeyMustBeScalar(m) => (m, "mapping keys must be plain strings".to_string()),
        UnexpectedTag(m) => (m, "YAML tags are not supported".to_string()),
        ScanError(m, s) => (m, format!("invalid YAML: {}", s.info())),
        DuplicateKey(d) => (
            d.key.span().start().unwrap_or(&fallback),
            format!("duplicate key `{}`", d.key.as_str()),
        ),
    };
    ((m.line().max(1), m.column().max(1)), what)
}

fn check_stage_name(cx: &Ctx, k: &MarkedScalarNode) -> Result<()> {
    let n = k.as_str();
    let ok = !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(cx.err(
            k.span(),
            format!("stage name `{n}`: use letters, digits, '-', '_' and '.'"),
        ))
    }
}

/// Normalise a path written relative to `wdir` into a project-relative path.
fn rel_path(cx: &Ctx, wdir: &str, p: &str, span: &Span, what: &str) -> Result<String> {
    if p.is_empty() {
        return Err(cx.err(span, format!("{what}: empty path")));
    }
    if p.starts_with('/') {
        return Err(cx.err(
            span,
            format!("{what}: `{p}` is absolute; paths are relative to the project"),
        ));
    }
    if p.contains('\0') {
        return Err(cx.err(
            span,
            format!("{what}: a path cannot contain a NUL character"),
        ));
    }
    let mut parts: Vec<&str> = if wdir.is_empty() {
        Vec::new()
    } else {
        wdir.split('/').collect()
    };
    for part in p.trim_end_matches('/').split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(cx.err(span, format!("{what}: `{p}` leads outside the project")));
                }
            }
            x => parts.push(x),
        }
    }
    Ok(parts.join("/"))
}

fn parse_stage(cx: &Ctx, name: &str, node: &Node, name_span: &Span) -> Result<Stage> {
    let map = cx.mapping(node, &format!("stage `{name}`"))?;
    for (k, _) in map.iter() {
        if !STAGE_FIELDS.contains(&k.as_str()) {
            return Err(cx.err(
                k.span(),
                format!(
                    "stage `{name}`: unknown field `{}`; expected one of: {}",
                    k.as_str(),
                    STAGE_FIELDS.join(", ")
                ),
            ));
        }
    }
    let wdir = match map.get_node("wdir") {
        Some(n) => {
            let w = cx.string(n, "wdir")?;
            if w == "." || w.is_empty() {
                String::new()
            } else {
                rel_path(cx, "", &w, n.span(), "wdir")?
            }
        }
        None => String::new(),
    };
    let notebook = notebook::parse(
        cx,
        name,
        &wdir,
        map,
        name_span,
        map.get_node("input").is_some(),
    )?;
    let cmd = match (map.get_node("cmd"), &notebook) {
        (_, Some(nb)) => vec![nb.cmd.clone()],
        (Some(n), None) => cx
            .strings(n, "cmd")?
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>(),
        (None, None) => {
            return Err(cx.err(
                name_span,
                format!("stage `{name}`: missing `cmd` (the command to run, or `notebook:`)"),
            ))
        }
    };
    if cmd.is_empty() || cmd.iter().any(|c| c.trim().is_empty()) {
        return Err(cx.err(
            map.get_node("cmd").map(|n| n.span()).unwrap_or(name_span),
            "cmd: empty command",
        ));
    }
    let mut deps = Vec::new();
    let mut dep_at = Vec::new();
    if let Some(n) = map.get_node("deps") {
        for (d, pos) in cx.strings(n, "deps")? {
            let span = pos.span();
            deps.push(rel_path(cx, &wdir, &d, &span, "deps")?);
            dep_at.push(pos);
        }
    }
    let mut outs = match map.get_node("outs") {
        Some(n) => parse_outs(cx, &wdir, n, "outs")?,
        None => Vec::new(),
    };
    if let Some(nb) = &notebook {
        // The notebook is read like any dep (its key is its normalized cells, see
        // `crate::notebook`); the executed notebook is an output like any other.
        deps.push(nb.notebook.path.clone());
        dep_at.push(Ctx::pos(
            map.get_node("notebook").map_or(name_span, |n| n.span()),
        ));
        outs.extend(nb.report.clone());
    }
    let metrics = match map.get_node("metrics") {
        Some(n) => parse_outs(cx, &wdir, n, "metrics")?,
        None => Vec::new(),
    };
    let plots = match map.get_node("plots") {
        Some(n) => parse_outs(cx, &wdir, n, "plots")?,
        None => Vec::new(),
    };
    let params = match map.get_node("params") {
        Some(n) => parse_params(cx, &wdir, n)?,
        None => Vec::new(),
    };
    let mut env = BTreeMap::new();
    if let Some(n) = map.get_node("env") {
        for (k, v) in cx.mapping(n, "env")?.iter() {
            env.insert(k.as_str().to_string(), cx.string(v, "env value")?);
        }
    }
    let input = match map.get_node("input") {
        Some(n) => Some(input::parse_input(cx, &wdir, n)?),
        None => None,
    };
    if input.is_some() && outs.iter().filter(|o| o.cache).count() != 1 {
        return Err(cx.err(
            name_span,
            format!("stage `{name}`: a stage with `input` needs exactly one output folder in `outs` (where the datums' outputs are merged)"),
        ));
    }
    let image = match map.get_node("image") {
        Some(n) => Some(parse_image(cx, n)?),
        None => None,
    };
    let executor = match map.get_node("executor") {
        Some(n) => {
            let e = cx.string(n, "executor")?;
            Some(ExecutorKind::parse(&e).ok_or_else(|| {
                cx.err(
                    n.span(),
                    format!("executor: {e:?} is not one of {}", ExecutorKind::NAMES),
                )
            })?)
        }
        None => None,
    };
    // Container options mean nothing without a container: say so instead of ignoring them.
    // `resources` also means something to a cluster's queue.
    for field in ["network", "resources", "batch"] {
        let cluster = field != "network" && executor.is_some_and(ExecutorKind::is_cluster);
        if let (Some(n), None, false) = (map.get_node(field), &image, cluster) {
            return Err(cx.err(
                n.span(),
                format!("{field}: only for stages that run in a container (set `image`)"),
            ));
        }
    }
    let batch = match map.get_node("batch") {
        Some(n) => {
            if input.is_none() {
                return Err(cx.err(
                    n.span(),
                    "batch: only for stages with `input` (it is the number of datums per container)",
                ));
            }
            let b = cx.uint(n, "batch")?;
            if b == 0 || b > u32::MAX as u64 {
                return Err(cx.err(n.span(), "batch: expected a whole number >= 1"));
            }
            b as u32
        }
        None => 1,
    };
    let require_output =
        match map.get_node("require_output") {
            Some(n) if input.is_none() => return Err(cx.err(
                n.span(),
                "require_output: only for stages with `input` (every datum must write something)",
            )),
            Some(n) => cx.boolean(n, "require_output")?,
            None => false,
        };
    Ok(Stage {
        name: name.to_string(),
        cmd,
        deps,
        outs,
        metrics,
        plots,
        params,
        env,
        wdir,
        retries: match map.get_node("retries") {
            Some(n) => {
                let r = cx.uint(n, "retries")?;
                if r > MAX_RETRIES {
                    return Err(cx.err(n.span(), format!("retries: at most {MAX_RETRIES}")));
                }
                r as u32
            }
            None => 0,
        },
        timeout: match map.get_node("timeout") {
            Some(n) => Some(parse_timeout(cx, n)?),
            None => None,
        },
        always_changed: match map.get_node("always_changed") {
            Some(n) => cx.boolean(n, "always_changed")?,
            None => false,
        },
        frozen: match map.get_node("frozen") {
            Some(n) => cx.boolean(n, "frozen")?,
            None => false,
        },
        input,
        image,
        network: match map.get_node("network") {
            Some(n) => cx.boolean(n, "network")?,
            None => false,
        },
        resources: match map.get_node("resources") {
            Some(n) => parse_resources(cx, n)?,
            None => Resources::default(),
        },
        batch,
        executor,
        require_output,
        notebook: notebook.map(|n| n.notebook),
        at: Ctx::pos(name_span),
        dep_at,
    })
}

#[cfg(test)]
mod tests;
