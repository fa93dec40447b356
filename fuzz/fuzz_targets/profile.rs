//! The profile loader on any bytes: no panic, no hang; every error names the file.
#![no_main]

use std::path::PathBuf;

use cerveza_core::profile::ProfileSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources = [(PathBuf::from("fuzz.yaml"), text.to_owned())];
    match ProfileSet::from_sources(&sources) {
        Ok(set) => {
            for p in set.instances() {
                // A loaded profile is usable: its name resolves to itself.
                assert_eq!(
                    set.instance(&p.name).map(|i| &i.name).ok(),
                    Some(&p.name).filter(|_| !p.is_abstract)
                );
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                let msg = e.to_string();
                assert!(msg.contains("fuzz.yaml"), "error without its file: {msg}");
            }
        }
    }
});
