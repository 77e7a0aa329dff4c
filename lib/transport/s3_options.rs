//! How requests to an S3 bucket are dressed, beyond credentials and endpoint:
//! server-side encryption (`SSE`, `SSE_KMS_KEY_ID`, `SSE_BUCKET_KEY`, SSE-C with
//! `SSE_CUSTOMER_KEY` / `SSE_CUSTOMER_KEY_FILE`), flexible checksums
//! (`CHECKSUM`) and bucket addressing (`ADDRESSING`).
//!
//! object_store sends all of these on its own requests once its builder is told
//! ([`S3Options::apply`]); the streaming uploads (put.rs) take the same headers
//! from here ([`S3Options::create_headers`], [`S3Options::part_headers`]), so
//! both paths send the same thing. The customer key is a secret: it is never
//! shown (`Debug` redacts it, errors name only the variable).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};

use crate::base::error::{Error, Result};
use crate::base::settings::{Inputs, Secret};

/// Server-side encryption asked for the objects we write (and, for SSE-C, read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sse {
    /// Nothing sent: the bucket's default applies.
    #[default]
    None,
    /// `SSE=AES256`: S3-managed keys.
    S3,
    /// `SSE=aws:kms`: a KMS key (the account's default when no id is given),
    /// optionally with an S3 bucket key.
    Kms {
        /// `SSE_KMS_KEY_ID`.
        key_id: Option<String>,
        /// `SSE_BUCKET_KEY`.
        bucket_key: Option<bool>,
    },
    /// SSE-C: the customer's 256-bit key, sent with every request that writes
    /// or reads the object's bytes or metadata.
    Customer {
        /// The key, base64 (as sent).
        key: Secret,
        /// Which variable gave it, for messages.
        from: &'static str,
    },
}

/// Flexible checksums (`CHECKSUM`): none by default, as before AWS's SDKs
/// began sending them, so servers that do not know them keep working.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChecksumMode {
    /// No `x-amz-checksum-*` header, no trailer.
    #[default]
    Off,
    /// `x-amz-checksum-sha256` on a single PUT and on each part.
    Sha256,
}

/// How the bucket is named in requests (`ADDRESSING`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Addressing {
    /// Virtual-hosted on AWS's public endpoint (except for dotted bucket
    /// names, which its wildcard certificate does not cover), path-style
    /// everywhere else.
    #[default]
    Auto,
    /// `https://endpoint/bucket/key`.
    Path,
    /// `https://bucket.endpoint/key`.
    Virtual,
}

impl Addressing {
    /// Whether requests name the bucket in the host, for `endpoint` (`None`: AWS).
    pub fn virtual_hosted(self, endpoint: Option<&str>, bucket: &str) -> bool {
        match self {
            Addressing::Auto => endpoint.is_none() && !bucket.contains('.'),
            Addressing::Path => false,
            Addressing::Virtual => true,
        }
    }
}

/// The bucket's URL, without a trailing slash: `endpoint/bucket` (path-style),
/// `scheme://bucket.host[:port]` (virtual-hosted on a custom endpoint), or AWS's
/// `https://bucket.s3.REGION.amazonaws.com` / `https://s3.REGION.amazonaws.com/bucket`.
/// Virtual-hosted needs a host name: an IP address cannot carry the bucket.
pub(crate) fn bucket_url(
    endpoint: Option<&str>,
    bucket: &str,
    region: &str,
    addressing: Addressing,
) -> Result<String> {
    let virtual_hosted = addressing.virtual_hosted(endpoint, bucket);
    Ok(match (endpoint, virtual_hosted) {
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        (Some(e), false) => format!("{}/{bucket}", e.trim_end_matches('/')),
        (Some(e), true) => {
            let url = url::Url::parse(e)
                .map_err(|err| Error::Config(format!("ENDPOINT {e:?}: {err}")))?;
            match url.host() {
                Some(url::Host::Domain(host)) => {
                    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                    format!("{}://{bucket}.{host}{port}", url.scheme())
                }
                _ => {
                    return Err(Error::Config(format!(
                        "ADDRESSING=virtual puts the bucket in the host name, but the \
                         endpoint {e} is an IP address; use ADDRESSING=path (or auto)"
                    )));
                }
            }
        }
    })
}

/// Everything of this module, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Server-side encryption.
    pub sse: Sse,
    /// Flexible checksums.
    pub checksum: ChecksumMode,
    /// Bucket addressing.
    pub addressing: Addressing,
}

