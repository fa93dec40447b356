//! `cerveza restore HOST` (a backup set's data made the host's, in any zone of the
//! set's region, and the host started there) and `cerveza move HOST --zone ZONE` (stop,
//! back up, restore there, start). The workflow and what it guarantees when killed are
//! in `cerveza_core::lifecycle::restore`.

use std::time::Duration;

use anyhow::Result;
use cerveza_core::backup::{BackupSet, SetState};
use cerveza_core::lifecycle::{Restored, Results};
use cerveza_core::model::{InstanceState, VolumeState};
use cerveza_core::ports::{ComputeRead as _, RegistryRead as _};
use cerveza_core::profile::ProfileSet;
use cerveza_core::{tags, ErrorKind, Hostname, Product, ProfileName, Zone};

use super::{report, report_plan_errors, Ctx, Wiring};
use crate::cli::WaitArgs;
use crate::exit;

/// What `restore` was asked.
pub struct RestoreArgs<'a> {
    /// `--from SET`.
    pub from: Option<&'a str>,
    /// `--zone ZONE`.
    pub zone: Option<&'a Zone>,
    /// `--delete-replaced`.
    pub delete_replaced: bool,
}

/// Runs `restore HOST [--from SET] [--zone ZONE] [--delete-replaced]`.
pub async fn restore(ctx: &Ctx, host: &str, args: &RestoreArgs<'_>, wait: &WaitArgs) -> Result<u8> {
    let host = Hostname::parse(host)?;
    let profiles = ctx.profiles()?;
    let wiring = ctx
        .wiring(ctx.backends().await, ctx.settings(wait)?, true)
        .await?;
    // Without --zone or --from: its newest complete set where it lives (its record's
    // zone), not a copy in another region, which would move it there.
    let lives = match (args.zone, args.from) {
        (None, None) => {
            let product = ctx.config.product()?;
            match wiring.backends.registry.get(product, &host).await {
                Ok(Some(rec)) => Some(rec.zone),
                _ => None,
            }
        }
        _ => None,
    };
    let set = choose_set(ctx, &wiring, &host, args.from, args.zone.or(lives.as_ref())).await?;
    let zone = match args.zone.or(lives.as_ref()) {
        Some(z) => z.clone(),
        None => home_zone(ctx, &wiring, &host, &set).await?,
    };
    finish(
        ctx,
        restore_and_start(ctx, wiring, &profiles, &set, &zone, args.delete_replaced).await?,
    )
}

/// Runs `move HOST --zone ZONE`.
pub async fn move_host(ctx: &Ctx, host: &str, zone: &Zone, wait: &WaitArgs) -> Result<u8> {
    let host = Hostname::parse(host)?;
    finish(ctx, moved(ctx, &host, zone, wait).await?)
}

/// A restore's or a move's start: its results, or why it was not started.
pub(crate) type Started = std::result::Result<Results, Vec<(Hostname, cerveza_core::Error)>>;

/// Reports a start as `start` does.
fn finish(ctx: &Ctx, started: Started) -> Result<u8> {
    match started {
        Ok(results) => report(ctx, &results),
        Err(errors) => Ok(report_plan_errors(&errors)),
    }
}

