//! The conventions of a command-line tool people live in: `init` on a fresh machine,
//! manual pages that `man` reads, colour that follows NO_COLOR and --color.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{cmd, product, Run};

fn run(c: &mut Command) -> Run {
    c.output().unwrap().into()
}

#[test]
fn init_writes_a_config_that_works_and_never_overwrites() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("cfg");
    let r = run(support::bare(&p).args(["init", "--dir"]).arg(&d).args([
        "--product",
        "ops",
        "--regions",
        "us-east-1,eu-west-1",
    ]));
    assert_eq!(r.code, 0, "{r:#?}");
    let config = d.join("config.toml");
    for next in [
        "profiles check",
        "list",
        "start demo01 --zone us-east-1a --profile UbuntuGeneric32Bit",
    ] {
        assert!(
            r.stdout
                .contains(&format!("cerveza --config {} {next}", config.display())),
            "{next}: {}",
            r.stdout
        );
    }
    // The written config and profiles are what cerveza reads (no product or profiles
    // from the environment).
    let own = |args: &[&str]| {
        let mut c = support::bare(&p);
        c.env_remove("CERVEZA_PROFILES")
            .env_remove("CERVEZA_REGIONS")
            .arg("--config")
            .arg(&config)
            .args(args);
        run(&mut c)
    };
    let checked = own(&["profiles", "check"]);
    assert_eq!(checked.code, 0, "{checked:#?}");
    assert!(
        checked
            .stdout
            .contains("2 instance profile(s) and 1 volume profile(s)"),
        "{checked:#?}"
    );
    let listed = own(&["profiles", "list"]);
    assert!(listed.stdout.contains("UbuntuGeneric32Bit") && listed.stdout.contains("MysqlRaid10"));
    assert!(
        listed.stdout.contains("UbuntuLts") && listed.stdout.contains("(any)"),
        "{listed:#?}"
    );
    // UbuntuLts starts in the lab, which resolves Canonical's public parameter to the
    // region's Ubuntu AMI, as EC2 does at launch.
    let started = own(&[
        "start",
        "lts01",
        "--zone",
        "eu-west-1a",
        "--profile",
        "UbuntuLts",
    ]);
    assert_eq!(started.code, 0, "{started:#?}");
    // The product is the one the written config names.
    let lts = support::live_instance("ops", "lts01");
    assert_eq!(lts["image"], "ami-0905a3c97561e0b69", "{lts:#}");
    assert_eq!(lts["type"], "t3.small");
    let userdata = own(&[
        "userdata",
        "demo01",
        "--zone",
        "us-east-1a",
        "--profile",
        "UbuntuGeneric32Bit",
    ]);
    assert_eq!(userdata.code, 0, "{userdata:#?}");
    assert!(
        userdata.stdout.contains("demo01.ops.private"),
        "{userdata:#?}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("regions = [\"us-east-1\", \"eu-west-1\"]"),
        "{text}"
    );

    // Again: refused, nothing touched.
    std::fs::write(&config, "# mine\n").unwrap();
    let again = run(support::bare(&p).args(["init", "--dir"]).arg(&d));
    assert_eq!(again.code, 4, "{again:#?}");
    assert!(again.stderr.contains("never overwrites"), "{again:#?}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");

    // Not on a terminal and no flags: the defaults, no question asked.
    let quiet = dir.path().join("defaults");
    let r = run(support::bare(&p).args(["init", "--dir"]).arg(&quiet));
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(std::fs::read_to_string(quiet.join("config.toml"))
        .unwrap()
        .contains("product = \"noc\""));
    let bad = run(cmd(&p)
        .args(["init", "--dir"])
        .arg(dir.path().join("bad"))
        .args(["--regions", "mars-east-1"]));
    assert_eq!(bad.code, 2, "{bad:#?}");
}

#[test]
fn every_command_has_a_man_page_that_man_reads() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let r = run(cmd(&p).args(["man", "--out"]).arg(dir.path()));
    assert_eq!(r.code, 0, "{r:#?}");
    for page in [
        "cerveza.1",
        "cerveza-start.1",
        "cerveza-access-user-add.1",
        "cerveza-release-deploy.1",
    ] {
        assert!(dir.path().join(page).exists(), "{page} missing");
    }
    let shown = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.path().join("cerveza-start.1"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap_or_else(|e| panic!("man: {e} (scripts/bootstrap installs man-db)"));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains("cerveza-start") && text.contains("--profile"),
        "{text}"
    );
    assert!(text.contains("Examples:"), "{text}");
    let top = run(cmd(&p).arg("man"));
    assert!(
        top.stdout.starts_with(".ie") || top.stdout.contains(".TH cerveza"),
        "{}",
        top.stdout
    );
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let p = product();
    let error = |extra: &[&str], no_color: bool| {
        let mut c = cmd(&p);
        if no_color {
            c.env("NO_COLOR", "1");
        }
        c.args(extra).args(["--regions", "mars-east-1", "list"]);
        run(&mut c).stderr
    };
    assert!(!error(&[], false).contains('\x1b'), "a pipe gets no colour");
    assert!(error(&["--color", "always"], false).contains("\x1b[1;31merror:"));
    assert!(
        error(&["--color=always"], true).contains('\x1b'),
        "the flag wins over NO_COLOR"
    );
    assert!(!error(&["--color", "never"], false).contains('\x1b'));
    assert!(!error(&["--color", "auto"], true).contains('\x1b'));
    let help = run(cmd(&p).args(["--color", "always", "start", "--help"]));
    assert!(
        help.stdout.contains('\x1b'),
        "clap's help follows --color too"
    );
    let help = run(cmd(&p).args(["start", "--help"]).env("NO_COLOR", "1"));
    assert!(!help.stdout.contains('\x1b'));
}

/// What a terminal shows of `cerveza ARGS` (stdout and stderr both on a pty, through
/// util-linux's `script`), with `NO_COLOR` set or not.
fn on_a_terminal(p: &str, args: &str, no_color: bool) -> String {
    let exe = env!("CARGO_BIN_EXE_cerveza");
    let mut c = support::lab_command("script", p);
    c.env("TERM", "xterm-256color").env("SHELL", "/bin/sh");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c
        .args(["-qec", &format!("{exe} -m {p} {args}"), "/dev/null"])
        .output()
        .expect("run script(1)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    // On a pipe `auto` gives no colour whatever NO_COLOR says; on a terminal it decides.
    let p = product();
    let args = "--regions mars-east-1 list";
    let shown = on_a_terminal(&p, args, false);
    assert!(shown.contains("\x1b[1;31merror:"), "{shown:?}");
    let shown = on_a_terminal(&p, args, true);
    assert!(shown.contains("error:"), "{shown:?}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
}
