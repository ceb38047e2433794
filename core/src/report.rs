//! The SEV-SNP `ATTESTATION_REPORT` (SEV-SNP Firmware ABI, doc. 56860, "ATTESTATION_REPORT
//! Structure"; versions 2, 3 and 5): the 1184-byte page the firmware signs and the guest owner
//! receives, every field named ([`AttestationReport`]), and its decoded meaning ([`Report`]):
//! the guest policy, platform info, key-selection flags and TCB versions.
//!
//! All integers are little-endian. The firmware signs bytes `0x000..0x2a0` with ECDSA P-384 and
//! SHA-384 ([`SIGNED_LEN`]); `r` and `s` follow as 72-byte little-endian scalars.
//!
//! The layout of a TCB version depends on the processor generation, not on the report version:
//! Milan and Genoa put the boot loader in byte 0, Turin adds an FMC byte before it
//! ([`TcbVersion::decode`]). Reports of version 3 and later carry the CPUID family and model
//! the generation is read from ([`Product::from_cpuid`]); version 2 reports do not, and their
//! reader names the product.
//!
//! Reserved fields must be zero, as go-sev-guest (`abi.ReportToProto`) also requires; the
//! `sev` crate skips them. Sources: the `sev` crate's `AttestationReport`
//! (`src/firmware/guest/types/snp.rs`), go-sev-guest's `abi/abi.go`, and thirteen reports signed
//! by real Milan, Genoa and Turin processors (`tests/data/reports`).

use crate::hex::Hex;
use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The size of a report.
pub const REPORT_LEN: usize = 0x4a0;
/// The bytes the signature covers: `0x000..0x2a0`.
pub const SIGNED_LEN: usize = 0x2a0;
/// `SIGNATURE_ALGO` 1: ECDSA P-384 with SHA-384.
pub const ECDSA_P384_SHA384: u32 = 1;

/// The report as the firmware writes it. `repr(C)`, naturally aligned, no padding: every
/// field is at its ABI offset (asserted below).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct AttestationReport {
    /// `VERSION` (2, 3 or 5; 4 is laid out as 3).
    pub version: u32,
    /// `GUEST_SVN`, from the ID block.
    pub guest_svn: u32,
    /// `POLICY`: the guest policy the launch was started with ([`GuestPolicy`]).
    pub policy: u64,
    /// `FAMILY_ID`, from the ID block.
    pub family_id: [u8; 16],
    /// `IMAGE_ID`, from the ID block.
    pub image_id: [u8; 16],
    /// `VMPL` of the guest that asked for the report.
    pub vmpl: u32,
    /// `SIGNATURE_ALGO` ([`ECDSA_P384_SHA384`]).
    pub signature_algo: u32,
    /// `CURRENT_TCB`.
    pub current_tcb: u64,
    /// `PLATFORM_INFO` ([`PlatformInfo`]).
    pub platform_info: u64,
    /// `KEY_INFO` (go-sev-guest: signer info; [`KeyInfo`]).
    pub key_info: u32,
    /// Reserved, zero.
    pub reserved_04c: u32,
    /// `REPORT_DATA`: the 64 bytes the guest supplied (a nonce, a key's hash).
    pub report_data: [u8; 64],
    /// `MEASUREMENT`: the launch digest.
    pub measurement: [u8; 48],
    /// `HOST_DATA`: what the host gave at launch.
    pub host_data: [u8; 32],
    /// `ID_KEY_DIGEST`: SHA-384 of the ID block's public key.
    pub id_key_digest: [u8; 48],
    /// `AUTHOR_KEY_DIGEST`: SHA-384 of the author key, when enabled.
    pub author_key_digest: [u8; 48],
    /// `REPORT_ID`.
    pub report_id: [u8; 32],
    /// `REPORT_ID_MA`: the migration agent's report ID.
    pub report_id_ma: [u8; 32],
    /// `REPORTED_TCB`: the TCB the signing key (VCEK) was derived for.
    pub reported_tcb: u64,
    /// `CPUID_FAM_ID` (version 3 and later): extended plus base family.
    pub cpuid_fam_id: u8,
    /// `CPUID_MOD_ID` (version 3 and later): extended and base model.
    pub cpuid_mod_id: u8,
    /// `CPUID_STEP` (version 3 and later).
    pub cpuid_step: u8,
    /// Reserved, zero.
    pub reserved_18b: [u8; 21],
    /// `CHIP_ID`: the processor's unique ID (zero when masked; Turin uses the first 8 bytes).
    pub chip_id: [u8; 64],
    /// `COMMITTED_TCB`.
    pub committed_tcb: u64,
    /// `CURRENT_BUILD`.
    pub current_build: u8,
    /// `CURRENT_MINOR`.
    pub current_minor: u8,
    /// `CURRENT_MAJOR`.
    pub current_major: u8,
    /// Reserved, zero.
    pub reserved_1eb: u8,
    /// `COMMITTED_BUILD`.
    pub committed_build: u8,
    /// `COMMITTED_MINOR`.
    pub committed_minor: u8,
    /// `COMMITTED_MAJOR`.
    pub committed_major: u8,
    /// Reserved, zero.
    pub reserved_1ef: u8,
    /// `LAUNCH_TCB`: the TCB at launch.
    pub launch_tcb: u64,
    /// `LAUNCH_MIT_VECTOR` (version 5; reserved before).
    pub launch_mit_vector: u64,
    /// `CURRENT_MIT_VECTOR` (version 5; reserved before).
    pub current_mit_vector: u64,
    /// Reserved, zero.
    pub reserved_208: [u8; 152],
    /// `SIGNATURE.R`: a little-endian P-384 scalar, zero-padded to 72 bytes.
    pub signature_r: [u8; 72],
    /// `SIGNATURE.S`: likewise.
    pub signature_s: [u8; 72],
    /// The rest of the 512-byte signature field, zero.
    pub signature_reserved: [u8; 368],
}

