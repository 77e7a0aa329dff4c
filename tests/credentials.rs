//! The S3 credential chain end to end, with no static keys in the Job: a
//! profile of a shared credentials file, EKS Pod Identity / container
//! credentials and IMDSv2 from a small endpoint of our own on 127.0.0.1 that
//! checks the token it is given; their refusals and broken settings as exit
//! codes; a temporary credential that expires in the middle of an upload; and
//! no secret or token in any output, at trace level.
//!
//! s3s-fs checks signatures against its one key pair and ignores session tokens,
//! so the endpoints hand out that pair with a session token of their own, and the
//! proof of which credentials signed a request is its `x-amz-security-token`.

mod common;

use std::time::{Duration, Instant};

use common::creds::{CredentialEndpoint, IMDS_TOKEN, Issued, Kind};
use common::proxy::{Fault, Op, Proxy, Rule, header};
use common::*;

const POD_TOKEN: &str = "eks-pod-identity-token-do-not-print";

fn session(n: usize) -> String {
    format!("IQoJsession-gen{n}-do-not-print")
}

/// The server's key pair with session token `n`, valid for `valid_for`.
fn issue(valid_for: Duration) -> impl Fn(usize) -> Issued + Send + Sync + 'static {
    move |n| Issued {
        key_id: ACCESS_KEY.into(),
        secret: SECRET_KEY.into(),
        token: session(n),
        valid_for,
    }
}

/// The server's Job environment without static keys, storing `file` as `name`.
fn env_for(
    server: &S3Server,
    port: u16,
    file: &std::path::Path,
    name: &str,
) -> Vec<(String, String)> {
    with(
        &without(&server.job_env(), &["ACCESS_KEY_ID", "SECRET_ACCESS_KEY"]),
        &[
            ("ENDPOINT", &format!("127.0.0.1:{port}")),
            ("BACKUP_TO_CREATE", name),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("LOG_LEVEL", "trace"),
        ],
    )
}

fn assert_no_secret(r: &Run, secrets: &[&str]) {
    let all = r.all();
    for s in secrets {
        assert!(!all.contains(s), "{s} was printed:\n{all}");
    }
}

fn token_of(head: &str) -> Option<String> {
    header(head, "x-amz-security-token")
}

#[test]
fn container_credentials_with_a_token_file_sign_the_upload() {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![]);
    let endpoint = CredentialEndpoint::start(
        Kind::Container,
        POD_TOKEN,
        200,
        issue(Duration::from_secs(3600)),
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(dir.path(), "token", POD_TOKEN.as_bytes());
    let gz = gzip(&synthetic_snapshot(800, 3));
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &env_for(&server, proxy.port, &file, "pod.db.gz"),
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{}/v1/credentials", endpoint.url()),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
        ],
    );
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(r.all().contains("container credentials"), "{}", r.all());
    assert_no_secret(&r, &[POD_TOKEN, &session(1)]);
    let asked = endpoint.requests();
    assert!(!asked.is_empty());
    for head in &asked {
        assert!(head.starts_with("GET /v1/credentials "), "{head}");
        assert!(
            head.contains(&format!("\r\nauthorization: {POD_TOKEN}\r\n"))
                || head.contains(&format!("\r\nAuthorization: {POD_TOKEN}\r\n")),
            "{head}"
        );
    }
    for head in proxy.heads() {
        assert_eq!(
            token_of(&head).as_deref(),
            Some(session(1).as_str()),
            "{head}"
        );
    }
    let stored = std::fs::read(server.object_file(&format!("{CLUSTER}-pod.db.gz"))).unwrap();
    assert!(stored == gz);
}

