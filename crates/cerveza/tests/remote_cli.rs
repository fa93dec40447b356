//! `cerveza remote` and `cerveza ssh` against the lab's real sshd on 127.0.0.2-4.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{cerveza, cloud_py, cmd, lab_var, product, start_new, Proxy, Run};

fn remote(p: &str, addresses: &str, args: &[&str]) -> Run {
    cmd(p)
        .env("CERVEZA_TEST_ADDRESSES", addresses)
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn fleet(p: &str) {
    cerveza(
        p,
        &[
            "start",
            "dev-mysql01",
            "dev-mysql02",
            "web01",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    )
    .ok();
}

#[test]
fn commands_run_everywhere_with_prefixed_or_gathered_output() {
    let p = product();
    fleet(&p);
    let ssh = lab_var("CERVEZA_LAB_SSH_ADDRESSES");
    let r = remote(&p, &ssh, &["remote", "mysql", "--", "echo", "hi"]).ok();
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["dev-mysql01: hi", "dev-mysql02: hi"], "{r:#?}");
    assert!(
        r.stderr
            .contains("\"mysql\" names no host: selecting the hosts whose name contains it"),
        "{r:#?}"
    );
    assert!(
        r.stderr
            .contains("2 host(s): 2 ok, 0 failed, 0 unreachable, 0 timed out"),
        "{r:#?}"
    );

    let r = remote(&p, &ssh, &["remote", "@dev-mysql", "--", "echo", "group"]).ok();
    assert_eq!(
        r.stdout.lines().count(),
        2,
        "the host group dev-mysql*: {r:#?}"
    );
    assert!(!r.stdout.contains("web01"), "{r:#?}");

    let r = remote(&p, &ssh, &["remote", "*", "-b", "--", "echo", "same"]).ok();
    assert_eq!(
        r.stdout, "----------------------\ndev-mysql[01-02],web01\n----------------------\nsame\n",
        "{r:#?}"
    );

    let json = remote(
        &p,
        &ssh,
        &[
            "remote",
            "web01",
            "-o",
            "json",
            "--",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(json.code, 3, "the highest remote exit code: {json:#?}");
    let v = json.json();
    assert_eq!(v[0]["host"], "web01");
    assert_eq!(
        (v[0]["status"].as_str(), v[0]["code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(
        (v[0]["stdout"].as_str(), v[0]["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );

    let r = remote(&p, &ssh, &["ssh", "web01", "--", "echo", "one", "host"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "one host\n"), "{r:#?}");
}

#[test]
fn unreachable_and_slow_hosts_are_reported_with_their_exit_codes() {
    let p = product();
    fleet(&p);
    // Nothing listens on 127.0.0.9: unreachable, 255.
    let r = remote(&p, "127.0.0.9", &["remote", "web01", "--", "true"]);
    assert_eq!(r.code, 255, "{r:#?}");
    assert!(
        r.stderr
            .contains("1 host(s): 0 ok, 0 failed, 1 unreachable, 0 timed out"),
        "{r:#?}"
    );
    let ssh = lab_var("CERVEZA_LAB_SSH_ADDRESSES");
    let started = std::time::Instant::now();
    let r = remote(
        &p,
        &ssh,
        &["remote", "web01", "--timeout", "1s", "--", "sleep", "30"],
    );
    assert_eq!(r.code, 124, "{r:#?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The README's limit is the whole run: a command that outlives it never finishes,
    // however quickly ssh connected (the connect timeout is not added on top).
    let r = remote(
        &p,
        &ssh,
        &[
            "remote",
            "web01",
            "--timeout",
            "3s",
            "--",
            "sleep 7; echo finished",
        ],
    );
    assert_eq!(r.code, 124, "{r:#?}");
    assert!(!r.stdout.contains("finished"), "{r:#?}");
    let r = remote(&p, &ssh, &["remote", "nosuch*", "--", "true"]);
    assert_eq!(r.code, 3, "{r:#?}");
}

#[test]
fn names_from_the_cloud_cannot_become_ssh_options() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let evil = format!("cerveza:host=-oProxyCommand=touch {}", pwned.display());
    cloud_py(&[
        "tagged",
        "us-east-1",
        "us-east-1a",
        &format!("cerveza:product={p}"),
        &evil,
        "Name=-oProxyCommand=x",
    ]);
    let ssh = lab_var("CERVEZA_LAB_SSH_ADDRESSES");
    let r = remote(&p, &ssh, &["remote", "*", "--", "true"]);
    assert_eq!(r.code, 0, "the host is reached by address: {r:#?}");
    assert!(!pwned.exists(), "a tag ran a local command");
}

#[test]
fn output_that_is_not_utf8_is_kept_to_the_end_and_the_host_counts_as_reached() {
    let p = product();
    start_new(&p, "app01", "us-east-1b", "Web");
    let ssh = lab_var("CERVEZA_LAB_SSH_ADDRESSES");
    let r = remote(
        &p,
        &ssh,
        &["remote", "app01", "--", "printf 'caf\\351\\n'; seq 1 30000"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 30_001, "every line arrives");
    assert_eq!(lines[0], "app01: caf\u{fffd}", "shown lossily");
    assert_eq!(lines[30_000], "app01: 30000");
    assert!(r.stderr.contains("1 host(s): 1 ok"), "{}", r.stderr);

    let r = remote(
        &p,
        &ssh,
        &[
            "remote",
            "app01",
            "-o",
            "json",
            "--",
            "printf 'caf\\351\\n'; seq 1 3",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["stdout"], "caf\u{fffd}\n1\n2\n3\n");
}

#[test]
fn gathered_output_keeps_a_literal_backslash_n() {
    let p = product();
    start_new(&p, "app01", "us-east-1b", "Web");
    let ssh = lab_var("CERVEZA_LAB_SSH_ADDRESSES");
    let r = remote(
        &p,
        &ssh,
        &[
            "remote",
            "app01",
            "-b",
            "--",
            "printf",
            "'%s\\n'",
            "'C:\\new'",
        ],
    )
    .ok();
    assert_eq!(r.stdout, "-----\napp01\n-----\nC:\\new\n", "{r:#?}");
}

#[test]
fn a_region_that_cannot_be_listed_makes_remote_partial() {
    let p = product();
    let proxy = Proxy::start(&json!({"rules": [{"fault": "blackhole", "region": "eu-west-1"}]}));
    proxy.start_direct(&p, &[("near01", "us-east-1a"), ("far01", "eu-west-1a")]);
    let ssh = lab_var("CERVEZA_LAB_SSH_ADDRESSES");
    let started = std::time::Instant::now();
    let r: Run = proxy
        .cmd(&p)
        .env("CERVEZA_TEST_ADDRESSES", &ssh)
        .env("CERVEZA_REGION_TIMEOUT", "2s")
        .args(["remote", "*01", "--", "echo", "ran"])
        .output()
        .unwrap()
        .into();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(proxy.injected("blackhole") > 0, "{}", proxy.stats());
    assert_eq!(r.stdout, "near01: ran\n", "the others still run: {r:#?}");
    assert_eq!(r.code, 5, "a partial selection: {r:#?}");
    assert!(
        r.stderr.contains("region(s) eu-west-1 could not be listed"),
        "{}",
        r.stderr
    );
}
