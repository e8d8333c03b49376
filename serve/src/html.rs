//! Server-rendered pages: one stylesheet embedded in the binary, no scripts, nothing fetched
//! from elsewhere. Every value from the project is escaped.

use std::collections::{BTreeMap, HashMap};

use crate::views::{self, PipelineView, RunView};
use dvx_engine::lineage::Graph;
use dvx_engine::store::ops::LogEntry;

const STYLE: &str = include_str!("style.css");

pub use dvx_engine::svg::escape;

/// Escape for a query string value.
fn query(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/@".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · dvx</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head>\
         <body><nav><b>dvx</b> <a href=\"/\">Pipeline</a> <a href=\"/runs\">Runs</a> <a href=\"/live\">Running</a> <a href=\"/history\">Metrics</a> <a href=\"/triggers\">Triggers</a> \
         <form action=\"/lineage\" method=\"get\"><input name=\"target\" placeholder=\"PATH[@REV]\" aria-label=\"lineage of\"> \
         <button>Lineage</button></form></nav><main><h1>{t}</h1>\n{body}</main></body></html>\n",
        t = escape(title)
    )
}

/// An error page with the CLI's message and hint.
pub fn error(message: &str, hint: Option<&str>) -> String {
    let hint = hint
        .map(|h| format!("<p class=\"hint\">hint: {}</p>", escape(h)))
        .unwrap_or_default();
    page(
        "Not found",
        &format!("<p class=\"error\">error: {}</p>{hint}", escape(message)),
    )
}

const BOX_W: f64 = 180.0;
const BOX_H: f64 = 54.0;
const GAP_X: f64 = 40.0;
const GAP_Y: f64 = 50.0;

