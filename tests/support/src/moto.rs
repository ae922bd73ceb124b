//! A real S3 API server on loopback: moto, started and stopped by the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tempfile::TempDir;

pub const BUCKET: &str = "streamhost-plugins";

pub struct Moto {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and creates [`BUCKET`].
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()))
            .spawn()
            .expect("python3 runs");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start (pip install 'moto[server]'): {}", moto.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        moto.client().create_bucket().bucket(BUCKET).send().await.unwrap();
        moto
    }

    /// A client of this server, as the tests' own tool.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A DynamoDB client of this server.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Creates a runs table as `template.yaml` declares it: partition key
    /// `run` (string), sort key `seq` (number), on-demand.
    pub async fn create_runs_table(&self, name: &str) {
        self.create_table(name, "run", "seq").await;
    }

    /// Creates an on-demand table keyed by `partition` (a string) and
    /// `sort` (a number), as the host's tables are.
    pub async fn create_table(&self, name: &str, partition: &str, sort: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().unwrap()
        };
        let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
        self.dynamodb()
            .create_table()
            .table_name(name)
            .attribute_definitions(attribute(partition, ScalarAttributeType::S))
            .attribute_definitions(attribute(sort, ScalarAttributeType::N))
            .key_schema(key(partition, KeyType::Hash))
            .key_schema(key(sort, KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.client().put_object().bucket(BUCKET).key(key).body(body.into()).send().await.unwrap();
    }

    /// The server's request log: one line per request, with its status.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The environment that points streamhost at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = super::loopback_aws_env();
        env.extend([("AWS_ENDPOINT_URL", self.endpoint.clone()), ("STREAMHOST_S3_PATH_STYLE", "true".into())]);
        env
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
