//! The SEV-ES/SNP VM save area: one 4 KiB page per vCPU.
//!
//! Layout: Linux `struct sev_es_save_area` (`arch/x86/include/asm/svm.h`, 1648 bytes,
//! `EXPECTED_SEV_ES_SAVE_AREA_SIZE`) and AMD APM Vol. 2 rev. 3.42, Table B-4 "VMSA Layout, State
//! Save Area for SEV-ES"; the rest of the page up to 0x1000 is reserved and zero in every VMSA
//! that QEMU, KVM, sev-snp-measure and igvm produce. Every field's offset is checked at compile
//! time against the table below, and [`FIELDS`] lists all of them, reserved gaps included, so
//! that [`diff`] and the inspectors cover every byte of the page.

use crate::flags::{Cr0, Cr4, Efer, FlagNames, Rflags, SevFeatures};
use crate::segment::VmcbSegment;
use core::fmt;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Size of a VMSA page.
pub const VMSA_SIZE: usize = 0x1000;
/// Size of the architectural save area inside the page (Linux `EXPECTED_SEV_ES_SAVE_AREA_SIZE`).
pub const SAVE_AREA_SIZE: usize = 0x670;

/// How a VMSA field is decoded for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
pub enum FieldKind {
    /// A `struct vmcb_seg`.
    Segment,
    /// A little-endian unsigned integer of the field's size.
    Int,
    /// `sev_features`, decoded as [`SevFeatures`].
    SevFeatures,
    /// EFER, decoded as [`Efer`].
    Efer,
    /// CR0, decoded as [`Cr0`].
    Cr0,
    /// CR4, decoded as [`Cr4`].
    Cr4,
    /// RFLAGS, decoded as [`Rflags`].
    Rflags,
    /// A byte array (x87/XMM/YMM registers).
    Bytes,
    /// Reserved bytes; non-zero content is suspicious.
    Reserved,
}

/// One named field of the VMSA page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Field {
    /// Its typed id.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub id: FieldId,
    /// The field name, as in Linux `struct sev_es_save_area` (reserved gaps named by offset).
    pub name: &'static str,
    /// Byte offset in the page.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// How to decode it.
    pub kind: FieldKind,
}

/// A field of the page, by its offset: `FieldId::RIP`, `FieldId::SEV_FEATURES`. The ids are
/// generated with the layout, so a misspelt field is a build error and matching on fields is
/// matching on integers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct FieldId(u16);

impl FieldId {
    /// The field's offset in the page.
    pub const fn offset(self) -> usize {
        self.0 as usize
    }

    /// The field's position in [`FIELDS`].
    #[expect(
        clippy::indexing_slicing,
        reason = "i < FIELDS.len(); slice::get is not const"
    )]
    pub const fn index(self) -> usize {
        let mut i = 0;
        while i < FIELDS.len() {
            if FIELDS[i].offset == self.0 as usize {
                return i;
            }
            i += 1;
        }
        // Every FieldId is made by `vmsa_layout!` from a row of FIELDS.
        FIELDS.len()
    }

    /// The field.
    pub fn field(self) -> &'static Field {
        match FIELDS.get(self.index()) {
            Some(f) => f,
            None => &FIELDS_END,
        }
    }
}

/// Not a field: what [`FieldId::field`] would give for an id that no row made (none exists).
const FIELDS_END: Field = Field {
    id: FieldId(VMSA_SIZE as u16),
    name: "",
    offset: VMSA_SIZE,
    size: 0,
    kind: FieldKind::Reserved,
};

