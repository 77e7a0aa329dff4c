//! Encrypted backups (age, X25519 recipients): `store` (file, `--from-etcd`,
//! `--backup-store`) and `snapshot` encrypt, `restore` decrypts (object, local
//! file, data dir, kops); the Debian `age` CLI reads what we store and writes
//! what we restore; every refusal has its exit code and writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use object_store::{Attribute, GetOptions, ObjectStore, path::Path as ObjectPath};
use snapjob::{Inputs, Remote, transport::remote::ClientTuning};

/// An age key pair made by `age-keygen`: the identity file and its recipient.
struct Key {
    file: PathBuf,
    recipient: String,
    /// The secret key's text, which no output may contain.
    secret: String,
}

fn keygen(dir: &Path, name: &str) -> Key {
    let file = dir.join(name);
    let o = output_within(
        Command::new("age-keygen").arg("-o").arg(&file),
        "age-keygen",
    );
    assert!(
        o.status.success(),
        "age-keygen (scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = output_within(
        Command::new("age-keygen").arg("-y").arg(&file),
        "age-keygen",
    );
    let recipient = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let secret = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    Key {
        file,
        recipient,
        secret,
    }
}

/// A recipient's fingerprint as the README tells to compute it.
fn fingerprint(recipient: &str) -> String {
    sha256_hex(recipient.as_bytes())[..16].to_string()
}

/// Runs a binary and checks no secret key shows in what it printed.
fn run_keyed(bin: &str, env: &[(String, String)], args: &[&str], keys: &[&Key]) -> Run {
    let r = run(bin, env, args);
    for k in keys {
        assert!(!r.all().contains(&k.secret), "a secret key was printed");
        assert!(
            !r.all().contains(&k.secret[20..]),
            "a secret key was printed"
        );
    }
    r
}

/// `age -d -i key` of `cipher`.
fn age_decrypt(key: &Key, cipher: &Path) -> Vec<u8> {
    let o = output_within(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key.file)
            .arg(cipher),
        "age -d",
    );
    assert!(
        o.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// `age -r recipient -o out in`.
fn age_encrypt(recipient: &str, plain: &Path, out: &Path) {
    let o = output_within(
        Command::new("age")
            .args(["-r", recipient, "-o"])
            .arg(out)
            .arg(plain),
        "age -r",
    );
    assert!(
        o.status.success(),
        "age -r: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn metadata(server: &S3Server, key: &str) -> (u64, Vec<(String, String)>) {
    let client: Arc<dyn ObjectStore> =
        Remote::from_inputs(&Inputs::from_env_vars(server.job_env()))
            .unwrap()
            .open(&ClientTuning::for_deadline(std::time::Duration::from_secs(
                30,
            )))
            .await
            .unwrap();
    let head = client
        .get_opts(
            &ObjectPath::parse(key).unwrap(),
            GetOptions {
                head: true,
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    let meta = head
        .attributes
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(name) => Some((name.to_string(), v.as_ref().to_string())),
            _ => None,
        })
        .collect();
    (head.meta.size, meta)
}

fn meta_value<'a>(meta: &'a [(String, String)], name: &str) -> Option<&'a str> {
    meta.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Files in `dir` whose names show a temporary file of ours.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".snapjob-"))
        .collect()
}

