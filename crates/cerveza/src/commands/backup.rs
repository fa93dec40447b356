//! `cerveza backup SELECTION` (one crash-consistent snapshot set of each host's data
//! volumes) and `cerveza backup list` (the sets, their state, size and age). See
//! `cerveza_core::backup` for what a set is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use cerveza_core::backup::{self, BackupSet, SetState, Snapshot, SnapshotState};
use cerveza_core::model::{Instance, InstanceState, Volume, VolumeId};
use cerveza_core::ports::{Compute as _, ComputeRead as _};
use cerveza_core::selection::{Candidate, Selection};
use cerveza_core::{tags, Hostname, Region};
use futures::stream::{self, StreamExt as _};
use serde::Serialize;

use super::Ctx;
use crate::cli::Output;
use crate::exit;
use crate::output::{self, Table};

/// Hosts snapshotted at once (CreateSnapshots is paced on EC2's bucket anyway).
const AT_ONCE: usize = 16;

/// One host's row of `backup`.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    host: String,
    /// The set made (none: the host has no data volumes).
    pub(super) set: Option<String>,
    region: String,
    snapshots: Vec<String>,
    size_gb: i64,
    /// completed, pending, error, or "no data volumes".
    pub(super) state: String,
    /// `--freeze`: the mount points frozen while the set was taken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    frozen: Vec<String>,
    /// A copy (`--copy-to`): the region of the set it copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    copied_from: Option<String>,
}

