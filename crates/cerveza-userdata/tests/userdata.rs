//! User-data: parts, templates, the size budget, and what the real cloud-init makes of it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cerveza_core::ports::HostContext;
use cerveza_core::profile::{InstanceProfile, ProfileSet, VolumeProfile};
use cerveza_core::{Hostname, Product, Zone};
use cerveza_userdata::{
    decode, detect_type, puppet_minute, CloudInit, Settings, UserDataError, MAX_USER_DATA,
};

fn settings() -> Settings {
    Settings {
        resolv_conf: true,
        nameservers: vec!["10.0.0.2".into(), "10.0.1.2".into()],
        ldap_client: Some(cerveza_userdata::LdapClient {
            uri: None,
            base: "dc=noc,dc=example".into(),
        }),
        ..Settings::default()
    }
}

/// Profiles from `files` (name, text) written to a temp dir.
fn profiles(files: &[(&str, &str)]) -> (tempfile::TempDir, ProfileSet) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let set = ProfileSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    (dir, set)
}

fn profile_with(user_data: &str, extra: &[(&str, &str)]) -> (tempfile::TempDir, ProfileSet) {
    let yaml = format!(
        "--- !InstanceProfile\nname: P\naws: !InstanceAws\n  ami: {{ us-east-1: ami-a6f504cf }}\n  instance-type: t3.micro\nuser-data: {user_data}\n"
    );
    let mut files = vec![("p.yaml", yaml.as_str())];
    files.extend_from_slice(extra);
    profiles(&files)
}

fn build(p: &InstanceProfile, s: Settings) -> Result<cerveza_userdata::Built, UserDataError> {
    build_with(p, &[], s)
}

fn build_with(
    p: &InstanceProfile,
    volumes: &[VolumeProfile],
    s: Settings,
) -> Result<cerveza_userdata::Built, UserDataError> {
    let product = Product::parse("noc").unwrap();
    let host = Hostname::parse("dev-mysql01").unwrap();
    let zone = Zone::parse("us-east-1b").unwrap();
    CloudInit::new(s)?.build(&HostContext {
        product: &product,
        host: &host,
        zone: &zone,
        profile: p,
        volumes,
    })
}

/// The volume profiles an instance profile names.
fn volumes_of(set: &ProfileSet, p: &InstanceProfile) -> Vec<VolumeProfile> {
    p.volume_profiles
        .iter()
        .filter_map(|n| set.volume(n).cloned())
        .collect()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/profiles")
}

#[test]
fn types_are_detected_as_cloud_init_does() {
    for (body, t) in [
        ("#!/bin/sh\necho", Some("text/x-shellscript")),
        ("#cloud-config\na: 1", Some("text/cloud-config")),
        ("  #Cloud-Config\n", Some("text/cloud-config")),
        ("#cloud-config-archive\n", Some("text/cloud-config-archive")),
        ("#include\nhttp://x", Some("text/x-include-url")),
        ("#include-once\nhttp://x", Some("text/x-include-once-url")),
        ("#cloud-boothook\n", Some("text/cloud-boothook")),
        ("#upstart-job\n", Some("text/upstart-job")),
        ("#part-handler\n", Some("text/part-handler")),
        ("## template: jinja\n#cloud-config", Some("text/jinja2")),
        ("hostname=dev-mysql01", None),
    ] {
        assert_eq!(detect_type(body), t, "{body:?}");
    }
}

#[test]
fn the_paper_profile_gets_its_files_and_cervezas_parts() {
    let set = ProfileSet::load_dir(&examples()).unwrap();
    let built = build(set.instance("UbuntuGeneric32Bit").unwrap(), settings()).unwrap();
    let summary: Vec<(String, String)> = built
        .parts
        .iter()
        .map(|p| (p.name.clone(), p.content_type.clone()))
        .collect();
    insta::assert_debug_snapshot!("paper_parts", summary);
    for p in &built.parts {
        insta::assert_snapshot!(format!("part_{}", p.name.replace('.', "_")), p.body);
    }
    assert!(built.gzip.len() < MAX_USER_DATA);
    assert_eq!(
        decode(&built.gzip).unwrap(),
        built.parts,
        "decode is the inverse of build"
    );
    assert_eq!(
        build(set.instance("UbuntuGeneric32Bit").unwrap(), settings())
            .unwrap()
            .gzip,
        built.gzip,
        "reproducible bytes"
    );
}

#[test]
fn the_puppet_minute_is_stable_and_spread() {
    assert_eq!(puppet_minute("dev-mysql01"), puppet_minute("dev-mysql01"));
    let minutes: std::collections::BTreeSet<u32> = (1..=60)
        .map(|i| puppet_minute(&format!("web{i:02}")))
        .collect();
    assert!(minutes.iter().all(|m| *m < 30));
    assert_eq!(minutes.len(), 30, "60 hosts use every minute: {minutes:?}");
    // A group of up to 30 numbered hosts never shares a minute.
    for stem in ["web", "dev-mysql", "a"] {
        let minutes: std::collections::BTreeSet<u32> = (1..=30)
            .map(|i| puppet_minute(&format!("{stem}{i:02}")))
            .collect();
        assert_eq!(minutes.len(), 30, "{stem}: {minutes:?}");
    }
    assert_ne!(
        puppet_minute("web01"),
        puppet_minute("db01"),
        "stems start apart"
    );
    assert!(puppet_minute("bastion") < 30 && puppet_minute("99") < 30);
}

