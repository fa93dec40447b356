//! The host lifecycle against in-memory fakes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cerveza_core::wait::Clock as _;

use cerveza_core::fake::{FakeCloud, FakeDns, FakeRegistry, Fault};
use cerveza_core::fleet;
use cerveza_core::lifecycle::{Action, Lifecycle, Results, Settings, SyncChange};
use cerveza_core::model::{HostRecord, Instance, InstanceState};
use cerveza_core::ports::{ProviderErrorKind, Quiet, Registry, RegistryRead};
use cerveza_core::profile::ProfileSet;
use cerveza_core::selection::Selection;
use cerveza_core::{tags, token, Error, ErrorKind, Hostname, Product, ProfileName, Region, Zone};

const PROFILES: &str = "--- !InstanceProfile
name: Dev
desc: dev box
aws: !InstanceAws
  ami: { us-east-1: ami-a6f504cf, ap-southeast-1: ami-7c423c2e }
  instance-type: t3.micro
--- !VolumeProfile
name: Raid
volumes: { count: 4, size-gb: 10, type: gp3 }
raid: 10
mount-point: /data
--- !InstanceProfile
name: Db
extends: Dev
aws: !InstanceAws
  eip: true
volume-profiles: [Raid]
";

fn profiles() -> ProfileSet {
    ProfileSet::from_sources(&[(PathBuf::from("p.yaml"), PROFILES.to_owned())]).unwrap()
}

fn settings() -> Settings {
    let mut s = Settings::new(Product::parse("noc").unwrap());
    s.poll_initial = Duration::from_millis(1);
    s.poll_max = Duration::from_millis(2);
    s.wait_timeout = Duration::from_secs(5);
    s
}

fn h(s: &str) -> Hostname {
    Hostname::parse(s).unwrap()
}

fn zone() -> Zone {
    Zone::parse("ap-southeast-1a").unwrap()
}

struct World {
    cloud: FakeCloud,
    registry: FakeRegistry,
    profiles: ProfileSet,
    settings: Settings,
}

/// A lifecycle with the world's profiles at hand, so a start reads like the command.
struct Lc<'a> {
    lc: Lifecycle<'a>,
    profiles: &'a ProfileSet,
}

impl<'a> Lc<'a> {
    async fn start(
        &self,
        hosts: Vec<Hostname>,
        zone: Option<&Zone>,
        profile: Option<&str>,
    ) -> Result<Results, Vec<(Hostname, Error)>> {
        let profile = profile.map(|p| ProfileName::parse(p).unwrap());
        self.lc
            .start(self.profiles, hosts, zone, profile.as_ref())
            .await
    }

    fn with_dns(self, dns: &'a FakeDns) -> Self {
        Self {
            lc: self.lc.with_dns(dns),
            ..self
        }
    }
}

impl<'a> std::ops::Deref for Lc<'a> {
    type Target = Lifecycle<'a>;
    fn deref(&self) -> &Lifecycle<'a> {
        &self.lc
    }
}

impl World {
    /// Starts db01 (profile Db), asserts its four volumes are made and attached to its
    /// instance, and returns that instance.
    async fn start_db01_with_its_four_volumes(&self) -> Instance {
        self.start_db01(Some(&zone()), Some("Db")).await;
        let inst = self.live().remove(0);
        let vols = self.cloud.all_volumes();
        assert_eq!(vols.len(), 4);
        assert!(vols
            .iter()
            .all(|v| v.attached_to.as_ref() == Some(&inst.id)));
        inst
    }

    fn new() -> Self {
        Self {
            cloud: FakeCloud::default(),
            registry: FakeRegistry::default(),
            profiles: profiles(),
            settings: settings(),
        }
    }

    fn lc(&self) -> Lc<'_> {
        Lc {
            lc: Lifecycle::new(&self.cloud, &self.registry, &self.settings, &Quiet),
            profiles: &self.profiles,
        }
    }

    async fn start_new(&self, names: &[&str]) -> Vec<Action> {
        let hosts = names.iter().map(|n| h(n)).collect();
        let results = self
            .lc()
            .start(hosts, Some(&zone()), Some("Dev"))
            .await
            .unwrap();
        results
            .into_iter()
            .map(|(_, r)| r.unwrap().action)
            .collect()
    }

    /// Starts db01 and asserts that it succeeded.
    async fn start_db01(&self, zone: Option<&Zone>, profile: Option<&str>) {
        let results = self
            .lc()
            .start(vec![h("db01")], zone, profile)
            .await
            .unwrap();
        results[0].1.as_ref().unwrap();
    }

    async fn record(&self, name: &str) -> HostRecord {
        self.registry
            .get(&self.settings.product, &h(name))
            .await
            .unwrap()
            .unwrap()
    }

    fn live(&self) -> Vec<Instance> {
        self.cloud
            .all()
            .into_iter()
            .filter(|i| !i.state.is_gone())
            .collect()
    }
}

#[tokio::test]
async fn first_start_launches_tags_and_records() {
    let w = World::new();
    assert_eq!(w.start_new(&["demo01"]).await, [Action::Launched]);
    let all = w.cloud.all();
    assert_eq!(all.len(), 1);
    let i = &all[0];
    assert_eq!(i.tags[tags::NAME], "demo01");
    assert_eq!(i.tags[tags::PRODUCT], "noc");
    assert_eq!(i.tags[tags::HOST], "demo01");
    assert_eq!(i.tags[tags::PROFILE], "Dev");
    assert_eq!(i.tags[tags::ZONE], "ap-southeast-1a");
    let rec = w.record("demo01").await;
    assert_eq!(rec.claim.len(), 16, "a claim id: {rec:?}");
    assert_eq!(i.tags[tags::CLAIM], rec.claim);
    assert_eq!(
        i.tags[tags::TOKEN],
        token::client_token(&w.settings.product, &h("demo01"), &rec.claim, 1)
    );
    assert_eq!(i.image_id.as_deref(), Some("ami-7c423c2e"));
    let rec = w.record("demo01").await;
    assert_eq!(
        (rec.profile.as_str(), rec.state.name(), rec.generation),
        ("Dev", "running", 1)
    );
    assert_eq!(rec.instance_id.as_ref(), Some(&i.id));
}

#[tokio::test]
async fn restart_without_profile_uses_the_registry() {
    let w = World::new();
    w.start_new(&["demo01"]).await;
    let stop = w.lc().stop(vec![h("demo01")]).await;
    assert_eq!(stop[0].1.as_ref().unwrap().action, Action::Stopped);
    assert_eq!(w.record("demo01").await.state, InstanceState::Stopped);
    let again = w.lc().start(vec![h("demo01")], None, None).await.unwrap();
    assert_eq!(again[0].1.as_ref().unwrap().action, Action::Started);
    let again = w.lc().start(vec![h("demo01")], None, None).await.unwrap();
    assert_eq!(again[0].1.as_ref().unwrap().action, Action::AlreadyRunning);
    assert_eq!(w.cloud.all().len(), 1, "never a second instance");
    assert_eq!(w.cloud.calls("launch"), 1);
}

#[tokio::test]
async fn terminated_host_is_relaunched_with_a_new_generation() {
    let w = World::new();
    w.start_new(&["demo01"]).await;
    let t = w.lc().terminate(vec![h("demo01")], false, false).await;
    assert_eq!(t[0].1.as_ref().unwrap().action, Action::Terminated);
    assert_eq!(w.record("demo01").await.state, InstanceState::Terminated);
    let r = w.lc().start(vec![h("demo01")], None, None).await.unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().action, Action::Launched);
    let rec = w.record("demo01").await;
    assert_eq!(rec.generation, 2);
    assert_eq!(w.live().len(), 1);
    assert_eq!(
        w.live()[0].tags[tags::TOKEN],
        token::client_token(&w.settings.product, &h("demo01"), &rec.claim, 2)
    );
}

#[tokio::test]
async fn a_crash_after_launch_is_adopted_not_duplicated() {
    let w = World::new();
    // What a start that died right after RunInstances leaves: a claimed record
    // without instance id, and an instance carrying the generation-1 token.
    w.start_new(&["demo01"]).await;
    let mut rec = w.record("demo01").await;
    let id = rec.instance_id.take().unwrap();
    rec.state = InstanceState::Pending;
    w.registry.put(rec);
    let r = w.lc().start(vec![h("demo01")], None, None).await.unwrap();
    let out = r[0].1.as_ref().unwrap();
    assert_eq!(out.action, Action::Adopted);
    assert_eq!(out.instance.as_ref().unwrap().id, id);
    assert_eq!(w.cloud.all().len(), 1);
    assert_eq!(w.record("demo01").await.instance_id.as_ref(), Some(&id));
}

