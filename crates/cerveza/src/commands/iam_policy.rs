//! `cerveza iam-policy [COMMAND…]`: the least-privilege IAM policy the given commands
//! (or all) need, as JSON. Each command's IAM actions are listed here; the IAM test
//! (`tests/iam_cli.rs`) runs every command against the lab with IAM enforcement, as a
//! user holding exactly this policy, and checks that every action listed was needed
//! (the lab counts what each request asked for), so the table cannot grow stale.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde_json::{json, Value};

use crate::exit;

/// Reading the fleet: instances in every region.
const FLEET: &[&str] = &["ec2:DescribeInstances"];
/// A registry record, read and written with conditions.
const RECORD: &[&str] = &[
    "dynamodb:DescribeTable",
    "dynamodb:CreateTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
];
/// Where a launch goes, and what the region offers it.
const LAUNCH: &[&str] = &[
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeVolumes",
    "ec2:RunInstances",
    "ec2:StartInstances",
    "ec2:CreateVolume",
    "ec2:AttachVolume",
    "ec2:DescribeAddresses",
    "ec2:AllocateAddress",
    "ec2:AssociateAddress",
];
/// Publishing names in Route53 (with `[dns] backend = "route53"`).
const ROUTE53: &[&str] = &[
    "route53:ListHostedZonesByName",
    "route53:CreateHostedZone",
    "route53:GetHostedZone",
    "route53:AssociateVPCWithHostedZone",
    "route53:ListResourceRecordSets",
    "route53:ChangeResourceRecordSets",
    "route53:GetChange",
    "ec2:DescribeVpcs",
];
/// Host keys from the console, before any connection.
const CONSOLE: &[&str] = &["ec2:DescribeInstances", "ec2:GetConsoleOutput"];
/// The release buckets.
const RELEASES: &[&str] = &[
    "s3:ListBucket",
    "s3:CreateBucket",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:GetObject",
];

