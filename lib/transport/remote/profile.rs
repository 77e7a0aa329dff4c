//! Static keys from the AWS shared files (`~/.aws/credentials`, `~/.aws/config`),
//! the second source of the S3 credential chain. object_store reads no profiles,
//! so this is a small reader of the files' INI dialect, of only what static keys
//! need: `[name]` sections in the credentials file, `[default]` and
//! `[profile name]` in the config file, `key = value` lines, `#`/`;` comments
//! (whole lines, or after white space in a value), and indented lines (the
//! nested `s3 =` blocks of the config file, skipped). A profile whose
//! credentials come from elsewhere (`credential_process`, SSO, a role to assume)
//! is refused by name rather than half-used.
//!
//! Errors name the file and line, never the line's text (it may hold a secret).

use std::path::{Path, PathBuf};

use crate::base::error::{Error, Result};
use crate::base::settings::Secret;

/// One profile's static keys and where they came from.
#[derive(Debug, Clone)]
pub struct ProfileKeys {
    /// `aws_access_key_id`.
    pub access_key_id: Secret,
    /// `aws_secret_access_key`.
    pub secret_access_key: Secret,
    /// `aws_session_token`, for temporary keys.
    pub session_token: Option<Secret>,
    /// For the log: `profile NAME (FILE)`.
    pub source: String,
}

/// Where to look: each file with the variable that named it (`None`: the
/// default under `$HOME`, which may be absent).
#[derive(Debug, Clone)]
pub struct ProfileFiles {
    /// The profile (`AWS_PROFILE`, else `default`).
    pub profile: String,
    /// `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`.
    pub credentials: Option<(PathBuf, Option<&'static str>)>,
    /// `AWS_CONFIG_FILE` or `~/.aws/config`.
    pub config: Option<(PathBuf, Option<&'static str>)>,
}

/// One `[section]` of a file: its name as written and its properties, keys
/// lower-cased, later lines winning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) props: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.props
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the INI text of a shared file; `Err((line, why))` on a line that is
/// neither a comment, a section header, a property nor an indented
/// continuation.
pub(crate) fn parse(text: &str) -> std::result::Result<Vec<Section>, (usize, &'static str)> {
    let mut sections: Vec<Section> = Vec::new();
    // Whether the last property had an empty value (a nested block follows).
    let mut last_value_empty: Option<bool> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            // An indented line continues the property above: a nested block
            // after `key =` (skipped), else a continuation of its value.
            match (sections.last_mut(), last_value_empty) {
                (Some(_), Some(true)) => continue,
                (Some(section), Some(false)) => {
                    if let Some((_, v)) = section.props.last_mut() {
                        v.push('\n');
                        v.push_str(strip_comment(trimmed));
                    }
                    continue;
                }
                _ => return Err((line_no, "an indented line with no property above it")),
            }
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err((line_no, "a section header without its closing `]`"));
            };
            let after = rest[end + 1..].trim();
            if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
                return Err((line_no, "text after a section header"));
            }
            let name = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
            if name.is_empty() {
                return Err((line_no, "an empty section name"));
            }
            sections.push(Section {
                name,
                props: Vec::new(),
            });
            last_value_empty = None;
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err((line_no, "neither `key = value` nor `[section]`"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err((line_no, "a property without a name"));
        }
        let Some(section) = sections.last_mut() else {
            return Err((line_no, "a property before any `[section]`"));
        };
        let value = strip_comment(value.trim());
        last_value_empty = Some(value.is_empty());
        section
            .props
            .push((key.to_ascii_lowercase(), value.to_string()));
    }
    Ok(sections)
}

/// A value without a trailing ` # comment` or ` ; comment`.
fn strip_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b'#' || bytes[i] == b';') && bytes[i - 1].is_ascii_whitespace() {
            return value[..i].trim_end();
        }
    }
    value
}

/// The profile's properties in one file, `None` when the file has no such
/// section (several sections of the same name merge, later lines winning).
fn find(sections: &[Section], wanted: &str, config_file: bool) -> Option<Section> {
    let matches = |name: &str| {
        if !config_file {
            return name == wanted;
        }
        match name.strip_prefix("profile ") {
            Some(p) => p.trim() == wanted,
            // The config file names the default profile `[default]`.
            None => name == wanted && wanted == "default",
        }
    };
    let mut found: Option<Section> = None;
    for s in sections.iter().filter(|s| matches(&s.name)) {
        match &mut found {
            Some(f) => f.props.extend(s.props.iter().cloned()),
            None => found = Some(s.clone()),
        }
    }
    found
}

