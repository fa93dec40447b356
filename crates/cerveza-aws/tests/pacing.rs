//! EC2's buckets are never overrun: for each action the provider sends, a burst of
//! calls larger than EC2's bucket for it goes through the provider at once, against the
//! lab cloud (which throttles with EC2's published sizes and refills), and the lab must
//! have throttled none of them. The SDK retries a throttled call silently, so only the
//! lab's own count shows a missing pacer; removing the pacing of any one action below
//! makes this test fail.
//!
//! Runs under `scripts/lab` (its `env` file sourced): the lab's endpoint is
//! `AWS_ENDPOINT_URL`. Every call names something that does not exist: EC2 spends a
//! token on a call it then refuses, and nothing is left behind.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cerveza_aws::{sdk_config, AwsOptions, Ec2};
use cerveza_core::model::{AllocationId, InstanceId, VolumeId};
use cerveza_core::names::Region;
use cerveza_core::ports::{Compute, ComputeRead};
use futures::future::join_all;

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("run under the lab: source the env file scripts/lab writes")
}

/// The lab's counts for `account`: "service:action" -> (requests, throttled answers).
fn lab_counts(account: &str) -> BTreeMap<String, (u64, u64)> {
    use std::io::{Read as _, Write as _};
    let addr = endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /lab-api/stats HTTP/1.0\r\nHost: lab\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, mut rest) = text.split_once("\r\n\r\n").unwrap();
    // The lab's server answers in chunks.
    let mut body = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
    } else {
        body.push_str(rest);
    }
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::<String, (u64, u64)>::new();
    for (field, throttled) in [
        ("requests-by-account", false),
        ("throttled-by-account", true),
    ] {
        for (key, n) in stats[field].as_object().unwrap() {
            let Some(action) = key.strip_prefix(&format!("{account} ")) else {
                continue;
            };
            let e = out.entry(action.to_owned()).or_default();
            *(if throttled { &mut e.1 } else { &mut e.0 }) = n.as_u64().unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_larger_than_ec2_s_buckets_are_paced_not_throttled() {
    use aws_credential_types::{provider::SharedCredentialsProvider, Credentials};
    let account = format!("AKIDPACING{}", std::process::id());
    let opts = AwsOptions {
        endpoint_url: Some(endpoint()),
        ..AwsOptions::default()
    };
    let base = sdk_config(&opts)
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            &account,
            "testing",
            None,
            None,
            "pacing test",
        )))
        .build();
    let ec2 = Ec2::new(base);
    let region = Region::parse("us-east-1").unwrap();
    let (vol, inst) = (
        VolumeId::new("vol-0000000000000dead"),
        InstanceId::new("i-0000000000000dead"),
    );
    let alloc = AllocationId::new("eipalloc-0000000000000dead");
    // EC2's bucket of each action (size, refill a second), and more calls than it holds
    // and refills while the lab answers them, all at once. One action at a time: the lab
    // answers one request at a time, and hundreds queued at once would delay some calls
    // by seconds and then let them arrive together, as no EC2 endpoint does.
    let (ec2, region) = (&ec2, &region);
    let (vol, inst, alloc) = (&vol, &inst, &alloc);
    let bursts = [
        ("ec2:AttachVolume", 50, 5),
        ("ec2:DeleteVolume", 100, 5),
        ("ec2:GetConsoleOutput", 100, 20),
        ("ec2:DescribeInstances", 50, 10),
        ("ec2:RebootInstances", 50, 5),
        ("ec2:AssociateAddress", 50, 5),
    ];
    let calls = |size: u64, refill: u64| size + 2 * refill + 10;
    for (action, size, refill) in bursts {
        join_all((0..calls(size, refill)).map(|_| async move {
            // Every answer is an error (nothing of these exists); only throttling counts.
            let _ = match action {
                "ec2:AttachVolume" => ec2.attach_volume(region, vol, inst, "/dev/sdf").await,
                "ec2:DeleteVolume" => ec2.delete_volume(region, vol).await,
                "ec2:GetConsoleOutput" => ec2.console_output(region, inst).await.map(drop),
                "ec2:DescribeInstances" => ec2.instance(region, inst).await.map(drop),
                "ec2:RebootInstances" => ec2.reboot(region, inst).await,
                "ec2:AssociateAddress" => ec2.associate_address(region, alloc, inst).await,
                other => unreachable!("{other}"),
            };
        }))
        .await;
    }
    let counts = lab_counts(&account);
    for (action, size, refill) in bursts {
        let (requests, throttled) = counts.get(action).copied().unwrap_or_default();
        assert_eq!(
            (requests, throttled),
            (calls(size, refill), 0),
            "{action}: {} calls at once (its bucket holds {size}) must all reach the lab, \
             paced, none throttled (the SDK retries a throttled one silently); every \
             count: {counts:?}",
            calls(size, refill)
        );
    }
}
