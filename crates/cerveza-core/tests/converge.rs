//! Fleet files, plans and apply against the in-memory fakes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cerveza_core::converge::{self, plan, Change, FleetFile, Plan};
use cerveza_core::fake::{FakeCloud, FakeRegistry, Fault};
use cerveza_core::lifecycle::{Lifecycle, Settings};
use cerveza_core::model::{HostRecord, InstanceState};
use cerveza_core::ports::{ProviderErrorKind, Quiet, RegistryRead};
use cerveza_core::profile::ProfileSet;
use cerveza_core::{Hostname, Product, Region};

const PROFILES: &str = "--- !InstanceProfile
name: Dev
aws: !InstanceAws
  ami: { us-east-1: ami-a6f504cf, eu-west-1: ami-0905a3c9 }
  instance-type: t3.micro
--- !VolumeProfile
name: Raid
volumes: { count: 2, size-gb: 10, type: gp3 }
raid: 1
mount-point: /data
--- !InstanceProfile
name: Db
extends: Dev
volume-profiles: [Raid]
";

struct World {
    cloud: FakeCloud,
    registry: FakeRegistry,
    profiles: ProfileSet,
    settings: Settings,
}

fn h(s: &str) -> Hostname {
    Hostname::parse(s).unwrap()
}

fn regions() -> Vec<Region> {
    vec![
        Region::parse("us-east-1").unwrap(),
        Region::parse("eu-west-1").unwrap(),
    ]
}

impl World {
    fn new() -> Self {
        let mut settings = Settings::new(Product::parse("noc").unwrap());
        settings.poll_initial = Duration::from_millis(1);
        settings.poll_max = Duration::from_millis(2);
        settings.wait_timeout = Duration::from_secs(5);
        settings.regions = regions();
        Self {
            cloud: FakeCloud::default(),
            registry: FakeRegistry::default(),
            profiles: ProfileSet::from_sources(&[(PathBuf::from("p.yaml"), PROFILES.into())])
                .unwrap(),
            settings,
        }
    }

    fn file(&self, text: &str) -> FleetFile {
        FleetFile::parse(
            Path::new("fleet.yaml"),
            text,
            &self.profiles,
            &regions(),
            Some(&self.settings.product),
        )
        .unwrap()
    }

    async fn survey(&self) -> plan::Survey {
        converge::survey(
            &self.cloud,
            &self.registry,
            &self.settings.product,
            &regions(),
            Duration::from_secs(5),
        )
        .await
    }

    async fn plan(&self, text: &str, opts: &plan::Options) -> Plan {
        let mut p = plan::diff(&self.file(text), &self.survey().await, opts).unwrap();
        p.regions = regions();
        p
    }