#[test]
fn instance_metadata_v2_asks_a_token_then_the_role_credentials() {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![]);
    let imds = CredentialEndpoint::start(Kind::Imds, "", 200, issue(Duration::from_secs(3600)));
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(&synthetic_snapshot(800, 4));
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &env_for(&server, proxy.port, &file, "imds.db.gz"),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())],
    );
    let r = run("store", &env, &[]);
    r.assert_code(0);
    assert!(r.all().contains("instance metadata (IMDSv2"), "{}", r.all());
    assert_no_secret(&r, &[IMDS_TOKEN, &session(1)]);
    let asked = imds.requests();
    assert!(asked[0].starts_with("PUT /latest/api/token "), "{asked:?}");
    assert!(asked.len() >= 3, "{asked:?}");
    for head in &asked[1..] {
        assert!(
            head.starts_with("GET /latest/meta-data/iam/security-credentials/"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase().contains(&format!(
                "x-aws-ec2-metadata-token: {}",
                IMDS_TOKEN.to_ascii_lowercase()
            )),
            "{head}"
        );
    }
    assert_eq!(imds.fetches().len(), 1, "cached while valid");
    for head in proxy.heads() {
        assert_eq!(
            token_of(&head).as_deref(),
            Some(session(1).as_str()),
            "{head}"
        );
    }
    let stored = std::fs::read(server.object_file(&format!("{CLUSTER}-imds.db.gz"))).unwrap();
    assert!(stored == gz);
}

#[test]
fn a_profile_of_the_shared_files_gives_static_keys() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(&synthetic_snapshot(300, 5));
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let shared = write_file(
        dir.path(),
        "credentials",
        format!(
            "# the backup user\n[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n\n\
             [etcd-backup]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY} ; ours\n"
        )
        .as_bytes(),
    );
    let config = write_file(
        dir.path(),
        "config",
        b"[profile etcd-backup]\nregion = us-east-1\ns3 =\n  addressing_style = path\n\
          [profile sso]\nsso_session = corp\nsso_account_id = 1\n",
    );
    let base = with(
        &env_for(&server, server.port, &file, "profile.db.gz"),
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", shared.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ],
    );
    let r = run(
        "store",
        &with(&base, &[("AWS_PROFILE", "etcd-backup")]),
        &[],
    );
    r.assert_code(0);
    assert!(r.all().contains("profile etcd-backup ("), "{}", r.all());
    assert!(
        server
            .object_file(&format!("{CLUSTER}-profile.db.gz"))
            .exists()
    );
    // The default profile's wrong keys: refused by the server.
    run("store", &base, &[]).assert_code(77);
    // An SSO profile and a profile that is not there: one line, 78, by name.
    for (profile, what) in [("sso", "AWS SSO"), ("absent", "no such profile")] {
        let r = run("store", &with(&base, &[("AWS_PROFILE", profile)]), &[]);
        r.assert_code(78);
        let errors = r.error_lines();
        assert_eq!(errors.len(), 1, "{}", r.stderr);
        assert!(
            errors[0].contains(&format!("AWS_PROFILE={profile}: ")),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains(what), "{}", errors[0]);
    }
}

