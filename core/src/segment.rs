//! Segment registers and the conversions between every encoding of their attributes.
//!
//! Four encodings of the same descriptor bits meet in an SEV-ES/SNP launch:
//!
//! | encoding | where | layout |
//! |---|---|---|
//! | VMCB/VMSA `attrib` (12 bits in a `u16`) | the VMSA page, `struct vmcb_seg` | type 3:0, S 4, DPL 6:5, P 7, AVL 8, L 9, DB 10, G 11; bits 15:12 reserved |
//! | QEMU `SegmentCache.flags` (`u32`) | `target/i386/cpu.h` | the descriptor's high dword: type 11:8, S 12, DPL 14:13, P 15, AVL 20, L 21, B 22, G 23 |
//! | KVM `struct kvm_segment` | `KVM_SET_SREGS` / `KVM_GET_SREGS` | one byte per field plus `unusable` |
//! | IGVM / descriptor 16-bit attribute | IGVM native contexts, igvmbuilder | type 3:0, S 4, DPL 6:5, P 7, limit\[19:16\] 11:8 (must be 0), AVL 12, L 13, DB 14, G 15 |
//!
//! Each pair has exactly one conversion here. Every conversion is lossless: a value whose bits
//! the other side cannot carry is an error, never silently dropped.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A segment attribute in the 12-bit VMCB/VMSA encoding (APM Vol. 2 §15.5.1, "Segment state in
/// the VMCB"; Linux `SVM_SELECTOR_*` in `arch/x86/include/asm/svm.h`).
///
/// The wrapped `u16` is the raw field as stored in a page, so it may carry the reserved bits
/// 15:12; [`SegmentAttributes::new`] refuses them and [`SegmentAttributes::reserved_bits`] shows them.
#[repr(transparent)]
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct SegmentAttributes(pub u16);

/// A conversion between segment attribute encodings could not be done without losing bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// VMSA attribute bits 15:12 are reserved; no other encoding carries them.
    #[error("VMSA segment attribute {0:#06x} sets reserved bits 15:12")]
    ReservedVmsaBits(u16),
    /// QEMU `SegmentCache.flags` outside the attribute mask (`limit[19:16]`, `base[31:24]`, bits 7:0).
    #[error("QEMU segment flags {0:#010x} set bits outside the attribute mask {mask:#010x}", mask = SEGCACHE_ATTRIBUTE_MASK)]
    SegcacheBitsOutsideMask(u32),
    /// A KVM segment field is wider than its bit field (`type_` > 15, `dpl` > 3, a flag > 1).
    #[error("KVM segment field `{field}` = {value} does not fit in its bit field")]
    KvmFieldOutOfRange {
        /// The `kvm_segment` field name.
        field: &'static str,
        /// The value found.
        value: u8,
    },
    /// A KVM segment that is marked unusable but claims to be present. KVM computes
    /// `P = present && !unusable`, so the present bit would be lost.
    #[error("KVM segment is marked unusable but claims to be present")]
    UnusablePresent,
    /// A KVM segment that is neither present nor unusable: KVM stores it as not present and
    /// reports it back as unusable, so the distinction would be lost.
    #[error("KVM segment is not present but not marked unusable")]
    NotPresentUsable,
    /// IGVM descriptor attribute bits 11:8 hold `limit[19:16]` in descriptor format and must be 0.
    #[error(
        "IGVM segment attribute {0:#06x} sets bits 11:8 (limit[19:16] in a descriptor), which must be 0"
    )]
    IgvmLimitBits(u16),
}

