//! The AWS SDK configuration the host shares: credentials and region from the
//! usual chain (environment, profile, the Lambda role), HTTPS through rustls
//! with ring. An endpoint override (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`)
//! is honoured, which is how the tests reach a local S3.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Whether this process was started by AWS Lambda (its Runtime API is
/// named in `AWS_LAMBDA_RUNTIME_API`): several defaults differ there.
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Loads the SDK configuration. Calls fail over quickly: a plugin store that
/// cannot be reached falls back to what is cached rather than hold a stream.
pub async fn load() -> SdkConfig {
    let http_client =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .load()
        .await
}

/// An S3 client; `path_style` addresses buckets as `host/bucket` (needed by
/// local S3 servers) rather than `bucket.host`.
pub fn s3_client(config: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Signs HTTP requests with SigV4 for one AWS service, with the host's own
/// credentials (the Lambda role, the environment, a profile): an upstream
/// agent runtime (`bedrock-agentcore`), an AppSync API (`appsync`).
#[derive(Clone)]
pub struct Signer {
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    region: String,
    service: String,
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The credentials chain gave no credentials (none configured, or the
    /// provider failed); holds its error.
    #[error("the host has no AWS credentials to sign with: {0}")]
    NoCredentials(String),
    /// SigV4 could not sign the request as given (a URL or header it cannot
    /// read); holds the signer's error.
    #[error("the request cannot be signed: {0}")]
    Invalid(String),
}

impl Signer {
    /// A signer for `service` in `region` (default: the configuration's);
    /// `what` names the setting that asked for it, for the error.
    pub fn new(config: &SdkConfig, service: &str, region: Option<&str>, what: &str) -> anyhow::Result<Self> {
        let credentials =
            config.credentials_provider().ok_or_else(|| anyhow::anyhow!("{what} needs AWS credentials"))?;
        let region = match region {
            Some(region) => region.to_string(),
            None => {
                config.region().ok_or_else(|| anyhow::anyhow!("{what} needs an AWS region (AWS_REGION)"))?.to_string()
            }
        };
        Ok(Self { credentials, region, service: service.to_string() })
    }

    /// The headers (`authorization`, `x-amz-date`, `x-amz-security-token`)
    /// that sign a `method` request to `url` with `headers` and `body`.
    pub async fn headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SignError> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|error| SignError::NoCredentials(error.to_string()))?;
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("every parameter is set")
            .into();
        let invalid = |error: &dyn std::fmt::Display| SignError::Invalid(error.to_string());
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(name, value)| (*name, value.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|error| invalid(&error))?;
        let (instructions, _signature) = sign(signable, &params).map_err(|error| invalid(&error))?.into_parts();
        Ok(instructions.headers().map(|(name, value)| (name.to_string(), value.to_string())).collect())
    }
}
