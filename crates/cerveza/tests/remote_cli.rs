//! `cerveza remote` and `cerveza ssh` against the lab's real sshd on 127.0.0.2-4.

#![allow(clippy::unwrap_used)]

mod support;

use support::{cerveza, cloud_py, cmd, lab_var, product, Run};

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
