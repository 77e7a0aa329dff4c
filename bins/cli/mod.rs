//! What the binaries share: common flags, logging, signals, exit codes.
//! CLI-only crates (clap, tracing-subscriber) live here, not in the library.
//! Each binary uses part of it.
#![allow(dead_code)]

use std::future::Future;
use std::process::ExitCode;

use clap::{Args, Parser};
use snapjob::{Error, Inputs, Shutdown, StopReason};

mod logging;
use logging::{clear_bar, init_logging};

/// Location and behaviour flags shared by store, delete and restore. Each flag
/// overrides the environment variable named in its help.
#[derive(Debug, Args)]
pub struct Common {
    /// Storage URL instead of a bucket: s3://bucket[/prefix], az://container[/prefix] or file:///dir [env: STORAGE_URL]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Bucket name [env: BUCKET_NAME]
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,
    /// S3 endpoint: host, host:port or URL; unset means AWS [env: ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL]
    #[arg(long, value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    /// The endpoint speaks plain HTTP (it does not disable TLS checks) [env: INSECURE=true]
    #[arg(long)]
    pub insecure: bool,
    /// Region; default: the bucket's own on AWS, else us-east-1 [env: REGION, AWS_REGION, AWS_DEFAULT_REGION]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Extra trusted CA certificates (PEM) [env: CA_BUNDLE] [default: /etc/ca-bundle/ca-bundle.pem, if present]
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<String>,
    /// Sign request bodies' SHA-256 as well as the headers; the server then checks every byte [env: SIGNED_PAYLOAD=true]
    #[arg(long)]
    pub signed_payload: bool,
    /// Cluster name, the first half of the object key [env: CLUSTER]
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Whole object key, instead of $CLUSTER-$BACKUP_TO_* [env: OBJECT_KEY]
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Internal time budget, e.g. 110s or 2m [env: DEADLINE]
    #[arg(long, value_name = "DURATION")]
    pub deadline: Option<String>,
}

impl Common {
    /// The flags as settings (credentials have no flags: env only).
    pub fn inputs(&self) -> Inputs {
        let mut i = Inputs::default();
        i.storage_url = self.url.clone();
        i.bucket_name = self.bucket.clone();
        i.endpoint = self.endpoint.clone();
        i.insecure = self.insecure.then(|| "true".to_string());
        i.region = self.region.clone();
        i.ca_bundle = self.ca_bundle.clone();
        i.signed_payload = self.signed_payload.then(|| "true".to_string());
        i.cluster = self.cluster.clone();
        i.object_key = self.key.clone();
        i.deadline = self.deadline.clone();
        i
    }
}

/// Parses flags; bad flags exit 64 (sysexits EX_USAGE), --help/--version exit 0.
pub fn parse<A: Parser>() -> A {
    match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    }
}

/// The process environment as settings; variables that are not UTF-8 are skipped.
pub fn env_inputs() -> Inputs {
    Inputs::from_env_vars(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

/// Turns SIGTERM and SIGINT into a [`Shutdown`] request. The handlers are
/// installed before this returns, so before the operation's first request: a
/// signal a moment after start is a clean stop (143/130), not the default action
/// that kills the process with nothing reported.
fn watch_signals() -> Shutdown {
    use tokio::signal::unix::{SignalKind, signal};
    let (trigger, shutdown) = Shutdown::new();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return shutdown;
    };
    tokio::spawn(async move {
        let reason = tokio::select! {
            _ = term.recv() => StopReason::Terminate,
            _ = int.recv() => StopReason::Interrupt,
        };
        tracing::warn!(signal = %reason, "stop requested; cleaning up");
        trigger.stop(reason);
        // A second signal means "now": leave without cleaning up.
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        std::process::exit(i32::from(
            snapjob::ErrorClass::Cancelled(reason).exit_code(),
        ));
    });
    shutdown
}

/// Runs one operation on a fresh runtime and maps its outcome to the exit code.
/// Errors are logged as one line with the whole chain; the outcome is written as
/// the termination message and pushed to a Pushgateway when one is configured.
// The closure under catch_unwind returns the operation's own Result.
#[allow(clippy::result_large_err)]
pub fn run<T, F, Fut>(operation: &str, inputs: &Inputs, op: F) -> ExitCode
where
    T: snapjob::report::Outcome,
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let bad_log_level = init_logging();
    install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let started = std::time::Instant::now();
    let result = match bad_log_level {
        Err(e) => Err(Error::Config(e)),
        Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async move {
                let shutdown = watch_signals();
                op(shutdown).await
            })
        }))
        .unwrap_or_else(|_| Err(Error::Internal(last_panic()))),
    };
    // A panic on another thread (a task, a worker) surfaces as some other
    // error; the defect is what the run must report.
    let result = match result {
        Err(e)
            if !matches!(e, Error::Internal(_)) && PANICKED.lock().is_ok_and(|p| p.is_some()) =>
        {
            Err(Error::Internal(format!(
                "{} (the run then failed: {})",
                last_panic(),
                e.chain()
            )))
        }
        other => other,
    };
    clear_bar();
    if let Err(e) = &result {
        if tracing::enabled!(tracing::Level::ERROR) {
            tracing::error!(exit_code = e.exit_code(), "{}", e.chain());
        } else {
            // The filter silences errors (LOG_LEVEL=off): the one error line is
            // still owed.
            eprintln!("error: {} (exit {})", e.chain(), e.exit_code());
        }
    }
    let summary = snapjob::report::Summary::of(operation, &result, started.elapsed().as_secs_f64());
    if summary.exit_code == 0 {
        // Every successful run ends with one line saying so, whatever it did.
        tracing::info!(
            operation,
            key = summary.key.as_deref().unwrap_or(""),
            bytes = summary.bytes.unwrap_or(0),
            seconds = summary.seconds,
            "finished"
        );
    }
    let (path, explicit) = match &inputs.termination_log {
        Some(p) => (p.as_str(), true),
        None => ("/dev/termination-log", false),
    };
    snapjob::report::write_termination_log(path, explicit, &summary);
    if let Some(url) = &inputs.pushgateway_url {
        let cluster = inputs.cluster.as_deref().unwrap_or("");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let pushed = runtime.block_on(snapjob::report::push_metrics(url, cluster, &summary, now));
        if let Err(e) = pushed {
            tracing::warn!(error = %e, "pushing metrics failed; the run's result stands");
        }
    }
    ExitCode::from(summary.exit_code)
}

