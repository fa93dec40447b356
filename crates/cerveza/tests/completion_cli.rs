//! Shell completion as a user gets it: the script `cerveza completions bash` prints,
//! sourced into a real bash, asked what follows `cerveza stop w<Tab>`; hostnames from
//! the cache `list` writes, refreshed in the background from the lab cloud when missing.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{cerveza, cmd, lab_command, product, start_new};

/// What bash completes for `words` (the last one being completed), with the cache in
/// `cache`.
fn bash_complete(p: &str, cache: &Path, words: &[&str]) -> Vec<String> {
    bash_complete_with(p, cache, words, &[])
}

/// [`bash_complete`] with `env` set for bash and the cerveza it runs.
fn bash_complete_with(p: &str, cache: &Path, words: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let script = cmd(p).args(["completions", "bash"]).output().unwrap();
    assert!(script.status.success());
    let bin = Path::new(env!("CARGO_BIN_EXE_cerveza")).parent().unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let last = words.len() - 1;
    let drive = format!(
        "COMP_WORDS=({words}); COMP_CWORD={last}; COMP_TYPE=9; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
         _clap_complete_cerveza cerveza {cur} {prev}\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        line = words.join(" "),
        cur = quoted[last],
        prev = quoted[last.saturating_sub(1)],
    );
    let out = lab_command("bash", p)
        .args(["--norc", "--noprofile", "-c"])
        .arg(format!(
            "{}\n{drive}",
            String::from_utf8_lossy(&script.stdout)
        ))
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("XDG_CACHE_HOME", cache)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    got.sort();
    got
}

#[test]
fn bash_completes_commands_flags_profiles_and_the_hostnames_of_the_last_list() {
    let p = product();
    let cache = tempfile::tempdir().unwrap();
    let m = ["cerveza", "-m", p.as_str()];
    let words = |rest: &[&str]| -> Vec<String> {
        let mut w: Vec<&str> = m.to_vec();
        w.extend_from_slice(rest);
        bash_complete(&p, cache.path(), &w)
    };
    assert!(words(&["sto"]).contains(&"stop".to_owned()));
    assert_eq!(words(&["export", "nag"]), ["nagios"]);
    assert_eq!(
        words(&["start", "x01", "--profile", "Ub"]),
        ["UbuntuGeneric32Bit"],
        "the abstract UbuntuBase is not offered"
    );

    // No cache yet: nothing offered, at once; a refresh starts in the background.
    let started = Instant::now();
    assert_eq!(words(&["stop", "web"]), Vec::<String>::new());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    start_new(&p, "web01", "us-east-1a", "UbuntuGeneric32Bit");
    start_new(&p, "web02", "eu-west-1a", "UbuntuGeneric32Bit");
    // `list` writes the cache.
    let r = lab_command(env!("CARGO_BIN_EXE_cerveza"), &p)
        .env("XDG_CACHE_HOME", cache.path())
        .args(["-m", &p, "-q", "list"])
        .output()
        .unwrap();
    assert!(r.status.success());
    assert_eq!(words(&["stop", "web"]), ["web01", "web02"]);
    assert_eq!(words(&["stop", "@"]), ["@web"]);
    assert_eq!(words(&["list", "!web0"]), ["!web01", "!web02"]);
    assert!(words(&["list", "zone:eu"]).contains(&"zone:eu-west-1a".to_owned()));
    assert_eq!(words(&["show", "web0"]), ["web01", "web02"]);
}

#[test]
fn a_missing_cache_is_filled_in_the_background_from_the_cloud() {
    let p = product();
    start_new(&p, "db01", "us-east-1a", "UbuntuGeneric32Bit");
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(
        bash_complete(&p, cache.path(), &["cerveza", "-m", &p, "stop", "d"]),
        Vec::<String>::new()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = cache.path().join(format!("cerveza/hosts-{p}.tsv"));
    while !file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(file.exists(), "the background list never wrote {file:?}");
    assert_eq!(
        bash_complete(&p, cache.path(), &["cerveza", "-m", &p, "stop", "d"]),
        ["db01"]
    );
    // clap's usual variable, left in the environment by another tool, changes nothing.
    let r: support::Run = cmd(&p)
        .env("COMPLETE", "bash")
        .args(["profiles", "list"])
        .output()
        .unwrap()
        .into();
    assert!(
        r.code == 0 && r.stdout.contains("UbuntuGeneric32Bit"),
        "{r:#?}"
    );
    // A word that is not UTF-8 (a file name, say) completes to nothing, without a panic.
    let bad = {
        use std::os::unix::ffi::OsStrExt as _;
        std::ffi::OsStr::from_bytes(b"d\xff").to_owned()
    };
    let r: support::Run = cmd(&p)
        .env("CERVEZA_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "4")
        .env("_CLAP_IFS", "\n")
        .args(["--", "cerveza", "-m", &p, "stop"])
        .arg(&bad)
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(!r.stderr.contains("panicked"), "{r:#?}");
    // Shells get scripts for each of them.
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let r = cerveza(&p, &["completions", shell]).ok();
        assert!(r.stdout.contains("cerveza"), "{shell}: {r:#?}");
    }
}

#[test]
fn completion_never_waits_for_a_cloud_that_does_not_answer() {
    // An endpoint that takes connections and never answers: the refresh the Tab starts
    // in the background hangs there until its own timeouts (60 s per region here); the
    // Tab must not wait for it.
    let p = product();
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", black_hole.local_addr().unwrap());
    let cache = tempfile::tempdir().unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("CERVEZA_REGION_TIMEOUT", "60s"),
    ];
    let started = Instant::now();
    let got = bash_complete_with(
        &p,
        cache.path(),
        &["cerveza", "-m", &p, "stop", "web"],
        &env,
    );
    let took = started.elapsed();
    assert_eq!(got, Vec::<String>::new());
    // Two processes start here (the script, then the completer); a wait on the cloud
    // would take the 60 s region timeout.
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(black_hole);
}
