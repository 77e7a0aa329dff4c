//! `copy`'s configuration: two locations (`COPY_FROM`, `COPY_TO`), each with its
//! own credentials, and what to copy.
//!
//! The target takes the usual variables (`ACCESS_KEY_ID`, `ENDPOINT`, ...). The
//! source takes the `SOURCE_`-prefixed twin of each, falling back to the target's
//! when unset, with two groups that never mix across sites: the access key and
//! secret (and `SOURCE_SESSION_TOKEN`) are given together or not at all, and
//! `SOURCE_ENDPOINT` brings its own `SOURCE_INSECURE`. Errors name the variable
//! as the user set it (`SOURCE_ENDPOINT=...`, `COPY_TO=...`).

use std::time::Duration;

use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use crate::transport::remote::{Remote, parse_bool};

use super::{Transfer, concurrency, deadline, object_key, part_size, progress};

/// What `copy` copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyWhat {
    /// One object, by its key under the source URL (`--key`, `OBJECT_KEY`).
    Key(String),
    /// Every backup of `cluster` under `prefix` of the source: objects whose
    /// metadata names the cluster (as retention finds them).
    Cluster {
        /// Key prefix listed, `$CLUSTER-` by default.
        prefix: String,
        /// `CLUSTER`.
        cluster: String,
    },
    /// Every backup of a kops etcd-manager store (`--etcd-manager`), or one
    /// backup name when given: its data, then its meta file.
    EtcdManager(Option<String>),
}

/// Configuration of `copy`.
#[derive(Debug, Clone)]
pub struct CopyConfig {
    /// Where backups are read (`COPY_FROM`, `SOURCE_*` credentials).
    pub from: Remote,
    /// Where they are written (`COPY_TO`, the usual credentials).
    pub to: Remote,
    /// What is copied.
    pub what: CopyWhat,
    /// Part size and parts in flight of the target's multipart uploads.
    pub transfer: Transfer,
    /// Internal time budget for the whole run.
    pub deadline: Duration,
    /// Interval of progress lines.
    pub progress: Duration,
}

impl CopyConfig {
    /// Validates the inputs of `copy`; `etcd_manager`: both URLs are kops stores.
    pub fn from_inputs(i: &Inputs, etcd_manager: bool) -> Result<Self> {
        let from_url = i
            .copy_from
            .clone()
            .ok_or_else(|| Error::Config("COPY_FROM (--from) is not set".into()))?;
        let to_url = i
            .copy_to
            .clone()
            .ok_or_else(|| Error::Config("COPY_TO (--to) is not set".into()))?;
        let from = source_remote(i, &from_url)?;
        let to = target_remote(i, &to_url)?;
        if same_place(&from, &to) {
            return Err(Error::Config(format!(
                "COPY_FROM and COPY_TO name the same place ({}); copy goes to another store",
                from.describe("")
            )));
        }
        let all = parse_bool(i.copy_all.as_deref(), "COPY_ALL")?;
        let what = if etcd_manager {
            match (&i.object_key, all) {
                (Some(_), true) => {
                    return Err(Error::Config(
                        "give OBJECT_KEY (--key, a backup name) or COPY_ALL (--all), not both"
                            .into(),
                    ));
                }
                (Some(name), false) => {
                    crate::formats::etcd_manager::check_backup_name(name)
                        .map_err(|e| Error::Config(format!("OBJECT_KEY (--key): {e}")))?;
                    CopyWhat::EtcdManager(Some(name.clone()))
                }
                (None, _) => CopyWhat::EtcdManager(None),
            }
        } else {
            match (&i.object_key, all) {
                (Some(_), true) => {
                    return Err(Error::Config(
                        "give OBJECT_KEY (--key) or COPY_ALL (--all), not both".into(),
                    ));
                }
                (Some(_), false) => CopyWhat::Key(object_key(i, "OBJECT_KEY", None)?),
                (None, false) => {
                    return Err(Error::Config(
                        "give OBJECT_KEY (--key) or COPY_ALL (--all) with CLUSTER".into(),
                    ));
                }
                (None, true) => cluster_scope(i, &from)?,
            }
        };
        let transfer = Transfer {
            part_size: part_size(i, &to)?,
            concurrency: concurrency(i)?,
            single_put_max: 0,
        };
        Ok(CopyConfig {
            from,
            to,
            what,
            transfer,
            deadline: deadline(i, Duration::from_secs(3600))?,
            progress: progress(i)?,
        })
    }
}