#[test]
fn templates_render_with_host_variables_and_refuse_unknown_ones() {
    let tmpl = "## template: jinja\n#!/bin/sh\necho {{ hostname }} {{ fqdn }} {{ zone }} {{ region }} {{ group }} {{ profile }}\n";
    let (_d, set) = profile_with("[setup.sh]", &[("setup.sh", tmpl)]);
    let built = build(set.instance("P").unwrap(), Settings::default()).unwrap();
    assert_eq!(
        built.parts[0].content_type, "text/x-shellscript",
        "the header line is removed, the type comes after it"
    );
    assert_eq!(
        built.parts[0].body,
        "#!/bin/sh\necho dev-mysql01 dev-mysql01.noc.private us-east-1b us-east-1 dev-mysql* P\n"
    );

    let (_d, set) = profile_with(
        "[setup.sh]",
        &[(
            "setup.sh",
            "## template: jinja\n#!/bin/sh\necho {{ hostnme }}\n",
        )],
    );
    let e = build(set.instance("P").unwrap(), Settings::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "setup.sh: unknown template variable(s) hostnme; known: ami, fqdn, group, hostname"
        ),
        "{e}"
    );

    let (_d, set) = profile_with(
        "[setup.sh]",
        &[("setup.sh", "## template: jinja\n#!/bin/sh\n{% if %}\n")],
    );
    let e = build(set.instance("P").unwrap(), Settings::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("setup.sh: line 3"), "{e}");

    // Without the header, braces are left alone (shell scripts are full of them).
    let (_d, set) = profile_with("[s.sh]", &[("s.sh", "#!/bin/bash\necho ${#a[@]} {{x}}\n")]);
    let built = build(set.instance("P").unwrap(), Settings::default()).unwrap();
    assert!(built.parts[0].body.contains("{{x}}"));
}

#[test]
fn bad_files_are_refused_with_their_name() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("bin.sh", b"#!/bin/sh\n\x00\x01", "binary file"),
        ("empty.txt", b"#cloud-config\n\n", "empty"),
        (
            "plain.txt",
            b"hostname=dev-mysql01\n",
            "cloud-init would ignore it",
        ),
        (
            "bad.cfg",
            b"#cloud-config\npackages: [a\n",
            "not valid YAML",
        ),
        (
            "list.cfg",
            b"#cloud-config\n- a\n- b\n",
            "must be a YAML mapping",
        ),
        ("latin1.sh", b"#!/bin/sh\necho \xe9\n", "not UTF-8"),
    ];
    for (name, content, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), content).unwrap();
        let yaml = format!("--- !InstanceProfile\nname: P\naws: !InstanceAws\n  ami: {{ us-east-1: ami-a6f504cf }}\n  instance-type: t3.micro\nuser-data: [{name}]\n");
        std::fs::write(dir.path().join("p.yaml"), yaml).unwrap();
        let set = ProfileSet::load_dir(dir.path()).unwrap();
        let e = build(set.instance("P").unwrap(), Settings::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
    }
    // An explicit type makes a headerless file acceptable.
    let (_d, set) = profile_with(
        "[{file: plain.txt, type: text/x-shellscript}]",
        &[("plain.txt", "echo hi\n")],
    );
    assert_eq!(
        build(set.instance("P").unwrap(), Settings::default())
            .unwrap()
            .parts[0]
            .content_type,
        "text/x-shellscript"
    );
}

/// `n` characters that do not compress: base64 letters of pseudo-random bytes.
fn noise(n: usize) -> String {
    let mut x: u64 = 42;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(x % 64) as usize],
            )
        })
        .collect()
}

