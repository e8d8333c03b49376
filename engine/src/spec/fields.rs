//! The values of a stage's fields: outputs, parameters, timeouts, images and resources, each
//! checked where it was written.

use marked_yaml::Node;

use super::{
    project, rel_path, Ctx, Out, ParamRef, Resources, DEFAULT_PARAMS, MAX_CPUS, MAX_GPUS,
    MAX_TIMEOUT_SECS,
};
use crate::error::Result;

/// `outs`, `metrics` and `plots` entries; `plots` entries may also carry plot properties.
pub(super) fn parse_outs(cx: &Ctx, wdir: &str, n: &Node, what: &str) -> Result<Vec<Out>> {
    let plots = what == "plots";
    let seq: Vec<&Node> = match n {
        Node::Sequence(s) => s.iter().collect(),
        _ => vec![n],
    };
    let mut out = Vec::new();
    for item in seq {
        match item {
            Node::Scalar(s) => out.push(Out {
                path: rel_path(cx, wdir, s.as_str(), s.span(), what)?,
                cache: true,
                persist: false,
                props: None,
                at: Ctx::pos(s.span()),
            }),
            Node::Mapping(m) if m.len() == 1 => {
                let (k, v) = m
                    .iter()
                    .next()
                    .ok_or_else(|| cx.err(item.span(), "empty entry"))?;
                let mut o = Out {
                    path: rel_path(cx, wdir, k.as_str(), k.span(), what)?,
                    cache: true,
                    persist: false,
                    props: None,
                    at: Ctx::pos(k.span()),
                };
                if let Node::Mapping(opts) = v {
                    for (ok, ov) in opts.iter() {
                        match ok.as_str() {
                            "cache" => o.cache = cx.boolean(ov, "cache")?,
                            "persist" => o.persist = cx.boolean(ov, "persist")?,
                            // Properties say how to draw the plot, not what the stage makes.
                            p if plots && project::PLOT_PROPS.contains(&p) => {
                                let props = o.props.get_or_insert_with(|| serde_json::json!({}));
                                props[p] = crate::params::to_json(ov);
                            }
                            other if plots => {
                                return Err(cx.err(ok.span(), format!("unknown option `{other}` for a plot; expected `cache`, `persist` or one of: {}", project::PLOT_PROPS.join(", "))))
                            }
                            other => {
                                return Err(cx.err(ok.span(), format!("unknown option `{other}` for an output; expected `cache` or `persist`")))
                            }
                        }
                    }
                } else if !matches!(v, Node::Scalar(s) if s.as_str().is_empty() || s.as_str() == "null" || s.as_str() == "~")
                {
                    return Err(cx.err(
                        v.span(),
                        "output options: expected a mapping such as {cache: false}",
                    ));
                }
                out.push(o);
            }
            _ => {
                return Err(cx.err(
                    item.span(),
                    format!("{what}: expected a path, or `PATH: {{cache: false}}`"),
                ))
            }
        }
    }
    Ok(out)
}

pub(super) fn parse_params(cx: &Ctx, wdir: &str, n: &Node) -> Result<Vec<ParamRef>> {
    let seq: Vec<&Node> = match n {
        Node::Sequence(s) => s.iter().collect(),
        _ => vec![n],
    };
    let default_file = rel_path(cx, wdir, DEFAULT_PARAMS, n.span(), "params")?;
    let mut out = Vec::new();
    for item in seq {
        match item {
            Node::Scalar(s) => out.push(ParamRef {
                file: default_file.clone(),
                key: s.as_str().to_string(),
            }),
            Node::Mapping(m) => {
                for (k, v) in m.iter() {
                    let file = rel_path(cx, wdir, k.as_str(), k.span(), "params file")?;
                    for (key, _) in cx.strings(v, "params keys")? {
                        out.push(ParamRef {
                            file: file.clone(),
                            key,
                        });
                    }
                }
            }
            Node::Sequence(_) => {
                return Err(cx.err(item.span(), "params: expected a key or `FILE: [keys]`"))
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Parse seconds from `30`, `30s`, `5m`, `2h`, at most [`MAX_TIMEOUT_SECS`].
pub(super) fn parse_timeout(cx: &Ctx, n: &Node) -> Result<u64> {
    let s = cx.string(n, "timeout")?;
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    let Some(v) = num.trim().parse::<u64>().ok().filter(|v| *v > 0) else {
        return Err(cx.err(
            n.span(),
            "timeout: expected seconds, or a number with s, m or h (such as 10m)",
        ));
    };
    match v.checked_mul(mult) {
        Some(secs) if secs <= MAX_TIMEOUT_SECS => Ok(secs),
        _ => Err(cx.err(
            n.span(),
            format!(
                "timeout: `{s}` is too long; at most {MAX_TIMEOUT_SECS} seconds (365 days, `8760h`)"
            ),
        )),
    }
}

/// An image reference: `NAME[:TAG][@DIGEST]`, without spaces or shell-unsafe characters.
pub(super) fn parse_image(cx: &Ctx, n: &Node) -> Result<String> {
    let s = cx.string(n, "image")?;
    let s = s.trim();
    let ok = !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if !ok {
        return Err(cx.err(
            n.span(),
            "image: expected NAME[:TAG] or NAME@sha256:DIGEST (such as `python:3.12-slim`)",
        ));
    }
    Ok(s.to_string())
}

pub(super) fn parse_resources(cx: &Ctx, n: &Node) -> Result<Resources> {
    let m = cx.mapping(n, "resources")?;
    let mut r = Resources::default();
    for (k, v) in m.iter() {
        let text = cx.string(v, &format!("resources.{}", k.as_str()))?;
        let t = text.trim().to_string();
        match k.as_str() {
            "cpus" => {
                if !t.parse::<f64>().is_ok_and(|c| c > 0.0 && c <= MAX_CPUS) {
                    return Err(cx.err(
                        v.span(),
                        format!("resources.cpus: expected a number of CPUs > 0 and at most {MAX_CPUS} (such as 2 or 0.5)"),
                    ));
                }
                r.cpus = Some(t);
            }
            "memory" => {
                let lower = t.to_ascii_lowercase();
                let digits = lower.trim_end_matches(['b', 'k', 'm', 'g']);
                let suffix = &lower[digits.len()..];
                let unit: u64 = match suffix {
                    "k" => 1 << 10,
                    "m" => 1 << 20,
                    "g" => 1 << 30,
                    _ => 1,
                };
                // The runtimes read the size into a signed 64-bit number of bytes.
                let fits = digits
                    .parse::<u64>()
                    .ok()
                    .and_then(|d| d.checked_mul(unit))
                    .is_some_and(|b| b > 0 && b <= i64::MAX as u64);
                if digits.is_empty()
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || suffix.len() > 1
                    || !fits
                {
                    return Err(cx.err(
                        v.span(),
                        "resources.memory: expected a size such as 512m or 2g (b, k, m or g)",
                    ));
                }
                r.memory = Some(lower);
            }
            "gpus" => {
                if t != "all" && !t.parse::<u32>().is_ok_and(|g| g > 0 && g <= MAX_GPUS) {
                    return Err(cx.err(
                        v.span(),
                        format!("resources.gpus: expected `all` or a number of GPUs from 1 to {MAX_GPUS}"),
                    ));
                }
                r.gpus = Some(t);
            }
            other => {
                return Err(cx.err(
                    k.span(),
                    format!(
                        "resources: unknown field `{other}`; expected `cpus`, `memory` or `gpus`"
                    ),
                ))
            }
        }
    }
    Ok(r)
}
