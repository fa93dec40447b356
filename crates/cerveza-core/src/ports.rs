//! Traits for the outside world. Read and write sides are separate traits, so that
//! `list` and `show` can run with read-only credentials and fakes stay small.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::model::{
    Address, AllocationId, HostRecord, Instance, InstanceFilter, InstanceId, LaunchSpec, Volume,
    VolumeId, VolumeRequest,
};
use crate::names::{Hostname, Product, Region, Zone};
use crate::profile::{InstanceProfile, VolumeProfile};

/// What kind of failure a backend reported; the workflows decide on this, not on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// The thing asked for does not exist (or does not exist *yet*).
    NotFound,
    /// A conditional write lost: someone else changed it first.
    Conflict,
    /// Rate limited even after the SDK's retries.
    Throttled,
    /// Timed out, connection refused or reset: the service could not be reached.
    Unavailable,
    /// The request was refused as invalid (bad AMI, unknown security group, …).
    Invalid,
    /// Credentials or permissions.
    Denied,
    /// The cloud has no capacity for it where it was asked (`InsufficientInstanceCapacity`,
    /// a type the zone does not offer), or an account quota is used up (`VcpuLimitExceeded`,
    /// `VolumeLimitExceeded`, `AddressLimitExceeded`, …): another zone, type or a raised
    /// quota may work; asking again at once will not.
    Capacity,
    /// Anything else.
    Other,
}

impl ProviderErrorKind {
    /// Throttled or unreachable: worth waiting and asking again.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable)
    }
}

/// A failure reported by a backend, with the service's own words in `message`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// The service's message, with its error code.
    pub message: String,
    /// The underlying error, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProviderError {
    /// A new error without an underlying cause.
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Whether the service answered with error `code` (`IdempotentParameterMismatch`):
    /// a service error's message starts with its code.
    pub fn has_code(&self, code: &str) -> bool {
        self.message
            .strip_prefix(code)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
    }
}

