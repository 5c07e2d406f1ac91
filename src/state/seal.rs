//! Encryption of the state's secrets at rest.
//!
//! **What is sealed**: the `secrets` map (generated secrets, private keys the plan gave,
//! `{{ uuid.x }}` tokens) and every resource's `outputs.host_key_private` (the private half of
//! a node's SSH host key, kept while the node is being created). They leave the stored state
//! and go, as one JSON object `{"secrets": {..}, "host_keys": {address: private}}`, into
//! [`Sealed`]. **What is not**: ids, addresses, public host keys and fingerprints, statuses,
//! so that `state list` and `state show` read a sealed state without the key; only what needs
//! a secret (rendering `{{ x.secret }}`, resuming a node's create) needs the key.
//!
//! **Key derivation**: Argon2id (RustCrypto `argon2`), m = 19456 KiB, t = 2, p = 1, as OWASP
//! recommends, from a passphrase of at least 16 characters (`FITTER_STATE_KEY` or
//! `--state-key-file`). The 16-byte random salt and the parameters are kept in the sealed blob,
//! so a later fitter with other defaults still opens an older state. A deploy writes the state
//! thousands of times and a derivation costs tens of milliseconds, so a [`StateKey`] derives
//! once per (salt, parameters) and caches the result (zeroed when dropped); [`seal`] keeps the
//! previous salt for that reason. Build one `StateKey` per process and clone it.
//!
//! **Encryption**: XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`, audited by NCC Group),
//! with a fresh 24-byte random nonce on every write: 192-bit random nonces are safe to draw
//! for any realistic number of writes under one key, where random 12-byte ones
//! (ChaCha20-Poly1305, AES-GCM) are limited to about 2^32 messages. The associated data is the deployment's name and lineage: a
//! sealed blob copied into another deployment's state does not open there.
//!
//! **Why these crates**: pure Rust (no C toolchain, no OpenSSL to cross-build), maintained by
//! the RustCrypto project, which the SSH stack (russh) already builds on.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use super::State;

const KDF: &str = "argon2id";
const CIPHER: &str = "xchacha20poly1305";
/// Argon2id's m (KiB), t, p.
const PARAMS: (u32, u32, u32) = (19_456, 2, 1);
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const MIN_KEY_CHARS: usize = 16;

#[derive(Debug, Error)]
pub enum SealError {
    #[error(
        "the state key must be at least {MIN_KEY_CHARS} characters (FITTER_STATE_KEY or --state-key-file)"
    )]
    TooShort,
    #[error("cannot read the state key file `{path}`")]
    ReadKeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state key does not open the secrets of deployment `{deployment}`: is it the key the deployment was sealed with? Nothing was changed."
    )]
    WrongKey { deployment: String },
    #[error(
        "the secrets of deployment `{deployment}` are encrypted: give the state key (FITTER_STATE_KEY or --state-key-file)"
    )]
    NoKey { deployment: String },
    #[error("the encrypted secrets of deployment `{deployment}` are not valid: {detail}")]
    Malformed { deployment: String, detail: String },
    /// No salt or nonce can be drawn; one drawn any other way would not be safe.
    #[error("the system gave no randomness to encrypt the state's secrets with")]
    Random(#[source] getrandom::Error),
}

fn malformed(deployment: &str, detail: impl Into<String>) -> SealError {
    let (deployment, detail) = (deployment.to_string(), detail.into());
    SealError::Malformed { deployment, detail }
}

/// What a key is derived from: salt, m (KiB), t, p.
type KdfInput = (Vec<u8>, u32, u32, u32);

