//! Hostile input: every file of tests/hostile/profiles (alias bombs, deep nesting,
//! foreign YAML tags, control characters, paths out of the profiles directory, ...),
//! a profile file too large to read, and hostile names on the command line. Each gets
//! a clear error naming what is wrong and where, no panic, and nothing is created.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::{cloud, cmd, product, Run};

/// Runs `start hostile01 --profile Target` with `dir` as the profiles directory.
fn start_with(p: &str, dir: &Path) -> Run {
    cmd(p)
        .env("CERVEZA_PROFILES", dir)
        .args([
            "start",
            "hostile01",
            "--zone",
            "us-east-1a",
            "--profile",
            "Target",
        ])
        .output()
        .unwrap()
        .into()
}

#[track_caller]
fn assert_refused(what: &str, r: &Run, needle: &str) {
    // A profile that is not there is "not found" (3); anything broken is invalid input.
    let code = if needle.starts_with("unknown instance profile") {
        3
    } else {
        2
    };
    assert_eq!(r.code, code, "{what}: {r:#?}");
    assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "{what}: expected {needle:?} in\n{}",
        r.stderr
    );
}

#[track_caller]
fn assert_nothing_created(p: &str, what: &str) {
    let state = cloud(p);
    assert!(
        state["instances"].as_array().unwrap().is_empty()
            && state["volumes"].as_array().unwrap().is_empty()
            && state["registry"].as_array().unwrap().is_empty(),
        "{what} created something: {state}"
    );
}

#[test]
fn every_hostile_profile_is_refused_clearly_and_creates_nothing() {
    let corpus = support::root().join("crates/cerveza/tests/hostile/profiles");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus is there: {files:?}");
    let p = product();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read(&file).unwrap();
        let first = String::from_utf8_lossy(text.split(|b| *b == b'\n').next().unwrap());
        let needle = first
            .split_once("expect: ")
            .unwrap_or_else(|| panic!("{name}: first line has no `expect:`"))
            .1
            .trim()
            .to_owned();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(&name), &text).unwrap();
        let started = std::time::Instant::now();
        let r = start_with(&p, dir.path());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_refused(&name, &r, &needle);
        if !needle.starts_with("unknown instance profile") {
            // The error names the file (and, where there is one, the line).
            assert!(r.stderr.contains(&name), "{name}: {}", r.stderr);
        }
    }
    assert_nothing_created(&p, "the corpus");
}

#[test]
fn a_profile_file_too_large_to_read_is_refused() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("--- !InstanceProfile\nname: Target\ndesc: |\n");
    while text.len() <= 2 * 1024 * 1024 {
        text.push_str("  padding padding padding padding padding padding padding\n");
    }
    std::fs::write(dir.path().join("huge.yaml"), text).unwrap();
    let r = start_with(&p, dir.path());
    assert_refused("huge.yaml", &r, "larger than the 1048576 bytes");
    assert_nothing_created(&p, "huge.yaml");
}

/// Files just under the 1 MiB limit shaped to make a naive loader quadratic: tens of
/// thousands of tags (each located in the file), thousands of documents (each with the
/// file's lines), and a 16,000-profile `extends:` chain. Each used to take minutes.
#[test]
fn large_hostile_profiles_are_refused_in_seconds() {
    let p = product();
    let head = "--- !InstanceProfile\nname: Target\naws: !InstanceAws\n  ami: {us-east-1: ami-a6f504cf}\n  instance-type: t3.micro\n";
    let fill = |start: &str, mut item: Box<dyn FnMut(usize) -> String>| {
        let mut text = start.to_owned();
        let mut i = 0;
        while text.len() < 1_000_000 {
            text.push_str(&item(i));
            i += 1;
        }
        text
    };
    let cases = [
        (
            "many-tags.yaml",
            fill(
                &format!("{head}tags:\n"),
                Box::new(|i| format!("  k{i}: v{i}\n")),
            ),
            "EC2 allows 50 per resource",
        ),
        (
            "many-documents.yaml",
            fill(
                head,
                Box::new(|i| {
                    format!("--- !InstanceProfile\nname: P{i}\naws: !InstanceAws\n  ami: {{us-east-1: ami-{i}}}\n  instance-type: t3.micro\n")
                }),
            ),
            "is not an AMI id",
        ),
        (
            "deep-extends.yaml",
            fill(
                &head.replace("name: Target", "name: P0"),
                Box::new(|i| {
                    format!(
                        "--- !InstanceProfile\nname: {}\nextends: P{i}\n",
                        if i == 500 {
                            "Target".to_owned()
                        } else {
                            format!("P{}", i + 1)
                        }
                    )
                }),
            ),
            "profiles deep",
        ),
    ];
    for (name, text, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
        let started = std::time::Instant::now();
        let r = start_with(&p, dir.path());
        // Generous: it takes about a second; a quadratic loader took minutes.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_refused(name, &r, needle);
        assert!(
            r.stderr.lines().count() < 60,
            "{name}: errors are capped: {}",
            r.stderr.lines().count()
        );
    }
    assert_nothing_created(&p, "large profiles");
}

#[test]
fn hostile_names_on_the_command_line_are_refused() {
    let p = product();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "start",
                "web\u{1b}[31m01",
                "--zone",
                "us-east-1a",
                "--profile",
                "Web",
            ],
            "character '\\u{1b}'",
        ),
        (
            &[
                "start",
                "web01\nrm",
                "--zone",
                "us-east-1a",
                "--profile",
                "Web",
            ],
            "character '\\n'",
        ),
        // A Cyrillic 'е' that looks like a Latin 'e'.
        (
            &[
                "start",
                "w\u{435}b01",
                "--zone",
                "us-east-1a",
                "--profile",
                "Web",
            ],
            "character 'е'",
        ),
        (
            &[
                "start",
                "web01",
                "--zone",
                "us-east-1a\n",
                "--profile",
                "Web",
            ],
            "zone",
        ),
        (
            &[
                "start",
                "web01",
                "--zone",
                "us-east-1a",
                "--profile",
                "Web\u{0}",
            ],
            "profile",
        ),
        (&["remote", "web01;id", "--", "true"], "not allowed"),
        (&["access", "grant", "alice\u{0}", "*"], "alice"),
    ];
    for (args, needle) in cases {
        let r: Run = match cmd(&p).args(*args).output() {
            Ok(o) => o.into(),
            // argv cannot carry NUL bytes: the OS refuses before cerveza runs.
            Err(e) if args.iter().any(|a| a.contains('\u{0}')) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
                continue;
            }
            Err(e) => panic!("{args:?}: {e}"),
        };
        assert!([2, 3].contains(&r.code), "{args:?}: {r:#?}");
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(needle),
            "{args:?}: expected {needle:?} in\n{}",
            r.stderr
        );
    }
    assert_nothing_created(&p, "hostile names");
}
