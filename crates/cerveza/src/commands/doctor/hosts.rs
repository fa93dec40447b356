//! The on-host side of `doctor`: one read-only script per host through ssh (the same
//! addresses, user, jump host and fan-out as `remote`), judged here.

use std::collections::BTreeMap;
use std::hash::{BuildHasher as _, Hasher as _};

use anyhow::Result;
use cerveza_core::fleet::Listing;
use cerveza_core::model::Instance;
use cerveza_core::selection::Selection;
use cerveza_doctor::host::{self, HostFiles, PuppetHost, Verdict, WantedVolume};
use cerveza_doctor::{Check, Finding};
use cerveza_remote::{HostResult, Status, Target};

use super::{checked, CheckReport, DoctorArgs};
use crate::commands::{remote, Backends, Ctx};

/// A marker no file on the host can know in advance.
fn marker() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("@@cerveza-doctor-{:016x}", h.finish())
}

/// Where the host's `/` is: `CERVEZA_TEST_DOCTOR_ROOT/<host>` in builds with the
/// `test-hooks` feature (the lab's sshd hosts all share one filesystem), `/` otherwise.
#[cfg(feature = "test-hooks")]
fn root_of(host: &str) -> String {
    match std::env::var("CERVEZA_TEST_DOCTOR_ROOT") {
        Ok(r) if !r.is_empty() => format!("{}/{host}", r.trim_end_matches('/')),
        _ => String::new(),
    }
}

/// A release build reads each host's own files, whatever the environment says.
#[cfg(not(feature = "test-hooks"))]
fn root_of(_host: &str) -> String {
    String::new()
}

/// Why a host's script gave nothing to judge.
fn failure(r: &HostResult) -> String {
    let last = r
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", crate::output::clean(l.trim())))
        .unwrap_or_default();
    match r.status {
        Status::Unreachable => format!("unreachable{last}"),
        Status::TimedOut => "timed out".into(),
        Status::Failed(c) => format!("the check script failed with exit code {c}{last}"),
        Status::Ok => format!("the check script's output ended early{last}"),
    }
}

/// Runs the wanted on-host checks on the running hosts the selection names.
pub(super) async fn checks(
    ctx: &Ctx,
    backends: &Backends,
    listing: &Listing,
    sel: &Selection,
    wanted: &[Check],
    args: &DoctorArgs,
) -> Result<Vec<CheckReport>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let chosen: Vec<&Instance> = match remote::running(&listing.instances, sel) {
        Ok(c) => c,
        Err(_) if sel.is_all() => {
            return Ok(wanted.iter().map(|c| CheckReport::skipped(*c)).collect())
        }
        Err(e) => return Err(e),
    };
    let (targets, refused) =
        remote::reach(ctx, backends, &chosen, args.public, Some(args.timeout)).await;
    let mut unreachable: Vec<Finding> = chosen
        .iter()
        .filter_map(|i| i.host())
        .filter(|h| !targets.iter().any(|t| t.host == *h) && !refused.iter().any(|r| r.host == *h))
        .map(|h| Finding::new(h, "has no address of that kind"))
        .collect();
    unreachable.extend(refused.iter().map(|r| Finding::new(&r.host, failure(r))));
    let mut opts = remote::ssh_options(ctx);
    opts.fanout = args.fanout.unwrap_or(64);
    opts.command_timeout = Some(args.timeout);
    let marker = marker();
    if !ctx.quiet && !targets.is_empty() {
        eprintln!("reading {} host(s) through ssh", targets.len());
    }
    let command_for = |t: &Target| vec![host::command(&root_of(&t.host), &marker)];
    let results = cerveza_remote::run_each(&targets, &command_for, &opts, &|_, _, _| {}).await;
    let mut read: Vec<(&str, HostFiles)> = Vec::new();
    for r in &results {
        let files = HostFiles::parse(&r.stdout, &marker);
        if r.status == Status::Ok && files.complete() {
            read.push((&r.host, files));
        } else {
            unreachable.push(Finding::new(&r.host, failure(r)));
        }
    }
    let group: BTreeMap<&str, &str> = chosen
        .iter()
        .filter_map(|i| Some((i.host()?, i.profile().unwrap_or("-"))))
        .collect();
    let volumes = if wanted.contains(&Check::DataVolumes) {
        wanted_volumes(ctx, &chosen)
    } else {
        BTreeMap::new()
    };
    let mut reports = Vec::new();
    for &check in wanted {
        let mut findings = Vec::new();
        let mut not_checked = unreachable.clone();
        for (h, files) in &read {
            let verdict = if check == Check::DataVolumes {
                let want: Option<Vec<WantedVolume<'_>>> = volumes.get(*h).map(|v| {
                    v.iter()
                        .map(|(name, mount_point)| WantedVolume { name, mount_point })
                        .collect()
                });
                host::data_volumes(files, want.as_deref()).into()
            } else {
                host::judge(check, files)
            };
            match verdict {
                Verdict::Pass => {}
                Verdict::Fail(problems) => {
                    findings.extend(problems.into_iter().map(|p| Finding::new(*h, p)));
                }
                Verdict::Unknown(why) => not_checked.push(Finding::new(*h, why)),
            }
        }
        if check == Check::Puppet {
            let minutes: Vec<(&str, host::Puppet)> = read
                .iter()
                .filter_map(|(h, f)| Some((*h, host::puppet(f).ok()?)))
                .collect();
            let spread: Vec<PuppetHost<'_>> = minutes
                .iter()
                .map(|(h, p)| PuppetHost {
                    host: h,
                    group: group.get(h).copied().unwrap_or("-"),
                    minutes: &p.minutes,
                })
                .collect();
            findings.extend(host::puppet_spread(&spread));
        }
        findings.sort_by(|a, b| a.subject.cmp(&b.subject));
        not_checked.sort_by(|a, b| a.subject.cmp(&b.subject));
        reports.push(CheckReport::new(
            check,
            checked(read.len(), "host(s)"),
            findings,
            not_checked,
        ));
    }
    Ok(reports)
}

/// The volume profiles (name, mount point) each host's instance profile names. A host
/// whose profile cannot be read (the profiles directory is broken, or the profile was
/// removed) is left out: the check then judges what the host itself has installed.
fn wanted_volumes(ctx: &Ctx, chosen: &[&Instance]) -> BTreeMap<String, Vec<(String, String)>> {
    let Ok(set) = ctx.profiles() else {
        return BTreeMap::new();
    };
    chosen
        .iter()
        .filter_map(|i| {
            let profile = set.instance(i.profile()?).ok()?;
            let volumes = profile
                .volume_profiles
                .iter()
                .filter_map(|n| set.volume(n))
                .map(|vp| (vp.name.clone(), vp.mount_point.clone()))
                .collect();
            Some((i.host()?.to_owned(), volumes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(not(feature = "test-hooks"))]
    fn a_default_build_reads_the_hosts_own_files() {
        // No other test reads the variable.
        std::env::set_var("CERVEZA_TEST_DOCTOR_ROOT", "/tmp/elsewhere");
        assert_eq!(super::root_of("web01"), "");
        std::env::remove_var("CERVEZA_TEST_DOCTOR_ROOT");
    }

    #[test]
    fn markers_differ_between_runs() {
        assert_ne!(super::marker(), super::marker());
        assert!(super::marker().starts_with("@@cerveza-doctor-"));
    }
}
