//! Host keys from the console output (the lab's consoles carry its sshd's real key),
//! checked strictly by hostname: a swapped key is refused, a relaunch replaces keys.
//! The lab can also refuse the console, post it without keys or late, or show keys of
//! each instance's own (per account: `console-keys`, `console-delay`), and ssh itself
//! shows what is checked: a command that ran leaves a file behind.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{cerveza, cmd, lab_var, limits, product, Proxy, Run};

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

    fn command(&self, p: &str) -> std::process::Command {
        let mut c = cmd(p);
        c.env(
            "CERVEZA_TEST_ADDRESSES",
            lab_var("CERVEZA_LAB_SSH_ADDRESSES"),
        )
        .env("XDG_STATE_HOME", self.state.path());
        c
    }

    fn run(&self, p: &str, args: &[&str]) -> Run {
        self.command(p).args(args).output().unwrap().into()
    }

    /// Runs cerveza through `proxy`.
    fn via(&self, proxy: &Proxy, p: &str, args: &[&str]) -> Run {
        self.command(p)
            .env("AWS_ENDPOINT_URL", proxy.url())
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    /// The known_hosts lines cerveza keeps (none when it has no file).
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.file())
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// `remote HOST -- touch FILE` (with `extra` options first): whether ssh let the
    /// command run is whether FILE exists afterwards (the lab's hosts share this
    /// machine's file system).
    fn touch(&self, p: &str, host: &str, extra: &[&str]) -> (Run, bool) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ran");
        let mut args = vec!["remote", "--no-reuse"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[host, "--", "touch", file.to_str().unwrap()]);
        let r = self.run(p, &args);
        (r, file.exists())
    }
}

/// The key of a known_hosts line (`alias type base64 comment`).
fn key_of(line: &str) -> String {
    line.split_whitespace()
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
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

#[test]
fn a_console_that_cannot_be_read_keeps_the_host_unreached_and_names_the_permission() {
    let p = product();
    let proxy = Proxy::start(&json!({"rules": [
        {"fault": "refuse", "service": "ec2", "action": "GetConsoleOutput"}
    ]}));
    proxy
        .direct(
            &p,
            &["start", "hr01", "--zone", "us-east-1b", "--profile", "Web"],
        )
        .ok();
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ran");
    let r = keys.via(
        &proxy,
        &p,
        &["remote", "hr01", "--", "touch", file.to_str().unwrap()],
    );
    assert_eq!(r.code, 255, "{r:#?}");
    assert!(!file.exists(), "the command ran: {r:#?}");
    for says in [
        "UnauthorizedOperation",
        "ec2:GetConsoleOutput",
        "host-keys = \"ssh\"",
    ] {
        assert!(r.stderr.contains(says), "{says}: {r:#?}");
    }
    assert_eq!(keys.lines(), Vec::<String>::new());
    let r = keys.via(&proxy, &p, &["hostkeys", "sync", "-o", "json"]);
    assert_eq!(r.code, 5, "{r:#?}");
    let row = &r.json()[0];
    assert_eq!(row["keys"], 0, "{r:#?}");
    assert!(
        row["change"]
            .as_str()
            .unwrap()
            .contains("ec2:GetConsoleOutput"),
        "{r:#?}"
    );
    assert_eq!(keys.lines(), Vec::<String>::new());
    // Both commands asked, and were refused (not a console that merely had no keys).
    assert_eq!(
        proxy.stats()["faults"]["refuse:ec2:GetConsoleOutput"],
        2,
        "{}",
        proxy.stats()
    );
}

#[test]
fn a_console_without_keys_or_with_keys_that_come_late_is_no_key_to_trust() {
    let p = product();
    // An image whose cloud-init prints no keys to the console.
    limits(
        &p,
        "us-east-1",
        &json!({"console-keys": "none"}).to_string(),
    );
    cerveza(
        &p,
        &["start", "hn01", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    let keys = Keys::new();
    let r = keys.run(&p, &["hostkeys", "sync", "--no-wait", "-o", "json"]);
    assert_eq!(r.code, 5, "{r:#?}");
    assert_eq!(
        r.json()[0]["change"],
        "none in its console output yet",
        "{r:#?}"
    );
    let (r, ran) = keys.touch(&p, "hn01", &["--timeout", "3s"]);
    assert_eq!(r.code, 255, "{r:#?}");
    assert!(!ran, "{r:#?}");
    assert!(r.stderr.contains("its console output has none"), "{r:#?}");
    assert_eq!(keys.lines(), Vec::<String>::new());

    // A young instance whose keys appear after the connection gave up waiting: refused
    // then, trusted once they are there.
    limits(
        &p,
        "us-east-1",
        &json!({"console-keys": null, "console-delay": 20}).to_string(),
    );
    cerveza(
        &p,
        &["start", "hl01", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    let (r, ran) = keys.touch(&p, "hl01", &["--timeout", "3s"]);
    assert_eq!(r.code, 255, "{r:#?}");
    assert!(!ran, "{r:#?}");
    assert!(r.stderr.contains("no host keys for hl01"), "{r:#?}");
    assert_eq!(keys.lines(), Vec::<String>::new());
    // sync waits for a young instance's keys (up to 3 minutes).
    let r = keys.run(&p, &["hostkeys", "sync", "hl01", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.json()[0]["change"], "added", "{r:#?}");
    let (r, ran) = keys.touch(&p, "hl01", &[]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(ran, "{r:#?}");
}

#[test]
fn each_instance_s_own_keys_are_read_and_ssh_refuses_a_server_without_them() {
    let p = product();
    // Every instance shows a key of its own, which the lab's sshd does not hold: the
    // console is the truth, and whoever answers at the address is not that host.
    limits(
        &p,
        "us-east-1",
        &json!({"console-keys": "per-instance"}).to_string(),
    );
    cerveza(
        &p,
        &[
            "start",
            "hd[01-02]",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    )
    .ok();
    let keys = Keys::new();
    let r = keys.run(&p, &["hostkeys", "sync"]);
    assert_eq!(r.code, 0, "{r:#?}");
    let mut lines = keys.lines();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (one, two) = (key_of(&lines[0]), key_of(&lines[1]));
    assert_ne!(one, two);
    assert!(one.starts_with("ssh-ed25519 ") && one != lab_key(), "{one}");
    let id = instance(&p, "hd01");
    assert_eq!(lines[0], format!("hd01.{p}.private {one} cerveza:{id}"));

    // StrictHostKeyChecking, as ssh behaves: the server's key is not the recorded one.
    let (r, ran) = keys.touch(&p, "hd01", &[]);
    assert_eq!(r.code, 255, "{r:#?}");
    assert!(!ran, "{r:#?}");
    assert!(
        r.stderr.contains("Host key verification failed")
            || r.stderr.contains("IDENTIFICATION HAS CHANGED"),
        "{r:#?}"
    );

    // A relaunch's keys are read from the new console, not the old ones relabelled.
    cerveza(&p, &["terminate", "hd01"]).ok();
    cerveza(&p, &["start", "hd01"]).ok();
    let new_id = instance(&p, "hd01");
    let r = keys.run(&p, &["hostkeys", "sync", "hd01", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(
        r.json()[0]["change"],
        format!("replaced the keys of {id}"),
        "{r:#?}"
    );
    let mut lines = keys.lines();
    lines.sort();
    let new = key_of(&lines[0]);
    assert_ne!(new, one, "the old instance's key, relabelled");
    assert_eq!(lines[0], format!("hd01.{p}.private {new} cerveza:{new_id}"));
    assert_eq!(key_of(&lines[1]), two);
}
