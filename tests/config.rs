//! Bad settings fail before any network call: exit 78 (64 for bad flags) with one
//! line naming the variable. No server is needed: nothing may be contacted.

mod common;

use common::*;

fn assert_config_error(bin: &str, env: &[(String, String)], names: &str) {
    let r = run(bin, env, &[]);
    r.assert_code(78);
    let errors = r.error_lines();
    assert_eq!(errors.len(), 1, "{bin}: one error line: {}", r.stderr);
    assert!(
        errors[0].contains(names),
        "{bin}: should name {names}: {}",
        errors[0]
    );
}

#[test]
fn each_required_variable_missing_is_named() {
    let env = offline_env();
    for var in [
        "BUCKET_NAME",
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "CLUSTER",
    ] {
        for bin in ["store", "delete", "restore"] {
            assert_config_error(bin, &without(&env, &[var]), var);
        }
    }
    assert_config_error(
        "store",
        &without(&env, &["BACKUP_TO_CREATE"]),
        "BACKUP_TO_CREATE",
    );
    assert_config_error(
        "restore",
        &without(&env, &["BACKUP_TO_RESTORE"]),
        "BACKUP_TO_RESTORE",
    );
}

#[test]
fn empty_required_variables_count_as_missing() {
    for var in ["BUCKET_NAME", "CLUSTER", "SECRET_ACCESS_KEY"] {
        let env = with(&offline_env(), &[(var, "")]);
        assert_config_error("delete", &env, var);
    }
}

#[test]
fn garbage_values_are_named() {
    let env = offline_env();
    let cases = [
        ("INSECURE", "maybe"),
        ("ENDPOINT", "http://minio:9000/some/path"),
        ("ENDPOINT", "minio:99999"),
        ("BUCKET_NAME", "Not A Bucket"),
        ("PART_SIZE", "1KiB"),
        // S3's 5 MiB floor (an az:// store takes 4 MiB blocks: tests/azure.rs).
        ("PART_SIZE", "4MiB"),
        ("CONCURRENCY", "0"),
        ("DEADLINE", "soonish"),
        ("STALL_TIMEOUT", "0s"),
        ("STALL_TIMEOUT", "slow"),
        ("STORAGE_URL", "ftp://x/y"),
    ];
    for (var, value) in cases {
        assert_config_error("store", &with(&env, &[(var, value)]), var);
    }
}

#[test]
fn an_azure_block_size_out_of_azures_range_is_named() {
    let env = with(
        &offline_env(),
        &[
            ("STORAGE_URL", "az://backups"),
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct1"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
        ],
    );
    for bad in ["512KiB", "4001MiB"] {
        assert_config_error("store", &with(&env, &[("PART_SIZE", bad)]), "PART_SIZE");
    }
}

#[test]
fn a_ca_bundle_without_certificates_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_file(dir.path(), "ca-bundle.pem", b"# empty ConfigMap\n");
    let env = with(&offline_env(), &[("CA_BUNDLE", pem.to_str().unwrap())]);
    assert_config_error("delete", &env, "ca-bundle.pem");
}

#[test]
fn bad_flags_exit_64_and_help_names_the_variables() {
    let r = run("store", &offline_env(), &["--no-such-flag"]);
    r.assert_code(64);
    let help = run("store", &[], &["--help"]);
    help.assert_code(0);
    for name in [
        "BUCKET_NAME",
        "ENDPOINT",
        "INSECURE",
        "CLUSTER",
        "BACKUP_TO_CREATE",
        "SNAPSHOT_FILE",
        "CA_BUNDLE",
    ] {
        assert!(help.stdout.contains(name), "--help should name {name}");
    }
    assert!(!help.stdout.contains("--secret"), "no flag takes a secret");
}

#[test]
fn flags_override_the_environment() {
    // BUCKET_NAME from the environment is invalid, the flag's value is used instead:
    // the run gets past configuration and fails on the missing snapshot file (74).
    let env = with(&offline_env(), &[("BUCKET_NAME", "INVALID!")]);
    let r = run("store", &env, &["--bucket", "good-bucket"]);
    r.assert_code(74);
}

#[test]
fn invalid_object_keys_are_config_errors_naming_the_variables() {
    let long = "x".repeat(1100);
    for backup in ["a/../b", "a//b", "trailing/", "tab\there", long.as_str()] {
        let env = with(&offline_env(), &[("BACKUP_TO_CREATE", backup)]);
        assert_config_error("store", &env, "BACKUP_TO_CREATE");
    }
}

#[test]
fn no_ca_certificates_at_all_is_a_config_error_with_a_hint() {
    // What a scratch image without CA certificates sees (rustls-native-certs reads these).
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(dir.path(), "empty.pem", b"");
    let env = with(
        &offline_env(),
        &[
            ("SSL_CERT_FILE", empty.to_str().unwrap()),
            ("SSL_CERT_DIR", dir.path().to_str().unwrap()),
            (
                "SNAPSHOT_FILE",
                fixture("etcd-3.4-small.db.gz").to_str().unwrap(),
            ),
        ],
    );
    assert_config_error("store", &env, "no system CA certificates");
}
