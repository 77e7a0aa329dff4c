//! The member's `HashKV` recorded with a backup, compared with the snapshot's.
//!
//! `store --from-etcd` asks the member for `HashKV` at its current revision R just
//! before the snapshot and records R, the hash and the member's compact revision
//! (crate::transport::object's `snapjob-revision`, `-hashkv`, `-compact-revision`).
//! The snapshot that follows ends at a revision S >= R and holds every revision
//! after the compact revision, so etcd's `HashKV(R)` can be computed from it
//! ([`super::check_at`]) whenever no compaction ran in between.

use super::DbFacts;
use crate::base::error::{Error, Result};

/// What the metadata records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The revision the member hashed.
    pub revision: i64,
    /// Its hash.
    pub hash: u32,
    /// Its compact revision then, when recorded.
    pub compact_revision: Option<i64>,
}

impl Recorded {
    /// The record from the three metadata values; `None` when the revision and
    /// hash are not both there (s3cmd uploads, older backups, `file://`). A value
    /// that is there but not a number is a data error naming it.
    pub fn parse(
        revision: Option<&str>,
        hash: Option<&str>,
        compact: Option<&str>,
    ) -> Result<Option<Recorded>> {
        let (Some(rev), Some(hash)) = (revision, hash) else {
            return Ok(None);
        };
        let bad = |name: &str, v: &str| {
            Error::Data(format!(
                "the recorded {name} {v:?} (object metadata) is not a number"
            ))
        };
        Ok(Some(Recorded {
            revision: rev
                .trim()
                .parse()
                .map_err(|_| bad("snapjob-revision", rev))?,
            hash: hash
                .trim()
                .parse()
                .map_err(|_| bad("snapjob-hashkv", hash))?,
            compact_revision: compact
                .map(|c| {
                    c.trim()
                        .parse()
                        .map_err(|_| bad("snapjob-compact-revision", c))
                })
                .transpose()?,
        }))
    }
}

/// How a record compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    /// The snapshot gives the member's hash at the member's revision.
    Equal,
    /// The snapshot cannot give `HashKV` at the recorded revision (a compaction
    /// ran between the member's answer and the snapshot): why.
    NotComparable(String),
}

/// Compares `rec` with the snapshot described by `facts`, whose `HashKV` at
/// `rec.revision` is `at` ([`super::check_at`] with `Some(rec.revision)`). A
/// mismatch is a data error naming both values.
pub fn compare(rec: &Recorded, facts: &DbFacts, at: Option<u32>) -> Result<Compared> {
    // -1 and 0 both mean "never compacted" (hashing is the same).
    let norm = |c: i64| c.max(0);
    let ours = norm(facts.compact_revision);
    let theirs = rec.compact_revision.map(norm);
    let mismatch = |why: String| {
        Error::Data(format!(
            "HashKV mismatch: the member answered {} at revision {} (compact revision {}); \
             the backup {why} (compact revision {}, revision {})",
            rec.hash,
            rec.revision,
            rec.compact_revision
                .map_or_else(|| "not recorded".into(), |c| c.to_string()),
            facts.compact_revision,
            facts.revision
        ))
    };
    if rec.revision > facts.revision {
        return Err(mismatch(format!(
            "ends at revision {}, before it",
            facts.revision
        )));
    }
    match theirs {
        Some(c) if c > ours => {
            return Err(mismatch(
                "was compacted less than the member already was".into(),
            ));
        }
        Some(c) if c < ours => {
            return Ok(Compared::NotComparable(format!(
                "the member was compacted from revision {c} to {} between its HashKV at \
                 revision {} and the snapshot",
                facts.compact_revision, rec.revision
            )));
        }
        _ => {}
    }
    if ours > rec.revision {
        return Ok(Compared::NotComparable(format!(
            "the backup is compacted at revision {}, past the recorded revision {}",
            facts.compact_revision, rec.revision
        )));
    }
    let Some(hash) = at else {
        return Err(Error::Other(
            "HashKV at the recorded revision was not computed".into(),
        ));
    };
    if hash != rec.hash {
        return Err(mismatch(format!(
            "gives {hash} at revision {}",
            rec.revision
        )));
    }
    Ok(Compared::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(revision: i64, compact: i64) -> DbFacts {
        DbFacts {
            revision,
            compact_revision: compact,
            ..DbFacts::default()
        }
    }

    #[test]
    fn records_are_read_and_absent_ones_are_none() {
        assert_eq!(Recorded::parse(None, Some("1"), None).unwrap(), None);
        assert_eq!(
            Recorded::parse(Some("12"), Some("4294967295"), Some("-1")).unwrap(),
            Some(Recorded {
                revision: 12,
                hash: u32::MAX,
                compact_revision: Some(-1)
            })
        );
        let e = Recorded::parse(Some("12"), Some("x"), None).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("snapjob-hashkv"), "{e}");
    }

    #[test]
    fn equal_mismatched_and_not_comparable() {
        let rec = Recorded {
            revision: 10,
            hash: 7,
            compact_revision: Some(-1),
        };
        assert_eq!(
            compare(&rec, &facts(12, 0), Some(7)).unwrap(),
            Compared::Equal
        );
        let e = compare(&rec, &facts(12, -1), Some(8)).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        let text = e.to_string();
        assert!(text.contains("answered 7 at revision 10"), "{text}");
        assert!(text.contains("gives 8 at revision 10"), "{text}");
        // Ends before the member's revision.
        assert_eq!(
            compare(&rec, &facts(9, -1), Some(7))
                .unwrap_err()
                .exit_code(),
            65
        );
        // Compacted in between: said, not failed.
        assert!(matches!(
            compare(&rec, &facts(12, 5), None).unwrap(),
            Compared::NotComparable(_)
        ));
        // The record's compaction ahead of the backup's: wrong pairing.
        let ahead = Recorded {
            compact_revision: Some(6),
            ..rec
        };
        assert_eq!(
            compare(&ahead, &facts(12, 5), Some(7))
                .unwrap_err()
                .exit_code(),
            65
        );
    }
}
