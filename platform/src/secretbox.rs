//! Secrets at rest: values the platform must read back (an OIDC client secret, an LDAP
//! bind password, app secrets) are sealed with XChaCha20-Poly1305 under one platform
//! key before they reach the database.
//!
//! The key is 32 bytes: from `TESSERA_SECRET_KEY` (base64) when set, else from the key file
//! (`{data_dir}/secret.key` by default), which is created with mode 0600 on first use.
//! Every replica must use the same key. A sealed value is `v1:` + base64(nonce ‖ ciphertext)
//! with a fresh random 24-byte nonce per value, so equal secrets seal differently.
//!
//! Nothing here logs a key or a plaintext; `Debug` shows neither.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;

const PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 24;

/// Why a key could not be loaded or a value not opened. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `TESSERA_SECRET_KEY` or the key file does not hold 32 base64-encoded bytes.
    #[error("the secret key from {source_name} is not 32 bytes of base64")]
    BadKey {
        /// Where the key came from (a variable name or a path).
        source_name: String,
    },
    /// Reading or creating the key file failed.
    #[error("cannot read or create the secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The value was not sealed by this module, or not with this key, or was altered.
    #[error("a sealed secret cannot be opened (altered, or sealed under another key)")]
    Open,
}

/// The platform's sealing key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// HMAC-SHA256(key, "tessera derive v1"): the root of [`SecretBox::derive`], so the
    /// sealing key itself is never used for anything but sealing.
    derive_root: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box over a raw 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            derive_root: hmac_sha256(key, b"tessera derive v1"),
        }
    }

    /// 32 bytes derived from the key for `context` (HMAC-SHA256): the same on every
    /// replica and every restart, different for every context, and telling nothing about
    /// the key or about another context's bytes. OIDC client keys come from here.
    pub fn derive(&self, context: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.derive_root, context)
    }

    /// The key from `env_key` (base64, e.g. the value of `TESSERA_SECRET_KEY`) when given,
    /// else from `key_file`, created with 32 random bytes (mode 0600) when missing.
    pub fn load(env_key: Option<&str>, key_file: &Path) -> Result<Self, Error> {
        if let Some(encoded) = env_key {
            return decode_key(encoded, "TESSERA_SECRET_KEY").map(|k| Self::from_key(&k));
        }
        let key_error = |source| Error::KeyFile {
            path: key_file.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(key_file) {
            Ok(text) => {
                if let Err(e) = owner_only(key_file) {
                    // A read-only mount (a secret volume) cannot change: say so, go on.
                    tracing::warn!(path = %key_file.display(), error = %e, "the secret key file is readable by others and cannot be made 0600");
                }
                decode_key(&text, &key_file.display().to_string()).map(|k| Self::from_key(&k))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(key_error)?;
                }
                let key: [u8; 32] = rand::rng().random();
                write_new_key_file(key_file, &STANDARD.encode(key)).map_err(key_error)?;
                // Another process may have won the race to create it: use what is there.
                let text = std::fs::read_to_string(key_file).map_err(key_error)?;
                decode_key(&text, &key_file.display().to_string()).map(|k| Self::from_key(&k))
            }
            Err(e) => Err(key_error(e)),
        }
    }

    /// Seal `plaintext`: `v1:` + base64(nonce ‖ ciphertext and tag).
    pub fn seal(&self, plaintext: &[u8]) -> String {
        self.seal_bound(plaintext, b"")
    }

    /// Open a value made by [`SecretBox::seal`] under the same key.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, Error> {
        self.open_bound(sealed, b"")
    }

    /// Seal `plaintext` bound to `context` (authenticated, not stored): the value opens
    /// only with the same context, so a sealed value copied to another row (another app's
    /// secret, say) no longer opens.
    pub fn seal_bound(&self, plaintext: &[u8], context: &[u8]) -> String {
        let nonce_bytes: [u8; NONCE_BYTES] = rand::rng().random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        // Encryption into a Vec fails only when the buffer cannot grow.
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        let ciphertext = self
            .cipher
            .encrypt(nonce, payload)
            .unwrap_or_else(|_| panic!("XChaCha20-Poly1305 encryption failed"));
        let mut out = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// Open a value made by [`SecretBox::seal_bound`] under the same key and context.
    pub fn open_bound(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, Error> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or(Error::Open)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| Error::Open)?;
        if bytes.len() < NONCE_BYTES {
            return Err(Error::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| Error::Open)
    }

    /// Whether `value` looks like a sealed value (not whether it opens).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

fn decode_key(encoded: &str, source_name: &str) -> Result<[u8; 32], Error> {
    STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| Error::BadKey {
            source_name: source_name.to_owned(),
        })
}

/// Create `path` with `contents`, readable by its owner only; an existing file is kept.
fn write_new_key_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Tighten an existing key file to 0600 (one written by hand, or by an older version, may
/// be readable by others).
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_and_differ_each_time() {
        let sealer = SecretBox::from_key(&[7; 32]);
        let a = sealer.seal(b"dashboard-secret");
        let b = sealer.seal(b"dashboard-secret");
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("dashboard-secret"));
        assert_eq!(sealer.open(&a).expect("opens"), b"dashboard-secret");
    }

    #[test]
    fn altered_values_and_other_keys_are_refused() {
        let sealer = SecretBox::from_key(&[7; 32]);
        let sealed = sealer.seal(b"s3cret");
        let other = SecretBox::from_key(&[8; 32]);
        assert!(matches!(other.open(&sealed), Err(Error::Open)));
        let mut bytes = STANDARD
            .decode(sealed.trim_start_matches(PREFIX))
            .expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{PREFIX}{}", STANDARD.encode(bytes));
        assert!(matches!(sealer.open(&tampered), Err(Error::Open)));
        assert!(matches!(sealer.open("plain"), Err(Error::Open)));
        assert!(matches!(sealer.open("v1:AAAA"), Err(Error::Open)));
    }

    #[test]
    fn bound_values_open_only_in_their_context() {
        let sealer = SecretBox::from_key(&[7; 32]);
        let sealed = sealer.seal_bound(b"s3cret", b"app-secret:1:API_KEY");
        assert_eq!(
            sealer
                .open_bound(&sealed, b"app-secret:1:API_KEY")
                .expect("opens"),
            b"s3cret"
        );
        for other in [&b"app-secret:2:API_KEY"[..], b"app-secret:1:OTHER", b""] {
            assert!(matches!(
                sealer.open_bound(&sealed, other),
                Err(Error::Open)
            ));
        }
        assert!(matches!(sealer.open(&sealed), Err(Error::Open)));
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("secret.key");
        let first = SecretBox::load(None, &path).expect("creates the key");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SecretBox::load(None, &path).expect("reads the key");
        assert_eq!(again.open(&first.seal(b"x")).expect("same key"), b"x");
    }

    #[test]
    fn a_key_from_the_environment_must_be_32_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("unused.key");
        let good = STANDARD.encode([1u8; 32]);
        assert!(SecretBox::load(Some(&good), &path).is_ok());
        assert!(
            !path.exists(),
            "no file when the key comes from the environment"
        );
        let short = STANDARD.encode([1u8; 16]);
        let err = SecretBox::load(Some(&short), &path).expect_err("16 bytes is refused");
        assert!(err.to_string().contains("TESSERA_SECRET_KEY"), "{err}");
        assert!(SecretBox::load(Some("not base64!"), &path).is_err());
    }
}