#[tokio::test]
async fn a_stored_file_is_encrypted_the_age_cli_decrypts_it_and_restore_gives_the_snapshot() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (keygen(dir.path(), "a.key"), keygen(dir.path(), "b.key"));
    let recipients = dir.path().join("recipients.txt");
    std::fs::write(&recipients, format!("# the backup team\n{}\n", b.recipient)).unwrap();
    let raw = synthetic_snapshot(3000, 17);
    let gz = gzip(&raw);
    let snap_dir = dir.path().join("backup");
    std::fs::create_dir(&snap_dir).unwrap();
    let file = write_file(&snap_dir, "snapshot.db.gz", &gz);
    // One streaming PUT, and a multipart upload of 5 MiB parts.
    for (name, single_put_max) in [("one.db.gz", "256MiB"), ("parts.db.gz", "0")] {
        let env = with(
            &server.job_env(),
            &[
                ("BACKUP_TO_CREATE", name),
                ("SNAPSHOT_FILE", file.to_str().unwrap()),
                ("ENCRYPT_RECIPIENTS_FILE", recipients.to_str().unwrap()),
                ("SINGLE_PUT_MAX", single_put_max),
                ("PART_SIZE", "5MiB"),
            ],
        );
        let r = run_keyed("store", &env, &["--recipient", &a.recipient], &[&a, &b]);
        r.assert_code(0);
        let key = format!("{CLUSTER}-{name}");
        let object = std::fs::read(server.object_file(&key)).unwrap();
        assert!(
            object.starts_with(b"age-encryption.org/v1\n"),
            "{name}: age"
        );
        assert!(!object.windows(64).any(|w| gz.windows(64).next() == Some(w)));
        // Either key opens it, with the age CLI, giving the exact gzip file.
        for k in [&a, &b] {
            assert!(
                age_decrypt(k, &server.object_file(&key)) == gz,
                "{name}: age -d gives the stored gzip snapshot"
            );
        }
        let (size, meta) = metadata(&server, &key).await;
        assert_eq!(size, object.len() as u64);
        assert_eq!(
            meta_value(&meta, "sha256"),
            Some(sha256_hex(&object).as_str())
        );
        assert_eq!(meta_value(&meta, "snapjob-encryption"), Some("age-x25519"));
        let fps = format!(
            "{},{}",
            fingerprint(&a.recipient),
            fingerprint(&b.recipient)
        );
        assert_eq!(meta_value(&meta, "snapjob-recipients"), Some(fps.as_str()));
        for (_, v) in &meta {
            assert!(!v.contains("age1") && !v.contains("AGE-SECRET"), "{v}");
        }
        assert!(
            temporaries(&snap_dir).is_empty(),
            "the ciphertext file is removed"
        );

        let out = dir.path().join(format!("{name}.out"));
        let env = with(
            &server.job_env(),
            &[
                ("BACKUP_TO_RESTORE", name),
                ("DECRYPT_IDENTITY_FILE", b.file.to_str().unwrap()),
            ],
        );
        let r = run_keyed(
            "restore",
            &env,
            &["--output", out.to_str().unwrap()],
            &[&a, &b],
        );
        r.assert_code(0);
        assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
        assert!(std::fs::read(&out).unwrap() == raw, "{name}: restored");
        assert_eq!(temporaries(dir.path()), Vec::<String>::new());
    }
}

#[test]
fn an_object_encrypted_by_the_age_cli_restores_raw_gzip_and_into_a_data_dir() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.key");
    let other = keygen(dir.path(), "other.key");
    let raw = std::fs::read(fixture("etcd-3.4-small.db")).unwrap();
    for (name, plain) in [
        ("gz.db.gz.age", fixture("etcd-3.4-small.db.gz")),
        ("raw.db.age", fixture("etcd-3.4-small.db")),
    ] {
        let cipher = dir.path().join(name);
        age_encrypt(&k.recipient, &plain, &cipher);
        server.s3cmd_put(&cipher, &format!("{CLUSTER}-{name}"));
        let out = dir.path().join(format!("{name}.out"));
        let env = with(&server.job_env(), &[("BACKUP_TO_RESTORE", name)]);
        // Several identity files: the one that matches is used.
        let args = [
            "--identity",
            other.file.to_str().unwrap(),
            "--identity",
            k.file.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        run_keyed("restore", &env, &args, &[&k, &other]).assert_code(0);
        assert!(std::fs::read(&out).unwrap() == raw, "{name}");
    }
    // Straight into a member data dir, with the identity from the environment.
    let data = dir.path().join("member");
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_RESTORE", "gz.db.gz.age"),
            ("DECRYPT_IDENTITY_FILE", k.file.to_str().unwrap()),
            ("ETCD_DATA_DIR", data.to_str().unwrap()),
            ("ETCD_NAME", "m0"),
            ("ETCD_INITIAL_CLUSTER", "m0=http://127.0.0.1:2380"),
            ("ETCD_INITIAL_CLUSTER_TOKEN", "t"),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", "http://127.0.0.1:2380"),
        ],
    );
    run_keyed("restore", &env, &[], &[&k]).assert_code(0);
    let status = output_within(
        Command::new(etcd34("etcdctl"))
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(data.join("member/snap/db")),
        "etcdctl",
    );
    assert!(
        status.status.success(),
        "the data dir's db is a bbolt db etcd reads"
    );
    assert_eq!(temporaries(dir.path()), Vec::<String>::new());
}