/// QEMU `DESC_TYPE_SHIFT`: the type field's position in `SegmentCache.flags`.
pub const DESC_TYPE_SHIFT: u32 = 8;
/// QEMU `DESC_A_MASK`: accessed.
pub const DESC_A_MASK: u32 = 1 << 8;
/// QEMU `DESC_R_MASK` (code) / `DESC_W_MASK` (data).
pub const DESC_RW_MASK: u32 = 1 << 9;
/// QEMU `DESC_C_MASK` (code) / `DESC_E_MASK` (data).
pub const DESC_CE_MASK: u32 = 1 << 10;
/// QEMU `DESC_CS_MASK`: code segment.
pub const DESC_CS_MASK: u32 = 1 << 11;
/// QEMU `DESC_S_MASK`: code or data (not system).
pub const DESC_S_MASK: u32 = 1 << 12;
/// QEMU `DESC_DPL_SHIFT`.
pub const DESC_DPL_SHIFT: u32 = 13;
/// QEMU `DESC_P_MASK`: present.
pub const DESC_P_MASK: u32 = 1 << 15;
/// QEMU `DESC_AVL_MASK`.
pub const DESC_AVL_MASK: u32 = 1 << 20;
/// QEMU `DESC_L_MASK`: 64-bit code.
pub const DESC_L_MASK: u32 = 1 << 21;
/// QEMU `DESC_B_MASK`: default operand size / big.
pub const DESC_B_MASK: u32 = 1 << 22;
/// QEMU `DESC_G_MASK`: granularity.
pub const DESC_G_MASK: u32 = 1 << 23;
/// The bits of `SegmentCache.flags` that carry attributes (the rest are limit and base bits).
pub const SEGCACHE_ATTRIBUTE_MASK: u32 = 0x00f0_ff00;

impl SegmentAttributes {
    /// Bits 15:12 of the VMSA field are reserved.
    pub const RESERVED_MASK: u16 = 0xf000;
    /// Segment type, bits 3:0.
    pub const TYPE_MASK: u16 = 0x000f;
    /// S: code or data segment (not system), bit 4.
    pub const S: u16 = 1 << 4;
    /// DPL, bits 6:5.
    pub const DPL_SHIFT: u16 = 5;
    /// P: present, bit 7.
    pub const P: u16 = 1 << 7;
    /// AVL, bit 8.
    pub const AVL: u16 = 1 << 8;
    /// L: 64-bit code segment, bit 9.
    pub const L: u16 = 1 << 9;
    /// D/B: default operation size, bit 10.
    pub const DB: u16 = 1 << 10;
    /// G: granularity, bit 11.
    pub const G: u16 = 1 << 11;

    /// Type bit 0: accessed (code/data segments).
    pub const TYPE_ACCESSED: u16 = 1 << 0;
    /// Type bit 1: readable (code) / writable (data).
    pub const TYPE_READ_WRITE: u16 = 1 << 1;
    /// Type bit 2: conforming (code) / expand-down (data).
    pub const TYPE_CONFORMING_EXPAND_DOWN: u16 = 1 << 2;
    /// Type bit 3: code segment.
    pub const TYPE_CODE: u16 = 1 << 3;
    /// System type 2: LDT.
    pub const SYSTEM_TYPE_LDT: u16 = 2;
    /// System type 3: busy 16-bit TSS.
    pub const SYSTEM_TYPE_BUSY_TSS16: u16 = 3;
    /// System type 11: busy 32/64-bit TSS.
    pub const SYSTEM_TYPE_BUSY_TSS32: u16 = 11;

    /// 0x9b: present, code, readable, accessed, 16-bit: CS after QEMU's `x86_cpu_reset`.
    pub const CODE_16BIT_RESET: Self =
        Self(Self::P | Self::S | Self::TYPE_CODE | Self::TYPE_READ_WRITE | Self::TYPE_ACCESSED);
    /// 0x9a: CS as KVM's `init_vmcb` leaves it (not accessed).
    pub const CODE_16BIT_KVM_RESET: Self =
        Self(Self::P | Self::S | Self::TYPE_CODE | Self::TYPE_READ_WRITE);
    /// 0x93: present, data, writable, accessed: DS/ES/FS/GS/SS after QEMU's `x86_cpu_reset`.
    pub const DATA_16BIT_RESET: Self =
        Self(Self::P | Self::S | Self::TYPE_READ_WRITE | Self::TYPE_ACCESSED);
    /// 0x92: data segments as KVM's `init_seg` leaves them (not accessed).
    pub const DATA_16BIT_KVM_RESET: Self = Self(Self::P | Self::S | Self::TYPE_READ_WRITE);
    /// 0x82: present LDT, as both QEMU and KVM reset it.
    pub const LDT_RESET: Self = Self(Self::P | Self::SYSTEM_TYPE_LDT);
    /// 0x8b: present busy 32-bit TSS, QEMU's TR reset value.
    pub const TSS32_BUSY_RESET: Self = Self(Self::P | Self::SYSTEM_TYPE_BUSY_TSS32);
    /// 0x83: present busy 16-bit TSS, KVM's TR reset value (`init_sys_seg`).
    pub const TSS16_BUSY_KVM_RESET: Self = Self(Self::P | Self::SYSTEM_TYPE_BUSY_TSS16);
    /// 0xc9b: 32-bit flat code (G, D/B, present, code, readable, accessed).
    pub const CODE_32BIT_FLAT: Self = Self(Self::G | Self::DB | Self::CODE_16BIT_RESET.0);
    /// 0xa9b: 64-bit code (G, L, present, code, readable, accessed).
    pub const CODE_64BIT: Self = Self(Self::G | Self::L | Self::CODE_16BIT_RESET.0);
    /// 0xc93: 32-bit flat data (G, D/B, present, data, writable, accessed).
    pub const DATA_32BIT_FLAT: Self = Self(Self::G | Self::DB | Self::DATA_16BIT_RESET.0);

