//! In-memory backends for unit tests of the workflows.
//!
//! [`FakeCloud`] behaves like moto by default: instances change state at once, and
//! `ClientToken` can be ignored (as moto does) or honoured (as EC2 does). Given a
//! [`Timing`], states take time as on EC2 (`pending`, `stopping`, `shutting-down`, on the
//! test's [`ManualClock`]: virtual time, no sleeping) and acting too early is refused
//! with `IncorrectInstanceState`. A newly launched instance can stay invisible for a few
//! describes (`InvalidInstanceID.NotFound`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::model::{
    Address, AllocationId, HostRecord, Instance, InstanceFilter, InstanceId, InstanceState,
    LaunchSpec, Volume, VolumeId, VolumeRequest, VolumeState,
};
use crate::names::{Hostname, Product, Region, Zone};
use crate::ports::{
    Compute, ComputeRead, ProviderError, ProviderErrorKind, ProviderResult, Registry, RegistryRead,
};
use crate::wait::{Clock, ManualClock};

/// Instance states that take time: every transition lasts `takes` on `clock`.
pub struct Timing {
    /// The test's clock (the workflows sleep on it too).
    pub clock: Arc<ManualClock>,
    /// How long `pending`, `stopping` and `shutting-down` last.
    pub takes: Duration,
}

/// A scripted failure for the next matching call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `launch` fails with this kind.
    Launch(ProviderErrorKind),
    /// The next `instances` call in this region fails with this kind.
    List(Region, ProviderErrorKind),
    /// The next `volumes` call in this region fails with this kind.
    Volumes(Region, ProviderErrorKind),
    /// The next `create_volume` fails with this kind.
    CreateVolume(ProviderErrorKind),
    /// The next `attach_volume` attaches, then reports `Unavailable`: the answer was
    /// lost after the work was done.
    AttachLost,
    /// The next `attach_volume` fails with this kind and attaches nothing (throttled,
    /// or a connection reset before the request arrived, once the SDK's retries or
    /// its retry quota are spent).
    Attach(ProviderErrorKind),
    /// The next `allocate_address` allocates (tagged), then reports `Unavailable`.
    AllocateLost,
    /// The next launched instance goes from `pending` to `terminated` with this
    /// `StateReason` (an unusable KMS key does that).
    LaunchDies(String),
    /// The next started instance goes from `pending` back to `stopped` with this
    /// `StateReason` (no capacity for it).
    StartBounces(String),
    /// The next created volume vanishes at once, as EBS drops a volume whose KMS key
    /// cannot be used (its token then answers `IdempotentParameterMismatch`).
    VolumeVanishes,
    /// The next `create_volume` also makes a volume of the same host, as another
    /// operator's restore of set `.0` at the same time does: still marked
    /// `restore-device`, or (`.1`) promoted to the host's set already.
    AnotherRestore(String, bool),
}

#[derive(Default)]
struct CloudState {
    instances: BTreeMap<InstanceId, Instance>,
    volumes: BTreeMap<VolumeId, Volume>,
    /// Elastic IPs with their tags.
    addresses: Vec<(Address, BTreeMap<String, String>)>,
    hidden: BTreeMap<InstanceId, u32>,
    next_id: u64,
    faults: Vec<Fault>,
    calls: BTreeMap<&'static str, u64>,
    /// Instances dropped from every answer whose launch tokens still answer, as EC2
    /// keeps a `ClientToken` a day after its instance left the listings.
    forgotten: Vec<Instance>,
    /// CreateVolume tokens and the volume each made.
    volume_tokens: Vec<(String, VolumeId)>,
    /// Instances in a state that takes time: when it ends, and the state after.
    settling: BTreeMap<InstanceId, (Duration, InstanceState)>,
}

/// An in-memory EC2.
pub struct FakeCloud {
    state: Mutex<CloudState>,
    /// Zones per region; a region not listed has `a`, `b` and `c`.
    pub zones: BTreeMap<Region, Vec<Zone>>,
    /// Honour `ClientToken` like EC2 (`true`) or ignore it like moto (`false`).
    pub honour_client_token: bool,
    /// Describes that miss a new instance right after launch.
    pub hide_new_for: u32,
    /// States that take time (`None`: instant, like moto).
    pub timing: Option<Timing>,
    /// Zones with no capacity: launches and starts there are refused with
    /// `InsufficientInstanceCapacity`, as EC2 refuses them.
    pub full_zones: Mutex<BTreeSet<Zone>>,
    /// Each region's network (`None`: no default VPC, as many accounts have); a
    /// region not listed has a default VPC with a default subnet in each zone and a
    /// `default` security group.
    pub networks: Mutex<BTreeMap<Region, Option<crate::network::Network>>>,
    /// What a region offers an instance type (a pair not listed: every image exists,
    /// runs x86_64, and the type is offered in every zone).
    pub offerings: Mutex<BTreeMap<(Region, String), crate::offering::Offering>>,
    /// Snapshots (completed when made).
    pub snapshots: Mutex<Vec<crate::backup::Snapshot>>,
}