/// The passphrase that seals a state's secrets, with the keys derived from it so far.
#[derive(Clone)]
pub struct StateKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    passphrase: Zeroizing<String>,
    /// Derived keys by (salt, m, t, p). The lock is held through a derivation, so that two
    /// writers starting together derive once.
    derived: Mutex<HashMap<KdfInput, Zeroizing<[u8; 32]>>>,
    #[cfg(test)]
    derivations: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    pub fn new(passphrase: String) -> Result<StateKey, SealError> {
        let passphrase = Zeroizing::new(passphrase);
        if passphrase.chars().count() < MIN_KEY_CHARS {
            return Err(SealError::TooShort);
        }
        let derived = Mutex::default();
        #[cfg(test)]
        let derivations = Default::default();
        Ok(StateKey {
            inner: Arc::new(KeyInner {
                passphrase,
                derived,
                #[cfg(test)]
                derivations,
            }),
        })
    }

    /// `--state-key-file` if given (file contents, one trailing newline / \r\n trimmed), else
    /// the env var FITTER_STATE_KEY if set and non-empty, else Ok(None).
    pub fn from_env_or_file(file: Option<&Path>) -> Result<Option<StateKey>, SealError> {
        if let Some(path) = file {
            let mut text = std::fs::read_to_string(path).map_err(|source| {
                let path = path.to_path_buf();
                SealError::ReadKeyFile { path, source }
            })?;
            // Trimmed in place: no second copy of the key left unzeroed.
            let end = [&b"\r\n"[..], b"\n"]
                .into_iter()
                .find(|e| text.as_bytes().ends_with(e));
            text.truncate(text.len() - end.map_or(0, <[u8]>::len));
            return StateKey::new(text).map(Some);
        }
        // Not UTF-8: taken lossily, which still gives the same key on every run.
        match std::env::var_os("FITTER_STATE_KEY") {
            Some(v) if !v.is_empty() => StateKey::new(v.to_string_lossy().into_owned()).map(Some),
            _ => Ok(None),
        }
    }

    /// The cipher for a salt and parameters, deriving its key unless this key already did.
    fn cipher(&self, input: KdfInput, d: &str) -> Result<XChaCha20Poly1305, SealError> {
        let mut cache = self
            .inner
            .derived
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = cache.get(&input) {
            return Ok(XChaCha20Poly1305::new(Key::from_slice(k.as_ref())));
        }
        let (salt, m, t, p) = &input;
        // A state file edited to ask for a TiB of memory is refused rather than obeyed: the
        // bounds are far above anything fitter writes.
        if *m > 1 << 20 || *t > 64 || *p > 64 {
            return Err(malformed(d, "Argon2 parameters out of bounds"));
        }
        let params = Params::new(*m, *t, *p, Some(32)).map_err(|e| malformed(d, e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(self.inner.passphrase.as_bytes(), salt, key.as_mut())
            .map_err(|e| malformed(d, e.to_string()))?;
        #[cfg(test)]
        self.inner
            .derivations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        cache.insert(input, key);
        Ok(cipher)
    }
}

/// The sealed secrets of a state, as stored. Binary fields in standard base64; the
/// ciphertext ends with the 16-byte Poly1305 tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// `argon2id`.
    pub kdf: String,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    pub salt: String,
    /// `xchacha20poly1305`.
    pub cipher: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// What is encrypted: borrowed from the state when sealing, owned when opening.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain<S, H> {
    secrets: S,
    host_keys: H,
}

type Owned = BTreeMap<String, String>;

fn aad(state: &State) -> Vec<u8> {
    // JSON, so that no two (deployment, lineage) pairs give the same bytes.
    let aad = ["fitter state seal v1", &state.deployment, &state.lineage];
    serde_json::to_vec(&aad).expect("strings serialise")
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(SealError::Random)?;
    Ok(b)
}

