//! The SNP `ID_BLOCK` and `ID_AUTH_INFO` (SEV-SNP Firmware ABI, `SNP_LAUNCH_FINISH`, "ID Block
//! Structure" and "ID Authentication Information Structure"): what binds a launch to its
//! owner's keys. The firmware refuses `SNP_LAUNCH_FINISH` unless the ID block's launch digest
//! is the launch's and its signature verifies with the ID key (and the ID key's with the
//! author key, when enabled); the report then carries the keys' digests
//! ([`EcdsaPublicKey::digest`]).
//!
//! Signatures and public keys are in the firmware's layout: little-endian P-384 scalars and
//! coordinates, zero-padded to 72 bytes. Building a signature needs a private key, which this
//! crate leaves to `vmsa-attest`.

use crate::measure::sha384;
use crate::report::be48;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `ID_BLOCK.VERSION`: the only version the ABI defines.
pub const ID_BLOCK_VERSION: u32 = 1;
/// `ID_KEY_ALGO`/`AUTH_KEY_ALGO` 1: ECDSA P-384 with SHA-384.
pub const ECDSA_P384_SHA384: u32 = 1;
/// `CURVE` 2: P-384.
pub const CURVE_P384: u32 = 2;

/// `ID_BLOCK` (96 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IdBlock {
    /// `LD`: the launch digest the launch must have.
    pub ld: [u8; 48],
    /// `FAMILY_ID`.
    pub family_id: [u8; 16],
    /// `IMAGE_ID`.
    pub image_id: [u8; 16],
    /// `VERSION` ([`ID_BLOCK_VERSION`]).
    pub version: u32,
    /// `GUEST_SVN`.
    pub guest_svn: u32,
    /// `POLICY`: must equal the launch's guest policy.
    pub policy: u64,
}

/// An ECDSA signature in the firmware's layout (512 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EcdsaSignature {
    /// `R`, little-endian, zero-padded.
    pub r: [u8; 72],
    /// `S`, little-endian, zero-padded.
    pub s: [u8; 72],
    /// Reserved, zero.
    pub reserved: [u8; 368],
}

/// An ECDSA public key in the firmware's layout (1028 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EcdsaPublicKey {
    /// `CURVE` ([`CURVE_P384`]).
    pub curve: u32,
    /// `QX`, little-endian, zero-padded.
    pub qx: [u8; 72],
    /// `QY`, little-endian, zero-padded.
    pub qy: [u8; 72],
    /// Reserved, zero.
    pub reserved: [u8; 880],
}

impl EcdsaPublicKey {
    /// The key's digest as an attestation report carries it (`ID_KEY_DIGEST`,
    /// `AUTHOR_KEY_DIGEST`): SHA-384 of the 1028 bytes.
    pub fn digest(&self) -> [u8; 48] {
        sha384(self.as_bytes())
    }

    /// A P-384 key from big-endian affine coordinates (as SEC1 encodes them).
    pub fn p384(x_be: &[u8; 48], y_be: &[u8; 48]) -> Self {
        let mut k = Self::new_zeroed_const();
        k.curve = CURVE_P384;
        for (o, b) in k.qx.iter_mut().zip(x_be.iter().rev()) {
            *o = *b;
        }
        for (o, b) in k.qy.iter_mut().zip(y_be.iter().rev()) {
            *o = *b;
        }
        k
    }

    /// The big-endian coordinates of a P-384 key; `None` for another curve or coordinates
    /// wider than 48 bytes.
    pub fn p384_coordinates(&self) -> Option<([u8; 48], [u8; 48])> {
        if self.curve != CURVE_P384 {
            return None;
        }
        Some((be48(&self.qx)?, be48(&self.qy)?))
    }

    const fn new_zeroed_const() -> Self {
        Self {
            curve: 0,
            qx: [0; 72],
            qy: [0; 72],
            reserved: [0; 880],
        }
    }
}

impl EcdsaSignature {
    /// A signature from big-endian `r` and `s`.
    pub fn from_be(r: &[u8; 48], s: &[u8; 48]) -> Self {
        let mut sig = Self {
            r: [0; 72],
            s: [0; 72],
            reserved: [0; 368],
        };
        for (o, b) in sig.r.iter_mut().zip(r.iter().rev()) {
            *o = *b;
        }
        for (o, b) in sig.s.iter_mut().zip(s.iter().rev()) {
            *o = *b;
        }
        sig
    }

    /// Big-endian `r` and `s`; `None` when either is wider than 48 bytes.
    pub fn to_be(&self) -> Option<([u8; 48], [u8; 48])> {
        Some((be48(&self.r)?, be48(&self.s)?))
    }
}

/// `ID_AUTH_INFO` (4096 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IdAuthInfo {
    /// `ID_KEY_ALGO` ([`ECDSA_P384_SHA384`]).
    pub id_key_algo: u32,
    /// `AUTH_KEY_ALGO` ([`ECDSA_P384_SHA384`] with an author key).
    pub auth_key_algo: u32,
    /// Reserved, zero.
    pub reserved_008: [u8; 56],
    /// `ID_BLOCK_SIG`: the ID key's signature of the ID block.
    pub id_block_sig: EcdsaSignature,
    /// `ID_KEY`: the ID public key.
    pub id_key: EcdsaPublicKey,
    /// Reserved, zero.
    pub reserved_644: [u8; 60],
    /// `ID_KEY_SIG`: the author key's signature of `ID_KEY`.
    pub id_key_sig: EcdsaSignature,
    /// `AUTHOR_KEY`: the author public key.
    pub author_key: EcdsaPublicKey,
    /// Reserved, zero.
    pub reserved_c84: [u8; 892],
}

macro_rules! offsets {
    ($t:ty: $($field:ident = $off:literal),* $(,)?) => {
        $( const _: () = assert!(core::mem::offset_of!($t, $field) == $off); )*
    };
}
// SEV-SNP Firmware ABI, the ID block and ID authentication information tables.
offsets!(IdBlock: ld = 0x00, family_id = 0x30, image_id = 0x40, version = 0x50, guest_svn = 0x54, policy = 0x58);
offsets!(EcdsaSignature: r = 0x00, s = 0x48, reserved = 0x90);
offsets!(EcdsaPublicKey: curve = 0x00, qx = 0x04, qy = 0x4c, reserved = 0x94);
offsets!(IdAuthInfo: id_key_algo = 0x000, auth_key_algo = 0x004, reserved_008 = 0x008,
    id_block_sig = 0x040, id_key = 0x240, reserved_644 = 0x644, id_key_sig = 0x680,
    author_key = 0x880, reserved_c84 = 0xc84);
const _: () = assert!(core::mem::size_of::<IdBlock>() == 0x60);
const _: () = assert!(core::mem::size_of::<EcdsaSignature>() == 0x200);
const _: () = assert!(core::mem::size_of::<EcdsaPublicKey>() == 0x404);
const _: () = assert!(core::mem::size_of::<IdAuthInfo>() == 0x1000);

impl IdBlock {
    /// An ID block for a launch digest, IDs, SVN and policy (version 1).
    pub const fn new(
        ld: [u8; 48],
        family_id: [u8; 16],
        image_id: [u8; 16],
        guest_svn: u32,
        policy: u64,
    ) -> Self {
        Self {
            ld,
            family_id,
            image_id,
            version: ID_BLOCK_VERSION,
            guest_svn,
            policy,
        }
    }
}