/// The stage graph as SVG: stages in rows by their longest path from a source, each box
/// coloured by its state and linked to its failed run when there is one.
pub fn pipeline_svg(view: &PipelineView) -> String {
    let names: Vec<&str> = view.stages.iter().map(|s| s.stage.as_str()).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut depth = vec![0usize; names.len()];
    // Stages come in graph order, so one pass over the edges in that order settles depths;
    // repeat until stable in case they do not.
    for _ in 0..names.len() {
        let mut changed = false;
        for (a, b) in &view.edges {
            if let (Some(&x), Some(&y)) = (index.get(a.as_str()), index.get(b.as_str())) {
                if depth[y] < depth[x] + 1 {
                    depth[y] = depth[x] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, d) in depth.iter().enumerate() {
        rows.entry(*d).or_default().push(i);
    }
    let mut pos = vec![(0.0, 0.0); names.len()];
    let mut width: f64 = 0.0;
    for (d, row) in &rows {
        for (k, &i) in row.iter().enumerate() {
            pos[i] = (
                20.0 + k as f64 * (BOX_W + GAP_X),
                20.0 + *d as f64 * (BOX_H + GAP_Y),
            );
            width = width.max(pos[i].0 + BOX_W + 20.0);
        }
    }
    let height = 20.0 + rows.len() as f64 * (BOX_H + GAP_Y);
    let mut out = format!(
        "<svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"stage graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>"
    );
    for (a, b) in &view.edges {
        if let (Some(&x), Some(&y)) = (index.get(a.as_str()), index.get(b.as_str())) {
            out.push_str(&format!(
                "<line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>",
                pos[x].0 + BOX_W / 2.0,
                pos[x].1 + BOX_H,
                pos[y].0 + BOX_W / 2.0,
                pos[y].1
            ));
        }
    }
    for (i, s) in view.stages.iter().enumerate() {
        let state = views::shown_state(view, s);
        let datums = match (view.running.get(&s.stage), &s.datums) {
            (Some(l), _) => format!("{} of {} done", l.executed + l.failed, l.total),
            (None, Some(d)) => format!("{} datums", d.total),
            (None, None) => String::new(),
        };
        let node = format!(
            "<g class=\"stage {cls}\" data-stage=\"{name}\" data-state=\"{state}\">\
             <title>{name}: {state}{why}</title>\
             <rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"8\"/>\
             <text x=\"{tx:.0}\" y=\"{ty1:.0}\" class=\"name\">{name}</text>\
             <text x=\"{tx:.0}\" y=\"{ty2:.0}\" class=\"state\">{state} {datums}</text></g>",
            cls = state.replace(' ', "-"),
            name = escape(&s.stage),
            why = if s.reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape(&s.reasons.join("; ")))
            },
            x = pos[i].0,
            y = pos[i].1,
            tx = pos[i].0 + 10.0,
            ty1 = pos[i].1 + 22.0,
            ty2 = pos[i].1 + 42.0,
        );
        match view.failed.get(&s.stage).filter(|_| state == "failed") {
            Some(run) => out.push_str(&format!("<a href=\"/runs/{}\">{node}</a>", run.to_hex())),
            None if state == "running" => out.push_str(&format!("<a href=\"/live\">{node}</a>")),
            None => out.push_str(&node),
        }
    }
    out.push_str("</svg>");
    out
}

pub fn pipeline(view: &PipelineView) -> String {
    if !view.pipeline {
        return page(
            "Pipeline",
            "<p>This project has no dvx.yaml: nothing to run yet.</p>",
        );
    }
    let mut body = pipeline_svg(view);
    for w in &view.warnings {
        body.push_str(&format!("<p class=\"warning\">warning: {}</p>", escape(w)));
    }
    body.push_str("<table><tr><th>stage</th><th>state</th><th>datums</th><th>why</th></tr>");
    for s in &view.stages {
        let state = views::shown_state(view, s);
        let datums = s
            .datums
            .as_ref()
            .map(|d| d.total.to_string())
            .unwrap_or_else(|| "-".into());
        let run = view
            .failed
            .get(&s.stage)
            .filter(|_| state == "failed")
            .map(|r| format!(" <a href=\"/runs/{0}\">run {1}</a>", r.to_hex(), r.short()))
            .unwrap_or_default();
        body.push_str(&format!(
            "<tr class=\"stage-row\" data-stage=\"{n}\"><td>{n}</td><td class=\"{c}\">{state}{run}</td><td>{datums}</td><td>{why}</td></tr>",
            n = escape(&s.stage),
            c = state.replace(' ', "-"),
            why = escape(&s.reasons.join("; ")),
        ));
    }
    body.push_str("</table>");
    page("Pipeline", &body)
}

pub fn runs(commits: &[LogEntry]) -> String {
    if commits.is_empty() {
        return page("Runs", "<p>No commits yet.</p>");
    }
    let mut body =
        String::from("<table><tr><th>commit</th><th>time</th><th>message</th><th>runs</th></tr>");
    for e in commits {
        let time = chrono::DateTime::from_timestamp(e.commit.time, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        let runs: Vec<String> = e
            .commit
            .runs
            .iter()
            .map(|r| format!("<a href=\"/runs/{}\">{}</a>", r.to_hex(), r.short()))
            .collect();
        body.push_str(&format!(
            "<tr><td><a href=\"/commits/{}\"><code>{}</code></a></td><td>{time}</td><td>{}</td><td>{}</td></tr>",
            e.id.to_hex(),
            e.id.short(),
            escape(&e.commit.message),
            runs.join(" ")
        ));
    }
    body.push_str("</table>");
    page("Runs", &body)
}

pub fn run(v: &RunView) -> String {
    let r = &v.record;
    let mut body = format!(
        "<dl><dt>run</dt><dd><code>{id}</code></dd><dt>stage</dt><dd>{stage}{datum}</dd>\
         <dt>result</dt><dd class=\"{cls}\">{result}</dd><dt>command</dt><dd><pre>{cmd}</pre></dd>\
         <dt>duration</dt><dd>{ms} ms</dd></dl>",
        id = v.id.to_hex(),
        stage = escape(&r.stage),
        datum = r
            .datum
            .as_ref()
            .map(|d| format!(" datum {}", escape(d)))
            .unwrap_or_default(),
        cls = if r.ok() { "ok" } else { "failed" },
        result = match &r.error {
            Some(e) => format!("failed: {}", escape(e)),
            None => "ok".into(),
        },
        cmd = escape(&r.cmd.join("\n")),
        ms = r.duration_ms,
    );
    body.push_str("<h2>Inputs</h2><ul>");
    for i in &r.inputs {
        body.push_str(&format!(
            "<li><a href=\"/lineage?target={}\">{}</a> <code>{}</code></li>",
            query(&i.path),
            escape(&i.path),
            i.id.short()
        ));
    }
    body.push_str("</ul><h2>Outputs</h2><ul>");
    for o in &r.outputs {
        body.push_str(&format!(
            "<li><a href=\"/lineage?target={}\">{}</a> <code>{}</code></li>",
            query(&o.path),
            escape(&o.path),
            o.id.short()
        ));
    }
    body.push_str("</ul>");
    for (name, bytes) in [("stdout", &v.stdout), ("stderr", &v.stderr)] {
        body.push_str(&format!(
            "<h2>{name}</h2><pre class=\"log {name}\">{}</pre>",
            escape(&String::from_utf8_lossy(bytes))
        ));
    }
    page(&format!("Run {}", v.id.short()), &body)
}

pub fn lineage(target: &str, g: &Graph) -> String {
    let svg = dvx_engine::lineage::svg(g);
    // The standalone document's XML declaration has no place inside HTML.
    let svg = svg.find("<svg").map(|i| &svg[i..]).unwrap_or(&svg);
    let mut body = format!("<div class=\"lineage\">{svg}</div><h2>Runs</h2><ul>");
    for n in &g.nodes {
        if let dvx_engine::lineage::Node::Run(r) = n {
            let datum = r
                .datum
                .as_ref()
                .map(|d| format!(" datum {}", escape(d)))
                .unwrap_or_default();
            body.push_str(&format!(
                "<li><a href=\"/runs/{}\">{}{datum} · run {}</a></li>",
                r.run.to_hex(),
                escape(&r.stage),
                r.run.short()
            ));
        }
    }
    body.push_str("</ul>");
    page(&format!("Lineage of {target}"), &body)
}

/// A line chart of one metric over commits: one point per commit that has it.
fn chart(name: &str, points: &[(String, f64)]) -> String {
    const W: f64 = 480.0;
    const H: f64 = 200.0;
    const M: f64 = 40.0;
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |i: usize| {
        if points.len() <= 1 {
            W / 2.0
        } else {
            M + i as f64 * (W - 2.0 * M) / (points.len() - 1) as f64
        }
    };
    let y = |v: f64| H - M - (v - lo) / span * (H - 2.0 * M);
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1)))
        .collect();
    let mut out = format!(
        "<figure class=\"chart\" data-metric=\"{n}\"><figcaption>{n}</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{n}\">\
         <line x1=\"{M}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"{tt:.0}\" class=\"axis\">{hi}</text><text x=\"4\" y=\"{tb:.0}\" class=\"axis\">{lo}</text>\
         <polyline fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"2\" points=\"{pts}\"/>",
        n = escape(name),
        b = H - M + 10.0,
        r = W - M,
        tt = y(hi) + 4.0,
        tb = y(lo) + 4.0,
        pts = line.join(" "),
    );
    for (i, (commit, v)) in points.iter().enumerate() {
        out.push_str(&format!(
            "<circle class=\"point\" cx=\"{px:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#2b6cb0\" data-commit=\"{c}\" data-value=\"{v}\"><title>{c}: {v}</title></circle>\
             <text class=\"axis\" x=\"{px:.1}\" y=\"{ly:.0}\" text-anchor=\"middle\">{c}</text>",
            y(*v),
            px = x(i),
            ly = H - M + 26.0,
            c = escape(commit.get(..8).unwrap_or(commit)),
        ));
    }
    out.push_str("</svg></figure>");
    out
}