/// Moves `state.secrets` and every `resources[*].outputs.host_key_private` out of `state`
/// into `state.sealed` (the plaintext is a JSON object `{"secrets": {...}, "host_keys":
/// {address: private}}`). Re-uses the salt of a `previous` Sealed if given (so the cached
/// derived key serves every write), else a fresh salt. If there is nothing secret,
/// `state.sealed` is None. Used on a COPY of the state meant for storage.
///
/// On error `state` is unchanged. A state already sealed with nothing in the clear is left as
/// it is; one with both is refused, as sealing again would lose the first blob's secrets.
pub fn seal(
    state: &mut State,
    key: &StateKey,
    previous_salt: Option<&str>,
) -> Result<(), SealError> {
    if !has_secrets(state) {
        return Ok(());
    }
    let d = &state.deployment;
    if state.sealed.is_some() {
        return Err(malformed(d, "secrets both sealed and in the clear"));
    }
    let salt = match previous_salt.and_then(|s| B64.decode(s).ok()) {
        Some(s) if s.len() == SALT_LEN => s,
        // None, or not one fitter wrote: a fresh salt is always safe.
        _ => random::<SALT_LEN>()?.to_vec(),
    };
    let host_keys: BTreeMap<&str, &str> = (state.resources.iter())
        .filter_map(|(a, r)| Some((a.as_str(), r.outputs.host_key_private.as_deref()?)))
        .collect();
    let plain = Plain {
        secrets: &state.secrets,
        host_keys,
    };
    let plaintext = Zeroizing::new(serde_json::to_vec(&plain).expect("strings serialise"));
    let nonce = random::<NONCE_LEN>()?;
    let (m_kib, t, p) = PARAMS;
    let sealed_salt = B64.encode(&salt);
    let payload = Payload {
        msg: &plaintext,
        aad: &aad(state),
    };
    let ciphertext = (key.cipher((salt, m_kib, t, p), d)?)
        .encrypt(XNonce::from_slice(&nonce), payload)
        .map_err(|_| malformed(d, "encryption failed"))?;
    // Sealed: now take the values out of the copy about to be stored, zeroing them.
    for v in state.secrets.values_mut() {
        v.zeroize();
    }
    state.secrets.clear();
    for r in state.resources.values_mut() {
        drop(r.outputs.host_key_private.take().map(Zeroizing::new));
    }
    state.sealed = Some(Sealed {
        kdf: KDF.into(),
        m_kib,
        t,
        p,
        salt: sealed_salt,
        cipher: CIPHER.into(),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    });
    Ok(())
}

/// Inverse of [`seal`]: if `state.sealed` is Some, decrypts with `key` (NoKey if key is None,
/// WrongKey if the tag does not verify, including a changed deployment/lineage), puts secrets
/// and host keys back, sets `sealed` to None. A state with no `sealed` is left as is
/// (plaintext states stay readable). On error `state` is unchanged.
pub fn unseal(state: &mut State, key: Option<&StateKey>) -> Result<(), SealError> {
    let Some(sealed) = &state.sealed else {
        return Ok(());
    };
    let d = state.deployment.as_str();
    let Some(key) = key else {
        return Err(SealError::NoKey {
            deployment: d.to_string(),
        });
    };
    if sealed.kdf != KDF || sealed.cipher != CIPHER {
        let detail = format!("unknown kdf `{}` or cipher `{}`", sealed.kdf, sealed.cipher);
        return Err(malformed(d, detail));
    }
    let decode = |what, s: &str| {
        B64.decode(s)
            .map_err(|e| malformed(d, format!("{what}: {e}")))
    };
    let salt = decode("salt", &sealed.salt)?;
    let nonce = decode("nonce", &sealed.nonce)?;
    let ciphertext = decode("ciphertext", &sealed.ciphertext)?;
    if nonce.len() != NONCE_LEN {
        return Err(malformed(d, format!("a nonce of {} bytes", nonce.len())));
    }
    let cipher = key.cipher((salt, sealed.m_kib, sealed.t, sealed.p), d)?;
    let payload = Payload {
        msg: &ciphertext,
        aad: &aad(state),
    };
    let plaintext = Zeroizing::new(
        (cipher.decrypt(XNonce::from_slice(&nonce), payload)).map_err(|_| SealError::WrongKey {
            deployment: d.to_string(),
        })?,
    );
    // Authentic, so written by fitter: failing to parse it is a bug, not an attack.
    let Plain { secrets, host_keys }: Plain<Owned, Owned> =
        serde_json::from_slice(&plaintext).map_err(|e| malformed(d, e.to_string()))?;
    state.secrets.extend(secrets);
    for (address, private) in host_keys {
        match state.resources.get_mut(&address) {
            Some(r) => r.outputs.host_key_private = Some(private),
            // The resource left the state since (`state rm`, a hand edit): its host key has
            // nothing left to serve.
            None => drop(Zeroizing::new(private)),
        }
    }
    state.sealed = None;
    Ok(())
}

