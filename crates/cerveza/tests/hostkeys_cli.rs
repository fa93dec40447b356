//! Host keys from the console output (the lab's consoles carry its sshd's real key),
//! checked strictly by hostname: a swapped key is refused, a relaunch replaces keys.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{cerveza, cmd, lab_var, product, Run};

struct Keys {
    state: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        Self {
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self) -> PathBuf {
        self.state.path().join("cerveza/known_hosts")
    }

    fn run(&self, p: &str, args: &[&str]) -> Run {
        cmd(p)
            .env(
                "CERVEZA_TEST_ADDRESSES",
                lab_var("CERVEZA_LAB_SSH_ADDRESSES"),
            )
            .env("XDG_STATE_HOME", self.state.path())
            .args(args)
            .output()
            .unwrap()
            .into()
    }
}

/// The lab sshd's public host key, `type base64`.
fn lab_key() -> String {
    let text = std::fs::read_to_string(
        Path::new(&lab_var("CERVEZA_LAB_DIR")).join("ssh/host_ed25519.pub"),
    )
    .unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn instance(p: &str, host: &str) -> String {
    let r = cerveza(p, &["list", host, "-o", "json"]).ok();
    r.json()["hosts"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn keys_come_from_the_console_and_a_swapped_key_is_refused() {
    let p = product();
    cerveza(
        &p,
        &["start", "hk01", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    let keys = Keys::new();
    let id = instance(&p, "hk01");

    let r = keys.run(&p, &["hostkeys", "sync", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.json()[0]["change"], "added", "{r:#?}");
    let line = format!("hk01.{p}.private {} cerveza:{id}\n", lab_key());
    assert_eq!(std::fs::read_to_string(keys.file()).unwrap(), line);
    let r = keys.run(&p, &["hostkeys", "sync"]).ok();
    assert!(r.stdout.contains("unchanged"), "{r:#?}");
    keys.run(&p, &["remote", "hk01", "--", "true"]).ok();

    // Someone else's key for the same instance: ssh refuses to connect, and sync
    // refuses to overwrite what was recorded.
    let other = tempfile::tempdir().unwrap();
    let k = other.path().join("k");
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&k)
        .status()
        .unwrap()
        .success());
    let fake = std::fs::read_to_string(k.with_extension("pub")).unwrap();
    let fake: Vec<&str> = fake.split_whitespace().take(2).collect();
    let swapped = format!("hk01.{p}.private {} cerveza:{id}\n", fake.join(" "));
    std::fs::write(keys.file(), &swapped).unwrap();
    // (--no-reuse: a master connection made before stays trusted, as it was checked.)
    let r = keys.run(
        &p,
        &["remote", "--no-reuse", "hk01", "--", "echo", "reached"],
    );
    assert_eq!(r.code, 255, "{r:#?}");
    assert!(!r.stdout.contains("reached"), "{r:#?}");
    assert!(
        r.stderr.contains("Host key verification failed")
            || r.stderr.contains("IDENTIFICATION HAS CHANGED"),
        "{r:#?}"
    );
    let r = keys.run(&p, &["hostkeys", "sync", "hk01"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("REFUSED"), "{r:#?}");
    assert!(
        r.stderr.contains("someone may be impersonating them"),
        "{r:#?}"
    );
    assert_eq!(std::fs::read_to_string(keys.file()).unwrap(), swapped);

    // A relaunched host is another instance: its keys replace the old ones on the
    // next connection.
    cerveza(&p, &["terminate", "hk01"]).ok();
    cerveza(&p, &["start", "hk01"]).ok();
    let new_id = instance(&p, "hk01");
    assert_ne!(new_id, id);
    let r = keys.run(&p, &["remote", "hk01", "--", "true"]).ok();
    assert!(
        r.stderr.contains(&format!(
            "hk01: new instance {new_id}: its host keys replace those of {id}"
        )),
        "{r:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(keys.file()).unwrap(),
        format!("hk01.{p}.private {} cerveza:{new_id}\n", lab_key())
    );
}

#[test]
fn host_keys_can_be_left_to_the_users_ssh_config() {
    let p = product();
    cerveza(
        &p,
        &["start", "hs01", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[remote]\nhost-keys = \"ssh\"\n").unwrap();
    let c = config.to_str().unwrap();
    keys.run(&p, &["--config", c, "remote", "hs01", "--", "true"])
        .ok();
    assert!(!keys.file().exists());
    let r = keys.run(&p, &["--config", c, "hostkeys", "sync"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("host keys are left to your ssh config"),
        "{r:#?}"
    );
}