#[tokio::test]
async fn a_spent_token_on_a_terminated_instance_bumps_the_generation() {
    // Real EC2 answers a reused ClientToken with the old (terminated) instance.
    let mut w = World::new();
    w.cloud.honour_client_token = true;
    w.start_new(&["demo01"]).await;
    let mut rec = w.record("demo01").await;
    let id = rec.instance_id.take().unwrap();
    w.cloud.set_state(&id, InstanceState::Terminated);
    w.registry.put(rec);
    let r = w.lc().start(vec![h("demo01")], None, None).await.unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().action, Action::Launched);
    assert_eq!(w.record("demo01").await.generation, 2);
    assert_eq!(w.live().len(), 1);
}

#[tokio::test]
async fn two_operators_claiming_one_hostname_make_one_instance() {
    let w = World::new();
    let (lc1, lc2, z) = (w.lc(), w.lc(), zone());
    let (a, b) = tokio::join!(
        lc1.start(vec![h("demo01")], Some(&z), Some("Dev")),
        lc2.start(vec![h("demo01")], Some(&z), Some("Dev")),
    );
    let results: Vec<_> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|(_, r)| r)
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let conflicts: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!((ok, conflicts.len()), (1, 1), "{results:#?}");
    assert_eq!(conflicts[0].kind(), ErrorKind::Conflict);
    assert!(
        conflicts[0].to_string().contains("another operator"),
        "{}",
        conflicts[0]
    );
    assert_eq!(w.cloud.all().len(), 1);
}

#[tokio::test]
async fn instances_that_only_share_a_name_are_not_touched() {
    let w = World::new();
    w.cloud.insert(Instance {
        state_reason: None,
        imds_v1: None,
        id: "i-someoneelse".into(),
        region: Region::parse("ap-southeast-1").unwrap(),
        zone: Some(zone()),
        state: InstanceState::Running,
        instance_type: None,
        image_id: None,
        private_ip: None,
        public_ip: None,
        launch_time: None,
        security_groups: vec![],
        tags: BTreeMap::from([("Name".into(), "demo01".into())]),
    });
    assert_eq!(w.start_new(&["demo01"]).await, [Action::Launched]);
    assert_eq!(
        w.cloud
            .all()
            .iter()
            .find(|i| i.id == "i-someoneelse")
            .unwrap()
            .state,
        InstanceState::Running
    );
    // A record pointing at a foreign instance is refused, not acted on.
    let mut rec = w.record("demo01").await;
    rec.instance_id = Some("i-someoneelse".into());
    w.registry.put(rec);
    let r = w.lc().stop(vec![h("demo01")]).await;
    let e = r[0].1.as_ref().unwrap_err().to_string();
    assert!(e.contains("not ours"), "{e}");
    assert_eq!(w.cloud.calls("stop"), 0);
}

