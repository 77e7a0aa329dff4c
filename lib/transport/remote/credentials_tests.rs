//! The order of the credential chain and its configuration errors.

use super::*;

fn inputs(pairs: &[(&str, &str)]) -> Inputs {
    let mut all = vec![("BUCKET_NAME", "backups")];
    all.extend_from_slice(pairs);
    Inputs::from_env_vars(all.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn creds(pairs: &[(&str, &str)]) -> Result<Credentials> {
    match Remote::from_inputs(&inputs(pairs))? {
        Remote::S3(s) => Ok(s.credentials),
        _ => panic!("not s3"),
    }
}

fn source(c: &Credentials) -> String {
    match c {
        Credentials::Static { .. } => "static".into(),
        Credentials::Profile(k) => k.source.clone(),
        Credentials::Provider { source, .. } => source.clone(),
    }
}

#[test]
fn each_source_in_the_sdks_order() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("credentials");
    std::fs::write(
        &shared,
        "[backup]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = s\n",
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let shared = shared.to_str().unwrap();
    let token = token.to_str().unwrap();
    let profile = [
        ("AWS_PROFILE", "backup"),
        ("AWS_SHARED_CREDENTIALS_FILE", shared),
    ];
    let web = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token),
        ("AWS_ROLE_ARN", "arn:r"),
    ];
    let pod = [
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://127.0.0.1:1/creds",
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token),
    ];
    let keys = [("ACCESS_KEY_ID", "AKIA"), ("SECRET_ACCESS_KEY", "s")];
    let mut all: Vec<(&str, &str)> = Vec::new();
    all.extend_from_slice(&pod);
    assert!(source(&creds(&all).unwrap()).starts_with("container credentials"));
    all.extend_from_slice(&web);
    assert!(source(&creds(&all).unwrap()).starts_with("web identity"));
    all.extend_from_slice(&profile);
    assert!(source(&creds(&all).unwrap()).starts_with("profile backup ("));
    all.extend_from_slice(&keys);
    assert_eq!(source(&creds(&all).unwrap()), "static");
    // Nothing set: instance metadata at its default address, as a last resort.
    let c = creds(&[]).unwrap();
    assert!(
        matches!(&c, Credentials::Provider { last_resort: true, config, .. }
            if config[0].1 == "http://169.254.169.254"),
        "{c:?}"
    );
    // An endpoint given is no last resort (its failures are its own).
    for var in ["AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_METADATA_ENDPOINT"] {
        let c = creds(&[(var, "http://127.0.0.1:9/")]).unwrap();
        assert!(
            matches!(&c, Credentials::Provider { last_resort: false, config, .. }
                if config[0].1 == "http://127.0.0.1:9"),
            "{c:?}"
        );
    }
}

#[test]
fn a_source_set_but_broken_is_named_never_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/"),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", missing),
            ],
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=",
        ),
        (
            &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/")],
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is not set",
        ),
        (
            &[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "not a url"),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", missing),
            ],
            "AWS_CONTAINER_CREDENTIALS_FULL_URI=",
        ),
        (
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "169.254.169.254")],
            "AWS_EC2_METADATA_SERVICE_ENDPOINT=",
        ),
        (
            &[("AWS_EC2_METADATA_DISABLED", "maybe")],
            "AWS_EC2_METADATA_DISABLED=",
        ),
        (
            &[("AWS_PROFILE", "p"), ("HOME", missing)],
            "AWS_PROFILE=p: no such profile",
        ),
        (
            &[("AWS_SHARED_CREDENTIALS_FILE", missing)],
            "AWS_SHARED_CREDENTIALS_FILE=",
        ),
    ];
    for (pairs, want) in cases {
        let err = creds(pairs).unwrap_err();
        assert_eq!(err.exit_code(), 78, "{pairs:?}");
        assert!(
            err.to_string().starts_with(want),
            "{err} should start with {want}"
        );
    }
    // Nothing at all and instance metadata off: 78 naming every source tried.
    let err = creds(&[("AWS_EC2_METADATA_DISABLED", "true")]).unwrap_err();
    assert_eq!(err.exit_code(), 78);
    for named in [
        "ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_EC2_METADATA_DISABLED=true",
    ] {
        assert!(err.to_string().contains(named), "{err} should name {named}");
    }
}

#[test]
fn profile_keys_with_a_newline_are_refused_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("credentials");
    // A value continued on an indented line becomes a value with a newline.
    std::fs::write(
        &shared,
        "[default]\naws_access_key_id = AKIA\naws_secret_access_key = abc\n  def\n",
    )
    .unwrap();
    let err = creds(&[("AWS_SHARED_CREDENTIALS_FILE", shared.to_str().unwrap())]).unwrap_err();
    assert_eq!(err.exit_code(), 78);
    let text = err.to_string();
    assert!(
        text.starts_with("AWS_PROFILE=default: aws_secret_access_key"),
        "{text}"
    );
    assert!(!text.contains("abc"), "{text}");
}