macro_rules! offsets {
    ($($field:ident = $off:literal),* $(,)?) => {
        $( const _: () = assert!(core::mem::offset_of!(AttestationReport, $field) == $off); )*
    };
}
// SEV-SNP Firmware ABI, "ATTESTATION_REPORT Structure" (rev. 1.58).
offsets! {
    version = 0x000, guest_svn = 0x004, policy = 0x008, family_id = 0x010, image_id = 0x020,
    vmpl = 0x030, signature_algo = 0x034, current_tcb = 0x038, platform_info = 0x040,
    key_info = 0x048, reserved_04c = 0x04c, report_data = 0x050, measurement = 0x090,
    host_data = 0x0c0, id_key_digest = 0x0e0, author_key_digest = 0x110, report_id = 0x140,
    report_id_ma = 0x160, reported_tcb = 0x180, cpuid_fam_id = 0x188, cpuid_mod_id = 0x189,
    cpuid_step = 0x18a, reserved_18b = 0x18b, chip_id = 0x1a0, committed_tcb = 0x1e0,
    current_build = 0x1e8, current_minor = 0x1e9, current_major = 0x1ea, reserved_1eb = 0x1eb,
    committed_build = 0x1ec, committed_minor = 0x1ed, committed_major = 0x1ee,
    reserved_1ef = 0x1ef, launch_tcb = 0x1f0, launch_mit_vector = 0x1f8,
    current_mit_vector = 0x200, reserved_208 = 0x208, signature_r = 0x2a0, signature_s = 0x2e8,
    signature_reserved = 0x330,
}
const _: () = assert!(core::mem::size_of::<AttestationReport>() == REPORT_LEN);

impl fmt::Debug for AttestationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestationReport")
            .field("version", &self.version)
            .field("measurement", &Hex(&self.measurement))
            .field("chip_id", &Hex(&self.chip_id))
            .finish_non_exhaustive()
    }
}

