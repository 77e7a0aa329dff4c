//! Configuration of `verify` and `list`: which backups, where.

use std::path::PathBuf;
use std::time::Duration;

use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use crate::transport::remote::{Remote, header_safe};

/// Which backups `verify` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One object key.
    Key(String),
    /// The newest `n` backups of `cluster` (by the object metadata `store`
    /// records) under `prefix`.
    Latest {
        /// How many.
        n: usize,
        /// The cluster whose backups count.
        cluster: String,
        /// Key prefix listed.
        prefix: String,
    },
    /// Every object under `prefix`.
    All {
        /// Key prefix listed.
        prefix: String,
    },
}

/// Configuration of `verify`.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Where the backups are.
    pub remote: Remote,
    /// Which.
    pub selection: Selection,
    /// Where one snapshot at a time is downloaded (and removed).
    pub temp_dir: PathBuf,
    /// Internal time budget for the whole run.
    pub deadline: Duration,
    /// Interval of progress lines.
    pub progress: Duration,
    /// Also build a member data dir from each backup (in a temporary directory)
    /// and check it.
    pub restore_test: bool,
}

/// The flags `verify` adds to the common inputs.
#[derive(Debug, Clone, Default)]
pub struct VerifyFlags {
    /// `--latest N`.
    pub latest: Option<String>,
    /// `--all`.
    pub all: bool,
    /// `--prefix P`.
    pub prefix: Option<String>,
    /// `--temp-dir DIR`.
    pub temp_dir: Option<String>,
    /// `--restore-test`.
    pub restore_test: bool,
}

impl VerifyConfig {
    /// Validates the inputs: exactly one of `--key` (or `OBJECT_KEY`), `--latest N`
    /// and `--all`.
    pub fn from_inputs(i: &Inputs, f: &VerifyFlags) -> Result<Self> {
        let remote = Remote::from_inputs(i)?;
        let chosen = [i.object_key.is_some(), f.latest.is_some(), f.all];
        if chosen.iter().filter(|c| **c).count() != 1 {
            return Err(Error::Usage(
                "verify needs exactly one of --key KEY (OBJECT_KEY), --latest N and --all".into(),
            ));
        }
        let prefix = || -> Result<String> {
            match (&f.prefix, &i.cluster) {
                (Some(p), _) => Ok(p.clone()),
                (None, Some(c)) => Ok(format!("{c}-")),
                (None, None) => Err(Error::Config(
                    "--latest and --all list the backups under --prefix, by default $CLUSTER-: \
                     set CLUSTER or --prefix"
                        .into(),
                )),
            }
        };
        let selection = if i.object_key.is_some() {
            Selection::Key(super::object_key(i, "OBJECT_KEY", None)?)
        } else if let Some(raw) = &f.latest {
            let n = super::parse_count(raw, "--latest", 1, 100_000)?;
            let cluster = i.cluster.clone().ok_or_else(|| {
                Error::Config(
                    "--latest needs CLUSTER: it picks the backups store recorded as this \
                     cluster's"
                        .into(),
                )
            })?;
            header_safe(&cluster, "CLUSTER", false)?;
            if !remote.keeps_metadata() {
                return Err(Error::Config(
                    "--latest needs an S3 store: a file:// store keeps no object metadata, so \
                     nothing proves which objects are this cluster's backups (use --all)"
                        .into(),
                ));
            }
            Selection::Latest {
                n,
                prefix: prefix()?,
                cluster,
            }
        } else {
            Selection::All { prefix: prefix()? }
        };
        let temp_dir = match &f.temp_dir {
            Some(d) => PathBuf::from(d),
            None => std::env::temp_dir(),
        };
        Ok(VerifyConfig {
            remote,
            selection,
            temp_dir,
            deadline: super::deadline(i, Duration::from_secs(3600))?,
            progress: super::progress(i)?,
            restore_test: f.restore_test,
        })
    }
}

/// Configuration of `list`.
#[derive(Debug, Clone)]
pub struct ListConfig {
    /// Where the backups are.
    pub remote: Remote,
    /// Key prefix listed (`--prefix`, else `$CLUSTER-`, else everything at the root).
    pub prefix: String,
    /// Internal time budget.
    pub deadline: Duration,
}

impl ListConfig {
    /// Validates the inputs of `list`.
    pub fn from_inputs(i: &Inputs, prefix: Option<String>) -> Result<Self> {
        Ok(ListConfig {
            remote: Remote::from_inputs(i)?,
            prefix: prefix
                .or_else(|| i.cluster.as_ref().map(|c| format!("{c}-")))
                .unwrap_or_default(),
            deadline: super::deadline(i, Duration::from_secs(110))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::inputs;
    use super::*;

    #[test]
    fn exactly_one_selection() {
        let none = VerifyConfig::from_inputs(&inputs(&[]), &VerifyFlags::default());
        assert_eq!(none.unwrap_err().exit_code(), 64);
        let both = VerifyFlags {
            latest: Some("2".into()),
            all: true,
            ..VerifyFlags::default()
        };
        assert_eq!(
            VerifyConfig::from_inputs(&inputs(&[]), &both)
                .unwrap_err()
                .exit_code(),
            64
        );
        let latest = VerifyFlags {
            latest: Some("2".into()),
            ..VerifyFlags::default()
        };
        let cfg = VerifyConfig::from_inputs(&inputs(&[]), &latest).unwrap();
        assert_eq!(
            cfg.selection,
            Selection::Latest {
                n: 2,
                cluster: "xyz123".into(),
                prefix: "xyz123-".into()
            }
        );
        let zero = VerifyFlags {
            latest: Some("0".into()),
            ..VerifyFlags::default()
        };
        let err = VerifyConfig::from_inputs(&inputs(&[]), &zero).unwrap_err();
        assert!(err.to_string().contains("--latest"), "{err}");
        let key = VerifyConfig::from_inputs(
            &inputs(&[("OBJECT_KEY", "xyz123-a")]),
            &VerifyFlags::default(),
        )
        .unwrap();
        assert_eq!(key.selection, Selection::Key("xyz123-a".into()));
    }
}
