//! `/metrics` in Prometheus' text format: the pipeline's state now, what HEAD's history
//! recorded, the store's size, and the server's own requests.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dvx_engine::record;
use dvx_engine::store::{Access, Repo};
use dvx_engine::Result;

use crate::views;

/// How many commits of HEAD's history the run figures cover, so a scrape stays cheap.
pub const HISTORY: usize = 1000;

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub not_found: AtomicU64,
    pub failed: AtomicU64,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn folder_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

pub fn render(root: &Path, c: &Counters) -> Result<String> {
    let mut o = String::new();
    let view = views::pipeline(root)?;
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for s in [
        "up to date",
        "stale",
        "restored",
        "failed",
        "frozen",
        "blocked",
    ] {
        states.insert(s, 0);
    }
    for s in &view.stages {
        *states.entry(views::shown_state(&view, s)).or_default() += 1;
    }
    let _ = writeln!(
        o,
        "# HELP dvx_stages Stages of dvx.yaml by their state now."
    );
    let _ = writeln!(o, "# TYPE dvx_stages gauge");
    for (s, n) in &states {
        let _ = writeln!(o, "dvx_stages{{state=\"{}\"}} {n}", label(s));
    }
    let repo = Repo::open(root, Access::Read)?;
    // stage -> (ok, failed, seconds)
    let mut runs: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
    let mut commits = 0u64;
    let mut last = None;
    if repo.store.head_commit()?.is_some() {
        for e in repo.log(None, Some(HISTORY))? {
            commits += 1;
            last = last.or(Some(e.commit.time));
            for id in &e.commit.runs {
                let Ok(r) = record::load(&repo.store, id) else {
                    continue;
                };
                let slot = runs.entry(r.stage.clone()).or_default();
                if r.ok() {
                    slot.0 += 1;
                } else {
                    slot.1 += 1;
                }
                slot.2 += r.duration_ms as f64 / 1000.0;
            }
        }
    }
    let _ = writeln!(o, "# HELP dvx_runs Executions recorded in the last {HISTORY} commits of HEAD, by stage and outcome.");
    let _ = writeln!(o, "# TYPE dvx_runs gauge");
    for (stage, (ok, failed, _)) in &runs {
        let st = label(stage);
        let _ = writeln!(o, "dvx_runs{{stage=\"{st}\",outcome=\"ok\"}} {ok}");
        let _ = writeln!(o, "dvx_runs{{stage=\"{st}\",outcome=\"failed\"}} {failed}");
    }
    let _ = writeln!(
        o,
        "# HELP dvx_run_seconds Time spent executing, over the same runs, by stage."
    );
    let _ = writeln!(o, "# TYPE dvx_run_seconds gauge");
    for (stage, (_, _, secs)) in &runs {
        let _ = writeln!(o, "dvx_run_seconds{{stage=\"{}\"}} {secs}", label(stage));
    }
    let _ = writeln!(o, "# HELP dvx_commits Commits counted (at most {HISTORY}).");
    let _ = writeln!(o, "# TYPE dvx_commits gauge");
    let _ = writeln!(o, "dvx_commits {commits}");
    if let Some(t) = last {
        let _ = writeln!(
            o,
            "# HELP dvx_last_commit_timestamp_seconds When HEAD was committed."
        );
        let _ = writeln!(o, "# TYPE dvx_last_commit_timestamp_seconds gauge");
        let _ = writeln!(o, "dvx_last_commit_timestamp_seconds {t}");
    }
    let _ = writeln!(
        o,
        "# HELP dvx_store_bytes Bytes the store takes on disk (packs and database)."
    );
    let _ = writeln!(o, "# TYPE dvx_store_bytes gauge");
    let _ = writeln!(
        o,
        "dvx_store_bytes {}",
        folder_bytes(&repo.root.join(".dvx"))
    );
    let _ = writeln!(
        o,
        "# HELP dvx_http_requests_total Requests this server answered, by result."
    );
    let _ = writeln!(o, "# TYPE dvx_http_requests_total counter");
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        o,
        "dvx_http_requests_total{{result=\"ok\"}} {}",
        n(&c.requests)
    );
    let _ = writeln!(
        o,
        "dvx_http_requests_total{{result=\"not_found\"}} {}",
        n(&c.not_found)
    );
    let _ = writeln!(
        o,
        "dvx_http_requests_total{{result=\"failed\"}} {}",
        n(&c.failed)
    );
    Ok(o)
}

/// The triggers' figures: firings by result (from the store, so they survive a restart) and
/// what is due but not started.
pub fn render_triggers(ts: &[crate::views::TriggerView]) -> String {
    let mut o = String::new();
    if ts.is_empty() {
        return o;
    }
    let _ = writeln!(o, "# HELP dvx_trigger_firings Firings of each trigger (the last 50 kept per trigger), by result.");
    let _ = writeln!(o, "# TYPE dvx_trigger_firings gauge");
    for t in ts {
        let n = label(&t.name);
        let ok = t
            .firings
            .iter()
            .filter(|f| f.error.is_none() && f.failed == 0 && f.ended.is_some())
            .count();
        let failed = t.firings.iter().filter(|f| f.ended.is_some()).count() - ok;
        let _ = writeln!(
            o,
            "dvx_trigger_firings{{trigger=\"{n}\",result=\"ok\"}} {ok}"
        );
        let _ = writeln!(
            o,
            "dvx_trigger_firings{{trigger=\"{n}\",result=\"failed\"}} {failed}"
        );
    }
    let _ = writeln!(o, "# HELP dvx_trigger_pending Firings due and not started (held by min_interval or a busy writer lock).");
    let _ = writeln!(o, "# TYPE dvx_trigger_pending gauge");
    for t in ts {
        let _ = writeln!(
            o,
            "dvx_trigger_pending{{trigger=\"{}\"}} {}",
            label(&t.name),
            t.pending
        );
    }
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
