//! `dvx plots`: a stage's plot and DVCLive-style files at two revisions, as JSON, as a page
//! opened in Chromium (one line per revision), and the errors a user can make.

use std::process::Command;

use crate::common::*;

fn pipeline(p: &Project) {
    p.write("params.yaml", "lr: 0.5\n");
    p.write(
        "dvx.yaml",
        "stages:\n  train:\n    cmd: >-\n      lr=$(sed -n 's/^lr: //p' params.yaml);\n      awk -v lr=$lr 'BEGIN { print \"step,loss\"; for (i = 0; i < 5; i++) print i \",\" 1 / (1 + i * lr) }' > loss.csv;\n      mkdir -p dvclive/plots/metrics;\n      awk -v lr=$lr 'BEGIN { print \"step\\tacc\"; for (i = 0; i < 4; i++) print i \"\\t\" i * lr / 4 }' > dvclive/plots/metrics/acc.tsv\n    params: [lr]\n    outs: [dvclive]\n    plots:\n      - loss.csv: {x: step, y: loss, title: Training loss}\nplots:\n  - dvclive/plots/metrics\n",
    );
}

#[test]
fn plots_of_two_revisions_have_one_line_each() {
    let p = Project::new();
    pipeline(&p);
    p.dvx(&["run"]).ok();
    p.write("params.yaml", "lr: 1.0\n");
    p.dvx(&["run"]).ok();

    let j = p
        .dvx(&["plots", "diff", "HEAD~1", "HEAD", "--json"])
        .ok()
        .json();
    let loss = j["loss.csv"].as_array().unwrap();
    assert_eq!(loss.len(), 2, "{j}");
    assert_eq!(loss[0]["rev"], "HEAD~1");
    assert_eq!(loss[1]["rev"], "HEAD");
    assert_eq!(loss[0]["points"][2], serde_json::json!([2.0, 0.5]), "{j}");
    // awk writes six significant digits; the value is read as written.
    assert_eq!(
        loss[1]["points"][2],
        serde_json::json!([2.0, 0.333333]),
        "{j}"
    );
    let acc = j["dvclive/plots/metrics"].as_array().unwrap();
    assert_eq!(acc.len(), 2, "{j}");
    assert_eq!(acc[0]["file"], "dvclive/plots/metrics/acc.tsv");
    assert_eq!(acc[0]["y"], "acc");
    assert_eq!(acc[1]["points"][3], serde_json::json!([3.0, 0.75]), "{j}");
    // The workspace alone.
    let w = p.dvx(&["plots", "show", "--json"]).ok().json();
    assert_eq!(w["loss.csv"][0]["rev"], "workspace");

    let r = p
        .dvx(&["plots", "show", "HEAD~1", "HEAD", "-o", "report"])
        .ok();
    assert!(
        r.stdout().contains("2 plots with 4 lines"),
        "{}",
        r.stdout()
    );
    let page = String::from_utf8(p.read("report/index.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 2);
    assert!(
        !page.contains("<script") && !page.contains("src=") && !page.contains("href="),
        "self-contained"
    );
    assert!(p.exists("report/0-loss.csv.svg"));

    // Seen in a browser, offline: two lines per plot, each drawn with width.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/browser.sh");
    let pw = match Command::new(script).arg("install").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("DVX_PLAYWRIGHT_DIR="))
            .map(str::to_string),
        _ if std::env::var("DVX_SKIP_BROWSER_TESTS").as_deref() == Ok("1") => None,
        other => panic!("browser tests need Chromium and playwright-core: {other:?}"),
    };
    let Some(pw) = pw else {
        eprintln!("skipped the browser part (DVX_SKIP_BROWSER_TESTS=1)");
        return;
    };
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artefacts/plots");
    std::fs::create_dir_all(&shots).unwrap();
    let o = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/plots.mjs"
        ))
        .arg(p.p("report/index.html"))
        .arg(shots.join("plots.png"))
        .env("DVX_PLAYWRIGHT_DIR", pw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plots = seen.as_array().unwrap();
    assert_eq!(plots.len(), 2, "{seen}");
    for plot in plots {
        let series = plot["series"].as_array().unwrap();
        assert_eq!(series.len(), 2, "{seen}");
        let revs: Vec<&str> = series.iter().map(|s| s["rev"].as_str().unwrap()).collect();
        assert_eq!(revs, ["HEAD~1", "HEAD"]);
        for s in series {
            assert_eq!(s["drawn"], 1, "one polyline per line: {seen}");
            assert!(s["width"].as_f64().unwrap() > 100.0, "{seen}");
        }
    }
    let png = std::fs::read(shots.join("plots.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5000);
}

#[test]
fn plots_without_declarations_or_with_a_bad_revision() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  a:\n    cmd: echo 1 > a.txt\n    outs: [a.txt]\n",
    );
    let r = p.dvx(&["plots", "show"]).ok();
    assert!(r.stdout().contains("no plots"), "{}", r.stdout());
    pipeline(&p);
    p.dvx(&["run"]).ok();
    let err = p.dvx(&["plots", "diff", "nosuchrev"]).fails();
    assert!(err.contains("unknown revision"), "{err}");
    let code = p
        .cmd_in("", &["plots", "diff", "nosuchrev"])
        .output()
        .unwrap()
        .status
        .code();
    assert_eq!(code, Some(2));
}
