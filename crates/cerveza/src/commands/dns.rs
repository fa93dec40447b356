//! `cerveza dns list | sync`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{bail, Result};
use cerveza_core::ports::{dns_names, DnsRecord};
use cerveza_core::selection::Selection;
use cerveza_core::Hostname;
use serde::Serialize;

use super::Ctx;
use crate::cli::{DnsCommand, Output};
use crate::exit;
use crate::output::{self, Table};

/// One change `sync` makes.
#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "change", rename_all = "kebab-case")]
enum Change {
    Add {
        name: String,
        address: IpAddr,
    },
    Update {
        name: String,
        from: IpAddr,
        to: IpAddr,
    },
    Remove {
        name: String,
        address: IpAddr,
    },
}

/// Runs `dns …`.
pub async fn run(ctx: &Ctx, command: &DnsCommand) -> Result<u8> {
    let product = ctx.config.product()?;
    let backends = ctx.backends().await;
    let Some(dir) = ctx.dns_backend(&backends).await? else {
        bail!(exit::Coded::new(
            exit::USAGE,
            "no DNS backend: set [directory] (LDAP) or [dns] backend = \"route53\""
        ));
    };
    let current = dir.records(product).await?;
    match command {
        DnsCommand::List => {
            if ctx.output == Output::Json {
                output::print_json(&current)?;
            } else {
                let mut t = Table::new(&["NAME", "TYPE", "ADDRESS"]);
                for r in &current {
                    t.row(vec![r.name.clone(), "A".into(), r.address.to_string()]);
                }
                output::emit(&t.render());
            }
            Ok(exit::OK)
        }
        DnsCommand::Sync {
            dry_run,
            wait,
            wait_timeout,
        } => {
            let instances = ctx
                .whole_fleet(
                    &backends,
                    &Selection::all(),
                    "not syncing DNS from a partial fleet (the names of a missing region would be removed)",
                )
                .await?;
            let domains = dir.domains(product).await?;
            let mut want: BTreeMap<String, IpAddr> = BTreeMap::new();
            for i in &instances {
                let Some(host) = i.host().and_then(|h| Hostname::parse(h).ok()) else {
                    continue;
                };
                let [private, public] = dns_names(&domains, &host);
                let ip = |a: &Option<String>| a.as_deref().and_then(|a| a.parse::<IpAddr>().ok());
                if let Some(a) = ip(&i.private_ip) {
                    want.insert(private, a);
                }
                if let Some(a) = ip(&i.public_ip) {
                    want.insert(public, a);
                }
            }
            let have: BTreeMap<String, IpAddr> =
                current.into_iter().map(|r| (r.name, r.address)).collect();
            let mut changes = Vec::new();
            for (name, &to) in &want {
                match have.get(name) {
                    None => changes.push(Change::Add {
                        name: name.clone(),
                        address: to,
                    }),
                    Some(&from) if from != to => changes.push(Change::Update {
                        name: name.clone(),
                        from,
                        to,
                    }),
                    Some(_) => {}
                }
            }
            for (name, &address) in &have {
                if !want.contains_key(name) {
                    changes.push(Change::Remove {
                        name: name.clone(),
                        address,
                    });
                }
            }
            if !dry_run {
                for c in &changes {
                    match c {
                        Change::Add { name, address }
                        | Change::Update {
                            name, to: address, ..
                        } => {
                            dir.upsert(
                                product,
                                &DnsRecord {
                                    name: name.clone(),
                                    address: *address,
                                },
                            )
                            .await?
                        }
                        Change::Remove { name, .. } => dir.remove(product, name).await?,
                    }
                }
            }
            if ctx.output == Output::Json {
                output::print_json(&changes)?;
            } else {
                let mut out = String::new();
                for c in &changes {
                    out.push_str(&match c {
                        Change::Add { name, address } => format!("+ {name} A {address}\n"),
                        Change::Update { name, from, to } => format!("~ {name} A {from} -> {to}\n"),
                        Change::Remove { name, address } => format!("- {name} A {address}\n"),
                    });
                }
                output::emit(&out);
            }
            if !ctx.quiet {
                eprintln!(
                    "{} change(s){}; {} name(s) for {} host(s)",
                    changes.len(),
                    if *dry_run {
                        " (dry run: nothing changed)"
                    } else {
                        ""
                    },
                    want.len(),
                    instances.len()
                );
            }
            if *wait {
                let limit = wait_timeout.unwrap_or(ctx.config.wait_timeout);
                let n = dir.wait_synced(limit).await?;
                if !ctx.quiet && n > 0 {
                    eprintln!("{n} change(s) in sync: the DNS servers serve them");
                }
            }
            Ok(exit::OK)
        }
    }
}
