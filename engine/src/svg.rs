//! A small layered-graph SVG writer, so `dvx lineage --svg` needs no Graphviz: nodes go in
//! rows by their distance from the root, ordered by their parents' positions, and edges are
//! straight arrows from a node to the row below.

use std::collections::{HashMap, VecDeque};

pub struct Box {
    pub id: String,
    /// Rounded corners (runs) or square (files).
    pub round: bool,
    pub lines: Vec<String>,
}

const CHAR_W: f64 = 7.2;
const LINE_H: f64 = 16.0;
const PAD: f64 = 8.0;
const GAP_X: f64 = 24.0;
const GAP_Y: f64 = 56.0;
const MAX_CHARS: usize = 60;

/// Escape text for XML and HTML (attributes included); control characters become spaces.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_CHARS {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_CHARS - 1).collect();
    t.push('…');
    t
}

/// Render boxes and edges (from, to) as a standalone SVG document, `root` in the top row.
pub fn render(boxes: &[Box], edges: &[(String, String)], root: &str) -> String {
    let index: HashMap<&str, usize> = boxes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id.as_str(), i))
        .collect();
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); boxes.len()];
    for (a, b) in edges {
        if let (Some(&x), Some(&y)) = (index.get(a.as_str()), index.get(b.as_str())) {
            kids[x].push(y);
        }
    }
    // Rows: breadth-first distance from the root; anything unreachable goes last.
    let mut layer = vec![usize::MAX; boxes.len()];
    let mut queue = VecDeque::new();
    if let Some(&r) = index.get(root) {
        layer[r] = 0;
        queue.push_back(r);
    }
    while let Some(x) = queue.pop_front() {
        for &y in &kids[x] {
            if layer[y] == usize::MAX {
                layer[y] = layer[x] + 1;
                queue.push_back(y);
            }
        }
    }
    let deepest = layer
        .iter()
        .filter(|l| **l != usize::MAX)
        .max()
        .copied()
        .unwrap_or(0);
    for l in layer.iter_mut().filter(|l| **l == usize::MAX) {
        *l = deepest + 1;
    }
    let rows_n = layer.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); rows_n];
    for (i, l) in layer.iter().enumerate() {
        rows[*l].push(i);
    }
    let size = |b: &Box| -> (f64, f64) {
        let chars = b
            .lines
            .iter()
            .map(|l| clip(l).chars().count())
            .max()
            .unwrap_or(0);
        (
            chars as f64 * CHAR_W + 2.0 * PAD,
            b.lines.len() as f64 * LINE_H + 2.0 * PAD,
        )
    };
    let mut pos: Vec<(f64, f64)> = vec![(0.0, 0.0); boxes.len()];
    let mut order_key: Vec<f64> = vec![0.0; boxes.len()];
    let mut y = 20.0;
    let mut width: f64 = 0.0;
    for row in rows.iter_mut() {
        // Barycenter of parents in the row above keeps edges short and mostly uncrossed.
        row.sort_by(|a, b| {
            order_key[*a]
                .partial_cmp(&order_key[*b])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(b))
        });
        let mut x = 20.0;
        let mut tallest: f64 = 0.0;
        for &i in row.iter() {
            let (w, h) = size(&boxes[i]);
            pos[i] = (x, y);
            x += w + GAP_X;
            tallest = tallest.max(h);
        }
        width = width.max(x);
        for &i in row.iter() {
            let cx = pos[i].0 + size(&boxes[i]).0 / 2.0;
            for &k in &kids[i] {
                if layer[k] == layer[i] + 1 {
                    order_key[k] = if order_key[k] == 0.0 {
                        cx
                    } else {
                        (order_key[k] + cx) / 2.0
                    };
                }
            }
        }
        y += tallest + GAP_Y;
    }
    let height = y;
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"monospace\" font-size=\"12\">\n<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        w = width.max(100.0),
        h = height
    );
    for (x, list) in kids.iter().enumerate() {
        for &k in list {
            let (wx, hx) = size(&boxes[x]);
            let (wk, _) = size(&boxes[k]);
            let (x1, y1) = (pos[x].0 + wx / 2.0, pos[x].1 + hx);
            let (x2, y2) = (pos[k].0 + wk / 2.0, pos[k].1);
            out.push_str(&format!(
                "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>\n"
            ));
        }
    }
    for (i, b) in boxes.iter().enumerate() {
        let (w, h) = size(b);
        let (x, y) = pos[i];
        let (fill, r) = if b.round {
            ("#e8f0fe", 10)
        } else {
            ("#fff8e1", 0)
        };
        out.push_str(&format!(
            "<g id=\"{}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"{r}\" fill=\"{fill}\" stroke=\"#333\"/>\n",
            escape(&b.id)
        ));
        for (k, line) in b.lines.iter().enumerate() {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                x + PAD,
                y + PAD + LINE_H * (k as f64 + 0.75),
                escape(&clip(line))
            ));
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_distance_and_text_is_escaped() {
        let b = |id: &str, t: &str| Box {
            id: id.into(),
            round: id.starts_with('r'),
            lines: vec![t.into()],
        };
        let boxes = vec![
            b("f0", "out/a<b>.txt"),
            b("r0", "run x"),
            b("f1", "in & more"),
        ];
        let edges = vec![("f0".into(), "r0".into()), ("r0".into(), "f1".into())];
        let s = render(&boxes, &edges, "f0");
        assert!(s.starts_with("<?xml"));
        assert!(s.contains("out/a&lt;b&gt;.txt"));
        assert!(s.contains("in &amp; more"));
        assert_eq!(s.matches("<line ").count(), 2);
        assert_eq!(s.matches("<g id=").count(), 3);
        let ys: Vec<f64> = ["f0", "r0", "f1"]
            .iter()
            .map(|id| {
                let at = s.find(&format!("<g id=\"{id}\">")).unwrap();
                let rest = &s[at..];
                let y = rest
                    .split("y=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                y.parse().unwrap()
            })
            .collect();
        assert!(ys[0] < ys[1] && ys[1] < ys[2], "{ys:?}");
    }
}