/// A token file missing or unreadable is 78 before anything is asked; a
/// credential endpoint or STS that refuses is 77; nothing set with instance
/// metadata off is 78 naming every source tried.
#[test]
fn broken_or_refused_sources_exit_78_or_77() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "snapshot.db.gz",
        &gzip(&synthetic_snapshot(100, 6)),
    );
    let env = env_for(&server, server.port, &file, "refused.db.gz");
    let refusing = CredentialEndpoint::start(
        Kind::Container,
        POD_TOKEN,
        403,
        issue(Duration::from_secs(60)),
    );
    let token_file = write_file(dir.path(), "token", POD_TOKEN.as_bytes());
    let pod = |token: &std::path::Path| {
        with(
            &env,
            &[
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    &format!("{}/creds", refusing.url()),
                ),
                (
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    token.to_str().unwrap(),
                ),
            ],
        )
    };
    for (token, why) in [
        (dir.path().join("missing"), "No such file"),
        (dir.path().to_path_buf(), "directory"),
    ] {
        let r = run("store", &pod(&token), &[]);
        r.assert_code(78);
        let errors = r.error_lines();
        assert_eq!(errors.len(), 1, "{}", r.stderr);
        assert!(
            errors[0].contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains(why), "{}", errors[0]);
    }
    assert!(
        refusing.requests().is_empty(),
        "asked with a broken token file"
    );
    let r = run("store", &pod(&token_file), &[]);
    r.assert_code(77);
    assert_no_secret(&r, &[POD_TOKEN]);
    assert!(!refusing.requests().is_empty());

    // IRSA: an STS that answers 403.
    let ca = common::tls::Ca::new("refusing STS CA");
    let sts = common::tls::Sts::start_answering(&ca, (ACCESS_KEY, SECRET_KEY, "x"), 403);
    let ca_file = write_file(dir.path(), "ca.pem", ca.pem.as_bytes());
    let web = "eyJ-web-identity-do-not-print";
    let web_file = write_file(dir.path(), "web", web.as_bytes());
    let r = run(
        "store",
        &with(
            &env,
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", web_file.to_str().unwrap()),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/etcd-backup"),
                (
                    "AWS_ENDPOINT_URL_STS",
                    &format!("https://127.0.0.1:{}", sts.port),
                ),
                ("CA_BUNDLE", ca_file.to_str().unwrap()),
            ],
        ),
        &[],
    );
    r.assert_code(77);
    assert_no_secret(&r, &[web]);
    assert!(!sts.requests().is_empty());

    let r = run(
        "store",
        &with(&env, &[("AWS_EC2_METADATA_DISABLED", "true")]),
        &[],
    );
    r.assert_code(78);
    let errors = r.error_lines();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    for named in [
        "ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        assert!(errors[0].contains(named), "{named}: {}", errors[0]);
    }
}

/// Temporary credentials valid for two seconds, the first upload part's answer
/// held by the proxy until the first credentials have expired: the upload goes
/// on with credentials fetched anew, every request signed with credentials
/// still valid when it arrived, and the object is the file.
#[test]
fn credentials_expiring_mid_upload_are_renewed() {
    let server = S3Server::start();
    let proxy = Proxy::start(
        server.port,
        vec![Rule::once(Op::UploadPart, 1, Fault::HoldResponse)],
    );
    let valid = Duration::from_secs(2);
    let endpoint = CredentialEndpoint::start(Kind::Container, POD_TOKEN, 200, issue(valid));
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(dir.path(), "token", POD_TOKEN.as_bytes());
    // Three 5 MiB parts, one at a time.
    let gz = gzip(&synthetic_snapshot(3000, 7));
    assert!(gz.len() > 10 << 20, "{}", gz.len());
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &env_for(&server, proxy.port, &file, "renewed.db.gz"),
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{}/creds", endpoint.url()),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
            ("PART_SIZE", "5MiB"),
            ("SINGLE_PUT_MAX", "0"),
            ("CONCURRENCY", "1"),
            ("LOG_LEVEL", "info"),
        ],
    );
    let child = command("store", &env, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first part to be held, then for the first credentials to expire.
    let give_up = Instant::now() + time_limit();
    while proxy.count(Op::UploadPart) == 0 {
        assert!(Instant::now() < give_up, "no part was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = endpoint.fetches()[0].expires;
    while Instant::now() <= first {
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.release();
    let r = Run::of(wait_within(child, "store"));
    r.assert_code(0);
    assert_no_secret(&r, &[POD_TOKEN]);
    let fetches = endpoint.fetches();
    assert!(
        fetches.len() >= 2,
        "credentials fetched {} times",
        fetches.len()
    );
    let heads = proxy.heads_at();
    let mut after_expiry = 0;
    for (arrived, head) in &heads {
        let token = token_of(head).expect("every request carries a session token");
        let fetch = fetches
            .iter()
            .find(|f| f.issued.token == token)
            .unwrap_or_else(|| panic!("{token} was never handed out"));
        assert!(
            fetch.expires > *arrived,
            "a request signed with expired credentials: {head}"
        );
        if *arrived > first {
            after_expiry += 1;
        }
    }
    assert!(
        after_expiry >= 3,
        "parts 2, 3 and the completion came after the expiry: {after_expiry}"
    );
    assert_eq!(proxy.count(Op::UploadPart), 3);
    let stored = std::fs::read(server.object_file(&format!("{CLUSTER}-renewed.db.gz"))).unwrap();
    assert!(stored == gz);
}