/// `--all`: the cluster's backups under `RETENTION_PREFIX` (default `$CLUSTER-`).
fn cluster_scope(i: &Inputs, from: &Remote) -> Result<CopyWhat> {
    let cluster = i.cluster.clone().ok_or_else(|| {
        Error::Config(
            "COPY_ALL needs CLUSTER: copy takes the objects store recorded as this \
             cluster's backups"
                .into(),
        )
    })?;
    crate::transport::remote::header_safe(&cluster, "CLUSTER", false)?;
    if !from.keeps_metadata() {
        return Err(Error::Config(
            "COPY_ALL needs an S3 source: a file:// store keeps no object metadata, so \
             nothing proves which objects are this cluster's backups (copy them by --key)"
                .into(),
        ));
    }
    let prefix = super::delete::cluster_prefix(i, &cluster)?;
    Ok(CopyWhat::Cluster { prefix, cluster })
}

fn same_place(a: &Remote, b: &Remote) -> bool {
    match (a, b) {
        (Remote::Local { root: x }, Remote::Local { root: y }) => x == y,
        (Remote::S3(x), Remote::S3(y)) => {
            x.bucket == y.bucket && x.prefix == y.prefix && x.endpoint == y.endpoint
        }
        _ => false,
    }
}

/// The target: `COPY_TO` with the usual variables.
fn target_remote(i: &Inputs, url: &str) -> Result<Remote> {
    let mut j = i.clone();
    j.storage_url = Some(url.to_string());
    j.bucket_name = None;
    let remote = Remote::from_inputs(&j)
        .map_err(|e| renamed(e, &[("STORAGE_URL", "COPY_TO"), ("BUCKET_NAME", "COPY_TO")]))?;
    Ok(remote)
}

/// The source: `COPY_FROM` with the `SOURCE_*` variables, each falling back to
/// the target's (see the module documentation for the groups).
fn source_remote(i: &Inputs, url: &str) -> Result<Remote> {
    let mut j = i.clone();
    j.storage_url = Some(url.to_string());
    j.bucket_name = None;
    let mut names = vec![("STORAGE_URL", "COPY_FROM"), ("BUCKET_NAME", "COPY_FROM")];
    // Server-side encryption and checksums are asked of the target only: the
    // source is read as it is (an SSE-C source is not supported).
    j.sse = None;
    j.sse_kms_key_id = None;
    j.sse_bucket_key = None;
    j.sse_customer_key = None;
    j.sse_customer_key_file = None;
    j.checksum = None;
    match (&i.source_access_key_id, &i.source_secret_access_key) {
        (Some(id), Some(secret)) => {
            j.access_key_id = Some(id.clone());
            j.secret_access_key = Some(secret.clone());
            j.aws_access_key_id = None;
            j.aws_secret_access_key = None;
            j.aws_session_token = i.source_session_token.clone();
            names.extend([
                ("ACCESS_KEY_ID", "SOURCE_ACCESS_KEY_ID"),
                ("SECRET_ACCESS_KEY", "SOURCE_SECRET_ACCESS_KEY"),
                ("AWS_SESSION_TOKEN", "SOURCE_SESSION_TOKEN"),
            ]);
        }
        (None, None) if i.source_session_token.is_some() => {
            return Err(Error::Config(
                "SOURCE_SESSION_TOKEN needs SOURCE_ACCESS_KEY_ID and SOURCE_SECRET_ACCESS_KEY"
                    .into(),
            ));
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(Error::Config(
                "SOURCE_ACCESS_KEY_ID is set but SOURCE_SECRET_ACCESS_KEY is not: give both \
                 (one site's key never goes with the other's secret)"
                    .into(),
            ));
        }
        (None, Some(_)) => {
            return Err(Error::Config(
                "SOURCE_SECRET_ACCESS_KEY is set but SOURCE_ACCESS_KEY_ID is not: give both \
                 (one site's key never goes with the other's secret)"
                    .into(),
            ));
        }
    }
    if let Some(endpoint) = &i.source_endpoint {
        j.endpoint = Some(endpoint.clone());
        j.aws_endpoint_url_s3 = None;
        j.aws_endpoint_url = None;
        j.insecure = i.source_insecure.clone();
        names.extend([
            ("ENDPOINT", "SOURCE_ENDPOINT"),
            ("INSECURE", "SOURCE_INSECURE"),
        ]);
    } else if let Some(insecure) = &i.source_insecure {
        j.insecure = Some(insecure.clone());
        names.push(("INSECURE", "SOURCE_INSECURE"));
    }
    if let Some(region) = &i.source_region {
        j.region = Some(region.clone());
        j.aws_region = None;
        j.aws_default_region = None;
        names.push(("REGION", "SOURCE_REGION"));
    }
    if let Some(ca) = &i.source_ca_bundle {
        j.ca_bundle = Some(ca.clone());
        names.push(("CA_BUNDLE", "SOURCE_CA_BUNDLE"));
    }
    Remote::from_inputs(&j).map_err(|e| renamed(e, &names))
}

