//! Fault injection: a misbehaving proxy between `store` and s3s-fs. Each scenario
//! states the exit code, the final object state (absent, or complete and
//! byte-identical) and that no multipart upload is left behind.

mod common;

use common::proxy::{Fault, Op, Proxy, Rule};
use common::*;

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// A small snapshot in one PUT.
    Small,
    /// A 12 MiB snapshot in 5 MiB parts.
    Parts,
    /// A 12 MiB snapshot in one streaming PUT.
    Streamed,
}

struct Scenario {
    name: &'static str,
    rules: Vec<Rule>,
    /// What is uploaded, and how.
    shape: Shape,
    deadline: &'static str,
    code: i32,
    stored: bool,
    /// (op, expected request count), to prove retries happened or did not.
    counts: Vec<(Op, usize)>,
    /// A log message that proves which path was taken.
    logged: Option<&'static str>,
}

fn run_scenario(s: &Scenario) {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port, s.rules.clone());
    let dir = tempfile::tempdir().unwrap();
    let snapshot = if s.shape == Shape::Small {
        std::fs::read(fixture("etcd-3.4-small.db.gz")).unwrap()
    } else {
        gzip(&synthetic_snapshot(3000, 42))
    };
    let file = write_file(dir.path(), "snapshot.db.gz", &snapshot);
    let env = with(
        &server.job_env(),
        &[
            ("ENDPOINT", &format!("http://127.0.0.1:{}", proxy.port)),
            ("BACKUP_TO_CREATE", "fault.db.gz"),
            ("SNAPSHOT_FILE", file.to_str().unwrap()),
            ("PART_SIZE", "5MiB"),
            (
                "SINGLE_PUT_MAX",
                if s.shape == Shape::Parts { "0" } else { "1GiB" },
            ),
            ("DEADLINE", s.deadline),
        ],
    );
    let r = run("store", &env, &[]);
    assert_eq!(
        r.code,
        s.code,
        "{}: exit code; output:\n{}",
        s.name,
        r.all()
    );
    let key_file = server.object_file(&format!("{CLUSTER}-fault.db.gz"));
    if s.stored {
        assert!(
            std::fs::read(&key_file).unwrap() == snapshot,
            "{}: stored bytes differ",
            s.name
        );
    } else {
        assert!(
            !key_file.exists(),
            "{}: an object was left at the key",
            s.name
        );
        assert_eq!(
            r.error_lines().len(),
            1,
            "{}: one error line:\n{}",
            s.name,
            r.stderr
        );
    }
    assert_eq!(
        server.leftover_uploads(),
        Vec::<String>::new(),
        "{}: leftover upload",
        s.name
    );
    for (op, n) in &s.counts {
        assert_eq!(proxy.count(*op), *n, "{}: requests of {op:?}", s.name);
    }
    if let Some(msg) = s.logged {
        assert!(
            r.stderr.contains(msg),
            "{}: expected log {msg:?}:\n{}",
            s.name,
            r.stderr
        );
    }
}

#[test]
fn transient_faults_are_retried_and_the_backup_is_stored() {
    let scenarios = [
        Scenario {
            name: "503 SlowDown on the 2nd part, once",
            rules: vec![Rule::once(Op::UploadPart, 2, Fault::Status(503))],
            shape: Shape::Parts,
            deadline: "60s",
            code: 0,
            stored: true,
            counts: vec![(Op::UploadPart, 4), (Op::Complete, 1)],
            logged: None,
        },
        Scenario {
            name: "500 on CreateMultipartUpload, once",
            rules: vec![Rule::once(Op::CreateUpload, 1, Fault::Status(500))],
            shape: Shape::Parts,
            deadline: "60s",
            code: 0,
            stored: true,
            counts: vec![(Op::CreateUpload, 2)],
            logged: None,
        },
        Scenario {
            name: "connection reset 1 MiB into the 1st part, once",
            rules: vec![Rule::once(Op::UploadPart, 1, Fault::ResetAfter(1 << 20))],
            shape: Shape::Parts,
            deadline: "60s",
            code: 0,
            stored: true,
            counts: vec![(Op::UploadPart, 4)],
            logged: None,
        },
        Scenario {
            name: "503 on the single PUT, twice",
            rules: vec![Rule {
                op: Op::PutObject,
                first: 1,
                times: 2,
                fault: Fault::Status(503),
            }],
            shape: Shape::Small,
            deadline: "60s",
            code: 0,
            stored: true,
            counts: vec![(Op::PutObject, 3)],
            logged: None,
        },
        Scenario {
            name: "streaming PUT reset 1 MiB into its body, once",
            rules: vec![Rule::once(Op::PutObject, 1, Fault::ResetAfter(1 << 20))],
            shape: Shape::Streamed,
            deadline: "60s",
            code: 0,
            stored: true,
            counts: vec![(Op::PutObject, 2), (Op::CreateUpload, 0)],
            logged: Some("sending it again"),
        },
    ];
    for s in &scenarios {
        run_scenario(s);
    }
}

#[test]
fn a_lost_complete_answer_is_resolved_by_looking_at_the_key() {
    run_scenario(&Scenario {
        name: "the answer to CompleteMultipartUpload is dropped",
        rules: vec![Rule::always(Op::Complete, Fault::DropResponse)],
        shape: Shape::Parts,
        deadline: "60s",
        code: 0,
        stored: true,
        counts: vec![],
        logged: Some("the object at the key has our size and SHA-256: stored"),
    });
}

#[test]
fn persistent_faults_fail_with_the_right_code_and_leave_nothing() {
    let scenarios = [
        Scenario {
            name: "503 on every part: unavailable after retries",
            rules: vec![Rule::always(Op::UploadPart, Fault::Status(503))],
            shape: Shape::Parts,
            deadline: "60s",
            code: 15,
            stored: false,
            counts: vec![(Op::Abort, 1), (Op::Complete, 0)],
            logged: Some("multipart upload aborted"),
        },
        Scenario {
            name: "every part stalls: the deadline ends it",
            rules: vec![Rule::always(Op::UploadPart, Fault::Stall)],
            shape: Shape::Parts,
            deadline: "3s",
            code: 75,
            stored: false,
            counts: vec![(Op::Abort, 1)],
            logged: None,
        },
        Scenario {
            name: "every Complete is reset before it reaches the server",
            rules: vec![Rule::always(Op::Complete, Fault::ResetAfter(0))],
            shape: Shape::Parts,
            deadline: "60s",
            code: 75,
            stored: false,
            counts: vec![(Op::Abort, 1)],
            logged: None,
        },
        Scenario {
            name: "403 on the PUT is not retried",
            rules: vec![Rule::always(Op::PutObject, Fault::Status(403))],
            shape: Shape::Small,
            deadline: "60s",
            code: 77,
            stored: false,
            counts: vec![(Op::PutObject, 1)],
            logged: None,
        },
        Scenario {
            name: "the streaming PUT stalls: the deadline ends it",
            rules: vec![Rule::always(Op::PutObject, Fault::Stall)],
            shape: Shape::Streamed,
            deadline: "3s",
            code: 75,
            stored: false,
            counts: vec![(Op::PutObject, 1)],
            logged: None,
        },
        Scenario {
            name: "500 on every streaming PUT: unavailable after retries",
            rules: vec![Rule::always(Op::PutObject, Fault::Status(500))],
            shape: Shape::Streamed,
            deadline: "60s",
            code: 15,
            stored: false,
            counts: vec![(Op::PutObject, 7)],
            logged: None,
        },
    ];
    for s in &scenarios {
        run_scenario(s);
    }
}
