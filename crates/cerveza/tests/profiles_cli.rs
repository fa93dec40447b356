//! `cerveza profiles …` and the config file, run through the real binary.

#![allow(clippy::unwrap_used)]

mod support;

use support::{cmd, product, root, Run};

fn run(args: &[&str]) -> Run {
    cmd(&product()).args(args).output().unwrap().into()
}

#[test]
fn profiles_list_shows_every_example() {
    let r = run(&["profiles", "list"]).ok();
    insta::assert_snapshot!(r.stdout);
}

#[test]
fn profiles_check_and_show() {
    let r = run(&["profiles", "check"]).ok();
    assert!(
        r.stdout
            .contains("5 instance profile(s) and 1 volume profile(s), all valid"),
        "{r:#?}"
    );
    let web = run(&["profiles", "show", "Web", "-o", "json"]).ok().json();
    assert_eq!(web["extends"], "UbuntuBase");
    assert_eq!(web["instance-type"], "c5.large");
    assert_eq!(web["ami"]["ap-southeast-1"], "ami-078c1149d8ad719a7");
    let r = run(&["profiles", "show", "Wbe"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.stderr.contains("did you mean \"Web\""), "{r:#?}");
}

#[test]
fn profiles_check_reports_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "--- !InstanceProfile\nname: A\nextends: Nope\n--- !InstanceProfile\nname: B\naws: !InstanceAws\n  ami: {us-east-1: ami-zz}\n  instance-type: t3.micro\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        "--- !InstanceProfile\nname: [broken\n",
    )
    .unwrap();
    let r: Run = cmd(&product())
        .env("CERVEZA_PROFILES", dir.path())
        .args(["profiles", "check"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{r:#?}");
    let text = r.stderr.replace(&format!("{}/", dir.path().display()), "");
    assert!(text.contains("the profiles have 3 problem(s)"), "{text}");
    assert!(
        text.contains("a.yaml:3:10: `extends: Nope` names no instance profile"),
        "{text}"
    );
    assert!(
        text.contains("a.yaml:7:20: \"ami-zz\" is not an AMI id"),
        "{text}"
    );
    assert!(text.contains("b.yml:"), "{text}");
}

#[test]
fn a_config_file_supplies_product_regions_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = root().join("examples/profiles");
    std::fs::write(
        dir.path().join("config.toml"),
        format!("product = \"{}\"\nregions = [\"eu-west-1\"]\nprofiles = \"{}\"\nregion-timeout = \"5s\"\n", product(), profiles.display()),
    )
    .unwrap();
    let mut c = cmd("placeholder");
    // cmd() passes -m; a config-only run must not, so build the command by hand.
    c.env_remove("CERVEZA_PROFILES")
        .env_remove("CERVEZA_REGIONS");
    let c = std::process::Command::new(c.get_program())
        .envs(
            c.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .args(["--config"])
        .arg(dir.path().join("config.toml"))
        .args(["list", "-o", "json"])
        .output()
        .unwrap();
    let r: Run = c.into();
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.json()["hosts"].as_array().unwrap().len(), 0);

    std::fs::write(
        dir.path().join("config.toml"),
        "product = \"noc\"\nregionz = []\n",
    )
    .unwrap();
    let r: Run = cmd("noc")
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("list")
        .output()
        .unwrap()
        .into();
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("unknown field `regionz`"), "{r:#?}");
}

#[test]
fn help_teaches_the_paper_form_and_exit_codes() {
    let r: Run = std::process::Command::new(env!("CARGO_BIN_EXE_cerveza"))
        .arg("--help")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0);
    for needle in [
        "--start <HOST>",
        "Paper form",
        "Exit codes",
        "CERVEZA_PRODUCT",
        "cerveza -m noc start demo01",
    ] {
        assert!(r.stdout.contains(needle), "{needle} missing from --help");
    }
    let r = run(&["--stop", "demo01", "--start", "demo02"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("cannot be used with"), "{r:#?}");
    let r = run(&["--zone", "us-east-1a", "list"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("--zone and --profile go with start"),
        "{r:#?}"
    );
    let r: Run = std::process::Command::new(env!("CARGO_BIN_EXE_cerveza"))
        .env_clear()
        .args(["list"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("no product given: pass -m/--product"),
        "{r:#?}"
    );
}