/// Moves `host` to `zone` with its data (see [`move_host`]): the start's results.
pub(crate) async fn moved(
    ctx: &Ctx,
    host: &Hostname,
    zone: &Zone,
    wait: &WaitArgs,
) -> Result<Started> {
    let host = host.clone();
    let product = ctx.config.product()?.clone();
    let profiles = ctx.profiles()?;
    let wiring = ctx
        .wiring(ctx.backends().await, ctx.settings(wait)?, true)
        .await?;
    let rec = wiring
        .backends
        .registry
        .get(&product, &host)
        .await
        .map_err(|e| {
            exit::Coded::new(
                exit::UNAVAILABLE,
                format!("{host}: a move reads and writes its registry record, which cannot be read: {e}"),
            )
        })?
        .ok_or_else(|| {
            exit::Coded::new(
                exit::NOT_FOUND,
                format!("{host}: not in the registry of product {product} (`cerveza list` shows the fleet)"),
            )
        })?;
    let region = zone.region();
    if !ctx.config.regions.contains(&region) {
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            format!(
                "{host}: region {region} is not among the configured regions ({}); add it to `regions` first",
                ctx.config.regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )
        ));
    }
    // A zone its region does not have, or a region that does not answer (the host's
    // own, where it is stopped and snapshotted first, or the one it moves to): refused
    // within the region timeout, before the host is stopped.
    {
        let lifecycle = wiring.lifecycle();
        if rec.zone.region() != region {
            lifecycle.check_zone_exists(&host, &rec.zone).await?;
        }
        lifecycle.check_zone_exists(&host, zone).await?;
    }
    let say = |what: String| {
        if !ctx.quiet {
            eprintln!("{host}: {what}");
        }
    };
    // A move (or restore) killed after making the new set: finish that one.
    let vols = wiring
        .backends
        .ec2
        .volumes(&region, &product, std::slice::from_ref(&host))
        .await?;
    if let Some(set_id) = vols
        .iter()
        .find(|v| v.tags.contains_key(tags::RESTORE_DEVICE))
        .and_then(|v| v.tags.get(tags::RESTORED_FROM))
    {
        let restore_zone = vols
            .iter()
            .find(|v| v.tags.get(tags::RESTORED_FROM) == Some(set_id))
            .and_then(|v| v.zone.clone())
            .unwrap_or_else(|| zone.clone());
        say(format!(
            "finishing the restore of set {set_id} in {restore_zone}, which had not ended"
        ));
        let set = choose_set(ctx, &wiring, &host, Some(set_id), Some(&restore_zone)).await?;
        return restore_and_start(ctx, wiring, &profiles, &set, &restore_zone, false).await;
    }
    if rec.zone == *zone {
        // Moved already (a rerun after the restore ended): make sure it runs there.
        say(format!(
            "its data lives in {zone} already; starting it there"
        ));
        return start_there(wiring, &profiles, &host, zone, None).await;
    }
    // 1. Stopped, so the set holds all it wrote.
    say("stopping it".into());
    let stopped = wiring.lifecycle().stop(vec![host.clone()]).await;
    let inst = match stopped.into_iter().next().map(|(_, r)| r) {
        Some(Ok(o)) => o.instance,
        Some(Err(e)) if e.kind() == ErrorKind::Failed && rec.state.is_gone() => {
            anyhow::bail!(exit::Coded::new(
                exit::FAILURE,
                format!("{host} has no instance (last state {}): a move snapshots its data through its instance; `cerveza start {host}` first, or `cerveza restore {host} --zone {zone}` from a set it has", rec.state)
            ))
        }
        Some(Err(e)) => return Err(e.into()),
        None => None,
    };
    let Some(inst) = inst.filter(|i| i.state == InstanceState::Stopped) else {
        anyhow::bail!(exit::Coded::new(
            exit::UNAVAILABLE,
            format!("{host}: its instance did not reach stopped; run the move again")
        ));
    };
    // 2. One set of its data, completed.
    let attached = super::backup::attached_volumes(&wiring.backends, &[&inst]).await;
    let attached = match attached.into_values().next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => anyhow::bail!(exit::Coded::new(
            exit::UNAVAILABLE,
            format!("{host}: listing the volumes attached to {}: {e}; nothing was moved (the host is stopped in {})", inst.id, rec.zone)
        )),
        None => Vec::new(),
    };
    // An earlier run of this move killed after its snapshot: its set, if the host has
    // not run since.
    let mut row =
        match super::backup::taken_for_move(ctx, &wiring.backends, &inst, &attached, zone).await {
            Some(row) => {
                say(format!(
                    "going on with set {}, which an earlier run of this move took ({})",
                    row.set.as_deref().unwrap_or("?"),
                    row.state
                ));
                row
            }
            None => super::backup::one(
                ctx,
                &wiring.backends,
                &inst,
                &attached,
                cerveza_core::lifecycle::now(),
                None,
                Some(zone),
            )
            .await
            .map_err(|(h, why)| anyhow::anyhow!("{h}: backing up: {why}"))?,
        };
    let Some(set_id) = row.set.clone() else {
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            format!("{host} has no data volumes: a move of a host without data is `cerveza terminate {host} --forget` and a start in {zone}")
        ));
    };
    #[cfg(feature = "test-hooks")]
    if std::env::var("CERVEZA_FAILPOINT").as_deref() == Ok("after-snapshot") {
        eprintln!("cerveza: failpoint after-snapshot: aborting after CreateSnapshots");
        std::process::abort();
    }
    say(format!("waiting for set {set_id} to complete"));
    super::backup::wait_completed(ctx, &wiring.backends, std::slice::from_mut(&mut row)).await?;
    if row.state != "completed" {
        anyhow::bail!(exit::Coded::new(
            exit::FAILURE,
            format!("{host}: set {set_id} is {}; nothing was moved (the host is stopped in {}); `cerveza move {host} --zone {zone}` tries again", row.state, rec.zone)
        ));
    }
    // To another region: the set is copied there first (a volume is made from a
    // snapshot in its own region).
    if region != rec.region() {
        say(format!("copying set {set_id} to {region}"));
        let mut copies = Vec::new();
        for r in super::backup::copy_sets(
            ctx,
            &wiring.backends,
            std::slice::from_ref(&row),
            std::slice::from_ref(&region),
        )
        .await?
        {
            copies.push(r.map_err(|(h, why)| {
                exit::Coded::new(exit::FAILURE, format!("{h}: {why}; nothing was moved (the host is stopped in {}); `cerveza move {host} --zone {zone}` tries again", rec.zone))
            })?);
        }
        super::backup::wait_completed(ctx, &wiring.backends, &mut copies).await?;
        if let Some(c) = copies.iter().find(|c| c.state != "completed") {
            anyhow::bail!(exit::Coded::new(
                exit::FAILURE,
                format!("{host}: the copy of set {set_id} in {region} is {}; nothing was moved (the host is stopped in {}); `cerveza move {host} --zone {zone}` tries again", c.state, rec.zone)
            ));
        }
    }
    // 3. Restored there, and started: another operator's move at the same instant
    // makes one of them step back; it looks again after a pause.
    // Another operator's restore under way: wait (at most the wait timeout) until it
    // ends or steps back, then look again.
    let deadline = std::time::Instant::now() + ctx.config.wait_timeout;
    let mut backoff = super::Backoff::new(Duration::from_millis(500));
    loop {
        let set = choose_set(ctx, &wiring, &host, Some(&set_id), Some(zone)).await?;
        match wiring
            .lifecycle()
            .restore(&profiles, &set, zone, false)
            .await
        {
            Err(e) if e.kind() == ErrorKind::Conflict && std::time::Instant::now() < deadline => {
                if !ctx.quiet {
                    eprintln!("{e}; looking again");
                }
                backoff.pause().await;
                if moved_there(&wiring, &product, &host, zone).await {
                    say(format!(
                        "another operator moved it to {zone}; starting it there"
                    ));
                    break;
                }
            }
            Err(e) => return Err(e.into()),
            Ok(r) => {
                say_restored(ctx, &r);
                break;
            }
        }
    }
    start_there(wiring, &profiles, &host, zone, None).await
}