    /// [`converge::plan`] of `text`: the plan and the hosts that cannot go where it puts them.
    async fn checked_plan(
        &self,
        text: &str,
        opts: &plan::Options,
    ) -> (Plan, Vec<(Hostname, String)>) {
        converge::plan(
            &self.cloud,
            &self.registry,
            &self.file(text),
            &regions(),
            opts,
            &converge::Launching {
                profiles: &self.profiles,
                vpcs: &BTreeMap::new(),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    }

    /// Applies `text` and returns the plan it carried out; every host must succeed.
    async fn apply(&self, text: &str, opts: &plan::Options) -> Plan {
        let plan = self.plan(text, opts).await;
        for (host, r) in converge::apply(&self.lc(), &self.profiles, &plan).await {
            r.unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        plan
    }

    /// A plan of FIRST grown by web04, as saved: what it saw of each host, and its hosts.
    async fn saved_plan(&self) -> (BTreeMap<Hostname, plan::Have>, Vec<Hostname>) {
        let grown = FIRST.replace("web[01-03]", "web[01-04]");
        let plan = self.plan(&grown, &none()).await;
        let saved = plan
            .hosts
            .iter()
            .map(|r| (r.host.clone(), r.have.clone()))
            .collect();
        (saved, plan.hosts.iter().map(|r| r.host.clone()).collect())
    }

    fn lc(&self) -> Lifecycle<'_> {
        Lifecycle::new(&self.cloud, &self.registry, &self.settings, &Quiet)
    }

    /// Terminates `host` out of band (`forget`: its record too); it must succeed.
    async fn terminate(&self, host: &str, forget: bool) {
        self.lc().terminate(vec![h(host)], forget, false).await[0]
            .1
            .as_ref()
            .unwrap();
    }

    /// Starts a new Dev host out of band, as another operator would.
    async fn start_dev(&self, host: &str, zone: &str) {
        self.lc()
            .start(
                &self.profiles,
                vec![h(host)],
                Some(&cerveza_core::Zone::parse(zone).unwrap()),
                Some(&cerveza_core::ProfileName::parse("Dev").unwrap()),
            )
            .await
            .unwrap();
    }

    fn changes(plan: &Plan) -> BTreeMap<String, (Change, bool)> {
        plan.hosts
            .iter()
            .map(|r| (r.host.to_string(), (r.change, r.held.is_some())))
            .collect()
    }

    fn live(&self, host: &str) -> Vec<cerveza_core::model::Instance> {
        self.cloud
            .all()
            .into_iter()
            .filter(|i| i.host() == Some(host) && !i.state.is_gone())
            .collect()
    }

    async fn record(&self, host: &str) -> Option<HostRecord> {
        self.registry
            .get(&self.settings.product, &h(host))
            .await
            .unwrap()
    }
}

const FIRST: &str = "--- !Fleet
product: noc
hosts:
  - names: web[01-03]
    profile: Dev
    zones: [us-east-1a, us-east-1b]
  - name: db01
    profile: Db
    zone: us-east-1b
  - name: vpn01
    profile: Dev
    zone: eu-west-1a
    state: stopped
";

fn none() -> plan::Options {
    plan::Options::default()
}

#[tokio::test]
async fn a_first_apply_launches_everything_then_plans_no_change() {
    let w = World::new();
    let plan = w.apply(FIRST, &none()).await;
    assert!(plan.hosts.iter().all(|r| r.change == Change::Launch));
    assert_eq!(
        plan.hosts.iter().filter(|r| r.then_stop).count(),
        1,
        "vpn01 is launched, then stopped"
    );
    // Spread: web01 a, web02 b, web03 a.
    for (host, zone) in [
        ("web01", "us-east-1a"),
        ("web02", "us-east-1b"),
        ("web03", "us-east-1a"),
    ] {
        assert_eq!(w.live(host)[0].zone.as_ref().unwrap().as_str(), zone);
    }
    assert_eq!(w.live("vpn01")[0].state, InstanceState::Stopped);
    assert_eq!(w.live("db01").len(), 1);
    assert_eq!(w.cloud.all_volumes().len(), 2, "db01's RAID pair");
    let again = w.plan(FIRST, &none()).await;
    assert!(
        again
            .hosts
            .iter()
            .all(|r| r.change == Change::Nothing && r.held.is_none()),
        "{again:#?}"
    );
    assert_eq!(again.summary, BTreeMap::from([("nothing".into(), 5)]));
}

#[tokio::test]
async fn every_change_kind_is_planned_and_applied() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    // Out of band: web03's instance is gone, an unmanaged host appears.
    w.terminate("web03", false).await;
    w.start_dev("extra01", "us-east-1c").await;
    let second = "--- !Fleet
product: noc
hosts:
  - names: web[01-04]
    profile: Dev
    zones: [us-east-1a, us-east-1b]
  - name: db01
    profile: Dev
    zone: us-east-1b
  - name: vpn01
    profile: Dev
    zone: eu-west-1a
  - name: web09
    profile: Dev
    zone: us-east-1a
    state: terminated
";
    let plan = w.plan(second, &none()).await;
    let got = World::changes(&plan);
    let want: BTreeMap<String, (Change, bool)> = [
        ("web01", (Change::Nothing, false)),
        ("web02", (Change::Nothing, false)),
        ("web03", (Change::Relaunch, false)),
        ("web04", (Change::Launch, false)),
        ("db01", (Change::Replace, true)),
        ("vpn01", (Change::Start, false)),
        ("web09", (Change::Nothing, false)),
        ("extra01", (Change::Unmanaged, false)),
    ]
    .into_iter()
    .map(|(h, c)| (h.to_owned(), c))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        plan.hosts
            .iter()
            .find(|r| r.host == h("db01"))
            .unwrap()
            .detail,
        "profile Db → Dev"
    );
    // Held rows are not applied: db01 keeps its instance.
    let db01 = w.live("db01")[0].id.clone();
    w.apply(second, &none()).await;
    assert_eq!(w.live("db01")[0].id, db01);
    assert_eq!(w.live("web03").len(), 1);
    assert_eq!(w.live("web04").len(), 1);
    assert_eq!(w.live("vpn01")[0].state, InstanceState::Running);
    assert_eq!(w.live("extra01").len(), 1, "unmanaged hosts are left alone");

