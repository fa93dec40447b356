//! One mapping from what went wrong to the exit code, whichever command meets it: the
//! README's table (2 usage or invalid input, 3 not found, ...) over the cases that
//! once disagreed. Every case must leave nothing behind in the cloud.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{bare, cloud, cmd, product, root, Run};

/// A profiles directory with the examples plus `Broken`, whose user-data template names
/// a variable that does not exist.
fn broken_userdata_profiles(dir: &std::path::Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(root().join("examples/profiles/."))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dir.join("broken.yaml"),
        "--- !InstanceProfile\nname: Broken\ndesc: a template with a typo\naws: !InstanceAws\n  ami: { us-east-1: ami-a6f504cf }\n  instance-type: m1.small\n  key-pair: noc\n  security-groups: [default]\nuser-data:\n  - broken.sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.sh"),
        "## template: jinja\n#!/bin/sh\necho {{ hostnme }}\n",
    )
    .unwrap();
}

#[test]
fn every_command_maps_the_same_error_to_the_same_code() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "product = \"x\"\ncolour = \"blue\"\n").unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    broken_userdata_profiles(&profiles);

    let (config_file, profiles_dir) = (config.to_str().unwrap(), profiles.to_str().unwrap());
    // (what, command, expected code, words the message must hold)
    let with_env = |k: &str, v: &str, args: &[&str]| {
        let mut c = cmd(&p);
        c.env(k, v).args(args);
        c
    };
    let plain = |args: &[&str]| {
        let mut c = cmd(&p);
        c.args(args);
        c
    };
    let cases: Vec<(&str, Command, u8, &str)> = vec![
        (
            "unknown profile at start",
            plain(&["start", "x01", "--zone", "us-east-1a", "--profile", "Wbe"]),
            3,
            "unknown instance profile \"Wbe\"",
        ),
        (
            "unknown host in show",
            plain(&["show", "nosuch01"]),
            3,
            "nosuch01",
        ),
        (
            "unknown host in access check",
            plain(&["access", "check", "alice", "nosuch01"]),
            3,
            "give --zone",
        ),
        (
            "no product anywhere",
            {
                let mut c = bare(&p);
                c.args(["list"]);
                c
            },
            2,
            "no product given",
        ),
        (
            "CERVEZA_MAX_ATTEMPTS not a number",
            with_env("CERVEZA_MAX_ATTEMPTS", "bogus", &["list"]),
            2,
            "CERVEZA_MAX_ATTEMPTS=\"bogus\" is not a whole number",
        ),
        (
            "CERVEZA_CONCURRENCY not a number",
            with_env("CERVEZA_CONCURRENCY", "bogus", &["list"]),
            2,
            "bogus",
        ),
        (
            "a bad duration read by clap",
            with_env("CERVEZA_REGION_TIMEOUT", "soon", &["list"]),
            2,
            "a duration looks like",
        ),
        (
            "a bad duration read from the environment",
            with_env("CERVEZA_REGISTRY_TIMEOUT", "soon", &["list"]),
            2,
            "is not a duration",
        ),
        (
            "an unknown DNS backend",
            with_env("CERVEZA_DNS_BACKEND", "bind", &["list"]),
            2,
            "use ldap, route53 or none",
        ),
        (
            "an unknown key in the config file",
            plain(&["--config", config_file, "list"]),
            2,
            "unknown field `colour`",
        ),
        (
            "a config file that is not there",
            plain(&["--config", "/nonexistent/cerveza.toml", "list"]),
            2,
            "/nonexistent/cerveza.toml",
        ),
        (
            "an unknown region",
            plain(&["--regions", "us-east-1,mars-east-1", "list"]),
            2,
            "no AWS region starts with \"mars\"",
        ),
        (
            "a user-data error in userdata",
            with_env(
                "CERVEZA_PROFILES",
                profiles_dir,
                &[
                    "userdata",
                    "x01",
                    "--profile",
                    "Broken",
                    "--zone",
                    "us-east-1a",
                ],
            ),
            2,
            "hostnme",
        ),
        (
            "the same user-data error at start",
            with_env(
                "CERVEZA_PROFILES",
                profiles_dir,
                &[
                    "start",
                    "x01",
                    "--profile",
                    "Broken",
                    "--zone",
                    "us-east-1a",
                ],
            ),
            2,
            "hostnme",
        ),
        (
            "export --check without --out",
            plain(&["export", "nagios", "--check"]),
            2,
            "give --out PATH",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, mut command, code, needle) in cases {
        let r: Run = command.output().unwrap().into();
        if r.code != i32::from(code) || !r.stderr.contains(needle) || r.stderr.contains("panicked")
        {
            wrong.push(format!(
                "{what}: exit {} (want {code}), stderr:\n{}",
                r.code, r.stderr
            ));
        }
        if what.starts_with("export") {
            assert!(
                !r.stderr.contains("--product <"),
                "the usage must not make global flags look required: {}",
                r.stderr
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let state = cloud(&p);
    assert!(
        state["instances"].as_array().unwrap().is_empty()
            && state["registry"].as_array().unwrap().is_empty(),
        "an error left something behind: {state}"
    );
}