/// Every command that calls AWS, with the action groups it needs; `publishes`: it
/// changes DNS names (Route53 actions when that is the backend).
struct Needs {
    command: &'static str,
    groups: &'static [&'static [&'static str]],
    publishes: bool,
}

/// What a restore does beyond a start: read the sets, make volumes from them (in
/// LAUNCH), detach or terminate what held the old set, retag both sets.
const RESTORE: &[&str] = &[
    "ec2:DescribeSnapshots",
    "ec2:DetachVolume",
    "ec2:TerminateInstances",
    "ec2:CreateTags",
    "ec2:DeleteTags",
];

const COMMANDS: &[Needs] = &[
    Needs {
        command: "start",
        groups: &[FLEET, RECORD, LAUNCH],
        publishes: true,
    },
    Needs {
        command: "stop",
        groups: &[FLEET, RECORD, &["ec2:StopInstances"]],
        publishes: true,
    },
    Needs {
        command: "restart",
        groups: &[
            FLEET,
            RECORD,
            &[
                "ec2:StopInstances",
                "ec2:StartInstances",
                "ec2:DescribeAddresses",
                "ec2:AssociateAddress",
            ],
        ],
        publishes: true,
    },
    Needs {
        command: "reboot",
        groups: &[FLEET, &["dynamodb:GetItem", "ec2:RebootInstances"]],
        publishes: false,
    },
    Needs {
        command: "terminate",
        groups: &[
            FLEET,
            RECORD,
            &[
                "dynamodb:DeleteItem",
                "ec2:TerminateInstances",
                "ec2:DescribeVolumes",
                "ec2:DeleteVolume",
            ],
        ],
        publishes: true,
    },
    Needs {
        command: "list",
        groups: &[FLEET],
        publishes: false,
    },
    Needs {
        command: "show",
        groups: &[FLEET, &["dynamodb:GetItem"]],
        publishes: false,
    },
    Needs {
        command: "userdata",
        groups: &[&["dynamodb:GetItem"]],
        publishes: false,
    },
    Needs {
        command: "export",
        groups: &[FLEET],
        publishes: false,
    },
    Needs {
        command: "remote",
        groups: &[CONSOLE],
        publishes: false,
    },
    Needs {
        command: "copy",
        groups: &[CONSOLE],
        publishes: false,
    },
    Needs {
        command: "ssh",
        groups: &[CONSOLE],
        publishes: false,
    },
    Needs {
        command: "hostkeys",
        groups: &[CONSOLE],
        publishes: false,
    },
    Needs {
        command: "release",
        groups: &[FLEET, CONSOLE, RELEASES],
        publishes: false,
    },
    Needs {
        command: "doctor",
        groups: &[
            FLEET,
            CONSOLE,
            &[
                "ec2:DescribeVolumes",
                "ec2:DescribeAddresses",
                "ec2:DescribeSecurityGroups",
                "dynamodb:DescribeTable",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:Query",
            ],
        ],
        publishes: false,
    },
    Needs {
        command: "plan",
        groups: &[
            FLEET,
            &[
                "dynamodb:Query",
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeVpcs",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeImages",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeVolumes",
            ],
        ],
        publishes: false,
    },
    Needs {
        command: "apply",
        groups: &[
            FLEET,
            RECORD,
            LAUNCH,
            &[
                "dynamodb:Query",
                "dynamodb:DeleteItem",
                "ec2:StopInstances",
                "ec2:TerminateInstances",
            ],
        ],
        publishes: true,
    },
    Needs {
        command: "fleet",
        groups: &[FLEET, &["dynamodb:Query"]],
        publishes: false,
    },
    Needs {
        command: "registry",
        groups: &[FLEET, RECORD, &["dynamodb:Query", "dynamodb:DeleteItem"]],
        publishes: false,
    },
    Needs {
        command: "volumes",
        groups: &[FLEET, &["ec2:DescribeVolumes"]],
        publishes: false,
    },
    Needs {
        command: "eip",
        groups: &[
            FLEET,
            &[
                "dynamodb:GetItem",
                "ec2:DescribeAddresses",
                "ec2:AllocateAddress",
                "ec2:AssociateAddress",
                "ec2:DisassociateAddress",
                "ec2:ReleaseAddress",
            ],
        ],
        publishes: false,
    },
    Needs {
        command: "dns",
        groups: &[FLEET],
        publishes: true,
    },
    Needs {
        command: "backup",
        groups: &[
            FLEET,
            &[
                "ec2:DescribeVolumes",
                "ec2:CreateSnapshots",
                "ec2:DescribeSnapshots",
                "ec2:DeleteSnapshot",
                "ec2:CopySnapshot",
            ],
        ],
        publishes: false,
    },
    Needs {
        command: "restore",
        groups: &[FLEET, RECORD, LAUNCH, RESTORE],
        publishes: true,
    },
    Needs {
        command: "move",
        groups: &[
            FLEET,
            RECORD,
            LAUNCH,
            RESTORE,
            &[
                "ec2:StopInstances",
                "ec2:CreateSnapshots",
                "ec2:CopySnapshot",
            ],
        ],
        publishes: true,
    },
    Needs {
        command: "completions",
        groups: &[FLEET],
        publishes: false,
    },
];

/// The commands `iam-policy` knows (those that call AWS).
pub fn commands() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|n| n.command)
}

/// What the policy is for.
pub struct Scope {
    /// Route53 is the DNS backend.
    pub route53: bool,
    /// The registry table's name.
    pub table: String,
    /// The release buckets' name pattern (`*` where it varies).
    pub buckets: String,
}

/// The IAM actions `commands` (all when empty) need, by service prefix.
pub fn actions(commands: &[String], route53: bool) -> Result<BTreeSet<&'static str>> {
    let mut out = BTreeSet::new();
    for name in commands {
        if !COMMANDS.iter().any(|n| n.command == name) {
            let known: Vec<&str> = self::commands().collect();
            anyhow::bail!(exit::Coded::new(
                exit::USAGE,
                format!(
                    "{name:?} is not a command that calls AWS (those are: {}); init, profiles, access, man need no AWS permission",
                    known.join(", ")
                )
            ));
        }
    }
    for n in COMMANDS
        .iter()
        .filter(|n| commands.is_empty() || commands.iter().any(|c| c == n.command))
    {
        out.extend(n.groups.iter().flat_map(|g| g.iter().copied()));
        if n.publishes && route53 {
            out.extend(ROUTE53.iter().copied());
        }
    }
    Ok(out)
}

