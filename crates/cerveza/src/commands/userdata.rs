//! `cerveza userdata HOST`: the cloud-init user-data a host is launched with.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context as _, Result};
use cerveza_core::ports::HostContext;
use cerveza_core::ports::RegistryRead;
use cerveza_core::{Hostname, ProfileName, Zone};
use cerveza_userdata::{CloudInit, MAX_USER_DATA};
use serde::Serialize;

use super::Ctx;
use crate::cli::Output;
use crate::exit;
use crate::output::{self, Table};

#[derive(Serialize)]
struct Json<'a> {
    host: &'a str,
    profile: &'a str,
    zone: &'a str,
    multipart_bytes: usize,
    gzip_bytes: usize,
    limit_bytes: usize,
    parts: &'a [cerveza_userdata::Part],
}

/// Runs `userdata`.
pub async fn run(
    ctx: &Ctx,
    host: &str,
    profile: Option<&ProfileName>,
    zone: Option<&Zone>,
    raw: bool,
) -> Result<u8> {
    let host = Hostname::parse(host)?;
    let product = ctx.config.product()?;
    let profiles = ctx.profiles()?;
    let backends = ctx.backends().await;
    let record = backends
        .registry
        .get(product, &host)
        .await
        .with_context(|| format!("{host}: reading the registry"))?;
    let (profile_name, zone) = match (&record, profile, zone) {
        (_, Some(p), Some(z)) => (p.clone(), z.clone()),
        (Some(r), p, z) => (
            p.unwrap_or(&r.profile).clone(),
            z.unwrap_or(&r.zone).clone(),
        ),
        (None, _, _) => bail!(exit::Coded::new(
            exit::USAGE,
            format!("{host} is not in the registry: give --profile and --zone")
        )),
    };
    let profile = profiles.instance(profile_name.as_str())?;
    let volumes: Vec<_> = profile
        .volume_profiles
        .iter()
        .filter_map(|n| profiles.volume(n).cloned())
        .collect();
    let built = CloudInit::new(ctx.config.userdata.clone())?
        .build(&HostContext {
            product,
            host: &host,
            zone: &zone,
            profile,
            volumes: &volumes,
        })
        .with_context(|| format!("{host}: building user-data"))?;
    if raw {
        let mut out = std::io::stdout();
        if out.is_terminal() {
            bail!(exit::Coded::new(
                exit::USAGE,
                "--raw writes gzip bytes: redirect stdout to a file"
            ));
        }
        out.write_all(&built.gzip)?;
        return Ok(exit::OK);
    }
    if ctx.output == Output::Json {
        output::print_json(&Json {
            host: host.as_str(),
            profile: profile.name.as_str(),
            zone: zone.as_str(),
            multipart_bytes: built.mime.len(),
            gzip_bytes: built.gzip.len(),
            limit_bytes: MAX_USER_DATA,
            parts: &built.parts,
        })?;
        return Ok(exit::OK);
    }
    let mut t = Table::new(&["#", "TYPE", "BYTES", "NAME"]);
    for (i, p) in built.parts.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            p.content_type.clone(),
            p.body.len().to_string(),
            p.name.clone(),
        ]);
    }
    output::emit(&t.render());
    output::emit(&format!(
        "{host}: profile {}, zone {zone}: {} parts, {} bytes multipart, {} bytes gzip ({}% of EC2's {MAX_USER_DATA})\n",
        profile.name,
        built.parts.len(),
        built.mime.len(),
        built.gzip.len(),
        built.gzip.len() * 100 / MAX_USER_DATA
    ));
    for (i, p) in built.parts.iter().enumerate() {
        output::emit(&format!(
            "\n--- part {} of {}: {} ({})\n",
            i + 1,
            built.parts.len(),
            p.name,
            p.content_type
        ));
        output::emit(&p.body);
        if !p.body.ends_with('\n') {
            output::emit("\n");
        }
    }
    Ok(exit::OK)
}