    // --replace db01 --prune: db01 relaunched with the new profile, extra01 gone and
    // forgotten, volumes kept.
    let opts = plan::Options {
        replace: vec![h("db01")],
        prune: true,
    };
    let plan = w.apply(second, &opts).await;
    assert_eq!(World::changes(&plan)["extra01"], (Change::Prune, false));
    assert_ne!(w.live("db01")[0].id, db01);
    assert_eq!(w.live("db01")[0].profile(), Some("Dev"));
    assert_eq!(w.record("db01").await.unwrap().profile.as_str(), "Dev");
    assert!(w.live("extra01").is_empty());
    assert!(
        w.record("extra01").await.is_none(),
        "pruned hosts are forgotten"
    );
    assert_eq!(w.cloud.all_volumes().len(), 2, "db01's volumes are kept");

    // Stop and terminate.
    let third = second
        .replace(
            "  - name: vpn01\n    profile: Dev\n    zone: eu-west-1a\n",
            "  - name: vpn01\n    profile: Dev\n    zone: eu-west-1a\n    state: stopped\n",
        )
        .replace(
            "  - name: db01\n    profile: Dev\n    zone: us-east-1b\n",
            "  - name: db01\n    profile: Dev\n    zone: us-east-1b\n    state: terminated\n",
        );
    let plan = w.apply(&third, &none()).await;
    let got = World::changes(&plan);
    assert_eq!(got["vpn01"], (Change::Stop, false));
    assert_eq!(got["db01"], (Change::Terminate, false));
    assert!(w.live("db01").is_empty());
    assert_eq!(
        w.record("db01").await.unwrap().state,
        InstanceState::Terminated,
        "a terminated host is remembered"
    );
    let last = w.plan(&third, &none()).await;
    assert!(
        last.hosts.iter().all(|r| r.change == Change::Nothing),
        "{last:#?}"
    );
}

