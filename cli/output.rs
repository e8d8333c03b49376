//! Printing: plain text for people, JSON for tools, progress bars only on a terminal.

use std::time::Duration;

use dvx_engine::record::RunRecord;
use dvx_engine::run::{RunSummary, StageReport, StageStatus};
use dvx_engine::store::ops::{Change, ChangeKind, LogEntry, Status};
use dvx_engine::store::Id;
use dvx_engine::store::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub struct Out {
    pub quiet: bool,
    pub verbose: bool,
}

impl Out {
    pub fn new(quiet: bool, verbose: bool) -> Out {
        Out { quiet, verbose }
    }
    pub fn say(&self, s: &str) {
        if !self.quiet {
            println!("{s}");
        }
    }
    pub fn info(&self, s: &str) {
        if self.verbose {
            eprintln!("{s}");
        }
    }
    /// A `note:` on stderr, so stdout (and `--json`) keeps its shape.
    pub fn note(&self, s: &str) {
        if !self.quiet {
            eprintln!("note: {s}");
        }
    }
    /// How a revision was read, when it was git's or shadowed git's: a `note:` line, or with
    /// `--json` the same as one JSON object on stderr (stdout keeps its shape).
    pub fn revision(&self, r: &dvx_engine::store::revision::Resolved, json: bool) {
        let Some(n) = r.note() else { return };
        if json {
            if let Ok(s) = serde_json::to_string(r) {
                eprintln!("{s}");
            }
        } else {
            self.note(&n);
        }
    }
    pub fn json<T: Serialize>(&self, v: &T) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot write JSON: {e}"),
        }
    }
}