#[tokio::test]
async fn planning_errors_create_nothing() {
    let w = World::new();
    let hosts = vec![h("web01"), h("web02")];
    // Unknown profile.
    let e = w
        .lc()
        .start(hosts.clone(), Some(&zone()), Some("Dve"))
        .await
        .unwrap_err();
    assert!(
        e[0].1.to_string().contains("did you mean") && e[0].1.to_string().contains("\"Dev\""),
        "{}",
        e[0].1
    );
    // A zone the region does not have.
    let bad = Zone::parse("ap-southeast-1z").unwrap();
    let e = w
        .lc()
        .start(hosts.clone(), Some(&bad), Some("Dev"))
        .await
        .unwrap_err();
    assert!(
        e[0].1
            .to_string()
            .contains("does not exist in region ap-southeast-1"),
        "{}",
        e[0].1
    );
    // No AMI for the region.
    let eu = Zone::parse("eu-west-1a").unwrap();
    let e = w
        .lc()
        .start(hosts.clone(), Some(&eu), Some("Dev"))
        .await
        .unwrap_err();
    assert!(
        e[0].1.to_string().contains("no AMI for region eu-west-1"),
        "{}",
        e[0].1
    );
    // First start without a profile.
    let e = w.lc().start(hosts, Some(&zone()), None).await.unwrap_err();
    assert!(e[0].1.to_string().contains("needs --profile"), "{}", e[0].1);
    assert_eq!(w.cloud.calls("launch"), 0);
    assert!(w
        .registry
        .list(&w.settings.product)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_known_host_keeps_its_zone_and_profile() {
    let w = World::new();
    w.start_new(&["demo01"]).await;
    let other = Zone::parse("us-east-1b").unwrap();
    let e = w
        .lc()
        .start(vec![h("demo01")], Some(&other), None)
        .await
        .unwrap_err();
    assert!(
        e[0].1.to_string().contains("lives in ap-southeast-1a"),
        "{}",
        e[0].1
    );
    // --forget frees the name for another zone.
    w.lc().terminate(vec![h("demo01")], true, false).await[0]
        .1
        .as_ref()
        .unwrap();
    let r = w
        .lc()
        .start(vec![h("demo01")], Some(&other), Some("Dev"))
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().action, Action::Launched);
}

#[tokio::test]
async fn waiting_tolerates_a_new_instance_being_invisible() {
    let mut w = World::new();
    w.cloud.hide_new_for = 3;
    assert_eq!(w.start_new(&["demo01"]).await, [Action::Launched]);
    assert_eq!(w.record("demo01").await.state, InstanceState::Running);
}

#[tokio::test]
async fn many_hosts_run_concurrently_and_keep_their_order() {
    let mut w = World::new();
    w.settings.concurrency = 3;
    let names: Vec<String> = (1..=10).map(|i| format!("web{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let actions = w.start_new(&refs).await;
    assert_eq!(actions, vec![Action::Launched; 10]);
    assert_eq!(w.live().len(), 10);
    let reversed: Vec<&str> = refs.iter().rev().copied().collect();
    let r = w
        .lc()
        .start(reversed.iter().map(|n| h(n)).collect(), None, None)
        .await
        .unwrap();
    let order: Vec<&str> = r.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(order, reversed, "results in the order given, not sorted");
}

#[tokio::test]
async fn a_failed_launch_is_reported_and_a_rerun_completes() {
    let w = World::new();
    w.cloud.inject(Fault::Launch(ProviderErrorKind::Other));
    let r = w
        .lc()
        .start(vec![h("a1"), h("a2")], Some(&zone()), Some("Dev"))
        .await
        .unwrap();
    assert_eq!(r.iter().filter(|(_, r)| r.is_err()).count(), 1);
    let r = w
        .lc()
        .start(vec![h("a1"), h("a2")], None, None)
        .await
        .unwrap();
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:#?}");
    assert_eq!(w.live().len(), 2);
}

#[tokio::test]
async fn reboot_needs_a_running_host_and_unknown_hosts_are_not_found() {
    let w = World::new();
    w.start_new(&["demo01"]).await;
    assert_eq!(
        w.lc().reboot(vec![h("demo01")]).await[0]
            .1
            .as_ref()
            .unwrap()
            .action,
        Action::Rebooted
    );
    w.lc().stop(vec![h("demo01")]).await;
    let e = w
        .lc()
        .reboot(vec![h("demo01")])
        .await
        .remove(0)
        .1
        .unwrap_err();
    assert!(e.to_string().contains("only a running host"), "{e}");
    let e = w
        .lc()
        .stop(vec![h("nosuch")])
        .await
        .remove(0)
        .1
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn list_spans_regions_and_reports_failed_ones() {
    let w = World::new();
    w.start_new(&["demo01", "web01"]).await;
    w.lc()
        .start(
            vec![h("db01")],
            Some(&Zone::parse("us-east-1b").unwrap()),
            Some("Dev"),
        )
        .await
        .unwrap();
    let regions = vec![
        Region::parse("us-east-1").unwrap(),
        Region::parse("ap-southeast-1").unwrap(),
        Region::parse("eu-west-1").unwrap(),
    ];
    w.cloud.inject(Fault::List(
        regions[2].clone(),
        ProviderErrorKind::Unavailable,
    ));
    let l = fleet::list(
        &w.cloud,
        &w.settings.product,
        &regions,
        &Selection::all(),
        false,
        Duration::from_secs(5),
    )
    .await;
    let hosts: Vec<&str> = l.instances.iter().filter_map(|i| i.host()).collect();
    assert_eq!(hosts, ["db01", "demo01", "web01"]);
    assert_eq!(l.failed_regions.len(), 1);
    assert_eq!(l.failed_regions[0].0.as_str(), "eu-west-1");
    let sel = Selection::parse("zone:ap-southeast-1a,!web*").unwrap();
    let l = fleet::list(
        &w.cloud,
        &w.settings.product,
        &regions,
        &sel,
        false,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        l.instances
            .iter()
            .filter_map(|i| i.host())
            .collect::<Vec<_>>(),
        ["demo01"]
    );
    let v = fleet::show(
        &w.cloud,
        &w.registry,
        &w.settings.product,
        &regions,
        &h("db01"),
    )
    .await
    .unwrap();
    assert_eq!(v.record.unwrap().zone.as_str(), "us-east-1b");
    assert!(v.instance.is_some());
    let e = fleet::show(
        &w.cloud,
        &w.registry,
        &w.settings.product,
        &regions,
        &h("zz"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn registry_writes_are_conditional() {
    let w = World::new();
    w.start_new(&["demo01"]).await;
    let rec = w.record("demo01").await;
    assert_eq!(
        w.registry.create(&rec).await.unwrap_err().kind,
        ProviderErrorKind::Conflict
    );
    assert_eq!(
        w.registry
            .update(&rec, rec.generation + 1)
            .await
            .unwrap_err()
            .kind,
        ProviderErrorKind::Conflict
    );
}

#[tokio::test]
async fn dns_follows_start_stop_and_terminate() {
    let w = World::new();
    let dns = FakeDns::default();
    let lc = || w.lc().with_dns(&dns);
    lc().start(vec![h("demo01")], Some(&zone()), Some("Dev"))
        .await
        .unwrap();
    let inst = w.live().remove(0);
    let all = dns.all();
    assert_eq!(
        all["demo01.noc.private"].to_string(),
        inst.private_ip.clone().unwrap()
    );
    assert_eq!(
        all["demo01.noc.public"].to_string(),
        inst.public_ip.clone().unwrap()
    );
    // Stopped: no public address, so no public name; the private one stays.
    let stop = lc().stop(vec![h("demo01")]).await;
    assert!(stop[0]
        .1
        .as_ref()
        .unwrap()
        .instance
        .as_ref()
        .unwrap()
        .public_ip
        .is_none());
    assert!(!dns.all().contains_key("demo01.noc.public"));
    assert!(dns.all().contains_key("demo01.noc.private"));
    // Started again: a new public address, published.
    lc().start(vec![h("demo01")], None, None).await.unwrap();
    let now = w.live().remove(0).public_ip.unwrap();
    assert_ne!(Some(&now), inst.public_ip.as_ref());
    assert_eq!(dns.all()["demo01.noc.public"].to_string(), now);
    lc().terminate(vec![h("demo01")], false, false).await[0]
        .1
        .as_ref()
        .unwrap();
    assert!(dns.all().is_empty(), "{:?}", dns.all());
}

#[tokio::test]
async fn volumes_are_created_tagged_attached_and_reattached_after_terminate() {
    let w = World::new();
    w.start_db01(Some(&zone()), Some("Db")).await;
    let inst = w.live().remove(0);
    let vols = w.cloud.all_volumes();
    assert_eq!(vols.len(), 4);
    let mut devices: Vec<&str> = vols
        .iter()
        .map(|v| v.attached_as.as_deref().unwrap())
        .collect();
    devices.sort();
    assert_eq!(devices, ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi"]);
    for v in &vols {
        assert_eq!(v.attached_to.as_ref(), Some(&inst.id));
        assert_eq!(v.tags[tags::HOST], "db01");
        assert_eq!(v.tags[tags::NAME], "db01");
        assert_eq!(v.tags[tags::VOLUME_PROFILE], "Raid");
        assert_eq!(v.tags[tags::DEVICE], v.attached_as.clone().unwrap());
        assert!(v.tags.contains_key(tags::MEMBER));
    }
    // Stop/start keeps them; nothing new is created.
    w.lc().stop(vec![h("db01")]).await;
    w.lc().start(vec![h("db01")], None, None).await.unwrap();
    assert_eq!(w.cloud.calls("create_volume"), 4);
    // Terminate keeps the volumes; the next start re-attaches them at the same devices.
    w.lc().terminate(vec![h("db01")], false, false).await[0]
        .1
        .as_ref()
        .unwrap();
    assert!(w
        .cloud
        .all_volumes()
        .iter()
        .all(|v| v.attached_to.is_none()));
    w.start_db01(None, None).await;
    let new = w.live().remove(0);
    assert_ne!(new.id, inst.id);
    let vols = w.cloud.all_volumes();
    assert_eq!(vols.len(), 4, "re-attached, not re-created");
    assert!(
        vols.iter()
            .all(|v| v.attached_to.as_ref() == Some(&new.id)
                && v.attached_as.as_deref() == v.device())
    );
    // --delete-volumes deletes them.
    w.lc().terminate(vec![h("db01")], false, true).await[0]
        .1
        .as_ref()
        .unwrap();
    assert!(w.cloud.all_volumes().is_empty());
}

#[tokio::test]
async fn a_failed_volume_leaves_the_rest_attached_and_a_rerun_completes_the_set() {
    let w = World::new();
    w.cloud
        .inject(Fault::CreateVolume(ProviderErrorKind::Other));
    let r = w
        .lc()
        .start(vec![h("db01")], Some(&zone()), Some("Db"))
        .await
        .unwrap();
    assert!(r[0].1.is_err(), "{r:#?}");
    let vols = w.cloud.all_volumes();
    assert_eq!(vols.len(), 3);
    assert!(
        vols.iter().all(|v| v.attached_to.is_some()),
        "no unattached volume left behind"
    );
    w.start_db01(None, None).await;
    assert_eq!(w.cloud.all_volumes().len(), 4);
    assert!(w
        .cloud
        .all_volumes()
        .iter()
        .all(|v| v.attached_to.is_some()));
    assert_eq!(w.live().len(), 1, "one instance");
}

#[tokio::test]
async fn volumes_in_another_zone_are_refused_before_anything_is_made() {
    let w = World::new();
    w.lc()
        .start(vec![h("db01")], Some(&zone()), Some("Db"))
        .await
        .unwrap();
    w.lc().terminate(vec![h("db01")], true, false).await[0]
        .1
        .as_ref()
        .unwrap();
    let launches = w.cloud.calls("launch");
    let other = Zone::parse("ap-southeast-1b").unwrap();
    let e = w
        .lc()
        .start(vec![h("db01")], Some(&other), Some("Db"))
        .await
        .unwrap_err();
    let msg = e[0].1.to_string();
    assert!(
        msg.contains("is in ap-southeast-1a, the host is in ap-southeast-1b"),
        "{msg}"
    );
    assert_eq!(w.cloud.calls("launch"), launches, "nothing launched");
}

#[tokio::test]
async fn the_elastic_ip_is_allocated_once_and_follows_every_start() {
    let w = World::new();
    w.start_db01(Some(&zone()), Some("Db")).await;
    let eips = w.cloud.all_addresses();
    assert_eq!(eips.len(), 1);
    let first = w.live().remove(0);
    assert_eq!(eips[0].instance.as_ref(), Some(&first.id));
    assert_eq!(first.public_ip.as_deref(), Some(eips[0].ip.as_str()));
    w.lc().terminate(vec![h("db01")], false, false).await;
    w.start_db01(None, None).await;
    let eips = w.cloud.all_addresses();
    assert_eq!(eips.len(), 1, "allocated once");
    let second = w.live().remove(0);
    assert_eq!(
        eips[0].instance.as_ref(),
        Some(&second.id),
        "re-associated with the new instance"
    );
    let out = w.lc().eip_detach(vec![h("db01")]).await;
    assert_eq!(out[0].1.as_ref().unwrap().action, Action::EipReleased);
    assert!(w.cloud.all_addresses().is_empty());
}

#[tokio::test]
async fn answers_lost_after_attach_and_allocate_still_converge() {
    // The cloud attached the volume and allocated the address, but cerveza only heard
    // an error: it must see the attachment and find the address by its tags, not fail
    // or allocate a second one.
    let w = World::new();
    w.cloud.inject(Fault::AttachLost);
    w.cloud.inject(Fault::AllocateLost);
    let inst = w.start_db01_with_its_four_volumes().await;
    let eips = w.cloud.all_addresses();
    assert_eq!(eips.len(), 1, "one Elastic IP: {eips:?}");
    assert_eq!(eips[0].instance.as_ref(), Some(&inst.id));
}

#[tokio::test]
async fn launches_creates_and_attaches_that_fail_throttled_or_unreachable_are_sent_again() {
    // The SDK stops retrying once its retry quota is spent (a storm of failures): a
    // reset or a throttle then reaches cerveza, which asks again after a pause.
    let w = World::new();
    for kind in [
        ProviderErrorKind::Unavailable,
        ProviderErrorKind::Throttled,
        ProviderErrorKind::Unavailable,
    ] {
        w.cloud.inject(Fault::Attach(kind));
    }
    // CreateVolume and RunInstances too, with their tokens (what a lost call made
    // answers it).
    w.cloud
        .inject(Fault::CreateVolume(ProviderErrorKind::Throttled));
    w.cloud
        .inject(Fault::Launch(ProviderErrorKind::Unavailable));
    w.start_db01_with_its_four_volumes().await;
    assert_eq!(w.cloud.calls("attach_volume"), 4 + 3);
    assert_eq!(w.cloud.calls("create_volume"), 4 + 1);
    assert_eq!(w.cloud.calls("launch"), 1 + 1);

    // One that keeps failing fails its host after five tries, naming the volume; a
    // refusal (not transient) is not asked again.
    let w = World::new();
    for _ in 0..5 {
        w.cloud
            .inject(Fault::Attach(ProviderErrorKind::Unavailable));
    }
    w.cloud.inject(Fault::Attach(ProviderErrorKind::Invalid));
    let r = w
        .lc()
        .start(vec![h("db01")], Some(&zone()), Some("Db"))
        .await;
    let e = r.unwrap()[0].1.as_ref().unwrap_err().to_string();
    assert!(e.contains("attaching vol-"), "{e}");
    assert_eq!(w.cloud.calls("attach_volume"), 4 + 5, "{e}");
}

#[tokio::test]
async fn data_volumes_in_another_region_refuse_a_first_start_there() {
    let mut w = World::new();
    w.settings.regions = ["ap-southeast-1", "us-east-1"]
        .iter()
        .map(|r| Region::parse(r).unwrap())
        .collect();
    w.start_db01(Some(&zone()), Some("Db")).await;
    w.lc().terminate(vec![h("db01")], true, false).await[0]
        .1
        .as_ref()
        .unwrap();
    let launches = w.cloud.calls("launch");
    let us = Zone::parse("us-east-1a").unwrap();
    let e = w
        .lc()
        .start(vec![h("db01")], Some(&us), Some("Db"))
        .await
        .unwrap_err();
    let msg = e[0].1.to_string();
    assert!(
        msg.contains("is in ap-southeast-1a, the host is in us-east-1a"),
        "{msg}"
    );
    assert_eq!(w.cloud.calls("launch"), launches, "nothing launched");
    assert_eq!(w.cloud.all_volumes().len(), 4, "no blank volume made");
    // One lookup per region for the whole command, not one per host and region.
    let before = w.cloud.calls("volumes");
    w.lc()
        .start(vec![h("db02"), h("db03")], Some(&zone()), Some("Db"))
        .await
        .unwrap();
    let calls = w.cloud.calls("volumes") - before;
    // Planning: 2 regions, once. Then both hosts read their region together to
    // attach, and together again to see their 8 new volumes `available` (at once, in
    // the fake). A lookup per host and region while planning would make it 6 more, and
    // a read per host and new volume, 12 in all.
    assert_eq!(calls, 2 + 1 + 1, "{calls}");
}

#[tokio::test]
async fn an_unreachable_other_region_does_not_stop_a_first_start() {
    let mut w = World::new();
    w.settings.regions = ["ap-southeast-1", "eu-west-1"]
        .iter()
        .map(|r| Region::parse(r).unwrap())
        .collect();
    let eu = Region::parse("eu-west-1").unwrap();
    w.cloud
        .inject(Fault::Volumes(eu, ProviderErrorKind::Unavailable));
    w.start_db01(Some(&zone()), Some("Db")).await;
    assert_eq!(w.live().len(), 1);
    // Its own region is another matter: cerveza cannot tell whether its data is there.
    let ap = Region::parse("ap-southeast-1").unwrap();
    w.cloud
        .inject(Fault::Volumes(ap, ProviderErrorKind::Unavailable));
    let e = w
        .lc()
        .start(vec![h("db02")], Some(&zone()), Some("Db"))
        .await
        .unwrap_err();
    assert_eq!(e[0].1.kind(), ErrorKind::Unavailable, "{}", e[0].1);
    assert!(e[0]
        .1
        .to_string()
        .contains("looking for its volumes in ap-southeast-1"));
}

#[tokio::test]
async fn a_wait_that_never_ends_times_out_on_the_clock_without_sleeping() {
    let mut w = World::new();
    w.settings.wait_timeout = Duration::from_secs(600);
    w.settings.poll_initial = Duration::from_secs(2);
    w.settings.poll_max = Duration::from_secs(15);
    w.start_new(&["demo01"]).await;
    let inst = w.live().remove(0);
    // Stuck in `stopping` for ever.
    w.cloud.set_state(&inst.id, InstanceState::Stopping);
    let clock = cerveza_core::wait::ManualClock::default();
    let real = std::time::Instant::now();
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&clock);
    let out = lc.stop(vec![h("demo01")]).await;
    let e = out[0].1.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string().contains("stopping"),
        "the last state seen: {e}"
    );
    assert!(real.elapsed() < Duration::from_secs(2), "no real sleep");
    // Every sleep of the command: the wait's own (at most its 600 s), and the 200 ms a
    // look-up before it waits for companions in its batch.
    let waited: Duration = clock.sleeps().iter().sum();
    assert!(
        waited > Duration::from_secs(585) && waited <= Duration::from_millis(600_200),
        "{waited:?}"
    );
    assert!(clock.sleeps().iter().all(|s| *s <= Duration::from_secs(15)));
}

/// Progress that keeps the warnings.
#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<String>>);

impl cerveza_core::ports::Progress for Warnings {
    fn step(&self, _: &Hostname, _: &str) {}
    fn warn(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }
}

#[tokio::test]
async fn existing_hosts_go_on_from_their_tags_while_the_registry_is_down() {
    let mut w = World::new();
    w.settings.regions = ["ap-southeast-1", "us-east-1"]
        .iter()
        .map(|r| Region::parse(r).unwrap())
        .collect();
    w.start_new(&["demo01", "demo02"]).await;
    w.registry.set_down(true);
    let warnings = Warnings::default();
    let lc = || Lifecycle::new(&w.cloud, &w.registry, &w.settings, &warnings);

    let out = lc().stop(vec![h("demo01"), h("demo02")]).await;
    for (host, r) in &out {
        assert_eq!(r.as_ref().unwrap().action, Action::Stopped, "{host}");
    }
    let calls = w.registry.calls();
    assert_eq!(
        warnings.0.lock().unwrap().len(),
        1,
        "one warning for the command: {:?}",
        warnings.0.lock().unwrap()
    );
    let start = lc()
        .start(&w.profiles, vec![h("demo01"), h("demo02")], None, None)
        .await
        .unwrap();
    assert!(start
        .iter()
        .all(|(_, r)| r.as_ref().unwrap().action == Action::Started));
    let out = lc().reboot(vec![h("demo01")]).await;
    assert_eq!(out[0].1.as_ref().unwrap().action, Action::Rebooted);
    let out = lc().restart(vec![h("demo01")]).await;
    assert_eq!(out[0].1.as_ref().unwrap().action, Action::Restarted);
    // A down registry is asked at most once per host in flight when a command starts
    // (the start plans its two hosts at once), never again for its later writes.
    assert!(
        w.registry.calls() - calls <= 2 + 1 + 1,
        "{}",
        w.registry.calls() - calls
    );

    // What needs the registry fails, and says so, before doing anything.
    let out = lc().terminate(vec![h("demo02")], true, false).await;
    let e = out[0].1.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("--forget"), "{e}");
    assert_eq!(w.live().len(), 2, "nothing was terminated");
    let e = lc()
        .start(
            &w.profiles,
            vec![h("new01")],
            Some(&zone()),
            Some(&ProfileName::parse("Dev").unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e[0].1.kind(), ErrorKind::Unavailable, "{}", e[0].1);
    assert!(
        e[0].1.to_string().contains("claimed in the registry"),
        "{}",
        e[0].1
    );

    // Terminate without --forget works; the registry still says running.
    let out = lc().terminate(vec![h("demo02")], false, false).await;
    assert_eq!(out[0].1.as_ref().unwrap().action, Action::Terminated);
    w.registry.set_down(false);
    assert_eq!(
        w.record("demo02").await.state,
        InstanceState::Running,
        "stale"
    );

    // The registry is back: sync brings the records in line with the instances.
    let rows = lc().sync_registry().await.unwrap();
    let change = |host: &str| {
        rows.iter()
            .find(|r| r.host.as_str() == host)
            .map(|r| r.change.clone())
            .unwrap()
    };
    assert!(
        matches!(change("demo02"), SyncChange::Updated { ref to, .. } if to.starts_with("terminated ")),
        "{rows:?}"
    );
    assert_eq!(w.record("demo02").await.state, InstanceState::Terminated);
    assert_eq!(w.record("demo01").await.state, InstanceState::Running);
    let again = lc().sync_registry().await.unwrap();
    assert!(
        again.iter().all(|r| r.change == SyncChange::Unchanged),
        "{again:?}"
    );
}

#[tokio::test]
async fn registry_sync_creates_records_for_tagged_instances_it_does_not_know() {
    let mut w = World::new();
    w.settings.regions = vec![Region::parse("ap-southeast-1").unwrap()];
    w.start_new(&["demo01"]).await;
    // The record is lost (a restored backup, a table re-created).
    w.lc().terminate(vec![h("demo01")], true, false).await;
    w.start_new(&["demo01"]).await;
    let inst = w.live().remove(0);
    let fresh = FakeRegistry::default();
    let lc = Lifecycle::new(&w.cloud, &fresh, &w.settings, &Quiet);
    let rows = lc.sync_registry().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].change, SyncChange::Created);
    let rec = fresh
        .get(&w.settings.product, &h("demo01"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.instance_id, Some(inst.id));
    assert_eq!(rec.profile.as_str(), "Dev");
    assert_eq!(rec.zone, zone());
}

#[tokio::test]
async fn a_terminated_host_is_relaunched_from_its_tags_while_the_registry_is_down() {
    let mut w = World::new();
    w.cloud.honour_client_token = true; // as EC2 does
    w.settings.regions = vec![Region::parse("ap-southeast-1").unwrap()];
    w.start_db01(Some(&zone()), Some("Db")).await;
    w.lc().terminate(vec![h("db01")], false, false).await[0]
        .1
        .as_ref()
        .unwrap();
    let first = w.cloud.all().remove(0);
    w.registry.set_down(true);

    // Two operators at once: the same next generation, the same ClientToken, one
    // instance; its volumes re-attached, none made.
    let (one, two) = (w.lc(), w.lc());
    let (a, b) = tokio::join!(
        one.start(vec![h("db01")], None, None),
        two.start(vec![h("db01")], None, None)
    );
    for r in [a, b] {
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        assert!(r[0].1.is_ok(), "{:?}", r[0].1);
    }
    let live = w.live();
    assert_eq!(live.len(), 1, "one instance: {live:?}");
    assert_eq!(live[0].zone, Some(zone()));
    assert_eq!(live[0].profile(), Some("Db"));
    assert_ne!(live[0].id, first.id);
    assert_eq!(
        live[0].token().map(str::to_owned),
        Some(token::client_token(
            &w.settings.product,
            &h("db01"),
            first.claim(),
            2
        )),
        "the generation after the terminated one's"
    );
    let vols = w.cloud.all_volumes();
    assert_eq!(vols.len(), 4, "re-attached, not re-made");
    assert!(vols
        .iter()
        .all(|v| v.attached_to.as_ref() == Some(&live[0].id)));

    // Once EC2 no longer lists the terminated instances, the data volumes still say
    // where the host lived and with which profile.
    w.lc().terminate(vec![h("db01")], false, false).await[0]
        .1
        .as_ref()
        .unwrap();
    for i in w.cloud.all() {
        w.cloud.forget(&i.id);
    }
    w.start_db01(None, None).await;
    assert_eq!(w.live().len(), 1);
    assert_eq!(w.live()[0].zone, Some(zone()));

    // Nothing at all carries the name: a new hostname, which needs the registry.
    let e = w.lc().start(vec![h("db09")], None, None).await.unwrap_err();
    assert_eq!(e[0].1.kind(), ErrorKind::Unavailable, "{}", e[0].1);
}

#[tokio::test]
async fn a_host_with_tags_but_no_record_is_acted_on_with_a_warning() {
    let mut w = World::new();
    w.settings.regions = vec![Region::parse("ap-southeast-1").unwrap()];
    w.start_new(&["demo01"]).await;
    // The record is lost; the instance and its tags are not.
    let g = w.record("demo01").await.generation;
    w.registry
        .delete(&w.settings.product, &h("demo01"), g)
        .await
        .unwrap();
    let warnings = Warnings::default();
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &warnings);
    let out = lc.stop(vec![h("demo01")]).await;
    assert_eq!(out[0].1.as_ref().unwrap().action, Action::Stopped);
    let said = warnings.0.lock().unwrap().clone();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("demo01 has no registry record"),
        "{said:?}"
    );
    assert!(
        w.registry
            .get(&w.settings.product, &h("demo01"))
            .await
            .unwrap()
            .is_none(),
        "nothing written for it"
    );
    let rows = lc.sync_registry().await.unwrap();
    assert_eq!(rows[0].change, SyncChange::Created);
    assert_eq!(w.record("demo01").await.state, InstanceState::Stopped);
    // A name nothing carries is still not found.
    let out = lc.stop(vec![h("nosuch01")]).await;
    assert_eq!(out[0].1.as_ref().unwrap_err().kind(), ErrorKind::NotFound);
}

/// A world whose instances take `takes` (of virtual time) in every transition, as on
/// EC2: `pending`, `stopping`, `shutting-down`; acting too early is refused.
fn timed_world(takes: Duration) -> (World, std::sync::Arc<cerveza_core::wait::ManualClock>) {
    let clock = std::sync::Arc::new(cerveza_core::wait::ManualClock::default());
    let mut w = World::new();
    w.cloud.timing = Some(cerveza_core::fake::Timing {
        clock: clock.clone(),
        takes,
    });
    w.settings.poll_initial = Duration::from_secs(2);
    w.settings.poll_max = Duration::from_secs(15);
    w.settings.wait_timeout = Duration::from_secs(600);
    (w, clock)
}

#[tokio::test]
async fn start_of_a_stopping_host_waits_for_stopped_then_starts() {
    let (w, clock) = timed_world(Duration::from_secs(30));
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&*clock);
    let out = lc
        .start(
            &w.profiles,
            vec![h("demo01")],
            Some(&zone()),
            Some(&ProfileName::parse("Dev").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(out[0].1.as_ref().unwrap().action, Action::Launched);
    assert_eq!(
        w.live()[0].state,
        InstanceState::Running,
        "it waited for running"
    );
    // Stop without waiting: the instance is `stopping` for 30 s.
    let mut s = w.settings.clone();
    s.wait = false;
    let quick = Lifecycle::new(&w.cloud, &w.registry, &s, &Quiet).with_clock(&*clock);
    quick.stop(vec![h("demo01")]).await[0].1.as_ref().unwrap();
    assert_eq!(w.live()[0].state, InstanceState::Stopping);
    // EC2 refuses StartInstances now; start waits for `stopped`, then starts.
    let before = clock.now();
    let out = lc
        .start(&w.profiles, vec![h("demo01")], None, None)
        .await
        .unwrap();
    let done = out[0].1.as_ref().unwrap();
    assert_eq!(done.action, Action::Started, "{out:?}");
    assert_eq!(w.live()[0].state, InstanceState::Running);
    assert!(
        clock.now() - before >= Duration::from_secs(60),
        "stopping, then pending"
    );
}

#[tokio::test]
async fn stop_of_a_pending_host_waits_for_running_then_stops() {
    let (mut w, clock) = timed_world(Duration::from_secs(30));
    w.settings.wait = false;
    let quick = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&*clock);
    quick
        .start(
            &w.profiles,
            vec![h("demo01")],
            Some(&zone()),
            Some(&ProfileName::parse("Dev").unwrap()),
        )
        .await
        .unwrap()[0]
        .1
        .as_ref()
        .unwrap();
    assert_eq!(w.live()[0].state, InstanceState::Pending);
    w.settings.wait = true;
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&*clock);
    let out = lc.stop(vec![h("demo01")]).await;
    assert_eq!(
        out[0].1.as_ref().unwrap().action,
        Action::Stopped,
        "{out:?}"
    );
    assert_eq!(w.live()[0].state, InstanceState::Stopped);
    assert_eq!(w.cloud.calls("stop"), 1, "one StopInstances, after running");
}

#[tokio::test]
async fn hosts_waiting_together_share_their_polls_starts_and_stops() {
    let (w, clock) = timed_world(Duration::from_secs(30));
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&*clock);
    let hosts: Vec<Hostname> = (1..=30).map(|n| h(&format!("web{n:02}"))).collect();
    let dev = ProfileName::parse("Dev").unwrap();
    let out = lc
        .start(&w.profiles, hosts.clone(), Some(&zone()), Some(&dev))
        .await
        .unwrap();
    assert!(out.iter().all(|(_, r)| r.is_ok()), "{out:?}");
    assert_eq!(w.cloud.calls("launch"), 30);
    let polls = w.cloud.calls("instances_by_id");
    assert!(
        polls <= 30,
        "30 hosts waiting 30 s share their polls: {polls} describes"
    );
    assert_eq!(w.cloud.calls("instance"), 0, "no host polls alone");
    let out = lc.stop(hosts.clone()).await;
    assert!(out.iter().all(|(_, r)| r.is_ok()), "{out:?}");
    assert!(
        w.cloud.calls("stop_many") <= 2,
        "{}",
        w.cloud.calls("stop_many")
    );
    let out = lc.start(&w.profiles, hosts, None, None).await.unwrap();
    assert!(
        out.iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|o| o.action == Action::Started)),
        "{out:?}"
    );
    assert!(
        w.cloud.calls("start_many") <= 2,
        "{}",
        w.cloud.calls("start_many")
    );
    assert!(w.live().iter().all(|i| i.state == InstanceState::Running));
}