impl S3Options {
    /// Reads and checks the settings; every mistake is a configuration error
    /// naming its variable (and never showing a key).
    pub fn from_inputs(i: &Inputs) -> Result<S3Options> {
        Ok(S3Options {
            sse: sse(i)?,
            checksum: match i.checksum.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
                None => ChecksumMode::Off,
                Some(v) if v.is_empty() || v == "off" || v == "none" => ChecksumMode::Off,
                Some(v) if v == "sha256" => ChecksumMode::Sha256,
                Some(_) => {
                    return Err(Error::Config(format!(
                        "CHECKSUM={:?} is not supported (use sha256, or leave it unset)",
                        i.checksum.as_deref().unwrap_or_default()
                    )));
                }
            },
            addressing: match i
                .addressing
                .as_deref()
                .map(|s| s.trim().to_ascii_lowercase())
            {
                None => Addressing::Auto,
                Some(v) if v == "auto" => Addressing::Auto,
                Some(v) if v == "path" => Addressing::Path,
                Some(v) if v == "virtual" => Addressing::Virtual,
                Some(_) => {
                    return Err(Error::Config(format!(
                        "ADDRESSING={:?} is not auto, path or virtual",
                        i.addressing.as_deref().unwrap_or_default()
                    )));
                }
            },
        })
    }

    /// Tells object_store's builder (its reads, lists, deletes and multipart
    /// calls) the same.
    pub(crate) fn apply(&self, mut b: AmazonS3Builder) -> AmazonS3Builder {
        match &self.sse {
            Sse::None => {}
            Sse::S3 => {
                let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                    .parse()
                    .expect("object_store knows its own key");
                b = b.with_config(key, "AES256");
            }
            Sse::Kms { key_id, bucket_key } => {
                b = b.with_sse_kms_encryption(key_id.clone().unwrap_or_default());
                if let Some(on) = bucket_key {
                    b = b.with_bucket_key(*on);
                }
            }
            Sse::Customer { key, .. } => b = b.with_ssec_encryption(key.expose()),
        }
        if self.checksum == ChecksumMode::Sha256 {
            b = b.with_checksum_algorithm(Checksum::SHA256);
        }
        b
    }

    /// The headers of a request that creates the object (PutObject,
    /// CreateMultipartUpload): the encryption asked for, and the checksum
    /// algorithm of a multipart upload.
    pub(crate) fn create_headers(&self, multipart: bool) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match &self.sse {
            Sse::None => {}
            Sse::S3 => out.push(("x-amz-server-side-encryption", "AES256".to_string())),
            Sse::Kms { key_id, bucket_key } => {
                out.push(("x-amz-server-side-encryption", "aws:kms".to_string()));
                if let Some(id) = key_id {
                    out.push(("x-amz-server-side-encryption-aws-kms-key-id", id.clone()));
                }
                if let Some(on) = bucket_key {
                    out.push((
                        "x-amz-server-side-encryption-bucket-key-enabled",
                        on.to_string(),
                    ));
                }
            }
            Sse::Customer { .. } => out.extend(self.customer_headers()),
        }
        if multipart && self.checksum == ChecksumMode::Sha256 {
            out.push(("x-amz-checksum-algorithm", "SHA256".to_string()));
        }
        out
    }

    /// The headers of UploadPart and CompleteMultipartUpload: SSE-C's (S3
    /// takes the others only when the upload starts).
    pub(crate) fn part_headers(&self) -> Vec<(&'static str, String)> {
        self.customer_headers()
    }

    fn customer_headers(&self) -> Vec<(&'static str, String)> {
        let Sse::Customer { key, .. } = &self.sse else {
            return Vec::new();
        };
        use md5::Digest as _;
        let raw = BASE64.decode(key.expose()).unwrap_or_default();
        let md5 = BASE64.encode(md5::Md5::digest(&raw));
        vec![
            (
                "x-amz-server-side-encryption-customer-algorithm",
                "AES256".to_string(),
            ),
            (
                "x-amz-server-side-encryption-customer-key",
                key.expose().to_string(),
            ),
            ("x-amz-server-side-encryption-customer-key-md5", md5),
        ]
    }

    /// The variable that gave an SSE-C key, if one is set.
    pub fn customer_key_var(&self) -> Option<&'static str> {
        match &self.sse {
            Sse::Customer { from, .. } => Some(from),
            _ => None,
        }
    }
}

/// `x-amz-checksum-sha256`'s value for a hex SHA-256: the digest's bytes in base64.
pub(crate) fn checksum_sha256(hex_digest: &str) -> Option<String> {
    hex::decode(hex_digest).ok().map(|d| BASE64.encode(d))
}

