//! Connection reuse against the lab's real sshd, counted in sshd's own log: a second run
//! within the persist time opens no new TCP connection. Other tests use the lab's sshd
//! at the same time (scripts/run_tests.py runs test binaries side by side), so this one
//! logs in with a key of its own and counts only the logins of that key.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{cerveza, cmd, lab_var, product, Run};

/// A client key of this test's own, authorised on the lab's sshd (its authorized_keys
/// is read at each login), and an ssh config that uses it.
struct OwnKey {
    _dir: tempfile::TempDir,
    config: PathBuf,
    lab_config: String,
    fingerprint: String,
}

impl OwnKey {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        let made = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ssh-reuse-test",
                "-f",
            ])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let listed = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        let fingerprint = String::from_utf8(listed.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let authorized = Path::new(&lab_var("CERVEZA_LAB_DIR")).join("ssh/authorized_keys");
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(authorized)
            .unwrap()
            .write_all(public.as_bytes())
            .unwrap();
        let lab = std::fs::read_to_string(lab_var("CERVEZA_SSH_CONFIG")).unwrap();
        let lab_config: String = lab
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("IdentityFile ") {
                    format!("  IdentityFile {}\n", key.display())
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert!(lab_config.contains(&key.display().to_string()), "{lab}");
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, &lab_config).unwrap();
        OwnKey {
            _dir: dir,
            config,
            lab_config,
            fingerprint,
        }
    }

    /// Logins of this key that sshd accepted so far (the hosts' sshd, or the gateway's).
    fn accepted(&self, log: &str) -> usize {
        let path = Path::new(&lab_var("CERVEZA_LAB_DIR")).join(log);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("Accepted publickey") && l.ends_with(&self.fingerprint))
            .count()
    }
}

fn sockets(dir: &Path) -> Vec<String> {
    let mut s: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    s.sort();
    s
}

#[test]
fn a_second_run_reuses_every_connection_and_only_cervezas_own() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "cm01",
            "cm02",
            "cm03",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    )
    .ok();
    let key = OwnKey::new();
    let accepted = |log: &str| key.accepted(log);
    let run_dir = tempfile::tempdir().unwrap();
    let ours = run_dir.path().join("cerveza/ssh");
    let remote = |env: &[(&str, &str)], args: &[&str]| -> Run {
        let mut c = cmd(&p);
        c.env(
            "CERVEZA_TEST_ADDRESSES",
            lab_var("CERVEZA_LAB_SSH_ADDRESSES"),
        )
        .env("XDG_RUNTIME_DIR", run_dir.path())
        .env("CERVEZA_SSH_CONFIG", &key.config)
        .env("CERVEZA_REMOTE_PERSIST", "60s");
        for (k, v) in env {
            c.env(k, v);
        }
        c.arg("remote").args(args).output().unwrap().into()
    };
    let hostname = ["cm*", "--", "hostname"];

    let before = accepted("sshd.log");
    remote(&[], &hostname).ok();
    assert_eq!(accepted("sshd.log") - before, 3, "one connection per host");
    assert_eq!(sockets(&ours).len(), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&ours).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    let before = accepted("sshd.log");
    let r = remote(&[], &hostname).ok();
    assert_eq!(r.stdout.lines().count(), 3, "{r:#?}");
    assert_eq!(
        accepted("sshd.log"),
        before,
        "the second run opens no connection"
    );

    // --no-reuse opens its own and keeps none.
    let before = accepted("sshd.log");
    remote(&[], &["--no-reuse", "cm*", "--", "true"]).ok();
    assert_eq!(accepted("sshd.log") - before, 3);
    assert_eq!(sockets(&ours).len(), 3, "the kept ones stay, no new one");

    // A relaunched host is a new instance: a new master, never the old instance's.
    let kept = sockets(&ours);
    cerveza(&p, &["terminate", "cm02"]).ok();
    cerveza(&p, &["start", "cm02"]).ok();
    let before = accepted("sshd.log");
    remote(&[], &hostname).ok();
    assert_eq!(accepted("sshd.log") - before, 1, "only cm02 connects anew");
    let now = sockets(&ours);
    assert_eq!(now.len(), 4);
    assert_eq!(now.iter().filter(|s| !kept.contains(s)).count(), 1);

    // --close ends them all; the next run connects again.
    let r = remote(&[], &["--close"]).ok();
    assert!(
        r.stderr.contains("closed 4 master connection(s)\n"),
        "{r:#?}"
    );
    assert!(sockets(&ours).is_empty());
    let before = accepted("sshd.log");
    remote(&[], &hostname).ok();
    assert_eq!(accepted("sshd.log") - before, 3);
    remote(&[], &["--close"]).ok();

    // The user's own ControlMaster wins: their sockets, none of ours.
    let theirs = tempfile::tempdir().unwrap();
    let config = theirs.path().join("ssh_config");
    let lab_config = &key.lab_config;
    std::fs::write(
        &config,
        format!(
            "{lab_config}  ControlMaster auto\n  ControlPath {}/m-%C\n  ControlPersist 30\n",
            theirs.path().display()
        ),
    )
    .unwrap();
    remote(
        &[("CERVEZA_SSH_CONFIG", config.to_str().unwrap())],
        &hostname,
    )
    .ok();
    assert!(sockets(&ours).is_empty(), "{:?}", sockets(&ours));
    assert_eq!(
        sockets(theirs.path())
            .iter()
            .filter(|s| s.starts_with("m-"))
            .count(),
        3
    );
    let _ = std::process::Command::new("ssh")
        .args(["-F", config.to_str().unwrap(), "-O", "exit"])
        .arg(
            lab_var("CERVEZA_LAB_SSH_ADDRESSES")
                .split(',')
                .next()
                .unwrap(),
        )
        .output();

    // A region's gateway carries its hosts: every connection goes through it.
    let dir = tempfile::tempdir().unwrap();
    let jump_config = dir.path().join("config.toml");
    std::fs::write(
        &jump_config,
        format!(
            "[regions.us-east-1]\njump-host = \"{}\"\n[regions.ap-southeast-1]\n[regions.eu-west-1]\n",
            lab_var("CERVEZA_LAB_SSH_GATEWAY")
        ),
    )
    .unwrap();
    let before = (accepted("sshd-gateway.log"), accepted("sshd.log"));
    let args = [
        "--config",
        jump_config.to_str().unwrap(),
        "cm*",
        "--",
        "hostname",
    ];
    remote(&[], &args).ok();
    assert_eq!(
        accepted("sshd-gateway.log") - before.0,
        3,
        "through the gateway"
    );
    assert_eq!(accepted("sshd.log") - before.1, 3);
    // Reused through the gateway too.
    let before = accepted("sshd-gateway.log");
    remote(&[], &args).ok();
    assert_eq!(accepted("sshd-gateway.log"), before);
    remote(&[], &["--close"]).ok();
    // export ssh-config says the same.
    let r = cerveza(
        &p,
        &[
            "--config",
            jump_config.to_str().unwrap(),
            "export",
            "ssh-config",
        ],
    )
    .ok();
    assert_eq!(
        r.stdout
            .matches(&format!(
                "    ProxyJump {}\n",
                lab_var("CERVEZA_LAB_SSH_GATEWAY")
            ))
            .count(),
        3,
        "{}",
        r.stdout
    );
}
