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
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

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

/// An IGVM `SNP_ID_BLOCK` directive as QEMU launches it (`backends/igvm.c`,
/// `qigvm_directive_snp_id_block` and `qigvm_handle_policy`, QEMU 10.x): the ID block with
/// version 1 and the platform's guest policy (`GUEST_POLICY` header), the authentication
/// information with the signatures' 144 bytes and the keys' curve and coordinates in the
/// firmware's layout. QEMU reads neither the directive's `version` nor its `author_key_enabled`:
/// `AUTHOR_KEY_EN` comes from `sev-snp-guest,author-key-enabled=on` alone.
pub fn from_igvm(b: &igvm_defs::IGVM_VHS_SNP_ID_BLOCK, policy: u64) -> (IdBlock, IdAuthInfo) {
    let block = IdBlock::new(b.ld, b.family_id, b.image_id, b.guest_svn, policy);
    let mut auth = IdAuthInfo::new_zeroed();
    auth.id_key_algo = b.id_key_algorithm;
    auth.auth_key_algo = b.author_key_algorithm;
    let sig = |s: &igvm_defs::IGVM_VHS_SNP_ID_BLOCK_SIGNATURE| {
        let mut out = EcdsaSignature::new_zeroed();
        out.r = s.r_comp;
        out.s = s.s_comp;
        out
    };
    let key = |k: &igvm_defs::IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY| {
        let mut out = EcdsaPublicKey::new_zeroed();
        out.curve = k.curve;
        out.qx = k.qx;
        out.qy = k.qy;
        out
    };
    auth.id_block_sig = sig(&b.id_key_signature);
    auth.id_key = key(&b.id_public_key);
    auth.id_key_sig = sig(&b.author_key_signature);
    auth.author_key = key(&b.author_public_key);
    (block, auth)
}

/// The IGVM `SNP_ID_BLOCK` directive for `block` and `auth` on the platform `compatibility_mask`
/// ([`from_igvm`] reads it back; the policy lives in the file's `GUEST_POLICY` header, not here).
pub fn to_igvm(
    block: &IdBlock,
    auth: &IdAuthInfo,
    compatibility_mask: u32,
    author_key_enabled: bool,
) -> igvm_defs::IGVM_VHS_SNP_ID_BLOCK {
    let sig = |s: &EcdsaSignature| igvm_defs::IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
        r_comp: s.r,
        s_comp: s.s,
    };
    let key = |k: &EcdsaPublicKey| igvm_defs::IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
        curve: k.curve,
        reserved: 0,
        qx: k.qx,
        qy: k.qy,
    };
    igvm_defs::IGVM_VHS_SNP_ID_BLOCK {
        compatibility_mask,
        author_key_enabled: u8::from(author_key_enabled),
        reserved: [0; 3],
        ld: block.ld,
        family_id: block.family_id,
        image_id: block.image_id,
        version: block.version,
        guest_svn: block.guest_svn,
        id_key_algorithm: auth.id_key_algo,
        author_key_algorithm: auth.auth_key_algo,
        id_key_signature: sig(&auth.id_block_sig),
        id_public_key: key(&auth.id_key),
        author_key_signature: sig(&auth.id_key_sig),
        author_public_key: key(&auth.author_key),
    }
}