/// Why bytes are not a report this crate can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not 1184 bytes.
    #[error("an SNP attestation report is {REPORT_LEN} bytes, but the input has {0} bytes")]
    Length(usize),
    /// A version this reader does not know (it reads 2 to 5).
    #[error("report version {0} is not one this reader knows (2, 3, 4 and 5)")]
    UnknownVersion(u32),
    /// A reserved field is not zero.
    #[error("reserved bytes at offset {offset:#x} are not zero (found {value:#x} there)")]
    ReservedNotZero {
        /// Offset of the first non-zero reserved byte.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// `KEY_INFO.SIGNING_KEY` is one of the reserved values 2 to 6.
    #[error("KEY_INFO names signing key {0}, a reserved value (0 VCEK, 1 VLEK, 7 none)")]
    SigningKey(u8),
    /// A TCB version with a reserved byte set, for the product's layout.
    #[error("{field} {value:#018x} has reserved bytes set for {product}'s TCB layout")]
    TcbReserved {
        /// Which TCB.
        field: &'static str,
        /// Its 8 bytes.
        value: u64,
        /// The layout it was read with.
        product: Product,
    },
    /// A version 2 report carries no CPUID, and no product was named to read its TCBs.
    #[error(
        "a version {0} report does not say which processor signed it: name the product (milan, genoa or turin) to decode its TCB versions"
    )]
    ProductNeeded(u32),
    /// The report's CPUID family and model name no product this reader knows.
    #[error(
        "CPUID family {family:#x} model {model:#x} is not a processor this reader knows (Milan, Genoa, Turin): name the product"
    )]
    UnknownProduct {
        /// `CPUID_FAM_ID`.
        family: u8,
        /// `CPUID_MOD_ID`.
        model: u8,
    },
}

/// An AMD EPYC generation with SEV-SNP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum Product {
    /// 3rd generation (Zen 3), family 19h models 00h–0Fh.
    Milan,
    /// 4th generation (Zen 4), family 19h models 10h–1Fh and A0h–AFh.
    Genoa,
    /// 5th generation (Zen 5), family 1Ah models 00h–11h.
    Turin,
}

impl Product {
    /// Every product.
    pub const ALL: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];

    /// The product of a report's `CPUID_FAM_ID`/`CPUID_MOD_ID` (model ranges as the `sev`
    /// crate's `Generation::identify_cpu`).
    pub const fn from_cpuid(family: u8, model: u8) -> Option<Product> {
        match (family, model) {
            (0x19, 0x00..=0x0f) => Some(Product::Milan),
            (0x19, 0x10..=0x1f | 0xa0..=0xaf) => Some(Product::Genoa),
            (0x1a, 0x00..=0x11) => Some(Product::Turin),
            _ => None,
        }
    }

    /// `"milan"`, `"genoa"`, `"turin"`.
    pub const fn name(self) -> &'static str {
        match self {
            Product::Milan => "milan",
            Product::Genoa => "genoa",
            Product::Turin => "turin",
        }
    }

    /// The product named `name` (any case; `Milan`, `Genoa`, `Turin` as AMD's key service
    /// spells them).
    pub fn from_name(name: &str) -> Option<Product> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// As AMD's key distribution service spells it in its URLs and certificates.
    pub const fn kds_name(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
        }
    }

    /// How many leading bytes of `CHIP_ID` identify the chip (Turin: 8, the rest zero).
    pub const fn chip_id_len(self) -> usize {
        match self {
            Product::Turin => 8,
            Product::Milan | Product::Genoa => 64,
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kds_name())
    }
}

/// A TCB version: the security patch levels of the firmware components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TcbVersion {
    /// FMC (Turin and later; `None` on Milan and Genoa).
    pub fmc: Option<u8>,
    /// The PSP boot loader.
    pub bootloader: u8,
    /// The PSP OS (TEE).
    pub tee: u8,
    /// The SNP firmware.
    pub snp: u8,
    /// The microcode.
    pub microcode: u8,
}

