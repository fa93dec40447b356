//! The selection grammar on any string: no panic, bounded expansion, and ranges fold
//! back into what they expand to.
#![no_main]

use cerveza_core::selection::{
    expand_hostnames, fold_hostnames, Candidate, Selection, MAX_EXPANSION,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(sel) = Selection::parse(input) {
        for host in ["web01", "dev-mysql02", "a", input] {
            let _ = sel.matches(&Candidate {
                host,
                zone: Some("us-east-1a"),
                region: "us-east-1",
                profile: Some("Web"),
            });
        }
        let _ = sel.with_substrings(&["web01", "db02"]);
    }
    if let Ok(hosts) = expand_hostnames(&[input]) {
        assert!(hosts.len() <= MAX_EXPANSION);
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let folded = fold_hostnames(&names);
        let again = expand_hostnames(&[folded.as_str()])
            .unwrap_or_else(|e| panic!("{folded:?} does not expand: {e}"));
        let mut a: Vec<String> = again.iter().map(|h| h.to_string()).collect();
        let mut b = names;
        a.sort();
        b.sort();
        assert_eq!(a, b, "fold {folded:?} changed the set");
    }
});
