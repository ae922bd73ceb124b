//! The AWS SDK configuration the host shares: credentials and region from the
//! usual chain (environment, profile, the Lambda role), HTTPS through rustls
//! with ring. An endpoint override (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`)
//! is honoured, which is how the tests reach a local S3.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Loads the SDK configuration. Calls fail over quickly: a plugin store that
/// cannot be reached falls back to what is cached rather than hold a stream.
pub async fn load() -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(2)).operation_timeout(Duration::from_secs(30)).build())
        .load()
        .await
}

/// An S3 client; `path_style` addresses buckets as `host/bucket` (needed by
/// local S3 servers) rather than `bucket.host`.
pub fn s3_client(config: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
