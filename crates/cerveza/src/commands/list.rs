//! `cerveza list`: the fleet in every configured region at once. Read-only: it needs
//! only `ec2:DescribeInstances`, and neither the registry nor any write permission.

use anyhow::Result;
use cerveza_core::fleet;
use cerveza_core::lifecycle::now;
use cerveza_core::model::Instance;
use cerveza_core::selection::Selection;
use serde::Serialize;

use super::Ctx;
use crate::cli::Output;
use crate::exit;
use crate::output::{self, age, or_dash, Table};

#[derive(Serialize)]
struct Row<'a> {
    hostname: Option<&'a str>,
    zone: Option<&'a str>,
    region: &'a str,
    state: &'a str,
    instance_type: Option<&'a str>,
    private_ip: Option<&'a str>,
    public_ip: Option<&'a str>,
    profile: Option<&'a str>,
    instance_id: &'a str,
    launch_time: Option<i64>,
    security_groups: &'a [String],
    tags: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> From<&'a Instance> for Row<'a> {
    fn from(i: &'a Instance) -> Self {
        Row {
            hostname: i.host(),
            zone: i.zone.as_ref().map(|z| z.as_str()),
            region: i.region.as_str(),
            state: i.state.name(),
            instance_type: i.instance_type.as_deref(),
            private_ip: i.private_ip.as_deref(),
            public_ip: i.public_ip.as_deref(),
            profile: i.profile(),
            instance_id: i.id.as_str(),
            launch_time: i.launch_time,
            security_groups: &i.security_groups,
            tags: &i.tags,
        }
    }
}

#[derive(Serialize)]
struct FailedRegion<'a> {
    region: &'a str,
    error: &'a str,
}

#[derive(Serialize)]
struct Json<'a> {
    hosts: Vec<Row<'a>>,
    failed_regions: Vec<FailedRegion<'a>>,
}

/// Runs `list`.
pub async fn run(
    ctx: &Ctx,
    selection: &[String],
    all: bool,
    region_timeout: Option<std::time::Duration>,
) -> Result<u8> {
    let selection = Selection::parse_all(selection)?;
    let product = ctx.config.product()?;
    let timeout = region_timeout.unwrap_or(ctx.config.region_timeout);
    let backends = ctx.backends().await;
    let listing = fleet::list(
        &backends.ec2,
        product,
        &ctx.config.regions,
        &selection,
        all,
        timeout,
    )
    .await;
    // A full listing feeds shell completion's hostname cache (crate::complete).
    if selection.is_all() && !all && listing.failed_regions.is_empty() {
        crate::complete::remember(product, &listing.instances);
    }
    if ctx.output == Output::Json {
        output::print_json(&Json {
            hosts: listing.instances.iter().map(Row::from).collect(),
            failed_regions: listing
                .failed_regions
                .iter()
                .map(|(r, e)| FailedRegion {
                    region: r.as_str(),
                    error: e,
                })
                .collect(),
        })?;
    } else {
        let mut t = Table::new(&[
            "HOSTNAME",
            "ZONE",
            "STATE",
            "TYPE",
            "PRIVATE-IP",
            "PUBLIC-IP",
            "PROFILE",
            "INSTANCE",
            "AGE",
        ]);
        let now = now();
        for i in &listing.instances {
            t.row(vec![
                or_dash(i.host()),
                or_dash(i.zone.as_ref().map(|z| z.as_str())),
                i.state.name().into(),
                or_dash(i.instance_type.as_deref()),
                or_dash(i.private_ip.as_deref()),
                or_dash(i.public_ip.as_deref()),
                or_dash(i.profile()),
                i.id.to_string(),
                i.launch_time
                    .map(|t| age(now - t))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        output::emit(&t.render());
        if !ctx.quiet {
            eprintln!(
                "{} host(s) of product {product} in {} region(s){}",
                listing.instances.len(),
                ctx.config.regions.len() - listing.failed_regions.len(),
                if selection.is_all() {
                    String::new()
                } else {
                    format!(" matching {selection}")
                }
            );
        }
    }
    for (region, e) in &listing.failed_regions {
        eprintln!(
            "{} region {region} left out: {e}",
            crate::colour::warning_label()
        );
    }
    Ok(if listing.failed_regions.is_empty() {
        exit::OK
    } else if listing.denied_regions.len() == ctx.config.regions.len() {
        // No region took the credentials: not a partial result, a credentials problem.
        eprintln!(
            "hint: every region refused the credentials; check which ones are used (`aws sts get-caller-identity`), or log in again (`aws sso login`)"
        );
        exit::DENIED
    } else {
        exit::PARTIAL
    })
}
