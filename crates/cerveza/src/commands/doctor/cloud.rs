//! The cloud side of `doctor`: security groups, Elastic IPs and volumes of every region,
//! the registry, and the configuration.

use std::future::Future;
use std::time::Duration;

use cerveza_core::fleet::Listing;
use cerveza_core::names::Region;
use cerveza_core::ports::{ProviderResult, RegistryRead as _};
use cerveza_doctor::cloud::{self as judge, ConfigFacts, RegistryFacts, TaggedAddress};
use cerveza_doctor::{Check, Finding};
use futures::future::join_all;

use super::{checked, CheckReport};
use crate::commands::{Backends, Ctx};

/// Reads one fact of every configured region at once, each bounded by the region
/// timeout; a region that does not answer is a subject that could not be checked.
async fn per_region<T, F, Fut>(ctx: &Ctx, what: &str, read: F) -> (Vec<T>, Vec<Finding>)
where
    F: Fn(Region) -> Fut,
    Fut: Future<Output = ProviderResult<Vec<T>>>,
{
    let limit = ctx.config.region_timeout;
    let answers = join_all(ctx.config.regions.iter().map(|r| {
        let call = read(r.clone());
        async move { (r, tokio::time::timeout(limit, call).await) }
    }))
    .await;
    let (mut facts, mut not_checked) = (Vec::new(), Vec::new());
    for (region, answer) in answers {
        match answer {
            Ok(Ok(found)) => facts.extend(found),
            Ok(Err(e)) => not_checked.push(Finding::new(
                region.as_str(),
                format!("reading its {what}: {e}"),
            )),
            Err(_) => not_checked.push(Finding::new(
                region.as_str(),
                format!("its {what} did not come within {limit:?}"),
            )),
        }
    }
    (facts, not_checked)
}

/// Runs the wanted cloud-side checks.
pub(super) async fn checks(
    ctx: &Ctx,
    backends: &Backends,
    listing: &Listing,
    wanted: &[Check],
    volume_age: Duration,
) -> Vec<CheckReport> {
    let reports = join_all(
        wanted
            .iter()
            .map(|c| one(ctx, backends, listing, *c, volume_age)),
    )
    .await;
    reports.into_iter().flatten().collect()
}

