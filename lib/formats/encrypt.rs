//! The age format (`age-encryption.org/v1`, X25519 recipients) for stored
//! snapshots: the public recipients `store` encrypts to, the identities `restore`
//! decrypts with, the encrypting stage of the pipeline and the decrypting reader.
//!
//! The cryptography is the `age` crate's; this module parses the inputs (each
//! error names the variable or file, and never prints a secret key) and maps the
//! crate's errors to exit classes: a malformed input is configuration (78), no
//! identity matching the object's recipients is access denied (77), and a
//! ciphertext that does not authenticate (a flipped byte, a truncated object, a
//! swapped chunk) is a data error (65).
//!
//! A recipient's fingerprint is the first 16 hex digits of the SHA-256 of its
//! `age1...` text: what the object's metadata records, so that an operator can
//! tell which key an object needs without the metadata holding a key
//! (`age-keygen -y key.txt | tr -d '\n' | sha256sum | cut -c1-16`).

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::x25519;

use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};

/// The first bytes of every age file (the version line's prefix).
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/";
/// The encryption scheme recorded with an object (`x-amz-meta-snapjob-encryption`).
pub const SCHEME: &str = "age-x25519";
/// Metadata names: the scheme, and the recipients' fingerprints (comma-separated).
pub const SCHEME_METADATA: &str = "snapjob-encryption";
pub const RECIPIENTS_METADATA: &str = "snapjob-recipients";

/// Whether `head` (the object's first bytes, at least [`AGE_MAGIC`]'s length when
/// the object is that long) starts an age file.
pub fn is_age(head: &[u8]) -> bool {
    head.starts_with(AGE_MAGIC)
}

/// The fingerprint of a recipient (see the module documentation).
pub fn fingerprint(recipient: &x25519::Recipient) -> String {
    hex::encode(&Sha256::digest(recipient.to_string().as_bytes())[..8])
}

/// Public X25519 recipients a stored snapshot is encrypted to (at least one).
#[derive(Clone)]
pub struct Recipients {
    keys: Arc<Vec<x25519::Recipient>>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipients({})", self.fingerprints().join(","))
    }
}

impl Recipients {
    /// The recipients in `list` (from `list_var`: separated by commas, spaces or
    /// newlines) and in the file `file` (from `file_var`: one per line, `#`
    /// comments), together; `None` when neither is given. Every malformed entry or
    /// an unreadable file is a configuration error naming where it came from.
    pub fn parse(
        list: Option<(&str, &str)>,
        file: Option<(&Path, &str)>,
    ) -> Result<Option<Recipients>> {
        let mut keys = Vec::new();
        if let Some((text, var)) = list {
            let items = text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty());
            for (n, item) in items.enumerate() {
                keys.push(recipient(item, &format!("{var}: recipient {}", n + 1))?);
            }
            if keys.is_empty() {
                return Err(Error::Config(format!("{var} holds no recipient")));
            }
        }
        if let Some((path, var)) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Config(format!(
                    "{var}: cannot read recipients file {}: {e}",
                    path.display()
                ))
            })?;
            let before = keys.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let at = format!("{var}: {} line {}", path.display(), n + 1);
                keys.push(recipient(line, &at)?);
            }
            if keys.len() == before {
                return Err(Error::Config(format!(
                    "{var}: recipients file {} holds no recipient",
                    path.display()
                )));
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        // The same key given twice would only add a stanza.
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(k.to_string()));
        Ok(Some(Recipients {
            keys: Arc::new(keys),
        }))
    }

    /// The recipients' fingerprints, in order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(fingerprint).collect()
    }

    /// Starts an age file on `sink`: what is written to the returned writer is
    /// encrypted to every recipient; `finish` writes the last chunk.
    pub fn encrypt<W: Write>(&self, sink: W) -> io::Result<age::stream::StreamWriter<W>> {
        let keys = self.keys.iter().map(|k| k as &dyn age::Recipient);
        age::Encryptor::with_recipients(keys)
            .map_err(|e| io::Error::other(format!("cannot start the age encryption: {e}")))?
            .wrap_output(sink)
    }
}

/// One recipient, `at` naming where it came from. A secret key given by mistake
/// is refused without being printed.
fn recipient(text: &str, at: &str) -> Result<x25519::Recipient> {
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err(Error::Config(format!(
            "{at} is a secret key (AGE-SECRET-KEY-...), not a recipient: give the public key \
             (age-keygen -y prints it) and keep the secret key out of the store Job"
        )));
    }
    text.parse::<x25519::Recipient>().map_err(|why| {
        let shown: String = text.chars().take(80).collect();
        Error::Config(format!(
            "{at} {shown:?} is not an age X25519 recipient (age1..., as age-keygen prints): {why}"
        ))
    })
}

