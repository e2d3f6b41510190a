//! The shared golden fixtures (`tests/fixtures/snapshots/`), also read by pytest
//! (`tests/contract/test_snapshot_fixtures.py`): valid snapshots normalise to the same JSON,
//! invalid ones fail with the same path and code (and message, where the fixture gives one).
//! `MESHCORE_UPDATE_GOLDENS=1 cargo test -p meshcore-snapshot` rewrites the normal forms.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/snapshots")
}

fn inputs(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures().join(dir))
        .expect("fixture directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".json") && name.matches('.').count() == 1
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
}

fn sibling(input: &Path, suffix: &str) -> Value {
    let stem = input.file_stem().and_then(|s| s.to_str()).expect("stem");
    let path = input.with_file_name(format!("{stem}.{suffix}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("expectation is JSON")
}

#[test]
fn valid_fixtures_normalise_to_their_golden_form() {
    for input in inputs("valid") {
        let bytes = fs::read(&input).expect("read");
        let snapshot = meshcore_snapshot::parse(&bytes)
            .unwrap_or_else(|e| panic!("{} rejected: {e:?}", input.display()));
        let normalised = serde_json::to_value(&snapshot).expect("serialise");
        if std::env::var_os("MESHCORE_UPDATE_GOLDENS").is_some() {
            let text = serde_json::to_string_pretty(&normalised).expect("pretty");
            let stem = input.file_stem().and_then(|s| s.to_str()).expect("stem");
            fs::write(
                input.with_file_name(format!("{stem}.normalized.json")),
                text + "\n",
            )
            .expect("write golden");
        }
        assert_eq!(
            normalised,
            sibling(&input, "normalized"),
            "{}",
            input.display()
        );
        // Normalising is idempotent: the golden form parses back to the same snapshot.
        let again = meshcore_snapshot::parse(normalised.to_string().as_bytes()).expect("reparse");
        assert_eq!(again, snapshot, "{}", input.display());
    }
}

#[test]
fn invalid_fixtures_are_rejected_with_the_expected_path_and_code() {
    for input in inputs("invalid") {
        let bytes = fs::read(&input).expect("read");
        let errors = match meshcore_snapshot::parse(&bytes) {
            Ok(_) => panic!("{} was accepted", input.display()),
            Err(errors) => errors,
        };
        let first = &errors[0];
        let expected = sibling(&input, "error");
        let name = input.display();
        assert_eq!(
            first.path,
            expected["path"].as_str().expect("path"),
            "{name}: {first}"
        );
        assert_eq!(
            first.code.as_str(),
            expected["code"].as_str().expect("code"),
            "{name}: {first}"
        );
        if let Some(message) = expected.get("message") {
            assert_eq!(first.message, message.as_str().expect("message"), "{name}");
        }
    }
}
