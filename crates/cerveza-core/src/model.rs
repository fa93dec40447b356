//! What the outside world holds: instances, volumes, addresses, registry records,
//! launch requests, and the ids and states the cloud gives them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{Hostname, Product, ProfileName, Region, Zone};
use crate::tags;

macro_rules! cloud_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id the cloud gave.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

cloud_id!(
    /// An EC2 instance id, `i-…`.
    InstanceId
);
cloud_id!(
    /// An EBS volume id, `vol-…`.
    VolumeId
);
cloud_id!(
    /// An Elastic IP allocation id, `eipalloc-…`.
    AllocationId
);

/// The lifecycle state of an EC2 instance (also what a registry record last saw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Launching or starting.
    Pending,
    /// Up.
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Gone for good.
    Terminated,
    /// Being stopped.
    Stopping,
    /// Stopped; can be started again.
    Stopped,
    /// A state name this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl InstanceState {
    /// Parses EC2's state name (`running`, `shutting-down`, …).
    pub fn from_name(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            other => Self::Other(other.to_owned()),
        }
    }

    /// EC2's name for the state.
    pub fn name(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Other(s) => s,
        }
    }

    /// Whether the instance is gone or going (it can never run again).
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::ShuttingDown | Self::Terminated)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state of an EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    /// Being created.
    Creating,
    /// Ready to attach.
    Available,
    /// Attached.
    InUse,
    /// Being deleted.
    Deleting,
    /// Gone.
    Deleted,
    /// Failed.
    Error,
    /// A state name this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl VolumeState {
    /// Parses EC2's state name (`available`, `in-use`, …).
    pub fn from_name(s: &str) -> Self {
        match s {
            "creating" => Self::Creating,
            "available" => Self::Available,
            "in-use" => Self::InUse,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            "error" => Self::Error,
            other => Self::Other(other.to_owned()),
        }
    }

    /// EC2's name for the state.
    pub fn name(&self) -> &str {
        match self {
            Self::Creating => "creating",
            Self::Available => "available",
            Self::InUse => "in-use",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Error => "error",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One EC2 instance as described by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Its id.
    pub id: InstanceId,
    /// The region it lives in.
    pub region: Region,
    /// Its availability zone, when the API said.
    pub zone: Option<Zone>,
    /// Its state.
    pub state: InstanceState,
    /// `t3.micro`, …
    pub instance_type: Option<String>,
    /// The AMI it was launched from.
    pub image_id: Option<String>,
    /// Private IPv4 address.
    pub private_ip: Option<String>,
    /// Public IPv4 address (or EIP).
    pub public_ip: Option<String>,
    /// Launch time, seconds since the Unix epoch.
    pub launch_time: Option<i64>,
    /// Security group names.
    pub security_groups: Vec<String>,
    /// All tags.
    pub tags: BTreeMap<String, String>,
    /// Why it is in its state, as EC2's `StateReason` says (`Client.InvalidKMSKey.InvalidState:
    /// The KMS key provided is in an incorrect state`), when EC2 gave one.
    #[serde(skip)]
    pub state_reason: Option<String>,
    /// Whether its metadata service still answers without a session token (IMDSv1), as
    /// `MetadataOptions.HttpTokens` says; `None` when EC2 did not say.
    #[serde(skip)]
    pub imds_v1: Option<bool>,
}

impl Instance {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// The hostname tag, if this is a cerveza instance.
    pub fn host(&self) -> Option<&str> {
        self.tag(tags::HOST)
    }

    /// The product tag.
    pub fn product(&self) -> Option<&str> {
        self.tag(tags::PRODUCT)
    }

    /// The profile tag.
    pub fn profile(&self) -> Option<&str> {
        self.tag(tags::PROFILE)
    }

    /// The launch token tag.
    pub fn token(&self) -> Option<&str> {
        self.tag(tags::TOKEN)
    }

    /// The claim it was launched under (empty: launched before claims had ids).
    pub fn claim(&self) -> &str {
        self.tag(tags::CLAIM).unwrap_or("")
    }

    /// Whether this instance is cerveza's instance of `host` in `product`. Instances that
    /// merely share a `Name` are someone else's and are never touched.
    pub fn belongs_to(&self, product: &Product, host: &Hostname) -> bool {
        self.product() == Some(product.as_str()) && self.host() == Some(host.as_str())
    }
}

/// The registry's record of one host: what the paper kept in SimpleDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    /// The fleet namespace.
    pub product: Product,
    /// The host's name.
    pub hostname: Hostname,
    /// The instance profile it is launched with.
    pub profile: ProfileName,
    /// Its availability zone (its region follows).
    pub zone: Zone,
    /// The current instance, once one was launched and recorded.
    pub instance_id: Option<InstanceId>,
    /// The last state cerveza saw of it (`terminated` once it is gone).
    pub state: InstanceState,
    /// Launch generation: bumped each time the host needs a new instance. Also the
    /// optimistic-locking version of the record.
    pub generation: u64,
    /// When the record was last written, seconds since the Unix epoch.
    pub updated_at: i64,
    /// Who last wrote it (`user@machine`).
    pub updated_by: String,
    /// The claim's random id, part of every launch token (empty: a record made before
    /// claims had ids; see [`crate::token`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim: String,
}