/// `e` with each variable name replaced by the one the user set, as a whole word
/// (`ENDPOINT` in `AWS_ENDPOINT_URL` is left alone). The class is kept.
fn renamed(e: Error, names: &[(&str, &str)]) -> Error {
    match e {
        Error::Config(text) => Error::Config(rename_words(&text, names)),
        other => other,
    }
}

fn rename_words(text: &str, names: &[(&str, &str)]) -> String {
    let is_word = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_word(c)).unwrap_or(tail.len());
        let word = &tail[..end];
        out.push_str(
            names
                .iter()
                .find(|(from, _)| *from == word)
                .map_or(word, |(_, to)| to),
        );
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::from_env_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const BASE: [(&str, &str); 5] = [
        ("COPY_FROM", "s3://site-a/etcd"),
        ("COPY_TO", "s3://site-b"),
        ("ACCESS_KEY_ID", "TARGETKEY"),
        ("SECRET_ACCESS_KEY", "target-secret-value"),
        ("OBJECT_KEY", "c-1.db.gz"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Inputs {
        let mut pairs: Vec<_> = BASE
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        pairs.extend_from_slice(extra);
        inputs(&pairs)
    }

    /// The static key pair of S3 settings.
    fn keys(s: &crate::transport::remote::S3Settings) -> (&str, &str) {
        match &s.credentials {
            crate::transport::remote::Credentials::Static {
                access_key_id,
                secret_access_key,
                ..
            } => (access_key_id.expose(), secret_access_key.expose()),
            other => panic!("not static keys: {other:?}"),
        }
    }

    #[test]
    fn the_source_falls_back_to_the_targets_settings_and_takes_its_own() {
        let cfg = CopyConfig::from_inputs(
            &with(&[("ENDPOINT", "minio-b:9000"), ("INSECURE", "true")]),
            false,
        )
        .unwrap();
        let (Remote::S3(a), Remote::S3(b)) = (&cfg.from, &cfg.to) else {
            panic!("s3")
        };
        assert_eq!(keys(a).0, "TARGETKEY");
        assert_eq!(a.endpoint.as_deref(), Some("http://minio-b:9000"));
        assert_eq!(a.prefix.as_deref(), Some("etcd"));
        assert_eq!(b.bucket, "site-b");
        assert_eq!(cfg.what, CopyWhat::Key("c-1.db.gz".into()));

        let cfg = CopyConfig::from_inputs(
            &with(&[
                ("ENDPOINT", "minio-b:9000"),
                ("INSECURE", "true"),
                ("SOURCE_ENDPOINT", "https://minio-a"),
                ("SOURCE_ACCESS_KEY_ID", "SOURCEKEY"),
                ("SOURCE_SECRET_ACCESS_KEY", "source-secret-value"),
                ("SOURCE_REGION", "eu-west-3"),
            ]),
            false,
        )
        .unwrap();
        let (Remote::S3(a), Remote::S3(b)) = (&cfg.from, &cfg.to) else {
            panic!("s3")
        };
        assert_eq!(keys(a).0, "SOURCEKEY");
        assert_eq!(keys(a).1, "source-secret-value");
        // SOURCE_ENDPOINT brings its own SOURCE_INSECURE (unset: https).
        assert_eq!(a.endpoint.as_deref(), Some("https://minio-a"));
        assert_eq!(a.region.as_deref(), Some("eu-west-3"));
        assert_eq!(keys(b).0, "TARGETKEY");
        assert_eq!(b.endpoint.as_deref(), Some("http://minio-b:9000"));
    }

    #[test]
    fn errors_name_the_variable_as_set_and_never_a_secret() {
        let cases: [(&[(&'static str, &'static str)], &str); 7] = [
            (&[("SOURCE_ENDPOINT", "ftp://x")], "SOURCE_ENDPOINT="),
            (&[("SOURCE_INSECURE", "maybe")], "SOURCE_INSECURE="),
            (
                &[("SOURCE_ACCESS_KEY_ID", "A")],
                "SOURCE_SECRET_ACCESS_KEY is not",
            ),
            (
                &[
                    ("SOURCE_ACCESS_KEY_ID", "A\n"),
                    ("SOURCE_SECRET_ACCESS_KEY", "sEcReT-src"),
                ],
                "SOURCE_ACCESS_KEY_ID ends with a newline",
            ),
            (&[("COPY_FROM", "gopher://x")], "COPY_FROM="),
            (&[("COPY_TO", "s3://B")], "COPY_TO="),
            (&[("COPY_TO", "s3://site-a/etcd")], "the same place"),
        ];
        for (extra, want) in cases {
            let err = CopyConfig::from_inputs(&with(extra), false).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{err}");
            let text = err.to_string();
            assert!(text.contains(want), "{text} should say {want}");
            assert!(!text.contains("sEcReT"), "{text}");
            assert!(!text.contains("target-secret"), "{text}");
        }
        let err =
            CopyConfig::from_inputs(&with(&[("SOURCE_CA_BUNDLE", "/nonexistent.pem")]), false)
                .unwrap_err();
        assert!(err.to_string().starts_with("SOURCE_CA_BUNDLE"), "{err}");
    }

    #[test]
    fn what_to_copy() {
        let all = inputs(&[
            ("COPY_FROM", "s3://site-a"),
            ("COPY_TO", "file:///tmp/site-b"),
            ("ACCESS_KEY_ID", "K"),
            ("SECRET_ACCESS_KEY", "S"),
            ("COPY_ALL", "true"),
            ("CLUSTER", "prod"),
        ]);
        let cfg = CopyConfig::from_inputs(&all, false).unwrap();
        assert_eq!(
            cfg.what,
            CopyWhat::Cluster {
                prefix: "prod-".into(),
                cluster: "prod".into()
            }
        );
        let kops = CopyConfig::from_inputs(&all, true).unwrap();
        assert_eq!(kops.what, CopyWhat::EtcdManager(None));
        // Neither, both, or --all from a store without metadata: 78.
        for (pairs, want) in [
            (
                vec![("COPY_FROM", "s3://a-1"), ("COPY_TO", "s3://b-1")],
                "OBJECT_KEY",
            ),
            (
                vec![
                    ("COPY_FROM", "s3://a-1"),
                    ("COPY_TO", "s3://b-1"),
                    ("COPY_ALL", "1"),
                    ("OBJECT_KEY", "k"),
                ],
                "not both",
            ),
            (
                vec![
                    ("COPY_FROM", "file:///a"),
                    ("COPY_TO", "s3://b-1"),
                    ("COPY_ALL", "1"),
                    ("CLUSTER", "prod"),
                ],
                "keeps no object metadata",
            ),
            (vec![("COPY_TO", "s3://b-1")], "COPY_FROM"),
        ] {
            let mut p = pairs.clone();
            p.extend([("ACCESS_KEY_ID", "K"), ("SECRET_ACCESS_KEY", "S")]);
            let err = CopyConfig::from_inputs(&inputs(&p), false).unwrap_err();
            assert_eq!(err.exit_code(), 78);
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn words_are_renamed_whole() {
        assert_eq!(
            rename_words(
                "ENDPOINT=\"x\" (nor AWS_ENDPOINT_URL); INSECURE",
                &[
                    ("ENDPOINT", "SOURCE_ENDPOINT"),
                    ("INSECURE", "SOURCE_INSECURE")
                ]
            ),
            "SOURCE_ENDPOINT=\"x\" (nor AWS_ENDPOINT_URL); SOURCE_INSECURE"
        );
    }
}
