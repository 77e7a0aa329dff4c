use std::time::Duration;

use object_store::aws::AmazonS3ConfigKey;

use super::checks::*;
use super::credentials::*;
use super::s3::*;
use super::*;

fn custom(s: &str) -> Endpoint {
    Endpoint::Custom(s.to_string())
}

#[test]
fn endpoint_forms() {
    let p = |raw, insecure| parse_endpoint(Some(raw), insecure, "ENDPOINT").unwrap();
    assert_eq!(p("minio.example", false), custom("https://minio.example"));
    assert_eq!(
        p("minio.example:9000", false),
        custom("https://minio.example:9000")
    );
    assert_eq!(
        p("minio.example:9000", true),
        custom("http://minio.example:9000")
    );
    assert_eq!(
        p("http://127.0.0.1:9000", true),
        custom("http://127.0.0.1:9000")
    );
    assert_eq!(
        p("http://127.0.0.1:9000", false),
        custom("http://127.0.0.1:9000")
    );
    assert_eq!(
        p("https://minio.example:9000/", false),
        custom("https://minio.example:9000")
    );
    assert_eq!(p("s3.amazonaws.com", false), Endpoint::Aws);
    assert_eq!(
        p("https://s3.eu-west-1.amazonaws.com", false),
        Endpoint::Aws
    );
    assert_eq!(
        parse_endpoint(None, false, "ENDPOINT").unwrap(),
        Endpoint::Aws
    );
    assert_eq!(
        parse_endpoint(Some(" "), true, "ENDPOINT").unwrap(),
        Endpoint::Aws
    );
}

/// Hosts under amazonaws.com other than the public S3 endpoint are kept: VPC
/// interface endpoints, FIPS and dual-stack endpoints, for both the object_store
/// client (path-style on the given endpoint) and the streaming upload's URL;
/// the region, when not given, is the one the host names.
#[tokio::test]
async fn amazonaws_endpoints_other_than_the_public_one_keep_their_host() {
    for (host, region) in [
        (
            "bucket.vpce-0a1b2c3d-4e5f.s3.us-east-1.vpce.amazonaws.com",
            "us-east-1",
        ),
        ("s3-fips.us-east-2.amazonaws.com", "us-east-2"),
        (
            "s3-fips.dualstack.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
        ),
        ("s3.dualstack.eu-west-1.amazonaws.com", "eu-west-1"),
    ] {
        let url = format!("https://{host}");
        assert_eq!(
            parse_endpoint(Some(host), false, "ENDPOINT").unwrap(),
            custom(&url)
        );
        let r = Remote::from_inputs(&inputs(&[
            ("BUCKET_NAME", "backups"),
            ("ACCESS_KEY_ID", "a"),
            ("SECRET_ACCESS_KEY", "b"),
            ("ENDPOINT", host),
        ]))
        .unwrap();
        let Remote::S3(s) = r else { panic!("not s3") };
        assert_eq!(s.endpoint.as_deref(), Some(url.as_str()), "{host}");
        assert_eq!(s.region.as_deref(), Some(region), "{host}");
        let tuning = ClientTuning::for_deadline(Duration::from_secs(60));
        // The region is known: building the client asks no one.
        let client = S3Client::build(&s, &tuning).await.unwrap();
        assert_eq!(client.region, region);
        let target = crate::transport::put::Target::new(&s, &client, "c-1.db.gz", &tuning).unwrap();
        assert_eq!(
            target.url().as_str(),
            format!("{url}/backups/c-1.db.gz"),
            "{host}"
        );
    }
    // A REGION given wins over the host's.
    let r = Remote::from_inputs(&inputs(&[
        ("BUCKET_NAME", "backups"),
        ("ACCESS_KEY_ID", "a"),
        ("SECRET_ACCESS_KEY", "b"),
        ("ENDPOINT", "s3-fips.us-east-2.amazonaws.com"),
        ("REGION", "us-east-1"),
    ]))
    .unwrap();
    let Remote::S3(s) = r else { panic!("not s3") };
    assert_eq!(s.region.as_deref(), Some("us-east-1"));
}

