//! What an `UnauthorizedOperation` says once decoded: EC2 hides why it refused in an
//! "encoded authorization failure message" that `sts:DecodeAuthorizationMessage` turns
//! into the action, the resource, whether a policy denied it outright and the
//! condition values it was judged on (the policy's `ec2:MetadataHttpTokens`, say).

use aws_config::SdkConfig;
use cerveza_core::ports::ProviderError;

use crate::errors::provider_error;

const MARKER: &str = "Encoded authorization failure message: ";

/// `e` with its encoded message decoded and summed up after it, when it has one and
/// the credentials may decode it; otherwise with how to decode it by hand.
pub(crate) async fn explained(base: &SdkConfig, mut e: ProviderError) -> ProviderError {
    let Some(at) = e.message.find(MARKER) else {
        return e;
    };
    let encoded = e.message[at + MARKER.len()..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    if encoded.is_empty() {
        return e;
    }
    let sts = aws_sdk_sts::Client::new(base);
    let decoded = sts
        .decode_authorization_message()
        .encoded_message(&encoded)
        .send()
        .await;
    // The encoded message is long and says nothing to a reader: the summary replaces it.
    e.message.truncate(at);
    let summary = match decoded {
        Ok(out) => summarize(out.decoded_message().unwrap_or("")),
        Err(err) => format!(
            "(it could not be decoded here: {}; `aws sts decode-authorization-message --encoded-message …` with the message from -vv shows why, given sts:DecodeAuthorizationMessage)",
            provider_error(err)
        ),
    };
    e.message = format!("{}Decoded: {summary}", e.message);
    e
}

/// One line from the decoded JSON: the action and resource, how it was refused, and the
/// condition values.
fn summarize(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_owned();
    };
    let ctx = &v["context"];
    let how = if v["explicitDeny"].as_bool() == Some(true) {
        "an explicit Deny refuses it"
    } else {
        "no policy allows it"
    };
    let conditions: Vec<String> = ctx["conditions"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let values: Vec<&str> = c["values"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["value"].as_str())
                .collect();
            format!("{}={}", c["key"].as_str().unwrap_or("?"), values.join("|"))
        })
        .collect();
    format!(
        "{} on {}: {how}{}",
        ctx["action"].as_str().unwrap_or("?"),
        ctx["resource"].as_str().unwrap_or("?"),
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" (judged on {})", conditions.join(", "))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoded_message_is_summed_up_in_one_line() {
        let json = r#"{"allowed":false,"explicitDeny":true,"context":{"action":"ec2:RunInstances","resource":"arn:aws:ec2:us-east-1:123456789012:instance/*","conditions":{"items":[{"key":"ec2:MetadataHttpTokens","values":{"items":[{"value":"optional"}]}}]}}}"#;
        assert_eq!(
            summarize(json),
            "ec2:RunInstances on arn:aws:ec2:us-east-1:123456789012:instance/*: an explicit Deny refuses it (judged on ec2:MetadataHttpTokens=optional)"
        );
        assert_eq!(summarize("not json"), "not json");
    }
}