/// The policy document for `actions`.
pub fn policy(actions: &BTreeSet<&'static str>, scope: &Scope) -> Value {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in actions {
        by.entry(a.split(':').next().unwrap_or(""))
            .or_default()
            .push(a);
    }
    let mut statements = Vec::new();
    if let Some(ec2) = by.get("ec2") {
        statements.push(json!({"Sid": "Fleet", "Effect": "Allow", "Action": ec2, "Resource": "*"}));
        // Tags go on with the resource (TagSpecifications), which needs ec2:CreateTags
        // for that creating action only.
        let creating: Vec<&str> = [
            "RunInstances",
            "CreateVolume",
            "AllocateAddress",
            "CreateSnapshots",
            "CopySnapshot",
        ]
        .into_iter()
        .filter(|a| actions.contains(format!("ec2:{a}").as_str()))
        .collect();
        if !creating.is_empty() {
            statements.push(json!({
                "Sid": "TagOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": "*",
                "Condition": {"StringEquals": {"ec2:CreateAction": creating}}
            }));
        }
        // `resolve:ssm:` images: EC2 reads the parameter as the launching caller.
        if actions.contains("ec2:RunInstances") {
            statements.push(json!({
                "Sid": "ResolveImages", "Effect": "Allow", "Action": ["ssm:GetParameters"],
                "Resource": ["arn:aws:ssm:*::parameter/aws/service/*", "arn:aws:ssm:*:*:parameter/*"]
            }));
        }
        // An UnauthorizedOperation's encoded reason, decoded for the error message.
        statements.push(json!({
            "Sid": "ExplainRefusals", "Effect": "Allow",
            "Action": ["sts:DecodeAuthorizationMessage"], "Resource": "*"
        }));
    }
    if let Some(ddb) = by.get("dynamodb") {
        statements.push(json!({
            "Sid": "Registry", "Effect": "Allow", "Action": ddb,
            "Resource": format!("arn:aws:dynamodb:*:*:table/{}", scope.table)
        }));
    }
    if let Some(s3) = by.get("s3") {
        statements.push(json!({
            "Sid": "Releases", "Effect": "Allow", "Action": s3,
            "Resource": [format!("arn:aws:s3:::{}", scope.buckets), format!("arn:aws:s3:::{}/*", scope.buckets)]
        }));
    }
    if let Some(r53) = by.get("route53") {
        statements.push(json!({"Sid": "Dns", "Effect": "Allow", "Action": r53, "Resource": "*"}));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Runs `iam-policy`.
pub fn run(commands: &[String], scope: &Scope) -> Result<u8> {
    let actions = actions(commands, scope.route53)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&policy(&actions, scope))?
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_s_policy_is_its_own_and_route53_follows_the_backend() {
        let read = actions(&["list".into(), "show".into()], true).unwrap();
        assert_eq!(
            read.iter().copied().collect::<Vec<_>>(),
            ["dynamodb:GetItem", "ec2:DescribeInstances"]
        );
        assert!(actions(&["stop".into()], true)
            .unwrap()
            .contains("route53:ChangeResourceRecordSets"));
        assert!(!actions(&["stop".into()], false)
            .unwrap()
            .contains("route53:ChangeResourceRecordSets"));
        let e = actions(&["access".into()], false).unwrap_err().to_string();
        assert!(e.contains("is not a command that calls AWS"), "{e}");
    }

    #[test]
    fn tags_on_create_are_allowed_only_for_creating_actions() {
        let scope = Scope {
            route53: false,
            table: "cerveza-hosts".into(),
            buckets: "cerveza-noc-*".into(),
        };
        let p = policy(&actions(&["start".into()], false).unwrap(), &scope);
        let tags = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "TagOnCreate")
            .unwrap();
        assert_eq!(
            tags["Condition"]["StringEquals"]["ec2:CreateAction"],
            json!(["RunInstances", "CreateVolume", "AllocateAddress"])
        );
        let read = policy(&actions(&["list".into()], false).unwrap(), &scope);
        assert!(!read.to_string().contains("CreateTags"));
        assert!(!read.to_string().contains("dynamodb"));
    }
}
