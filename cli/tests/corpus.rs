//! The decision corpus (`tests/corpus/`, docs/decision-corpus.md) through the
//! built `fhir-smart-authz decide`: every file of every suite against the
//! suite's `config.json`, each row compared with its own `expect` (the CLI's
//! `--expect` rule); the run must exit 0. The core decides every row through
//! the code `decide` runs, so this is also the core's replay of the corpus;
//! `tests/e2e/test_corpus.py` replays the same rows in Envoy on both artifacts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(not(target_arch = "wasm32"))]

mod binary;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus");

/// The members every row's `expect` names: a row that expects less could
/// not fail on a changed verdict.
const REQUIRED_EXPECT: [&str; 3] = ["decision", "status", "reason"];

/// Each suite (a directory with `config.json`) and its `.jsonl` files, sorted.
fn suites() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(CORPUS).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.join("config.json").is_file() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        out.push((dir, files));
    }
    out.sort();
    out
}

fn rows(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()))
        })
        .collect()
}

/// `decide --config` over `file`: (exit code, stdout lines, stderr).
fn decide(config: &Path, file: &Path) -> (i32, usize, String) {
    let config = config.to_str().unwrap();
    let (code, out, err) = binary::run_bytes(
        &["decide", "--config", config],
        &std::fs::read(file).unwrap(),
    );
    (code, out.lines().count(), err)
}

#[test]
fn every_row_is_decided_as_it_expects() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (dir, files) in suites() {
        let config = dir.join("config.json");
        for file in files {
            let n = rows(&file).len();
            total += n;
            let (code, lines, err) = decide(&config, &file);
            if code != 0 || lines != n {
                failures.push(format!(
                    "{} (exit {code}, {lines} of {n} lines decided):\n{err}",
                    file.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The converted tables (docs/decision-corpus.md): a corpus that lost its
    // files would pass with nothing to compare.
    assert!(total >= 1000, "only {total} corpus rows");
}

#[test]
fn every_row_is_named_and_expects_a_verdict() {
    for (_, files) in suites() {
        for file in files {
            let mut ids = BTreeSet::new();
            for row in rows(&file) {
                let id = row["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: a row without an id: {row}", file.display()));
                assert!(
                    ids.insert(id.to_string()),
                    "{}: id {id} twice",
                    file.display()
                );
                let expect = row["expect"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{}: {id} has no expect object", file.display()));
                for member in REQUIRED_EXPECT {
                    assert!(
                        expect.contains_key(member),
                        "{}: {id}: expect has no {member}",
                        file.display()
                    );
                }
            }
        }
    }
}

/// A changed decision fails the run: the replay can fail.
#[test]
fn a_changed_expectation_fails_the_replay() {
    let (dir, files) = suites()
        .into_iter()
        .find(|(d, _)| d.ends_with("default"))
        .unwrap();
    let file = files
        .iter()
        .find(|f| f.ends_with("patient_reads.jsonl"))
        .unwrap();
    let mut first = rows(file)[0].clone();
    first["expect"]["reason"] = Value::from("insufficient_scope");
    let changed = std::env::temp_dir().join(format!("corpus-changed-{}.jsonl", std::process::id()));
    std::fs::write(&changed, format!("{first}\n")).unwrap();
    let (code, _, err) = decide(&dir.join("config.json"), &changed);
    std::fs::remove_file(&changed).ok();
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("patient-scope-reads-0: GET /fhir/Patient/123")
            && err.contains("reason: expected \"insufficient_scope\", got \"allowed\""),
        "{err}"
    );
}