impl TcbVersion {
    /// Decodes the 8-byte `TCB_VERSION` of `product`: Milan and Genoa `[bl, tee, 0, 0, 0, 0,
    /// snp, ucode]`, Turin `[fmc, bl, tee, snp, 0, 0, 0, ucode]` (the `sev` crate's
    /// `TcbVersion::from_legacy_bytes`/`from_turin_bytes`; checked against real VCEKs' SPL
    /// extensions). `None` when a reserved byte is not zero.
    pub const fn decode(raw: u64, product: Product) -> Option<TcbVersion> {
        let b = raw.to_le_bytes();
        match product {
            Product::Milan | Product::Genoa => {
                if b[2] != 0 || b[3] != 0 || b[4] != 0 || b[5] != 0 {
                    return None;
                }
                Some(TcbVersion {
                    fmc: None,
                    bootloader: b[0],
                    tee: b[1],
                    snp: b[6],
                    microcode: b[7],
                })
            }
            Product::Turin => {
                if b[4] != 0 || b[5] != 0 || b[6] != 0 {
                    return None;
                }
                Some(TcbVersion {
                    fmc: Some(b[0]),
                    bootloader: b[1],
                    tee: b[2],
                    snp: b[3],
                    microcode: b[7],
                })
            }
        }
    }

    /// The 8 bytes of `self` for `product` (the inverse of [`TcbVersion::decode`]); an FMC
    /// level on Milan or Genoa is dropped, a missing one on Turin is 0.
    pub const fn encode(&self, product: Product) -> u64 {
        let b = match product {
            Product::Milan | Product::Genoa => [
                self.bootloader,
                self.tee,
                0,
                0,
                0,
                0,
                self.snp,
                self.microcode,
            ],
            Product::Turin => {
                let fmc = match self.fmc {
                    Some(f) => f,
                    None => 0,
                };
                [
                    fmc,
                    self.bootloader,
                    self.tee,
                    self.snp,
                    0,
                    0,
                    0,
                    self.microcode,
                ]
            }
        };
        u64::from_le_bytes(b)
    }
}

impl fmt::Display for TcbVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc {fmc}, ")?;
        }
        write!(
            f,
            "boot loader {}, tee {}, snp {}, microcode {}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

bitflags::bitflags! {
    /// The flag bits of the guest `POLICY` (bits 16 and up; bits 0–15 are the ABI version).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PolicyFlags: u64 {
        /// SMT allowed.
        const SMT = 1 << 16;
        /// Reserved, must be 1.
        const RESERVED_1 = 1 << 17;
        /// A migration agent may be associated.
        const MIGRATE_MA = 1 << 18;
        /// Debugging allowed.
        const DEBUG = 1 << 19;
        /// Single socket only.
        const SINGLE_SOCKET = 1 << 20;
        /// CXL may be populated with guest memory.
        const CXL_ALLOW = 1 << 21;
        /// AES-256-XTS required for memory encryption.
        const MEM_AES_256_XTS = 1 << 22;
        /// Running Average Power Limit must be disabled.
        const RAPL_DIS = 1 << 23;
        /// Ciphertext hiding required.
        const CIPHERTEXT_HIDING = 1 << 24;
        /// Page swap disabled (ABI 1.58).
        const PAGE_SWAP_DISABLE = 1 << 25;
    }
}

/// The guest `POLICY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// The lowest ABI minor version the guest accepts.
    pub const fn abi_minor(self) -> u8 {
        self.0.to_le_bytes()[0]
    }
    /// The lowest ABI major version the guest accepts.
    pub const fn abi_major(self) -> u8 {
        self.0.to_le_bytes()[1]
    }
    /// The flag bits, unknown ones kept.
    pub const fn flags(self) -> PolicyFlags {
        PolicyFlags::from_bits_retain(self.0 & !0xffff)
    }
    /// Bits set that no ABI version defines (26 and up).
    pub const fn unknown_bits(self) -> u64 {
        self.0 & !0xffff & !PolicyFlags::all().bits()
    }
}