macro_rules! vmsa_layout {
    ($( $(#[$doc:meta])* $off:literal $name:ident $id:ident : $ty:ty => $kind:ident ),* $(,)?) => {
        /// The 4096-byte SEV-ES/SNP VMSA page.
        ///
        /// `repr(C)` without packing: every field is naturally aligned at its architectural
        /// offset, which the compile-time checks below prove, so fields can be borrowed. Build
        /// one with [`FromZeros::new_zeroed`] or [`Vmsa::from_page`]; the reset states are
        /// deliberate, named constructors elsewhere, not a `Default`.
        #[repr(C)]
        #[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
        pub struct Vmsa {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        $( const _: () = assert!(core::mem::offset_of!(Vmsa, $name) == $off); )*

        /// Every field of the page in offset order, reserved gaps included; they tile the
        /// 4096 bytes exactly (checked by a unit test).
        pub const FIELDS: &[Field] = &[
            $( Field { id: FieldId::$id, name: stringify!($name), offset: $off, size: core::mem::size_of::<$ty>(), kind: FieldKind::$kind }, )*
        ];

        /// The typed id of every field, named as the field in capitals.
        impl FieldId {
            $( #[doc = concat!("`", stringify!($name), "` at offset ", stringify!($off), ".")] pub const $id: Self = Self($off); )*
        }
    };
}

vmsa_layout! {
    /// ES.
    0x000 es ES: VmcbSegment => Segment,
    /// CS.
    0x010 cs CS: VmcbSegment => Segment,
    /// SS.
    0x020 ss SS: VmcbSegment => Segment,
    /// DS.
    0x030 ds DS: VmcbSegment => Segment,
    /// FS.
    0x040 fs FS: VmcbSegment => Segment,
    /// GS.
    0x050 gs GS: VmcbSegment => Segment,
    /// GDTR (only base and limit reach KVM).
    0x060 gdtr GDTR: VmcbSegment => Segment,
    /// LDTR.
    0x070 ldtr LDTR: VmcbSegment => Segment,
    /// IDTR (only base and limit reach KVM).
    0x080 idtr IDTR: VmcbSegment => Segment,
    /// TR.
    0x090 tr TR: VmcbSegment => Segment,
    /// CPL 0 shadow-stack pointer (APM `PL0_SSP`, `MSR_IA32_PL0_SSP`; Linux `pl0_ssp`). Per
    /// privilege level, not per VMPL.
    0x0a0 pl0_ssp PL0_SSP: u64 => Int,
    /// CPL 1 shadow-stack pointer (APM `PL1_SSP`).
    0x0a8 pl1_ssp PL1_SSP: u64 => Int,
    /// CPL 2 shadow-stack pointer (APM `PL2_SSP`).
    0x0b0 pl2_ssp PL2_SSP: u64 => Int,
    /// CPL 3 shadow-stack pointer (APM `PL3_SSP`).
    0x0b8 pl3_ssp PL3_SSP: u64 => Int,
    /// U_CET MSR.
    0x0c0 u_cet U_CET: u64 => Int,
    /// Reserved.
    0x0c8 reserved_0c8 RESERVED_0C8: [u8; 2] => Reserved,
    /// VMPL the VMSA runs at.
    0x0ca vmpl VMPL: u8 => Int,
    /// Current privilege level (KVM sets it to SS.DPL).
    0x0cb cpl CPL: u8 => Int,
    /// Reserved.
    0x0cc reserved_0cc RESERVED_0CC: [u8; 4] => Reserved,
    /// EFER.
    0x0d0 efer EFER: u64 => Efer,
    /// Reserved.
    0x0d8 reserved_0d8 RESERVED_0D8: [u8; 104] => Reserved,
    /// XSS MSR.
    0x140 xss XSS: u64 => Int,
    /// CR4.
    0x148 cr4 CR4: u64 => Cr4,
    /// CR3.
    0x150 cr3 CR3: u64 => Int,
    /// CR0.
    0x158 cr0 CR0: u64 => Cr0,
    /// DR7.
    0x160 dr7 DR7: u64 => Int,
    /// DR6.
    0x168 dr6 DR6: u64 => Int,
    /// RFLAGS.
    0x170 rflags RFLAGS: u64 => Rflags,
    /// RIP.
    0x178 rip RIP: u64 => Int,
    /// DR0.
    0x180 dr0 DR0: u64 => Int,
    /// DR1.
    0x188 dr1 DR1: u64 => Int,
    /// DR2.
    0x190 dr2 DR2: u64 => Int,
    /// DR3.
    0x198 dr3 DR3: u64 => Int,
    /// DR0 address mask.
    0x1a0 dr0_addr_mask DR0_ADDR_MASK: u64 => Int,
    /// DR1 address mask.
    0x1a8 dr1_addr_mask DR1_ADDR_MASK: u64 => Int,
    /// DR2 address mask.
    0x1b0 dr2_addr_mask DR2_ADDR_MASK: u64 => Int,
    /// DR3 address mask.
    0x1b8 dr3_addr_mask DR3_ADDR_MASK: u64 => Int,
    /// Reserved.
    0x1c0 reserved_1c0 RESERVED_1C0: [u8; 24] => Reserved,
    /// RSP.
    0x1d8 rsp RSP: u64 => Int,
    /// S_CET MSR.
    0x1e0 s_cet S_CET: u64 => Int,
    /// SSP.
    0x1e8 ssp SSP: u64 => Int,
    /// ISST_ADDR (interrupt SSP table address).
    0x1f0 isst_addr ISST_ADDR: u64 => Int,
    /// RAX.
    0x1f8 rax RAX: u64 => Int,
    /// STAR MSR.
    0x200 star STAR: u64 => Int,
    /// LSTAR MSR.
    0x208 lstar LSTAR: u64 => Int,
    /// CSTAR MSR.
    0x210 cstar CSTAR: u64 => Int,
    /// SFMASK MSR.
    0x218 sfmask SFMASK: u64 => Int,
    /// KERNEL_GS_BASE MSR.
    0x220 kernel_gs_base KERNEL_GS_BASE: u64 => Int,
    /// SYSENTER_CS MSR.
    0x228 sysenter_cs SYSENTER_CS: u64 => Int,
    /// SYSENTER_ESP MSR.
    0x230 sysenter_esp SYSENTER_ESP: u64 => Int,
    /// SYSENTER_EIP MSR.
    0x238 sysenter_eip SYSENTER_EIP: u64 => Int,
    /// CR2.
    0x240 cr2 CR2: u64 => Int,
    /// Reserved.
    0x248 reserved_248 RESERVED_248: [u8; 32] => Reserved,
    /// Guest PAT MSR.
    0x268 g_pat G_PAT: u64 => Int,
    /// DBGCTL MSR.
    0x270 dbgctl DBGCTL: u64 => Int,
    /// BR_FROM (last branch from IP).
    0x278 br_from BR_FROM: u64 => Int,
    /// BR_TO (last branch to IP).
    0x280 br_to BR_TO: u64 => Int,
    /// Last exception from IP.
    0x288 last_excp_from LAST_EXCP_FROM: u64 => Int,
    /// Last exception to IP.
    0x290 last_excp_to LAST_EXCP_TO: u64 => Int,
    /// Reserved (Linux `reserved_0x298[80]` covers this and `spec_ctrl`).
    0x298 reserved_298 RESERVED_298: [u8; 72] => Reserved,
    /// SPEC_CTRL MSR (APM Table B-4; KVM's VMCB `spec_ctrl` lands here).
    0x2e0 spec_ctrl SPEC_CTRL: u64 => Int,
    /// PKRU.
    0x2e8 pkru PKRU: u32 => Int,
    /// TSC_AUX MSR.
    0x2ec tsc_aux TSC_AUX: u32 => Int,
    /// TSC scale (Secure TSC).
    0x2f0 tsc_scale TSC_SCALE: u64 => Int,
    /// TSC offset (Secure TSC).
    0x2f8 tsc_offset TSC_OFFSET: u64 => Int,
    /// Reserved.
    0x300 reserved_300 RESERVED_300: [u8; 8] => Reserved,
    /// RCX.
    0x308 rcx RCX: u64 => Int,
    /// RDX (the CPUID signature at reset).
    0x310 rdx RDX: u64 => Int,
    /// RBX.
    0x318 rbx RBX: u64 => Int,
    /// Reserved (RSP lives at 0x1d8).
    0x320 reserved_320 RESERVED_320: [u8; 8] => Reserved,
    /// RBP.
    0x328 rbp RBP: u64 => Int,
    /// RSI.
    0x330 rsi RSI: u64 => Int,
    /// RDI.
    0x338 rdi RDI: u64 => Int,
    /// R8.
    0x340 r8 R8: u64 => Int,
    /// R9.
    0x348 r9 R9: u64 => Int,
    /// R10.
    0x350 r10 R10: u64 => Int,
    /// R11.
    0x358 r11 R11: u64 => Int,
    /// R12.
    0x360 r12 R12: u64 => Int,
    /// R13.
    0x368 r13 R13: u64 => Int,
    /// R14.
    0x370 r14 R14: u64 => Int,
    /// R15.
    0x378 r15 R15: u64 => Int,
    /// Reserved.
    0x380 reserved_380 RESERVED_380: [u8; 16] => Reserved,
    /// Guest exit info 1.
    0x390 guest_exit_info_1 GUEST_EXIT_INFO_1: u64 => Int,
    /// Guest exit info 2.
    0x398 guest_exit_info_2 GUEST_EXIT_INFO_2: u64 => Int,
    /// Guest exit interrupt info.
    0x3a0 guest_exit_int_info GUEST_EXIT_INT_INFO: u64 => Int,
    /// Guest next RIP.
    0x3a8 guest_nrip GUEST_NRIP: u64 => Int,
    /// SEV_FEATURES (see [`SevFeatures`]).
    0x3b0 sev_features SEV_FEATURES: u64 => SevFeatures,
    /// Virtual interrupt control.
    0x3b8 vintr_ctrl VINTR_CTRL: u64 => Int,
    /// Guest exit code.
    0x3c0 guest_exit_code GUEST_EXIT_CODE: u64 => Int,
    /// Virtual top of memory.
    0x3c8 virtual_tom VIRTUAL_TOM: u64 => Int,
    /// TLB ID.
    0x3d0 tlb_id TLB_ID: u64 => Int,
    /// Physical CPU ID.
    0x3d8 pcpu_id PCPU_ID: u64 => Int,
    /// Event injection.
    0x3e0 event_inj EVENT_INJ: u64 => Int,
    /// XCR0.
    0x3e8 xcr0 XCR0: u64 => Int,
    /// Reserved (igvm: `xsave_valid_bitmap`).
    0x3f0 reserved_3f0 RESERVED_3F0: [u8; 16] => Reserved,
    /// x87 data pointer.
    0x400 x87_dp X87_DP: u64 => Int,
    /// MXCSR.
    0x408 mxcsr MXCSR: u32 => Int,
    /// x87 tag word (FXSAVE abridged form).
    0x40c x87_ftw X87_FTW: u16 => Int,
    /// x87 status word.
    0x40e x87_fsw X87_FSW: u16 => Int,
    /// x87 control word.
    0x410 x87_fcw X87_FCW: u16 => Int,
    /// x87 last opcode.
    0x412 x87_fop X87_FOP: u16 => Int,
    /// x87 data segment.
    0x414 x87_ds X87_DS: u16 => Int,
    /// x87 code segment.
    0x416 x87_cs X87_CS: u16 => Int,
    /// x87 instruction pointer.
    0x418 x87_rip X87_RIP: u64 => Int,
    /// ST0..ST7: 8×8 bytes of mantissas, then 8×2 bytes of sign/exponent (KVM's layout).
    0x420 fpreg_x87 FPREG_X87: [u8; 80] => Bytes,
    /// XMM0..XMM15.
    0x470 fpreg_xmm FPREG_XMM: [u8; 256] => Bytes,
    /// Upper halves of YMM0..YMM15.
    0x570 fpreg_ymm FPREG_YMM: [u8; 256] => Bytes,
    /// Reserved to the end of the page.
    0x670 reserved_670 RESERVED_670: [u8; 2448] => Reserved,
}

const _: () = assert!(core::mem::size_of::<Vmsa>() == VMSA_SIZE);

// Clone, equality and hashing of the page as the 4096 bytes it is: one copy or comparison,
// not one per field (the derives would emit code for each of the hundred fields).
impl Clone for Vmsa {
    fn clone(&self) -> Self {
        let page: [u8; VMSA_SIZE] = *self.as_page();
        zerocopy::transmute!(page)
    }
}

impl PartialEq for Vmsa {
    fn eq(&self, other: &Self) -> bool {
        self.as_page() == other.as_page()
    }
}

impl Eq for Vmsa {}

impl core::hash::Hash for Vmsa {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_page().hash(state);
    }
}

/// A byte buffer is not a VMSA page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VmsaError {
    /// The input is not exactly 4096 bytes.
    #[error(
        "a VMSA is a 4096-byte page (or QEMU's 1648-byte save area), but the input has {0} bytes"
    )]
    WrongSize(usize),
}