/// The refusals on the restore side: each exit code, and the output left as it was.
#[test]
fn refusals_of_an_encrypted_object_write_nothing() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.key");
    let wrong = keygen(dir.path(), "wrong.key");
    let file = fixture("etcd-3.4-small.db.gz");
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "enc.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("ENCRYPT_RECIPIENTS", &k.recipient),
        ],
    );
    run_keyed("store", &env, &[], &[&k]).assert_code(0);
    let out = dir.path().join("out.db");
    std::fs::write(&out, b"the previous snapshot").unwrap();
    let restore = |backup: &str, identity: Option<&Key>| {
        let mut env = with(
            &server.job_env(),
            &[
                ("BACKUP_TO_RESTORE", backup),
                ("OUTPUT_FILE", out.to_str().unwrap()),
            ],
        );
        if let Some(i) = identity {
            env = with(&env, &[("DECRYPT_IDENTITY_FILE", i.file.to_str().unwrap())]);
        }
        let r = run_keyed("restore", &env, &[], &[&k, &wrong]);
        assert!(
            std::fs::read(&out).unwrap() == b"the previous snapshot",
            "{backup}: the output is left as it was"
        );
        assert_eq!(temporaries(dir.path()), Vec::<String>::new(), "{backup}");
        r
    };
    // No identity: 78, naming the variable and the recorded recipients.
    let r = restore("enc.db.gz", None);
    r.assert_code(78);
    let line = &r.error_lines()[0];
    assert!(line.contains("DECRYPT_IDENTITY_FILE"), "{line}");
    assert!(line.contains(&fingerprint(&k.recipient)), "{line}");
    // The wrong identity: 77.
    let r = restore("enc.db.gz", Some(&wrong));
    r.assert_code(77);
    assert!(
        r.error_lines()[0].contains("no identity matches"),
        "{}",
        r.stderr
    );

    // Damaged ciphertexts, uploaded without a recorded digest (as by hand), so
    // that decryption itself must catch them: 65.
    let cipher = dir.path().join("big.age");
    let raw = synthetic_snapshot(2000, 3);
    let plain = write_file(dir.path(), "big.db.gz", &gzip(&raw));
    age_encrypt(&k.recipient, &plain, &cipher);
    let bytes = std::fs::read(&cipher).unwrap();
    let chunk = 64 * 1024 + 16;
    let header = bytes.len() - (gzip(&raw).len() + gzip(&raw).len().div_ceil(64 * 1024) * 16);
    assert!(bytes.len() > header + 3 * chunk, "several chunks");
    let mut flipped = bytes.clone();
    flipped[header + chunk + 100] ^= 0x40;
    let truncated = bytes[..header + 2 * chunk].to_vec();
    let mut swapped = bytes[..header].to_vec();
    swapped.extend_from_slice(&bytes[header + chunk..header + 2 * chunk]);
    swapped.extend_from_slice(&bytes[header..header + chunk]);
    swapped.extend_from_slice(&bytes[header + 2 * chunk..]);
    // The header's MAC (a damaged recipient stanza reads as another recipient's:
    // that is the 77 above).
    let mut header_flipped = bytes.clone();
    let mac = bytes.windows(5).position(|w| w == b"\n--- ").unwrap() + 6;
    header_flipped[mac] = if bytes[mac] == b'A' { b'B' } else { b'A' };
    for (name, damaged) in [
        ("flipped", flipped),
        ("truncated", truncated),
        ("swapped", swapped),
        ("header", header_flipped),
    ] {
        let f = write_file(dir.path(), &format!("{name}.bin"), &damaged);
        server.s3cmd_put(&f, &format!("{CLUSTER}-{name}"));
        std::fs::remove_file(&f).unwrap();
        let r = restore(name, Some(&k));
        r.assert_code(65);
        assert_eq!(
            r.error_lines().len(),
            1,
            "{name}: one error line: {}",
            r.stderr
        );
    }
    // The undamaged one restores, so the refusals above were the damage's.
    server.s3cmd_put(&cipher, &format!("{CLUSTER}-whole"));
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_RESTORE", "whole"),
            ("OUTPUT_FILE", out.to_str().unwrap()),
            ("DECRYPT_IDENTITY_FILE", k.file.to_str().unwrap()),
        ],
    );
    run_keyed("restore", &env, &[], &[&k]).assert_code(0);
    assert!(std::fs::read(&out).unwrap() == raw);

    // Identity files that cannot be read or are not identities: 78 at start.
    let bad = write_file(
        dir.path(),
        "bad.key",
        b"# a comment\nAGE-SECRET-KEY-1NOTAKEY\n",
    );
    for (file, what) in [
        (dir.path().join("absent.key"), "cannot read"),
        (bad, "line 2"),
    ] {
        let env = with(
            &server.job_env(),
            &[
                ("BACKUP_TO_RESTORE", "enc.db.gz"),
                ("OUTPUT_FILE", out.to_str().unwrap()),
                ("DECRYPT_IDENTITY_FILE", file.to_str().unwrap()),
            ],
        );
        let r = run_keyed("restore", &env, &[], &[&k]);
        r.assert_code(78);
        let line = &r.error_lines()[0];
        assert!(
            line.contains("DECRYPT_IDENTITY_FILE") && line.contains(what),
            "{line}"
        );
        assert!(!line.contains("NOTAKEY"), "the line is not printed: {line}");
    }
}

