//! A moto server for the whole test binary, and one moto account per test.
//!
//! The server starts on first use on a free loopback port. It runs under a shell that kills it
//! when its stdin closes, which the OS does when the test binary exits however it exits, so no
//! server outlives its tests. Every test gets its own account id through the
//! `x-moto-account-id` header, so tests run in parallel on one server without seeing each other.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use functions::aws::Sdk;

/// The home region of every test.
pub const REGION: &str = "us-east-1";

struct Server {
    endpoint: String,
    // Held until the process exits: closing it is what stops the server.
    _child: Mutex<(Child, Option<ChildStdin>)>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT_ACCOUNT: AtomicU64 = AtomicU64::new(0);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let python = workspace().join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/setup-local-aws.sh", python.display());
        // moto's server with CloudFormation's function tags, which aliasflow's ownership checks
        // read (see the script).
        let launcher = workspace().join("scripts/moto-server.py");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut child = Command::new("sh")
            .args([
                "-c",
                "\"$0\" \"$1\" -H 127.0.0.1 -p \"$2\" >/dev/null 2>&1 & pid=$!; read -r _; kill $pid; wait $pid",
            ])
            .arg(&python)
            .arg(&launcher)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .expect("moto_server starts");
        let stdin = child.stdin.take();
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {endpoint} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Server { endpoint, _child: Mutex::new((child, stdin)) }
    })
}

/// Adds `x-moto-account-id` to every request, across services.
#[derive(Debug)]
struct MotoAccount(String);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "MotoAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// One test's own AWS account on the shared moto server.
#[derive(Debug, Clone)]
pub struct Account {
    /// The 12-digit account id.
    pub id: String,
    /// SDK settings that reach moto as this account.
    pub sdk: Sdk,
}

/// A fresh account on the shared moto server.
pub async fn account() -> Account {
    account_through(None).await
}

/// A fresh account behind the fault injector (`support::throttle`): one request in `every`
/// throttled at random (`0`: none), and whatever the test breaks later answered with a 500.
pub async fn throttled_account(every: u64) -> (Account, super::throttle::Throttling) {
    // Plain HTTP: moto listens on loopback without TLS.
    let inner = aws_smithy_http_client::Builder::new().build_http();
    let faults = super::throttle::Throttling::new(inner, every);
    (account_through(Some(SharedHttpClient::new(faults.clone()))).await, faults)
}

async fn account_through(http_client: Option<SharedHttpClient>) -> Account {
    let server = server();
    let n = NEXT_ACCOUNT.fetch_add(1, Ordering::SeqCst);
    let id = format!("{:012}", 100_000_000_000 + u64::from(std::process::id()) * 1000 + n);
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(http_client) = http_client {
        loader = loader.http_client(http_client);
    }
    let config = loader
        .endpoint_url(&server.endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        // aliasflow's own retry policy, as the CLI and the step handlers load it.
        .retry_config(functions::aws::retry_config())
        .load()
        .await;
    let sdk = Sdk::new(config)
        .with_interceptor(SharedInterceptor::new(MotoAccount(id.clone())))
        .with_interceptor(SharedInterceptor::new(super::strict::AwsLimits));
    Account { id, sdk }
}