impl Vmsa {
    /// Reads a page. Any 4096 bytes are a `Vmsa`; anything else is [`VmsaError::WrongSize`].
    pub fn from_page(bytes: &[u8]) -> Result<Self, VmsaError> {
        Self::read_from_bytes(bytes).map_err(|_| VmsaError::WrongSize(bytes.len()))
    }

    /// Reads a VMSA as the stack stores one: a whole 4096-byte page, or QEMU's 1648-byte
    /// `struct sev_es_save_area` ([`SAVE_AREA_SIZE`], `target/i386/sev.h`), zero-padded to a
    /// page. Any other length is [`VmsaError::WrongSize`].
    pub fn from_save_area(bytes: &[u8]) -> Result<Self, VmsaError> {
        if bytes.len() != SAVE_AREA_SIZE {
            return Self::from_page(bytes);
        }
        let mut vmsa = Self::new_zeroed();
        if let Some(dst) = vmsa.as_mut_bytes().get_mut(..SAVE_AREA_SIZE) {
            dst.copy_from_slice(bytes);
        }
        Ok(vmsa)
    }

    /// The page as bytes.
    pub fn as_page(&self) -> &[u8; VMSA_SIZE] {
        zerocopy::transmute_ref!(self)
    }

    /// [`SevFeatures`] of `sev_features`, with unnamed bits kept.
    pub fn sev_features(&self) -> SevFeatures {
        SevFeatures::from_bits_retain(self.sev_features)
    }

