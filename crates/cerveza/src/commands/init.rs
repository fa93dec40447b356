//! `cerveza init`: a commented config file and a profiles directory to start from.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use cerveza_core::{Product, Region};

use crate::config::{default_config_path, DEFAULT_REGIONS};
use crate::exit;

/// The paper's profile and its user-data, as in examples/profiles.
const UBUNTU: &str = include_str!("../../../../examples/profiles/ubuntu-generic.yaml");
const PUPPET: &str = include_str!("../../../../examples/profiles/userdata/cloud-config-puppet.txt");

const VOLUMES: &str = "\
# A volume profile: four EBS volumes in RAID 10, created in the host's zone at its first
# start, assembled at first boot and re-assembled at every boot after (no fstab entry).
# Name it in an instance profile's `volume-profiles:` to use it.
--- !VolumeProfile
name: MysqlRaid10
desc: 4 x 100 GiB gp3 in RAID 10 for /var/lib/mysql
volumes: { count: 4, size-gb: 100, type: gp3, iops: 3000, throughput: 125, encrypted: true }
raid: 10
filesystem: xfs
mount-point: /var/lib/mysql
mount-options: [noatime]
";

const UBUNTU_LTS: &str = "\
# Canonical's current Ubuntu LTS in any region: EC2 resolves the image at each launch
# from its public Systems Manager parameter (the same name in every region; the
# launching credentials need ssm:GetParameters), on an instance type offered today.
--- !InstanceProfile
name: UbuntuLts
desc: Ubuntu 24.04 LTS (amd64), the image of the day
aws: !InstanceAws
  ami: { default: \"resolve:ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id\" }
  instance-type: t3.small
  security-groups: [default]
  # key-pair: ops              # a key pair of yours, in every region, for ssh
user-data:
  - userdata/cloud-config-puppet.txt
";

fn config_text(product: &Product, regions: &[Region]) -> String {
    let regions = regions
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\
# cerveza configuration (written by `cerveza init`). Flags and CERVEZA_* variables win
# over this file; `cerveza --help` and the README list every key.
product = \"{product}\"            # the fleet's namespace: <host>.{product}.private
regions = [{regions}]
profiles = \"profiles\"          # relative to this file

# concurrency = 512            # hosts handled at once (waits share requests)
# region-timeout = \"20s\"       # a region that does not answer is left out, never a hang
# wait-timeout = \"10m\"

[registry]                     # a DynamoDB table, created at the first start
# table = \"cerveza-hosts\"
# region = \"us-east-1\"
# timeout = \"5s\"              # then existing hosts go on from their tags

[userdata]                     # cerveza's own cloud-init parts
# nameservers = [\"10.0.0.2\", \"10.0.1.2\"]   # one per region: the paper's lesson
# puppet-server = \"puppet.{product}.private\"

# [directory]                  # OpenLDAP for DNS names and user access
# uris = [\"ldaps://ldap1.{product}.example\", \"ldaps://ldap2.{product}.example\"]
# base = \"dc={product},dc=example\"
# bind-dn = \"cn=cerveza,dc={product},dc=example\"
# bind-password-file = \"ldap.password\"

# [export]
# ssh-user = \"ubuntu\"
# jump-host = \"vpn.{product}.public\"
"
    )
}

/// Asks on the terminal; Enter keeps `default`. Repeats until `check` accepts.
fn ask<T>(question: &str, default: &str, check: impl Fn(&str) -> Result<T>) -> Result<T> {
    let stdin = std::io::stdin();
    loop {
        eprint!("{question} [{default}]: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return check(default);
        }
        let answer = line.trim();
        match check(if answer.is_empty() { default } else { answer }) {
            Ok(v) => return Ok(v),
            Err(e) => eprintln!("{e:#}"),
        }
    }
}

fn parse_regions(list: &str) -> Result<Vec<Region>> {
    let regions = list
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(Region::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if regions.is_empty() {
        bail!("give at least one region");
    }
    Ok(regions)
}

/// Writes `path` unless it exists.
fn create(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `init`.
pub fn run(dir: Option<&Path>, product: Option<&str>, regions: Option<&[String]>) -> Result<u8> {
    let dir: PathBuf = match dir {
        Some(d) => d.to_owned(),
        None => default_config_path()
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let config = dir.join("config.toml");
    let profiles = dir.join("profiles");
    for p in [&config, &profiles] {
        if p.exists() {
            bail!(exit::Coded::new(
                exit::CONFLICT,
                format!(
                    "{} exists: cerveza init never overwrites (move it away, or give --dir)",
                    p.display()
                )
            ));
        }
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let default_regions = DEFAULT_REGIONS.join(",");
    let product = match (product, interactive) {
        (Some(p), _) => Product::parse(p)?,
        (None, true) => ask("Product (the fleet's namespace)", "noc", |p| {
            Ok(Product::parse(p)?)
        })?,
        (None, false) => Product::parse("noc")?,
    };
    let regions = match (regions, interactive) {
        (Some(r), _) => parse_regions(&r.join(","))?,
        (None, true) => ask("Regions, comma separated", &default_regions, parse_regions)?,
        (None, false) => parse_regions(&default_regions)?,
    };
    std::fs::create_dir_all(profiles.join("userdata"))
        .with_context(|| format!("creating {}", profiles.display()))?;
    create(&config, &config_text(&product, &regions))?;
    create(&profiles.join("ubuntu-generic.yaml"), UBUNTU)?;
    create(&profiles.join("userdata/cloud-config-puppet.txt"), PUPPET)?;
    create(&profiles.join("mysql-raid10.yaml"), VOLUMES)?;
    create(&profiles.join("ubuntu-lts.yaml"), UBUNTU_LTS)?;
    let flag = if dir == default_config_path().parent().unwrap_or(Path::new(".")) {
        String::new()
    } else {
        format!(" --config {}", config.display())
    };
    let zone = format!("{}a", regions[0]);
    crate::output::emit(&format!(
        "wrote {} and {}\n\
         UbuntuGeneric32Bit's AMI ids are the paper's: put your own under `ami:` first, or start UbuntuLts (today's Ubuntu LTS in any region).\n\
         Next:\n  cerveza{flag} profiles check\n  cerveza{flag} list\n  cerveza{flag} start demo01 --zone {zone} --profile UbuntuGeneric32Bit\n",
        config.display(),
        profiles.display(),
    ));
    Ok(exit::OK)
}
