//! Slow uploads against stalled ones (`STALL_TIMEOUT`, lib/transport/stall.rs):
//! a request whose body keeps moving is never cut, however long it takes
//! (reqwest's read timeout would cut it once it outlasts the timeout); a
//! connection that takes nothing is cut after the limit and the request sent
//! again. A throttling proxy on loopback is the slow link: s3s-fs and
//! fake-gcs-server behind it.

mod common;

use std::time::Duration;

use common::gcs::FakeGcs;
use common::proxy::{Fault, Op, Proxy, Rule};
use common::*;

/// The stall limit of these tests.
const STALL: Duration = Duration::from_secs(3);

/// Stores a 24 MiB raw snapshot through a proxy that reads `op`'s bodies at
/// `rate` bytes per second, `extra` set; checks the object is stored whole
/// with no request sent twice, and that each of `op`'s requests of 8 MiB or
/// more took longer than the stall limit (or the test proves nothing).
fn slow_store_is_stored(shape: &str, op: Op, rate: u64, extra: &[(&str, &str)]) {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, vec![Rule::always(op, Fault::Throttle(rate))]);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = synthetic_snapshot(6 * 1024, 11);
    let file = write_file(dir.path(), "snapshot.db", &snapshot);
    let env = with(
        &server.job_env(),
        &[
            ("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port)),
            ("BACKUP_TO_CREATE", "slow.db"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("STALL_TIMEOUT", &format!("{}s", STALL.as_secs())),
            ("DEADLINE", "120s"),
        ],
    );
    let r = run("store", &with(&env, extra), &[]);
    r.assert_code(0);
    assert!(
        std::fs::read(server.object_file(&format!("{CLUSTER}-slow.db"))).unwrap() == snapshot,
        "{shape}: stored bytes differ"
    );
    // The whole parts (the last holds the 32 bytes past 24 MiB).
    let seen: Vec<_> = proxy
        .seen(op)
        .into_iter()
        .filter(|s| s.body_len >= 8 << 20)
        .collect();
    assert!(
        !seen.is_empty(),
        "{shape}: no {op:?} went through the proxy"
    );
    for s in &seen {
        assert!(
            s.took > STALL,
            "{shape}: a {op:?} took {:?}, not longer than the stall limit: the test proves nothing",
            s.took
        );
    }
    assert!(
        !r.stderr.contains("sending it again"),
        "{shape}: a slow request was retried:\n{}",
        r.stderr
    );
    assert_eq!(server.leftover_uploads(), Vec::<String>::new());
}

#[test]
fn a_single_put_slower_than_the_stall_limit_is_stored() {
    // 24 MiB at 4 MiB/s: at least 6 s for one request, 1 MiB chunks each 0.25 s.
    slow_store_is_stored("one PUT", Op::PutObject, 4 << 20, &[]);
}

#[test]
fn parts_slower_than_the_stall_limit_are_stored() {
    // 8 MiB parts at 1 MiB/s each: at least 8 s per part.
    slow_store_is_stored(
        "parts",
        Op::UploadPart,
        1 << 20,
        &[("SINGLE_PUT_MAX", "0"), ("PART_SIZE", "8MiB")],
    );
}

#[test]
fn a_connection_that_takes_nothing_is_cut_after_the_stall_limit_and_sent_again() {
    let server = S3Server::start();
    // The first PUT is never read; the second goes through.
    let proxy = Proxy::start(
        server.port,
        vec![Rule::once(Op::PutObject, 1, Fault::Stall)],
    );
    let dir = tempfile::tempdir().unwrap();
    let snapshot = synthetic_snapshot(1024, 12);
    let file = write_file(dir.path(), "snapshot.db", &snapshot);
    let r = run(
        "store",
        &with(
            &server.job_env(),
            &[
                ("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port)),
                ("BACKUP_TO_CREATE", "stalled.db"),
                ("SNAPSHOT_FILE", file.to_str().unwrap()),
                ("STALL_TIMEOUT", "2s"),
                // Far under the 30 s default limit: only STALL_TIMEOUT can cut it in time.
                ("DEADLINE", "20s"),
            ],
        ),
        &[],
    );
    r.assert_code(0);
    assert_eq!(proxy.count(Op::PutObject), 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no progress for 2 s (STALL_TIMEOUT)"),
        "the retry names the stall:\n{}",
        r.stderr
    );
    assert!(
        std::fs::read(server.object_file(&format!("{CLUSTER}-stalled.db"))).unwrap() == snapshot
    );
}

#[test]
fn gcs_chunks_slower_than_the_stall_limit_are_stored() {
    let gcs = FakeGcs::start();
    // Chunk uploads are PUTs to the session URL.
    let proxy = Proxy::start_for_gcs(
        gcs.port,
        vec![Rule::always(Op::PutObject, Fault::Throttle(2 << 20))],
    );
    let dir = tempfile::tempdir().unwrap();
    let snapshot = synthetic_snapshot(6 * 1024, 13);
    let file = write_file(dir.path(), "slow.db", &snapshot);
    let r = run(
        "store",
        &with(
            &gcs.job_env("etcd"),
            &[
                (
                    "STORAGE_EMULATOR_HOST",
                    &format!("127.0.0.1:{}", proxy.port),
                ),
                ("BACKUP_TO_CREATE", "slow.db"),
                ("SNAPSHOT_FILE", file.to_str().unwrap()),
                // Two 12 MiB chunks at 2 MiB/s: at least 6 s each.
                ("PART_SIZE", "12MiB"),
                ("STALL_TIMEOUT", "3s"),
                ("DEADLINE", "120s"),
            ],
        ),
        &[],
    );
    r.assert_code(0);
    let chunks = proxy.seen(Op::PutObject);
    // 12 + 12 MiB, and the last 32 bytes (a chunk is a multiple of 256 KiB).
    assert_eq!(chunks.len(), 3, "{}", r.stderr);
    let big: Vec<_> = chunks.iter().filter(|c| c.body_len >= 12 << 20).collect();
    assert_eq!(big.len(), 2, "{}", r.stderr);
    for c in big {
        assert!(
            c.took > STALL,
            "a chunk took {:?}: the test proves nothing",
            c.took
        );
    }
    let back = dir.path().join("back.db");
    gcs.download(&format!("etcd/{CLUSTER}-slow.db"), &back);
    assert!(std::fs::read(&back).unwrap() == snapshot);
}