/// The refusals on the store side: bad recipients are 78 before any upload.
#[test]
fn bad_recipients_are_refused_before_any_upload() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.key");
    let file = fixture("etcd-3.4-small.db.gz");
    let typo = format!("{}q", &k.recipient[..k.recipient.len() - 1]);
    let malformed = write_file(
        dir.path(),
        "recipients",
        format!("{}\nnot-a-recipient\n", k.recipient).as_bytes(),
    );
    let secret_as_recipient = write_file(dir.path(), "mistake", k.secret.as_bytes());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "ENCRYPT_RECIPIENTS",
            format!("{},{typo}", k.recipient),
            "recipient 2",
        ),
        (
            "ENCRYPT_RECIPIENTS_FILE",
            malformed.display().to_string(),
            "line 2",
        ),
        (
            "ENCRYPT_RECIPIENTS_FILE",
            dir.path().join("absent").display().to_string(),
            "cannot read",
        ),
        (
            "ENCRYPT_RECIPIENTS_FILE",
            secret_as_recipient.display().to_string(),
            "is a secret key",
        ),
    ];
    for (var, value, what) in &cases {
        let env = with(
            &server.job_env(),
            &[
                ("BACKUP_TO_CREATE", "x.db.gz"),
                ("SNAPSHOT_FILE", file.to_str().unwrap()),
                (*var, value.as_str()),
            ],
        );
        let r = run_keyed("store", &env, &[], &[&k]);
        r.assert_code(78);
        let line = &r.error_lines()[0];
        assert!(line.contains(var) && line.contains(what), "{line}");
        assert!(!server.object_file(&format!("{CLUSTER}-x.db.gz")).exists());
        assert!(server.leftover_uploads().is_empty());
    }
    assert!(
        run_keyed(
            "store",
            &with(
                &server.job_env(),
                &[
                    ("BACKUP_TO_CREATE", "x.db.gz"),
                    ("SNAPSHOT_FILE", file.to_str().unwrap()),
                ],
            ),
            &["--recipient", &typo],
            &[&k],
        )
        .error_lines()[0]
            .contains(&typo),
        "a typo given as a flag is named too"
    );
    // snapshot checks its recipients before connecting to etcd.
    let r = run_keyed(
        "snapshot",
        &[],
        &[
            "--etcd-endpoints",
            &format!("http://127.0.0.1:{}", closed_port()),
            "--recipient",
            &typo,
            "--file",
            dir.path().join("s.db.gz").to_str().unwrap(),
        ],
        &[&k],
    );
    r.assert_code(78);
    assert!(!dir.path().join("s.db.gz").exists());
}