bitflags::bitflags! {
    /// `PLATFORM_INFO`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PlatformInfo: u64 {
        /// SMT is enabled on the platform.
        const SMT_EN = 1 << 0;
        /// TSME is enabled.
        const TSME_EN = 1 << 1;
        /// ECC memory is in use.
        const ECC_EN = 1 << 2;
        /// RAPL is disabled.
        const RAPL_DIS = 1 << 3;
        /// Ciphertext hiding is enabled.
        const CIPHERTEXT_HIDING_EN = 1 << 4;
        /// The memory alias check completed (version 3 and later).
        const ALIAS_CHECK_COMPLETE = 1 << 5;
        /// SEV-TIO is enabled (version 5).
        const SEV_TIO_EN = 1 << 7;
    }
}

/// Which key signed the report (`KEY_INFO.SIGNING_KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum SigningKey {
    /// The chip's Versioned Chip Endorsement Key.
    Vcek,
    /// A cloud provider's Versioned Loaded Endorsement Key.
    Vlek,
    /// None: the report is not signed.
    None,
}

/// `KEY_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct KeyInfo {
    /// An author key signed the ID block (`AUTHOR_KEY_EN`).
    pub author_key_en: bool,
    /// `CHIP_ID` is masked (`MASK_CHIP_KEY`).
    pub mask_chip_key: bool,
    /// The signing key.
    pub signing_key: SigningKey,
}

impl KeyInfo {
    /// Decodes the field; reserved bits and reserved key values are errors.
    pub fn decode(raw: u32) -> Result<KeyInfo, ReportError> {
        if raw >> 5 != 0 {
            let byte = ((raw >> 5).trailing_zeros() as usize + 5) / 8;
            return Err(ReportError::ReservedNotZero {
                offset: 0x48 + byte,
                value: raw.to_le_bytes().get(byte).copied().unwrap_or(0),
            });
        }
        let signing_key = match (raw >> 2) & 7 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            7 => SigningKey::None,
            other => return Err(ReportError::SigningKey(other as u8)),
        };
        Ok(KeyInfo {
            author_key_en: raw & 1 != 0,
            mask_chip_key: raw & 2 != 0,
            signing_key,
        })
    }

    /// The 32-bit field of `self`.
    pub const fn encode(&self) -> u32 {
        let key = match self.signing_key {
            SigningKey::Vcek => 0,
            SigningKey::Vlek => 1,
            SigningKey::None => 7,
        };
        (self.author_key_en as u32) | (self.mask_chip_key as u32) << 1 | key << 2
    }
}

/// A firmware version, `major.minor.build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build.
    pub build: u8,
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// A report, checked and decoded: the raw fields plus their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The fields as the firmware wrote them.
    pub raw: AttestationReport,
    /// The processor generation the TCB versions were decoded for.
    pub product: Product,
    /// Whether `product` came from the report's own CPUID fields (else the reader named it).
    pub product_from_cpuid: bool,
    /// `KEY_INFO`.
    pub key_info: KeyInfo,
    /// `CURRENT_TCB`.
    pub current_tcb: TcbVersion,
    /// `REPORTED_TCB`.
    pub reported_tcb: TcbVersion,
    /// `COMMITTED_TCB`.
    pub committed_tcb: TcbVersion,
    /// `LAUNCH_TCB`.
    pub launch_tcb: TcbVersion,
}

/// Offsets of the reserved ranges of a report of `version` (the CPUID bytes and the mitigation
/// vectors are reserved before versions 3 and 5).
fn reserved_ranges(version: u32) -> [(usize, usize); 6] {
    [
        (0x04c, 0x050),
        (if version >= 3 { 0x18b } else { 0x188 }, 0x1a0),
        (0x1eb, 0x1ec),
        (0x1ef, 0x1f0),
        (if version >= 5 { 0x208 } else { 0x1f8 }, 0x2a0),
        (0x330, 0x4a0),
    ]
}

impl Report {
    /// Reads and checks a report: 1184 bytes, version 2 to 5, reserved fields zero, a known
    /// signing key, TCB versions of the product the report's CPUID names (versions 3 and
    /// later) or else of `product`. Where both exist the report's own CPUID wins
    /// ([`Report::product_from_cpuid`]).
    pub fn parse(bytes: &[u8], product: Option<Product>) -> Result<Report, ReportError> {
        let raw = AttestationReport::read_from_bytes(bytes)
            .map_err(|_| ReportError::Length(bytes.len()))?;
        Self::decode(raw, product)
    }

