//! `cerveza show HOST`: the registry record and the instance of one host.

use anyhow::Result;
use cerveza_core::lifecycle::now;
use cerveza_core::Hostname;

use super::Ctx;
use crate::cli::Output;
use crate::exit;
use crate::output::{self, age, clean, or_dash, Table};

/// Runs `show`.
pub async fn run(ctx: &Ctx, host: &str) -> Result<u8> {
    let host = Hostname::parse(host)?;
    let product = ctx.config.product()?;
    let backends = ctx.backends().await;
    let view = ctx.view(&backends, &host).await?;
    if ctx.output == Output::Json {
        output::print_json(&view)?;
        return Ok(exit::OK);
    }
    let rec = view.record.as_ref();
    let inst = view.instance.as_ref();
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let mut kv = |k: &str, v: String| t.row(vec![k.to_owned(), v]);
    kv("hostname", host.to_string());
    kv("fqdn", host.fqdn(product));
    kv("group", host.group().to_string());
    kv("product", product.to_string());
    kv(
        "profile",
        or_dash(
            rec.map(|r| r.profile.as_str())
                .or(inst.and_then(|i| i.profile())),
        ),
    );
    kv(
        "zone",
        or_dash(
            rec.map(|r| r.zone.as_str())
                .or(inst.and_then(|i| i.zone.as_ref().map(|z| z.as_str()))),
        ),
    );
    kv(
        "state",
        or_dash(inst.map(|i| i.state.name()).or(rec.map(|r| r.state.name()))),
    );
    kv("instance", or_dash(inst.map(|i| i.id.as_str())));
    kv(
        "type",
        or_dash(inst.and_then(|i| i.instance_type.as_deref())),
    );
    kv("image", or_dash(inst.and_then(|i| i.image_id.as_deref())));
    kv(
        "private-ip",
        or_dash(inst.and_then(|i| i.private_ip.as_deref())),
    );
    kv(
        "public-ip",
        or_dash(inst.and_then(|i| i.public_ip.as_deref())),
    );
    kv(
        "security-groups",
        inst.map(|i| clean(&i.security_groups.join(",")))
            .unwrap_or_else(|| "-".into()),
    );
    kv(
        "age",
        inst.and_then(|i| i.launch_time)
            .map(|t| age(now() - t))
            .unwrap_or_else(|| "-".into()),
    );
    match rec {
        Some(r) => {
            kv("generation", r.generation.to_string());
            kv(
                "registry",
                format!(
                    "updated {} ago by {}",
                    age(now() - r.updated_at),
                    clean(&r.updated_by)
                ),
            );
        }
        None => kv("registry", "no record (found by tags only)".into()),
    }
    if let Some(i) = inst {
        let tags: Vec<String> = i
            .tags
            .iter()
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect();
        kv("tags", tags.join(" "));
    }
    output::emit(&t.render());
    Ok(exit::OK)
}
