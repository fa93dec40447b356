//! `cerveza backup SELECTION`: one crash-consistent snapshot set of each host's data
//! volumes, waited for and copied to other regions when asked (`copy`); `backup list`
//! and `backup prune` are in `sets`. See `cerveza_core::backup` for what a set is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use cerveza_core::backup::{self, BackupSet, SetState, Snapshot, SnapshotState};
use cerveza_core::lifecycle::STEADY_TRIES;
use cerveza_core::model::{Instance, InstanceState, Volume, VolumeId};
use cerveza_core::ports::{Compute as _, ComputeRead as _, ProviderErrorKind, ProviderResult};
use cerveza_core::selection::Selection;
use cerveza_core::{tags, Hostname, Product, Region};
use futures::stream::{self, StreamExt as _};
use serde::Serialize;

mod copy;
mod sets;

pub(super) use copy::copy_sets;
pub(super) use sets::read_sets;
pub use sets::{list, prune};

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
    if let Some(r) = copy_to.iter().find(|r| !ctx.config.regions.contains(r)) {
        // Copies there would be made, and then never listed, pruned or restored.
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            format!(
                "copy-to {r}: not among the configured regions ({}): `backup list`, `prune` and `restore` would never see its copies; add it to `regions` first",
                ctx.config.regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )
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
    let mut set = backup::set_id(&host, now, fastrand::u16(..));
    // The host's own tags (its profile's), then cerveza's; the set's id and name are
    // added per request (see take_set).
    let mut set_tags: BTreeMap<String, String> = i
        .tags
        .iter()
        .filter(|(k, _)| !tags::is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    set_tags.insert(tags::PRODUCT.into(), product.to_string());
    set_tags.insert(tags::HOST.into(), host.to_string());
    if let Some(p) = i.profile() {
        set_tags.insert(tags::PROFILE.into(), p.to_owned());
    }
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
    let made = take_set(
        ctx,
        backends,
        (i, &host, product),
        (&data, &exclude),
        &set_tags,
        &mut set,
    )
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

/// Takes `i`'s set (`volumes`: its data volumes, and the other volumes attached to it,
/// left out) with `tags`, under the id `set`: one CreateSnapshots, sent again after a
/// pause while EC2 answers throttled or unreachable ([`STEADY_TRIES`] in all). CreateSnapshots
/// has no idempotency token, and an answer lost on its way back (a 5xx, a reset) may
/// hide a set that was taken: it is looked for by its id first, and a request sent
/// again takes a new id (`set` says which one was taken). A lost answer therefore
/// leaves at worst one more complete set, never one id on two snapshots of a volume (a
/// set no restore would take).
async fn take_set(
    ctx: &Ctx,
    backends: &super::Backends,
    (i, host, product): (&Instance, &Hostname, &Product),
    (data, exclude): (&[VolumeId], &[VolumeId]),
    tags: &BTreeMap<String, String>,
    set: &mut String,
) -> ProviderResult<Vec<Snapshot>> {
    let mut backoff = super::Backoff::new(ctx.config.poll_interval);
    let mut tries = 1;
    loop {
        let mut t = tags.clone();
        t.insert(tags::NAME.into(), format!("{host} backup {set}"));
        t.insert(backup::SET.into(), set.clone());
        let e = match backends
            .ec2
            .create_snapshots(&i.region, &i.id, data, exclude, &t)
            .await
        {
            Err(e) if e.kind.is_transient() && tries < STEADY_TRIES => e,
            other => return other,
        };
        tracing::debug!(error = %e, "{host}: CreateSnapshots of set {set} sent again after a pause");
        backoff.pause().await;
        tries += 1;
        if e.kind == ProviderErrorKind::Throttled {
            // Refused: nothing was taken; the same id again.
            continue;
        }
        if let Ok(listed) = backends.ec2.snapshots(&i.region, product).await {
            let taken: Vec<Snapshot> = listed
                .into_iter()
                .filter(|s| s.tags.get(backup::SET) == Some(&*set))
                .collect();
            if !taken.is_empty() {
                return Ok(taken);
            }
        }
        // Not seen (or not readable): it may still have been taken; a new id.
        *set = backup::set_id(host, cerveza_core::lifecycle::now(), fastrand::u16(..));
    }
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
/// updates their state. A read EC2 answers throttled or unreachable is made again after
/// the next pause.
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
            let all = match backends.ec2.snapshots(&region, product).await {
                Ok(all) => all,
                // EBS goes on meanwhile: asked again after the pause.
                Err(e) if e.kind.is_transient() => {
                    tracing::debug!(error = %e, "{region}: snapshots read again after a pause");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
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
