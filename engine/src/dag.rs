//! The stage graph: which stage feeds which (outs into deps), checked for collisions and
//! cycles, in a stable execution order.

use std::collections::BTreeSet;
use std::path::Path;

use dvx_store::paths::is_under;

use crate::error::{EngineError, Result};
use crate::spec::{Pipeline, Stage};

#[derive(Debug)]
pub struct Dag {
    /// For each stage (by index in the pipeline), the stages it needs.
    pub needs: Vec<BTreeSet<usize>>,
    /// Stage indices in an order where every stage comes after what it needs.
    pub order: Vec<usize>,
}

pub fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Does a stage read what `out` holds?
fn reads(stage: &Stage, out: &str) -> bool {
    let dep_hit = stage.deps.iter().any(|d| {
        !is_glob(d) && (is_under(d, out) || is_under(out, d))
            || is_glob(d) && glob_prefix_overlaps(d, out)
    });
    let input_hit = stage
        .input
        .as_ref()
        .is_some_and(|i| is_under(&i.path, out) || is_under(out, &i.path));
    let params_hit = stage.params.iter().any(|p| is_under(&p.file, out));
    dep_hit || input_hit || params_hit
}

/// A glob dep overlaps an out when the out lies under the glob's literal folder prefix.
fn glob_prefix_overlaps(glob: &str, out: &str) -> bool {
    let lit: Vec<&str> = glob.split('/').take_while(|p| !is_glob(p)).collect();
    let prefix = lit.join("/");
    is_under(out, &prefix) || is_under(&prefix, out)
}

impl Dag {
    pub fn build(p: &Pipeline) -> Result<Dag> {
        let file = &p.file;
        // Two stages writing the same out, or one out inside another's.
        let outs: Vec<(usize, &crate::spec::Out)> = p
            .stages
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.all_outs().map(move |o| (i, o)))
            .collect();
        for (a, (ia, oa)) in outs.iter().enumerate() {
            for (ib, ob) in outs.iter().skip(a + 1) {
                let (sa, sb) = (&p.stages[*ia].name, &p.stages[*ib].name);
                if oa.path == ob.path {
                    return Err(spec_err(file, ob.at, format!(
                        "`{}` is an output of both `{sa}` (line {}) and `{sb}`; each path has one producer",
                        ob.path, oa.at.line
                    )));
                }
                if is_under(&ob.path, &oa.path) || is_under(&oa.path, &ob.path) {
                    return Err(spec_err(file, ob.at, format!(
                        "output `{}` of `{sb}` and output `{}` of `{sa}` (line {}) lie inside one another",
                        ob.path, oa.path, oa.at.line
                    )));
                }
            }
        }
        let mut needs = vec![BTreeSet::new(); p.stages.len()];
        for (i, s) in p.stages.iter().enumerate() {
            for (j, t) in p.stages.iter().enumerate() {
                if t.all_outs().any(|o| reads(s, &o.path)) {
                    if i == j {
                        let o = t
                            .all_outs()
                            .find(|o| reads(s, &o.path))
                            .map(|o| o.path.clone())
                            .unwrap_or_default();
                        return Err(spec_err(
                            file,
                            s.at,
                            format!("stage `{}` reads its own output `{o}`", s.name),
                        ));
                    }
                    needs[i].insert(j);
                }
            }
        }
        if let Some(cycle) = find_cycle(&needs) {
            let names: Vec<&str> = cycle.iter().map(|i| p.stages[*i].name.as_str()).collect();
            return Err(spec_err(
                file,
                p.stages[cycle[0]].at,
                format!("the stages form a cycle: {}", names.join(" -> ")),
            ));
        }
        // Kahn's algorithm, taking the earliest-declared ready stage each time.
        let mut order = Vec::with_capacity(p.stages.len());
        let mut done = vec![false; p.stages.len()];
        while order.len() < p.stages.len() {
            let next = (0..p.stages.len())
                .find(|&i| !done[i] && needs[i].iter().all(|&j| done[j]))
                .ok_or_else(|| {
                    spec_err(
                        file,
                        Default::default(),
                        "internal: no ready stage".to_string(),
                    )
                })?;
            done[next] = true;
            order.push(next);
        }
        Ok(Dag { needs, order })
    }

    /// `targets` and everything they need (or, with `downstream`, everything that needs them).
    pub fn select(&self, p: &Pipeline, targets: &[String], downstream: bool) -> Result<Vec<usize>> {
        if targets.is_empty() {
            return Ok(self.order.clone());
        }
        let mut want = BTreeSet::new();
        for t in targets {
            let matches: Vec<usize> = p
                .stages
                .iter()
                .enumerate()
                .filter(|(_, s)| &s.name == t || s.name.split('@').next() == Some(t.as_str()))
                .map(|(i, _)| i)
                .collect();
            if matches.is_empty() {
                return Err(EngineError::UnknownStage(t.clone()));
            }
            want.extend(matches);
        }
        let mut stack: Vec<usize> = want.iter().copied().collect();
        while let Some(i) = stack.pop() {
            let next: Vec<usize> = if downstream {
                (0..self.needs.len())
                    .filter(|&j| self.needs[j].contains(&i))
                    .collect()
            } else {
                self.needs[i].iter().copied().collect()
            };
            for j in next {
                if want.insert(j) {
                    stack.push(j);
                }
            }
        }
        Ok(self
            .order
            .iter()
            .copied()
            .filter(|i| want.contains(i))
            .collect())
    }

    /// Plain text: one stage a line with what it needs.
    pub fn to_text(&self, p: &Pipeline) -> String {
        let mut s = String::new();
        for &i in &self.order {
            let needs: Vec<&str> = self.needs[i]
                .iter()
                .map(|&j| p.stages[j].name.as_str())
                .collect();
            if needs.is_empty() {
                s.push_str(&format!("{}\n", p.stages[i].name));
            } else {
                s.push_str(&format!("{}  <- {}\n", p.stages[i].name, needs.join(", ")));
            }
        }
        s
    }

    pub fn to_dot(&self, p: &Pipeline) -> String {
        let mut s = String::from("digraph dvx {\n  rankdir=LR;\n  node [shape=box];\n");
        for &i in &self.order {
            s.push_str(&format!("  \"{}\";\n", p.stages[i].name));
            for &j in &self.needs[i] {
                s.push_str(&format!(
                    "  \"{}\" -> \"{}\";\n",
                    p.stages[j].name, p.stages[i].name
                ));
            }
        }
        s.push_str("}\n");
        s
    }

    pub fn to_mermaid(&self, p: &Pipeline) -> String {
        let id = |i: usize| format!("s{i}");
        let mut s = String::from("flowchart LR\n");
        for &i in &self.order {
            s.push_str(&format!("  {}[\"{}\"]\n", id(i), p.stages[i].name));
        }
        for &i in &self.order {
            for &j in &self.needs[i] {
                s.push_str(&format!("  {} --> {}\n", id(j), id(i)));
            }
        }
        s
    }
}