/// X25519 identities (secret keys) `restore` decrypts with, read from files.
#[derive(Clone, Default)]
pub struct Identities {
    keys: Arc<Vec<x25519::Identity>>,
    /// The files, for messages.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} from {:?})", self.keys.len(), self.files)
    }
}

impl Identities {
    /// The identities in `files` (age-keygen's format: `AGE-SECRET-KEY-1...` lines,
    /// `#` comments), `var` naming the setting. An unreadable file, a line that is
    /// not an identity (never printed) or a file with none is a configuration error.
    pub fn from_files(files: &[PathBuf], var: &str) -> Result<Identities> {
        let mut keys = Vec::new();
        for path in files {
            let file = std::fs::File::open(path).map_err(|e| {
                Error::Config(format!(
                    "{var}: cannot read identity file {}: {e}",
                    path.display()
                ))
            })?;
            let before = keys.len();
            for (n, line) in io::BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| {
                    Error::Config(format!(
                        "{var}: cannot read identity file {}: {e}",
                        path.display()
                    ))
                })?;
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let key = line.parse::<x25519::Identity>().map_err(|_| {
                    Error::Config(format!(
                        "{var}: {} line {} is not an age X25519 identity \
                         (AGE-SECRET-KEY-1..., as age-keygen writes)",
                        path.display(),
                        n + 1
                    ))
                })?;
                keys.push(key);
            }
            if keys.len() == before {
                return Err(Error::Config(format!(
                    "{var}: identity file {} holds no identity",
                    path.display()
                )));
            }
        }
        Ok(Identities {
            keys: Arc::new(keys),
            files: files.to_vec(),
        })
    }

    /// Whether there is none (no identity file given).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identities' own fingerprints (of their public keys), for messages.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| fingerprint(&k.to_public()))
            .collect()
    }
}

/// What an encrypted object needs to be decrypted: the identities, the setting
/// that gives them (for messages), and the recipients' fingerprints the object's
/// metadata records, if any.
#[derive(Clone, Debug, Default)]
pub struct Decryption {
    pub identities: Identities,
    pub var: String,
    pub recorded: Option<String>,
}

/// A reader of the plaintext of the age file `input`, decrypted with
/// `how.identities`. No identity given is a configuration error naming the
/// variable and the recipients the metadata records; none matching is access
/// denied; a malformed header is a data error.
pub fn decrypt<R: Read>(
    input: R,
    how: &Decryption,
) -> Result<age::stream::StreamReader<io::BufReader<R>>> {
    let recorded = match &how.recorded {
        Some(fps) => format!("recipients with fingerprints {fps}"),
        None => "recipients not recorded with the object".to_string(),
    };
    if how.identities.is_empty() {
        return Err(Error::Config(format!(
            "the backup is encrypted (age, {recorded}): give the identity file that \
             matches one of them in {} (or --identity FILE)",
            how.var
        )));
    }
    let decryptor = age::Decryptor::new_buffered(io::BufReader::with_capacity(1 << 16, input))
        .map_err(|e| header_error(e, &recorded))?;
    let ids = how.identities.keys.iter().map(|k| k as &dyn age::Identity);
    decryptor.decrypt(ids).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => Error::Denied(format!(
            "no identity matches the recipients of the encrypted backup ({recorded}; \
             {} holds identities with fingerprints {})",
            how.var,
            how.identities.fingerprints().join(",")
        )),
        e => header_error(e, &recorded),
    })
}

fn header_error(e: age::DecryptError, recorded: &str) -> Error {
    match e {
        age::DecryptError::Io(io) => Error::Data(format!(
            "the encrypted backup's age header cannot be read ({recorded}): {io}"
        )),
        e => Error::Data(format!(
            "the encrypted backup's age header is not valid ({recorded}): {e}"
        )),
    }
}

/// Decrypts the age file `input` into `verifier`, 1 MiB of plaintext at a time.
/// A read error is taken for the ciphertext's (65): a reader whose own failures
/// tell more (a short download, a local read error) keeps them for its caller.
pub fn decrypt_into<R: Read, W: Write + Send + 'static>(
    input: R,
    how: &Decryption,
    verifier: &mut crate::formats::snapshot::Verifier<W>,
) -> Result<()> {
    let mut plain = decrypt(input, how)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match plain.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_error(e)),
        };
        verifier.update(&buf[..n])?;
    }
}

