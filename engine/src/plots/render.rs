//! Plots drawn as SVG (one line or set of points per revision and column, a legend, axes with
//! their ranges) and a self-contained HTML page of them: no script, nothing fetched to view it.

use super::{PlotData, Template};
use crate::svg::escape;

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 48.0;
const COLORS: &[&str] = &[
    "#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#702459",
];

/// A number for an axis label: short, but exact for small integers.
fn label(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// One plot as a standalone SVG document.
pub fn svg(p: &PlotData) -> String {
    let pts = p.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let (xs, ys) = ((x1 - x0).max(f64::EPSILON), (y1 - y0).max(f64::EPSILON));
    let px = |x: f64| LEFT + (x - x0) / xs * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y - y0) / ys * (H - TOP - BOTTOM);
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" data-plot=\"{id}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{tx}\" y=\"20\" font-size=\"14\" font-weight=\"bold\" text-anchor=\"middle\">{title}</text>\
         <line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#444\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#444\"/>\
         <text x=\"{LEFT}\" y=\"{xl}\" text-anchor=\"start\">{x0l}</text><text x=\"{r}\" y=\"{xl}\" text-anchor=\"end\">{x1l}</text>\
         <text x=\"{tx}\" y=\"{xn}\" text-anchor=\"middle\">{xname}</text>\
         <text x=\"{yl}\" y=\"{b}\" text-anchor=\"end\">{y0l}</text><text x=\"{yl}\" y=\"{yt}\" text-anchor=\"end\">{y1l}</text>\
         <text x=\"14\" y=\"{ym}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {ym})\">{yname}</text>",
        id = escape(&p.id),
        tx = W / 2.0,
        title = escape(&p.title),
        b = H - BOTTOM,
        r = W - RIGHT,
        xl = H - BOTTOM + 14.0,
        xn = H - 10.0,
        x0l = label(x0),
        x1l = label(x1),
        xname = escape(&p.x_label),
        yl = LEFT - 4.0,
        yt = TOP + 4.0,
        y0l = label(y0),
        y1l = label(y1),
        ym = (TOP + H - BOTTOM) / 2.0,
        yname = escape(&p.y_label),
    );
    for (k, s) in p.series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        o.push_str(&format!(
            "<g class=\"series\" data-rev=\"{}\" data-y=\"{}\" data-file=\"{}\" data-points=\"{}\">",
            escape(&s.rev),
            escape(&s.y),
            escape(&s.file),
            s.points.len()
        ));
        let line: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        match p.template {
            Template::Linear => o.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
                line.join(" ")
            )),
            Template::Scatter => {
                for &(x, y) in &s.points {
                    o.push_str(&format!(
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                        px(x),
                        py(y)
                    ));
                }
            }
        }
        // The legend, top right, one row per series.
        let ly = TOP + 4.0 + k as f64 * 16.0;
        o.push_str(&format!(
            "<rect x=\"{lx}\" y=\"{ry}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{tx}\" y=\"{ty}\" class=\"legend\">{name}</text></g>",
            lx = W - RIGHT - 200.0,
            ry = ly - 9.0,
            tx = W - RIGHT - 186.0,
            ty = ly,
            name = escape(&format!("{} {}", s.rev, s.y)),
        ));
    }
    o.push_str("</svg>");
    o
}

/// Every plot on one self-contained page.
pub fn html(title: &str, plots: &[PlotData]) -> String {
    let mut body = String::new();
    for p in plots {
        if p.series.is_empty() {
            body.push_str(&format!(
                "<section><h2>{}</h2><p>No data: the file is missing or has no numeric column at these revisions.</p></section>",
                escape(&p.title)
            ));
        } else {
            body.push_str(&format!("<section>{}</section>", svg(p)));
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:24px}}section{{display:inline-block;margin:8px;border:1px solid #ddd}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::super::Series;
    use super::*;

    #[test]
    fn one_group_per_series_with_its_points() {
        let p = PlotData {
            id: "loss.csv".into(),
            title: "loss <train>".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            template: Template::Linear,
            series: vec![
                Series {
                    rev: "HEAD~1".into(),
                    file: "loss.csv".into(),
                    y: "loss".into(),
                    points: vec![(0.0, 2.0), (1.0, 1.0)],
                },
                Series {
                    rev: "HEAD".into(),
                    file: "loss.csv".into(),
                    y: "loss".into(),
                    points: vec![(0.0, 1.5), (1.0, 0.5), (2.0, 0.25)],
                },
            ],
        };
        let s = svg(&p);
        assert_eq!(s.matches("<g class=\"series\"").count(), 2);
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("data-rev=\"HEAD~1\"") && s.contains("data-points=\"3\""));
        assert!(s.contains("loss &lt;train&gt;"));
        let page = html("plots", &[p]);
        assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("<script"));
    }
}