/// Reads one file, `None` when it is a default that does not exist.
fn read(path: &Path, var: Option<&str>) -> Result<Option<Vec<Section>>> {
    let shown = match var {
        Some(var) => format!("{var}={}", path.display()),
        None => path.display().to_string(),
    };
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| Error::Config(format!("{shown}: not UTF-8 text")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && var.is_none() => return Ok(None),
        Err(e) => return Err(Error::Config(format!("{shown}: cannot read it: {e}"))),
    };
    parse(&text)
        .map(Some)
        .map_err(|(line, why)| Error::Config(format!("{shown}: line {line}: {why}")))
}

/// The profile's static keys; the credentials file wins over the config file
/// key by key, as in the AWS SDKs. Anything else is a configuration error
/// naming the profile: no such profile, keys missing, or credentials that
/// come from a process, SSO or an assumed role (unsupported).
pub fn load(files: &ProfileFiles) -> Result<ProfileKeys> {
    let name = files.profile.as_str();
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut seen_in: Vec<String> = Vec::new();
    let mut looked_in: Vec<String> = Vec::new();
    for (entry, config_file) in [(&files.config, true), (&files.credentials, false)] {
        let Some((path, var)) = entry else { continue };
        looked_in.push(path.display().to_string());
        if let Some(sections) = read(path, *var)? {
            if let Some(section) = find(&sections, name, config_file) {
                seen_in.push(path.display().to_string());
                merged.extend(section.props);
            }
        }
    }
    if seen_in.is_empty() {
        return Err(Error::Config(format!(
            "AWS_PROFILE={name}: no such profile in {}",
            if looked_in.is_empty() {
                "any file (set AWS_SHARED_CREDENTIALS_FILE or HOME)".to_string()
            } else {
                looked_in.join(" or ")
            }
        )));
    }
    let profile = Section {
        name: name.to_string(),
        props: merged,
    };
    let refuse = |what: &str| {
        Error::Config(format!(
            "AWS_PROFILE={name}: the profile {what}, which snapjob does not support; \
             give it aws_access_key_id/aws_secret_access_key, or use ACCESS_KEY_ID/\
             SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE or container credentials"
        ))
    };
    if profile.get("credential_process").is_some() {
        return Err(refuse("runs credential_process"));
    }
    if [
        "sso_session",
        "sso_start_url",
        "sso_account_id",
        "sso_role_name",
    ]
    .iter()
    .any(|k| profile.get(k).is_some())
    {
        return Err(refuse("signs in with AWS SSO (IAM Identity Center)"));
    }
    if ["role_arn", "source_profile", "credential_source"]
        .iter()
        .any(|k| profile.get(k).is_some())
    {
        return Err(refuse("assumes a role (role_arn/source_profile)"));
    }
    if profile.get("web_identity_token_file").is_some() {
        return Err(refuse("names web_identity_token_file"));
    }
    let key = |k: &str| profile.get(k).filter(|v| !v.is_empty());
    let (id, secret) = match (key("aws_access_key_id"), key("aws_secret_access_key")) {
        (Some(id), Some(secret)) => (id, secret),
        (id, _) => {
            let missing = if id.is_none() {
                "aws_access_key_id"
            } else {
                "aws_secret_access_key"
            };
            return Err(Error::Config(format!(
                "AWS_PROFILE={name}: the profile has no {missing} (in {})",
                seen_in.join(", ")
            )));
        }
    };
    Ok(ProfileKeys {
        access_key_id: Secret::new(id),
        secret_access_key: Secret::new(secret),
        session_token: key("aws_session_token").map(Secret::new),
        source: format!("profile {name} ({})", seen_in.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, profile: &str, creds: &str, config: &str) -> ProfileFiles {
        let c = dir.join("credentials");
        let f = dir.join("config");
        std::fs::write(&c, creds).unwrap();
        std::fs::write(&f, config).unwrap();
        ProfileFiles {
            profile: profile.to_string(),
            credentials: Some((c, Some("AWS_SHARED_CREDENTIALS_FILE"))),
            config: Some((f, Some("AWS_CONFIG_FILE"))),
        }
    }

    #[test]
    fn sections_comments_and_nested_blocks() {
        let text = "\u{feff}# top comment\n[default]\naws_access_key_id = AKIADEF\n\
                    ; another\n[profile  backup ]   # trailing\nAWS_Secret_Access_Key=s3cr3t ; note\n\
                    s3 =\n  max_concurrent_requests = 10\n  addressing_style = path\n\
                    region = eu-west-1\n";
        let sections = parse(text).unwrap();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].name, "default");
        assert_eq!(sections[0].get("aws_access_key_id"), Some("AKIADEF"));
        assert_eq!(sections[1].name, "profile backup");
        assert_eq!(sections[1].get("aws_secret_access_key"), Some("s3cr3t"));
        assert_eq!(sections[1].get("region"), Some("eu-west-1"));
        assert_eq!(sections[1].get("max_concurrent_requests"), None);
        // A value with `#` inside (no white space before it) is kept whole.
        let s = parse("[a]\nk = ab#cd\n").unwrap();
        assert_eq!(s[0].get("k"), Some("ab#cd"));
    }

    /// Any text parses or is refused with a line number; none panics.
    #[test]
    fn arbitrary_text_never_panics() {
        let alphabet: Vec<char> = "[]=#; \t\nab\u{e9}\u{feff}\r".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let len = (seed % 40) as usize;
            let text: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            if let Err((line, _)) = parse(&text) {
                assert!(line >= 1 && line <= text.lines().count().max(1), "{text:?}");
            }
        }
    }

    #[test]
    fn malformed_lines_are_named_by_number() {
        for (text, line, why) in [
            ("[default\nk = v\n", 1, "closing"),
            ("k = v\n[default]\n", 1, "before any"),
            ("[default]\nk = v\njust words\n", 3, "neither"),
            ("[default]\n= v\n", 2, "without a name"),
            ("  indented = first\n", 1, "indented"),
            ("[]\n", 1, "empty section"),
            ("[a] b\n", 1, "after a section"),
        ] {
            let (n, msg) = parse(text).unwrap_err();
            assert_eq!(n, line, "{text:?}");
            assert!(msg.contains(why), "{text:?}: {msg}");
        }
    }

    #[test]
    fn static_keys_from_either_file_credentials_winning() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(
            dir.path(),
            "backup",
            "[backup]\naws_access_key_id = AKIACREDS\naws_secret_access_key = fromcreds\n",
            "[profile backup]\naws_access_key_id = AKIACONFIG\naws_session_token = tok\n\
             [backup]\naws_access_key_id = NOT-A-PROFILE-IN-CONFIG\n",
        );
        let k = load(&f).unwrap();
        assert_eq!(k.access_key_id.expose(), "AKIACREDS");
        assert_eq!(k.secret_access_key.expose(), "fromcreds");
        assert_eq!(k.session_token.as_ref().map(Secret::expose), Some("tok"));
        assert!(k.source.starts_with("profile backup ("), "{}", k.source);
        // `[default]` in the config file, no credentials file at all (a default path).
        let only_config = ProfileFiles {
            profile: "default".into(),
            credentials: Some((dir.path().join("absent"), None)),
            config: Some((
                write(
                    dir.path(),
                    "c2",
                    "[default]\naws_access_key_id=A\naws_secret_access_key=B\n",
                ),
                None,
            )),
        };
        assert_eq!(load(&only_config).unwrap().access_key_id.expose(), "A");
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unsupported_and_incomplete_profiles_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (config, want) in [
            (
                "[profile p]\ncredential_process = /bin/creds\n",
                "credential_process",
            ),
            ("[profile p]\nsso_session = corp\n", "SSO"),
            ("[profile p]\nsso_start_url = https://x\n", "SSO"),
            (
                "[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n",
                "role",
            ),
            (
                "[profile p]\naws_access_key_id = A\n",
                "no aws_secret_access_key",
            ),
            ("[profile p]\nregion = eu-west-1\n", "no aws_access_key_id"),
            (
                "[profile other]\naws_access_key_id = A\n",
                "no such profile",
            ),
            (
                "[p]\naws_access_key_id = A\naws_secret_access_key = B\n",
                "no such profile",
            ),
        ] {
            let err = load(&files(dir.path(), "p", "", config)).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{config}");
            let text = err.to_string();
            assert!(text.starts_with("AWS_PROFILE=p: "), "{text}");
            assert!(text.contains(want), "{config}: {text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn unreadable_or_malformed_files_are_named_without_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(
            dir.path(),
            "p",
            "[p]\naws_secret_access_key wJalrSECRET\n",
            "",
        );
        let err = load(&f).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        let text = err.to_string();
        assert!(text.starts_with("AWS_SHARED_CREDENTIALS_FILE="), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("wJalr"), "{text}");
        // An explicitly named file must exist; a default one may not.
        let missing = ProfileFiles {
            profile: "p".into(),
            credentials: Some((dir.path().join("nope"), Some("AWS_SHARED_CREDENTIALS_FILE"))),
            config: None,
        };
        let err = load(&missing).unwrap_err();
        assert!(err.to_string().contains("cannot read it"), "{err}");
        std::fs::write(dir.path().join("bin"), [0xff, 0xfe, b'[']).unwrap();
        let binary = ProfileFiles {
            profile: "p".into(),
            credentials: Some((dir.path().join("bin"), None)),
            config: None,
        };
        assert!(load(&binary).unwrap_err().to_string().contains("UTF-8"));
    }
}
