//! What S3-compatible servers differ on (issue 15): server-side encryption
//! (SSE-C on garage, SSE-S3/SSE-KMS on moto), flexible checksums (never sent
//! unless `CHECKSUM=sha256`; garage checks them), a 200 answer to
//! CompleteMultipartUpload that carries an error, and a skewed clock. The fault
//! proxy in front of the server records every request's head, so what was sent
//! is asserted, not assumed.

mod common;

use common::garage::Garage;
use common::moto::Moto;
use common::proxy::{Fault, Op, Proxy, Rule, header};
use common::*;

/// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Another 256-bit key (`fedcba9876543210fedcba9876543210`).
const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

fn through(env: &[(String, String)], proxy: &Proxy) -> Vec<(String, String)> {
    with(
        env,
        &[("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port))],
    )
}

/// A one-shot and a three-part multipart store of the same kind of snapshot;
/// the files and the raw snapshots they hold.
struct Files {
    _dir: tempfile::TempDir,
    small: std::path::PathBuf,
    small_raw: Vec<u8>,
    big: std::path::PathBuf,
    big_raw: Vec<u8>,
    out: std::path::PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let big_raw = synthetic_snapshot(3000, 15);
    let big = write_file(dir.path(), "big.db.gz", &gzip(&big_raw));
    Files {
        small: fixture("etcd-3.4-small.db.gz"),
        small_raw: std::fs::read(fixture("etcd-3.4-small.db")).unwrap(),
        big,
        big_raw,
        out: dir.path().join("out.db"),
        _dir: dir,
    }
}

const PARTS: [(&str, &str); 2] = [("PART_SIZE", "5MiB"), ("SINGLE_PUT_MAX", "0")];

fn store(env: &[(String, String)], backup: &str, file: &std::path::Path) -> Run {
    run(
        "store",
        env,
        &["--backup", backup, "--file", file.to_str().unwrap()],
    )
}

fn restore(env: &[(String, String)], backup: &str, out: &std::path::Path) -> Run {
    let _ = std::fs::remove_file(out);
    run(
        "restore",
        env,
        &["--backup", backup, "--output", out.to_str().unwrap()],
    )
}

#[test]
fn sse_c_goes_with_every_request_and_restore_needs_the_key_on_garage() {
    let g = Garage::start();
    let proxy = Proxy::start(g.port, vec![]);
    let f = files();
    let plain = through(&g.job_env(), &proxy);
    let env = with(&plain, &[("SSE_CUSTOMER_KEY", KEY), ("LOG_LEVEL", "trace")]);
    let no_key = |r: &Run| {
        assert!(!r.all().contains(KEY), "the key was printed:\n{}", r.all());
    };
    no_key(store(&env, "one.db.gz", &f.small).assert_code(0));
    no_key(store(&with(&env, &PARTS), "big.db.gz", &f.big).assert_code(0));
    // Every request that writes or reads the object carried the key (and its MD5).
    let md5 = "hRasmdxgYDKV3nvbahU1MA==";
    let sent = proxy.heads_of(&["PUT ", "POST ", "GET /etcd-backups/", "HEAD "]);
    assert!(sent.len() >= 6, "{sent:?}");
    for head in &sent {
        if head.starts_with("GET /etcd-backups/?") || head.starts_with("GET /etcd-backups?") {
            continue; // a listing: no object read
        }
        assert_eq!(
            header(head, "x-amz-server-side-encryption-customer-key-md5").as_deref(),
            Some(md5),
            "{head}"
        );
    }
    for op in [
        Op::PutObject,
        Op::CreateUpload,
        Op::UploadPart,
        Op::Complete,
    ] {
        assert!(proxy.count(op) > 0, "{op:?} was not sent");
    }
    // Restored with the key (from a file, this time): the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let key_file = write_file(dir.path(), "ssec.key", b"0123456789abcdef0123456789abcdef");
    let by_file = with(
        &plain,
        &[("SSE_CUSTOMER_KEY_FILE", key_file.to_str().unwrap())],
    );
    restore(&by_file, "one.db.gz", &f.out).assert_code(0);
    assert!(std::fs::read(&f.out).unwrap() == f.small_raw);
    restore(&env, "big.db.gz", &f.out).assert_code(0);
    assert!(std::fs::read(&f.out).unwrap() == f.big_raw);
    // The object is encrypted: without the key, 78 naming the variable;
    // with another key, 77; nothing written either way.
    for backup in ["one.db.gz", "big.db.gz"] {
        let r = restore(&plain, backup, &f.out);
        r.assert_code(78);
        assert!(r.stderr.contains("SSE_CUSTOMER_KEY"), "{}", r.stderr);
        let r = restore(
            &with(&plain, &[("SSE_CUSTOMER_KEY", OTHER_KEY)]),
            backup,
            &f.out,
        );
        r.assert_code(77);
        assert!(r.stderr.contains("SSE-C key"), "{}", r.stderr);
        assert!(!r.all().contains(OTHER_KEY));
        assert!(!f.out.exists());
    }
    // An object stored without SSE-C, read with a key: 78, saying to unset it.
    store(&plain, "clear.db.gz", &f.small).assert_code(0);
    let r = restore(&env, "clear.db.gz", &f.out);
    r.assert_code(78);
    assert!(
        r.stderr.contains("not encrypted with a customer key"),
        "{}",
        r.stderr
    );
}

#[test]
fn sse_s3_and_kms_are_recorded_by_moto() {
    let m = Moto::start();
    let f = files();
    let kms = with(
        &m.job_env(),
        &[
            ("SSE", "aws:kms"),
            ("SSE_KMS_KEY_ID", "alias/etcd-backups"),
            ("SSE_BUCKET_KEY", "true"),
        ],
    );
    store(&kms, "kms.db.gz", &f.small).assert_code(0);
    store(&with(&kms, &PARTS), "kms-big.db.gz", &f.big).assert_code(0);
    store(
        &with(&m.job_env(), &[("SSE", "AES256")]),
        "s3.db.gz",
        &f.small,
    )
    .assert_code(0);
    store(&m.job_env(), "none.db.gz", &f.small).assert_code(0);
    let head = |backup: &str, name: &str| {
        m.head(&format!("{CLUSTER}-{backup}"))
            .expect("stored")
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    };
    for backup in ["kms.db.gz", "kms-big.db.gz"] {
        assert_eq!(
            head(backup, "x-amz-server-side-encryption").as_deref(),
            Some("aws:kms"),
            "{backup}"
        );
        assert_eq!(
            head(backup, "x-amz-server-side-encryption-aws-kms-key-id").as_deref(),
            Some("alias/etcd-backups"),
            "{backup}"
        );
    }
    assert_eq!(
        head("s3.db.gz", "x-amz-server-side-encryption").as_deref(),
        Some("AES256")
    );
    assert_eq!(head("none.db.gz", "x-amz-server-side-encryption"), None);
    restore(&kms, "kms-big.db.gz", &f.out).assert_code(0);
    assert!(std::fs::read(&f.out).unwrap() == f.big_raw);
}

#[test]
fn checksums_are_sent_only_when_asked_and_garage_checks_them() {
    let g = Garage::start();
    let f = files();
    // Default: no flexible checksum, no trailer, on any request.
    let quiet = Proxy::start(g.port, vec![]);
    let env = through(&g.job_env(), &quiet);
    store(&env, "one.db.gz", &f.small).assert_code(0);
    store(&with(&env, &PARTS), "big.db.gz", &f.big).assert_code(0);
    restore(&env, "big.db.gz", &f.out).assert_code(0);
    run("delete", &env, &["--backup", "one.db.gz"]).assert_code(0);
    for head in quiet.heads() {
        let lower = head.to_ascii_lowercase();
        for never in [
            "x-amz-checksum",
            "x-amz-sdk-checksum",
            "x-amz-trailer",
            "streaming-",
        ] {
            assert!(!lower.contains(never), "{never} sent unasked:\n{head}");
        }
    }
    // CHECKSUM=sha256: the object's SHA-256 on the PUT, each part's on its
    // UploadPart, the algorithm on Create; garage verifies and accepts them.
    let asked = Proxy::start(g.port, vec![]);
    let env = with(&through(&g.job_env(), &asked), &[("CHECKSUM", "sha256")]);
    store(&env, "one.db.gz", &f.small).assert_code(0);
    store(&with(&env, &PARTS), "big.db.gz", &f.big).assert_code(0);
    let puts = asked.heads_of(&["PUT "]);
    let single: Vec<_> = puts.iter().filter(|h| !h.contains("partNumber=")).collect();
    assert_eq!(single.len(), 1, "{puts:?}");
    let want = {
        use base64::Engine as _;
        let digest = hex::decode(sha256_hex(&std::fs::read(&f.small).unwrap())).unwrap();
        base64::engine::general_purpose::STANDARD.encode(digest)
    };
    assert_eq!(
        header(single[0], "x-amz-checksum-sha256").as_deref(),
        Some(want.as_str())
    );
    let parts: Vec<_> = puts.iter().filter(|h| h.contains("partNumber=")).collect();
    assert_eq!(parts.len(), 3, "{puts:?}");
    for p in parts {
        assert!(header(p, "x-amz-checksum-sha256").is_some(), "{p}");
    }
    let create = asked.heads_of(&["POST "]);
    let create = create.iter().find(|h| h.contains("?uploads")).unwrap();
    assert_eq!(
        header(create, "x-amz-checksum-algorithm").as_deref(),
        Some("SHA256")
    );
    restore(&env, "big.db.gz", &f.out).assert_code(0);
    assert!(std::fs::read(&f.out).unwrap() == f.big_raw);
    // A part altered on the way: garage refuses it by its checksum (65, named),
    // the upload is aborted and nothing appears at the key.
    let bent = Proxy::start(
        g.port,
        vec![Rule::always(Op::UploadPart, Fault::Corrupt(1000))],
    );
    let env = with(&through(&g.job_env(), &bent), &[("CHECKSUM", "sha256")]);
    let r = store(&with(&env, &PARTS), "bent.db.gz", &f.big);
    r.assert_code(65);
    assert!(r.stderr.contains("checksum"), "{}", r.stderr);
    assert_eq!(g.object(&format!("{CLUSTER}-bent.db.gz")), None);
    assert_eq!(g.uploads(), Vec::<String>::new());
}

#[test]
fn a_server_that_refuses_the_checksum_header_is_named() {
    let server = S3Server::start();
    let f = files();
    let proxy = Proxy::start(
        server.port,
        vec![
            Rule::always(Op::PutObject, Fault::Error(400, "InvalidArgument")),
            Rule::always(Op::UploadPart, Fault::Error(501, "NotImplemented")),
        ],
    );
    let env = with(
        &through(&server.job_env(), &proxy),
        &[("CHECKSUM", "sha256")],
    );
    for r in [
        store(&env, "one.db.gz", &f.small),
        store(&with(&env, &PARTS), "big.db.gz", &f.big),
    ] {
        r.assert_code(78);
        assert!(r.stderr.contains("unset CHECKSUM"), "{}", r.stderr);
    }
    // Without CHECKSUM the same refusal is not blamed on it.
    let r = store(&through(&server.job_env(), &proxy), "one.db.gz", &f.small);
    assert_ne!(r.code, 0);
    assert!(!r.stderr.contains("CHECKSUM"), "{}", r.stderr);
    assert_eq!(server.leftover_uploads(), Vec::<String>::new());
}

#[test]
fn a_200_answer_to_complete_that_carries_an_error_is_an_error() {
    let g = Garage::start();
    let f = files();
    // Once: the retry completes the upload.
    let once = Proxy::start(
        g.port,
        vec![Rule::once(
            Op::Complete,
            1,
            Fault::Error(200, "InternalError"),
        )],
    );
    let env = with(&through(&g.job_env(), &once), &PARTS);
    store(&env, "big.db.gz", &f.big).assert_code(0);
    assert_eq!(once.count(Op::Complete), 2);
    assert!(g.object(&format!("{CLUSTER}-big.db.gz")).unwrap() == gzip(&f.big_raw));
    // Always: the store fails (15, after retries), the upload is aborted and
    // nothing is at the key.
    let always = Proxy::start(
        g.port,
        vec![Rule::always(
            Op::Complete,
            Fault::Error(200, "InternalError"),
        )],
    );
    let env = with(&through(&g.job_env(), &always), &PARTS);
    let r = store(&env, "never.db.gz", &f.big);
    r.assert_code(15);
    assert!(r.stderr.contains("InternalError"), "{}", r.stderr);
    assert_eq!(always.count(Op::Abort), 1);
    assert_eq!(g.object(&format!("{CLUSTER}-never.db.gz")), None);
    assert_eq!(g.uploads(), Vec::<String>::new());
}

#[test]
fn a_skewed_clock_is_one_error_naming_the_skew() {
    let server = S3Server::start();
    let f = files();
    store(&server.job_env(), "one.db.gz", &f.small).assert_code(0);
    const SKEWED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
        <Code>RequestTimeTooSkewed</Code><Message>The difference between the request time \
        and the current time is too large.</Message><RequestTime>20260101T000000Z</RequestTime>\
        <ServerTime>2026-01-01T00:42:07Z</ServerTime><MaxAllowedSkewMilliseconds>900000\
        </MaxAllowedSkewMilliseconds></Error>";
    let proxy = Proxy::start(
        server.port,
        Rule::on_every_request(Fault::Answer(403, SKEWED)),
    );
    let env = through(&server.job_env(), &proxy);
    for r in [
        store(&env, "two.db.gz", &f.small),
        store(&with(&env, &PARTS), "big.db.gz", &f.big),
        restore(&env, "one.db.gz", &f.out),
    ] {
        r.assert_code(78);
        assert!(
            r.stderr.contains("0h42m07s behind the server's"),
            "{}",
            r.stderr
        );
        assert_eq!(r.error_lines().len(), 1, "{}", r.stderr);
    }
    assert!(!f.out.exists());
}

#[test]
fn a_bucket_in_another_region_is_named() {
    let server = S3Server::start();
    let f = files();
    store(&server.job_env(), "one.db.gz", &f.small).assert_code(0);
    // What AWS (and garage, with its own region) answers a request signed for
    // us-east-1 when the bucket is elsewhere.
    const ELSEWHERE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
        <Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is \
        malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message>\
        <Region>eu-west-1</Region></Error>";
    let proxy = Proxy::start(
        server.port,
        Rule::on_every_request(Fault::Answer(400, ELSEWHERE)),
    );
    let env = through(&server.job_env(), &proxy);
    for r in [
        store(&env, "two.db.gz", &f.small),
        store(&with(&env, &PARTS), "big.db.gz", &f.big),
        restore(&env, "one.db.gz", &f.out),
    ] {
        r.assert_code(78);
        assert!(r.stderr.contains("set REGION=eu-west-1"), "{}", r.stderr);
    }
}

/// A custom endpoint whose region is not `us-east-1` and no REGION given: the
/// bucket's region is asked once per run (GetBucketLocation, signed for
/// us-east-1, which garage refuses naming its region) and every request is
/// signed for it. A REGION given is used as given, and a wrong one is named.
#[test]
fn the_region_of_a_custom_endpoint_is_asked_once_and_followed() {
    let g = Garage::start_in("garage-west");
    let proxy = Proxy::start(g.port, vec![]);
    let f = files();
    let env = through(&g.job_env(), &proxy);
    for r in [
        store(&env, "one.db.gz", &f.small),
        store(&with(&env, &PARTS), "big.db.gz", &f.big),
    ] {
        r.assert_code(0);
        assert!(
            r.stderr.contains("the bucket names its region"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("garage-west"), "{}", r.stderr);
    }
    assert_eq!(proxy.count(Op::Location), 2, "once per run");
    restore(&env, "big.db.gz", &f.out).assert_code(0);
    assert_eq!(std::fs::read(&f.out).unwrap(), f.big_raw);
    assert_eq!(proxy.count(Op::Location), 3);
    run("delete", &env, &["--backup", "one.db.gz"]).assert_code(0);
    restore(&env, "one.db.gz", &f.out).assert_code(12);
    // Given, the region is not asked, and a wrong one is named.
    let given = with(&env, &[("REGION", "us-east-1")]);
    let asked = proxy.count(Op::Location);
    let r = store(&given, "two.db.gz", &f.small);
    r.assert_code(78);
    assert!(r.stderr.contains("set REGION=garage-west"), "{}", r.stderr);
    assert_eq!(proxy.count(Op::Location), asked);
    let right = with(&env, &[("REGION", "garage-west")]);
    store(&right, "two.db.gz", &f.small).assert_code(0);
    assert_eq!(proxy.count(Op::Location), asked);
}