/// The first panic of this process: message and location, one line.
static PANICKED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Panics print nothing themselves (the default hook writes several lines, and a
/// backtrace): the first is kept, and the run reports it as its one error line,
/// exit 70, termination message included.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("panicked{at}: {payload}").replace(['\n', '\r'], " ");
        if let Ok(mut first) = PANICKED.lock() {
            first.get_or_insert(line);
        }
    }));
}

fn last_panic() -> String {
    PANICKED
        .lock()
        .ok()
        .and_then(|p| p.clone())
        .unwrap_or_else(|| "panicked".into())
}

/// How to reach etcd and compress its snapshot (store --from-etcd, snapshot).
#[derive(Debug, Args)]
pub struct Etcd {
    /// etcd client URLs, comma-separated, tried in order [env: ETCD_ENDPOINTS]
    #[arg(long, value_name = "URLS")]
    pub etcd_endpoints: Option<String>,
    /// CA of etcd's server certificate (PEM) [env: ETCD_CA_FILE]
    #[arg(long, value_name = "FILE")]
    pub etcd_ca_file: Option<String>,
    /// Client certificate for etcd (PEM) [env: ETCD_CLIENT_CERT_FILE]
    #[arg(long, value_name = "FILE")]
    pub etcd_client_cert_file: Option<String>,
    /// Client key for etcd (PEM) [env: ETCD_CLIENT_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    pub etcd_client_key_file: Option<String>,
    /// Per endpoint, until the first snapshot bytes [env: ETCD_DIAL_TIMEOUT] [default: 5s]
    #[arg(long, value_name = "DURATION")]
    pub etcd_dial_timeout: Option<String>,
    /// Longest silence in the middle of the stream [env: ETCD_STREAM_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub etcd_stream_timeout: Option<String>,
    /// gzip or none [env: COMPRESS] [default: gzip]
    #[arg(long, value_name = "KIND")]
    pub compress: Option<String>,
    /// gzip level 1-9 [env: COMPRESS_LEVEL] [default: 3]
    #[arg(long, value_name = "N")]
    pub compress_level: Option<String>,
    /// Threads compressing gzip members [env: COMPRESS_THREADS] [default: the CPUs the cgroup allows]
    #[arg(long, value_name = "N")]
    pub compress_threads: Option<String>,
}

impl Etcd {
    /// Adds these flags to `i`.
    pub fn apply(self, i: &mut Inputs) {
        i.etcd_endpoints = self.etcd_endpoints;
        i.etcd_ca_file = self.etcd_ca_file;
        i.etcd_client_cert_file = self.etcd_client_cert_file;
        i.etcd_client_key_file = self.etcd_client_key_file;
        i.etcd_dial_timeout = self.etcd_dial_timeout;
        i.etcd_stream_timeout = self.etcd_stream_timeout;
        i.compress = self.compress;
        i.compress_level = self.compress_level;
        i.compress_threads = self.compress_threads;
    }
}

/// Whom to encrypt a snapshot to (store, snapshot): age X25519 recipients,
/// public keys only.
#[derive(Debug, Args)]
pub struct Encrypt {
    /// Encrypt to this age recipient (age1..., public key); repeatable [env: ENCRYPT_RECIPIENTS, comma-separated]
    #[arg(long = "recipient", value_name = "AGE1...")]
    pub recipients: Vec<String>,
    /// Encrypt to the recipients in this file, one per line, # comments [env: ENCRYPT_RECIPIENTS_FILE]
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<String>,
}

impl Encrypt {
    /// Adds these flags to `i`.
    pub fn apply(self, i: &mut Inputs) {
        i.encrypt_recipients = (!self.recipients.is_empty()).then(|| self.recipients.join(","));
        i.encrypt_recipients_file = self.recipients_file;
    }
}
