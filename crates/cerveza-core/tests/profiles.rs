//! Profile parsing: the shipped examples, the paper's form, and every error with its place.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cerveza_core::profile::{ProfileError, ProfileSet};
use cerveza_core::Region;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/profiles")
}

/// Loads `files` written into a temp dir (plus an empty user-data file `ud.txt`).
fn load(files: &[(&str, &str)]) -> Result<ProfileSet, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ud.txt"), "#cloud-config\n").unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    ProfileSet::load_dir(dir.path()).map_err(|errs| {
        errs.iter()
            .map(|e| {
                e.to_string()
                    .replace(&format!("{}/", dir.path().display()), "")
            })
            .collect()
    })
}

fn one_error(files: &[(&str, &str)]) -> String {
    let errs = load(files).expect_err("should fail");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs[0].clone()
}

#[test]
fn every_example_profile_parses() {
    let set = ProfileSet::load_dir(&examples()).unwrap_or_else(|e| panic!("{e:#?}"));
    let names: Vec<&str> = set.instances().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["Mysql", "UbuntuBase", "UbuntuGeneric32Bit", "Vpn", "Web"]
    );
    let paper = set.instance("UbuntuGeneric32Bit").unwrap();
    assert_eq!(paper.instance_type, "m1.small");
    assert_eq!(
        paper
            .ami_for(&Region::parse("ap-southeast-1").unwrap())
            .unwrap(),
        "ami-7c423c2e"
    );
    assert!(paper.user_data[0]
        .path
        .ends_with("userdata/cloud-config-puppet.txt"));
    let web = set.instance("Web").unwrap();
    assert_eq!(web.instance_type, "c5.large", "child overrides the parent");
    assert_eq!(web.security_groups, ["default"], "inherited");
    assert_eq!(web.tags["team"], "web");
    assert_eq!(web.user_data.len(), 2);
    let mysql = set.instance("Mysql").unwrap();
    assert_eq!(mysql.volume_profiles, ["MysqlRaid10"]);
    let raid = set.volume("MysqlRaid10").unwrap();
    assert_eq!(
        raid.devices,
        ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi"]
    );
    let base = set.instance("UbuntuBase").unwrap();
    assert!(matches!(
        base.ami_for(&Region::parse("us-east-1").unwrap()),
        Err(ProfileError::Abstract { .. })
    ));
}

const GOOD: &str = "--- !InstanceProfile
name: Dev
desc: dev box
aws: !InstanceAws
  ami: { us-east-1: ami-a6f504cf }
  instance-type: t3.micro
user-data: [ud.txt]
";

#[test]
fn missing_ami_names_the_file_and_what_exists() {
    let set = load(&[("a.yaml", GOOD)]).unwrap();
    let e = set
        .instance("Dev")
        .unwrap()
        .ami_for(&Region::parse("eu-west-1").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("a.yaml:5:3: profile \"Dev\" has no AMI for region eu-west-1 (it has: us-east-1); add `eu-west-1: ami-…` under `ami:`"), "{e}");
}

#[test]
fn unknown_keys_are_errors_with_line_and_column() {
    let text = GOOD.replace(
        "  instance-type: t3.micro",
        "  instance-type: t3.micro\n  instnce-typo: x",
    );
    let e = one_error(&[("a.yaml", &text)]);
    assert!(
        e.starts_with("a.yaml:7:3: aws: unknown field `instnce-typo`"),
        "{e}"
    );
}

#[test]
fn the_aws_tag_is_required() {
    let e = one_error(&[("a.yaml", &GOOD.replace("aws: !InstanceAws", "aws:"))]);
    assert!(
        e.contains("a.yaml:") && e.contains("aws: !InstanceAws"),
        "{e}"
    );
}

#[test]
fn broken_yaml_is_located() {
    let e = one_error(&[("a.yaml", "--- !InstanceProfile\nname: [unclosed\n")]);
    assert!(e.starts_with("a.yaml:"), "{e}");
}