/// A corrupt plaintext is refused before anything is encrypted or uploaded.
#[test]
fn a_corrupt_snapshot_is_refused_before_encryption() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.key");
    let mut gz = std::fs::read(fixture("etcd-3.4-small.db.gz")).unwrap();
    let at = gz.len() / 2;
    gz[at] ^= 0xff;
    let snap_dir = dir.path().join("backup");
    std::fs::create_dir(&snap_dir).unwrap();
    let file = write_file(&snap_dir, "snapshot.db.gz", &gz);
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "bad.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("ENCRYPT_RECIPIENTS", &k.recipient),
        ],
    );
    run_keyed("store", &env, &[], &[&k]).assert_code(65);
    assert!(!server.object_file(&format!("{CLUSTER}-bad.db.gz")).exists());
    assert_eq!(temporaries(&snap_dir), Vec::<String>::new());
}

#[test]
fn from_etcd_and_snapshot_encrypt_in_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.key");
    let etcd = Etcd::fresh(
        &etcd34("etcd"),
        "src",
        &dir.path().join("src-data"),
        "src-token",
    );
    let ctl = etcd34("etcdctl");
    wait_healthy(&ctl, &etcd.client_url);
    for i in 0..50 {
        etcdctl(
            &ctl,
            &etcd.client_url,
            &["put", &format!("/k/{i}"), "value"],
        );
    }
    let reference = dir.path().join("ref.db");
    let o = output_within(
        Command::new(&ctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &etcd.client_url, "snapshot", "save"])
            .arg(&reference),
        "etcdctl",
    );
    assert!(o.status.success());
    let want = std::fs::read(&reference).unwrap();

    // snapshot --recipient: an encrypted local file the age CLI opens.
    let local = dir.path().join("snapshot.db.gz.age");
    let args = [
        "--etcd-endpoints",
        &etcd.client_url,
        "--recipient",
        &k.recipient,
        "--file",
        local.to_str().unwrap(),
    ];
    run_keyed("snapshot", &[], &args, &[&k]).assert_code(0);
    let gz = age_decrypt(&k, &local);
    assert!(gz.starts_with(&[0x1f, 0x8b]), "gzip inside");
    // restore --snapshot of the encrypted local file.
    let out = dir.path().join("local.out");
    let args = [
        "--snapshot",
        local.to_str().unwrap(),
        "--identity",
        k.file.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    run_keyed("restore", &[], &args, &[&k]).assert_code(0);
    assert!(
        std::fs::read(&out).unwrap() == want,
        "snapshot --recipient round trip"
    );

    // store --from-etcd with recipients, on s3s-fs and file://.
    let server = S3Server::start();
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "live.db.gz"),
            ("ETCD_ENDPOINTS", &etcd.client_url),
            ("ENCRYPT_RECIPIENTS", &k.recipient),
        ],
    );
    run_keyed("store", &env, &["--from-etcd"], &[&k]).assert_code(0);
    let key = format!("{CLUSTER}-live.db.gz");
    let object = server.object_file(&key);
    assert!(
        std::fs::read(&object)
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );
    assert!(age_decrypt(&k, &object).starts_with(&[0x1f, 0x8b]));
    let out = dir.path().join("live.out");
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_RESTORE", "live.db.gz"),
            ("DECRYPT_IDENTITY_FILE", k.file.to_str().unwrap()),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ],
    );
    run_keyed("restore", &env, &[], &[&k]).assert_code(0);
    assert!(std::fs::read(&out).unwrap() == want, "from-etcd round trip");

    let root = dir.path().join("store");
    let env = [
        ("STORAGE_URL", format!("file://{}", root.display())),
        ("CLUSTER", CLUSTER.to_string()),
        ("BACKUP_TO_CREATE", "local.db.gz".to_string()),
        ("ETCD_ENDPOINTS", etcd.client_url.clone()),
        ("ENCRYPT_RECIPIENTS", k.recipient.clone()),
    ]
    .map(|(a, b)| (a.to_string(), b));
    run_keyed("store", &env, &["--from-etcd"], &[&k]).assert_code(0);
    let stored = root.join(format!("{CLUSTER}-local.db.gz"));
    assert!(age_decrypt(&k, &stored).starts_with(&[0x1f, 0x8b]));
}