#[tokio::test]
async fn an_instance_ec2_terminates_at_launch_fails_at_once_with_ec2_s_reason() {
    let (w, clock) = timed_world(Duration::from_secs(30));
    w.cloud.inject(Fault::LaunchDies(
        "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state".into(),
    ));
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&*clock);
    let before = clock.now();
    let out = lc
        .start(
            &w.profiles,
            vec![h("kms01"), h("kms02")],
            Some(&zone()),
            Some(&ProfileName::parse("Dev").unwrap()),
        )
        .await
        .unwrap();
    let failed: Vec<String> = out
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(failed.len(), 1, "one host dies, the other runs: {out:#?}");
    assert!(
        failed[0].contains("went to terminated while cerveza waited for running: EC2 says Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state (an EBS volume of the instance is encrypted with a KMS key"),
        "{}",
        failed[0]
    );
    assert!(
        clock.now() - before < Duration::from_secs(120),
        "ended with the instance, not the 600 s wait: {:?}",
        clock.now() - before
    );
}

#[tokio::test]
async fn a_start_ec2_gives_up_on_fails_with_its_reason_not_after_the_wait() {
    for takes in [Duration::from_secs(30), Duration::ZERO] {
        let (w, clock) = timed_world(takes);
        let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&*clock);
        let profile = ProfileName::parse("Dev").unwrap();
        lc.start(&w.profiles, vec![h("cap01")], Some(&zone()), Some(&profile))
            .await
            .unwrap()[0]
            .1
            .as_ref()
            .unwrap();
        lc.stop(vec![h("cap01")]).await[0].1.as_ref().unwrap();
        w.cloud.inject(Fault::StartBounces(
            "Server.InsufficientInstanceCapacity: Insufficient capacity.".into(),
        ));
        let before = clock.now();
        let out = lc
            .start(&w.profiles, vec![h("cap01")], None, None)
            .await
            .unwrap();
        let e = out[0].1.as_ref().unwrap_err().to_string();
        assert!(
            e.contains("went back to stopped while cerveza waited for running: EC2 says Server.InsufficientInstanceCapacity"),
            "{e}"
        );
        assert!(e.contains("another zone"), "{e}");
        assert!(
            clock.now() - before < Duration::from_secs(120),
            "pending {takes:?}: {:?}",
            clock.now() - before
        );
        // A stopped host the user stopped is simply waited for.
        assert_eq!(w.live()[0].state, InstanceState::Stopped);
    }
}

