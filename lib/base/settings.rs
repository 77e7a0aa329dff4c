//! Raw settings as the Job gives them: environment variables and flags, as text.
//!
//! [`Inputs`] holds one optional string per setting. The binaries build one from
//! the process environment ([`Inputs::from_env_vars`], via envy) and one from their
//! flags, and [`Inputs::overlay`] lets flags win. Nothing here is validated; the
//! `config` module turns inputs into typed configuration and names the variable
//! at fault. The library never reads the environment itself.

use serde::Deserialize;

/// A secret value: never printed, never in `Debug` output, dropped after use.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text, for handing to the store client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Every setting, by its environment variable name (field names upper-cased).
/// Empty strings count as unset.
#[derive(Debug, Default, Clone, Deserialize)]
#[non_exhaustive]
pub struct Inputs {
    /// `ACCESS_KEY_ID` (fallback `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<Secret>,
    /// `SECRET_ACCESS_KEY` (fallback `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<Secret>,
    /// `AWS_ACCESS_KEY_ID`.
    pub aws_access_key_id: Option<Secret>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub aws_secret_access_key: Option<Secret>,
    /// `AWS_SESSION_TOKEN`: temporary credentials.
    pub aws_session_token: Option<Secret>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`: without static keys, exchange this token
    /// for temporary credentials (with `AWS_ROLE_ARN`).
    pub aws_web_identity_token_file: Option<String>,
    /// `AWS_ROLE_ARN`: the role to assume with the web identity token.
    pub aws_role_arn: Option<String>,
    /// `AWS_ROLE_SESSION_NAME`: the session name of that role (optional).
    pub aws_role_session_name: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`: the STS endpoint (default `https://sts.$REGION.amazonaws.com`).
    pub aws_endpoint_url_sts: Option<String>,
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`: ECS task credentials.
    pub aws_container_credentials_relative_uri: Option<String>,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`: EKS Pod Identity credentials.
    pub aws_container_credentials_full_uri: Option<String>,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`: the token for that URI.
    pub aws_container_authorization_token_file: Option<String>,
    /// `AWS_METADATA_ENDPOINT`: object_store's name for the instance metadata
    /// endpoint (`AWS_EC2_METADATA_SERVICE_ENDPOINT` wins).
    pub aws_metadata_endpoint: Option<String>,
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`: the instance metadata (IMDSv2)
    /// endpoint, default `http://169.254.169.254`.
    pub aws_ec2_metadata_service_endpoint: Option<String>,
    /// `AWS_EC2_METADATA_DISABLED`: `true` never asks instance metadata.
    pub aws_ec2_metadata_disabled: Option<String>,
    /// `AWS_PROFILE`: the profile of the shared files (default `default`).
    pub aws_profile: Option<String>,
    /// `AWS_SHARED_CREDENTIALS_FILE`: default `$HOME/.aws/credentials`.
    pub aws_shared_credentials_file: Option<String>,
    /// `AWS_CONFIG_FILE`: default `$HOME/.aws/config`.
    pub aws_config_file: Option<String>,
    /// `HOME`: where the default shared files are.
    pub home: Option<String>,
    /// `BUCKET_NAME`.
    pub bucket_name: Option<String>,
    /// `ENDPOINT` (fallbacks `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// `AWS_ENDPOINT_URL_S3`.
    pub aws_endpoint_url_s3: Option<String>,
    /// `AWS_ENDPOINT_URL`.
    pub aws_endpoint_url: Option<String>,
    /// `INSECURE`: `true` means plain HTTP (not "skip TLS verification").
    pub insecure: Option<String>,
    /// `REGION` (fallbacks `AWS_REGION`, `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// `AWS_REGION`.
    pub aws_region: Option<String>,
    /// `AWS_DEFAULT_REGION`.
    pub aws_default_region: Option<String>,
    /// `STORAGE_URL`: `s3://bucket[/prefix]` or `file:///dir`, instead of `BUCKET_NAME`.
    pub storage_url: Option<String>,
    /// `CA_BUNDLE`: PEM file of extra trusted CAs (default `/etc/ca-bundle/ca-bundle.pem`).
    pub ca_bundle: Option<String>,
    /// `CLUSTER`: first half of the object key.
    pub cluster: Option<String>,
    /// `BACKUP_TO_CREATE`: second half of the key, for `store`.
    pub backup_to_create: Option<String>,
    /// `BACKUP_TO_DELETE`: second half of the key, for `delete`.
    pub backup_to_delete: Option<String>,
    /// `BACKUP_TO_RESTORE`: second half of the key, for `restore`.
    pub backup_to_restore: Option<String>,
    /// `OBJECT_KEY`: the whole key, instead of `$CLUSTER-$BACKUP_TO_*`.
    pub object_key: Option<String>,
    /// `SNAPSHOT_FILE`: what `store` uploads (default `/backup/snapshot.db.gz`).
    pub snapshot_file: Option<String>,
    /// `OUTPUT_FILE`: where `restore` writes the snapshot.
    pub output_file: Option<String>,
    /// `PART_SIZE`: multipart part size, e.g. `16MiB`.
    pub part_size: Option<String>,
    /// `CONCURRENCY`: parts in flight at once.
    pub concurrency: Option<String>,
    /// `SINGLE_PUT_MAX`: files up to this size go in one streaming PUT.
    pub single_put_max: Option<String>,
    /// `SIGNED_PAYLOAD`: `true` signs the body's SHA-256 too (the server checks it).
    pub signed_payload: Option<String>,
    /// `SSE`: server-side encryption, `AES256` or `aws:kms`.
    pub sse: Option<String>,
    /// `SSE_KMS_KEY_ID`: the KMS key of `SSE=aws:kms`.
    pub sse_kms_key_id: Option<String>,
    /// `SSE_BUCKET_KEY`: `true` asks S3 for a bucket key with `SSE=aws:kms`.
    pub sse_bucket_key: Option<String>,
    /// `SSE_CUSTOMER_KEY`: SSE-C, base64 of a 256-bit key.
    pub sse_customer_key: Option<Secret>,
    /// `SSE_CUSTOMER_KEY_FILE`: SSE-C, the key from this file.
    pub sse_customer_key_file: Option<String>,
    /// `CHECKSUM`: `sha256` sends `x-amz-checksum-sha256` with uploads.
    pub checksum: Option<String>,
    /// `ADDRESSING`: `auto`, `path` or `virtual` (bucket in the host).
    pub addressing: Option<String>,
    /// `DEADLINE`: internal time budget, e.g. `110s`.
    pub deadline: Option<String>,
    /// `STALL_TIMEOUT`: how long a connection may make no progress, e.g. `30s`.
    pub stall_timeout: Option<String>,
    /// `ETCD_DATA_DIR`: restore into this member data dir.
    pub etcd_data_dir: Option<String>,
    /// `ETCD_NAME`: the member's name.
    pub etcd_name: Option<String>,
    /// `ETCD_INITIAL_CLUSTER`: `name=url,…`.
    pub etcd_initial_cluster: Option<String>,
    /// `ETCD_INITIAL_CLUSTER_TOKEN`.
    pub etcd_initial_cluster_token: Option<String>,
    /// `ETCD_INITIAL_ADVERTISE_PEER_URLS`.
    pub etcd_initial_advertise_peer_urls: Option<String>,
    /// `ETCD_WAL_DIR`: a WAL dir outside the data dir.
    pub etcd_wal_dir: Option<String>,
    /// `SKIP_HASH_CHECK`: accept a snapshot without its SHA-256 trailer.
    pub skip_hash_check: Option<String>,
    /// `ETCD_V34`: write etcdctl 3.4's WAL variant.
    pub etcd_v34: Option<String>,
    /// `BUMP_REVISION`: raise the restored store's revision by this much.
    pub bump_revision: Option<String>,
    /// `MARK_COMPACTED`: mark the bumped revision compacted (with `BUMP_REVISION`).
    pub mark_compacted: Option<String>,
    /// `RESTORE_BEFORE`: restore the newest backup at or before this time.
    pub restore_before: Option<String>,
    /// `RESTORE_PRESET`: `kkp` or `kube-dc` fills in the membership settings.
    pub restore_preset: Option<String>,
    /// `POD_NAME`: the etcd pod (KKP preset).
    pub pod_name: Option<String>,
    /// `NAMESPACE`: the cluster's namespace (KKP preset; default `cluster-$CLUSTER`).
    pub namespace: Option<String>,
    /// `CLUSTER_SIZE`: etcd members (KKP preset; default 3).
    pub cluster_size: Option<String>,
    /// `FROM_ETCD`: `store` takes the snapshot from etcd instead of a file.
    pub from_etcd: Option<String>,
    /// `ETCD_ENDPOINTS`: client URLs, comma-separated, tried in order.
    pub etcd_endpoints: Option<String>,
    /// `ETCD_CA_FILE`: CA of the etcd server certificate.
    pub etcd_ca_file: Option<String>,
    /// `ETCD_CLIENT_CERT_FILE`: client certificate for etcd.
    pub etcd_client_cert_file: Option<String>,
    /// `ETCD_CLIENT_KEY_FILE`: client key for etcd.
    pub etcd_client_key_file: Option<String>,
    /// `ETCD_DIAL_TIMEOUT`: per endpoint, until the first snapshot bytes.
    pub etcd_dial_timeout: Option<String>,
    /// `ETCD_STREAM_TIMEOUT`: longest silence in the middle of the stream.
    pub etcd_stream_timeout: Option<String>,
    /// `COMPRESS`: `gzip` or `none`, for snapshots taken from etcd.
    pub compress: Option<String>,
    /// `COMPRESS_LEVEL`: gzip level 1-9.
    pub compress_level: Option<String>,
    /// `COMPRESS_THREADS`: threads compressing gzip members (default: the CPUs allowed).
    pub compress_threads: Option<String>,
    /// `BACKUP_STORE`: a kops etcd-manager backup store URL (its layout is used).
    pub backup_store: Option<String>,
    /// `ETCD_VERSION`: etcd version for an etcd-manager meta file.
    pub etcd_version: Option<String>,
    /// `MEMBER_COUNT`: member count for an etcd-manager meta file.
    pub member_count: Option<String>,
    /// `TERMINATION_LOG`: where the JSON summary goes (default `/dev/termination-log`).
    pub termination_log: Option<String>,
    /// `PUSHGATEWAY_URL`: push metrics there after the run.
    pub pushgateway_url: Option<String>,
    /// `KEEP_LAST`: `delete` keeps this many newest backups under the prefix (opt-in).
    pub keep_last: Option<String>,
    /// `RETENTION_PREFIX`: the prefix retention applies to (default `$CLUSTER-`).
    pub retention_prefix: Option<String>,
    /// `KEEP_HOURLY`: keep the newest backup of each of the last N hours that hold one.
    pub keep_hourly: Option<String>,
    /// `KEEP_DAILY`: the same per day.
    pub keep_daily: Option<String>,
    /// `KEEP_WEEKLY`: the same per ISO week.
    pub keep_weekly: Option<String>,
    /// `KEEP_MONTHLY`: the same per month.
    pub keep_monthly: Option<String>,
    /// `KEEP_YEARLY`: the same per year.
    pub keep_yearly: Option<String>,
    /// `KEEP_WITHIN`: keep every backup within this span (`2y5m7d3h`) of the newest.
    pub keep_within: Option<String>,
    /// `RETENTION_TIMEZONE`: the UTC offset periods are taken in (default UTC).
    pub retention_timezone: Option<String>,
    /// `DRY_RUN`: print the retention plan and delete nothing.
    pub dry_run: Option<String>,
    /// `ABORT_INCOMPLETE`: `delete` aborts the incomplete multipart uploads under
    /// the prefix (`RETENTION_PREFIX`, default `$CLUSTER-`).
    pub abort_incomplete: Option<String>,
    /// `ABORT_OLDER_THAN`: only those initiated at least this long ago (default 24h).
    pub abort_older_than: Option<String>,
    /// `PROGRESS_INTERVAL`: seconds between progress lines (default 5; 0: every update).
    pub progress_interval: Option<String>,
    /// `COPY_FROM`: `copy`'s source URL (`s3://bucket[/prefix]`, `file:///dir`).
    pub copy_from: Option<String>,
    /// `COPY_TO`: `copy`'s target URL.
    pub copy_to: Option<String>,
    /// `COPY_ALL`: `copy` every backup of `CLUSTER` (or of the kops store).
    pub copy_all: Option<String>,
    /// `SOURCE_ACCESS_KEY_ID`: `copy`'s source credentials (with the secret;
    /// else the target's).
    pub source_access_key_id: Option<Secret>,
    /// `SOURCE_SECRET_ACCESS_KEY`.
    pub source_secret_access_key: Option<Secret>,
    /// `SOURCE_SESSION_TOKEN`: temporary source credentials.
    pub source_session_token: Option<Secret>,
    /// `SOURCE_ENDPOINT`: the source's endpoint (else the target's).
    pub source_endpoint: Option<String>,
    /// `SOURCE_INSECURE`: the source endpoint speaks plain HTTP.
    pub source_insecure: Option<String>,
    /// `SOURCE_REGION`: the source bucket's region (else the target's).
    pub source_region: Option<String>,
    /// `SOURCE_CA_BUNDLE`: extra trusted CAs for the source (else the target's).
    pub source_ca_bundle: Option<String>,
    /// `ENCRYPT_RECIPIENTS`: age X25519 recipients (`age1...`, comma-separated)
    /// `store` and `snapshot` encrypt to.
    pub encrypt_recipients: Option<String>,
    /// `ENCRYPT_RECIPIENTS_FILE`: a file of recipients, one per line, `#` comments.
    pub encrypt_recipients_file: Option<String>,
    /// `DECRYPT_IDENTITY_FILE`: age identity files `restore` decrypts with
    /// (comma-separated paths).
    pub decrypt_identity_file: Option<String>,
    /// `FORCE_ENCRYPTED_ETCD_MANAGER`: `true` lets `store --backup-store` encrypt,
    /// which etcd-manager itself cannot restore.
    pub force_encrypted_etcd_manager: Option<String>,
    /// `AZURE_STORAGE_ACCOUNT_NAME`: the Azure storage account (az:// URLs).
    pub azure_storage_account_name: Option<String>,
    /// `AZURE_STORAGE_ACCOUNT_KEY`: its shared key.
    pub azure_storage_account_key: Option<Secret>,
    /// `AZURE_STORAGE_SAS_TOKEN`: a shared access signature instead of the key.
    pub azure_storage_sas_token: Option<Secret>,
    /// `AZURE_STORAGE_CONNECTION_STRING`: account, key or SAS, and endpoint in one.
    pub azure_storage_connection_string: Option<Secret>,
    /// `AZURE_STORAGE_USE_EMULATOR`: talk to Azurite with its well-known account.
    pub azure_storage_use_emulator: Option<String>,
    /// `AZURITE_BLOB_STORAGE_URL`: where that Azurite listens (default `http://127.0.0.1:10000`).
    pub azurite_blob_storage_url: Option<String>,
    /// `AZURE_STORAGE_ENDPOINT`: the account's blob endpoint (default `https://ACCOUNT.blob.core.windows.net`).
    pub azure_storage_endpoint: Option<String>,
    /// `AZURE_CLIENT_ID`: workload / managed identity client id.
    pub azure_client_id: Option<String>,
    /// `AZURE_TENANT_ID`: the workload identity's tenant.
    pub azure_tenant_id: Option<String>,
    /// `AZURE_FEDERATED_TOKEN_FILE`: the workload identity's projected token.
    pub azure_federated_token_file: Option<String>,
    /// `AZURE_AUTHORITY_HOST`: the Entra ID endpoint (default `https://login.microsoftonline.com`).
    pub azure_authority_host: Option<String>,
    /// `AZURE_MSI_ENDPOINT`: the managed identity token endpoint (IMDS by default).
    pub azure_msi_endpoint: Option<String>,
    /// `STORAGE_EMULATOR_HOST`: a GCS emulator (`host:port`), no credentials.
    pub storage_emulator_host: Option<String>,
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a GCS JSON key file.
    pub google_application_credentials: Option<String>,
    /// `GCS_ENDPOINT`: replaces `https://storage.googleapis.com`.
    pub gcs_endpoint: Option<String>,
}