/// Result of a backend call.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// Reading the compute fleet.
#[async_trait]
pub trait ComputeRead: Send + Sync {
    /// The availability zones of a region that are available.
    async fn zones(&self, region: &Region) -> ProviderResult<Vec<Zone>>;
    /// Every instance of `region` that passes `filter`, all pages.
    async fn instances(
        &self,
        region: &Region,
        filter: &InstanceFilter,
    ) -> ProviderResult<Vec<Instance>>;
    /// One instance by id; `None` when the API does not know it (yet).
    async fn instance(&self, region: &Region, id: &InstanceId) -> ProviderResult<Option<Instance>>;
    /// Instances by id (at most 200), in one request; ids the API does not show (yet)
    /// are left out rather than failing the others.
    async fn instances_by_id(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> ProviderResult<Vec<Instance>>;
    /// Every EBS volume attached to `instances` in a region, whatever its tags (a root
    /// volume, one attached by hand): one read for many instances.
    async fn attached_volumes(
        &self,
        region: &Region,
        instances: &[InstanceId],
    ) -> ProviderResult<Vec<Volume>>;
    /// The EBS volumes of a product in a region (of `hosts` only, when not empty).
    async fn volumes(
        &self,
        region: &Region,
        product: &Product,
        hosts: &[Hostname],
    ) -> ProviderResult<Vec<Volume>>;
    /// The Elastic IP tagged for `host`.
    async fn address(
        &self,
        region: &Region,
        product: &Product,
        host: &Hostname,
    ) -> ProviderResult<Option<Address>>;
    /// The subnets and security groups of VPC `vpc` in `region`, or of the region's
    /// default VPC when `vpc` is `None`; `None` when there is no such VPC.
    async fn network(
        &self,
        region: &Region,
        vpc: Option<&str>,
    ) -> ProviderResult<Option<crate::network::Network>>;
    /// What `region` offers a launch of `instance_type` with image `image` (`None`: the
    /// image is not read, as for `resolve:ssm:`): the image, the type's architectures and
    /// the zones that offer the type.
    async fn offering(
        &self,
        region: &Region,
        image: Option<&str>,
        instance_type: &str,
    ) -> ProviderResult<crate::offering::Offering>;
    /// The product's snapshots in `region` (those tagged with it).
    async fn snapshots(
        &self,
        region: &Region,
        product: &Product,
    ) -> ProviderResult<Vec<crate::backup::Snapshot>>;
}

/// Changing the compute fleet.
#[async_trait]
pub trait Compute: ComputeRead {
    /// Launches one instance, tagged at creation.
    async fn launch(&self, spec: &LaunchSpec) -> ProviderResult<Instance>;
    /// Starts a stopped instance.
    async fn start(&self, region: &Region, id: &InstanceId) -> ProviderResult<()>;
    /// Starts stopped instances (at most 200) in one request; all or none.
    async fn start_many(&self, region: &Region, ids: &[InstanceId]) -> ProviderResult<()>;
    /// Stops a running instance.
    async fn stop(&self, region: &Region, id: &InstanceId) -> ProviderResult<()>;
    /// Stops running instances (at most 200) in one request; all or none.
    async fn stop_many(&self, region: &Region, ids: &[InstanceId]) -> ProviderResult<()>;
    /// Reboots a running instance.
    async fn reboot(&self, region: &Region, id: &InstanceId) -> ProviderResult<()>;
    /// Terminates an instance.
    async fn terminate(&self, region: &Region, id: &InstanceId) -> ProviderResult<()>;
    /// Creates an EBS volume, tagged at creation.
    async fn create_volume(&self, request: &VolumeRequest) -> ProviderResult<Volume>;
    /// Attaches a volume to an instance at `device`.
    async fn attach_volume(
        &self,
        region: &Region,
        volume: &VolumeId,
        instance: &InstanceId,
        device: &str,
    ) -> ProviderResult<()>;
    /// Deletes a volume.
    async fn delete_volume(&self, region: &Region, volume: &VolumeId) -> ProviderResult<()>;
    /// Snapshots `volumes` of `instance` at one instant (a crash-consistent set), each
    /// snapshot with its volume's tags and `tags`, leaving out the root and `exclude`
    /// (every other volume attached to it: see [`ComputeRead::attached_volumes`]).
    async fn create_snapshots(
        &self,
        region: &Region,
        instance: &InstanceId,
        volumes: &[VolumeId],
        exclude: &[VolumeId],
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Vec<crate::backup::Snapshot>>;
    /// Copies `source` (a completed snapshot of another region) into region `to`
    /// (CopySnapshot, sent to `to`), tagged `tags`: EC2 copies no user tags. The copy
    /// starts pending. CopySnapshot has no idempotency token: a caller looks for its
    /// copies by their tags before it copies again.
    async fn copy_snapshot(
        &self,
        to: &Region,
        source: &crate::backup::Snapshot,
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<crate::backup::Snapshot>;
    /// Detaches a volume from `instance`; one that is not attached is not an error.
    async fn detach_volume(
        &self,
        region: &Region,
        volume: &VolumeId,
        instance: &InstanceId,
    ) -> ProviderResult<()>;
    /// Sets the tags `add` on a resource (volume, snapshot, instance) and removes the
    /// keys `remove`.
    async fn retag(
        &self,
        region: &Region,
        resource: &str,
        add: &BTreeMap<String, String>,
        remove: &[&str],
    ) -> ProviderResult<()>;
    /// Deletes a snapshot; a snapshot already gone is not an error.
    async fn delete_snapshot(&self, region: &Region, snapshot: &str) -> ProviderResult<()>;
    /// Allocates an Elastic IP tagged for `host`.
    async fn allocate_address(
        &self,
        region: &Region,
        product: &Product,
        host: &Hostname,
    ) -> ProviderResult<Address>;
    /// Associates an Elastic IP with an instance.
    async fn associate_address(
        &self,
        region: &Region,
        allocation: &AllocationId,
        instance: &InstanceId,
    ) -> ProviderResult<()>;
    /// Disassociates (when associated) and releases an Elastic IP.
    async fn release_address(
        &self,
        region: &Region,
        allocation: &AllocationId,
    ) -> ProviderResult<()>;
}

/// One DNS address record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct DnsRecord {
    /// Fully qualified name without the trailing dot (`demo01.noc.private`).
    pub name: String,
    /// The address.
    pub address: std::net::IpAddr,
}

/// Reading where hosts' names are published: `<host>.<product>.private` → private
/// address, `<host>.<product>.public` (or `<host>.<public zone>`) → public address.
#[async_trait]
pub trait DnsRead: Send + Sync {
    /// The records of a product's two domains.
    async fn records(&self, product: &Product) -> ProviderResult<Vec<DnsRecord>>;
    /// The product's two domains, private then public: `<product>.private` and
    /// `<product>.public`, unless the backend publishes the public names in a domain of
    /// the user's (Route53's `[dns] public-zone`).
    async fn domains(&self, product: &Product) -> ProviderResult<[String; 2]> {
        Ok(default_domains(product))
    }
}

/// `<product>.private` and `<product>.public`.
pub fn default_domains(product: &Product) -> [String; 2] {
    [format!("{product}.private"), format!("{product}.public")]
}

/// Publishing hosts' names.
#[async_trait]
pub trait Dns: DnsRead {
    /// Creates or replaces one record (and its zone, when missing).
    async fn upsert(&self, product: &Product, record: &DnsRecord) -> ProviderResult<()>;
    /// Removes one name; removing a missing name is not an error.
    async fn remove(&self, product: &Product, name: &str) -> ProviderResult<()>;
    /// Waits, at most `limit`, until every change this backend made is served by its
    /// name servers (Route53: `INSYNC`); returns how many changes it waited for. A
    /// backend whose changes are live once written (LDAP) waits for none.
    async fn wait_synced(&self, limit: std::time::Duration) -> ProviderResult<usize> {
        let _ = limit;
        Ok(0)
    }
}

/// The names a host publishes in `domains` (see [`DnsRead::domains`]), private then
/// public.
pub fn dns_names(domains: &[String; 2], host: &Hostname) -> [String; 2] {
    [
        format!("{host}.{}", domains[0]),
        format!("{host}.{}", domains[1]),
    ]
}

/// Reading the host registry.
#[async_trait]
pub trait RegistryRead: Send + Sync {
    /// What and where the registry is, for messages ("the registry (DynamoDB table
    /// cerveza-hosts in us-east-1)").
    fn describe(&self) -> String {
        "the registry".into()
    }

