//! `cerveza doctor`: the rules the paper's team wrote after a three-day lock-out, checked
//! on a live fleet.
//!
//! This crate is the judgement, not the gathering: [`cloud`] judges facts read from the
//! cloud APIs and the configuration, [`host`] judges the files a read-only script printed
//! on each host. Both are pure, so every check has a passing and a failing unit test;
//! the `cerveza` binary reads the facts and runs the script.

pub mod cloud;
pub mod host;

use serde::Serialize;

/// Where a check looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The cloud APIs and the configuration.
    Cloud,
    /// Each host's files, read through ssh.
    Host,
}

/// One check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Security group rules naming a private address.
    SecurityGroups,
    /// One LDAP URI, one nameserver, everything in one region.
    ConfigSpof,
    /// The registry's backups and replicas.
    Registry,
    /// Registry records that disagree with their host's tags.
    RegistryTags,
    /// Data volumes no host has used for a long time.
    OrphanVolumes,
    /// Elastic IPs allocated and not associated.
    IdleAddresses,
    /// Instances whose metadata service still answers without a token (IMDSv1).
    Imds,
    /// Hosts with data whose newest complete backup set is old, or not copied out.
    Backups,
    /// resolv.conf: short timeouts, one attempt, two nameservers.
    Resolver,
    /// nsswitch.conf: local files before LDAP.
    Nsswitch,
    /// LDAP, DNS and autofs waits summed, against sshd's LoginGraceTime.
    LoginTimeouts,
    /// fstab: no EBS or network filesystem that can stop a boot.
    Fstab,
    /// puppet from cron at spread minutes, not as a daemon.
    Puppet,
    /// updatedb does not crawl network filesystems.
    Updatedb,
    /// A local account with an authorised key.
    LocalAccount,
    /// Every volume profile mounted from its own volumes.
    DataVolumes,
}

impl Check {
    /// Every check, in report order: the cloud's, then the hosts'.
    pub const ALL: [Check; 16] = [
        Check::SecurityGroups,
        Check::ConfigSpof,
        Check::Registry,
        Check::RegistryTags,
        Check::OrphanVolumes,
        Check::IdleAddresses,
        Check::Imds,
        Check::Backups,
        Check::Resolver,
        Check::Nsswitch,
        Check::LoginTimeouts,
        Check::Fstab,
        Check::Puppet,
        Check::Updatedb,
        Check::LocalAccount,
        Check::DataVolumes,
    ];