    /// The value of one field of this page.
    pub fn field(&self, field: &Field) -> FieldValue<'_> {
        field_value(self.as_page(), field)
    }

    /// The fields whose bytes are not all zero, in offset order.
    pub fn nonzero_fields(&self) -> impl Iterator<Item = (&'static Field, FieldValue<'_>)> {
        let page = self.as_page();
        FIELDS
            .iter()
            .filter(move |f| field_bytes(page, f).iter().any(|&b| b != 0))
            .map(move |f| (f, field_value(page, f)))
    }

    /// The field that contains byte `offset` of the page.
    pub fn field_at(offset: usize) -> Option<&'static Field> {
        FIELDS
            .iter()
            .find(|f| offset >= f.offset && offset < f.offset + f.size)
    }

    /// The field with this name.
    pub fn field_named(name: &str) -> Option<&'static Field> {
        FIELDS.iter().find(|f| f.name == name)
    }
}

impl fmt::Debug for Vmsa {
    /// Only the non-zero fields, so a reset-state VMSA reads in a dozen lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Vmsa");
        for (field, value) in self.nonzero_fields() {
            s.field(field.name, &format_args!("{value}"));
        }
        s.finish_non_exhaustive()
    }
}

fn field_bytes<'a>(page: &'a [u8; VMSA_SIZE], field: &Field) -> &'a [u8] {
    // FIELDS tile the page (unit test `fields_tile_the_page`), so the range is always in bounds;
    // `get` keeps that a checked fact rather than an assumption.
    page.get(field.offset..field.offset + field.size)
        .unwrap_or(&[])
}