    /// A valid 12-bit attribute; `None` if bits 15:12 are set.
    pub const fn new(raw: u16) -> Option<Self> {
        if raw & Self::RESERVED_MASK != 0 {
            None
        } else {
            Some(Self(raw))
        }
    }

    /// The raw 16-bit field.
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// Segment type, bits 3:0.
    pub const fn segment_type(self) -> u8 {
        (self.0 & Self::TYPE_MASK) as u8
    }
    /// S: code/data (true) or system (false).
    pub const fn code_or_data(self) -> bool {
        self.0 & Self::S != 0
    }
    /// Descriptor privilege level.
    pub const fn dpl(self) -> u8 {
        ((self.0 >> Self::DPL_SHIFT) & 3) as u8
    }
    /// Present.
    pub const fn present(self) -> bool {
        self.0 & Self::P != 0
    }
    /// Available for software.
    pub const fn avl(self) -> bool {
        self.0 & Self::AVL != 0
    }
    /// 64-bit code segment.
    pub const fn long(self) -> bool {
        self.0 & Self::L != 0
    }
    /// Default operation size 32-bit.
    pub const fn db(self) -> bool {
        self.0 & Self::DB != 0
    }
    /// Granularity 4 KiB.
    pub const fn granularity(self) -> bool {
        self.0 & Self::G != 0
    }
    /// The reserved bits 15:12 (zero in a valid attribute).
    pub const fn reserved_bits(self) -> u16 {
        self.0 & Self::RESERVED_MASK
    }

    fn check(self) -> Result<Self, SegmentError> {
        Self::new(self.0).ok_or(SegmentError::ReservedVmsaBits(self.0))
    }

    /// To QEMU `SegmentCache.flags`, as `FLAGS_VMSA_TO_SEGCACHE` in `target/i386/sev.c`.
    ///
    /// QEMU's macro shifts VMSA bits 15:12 into segcache bits 27:24 (base bits) where they are
    /// lost on the way back; here they are an error.
    pub fn to_segcache(self) -> Result<u32, SegmentError> {
        let a = u32::from(self.check()?.0);
        Ok(((a & 0x0f00) << 12) | ((a & 0x00ff) << 8))
    }

    /// From QEMU `SegmentCache.flags`, as `FLAGS_SEGCACHE_TO_VMSA` in `target/i386/sev.c`.
    ///
    /// The macro drops flags bits 19:16 (limit) and 31:24 (base); here any bit outside
    /// [`SEGCACHE_ATTRIBUTE_MASK`] is an error.
    pub fn from_segcache(flags: u32) -> Result<Self, SegmentError> {
        if flags & !SEGCACHE_ATTRIBUTE_MASK != 0 {
            return Err(SegmentError::SegcacheBitsOutsideMask(flags));
        }
        // Masked to 12 bits before narrowing, so the cast cannot truncate.
        Ok(Self(
            (((flags & 0xff00) >> 8) | ((flags & 0x00f0_0000) >> 12)) as u16,
        ))
    }