impl Inputs {
    /// Reads the settings from `(name, value)` pairs, e.g. `std::env::vars()`.
    /// Unknown variables are ignored; empty values count as unset.
    pub fn from_env_vars<I: IntoIterator<Item = (String, String)>>(vars: I) -> Self {
        let vars = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .filter(|(k, _)| {
                k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            });
        // Every field is an optional string, so deserialising cannot fail.
        envy::from_iter(vars).unwrap_or_default()
    }

    /// `self` with every setting that `top` has replaced by `top`'s (flags over env).
    pub fn overlay(self, top: Inputs) -> Inputs {
        macro_rules! pick {
            ($($f:ident),*) => { Inputs { $($f: top.$f.or(self.$f)),* } };
        }
        pick!(
            access_key_id,
            secret_access_key,
            aws_access_key_id,
            aws_secret_access_key,
            aws_session_token,
            aws_web_identity_token_file,
            aws_role_arn,
            aws_role_session_name,
            aws_endpoint_url_sts,
            aws_container_credentials_relative_uri,
            aws_container_credentials_full_uri,
            aws_container_authorization_token_file,
            aws_metadata_endpoint,
            aws_ec2_metadata_service_endpoint,
            aws_ec2_metadata_disabled,
            aws_profile,
            aws_shared_credentials_file,
            aws_config_file,
            home,
            bucket_name,
            endpoint,
            aws_endpoint_url_s3,
            aws_endpoint_url,
            insecure,
            region,
            aws_region,
            aws_default_region,
            storage_url,
            ca_bundle,
            cluster,
            backup_to_create,
            backup_to_delete,
            backup_to_restore,
            object_key,
            snapshot_file,
            output_file,
            part_size,
            concurrency,
            single_put_max,
            signed_payload,
            sse,
            sse_kms_key_id,
            sse_bucket_key,
            sse_customer_key,
            sse_customer_key_file,
            checksum,
            addressing,
            deadline,
            stall_timeout,
            etcd_data_dir,
            etcd_name,
            etcd_initial_cluster,
            etcd_initial_cluster_token,
            etcd_initial_advertise_peer_urls,
            etcd_wal_dir,
            skip_hash_check,
            etcd_v34,
            bump_revision,
            mark_compacted,
            restore_before,
            restore_preset,
            pod_name,
            namespace,
            cluster_size,
            from_etcd,
            etcd_endpoints,
            etcd_ca_file,
            etcd_client_cert_file,
            etcd_client_key_file,
            etcd_dial_timeout,
            etcd_stream_timeout,
            compress,
            compress_level,
            compress_threads,
            backup_store,
            etcd_version,
            member_count,
            termination_log,
            pushgateway_url,
            keep_last,
            retention_prefix,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            retention_timezone,
            dry_run,
            abort_incomplete,
            abort_older_than,
            progress_interval,
            copy_from,
            copy_to,
            copy_all,
            source_access_key_id,
            source_secret_access_key,
            source_session_token,
            source_endpoint,
            source_insecure,
            source_region,
            source_ca_bundle,
            encrypt_recipients,
            encrypt_recipients_file,
            decrypt_identity_file,
            force_encrypted_etcd_manager,
            azure_storage_account_name,
            azure_storage_account_key,
            azure_storage_sas_token,
            azure_storage_connection_string,
            azure_storage_use_emulator,
            azurite_blob_storage_url,
            azure_storage_endpoint,
            azure_client_id,
            azure_tenant_id,
            azure_federated_token_file,
            azure_authority_host,
            azure_msi_endpoint,
            storage_emulator_host,
            google_application_credentials,
            gcs_endpoint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_controllers_variables() {
        let i = Inputs::from_env_vars(vars(&[
            ("ACCESS_KEY_ID", "AKIA"),
            ("SECRET_ACCESS_KEY", "s3cr3t"),
            ("BUCKET_NAME", "backups"),
            ("ENDPOINT", "minio:9000"),
            ("INSECURE", "true"),
            ("CLUSTER", "abc123"),
            ("BACKUP_TO_CREATE", "daily-backup.db.gz"),
            ("PATH", "/usr/bin"),
        ]));
        assert_eq!(i.bucket_name.as_deref(), Some("backups"));
        assert_eq!(i.endpoint.as_deref(), Some("minio:9000"));
        assert_eq!(i.insecure.as_deref(), Some("true"));
        assert_eq!(
            i.secret_access_key.as_ref().map(Secret::expose),
            Some("s3cr3t")
        );
        assert_eq!(i.backup_to_create.as_deref(), Some("daily-backup.db.gz"));
    }

    #[test]
    fn empty_values_are_unset_and_lowercase_names_ignored() {
        let i = Inputs::from_env_vars(vars(&[("ENDPOINT", ""), ("bucket_name", "x")]));
        assert!(i.endpoint.is_none());
        assert!(i.bucket_name.is_none());
    }

    #[test]
    fn flags_override_environment() {
        let env = Inputs::from_env_vars(vars(&[("BUCKET_NAME", "env"), ("CLUSTER", "c")]));
        let flags = Inputs {
            bucket_name: Some("flag".into()),
            ..Inputs::default()
        };
        let merged = env.overlay(flags);
        assert_eq!(merged.bucket_name.as_deref(), Some("flag"));
        assert_eq!(merged.cluster.as_deref(), Some("c"));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let i = Inputs::from_env_vars(vars(&[("SECRET_ACCESS_KEY", "hunter2hunter2")]));
        let shown = format!("{i:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
