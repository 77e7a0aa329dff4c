//! A randomized invariant harness: seeded sequences of stores (parallel parts and
//! one PUT, valid and corrupt snapshots), concurrent stores to one key, deletes,
//! retention, restores, and SIGTERM/SIGKILL at random moments, run with the real
//! binaries against s3s-fs. After every step it checks what must always hold:
//!
//! - a store that exited 0 left exactly its bytes at its key, until a delete of the
//!   key or a later successful store to it; a store that failed left the key as it
//!   was; a killed one left it as it was or holding its own whole bytes (then or
//!   later: the server may still complete what it was sent);
//! - no object that no store of this cluster wrote is ever deleted, and retention
//!   keeps the newest backup;
//! - a restore's output is the old file or the new one, whole and verified;
//! - no multipart upload is left behind by a run that was not SIGKILLed;
//! - no exit code outside the README's table, no panic, and every failure has
//!   exactly one error line.
//!
//! s3s-fs keeps an object's data and metadata in two files, so racing writers can
//! tear an object there (see `World::torn`); the harness accepts exactly that, on
//! evidence, and removes the torn object as a user would. Servers that store
//! objects atomically (S3, garage) cannot tear one.
//!
//! `SNAPJOB_SEED` replays one sequence; `SNAPJOB_STEPS` sets its length (default
//! 40). A failing check names the seed and step. `scripts/invariants.sh SECONDS`
//! runs fresh seeds until the time is up (the long run).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// splitmix64: small, seedable, good enough to pick steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Exit codes the README's table allows.
const DOCUMENTED: [i32; 14] = [0, 1, 12, 15, 64, 65, 70, 74, 75, 77, 78, 111, 130, 143];

const HARNESS_CLUSTER: &str = "inv";
const KEYS: [&str; 3] = ["daily-a", "daily-b", "daily-c"];
/// Objects no store of this cluster wrote: another cluster whose name starts
/// like ours, and a foreign file. Nothing may ever delete them.
const FOREIGN: [&str; 2] = ["inv-eu-daily-a", "inv-notes.txt"];

struct World {
    server: S3Server,
    dir: tempfile::TempDir,
    /// What each key of ours may hold (None: absent): one state, or two after
    /// a SIGKILLed store (the server may still complete what it was sent).
    model: BTreeMap<String, Vec<Option<Vec<u8>>>>,
    /// Every valid snapshot offered to a store, by key.
    history: BTreeMap<String, Vec<Vec<u8>>>,
    /// A SIGKILLed multipart store may leave its upload (no sweeper yet).
    killed_uploads: bool,
    seed: u64,
    step: usize,
}

impl World {
    fn key(backup: &str) -> String {
        format!("{HARNESS_CLUSTER}-{backup}")
    }