#[tokio::test]
async fn a_zone_change_is_a_replace_and_growing_a_range_moves_nobody() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    let grown = FIRST.replace("web[01-03]", "web[01-06]");
    let plan = w.plan(&grown, &none()).await;
    let got = World::changes(&plan);
    for host in ["web01", "web02", "web03"] {
        assert_eq!(got[host], (Change::Nothing, false), "{host}");
    }
    // A zone added to the list moves nobody either: a host stays in a listed zone.
    let more_zones = FIRST.replace(
        "[us-east-1a, us-east-1b]",
        "[us-east-1a, us-east-1b, us-east-1c]",
    );
    let plan = w.plan(&more_zones, &none()).await;
    assert!(plan.hosts.iter().all(|r| r.change == Change::Nothing));
    // A zone removed is a replace of the hosts in it, held without --replace.
    let fewer = FIRST.replace("[us-east-1a, us-east-1b]", "[us-east-1a]");
    let plan = w.plan(&fewer, &none()).await;
    let row = plan.hosts.iter().find(|r| r.host == h("web02")).unwrap();
    assert_eq!((row.change, row.held.is_some()), (Change::Replace, true));
    assert_eq!(row.detail, "zone us-east-1b → us-east-1a");
    // --replace must name a host the plan replaces.
    let e = plan::diff(
        &w.file(&fewer),
        &w.survey().await,
        &plan::Options {
            replace: vec![h("web01")],
            prune: false,
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "--replace web01: the plan does not replace it (it would nothing)"
    );
}

#[tokio::test]
async fn a_saved_plan_is_stale_when_any_host_it_covers_moved() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    let (saved, file_hosts) = w.saved_plan().await;
    let now = plan::seen(&file_hosts, &w.survey().await);
    assert!(plan::stale(&saved, &now).is_empty(), "nothing moved yet");
    // web01 is not touched by the plan; it is stopped by someone else.
    w.lc().stop(vec![h("web01")]).await[0].1.as_ref().unwrap();
    let now = plan::seen(&file_hosts, &w.survey().await);
    let moved = plan::stale(&saved, &now);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(moved[0].starts_with("web01: was i-"), "{moved:?}");
    assert!(moved[0].ends_with(" stopped"), "{moved:?}");
    // Someone else claims web04, which the plan would launch.
    w.start_dev("web04", "us-east-1b").await;
    let now = plan::seen(&file_hosts, &w.survey().await);
    let moved = plan::stale(&saved, &now);
    assert!(
        moved
            .iter()
            .any(|m| m.starts_with("web04: was nothing, now i-")),
        "{moved:?}"
    );
    // A host the file does not name appears: stale too.
    w.start_dev("new01", "us-east-1b").await;
    let now = plan::seen(&file_hosts, &w.survey().await);
    assert!(plan::stale(&saved, &now)
        .iter()
        .any(|m| m.starts_with("new01:")));
}

#[tokio::test]
async fn a_saved_plan_is_stale_when_hosts_moved_behind_cerveza_s_back() {
    // Moves made straight through the cloud, which leave every registry record as it
    // was: a freshness check that read only the records would miss all of them.
    let w = World::new();
    w.apply(FIRST, &none()).await;
    let (saved, file_hosts) = w.saved_plan().await;
    let records = w.registry.list(&w.settings.product).await.unwrap();
    let instance_of = |host: &str| {
        w.cloud
            .all()
            .into_iter()
            .find(|i| i.host() == Some(host) && !i.state.is_gone())
            .unwrap()
    };
    // web01 stopped and web02 terminated from the console; db01's host tag removed by
    // hand, so its instance is no longer db01's.
    w.cloud
        .set_state(&instance_of("web01").id, InstanceState::Stopped);
    w.cloud
        .set_state(&instance_of("web02").id, InstanceState::Terminated);
    let mut db = instance_of("db01");
    db.tags.remove(cerveza_core::tags::HOST);
    w.cloud.insert(db);
    assert_eq!(
        w.registry.list(&w.settings.product).await.unwrap(),
        records,
        "the registry saw none of it"
    );
    let now = plan::seen(&file_hosts, &w.survey().await);
    let moved: BTreeMap<String, String> = plan::stale(&saved, &now)
        .into_iter()
        .map(|m| (m.split(':').next().unwrap().to_owned(), m))
        .collect();
    assert_eq!(
        moved.keys().collect::<Vec<_>>(),
        ["db01", "web01", "web02"],
        "{moved:?}"
    );
    assert!(moved["web01"].ends_with(" stopped"), "{moved:?}");
    assert!(moved["web02"].contains("now no instance"), "{moved:?}");
    assert!(moved["db01"].contains("now no instance"), "{moved:?}");
}