fn spec_err(file: &Path, at: crate::spec::Pos, msg: String) -> EngineError {
    EngineError::spec(file, at.line.max(1), at.column.max(1), msg)
}

fn find_cycle(needs: &[BTreeSet<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum C {
        White,
        Grey,
        Black,
    }
    fn dfs(
        i: usize,
        needs: &[BTreeSet<usize>],
        color: &mut [C],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        color[i] = C::Grey;
        stack.push(i);
        for &j in &needs[i] {
            if color[j] == C::Grey {
                let start = stack.iter().position(|&x| x == j).unwrap_or(0);
                let mut cyc: Vec<usize> = stack[start..].to_vec();
                cyc.reverse();
                cyc.insert(0, j);
                // Print in data-flow order: producer -> consumer.
                return Some(cyc);
            }
            if color[j] == C::White {
                if let Some(c) = dfs(j, needs, color, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        color[i] = C::Black;
        None
    }
    let mut color = vec![C::White; needs.len()];
    for i in 0..needs.len() {
        if color[i] == C::White {
            if let Some(c) = dfs(i, needs, &mut color, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    fn dag(text: &str) -> Result<(Pipeline, Dag)> {
        let p = parse(Path::new("dvx.yaml"), text)?;
        let d = Dag::build(&p)?;
        Ok((p, d))
    }

    #[test]
    fn order_follows_data() {
        let (p, d) = dag("stages:\n  train:\n    cmd: t\n    deps: [feat]\n    outs: [model]\n  featurize:\n    cmd: f\n    deps: [raw]\n    outs: [feat]\n").unwrap();
        let names: Vec<&str> = d.order.iter().map(|&i| p.stages[i].name.as_str()).collect();
        assert_eq!(names, vec!["featurize", "train"]);
        assert_eq!(d.select(&p, &["featurize".into()], true).unwrap().len(), 2);
        assert_eq!(d.select(&p, &["featurize".into()], false).unwrap().len(), 1);
        assert!(d.to_dot(&p).contains("\"featurize\" -> \"train\""));
    }

    #[test]
    fn cycles_collisions_and_nesting_are_reported() {
        let e = dag("stages:\n  a:\n    cmd: x\n    deps: [b.out]\n    outs: [a.out]\n  b:\n    cmd: y\n    deps: [a.out]\n    outs: [b.out]\n").unwrap_err().to_string();
        assert!(
            e.contains("cycle: a -> b -> a") || e.contains("cycle: b -> a -> b"),
            "{e}"
        );
        let e = dag("stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n    outs: [o]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("dvx.yaml:7:12:") && e.contains("both `a` (line 4) and `b`"),
            "{e}"
        );
        let e = dag(
            "stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n    outs: [o/inner]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lie inside one another"), "{e}");
    }
}