#[tokio::test]
async fn a_volume_ebs_drops_fails_at_once_and_a_rerun_makes_it_with_the_next_token() {
    let (mut w, clock) = timed_world(Duration::from_secs(5));
    w.cloud.honour_client_token = true; // as EC2 does: a dropped volume's token is spent
    w.cloud.inject(Fault::VolumeVanishes);
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&*clock);
    let profile = ProfileName::parse("Db").unwrap();
    let before = clock.now();
    let r = lc
        .start(&w.profiles, vec![h("db01")], Some(&zone()), Some(&profile))
        .await
        .unwrap();
    let e = r[0].1.as_ref().unwrap_err().to_string();
    assert!(
        e.contains(
            "vanished while it was being created: EBS drops a volume whose KMS key cannot be used"
        ),
        "{e}"
    );
    assert!(
        clock.now() - before < Duration::from_secs(120),
        "not the 600 s wait: {:?}",
        clock.now() - before
    );
    assert_eq!(w.cloud.all_volumes().len(), 3, "the other three are made");
    // The rerun's first token answers IdempotentParameterMismatch: the next one makes it.
    let r = lc
        .start(&w.profiles, vec![h("db01")], None, None)
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    let vols = w.cloud.all_volumes();
    assert_eq!(vols.len(), 4);
    assert!(vols.iter().all(|v| v.attached_to.is_some()), "{vols:#?}");
    // And a third run changes nothing: every token still answers its own volume.
    lc.start(&w.profiles, vec![h("db01")], None, None)
        .await
        .unwrap()[0]
        .1
        .as_ref()
        .unwrap();
    assert_eq!(w.cloud.all_volumes().len(), 4);
}

