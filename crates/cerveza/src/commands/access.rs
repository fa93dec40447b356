//! `cerveza access grant | revoke | list | check | filter`.

use anyhow::{bail, Context as _, Result};
use cerveza_core::access::{check_user, pam_filter, Grant};
use cerveza_directory::NewUser;

use cerveza_core::{Hostname, Zone};

use super::Ctx;
use crate::cli::{AccessCommand, AccessUserCommand, Output};
use crate::exit;
use crate::output::{self, Table};

/// The zone of a host: `--zone`, else what the registry or the tags say.
async fn zone_of(ctx: &Ctx, host: &Hostname, zone: Option<&str>) -> Result<Zone> {
    if let Some(z) = zone {
        return Ok(Zone::parse(z)?);
    }
    let backends = ctx.backends().await;
    let view = ctx.view(&backends, host).await.map_err(|e| {
        exit::Coded::new(
            exit::for_kind(e.kind()),
            format!("{e}; give --zone for a host cerveza does not know"),
        )
    })?;
    view.record
        .map(|r| r.zone)
        .or_else(|| view.instance.and_then(|i| i.zone))
        .with_context(|| format!("{host}: zone unknown; give --zone"))
}

/// Runs `access user …`.
async fn user(ctx: &Ctx, command: &AccessUserCommand) -> Result<u8> {
    match command {
        AccessUserCommand::Add {
            user,
            name,
            uid_number,
            gid_number,
            home,
            shell,
        } => {
            check_user(user)?;
            for (flag, path) in [("--home", home), ("--shell", shell)] {
                if let Some(p) = path {
                    if !p.starts_with('/') || p.chars().any(char::is_control) {
                        bail!(exit::Coded::new(
                            exit::USAGE,
                            format!("{flag} {p:?}: give an absolute path")
                        ));
                    }
                }
            }
            let added = ctx
                .directory()
                .await?
                .add_user(&NewUser {
                    uid: user.clone(),
                    name: name.clone(),
                    uid_number: *uid_number,
                    gid_number: *gid_number,
                    home: home.clone(),
                    shell: shell.clone(),
                })
                .await?;
            if ctx.output == Output::Json {
                output::print_json(&added)?;
            } else {
                output::emit(&format!(
                    "{user}: added (uidNumber {}, gidNumber {}, home {})\n",
                    added.uid_number.unwrap_or_default(),
                    added.gid_number,
                    added.home.as_deref().unwrap_or("-"),
                ));
            }
            Ok(exit::OK)
        }
        AccessUserCommand::Remove { user } => {
            check_user(user)?;
            let removed = ctx.directory().await?.remove_user(user).await?;
            report(
                ctx,
                user,
                None,
                if removed { "removed" } else { "was not there" },
            )?;
            Ok(exit::OK)
        }
    }
}

/// One line of what a change did (stdout), or JSON.
fn report(ctx: &Ctx, user: &str, grant: Option<&Grant>, what: &str) -> Result<()> {
    if ctx.output == Output::Json {
        let grant = grant.map(ToString::to_string);
        output::print_json(&serde_json::json!({ "user": user, "grant": grant, "result": what }))?;
    } else {
        let grant = grant.map(|g| format!(" {g}")).unwrap_or_default();
        output::emit(&format!("{user}:{grant} {what}\n"));
    }
    Ok(())
}

/// Runs `access …`.
pub async fn run(ctx: &Ctx, command: &AccessCommand) -> Result<u8> {
    match command {
        AccessCommand::User { command } => user(ctx, command).await,
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
            report(ctx, user, Some(&grant), what)?;
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