/// "1 file", "2 files": a count with its noun, plural when it is not one.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A progress bar on stderr; hidden when quiet or not a terminal.
pub struct Bar {
    hidden: bool,
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl Bar {
    pub fn new(hidden: bool) -> Bar {
        Bar {
            hidden,
            bar: std::sync::Mutex::new(None),
        }
    }
    fn current(&self) -> Option<ProgressBar> {
        self.bar.lock().ok().and_then(|g| g.clone())
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        if self.hidden {
            return;
        }
        let pb = ProgressBar::new(total);
        // A total of 0 is unknown (a walk that counts as it goes): a count and a rate.
        let template = if total == 0 {
            "{spinner} {msg:>12} {pos} {per_sec}"
        } else {
            "{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(what.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut g) = self.bar.lock() {
            *g = Some(pb);
        }
    }
    fn start_bytes(&self, what: &str, total: u64) {
        if self.hidden {
            return;
        }
        let pb = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(what.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut g) = self.bar.lock() {
            *g = Some(pb);
        }
    }
    fn inc(&self, n: u64) {
        if let Some(pb) = self.current() {
            pb.inc(n);
        }
    }
    fn finish(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
    }
}

pub fn print_status(out: &Out, st: &Status, show: impl Fn(&str) -> String) {
    if !st.fetched {
        return print_unfetched_status(out, st, show);
    }
    match (&st.branch, &st.head) {
        (Some(b), Some(h)) => out.say(&format!("on branch {b} at {}", h.short())),
        (Some(b), None) => out.say(&format!("on branch {b}, no commits yet")),
        (None, Some(h)) => out.say(&format!("HEAD detached at {}", h.short())),
        (None, None) => {}
    }
    if let (Some(l), false) = (&st.lock_commit, st.lock_fetched) {
        out.say(&format!(
            "dvx.lock pins commit {}, which is not fetched yet: run `dvx pull`",
            l.short()
        ));
    } else if let Some(l) = &st.lock_commit {
        out.say(&format!(
            "dvx.lock pins commit {}, not HEAD: run `dvx checkout` to restore the data that goes with this code",
            l.short()
        ));
    }
    if st.tracked.is_empty() {
        out.say("nothing tracked yet (track data with `dvx add PATH`)");
        return;
    }
    for (label, list) in [
        ("modified", &st.modified),
        ("deleted", &st.deleted),
        ("new", &st.new),
    ] {
        for p in list {
            println!("  {label:<9} {}", show(p));
        }
    }
    if st.clean {
        out.say("tracked data is unchanged");
    } else {
        out.say("(`dvx commit` records these changes, `dvx checkout --force HEAD` discards them)");
    }
}

/// A project git brought without a store: what dvx.lock says, and what to run.
fn print_unfetched_status(out: &Out, st: &Status, show: impl Fn(&str) -> String) {
    out.say("nothing fetched yet: run `dvx pull`");
    match &st.lock_commit {
        Some(c) => out.say(&format!("dvx.lock pins commit {}", c.short())),
        None => out.say("no dvx.lock: nothing tracked yet"),
    }
    for p in &st.tracked {
        let state = if st.not_here.contains(p) {
            "not here"
        } else if st.modified.contains(p) {
            "modified"
        } else {
            "here"
        };
        println!("  {state:<9} {}", show(p));
    }
}

pub fn print_log(out: &Out, entries: &[LogEntry]) {
    for e in entries {
        let refs = if e.refs.is_empty() {
            String::new()
        } else {
            format!(" ({})", e.refs.join(", "))
        };
        let when = chrono::DateTime::from_timestamp(e.commit.time, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        println!("commit {}{refs}", e.id);
        println!(
            "Author: {} <{}>",
            e.commit.author.name, e.commit.author.email
        );
        println!("Date:   {when}");
        if let Some(g) = &e.commit.git {
            println!(
                "Code:   git {}{}",
                &g.commit[..g.commit.len().min(12)],
                if g.dirty { " (dirty)" } else { "" }
            );
        }
        println!();
        for l in e.commit.message.lines() {
            println!("    {l}");
        }
        println!();
    }
    if entries.is_empty() {
        out.say("no commits yet");
    }
}

pub fn print_changes(out: &Out, changes: &[Change], show: impl Fn(&str) -> String) {
    for c in changes {
        let (label, sizes) = match c.change {
            ChangeKind::Added => ("added", human_bytes(c.new_size.unwrap_or(0))),
            ChangeKind::Removed => ("removed", human_bytes(c.old_size.unwrap_or(0))),
            ChangeKind::Modified => (
                "modified",
                format!(
                    "{} -> {}",
                    human_bytes(c.old_size.unwrap_or(0)),
                    human_bytes(c.new_size.unwrap_or(0))
                ),
            ),
        };
        println!("  {label:<9} {}  ({sizes})", show(&c.path));
    }
    if changes.is_empty() {
        out.say("no differences");
    }
}

/// Stages a run would execute or restore.
pub fn stale(stages: &[StageReport]) -> Vec<&StageReport> {
    stages.iter().filter(|s| s.state.is_stale()).collect()
}

pub fn print_stage_status(out: &Out, stages: &[StageReport]) {
    let stale = stale(stages);
    if stale.is_empty() {
        out.say("pipeline is up to date");
        return;
    }
    out.say("stale stages (`dvx run` brings them up to date):");
    for s in stale {
        let what = if s.state == StageStatus::Restored {
            "restorable from the run cache"
        } else {
            "would run"
        };
        println!("  {:<20} {what}: {}", s.stage, s.reasons.join("; "));
    }
}

/// Warnings from planning or running, on stderr (they are in `--json` output too).
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

pub fn print_run(out: &Out, s: &RunSummary, dry_run: bool) {
    print_warnings(&s.warnings);
    for st in &s.stages {
        let datums = st
            .datums
            .as_ref()
            .map(|d| {
                format!(
                    " [{} datums: {} executed, {} restored, {} failed]",
                    d.total, d.executed, d.restored, d.failed
                )
            })
            .unwrap_or_default();
        let why = if st.reasons.is_empty() || st.state == StageStatus::Skipped {
            String::new()
        } else {
            format!(" ({})", st.reasons.join("; "))
        };
        out.say(&format!(
            "{:<9} {}{datums}{why}",
            st.state.as_str(),
            st.stage
        ));
    }
    for f in &s.failures {
        eprintln!(
            "failed: {}{} (run {}): {}",
            f.stage,
            f.datum
                .as_ref()
                .map(|d| format!(" datum {d}"))
                .unwrap_or_default(),
            f.run.map(|r| r.short()).unwrap_or_default(),
            f.error
        );
        for l in f.stderr_tail.lines() {
            eprintln!("  | {l}");
        }
    }
    if dry_run {
        return;
    }
    out.say(&format!(
        "{} executed, {} restored from cache, {} skipped, {} failed in {:.2}s (task time {:.2}s){}",
        s.executed,
        s.restored,
        s.skipped,
        s.failed,
        s.wall_ms as f64 / 1000.0,
        s.task_ms as f64 / 1000.0,
        s.commit
            .map(|c| format!("; commit {}", c.short()))
            .unwrap_or_default()
    ));
}

pub fn print_record(id: &Id, r: &RunRecord) {
    println!("run      {id}");
    println!(
        "stage    {}{}",
        r.stage,
        r.datum
            .as_ref()
            .map(|d| format!("  datum {d}"))
            .unwrap_or_default()
    );
    println!("key      {}", r.key);
    println!(
        "status   {}",
        if r.ok() {
            "ok".to_string()
        } else {
            r.error
                .clone()
                .unwrap_or_else(|| format!("exit {:?}", r.exit))
        }
    );
    println!("command  {}", r.cmd.join(" && "));
    println!(
        "when     {} .. {} ({} ms, attempt {})",
        r.start,
        r.end,
        r.duration_ms,
        r.attempt + 1
    );
    println!(
        "who      {} on {} ({} executor)",
        r.user, r.host, r.executor
    );
    if let Some(c) = &r.cluster {
        println!(
            "job      {} job {} on {}, queued {}",
            r.executor, c.job, r.host, c.queued
        );
    }
    if let Some(image) = &r.image {
        println!("image    {image}");
    }
    if let Some(g) = &r.code {
        println!(
            "code     git {}{}",
            g.commit,
            if g.dirty { " (dirty)" } else { "" }
        );
    }
    if let Some(i) = &r.image {
        println!("image    {i}");
    }
    if !r.wdir.is_empty() {
        println!("wdir     {}", r.wdir);
    }
    for (k, v) in &r.env {
        println!("env      {k}={v}");
    }
    for (k, v) in &r.params {
        println!("param    {k} = {v}");
    }
    for i in &r.inputs {
        println!("input    {} {} {}", i.kind.as_str(), i.id.short(), i.path);
    }
    for o in &r.outputs {
        println!("output   {} {} {}", o.kind.as_str(), o.id.short(), o.path);
    }
    if let Some(nb) = &r.notebook {
        println!(
            "notebook {} -> {}{}",
            nb.path,
            nb.report,
            nb.kernel
                .as_ref()
                .map(|k| format!(" (kernel {k})"))
                .unwrap_or_default()
        );
        if let Some(e) = &nb.executed {
            println!(
                "executed {}{} (`dvx show {} --html PAGE`)",
                e.short(),
                if r.ok() { "" } else { ", partly" },
                id.short()
            );
        }
    }
    println!(
        "logs     stdout {} stderr {} (`dvx logs {}`)",
        r.stdout.short(),
        r.stderr.short(),
        id.short()
    );
}

pub fn print_deltas(out: &Out, deltas: &[dvx_engine::metrics::Delta], json: bool) {
    if json {
        out.json(&deltas);
        return;
    }
    if deltas.is_empty() {
        out.say("no differences");
        return;
    }
    let show = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{:<24} {:<28} {:>12} {:>12} {:>12}",
        "path/stage", "key", "old", "new", "change"
    );
    for d in deltas {
        let change = d.change.map(|c| format!("{c:+.6}")).unwrap_or_default();
        println!(
            "{:<24} {:<28} {:>12} {:>12} {:>12}",
            d.path,
            d.key,
            show(&d.old),
            show(&d.new),
            change
        );
    }
}

pub fn print_verify(out: &Out, r: &dvx_engine::verify::VerifyReport) {
    if let Some(e) = &r.error {
        println!("command failed: {e}");
    } else if r.exit != Some(0) {
        println!("command failed: exit {:?}", r.exit);
    }
    for o in &r.outputs {
        if o.identical && !o.ignored.is_empty() {
            println!(
                "identical  {} (an executed notebook; ignored what differs on every run: {})",
                o.path,
                o.ignored.join(", ")
            );
        } else if o.identical {
            println!("identical  {}", o.path);
        } else {
            println!(
                "DIFFERENT  {} (recorded {}, now {})",
                o.path,
                o.recorded.short(),
                o.now.map(|n| n.short()).unwrap_or_else(|| "missing".into())
            );
            for f in &o.files {
                println!("           {f}");
            }
        }
    }
    let differ = r.outputs.iter().filter(|o| !o.identical).count();
    out.say(&format!(
        "run {} ({}{}): {}",
        r.run.short(),
        r.stage,
        r.datum
            .as_ref()
            .map(|d| format!(" datum {d}"))
            .unwrap_or_default(),
        if r.identical && r.outputs.iter().any(|o| !o.ignored.is_empty()) {
            format!(
                "all {} outputs identical (executed notebooks without their volatile fields)",
                r.outputs.len()
            )
        } else if r.identical {
            format!("all {} outputs bit-identical", r.outputs.len())
        } else {
            format!("{differ} of {} outputs differ", r.outputs.len())
        }
    ));
}

/// What a push or fetch did to each branch and tag.
pub fn print_refs(out: &Out, refs: &[dvx_engine::remote::push::RefUpdate]) {
    for r in refs {
        let old = r.old.map(|o| o.short()).unwrap_or_else(|| "-".into());
        out.say(&format!(
            "  {:<28} {} -> {} ({})",
            r.name,
            old,
            r.new.short(),
            r.status
        ));
    }
}

/// What a fetch (or the fetch of a pull or clone) brought.
pub fn print_fetch(out: &Out, rep: &dvx_engine::remote::fetch::FetchReport) {
    out.say(&format!(
        "fetched from {}: {} ({}, {})",
        rep.remote,
        count(rep.objects, "object"),
        count(rep.chunks, "chunk"),
        human_bytes(rep.bytes)
    ));
    if rep.run_cache > 0 {
        out.say(&format!(
            "run cache: {} added (`dvx run` restores these instead of running them)",
            count(rep.run_cache, "record")
        ));
    }
    print_refs(out, &rep.refs);
}

/// `dvx artifacts`: one line per artifact (name, type, path), then its description and labels.
pub fn print_artifacts(out: &Out, artifacts: &[dvx_engine::spec::Artifact], json: bool) {
    if json {
        out.json(&artifacts);
        return;
    }
    for a in artifacts {
        println!(
            "{:<24} {:<8} {}",
            a.name,
            a.kind.as_deref().unwrap_or("-"),
            a.path
        );
        if let Some(d) = &a.desc {
            println!("  {d}");
        }
        if !a.labels.is_empty() {
            println!("  labels: {}", a.labels.join(", "));
        }
    }
}
