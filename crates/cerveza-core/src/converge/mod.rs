//! The fleet as a file: a fleet file says which hosts a product should have, [`plan`]
//! compares it with the fleet (one registry read and one listing per region, however
//! many hosts), and [`apply`] converges through the host lifecycle, with its claims,
//! launch tokens, volumes, Elastic IPs and DNS.
//!
//! A plan records what it saw of every host it covers ([`plan::Have`]), so a saved plan
//! applied after anything moved is refused ([`plan::stale`]) before anything is done.

pub mod export;
pub mod file;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::fleet;
use crate::lifecycle::storage::VolumeIndex;
use crate::lifecycle::{Lifecycle, Results};
use crate::names::{Hostname, Product, Region, Zone};
use crate::ports::{ComputeRead, RegistryRead};
use crate::profile::{InstanceProfile, ProfileSet};
use crate::selection::Selection;
pub use file::{DesiredHost, DesiredState, FleetFile};
pub use plan::{Change, Have, Plan, Row, Survey};

/// Reads the fleet for a plan: every registry record of the product and its live
/// instances in every region, all at once, each bounded by `timeout`. A region or a
/// registry that does not answer is in the survey, not an error: its hosts are held.
pub async fn survey(
    compute: &dyn ComputeRead,
    registry: &dyn RegistryRead,
    product: &Product,
    regions: &[Region],
    timeout: Duration,
) -> Survey {
    let all = Selection::all();
    let (listing, records) = tokio::join!(
        fleet::list(compute, product, regions, &all, false, timeout),
        read_registry(registry, product, timeout),
    );
    survey_of(listing, records)
}

type Records = Result<Vec<crate::model::HostRecord>, String>;

async fn read_registry(
    registry: &dyn RegistryRead,
    product: &Product,
    timeout: Duration,
) -> Records {
    match tokio::time::timeout(timeout, registry.list(product)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", timeout.as_secs_f64())),
    }
}

fn survey_of(listing: fleet::Listing, records: Records) -> Survey {
    let (records, registry_error) = match records {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Survey {
        records,
        registry_error,
        instances: listing.instances,
        failed_regions: listing.failed_regions,
    }
}

/// The plan of `file`: [`survey`], then [`plan::diff`], with the checks of where it
/// launches ([`check_targets`]) made while the regions are still being listed: the
/// registry answers first, and says which hosts of the file may launch or move.
/// Returns the plan and each host that cannot go where the file puts it, with why.
#[allow(clippy::too_many_arguments)]
pub async fn plan(
    compute: &dyn ComputeRead,
    registry: &dyn RegistryRead,
    file: &FleetFile,
    regions: &[Region],
    opts: &plan::Options,
    launching: &Launching<'_>,
    timeout: Duration,
) -> Result<(Plan, Vec<(Hostname, String)>), plan::ReplaceError> {
    let all = Selection::all();
    let product = &file.product;
    let checked = async {
        let records = read_registry(registry, product, timeout).await;
        let moving = match &records {
            Ok(r) => may_move(file, r, &opts.replace),
            // Launches are held while the registry does not answer.
            Err(_) => BTreeMap::new(),
        };
        let profiles: BTreeMap<Hostname, &InstanceProfile> = file
            .hosts
            .iter()
            .filter(|d| moving.contains_key(&d.host))
            .filter_map(|d| {
                Some((
                    d.host.clone(),
                    launching.profiles.instance(d.profile.as_str()).ok()?,
                ))
            })
            .collect();
        let problems = check_targets(
            compute,
            product,
            regions,
            &moving,
            &profiles,
            launching.vpcs,
            timeout,
        )
        .await;
        (records, moving, problems)
    };
    let (listing, (records, moving, problems)) = tokio::join!(
        fleet::list(compute, product, regions, &all, false, timeout),
        checked,
    );
    let survey = survey_of(listing, records);
    let mut plan = plan::diff(file, &survey, opts)?;
    plan.regions = regions.to_vec();
    moves_with_data(compute, product, regions, &mut plan, timeout).await;
    // What was checked for the hosts that do launch or move there, as planned (a host
    // whose data moves with it is not launched away from its volumes).
    let problems = problems
        .into_iter()
        .filter(|(h, _)| {
            plan.hosts.iter().any(|r| {
                &r.host == h
                    && r.held.is_none()
                    && matches!(r.change, Change::Launch | Change::Replace)
                    && r.want.as_ref().map(|w| &w.zone) == moving.get(h)
            })
        })
        .collect();
    Ok((plan, problems))
}

/// Replaces that only change the zone of a host with data volumes become moves (see
/// [`Row::into_move`]): one volume lookup per region, only when there are such rows. A
/// region that does not answer leaves its hosts' rows replaces, which the check of
/// where they launch then refuses when their data is elsewhere.
async fn moves_with_data(
    compute: &dyn ComputeRead,
    product: &Product,
    regions: &[Region],
    plan: &mut Plan,
    timeout: Duration,
) {
    let zone_only = |r: &Row| {
        r.change == Change::Replace
            && r.want.as_ref().is_some_and(|w| {
                r.have.profile.as_ref() == Some(&w.profile) && r.have.zone.as_ref() != Some(&w.zone)
            })
    };
    let hosts: Vec<Hostname> = plan
        .hosts
        .iter()
        .filter(|r| zone_only(r))
        .map(|r| r.host.clone())
        .collect();
    if hosts.is_empty() {
        return;
    }
    let index = VolumeIndex::read(compute, product, &hosts, regions, None, timeout).await;
    let with_data: BTreeSet<&str> = index
        .found()
        .filter(|v| v.device().is_some())
        .filter(|v| {
            !matches!(
                v.state,
                crate::model::VolumeState::Deleting | crate::model::VolumeState::Deleted
            )
        })
        .filter_map(crate::model::Volume::host)
        .collect();
    for r in plan.hosts.iter_mut() {
        if zone_only(r) && with_data.contains(r.host.as_str()) {
            r.into_move();
        }
    }
    plan.summary = plan::summarize(&plan.hosts);
}

/// What the checks of where hosts launch need besides the cloud.
pub struct Launching<'a> {
    /// The profiles the file's hosts name.
    pub profiles: &'a ProfileSet,
    /// The VPC of each region (a region not listed: its default VPC).
    pub vpcs: &'a BTreeMap<Region, String>,
}