    /// To the 16-bit descriptor-style attribute of IGVM native contexts and igvmbuilder:
    /// attrib bits 11:8 move to 15:12, bits 11:8 (`limit[19:16]`) are 0.
    pub fn to_igvm(self) -> Result<u16, SegmentError> {
        let a = self.check()?.0;
        Ok((a & 0x00ff) | ((a & 0x0f00) << 4))
    }

    /// From the 16-bit IGVM attribute: `(a & 0xff) | ((a >> 4) & 0xf00)` (coconut-svsm
    /// igvmbuilder, openvmm `virt::x86::snp`), refusing `limit[19:16]` bits.
    pub fn from_igvm(attributes: u16) -> Result<Self, SegmentError> {
        if attributes & 0x0f00 != 0 {
            return Err(SegmentError::IgvmLimitBits(attributes));
        }
        Ok(Self((attributes & 0x00ff) | ((attributes >> 4) & 0x0f00)))
    }

    /// A short human description: `code,read,accessed,present,dpl0,16-bit`.
    pub fn describe(self) -> AttributeDescription {
        AttributeDescription(self)
    }
}

impl fmt::Debug for SegmentAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentAttributes({:#05x}: {})", self.0, self.describe())
    }
}

/// [`fmt::Display`] of [`SegmentAttributes::describe`].
#[derive(Debug, Clone, Copy)]
pub struct AttributeDescription(SegmentAttributes);

impl fmt::Display for AttributeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        let t = u16::from(a.segment_type());
        if a.code_or_data() {
            if t & SegmentAttributes::TYPE_CODE != 0 {
                f.write_str("code")?;
                if t & SegmentAttributes::TYPE_READ_WRITE != 0 {
                    f.write_str(",read")?;
                }
                if t & SegmentAttributes::TYPE_CONFORMING_EXPAND_DOWN != 0 {
                    f.write_str(",conforming")?;
                }
            } else {
                f.write_str("data")?;
                if t & SegmentAttributes::TYPE_READ_WRITE != 0 {
                    f.write_str(",write")?;
                }
                if t & SegmentAttributes::TYPE_CONFORMING_EXPAND_DOWN != 0 {
                    f.write_str(",expand-down")?;
                }
            }
            if t & SegmentAttributes::TYPE_ACCESSED != 0 {
                f.write_str(",accessed")?;
            }
        } else {
            let name = match t {
                1 => "tss16-avail",
                2 => "ldt",
                3 => "tss16-busy",
                4 => "call-gate16",
                5 => "task-gate",
                6 => "int-gate16",
                7 => "trap-gate16",
                9 => "tss-avail",
                11 => "tss-busy",
                12 => "call-gate",
                14 => "int-gate",
                15 => "trap-gate",
                _ => "system-reserved",
            };
            f.write_str(name)?;
        }
        f.write_str(if a.present() {
            ",present"
        } else {
            ",not-present"
        })?;
        write!(f, ",dpl{}", a.dpl())?;
        if a.avl() {
            f.write_str(",avl")?;
        }
        if a.granularity() {
            f.write_str(",4k-granular")?;
        }
        if a.code_or_data() {
            f.write_str(if a.long() {
                ",64-bit"
            } else if a.db() {
                ",32-bit"
            } else {
                ",16-bit"
            })?;
        } else {
            if a.long() {
                f.write_str(",L")?;
            }
            if a.db() {
                f.write_str(",DB")?;
            }
        }
        if a.reserved_bits() != 0 {
            write!(f, ",RESERVED={:#x}", a.reserved_bits())?;
        }
        Ok(())
    }
}

/// A segment register as the VMCB and VMSA store it (`struct vmcb_seg`, 16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VmcbSegment {
    /// Selector.
    pub selector: u16,
    /// Attributes, 12-bit VMCB encoding.
    pub attrib: SegmentAttributes,
    /// Limit, byte granular (already expanded when G is set, e.g. `0xffff_ffff`).
    pub limit: u32,
    /// Base address.
    pub base: u64,
}