#[test]
fn bad_endpoints_name_the_variable() {
    for raw in [
        "http://minio:9000/bucket",
        "minio:notaport",
        "minio:70000",
        "ftp://minio",
        "http://user:pw@minio",
        "http://minio?x=1",
    ] {
        let err = parse_endpoint(Some(raw), false, "ENDPOINT").unwrap_err();
        assert_eq!(err.exit_code(), 78, "{raw}");
        assert!(err.to_string().starts_with("ENDPOINT="), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    let conflict = parse_endpoint(Some("https://minio"), true, "ENDPOINT").unwrap_err();
    assert!(conflict.to_string().contains("INSECURE"), "{conflict}");
}

#[test]
fn booleans() {
    assert!(parse_bool(Some("true"), "INSECURE").unwrap());
    assert!(parse_bool(Some("TRUE"), "INSECURE").unwrap());
    assert!(parse_bool(Some("1"), "INSECURE").unwrap());
    assert!(!parse_bool(Some("false"), "INSECURE").unwrap());
    assert!(!parse_bool(None, "INSECURE").unwrap());
    let err = parse_bool(Some("maybe"), "INSECURE").unwrap_err();
    assert_eq!(err.exit_code(), 78);
    assert!(err.to_string().contains("INSECURE"));
}

fn inputs(pairs: &[(&str, &str)]) -> Inputs {
    Inputs::from_env_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn s3_settings_with_fallbacks() {
    let r = Remote::from_inputs(&inputs(&[
        ("BUCKET_NAME", "backups"),
        ("AWS_ACCESS_KEY_ID", "AKIAFALLBACK"),
        ("AWS_SECRET_ACCESS_KEY", "secretsecretsecret"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ("AWS_REGION", "eu-central-1"),
    ]))
    .unwrap();
    let Remote::S3(s) = r else { panic!("not s3") };
    let Credentials::Static { access_key_id, .. } = &s.credentials else {
        panic!("not static")
    };
    assert_eq!(access_key_id.expose(), "AKIAFALLBACK");
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s.region.as_deref(), Some("eu-central-1"));
}

#[test]
fn primary_names_win_over_aws_names() {
    let r = Remote::from_inputs(&inputs(&[
        ("BUCKET_NAME", "backups"),
        ("ACCESS_KEY_ID", "PRIMARY"),
        ("AWS_ACCESS_KEY_ID", "FALLBACK"),
        ("SECRET_ACCESS_KEY", "secretsecretsecret"),
        ("ENDPOINT", "minio:9000"),
        ("AWS_ENDPOINT_URL", "http://other:1"),
        ("INSECURE", "true"),
    ]))
    .unwrap();
    let Remote::S3(s) = r else { panic!("not s3") };
    let Credentials::Static { access_key_id, .. } = &s.credentials else {
        panic!("not static")
    };
    assert_eq!(access_key_id.expose(), "PRIMARY");
    assert_eq!(s.endpoint.as_deref(), Some("http://minio:9000"));
}

#[test]
fn missing_settings_name_the_variable() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "BUCKET_NAME"),
        (
            &[
                ("BUCKET_NAME", "backups"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
            "ACCESS_KEY_ID",
        ),
        (
            &[("BUCKET_NAME", "backups"), ("ACCESS_KEY_ID", "a")],
            "SECRET_ACCESS_KEY",
        ),
        (&[("BUCKET_NAME", "Bad_Bucket!")], "BUCKET_NAME"),
    ];
    for (pairs, var) in cases {
        let err = Remote::from_inputs(&inputs(pairs)).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains(var), "{err} should name {var}");
    }
}

#[test]
fn without_static_keys_object_stores_provider_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJ-web-identity").unwrap();
    let file = token.to_str().unwrap();
    let r = Remote::from_inputs(&inputs(&[
        ("BUCKET_NAME", "backups"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", file),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/backup"),
        ("AWS_ENDPOINT_URL_STS", "https://127.0.0.1:8443"),
    ]))
    .unwrap();
    let Remote::S3(s) = r else { panic!("not s3") };
    let Credentials::Provider { source, config, .. } = &s.credentials else {
        panic!("not the provider")
    };
    assert!(source.contains("web identity"), "{source}");
    assert!(config.contains(&(AmazonS3ConfigKey::WebIdentityTokenFile, file.to_string())));
    assert!(config.contains(&(
        AmazonS3ConfigKey::StsEndpoint,
        "https://127.0.0.1:8443".to_string()
    )));
    // Half a source, an unreadable token file or a plain-HTTP STS is 78, named.
    let missing = dir.path().join("missing");
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("AWS_WEB_IDENTITY_TOKEN_FILE", file)], "AWS_ROLE_ARN"),
        (&[("AWS_ROLE_ARN", "arn:x")], "AWS_WEB_IDENTITY_TOKEN_FILE"),
        (
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", missing.to_str().unwrap()),
                ("AWS_ROLE_ARN", "arn:x"),
            ],
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ),
        (
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", file),
                ("AWS_ROLE_ARN", "arn:x"),
                ("AWS_ENDPOINT_URL_STS", "http://sts.example"),
            ],
            "AWS_ENDPOINT_URL_STS",
        ),
    ];
    for (pairs, var) in cases {
        let mut all = vec![("BUCKET_NAME", "backups")];
        all.extend_from_slice(pairs);
        let err = Remote::from_inputs(&inputs(&all)).unwrap_err();
        assert_eq!(err.exit_code(), 78, "{var}");
        assert!(err.to_string().starts_with(var), "{err} should name {var}");
    }
    // Static keys win over any provider setting.
    let r = Remote::from_inputs(&inputs(&[
        ("BUCKET_NAME", "backups"),
        ("ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("SECRET_ACCESS_KEY", "secretsecretsecret"),
        ("AWS_ROLE_ARN", "arn:x"),
    ]))
    .unwrap();
    let Remote::S3(s) = r else { panic!("not s3") };
    assert!(matches!(s.credentials, Credentials::Static { .. }));
}

