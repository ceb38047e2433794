//! ID blocks: sign a launch's `ID_BLOCK` with an ID key (and the ID key with an author key)
//! into the `ID_AUTH_INFO` the firmware checks at `SNP_LAUNCH_FINISH`, and verify a pair.
//!
//! ECDSA P-384 with SHA-384 and deterministic nonces (RFC 6979): the same keys and block give
//! the same bytes. Keys are PEM, SEC1 (`EC PRIVATE KEY`, what `openssl ecparam -genkey`
//! writes) or PKCS#8 (`PRIVATE KEY`, `openssl genpkey`).

pub use p384::ecdsa::SigningKey;
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, VerifyingKey};
use p384::pkcs8::DecodePrivateKey;
use vmsa_core::id_block::{ECDSA_P384_SHA384, EcdsaPublicKey, EcdsaSignature, IdAuthInfo, IdBlock};
use zerocopy::{FromZeros, IntoBytes};

/// A P-384 private key from PEM (SEC1 or PKCS#8).
pub fn signing_key(pem: &str) -> Result<SigningKey, String> {
    if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
        return Ok(k.into());
    }
    p384::SecretKey::from_pkcs8_pem(pem)
        .map(Into::into)
        .map_err(|_| {
            "not a P-384 private key in PEM (SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`)".into()
        })
}

/// A public key in the firmware's layout.
pub fn public_key(key: &VerifyingKey) -> EcdsaPublicKey {
    let point = key.to_sec1_point(false);
    let mut x = [0u8; 48];
    let mut y = [0u8; 48];
    if let (Some(px), Some(py)) = (point.x(), point.y()) {
        x.copy_from_slice(px);
        y.copy_from_slice(py);
    }
    EcdsaPublicKey::p384(&x, &y)
}

/// `data` signed by `key`, in the firmware's layout.
pub fn sign(key: &SigningKey, data: &[u8]) -> EcdsaSignature {
    let sig: Signature = key.sign(data);
    let (r, s) = sig.split_bytes();
    let mut rb = [0u8; 48];
    let mut sb = [0u8; 48];
    rb.copy_from_slice(&r);
    sb.copy_from_slice(&s);
    EcdsaSignature::from_be(&rb, &sb)
}

/// Whether `sig` over `data` verifies with `key` (the firmware's layouts).
pub fn verify(key: &EcdsaPublicKey, data: &[u8], sig: &EcdsaSignature) -> Result<(), String> {
    let (x, y) = key
        .p384_coordinates()
        .ok_or("the public key is not a P-384 key in the firmware's layout")?;
    let mut sec1 = [0u8; 97];
    sec1[0] = 4;
    sec1[1..49].copy_from_slice(&x);
    sec1[49..].copy_from_slice(&y);
    let vk = VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| "the public key is not a point of P-384")?;
    let (r, s) = sig.to_be().ok_or("r or s is wider than 48 bytes")?;
    let sig = Signature::from_scalars(r, s).map_err(|_| "r or s is not a P-384 scalar")?;
    vk.verify(data, &sig)
        .map_err(|_| "the signature does not verify".to_string())
}

/// The `ID_AUTH_INFO` of `block`: signed by `id_key`; with `author_key`, the ID key signed by
/// it (the launch then sets `AUTHOR_KEY_EN`).
pub fn id_auth(
    block: &IdBlock,
    id_key: &SigningKey,
    author_key: Option<&SigningKey>,
) -> IdAuthInfo {
    let mut auth = IdAuthInfo::new_zeroed();
    auth.id_key_algo = ECDSA_P384_SHA384;
    auth.id_block_sig = sign(id_key, block.as_bytes());
    auth.id_key = public_key(id_key.verifying_key());
    if let Some(author) = author_key {
        auth.auth_key_algo = ECDSA_P384_SHA384;
        auth.id_key_sig = sign(author, auth.id_key.as_bytes());
        auth.author_key = public_key(author.verifying_key());
    }
    auth
}

/// What a verified pair binds: the digests a report of this launch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdKeys {
    /// `ID_KEY_DIGEST`.
    pub id_key_digest: [u8; 48],
    /// `AUTHOR_KEY_DIGEST`, when an author key signed the ID key.
    pub author_key_digest: Option<[u8; 48]>,
}

/// Verifies an ID block and its authentication information as the firmware does at
/// `SNP_LAUNCH_FINISH`: the block's version, the ID key's signature of the block, and, when an
/// author key is present, its signature of the ID key.
pub fn verify_id_auth(block: &IdBlock, auth: &IdAuthInfo) -> Result<IdKeys, String> {
    if block.version != vmsa_core::id_block::ID_BLOCK_VERSION {
        return Err(format!(
            "ID block version {} (the ABI defines 1)",
            block.version
        ));
    }
    if auth.id_key_algo != ECDSA_P384_SHA384 {
        return Err(format!(
            "ID key algorithm {} (1 is ECDSA P-384/SHA-384)",
            auth.id_key_algo
        ));
    }
    verify(&auth.id_key, block.as_bytes(), &auth.id_block_sig)
        .map_err(|e| format!("ID block signature: {e}"))?;
    // No author key: none given (curve 0). igvmmeasure writes AUTHOR_KEY_ALGO 1 without one,
    // and the firmware reads the author fields only with AUTHOR_KEY_EN.
    let author_key_digest = if auth.author_key.curve == 0 {
        None
    } else {
        if auth.auth_key_algo != ECDSA_P384_SHA384 {
            return Err(format!("author key algorithm {}", auth.auth_key_algo));
        }
        verify(&auth.author_key, auth.id_key.as_bytes(), &auth.id_key_sig)
            .map_err(|e| format!("ID key signature by the author key: {e}"))?;
        Some(auth.author_key.digest())
    };
    Ok(IdKeys {
        id_key_digest: auth.id_key.digest(),
        author_key_digest,
    })
}
