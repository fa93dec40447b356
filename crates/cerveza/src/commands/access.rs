//! `cerveza access grant | revoke | list | check | filter`.

use anyhow::{bail, Context as _, Result};
use cerveza_core::access::{check_user, pam_filter, Grant};

use cerveza_core::{Hostname, Zone};

use super::Ctx;
use crate::cli::{AccessCommand, Output};
use crate::exit;
use crate::output::{self, Table};

/// The zone of a host: `--zone`, else what the registry or the tags say.
async fn zone_of(ctx: &Ctx, host: &Hostname, zone: Option<&str>) -> Result<Zone> {
    if let Some(z) = zone {
        return Ok(Zone::parse(z)?);
    }
    let backends = ctx.backends().await;
    let view = ctx.view(&backends, host).await.map_err(|e| {
        anyhow::anyhow!(exit::Coded::new(
            exit::USAGE,
            format!("{e}; give --zone for a host cerveza does not know")
        ))
    })?;
    view.record
        .map(|r| r.zone)
        .or_else(|| view.instance.and_then(|i| i.zone))
        .with_context(|| format!("{host}: zone unknown; give --zone"))
}

/// Runs `access …`.
pub async fn run(ctx: &Ctx, command: &AccessCommand) -> Result<u8> {
    match command {
        AccessCommand::Filter { host, zone } => {
            let host = Hostname::parse(host)?;
            let zone = zone_of(ctx, &host, zone.as_deref()).await?;
            output::emit(&format!("{}\n", pam_filter(&host, &zone)));
            Ok(exit::OK)
        }
        AccessCommand::Grant { user, pattern } | AccessCommand::Revoke { user, pattern } => {
            check_user(user)?;
            let grant = Grant::parse(pattern)?;
            let dir = ctx.directory().await?;
            let granting = matches!(command, AccessCommand::Grant { .. });
            let changed = if granting {
                dir.grant(user, &grant).await?
            } else {
                dir.revoke(user, &grant).await?
            };
            let what = match (granting, changed) {
                (true, true) => "granted",
                (true, false) => "already granted",
                (false, true) => "revoked",
                (false, false) => "was not granted",
            };
            eprintln!("{user}: {grant} {what}");
            Ok(exit::OK)
        }
        AccessCommand::List { user } => {
            if let Some(u) = user {
                check_user(u)?;
            }
            let users = ctx.directory().await?.users(user.as_deref()).await?;
            if ctx.output == Output::Json {
                output::print_json(&users)?;
            } else {
                let mut t = Table::new(&["USER", "GRANT"]);
                for u in &users {
                    for g in &u.grants {
                        t.row(vec![u.uid.clone(), output::clean(g)]);
                    }
                }
                output::emit(&t.render());
            }
            Ok(exit::OK)
        }
        AccessCommand::Check { user, host, zone } => {
            check_user(user)?;
            let host = Hostname::parse(host)?;
            let zone = zone_of(ctx, &host, zone.as_deref()).await?;
            let allowed = ctx.directory().await?.check(user, &host, &zone).await?;
            if ctx.output == Output::Json {
                output::print_json(&serde_json::json!({
                    "user": user, "host": host, "zone": zone, "allowed": allowed, "filter": pam_filter(&host, &zone)
                }))?;
            } else {
                output::emit(&format!(
                    "{user} {} {host} ({zone})\n",
                    if allowed {
                        "may log into"
                    } else {
                        "may NOT log into"
                    }
                ));
            }
            if !allowed {
                bail!(exit::Coded::new(
                    exit::FAILURE,
                    format!("{user} has no grant matching {host} in {zone}")
                ));
            }
            Ok(exit::OK)
        }
    }
}