#[test]
fn dangling_references_are_located() {
    let text = format!(
        "{GOOD}volume-profiles: [Nope]\n\n--- !InstanceProfile\nname: Child\nextends: Dve\n"
    );
    let errs = load(&[("a.yaml", &text)]).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("a.yaml:8:19: volume profile \"Nope\" is not defined")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(
            "a.yaml:12:10: `extends: Dve` names no instance profile; did you mean Dev?"
        )),
        "{errs:#?}"
    );
}

#[test]
fn user_data_entries_may_name_their_type() {
    let set = load(&[(
        "a.yaml",
        &GOOD.replace(
            "[ud.txt]",
            "[ud.txt, {file: ud.txt, type: text/x-shellscript}]",
        ),
    )])
    .unwrap();
    let p = set.instance("Dev").unwrap();
    assert_eq!(p.user_data[0].content_type, None);
    assert_eq!(
        p.user_data[1].content_type.as_deref(),
        Some("text/x-shellscript")
    );
    let e = one_error(&[(
        "a.yaml",
        &GOOD.replace("[ud.txt]", "[{file: ud.txt, type: text/nope}]"),
    )]);
    assert!(
        e.contains("user-data type \"text/nope\" is not one cloud-init knows"),
        "{e}"
    );
}

#[test]
fn an_empty_user_data_list_is_refused() {
    let e = one_error(&[("a.yaml", &GOOD.replace("[ud.txt]", "[]"))]);
    assert!(
        e.starts_with("a.yaml:7:1: `user-data: []` names no file"),
        "{e}"
    );
}

#[test]
fn missing_user_data_file_is_located() {
    let e = one_error(&[("a.yaml", &GOOD.replace("[ud.txt]", "[ud.txt, nothere.sh]"))]);
    assert!(
        e.starts_with("a.yaml:7:21: user-data file \"nothere.sh\" not found"),
        "{e}"
    );
}

#[test]
fn cycles_duplicates_and_reserved_tags_are_refused() {
    let cyc =
        "--- !InstanceProfile\nname: A\nextends: B\n--- !InstanceProfile\nname: B\nextends: A\n";
    let errs = load(&[("c.yaml", cyc)]).unwrap_err();
    assert!(errs.iter().all(|e| e.contains("cycle")), "{errs:#?}");
    let dup = load(&[("a.yaml", GOOD), ("b.yaml", GOOD)]).unwrap_err();
    assert!(
        dup[0].starts_with("b.yaml:2:7: profile \"Dev\" is defined twice (first at"),
        "{dup:#?}"
    );
    let e = one_error(&[(
        "a.yaml",
        &format!("{GOOD}tags: {{ \"cerveza:host\": x }}\n"),
    )]);
    assert!(e.contains("reserved"), "{e}");
}

#[test]
fn bad_values_are_refused() {
    let e = one_error(&[("a.yaml", &GOOD.replace("ami-a6f504cf", "ubuntu"))]);
    assert!(e.contains("\"ubuntu\" is not an AMI id"), "{e}");
    let e = one_error(&[("a.yaml", &GOOD.replace("us-east-1:", "useast:"))]);
    assert!(e.contains("`useast` under `ami:` is not a region"), "{e}");
    let e = one_error(&[("a.yaml", &GOOD.replace("  instance-type: t3.micro\n", ""))]);
    assert!(e.contains("no `instance-type:`"), "{e}");
}

#[test]
fn unknown_profile_suggests_close_names() {
    let set = load(&[("a.yaml", GOOD)]).unwrap();
    let e = set.instance("dev").unwrap_err().to_string();
    assert_eq!(e, "unknown instance profile \"dev\"; did you mean \"Dev\"?");
    let e = set.instance("Zzzzzz").unwrap_err().to_string();
    assert!(e.contains("cerveza profiles list"), "{e}");
}

