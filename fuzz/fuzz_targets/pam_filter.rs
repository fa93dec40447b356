//! Grants, the pam filter and RFC 4515 escaping on any input: no panic; an escaped
//! value holds no filter metacharacter and decodes back to the input; a pam filter is
//! balanced and holds no bare `*`.
#![no_main]

use cerveza_core::access::{escape_filter_value, pam_filter, Grant};
use cerveza_core::{Hostname, Zone};
use libfuzzer_sys::fuzz_target;

fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("two hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

fuzz_target!(|input: (&str, &str, &str)| {
    let (grant, host, zone) = input;
    let _ = Grant::parse(grant);

    let escaped = escape_filter_value(grant);
    assert!(!escaped.contains(['*', '(', ')', '\0']), "{escaped:?}");
    assert_eq!(unescape(&escaped), grant);

    if let (Ok(h), Ok(z)) = (Hostname::parse(host), Zone::parse(zone)) {
        let f = pam_filter(&h, &z);
        assert!(!f.contains('*'), "bare * in {f}");
        let mut depth = 0i32;
        for c in f.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "unbalanced {f}");
        }
        assert_eq!(depth, 0, "unbalanced {f}");
        if let Ok(g) = Grant::parse(&format!("{h}.{z}")) {
            assert!(
                g.allows(&h, &z),
                "the host grant {h}.{z} does not allow {h} in {z}"
            );
        }
    }
});