/// Runs `backup SELECTION [--wait] [--copy-to REGION…]` (without --copy-to, the
/// config's `[backup] copy-to`).
pub async fn run(
    ctx: &Ctx,
    selection: &[String],
    wait: bool,
    copy_to: &[Region],
    freeze: Option<Duration>,
) -> Result<u8> {
    let copy_to = if copy_to.is_empty() {
        &ctx.config.backup_copy_to[..]
    } else {
        copy_to
    };
    if selection.is_empty() {
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            "which hosts? `cerveza backup SELECTION` (e.g. db01, 'db*', profile:Mysql); `cerveza backup list` lists the sets"
        ));
    }
    let sel = Selection::parse_all(selection)?;
    ctx.config.product()?;
    let backends = ctx.backends().await;
    let listing = ctx.live_fleet(&backends).await?;
    let chosen = super::remote::select(&listing.instances, &sel, "host", |i| {
        matches!(i.state, InstanceState::Running | InstanceState::Stopped)
    })?;
    let now = cerveza_core::lifecycle::now();
    // Every volume attached to the chosen instances: one read per region.
    let attached = attached_volumes(&backends, &chosen).await;
    let rows: Vec<Result<Row, (String, String)>> = stream::iter(chosen)
        .map(|i| {
            let (backends, attached) = (&backends, &attached);
            async move {
                match attached.get(&i.region) {
                    Some(Ok(vols)) => one(ctx, backends, i, vols, now, freeze, None).await,
                    Some(Err(e)) => Err((
                        i.host().unwrap_or("?").to_owned(),
                        format!("listing the volumes attached to {}: {e}", i.id),
                    )),
                    None => Err((
                        i.host().unwrap_or("?").to_owned(),
                        "its region was not read".to_owned(),
                    )),
                }
            }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let mut failed = 0;
    let mut done: Vec<Row> = Vec::new();
    for r in rows {
        match r {
            Ok(row) => done.push(row),
            Err((host, why)) => {
                failed += 1;
                eprintln!("{} {host}: {why}", crate::colour::error_label());
            }
        }
    }
    if wait || !copy_to.is_empty() {
        wait_completed(ctx, &backends, &mut done).await?;
    }
    if !copy_to.is_empty() {
        let mut copies = Vec::new();
        for r in copy_sets(ctx, &backends, &done, copy_to).await? {
            match r {
                Ok(row) => copies.push(row),
                Err((host, why)) => {
                    failed += 1;
                    eprintln!("{} {host}: {why}", crate::colour::error_label());
                }
            }
        }
        wait_completed(ctx, &backends, &mut copies).await?;
        done.extend(copies);
    }
    done.sort_by(|a, b| {
        a.host
            .cmp(&b.host)
            .then(a.copied_from.is_some().cmp(&b.copied_from.is_some()))
            .then(a.region.cmp(&b.region))
    });
    if ctx.output == Output::Json {
        output::print_json(&done)?;
    } else {
        let mut t = Table::new(&["HOST", "SET", "REGION", "SNAPSHOTS", "SIZE", "STATE"]);
        for r in &done {
            t.row(vec![
                r.host.clone(),
                r.set.clone().unwrap_or_else(|| "-".into()),
                match &r.copied_from {
                    Some(_) => format!("{} (copy)", r.region),
                    None => r.region.clone(),
                },
                r.snapshots.len().to_string(),
                format!("{} GiB", r.size_gb),
                r.state.clone(),
            ]);
        }
        output::emit(&t.render());
    }
    Ok(if failed == 0 {
        exit::OK
    } else if done.is_empty() {
        exit::FAILURE
    } else {
        exit::PARTIAL
    })
}

/// The volumes attached to `instances`, per region (one read each, all at once).
pub(super) async fn attached_volumes(
    backends: &super::Backends,
    instances: &[&Instance],
) -> BTreeMap<Region, Result<Vec<Volume>, String>> {
    let mut by_region: BTreeMap<Region, Vec<cerveza_core::model::InstanceId>> = BTreeMap::new();
    for i in instances {
        by_region
            .entry(i.region.clone())
            .or_default()
            .push(i.id.clone());
    }
    futures::future::join_all(by_region.into_iter().map(|(region, ids)| async move {
        let read = backends.ec2.attached_volumes(&region, &ids).await;
        (region, read.map_err(|e| e.to_string()))
    }))
    .await
    .into_iter()
    .collect()
}

/// `i`'s data volumes (those of its volume profiles, attached to it) and the other
/// volumes attached to it (the root, one attached by hand), from `attached` (the
/// volumes attached to the instances of its region).
fn data_volumes(
    i: &Instance,
    host: &Hostname,
    product: &cerveza_core::Product,
    attached: &[Volume],
) -> (Vec<VolumeId>, Vec<VolumeId>) {
    let (data, rest): (Vec<&Volume>, Vec<&Volume>) = attached
        .iter()
        .filter(|v| v.attached_to.as_ref() == Some(&i.id))
        .partition(|v| {
            v.device().is_some()
                && v.host() == Some(host.as_str())
                && v.tags.get(tags::PRODUCT).map(String::as_str) == Some(product.as_str())
        });
    let ids = |vs: Vec<&Volume>| vs.into_iter().map(|v| v.id.clone()).collect();
    (ids(data), ids(rest))
}

/// Snapshots one host's data volumes as one set (`attached`: the volumes attached to
/// the instances of its region). `move_to`: the set is a move's, to that zone (tagged
/// [`backup::MOVE_TO`]).
pub(super) async fn one(
    ctx: &Ctx,
    backends: &super::Backends,
    i: &Instance,
    attached: &[Volume],
    now: i64,
    freeze: Option<Duration>,
    move_to: Option<&cerveza_core::Zone>,
) -> Result<Row, (String, String)> {
    let host_name = i.host().unwrap_or("?").to_owned();
    let fail = |why: String| (host_name.clone(), why);
    let host = Hostname::parse(&host_name).map_err(|e| fail(e.to_string()))?;
    let product = ctx.config.product().map_err(|e| fail(e.to_string()))?;
    let (data, exclude) = data_volumes(i, &host, product, attached);
    if data.is_empty() {
        return Ok(Row {
            host: host_name,
            set: None,
            region: i.region.to_string(),
            snapshots: Vec::new(),
            size_gb: 0,
            state: "no data volumes".into(),
            frozen: Vec::new(),
            copied_from: None,
        });
    }
    let set = backup::set_id(&host, now, fastrand::u16(..));
    // The host's own tags (its profile's), then cerveza's.
    let mut set_tags: BTreeMap<String, String> = i
        .tags
        .iter()
        .filter(|(k, _)| !tags::is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    set_tags.insert(tags::NAME.into(), format!("{host} backup {set}"));
    set_tags.insert(tags::PRODUCT.into(), product.to_string());
    set_tags.insert(tags::HOST.into(), host.to_string());
    if let Some(p) = i.profile() {
        set_tags.insert(tags::PROFILE.into(), p.to_owned());
    }
    set_tags.insert(backup::SET.into(), set.clone());
    set_tags.insert(backup::MEMBERS.into(), data.len().to_string());
    if let Some(z) = move_to {
        set_tags.insert(backup::MOVE_TO.into(), z.to_string());
    }
    if !ctx.quiet {
        eprintln!(
            "{host}: snapshotting {} data volume(s) of {} as set {set}",
            data.len(),
            i.id
        );
    }
    // --freeze: a running host's data filesystems at rest for the instant of the call.
    let frozen = match freeze {
        Some(bound) if i.state == InstanceState::Running => {
            let profiles = ctx.profiles().map_err(|e| fail(format!("--freeze: {e}")))?;
            let mount_points = super::freeze::mount_points(&profiles, i).ok_or_else(|| {
                fail(format!(
                    "--freeze: its profile {} is not in the profiles directory, so its mount points are unknown; nothing was snapshotted",
                    i.profile().unwrap_or("?")
                ))
            })?;
            let f = super::freeze::freeze(ctx, backends, i, mount_points, bound)
                .await
                .map_err(|why| fail(format!("--freeze: {why}; nothing was snapshotted (without --freeze, a set is crash-consistent)")))?;
            if !ctx.quiet {
                eprintln!(
                    "{host}: froze {} for at most {}s",
                    if f.frozen.is_empty() {
                        "nothing (no data filesystem mounted)".to_owned()
                    } else {
                        f.frozen.join(" ")
                    },
                    bound.as_secs()
                );
            }
            #[cfg(feature = "test-hooks")]
            if std::env::var("CERVEZA_FAILPOINT").as_deref() == Ok("after-freeze") {
                eprintln!("cerveza: failpoint after-freeze: aborting while frozen");
                std::process::abort();
            }
            Some(f)
        }
        _ => None,
    };
    let made = backends
        .ec2
        .create_snapshots(&i.region, &i.id, &data, &exclude, &set_tags)
        .await;
    if let (Some(f), Some(bound)) = (&frozen, freeze) {
        match super::freeze::thaw(ctx, f, bound).await {
            Ok(()) if !ctx.quiet => eprintln!("{host}: thawed"),
            Ok(()) => {}
            Err(why) => eprintln!(
                "{} {host}: thawing: {why}; the host thaws itself within {}s of the freeze",
                crate::colour::warning_label(),
                bound.as_secs()
            ),
        }
    }
    let made = made.map_err(|e| fail(format!("snapshotting {}: {e}", i.id)))?;
    Ok(Row {
        frozen: frozen.map(|f| f.frozen).unwrap_or_default(),
        host: host_name,
        set: Some(set),
        region: i.region.to_string(),
        size_gb: made.iter().map(|s| i64::from(s.size_gb)).sum(),
        state: state_of(&made),
        snapshots: made.into_iter().map(|s| s.id).collect(),
        copied_from: None,
    })
}

/// Copies each completed set of `rows` to each region of `to` but its own (one
/// CopySnapshot per member, tagged as the member is, with where it came from), within
/// EC2's limits: a destination with too many copies in progress is asked again after a
/// pause (until the wait timeout), not failed. Members copied there already (a rerun,
/// another operator) are not copied again. One row per copy, its copies pending.
pub(super) async fn copy_sets(
    ctx: &Ctx,
    backends: &super::Backends,
    rows: &[Row],
    to: &[Region],
) -> Result<Vec<Result<Row, (String, String)>>> {
    let product = ctx.config.product()?;
    let wanted: Vec<&Row> = rows
        .iter()
        .filter(|r| r.set.is_some() && r.state == "completed")
        .collect();
    // The sets, read back with their members' tags, once per source region.
    let mut sets: Vec<BackupSet> = Vec::new();
    let sources: std::collections::BTreeSet<&str> =
        wanted.iter().map(|r| r.region.as_str()).collect();
    for region in sources {
        let region = Region::parse(region)?;
        sets.extend(backup::sets(
            backends.ec2.snapshots(&region, product).await?,
        ));
    }
    let jobs = to.iter().map(|dest| {
        let (sets, wanted) = (&sets, &wanted);
        async move {
            let mut out = Vec::new();
            // What is there already: copies are found by the snapshot they copy.
            let there: Vec<Snapshot> = match backends.ec2.snapshots(dest, product).await {
                Ok(s) => s
                    .into_iter()
                    .filter(|s| s.state != SnapshotState::Error)
                    .filter(|s| s.tags.contains_key(backup::COPIED_FROM))
                    .collect(),
                Err(e) => {
                    for r in wanted.iter() {
                        out.push(Err((
                            r.host.clone(),
                            format!("copying to {dest}: {dest} cannot be read: {e}"),
                        )));
                    }
                    return out;
                }
            };
            for r in wanted.iter().filter(|r| r.region != dest.as_str()) {
                let Some(set) = sets
                    .iter()
                    .find(|s| Some(&s.id) == r.set.as_ref() && s.region.as_str() == r.region)
                else {
                    out.push(Err((
                        r.host.clone(),
                        format!(
                            "copying to {dest}: set {} is not listed in {} any more",
                            r.set.as_deref().unwrap_or("?"),
                            r.region
                        ),
                    )));
                    continue;
                };
                out.push(copy_one(ctx, backends, set, dest, &there).await);
            }
            out
        }
    });
    Ok(futures::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect())
}

/// Copies one set's members to `dest` (those not in `there`, the copies in `dest`
/// before this command, yet).
async fn copy_one(
    ctx: &Ctx,
    backends: &super::Backends,
    set: &BackupSet,
    dest: &Region,
    there: &[Snapshot],
) -> Result<Row, (String, String)> {
    let fail = |why: String| {
        (
            set.host.clone(),
            format!("copying set {} to {dest}: {why}", set.id),
        )
    };
    if !ctx.quiet {
        eprintln!(
            "{}: copying set {} ({} snapshot(s), {} GiB) from {} to {dest}",
            set.host,
            set.id,
            set.members.len(),
            set.size_gb(),
            set.region
        );
    }
    let deadline = Instant::now() + ctx.config.wait_timeout;
    let mut copies = Vec::new();
    for m in &set.members {
        let tags = set.copy_tags(m);
        if there
            .iter()
            .any(|c| c.tags.get(backup::COPIED_FROM) == tags.get(backup::COPIED_FROM))
        {
            continue;
        }
        let mut pause = ctx.config.poll_interval.max(Duration::from_millis(200));
        let copy = loop {
            match backends.ec2.copy_snapshot(dest, m, &tags).await {
                Ok(c) => break c,
                // At most so many copies in progress per destination region (20, by
                // default): the next one goes when an earlier one is done.
                Err(e)
                    if (e.has_code("ResourceLimitExceeded") || e.kind.is_transient())
                        && Instant::now() + pause < deadline =>
                {
                    tracing::debug!(error = %e, "{dest}: copying {} again after a pause", m.id);
                    tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64())).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(fail(format!("{}: {e}", m.id))),
            }
        };
        copies.push(copy);
    }
    // Copied before (all of it, or some): this row waits for the whole set there.
    let mine = there
        .iter()
        .filter(|c| c.tags.get(backup::SET) == Some(&set.id))
        .cloned();
    let listed = backup::sets(mine.chain(copies).collect())
        .into_iter()
        .find(|s| s.id == set.id && &s.region == dest);
    let members = listed.map(|s| s.members).unwrap_or_default();
    Ok(Row {
        host: set.host.clone(),
        set: Some(set.id.clone()),
        region: dest.to_string(),
        size_gb: set.size_gb(),
        state: if members.len() == set.members.len() {
            state_of(&members)
        } else {
            "incomplete".into()
        },
        snapshots: members.into_iter().map(|s| s.id).collect(),
        frozen: Vec::new(),
        copied_from: Some(set.region.to_string()),
    })
}

/// The set an earlier run of a move of `i`'s host to `zone` took, while it still holds
/// the host's data: a move's set to that zone, pending or complete, of exactly the data
/// volumes attached now, taken after the instance last started (so nothing was written
/// after it; a set of the very second of a start is not taken for one). A rerun of a move killed after its snapshot, or while copying the set to
/// another region, goes on with it rather than snapshotting and copying all again.
/// None when there is no such set, or the region's snapshots cannot be read (the move
/// then takes a set of its own, as it would anyway).
pub(super) async fn taken_for_move(
    ctx: &Ctx,
    backends: &super::Backends,
    i: &Instance,
    attached: &[Volume],
    zone: &cerveza_core::Zone,
) -> Option<Row> {
    let host = Hostname::parse(i.host()?).ok()?;
    let product = ctx.config.product().ok()?;
    let last_start = i.launch_time?;
    let (data, _) = data_volumes(i, &host, product, attached);
    let data: std::collections::BTreeSet<&str> = data.iter().map(VolumeId::as_str).collect();
    let snaps = backends.ec2.snapshots(&i.region, product).await.ok()?;
    backup::sets(snaps)
        .into_iter()
        .filter(|s| s.host == host.as_str() && s.state() != SetState::Incomplete)
        .filter(|s| {
            s.members
                .iter()
                .all(|m| m.tags.get(backup::MOVE_TO).map(String::as_str) == Some(zone.as_str()))
        })
        .filter(|s| s.started().is_some_and(|t| t > last_start))
        .filter(|s| {
            let of: std::collections::BTreeSet<&str> = s
                .members
                .iter()
                .filter_map(|m| m.volume_id.as_deref())
                .collect();
            of == data
        })
        .max_by_key(BackupSet::started)
        .map(|s| Row {
            host: s.host.clone(),
            set: Some(s.id.clone()),
            region: s.region.to_string(),
            size_gb: s.size_gb(),
            state: state_of(&s.members),
            snapshots: s.members.iter().map(|m| m.id.clone()).collect(),
            frozen: Vec::new(),
            copied_from: None,
        })
}

fn state_of(snapshots: &[Snapshot]) -> String {
    if snapshots.iter().any(|s| s.state == SnapshotState::Error) {
        "error".into()
    } else if snapshots
        .iter()
        .all(|s| s.state == SnapshotState::Completed)
    {
        "completed".into()
    } else {
        "pending".into()
    }
}

/// Waits (at most the wait timeout) until every snapshot of `rows` is completed, and
/// updates their state.
pub(super) async fn wait_completed(
    ctx: &Ctx,
    backends: &super::Backends,
    rows: &mut [Row],
) -> Result<()> {
    let product = ctx.config.product()?;
    let deadline = Instant::now() + ctx.config.wait_timeout;
    let mut pause = ctx.config.poll_interval;
    loop {
        let regions: std::collections::BTreeSet<String> = rows
            .iter()
            .filter(|r| r.state == "pending")
            .map(|r| r.region.clone())
            .collect();
        if regions.is_empty() {
            return Ok(());
        }
        for region in regions {
            let region = cerveza_core::Region::parse(&region)?;
            let all = backends.ec2.snapshots(&region, product).await?;
            let by_id: BTreeMap<&str, &Snapshot> = all.iter().map(|s| (s.id.as_str(), s)).collect();
            for r in rows
                .iter_mut()
                .filter(|r| r.region == region.as_str() && r.state == "pending")
            {
                let now: Vec<Snapshot> = r
                    .snapshots
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()).map(|s| (*s).clone()))
                    .collect();
                if now.len() == r.snapshots.len() {
                    r.state = state_of(&now);
                }
            }
        }
        if Instant::now() + pause > deadline {
            anyhow::bail!(exit::Coded::new(
                exit::UNAVAILABLE,
                format!(
                    "snapshots still pending after {}: they go on in EBS; `cerveza backup list` shows when they are completed",
                    humantime::format_duration(ctx.config.wait_timeout)
                )
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// One row of `backup list`.
#[derive(Debug, Serialize)]
struct ListRow<'a> {
    host: &'a str,
    set: &'a str,
    region: &'a str,
    members: usize,
    expected: usize,
    state: SetState,
    size_gb: i64,
    started: Option<i64>,
    snapshots: Vec<&'a str>,
}

/// The product's snapshot sets of the hosts `selection` names, in every configured
/// region, and the regions that could not be read.
pub(super) async fn read_sets(
    ctx: &Ctx,
    backends: &super::Backends,
    selection: &[String],
) -> Result<(Vec<BackupSet>, Vec<String>)> {
    let sel = Selection::parse_all(selection)?;
    let product = ctx.config.product()?;
    let reads = futures::future::join_all(
        ctx.config
            .regions
            .iter()
            .map(|r| async move { (r, backends.ec2.snapshots(r, product).await) }),
    )
    .await;
    let mut snapshots = Vec::new();
    let mut failed = Vec::new();
    for (region, read) in reads {
        match read {
            Ok(s) => snapshots.extend(s),
            Err(e) => {
                eprintln!("{} {region}: {e}", crate::colour::warning_label());
                failed.push(region.to_string());
            }
        }
    }
    let sets = backup::sets(snapshots)
        .into_iter()
        .filter(|s| {
            sel.is_all()
                || sel.matches(&Candidate {
                    host: &s.host,
                    zone: None,
                    region: s.region.as_str(),
                    profile: s
                        .members
                        .first()
                        .and_then(|m| m.tags.get(tags::PROFILE))
                        .map(String::as_str),
                })
        })
        .collect();
    Ok((sets, failed))
}

/// Runs `backup list [SELECTION]`.
pub async fn list(ctx: &Ctx, selection: &[String]) -> Result<u8> {
    let backends = ctx.backends().await;
    let (sets, failed) = read_sets(ctx, &backends, selection).await?;
    let rows: Vec<ListRow<'_>> = sets
        .iter()
        .map(|s| ListRow {
            host: &s.host,
            set: &s.id,
            region: s.region.as_str(),
            members: s.members.len(),
            expected: s.expected,
            state: s.state(),
            size_gb: s.size_gb(),
            started: s.started(),
            snapshots: s.members.iter().map(|m| m.id.as_str()).collect(),
        })
        .collect();
    if ctx.output == Output::Json {
        output::print_json(&rows)?;
    } else {
        let now = cerveza_core::lifecycle::now();
        let mut t = Table::new(&["HOST", "SET", "REGION", "MEMBERS", "STATE", "SIZE", "AGE"]);
        for r in &rows {
            t.row(vec![
                r.host.to_owned(),
                r.set.to_owned(),
                r.region.to_owned(),
                format!("{}/{}", r.members, r.expected),
                state_name(r.state).to_owned(),
                format!("{} GiB", r.size_gb),
                r.started
                    .map_or_else(|| "-".into(), |t| output::age(now - t)),
            ]);
        }
        output::emit(&t.render());
    }
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

/// One row of `backup prune`.
#[derive(Debug, Serialize)]
struct PruneRow<'a> {
    host: &'a str,
    set: &'a str,
    region: &'a str,
    state: SetState,
    action: backup::Prune,
}

/// Runs `backup prune [SELECTION] (--keep N | --older-than D) [--dry-run]`.
pub async fn prune(
    ctx: &Ctx,
    selection: &[String],
    keep: Option<usize>,
    older_than: Option<Duration>,
    dry_run: bool,
) -> Result<u8> {
    let backends = ctx.backends().await;
    let (sets, failed) = read_sets(ctx, &backends, selection).await?;
    if !failed.is_empty() {
        // A host's newest complete set may be in a region that did not answer.
        anyhow::bail!(exit::Coded::new(
            exit::PARTIAL,
            format!(
                "not pruning while {} cannot be read: a host's newest complete set may be there",
                failed.join(", ")
            )
        ));
    }
    let now = cerveza_core::lifecycle::now();
    let older = older_than.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let actions = backup::prune(&sets, keep, older, now);
    let mut errors = 0;
    for (set, action) in sets.iter().zip(&actions) {
        if *action != backup::Prune::Delete || dry_run {
            continue;
        }
        if !ctx.quiet {
            eprintln!(
                "{}: deleting set {} ({} snapshot(s))",
                set.host,
                set.id,
                set.snapshots().count()
            );
        }
        for m in set.snapshots() {
            if let Err(e) = backends.ec2.delete_snapshot(&set.region, &m.id).await {
                errors += 1;
                eprintln!(
                    "{} {}: deleting {} of set {}: {e}",
                    crate::colour::error_label(),
                    set.host,
                    m.id,
                    set.id
                );
            }
        }
    }
    let rows: Vec<PruneRow<'_>> = sets
        .iter()
        .zip(&actions)
        .map(|(s, a)| PruneRow {
            host: &s.host,
            set: &s.id,
            region: s.region.as_str(),
            state: s.state(),
            action: *a,
        })
        .collect();
    if ctx.output == Output::Json {
        output::print_json(&rows)?;
    } else {
        let mut t = Table::new(&["HOST", "SET", "REGION", "STATE", "ACTION"]);
        for r in &rows {
            let action = match (r.action, dry_run) {
                (backup::Prune::Delete, true) => "would delete",
                (backup::Prune::Delete, false) => "deleted",
                (backup::Prune::Keep, _) => "kept",
                (backup::Prune::KeepLastComplete, _) => "kept: its newest complete set",
                (backup::Prune::KeepPending, _) => "kept: still being taken",
            };
            t.row(vec![
                r.host.to_owned(),
                r.set.to_owned(),
                r.region.to_owned(),
                state_name(r.state).to_owned(),
                action.to_owned(),
            ]);
        }
        output::emit(&t.render());
    }
    Ok(if errors == 0 { exit::OK } else { exit::PARTIAL })
}

fn state_name(s: SetState) -> &'static str {
    match s {
        SetState::Complete => "complete",
        SetState::Pending => "pending",
        SetState::Incomplete => "incomplete",
    }
}