/// Whether another operator's move of `host` to `zone` has ended: its record says so,
/// or its data volumes are all there, none of them a restore under way (that move's
/// record is written next, or it was killed just before: a start there finishes it).
async fn moved_there(wiring: &Wiring, product: &Product, host: &Hostname, zone: &Zone) -> bool {
    let b = &wiring.backends;
    if let Ok(Some(r)) = b.registry.get(product, host).await {
        if r.zone == *zone {
            return true;
        }
    }
    let Ok(vols) = b
        .ec2
        .volumes(&zone.region(), product, std::slice::from_ref(host))
        .await
    else {
        return false;
    };
    let live: Vec<_> = vols
        .iter()
        .filter(|v| !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted))
        .collect();
    live.iter().any(|v| v.device().is_some())
        && live
            .iter()
            .all(|v| !v.tags.contains_key(tags::RESTORE_DEVICE))
        && live
            .iter()
            .filter(|v| v.device().is_some())
            .all(|v| v.zone.as_ref() == Some(zone))
}

/// The set to restore: `from` (in `zone`'s region when given), or the host's newest
/// complete one (in `zone`'s region when given).
async fn choose_set(
    ctx: &Ctx,
    wiring: &Wiring,
    host: &Hostname,
    from: Option<&str>,
    zone: Option<&Zone>,
) -> Result<BackupSet> {
    // A region that did not answer is named by read_sets; the set may be elsewhere.
    let (sets, _) = super::backup::read_sets(ctx, &wiring.backends, &[host.to_string()]).await?;
    let mine = sets
        .into_iter()
        .filter(|s| s.host == host.as_str())
        .filter(|s| zone.is_none_or(|z| z.region() == s.region));
    let within = zone.map_or_else(String::new, |z| format!(" in {}", z.region()));
    let chosen = match from {
        Some(id) => mine.into_iter().find(|s| s.id == id).ok_or_else(|| {
            exit::Coded::new(
                exit::NOT_FOUND,
                format!(
                    "{host} has no set {id}{within} (`cerveza backup list {host}` shows its sets)"
                ),
            )
        })?,
        None => {
            let all: Vec<BackupSet> = mine.collect();
            match all.iter().find(|s| s.state() == SetState::Complete) {
                Some(s) => s.clone(),
                None => anyhow::bail!(exit::Coded::new(
                    exit::NOT_FOUND,
                    match all.first() {
                        None => format!("{host} has no backup set{within} (`cerveza backup {host}` takes one)"),
                        Some(s) => format!(
                            "{host} has no complete backup set{within}: its newest, {}, is {} (`cerveza backup list {host}`)",
                            s.id,
                            match s.state() {
                                SetState::Pending => "still being taken",
                                _ => "incomplete",
                            }
                        ),
                    }
                )),
            }
        }
    };
    Ok(chosen)
}

