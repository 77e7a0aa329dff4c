//! `store` of a file with encryption: the snapshot file is verified and
//! encrypted in one pass into a locked temporary file (ciphertext only: the
//! plaintext is never written anywhere), hashed as it is written; that file is
//! then what is uploaded, through the same paths and with the same guarantees
//! as an unencrypted file (its SHA-256 recorded when the upload starts, the
//! object visible only once whole).
//!
//! age output is not deterministic (a random file key and nonce), so the digest
//! of the object's bytes is only known after encrypting; S3 takes metadata when
//! an upload starts: hence the temporary file, which costs the disk space of the
//! snapshot once more (README, Known limits).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::base::fs::TempFile;
use crate::formats::compress::Compress;
use crate::formats::encrypt::Recipients;
use crate::formats::pipeline::{Hashing, Stages};
use crate::formats::snapshot::{NamedSink, SnapshotInfo, Verifier};

use super::{FileState, unchanged};

/// The encrypted copy of a verified snapshot file.
pub(super) struct Encrypted {
    /// The ciphertext, locked; removed when dropped unless persisted.
    pub(super) temp: TempFile,
    /// What verification of the plaintext found, with the input's size and
    /// SHA-256 replaced by the ciphertext's (what is stored).
    pub(super) info: SnapshotInfo,
}

/// Verifies `src` (which must still be as it was `before` when done) and
/// encrypts it to `recipients` into a locked temporary file beside `beside`,
/// `suffix` naming it; what a killed run left there is swept first.
pub(super) async fn encrypt_file(
    src: &Path,
    before: FileState,
    recipients: &Recipients,
    (beside, suffix): (PathBuf, &'static str),
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<Encrypted> {
    let (src, recipients) = (src.to_path_buf(), recipients.clone());
    let fingerprints = recipients.fingerprints().join(",");
    let (stop, limit) = (shutdown.clone(), *deadline);
    tokio::task::spawn_blocking(move || {
        crate::base::fs::sweep(&beside, &[suffix]);
        let (temp, file) = TempFile::beside(&beside, suffix)?;
        let sink = Hashing {
            inner: NamedSink::new(BufWriter::with_capacity(1 << 20, file), temp.path.clone()),
            hash: Sha256::new(),
            total: 0,
        };
        let mut out = Stages {
            compress: Compress::None,
            encrypt: Some(recipients),
        }
        .chain(sink)?;
        let mut input = std::fs::File::open(&src)
            .map_err(|e| Error::io(&src, "cannot open snapshot file", e))?;
        let mut v = Verifier::new(std::io::sink(), false);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            limit.check(&stop, "encrypting the snapshot")?;
            let n = input
                .read(&mut buf)
                .map_err(|e| Error::io(&src, "cannot read snapshot file", e))?;
            if n == 0 {
                break;
            }
            v.update(&buf[..n])
                .map_err(|e| e.about(format_args!("snapshot file {}", src.display())))?;
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(&temp.path, "cannot write the encrypted snapshot", e))?;
        }
        let (mut info, _) = v
            .finish()
            .map_err(|e| e.about(format_args!("snapshot file {}", src.display())))?;
        unchanged(&src, before, &info)?;
        let sink = out.finish()?;
        crate::base::fs::flush_sync(sink.inner.into_inner(), &temp.path)?;
        info.input_bytes = sink.total;
        info.input_sha256 = Some(hex::encode(sink.hash.finalize()));
        tracing::info!(
            encrypted_bytes = sink.total,
            recipients = %fingerprints,
            "snapshot verified and encrypted (age)"
        );
        Ok(Encrypted { temp, info })
    })
    .await
    .map_err(|e| Error::Other(format!("encrypting task failed: {e}")))?
}
