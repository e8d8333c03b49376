//! `triggers:` in dvx.yaml: when `dvx serve` runs the pipeline by itself.
//!
//! ```yaml
//! triggers:
//!   nightly:
//!     cron: "0 0 2 * * *"      # seconds optional; UTC
//!     stages: [train]          # default: the whole pipeline
//!     min_interval: 10m
//!     catch_up: latest         # or all
//!     push: origin             # push the results (true: the default remote)
//!   new-data:
//!     on_push: {remote: origin, branch: main, poll: 30s}
//! ```

use std::time::Duration;

use marked_yaml::Node;

use super::Ctx;
use crate::error::Result;
use crate::trigger::{parse_cron, parse_duration, CatchUp, Trigger, When};

const FIELDS: &[&str] = &[
    "cron",
    "on_push",
    "stages",
    "min_interval",
    "catch_up",
    "push",
];

/// How often a push trigger looks at the remote's refs unless told.
const DEFAULT_POLL: Duration = Duration::from_secs(30);

fn duration(cx: &Ctx, n: &Node, what: &str) -> Result<Duration> {
    let s = cx.string(n, what)?;
    parse_duration(&s).ok_or_else(|| {
        cx.err(
            n.span(),
            format!("{what}: expected a duration like 30s, 10m, 2h or 1d, found {s:?}"),
        )
    })
}

pub(super) fn parse(cx: &Ctx, n: &Node, stage_names: &[&str]) -> Result<Vec<Trigger>> {
    let map = cx.mapping(n, "triggers")?;
    let mut out = Vec::new();
    for (k, v) in map.iter() {
        let name = k.as_str().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(cx.err(
                k.span(),
                format!("trigger name {name:?}: use letters, digits, '-', '_' and '.'"),
            ));
        }
        let what = format!("trigger `{name}`");
        let body = cx.mapping(v, &what)?;
        for (f, _) in body.iter() {
            if !FIELDS.contains(&f.as_str()) {
                return Err(cx.err(
                    f.span(),
                    format!(
                        "{what}: unknown field `{}`; expected one of {}",
                        f.as_str(),
                        FIELDS.join(", ")
                    ),
                ));
            }
        }
        let when = match (body.get_node("cron"), body.get_node("on_push")) {
            (Some(c), None) => {
                let pattern = cx.string(c, &format!("{what}: cron"))?;
                let cron = parse_cron(&pattern).map_err(|e| {
                    cx.err(c.span(), format!("{what}: cron {pattern:?} is not valid: {e}"))
                })?;
                When::Cron {
                    pattern,
                    cron: Box::new(cron),
                }
            }
            (None, Some(p)) => {
                let pm = cx.mapping(p, &format!("{what}: on_push"))?;
                for (f, _) in pm.iter() {
                    if !matches!(f.as_str(), "remote" | "branch" | "poll") {
                        return Err(cx.err(
                            f.span(),
                            format!("{what}: on_push: unknown field `{}`; expected remote, branch, poll", f.as_str()),
                        ));
                    }
                }
                let branch = pm
                    .get_node("branch")
                    .ok_or_else(|| cx.err(p.span(), format!("{what}: on_push needs a `branch`")))?;
                When::Push {
                    remote: pm
                        .get_node("remote")
                        .map(|r| cx.string(r, &format!("{what}: remote")))
                        .transpose()?,
                    branch: cx.string(branch, &format!("{what}: branch"))?,
                    poll: pm
                        .get_node("poll")
                        .map(|d| duration(cx, d, &format!("{what}: poll")))
                        .transpose()?
                        .unwrap_or(DEFAULT_POLL)
                        .max(Duration::from_secs(1)),
                }
            }
            _ => {
                return Err(cx.err(
                    k.span(),
                    format!("{what}: give exactly one of `cron` (a schedule) or `on_push` (new commits of a remote branch)"),
                ))
            }
        };
        let mut stages = Vec::new();
        if let Some(s) = body.get_node("stages") {
            for (st, at) in cx.strings(s, &format!("{what}: stages"))? {
                if !stage_names.contains(&st.as_str()) {
                    return Err(crate::EngineError::spec(
                        cx.file,
                        at.line,
                        at.column,
                        format!("{what}: unknown stage `{st}`"),
                    ));
                }
                stages.push(st);
            }
        }
        let catch_up = match body.get_node("catch_up") {
            None => CatchUp::Latest,
            Some(c) => match cx.string(c, &format!("{what}: catch_up"))?.as_str() {
                "latest" => CatchUp::Latest,
                "all" => CatchUp::All,
                other => {
                    return Err(cx.err(
                        c.span(),
                        format!("{what}: catch_up: expected `latest` or `all`, found {other:?}"),
                    ))
                }
            },
        };
        let push = match body.get_node("push") {
            None => None,
            Some(p) => match p.as_scalar().and_then(|s| s.as_bool()) {
                Some(true) => Some(String::new()),
                Some(false) => None,
                None => Some(cx.string(p, &format!("{what}: push"))?),
            },
        };
        out.push(Trigger {
            name,
            at: Ctx::pos(k.span()),
            when,
            stages,
            min_interval: body
                .get_node("min_interval")
                .map(|d| duration(cx, d, &format!("{what}: min_interval")))
                .transpose()?,
            catch_up,
            push,
        });
    }
    Ok(out)
}