#[test]
fn kops_backup_stores_need_the_force_flag_and_our_restore_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.key");
    let url = format!("file://{}/main", dir.path().display());
    let file = fixture("etcd-3.4-small.db.gz");
    let args = [
        "--backup-store",
        &url,
        "--file",
        file.to_str().unwrap(),
        "--etcd-version",
        "3.4.23",
        "--recipient",
        &k.recipient,
    ];
    let r = run_keyed("store", &[], &args, &[&k]);
    r.assert_code(78);
    assert!(
        r.error_lines()[0].contains("FORCE_ENCRYPTED_ETCD_MANAGER"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("main").exists(), "nothing was stored");
    let mut forced = args.to_vec();
    forced.push("--force-encrypted-etcd-manager");
    run_keyed("store", &[], &forced, &[&k]).assert_code(0);
    let listed = run("restore", &[], &["--backup-store", &url, "list-backups"]);
    listed.assert_code(0);
    let name = listed.stdout.lines().next().unwrap().to_string();
    let data = dir.path().join("member");
    let peer = "http://127.0.0.1:2380";
    let args = [
        "--backup-store",
        &url,
        "--backup",
        &name,
        "--identity",
        k.file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "m0",
        "--initial-cluster",
        &format!("m0={peer}"),
        "--initial-cluster-token",
        "kops",
        "--initial-advertise-peer-urls",
        peer,
    ];
    run_keyed("restore", &[], &args, &[&k]).assert_code(0);
    assert!(data.join("member/snap/db").exists());
}

#[test]
fn garage_round_trip_encrypted_in_parts() {
    let g = common::garage::Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "k.key");
    let raw = synthetic_snapshot(3000, 5);
    let gz = gzip(&raw);
    let file = write_file(dir.path(), "snapshot.db.gz", &gz);
    let env = with(
        &g.job_env(),
        &[
            ("BACKUP_TO_CREATE", "g.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PART_SIZE", "5MiB"),
            ("SINGLE_PUT_MAX", "0"),
            ("ENCRYPT_RECIPIENTS", &k.recipient),
        ],
    );
    run_keyed("store", &env, &[], &[&k]).assert_code(0);
    let object = g.object(&format!("{CLUSTER}-g.db.gz")).unwrap();
    let got = write_file(dir.path(), "object.age", &object);
    assert!(
        age_decrypt(&k, &got) == gz,
        "age -d gives the gzip snapshot"
    );
    let out = dir.path().join("out.db");
    let env = with(
        &g.job_env(),
        &[
            ("BACKUP_TO_RESTORE", "g.db.gz"),
            ("DECRYPT_IDENTITY_FILE", k.file.to_str().unwrap()),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ],
    );
    let r = run_keyed("restore", &env, &[], &[&k]);
    r.assert_code(0);
    assert!(r.stderr.contains("\"sha256_checked\":true"), "{}", r.stderr);
    assert!(std::fs::read(&out).unwrap() == raw);
    assert!(g.uploads().is_empty());
}