#[tokio::test]
async fn an_unanswering_region_or_registry_holds_only_what_it_hides() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    let grown = FIRST.replace("web[01-03]", "web[01-04]");
    w.cloud.inject(Fault::List(
        Region::parse("eu-west-1").unwrap(),
        ProviderErrorKind::Unavailable,
    ));
    let plan = w
        .plan(
            &grown,
            &plan::Options {
                replace: vec![],
                prune: true,
            },
        )
        .await;
    let got = World::changes(&plan);
    assert_eq!(got["web04"], (Change::Launch, false), "us-east-1 goes on");
    assert!(got["vpn01"].1, "eu-west-1 did not answer: {plan:#?}");
    assert_eq!(plan.failed_regions.len(), 1);

    w.registry.set_down(true);
    let plan = w.plan(&grown, &none()).await;
    let got = World::changes(&plan);
    assert_eq!(
        got["web01"],
        (Change::Nothing, false),
        "tags tell web01 exists"
    );
    assert_eq!(
        got["web04"],
        (Change::Launch, true),
        "without the registry, a new host cannot be told from a gone one"
    );
    assert!(plan.registry_error.is_some());
}

#[tokio::test]
async fn several_live_instances_of_one_host_hold_it() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    let mut twin = w.live("web01")[0].clone();
    twin.id = cerveza_core::model::InstanceId::new("i-twin");
    w.cloud.insert(twin);
    let plan = w.plan(FIRST, &none()).await;
    let row = plan.hosts.iter().find(|r| r.host == h("web01")).unwrap();
    assert!(
        row.held
            .as_deref()
            .unwrap()
            .contains("several live instances"),
        "{row:?}"
    );
}

#[tokio::test]
async fn a_fleet_exported_plans_to_no_change() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    w.terminate("web02", false).await;
    let out = converge::export::export(&w.settings.product, &w.survey().await);
    assert!(out.left_out.is_empty());
    assert_eq!(out.hosts, 5);
    assert_eq!(
        out.text,
        "# The fleet of product noc, written by `cerveza fleet export`:
# `cerveza plan` of this file changes nothing until the fleet or the file does.
--- !Fleet
product: noc
hosts:
  - name: db01
    profile: Db
    zone: us-east-1b
  - name: vpn01
    profile: Dev
    zone: eu-west-1a
    state: stopped
  - names: web[01,03]
    profile: Dev
    zone: us-east-1a
  - name: web02
    profile: Dev
    zone: us-east-1b
    state: terminated
"
    );
    let plan = w.plan(&out.text, &none()).await;
    assert!(
        plan.hosts
            .iter()
            .all(|r| r.change == Change::Nothing && r.held.is_none()),
        "{plan:#?}"
    );
}

#[test]
fn the_example_fleet_file_is_valid_with_the_example_profiles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let profiles = ProfileSet::load_dir(&root.join("examples/profiles")).unwrap();
    let regions: Vec<Region> = ["us-east-1", "eu-west-1"]
        .iter()
        .map(|r| Region::parse(r).unwrap())
        .collect();
    let f = FleetFile::load(&root.join("examples/fleet.yaml"), &profiles, &regions, None).unwrap();
    assert_eq!(f.hosts.len(), 15);
    assert_eq!(
        f.hosts[3].zone.as_str(),
        "us-east-1a",
        "web04 wraps round to the first zone"
    );
}

#[tokio::test]
async fn a_host_known_only_by_its_tags_is_pruned_without_a_record_to_delete() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    let mut stray = w.live("web01")[0].clone();
    stray.id = cerveza_core::model::InstanceId::new("i-stray");
    stray
        .tags
        .insert(cerveza_core::tags::HOST.into(), "stray01".into());
    w.cloud.insert(stray);
    let opts = plan::Options {
        replace: vec![],
        prune: true,
    };
    let plan = w.apply(FIRST, &opts).await;
    assert_eq!(World::changes(&plan)["stray01"], (Change::Prune, false));
    assert!(w.live("stray01").is_empty());
    assert!(w
        .plan(FIRST, &opts)
        .await
        .hosts
        .iter()
        .all(|r| r.change == Change::Nothing));
}

