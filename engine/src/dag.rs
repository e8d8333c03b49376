//! The stage graph: which stage feeds which (outs into deps), checked for collisions and
//! cycles, in a stable execution order.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::path::Path;

use dvx_store::paths::is_under;

use crate::error::{EngineError, Result};
use crate::pathindex::PathIndex;
use crate::spec::{Pipeline, Pos, Stage};

#[derive(Debug)]
pub struct Dag {
    /// For each stage (by index in the pipeline), the stages it needs.
    pub needs: Vec<BTreeSet<usize>>,
    /// Stage indices in an order where every stage comes after what it needs.
    pub order: Vec<usize>,
    /// For each stage, the stages that need it (the reverse of `needs`).
    users: Vec<Vec<usize>>,
}

/// The reverse edges of `needs`.
fn users_of(needs: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    let mut users = vec![Vec::new(); needs.len()];
    for (i, n) in needs.iter().enumerate() {
        for &j in n {
            users[j].push(i);
        }
    }
    users
}

pub fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Does a stage read what `out` holds?
fn reads(stage: &Stage, out: &str) -> bool {
    let dep_hit = stage.deps.iter().any(|d| {
        let q = dep_query(d);
        is_under(&q, out) || is_under(out, &q)
    });
    let input_hit = stage.input.as_ref().is_some_and(|i| {
        i.folders()
            .iter()
            .any(|f| is_under(f, out) || is_under(out, f))
    });
    let params_hit = stage.params.iter().any(|p| is_under(&p.file, out));
    dep_hit || input_hit || params_hit
}

/// The path a dep reads: itself, or for a glob its literal folder prefix (a glob dep overlaps
/// an out when the out lies under that prefix, or the prefix under the out).
fn dep_query(d: &str) -> std::borrow::Cow<'_, str> {
    if !is_glob(d) {
        return d.into();
    }
    let lit: Vec<&str> = d.split('/').take_while(|p| !is_glob(p)).collect();
    lit.join("/").into()
}

/// Where an output was declared: its stage and its place among all outputs (declaration order).
#[derive(Clone, Copy, Debug)]
struct OutAt {
    stage: usize,
    seq: usize,
    at: Pos,
}