    fn env(&self, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        with(
            &with(
                &self.server.job_env(),
                &[("CLUSTER", HARNESS_CLUSTER), ("DEADLINE", "60s")],
            ),
            pairs,
        )
    }

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        match std::fs::read(self.server.object_file(key)) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{}: reading {key}: {e}", self.at()),
        }
    }

    fn at(&self) -> String {
        format!(
            "seed {} step {} (replay: SNAPJOB_SEED={} cargo test --test invariants)",
            self.seed, self.step, self.seed
        )
    }

    /// A snapshot file to store: valid (raw or gzip, small or multipart-sized)
    /// or corrupt; returns its path, bytes and whether store must accept it.
    fn snapshot_file(&self, rng: &mut Rng, name: &str) -> (PathBuf, Vec<u8>, bool) {
        let pages = *rng.pick(&[4usize, 40, 1600]);
        let raw = synthetic_snapshot(pages, rng.next());
        let mut bytes = if rng.below(2) == 0 { gzip(&raw) } else { raw };
        let valid = rng.below(5) != 0;
        if !valid {
            match rng.below(2) {
                0 => {
                    let at = bytes.len() / 2;
                    bytes[at] ^= 0x40;
                }
                _ => bytes.truncate(bytes.len() - 1 - rng.below(64) as usize),
            }
        }
        let path = write_file(self.dir.path(), name, &bytes);
        (path, bytes, valid)
    }

    fn check_run(&self, what: &str, code: i32, stderr: &str) {
        let at = self.at();
        assert!(
            DOCUMENTED.contains(&code) || code == -9,
            "{at}: {what} exit {code} is not in the README's table\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{at}: {what}\n{stderr}");
        if code != 0 && code != -9 {
            let errors = stderr
                .lines()
                .filter(|l| l.contains("\"level\":\"ERROR\""))
                .count();
            assert_eq!(errors, 1, "{at}: {what}: one error line\n{stderr}");
        }
    }

    /// Everything that must hold between steps.
    fn check(&self) {
        let at = self.at();
        for (key, allowed) in &self.model {
            let got = self.object(key);
            assert!(
                allowed.contains(&got),
                "{at}: {key} holds {:?} bytes, the model allows {:?}",
                got.as_ref().map(Vec::len),
                allowed
                    .iter()
                    .map(|a| a.as_ref().map(Vec::len))
                    .collect::<Vec<_>>()
            );
        }
        for key in FOREIGN {
            assert!(self.object(key).is_some(), "{at}: {key} was deleted");
        }
        if !self.killed_uploads {
            assert_eq!(
                self.server.leftover_uploads(),
                Vec::<String>::new(),
                "{at}: a multipart upload was left behind"
            );
        }
        let stale: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".snapjob-"))
            .collect();
        assert!(stale.is_empty(), "{at}: temporary files left: {stale:?}");
    }

    /// Runs `bin`, optionally signalled (`signal` after `after` ms), and checks
    /// what every run must satisfy. Returns the exit code (-9: SIGKILLed).
    fn run_bin(
        &self,
        bin: &str,
        env: &[(String, String)],
        args: &[&str],
        signal: Option<(nix::sys::signal::Signal, u64)>,
    ) -> (i32, String) {
        let child = command(bin, env, args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some((sig, after)) = signal {
            // Fault injection at a random moment, not a timing assumption: every
            // outcome of the race is allowed below and checked for what it is.
            std::thread::sleep(Duration::from_millis(after));
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
        }
        let out = child.wait_with_output().unwrap();
        let code = out.status.code().unwrap_or(-9);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains(SECRET_KEY),
            "{}: secret printed",
            self.at()
        );
        self.check_run(bin, code, &stderr);
        (code, stderr)
    }

    fn store(&mut self, rng: &mut Rng) {
        let backup = *rng.pick(&KEYS);
        let key = Self::key(backup);
        let (file, bytes, valid) = self.snapshot_file(rng, &format!("s{}", self.step));
        let multipart = bytes.len() > 5 << 20 && rng.below(2) == 0;
        let mut pairs = vec![
            ("BACKUP_TO_CREATE", backup.to_string()),
            ("SNAPSHOT_FILE", file.display().to_string()),
        ];
        if multipart {
            pairs.push(("SINGLE_PUT_MAX", "0".into()));
            pairs.push(("PART_SIZE", "5MiB".into()));
        }
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let env = self.env(&pairs);
        let signal = match rng.below(4) {
            0 => Some((nix::sys::signal::Signal::SIGTERM, rng.below(400))),
            1 => Some((nix::sys::signal::Signal::SIGKILL, rng.below(400))),
            _ => None,
        };
        let before = self.object(&key);
        if valid {
            self.history
                .entry(key.clone())
                .or_default()
                .push(bytes.clone());
        }
        let (code, stderr) = self.run_bin("store", &env, &[], signal);
        eprintln!(
            "step {}: store {key} ({} bytes, valid {valid}, multipart {multipart}, signal {signal:?}) -> {code}",
            self.step,
            bytes.len()
        );
        let after = self.object(&key);
        let at = self.at();
        match code {
            0 => {
                assert!(valid, "{at}: a corrupt snapshot was stored\n{stderr}");
                assert!(after.as_ref() == Some(&bytes), "{at}: {key} after exit 0");
                self.model.insert(key, vec![Some(bytes)]);
            }
            -9 => {
                if multipart {
                    self.killed_uploads = true;
                }
                assert!(
                    after == before || (valid && after.as_ref() == Some(&bytes)),
                    "{at}: a killed store left other bytes at {key}"
                );
                let mut allowed = vec![after];
                if valid && !allowed.contains(&Some(bytes.clone())) {
                    allowed.push(Some(bytes));
                }
                self.model.insert(key, allowed);
            }
            _ => {
                if !valid && signal.is_none() {
                    assert_eq!(code, 65, "{at}: corrupt snapshot\n{stderr}");
                }
                if signal.is_some_and(|(s, _)| s == nix::sys::signal::Signal::SIGTERM) {
                    assert!([143, 65].contains(&code), "{at}: SIGTERM\n{stderr}");
                }
                assert!(after == before, "{at}: a failed store changed {key}");
            }
        }
    }

    fn concurrent_stores(&mut self, rng: &mut Rng) {
        let backup = *rng.pick(&KEYS);
        let key = Self::key(backup);
        let files: Vec<_> = (0..2)
            .map(|n| {
                let raw = synthetic_snapshot(*rng.pick(&[4usize, 1600]), rng.next());
                let bytes = gzip(&raw);
                let path = write_file(self.dir.path(), &format!("c{}-{n}", self.step), &bytes);
                (path, bytes)
            })
            .collect();
        self.history
            .entry(key.clone())
            .or_default()
            .extend(files.iter().map(|(_, b)| b.clone()));
        let children: Vec<_> = files
            .iter()
            .map(|(path, _)| {
                let env = self.env(&[
                    ("BACKUP_TO_CREATE", backup),
                    ("SNAPSHOT_FILE", path.to_str().unwrap()),
                ]);
                command("store", &env, &[])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let at = self.at();
        let after = self.object(&key);
        eprintln!(
            "step {}: concurrent stores to {key} -> {:?}",
            self.step,
            outs.iter().map(|o| o.status.code()).collect::<Vec<_>>()
        );
        let mut winners = Vec::new();
        let mut stderrs = String::new();
        for (out, (_, bytes)) in outs.iter().zip(&files) {
            let code = out.status.code().unwrap_or(-9);
            let stderr = String::from_utf8_lossy(&out.stderr);
            self.check_run("concurrent store", code, &stderr);
            assert!([0, 65].contains(&code), "{at}: concurrent store\n{stderr}");
            if code == 0 {
                winners.push(bytes.clone());
            }
            stderrs.push_str(&stderr);
        }
        if winners.is_empty() {
            // s3s-fs writes an object's data and its metadata as two files, so
            // two PUTs racing on one key can leave one's bytes with the other's
            // recorded SHA-256 (a server that stores objects atomically, as S3 and
            // garage do, cannot). Both stores then see a digest that is not theirs
            // and report it (65) without deleting anything; the harness removes
            // the torn object as a user would.
            assert!(
                stderrs
                    .matches("another writer stored to the same key")
                    .count()
                    == 2,
                "{at}: both concurrent stores failed\n{stderrs}"
            );
            assert!(after.is_some(), "{at}: {key} was deleted by a failed store");
            let env = self.env(&[("BACKUP_TO_DELETE", backup)]);
            assert_eq!(self.run_bin("delete", &env, &[], None).0, 0, "{at}");
            self.model.insert(key, vec![None]);
            return;
        }
        assert!(
            after.as_ref().is_some_and(|a| winners.contains(a)),
            "{at}: {key} holds bytes no successful store reported"
        );
        self.model.insert(key, vec![after]);
    }

    fn delete(&mut self, rng: &mut Rng) {
        let backup = *rng.pick(&KEYS);
        let key = Self::key(backup);
        let env = self.env(&[("BACKUP_TO_DELETE", backup)]);
        let (code, stderr) = self.run_bin("delete", &env, &[], None);
        eprintln!("step {}: delete {key} -> {code}", self.step);
        assert_eq!(code, 0, "{}: delete\n{stderr}", self.at());
        self.model.insert(key, vec![None]);
    }

    fn retention(&mut self, rng: &mut Rng) {
        let keep = 1 + rng.below(2);
        let mtime_secs = |k: &str| {
            std::fs::metadata(self.server.object_file(k)).ok().map(|m| {
                m.modified()
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            })
        };
        let ours_before: Vec<String> = self
            .model
            .keys()
            .filter(|k| self.object(k).is_some())
            .cloned()
            .collect();
        let newest_before = ours_before.iter().filter_map(|k| mtime_secs(k)).max();
        let env = self.env(&[]);
        let (code, stderr) = self.run_bin("delete", &env, &["--keep", &keep.to_string()], None);
        eprintln!("step {}: delete --keep {keep} -> {code}", self.step);
        let at = self.at();
        assert_eq!(code, 0, "{at}: retention\n{stderr}");
        let left: Vec<&String> = ours_before
            .iter()
            .filter(|k| self.object(k).is_some())
            .collect();
        assert_eq!(
            left.len(),
            ours_before.len().min(keep as usize),
            "{at}: retention kept {left:?} of {ours_before:?}, keep {keep}"
        );
        assert_eq!(
            left.iter().filter_map(|k| mtime_secs(k)).max(),
            newest_before,
            "{at}: the newest backup was deleted"
        );
        for k in ours_before {
            let now = self.object(&k);
            self.model.insert(k, vec![now]);
        }
    }

    fn restore(&mut self, rng: &mut Rng) {
        let backup = *rng.pick(&KEYS);
        let key = Self::key(backup);
        let out = self.dir.path().join("restored.db");
        let old = std::fs::read(&out).ok();
        let env = self.env(&[
            ("BACKUP_TO_RESTORE", backup),
            ("OUTPUT_FILE", out.to_str().unwrap()),
        ]);
        let signal =
            (rng.below(4) == 0).then(|| (nix::sys::signal::Signal::SIGKILL, rng.below(200)));
        let stored = self.object(&key);
        let (code, stderr) = self.run_bin("restore", &env, &[], signal);
        eprintln!(
            "step {}: restore {key} (signal {signal:?}) -> {code}",
            self.step
        );
        let now = std::fs::read(&out).ok();
        let at = self.at();
        let want = stored.as_ref().map(|b| raw_of(b));
        match code {
            0 => assert!(
                now.is_some() && now == want,
                "{at}: restore exit 0 wrote other bytes\n{stderr}"
            ),
            12 => {
                assert!(want.is_none(), "{at}: 12 for an existing {key}");
                assert!(now == old, "{at}: a failed restore changed the output");
            }
            -9 => {
                assert!(
                    now == old || now == want,
                    "{at}: a killed restore left a partial output"
                );
                // A killed run's temporary files are the next run's to remove.
                self.restore_cleans_up(&env, &out);
            }
            65 if self.torn(&key, stored.as_deref(), &stderr) => {
                assert!(now == old, "{at}: a failed restore changed the output");
                let env = self.env(&[("BACKUP_TO_DELETE", backup)]);
                assert_eq!(self.run_bin("delete", &env, &[], None).0, 0, "{at}");
                self.model.insert(key, vec![None]);
            }
            _ => panic!("{at}: restore exit {code}\n{stderr}"),
        }
    }

    /// Whether restore's 65 is an object s3s-fs tore: s3s-fs keeps an object's
    /// data and its metadata in two files, so racing writers (two stores, or a
    /// killed store whose request the server still completes) can leave one's
    /// bytes beside another's recorded SHA-256. Both halves must then be bytes
    /// some store of ours offered for this key; anything else fails the harness.
    fn torn(&self, key: &str, data: Option<&[u8]>, stderr: &str) -> bool {
        let Some(recorded) = stderr
            .split("does not match the recorded ")
            .nth(1)
            .map(|r| r.chars().take(64).collect::<String>())
        else {
            return false;
        };
        let offered = self.history.get(key).map(Vec::as_slice).unwrap_or(&[]);
        data.is_some_and(|d| offered.iter().any(|o| o == d))
            && offered.iter().any(|o| sha256_hex(o) == recorded)
    }

    /// After a SIGKILLed restore: the next one leaves no temporary file behind.
    fn restore_cleans_up(&self, env: &[(String, String)], out: &Path) {
        let _ = self.run_bin("restore", env, &[], None);
        for e in std::fs::read_dir(out.parent().unwrap()).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().contains(".snapjob-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".snapjob-"))
            .collect();
        assert!(
            left.is_empty(),
            "{}: stale restore files: {left:?}",
            self.at()
        );
    }
}

/// The raw snapshot inside a stored object (gzip or not).
fn raw_of(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes.to_vec()
    }
}

#[test]
fn random_sequences_keep_every_invariant() {
    let seed = std::env::var("SNAPJOB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let steps: usize = std::env::var("SNAPJOB_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("invariant harness: seed {seed}, {steps} steps");
    let mut rng = Rng(seed);
    let mut world = World {
        server: S3Server::start(),
        dir: tempfile::tempdir().unwrap(),
        model: KEYS.iter().map(|k| (World::key(k), vec![None])).collect(),
        history: BTreeMap::new(),
        killed_uploads: false,
        seed,
        step: 0,
    };
    // The objects nothing may delete: another cluster's backup (stored by us,
    // under its own CLUSTER) and a file someone else put there.
    let other = write_file(world.dir.path(), "other", &gzip(&synthetic_snapshot(4, 1)));
    let env = with(
        &world.server.job_env(),
        &[
            ("CLUSTER", "inv-eu"),
            ("BACKUP_TO_CREATE", "daily-a"),
            ("SNAPSHOT_FILE", other.to_str().unwrap()),
        ],
    );
    run("store", &env, &[]).assert_code(0);
    std::fs::write(world.server.object_file("inv-notes.txt"), b"notes").unwrap();
    std::fs::remove_file(other).unwrap();
    world.check();
    for step in 1..=steps {
        world.step = step;
        match rng.below(10) {
            0..=3 => world.store(&mut rng),
            4 => world.concurrent_stores(&mut rng),
            5 => world.delete(&mut rng),
            6 => world.retention(&mut rng),
            _ => world.restore(&mut rng),
        }
        for f in std::fs::read_dir(world.dir.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with('s') || name.starts_with('c') {
                let _ = std::fs::remove_file(f.path());
            }
        }
        world.check();
    }
}
