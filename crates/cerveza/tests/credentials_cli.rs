//! Credentials as people have them (a `credential_process`, IAM Identity Center) and
//! credential failures: their own exit code (7) and hint, never taken for an outage.
//! The real binary against the lab cloud.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::{cmd, live, product, Run};

/// cerveza with credentials from `profile` of the AWS config file `config` only.
fn with_profile(p: &str, config: &Path, profile: &str, args: &[&str]) -> Run {
    cmd(p)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", config.with_extension("none"))
        .env("AWS_PROFILE", profile)
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn first_start(host: &str) -> [&str; 6] {
    [
        "start",
        host,
        "--zone",
        "us-east-1a",
        "--profile",
        "UbuntuGeneric32Bit",
    ]
}

/// The run failed on credentials: exit 7, the hint, and no outage handling.
#[track_caller]
fn refused_for_credentials(r: &Run, says: &str) {
    assert_eq!(r.code, 7, "{r:#?}");
    assert!(r.stderr.contains(says), "{r:#?}");
    assert!(r.stderr.contains("Hint: "), "{r:#?}");
    assert!(
        !r.stderr.contains("did not answer") && !r.stderr.contains("cannot reach"),
        "taken for an outage: {r:#?}"
    );
}

#[test]
fn credentials_from_a_process_or_sso_work_and_their_failures_are_not_outages() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile proc]\n\
             credential_process = echo '{{\"Version\": 1, \"AccessKeyId\": \"AKID-{p}\", \"SecretAccessKey\": \"testing\"}}'\n\
             [profile broken]\n\
             credential_process = sh -c 'echo the vault is sealed >&2; exit 3'\n\
             [profile sso]\n\
             sso_start_url = https://example.awsapps.com/start\n\
             sso_region = us-east-1\n\
             sso_account_id = 123456789012\n\
             sso_role_name = Ops\n"
        ),
    )
    .unwrap();

    // credential_process is built in: the start works with its credentials.
    let r = with_profile(&p, &config, "proc", &first_start("cred01"));
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(live(&p).len(), 1);

    // A process that fails: exit 7, its words, what to do; nothing made, and the
    // registry is not taken for down (no "going on from tags").
    let r = with_profile(&p, &config, "broken", &first_start("cred02"));
    refused_for_credentials(&r, "no usable AWS credentials from profile \"broken\"");
    assert!(
        r.stderr.contains("the vault is sealed") || r.stderr.contains("exit"),
        "{r:#?}"
    );
    let r = with_profile(&p, &config, "broken", &["stop", "cred01"]);
    refused_for_credentials(&r, "no usable AWS credentials");

    // IAM Identity Center without a login: the SSO provider is built in and says so.
    let r = with_profile(&p, &config, "sso", &first_start("cred03"));
    refused_for_credentials(&r, "no usable AWS credentials from profile \"sso\"");
    assert!(r.stderr.to_lowercase().contains("sso"), "{r:#?}");
    assert_eq!(live(&p).len(), 1, "nothing made");
}

#[test]
fn credentials_aws_does_not_know_exit_7_everywhere() {
    let p = product();
    support::start_new(&p, "key01", "us-east-1a", "UbuntuGeneric32Bit");
    support::limits(&p, "us-east-1", r#"{"credentials": "invalid"}"#);
    let r: Run = cmd(&p).args(["stop", "key01"]).output().unwrap().into();
    refused_for_credentials(&r, "UnrecognizedClientException");
    assert!(r.stderr.contains("aws sts get-caller-identity"), "{r:#?}");
    let r: Run = cmd(&p).args(first_start("key02")).output().unwrap().into();
    refused_for_credentials(&r, "UnrecognizedClientException");
    // Every region refuses: `list` says so instead of "partial".
    let r: Run = cmd(&p).args(["list"]).output().unwrap().into();
    assert_eq!(r.code, 7, "{r:#?}");
    assert!(r.stderr.contains("AuthFailure"), "{r:#?}");
    support::limits(&p, "us-east-1", r#"{"credentials": null}"#);
}

#[test]
fn an_opt_in_region_the_account_has_not_enabled_is_named() {
    // AWS answers in such a region as if the key were unknown (AuthFailure); the other
    // regions take the same key, so cerveza names the region instead of blaming it.
    let p = product();
    support::start_new(&p, "opt01", "us-east-1a", "UbuntuGeneric32Bit");
    support::limits(&p, "eu-west-1", r#"{"region-disabled": true}"#);
    let r: Run = cmd(&p).args(["list"]).output().unwrap().into();
    assert_eq!(r.code, 5, "the other regions were listed: {r:#?}");
    assert!(r.stdout.contains("opt01"), "{r:#?}");
    assert!(
        r.stderr.contains("region eu-west-1 left out: AuthFailure: AWS was not able to validate the provided access credentials; the same credentials work in other regions, so eu-west-1 is most likely an opt-in region this account has not enabled"),
        "{r:#?}"
    );
    // Only that region refusing would be the credentials, not the region.
    let r: Run = cmd(&p)
        .args(["--regions", "eu-west-1", "list"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 7, "{r:#?}");
    assert!(!r.stderr.contains("opt-in"), "{r:#?}");
}

#[test]
fn hosts_launch_with_imdsv2_which_an_account_policy_may_require() {
    let p = product();
    support::limits(&p, "us-east-1", r#"{"require-imdsv2": true}"#);
    // The profiles say nothing: IMDSv2 only, two hops, and the policy lets it launch.
    support::start_new(&p, "imds01", "us-east-1a", "UbuntuGeneric32Bit");
    let hosts = live(&p);
    assert_eq!(hosts[0]["metadata"]["tokens"], "required", "{hosts:#?}");
    assert_eq!(hosts[0]["metadata"]["hops"], 2, "{hosts:#?}");
    // A profile that allows IMDSv1 is refused by the policy, as a permission.
    let r = support::start_allowing_imdsv1(&p, "imds02");
    refused_for_credentials(&r, "UnauthorizedOperation");
    assert!(r.stderr.contains("lack a permission"), "{r:#?}");
    // EC2's encoded reason, decoded through sts:DecodeAuthorizationMessage.
    assert!(
        r.stderr
            .contains("Decoded: ec2:RunInstances on arn:aws:ec2:us-east-1:")
            && r.stderr
                .contains(": no policy allows it (judged on ec2:metadatahttptokens=optional)"),
        "{r:#?}"
    );
    assert!(
        !r.stderr.contains("Encoded authorization failure message"),
        "{r:#?}"
    );
    assert_eq!(live(&p).len(), 1, "nothing more launched");
}
