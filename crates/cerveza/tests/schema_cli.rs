//! The JSON Schemas shipped for editors: what `cerveza fleet schema` prints, equal to the
//! files in schemas/, and they accept the example files and refuse broken ones (checked
//! by Python's jsonschema, not by cerveza's own parser).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{bare, lab_var, root};

/// Validates the YAML documents of `files` against `schema` with Python's jsonschema;
/// returns (exit code, output). YAML tags (`!Fleet`, `!InstanceAws`) are read as plain
/// maps, as an editor's YAML language server does with `yaml.customTags`.
fn validate(schema: &str, files: &[std::path::PathBuf]) -> (i32, String) {
    let script = r#"
import json, sys, yaml, jsonschema
class Loader(yaml.SafeLoader): pass
def tagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode): return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode): return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)
Loader.add_multi_constructor("!", tagged)
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for path in sys.argv[2:]:
    for i, doc in enumerate(yaml.load_all(open(path), Loader=Loader)):
        if doc is None: continue
        for e in validator.iter_errors(doc):
            bad += 1
            print(f"{path} document {i}: {list(e.absolute_path)}: {e.message}")
sys.exit(1 if bad else 0)
"#;
    let out = Command::new(lab_var("CERVEZA_LAB_PYTHON"))
        .arg("-c")
        .arg(script)
        .arg(schema)
        .args(files)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_shipped_schemas_are_what_cerveza_prints_and_accept_the_examples() {
    let root = root();
    for kind in ["fleet", "profiles"] {
        let out = bare("schema")
            .args(["fleet", "schema", kind])
            .output()
            .unwrap();
        assert!(out.status.success());
        let shipped =
            std::fs::read_to_string(root.join(format!("schemas/{kind}.schema.json"))).unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            shipped,
            "schemas/{kind}.schema.json is stale: `cargo run -q -- fleet schema {kind} > schemas/{kind}.schema.json`"
        );
    }
    let fleet = root.join("schemas/fleet.schema.json");
    let profiles = root.join("schemas/profiles.schema.json");
    let (code, out) = validate(fleet.to_str().unwrap(), &[root.join("examples/fleet.yaml")]);
    assert_eq!(code, 0, "{out}");
    let mut examples: Vec<_> = std::fs::read_dir(root.join("examples/profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 4);
    let (code, out) = validate(profiles.to_str().unwrap(), &examples);
    assert_eq!(code, 0, "{out}");

    // And they refuse what cerveza refuses: an unknown key, a bad state, a wrong type.
    let dir = tempfile::tempdir().unwrap();
    let bad_fleet = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_fleet,
        "--- !Fleet\nproduct: noc\nhosts:\n  - names: web[01-02]\n    profile: Web\n    zone: us-east-1a\n    state: paused\n    size: big\n",
    )
    .unwrap();
    let (code, out) = validate(fleet.to_str().unwrap(), &[bad_fleet]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("'paused'"), "{out}");
    assert!(out.contains("'size' was unexpected"), "{out}");
    let bad_profile = dir.path().join("p.yaml");
    std::fs::write(
        &bad_profile,
        "--- !VolumeProfile\nname: V\nvolumes: { count: two, size-gb: 10 }\nmount-point: /data\n",
    )
    .unwrap();
    let (code, out) = validate(profiles.to_str().unwrap(), &[bad_profile]);
    assert_eq!(code, 1, "{out}");
}