impl HostRecord {
    /// The host's region.
    pub fn region(&self) -> Region {
        self.zone.region()
    }
}

/// Everything needed to launch one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Region to call.
    pub region: Region,
    /// Placement zone.
    pub zone: Zone,
    /// AMI id for that region.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// SSH key pair name.
    pub key_pair: Option<String>,
    /// Subnet, security groups and public address.
    pub placement: crate::network::Placement,
    /// Idempotency token: sent as `ClientToken` and tagged.
    pub client_token: String,
    /// Tags for the instance and its volumes.
    pub tags: BTreeMap<String, String>,
    /// Raw user-data bytes (the AWS layer base64-encodes them).
    pub user_data: Option<Vec<u8>>,
    /// Whether the metadata service needs a session token (IMDSv2 only).
    pub imds_tokens_required: bool,
    /// Hops a metadata answer may take.
    pub imds_hop_limit: u8,
}

/// Which instances to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Only this product's instances.
    pub product: Product,
    /// Only these hosts (all when empty).
    pub hosts: Vec<Hostname>,
    /// Also instances that are shutting down or terminated.
    pub include_gone: bool,
}

impl InstanceFilter {
    /// Every live instance of a product.
    pub fn product(product: &Product) -> Self {
        Self {
            product: product.clone(),
            hosts: Vec::new(),
            include_gone: false,
        }
    }

    /// Every instance of one host, terminated ones included.
    pub fn host(product: &Product, host: &Hostname) -> Self {
        Self {
            product: product.clone(),
            hosts: vec![host.clone()],
            include_gone: true,
        }
    }

    /// Whether `i` passes this filter (what a backend must implement).
    pub fn matches(&self, i: &Instance) -> bool {
        i.product() == Some(self.product.as_str())
            && (self.hosts.is_empty() || self.hosts.iter().any(|h| i.host() == Some(h.as_str())))
            && (self.include_gone || !i.state.is_gone())
    }
}

/// One IPv4 range rule of a security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityRule {
    /// `sg-…`.
    pub group_id: String,
    /// Its name.
    pub group_name: String,
    /// Its region.
    pub region: String,
    /// `ingress` or `egress`.
    pub direction: &'static str,
    /// `tcp 22`, `udp 53-54`, `all`.
    pub traffic: String,
    /// The IPv4 range (`10.0.1.5/32`).
    pub cidr: String,
}

/// One EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Its id.
    pub id: VolumeId,
    /// Its region.
    pub region: Region,
    /// Its zone (volumes attach only to instances of the same zone).
    pub zone: Option<Zone>,
    /// Size in GiB.
    pub size_gb: i32,
    /// EBS type.
    pub volume_type: Option<String>,
    /// Its state.
    pub state: VolumeState,
    /// The instance it is attached to.
    pub attached_to: Option<InstanceId>,
    /// The device it is attached at.
    pub attached_as: Option<String>,
    /// When it was created, seconds since the Unix epoch.
    pub created: Option<i64>,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

impl Volume {
    /// The hostname tag.
    pub fn host(&self) -> Option<&str> {
        self.tags.get(tags::HOST).map(String::as_str)
    }

    /// The device tag: where it belongs on its host.
    pub fn device(&self) -> Option<&str> {
        self.tags.get(tags::DEVICE).map(String::as_str)
    }
}

/// A volume to create, tagged at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// Region to call.
    pub region: Region,
    /// Zone to create it in.
    pub zone: Zone,
    /// Size in GiB.
    pub size_gb: u32,
    /// EBS type.
    pub volume_type: String,
    /// Provisioned IOPS.
    pub iops: Option<u32>,
    /// Provisioned throughput.
    pub throughput: Option<u32>,
    /// Encrypted at rest.
    pub encrypted: bool,
    /// The KMS key to encrypt with (the account's default when `None`).
    pub kms_key: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Idempotency token, sent as `ClientToken`.
    pub client_token: String,
    /// The snapshot to make it from (its data; its size is the snapshot's).
    pub snapshot_id: Option<String>,
}

/// An Elastic IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// Its allocation id.
    pub allocation: AllocationId,
    /// The address.
    pub ip: String,
    /// The instance it is associated with.
    pub instance: Option<InstanceId>,
}