fn sse(i: &Inputs) -> Result<Sse> {
    let kind = i.sse.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let key = customer_key(i)?;
    let bucket_key = match i.sse_bucket_key.as_deref() {
        None => None,
        Some(v) => Some(crate::transport::remote::parse_bool(
            Some(v),
            "SSE_BUCKET_KEY",
        )?),
    };
    let kms_only = |var: &str| {
        Error::Config(format!(
            "{var} is set but SSE is not aws:kms; set SSE=aws:kms or remove {var}"
        ))
    };
    if let Some(key) = key {
        if let Some(kind) = kind {
            return Err(Error::Config(format!(
                "SSE={kind:?} and a customer key ({}) are both set; S3 takes one kind of \
                 server-side encryption per object: remove one",
                key.1
            )));
        }
        if i.sse_kms_key_id.is_some() {
            return Err(kms_only("SSE_KMS_KEY_ID"));
        }
        if bucket_key.is_some() {
            return Err(kms_only("SSE_BUCKET_KEY"));
        }
        return Ok(Sse::Customer {
            key: key.0,
            from: key.1,
        });
    }
    match kind {
        None | Some("AES256") => {
            if i.sse_kms_key_id.is_some() {
                return Err(kms_only("SSE_KMS_KEY_ID"));
            }
            if bucket_key.is_some() {
                return Err(kms_only("SSE_BUCKET_KEY"));
            }
            Ok(if kind.is_some() { Sse::S3 } else { Sse::None })
        }
        Some("aws:kms") => {
            let key_id = i.sse_kms_key_id.as_deref().map(str::trim);
            if let Some(id) = key_id {
                crate::transport::remote::header_safe(id, "SSE_KMS_KEY_ID", false)?;
            }
            Ok(Sse::Kms {
                key_id: key_id.map(str::to_string),
                bucket_key,
            })
        }
        Some(other) => Err(Error::Config(format!(
            "SSE={other:?} is not AES256 or aws:kms (for SSE-C give SSE_CUSTOMER_KEY or \
             SSE_CUSTOMER_KEY_FILE, without SSE)"
        ))),
    }
}

