#![allow(clippy::unwrap_used)]

use super::*;

fn h(s: &str) -> Hostname {
    Hostname::parse(s).unwrap()
}

fn have(instance: Option<&str>, state: InstanceState, generation: Option<u64>) -> Have {
    Have {
        generation,
        updated_at: generation.map(|_| 100),
        profile: Some(ProfileName::parse("Web").unwrap()),
        zone: Some(Zone::parse("us-east-1a").unwrap()),
        instance: instance.map(InstanceId::new),
        state: Some(state.clone()),
        recorded_instance: instance.map(InstanceId::new),
        recorded_state: generation.map(|_| state),
    }
}

#[test]
fn stale_names_every_host_that_moved_and_how() {
    let saved = BTreeMap::from([
        (
            h("web01"),
            have(Some("i-1"), InstanceState::Running, Some(1)),
        ),
        (
            h("web02"),
            have(Some("i-2"), InstanceState::Running, Some(1)),
        ),
        (h("web03"), Have::default()),
        (h("web04"), have(None, InstanceState::Terminated, Some(2))),
    ]);
    let mut now = saved.clone();
    assert!(stale(&saved, &now).is_empty());
    now.insert(
        h("web01"),
        have(Some("i-1"), InstanceState::Stopped, Some(1)),
    );
    now.insert(
        h("web03"),
        have(Some("i-3"), InstanceState::Pending, Some(1)),
    );
    let mut rewritten = have(None, InstanceState::Terminated, Some(2));
    rewritten.updated_at = Some(200);
    now.insert(h("web04"), rewritten);
    now.insert(h("new01"), have(Some("i-9"), InstanceState::Running, None));
    assert_eq!(
        stale(&saved, &now),
        [
            "new01: was nothing, now i-9 running",
            "web01: was i-1 running, now i-1 stopped",
            "web03: was nothing, now i-3 pending",
            "web04: its registry record changed (no instance (record generation 2, terminated))",
        ]
    );
    // A host that vanished from the fleet is a move too.
    let mut gone = saved.clone();
    gone.remove(&h("web02"));
    assert_eq!(
        stale(&saved, &gone),
        ["web02: was i-2 running, now nothing"]
    );
}

#[test]
fn only_rows_that_change_something_and_are_not_held_act() {
    let row = |change, held: Option<&str>| Row {
        host: h("web01"),
        change,
        held: held.map(str::to_owned),
        then_stop: false,
        detail: String::new(),
        want: None,
        have: Have::default(),
    };
    assert!(row(Change::Launch, None).acts());
    assert!(row(Change::Prune, None).acts());
    assert!(!row(Change::Replace, Some("needs --replace")).acts());
    assert!(!row(Change::Nothing, None).acts());
    assert!(!row(Change::Unmanaged, None).acts());
}