#[test]
fn volume_tokens_of_later_attempts_differ_and_the_first_is_the_old_token() {
    use cerveza_core::token::{volume_token, volume_token_attempt};
    let p = cerveza_core::names::Product::parse("noc").unwrap();
    let host = h("db01");
    assert_eq!(
        volume_token(&p, &host, "/dev/sdf", 1),
        volume_token_attempt(&p, &host, "/dev/sdf", 1, 0)
    );
    let all: std::collections::BTreeSet<String> = (0..5)
        .map(|a| volume_token_attempt(&p, &host, "/dev/sdf", 1, a))
        .collect();
    assert_eq!(all.len(), 5);
}

#[test]
fn a_provider_error_names_its_service_code_by_its_message() {
    use cerveza_core::ports::ProviderError;
    let e = ProviderError::new(
        ProviderErrorKind::Invalid,
        "IdempotentParameterMismatch: The client token you have provided is associated with a resource that is already deleted.",
    );
    assert!(e.has_code("IdempotentParameterMismatch"));
    assert!(!e.has_code("Idempotent"), "a whole code only");
    assert!(
        !ProviderError::new(ProviderErrorKind::Other, "InvalidParameterValue: no")
            .has_code("IdempotentParameterMismatch")
    );
}

fn z(s: &str) -> Zone {
    Zone::parse(s).unwrap()
}

/// Starts hosts each in its own zone, with profile `profile`.
async fn start_in(w: &World, wants: &[(&str, &str)], profile: &str) -> Results {
    let wants = wants
        .iter()
        .map(|(host, zone)| {
            (
                h(host),
                Some(z(zone)),
                Some(ProfileName::parse(profile).unwrap()),
            )
        })
        .collect();
    w.lc().lc.start_each(&w.profiles, wants).await.unwrap()
}

#[tokio::test]
async fn a_zone_without_capacity_fails_its_host_with_what_to_do_and_the_others_go_on() {
    let w = World::new();
    w.cloud.full_zones.lock().unwrap().insert(zone());
    let r = start_in(
        &w,
        &[("web01", "ap-southeast-1a"), ("web02", "ap-southeast-1b")],
        "Dev",
    )
    .await;
    let e = r[0].1.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("launching an instance in ap-southeast-1a: InsufficientInstanceCapacity: We currently do not have sufficient t3.micro capacity")
            && text.contains("or in another zone (`--zone`"),
        "{text}"
    );
    assert_eq!(r[1].1.as_ref().unwrap().action, Action::Launched);
    // The refused claim holds the name, with no instance.
    let rec = w.record("web01").await;
    assert_eq!((rec.instance_id, rec.generation), (None, 1));
    assert_eq!(w.cloud.all().len(), 1);

    // Asked again in another zone, the claim moves there with a new generation (its
    // own launch token) and launches; no `terminate --forget`.
    let r = w
        .lc()
        .start(vec![h("web01")], Some(&z("ap-southeast-1b")), None)
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().action, Action::Launched);
    let rec = w.record("web01").await;
    assert_eq!((rec.zone.as_str(), rec.generation), ("ap-southeast-1b", 2));
    let inst = w
        .live()
        .into_iter()
        .find(|i| i.host() == Some("web01"))
        .unwrap();
    assert_eq!(inst.zone, Some(z("ap-southeast-1b")));
    assert_eq!(inst.tags[tags::ZONE], "ap-southeast-1b");
    assert_eq!(
        inst.tags[tags::TOKEN],
        token::client_token(&w.settings.product, &h("web01"), &rec.claim, 2)
    );
}

#[tokio::test]
async fn a_stopped_host_in_a_zone_without_capacity_fails_alone() {
    let w = World::new();
    w.start_new(&["web01", "web02"]).await;
    let _ = w.lc().stop(vec![h("web01"), h("web02")]).await;
    // web02 is moved to a full zone behind cerveza's back: EC2 refuses the batched
    // StartInstances whole, and each host then goes alone.
    let web02 = w.record("web02").await.instance_id.unwrap();
    let mut i = w.cloud.all().into_iter().find(|i| i.id == web02).unwrap();
    i.zone = Some(z("ap-southeast-1c"));
    w.cloud.insert(i);
    w.cloud
        .full_zones
        .lock()
        .unwrap()
        .insert(z("ap-southeast-1c"));
    let r = w
        .lc()
        .start(vec![h("web01"), h("web02")], None, None)
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().action, Action::Started);
    let e = r[1].1.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(
        e.to_string().contains("InsufficientInstanceCapacity"),
        "{e}"
    );
}

