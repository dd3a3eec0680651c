//! Keys at rest: what seals GitHub tokens inside stored sessions and the
//! login state inside its cookie.
//!
//! One secret (`session.encryption_key_base64`, or a random key per process
//! for the memory store) yields a key per use through HMAC-SHA256, so a
//! sealed token can never be opened as a login cookie or the other way
//! round. Sealing is XChaCha20-Poly1305 (an AEAD: a value that was changed
//! or sealed with another key does not open) with a random 24-byte nonce;
//! the result is URL-safe base64, fit for a cookie or a JSON string.
//!
//! This module must never log or print a key, a token or a plaintext.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::secret::Secret;

/// What a sealed value is for; also the AEAD's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A GitHub access token in a stored session.
    Token,
    /// The OAuth state, PKCE verifier and return path of a login in progress.
    LoginState,
    /// GitHub's device code inside the one the gateway hands to a device.
    DeviceCode,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Token => b"channelgate/v1/github-token",
            Self::LoginState => b"channelgate/v1/login-state",
            Self::DeviceCode => b"channelgate/v1/device-code",
        }
    }
}

/// The keys of one gateway. Cheap to clone.
#[derive(Clone)]
pub struct Keys {
    token: XChaCha20Poly1305,
    login: XChaCha20Poly1305,
    device: XChaCha20Poly1305,
    /// Keys the names of records only the gateway may find (see [`Keys::name`]).
    names: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

/// A sealed value that did not open: changed, truncated, or sealed with
/// another key (after a key rotation, for instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sealed value does not open with this gateway's key")]
pub struct Unopenable;

impl Keys {
    /// Keys derived from `material` (32 bytes or more, checked by the
    /// configuration), or from fresh random bytes when there is none.
    pub fn new(material: Option<&Secret<Vec<u8>>>) -> Self {
        let random;
        let material: &[u8] = match material {
            Some(m) => m.expose(),
            None => {
                random = XChaCha20Poly1305::generate_key(&mut OsRng);
                random.as_slice()
            }
        };
        let bytes = |label: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(material)
                .expect("HMAC accepts keys of any length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let derive = |purpose: Purpose| {
            XChaCha20Poly1305::new_from_slice(&bytes(purpose.label()))
                .expect("SHA-256 gives a 32-byte key")
        };
        Self {
            token: derive(Purpose::Token),
            login: derive(Purpose::LoginState),
            device: derive(Purpose::DeviceCode),
            names: bytes(b"channelgate/v1/record-names"),
        }
    }

    /// A name for `what` that only holders of this key can work out: HMAC-SHA256
    /// keyed for names. The session store finds a person's token index by
    /// it, and nobody else can name that record (in a cookie, say).
    pub fn name(&self, what: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.names)
            .expect("HMAC accepts keys of any length");
        mac.update(what);
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self, purpose: Purpose) -> &XChaCha20Poly1305 {
        match purpose {
            Purpose::Token => &self.token,
            Purpose::LoginState => &self.login,
            Purpose::DeviceCode => &self.device,
        }
    }

    /// Seals `plaintext` for `purpose`: base64 of nonce and ciphertext.
    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: purpose.label(),
        };
        let sealed = self
            .cipher(purpose)
            .encrypt(&nonce, payload)
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        B64.encode(out)
    }

    /// Opens what [`Keys::seal`] made for the same purpose with the same key.
    pub fn open(&self, purpose: Purpose, sealed: &str) -> Result<Vec<u8>, Unopenable> {
        const NONCE: usize = 24;
        let bytes = B64.decode(sealed).map_err(|_| Unopenable)?;
        if bytes.len() < NONCE {
            return Err(Unopenable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE);
        let payload = Payload {
            msg: ciphertext,
            aad: purpose.label(),
        };
        self.cipher(purpose)
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| Unopenable)
    }

    /// Seals a GitHub token for the session store.
    pub fn seal_token(&self, token: &Secret<String>) -> SealedToken {
        SealedToken(self.seal(Purpose::Token, token.expose().as_bytes()))
    }

    /// The GitHub token inside `sealed`.
    pub fn open_token(&self, sealed: &SealedToken) -> Result<Secret<String>, Unopenable> {
        let bytes = self.open(Purpose::Token, &sealed.0)?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| Unopenable)
    }
}

/// Equal bytes, in a time that does not depend on where they differ: the
/// one comparison of secrets and digests in the gateway. `subtle` keeps the
/// compiler from turning it into an early exit. Only whether the lengths
/// differ may show, and every secret compared here has a fixed length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A GitHub token as a session stores it: sealed. Opened only when GitHub
/// has to be asked, never on a request that the membership cache answers.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SealedToken(String);

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedToken([redacted])")
    }
}

impl SealedToken {
    /// The sealed text (no secret: it opens only with the gateway's key).
    pub fn sealed_text(&self) -> &str {
        &self.0
    }

    /// A short key naming this sealed token in this process (to tell one
    /// session's token from another's), not a secret.
    pub fn key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut hasher);
        hasher.finish()
    }
}

#[cfg(test)]
impl SealedToken {
    /// A sealed token that opens with no key, for tests that never open it.
    pub(crate) fn for_test(text: &str) -> Self {
        Self(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> Keys {
        Keys::new(Some(&Secret::new(vec![byte; 32])))
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_purpose() {
        let token = Secret::new("gho_s3cr3t".to_owned());
        let sealed = keys(1).seal_token(&token);
        assert!(!sealed.0.contains("gho_s3cr3t"));
        assert_eq!(keys(1).open_token(&sealed).unwrap(), token);
        assert_eq!(keys(2).open_token(&sealed), Err(Unopenable));
        assert_eq!(
            keys(1).open(Purpose::LoginState, &sealed.0),
            Err(Unopenable)
        );
        // Two seals of the same token differ (random nonces).
        assert_ne!(keys(1).seal_token(&token), sealed);
    }

    #[test]
    fn a_changed_or_truncated_value_does_not_open() {
        let k = keys(3);
        let sealed = k.seal(Purpose::LoginState, b"state");
        let mut bytes = B64.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            k.open(Purpose::LoginState, &B64.encode(&bytes)),
            Err(Unopenable)
        );
        for bad in ["", "a", "!!!", &sealed[..10]] {
            assert_eq!(k.open(Purpose::LoginState, bad), Err(Unopenable), "{bad}");
        }
    }

    #[test]
    fn without_material_each_process_has_its_own_key() {
        let sealed = Keys::new(None).seal(Purpose::Token, b"x");
        assert_eq!(
            Keys::new(None).open(Purpose::Token, &sealed),
            Err(Unopenable)
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn debug_output_shows_no_key_or_token() {
        let k = keys(4);
        let sealed = k.seal_token(&Secret::new("gho_x".into()));
        assert_eq!(format!("{k:?}"), "Keys([redacted])");
        assert_eq!(format!("{sealed:?}"), "SealedToken([redacted])");
    }
}