/// The hosts of `file` that the registry says may launch or move, with where to: those
/// without a record, claims that never got an instance in a zone the file moves them
/// from, and those `--replace` names whose recorded profile or zone the file changes (a
/// held replace goes nowhere).
fn may_move(
    file: &FleetFile,
    records: &[crate::model::HostRecord],
    replace: &[Hostname],
) -> BTreeMap<Hostname, Zone> {
    let by_host: BTreeMap<&Hostname, &crate::model::HostRecord> =
        records.iter().map(|r| (&r.hostname, r)).collect();
    file.hosts
        .iter()
        .filter(|d| d.state != DesiredState::Terminated)
        .filter_map(|d| match by_host.get(&d.host) {
            None => Some((d.host.clone(), d.zone.clone())),
            // A claim that never got an instance moves without `--replace`.
            Some(r)
                if r.instance_id.is_none()
                    && r.profile == d.profile
                    && !d.zones.contains(&r.zone) =>
            {
                Some((d.host.clone(), d.zone.clone()))
            }
            Some(_) if !replace.contains(&d.host) => None,
            Some(r) if !d.zones.contains(&r.zone) => Some((d.host.clone(), d.zone.clone())),
            Some(r) if r.profile != d.profile => Some((d.host.clone(), r.zone.clone())),
            Some(_) => None,
        })
        .collect()
}