#[tokio::test]
async fn only_a_claim_that_never_got_an_instance_moves_zone() {
    let w = World::new();
    // A host with a live instance stays where it is.
    w.start_new(&["demo01"]).await;
    let e = w
        .lc()
        .start(vec![h("demo01")], Some(&z("ap-southeast-1b")), None)
        .await
        .unwrap_err();
    assert_eq!(e[0].1.kind(), ErrorKind::Usage);
    assert!(
        e[0].1.to_string().contains("its claim got an instance"),
        "{}",
        e[0].1
    );

    // A claim whose record names no instance, but whose instance runs (a start killed
    // before it recorded it): found by its tags, it stays.
    let mut rec = w.record("demo01").await;
    rec.instance_id = None;
    w.registry.put(rec);
    let e = w
        .lc()
        .start(vec![h("demo01")], Some(&z("ap-southeast-1b")), None)
        .await
        .unwrap_err();
    assert!(
        e[0].1.to_string().contains("carries its tags"),
        "{}",
        e[0].1
    );

    // Another operator's claim, just written: they may still be launching it.
    let fresh = HostRecord {
        product: w.settings.product.clone(),
        hostname: h("new01"),
        profile: ProfileName::parse("Dev").unwrap(),
        zone: zone(),
        instance_id: None,
        state: InstanceState::Pending,
        generation: 1,
        updated_at: cerveza_core::lifecycle::now(),
        updated_by: "alice".into(),
        claim: token::new_claim(),
    };
    w.registry.put(fresh.clone());
    let e = w
        .lc()
        .start(vec![h("new01")], Some(&z("ap-southeast-1b")), None)
        .await
        .unwrap_err();
    assert_eq!(e[0].1.kind(), ErrorKind::Conflict, "{}", e[0].1);
    assert!(
        e[0].1.to_string().contains("alice claimed it"),
        "{}",
        e[0].1
    );
    // The same claim an hour old moves.
    w.registry.put(HostRecord {
        updated_at: fresh.updated_at - 3600,
        ..fresh
    });
    let r = w
        .lc()
        .start(vec![h("new01")], Some(&z("ap-southeast-1b")), None)
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().action, Action::Launched);

    // A host whose instance is gone but whose data volumes stay in their zone: moving
    // it would leave its data behind.
    w.cloud.full_zones.lock().unwrap().clear();
    w.start_db01(Some(&zone()), Some("Db")).await;
    let t = w.lc().terminate(vec![h("db01")], false, false).await;
    t[0].1.as_ref().unwrap();
    let mut rec = w.record("db01").await;
    rec.instance_id = None;
    w.registry.put(rec);
    let e = w
        .lc()
        .start(vec![h("db01")], Some(&z("ap-southeast-1b")), None)
        .await
        .unwrap_err();
    assert!(
        e[0].1
            .to_string()
            .contains("EBS volumes attach only within their zone"),
        "{}",
        e[0].1
    );
    assert_eq!(w.record("db01").await.zone, zone(), "nothing moved");
}

#[tokio::test]
async fn a_forgotten_host_started_again_gets_a_new_instance_not_its_dead_one() {
    let mut w = World::new();
    w.cloud.honour_client_token = true;
    w.start_new(&["demo01"]).await;
    let first = w.record("demo01").await;
    let old = first.instance_id.clone().unwrap();
    let t = w.lc().terminate(vec![h("demo01")], true, false).await;
    t[0].1.as_ref().unwrap();
    // An hour on, EC2 no longer lists the terminated instance, but its launch token
    // answers for a day: a new claim of the name must not send it again.
    w.cloud.forget(&old);
    assert_eq!(w.start_new(&["demo01"]).await, [Action::Launched]);
    let again = w.record("demo01").await;
    assert_ne!(again.claim, first.claim);
    assert_eq!(again.generation, 1);
    let live = w.live();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_ne!(live[0].id, old);
    assert_eq!(live[0].claim(), again.claim);
}

#[tokio::test]
async fn a_region_without_a_default_vpc_refuses_before_claiming_and_a_known_host_relaunches_into_its_vpc(
) {
    let mut w = World::new();
    let region = zone().region();
    let default = w.cloud.network_of(&region).unwrap();
    w.cloud
        .networks
        .lock()
        .unwrap()
        .insert(region.clone(), None);
    let wants = vec![(
        h("web01"),
        Some(zone()),
        Some(ProfileName::parse("Dev").unwrap()),
    )];
    let errors = w
        .lc()
        .lc
        .start_each(&w.profiles, wants.clone())
        .await
        .unwrap_err();
    assert_eq!(errors[0].1.kind(), ErrorKind::Usage);
    assert!(
        errors[0].1.to_string().contains(&format!(
            "web01: region {region} has no default VPC (many accounts delete it): name the VPC to launch into with `[regions.{region}] vpc"
        )),
        "{}",
        errors[0].1
    );
    assert_eq!(
        w.registry.calls(),
        1,
        "one read, no claim: {:?}",
        w.cloud.all()
    );
    assert!(w.cloud.all().is_empty());

    // The same VPC named in the config: the host launches into its subnet of the zone,
    // with the network read once for both hosts.
    let mut vpc = default.clone();
    vpc.is_default = false;
    vpc.vpc_id = "vpc-0000cafe".into();
    w.cloud
        .networks
        .lock()
        .unwrap()
        .insert(region.clone(), Some(vpc));
    w.settings
        .vpcs
        .insert(region.clone(), "vpc-0000cafe".into());
    let r = start_in(
        &w,
        &[("web01", zone().as_str()), ("web02", zone().as_str())],
        "Dev",
    )
    .await;
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    assert_eq!(
        w.cloud.calls("network"),
        2,
        "once refused, then once for both hosts"
    );
    // Its instance gone, a known host relaunches through the same read.
    let id = w.record("web01").await.instance_id.unwrap();
    w.cloud.set_state(&id, InstanceState::Terminated);
    let r = w.lc().start(vec![h("web01")], None, None).await.unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().action, Action::Launched);
    assert_eq!(w.cloud.calls("network"), 3);
}

#[tokio::test]
async fn a_type_the_zone_does_not_offer_or_an_image_of_another_architecture_is_refused_before_claiming(
) {
    use cerveza_core::offering::{Image, Offering};
    let w = World::new();
    let region = zone().region();
    let b = Zone::parse("ap-southeast-1b").unwrap();
    let offer = |arch: &str, zones: Vec<Zone>| Offering {
        image: Some(Image {
            id: "ami-0123456789abcdef0".into(),
            name: "img".into(),
            architecture: arch.into(),
            deprecated_at: None,
        }),
        architectures: vec!["x86_64".into()],
        zones,
    };
    w.cloud.offerings.lock().unwrap().insert(
        (region.clone(), "t3.micro".into()),
        offer("x86_64", vec![b.clone()]),
    );
    let refused = |errors: Vec<(Hostname, cerveza_core::Error)>| {
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|(_, e)| e.kind() == ErrorKind::Usage));
        errors[0].1.to_string()
    };
    let wants = |hosts: &[&str]| -> Vec<_> {
        hosts
            .iter()
            .map(|n| (h(n), Some(zone()), Some(ProfileName::parse("Dev").unwrap())))
            .collect()
    };
    let why = refused(
        w.lc()
            .lc
            .start_each(&w.profiles, wants(&["web01", "web02"]))
            .await
            .unwrap_err(),
    );
    assert!(
        why.contains("web01: profile Dev: instance type t3.micro is not offered in ap-southeast-1a; it is in ap-southeast-1b (--zone ap-southeast-1b)"),
        "{why}"
    );
    // Read once for both hosts; nothing claimed, nothing made.
    assert_eq!(w.cloud.calls("offering"), 1);
    assert_eq!(w.registry.calls(), 2, "a read per host, no claim");
    assert!(w.cloud.all().is_empty());

    w.cloud.offerings.lock().unwrap().insert(
        (region.clone(), "t3.micro".into()),
        offer("arm64", vec![zone(), b]),
    );
    let why = refused(
        w.lc()
            .lc
            .start_each(&w.profiles, wants(&["web01", "web02"]))
            .await
            .unwrap_err(),
    );
    assert!(
        why.contains(
            "is arm64, and t3.micro runs x86_64: choose an arm64 instance type such as t4g.micro"
        ),
        "{why}"
    );
    assert!(w.cloud.all().is_empty());
}

/// db01 (4 data volumes) started in ap-southeast-1a, with one complete backup set.
async fn db01_backed_up(w: &World) -> cerveza_core::backup::BackupSet {
    use cerveza_core::ports::{Compute as _, ComputeRead as _};
    w.start_db01(Some(&zone()), Some("Db")).await;
    let inst = w.live().remove(0);
    let data: Vec<_> = w.cloud.all_volumes().into_iter().map(|v| v.id).collect();
    let region = Region::parse("ap-southeast-1").unwrap();
    let set_tags = BTreeMap::from([
        (cerveza_core::backup::SET.to_owned(), "db01-s1".to_owned()),
        (cerveza_core::backup::MEMBERS.to_owned(), "4".to_owned()),
    ]);
    w.cloud
        .create_snapshots(&region, &inst.id, &data, &[], &set_tags)
        .await
        .unwrap();
    let snaps = w
        .cloud
        .snapshots(&region, &w.settings.product)
        .await
        .unwrap();
    cerveza_core::backup::sets(snaps).remove(0)
}

