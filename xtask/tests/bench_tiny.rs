//! The benchmark's own plumbing on a tiny run: it measures, writes bench.json and bench.md,
//! and they read back (the Docker-heavy figures are run by `cargo xtask bench` itself).

mod common;

use common::*;

#[test]
fn a_tiny_bench_run_writes_a_table_and_json_that_read_back() {
    let out = TempDir::new("bench-out").unwrap();
    let run = ok(xtask()
        .args(["bench", "--quick", "--only", "gen-compose", "--out"])
        .arg(out.path()));
    let json = std::fs::read_to_string(out.path().join("bench.json")).unwrap();
    let figures = xtask::bench::parse_json(&json).unwrap();
    assert_eq!(figures.len(), 1);
    assert_eq!(figures[0].id, xtask::bench::FigureId::GenCompose);
    assert_eq!(figures[0].samples.len(), 5);
    assert!(
        figures[0].samples.iter().all(|s| *s > 0.0),
        "{:?}",
        figures[0].samples
    );
    let md = std::fs::read_to_string(out.path().join("bench.md")).unwrap();
    let (engine_line, table) = md.split_once("\n\n").unwrap();
    assert_eq!(table, xtask::bench::markdown(&figures));
    let engine: xtask::testbed::Engine =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("engine.json")).unwrap())
            .unwrap();
    assert_eq!(engine_line, format!("Measured on {engine}."));
    assert!(
        run.contains("| gen-compose with the built binary, ms |"),
        "{run}"
    );

    let bad = output(xtask().args(["bench", "--only", "gen-compos"]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such figure"));
}
