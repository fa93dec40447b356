//! `backup --freeze`: a host's data filesystems frozen (fsfreeze) for the instant
//! CreateSnapshots takes, so each member holds a filesystem at rest, not only blocks
//! as a crash leaves them. The freeze is bounded: the script that freezes first starts
//! a watchdog on the host, in a session of its own, that thaws every mount point after
//! the bound whatever happens to cerveza or the ssh session (killed, cut off); cerveza
//! thaws them itself as soon as CreateSnapshots has answered, or failed. A mount point
//! that is not mounted is not frozen: fsfreeze on a plain directory would freeze the
//! filesystem under it, the root.

use std::time::Duration;

use base64::Engine as _;
use cerveza_core::model::Instance;
use cerveza_remote::{Status, Target};

use super::{remote, Backends, Ctx};

/// The script run on the host (`freeze BOUND FSFREEZE MP…` or `thaw 0 FSFREEZE MP…`).
pub(crate) const SCRIPT: &str = include_str!("freeze.sh");

/// The remote command: the script, decoded and run by `sh` with its arguments, each
/// single-quoted.
pub(crate) fn command(action: &str, bound: Duration, mount_points: &[String]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(SCRIPT);
    let mut words = vec![
        action.to_owned(),
        bound.as_secs().max(1).to_string(),
        "sudo -n fsfreeze".to_owned(),
    ];
    words.extend(mount_points.iter().cloned());
    let args: Vec<String> = words.iter().map(|w| quote(w)).collect();
    format!(
        "{}echo {b64} | base64 -d | sh -s -- {}",
        path_prefix(),
        args.join(" ")
    )
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `PATH=DIR:$PATH; ` with `CERVEZA_TEST_PATH_PREFIX=DIR` in builds with the
/// `test-hooks` feature (stand-ins for sudo, fsfreeze and mountpoint: the lab's hosts
/// share the test machine's filesystems, which must not be frozen); nothing otherwise.
#[cfg(feature = "test-hooks")]
fn path_prefix() -> String {
    match std::env::var("CERVEZA_TEST_PATH_PREFIX") {
        Ok(d) if !d.is_empty() => format!("PATH={}:\"$PATH\"; ", quote(&d)),
        _ => String::new(),
    }
}

#[cfg(not(feature = "test-hooks"))]
fn path_prefix() -> String {
    String::new()
}

/// The mount points of `i`'s volume profiles (none: its profile is unknown here).
pub(crate) fn mount_points(
    profiles: &cerveza_core::profile::ProfileSet,
    i: &Instance,
) -> Option<Vec<String>> {
    let profile = profiles.instance(i.profile()?).ok()?;
    Some(
        profile
            .volume_profiles
            .iter()
            .filter_map(|n| profiles.volume(n))
            .map(|vp| vp.mount_point.clone())
            .collect(),
    )
}

/// A host whose data filesystems are frozen: [`thaw`] it.
pub(crate) struct Frozen {
    target: Target,
    mount_points: Vec<String>,
    /// What the script froze (mounted ones only).
    pub(crate) frozen: Vec<String>,
}

/// Freezes `i`'s `mount_points` (for at most `bound`). An error says why nothing is
/// frozen (what was frozen before the failure was thawed by the script).
pub(crate) async fn freeze(
    ctx: &Ctx,
    backends: &Backends,
    i: &Instance,
    mount_points: Vec<String>,
    bound: Duration,
) -> Result<Frozen, String> {
    let (targets, refused) = remote::reach(ctx, backends, &[i], false, Some(bound)).await;
    if let Some(r) = refused.first() {
        return Err(format!(
            "cannot reach it through ssh to freeze its filesystems: {}",
            last_line(&r.stderr)
        ));
    }
    let Some(target) = targets.into_iter().next() else {
        return Err("it has no private address to reach through ssh".into());
    };
    let out = run(
        ctx,
        &target,
        &command("freeze", bound, &mount_points),
        bound,
    )
    .await?;
    let frozen = out
        .lines()
        .find_map(|l| l.strip_prefix("frozen:"))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(Frozen {
        target,
        mount_points,
        frozen,
    })
}

/// Thaws what [`freeze`] froze (every mount point it was given: thawing one that is
/// not frozen does nothing). An error means the host thaws itself at the bound.
pub(crate) async fn thaw(ctx: &Ctx, f: &Frozen, bound: Duration) -> Result<(), String> {
    run(
        ctx,
        &f.target,
        &command("thaw", Duration::ZERO, &f.mount_points),
        bound,
    )
    .await
    .map(drop)
}

async fn run(ctx: &Ctx, target: &Target, command: &str, bound: Duration) -> Result<String, String> {
    let mut opts = remote::ssh_options(ctx);
    opts.fanout = 1;
    opts.command_timeout = Some(bound);
    let command = command.to_owned();
    let results = cerveza_remote::run_each(
        std::slice::from_ref(target),
        &|_| vec![command.clone()],
        &opts,
        &|_, _, _| {},
    )
    .await;
    let Some(r) = results.into_iter().next() else {
        return Err("ssh ran nothing".into());
    };
    match r.status {
        Status::Ok => Ok(r.stdout),
        Status::TimedOut => Err(format!("ssh did not answer within {}s", bound.as_secs())),
        Status::Unreachable => Err(format!("unreachable: {}", last_line(&r.stderr))),
        Status::Failed(c) => Err(format!("exit {c}: {}", last_line(&r.stderr))),
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| crate::output::clean(l.trim()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_quotes_every_argument_and_carries_the_script() {
        let c = super::command(
            "freeze",
            std::time::Duration::from_secs(30),
            &["/var/lib/my sql".into(), "/data/it's".into()],
        );
        assert!(
            c.ends_with(r"| base64 -d | sh -s -- 'freeze' '30' 'sudo -n fsfreeze' '/var/lib/my sql' '/data/it'\''s'"),
            "{c}"
        );
    }

    #[test]
    #[cfg(not(feature = "test-hooks"))]
    fn a_default_build_runs_the_hosts_own_fsfreeze() {
        // No other test reads the variable.
        std::env::set_var("CERVEZA_TEST_PATH_PREFIX", "/tmp/fakes");
        assert!(super::command("thaw", std::time::Duration::ZERO, &[]).starts_with("echo "));
        std::env::remove_var("CERVEZA_TEST_PATH_PREFIX");
    }
}