#[tokio::test]
async fn a_restore_into_another_zone_makes_the_set_there_and_keeps_the_old_volumes_replaced() {
    let mut w = World::new();
    w.settings.regions = vec![Region::parse("ap-southeast-1").unwrap()];
    let set = db01_backed_up(&w).await;
    let old: Vec<_> = w.cloud.all_volumes().into_iter().map(|v| v.id).collect();
    let other = Zone::parse("ap-southeast-1b").unwrap();

    // Never under a running instance; nothing made.
    let e = w
        .lc()
        .restore(&w.profiles, &set, &other, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.to_string().contains("cerveza stop db01"), "{e}");
    assert_eq!(w.cloud.all_volumes().len(), 4);

    w.lc().stop(vec![h("db01")]).await[0].1.as_ref().unwrap();
    let first = w.live().remove(0);
    let reads = w.cloud.calls("volumes");
    let r = w
        .lc()
        .restore(&w.profiles, &set, &other, false)
        .await
        .unwrap();
    assert_eq!(
        r.terminated.as_ref(),
        Some(&first.id),
        "the stopped instance in 1a goes"
    );
    // The host's volumes read once to plan, once for all four new members to be
    // `available` (at once, in the fake) and once to see no other restore ended
    // meanwhile: a read per member's wait would make it 6.
    let reads = w.cloud.calls("volumes") - reads;
    assert_eq!(reads, 3, "{reads}");
    assert_eq!(r.replaced.len(), 4);
    let vols = w.cloud.all_volumes();
    assert_eq!(vols.len(), 8, "the old set is kept");
    for v in &vols {
        if old.contains(&v.id) {
            assert!(v.device().is_none(), "replaced: {v:?}");
            assert_eq!(v.tags[tags::REPLACED_BY], "db01-s1");
            assert!(v.tags.contains_key(tags::REPLACED_DEVICE));
        } else {
            assert_eq!(v.zone.as_ref(), Some(&other));
            assert_eq!(v.tags[tags::RESTORED_FROM], "db01-s1");
            assert!(
                !v.tags.contains_key(tags::RESTORE_DEVICE),
                "promoted: {v:?}"
            );
            assert_eq!(r.volumes[v.device().unwrap()], v.id);
        }
    }
    let rec = w.record("db01").await;
    assert_eq!(
        (rec.zone.as_str(), rec.instance_id.as_ref()),
        ("ap-southeast-1b", None)
    );

    // A rerun changes nothing; the start attaches the restored set in 1b.
    let again = w
        .lc()
        .restore(&w.profiles, &set, &other, false)
        .await
        .unwrap();
    assert!(again.already, "{again:?}");
    assert_eq!(w.cloud.calls("create_volume"), 8);
    w.start_db01(None, None).await;
    let live = w.live();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].zone.as_ref(), Some(&other));
    let attached: Vec<_> = w
        .cloud
        .all_volumes()
        .into_iter()
        .filter(|v| v.attached_to.as_ref() == Some(&live[0].id))
        .collect();
    assert_eq!(attached.len(), 4);
    assert!(attached.iter().all(
        |v| v.tags[tags::RESTORED_FROM] == "db01-s1" && v.attached_as.as_deref() == v.device()
    ));
    assert_eq!(
        w.cloud.calls("create_volume"),
        8,
        "no blank volume was made"
    );
}

#[tokio::test]
async fn a_restore_that_has_not_ended_stops_starts_and_a_rerun_finishes_it() {
    use cerveza_core::ports::Compute as _;
    let mut w = World::new();
    w.settings.regions = vec![Region::parse("ap-southeast-1").unwrap()];
    let set = db01_backed_up(&w).await;
    w.lc().stop(vec![h("db01")]).await[0].1.as_ref().unwrap();
    let r = w
        .lc()
        .restore(&w.profiles, &set, &zone(), false)
        .await
        .unwrap();
    assert_eq!(r.terminated, None, "same zone: the stopped instance stays");
    // As if killed between making the new set and promoting it: one member is still
    // marked as being restored.
    let (dev, id) = r.volumes.iter().next().unwrap();
    let region = Region::parse("ap-southeast-1").unwrap();
    w.cloud
        .retag(
            &region,
            id.as_str(),
            &BTreeMap::from([(tags::RESTORE_DEVICE.to_owned(), dev.clone())]),
            &[tags::DEVICE],
        )
        .await
        .unwrap();
    // Refused while planning: the instance is not even started.
    let e = w.lc().start(vec![h("db01")], None, None).await.unwrap_err();
    assert!(
        e[0].1
            .to_string()
            .contains("cerveza restore db01 --from db01-s1"),
        "{e:?}"
    );
    assert!(
        w.cloud
            .all_volumes()
            .iter()
            .all(|v| v.attached_to.is_none()),
        "nothing attached"
    );
    assert_eq!(w.live()[0].state, InstanceState::Stopped);
    let again = w
        .lc()
        .restore(&w.profiles, &set, &zone(), false)
        .await
        .unwrap();
    assert!(!again.already);
    assert_eq!(&again.volumes, &r.volumes, "the same volumes (ClientToken)");
    w.start_db01(None, None).await;
    let inst = w.live().remove(0);
    let attached = w
        .cloud
        .all_volumes()
        .into_iter()
        .filter(|v| v.attached_to.as_ref() == Some(&inst.id))
        .filter(|v| v.tags.get(tags::RESTORED_FROM).map(String::as_str) == Some("db01-s1"))
        .count();
    assert_eq!(attached, 4);
    assert_eq!(
        w.cloud.calls("launch"),
        1,
        "the same instance, started again"
    );
}

#[tokio::test]
async fn two_restores_at_once_the_older_set_goes_on_and_the_newer_steps_back() {
    use cerveza_core::ports::Compute as _;
    let mut w = World::new();
    let region = Region::parse("ap-southeast-1").unwrap();
    w.settings.regions = vec![region.clone()];
    let set = db01_backed_up(&w).await;
    w.lc().stop(vec![h("db01")]).await[0].1.as_ref().unwrap();
    let old: Vec<_> = w.cloud.all_volumes().into_iter().map(|v| v.id).collect();
    let other = Zone::parse("ap-southeast-1b").unwrap();
    // Waiting for another restore to step back takes the wait timeout: virtual time.
    let clock = cerveza_core::wait::ManualClock::default();
    let lc = Lifecycle::new(&w.cloud, &w.registry, &w.settings, &Quiet).with_clock(&clock);
    let clear = |from: &'static str| {
        let cloud = &w.cloud;
        let region = &region;
        async move {
            let theirs: Vec<_> = cloud
                .all_volumes()
                .into_iter()
                .filter(|v| v.tags.get(tags::RESTORED_FROM).map(String::as_str) == Some(from))
                .collect();
            assert_eq!(theirs.len(), 1, "{from}: {theirs:?}");
            cloud.delete_volume(region, &theirs[0].id).await.unwrap();
        }
    };
    let unchanged = |w: &World| {
        let vols = w.cloud.all_volumes();
        assert!(
            vols.iter()
                .all(|v| v.tags.get(tags::RESTORED_FROM).map(String::as_str) != Some("db01-s1")),
            "what the restore made is deleted: {vols:?}"
        );
        assert!(vols
            .iter()
            .filter(|v| old.contains(&v.id))
            .all(|v| v.device().is_some() && !v.tags.contains_key(tags::REPLACED_BY)));
    };

    // Another operator restores an older set at the same time: this one steps back.
    w.cloud
        .inject(Fault::AnotherRestore("db01-s0".into(), false));
    let e = lc
        .restore(&w.profiles, &set, &other, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("older set db01-s0"), "{e}");
    unchanged(&w);
    clear("db01-s0").await;

    // A newer set's restore that never steps back (killed): this one waits for it,
    // then steps back too, saying what is in the way.
    w.cloud
        .inject(Fault::AnotherRestore("db01-s9".into(), false));
    let e = lc
        .restore(&w.profiles, &set, &other, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("newer set db01-s9"), "{e}");
    assert!(e.to_string().contains("did not happen"), "{e}");
    let waited: Duration = clock.sleeps().iter().sum();
    assert!(waited > Duration::from_secs(3), "it waited: {waited:?}");
    unchanged(&w);
    clear("db01-s9").await;

    // Another restore ended while this one made its volumes: its set is the host's
    // data now, and this one does not make a second.
    w.cloud
        .inject(Fault::AnotherRestore("db01-s9".into(), true));
    let e = lc
        .restore(&w.profiles, &set, &other, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("ended while this one ran"), "{e}");
    unchanged(&w);
    clear("db01-s9").await;

    // Alone, it goes on.
    let r = lc.restore(&w.profiles, &set, &other, false).await.unwrap();
    assert_eq!(r.replaced.len(), 4);
    assert_eq!(w.record("db01").await.zone, other);
}
