//! An executed notebook as one self-contained HTML page: markdown cells rendered, code cells
//! with their outputs (text, streams, tracebacks without terminal colours, PNG and JPEG images
//! inline, HTML such as pandas tables without its scripts). Nothing is fetched: no scripts,
//! no fonts, no style sheets from elsewhere.

use serde_json::Value;

use super::normalize::source_text;

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Remove terminal escape sequences (colours in tracebacks).
pub fn strip_ansi(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            o.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                chars.next();
                for c in chars.by_ref() {
                    if c == '\u{7}' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    o
}

/// `**bold**`, `*em*`, `` `code` `` and `[text](url)` in already escaped text.
fn inline(escaped: &str) -> String {
    let mut out = String::new();
    let mut rest = escaped;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('`') {
            if let Some(end) = r.find('`') {
                out.push_str(&format!("<code>{}</code>", &r[..end]));
                rest = &r[end + 1..];
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix("**") {
            if let Some(end) = r.find("**") {
                out.push_str(&format!("<strong>{}</strong>", inline(&r[..end])));
                rest = &r[end + 2..];
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix('*') {
            if let Some(end) = r.find('*').filter(|e| *e > 0) {
                out.push_str(&format!("<em>{}</em>", inline(&r[..end])));
                rest = &r[end + 1..];
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix('[') {
            if let Some((text, after)) = r.split_once("](") {
                if let Some(end) = after.find(')') {
                    let url = &after[..end];
                    let safe = url.starts_with("http://")
                        || url.starts_with("https://")
                        || url.starts_with('#');
                    if safe && !text.contains('[') {
                        out.push_str(&format!("<a href=\"{url}\">{}</a>", inline(text)));
                    } else {
                        out.push_str(&inline(text));
                    }
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Text without its `<...>` tags.
fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in s.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// Markdown as HTML: headings, fenced code, lists, paragraphs and the inline forms above.
/// Raw HTML in markdown is shown as text.
pub fn markdown(src: &str) -> String {
    let mut out = String::new();
    let mut para: Vec<String> = Vec::new();
    let mut list: Option<(&str, Vec<String>)> = None;
    let flush =
        |out: &mut String, para: &mut Vec<String>, list: &mut Option<(&str, Vec<String>)>| {
            if !para.is_empty() {
                out.push_str(&format!("<p>{}</p>\n", inline(&escape(&para.join(" ")))));
                para.clear();
            }
            if let Some((tag, items)) = list.take() {
                out.push_str(&format!("<{tag}>"));
                for i in items {
                    out.push_str(&format!("<li>{}</li>", inline(&escape(&i))));
                }
                out.push_str(&format!("</{tag}>\n"));
            }
        };
    let mut lines = src.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("```") {
            flush(&mut out, &mut para, &mut list);
            let mut code = Vec::new();
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                code.push(l);
            }
            out.push_str(&format!(
                "<pre><code>{}</code></pre>\n",
                escape(&code.join("\n"))
            ));
        } else if t.is_empty() {
            flush(&mut out, &mut para, &mut list);
        } else if let Some(level) =
            (1..=6).find(|n| t.starts_with(&"#".repeat(*n)) && t[*n..].starts_with(' '))
        {
            flush(&mut out, &mut para, &mut list);
            let text = t[level..].trim();
            out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(&escape(text))));
        } else if let Some(item) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* ")) {
            if !para.is_empty() || list.as_ref().is_some_and(|(tag, _)| *tag != "ul") {
                flush(&mut out, &mut para, &mut list);
            }
            list.get_or_insert(("ul", Vec::new()))
                .1
                .push(item.to_string());
        } else if let Some(item) = t
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map(|(_, i)| i)
        {
            if !para.is_empty() || list.as_ref().is_some_and(|(tag, _)| *tag != "ol") {
                flush(&mut out, &mut para, &mut list);
            }
            list.get_or_insert(("ol", Vec::new()))
                .1
                .push(item.to_string());
        } else if let Some((_, items)) = list.as_mut().filter(|_| line.starts_with("  ")) {
            if let Some(last) = items.last_mut() {
                last.push(' ');
                last.push_str(t);
            }
        } else {
            if list.is_some() {
                flush(&mut out, &mut para, &mut list);
            }
            para.push(t.to_string());
        }
    }
    flush(&mut out, &mut para, &mut list);
    out
}

fn is_base64(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// An HTML output without its scripts and what would load from elsewhere.
fn html_output(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(start) = lower.find("<script") else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..start]);
        match lower[start..].find("</script>") {
            Some(end) => rest = &rest[start + end + "</script>".len()..],
            None => break,
        }
    }
    // Leave nothing that would fetch: a `src=` or `<link` that names another place.
    out.replace("<link", "<!-- link")
        .replace("src=\"http", "data-src=\"http")
}

fn output(o: &Value) -> String {
    let text = |v: &Value| escape(&strip_ansi(&source_text(v)));
    match o["output_type"].as_str().unwrap_or("") {
        "stream" => {
            let name = if o["name"] == "stderr" {
                "stderr"
            } else {
                "stdout"
            };
            format!(
                "<pre class=\"output stream {name}\">{}</pre>\n",
                text(&o["text"])
            )
        }
        "error" => {
            let tb: Vec<String> = o["traceback"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).map(strip_ansi).collect())
                .unwrap_or_default();
            let body = if tb.is_empty() {
                format!(
                    "{}: {}",
                    o["ename"].as_str().unwrap_or("Error"),
                    strip_ansi(o["evalue"].as_str().unwrap_or(""))
                )
            } else {
                tb.join("\n")
            };
            format!("<pre class=\"output error\">{}</pre>\n", escape(&body))
        }
        "execute_result" | "display_data" => {
            let data = &o["data"];
            for (mime, kind) in [("image/png", "png"), ("image/jpeg", "jpeg")] {
                let b64: String = source_text(&data[mime])
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                if is_base64(&b64) {
                    return format!(
                        "<div class=\"output image\"><img alt=\"output image\" src=\"data:image/{kind};base64,{b64}\"></div>\n"
                    );
                }
            }
            if !data["text/html"].is_null() {
                return format!(
                    "<div class=\"output html\">{}</div>\n",
                    html_output(&source_text(&data["text/html"]))
                );
            }
            if !data["text/markdown"].is_null() {
                return format!(
                    "<div class=\"output markdown\">{}</div>\n",
                    markdown(&source_text(&data["text/markdown"]))
                );
            }
            format!(
                "<pre class=\"output text\">{}</pre>\n",
                text(&data["text/plain"])
            )
        }
        _ => String::new(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
header{border-bottom:1px solid #ccc;margin-bottom:1rem}header p{color:#555;margin:.2rem 0}\
.cell{margin:1rem 0}.prompt{color:#888;font:12px monospace}\
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;margin:.2rem 0;white-space:pre-wrap}\
pre.source{border-left:3px solid #4a7}\
pre.stderr{background:#fff4e5}pre.error{background:#fdecea;color:#8a1c1c}\
.injected pre.source{border-left-color:#c93}\
.banner{background:#fdecea;color:#8a1c1c;padding:.6rem;font-weight:bold}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}";

/// The page for an executed notebook (`nb`, nbformat 4 JSON); `title` and `about` head it.
pub fn render(nb: &Value, title: &str, about: &[String]) -> String {
    let mut body = String::new();
    let cells = nb["cells"].as_array().cloned().unwrap_or_default();
    for (i, c) in cells.iter().enumerate() {
        let kind = c["cell_type"].as_str().unwrap_or("code");
        let tags: Vec<&str> = c
            .pointer("/metadata/tags")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut class = format!("cell {kind}");
        for t in &tags {
            if *t == "injected-parameters" {
                class.push_str(" injected");
            } else if *t == "parameters" {
                class.push_str(" parameters");
            }
        }
        let src = source_text(&c["source"]);
        if tags.contains(&"papermill-error-cell-tag") {
            // papermill's banner above a failed notebook: its words, without its markup.
            body.push_str(&format!(
                "<div class=\"banner\">{}</div>\n",
                escape(strip_tags(&src).trim())
            ));
            continue;
        }
        body.push_str(&format!("<section class=\"{class}\" data-index=\"{i}\">\n"));
        match kind {
            "markdown" => body.push_str(&markdown(&src)),
            "code" => {
                let count = c["execution_count"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| " ".into());
                let note = if tags.contains(&"injected-parameters") {
                    " injected parameters"
                } else {
                    ""
                };
                body.push_str(&format!(
                    "<div class=\"prompt\">In [{count}]:{note}</div>\n<pre class=\"source\"><code>{}</code></pre>\n",
                    escape(&src)
                ));
                for o in c["outputs"].as_array().into_iter().flatten() {
                    body.push_str(&output(o));
                }
            }
            _ => body.push_str(&format!("<pre class=\"raw\">{}</pre>\n", escape(&src))),
        }
        body.push_str("</section>\n");
    }
    let about: String = about
        .iter()
        .map(|a| format!("<p>{}</p>", escape(a)))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\n<body><header><h1>{t}</h1>{about}</header>\n<main class=\"notebook\">\n{body}</main></body></html>\n",
        t = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markdown_basics() {
        let h = markdown("# Wine *quality*\n\nSome `code` and **bold**, <b>raw</b>.\n\n- one\n- two\n\n1. a\n2. b\n\n```\nx < 1\n```\n[site](https://example.org) [bad](javascript:alert(1))");
        assert!(h.contains("<h1>Wine <em>quality</em></h1>"), "{h}");
        assert!(
            h.contains("<code>code</code>") && h.contains("<strong>bold</strong>"),
            "{h}"
        );
        assert!(h.contains("&lt;b&gt;raw&lt;/b&gt;"), "{h}");
        assert!(h.contains("<ul><li>one</li><li>two</li></ul>"), "{h}");
        assert!(h.contains("<ol><li>a</li><li>b</li></ol>"), "{h}");
        assert!(h.contains("<pre><code>x &lt; 1</code></pre>"), "{h}");
        assert!(
            h.contains("<a href=\"https://example.org\">site</a>"),
            "{h}"
        );
        assert!(!h.contains("javascript:"), "{h}");
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[0;31mValueError\u{1b}[0m: x"),
            "ValueError: x"
        );
        assert_eq!(strip_ansi("\u{1b}]8;;http://x\u{7}link"), "link");
    }

    #[test]
    fn a_page_shows_every_kind_of_output_and_fetches_nothing() {
        let nb = json!({"cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Report\n", "text"]},
            {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["injected-parameters"]},
             "source": "lr = 0.5", "outputs": []},
            {"cell_type": "code", "execution_count": 2, "metadata": {}, "source": "print(lr)",
             "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["0.5\n"]},
                {"output_type": "stream", "name": "stderr", "text": "warn <x>\n"},
                {"output_type": "execute_result", "execution_count": 2, "metadata": {},
                 "data": {"text/plain": "'a'", "text/html": "<table><tr><td>1</td></tr></table><script>fetch('http://x')</script>"}},
                {"output_type": "display_data", "metadata": {},
                 "data": {"image/png": "iVBORw0KGgo=\n", "text/plain": "<Figure>"}},
                {"output_type": "error", "ename": "ValueError", "evalue": "bad",
                 "traceback": ["\u{1b}[0;31mValueError\u{1b}[0m: bad"]},
             ]},
        ]});
        let mut nb = nb;
        nb["cells"].as_array_mut().unwrap().insert(0, json!({"cell_type": "markdown",
            "metadata": {"tags": ["papermill-error-cell-tag"]},
            "source": "<span style=\"color:red\">An Exception was encountered at '<a href=\"#papermill-error-cell\">In [2]</a>'.</span>"}));
        let page = render(&nb, "stage explore", &["run 1234".to_string()]);
        assert!(
            page.contains(
                "<div class=\"banner\">An Exception was encountered at &#39;In [2]&#39;.</div>"
            ),
            "{page}"
        );
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<h1>Report</h1>"));
        assert!(page.contains("In [1]: injected parameters"));
        assert!(page.contains("<pre class=\"output stream stdout\">0.5\n</pre>"));
        assert!(page.contains("warn &lt;x&gt;"));
        assert!(page.contains("<table><tr><td>1</td></tr></table>"));
        assert!(!page.contains("<script"));
        assert!(page.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""));
        assert!(page.contains("<pre class=\"output error\">ValueError: bad</pre>"));
        assert!(!page.contains('\u{1b}'));
        assert!(!page.contains("http://"), "nothing to fetch: {page}");
    }
}