/// The decoded value of one VMSA field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A segment register.
    Segment(VmcbSegment),
    /// An integer field with its kind (for flag decoding) and size in bytes.
    Int {
        /// The value.
        value: u64,
        /// How to decode it.
        kind: FieldKind,
        /// Size in bytes.
        size: usize,
    },
    /// Bytes (registers or reserved space).
    Bytes(&'a [u8]),
}

impl fmt::Debug for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Reads the field's bytes from a page and decodes them.
pub fn field_value<'a>(page: &'a [u8; VMSA_SIZE], field: &Field) -> FieldValue<'a> {
    let bytes = field_bytes(page, field);
    match field.kind {
        FieldKind::Segment => {
            FieldValue::Segment(VmcbSegment::read_from_bytes(bytes).unwrap_or_default())
        }
        FieldKind::Bytes | FieldKind::Reserved => FieldValue::Bytes(bytes),
        kind => {
            let mut buf = [0u8; 8];
            if let Some(dst) = buf.get_mut(..bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            FieldValue::Int {
                value: u64::from_le_bytes(buf),
                kind,
                size: field.size,
            }
        }
    }
}

impl fmt::Display for FieldValue<'_> {
    /// Segments as `sel=… base=… limit=… attr=… description`; integers in hex with flag names
    /// in parentheses; byte arrays as hex, with runs of zero pairs elided by their offsets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FieldValue::Segment(s) => write!(f, "{s}"),
            FieldValue::Int { value, kind, .. } => {
                write!(f, "{value:#x}")?;
                match kind {
                    FieldKind::SevFeatures => {
                        write!(f, " ({})", FlagNames(SevFeatures::from_bits_retain(value)))
                    }
                    FieldKind::Efer => write!(f, " ({})", FlagNames(Efer::from_bits_retain(value))),
                    FieldKind::Cr0 => write!(f, " ({})", FlagNames(Cr0::from_bits_retain(value))),
                    FieldKind::Cr4 => write!(f, " ({})", FlagNames(Cr4::from_bits_retain(value))),
                    FieldKind::Rflags => {
                        write!(f, " ({})", FlagNames(Rflags::from_bits_retain(value)))
                    }
                    _ => Ok(()),
                }
            }
            FieldValue::Bytes(bytes) => {
                let mut first = true;
                for (i, chunk) in bytes.chunks(8).enumerate() {
                    if chunk.iter().all(|&b| b == 0) {
                        continue;
                    }
                    if !first {
                        f.write_str(" ")?;
                    }
                    first = false;
                    write!(f, "+{:#x}:", i * 8)?;
                    for b in chunk {
                        write!(f, "{b:02x}")?;
                    }
                }
                if first {
                    f.write_str("0")?;
                }
                Ok(())
            }
        }
    }
}