impl Default for FakeCloud {
    fn default() -> Self {
        Self {
            state: Mutex::new(CloudState::default()),
            zones: BTreeMap::new(),
            honour_client_token: false,
            hide_new_for: 0,
            timing: None,
            full_zones: Mutex::new(BTreeSet::new()),
            networks: Mutex::new(BTreeMap::new()),
            offerings: Mutex::new(BTreeMap::new()),
            snapshots: Mutex::new(Vec::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Unavailable`, as when the connection drops after the work was done.
fn lost_answer(what: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Unavailable,
        format!("{what}: connection reset after the request was sent"),
    )
}

impl CloudState {
    /// Takes the first queued fault `pick` finds something in.
    fn take<T>(&mut self, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
        let pos = self.faults.iter().position(|f| pick(f).is_some())?;
        pick(&self.faults.remove(pos))
    }

    /// Fails with the first queued fault `pick` names a kind for (and removes it).
    fn fail(&mut self, pick: impl Fn(&Fault) -> Option<ProviderErrorKind>) -> ProviderResult<()> {
        match self.take(pick) {
            Some(kind) => Err(ProviderError::new(kind, "injected fault")),
            None => Ok(()),
        }
    }
}

/// EC2's refusal of a launch or start in a zone without capacity (EC2 API Reference,
/// error codes: `InsufficientInstanceCapacity`).
fn no_capacity(instance_type: &str, zone: &Zone) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Capacity,
        format!("InsufficientInstanceCapacity: We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested ({zone})."),
    )
}

impl FakeCloud {
    /// The network of `region`: what [`Self::networks`] says, or a default VPC.
    pub fn network_of(&self, region: &Region) -> Option<crate::network::Network> {
        use crate::network::{Network, SecurityGroup, Subnet};
        if let Some(n) = lock(&self.networks).get(region) {
            return n.clone();
        }
        let zones = self.zones.get(region).cloned().unwrap_or_else(|| {
            ["a", "b", "c"]
                .iter()
                .map(|l| Zone::parse(&format!("{region}{l}")).expect("valid zone"))
                .collect()
        });
        Some(Network {
            vpc_id: format!("vpc-default-{region}"),
            is_default: true,
            subnets: zones
                .into_iter()
                .map(|zone| Subnet {
                    id: format!("subnet-default-{zone}"),
                    zone,
                    tags: BTreeMap::new(),
                    public_ip_on_launch: true,
                    default_for_az: true,
                    available_ips: 4091,
                })
                .collect(),
            groups: vec![SecurityGroup {
                id: format!("sg-default-{region}"),
                name: "default".into(),
            }],
        })
    }

    /// Queues a failure.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    /// Every instance ever launched.
    pub fn all(&self) -> Vec<Instance> {
        lock(&self.state).instances.values().cloned().collect()
    }

    /// Every volume ever created.
    pub fn all_volumes(&self) -> Vec<Volume> {
        lock(&self.state).volumes.values().cloned().collect()
    }

    /// Every Elastic IP.
    pub fn all_addresses(&self) -> Vec<Address> {
        lock(&self.state)
            .addresses
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Adds an instance as if someone else had launched it.
    pub fn insert(&self, inst: Instance) {
        lock(&self.state).instances.insert(inst.id.clone(), inst);
    }

    /// Drops an instance from every answer, as EC2 does with terminated instances
    /// after about an hour.
    /// Its launch token still answers (with the terminated instance), as EC2's does.
    pub fn forget(&self, id: &InstanceId) {
        let mut s = lock(&self.state);
        if let Some(i) = s.instances.remove(id) {
            s.forgotten.push(i);
        }
    }

    /// Sets an instance's state behind cerveza's back.
    pub fn set_state(&self, id: &InstanceId, state: InstanceState) {
        if let Some(i) = lock(&self.state).instances.get_mut(id) {
            i.state = state;
        }
    }

    /// How many times a call was made (`launch`, `instances`, `instance`, …).
    pub fn calls(&self, name: &str) -> u64 {
        lock(&self.state).calls.get(name).copied().unwrap_or(0)
    }

    fn count(&self, name: &'static str) {
        *lock(&self.state).calls.entry(name).or_default() += 1;
    }

    /// Like EC2, a request for several instances fails whole when one cannot go.
    fn all_or_none(
        &self,
        region: &Region,
        ids: &[InstanceId],
        from: InstanceState,
    ) -> ProviderResult<()> {
        let s = self.settled();
        for id in ids {
            match s.instances.get(id).filter(|i| &i.region == region) {
                None => {
                    return Err(ProviderError::new(
                        ProviderErrorKind::NotFound,
                        format!("InvalidInstanceID.NotFound: {id}"),
                    ))
                }
                Some(i) if i.state != from => {
                    return Err(ProviderError::new(
                        ProviderErrorKind::Invalid,
                        format!("IncorrectInstanceState: {id} is {}", i.state),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The state lock, with every transition that has ended applied.
    fn settled(&self) -> std::sync::MutexGuard<'_, CloudState> {
        let mut s = lock(&self.state);
        if let Some(t) = &self.timing {
            let now = t.clock.now();
            let done: Vec<InstanceId> = s
                .settling
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in done {
                if let Some((_, next)) = s.settling.remove(&id) {
                    if let Some(i) = s.instances.get_mut(&id) {
                        i.state = next;
                    }
                }
            }
        }
        s
    }

    /// `to` at once, or through `via` for `Timing::takes`.
    fn arrive(&self, s: &mut CloudState, id: &InstanceId, via: InstanceState, to: InstanceState) {
        let Some(i) = s.instances.get_mut(id) else {
            return;
        };
        match &self.timing {
            Some(t) => {
                i.state = via;
                s.settling.insert(id.clone(), (t.clock.now() + t.takes, to));
            }
            None => i.state = to,
        }
    }

    fn transition(
        &self,
        region: &Region,
        id: &InstanceId,
        from: &[InstanceState],
        via: InstanceState,
        to: InstanceState,
    ) -> ProviderResult<()> {
        let mut s = self.settled();
        let inst = s
            .instances
            .get_mut(id)
            .filter(|i| &i.region == region)
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    format!("InvalidInstanceID.NotFound: {id}"),
                )
            })?;
        if !from.is_empty() && !from.contains(&inst.state) {
            return Err(ProviderError::new(
                ProviderErrorKind::Invalid,
                format!("IncorrectInstanceState: {id} is {}", inst.state),
            ));
        }
        self.arrive(&mut s, id, via, to);
        Ok(())
    }
}

#[async_trait]
impl ComputeRead for FakeCloud {
    async fn zones(&self, region: &Region) -> ProviderResult<Vec<Zone>> {
        self.count("zones");
        Ok(self.zones.get(region).cloned().unwrap_or_else(|| {
            ["a", "b", "c"]
                .iter()
                .map(|l| Zone::parse(&format!("{region}{l}")).expect("valid zone"))
                .collect()
        }))
    }

    async fn network(
        &self,
        region: &Region,
        vpc: Option<&str>,
    ) -> ProviderResult<Option<crate::network::Network>> {
        self.count("network");
        Ok(self
            .network_of(region)
            .filter(|n| vpc.map_or(n.is_default, |v| v == n.vpc_id)))
    }

    async fn offering(
        &self,
        region: &Region,
        image: Option<&str>,
        instance_type: &str,
    ) -> ProviderResult<crate::offering::Offering> {
        self.count("offering");
        if let Some(o) = lock(&self.offerings).get(&(region.clone(), instance_type.to_owned())) {
            return Ok(o.clone());
        }
        // Every image exists and is current; every type runs x86_64 in every zone.
        Ok(crate::offering::Offering {
            image: image.map(|id| crate::offering::Image {
                id: id.to_owned(),
                name: "fake image".into(),
                architecture: "x86_64".into(),
                deprecated_at: None,
            }),
            architectures: vec!["x86_64".into()],
            zones: self.zones(region).await?,
        })
    }

    async fn attached_volumes(
        &self,
        region: &Region,
        instances: &[InstanceId],
    ) -> ProviderResult<Vec<Volume>> {
        self.count("attached_volumes");
        Ok(lock(&self.state)
            .volumes
            .values()
            .filter(|v| &v.region == region)
            .filter(|v| {
                v.attached_to
                    .as_ref()
                    .is_some_and(|i| instances.contains(i))
            })
            .cloned()
            .collect())
    }

    async fn snapshots(
        &self,
        region: &Region,
        product: &Product,
    ) -> ProviderResult<Vec<crate::backup::Snapshot>> {
        self.count("snapshots");
        Ok(lock(&self.snapshots)
            .iter()
            .filter(|s| &s.region == region)
            .filter(|s| {
                s.tags.get(crate::tags::PRODUCT).map(String::as_str) == Some(product.as_str())
            })
            .cloned()
            .collect())
    }

    async fn instances(
        &self,
        region: &Region,
        filter: &InstanceFilter,
    ) -> ProviderResult<Vec<Instance>> {
        self.count("instances");
        let mut s = self.settled();
        s.fail(|f| match f {
            Fault::List(r, kind) if r == region => Some(*kind),
            _ => None,
        })?;
        Ok(s.instances
            .values()
            .filter(|i| &i.region == region && filter.matches(i))
            .filter(|i| !s.hidden.contains_key(&i.id))
            .cloned()
            .collect())
    }

    async fn instance(&self, region: &Region, id: &InstanceId) -> ProviderResult<Option<Instance>> {
        self.count("instance");
        let mut s = self.settled();
        if let Some(n) = s.hidden.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                s.hidden.remove(id);
            }
            return Ok(None);
        }
        Ok(s.instances.get(id).filter(|i| &i.region == region).cloned())
    }

    async fn instances_by_id(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> ProviderResult<Vec<Instance>> {
        self.count("instances_by_id");
        let mut s = self.settled();
        let mut out = Vec::new();
        for id in ids {
            if let Some(n) = s.hidden.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    s.hidden.remove(id);
                }
                continue;
            }
            out.extend(s.instances.get(id).filter(|i| &i.region == region).cloned());
        }
        Ok(out)
    }

    async fn volumes(
        &self,
        region: &Region,
        product: &Product,
        hosts: &[Hostname],
    ) -> ProviderResult<Vec<Volume>> {
        self.count("volumes");
        let mut s = lock(&self.state);
        s.fail(|f| match f {
            Fault::Volumes(r, kind) if r == region => Some(*kind),
            _ => None,
        })?;
        Ok(s.volumes
            .values()
            .filter(|v| &v.region == region)
            .filter(|v| {
                v.tags.get(crate::tags::PRODUCT).map(String::as_str) == Some(product.as_str())
            })
            .filter(|v| hosts.is_empty() || hosts.iter().any(|h| v.host() == Some(h.as_str())))
            .cloned()
            .collect())
    }

    async fn address(
        &self,
        _region: &Region,
        product: &Product,
        host: &Hostname,
    ) -> ProviderResult<Option<Address>> {
        Ok(lock(&self.state).addresses.iter().find_map(|(a, t)| {
            (t.get(crate::tags::PRODUCT).map(String::as_str) == Some(product.as_str())
                && t.get(crate::tags::HOST).map(String::as_str) == Some(host.as_str()))
            .then(|| a.clone())
        }))
    }
}

#[async_trait]
impl Compute for FakeCloud {
    async fn launch(&self, spec: &LaunchSpec) -> ProviderResult<Instance> {
        self.count("launch");
        let mut s = lock(&self.state);
        s.fail(|f| match f {
            Fault::Launch(kind) => Some(*kind),
            _ => None,
        })?;
        if lock(&self.full_zones).contains(&spec.zone) {
            return Err(no_capacity(&spec.instance_type, &spec.zone));
        }
        // EC2 refuses a subnet of another zone, and group ids of another VPC.
        let network = self.network_of(&spec.region);
        let placed = &spec.placement;
        let fits = network.as_ref().is_some_and(|n| {
            n.vpc_id == placed.vpc_id
                && n.subnets
                    .iter()
                    .any(|sn| sn.id == placed.subnet_id && sn.zone == spec.zone)
                && placed
                    .group_ids
                    .iter()
                    .all(|g| n.groups.iter().any(|sg| &sg.id == g))
        });
        if !fits {
            return Err(ProviderError::new(
                ProviderErrorKind::Invalid,
                format!(
                    "InvalidParameter: subnet {} and groups {:?} are not of zone {}'s VPC",
                    placed.subnet_id, placed.group_ids, spec.zone
                ),
            ));
        }
        if self.honour_client_token {
            if let Some(i) = s
                .instances
                .values()
                .chain(&s.forgotten)
                .find(|i| i.token() == Some(spec.client_token.as_str()))
            {
                return Ok(i.clone());
            }
        }
        s.next_id += 1;
        let id = InstanceId::new(format!("i-{:017x}", s.next_id));
        let inst = Instance {
            state_reason: None,
            imds_v1: Some(!spec.imds_tokens_required),
            id: id.clone(),
            region: spec.region.clone(),
            zone: Some(spec.zone.clone()),
            state: InstanceState::Pending,
            instance_type: Some(spec.instance_type.clone()),
            image_id: Some(spec.image_id.clone()),
            private_ip: Some(format!("10.0.{}.{}", s.next_id / 250, s.next_id % 250 + 1)),
            public_ip: None,
            launch_time: Some(1_700_000_000 + s.next_id as i64),
            security_groups: spec
                .placement
                .group_ids
                .iter()
                .filter_map(|g| {
                    network
                        .iter()
                        .flat_map(|n| &n.groups)
                        .find(|sg| &sg.id == g)
                        .map(|sg| sg.name.clone())
                })
                .collect(),
            tags: spec.tags.clone(),
        };
        let mut stored = inst.clone();
        stored.public_ip = Some(format!("203.0.113.{}", s.next_id % 250 + 1));
        s.instances.insert(id.clone(), stored);
        let dies = s.take(|f| match f {
            Fault::LaunchDies(reason) => Some(reason.clone()),
            _ => None,
        });
        let end = if dies.is_some() {
            InstanceState::Terminated
        } else {
            InstanceState::Running
        };
        self.arrive(&mut s, &id, InstanceState::Pending, end);
        if let Some(i) = s.instances.get_mut(&id) {
            i.state_reason = dies;
        }
        if self.hide_new_for > 0 {
            s.hidden.insert(id, self.hide_new_for);
        }
        Ok(inst)
    }

    async fn start(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.count("start");
        let full = {
            let s = lock(&self.state);
            s.instances.get(id).and_then(|i| {
                let zone = i.zone.as_ref()?;
                lock(&self.full_zones)
                    .contains(zone)
                    .then(|| no_capacity(i.instance_type.as_deref().unwrap_or("?"), zone))
            })
        };
        if let Some(e) = full {
            return Err(e);
        }
        let bounces = lock(&self.state).take(|f| match f {
            Fault::StartBounces(reason) => Some(reason.clone()),
            _ => None,
        });
        let end = if bounces.is_some() {
            InstanceState::Stopped
        } else {
            InstanceState::Running
        };
        self.transition(
            region,
            id,
            &[InstanceState::Stopped],
            InstanceState::Pending,
            end,
        )?;
        // Like EC2: a started instance gets a new public address.
        let mut s = lock(&self.state);
        if let Some(i) = s.instances.get_mut(id) {
            i.state_reason = bounces;
        }
        s.next_id += 1;
        let n = s.next_id;
        if let Some(i) = s.instances.get_mut(id) {
            i.public_ip = Some(format!("198.51.100.{}", n % 250 + 1));
        }
        Ok(())
    }

    async fn stop(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.count("stop");
        self.transition(
            region,
            id,
            &[InstanceState::Running],
            InstanceState::Stopping,
            InstanceState::Stopped,
        )?;
        // Like EC2: a stopped instance loses its public address.
        if let Some(i) = lock(&self.state).instances.get_mut(id) {
            i.public_ip = None;
        }
        Ok(())
    }

    async fn start_many(&self, region: &Region, ids: &[InstanceId]) -> ProviderResult<()> {
        self.count("start_many");
        self.all_or_none(region, ids, InstanceState::Stopped)?;
        for id in ids {
            self.start(region, id).await?;
        }
        Ok(())
    }

    async fn stop_many(&self, region: &Region, ids: &[InstanceId]) -> ProviderResult<()> {
        self.count("stop_many");
        self.all_or_none(region, ids, InstanceState::Running)?;
        for id in ids {
            self.stop(region, id).await?;
        }
        Ok(())
    }

    async fn reboot(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.count("reboot");
        self.transition(
            region,
            id,
            &[InstanceState::Running],
            InstanceState::Running,
            InstanceState::Running,
        )
    }

    async fn terminate(&self, region: &Region, id: &InstanceId) -> ProviderResult<()> {
        self.count("terminate");
        self.transition(
            region,
            id,
            &[],
            InstanceState::ShuttingDown,
            InstanceState::Terminated,
        )?;
        // Like EC2: data volumes are detached (not deleted), addresses disassociated.
        let mut s = lock(&self.state);
        for v in s
            .volumes
            .values_mut()
            .filter(|v| v.attached_to.as_ref() == Some(id))
        {
            v.attached_to = None;
            v.attached_as = None;
            v.state = VolumeState::Available;
        }
        for (a, _) in s.addresses.iter_mut() {
            if a.instance.as_ref() == Some(id) {
                a.instance = None;
            }
        }
        Ok(())
    }

    async fn create_volume(&self, r: &VolumeRequest) -> ProviderResult<Volume> {
        self.count("create_volume");
        let mut s = lock(&self.state);
        s.fail(|f| match f {
            Fault::CreateVolume(kind) => Some(*kind),
            _ => None,
        })?;
        if self.honour_client_token {
            if let Some((_, v)) = s.volume_tokens.iter().find(|(t, _)| t == &r.client_token) {
                let id = v.clone();
                return match s.volumes.get(&id) {
                    Some(v) => Ok(v.clone()),
                    None => Err(ProviderError::new(
                        ProviderErrorKind::Invalid,
                        "IdempotentParameterMismatch: The client token you have provided is associated with a resource that is already deleted. Please use a different client token.",
                    )),
                };
            }
        }
        let vanishes = s
            .take(|f| matches!(f, Fault::VolumeVanishes).then_some(()))
            .is_some();
        s.next_id += 1;
        let v = Volume {
            id: VolumeId::new(format!("vol-{:017x}", s.next_id)),
            region: r.region.clone(),
            zone: Some(r.zone.clone()),
            size_gb: r.size_gb as i32,
            volume_type: Some(r.volume_type.clone()),
            state: VolumeState::Available,
            attached_to: None,
            attached_as: None,
            created: None,
            tags: r.tags.clone(),
        };
        if !vanishes {
            s.volumes.insert(v.id.clone(), v.clone());
        }
        if let Some((set, promoted)) = s.take(|f| match f {
            Fault::AnotherRestore(set, promoted) => Some((set.clone(), *promoted)),
            _ => None,
        }) {
            s.next_id += 1;
            let mut theirs = v.clone();
            theirs.id = VolumeId::new(format!("vol-{:017x}", s.next_id));
            theirs
                .tags
                .insert(crate::tags::RESTORED_FROM.to_owned(), set);
            if promoted {
                if let Some(device) = theirs.tags.remove(crate::tags::RESTORE_DEVICE) {
                    theirs.tags.insert(crate::tags::DEVICE.to_owned(), device);
                }
            }
            s.volumes.insert(theirs.id.clone(), theirs);
        }
        s.volume_tokens.push((r.client_token.clone(), v.id.clone()));
        Ok(Volume {
            state: VolumeState::Creating,
            ..v
        })
    }

    async fn attach_volume(
        &self,
        region: &Region,
        volume: &VolumeId,
        instance: &InstanceId,
        device: &str,
    ) -> ProviderResult<()> {
        self.count("attach_volume");
        let mut s = lock(&self.state);
        s.fail(|f| match f {
            Fault::Attach(kind) => Some(*kind),
            _ => None,
        })?;
        let zone = s.instances.get(instance).and_then(|i| i.zone.clone());
        let v = s
            .volumes
            .get_mut(volume)
            .filter(|v| &v.region == region)
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    format!("InvalidVolume.NotFound: {volume}"),
                )
            })?;
        if v.attached_to.is_some() {
            return Err(ProviderError::new(
                ProviderErrorKind::Invalid,
                format!("VolumeInUse: {volume}"),
            ));
        }
        if v.zone != zone {
            return Err(ProviderError::new(
                ProviderErrorKind::Invalid,
                "InvalidVolume.ZoneMismatch",
            ));
        }
        v.attached_to = Some(instance.clone());
        v.attached_as = Some(device.to_owned());
        v.state = VolumeState::InUse;
        if let Some(pos) = s.faults.iter().position(|f| matches!(f, Fault::AttachLost)) {
            s.faults.remove(pos);
            return Err(lost_answer("AttachVolume"));
        }
        Ok(())
    }

    async fn create_snapshots(
        &self,
        region: &Region,
        instance: &InstanceId,
        volumes: &[VolumeId],
        _exclude: &[VolumeId],
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<Vec<crate::backup::Snapshot>> {
        self.count("create_snapshots");
        let mut s = lock(&self.state);
        let mut made = Vec::new();
        for id in volumes {
            let v = s.volumes.get(id).cloned().ok_or_else(|| {
                ProviderError::new(ProviderErrorKind::NotFound, format!("no volume {id}"))
            })?;
            if v.attached_to.as_ref() != Some(instance) {
                return Err(ProviderError::new(
                    ProviderErrorKind::Invalid,
                    format!("{id} is not attached to {instance}"),
                ));
            }
            s.next_id += 1;
            let mut all = v.tags.clone();
            all.extend(tags.clone());
            made.push(crate::backup::Snapshot {
                id: format!("snap-{:017x}", s.next_id),
                region: region.clone(),
                volume_id: Some(id.to_string()),
                size_gb: v.size_gb,
                state: crate::backup::SnapshotState::Completed,
                started: Some(crate::lifecycle::now()),
                tags: all,
            });
        }
        drop(s);
        lock(&self.snapshots).extend(made.clone());
        Ok(made)
    }

    async fn detach_volume(
        &self,
        _region: &Region,
        volume: &VolumeId,
        _instance: &InstanceId,
    ) -> ProviderResult<()> {
        self.count("detach_volume");
        let mut s = lock(&self.state);
        let v = s.volumes.get_mut(volume).ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::NotFound,
                format!("InvalidVolume.NotFound: {volume}"),
            )
        })?;
        v.attached_to = None;
        v.attached_as = None;
        v.state = VolumeState::Available;
        Ok(())
    }

    async fn retag(
        &self,
        _region: &Region,
        resource: &str,
        add: &BTreeMap<String, String>,
        remove: &[&str],
    ) -> ProviderResult<()> {
        self.count("retag");
        let mut s = lock(&self.state);
        if let Some(v) = s.volumes.get_mut(&VolumeId::new(resource)) {
            v.tags.extend(add.clone());
            v.tags.retain(|k, _| !remove.contains(&k.as_str()));
            return Ok(());
        }
        drop(s);
        for snap in lock(&self.snapshots)
            .iter_mut()
            .filter(|x| x.id == resource)
        {
            snap.tags.extend(add.clone());
            snap.tags.retain(|k, _| !remove.contains(&k.as_str()));
        }
        Ok(())
    }

    async fn copy_snapshot(
        &self,
        to: &Region,
        source: &crate::backup::Snapshot,
        tags: &BTreeMap<String, String>,
    ) -> ProviderResult<crate::backup::Snapshot> {
        self.count("copy_snapshot");
        let id = {
            let mut s = lock(&self.state);
            s.next_id += 1;
            format!("snap-{:017x}", s.next_id)
        };
        let copy = crate::backup::Snapshot {
            id,
            region: to.clone(),
            volume_id: None,
            size_gb: source.size_gb,
            state: crate::backup::SnapshotState::Completed,
            started: Some(crate::lifecycle::now()),
            tags: tags.clone(),
        };
        lock(&self.snapshots).push(copy.clone());
        Ok(copy)
    }

    async fn delete_snapshot(&self, region: &Region, snapshot: &str) -> ProviderResult<()> {
        self.count("delete_snapshot");
        lock(&self.snapshots).retain(|s| !(&s.region == region && s.id == snapshot));
        Ok(())
    }

    async fn delete_volume(&self, _region: &Region, volume: &VolumeId) -> ProviderResult<()> {
        self.count("delete_volume");
        let mut s = lock(&self.state);
        match s.volumes.get(volume) {
            Some(v) if v.attached_to.is_some() => Err(ProviderError::new(
                ProviderErrorKind::Invalid,
                format!("VolumeInUse: {volume}"),
            )),
            Some(_) => {
                s.volumes.remove(volume);
                Ok(())
            }
            None => Err(ProviderError::new(
                ProviderErrorKind::NotFound,
                format!("InvalidVolume.NotFound: {volume}"),
            )),
        }
    }

    async fn allocate_address(
        &self,
        _region: &Region,
        product: &Product,
        host: &Hostname,
    ) -> ProviderResult<Address> {
        let mut s = lock(&self.state);
        s.next_id += 1;
        let a = Address {
            allocation: AllocationId::new(format!("eipalloc-{:x}", s.next_id)),
            ip: format!("192.0.2.{}", s.next_id % 250 + 1),
            instance: None,
        };
        let t = BTreeMap::from([
            (crate::tags::PRODUCT.to_owned(), product.to_string()),
            (crate::tags::HOST.to_owned(), host.to_string()),
        ]);
        s.addresses.push((a.clone(), t));
        if let Some(pos) = s
            .faults
            .iter()
            .position(|f| matches!(f, Fault::AllocateLost))
        {
            s.faults.remove(pos);
            return Err(lost_answer("AllocateAddress"));
        }
        Ok(a)
    }

    async fn associate_address(
        &self,
        _region: &Region,
        allocation: &AllocationId,
        instance: &InstanceId,
    ) -> ProviderResult<()> {
        let mut s = lock(&self.state);
        let (a, _) = s
            .addresses
            .iter_mut()
            .find(|(a, _)| &a.allocation == allocation)
            .ok_or_else(|| {
                ProviderError::new(ProviderErrorKind::NotFound, "InvalidAllocationID.NotFound")
            })?;
        a.instance = Some(instance.clone());
        let ip = a.ip.clone();
        if let Some(i) = s.instances.get_mut(instance) {
            i.public_ip = Some(ip);
        }
        Ok(())
    }

    async fn release_address(
        &self,
        _region: &Region,
        allocation: &AllocationId,
    ) -> ProviderResult<()> {
        let mut s = lock(&self.state);
        let Some(pos) = s
            .addresses
            .iter()
            .position(|(a, _)| &a.allocation == allocation)
        else {
            return Ok(());
        };
        let (a, _) = s.addresses.remove(pos);
        if let Some(i) = a.instance.and_then(|id| s.instances.get_mut(&id)) {
            if i.public_ip.as_deref() == Some(a.ip.as_str()) {
                i.public_ip = None;
            }
        }
        Ok(())
    }
}

/// An in-memory registry with the same conditional-write rules as the DynamoDB one.
#[derive(Default)]
pub struct FakeRegistry {
    records: Mutex<BTreeMap<(Product, Hostname), HostRecord>>,
    down: std::sync::atomic::AtomicBool,
    calls: std::sync::atomic::AtomicU64,
}

impl FakeRegistry {
    /// Puts a record unconditionally (test setup).
    pub fn put(&self, rec: HostRecord) {
        lock(&self.records).insert((rec.product.clone(), rec.hostname.clone()), rec);
    }

    /// Makes every call fail as unreachable (`true`), or answer again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many calls were made, answered or not.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Like a network call: counts it, fails it when down, and lets other tasks run
    /// (races become possible).
    async fn call(&self) -> ProviderResult<()> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::yield_now().await;
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ProviderError::new(
                ProviderErrorKind::Unavailable,
                "no answer in time (timeout)",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl RegistryRead for FakeRegistry {
    async fn get(&self, product: &Product, host: &Hostname) -> ProviderResult<Option<HostRecord>> {
        self.call().await?;
        Ok(lock(&self.records)
            .get(&(product.clone(), host.clone()))
            .cloned())
    }

    async fn list(&self, product: &Product) -> ProviderResult<Vec<HostRecord>> {
        self.call().await?;
        Ok(lock(&self.records)
            .values()
            .filter(|r| &r.product == product)
            .cloned()
            .collect())
    }
}

fn conflict() -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Conflict,
        "ConditionalCheckFailedException",
    )
}

#[async_trait]
impl Registry for FakeRegistry {
    async fn create(&self, rec: &HostRecord) -> ProviderResult<()> {
        self.call().await?;
        let mut m = lock(&self.records);
        let key = (rec.product.clone(), rec.hostname.clone());
        if m.contains_key(&key) {
            return Err(conflict());
        }
        m.insert(key, rec.clone());
        Ok(())
    }

    async fn update(&self, rec: &HostRecord, expected_generation: u64) -> ProviderResult<()> {
        self.call().await?;
        let mut m = lock(&self.records);
        let key = (rec.product.clone(), rec.hostname.clone());
        match m.get(&key) {
            Some(cur) if cur.generation == expected_generation => {
                m.insert(key, rec.clone());
                Ok(())
            }
            _ => Err(conflict()),
        }
    }

    async fn delete(
        &self,
        product: &Product,
        host: &Hostname,
        expected_generation: u64,
    ) -> ProviderResult<()> {
        self.call().await?;
        let mut m = lock(&self.records);
        let key = (product.clone(), host.clone());
        match m.get(&key) {
            Some(cur) if cur.generation == expected_generation => {
                m.remove(&key);
                Ok(())
            }
            _ => Err(conflict()),
        }
    }
}

/// An in-memory DNS.
#[derive(Default)]
pub struct FakeDns {
    records: Mutex<BTreeMap<String, std::net::IpAddr>>,
}

impl FakeDns {
    /// Every record, name → address.
    pub fn all(&self) -> BTreeMap<String, std::net::IpAddr> {
        lock(&self.records).clone()
    }
}

#[async_trait]
impl crate::ports::DnsRead for FakeDns {
    async fn records(&self, product: &Product) -> ProviderResult<Vec<crate::ports::DnsRecord>> {
        let suffixes = [format!(".{product}.private"), format!(".{product}.public")];
        Ok(lock(&self.records)
            .iter()
            .filter(|(n, _)| suffixes.iter().any(|s| n.ends_with(s.as_str())))
            .map(|(n, a)| crate::ports::DnsRecord {
                name: n.clone(),
                address: *a,
            })
            .collect())
    }
}

#[async_trait]
impl crate::ports::Dns for FakeDns {
    async fn upsert(&self, _: &Product, record: &crate::ports::DnsRecord) -> ProviderResult<()> {
        lock(&self.records).insert(record.name.clone(), record.address);
        Ok(())
    }

    async fn remove(&self, _: &Product, name: &str) -> ProviderResult<()> {
        lock(&self.records).remove(name);
        Ok(())
    }
}