impl Dag {
    /// Near-linear in the number of stages and paths: outputs are sorted once, and each dep
    /// is looked up by binary search (see [`PathIndex`]).
    pub fn build(p: &Pipeline) -> Result<Dag> {
        let file = &p.file;
        let mut seq = 0;
        let mut outs = Vec::new();
        for (i, s) in p.stages.iter().enumerate() {
            for o in s.all_outs() {
                // A metrics or plots file inside the stage's own output folder (DVC's
                // `outs: [eval]` with `metrics: [eval/metrics.json]`) names a file that
                // folder already holds: one producer, nothing to clash.
                if s.inside_own_out(o) {
                    continue;
                }
                outs.push((
                    o.path.clone(),
                    OutAt {
                        stage: i,
                        seq,
                        at: o.at,
                    },
                ));
                seq += 1;
            }
        }
        let index = PathIndex::new(outs);
        // Two stages writing the same out, or one out inside another's. Of the offending pairs
        // found, report the one declared first.
        let clash = index
            .nested_pairs()
            .map(|(a, b)| if a.1.seq < b.1.seq { (a, b) } else { (b, a) })
            .min_by_key(|(a, b)| (a.1.seq, b.1.seq));
        if let Some(((pa, a), (pb, b))) = clash {
            let (sa, sb) = (&p.stages[a.stage].name, &p.stages[b.stage].name);
            return Err(spec_err(
                file,
                b.at,
                if pa == pb {
                    format!("`{pb}` is an output of both `{sa}` (line {}) and `{sb}`; each path has one producer", a.at.line)
                } else {
                    format!("output `{pb}` of `{sb}` and output `{pa}` of `{sa}` (line {}) lie inside one another", a.at.line)
                },
            ));
        }
        let mut needs = vec![BTreeSet::new(); p.stages.len()];
        for (i, s) in p.stages.iter().enumerate() {
            let mut from = |hits: &mut dyn Iterator<Item = &(String, OutAt)>| {
                needs[i].extend(hits.map(|(_, o)| o.stage));
            };
            for d in &s.deps {
                from(&mut index.overlapping(&dep_query(d)));
            }
            if let Some(input) = &s.input {
                for f in input.folders() {
                    from(&mut index.overlapping(f));
                }
            }
            for prm in &s.params {
                from(&mut index.around(&prm.file));
            }
            if needs[i].remove(&i) {
                let o = s
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
        }
        if let Some(cycle) = find_cycle(&needs) {
            let names: Vec<&str> = cycle.iter().map(|i| p.stages[*i].name.as_str()).collect();
            return Err(spec_err(
                file,
                p.stages[cycle[0]].at,
                format!("the stages form a cycle: {}", names.join(" -> ")),
            ));
        }
        let users = users_of(&needs);
        // Kahn's algorithm, taking the earliest-declared ready stage each time.
        let mut waiting: Vec<usize> = needs.iter().map(BTreeSet::len).collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..needs.len())
            .filter(|&i| waiting[i] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(p.stages.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &u in &users[i] {
                waiting[u] -= 1;
                if waiting[u] == 0 {
                    ready.push(Reverse(u));
                }
            }
        }
        if order.len() < p.stages.len() {
            return Err(spec_err(
                file,
                Default::default(),
                "internal: no ready stage".to_string(),
            ));
        }
        Ok(Dag {
            needs,
            order,
            users,
        })
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
                self.users[i].clone()
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

/// A cycle in `needs`, in data-flow order (producer -> consumer, first stage repeated last).
/// Depth-first, with an explicit stack: a chain of 100k stages would overflow the thread's.
fn find_cycle(needs: &[BTreeSet<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum C {
        White,
        Grey,
        Black,
    }
    let mut color = vec![C::White; needs.len()];
    for root in 0..needs.len() {
        if color[root] != C::White {
            continue;
        }
        color[root] = C::Grey;
        let mut path = vec![root];
        let mut stack = vec![needs[root].iter()];
        while let Some(it) = stack.last_mut() {
            match it.next().copied() {
                Some(j) if color[j] == C::Grey => {
                    let start = path.iter().position(|&x| x == j).unwrap_or(0);
                    let mut cyc: Vec<usize> = path[start..].to_vec();
                    cyc.reverse();
                    cyc.insert(0, j);
                    return Some(cyc);
                }
                Some(j) if color[j] == C::White => {
                    color[j] = C::Grey;
                    path.push(j);
                    stack.push(needs[j].iter());
                }
                Some(_) => {}
                None => {
                    stack.pop();
                    if let Some(done) = path.pop() {
                        color[done] = C::Black;
                    }
                }
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

    #[test]
    fn globs_inputs_params_and_deep_chains() {
        let (p, d) = dag("stages:\n  a:\n    cmd: x\n    outs: [d/a.csv]\n  b:\n    cmd: y\n    deps: [\"d/*.csv\"]\n    params: [{out/p.yaml: [k]}]\n    outs: [o]\n  c:\n    cmd: z\n    outs: [out]\n").unwrap();
        let b = p.stages.iter().position(|s| s.name == "b").unwrap();
        assert_eq!(d.needs[b].iter().copied().collect::<Vec<_>>(), vec![0, 2]);
        let e = dag("stages:\n  a:\n    cmd: x\n    deps: [\"o/*\"]\n    outs: [o/x]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("stage `a` reads its own output `o/x`"), "{e}");
        // 50,000 stages in one chain: no recursion deep enough to overflow a stack.
        let n = 50_000;
        let needs: Vec<BTreeSet<usize>> = (0..n)
            .map(|i| {
                if i == 0 {
                    BTreeSet::from([n - 1])
                } else {
                    BTreeSet::from([i - 1])
                }
            })
            .collect();
        assert_eq!(find_cycle(&needs).map(|c| c.len()), Some(n + 1));
        let needs: Vec<BTreeSet<usize>> = (0..n)
            .map(|i| {
                if i == 0 {
                    BTreeSet::new()
                } else {
                    BTreeSet::from([i - 1])
                }
            })
            .collect();
        assert_eq!(find_cycle(&needs), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const PARTS: &[&str] = &["a", "b", "a-b", "a.b"];

        fn path() -> impl Strategy<Value = String> {
            prop::collection::vec(0..PARTS.len(), 1..4)
                .prop_map(|v| v.iter().map(|&i| PARTS[i]).collect::<Vec<_>>().join("/"))
        }

        fn dep() -> impl Strategy<Value = String> {
            prop_oneof![
                path(),
                path().prop_map(|p| format!("{p}/*")),
                Just("*".to_string())
            ]
        }

        /// What the graph must be, by comparing every stage with every output.
        fn all_pairs(p: &Pipeline) -> std::result::Result<Vec<BTreeSet<usize>>, &'static str> {
            let outs: Vec<&str> = p
                .stages
                .iter()
                .flat_map(|s| s.all_outs().map(|o| o.path.as_str()))
                .collect();
            for (a, x) in outs.iter().enumerate() {
                for y in &outs[a + 1..] {
                    if is_under(x, y) || is_under(y, x) {
                        return Err("clash");
                    }
                }
            }
            let mut needs = vec![BTreeSet::new(); p.stages.len()];
            for (i, s) in p.stages.iter().enumerate() {
                for (j, t) in p.stages.iter().enumerate() {
                    if t.all_outs().any(|o| reads(s, &o.path)) {
                        if i == j {
                            return Err("self");
                        }
                        needs[i].insert(j);
                    }
                }
            }
            Ok(needs)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// The indexed graph is exactly the one all pairs give (and errors when it does).
            #[test]
            fn the_index_agrees_with_all_pairs(
                stages in prop::collection::vec(
                    (prop::collection::vec(dep(), 0..3), prop::collection::vec(path(), 0..3)),
                    1..8,
                )
            ) {
                let mut y = String::from("stages:\n");
                for (i, (deps, outs)) in stages.iter().enumerate() {
                    let q = |v: &Vec<String>| v.iter().map(|d| format!("\"{d}\"")).collect::<Vec<_>>().join(", ");
                    y.push_str(&format!("  s{i}:\n    cmd: x\n    deps: [{}]\n    outs: [{}]\n", q(deps), q(outs)));
                }
                let p = parse(Path::new("dvx.yaml"), &y).unwrap();
                match (all_pairs(&p), Dag::build(&p)) {
                    (Ok(needs), Ok(d)) => {
                        prop_assert_eq!(&d.needs, &needs);
                        let mut pos = vec![0; needs.len()];
                        for (k, &i) in d.order.iter().enumerate() {
                            pos[i] = k;
                        }
                        for (i, n) in needs.iter().enumerate() {
                            for &j in n {
                                prop_assert!(pos[j] < pos[i]);
                            }
                        }
                    }
                    (Ok(needs), Err(e)) => {
                        prop_assert!(e.to_string().contains("cycle"), "{}", e);
                        prop_assert!(find_cycle(&needs).is_some());
                    }
                    (Err(_), Ok(_)) => prop_assert!(false, "missed an error in\n{}", y),
                    (Err(_), Err(_)) => {}
                }
            }
        }
    }
}