/// Hosts that cannot go where `moving` puts them: a zone the region does not have (or
/// has not available), or a zone away from their data volumes (EBS volumes attach only
/// within their zone). One zone listing per region they go to, one volume listing per
/// region, all at once; nothing when nothing moves.
pub async fn check_targets(
    compute: &dyn ComputeRead,
    product: &Product,
    regions: &[Region],
    moving: &BTreeMap<Hostname, Zone>,
    profiles: &BTreeMap<Hostname, &InstanceProfile>,
    vpcs: &BTreeMap<Region, String>,
    timeout: Duration,
) -> Vec<(Hostname, String)> {
    if moving.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let target_regions: BTreeSet<Region> = moving.values().map(|z| z.region()).collect();
    let hosts: Vec<Hostname> = moving.keys().map(|h| (*h).clone()).collect();
    let hosts = &hosts;
    // What each region offers each (image, instance type) of the hosts launching there.
    let asked: BTreeSet<(Region, String, String)> = moving
        .iter()
        .filter_map(|(h, z)| {
            let p = profiles.get(h)?;
            let ami = p.ami_for(&z.region()).ok()?;
            Some((z.region(), ami.to_owned(), p.instance_type.clone()))
        })
        .collect();
    let offers = async {
        futures::future::join_all(asked.iter().map(|(region, ami, itype)| async move {
            let read = tokio::time::timeout(
                timeout,
                compute.offering(region, crate::offering::image_to_read(ami), itype),
            )
            .await;
            ((region.clone(), ami.clone(), itype.clone()), read)
        }))
        .await
        .into_iter()
        .filter_map(|(key, read)| match read {
            Ok(Ok(o)) => Some((key, o)),
            _ => {
                tracing::warn!(
                    "image {} and instance type {} could not be read in {}; apply checks them again",
                    key.1,
                    key.2,
                    key.0
                );
                None
            }
        })
        .collect::<BTreeMap<_, _>>()
    };
    // The zones of the regions it launches in and the volumes of those hosts in every
    // region, all at once.
    let (offers, (zones, found)) = tokio::join!(offers, async {
        tokio::join!(
            futures::future::join_all(target_regions.iter().map(|region| async move {
                let vpc = vpcs.get(region).map(String::as_str);
                let (zones, network) = tokio::join!(
                    tokio::time::timeout(timeout, compute.zones(region)),
                    tokio::time::timeout(timeout, compute.network(region, vpc)),
                );
                (region, vpc, zones, network)
            })),
            VolumeIndex::read(compute, product, hosts, regions, None, timeout),
        )
    });
    let now = crate::lifecycle::now();
    for (region, vpc, zones, network) in zones {
        let zones = match zones {
            Ok(Ok(zones)) => Some(zones),
            _ => {
                tracing::warn!(
                    "the zones of {region} could not be listed; apply checks them again"
                );
                None
            }
        };
        let network = match network {
            Ok(Ok(network)) => Some(network),
            _ => {
                tracing::warn!("the subnets and security groups of {region} could not be read; apply checks them again");
                None
            }
        };
        for (host, zone) in moving.iter().filter(|(_, z)| z.region() == *region) {
            // A zone the region does not have says it all; then where in the VPC.
            let why = match (&zones, &network, profiles.get(host)) {
                (Some(zones), _, _) if !zones.contains(zone) => {
                    let names: Vec<&str> = zones.iter().map(Zone::as_str).collect();
                    Err(format!(
                        "zone {zone} does not exist in region {region}, or is not available (it has: {})",
                        names.join(", ")
                    ))
                }
                (_, Some(None), Some(_)) => Err(crate::network::no_such_vpc(region, vpc)),
                (_, Some(Some(n)), Some(profile)) => {
                    crate::network::place(profile, zone, n).map(drop)
                }
                _ => Ok(()),
            };
            // Then whether the zone offers the type, and the image fits it.
            let why = why.and_then(|()| {
                let Some(p) = profiles.get(host) else {
                    return Ok(());
                };
                let Ok(ami) = p.ami_for(region) else {
                    return Ok(());
                };
                let key = (region.clone(), ami.to_owned(), p.instance_type.clone());
                match offers
                    .get(&key)
                    .and_then(|o| crate::offering::problem(o, zone, ami, &p.instance_type, now))
                {
                    Some(why) => Err(format!("profile {}: {why}", p.name)),
                    None => Ok(()),
                }
            });
            if let Err(why) = why {
                out.push((host.clone(), why));
            }
        }
    }
    for v in found.found().filter(|v| v.device().is_some()) {
        let Some(host) = v.host().and_then(|h| Hostname::parse(h).ok()) else {
            continue;
        };
        let Some(zone) = moving.get(&host) else {
            continue;
        };
        if v.zone.as_ref() != Some(zone) {
            out.push((
                    host.clone(),
                    format!(
                        "its data volume {} ({}) is in {}, the file puts it in {zone}: EBS volumes attach only within their zone; keep it in {2}, or move the data with a snapshot first",
                        v.id,
                        v.device().unwrap_or("?"),
                        v.zone.as_ref().map(Zone::as_str).unwrap_or("?"),
                    ),
                ));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Carries out a plan's rows that act, through the lifecycle: removals (prune,
/// terminate, the first half of a replace), starts (launch, relaunch, start, the second
/// half of a replace), then stops. Independent hosts go concurrently. Results are in
/// the plan's order; a host whose removal failed is not started again.
pub async fn apply(lc: &Lifecycle<'_>, profiles: &ProfileSet, plan: &Plan) -> Results {
    let acting: Vec<&Row> = plan.hosts.iter().filter(|r| r.acts()).collect();
    let of = |changes: &[Change]| -> Vec<&Row> {
        acting
            .iter()
            .copied()
            .filter(|r| changes.contains(&r.change))
            .collect()
    };
    // A repair is the verb of the state the file wants, again.
    let repairs = |state: DesiredState| -> Vec<&Row> {
        of(&[Change::Repair])
            .into_iter()
            .filter(|r| r.want.as_ref().map(|w| w.state) == Some(state))
            .collect()
    };
    let (replace, prune) = (of(&[Change::Replace]), of(&[Change::Prune]));
    let mut terminate = of(&[Change::Terminate]);
    terminate.extend(repairs(DesiredState::Terminated));
    let mut starts = of(&[Change::Launch, Change::Relaunch, Change::Start]);
    starts.extend(repairs(DesiredState::Running));
    let mut stops = of(&[Change::Stop]);
    stops.extend(repairs(DesiredState::Stopped));
    // Volumes are always kept: a pruned or replaced host's data outlives its instance.
    let replaced = async {
        let (mut gone, forgotten) = tokio::join!(
            terminate_rows(lc, &prune, true),
            terminate_rows(lc, &replace, true)
        );
        gone.extend(start_then_stop(lc, profiles, &replace, forgotten).await);
        gone
    };
    let (a, b, c, d) = tokio::join!(
        replaced,
        terminate_rows(lc, &terminate, false),
        start_then_stop(lc, profiles, &starts, Vec::new()),
        stop_rows(lc, &stops),
    );
    let mut all: Results = a.into_iter().chain(b).chain(c).chain(d).collect();
    let order: BTreeMap<&Hostname, usize> = acting
        .iter()
        .enumerate()
        .map(|(i, r)| (&r.host, i))
        .collect();
    all.sort_by_key(|(h, _)| order.get(h).copied().unwrap_or(usize::MAX));
    all
}

fn names(rows: &[&Row]) -> Vec<Hostname> {
    rows.iter().map(|r| r.host.clone()).collect()
}

async fn terminate_rows(lc: &Lifecycle<'_>, rows: &[&Row], forget: bool) -> Results {
    if rows.is_empty() {
        return Vec::new();
    }
    lc.terminate(names(rows), forget, false).await
}

async fn stop_rows(lc: &Lifecycle<'_>, rows: &[&Row]) -> Results {
    if rows.is_empty() {
        return Vec::new();
    }
    lc.stop(names(rows)).await
}

/// Starts `rows` (each with the zone and profile the file wants), then stops those the
/// file wants stopped. A host that failed in `before` (its removal) is not started; the
/// others' results in `before` give way to their start's.
async fn start_then_stop(
    lc: &Lifecycle<'_>,
    profiles: &ProfileSet,
    rows: &[&Row],
    before: Results,
) -> Results {
    let failed: BTreeSet<Hostname> = before
        .iter()
        .filter(|(_, o)| o.is_err())
        .map(|(h, _)| h.clone())
        .collect();
    let go: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| !failed.contains(&r.host))
        .collect();
    let mut done: Results = before
        .into_iter()
        .filter(|(h, _)| failed.contains(h))
        .collect();
    if go.is_empty() {
        return done;
    }
    let wants = go
        .iter()
        .map(|r| {
            let w = r.want.as_ref();
            (
                r.host.clone(),
                w.map(|w| w.zone.clone()),
                w.map(|w| w.profile.clone()),
            )
        })
        .collect();
    let started = match lc.start_each(profiles, wants).await {
        Ok(r) => r,
        Err(errors) => {
            // Nothing was started: say so for the hosts that were fine.
            let mut out: Results = Vec::new();
            for r in &go {
                if !errors.iter().any(|(h, _)| *h == r.host) {
                    out.push((
                        r.host.clone(),
                        Err(crate::Error::Refused {
                            host: r.host.to_string(),
                            message: "not started: another host started with it could not be planned (its error says why)".into(),
                        }),
                    ));
                }
            }
            out.extend(errors.into_iter().map(|(h, e)| (h, Err(e))));
            out
        }
    };
    let then_stop: BTreeSet<&Hostname> =
        go.iter().filter(|r| r.then_stop).map(|r| &r.host).collect();
    let stop_now: Vec<Hostname> = started
        .iter()
        .filter(|(h, o)| o.is_ok() && then_stop.contains(h))
        .map(|(h, _)| h.clone())
        .collect();
    let mut stopped = if stop_now.is_empty() {
        Vec::new()
    } else {
        lc.stop(stop_now).await
    };
    for (h, o) in started {
        match stopped.iter().position(|(s, _)| *s == h) {
            Some(i) => done.push(stopped.swap_remove(i)),
            None => done.push((h, o)),
        }
    }
    done
}