/// The SSE-C key, base64, from `SSE_CUSTOMER_KEY` (base64 of 32 bytes) or
/// `SSE_CUSTOMER_KEY_FILE` (the same text, or the 32 raw bytes).
fn customer_key(i: &Inputs) -> Result<Option<(Secret, &'static str)>> {
    let (text, from) = match (&i.sse_customer_key, &i.sse_customer_key_file) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "SSE_CUSTOMER_KEY and SSE_CUSTOMER_KEY_FILE are both set; give one".into(),
            ));
        }
        (None, None) => return Ok(None),
        (Some(k), None) => (k.expose().as_bytes().to_vec(), "SSE_CUSTOMER_KEY"),
        (None, Some(path)) => (
            std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "SSE_CUSTOMER_KEY_FILE={path:?}: cannot read it: {e}"
                ))
            })?,
            "SSE_CUSTOMER_KEY_FILE",
        ),
    };
    if from == "SSE_CUSTOMER_KEY_FILE" && text.len() == 32 {
        // The raw key (`head -c 32 /dev/urandom`): base64 of 32 bytes is 44
        // characters, so the two forms cannot be mistaken for each other.
        return Ok(Some((Secret::new(BASE64.encode(&text)), from)));
    }
    let trimmed = String::from_utf8_lossy(&text).trim().to_string();
    match BASE64.decode(trimmed.as_bytes()) {
        Ok(raw) if raw.len() == 32 => Ok(Some((Secret::new(trimmed), from))),
        Ok(raw) => Err(Error::Config(format!(
            "{from} holds {} bytes once base64-decoded; SSE-C needs a 256-bit key \
             (32 bytes: `openssl rand -base64 32`)",
            raw.len()
        ))),
        Err(_) => Err(Error::Config(format!(
            "{from} is not base64 (SSE-C needs a 256-bit key: `openssl rand -base64 32`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Result<S3Options> {
        S3Options::from_inputs(&Inputs::from_env_vars(
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        ))
    }

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn defaults_send_nothing() {
        let o = opts(&[]).unwrap();
        assert_eq!(o, S3Options::default());
        assert!(o.create_headers(true).is_empty());
        assert!(o.part_headers().is_empty());
    }

    #[test]
    fn kms_headers() {
        let o = opts(&[
            ("SSE", "aws:kms"),
            ("SSE_KMS_KEY_ID", "alias/etcd"),
            ("SSE_BUCKET_KEY", "true"),
            ("CHECKSUM", "SHA256"),
        ])
        .unwrap();
        let h = o.create_headers(true);
        assert!(h.contains(&("x-amz-server-side-encryption", "aws:kms".into())));
        assert!(h.contains(&(
            "x-amz-server-side-encryption-aws-kms-key-id",
            "alias/etcd".into()
        )));
        assert!(h.contains(&(
            "x-amz-server-side-encryption-bucket-key-enabled",
            "true".into()
        )));
        assert!(h.contains(&("x-amz-checksum-algorithm", "SHA256".into())));
        assert!(o.part_headers().is_empty());
        let o = opts(&[("SSE", "AES256")]).unwrap();
        assert_eq!(
            o.create_headers(false),
            vec![("x-amz-server-side-encryption", "AES256".to_string())]
        );
    }

    #[test]
    fn customer_key_forms_and_md5() {
        let o = opts(&[("SSE_CUSTOMER_KEY", KEY)]).unwrap();
        let h = o.part_headers();
        // `printf 0123456789abcdef0123456789abcdef | openssl md5 -binary | base64`
        assert!(h.contains(&(
            "x-amz-server-side-encryption-customer-key-md5",
            "hRasmdxgYDKV3nvbahU1MA==".into()
        )));
        assert_eq!(o.create_headers(true), h);
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, b"0123456789abcdef0123456789abcdef").unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, format!("{KEY}\n")).unwrap();
        for file in [&raw, &text] {
            let f = opts(&[("SSE_CUSTOMER_KEY_FILE", file.to_str().unwrap())]).unwrap();
            assert_eq!(f.part_headers(), h, "{}", file.display());
        }
        assert!(!format!("{o:?}").contains(KEY), "{o:?}");
    }

    #[test]
    fn mistakes_name_the_variable_and_never_the_key() {
        let short = "c2hvcnQ=";
        let cases: [(&[(&str, &str)], &str); 9] = [
            (&[("SSE", "aes256x")], "SSE="),
            (&[("SSE_KMS_KEY_ID", "k")], "SSE_KMS_KEY_ID"),
            (
                &[("SSE", "AES256"), ("SSE_BUCKET_KEY", "true")],
                "SSE_BUCKET_KEY",
            ),
            (
                &[("SSE", "aws:kms"), ("SSE_BUCKET_KEY", "maybe")],
                "SSE_BUCKET_KEY",
            ),
            (&[("SSE_CUSTOMER_KEY", short)], "SSE_CUSTOMER_KEY"),
            (&[("SSE_CUSTOMER_KEY", "not base64!")], "SSE_CUSTOMER_KEY"),
            (&[("SSE", "AES256"), ("SSE_CUSTOMER_KEY", KEY)], "SSE="),
            (
                &[("SSE_CUSTOMER_KEY_FILE", "/nonexistent/k")],
                "SSE_CUSTOMER_KEY_FILE",
            ),
            (&[("CHECKSUM", "crc32")], "CHECKSUM"),
        ];
        for (pairs, var) in cases {
            let e = opts(pairs).unwrap_err();
            assert_eq!(e.exit_code(), 78, "{pairs:?}");
            let text = e.to_string();
            assert!(text.contains(var), "{text} should name {var}");
            assert!(!text.contains(KEY) && !text.contains(short), "{text}");
        }
        let e = opts(&[("ADDRESSING", "dns")]).unwrap_err();
        assert!(e.to_string().starts_with("ADDRESSING="), "{e}");
    }

    #[test]
    fn bucket_urls() {
        use Addressing::*;
        let u = |e: Option<&str>, b: &str, a| bucket_url(e, b, "eu-west-1", a);
        assert_eq!(
            u(None, "b", Auto).unwrap(),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            u(None, "b.c", Auto).unwrap(),
            "https://s3.eu-west-1.amazonaws.com/b.c"
        );
        assert_eq!(
            u(None, "b", Path).unwrap(),
            "https://s3.eu-west-1.amazonaws.com/b"
        );
        assert_eq!(
            u(Some("http://minio.lan:9000"), "b", Auto).unwrap(),
            "http://minio.lan:9000/b"
        );
        assert_eq!(
            u(Some("https://minio.lan:9000"), "b", Virtual).unwrap(),
            "https://b.minio.lan:9000"
        );
        let e = u(Some("http://127.0.0.1:9000"), "b", Virtual).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("ADDRESSING=virtual"), "{e}");
    }

    #[test]
    fn addressing() {
        let a = |v: &str| opts(&[("ADDRESSING", v)]).unwrap().addressing;
        assert!(a("auto").virtual_hosted(None, "b"));
        assert!(!a("auto").virtual_hosted(None, "b.c"));
        assert!(!a("auto").virtual_hosted(Some("http://x"), "b"));
        assert!(a("virtual").virtual_hosted(Some("http://x"), "b"));
        assert!(!a("PATH").virtual_hosted(None, "b"));
        assert_eq!(
            checksum_sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
                .as_deref(),
            Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        );
    }
}