    /// Its id, as `--only` takes it.
    pub fn id(self) -> &'static str {
        match self {
            Check::SecurityGroups => "security-groups",
            Check::ConfigSpof => "config-spof",
            Check::Registry => "registry",
            Check::RegistryTags => "registry-tags",
            Check::OrphanVolumes => "orphan-volumes",
            Check::IdleAddresses => "idle-addresses",
            Check::Imds => "imds",
            Check::Backups => "backups",
            Check::Resolver => "resolver",
            Check::Nsswitch => "nsswitch",
            Check::LoginTimeouts => "login-timeouts",
            Check::Fstab => "fstab",
            Check::Puppet => "puppet",
            Check::Updatedb => "updatedb",
            Check::LocalAccount => "local-account",
            Check::DataVolumes => "data-volumes",
        }
    }

    /// The check with this id.
    pub fn from_id(id: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Where it looks.
    pub fn scope(self) -> Scope {
        match self {
            Check::SecurityGroups
            | Check::ConfigSpof
            | Check::Registry
            | Check::RegistryTags
            | Check::OrphanVolumes
            | Check::IdleAddresses
            | Check::Imds
            | Check::Backups => Scope::Cloud,
            _ => Scope::Host,
        }
    }

    /// Why it matters, in one line, from the paper.
    pub fn reason(self) -> &'static str {
        match self {
            Check::SecurityGroups => "a relaunched or rebooted host gets a new private address and the rule silently stops matching (outage lesson 6)",
            Check::ConfigSpof => "one LDAP server, one nameserver or one region behind them locked the team out of every host for three days",
            Check::Registry => "the tools' own data is a single point of failure without backups and a replica (the lost SQLite database of the outage)",
            Check::RegistryTags => "a record that disagrees with the instance's tags relaunches the wrong profile or zone the next time the host starts",
            Check::OrphanVolumes => "a data volume no host has used for long costs money every month and may hold data nobody remembers",
            Check::IdleAddresses => "an Elastic IP that is not associated is billed every hour and names nothing",
            Check::Imds => "a metadata service that answers without a session token hands the instance role's credentials to any request a host can be tricked into making (SSRF)",
            Check::Backups => "the outage began with a corrupted EBS RAID set; its lesson: \"make sure to have a valid backup strategy and have a recovery procedure\"",
            Check::Resolver => "without `options timeout:1 attempts:1` and a second nameserver, every lookup waits out a dead server (outage fix 2)",
            Check::Nsswitch => "with LDAP before files, a directory outage blocks even the local account meant to fix it (outage fix 1)",
            Check::LoginTimeouts => "LDAP, DNS and autofs waits added up to more than sshd's LoginGraceTime, so nobody could log in (outage fix 1)",
            Check::Fstab => "an EBS volume in fstab without nofail left a host waiting for fsck at a console nobody has (outage fix 5)",
            Check::Puppet => "puppet as a daemon ate over 1 GB and got servers OOM-killed; hosts of a group must not hit the master at one minute",
            Check::Updatedb => "updatedb crawling the NFS homes killed server performance",
            Check::LocalAccount => "the ssh backdoor, a local account with a key, is the only way in when LDAP and DNS are down (outage lesson 5)",
            Check::DataVolumes => "a RAID set that is not assembled and mounted leaves the database writing to the root disk, which terminate deletes (the outage began with a broken EBS RAID set)",
        }
    }

    /// How to fix what it finds.
    pub fn fix(self) -> &'static str {
        match self {
            Check::SecurityGroups => "allow the source security group, or the host's Elastic IP, instead of a /32 private address",
            Check::ConfigSpof => "list a server in each region: [directory] uris, [userdata] ldap-client-uri (space-separated) and nameservers",
            Check::Registry => "enable point-in-time recovery and add an MRSC replica (aws dynamodb update-table --replica-updates …)",
            Check::RegistryTags => "run `cerveza registry sync`, or fix the tag someone changed by hand",
            Check::OrphanVolumes => "start the host again to re-attach them, or delete them with `aws ec2 delete-volume` once they are not needed",
            Check::IdleAddresses => "associate them (`cerveza eip attach HOST`) or release them",
            Check::Imds => "`aws ec2 modify-instance-metadata-options --instance-id ID --http-tokens required`, and drop `imds-tokens: optional` from the profile",
            Check::Backups => "`cerveza backup HOST` (from cron, with --copy-to or [backup] copy-to); `cerveza backup list` shows the sets",
            Check::Resolver => "set two nameservers and `options timeout:1 attempts:1` ([userdata] resolv-conf does at first boot)",
            Check::Nsswitch => "put `files` first: `passwd: files ldap`, and the same for group and shadow",
            Check::LoginTimeouts => "lower nslcd's bind_timelimit and timelimit, the resolver's timeout and autofs' mount_wait until their sum is below LoginGraceTime",
            Check::Fstab => "add nofail to the mount options (cerveza's volume script mounts without fstab)",
            Check::Puppet => "disable the puppet service and run it from cron ([userdata] puppet spreads the minutes)",
            Check::Updatedb => "add nfs and nfs4 to PRUNEFS in /etc/updatedb.conf",
            Check::LocalAccount => "keep a local user with an ssh key in ~/.ssh/authorized_keys on every host",
            Check::DataVolumes => "read the reason in the status file or `journalctl -u cerveza-volumes@PROFILE`; once the volumes are attached, `systemctl start cerveza-volumes@PROFILE` assembles and mounts them",
        }
    }
}

/// One problem a check found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// What has the problem: a host, a security group, `config`, the registry table.
    pub subject: String,
    /// The problem, in words that name the file, value or rule.
    pub problem: String,
}

impl Finding {
    /// A finding about `subject`.
    pub fn new(subject: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            problem: problem.into(),
        }
    }
}

/// Parses a list of check ids (`resolver,nsswitch`); an unknown id is an error naming
/// the known ones.
pub fn parse_ids(list: &[String]) -> Result<Vec<Check>, String> {
    let mut out = Vec::new();
    for id in list.iter().flat_map(|l| l.split(',')).map(str::trim) {
        if id.is_empty() {
            continue;
        }
        let Some(c) = Check::from_id(id) else {
            let known: Vec<&str> = Check::ALL.iter().map(|c| c.id()).collect();
            return Err(format!(
                "no check is called {id:?}; the checks are: {}",
                known.join(", ")
            ));
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ones_are_named() {
        for c in Check::ALL {
            assert_eq!(Check::from_id(c.id()), Some(c));
            assert!(!c.reason().is_empty() && !c.fix().is_empty());
        }
        assert_eq!(
            parse_ids(&["nsswitch,resolver".into(), "resolver".into()]),
            Ok(vec![Check::Resolver, Check::Nsswitch])
        );
        let e = parse_ids(&["resolv".into()]).unwrap_err();
        assert!(
            e.contains("\"resolv\"") && e.contains("resolver, nsswitch"),
            "{e}"
        );
    }
}
