//! Launch idempotency tokens.
//!
//! Every launch of a host carries a token derived from product, hostname, the host's
//! *claim* (a random id made when the hostname is claimed, kept in its registry record
//! and tagged on its instances) and its *generation* (bumped each time its instance is
//! found gone). The token is sent as EC2's `ClientToken` and also written as the
//! [`crate::tags::TOKEN`] tag, so a `start` that died after `RunInstances` finds and
//! adopts its instance on re-run even where the API ignores `ClientToken` (moto does).
//!
//! The claim keeps a forgotten host's tokens from answering its next life: EC2 keeps a
//! `ClientToken` at least a day after its instance terminated, while the instance drops
//! out of `DescribeInstances` after about an hour, so a host forgotten and started again
//! in between would otherwise be handed its dead instance.

use sha2::{Digest, Sha256};

use crate::names::{Hostname, Product};

/// A new claim id: 16 random hex digits.
pub fn new_claim() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The token for launch number `generation` of `host` in `product`, under `claim`: `cz-`
/// and 32 hex digits (EC2 allows 64 ASCII characters). An empty claim (a record made
/// before claims existed) gives the token such a record's launches were sent with.
pub fn client_token(product: &Product, host: &Hostname, claim: &str, generation: u64) -> String {
    let generation = generation.to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![product.as_str().as_bytes(), host.as_str().as_bytes()];
    if !claim.is_empty() {
        parts.push(claim.as_bytes());
    }
    parts.push(&generation);
    token(b"cerveza-launch\0", &parts)
}

/// The generation a launch token of `host` under `claim` was made for, found by trying
/// the first `up_to` generations (the token is a hash: it cannot be read back). Lets a
/// relaunch go on from a terminated instance's tags when the registry does not answer.
pub fn generation_of(
    product: &Product,
    host: &Hostname,
    claim: &str,
    token: &str,
    up_to: u64,
) -> Option<u64> {
    (1..=up_to).find(|g| client_token(product, host, claim, *g) == token)
}

/// The token for creating the volume at `device` of `host` during launch number
/// `generation`: a lost CreateVolume answer retried with it yields the same volume.
pub fn volume_token(product: &Product, host: &Hostname, device: &str, generation: u64) -> String {
    volume_token_attempt(product, host, device, generation, 0)
}

/// The token of try `attempt` at that volume. EC2 answers a token whose volume is gone
/// (EBS dropped it: an unusable KMS key, an `error` state) with
/// `IdempotentParameterMismatch`; the next try then takes the next token, so a rerun
/// walks the same sequence and still gets back a volume a lost answer made.
pub fn volume_token_attempt(
    product: &Product,
    host: &Hostname,
    device: &str,
    generation: u64,
    attempt: u32,
) -> String {
    let generation = generation.to_be_bytes();
    let attempt = attempt.to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![
        product.as_str().as_bytes(),
        host.as_str().as_bytes(),
        device.as_bytes(),
        &generation,
    ];
    if attempt != [0; 4] {
        parts.push(&attempt);
    }
    token(b"cerveza-volume\0", &parts)
}

/// The `ClientToken` of the volume a restore of `set` makes for `device` in `zone`: a
/// rerun (or a second operator restoring the same set there) gets the same volume.
/// `attempt` counts this device's volumes already gone (a restore that stepped back
/// deleted them): a spent token answers IdempotentParameterMismatch.
pub fn restore_token(
    product: &Product,
    host: &Hostname,
    set: &str,
    zone: &str,
    device: &str,
    attempt: u32,
) -> String {
    let attempt = attempt.to_be_bytes();
    token(
        b"cerveza-restore\0",
        &[
            product.as_str().as_bytes(),
            host.as_str().as_bytes(),
            set.as_bytes(),
            zone.as_bytes(),
            device.as_bytes(),
            &attempt,
        ],
    )
}

/// `cz-` and the first 16 bytes, in hex, of SHA-256 over `kind` and the NUL-separated
/// `parts`.
fn token(kind: &[u8], parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(kind);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"\0");
        }
        h.update(part);
    }
    let digest = h.finalize();
    let mut out = String::from("cz-");
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_distinct() {
        let p = Product::parse("noc").unwrap();
        let h = Hostname::parse("demo01").unwrap();
        let t1 = client_token(&p, &h, "", 1);
        assert_eq!(t1, client_token(&p, &h, "", 1));
        assert_ne!(t1, client_token(&p, &h, "", 2));
        assert_ne!(t1, client_token(&Product::parse("dev").unwrap(), &h, "", 1));
        assert_eq!(t1.len(), 35);
        // Pinned: changing the derivation would orphan in-flight launches (a record
        // without a claim keeps the tokens it was launched with).
        assert_eq!(t1, "cz-56c947863d0b30b74811f20cd1e83e04");
        // Another claim of the same name starts over at generation 1 with other tokens.
        let c1 = client_token(&p, &h, "00000000000000aa", 1);
        assert_ne!(c1, t1);
        assert_ne!(c1, client_token(&p, &h, "00000000000000ab", 1));
        assert_eq!(c1, "cz-00fa191f2e9310d345f53264e6275392");
        let v = volume_token(&p, &h, "/dev/sdf", 1);
        assert_eq!(v, volume_token(&p, &h, "/dev/sdf", 1));
        assert_ne!(v, volume_token(&p, &h, "/dev/sdg", 1));
        assert_ne!(v, volume_token(&p, &h, "/dev/sdf", 2));
        assert_ne!(v, t1);
        let claim = "0123456789abcdef";
        assert_eq!(
            generation_of(&p, &h, claim, &client_token(&p, &h, claim, 37), 1000),
            Some(37)
        );
        assert_eq!(generation_of(&p, &h, "", &t1, 1000), Some(1));
        assert_eq!(generation_of(&p, &h, claim, &t1, 1000), None);
        assert_eq!(generation_of(&p, &h, "", "cz-someone-else", 1000), None);
        let (a, b) = (new_claim(), new_claim());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