/// Where a restore goes without --zone: the host's zone (registry) when the set is in
/// its region, else the zone its volumes were in when the set was taken.
async fn home_zone(ctx: &Ctx, wiring: &Wiring, host: &Hostname, set: &BackupSet) -> Result<Zone> {
    let product = ctx.config.product()?;
    if let Ok(Some(rec)) = wiring.backends.registry.get(product, host).await {
        if rec.region() == set.region {
            return Ok(rec.zone);
        }
    }
    set.members
        .first()
        .and_then(|m| m.tags.get(tags::ZONE))
        .and_then(|z| Zone::parse(z).ok())
        .filter(|z| z.region() == set.region)
        .ok_or_else(|| {
            exit::Coded::new(
                exit::USAGE,
                format!("{host}: which zone of {}? `--zone`", set.region),
            )
            .into()
        })
}

/// Restores `set` in `zone` and starts the host there.
async fn restore_and_start(
    ctx: &Ctx,
    wiring: Wiring,
    profiles: &ProfileSet,
    set: &BackupSet,
    zone: &Zone,
    delete_replaced: bool,
) -> Result<Started> {
    let r = wiring
        .lifecycle()
        .restore(profiles, set, zone, delete_replaced)
        .await?;
    say_restored(ctx, &r);
    start_there(wiring, profiles, &r.host, zone, Some(&r.profile)).await
}

fn say_restored(ctx: &Ctx, r: &Restored) {
    if ctx.quiet {
        return;
    }
    if r.already {
        // The restore said so as it looked.
        return;
    }
    let volumes: Vec<&str> = r.volumes.values().map(|v| v.as_str()).collect();
    eprintln!(
        "{}: set {} restored in {} as {}",
        r.host,
        r.set,
        r.zone,
        volumes.join(" ")
    );
    if !r.replaced.is_empty() {
        let old: Vec<&str> = r.replaced.iter().map(|v| v.as_str()).collect();
        eprintln!(
            "{}: {} {}",
            r.host,
            if r.deleted {
                "deleted its earlier volumes"
            } else {
                "kept its earlier volumes, marked replaced:"
            },
            old.join(" ")
        );
    }
}

/// Starts the host in `zone` (its record says so now; without a record, as a new host
/// with `profile`, the one its set names) and reports as `start` does.
async fn start_there(
    wiring: Wiring,
    profiles: &ProfileSet,
    host: &Hostname,
    zone: &Zone,
    profile: Option<&ProfileName>,
) -> Result<Started> {
    // Another operator's start of it at the same time (their move) may change its
    // record under this one: read again and start again (the instance is adopted).
    let mut results = wiring
        .lifecycle()
        .start(profiles, vec![host.clone()], Some(zone), profile)
        .await;
    for _ in 0..3 {
        let raced = matches!(&results, Ok(r) if r.iter().any(|(_, o)| {
            o.as_ref().is_err_and(|e| e.kind() == ErrorKind::Conflict)
        }));
        if !raced {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(..1000))).await;
        results = wiring
            .lifecycle()
            .start(profiles, vec![host.clone()], Some(zone), profile)
            .await;
    }
    wiring.done().await;
    Ok(results)
}