const _: () = assert!(core::mem::size_of::<VmcbSegment>() == 16);
const _: () = assert!(core::mem::offset_of!(VmcbSegment, selector) == 0);
const _: () = assert!(core::mem::offset_of!(VmcbSegment, attrib) == 2);
const _: () = assert!(core::mem::offset_of!(VmcbSegment, limit) == 4);
const _: () = assert!(core::mem::offset_of!(VmcbSegment, base) == 8);

impl VmcbSegment {
    /// A segment from its four fields.
    pub const fn new(selector: u16, attrib: SegmentAttributes, limit: u32, base: u64) -> Self {
        Self {
            selector,
            attrib,
            limit,
            base,
        }
    }

    /// Whether every byte is zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// To KVM's `kvm_segment`, as KVM's `svm_get_segment` would report a VMCB segment set by
    /// [`VmcbSegment::from_kvm`]: `unusable = !present`, every attribute bit in its own field.
    pub fn to_kvm(&self) -> Result<KvmSegment, SegmentError> {
        let a = self.attrib.check()?;
        let present = a.present();
        Ok(KvmSegment {
            base: self.base,
            limit: self.limit,
            selector: self.selector,
            type_: a.segment_type(),
            present: u8::from(present),
            dpl: a.dpl(),
            db: u8::from(a.db()),
            s: u8::from(a.code_or_data()),
            l: u8::from(a.long()),
            g: u8::from(a.granularity()),
            avl: u8::from(a.avl()),
            unusable: u8::from(!present),
        })
    }

    /// From KVM's `kvm_segment`, as `svm_set_segment` in `arch/x86/kvm/svm/svm.c` packs it:
    /// `attrib = type | S<<4 | DPL<<5 | (present && !unusable)<<7 | AVL<<8 | L<<9 | DB<<10 | G<<11`.
    ///
    /// A field wider than its bit field, or a `present`/`unusable` pair that KVM would collapse
    /// (anything but `unusable == !present`), is an error.
    pub fn from_kvm(seg: &KvmSegment) -> Result<Self, SegmentError> {
        fn bit(field: &'static str, value: u8) -> Result<u16, SegmentError> {
            if value > 1 {
                Err(SegmentError::KvmFieldOutOfRange { field, value })
            } else {
                Ok(u16::from(value))
            }
        }
        if seg.type_ > 15 {
            return Err(SegmentError::KvmFieldOutOfRange {
                field: "type",
                value: seg.type_,
            });
        }
        if seg.dpl > 3 {
            return Err(SegmentError::KvmFieldOutOfRange {
                field: "dpl",
                value: seg.dpl,
            });
        }
        let present = bit("present", seg.present)?;
        let unusable = bit("unusable", seg.unusable)?;
        match (present, unusable) {
            (1, 1) => return Err(SegmentError::UnusablePresent),
            (0, 0) => return Err(SegmentError::NotPresentUsable),
            _ => {}
        }
        let attrib = u16::from(seg.type_)
            | bit("s", seg.s)? << 4
            | u16::from(seg.dpl) << 5
            | present << 7
            | bit("avl", seg.avl)? << 8
            | bit("l", seg.l)? << 9
            | bit("db", seg.db)? << 10
            | bit("g", seg.g)? << 11;
        Ok(Self {
            selector: seg.selector,
            attrib: SegmentAttributes(attrib),
            limit: seg.limit,
            base: seg.base,
        })
    }
}

impl fmt::Debug for VmcbSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for VmcbSegment {
    /// `sel=f000 base=ffff0000 limit=ffff attr=09b code,read,accessed,present,dpl0,16-bit`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sel={:04x} base={:x} limit={:x} attr={:03x} {}",
            self.selector,
            self.base,
            self.limit,
            self.attrib.0,
            self.attrib.describe()
        )
    }
}

/// The fields of KVM's `struct kvm_segment` (`include/uapi/linux/kvm.h`), mirrored so the core
/// needs no kernel bindings; the KVM adapter maps it to `kvm_bindings::kvm_segment` field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[allow(missing_docs)]
pub struct KvmSegment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: u8,
    pub dpl: u8,
    pub db: u8,
    pub s: u8,
    pub l: u8,
    pub g: u8,
    pub avl: u8,
    pub unusable: u8,
}