#[tokio::test]
async fn hosts_launched_away_from_their_data_or_into_no_zone_are_found_while_planning() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    // db01 forgotten, its RAID pair kept in us-east-1b.
    w.terminate("db01", true).await;
    let moved = FIRST
        .replace(
            "    profile: Db\n    zone: us-east-1b",
            "    profile: Db\n    zone: us-east-1a",
        )
        .replace("web[01-03]", "web[01-04]")
        .replace("[us-east-1a, us-east-1b]", "[us-east-1a, us-east-1q]");
    let before = w.cloud.calls("volumes");
    let (plan, problems) = converge::plan(
        &w.cloud,
        &w.registry,
        &w.file(&moved),
        &regions(),
        &none(),
        &converge::Launching {
            profiles: &w.profiles,
            vpcs: &BTreeMap::new(),
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(
        w.cloud.calls("volumes") - before,
        2 + 2,
        "one volume listing per region for the hosts that launch, and one for the hosts whose zone changes (a replace of a host with data is a move)"
    );
    assert_eq!(World::changes(&plan)["db01"], (Change::Launch, false));
    let problems: BTreeMap<String, String> = problems
        .into_iter()
        .map(|(h, why)| (h.to_string(), why))
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems["db01"].contains("is in us-east-1b, the file puts it in us-east-1a"),
        "{problems:?}"
    );
    assert!(
        problems["web04"].starts_with("zone us-east-1q does not exist in region us-east-1"),
        "{problems:?}"
    );
    // Nothing moves: no zone or volume listing at all.
    let before = (w.cloud.calls("volumes"), w.cloud.calls("zones"));
    let (_, problems) = converge::plan(
        &w.cloud,
        &w.registry,
        &w.file(&FIRST.replace(
            "  - name: db01\n    profile: Db\n    zone: us-east-1b\n",
            "",
        )),
        &regions(),
        &none(),
        &converge::Launching {
            profiles: &w.profiles,
            vpcs: &BTreeMap::new(),
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(problems.is_empty());
    assert_eq!((w.cloud.calls("volumes"), w.cloud.calls("zones")), before);
}

#[tokio::test]
async fn a_start_cut_short_is_planned_as_a_repair_and_finished_by_apply() {
    let w = World::new();
    // db01's second volume fails: its instance runs, but its RAID pair is half made.
    w.cloud
        .inject(Fault::CreateVolume(ProviderErrorKind::Other));
    let plan = w.plan(FIRST, &none()).await;
    let results = converge::apply(&w.lc(), &w.profiles, &plan).await;
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(h, _)| h.to_string())
        .collect();
    assert_eq!(failed, ["db01"]);
    assert_eq!(w.live("db01").len(), 1, "its instance runs");
    let rec = w.record("db01").await.unwrap();
    assert_ne!(
        rec.state,
        InstanceState::Running,
        "recorded last, so not yet: {rec:?}"
    );
    // The plan sees it unfinished; apply finishes it (the same start again).
    let plan = w.plan(FIRST, &none()).await;
    let row = plan.hosts.iter().find(|r| r.host == h("db01")).unwrap();
    assert_eq!(row.change, Change::Repair, "{row:?}");
    assert!(
        row.detail
            .starts_with("its record says no instance, pending"),
        "{row:?}"
    );
    assert_eq!(
        plan.hosts
            .iter()
            .filter(|r| r.change != Change::Nothing)
            .count(),
        1,
        "{plan:#?}"
    );
    w.apply(FIRST, &none()).await;
    assert_eq!(
        w.record("db01").await.unwrap().state,
        InstanceState::Running
    );
    let volumes: Vec<_> = w
        .cloud
        .all_volumes()
        .into_iter()
        .filter(|v| v.device().is_some())
        .collect();
    assert_eq!(volumes.len(), 2);
    assert!(volumes
        .iter()
        .all(|v| v.attached_to.as_ref() == Some(&w.live("db01")[0].id)));
    let again = w.plan(FIRST, &none()).await;
    assert!(
        again.hosts.iter().all(|r| r.change == Change::Nothing),
        "{again:#?}"
    );
}

#[tokio::test]
async fn claims_refused_for_capacity_launch_in_the_zone_the_file_names_next() {
    let w = World::new();
    let full = cerveza_core::Zone::parse("us-east-1b").unwrap();
    w.cloud.full_zones.lock().unwrap().insert(full);
    let plan = w.plan(FIRST, &none()).await;
    let results = converge::apply(&w.lc(), &w.profiles, &plan).await;
    let failed: Vec<(String, cerveza_core::ErrorKind)> = results
        .iter()
        .filter_map(|(h, r)| r.as_ref().err().map(|e| (h.to_string(), e.kind())))
        .collect();
    assert_eq!(
        failed,
        [
            ("web02".to_owned(), cerveza_core::ErrorKind::Capacity),
            ("db01".to_owned(), cerveza_core::ErrorKind::Capacity)
        ]
    );
    // The file moves them to us-east-1c: their claims never got an instance, so the
    // plan launches them there, without `--replace`.
    let moved = FIRST
        .replace(
            "zones: [us-east-1a, us-east-1b]",
            "zones: [us-east-1a, us-east-1c]",
        )
        .replace("zone: us-east-1b", "zone: us-east-1c");
    let plan = w.plan(&moved, &none()).await;
    let row = |host: &str| plan.hosts.iter().find(|r| r.host.as_str() == host).unwrap();
    for host in ["web02", "db01"] {
        let r = row(host);
        assert_eq!(
            (r.change, r.held.as_deref()),
            (Change::Launch, None),
            "{r:?}"
        );
        assert_eq!(
            r.detail,
            "zone us-east-1b → us-east-1c: its claim never got an instance"
        );
    }
    assert_eq!(row("web01").change, Change::Nothing);
    w.apply(&moved, &none()).await;
    for host in ["web02", "db01"] {
        let live = w.live(host);
        assert_eq!(live.len(), 1, "{host}: {live:?}");
        assert_eq!(live[0].zone.as_ref().unwrap().as_str(), "us-east-1c");
        assert_eq!(w.record(host).await.unwrap().zone.as_str(), "us-east-1c");
    }
    // A host that has an instance still needs `--replace` to change zone.
    let web01_moved = moved.replace("zones: [us-east-1a, us-east-1c]", "zones: [us-east-1c]");
    let plan = w.plan(&web01_moved, &none()).await;
    assert_eq!(World::changes(&plan)["web01"], (Change::Replace, true));
}

#[tokio::test]
async fn a_plan_names_hosts_whose_region_has_no_vpc_or_subnet_for_them() {
    let w = World::new();
    let us = Region::parse("us-east-1").unwrap();
    // us-east-1 without its default VPC (deleted, as many organisations do).
    w.cloud.networks.lock().unwrap().insert(us.clone(), None);
    let plan_with = |vpcs: BTreeMap<Region, String>| {
        let w = &w;
        async move {
            let (_, problems) = converge::plan(
                &w.cloud,
                &w.registry,
                &w.file(FIRST),
                &regions(),
                &none(),
                &converge::Launching {
                    profiles: &w.profiles,
                    vpcs: &vpcs,
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            problems
                .into_iter()
                .map(|(h, why)| (h.to_string(), why))
                .collect::<BTreeMap<String, String>>()
        }
    };
    let problems = plan_with(BTreeMap::new()).await;
    assert_eq!(
        problems.keys().collect::<Vec<_>>(),
        ["db01", "web01", "web02", "web03"],
        "vpn01 launches in eu-west-1, which has its default VPC"
    );
    assert!(
        problems["web01"].starts_with("region us-east-1 has no default VPC"),
        "{problems:?}"
    );
    // A VPC of its own with subnets in zone a only: the hosts of zone b are named.
    let mut network = w
        .cloud
        .network_of(&Region::parse("eu-west-1").unwrap())
        .unwrap();
    network.vpc_id = "vpc-0000aaaa".into();
    network.is_default = false;
    network.subnets.retain(|s| s.zone.as_str() == "eu-west-1a");
    for s in &mut network.subnets {
        s.zone = cerveza_core::Zone::parse("us-east-1a").unwrap();
    }
    w.cloud
        .networks
        .lock()
        .unwrap()
        .insert(us.clone(), Some(network));
    let problems = plan_with(BTreeMap::from([(us.clone(), "vpc-0000aaaa".into())])).await;
    assert_eq!(
        problems.keys().collect::<Vec<_>>(),
        ["db01", "web02"],
        "{problems:?}"
    );
    assert!(
        problems["db01"].starts_with("VPC vpc-0000aaaa has no subnet in zone us-east-1b"),
        "{problems:?}"
    );
    // The same VPC asked by another id: it does not exist.
    let problems = plan_with(BTreeMap::from([(us, "vpc-0000bbbb".into())])).await;
    assert!(
        problems["web01"]
            .contains("VPC vpc-0000bbbb (the config's [regions.us-east-1] vpc) does not exist"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_zone_change_of_a_host_with_data_is_a_move_held_until_replace_names_it() {
    let w = World::new();
    w.apply(FIRST, &none()).await;
    let moved = FIRST.replace(
        "    profile: Db\n    zone: us-east-1b",
        "    profile: Db\n    zone: us-east-1a",
    );
    // db01 has its RAID pair in us-east-1b: its data moves with it, so a move, held.
    let (plan, problems) = w.checked_plan(&moved, &none()).await;
    assert!(problems.is_empty(), "{problems:?}");
    let row = plan
        .hosts
        .iter()
        .find(|r| r.host.as_str() == "db01")
        .unwrap();
    assert_eq!(row.change, Change::Move, "{row:?}");
    assert!(
        row.held.as_deref().unwrap().contains("`--replace db01`"),
        "{row:?}"
    );
    assert!(
        row.detail.contains("zone us-east-1b → us-east-1a"),
        "{row:?}"
    );
    // Named by --replace: it acts, and nothing says it launches away from its data.
    let replace = plan::Options {
        replace: vec![h("db01")],
        ..none()
    };
    let (plan, problems) = w.checked_plan(&moved, &replace).await;
    assert!(problems.is_empty(), "{problems:?}");
    let row = plan
        .hosts
        .iter()
        .find(|r| r.host.as_str() == "db01")
        .unwrap();
    assert_eq!((row.change, row.acts()), (Change::Move, true), "{row:?}");
    // The core's apply leaves a move to the caller (`cerveza apply` runs `move`):
    // db01 is not terminated nor launched elsewhere.
    let before = w.live("db01");
    for (host, r) in converge::apply(&w.lc(), &w.profiles, &plan).await {
        assert_ne!(host.as_str(), "db01");
        r.unwrap();
    }
    assert_eq!(w.live("db01"), before);
    // Without data, a zone change stays a replace.
    let moved_web = FIRST.replace("[us-east-1a, us-east-1b]", "[us-east-1c]");
    let (plan, _) = w.checked_plan(&moved_web, &none()).await;
    assert!(plan
        .hosts
        .iter()
        .filter(|r| r.host.as_str().starts_with("web"))
        .all(|r| r.change == Change::Replace));
}