    /// The record of one host.
    async fn get(&self, product: &Product, host: &Hostname) -> ProviderResult<Option<HostRecord>>;
    /// Every record of a product.
    async fn list(&self, product: &Product) -> ProviderResult<Vec<HostRecord>>;
}

/// Writing the host registry. Every write is conditional, so two operators never
/// overwrite each other: the loser gets [`ProviderErrorKind::Conflict`].
#[async_trait]
pub trait Registry: RegistryRead {
    /// Claims a new hostname: fails with `Conflict` when a record exists.
    async fn create(&self, record: &HostRecord) -> ProviderResult<()>;
    /// Replaces a record whose stored generation is `expected_generation`.
    async fn update(&self, record: &HostRecord, expected_generation: u64) -> ProviderResult<()>;
    /// Deletes a record whose stored generation is `expected_generation`.
    async fn delete(
        &self,
        product: &Product,
        host: &Hostname,
        expected_generation: u64,
    ) -> ProviderResult<()>;
}

/// Where workflows report progress (a spinner on a terminal, lines otherwise).
pub trait Progress: Send + Sync {
    /// `host` moved on to `what` ("launching", "waiting for running", …).
    fn step(&self, host: &Hostname, what: &str);

    /// Something the user must know although the command goes on (one line).
    fn warn(&self, message: &str) {
        tracing::warn!("{message}");
    }
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &Hostname, _: &str) {}
}

/// What a host's user-data is built from.
#[derive(Debug, Clone, Copy)]
pub struct HostContext<'a> {
    /// The fleet namespace.
    pub product: &'a Product,
    /// The host.
    pub host: &'a Hostname,
    /// Its zone.
    pub zone: &'a Zone,
    /// Its instance profile.
    pub profile: &'a InstanceProfile,
    /// The volume profiles the instance profile names.
    pub volumes: &'a [VolumeProfile],
}

/// Builds the user-data passed at launch (see the `cerveza-userdata` crate).
pub trait UserDataSource: Send + Sync {
    /// The exact bytes to pass as user-data, or a message saying what is wrong (which
    /// file, which variable, which size). Called once per host while planning a start,
    /// so problems surface before anything is created.
    fn user_data(&self, host: &HostContext<'_>) -> Result<Option<Vec<u8>>, String>;
}
