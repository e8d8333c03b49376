//! Drawing a lineage graph: the tree `dvx lineage` prints, Graphviz dot, Mermaid and SVG.

use super::*;

fn short(id: &Id) -> String {
    id.to_hex()[..8].to_string()
}

fn file_label(f: &FileNode) -> String {
    format!("{} ({})", f.path, short(&f.object))
}

fn run_label(r: &RunNode) -> String {
    match &r.datum {
        Some(d) => format!("run {} {} [{d}]", short(&r.run), r.stage),
        None => format!("run {} {}", short(&r.run), r.stage),
    }
}

/// The graph as an indented tree for people; nodes met twice are shown once.
pub fn render_tree(g: &Graph) -> String {
    let mut out = String::new();
    let mut seen = HashSet::new();
    fn walk(
        g: &Graph,
        id: &str,
        prefix: &str,
        first: bool,
        last: bool,
        seen: &mut HashSet<String>,
        out: &mut String,
    ) {
        let Some(node) = g.node(id) else { return };
        let (branch, cont) = if first {
            ("", "")
        } else if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let again = !seen.insert(id.to_string());
        let pad = format!("{prefix}{cont}");
        match node {
            Node::File(f) => {
                let mut line = format!("{prefix}{branch}{}", file_label(f));
                if again {
                    line.push_str("  (see above)");
                }
                out.push_str(&line);
                out.push('\n');
                if again {
                    return;
                }
                if let Some(a) = &f.added {
                    out.push_str(&format!(
                        "{pad}  added by {} <{}> {}, commit {} \"{}\"\n",
                        a.author.name,
                        a.author.email,
                        a.time,
                        short(&a.commit),
                        a.message.lines().next().unwrap_or("")
                    ));
                } else if f.origin == "unknown" {
                    out.push_str(&format!("{pad}  (no run or commit recorded it)\n"));
                }
                if f.truncated {
                    out.push_str(&format!("{pad}  ... (deeper than --depth)\n"));
                }
            }
            Node::Run(r) => {
                out.push_str(&format!("{prefix}{branch}{}", run_label(r)));
                if again {
                    out.push_str("  (see above)\n");
                    return;
                }
                out.push('\n');
                for c in &r.cmd {
                    out.push_str(&format!("{pad}  cmd: {c}\n"));
                }
                if !r.params.is_empty() {
                    let ps: Vec<String> =
                        r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push_str(&format!("{pad}  params: {}\n", ps.join(", ")));
                }
                if let Some(i) = &r.image {
                    out.push_str(&format!("{pad}  image: {i}\n"));
                }
                let code = r
                    .code
                    .as_ref()
                    .map(|c| {
                        format!(
                            ", code {}{}",
                            &c.commit[..c.commit.len().min(10)],
                            if c.dirty { " (dirty)" } else { "" }
                        )
                    })
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{pad}  by {} on {} at {}, exit {}{code}\n",
                    r.user,
                    r.host,
                    r.start,
                    r.exit.map(|e| e.to_string()).unwrap_or_else(|| "-".into())
                ));
                if let Some(c) = &r.commit {
                    out.push_str(&format!(
                        "{pad}  commit {} \"{}\"\n",
                        short(&c.commit),
                        c.message.lines().next().unwrap_or("")
                    ));
                }
            }
        }
        let kids: Vec<&Edge> = g.children(id).collect();
        for (k, e) in kids.iter().enumerate() {
            walk(g, &e.to, &pad, false, k + 1 == kids.len(), seen, out);
        }
    }
    walk(g, &g.root, "", true, true, &mut seen, &mut out);
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz.
pub fn render_dot(g: &Graph) -> String {
    let mut out =
        String::from("digraph lineage {\n  rankdir=BT;\n  node [fontname=\"Helvetica\"];\n");
    for n in &g.nodes {
        match n {
            Node::File(f) => out.push_str(&format!(
                "  {} [shape=note, label=\"{}\"];\n",
                f.id,
                dot_escape(&file_label(f))
            )),
            Node::Run(r) => out.push_str(&format!(
                "  {} [shape=box, style=rounded, label=\"{}\\n{}\"];\n",
                r.id,
                dot_escape(&run_label(r)),
                dot_escape(&r.cmd.join("; "))
            )),
        }
    }
    for e in &g.edges {
        out.push_str(&format!(
            "  {} -> {} [label=\"{}\"];\n",
            e.from, e.to, e.rel
        ));
    }
    out.push_str("}\n");
    out
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart.
pub fn render_mermaid(g: &Graph) -> String {
    let mut out = String::from("flowchart BT\n");
    for n in &g.nodes {
        match n {
            Node::File(f) => out.push_str(&format!(
                "  {}[\"{}\"]\n",
                f.id,
                mermaid_escape(&file_label(f))
            )),
            Node::Run(r) => out.push_str(&format!(
                "  {}([\"{}\"])\n",
                r.id,
                mermaid_escape(&run_label(r))
            )),
        }
    }
    for e in &g.edges {
        out.push_str(&format!("  {} -->|{}| {}\n", e.from, e.rel, e.to));
    }
    out
}

/// The graph as a standalone SVG picture.
pub fn svg(g: &Graph) -> String {
    let boxes: Vec<crate::svg::Box> = g
        .nodes
        .iter()
        .map(|n| match n {
            Node::File(f) => crate::svg::Box {
                id: f.id.clone(),
                round: false,
                lines: vec![f.path.clone(), short(&f.object)],
            },
            Node::Run(r) => crate::svg::Box {
                id: r.id.clone(),
                round: true,
                lines: vec![run_label(r), r.cmd.join("; ")],
            },
        })
        .collect();
    let edges: Vec<(String, String)> = g
        .edges
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    crate::svg::render(&boxes, &edges, &g.root)
}