async fn one(
    ctx: &Ctx,
    backends: &Backends,
    listing: &Listing,
    check: Check,
    volume_age: Duration,
) -> Option<CheckReport> {
    let fleet = &listing.instances;
    let product = ctx.config.product().ok()?;
    let (checked, findings, not_checked) = match check {
        Check::SecurityGroups => {
            let (rules, missed) = per_region(ctx, "security groups", |r| async move {
                backends.ec2.security_rules(&r).await
            })
            .await;
            (
                checked(rules.len(), "rule(s)"),
                judge::security_groups(&rules, fleet),
                missed,
            )
        }
        Check::ConfigSpof => {
            let facts = config_facts(ctx);
            let lists = [
                &facts.directory_uris,
                &facts.client_uris,
                &facts.nameservers,
            ];
            (
                checked(
                    lists.iter().filter(|l| !l.is_empty()).count(),
                    "server list(s)",
                ),
                judge::config_spof(&facts, fleet),
                Vec::new(),
            )
        }
        Check::Registry => {
            let subject = format!(
                "table {} ({})",
                ctx.config.registry_table, ctx.config.registry_region
            );
            match backends.registry.resilience().await {
                Ok(Some(t)) => (
                    checked(1, "table(s)"),
                    judge::registry(&RegistryFacts {
                        table: ctx.config.registry_table.clone(),
                        region: ctx.config.registry_region.to_string(),
                        point_in_time_recovery: t.point_in_time_recovery,
                        replicas: t.replicas,
                        strong: t.strong,
                    }),
                    Vec::new(),
                ),
                Ok(None) => (
                    checked(0, "table(s)"),
                    Vec::new(),
                    vec![Finding::new(
                        subject,
                        "does not exist yet: the first start makes it",
                    )],
                ),
                Err(e) => (
                    checked(0, "table(s)"),
                    Vec::new(),
                    vec![Finding::new(subject, e.to_string())],
                ),
            }
        }
        Check::RegistryTags => match backends.registry.list(product).await {
            Ok(records) => {
                let unlisted: Vec<String> = listing
                    .failed_regions
                    .iter()
                    .map(|(r, _)| r.to_string())
                    .collect();
                let missed = listing
                    .failed_regions
                    .iter()
                    .map(|(r, e)| {
                        Finding::new(r.as_str(), format!("its hosts were not listed: {e}"))
                    })
                    .collect();
                (
                    checked(records.len(), "record(s)"),
                    judge::registry_tags(&records, fleet, &unlisted),
                    missed,
                )
            }
            Err(e) => (
                checked(0, "record(s)"),
                Vec::new(),
                vec![Finding::new(
                    format!("table {}", ctx.config.registry_table),
                    e.to_string(),
                )],
            ),
        },
        Check::OrphanVolumes => {
            let (volumes, missed) = per_region(ctx, "volumes", |r| async move {
                use cerveza_core::ports::ComputeRead as _;
                backends.ec2.volumes(&r, product, &[]).await
            })
            .await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let days = volume_age.as_secs() / 86_400;
            (
                checked(volumes.len(), "volume(s)"),
                judge::orphan_volumes(&volumes, fleet, now, days),
                missed,
            )
        }
        Check::Backups => {
            let ((volumes, mut missed), (snapshots, missed_sets)) = futures::join!(
                per_region(ctx, "volumes", |r| async move {
                    use cerveza_core::ports::ComputeRead as _;
                    backends.ec2.volumes(&r, product, &[]).await
                }),
                per_region(ctx, "snapshots", |r| async move {
                    use cerveza_core::ports::ComputeRead as _;
                    backends.ec2.snapshots(&r, product).await
                })
            );
            let sets = cerveza_core::backup::sets(snapshots);
            let max_age = i64::try_from(ctx.config.backup_max_age.as_secs()).unwrap_or(i64::MAX);
            // A host's newest set may be in a region that did not answer: no verdict
            // then, rather than a false "no backup".
            let findings = if missed_sets.is_empty() {
                judge::backups(
                    &volumes,
                    &sets,
                    cerveza_core::lifecycle::now(),
                    max_age,
                    &ctx.config.backup_copy_to,
                )
            } else {
                Vec::new()
            };
            missed.extend(missed_sets);
            (checked(sets.len(), "backup set(s)"), findings, missed)
        }
        Check::IdleAddresses => {
            let (addresses, missed) = per_region(ctx, "Elastic IPs", |r| async move {
                let found = backends.ec2.addresses(&r, product).await?;
                Ok(found
                    .into_iter()
                    .map(|(host, address)| TaggedAddress {
                        region: r.to_string(),
                        host,
                        address,
                    })
                    .collect())
            })
            .await;
            (
                checked(addresses.len(), "address(es)"),
                judge::idle_addresses(&addresses),
                missed,
            )
        }
        Check::Imds => {
            let missed = listing
                .failed_regions
                .iter()
                .map(|(r, e)| Finding::new(r.as_str(), format!("its hosts were not listed: {e}")))
                .collect();
            (
                checked(fleet.len(), "instance(s)"),
                judge::imds(fleet),
                missed,
            )
        }
        _ => return None,
    };
    Some(CheckReport::new(check, checked, findings, not_checked))
}

/// The servers the configuration names, as the hosts get them.
fn config_facts(ctx: &Ctx) -> ConfigFacts {
    let u = &ctx.config.userdata;
    let product = ctx
        .config
        .product
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    ConfigFacts {
        directory_uris: ctx
            .config
            .directory
            .as_ref()
            .map(|d| d.uris.clone())
            .unwrap_or_default(),
        client_uris: u
            .ldap_client
            .as_ref()
            .map(|l| l.uris(&product))
            .unwrap_or_default(),
        nameservers: if u.resolv_conf {
            u.nameservers.clone()
        } else {
            Vec::new()
        },
        product,
    }
}
