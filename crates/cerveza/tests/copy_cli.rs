//! `cerveza copy` to and from the lab's sshd hosts (which share one filesystem).

#![allow(clippy::unwrap_used)]

mod support;

use support::{cerveza, cmd, lab_var, product, Run};

fn copy(p: &str, args: &[&str]) -> Run {
    cmd(p)
        .env(
            "CERVEZA_TEST_ADDRESSES",
            lab_var("CERVEZA_LAB_SSH_ADDRESSES"),
        )
        .arg("copy")
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn files_go_to_every_host_and_come_back_per_host() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "cp01",
            "cp02",
            "cp03",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    )
    .ok();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("app.conf");
    std::fs::write(&src, format!("made for {p}\n")).unwrap();
    let remote_dir = tempfile::tempdir().unwrap();
    let dest = remote_dir.path().join("app.conf");

    let r = copy(&p, &["cp*", src.to_str().unwrap(), dest.to_str().unwrap()]).ok();
    assert!(
        r.stderr
            .contains("3 host(s): 3 ok, 0 failed, 0 unreachable, 0 timed out"),
        "{r:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        format!("made for {p}\n")
    );

    let logs = local.path().join("logs");
    let r = copy(
        &p,
        &[
            "--gather",
            "cp0[1-2]",
            dest.to_str().unwrap(),
            logs.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(r.stderr.contains("2 host(s): 2 ok"), "{r:#?}");
    for h in ["cp01", "cp02"] {
        assert_eq!(
            std::fs::read_to_string(logs.join(h).join("app.conf")).unwrap(),
            format!("made for {p}\n")
        );
    }
    assert!(!logs.join("cp03").exists());

    // Directories need -r.
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/f"), "x").unwrap();
    let r = copy(
        &p,
        &[
            "cp01",
            tree.to_str().unwrap(),
            remote_dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("is a directory: add -r"), "{r:#?}");
    copy(
        &p,
        &[
            "-r",
            "cp01",
            tree.to_str().unwrap(),
            remote_dir.path().to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(remote_dir.path().join("tree/sub/f")).unwrap(),
        "x"
    );

    // What is not there: locally, refused before any connection; remotely, each host
    // fails with scp's word and the exit code says so.
    let r = copy(&p, &["cp01", "/nonexistent/x", "/tmp/"]);
    assert_eq!(r.code, 3, "{r:#?}");
    let r = copy(
        &p,
        &["--gather", "cp01", "/nonexistent/x", logs.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stderr.contains("cp01: ") && r.stderr.contains("1 failed"),
        "{r:#?}"
    );
    let r = copy(
        &p,
        &[
            "-o",
            "json",
            "cp01",
            src.to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(r.json()[0]["status"], "ok", "{r:#?}");
}