/// Whether a state holds anything `seal` would encrypt (non-empty secrets or any
/// host_key_private).
pub fn has_secrets(state: &State) -> bool {
    !state.secrets.is_empty()
        || (state.resources.values()).any(|r| r.outputs.host_key_private.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ResourceState, Status};
    use std::sync::atomic::Ordering::Relaxed;

    const SECRET: &str = "s3cr3t-value-0f-the-plan";
    const PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n";
    const PASS: &str = "correct horse battery staple";

    fn key(passphrase: &str) -> StateKey {
        StateKey::new(passphrase.into()).unwrap()
    }

    /// A state with two secrets and two nodes, one of them being created (its private key).
    fn secret_state() -> State {
        let mut s = State::new("d");
        s.secrets.insert("db.secret".into(), SECRET.into());
        s.secrets.insert("uuid.x".into(), "0000-uuid-token".into());
        for (name, private) in [("node.a", Some(PRIVATE)), ("node.b", None)] {
            let mut r = ResourceState {
                kind: fitter_providers::ResourceKind::Node,
                provider: fitter_providers::lxd::KIND,
                id: Some("a".into()),
                attributes: Default::default(),
                outputs: Default::default(),
                status: Status::Ready,
            };
            r.outputs.host_key = Some("ssh-ed25519 AAAAC3public".into());
            r.outputs.host_key_private = private.map(str::to_string);
            s.resources.insert(name.into(), r);
        }
        s
    }

    fn sealed(k: &StateKey) -> State {
        let mut s = secret_state();
        seal(&mut s, k, None).unwrap();
        s
    }

    #[test]
    fn round_trip_restores_exactly_and_stores_nothing_in_the_clear() {
        let k = key(PASS);
        let open = secret_state();
        let mut stored = open.clone();
        seal(&mut stored, &k, None).unwrap();
        let text = serde_json::to_string(&stored).unwrap();
        for v in [
            SECRET,
            "0000-uuid-token",
            PRIVATE,
            "b3BlbnNzaC1rZXktdjEAAAAA",
        ] {
            assert!(!text.contains(v), "{v} in {text}");
        }
        // What is not secret stays readable.
        assert!(text.contains("ssh-ed25519 AAAAC3public") && text.contains(r#""id":"a""#));
        let s = stored.sealed.clone().unwrap();
        assert_eq!(
            (s.kdf.as_str(), s.m_kib, s.t, s.p),
            ("argon2id", 19456, 2, 1)
        );
        assert_eq!(B64.decode(&s.salt).unwrap().len(), 16);
        assert_eq!(B64.decode(&s.nonce).unwrap().len(), 24);
        let mut read: State = serde_json::from_str(&text).unwrap();
        unseal(&mut read, Some(&k)).unwrap();
        assert_eq!(read, open);
        assert!(read.sealed.is_none());
        // A plaintext state is left as is, key or not.
        let mut plain = read.clone();
        unseal(&mut plain, None).unwrap();
        assert_eq!(plain, read);
    }

    #[test]
    fn wrong_missing_or_short_keys_change_nothing() {
        let mut stored = sealed(&key(PASS));
        let before = stored.clone();
        let wrong = unseal(&mut stored, Some(&key("incorrect horse battery staple")));
        let Err(e @ SealError::WrongKey { .. }) = wrong else {
            panic!("{wrong:?}")
        };
        assert!(e.to_string().contains("deployment `d`") && e.to_string().contains("Nothing"));
        assert!(matches!(
            unseal(&mut stored, None),
            Err(SealError::NoKey { .. })
        ));
        assert_eq!(stored, before, "a failed unseal changed the state");
        assert!(matches!(
            StateKey::new("fifteen chars!!".into()),
            Err(SealError::TooShort)
        ));
        // Counted in characters, not bytes.
        assert!(StateKey::new("é".repeat(15)).is_err() && StateKey::new("é".repeat(16)).is_ok());
    }

    #[test]
    fn tampered_or_moved_blobs_do_not_open() {
        let k = key(PASS);
        let stored = sealed(&k);
        let wrong_key =
            |s: &mut State| matches!(unseal(s, Some(&k)), Err(SealError::WrongKey { .. }));
        let mut tampered = stored.clone();
        let blob = tampered.sealed.as_mut().unwrap();
        let mut bytes = B64.decode(&blob.ciphertext).unwrap();
        bytes[3] ^= 1;
        blob.ciphertext = B64.encode(bytes);
        assert!(wrong_key(&mut tampered));
        // Into another history of the same deployment, or another deployment.
        let mut other = State::new("d");
        other.sealed = stored.sealed.clone();
        assert!(wrong_key(&mut other));
        let mut renamed = stored.clone();
        renamed.deployment = "e".into();
        assert!(wrong_key(&mut renamed));
        let mut odd = stored.clone();
        odd.sealed.as_mut().unwrap().cipher = "rot13".into();
        assert!(matches!(
            unseal(&mut odd, Some(&k)),
            Err(SealError::Malformed { .. })
        ));
    }

    #[test]
    fn nothing_secret_is_not_sealed() {
        let k = key(PASS);
        let mut s = secret_state();
        s.secrets.clear();
        s.resources.remove("node.a");
        assert!(!has_secrets(&s) && has_secrets(&secret_state()));
        let before = s.clone();
        seal(&mut s, &k, None).unwrap();
        assert_eq!(s, before);
        assert_eq!(k.inner.derivations.load(Relaxed), 0);
    }

    #[test]
    fn the_key_is_derived_once_per_salt_and_every_write_has_its_own_nonce() {
        let k = key(PASS);
        let first = sealed(&k).sealed.unwrap();
        let mut nonces = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut s = secret_state();
            // A clone shares the cache: one StateKey per process serves every writer.
            seal(&mut s, &k.clone(), Some(&first.salt)).unwrap();
            let s = s.sealed.unwrap();
            assert_eq!(s.salt, first.salt);
            assert_ne!(s.ciphertext, first.ciphertext);
            assert!(nonces.insert(s.nonce));
        }
        assert_eq!(k.inner.derivations.load(Relaxed), 1);
        // A salt fitter did not write is replaced by a fresh one, derived anew.
        let mut s = secret_state();
        seal(&mut s, &k, Some("not base64!")).unwrap();
        assert_ne!(s.sealed.unwrap().salt, first.salt);
        assert_eq!(k.inner.derivations.load(Relaxed), 2);
        assert_eq!(format!("{k:?}"), "StateKey(..)");
    }

    #[test]
    fn the_key_file_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let read = |text: &str| {
            std::fs::write(&path, text).unwrap();
            StateKey::from_env_or_file(Some(&path)).map(|k| k.unwrap().inner.passphrase.to_string())
        };
        assert_eq!(
            read("correct horse battery staple \r\n").unwrap(),
            "correct horse battery staple "
        );
        assert_eq!(read("0123456789abcdef\n\n").unwrap(), "0123456789abcdef\n");
        assert!(matches!(read("too short\n"), Err(SealError::TooShort)));
        let missing = StateKey::from_env_or_file(Some(&dir.path().join("none")));
        assert!(matches!(missing, Err(SealError::ReadKeyFile { .. })));
    }
}