#[test]
fn exactly_the_limit_is_accepted_and_one_byte_more_refused() {
    // The compressed size of a profile whose script carries `n` noise characters:
    // Ok(size) when accepted, Err(size) when refused as too large.
    let size_with = |n: usize| {
        let script = format!("#!/bin/sh\n: {}\n", noise(n));
        let (_d, set) = profile_with("[big.sh]", &[("big.sh", &script)]);
        match build(set.instance("P").unwrap(), Settings::default()) {
            Ok(built) => Ok(built.gzip.len()),
            Err(UserDataError::TooLarge { size, .. }) => Err(size),
            Err(e) => panic!("{e}"),
        }
    };
    let size = |r: Result<usize, usize>| r.unwrap_or_else(|s| s);
    // The smallest script that reaches the limit, then every size around it.
    let (mut lo, mut hi) = (0, 40_000);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if size(size_with(mid)) >= MAX_USER_DATA {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let around: Vec<(usize, Result<usize, usize>)> = (lo.saturating_sub(40)..lo + 40)
        .map(|n| (n, size_with(n)))
        .collect();
    let at = |want: usize| around.iter().find(|(_, r)| size(*r) == want);
    let (n, exact) = at(MAX_USER_DATA).unwrap_or_else(|| panic!("no exact size: {around:?}"));
    assert_eq!(
        *exact,
        Ok(MAX_USER_DATA),
        "{n} characters: exactly 16384 bytes is accepted"
    );
    let (n, over) = at(MAX_USER_DATA + 1).unwrap_or_else(|| panic!("no 16385: {around:?}"));
    assert_eq!(
        *over,
        Err(MAX_USER_DATA + 1),
        "{n} characters: 16385 bytes is refused"
    );
    assert!(
        around
            .iter()
            .all(|(_, r)| r.is_ok() == (size(*r) <= MAX_USER_DATA)),
        "accepted exactly up to the limit: {around:?}"
    );
}

#[test]
fn too_large_lists_every_part_with_its_size() {
    let big = format!("#!/bin/sh\n: {}\n", noise(24_000));
    let (_d, set) = profile_with(
        "[big.sh, small.sh]",
        &[("big.sh", &big), ("small.sh", "#!/bin/sh\ntrue\n")],
    );
    let e = build(set.instance("P").unwrap(), Settings::default()).unwrap_err();
    assert!(matches!(e, UserDataError::TooLarge { .. }));
    let text = e.to_string();
    assert!(text.contains("over EC2's limit of 16384"), "{text}");
    for needle in [
        "big.sh",
        "small.sh",
        "cerveza-hostname.cfg",
        "cerveza-puppet.cfg",
        "24013 bytes",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
}

#[test]
fn settings_are_checked() {
    let bad = |s: Settings| CloudInit::new(s).unwrap_err().to_string();
    assert!(bad(Settings {
        resolv_conf: true,
        ..Settings::default()
    })
    .contains("no nameservers"));
    assert!(bad(Settings {
        nameservers: vec!["ns1".into()],
        ..Settings::default()
    })
    .contains("not an IP address"));
    assert!(bad(Settings {
        puppet_server: Some("x; rm -rf /".into()),
        ..Settings::default()
    })
    .contains("not a host name"));
}

#[test]
fn non_ascii_parts_survive_the_round_trip() {
    let (_d, set) = profile_with(
        "[motd.sh]",
        &[("motd.sh", "#!/bin/sh\necho 'Bienvenue, café ☕'\n")],
    );
    let built = build(set.instance("P").unwrap(), Settings::default()).unwrap();
    assert!(built.mime.contains("Content-Transfer-Encoding: base64"));
    assert_eq!(decode(&built.gzip).unwrap(), built.parts);
}

/// The real cloud-init (Debian's package) parses the blob into the same parts with the
/// same types, and every cloud-config part passes its schema in strict mode.
#[test]
fn real_cloud_init_reads_every_example_profile() {
    let python = "/usr/bin/python3";
    let probe = Command::new(python)
        .args(["-c", "import cloudinit"])
        .output();
    assert!(
        probe.map(|o| o.status.success()).unwrap_or(false),
        "Debian's cloud-init is needed (scripts/bootstrap installs it)"
    );
    let set = ProfileSet::load_dir(&examples()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cloudinit_check.py");
    for profile in set.instances().filter(|p| !p.is_abstract) {
        let built = build_with(profile, &volumes_of(&set, profile), settings()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("user-data");
        std::fs::write(&blob, &built.gzip).unwrap();
        let out = Command::new(python)
            .arg(&script)
            .arg(&blob)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            profile.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let parts = seen["parts"].as_array().unwrap();
        assert_eq!(parts.len(), built.parts.len(), "{}: {seen}", profile.name);
        for (ours, theirs) in built.parts.iter().zip(parts) {
            assert_eq!(theirs["type"], ours.content_type.as_str(), "{}", ours.name);
            assert_eq!(theirs["filename"], ours.name.as_str());
            assert_eq!(theirs["payload"], ours.body.as_str(), "{}", ours.name);
        }
        assert_eq!(
            seen["schema_errors"],
            serde_json::json!({}),
            "{}",
            profile.name
        );
    }
}

#[test]
fn the_volume_part_is_a_boothook_per_volume_profile() {
    let set = ProfileSet::load_dir(&examples()).unwrap();
    let mysql = set.instance("Mysql").unwrap();
    let built = build_with(mysql, &volumes_of(&set, mysql), settings()).unwrap();
    let part = built
        .parts
        .iter()
        .find(|p| p.name == "cerveza-volumes-MysqlRaid10.sh")
        .unwrap();
    assert_eq!(
        part.content_type, "text/cloud-boothook",
        "runs at every boot"
    );
    insta::assert_snapshot!("volumes_mysql", part.body);
}