#[test]
fn volume_profiles_are_checked() {
    let vp = "--- !VolumeProfile\nname: V\nvolumes: { count: 3, size-gb: 10 }\nraid: 10\nmount-point: data\n";
    let errs = load(&[("v.yaml", vp)]).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("do not fit raid")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("absolute path")),
        "{errs:#?}"
    );
}

#[test]
fn anchor_bombs_and_huge_files_are_refused() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("a{}", i - 1)
        };
        bomb.push_str(&format!("a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let text = format!(
        "--- !InstanceProfile\nname: Bomb\ntags:\n  {}",
        bomb.replace('\n', "\n  ")
    );
    assert!(load(&[("bomb.yaml", &text)]).is_err());
    let huge = "#".repeat(2 * 1024 * 1024);
    let e = one_error(&[("huge.yaml", &huge)]);
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn symlinks_out_of_the_profiles_directory_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "aws_secret_access_key=x\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profile = "--- !InstanceProfile\nname: P\naws: !InstanceAws\n  ami: {us-east-1: ami-a6f504cf}\n  instance-type: t3.micro\nuser-data: [inside.sh]\n";
    std::fs::write(dir.path().join("p.yaml"), profile).unwrap();
    let relative = |e: &ProfileError| {
        e.to_string()
            .replace(&format!("{}/", dir.path().display()), "")
    };

    // A file that is a symlink out.
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("inside.sh"))
        .unwrap();
    let errs = ProfileSet::load_dir(dir.path()).expect_err("refused");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = relative(&errs[0]);
    assert!(e.starts_with("p.yaml:6:"), "{e}");
    assert!(
        e.contains("\"inside.sh\" leads out of the profiles directory through a symlink"),
        "{e}"
    );

    // A folder on the way that is a symlink out.
    std::fs::remove_file(dir.path().join("inside.sh")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        profile.replace("[inside.sh]", "[sub/secret]"),
    )
    .unwrap();
    let errs = ProfileSet::load_dir(dir.path()).expect_err("refused");
    assert!(relative(&errs[0]).contains("leads out"), "{errs:#?}");

    // A profile file that is itself a symlink out.
    std::fs::remove_file(dir.path().join("sub")).unwrap();
    std::fs::write(outside.path().join("other.yaml"), profile).unwrap();
    std::fs::write(dir.path().join("p.yaml"), "").unwrap();
    std::os::unix::fs::symlink(outside.path().join("other.yaml"), dir.path().join("q.yaml"))
        .unwrap();
    let errs = ProfileSet::load_dir(dir.path()).expect_err("refused");
    assert!(relative(&errs[0]).contains("leads out"), "{errs:#?}");

    // A symlink that stays inside is fine.
    std::fs::remove_file(dir.path().join("q.yaml")).unwrap();
    std::fs::write(dir.path().join("p.yaml"), profile).unwrap();
    std::fs::write(dir.path().join("real.sh"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("real.sh", dir.path().join("inside.sh")).unwrap();
    ProfileSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
}

/// The YAML parser's messages that cerveza rewrites or relies on, pinned: an upgrade
/// of the YAML crate shows its drift here.
#[test]
fn yaml_error_messages_are_pinned() {
    let head = "--- !InstanceProfile\nname: P\n";
    let cases = [
        (
            "aws-tag",
            format!("{head}aws: !Other\n  ami: {{us-east-1: ami-a6f504cf}}\n"),
        ),
        (
            "aws-untagged",
            format!("{head}aws:\n  ami: {{us-east-1: ami-a6f504cf}}\n"),
        ),
        ("no-document-tag", "---\nname: P\n".to_owned()),
        ("unknown-tag", "--- !Evil\nname: P\n".to_owned()),
        ("unknown-key", format!("{head}colour: red\n")),
        ("wrong-type", format!("{head}desc: [a, b]\n")),
        ("duplicate-key", format!("{head}name: Q\n")),
        ("syntax", format!("{head}desc: \"open\n")),
        ("tab-indent", format!("{head}aws: !InstanceAws\n\tami: x\n")),
    ];
    let mut out = String::new();
    for (what, text) in cases {
        let errs = load(&[("a.yaml", &text)]).expect_err(what);
        out.push_str(&format!("{what}: {}\n", errs.join(" / ")));
    }
    insta::assert_snapshot!(out);
}

/// The one error of a volume profile with these `volumes:` (None: it loads).
fn volume_error(volumes: &str) -> Option<String> {
    let vp = format!("--- !VolumeProfile\nname: V\nvolumes: {volumes}\nmount-point: /data\n");
    match load(&[("v.yaml", &vp)]) {
        Ok(_) => None,
        Err(errs) => {
            assert_eq!(errs.len(), 1, "{volumes}: {errs:#?}");
            Some(errs[0].clone())
        }
    }
}

#[test]
fn volume_specs_are_refused_as_ec2_refuses_them() {
    for ok in [
        "{ count: 1, size-gb: 100, type: gp3 }",
        "{ count: 1, size-gb: 160, type: gp3, iops: 80000, throughput: 2000 }",
        "{ count: 1, size-gb: 65536, type: gp3 }",
        "{ count: 1, size-gb: 8, type: gp3, iops: 4000, throughput: 1000 }",
        "{ count: 1, size-gb: 100, type: io1, iops: 5000 }",
        "{ count: 1, size-gb: 100, type: io2, iops: 100000 }",
        "{ count: 1, size-gb: 125, type: st1 }",
        "{ count: 1, size-gb: 1024, type: standard }",
        "{ count: 1, size-gb: 10, type: gp3, encrypted: true, kms-key: alias/aws/ebs }",
        "{ count: 1, size-gb: 10, type: gp3, encrypted: true, kms-key: 1234abcd-12ab-34cd-56ef-1234567890ab }",
        "{ count: 1, size-gb: 10, type: gp3, encrypted: true, kms-key: 'arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab' }",
    ] {
        assert_eq!(volume_error(ok), None, "{ok}");
    }
    for (bad, says) in [
        ("{ count: 1, size-gb: 70000, type: gp3 }", "gp3 volumes have 1 to 65536 GiB"),
        ("{ count: 1, size-gb: 20000, type: gp2 }", "gp2 volumes have 1 to 16384 GiB"),
        ("{ count: 1, size-gb: 100, type: st1 }", "st1 volumes have 125 to 16384 GiB"),
        ("{ count: 1, size-gb: 100, type: sc1 }", "sc1 volumes have 125 to 16384 GiB"),
        ("{ count: 1, size-gb: 2, type: io2, iops: 100 }", "io2 volumes have 4 to 65536 GiB"),
        ("{ count: 1, size-gb: 2000, type: standard }", "standard volumes have 1 to 1024 GiB"),
        ("{ count: 1, size-gb: 100, type: gp3, iops: 2000 }", "gp3 volumes have 3000 to 80000 IOPS"),
        ("{ count: 1, size-gb: 200, type: gp3, iops: 90000 }", "gp3 volumes have 3000 to 80000 IOPS"),
        ("{ count: 1, size-gb: 10, type: gp3, iops: 16000 }", "at most 500 IOPS per GiB (5000 here); raise size-gb to 32"),
        ("{ count: 1, size-gb: 100, type: io1, iops: 6000 }", "io1 allows at most 50 IOPS per GiB"),
        ("{ count: 1, size-gb: 10, type: io2, iops: 20000 }", "io2 allows at most 1000 IOPS per GiB"),
        ("{ count: 1, size-gb: 100, type: io1 }", "io1 volumes need `iops:`"),
        ("{ count: 1, size-gb: 100, type: gp2, iops: 3000 }", "only gp3, io1 and io2 volumes take provisioned IOPS, not gp2"),
        ("{ count: 1, size-gb: 100, type: gp3, throughput: 100 }", "gp3 volumes have 125 to 2000 MiB/s"),
        ("{ count: 1, size-gb: 100, type: gp3, throughput: 1000 }", "at most 0.25 MiB/s per IOPS (750 MiB/s here); raise iops to 4000"),
        ("{ count: 1, size-gb: 100, type: io2, iops: 1000, throughput: 500 }", "only gp3 volumes take a throughput, not io2"),
        ("{ count: 1, size-gb: 10, type: gp3, kms-key: alias/data }", "needs `encrypted: true`"),
        ("{ count: 1, size-gb: 10, type: gp3, encrypted: true, kms-key: my-key }", "is not a KMS key id"),
        ("{ count: 1, size-gb: 10, type: gp3, encrypted: true, kms-key: 'arn:aws:kms:us-east-1:12:key/x' }", "is not a KMS key id"),
    ] {
        let e = volume_error(bad).unwrap_or_else(|| panic!("{bad} was accepted"));
        assert!(e.contains(says), "{bad}: {e}");
        assert!(e.starts_with("v.yaml:3:"), "located at volumes: {e}");
    }
}

#[test]
fn hosts_launch_with_imdsv2_unless_a_profile_says_otherwise() {
    use cerveza_core::profile::ImdsTokens;
    let set = load(&[(
        "p.yaml",
        "--- !InstanceProfile\nname: Base\naws: !InstanceAws\n  ami: { us-east-1: ami-a6f504cf }\n  instance-type: t3.small\n\
         --- !InstanceProfile\nname: Legacy\nextends: Base\naws: !InstanceAws\n  imds-tokens: optional\n  imds-hop-limit: 1\n",
    )])
    .unwrap();
    let base = set.instance("Base").unwrap();
    assert_eq!(
        (base.imds_tokens, base.imds_hop_limit),
        (ImdsTokens::Required, 2)
    );
    let legacy = set.instance("Legacy").unwrap();
    assert_eq!(
        (legacy.imds_tokens, legacy.imds_hop_limit),
        (ImdsTokens::Optional, 1)
    );
    let e = one_error(&[(
        "p.yaml",
        "--- !InstanceProfile\nname: Far\naws: !InstanceAws\n  ami: { us-east-1: ami-a6f504cf }\n  instance-type: t3.small\n  imds-hop-limit: 65\n",
    )]);
    assert!(
        e.contains("p.yaml:6:3: imds-hop-limit 65: EC2 takes 1 to 64"),
        "{e}"
    );
    let e = one_error(&[(
        "p.yaml",
        "--- !InstanceProfile\nname: Typo\naws: !InstanceAws\n  ami: { us-east-1: ami-a6f504cf }\n  imds-tokens: sometimes\n",
    )]);
    assert!(e.contains("p.yaml:") && e.contains("sometimes"), "{e}");
}

#[test]
fn an_ami_may_be_a_public_ssm_parameter_with_a_default_for_every_region() {
    let set = ProfileSet::from_sources(&[(
        "p.yaml".into(),
        "--- !InstanceProfile\nname: Lts\naws: !InstanceAws\n  ami:\n    default: resolve:ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id\n    eu-west-1: ami-0905a3c97561e0b69\n  instance-type: t3.small\n".into(),
    )])
    .unwrap();
    let p = set.instance("Lts").unwrap();
    assert_eq!(
        p.ami_for(&Region::parse("ap-south-1").unwrap()).unwrap(),
        "resolve:ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
    );
    assert_eq!(
        p.ami_for(&Region::parse("eu-west-1").unwrap()).unwrap(),
        "ami-0905a3c97561e0b69"
    );
    let bad = ProfileSet::from_sources(&[(
        "p.yaml".into(),
        "--- !InstanceProfile\nname: Bad\naws: !InstanceAws\n  ami: { default: \"resolve:ssm:\", us-east-1: \"resolve:ssm:/x;rm\" }\n  instance-type: t3.small\n".into(),
    )])
    .unwrap_err();
    let text: Vec<String> = bad.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text.iter().all(|t| t.contains("is not an AMI id")),
        "{text:?}"
    );
}