/// One field that differs between two VMSA pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDiff<'a> {
    /// The field.
    pub field: &'static Field,
    /// Its value in the first page.
    pub left: FieldValue<'a>,
    /// Its value in the second page.
    pub right: FieldValue<'a>,
}

/// The fields that differ between two pages, in offset order. Empty iff the pages are equal.
pub fn diff<'a>(left: &'a Vmsa, right: &'a Vmsa) -> impl Iterator<Item = FieldDiff<'a>> {
    let (l, r) = (left.as_page(), right.as_page());
    FIELDS
        .iter()
        .filter(move |f| field_bytes(l, f) != field_bytes(r, f))
        .map(move |f| FieldDiff {
            field: f,
            left: field_value(l, f),
            right: field_value(r, f),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_tile_the_page() {
        let mut next = 0;
        for f in FIELDS {
            assert_eq!(f.offset, next, "gap or overlap before {}", f.name);
            next += f.size;
        }
        assert_eq!(next, VMSA_SIZE);
    }

    #[test]
    fn diff_names_the_field() {
        let a = Vmsa::new_zeroed();
        let mut b = Vmsa::new_zeroed();
        b.rip = 0xfff0;
        b.reserved_670[5] = 1;
        let d: heapless_vec::Vec = diff(&a, &b).map(|d| d.field.name).collect();
        assert_eq!(d.0, ["rip", "reserved_670"]);
    }

    mod heapless_vec {
        /// Two names are all `diff_names_the_field` needs; no allocator in core's tests.
        #[derive(Default)]
        pub struct Vec(pub [&'static str; 2], usize);
        impl FromIterator<&'static str> for Vec {
            fn from_iter<I: IntoIterator<Item = &'static str>>(it: I) -> Self {
                let mut v = Vec::default();
                for s in it {
                    v.0[v.1] = s;
                    v.1 += 1;
                }
                v
            }
        }
    }

    #[test]
    fn display_segment() {
        let mut v = Vmsa::new_zeroed();
        v.cs = VmcbSegment::new(
            0xf000,
            crate::SegmentAttributes::CODE_16BIT_RESET,
            0xffff,
            0xffff_0000,
        );
        let mut buf = [0u8; 128];
        let s = fmt_into(
            &mut buf,
            format_args!("{}", v.field(Vmsa::field_named("cs").unwrap())),
        );
        assert_eq!(
            s,
            "sel=f000 base=ffff0000 limit=ffff attr=09b code,read,accessed,present,dpl0,16-bit"
        );
    }

    fn fmt_into<'b>(buf: &'b mut [u8], args: fmt::Arguments<'_>) -> &'b str {
        struct W<'b>(&'b mut [u8], usize);
        impl fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let end = self.1 + s.len();
                self.0
                    .get_mut(self.1..end)
                    .ok_or(fmt::Error)?
                    .copy_from_slice(s.as_bytes());
                self.1 = end;
                Ok(())
            }
        }
        let mut w = W(buf, 0);
        fmt::write(&mut w, args).unwrap();
        let n = w.1;
        core::str::from_utf8(&buf[..n]).unwrap()
    }
}