/// A read error of the decrypted stream: the ciphertext does not authenticate or
/// ends early (65).
pub fn stream_error(e: io::Error) -> Error {
    Error::Data(format!(
        "the encrypted backup does not decrypt (corrupt, truncated or reordered ciphertext): {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (x25519::Identity, String) {
        let id = x25519::Identity::generate();
        let r = id.to_public().to_string();
        (id, r)
    }

    fn decryption(ids: Vec<x25519::Identity>) -> Decryption {
        Decryption {
            identities: Identities {
                keys: Arc::new(ids),
                files: vec![],
            },
            var: "DECRYPT_IDENTITY_FILE".into(),
            recorded: None,
        }
    }

    fn encrypt(r: &Recipients, plain: &[u8]) -> Vec<u8> {
        let mut w = r.encrypt(Vec::new()).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn read_all(cipher: &[u8], how: &Decryption) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        decrypt(cipher, how)?
            .read_to_end(&mut out)
            .map_err(stream_error)?;
        Ok(out)
    }

    #[test]
    fn round_trip_and_the_errors_classes() {
        let (id, r) = pair();
        let (other, _) = pair();
        let recipients = Recipients::parse(Some((&r, "ENCRYPT_RECIPIENTS")), None)
            .unwrap()
            .unwrap();
        let plain = b"snapshot bytes ".repeat(20_000);
        let cipher = encrypt(&recipients, &plain);
        assert!(is_age(&cipher));
        assert_eq!(
            read_all(&cipher, &decryption(vec![id.clone()])).unwrap(),
            plain
        );

        let e = read_all(&cipher, &decryption(vec![])).unwrap_err();
        assert_eq!(e.exit_code(), 78, "{e}");
        assert!(e.to_string().contains("DECRYPT_IDENTITY_FILE"), "{e}");
        let e = read_all(&cipher, &decryption(vec![other])).unwrap_err();
        assert_eq!(e.exit_code(), 77, "{e}");
        assert!(e.to_string().contains("no identity matches"), "{e}");

        let mut flipped = cipher.clone();
        let at = flipped.len() - 1000;
        flipped[at] ^= 1;
        let e = read_all(&flipped, &decryption(vec![id.clone()])).unwrap_err();
        assert_eq!(e.exit_code(), 65, "{e}");
        // Cut at a chunk boundary (64 KiB + 16 bytes of tag each, after the header).
        let header = cipher.len() - (plain.len() + plain.len().div_ceil(65536) * 16);
        let cut = &cipher[..header + 65536 + 16];
        let e = read_all(cut, &decryption(vec![id.clone()])).unwrap_err();
        assert_eq!(e.exit_code(), 65, "{e}");
        // Two chunks swapped.
        let c = 65536 + 16;
        let mut swapped = cipher[..header].to_vec();
        swapped.extend_from_slice(&cipher[header + c..header + 2 * c]);
        swapped.extend_from_slice(&cipher[header..header + c]);
        swapped.extend_from_slice(&cipher[header + 2 * c..]);
        assert_eq!(swapped.len(), cipher.len());
        let e = read_all(&swapped, &decryption(vec![id])).unwrap_err();
        assert_eq!(e.exit_code(), 65, "{e}");
    }

    #[test]
    fn bad_recipients_and_identities_are_configuration_errors() {
        let (id, r) = pair();
        let typo = format!("{}x", &r[..r.len() - 1]);
        let e = Recipients::parse(Some((&format!("{r},{typo}"), "ENCRYPT_RECIPIENTS")), None)
            .unwrap_err();
        assert_eq!(e.exit_code(), 78);
        let text = e.to_string();
        assert!(
            text.contains("recipient 2") && text.contains(&typo),
            "{text}"
        );
        let secret = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        let e = Recipients::parse(Some((&secret, "ENCRYPT_RECIPIENTS")), None).unwrap_err();
        assert!(!e.to_string().contains(&secret[16..]), "{e}");
        assert_eq!(e.exit_code(), 78);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recipients");
        std::fs::write(&file, format!("# team keys\n\n{r}\n  {r}  \n")).unwrap();
        let got = Recipients::parse(None, Some((&file, "ENCRYPT_RECIPIENTS_FILE")))
            .unwrap()
            .unwrap();
        assert_eq!(got.fingerprints().len(), 1, "duplicates dropped");
        std::fs::write(&file, "# nothing\n").unwrap();
        let e = Recipients::parse(None, Some((&file, "ENCRYPT_RECIPIENTS_FILE"))).unwrap_err();
        assert!(e.to_string().contains("holds no recipient"), "{e}");
        let missing = dir.path().join("absent");
        let e = Recipients::parse(None, Some((&missing, "ENCRYPT_RECIPIENTS_FILE"))).unwrap_err();
        assert_eq!(e.exit_code(), 78);

        let keyfile = dir.path().join("key.txt");
        std::fs::write(
            &keyfile,
            format!("# created\n# public key: {r}\n{secret}\n"),
        )
        .unwrap();
        let ids = Identities::from_files(std::slice::from_ref(&keyfile), "DECRYPT_IDENTITY_FILE")
            .unwrap();
        assert_eq!(ids.fingerprints(), vec![fingerprint(&r.parse().unwrap())]);
        std::fs::write(&keyfile, format!("{}\n", &secret[..secret.len() - 2])).unwrap();
        let e = Identities::from_files(&[keyfile], "DECRYPT_IDENTITY_FILE").unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(!e.to_string().contains(&secret[20..40]), "{e}");
    }
}