pub fn history(points: &[views::HistoryPoint]) -> String {
    if points.is_empty() {
        return page(
            "Metrics",
            "<p>No commit has metrics yet: declare `metrics:` on a stage and run it.</p>",
        );
    }
    // Every numeric metric, as `path:key`, with its value at each commit that has it.
    let mut series: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for p in points {
        for (path, kv) in &p.metrics {
            for (k, v) in kv {
                if let Some(f) = v.as_f64() {
                    series
                        .entry(format!("{path}:{k}"))
                        .or_default()
                        .push((p.commit.short(), f));
                }
            }
        }
    }
    let mut body = String::from("<div class=\"charts\">");
    for (name, pts) in &series {
        body.push_str(&chart(name, pts));
    }
    body.push_str(
        "</div><table><tr><th>commit</th><th>message</th><th>params</th><th>metrics</th></tr>",
    );
    let cell = |m: &BTreeMap<String, BTreeMap<String, serde_json::Value>>| {
        m.iter()
            .flat_map(|(f, kv)| {
                kv.iter().map(move |(k, v)| {
                    format!("{}:{} = {}", escape(f), escape(k), escape(&v.to_string()))
                })
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    for p in points.iter().rev() {
        body.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.commit.short(),
            escape(&p.message),
            cell(&p.params),
            cell(&p.metrics)
        ));
    }
    body.push_str("</table>");
    page("Metrics", &body)
}

pub fn triggers(ts: &[views::TriggerView]) -> String {
    if ts.is_empty() {
        return page(
            "Triggers",
            "<p>dvx.yaml declares no <code>triggers:</code>; runs start only by hand.</p>",
        );
    }
    let mut body = String::new();
    for t in ts {
        body.push_str(&format!(
            "<section class=\"trigger\" data-trigger=\"{n}\"><h2>{n}</h2><p>{kind} <code>{when}</code>{stages}; {pending} pending{problem}</p>\
             <table><tr><th>firing</th><th>state</th><th>started</th><th>commit</th><th>result</th></tr>",
            n = escape(&t.name),
            kind = t.kind,
            when = escape(&t.when),
            stages = if t.stages.is_empty() {
                String::new()
            } else {
                format!(", stages {}", escape(&t.stages.join(", ")))
            },
            pending = t.pending,
            problem = t
                .problem
                .as_ref()
                .map(|p| format!(" <span class=\"error\">({})</span>", escape(p)))
                .unwrap_or_default(),
        ));
        for f in &t.firings {
            let result = match (&f.error, f.failed) {
                (Some(e), _) => format!("<span class=\"error\">{}</span>", escape(e)),
                (None, 0) => "ok".into(),
                (None, n) => format!("<span class=\"error\">{n} failed</span>"),
            };
            body.push_str(&format!(
                "<tr class=\"firing\"><td><code>{}</code></td><td>{:?}</td><td>{}</td><td>{}</td><td>{result}</td></tr>",
                escape(&f.key),
                f.state,
                escape(&f.started),
                f.commit
                    .map(|c| format!("<a href=\"/commits/{}\">{}</a>", c.to_hex(), c.short()))
                    .unwrap_or_else(|| "-".into()),
            ));
        }
        body.push_str("</table></section>");
    }
    page("Triggers", &body)
}

pub fn commit(v: &views::CommitView) -> String {
    let c = &v.commit;
    let time = chrono::DateTime::from_timestamp(c.commit.time, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let runs: Vec<String> = c
        .commit
        .runs
        .iter()
        .map(|r| format!("<a href=\"/runs/{}\">{}</a>", r.to_hex(), r.short()))
        .collect();
    let parents: Vec<String> = c
        .commit
        .parents
        .iter()
        .map(|p| format!("<a href=\"/commits/{0}\">{1}</a>", p.to_hex(), p.short()))
        .collect();
    let mut body = format!(
        "<dl><dt>commit</dt><dd><code>{}</code> {}</dd><dt>time</dt><dd>{time}</dd><dt>author</dt><dd>{}</dd>\
         <dt>message</dt><dd>{}</dd><dt>parents</dt><dd>{}</dd><dt>runs</dt><dd>{}</dd></dl>\
         <table><tr><th>path</th><th>kind</th><th>size</th><th>id</th></tr>",
        c.id.to_hex(),
        escape(&c.refs.join(", ")),
        escape(&c.commit.author.name),
        escape(&c.commit.message),
        parents.join(" "),
        runs.join(" "),
    );
    for f in &v.files {
        body.push_str(&format!(
            "<tr class=\"file\"><td><a href=\"/lineage?target={q}%40{rev}\">{p}</a></td><td>{k}</td><td>{s}</td><td><code>{id}</code></td></tr>",
            q = query(&f.path),
            rev = c.id.to_hex(),
            p = escape(&f.path),
            k = f.kind.as_str(),
            s = f.size,
            id = f.id.short(),
        ));
    }
    body.push_str("</table>");
    page(&format!("Commit {}", c.id.short()), &body)
}

/// The live page: it reloads itself every two seconds while a run executes (no script).
pub fn live(run: Option<&dvx_engine::run::LiveRun>) -> String {
    let Some(run) = run else {
        return page(
            "Running now",
            "<p class=\"idle\">No run is executing. <a href=\"/runs\">Runs</a> lists what ran.</p>",
        );
    };
    let mut body = format!(
        "<p>A <code>dvx run</code> (process {}) started {}.</p>",
        run.pid,
        escape(&run.started)
    );
    for (name, st) in &run.stages {
        body.push_str(&format!(
            "<section class=\"live-stage\" data-stage=\"{n}\"><h2>{n}</h2><p>{} of {} done, {} failed</p>",
            st.executed + st.failed,
            st.total,
            st.failed,
            n = escape(name),
        ));
        for e in &st.running {
            body.push_str(&format!(
                "<h3>{}</h3><pre class=\"log stdout live\">{}</pre><pre class=\"log stderr live\">{}</pre>",
                e.datum
                    .as_ref()
                    .map(|d| format!("datum {}", escape(d)))
                    .unwrap_or_else(|| "running".into()),
                escape(&e.stdout),
                escape(&e.stderr),
            ));
        }
        body.push_str("</section>");
    }
    page("Running now", &body).replacen(
        "<meta charset=\"utf-8\">",
        "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">",
        1,
    )
}
