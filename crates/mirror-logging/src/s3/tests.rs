//! Tests of the S3 sink's configuration, object keys, URLs and SigV4 signing (no server).

use super::*;
use crate::test_support::record;

fn config(extra: serde_json::Value) -> S3Config {
    let mut params = serde_json::json!({
        "s3_bucket_name": "logs",
        "s3_region_name": "eu-west-1",
        "s3_aws_access_key_id": "AKIDEXAMPLE",
        "s3_aws_secret_access_key": "wJalrXUtnFEMI-very-secret",
    });
    if let (Some(params), Some(extra)) = (params.as_object_mut(), extra.as_object()) {
        params.extend(extra.clone());
    }
    serde_json::from_value(params).unwrap()
}

#[test]
fn object_keys_follow_litellm() {
    let sink = S3Sink::new(config(serde_json::json!({"s3_path": "litellm-logs/"}))).unwrap();
    let mut call = CallRecord::clone(&record());
    call.id = "chatcmpl-521e530f".into();
    assert_eq!(
        sink.object_key(&call),
        "litellm-logs/2025-01-16/time-11-28-54-796360_chatcmpl-521e530f.json"
    );
    call.id = "resp:a/b c".into();
    assert_eq!(
        sink.object_key(&call),
        "litellm-logs/2025-01-16/time-11-28-54-796360_resp_a_b c.json"
    );

    let hourly = S3Sink::new(config(
        serde_json::json!({"s3_partition_granularity": "hour"}),
    ))
    .unwrap();
    assert_eq!(
        hourly.object_key(&call),
        "2025-01-16/11/time-11-28-54-796360_resp_a_b c.json"
    );
}

#[test]
fn urls_are_path_style_by_default_and_encoded_once() {
    let sink = S3Sink::new(config(
        serde_json::json!({"s3_endpoint_url": "http://127.0.0.1:9000/"}),
    ))
    .unwrap();
    let url = sink.object_url("p/2025-01-16/time-1_a b+c%.json").unwrap();
    assert_eq!(
        url.as_str(),
        "http://127.0.0.1:9000/logs/p/2025-01-16/time-1_a%20b%2Bc%25.json"
    );

    let aws = S3Sink::new(config(serde_json::json!({}))).unwrap();
    assert_eq!(
        aws.object_url("k.json").unwrap().as_str(),
        "https://s3.eu-west-1.amazonaws.com/logs/k.json"
    );
    let virtual_hosted = S3Sink::new(config(
        serde_json::json!({"s3_use_virtual_hosted_style": true}),
    ))
    .unwrap();
    assert_eq!(
        virtual_hosted.object_url("k.json").unwrap().as_str(),
        "https://logs.s3.eu-west-1.amazonaws.com/k.json"
    );
}

#[test]
fn signing_adds_sigv4_headers() {
    let sink = S3Sink::new(config(
        serde_json::json!({"s3_aws_session_token": "token-123"}),
    ))
    .unwrap();
    let url = sink.object_url("a/b.json").unwrap();
    let headers = sink.sign_put(&url, b"{}", "application/json").unwrap();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let authorization = get("authorization").unwrap();
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    assert!(authorization.contains("/eu-west-1/s3/aws4_request"));
    assert!(
        authorization.contains(
            "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
        ),
        "{authorization}"
    );
    assert_eq!(
        get("x-amz-content-sha256").unwrap(),
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(get("x-amz-security-token").unwrap(), "token-123");
    assert!(!format!("{sink:?}").contains("very-secret"));
}

#[test]
fn config_accepts_litellm_keys_env_references_and_rejects_typos() {
    std::env::set_var("MIRROR_S3_TEST_BUCKET", "from-env");
    let parsed: S3Config = serde_json::from_value(serde_json::json!({
        "s3_bucket_name": "os.environ/MIRROR_S3_TEST_BUCKET",
        "s3_use_ssl": true,
        "s3_strip_base64_files": false,
        "s3_flush_interval": 5,
        "s3_batch_size": 100,
    }))
    .unwrap();
    assert_eq!(parsed.s3_bucket_name.as_deref(), Some("from-env"));
    assert_eq!(
        parsed.ignored_keys(),
        ["s3_use_ssl", "s3_strip_base64_files"]
    );

    let err =
        serde_json::from_value::<S3Config>(serde_json::json!({"s3_bucket_nme": "x"})).unwrap_err();
    assert!(err.to_string().contains("s3_bucket_nme"), "{err}");

    let sink = S3Sink::new(config(
        serde_json::json!({"s3_flush_interval": 5, "s3_batch_size": 100}),
    ))
    .unwrap();
    let options = sink.default_options();
    assert_eq!(options.batch_size, 100);
    assert_eq!(options.flush_interval, Duration::from_secs(5));
    assert_eq!(options.retry.max_age, Duration::from_secs(3600));

    let err = S3Sink::new(S3Config::new("b")).unwrap_err();
    assert!(err.to_string().contains("s3_aws_access_key_id"), "{err}");
    let err = S3Sink::new(config(
        serde_json::json!({"s3_endpoint_url": "http://user:pw@minio:9000"}),
    ))
    .unwrap_err();
    assert!(!err.to_string().contains("pw"), "{err}");
}