#[test]
fn header_values_with_newlines_or_spaces_are_refused_by_name() {
    for (var, value) in [
        ("ACCESS_KEY_ID", "AKIAEXAMPLE\n"),
        ("SECRET_ACCESS_KEY", "secret secret"),
        ("AWS_SESSION_TOKEN", "token\n"),
        ("REGION", "eu-west-1\n"),
        ("AWS_DEFAULT_REGION", " eu-west-1"),
    ] {
        let base = [
            ("BUCKET_NAME", "backups"),
            ("ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("SECRET_ACCESS_KEY", "secretsecretsecret"),
        ];
        let pairs: Vec<_> = base
            .into_iter()
            .filter(|(k, _)| *k != var)
            .chain([(var, value)])
            .collect();
        let err = Remote::from_inputs(&inputs(&pairs)).unwrap_err();
        assert_eq!(err.exit_code(), 78, "{var}");
        let text = err.to_string();
        assert!(text.starts_with(var), "{text} should name {var}");
        if var != "REGION" && var != "AWS_DEFAULT_REGION" {
            assert!(!text.contains(value.trim()), "{text} shows the secret");
        }
    }
    let err = Remote::from_inputs(&inputs(&[
        ("BUCKET_NAME", "backups"),
        ("ACCESS_KEY_ID", "AKIA\n"),
        ("SECRET_ACCESS_KEY", "secretsecretsecret"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("newline"), "{err}");
}

#[test]
fn storage_urls() {
    let local = Remote::from_inputs(&inputs(&[("STORAGE_URL", "file:///tmp/snaps")])).unwrap();
    assert!(matches!(local, Remote::Local { ref root } if root == &PathBuf::from("/tmp/snaps")));
    let s3 = Remote::from_inputs(&inputs(&[
        ("STORAGE_URL", "s3://backups/etcd/prod"),
        ("ACCESS_KEY_ID", "a"),
        ("SECRET_ACCESS_KEY", "b"),
    ]))
    .unwrap();
    assert_eq!(s3.describe("c-x.db.gz"), "s3://backups/etcd/prod/c-x.db.gz");
    for bad in [
        "gopher://x",
        "file://relative/path",
        "s3:///nobucket",
        "s3:nobucket/x",
        "s3://backups/a//b",
        "s3://backups/a/../b",
        "s3://backups/./b",
        "s3://backups/a\tb",
    ] {
        let err = Remote::from_inputs(&inputs(&[("STORAGE_URL", bad)])).unwrap_err();
        assert_eq!(err.exit_code(), 78, "{bad}");
        assert!(err.to_string().contains("STORAGE_URL"), "{err}");
    }
    // The prefix is taken literally: what follows the bucket, not URL-decoded.
    let odd = "~etcd %41 # | * ? [ ] { } ^ \\ \" < > `";
    let s3 = Remote::from_inputs(&inputs(&[
        ("STORAGE_URL", &format!("s3://backups/{odd}/")),
        ("ACCESS_KEY_ID", "a"),
        ("SECRET_ACCESS_KEY", "b"),
    ]))
    .unwrap();
    let Remote::S3(s) = s3 else { panic!("not s3") };
    assert_eq!(s.prefix.as_deref(), Some(odd));
}

#[test]
fn ca_bundle_rules() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let err = load_ca_bundle(Some(empty.to_str().unwrap())).unwrap_err();
    assert_eq!(err.exit_code(), 78);
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
    // A certificate whose PEM armour is fine but whose body is not a certificate.
    let corrupt = dir.path().join("corrupt.pem");
    std::fs::write(
        &corrupt,
        "-----BEGIN CERTIFICATE-----\nTUlJQm9EQ0NBVWFnQXdJQkFnSVVj\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = load_ca_bundle(Some(corrupt.to_str().unwrap())).unwrap_err();
    assert_eq!(err.exit_code(), 78);
    assert!(err.to_string().contains("cannot be used"), "{err}");
    let missing = dir.path().join("missing.pem");
    let err = load_ca_bundle(Some(missing.to_str().unwrap())).unwrap_err();
    assert!(err.to_string().contains("CA_BUNDLE"), "{err}");
}