    /// [`Report::parse`] of an already typed report.
    pub fn decode(raw: AttestationReport, product: Option<Product>) -> Result<Report, ReportError> {
        if !(2..=5).contains(&raw.version) {
            return Err(ReportError::UnknownVersion(raw.version));
        }
        let bytes = raw.as_bytes();
        for (start, end) in reserved_ranges(raw.version) {
            if let Some((i, &v)) = bytes
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .find(|(_, b)| **b != 0)
            {
                return Err(ReportError::ReservedNotZero {
                    offset: start + i,
                    value: v,
                });
            }
        }
        let key_info = KeyInfo::decode(raw.key_info)?;
        let (product, product_from_cpuid) = if raw.version >= 3 {
            match Product::from_cpuid(raw.cpuid_fam_id, raw.cpuid_mod_id) {
                Some(p) => (p, true),
                None => match product {
                    Some(p) => (p, false),
                    None => {
                        return Err(ReportError::UnknownProduct {
                            family: raw.cpuid_fam_id,
                            model: raw.cpuid_mod_id,
                        });
                    }
                },
            }
        } else {
            (
                product.ok_or(ReportError::ProductNeeded(raw.version))?,
                false,
            )
        };
        let tcb = |value: u64, field: &'static str| {
            TcbVersion::decode(value, product).ok_or(ReportError::TcbReserved {
                field,
                value,
                product,
            })
        };
        Ok(Report {
            current_tcb: tcb(raw.current_tcb, "CURRENT_TCB")?,
            reported_tcb: tcb(raw.reported_tcb, "REPORTED_TCB")?,
            committed_tcb: tcb(raw.committed_tcb, "COMMITTED_TCB")?,
            launch_tcb: tcb(raw.launch_tcb, "LAUNCH_TCB")?,
            raw,
            product,
            product_from_cpuid,
            key_info,
        })
    }

    /// The guest policy.
    pub const fn policy(&self) -> GuestPolicy {
        GuestPolicy(self.raw.policy)
    }

    /// The platform info, unknown bits kept.
    pub const fn platform_info(&self) -> PlatformInfo {
        PlatformInfo::from_bits_retain(self.raw.platform_info)
    }

    /// The firmware version running when the report was made.
    pub const fn current_version(&self) -> FirmwareVersion {
        FirmwareVersion {
            major: self.raw.current_major,
            minor: self.raw.current_minor,
            build: self.raw.current_build,
        }
    }

    /// The committed firmware version.
    pub const fn committed_version(&self) -> FirmwareVersion {
        FirmwareVersion {
            major: self.raw.committed_major,
            minor: self.raw.committed_minor,
            build: self.raw.committed_build,
        }
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        self.raw.as_bytes().get(..SIGNED_LEN).unwrap_or_default()
    }

    /// The signature's `r` and `s` as big-endian 48-byte P-384 scalars (the report stores them
    /// little-endian in 72 bytes); `None` when the top 24 bytes of either are not zero.
    pub fn signature_be(&self) -> Option<([u8; 48], [u8; 48])> {
        Some((be48(&self.raw.signature_r)?, be48(&self.raw.signature_s)?))
    }

    /// The identifying bytes of `CHIP_ID` for this product (all 64 on Milan and Genoa, the
    /// first 8 on Turin).
    pub fn chip_id(&self) -> &[u8] {
        self.raw
            .chip_id
            .get(..self.product.chip_id_len())
            .unwrap_or_default()
    }
}

/// A P-384 number the firmware writes little-endian in 72 bytes, as 48 big-endian bytes; `None`
/// when the top 24 bytes are not zero. (Reports, ID blocks and their keys all use the layout.)
pub(crate) fn be48(le: &[u8; 72]) -> Option<[u8; 48]> {
    let (low, high) = le.split_at(48);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    let mut out = [0u8; 48];
    for (o, b) in out.iter_mut().zip(low.iter().rev()) {
        *o = *b;
    }
    Some(out)
}
