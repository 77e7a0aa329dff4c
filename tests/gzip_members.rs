//! gzip as snapjob writes it (issue 20): `snapshot` and `store --from-etcd` write
//! independent members with an index entry each, the same bytes whatever
//! `COMPRESS_THREADS`; gunzip, zcat and Python's gzip read them as one standard
//! `.gz`; `restore` gives etcdctl's snapshot back, and a tampered index entry
//! falls back to one stream (same output) while a corrupt member fails with 65
//! and leaves no output.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A one-member etcd 3.5 on loopback with about 3 MiB of values (several 1 MiB
/// members once compressed), and etcdctl's snapshot of it.
fn etcd_with_snapshot(dir: &Path) -> (Etcd, String, Vec<u8>) {
    let (bin, ctl) = (etcd35("etcd"), etcd35("etcdctl"));
    let peer_url = format!("http://127.0.0.1:{}", port());
    let e = Etcd::boot(
        &bin,
        "src",
        &dir.join("src-data"),
        port(),
        &peer_url,
        &format!("src={peer_url}"),
        "src-token",
    );
    let endpoint = e.client_url.clone();
    wait_healthy(&ctl, &endpoint);
    for i in 0..48 {
        // Varied values, so the members differ and do not all compress to nothing.
        let value: String = (0..64 * 1024)
            .map(|k| char::from(b'a' + ((k * 7 + i * 13) % 26) as u8))
            .collect();
        etcdctl(&ctl, &endpoint, &["put", &format!("/big/{i}"), &value]);
    }
    let reference = dir.join("ref.db");
    let o = output_within(
        Command::new(&ctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoint, "snapshot", "save"])
            .arg(&reference),
        "etcdctl",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = std::fs::read(&reference).unwrap();
    (e, endpoint, want)
}

/// The offsets of the members' index entries (the `SJ` subfield's data); panics
/// unless every member has one and they cover the file.
fn index_entries(gz: &[u8]) -> Vec<usize> {
    let (mut at, mut found) = (0, Vec::new());
    while at < gz.len() {
        assert_eq!(gz[at..at + 4], [0x1f, 0x8b, 8, 4], "member at {at}: FEXTRA");
        assert_eq!(&gz[at + 12..at + 16], b"SJ\x08\x00", "member at {at}: SJ");
        found.push(at + 16);
        at += u32::from_le_bytes(gz[at + 16..at + 20].try_into().unwrap()) as usize;
    }
    assert_eq!(at, gz.len());
    found
}

/// What `tool args file` prints, the tool having succeeded.
fn peer_read(tool: &str, args: &[&str], file: &Path) -> Vec<u8> {
    let o = output_within(Command::new(tool).args(args).arg(file), tool);
    assert!(
        o.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn restore_file(file: &Path, out: &Path) -> Run {
    run(
        "restore",
        &[],
        &[
            "--snapshot",
            file.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    )
}

#[test]
fn members_are_standard_gzip_the_same_on_any_thread_count_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (_etcd, endpoint, want) = etcd_with_snapshot(dir.path());
    let endpoint_env = ("ETCD_ENDPOINTS", endpoint.as_str());

    let mut files = Vec::new();
    for threads in ["1", "3"] {
        let file = dir.path().join(format!("t{threads}.db.gz"));
        run(
            "snapshot",
            &with(&[], &[endpoint_env, ("COMPRESS_THREADS", threads)]),
            &["--file", file.to_str().unwrap()],
        )
        .assert_code(0);
        files.push(std::fs::read(&file).unwrap());
    }
    assert!(files[0] == files[1], "the same bytes on 1 and 3 threads");
    let file = dir.path().join("t3.db.gz");
    let members = index_entries(&files[0]).len();
    assert!(members >= 3, "{members} members");

    // Peers read it as one gzip file.
    let t = output_within(Command::new("gunzip").arg("-t").arg(&file), "gunzip");
    assert!(t.status.success(), "gunzip -t");
    assert!(peer_read("zcat", &[], &file) == want, "zcat");
    let py = "import gzip,sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())";
    assert!(
        peer_read("python3", &["-c", py], &file) == want,
        "python gzip"
    );

    // store --from-etcd writes the same format; restore gives etcdctl's snapshot.
    let server = S3Server::start();
    let env = with(
        &server.job_env(),
        &[
            ("BACKUP_TO_CREATE", "live.db.gz"),
            endpoint_env,
            ("COMPRESS_THREADS", "2"),
        ],
    );
    run("store", &env, &["--from-etcd"]).assert_code(0);
    let object = std::fs::read(server.object_file(&format!("{CLUSTER}-live.db.gz"))).unwrap();
    assert!(
        object == files[0],
        "store --from-etcd wrote what snapshot wrote"
    );
    let out = dir.path().join("restored.db");
    let env = with(&server.job_env(), &[("BACKUP_TO_RESTORE", "live.db.gz")]);
    run("restore", &env, &["--output", out.to_str().unwrap()]).assert_code(0);
    assert!(std::fs::read(&out).unwrap() == want, "restored from S3");

    let r = run(
        "snapshot",
        &with(&[], &[endpoint_env, ("COMPRESS_THREADS", "0")]),
        &["--file", dir.path().join("x.db.gz").to_str().unwrap()],
    );
    r.assert_code(78);
    assert!(
        r.error_lines()[0].contains("COMPRESS_THREADS"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_tampered_index_falls_back_and_a_corrupt_member_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_etcd, endpoint, want) = etcd_with_snapshot(dir.path());
    let file = dir.path().join("ours.db.gz");
    run(
        "snapshot",
        &with(&[], &[("ETCD_ENDPOINTS", endpoint.as_str())]),
        &["--file", file.to_str().unwrap()],
    )
    .assert_code(0);
    let gz = std::fs::read(&file).unwrap();
    let entries = index_entries(&gz);

    // Wrong lengths and raw sizes in the index: the same snapshot, from one stream.
    for (member, field, value) in [(1, 0, 100u32), (0, 4, 12345), (2, 0, u32::MAX)] {
        let mut bad = gz.clone();
        let at = entries[member] + field;
        bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
        let tampered = write_file(dir.path(), "tampered.db.gz", &bad);
        let out = dir.path().join("out.db");
        restore_file(&tampered, &out).assert_code(0);
        assert!(
            std::fs::read(&out).unwrap() == want,
            "member {member} field {field}: same output"
        );
        std::fs::remove_file(&out).unwrap();
        // store verifies it the same way.
        let server = S3Server::start();
        let env = with(
            &server.job_env(),
            &[
                ("BACKUP_TO_CREATE", "t.db.gz"),
                ("SNAPSHOT_FILE", tampered.to_str().unwrap()),
            ],
        );
        run("store", &env, &[]).assert_code(0);
    }

    // A corrupt member (its index entry intact): 65, no output, nothing beside it.
    let mut bad = gz.clone();
    bad[entries[1] + 2000] ^= 0x55;
    let corrupt = write_file(dir.path(), "corrupt.db.gz", &bad);
    let outdir = dir.path().join("outdir");
    std::fs::create_dir(&outdir).unwrap();
    let r = restore_file(&corrupt, &outdir.join("out.db"));
    r.assert_code(65);
    assert_eq!(std::fs::read_dir(&outdir).unwrap().count(), 0, "no output");
}
