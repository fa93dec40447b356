//! Releases: pushed to moto's per-region buckets, fetched by the lab's sshd "hosts"
//! through presigned URLs, checked by SHA-256.

#![allow(clippy::unwrap_used)]

mod support;

use support::{cerveza, cloud_py, cmd, lab_var, product, Run};

/// The release bucket of product `p` in `region`: its account id in the name (bucket
/// names are global), as `sts:GetCallerIdentity` gives it for the test's key.
fn bucket(p: &str, region: &str) -> String {
    let account = cloud_py(&["account", &format!("AKID-{p}")]);
    format!("cerveza-{p}-{}-{region}", account.trim())
}

fn deploy(p: &str, args: &[&str]) -> Run {
    cmd(p)
        .env(
            "CERVEZA_TEST_ADDRESSES",
            lab_var("CERVEZA_LAB_SSH_ADDRESSES"),
        )
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_release_is_pushed_once_per_region_and_lands_checked_on_every_host() {
    let p = product();
    support::start_new(&p, "app01", "us-east-1a", "UbuntuGeneric32Bit");
    support::start_new(&p, "app02", "eu-west-1a", "UbuntuGeneric32Bit");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.tar");
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    // Results on stdout, one line per region; with -q nothing else.
    let pushed = cerveza(
        &p,
        &[
            "-q",
            "release",
            "push",
            file.to_str().unwrap(),
            "--name",
            "v1.2.0",
        ],
    )
    .ok();
    assert_eq!(pushed.stderr, "", "{pushed:#?}");
    assert_eq!(pushed.stdout.lines().count(), 3, "{pushed:#?}");
    assert!(
        pushed
            .stdout
            .lines()
            .all(|l| l.contains(": v1.2.0/app.tar (50000 bytes, sha256 ")),
        "{pushed:#?}"
    );
    let again = cerveza(
        &p,
        &[
            "release",
            "push",
            file.to_str().unwrap(),
            "--name",
            "v1.2.0",
            "-o",
            "json",
        ],
    )
    .ok()
    .json();
    let regions: Vec<&str> = again
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions.len(), 3, "{again}");
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["size"] == 50_000 && r["error"].is_null()),
        "{again}"
    );
    for region in support::REGIONS.split(',') {
        let head: serde_json::Value = serde_json::from_str(&cloud_py(&[
            "s3-head",
            region,
            &bucket(&p, region),
            "releases/v1.2.0/app.tar",
        ]))
        .unwrap();
        assert_eq!(head["size"], 50_000, "{region}: {head}");
        assert_eq!(head["metadata"]["sha256"].as_str().unwrap().len(), 64);
    }
    let listed = cerveza(&p, &["release", "list", "-o", "json"]).ok().json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        3,
        "one copy per region: {listed}"
    );

    let dest = dir.path().join("deployed");
    let r = deploy(
        &p,
        &[
            "release",
            "deploy",
            "v1.2.0",
            "app*",
            "--dest",
            dest.to_str().unwrap(),
            "--run",
            "wc -c < app.tar",
        ],
    )
    .ok();
    assert_eq!(
        r.stdout.matches(": 50000").count(),
        2,
        "both hosts fetched and ran: {r:#?}"
    );
    assert_eq!(std::fs::read(dest.join("app.tar")).unwrap(), body);
    // Both lab hosts share one filesystem, so both deploys went into one directory at
    // once, as two deploys to one host would: each into a temporary name of its own,
    // none left behind.
    let names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["app.tar"]);

    // A tampered object fails the checksum and nothing replaces the good file.
    cloud_py(&[
        "s3-corrupt",
        "eu-west-1",
        &bucket(&p, "eu-west-1"),
        "releases/v1.2.0/app.tar",
    ]);
    let r = deploy(
        &p,
        &[
            "release",
            "deploy",
            "v1.2.0",
            "app02",
            "--dest",
            dest.to_str().unwrap(),
        ],
    );
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stdout.contains("FAILED") || r.stderr.contains("FAILED"),
        "{r:#?}"
    );
    assert_eq!(
        std::fs::read(dest.join("app.tar")).unwrap(),
        body,
        "the checked file stays"
    );
    assert_eq!(
        std::fs::read_dir(&dest).unwrap().count(),
        1,
        "the failed copy is not left behind"
    );

    let r = deploy(&p, &["release", "deploy", "nope", "app*"]);
    assert_eq!(r.code, 3, "{r:#?}");
    let r = cerveza(
        &p,
        &[
            "release",
            "push",
            file.to_str().unwrap(),
            "--name",
            "bad name;rm",
        ],
    );
    assert_eq!(r.code, 2, "{r:#?}");
}

#[test]
fn a_bucket_another_account_owns_is_refused_and_gets_nothing() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.sh");
    std::fs::write(&file, "echo hi\n").unwrap();
    // Someone else made our bucket's name first, open to anyone, as a squatter would.
    let taken = bucket(&p, "eu-west-1");
    cloud_py(&["squat", "eu-west-1", &taken]);
    let r = cerveza(
        &p,
        &["release", "push", file.to_str().unwrap(), "--name", "v1"],
    );
    assert_eq!(r.code, 5, "the other regions worked: {r:#?}");
    assert!(
        r.stderr.contains(&format!("eu-west-1: release bucket {taken}: S3 refused it to this account (403); it belongs to another AWS account than"))
            && r.stderr.contains("[release] bucket = "),
        "{r:#?}"
    );
    assert_eq!(r.stdout.lines().count(), 2, "{r:#?}");
    assert_eq!(
        cloud_py(&["s3-keys", "eu-west-1", &taken]).trim(),
        "[]",
        "the release went into their bucket"
    );
    // A bucket named in the config instead.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[release]\nbucket = \"{p}-rel-{{region}}\"\n"),
    )
    .unwrap();
    let r: Run = cmd(&p)
        .env("CERVEZA_CONFIG", &config)
        .args(["release", "push", file.to_str().unwrap(), "--name", "v1"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:#?}");
    cloud_py(&[
        "s3-head",
        "eu-west-1",
        &format!("{p}-rel-eu-west-1"),
        "releases/v1/app.sh",
    ]);
}
