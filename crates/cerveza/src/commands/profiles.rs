//! `cerveza profiles list | show | check`.

use anyhow::Result;

use super::Ctx;
use crate::cli::{Output, ProfilesCommand};
use crate::exit;
use crate::output::{self, Table};

/// Runs `profiles …`.
pub fn run(ctx: &Ctx, command: &ProfilesCommand) -> Result<u8> {
    let set = ctx.profiles()?;
    match command {
        ProfilesCommand::Check => {
            let n = set.instances().count();
            let v = set.volumes().count();
            let dir = ctx.config.profiles_dir.display().to_string();
            if ctx.output == Output::Json {
                output::print_json(&serde_json::json!({
                    "directory": dir, "instance_profiles": n, "volume_profiles": v, "valid": true,
                }))?;
            } else {
                output::emit(&format!(
                    "{dir}: {n} instance profile(s) and {v} volume profile(s), all valid\n"
                ));
            }
        }
        ProfilesCommand::List if ctx.output == Output::Json => {
            #[derive(serde::Serialize)]
            struct All<'a> {
                instance_profiles: Vec<&'a cerveza_core::profile::InstanceProfile>,
                volume_profiles: Vec<&'a cerveza_core::profile::VolumeProfile>,
            }
            output::print_json(&All {
                instance_profiles: set.instances().collect(),
                volume_profiles: set.volumes().collect(),
            })?;
        }
        ProfilesCommand::List => {
            let mut t = Table::new(&["NAME", "KIND", "TYPE", "REGIONS", "DESCRIPTION"]);
            for p in set.instances() {
                let kind = if p.is_abstract {
                    "instance (abstract)"
                } else {
                    "instance"
                };
                let mut regions: Vec<&str> = p.ami.keys().map(|r| r.as_str()).collect();
                if p.ami_default.is_some() {
                    regions.push("(any)");
                }
                t.row(vec![
                    p.name.to_string(),
                    kind.into(),
                    p.instance_type.clone(),
                    regions.join(","),
                    p.desc.clone(),
                ]);
            }
            for v in set.volumes() {
                let what = format!(
                    "{}x{}GiB {}",
                    v.volumes.count, v.volumes.size_gb, v.volumes.volume_type
                );
                t.row(vec![
                    v.name.clone(),
                    "volume".into(),
                    what,
                    "-".into(),
                    v.desc.clone(),
                ]);
            }
            output::emit(&t.render());
        }
        ProfilesCommand::Show { name } => {
            if let Some(v) = set.volume(name) {
                output::print_json(v)?;
            } else {
                output::print_json(set.instance(name)?)?;
            }
        }
    }
    Ok(exit::OK)
}
