//! Typed views of the variable headers, decoded from the raw records with every check that
//! needs only the header itself, the file and the platform table.
//!
//! Structures are `igvm_defs` 0.5 (`IGVM_VHS_*`), read by copy with zerocopy: a header body
//! is 8-byte aligned in the file but not necessarily in memory.

use super::error::{At, IgvmError, Section};
use super::fixed::Architecture;
use super::platform::Platforms;
use super::walk::RawHeader;
use igvm_defs::{
    IGVM_VHF_RELOCATABLE_REGION_APPLY_GDTR, IGVM_VHF_RELOCATABLE_REGION_APPLY_RIP,
    IGVM_VHF_RELOCATABLE_REGION_IS_VTL2, IGVM_VHS_CCA_POLICY, IGVM_VHS_CORIM_DATA,
    IGVM_VHS_ERROR_RANGE, IGVM_VHS_GUEST_POLICY, IGVM_VHS_PAGE_DATA,
    IGVM_VHS_PAGE_TABLE_RELOCATION, IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_AREA,
    IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_RELOCATABLE_REGION, IGVM_VHS_REQUIRED_MEMORY,
    IGVM_VHS_SNP_ID_BLOCK, IGVM_VHS_SUPPORTED_PLATFORM, IGVM_VHS_VBS_MEASUREMENT,
    IGVM_VHS_VP_CONTEXT, IGVM_VHT_OPTIONAL_BIT, IGVM_VHT_RANGE_DIRECTIVE, IGVM_VHT_RANGE_INIT,
    IGVM_VHT_RANGE_PLATFORM, IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType,
    IgvmPlatformType, IgvmVariableHeaderType as T, IgvmVpContextAArch64Cca, PAGE_SIZE_4K,
    VbsVpContextHeader, VbsVpContextRegister,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a 2 MiB large page (`IgvmPageDataFlags::is_2mb_page`).
pub const PAGE_SIZE_2M: u64 = 2 * 1024 * 1024;
/// A 4 KiB page, as `usize`.
pub const PAGE_4K: usize = PAGE_SIZE_4K as usize;

/// A decoded variable header and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Index and file offset.
    pub at: At,
    /// The header.
    pub header: Header<'a>,
}

/// One variable header, typed. File data is borrowed from the input, never copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Header<'a> {
    /// `SUPPORTED_PLATFORM` (0x1).
    SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM),
    /// `GUEST_POLICY` (0x101); for SNP the policy is the SNP guest policy.
    GuestPolicy(IGVM_VHS_GUEST_POLICY),
    /// `RELOCATABLE_REGION` (0x102).
    RelocatableRegion(IGVM_VHS_RELOCATABLE_REGION),
    /// `PAGE_TABLE_RELOCATION_REGION` (0x103).
    PageTableRelocation(IGVM_VHS_PAGE_TABLE_RELOCATION),
    /// `CORIM_DOCUMENT` (0x104) and its CBOR bytes.
    CorimDocument(Corim<'a>),
    /// `CORIM_SIGNATURE` (0x105) and its COSE_Sign1 bytes.
    CorimSignature(Corim<'a>),
    /// `CCA_POLICY` (0x106).
    CcaPolicy(IGVM_VHS_CCA_POLICY),
    /// `VERSION_STRING` (0x107).
    VersionString(&'a str),
    /// `PARAMETER_AREA` (0x301).
    ParameterArea(ParameterArea<'a>),
    /// `PAGE_DATA` (0x302).
    PageData(PageData<'a>),
    /// `PARAMETER_INSERT` (0x303): the area is inserted as unmeasured pages.
    ParameterInsert(IGVM_VHS_PARAMETER_INSERT),
    /// `VP_CONTEXT` (0x304).
    VpContext(VpContext<'a>),
    /// `REQUIRED_MEMORY` (0x305).
    RequiredMemory(IGVM_VHS_REQUIRED_MEMORY),
    /// A parameter usage (`VP_COUNT_PARAMETER`, `SRAT`, `MADT`, `MMIO_RANGES`, `MEMORY_MAP`,
    /// `COMMAND_LINE`, `SLIT`, `PPTT`, `DEVICE_TREE`, `ENVIRONMENT_INFO_PARAMETER`).
    Parameter(Parameter),
    /// `SNP_ID_BLOCK` (0x30B).
    SnpIdBlock(SnpIdBlock<'a>),
    /// `ERROR_RANGE` (0x30D).
    ErrorRange(IGVM_VHS_ERROR_RANGE),
    /// `VBS_MEASUREMENT` (0x311).
    VbsMeasurement(VbsMeasurement<'a>),
    /// A header of unknown type with the optional bit (bit 31) set: skipped, as the spec allows.
    Skipped(T),
}

impl Header<'_> {
    /// The header's type (for `Skipped`, the raw type with its optional bit).
    pub fn typ(&self) -> T {
        match self {
            Header::SupportedPlatform(_) => T::IGVM_VHT_SUPPORTED_PLATFORM,
            Header::GuestPolicy(_) => T::IGVM_VHT_GUEST_POLICY,
            Header::RelocatableRegion(_) => T::IGVM_VHT_RELOCATABLE_REGION,
            Header::PageTableRelocation(_) => T::IGVM_VHT_PAGE_TABLE_RELOCATION_REGION,
            Header::CorimDocument(_) => T::IGVM_VHT_CORIM_DOCUMENT,
            Header::CorimSignature(_) => T::IGVM_VHT_CORIM_SIGNATURE,
            Header::CcaPolicy(_) => T::IGVM_VHT_CCA_POLICY,
            Header::VersionString(_) => T::IGVM_VHT_VERSION_STRING,
            Header::ParameterArea(_) => T::IGVM_VHT_PARAMETER_AREA,
            Header::PageData(_) => T::IGVM_VHT_PAGE_DATA,
            Header::ParameterInsert(_) => T::IGVM_VHT_PARAMETER_INSERT,
            Header::VpContext(_) => T::IGVM_VHT_VP_CONTEXT,
            Header::RequiredMemory(_) => T::IGVM_VHT_REQUIRED_MEMORY,
            Header::Parameter(p) => p.kind,
            Header::SnpIdBlock(_) => T::IGVM_VHT_SNP_ID_BLOCK,
            Header::ErrorRange(_) => T::IGVM_VHT_ERROR_RANGE,
            Header::VbsMeasurement(_) => T::IGVM_VHT_VBS_MEASUREMENT,
            Header::Skipped(t) => *t,
        }
    }

    /// The compatibility mask, for headers that have one (parameter areas and parameter
    /// usages have none: they apply to every platform).
    pub fn compatibility_mask(&self) -> Option<u32> {
        Some(match self {
            Header::SupportedPlatform(p) => p.compatibility_mask,
            Header::GuestPolicy(p) => p.compatibility_mask,
            Header::RelocatableRegion(r) => r.compatibility_mask,
            Header::PageTableRelocation(r) => r.compatibility_mask,
            Header::CorimDocument(c) | Header::CorimSignature(c) => c.compatibility_mask,
            Header::CcaPolicy(p) => p.compatibility_mask,
            Header::PageData(p) => p.compatibility_mask,
            Header::ParameterInsert(p) => p.compatibility_mask,
            Header::VpContext(v) => v.compatibility_mask,
            Header::RequiredMemory(r) => r.compatibility_mask,
            Header::SnpIdBlock(b) => b.compatibility_mask(),
            Header::ErrorRange(e) => e.compatibility_mask,
            Header::VbsMeasurement(m) => m.compatibility_mask(),
            Header::VersionString(_)
            | Header::ParameterArea(_)
            | Header::Parameter(_)
            | Header::Skipped(_) => return None,
        })
    }

    /// Whether the header applies to the platform with compatibility mask `mask`.
    pub fn applies_to(&self, mask: u32) -> bool {
        self.compatibility_mask().is_none_or(|m| m & mask != 0)
    }
}

/// Which section a header type belongs to, from its type range (optional bit ignored).
pub fn section_of(typ: T) -> Option<Section> {
    let base = typ.0 & !IGVM_VHT_OPTIONAL_BIT;
    if IGVM_VHT_RANGE_PLATFORM.contains(&base) {
        Some(Section::Platform)
    } else if IGVM_VHT_RANGE_INIT.contains(&base) {
        Some(Section::Initialization)
    } else if IGVM_VHT_RANGE_DIRECTIVE.contains(&base) {
        Some(Section::Directive)
    } else {
        None
    }
}

/// A CoRIM document or signature header and its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corim<'a> {
    /// Compatibility mask.
    pub compatibility_mask: u32,
    /// The payload (empty when `file_offset` is 0).
    pub data: &'a [u8],
}

/// `PARAMETER_AREA`: a buffer the loader fills with parameters, inserted later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterArea<'a> {
    /// Size of the area (a multiple of 4 KiB).
    pub number_of_bytes: u64,
    /// Index used by parameters and the insert.
    pub parameter_area_index: u32,
    /// Initial contents (`number_of_bytes` long), `None` for zeros (`file_offset` 0).
    pub initial_data: Option<&'a [u8]>,
}

/// `PAGE_DATA`: one page loaded into the guest, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageData<'a> {
    /// Guest physical address (4 KiB aligned, 2 MiB for a large page).
    pub gpa: u64,
    /// Platforms it applies to.
    pub compatibility_mask: u32,
    /// `is_2mb_page`, `unmeasured`, `shared`.
    pub flags: IgvmPageDataFlags,
    /// NORMAL, SECRETS, CPUID_DATA or CPUID_XF.
    pub data_type: IgvmPageDataType,
    /// The 4 KiB of file data, or `None` for a page of zeros (`file_offset` 0), which the
    /// spec says to load as a normal measured page of zeros. As `igvm` 0.5 and QEMU do, the
    /// file data of a 2 MiB page is its first 4 KiB; the rest is zero.
    pub data: Option<&'a [u8; PAGE_4K]>,
}

impl PageData<'_> {
    /// Bytes of guest memory the page covers (4 KiB or 2 MiB).
    pub fn size(&self) -> u64 {
        if self.flags.is_2mb_page() {
            PAGE_SIZE_2M
        } else {
            PAGE_SIZE_4K
        }
    }
}

/// A parameter usage: the loader writes runtime information at `byte_offset` of an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameter {
    /// Which parameter (`IGVM_VHT_VP_COUNT_PARAMETER`, `IGVM_VHT_MEMORY_MAP`...).
    pub kind: T,
    /// Area and offset.
    pub parameter: IGVM_VHS_PARAMETER,
}

impl Parameter {
    /// The smallest number of bytes the loader writes for this kind: 4 for the VP count and
    /// environment info (`u32`), 32 for `IGVM_VHS_MMIO_RANGES`, 24 for one memory map entry,
    /// 1 for the variable-size ones (tables, command line, device tree).
    pub fn min_size(&self) -> u32 {
        match self.kind {
            T::IGVM_VHT_VP_COUNT_PARAMETER | T::IGVM_VHT_ENVIRONMENT_INFO_PARAMETER => 4,
            T::IGVM_VHT_MMIO_RANGES => size_of::<igvm_defs::IGVM_VHS_MMIO_RANGES>() as u32,
            T::IGVM_VHT_MEMORY_MAP => size_of::<igvm_defs::IGVM_VHS_MEMORY_MAP_ENTRY>() as u32,
            _ => 1,
        }
    }
}

/// `SNP_ID_BLOCK`, borrowed; [`SnpIdBlock::get`] copies the 696-byte structure out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpIdBlock<'a>(&'a [u8; size_of::<IGVM_VHS_SNP_ID_BLOCK>()]);

impl SnpIdBlock<'_> {
    /// The structure.
    pub fn get(&self) -> IGVM_VHS_SNP_ID_BLOCK {
        zerocopy::transmute!(*self.0)
    }
    /// Compatibility mask.
    pub fn compatibility_mask(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
    /// The expected launch digest `ld` (SHA-384) the ID block signs.
    pub fn ld(&self) -> [u8; 48] {
        self.get().ld
    }
}

/// `VBS_MEASUREMENT`, borrowed; [`VbsMeasurement::get`] copies the 864-byte structure out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VbsMeasurement<'a>(&'a [u8; size_of::<IGVM_VHS_VBS_MEASUREMENT>()]);

impl VbsMeasurement<'_> {
    /// The structure.
    pub fn get(&self) -> IGVM_VHS_VBS_MEASUREMENT {
        zerocopy::transmute!(*self.0)
    }
    /// Compatibility mask.
    pub fn compatibility_mask(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

/// `VP_CONTEXT`: the initial register state of one VP on one platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpContext<'a> {
    /// For SEV-ES and SNP, where the VMSA goes; 0 for the other platforms.
    pub gpa: u64,
    /// The single platform it belongs to.
    pub compatibility_mask: u32,
    /// The VP (vCPU) index.
    pub vp_index: u16,
    /// The platform type of `compatibility_mask`.
    pub platform: IgvmPlatformType,
    /// The context itself.
    pub data: VpContextData<'a>,
}

/// The file data of a VP context, by platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpContextData<'a> {
    /// SEV-ES and SNP: a 4 KiB SEV VMSA page (Linux `struct sev_es_save_area`, zero-padded).
    Vmsa(&'a [u8; PAGE_4K]),
    /// Native and SEV: `IgvmNativeVpContextX64` (232 bytes, the rest of the page zero).
    NativeX64(NativeX64Context<'a>),
    /// VBS: a register list for VP 0 at one VTL.
    Vbs(VbsContext<'a>),
    /// Arm CCA: `IgvmVpContextAArch64Cca` (80 bytes, the rest of the page zero).
    Cca(CcaContext<'a>),
}

/// A native x64 context, borrowed; [`NativeX64Context::get`] copies it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeX64Context<'a>(&'a [u8; size_of::<IgvmNativeVpContextX64>()]);

impl NativeX64Context<'_> {
    /// The structure.
    pub fn get(&self) -> IgvmNativeVpContextX64 {
        zerocopy::transmute!(*self.0)
    }
}

/// A CCA context, borrowed; [`CcaContext::get`] copies it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcaContext<'a>(&'a [u8; size_of::<IgvmVpContextAArch64Cca>()]);

impl CcaContext<'_> {
    /// The structure.
    pub fn get(&self) -> IgvmVpContextAArch64Cca {
        zerocopy::transmute!(*self.0)
    }
}

/// The first `N` bytes of a page whose other bytes must be zero.
fn page_prefix<const N: usize>(at: At, page: &[u8]) -> Result<&[u8; N], IgvmError> {
    let (used, rest) = page
        .split_at_checked(N)
        .ok_or(IgvmError::MissingFileData { at })?;
    if rest.iter().any(|&b| b != 0) {
        return Err(IgvmError::VpContextTrailingBytes { at, used: N as u32 });
    }
    <&[u8; N]>::try_from(used).map_err(|_| IgvmError::MissingFileData { at })
}

/// A VBS register list (`VbsVpContextHeader` then `register_count` × 32-byte registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VbsContext<'a> {
    /// The VTL all registers belong to.
    pub vtl: u8,
    registers: &'a [u8],
}

impl<'a> VbsContext<'a> {
    /// Number of registers.
    pub fn len(&self) -> usize {
        self.registers.len() / size_of::<VbsVpContextRegister>()
    }
    /// Whether there are none (never, for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.registers.is_empty()
    }
    /// The registers, in file order.
    pub fn registers(&self) -> impl Iterator<Item = VbsVpContextRegister> + 'a {
        self.registers
            .chunks_exact(size_of::<VbsVpContextRegister>())
            .filter_map(|c| VbsVpContextRegister::read_from_bytes(c).ok())
    }
}

/// What decoding needs besides the header: the file, where its data starts, the
/// architecture, and the platforms declared so far.
#[derive(Clone, Copy)]
pub(crate) struct Context<'f, 'a> {
    pub file: &'a [u8],
    pub data_start: u32,
    pub arch: Architecture,
    pub platforms: &'f Platforms,
}

impl<'a> Context<'_, 'a> {
    /// `size` bytes of file data at `file_offset`, which must lie in the data section.
    fn file_data(&self, at: At, file_offset: u32, size: u64) -> Result<&'a [u8], IgvmError> {
        let bad = IgvmError::FileDataOutOfRange {
            at,
            file_offset,
            size,
            data_start: self.data_start,
            file_len: self.file.len(),
        };
        if file_offset < self.data_start {
            return Err(bad);
        }
        let start = file_offset as usize;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .ok_or(bad)?;
        self.file.get(start..end).ok_or(bad)
    }

    /// Optional file data: `None` for `file_offset` 0.
    fn optional_data(
        &self,
        at: At,
        file_offset: u32,
        size: u64,
    ) -> Result<Option<&'a [u8]>, IgvmError> {
        if file_offset == 0 {
            Ok(None)
        } else {
            self.file_data(at, file_offset, size).map(Some)
        }
    }

    /// A declared, non-zero compatibility mask.
    fn mask(&self, at: At, mask: u32) -> Result<u32, IgvmError> {
        let declared = self.platforms.declared_mask();
        if mask == 0 || mask & !declared != 0 {
            return Err(IgvmError::UndeclaredMask { at, mask, declared });
        }
        Ok(mask)
    }
}

/// Reads a structure that must be exactly the body.
fn exact<S: FromBytes + KnownLayout + Immutable>(raw: &RawHeader<'_>) -> Result<S, IgvmError> {
    S::read_from_bytes(raw.body).map_err(|_| IgvmError::WrongHeaderLength {
        at: raw.at,
        typ: raw.typ.0,
        expected: size_of::<S>() as u32,
        actual: raw.body.len() as u32,
    })
}

fn aligned(at: At, field: &'static str, value: u64, alignment: u64) -> Result<(), IgvmError> {
    if value % alignment == 0 {
        Ok(())
    } else {
        Err(IgvmError::Unaligned {
            at,
            field,
            value,
            alignment,
        })
    }
}

fn reserved_zero<R: IntoBytes + Immutable>(
    at: At,
    field: &'static str,
    r: &R,
) -> Result<(), IgvmError> {
    if r.as_bytes().iter().all(|&b| b == 0) {
        Ok(())
    } else {
        Err(IgvmError::ReservedNotZero { at, field })
    }
}

fn vtl(at: At, field: &'static str, vtl: u8) -> Result<(), IgvmError> {
    if vtl <= 2 {
        Ok(())
    } else {
        Err(IgvmError::InvalidField {
            at,
            field,
            value: vtl.into(),
        })
    }
}

/// A non-empty GPA range that does not wrap.
fn range(at: At, field: &'static str, gpa: u64, size: u64) -> Result<(), IgvmError> {
    if size == 0 || gpa.checked_add(size).is_none() {
        return Err(IgvmError::InvalidField {
            at,
            field,
            value: size,
        });
    }
    Ok(())
}

/// Decodes one header, checking everything that does not need state from earlier headers
/// other than the platform table.
pub(crate) fn decode<'a>(
    raw: &RawHeader<'a>,
    cx: &Context<'_, 'a>,
) -> Result<Header<'a>, IgvmError> {
    let at = raw.at;
    let base = T(raw.typ.0 & !IGVM_VHT_OPTIONAL_BIT);
    Ok(match base {
        T::IGVM_VHT_SUPPORTED_PLATFORM => Header::SupportedPlatform(exact(raw)?),
        T::IGVM_VHT_GUEST_POLICY => {
            let p: IGVM_VHS_GUEST_POLICY = exact(raw)?;
            cx.mask(at, p.compatibility_mask)?;
            reserved_zero(at, "reserved", &p.reserved)?;
            Header::GuestPolicy(p)
        }
        T::IGVM_VHT_RELOCATABLE_REGION => {
            let r: IGVM_VHS_RELOCATABLE_REGION = exact(raw)?;
            cx.mask(at, r.compatibility_mask)?;
            let known = IGVM_VHF_RELOCATABLE_REGION_IS_VTL2
                | IGVM_VHF_RELOCATABLE_REGION_APPLY_RIP
                | IGVM_VHF_RELOCATABLE_REGION_APPLY_GDTR;
            if r.flags & !known != 0 {
                return Err(IgvmError::UnknownFlags {
                    at,
                    field: "flags",
                    value: (r.flags & !known).into(),
                });
            }
            vtl(at, "vtl", r.vtl)?;
            // `igvm` 0.5 divides by the alignment without checking it (panic on 0).
            if r.relocation_alignment == 0 || r.relocation_alignment % PAGE_SIZE_4K != 0 {
                return Err(IgvmError::InvalidField {
                    at,
                    field: "relocation_alignment (a non-zero multiple of 4 KiB)",
                    value: r.relocation_alignment,
                });
            }
            aligned(
                at,
                "relocation_region_size",
                r.relocation_region_size,
                PAGE_SIZE_4K,
            )?;
            let a = r.relocation_alignment;
            aligned(at, "relocation_region_gpa", r.relocation_region_gpa, a)?;
            aligned(at, "minimum_relocation_gpa", r.minimum_relocation_gpa, a)?;
            aligned(at, "maximum_relocation_gpa", r.maximum_relocation_gpa, a)?;
            range(
                at,
                "relocation_region_size",
                r.relocation_region_gpa,
                r.relocation_region_size,
            )?;
            Header::RelocatableRegion(r)
        }
        T::IGVM_VHT_PAGE_TABLE_RELOCATION_REGION => {
            let r: IGVM_VHS_PAGE_TABLE_RELOCATION = exact(raw)?;
            cx.mask(at, r.compatibility_mask)?;
            reserved_zero(at, "reserved", &r.reserved)?;
            vtl(at, "vtl", r.vtl)?;
            aligned(at, "gpa", r.gpa, PAGE_SIZE_4K)?;
            aligned(at, "size", r.size, PAGE_SIZE_4K)?;
            aligned(at, "used_size", r.used_size, PAGE_SIZE_4K)?;
            range(at, "size", r.gpa, r.size)?;
            if r.used_size > r.size {
                return Err(IgvmError::InvalidField {
                    at,
                    field: "used_size (greater than size)",
                    value: r.used_size,
                });
            }
            Header::PageTableRelocation(r)
        }
        T::IGVM_VHT_CORIM_DOCUMENT | T::IGVM_VHT_CORIM_SIGNATURE => {
            let c: IGVM_VHS_CORIM_DATA = exact(raw)?;
            cx.mask(at, c.compatibility_mask)?;
            reserved_zero(at, "reserved", &c.reserved)?;
            let data = cx
                .optional_data(at, c.file_offset, c.size_bytes.into())?
                .unwrap_or(&[]);
            let corim = Corim {
                compatibility_mask: c.compatibility_mask,
                data,
            };
            if base == T::IGVM_VHT_CORIM_DOCUMENT {
                Header::CorimDocument(corim)
            } else {
                Header::CorimSignature(corim)
            }
        }
        T::IGVM_VHT_CCA_POLICY => {
            let p: IGVM_VHS_CCA_POLICY = exact(raw)?;
            cx.mask(at, p.compatibility_mask)?;
            reserved_zero(at, "reserved", &p.reserved)?;
            reserved_zero(at, "reserved2", &p.reserved2)?;
            if cx.arch != Architecture::AArch64 {
                return Err(IgvmError::WrongArchitecture {
                    at,
                    typ: base.0,
                    arch: cx.arch.name(),
                });
            }
            if !cx
                .platforms
                .all_of_type(p.compatibility_mask, IgvmPlatformType::CCA)
            {
                return Err(IgvmError::InvalidField {
                    at,
                    field: "compatibility_mask (must name CCA platforms only)",
                    value: p.compatibility_mask.into(),
                });
            }
            let conflict = p.attributes_required_zeroes & p.attributes_required_ones;
            if conflict != 0 {
                return Err(IgvmError::InvalidField {
                    at,
                    field: "attributes_required_zeroes & attributes_required_ones",
                    value: conflict,
                });
            }
            Header::CcaPolicy(p)
        }
        T::IGVM_VHT_VERSION_STRING => Header::VersionString(
            core::str::from_utf8(raw.body).map_err(|_| IgvmError::VersionStringNotUtf8 { at })?,
        ),
        T::IGVM_VHT_PARAMETER_AREA => {
            let p: IGVM_VHS_PARAMETER_AREA = exact(raw)?;
            aligned(at, "number_of_bytes", p.number_of_bytes, PAGE_SIZE_4K)?;
            let initial_data = cx.optional_data(at, p.file_offset, p.number_of_bytes)?;
            Header::ParameterArea(ParameterArea {
                number_of_bytes: p.number_of_bytes,
                parameter_area_index: p.parameter_area_index,
                initial_data,
            })
        }
        T::IGVM_VHT_PAGE_DATA => {
            let p: IGVM_VHS_PAGE_DATA = exact(raw)?;
            cx.mask(at, p.compatibility_mask)?;
            reserved_zero(at, "reserved", &p.reserved)?;
            if p.flags.reserved() != 0 {
                let value = u64::from(p.flags.into_bits() & !0b111);
                return Err(IgvmError::UnknownFlags {
                    at,
                    field: "flags",
                    value,
                });
            }
            match p.data_type {
                IgvmPageDataType::NORMAL
                | IgvmPageDataType::SECRETS
                | IgvmPageDataType::CPUID_DATA
                | IgvmPageDataType::CPUID_XF => {}
                other => return Err(IgvmError::UnknownPageDataType { at, value: other.0 }),
            }
            let page = if p.flags.is_2mb_page() {
                PAGE_SIZE_2M
            } else {
                PAGE_SIZE_4K
            };
            aligned(at, "gpa", p.gpa, page)?;
            let data = match cx.optional_data(at, p.file_offset, PAGE_SIZE_4K)? {
                Some(d) => Some(
                    <&[u8; PAGE_4K]>::try_from(d).map_err(|_| IgvmError::MissingFileData { at })?,
                ),
                None => None,
            };
            Header::PageData(PageData {
                gpa: p.gpa,
                compatibility_mask: p.compatibility_mask,
                flags: p.flags,
                data_type: p.data_type,
                data,
            })
        }
        T::IGVM_VHT_PARAMETER_INSERT => {
            let p: IGVM_VHS_PARAMETER_INSERT = exact(raw)?;
            cx.mask(at, p.compatibility_mask)?;
            aligned(at, "gpa", p.gpa, PAGE_SIZE_4K)?;
            Header::ParameterInsert(p)
        }
        T::IGVM_VHT_VP_CONTEXT => Header::VpContext(vp_context(raw, cx)?),
        T::IGVM_VHT_REQUIRED_MEMORY => {
            let r: IGVM_VHS_REQUIRED_MEMORY = exact(raw)?;
            cx.mask(at, r.compatibility_mask)?;
            reserved_zero(at, "reserved", &r.reserved)?;
            if r.flags.reserved() != 0 {
                let value = u64::from(r.flags.into_bits() & !1);
                return Err(IgvmError::UnknownFlags {
                    at,
                    field: "flags",
                    value,
                });
            }
            aligned(at, "gpa", r.gpa, PAGE_SIZE_4K)?;
            aligned(
                at,
                "number_of_bytes",
                r.number_of_bytes.into(),
                PAGE_SIZE_4K,
            )?;
            Header::RequiredMemory(r)
        }
        T::IGVM_VHT_VP_COUNT_PARAMETER
        | T::IGVM_VHT_SRAT
        | T::IGVM_VHT_MADT
        | T::IGVM_VHT_MMIO_RANGES
        | T::IGVM_VHT_MEMORY_MAP
        | T::IGVM_VHT_COMMAND_LINE
        | T::IGVM_VHT_SLIT
        | T::IGVM_VHT_PPTT
        | T::IGVM_VHT_DEVICE_TREE
        | T::IGVM_VHT_ENVIRONMENT_INFO_PARAMETER => Header::Parameter(Parameter {
            kind: base,
            parameter: exact(raw)?,
        }),
        T::IGVM_VHT_SNP_ID_BLOCK => {
            let bytes =
                <&[u8; size_of::<IGVM_VHS_SNP_ID_BLOCK>()]>::try_from(raw.body).map_err(|_| {
                    IgvmError::WrongHeaderLength {
                        at,
                        typ: base.0,
                        expected: size_of::<IGVM_VHS_SNP_ID_BLOCK>() as u32,
                        actual: raw.body.len() as u32,
                    }
                })?;
            let block = SnpIdBlock(bytes);
            let b = block.get();
            cx.mask(at, b.compatibility_mask)?;
            reserved_zero(at, "reserved", &b.reserved)?;
            if b.author_key_enabled > 1 {
                return Err(IgvmError::InvalidField {
                    at,
                    field: "author_key_enabled",
                    value: b.author_key_enabled.into(),
                });
            }
            Header::SnpIdBlock(block)
        }
        T::IGVM_VHT_ERROR_RANGE => {
            let e: IGVM_VHS_ERROR_RANGE = exact(raw)?;
            cx.mask(at, e.compatibility_mask)?;
            aligned(at, "gpa", e.gpa, PAGE_SIZE_4K)?;
            aligned(at, "size_bytes", e.size_bytes.into(), PAGE_SIZE_4K)?;
            Header::ErrorRange(e)
        }
        T::IGVM_VHT_VBS_MEASUREMENT => {
            let bytes = <&[u8; size_of::<IGVM_VHS_VBS_MEASUREMENT>()]>::try_from(raw.body)
                .map_err(|_| IgvmError::WrongHeaderLength {
                    at,
                    typ: base.0,
                    expected: size_of::<IGVM_VHS_VBS_MEASUREMENT>() as u32,
                    actual: raw.body.len() as u32,
                })?;
            let m = VbsMeasurement(bytes);
            cx.mask(at, m.compatibility_mask())?;
            Header::VbsMeasurement(m)
        }
        _ if raw.typ.0 & IGVM_VHT_OPTIONAL_BIT != 0 => Header::Skipped(raw.typ),
        _ => return Err(IgvmError::UnknownHeaderType { at, typ: raw.typ.0 }),
    })
}

/// Decodes a `VP_CONTEXT`: its platform (by exact mask, as `igvm` 0.5 and QEMU do), the GPA
/// rule of that platform, and its file data.
fn vp_context<'a>(raw: &RawHeader<'a>, cx: &Context<'_, 'a>) -> Result<VpContext<'a>, IgvmError> {
    let at = raw.at;
    let h: IGVM_VHS_VP_CONTEXT = exact(raw)?;
    reserved_zero(at, "reserved", &h.reserved)?;
    let mask = h.compatibility_mask;
    let platform = cx
        .platforms
        .type_of_mask(mask)
        .ok_or(IgvmError::VpContextMask { at, mask })?;
    let gpa = h.gpa.get();
    if h.file_offset == 0 {
        return Err(IgvmError::MissingFileData { at });
    }
    let x64_only = |data| {
        if cx.arch == Architecture::X64 {
            Ok(data)
        } else {
            Err(IgvmError::WrongArchitecture {
                at,
                typ: T::IGVM_VHT_VP_CONTEXT.0,
                arch: cx.arch.name(),
            })
        }
    };
    let gpa_zero = || {
        if gpa == 0 {
            Ok(())
        } else {
            Err(IgvmError::InvalidField {
                at,
                field: "gpa (must be 0 for this platform)",
                value: gpa,
            })
        }
    };
    let data = match platform {
        IgvmPlatformType::SEV_SNP | IgvmPlatformType::SEV_ES => {
            aligned(at, "gpa", gpa, PAGE_SIZE_4K)?;
            let page = cx.file_data(at, h.file_offset, PAGE_SIZE_4K)?;
            let page =
                <&[u8; PAGE_4K]>::try_from(page).map_err(|_| IgvmError::MissingFileData { at })?;
            x64_only(VpContextData::Vmsa(page))?
        }
        IgvmPlatformType::NATIVE | IgvmPlatformType::SEV => {
            gpa_zero()?;
            let page = cx.file_data(at, h.file_offset, PAGE_SIZE_4K)?;
            x64_only(VpContextData::NativeX64(NativeX64Context(page_prefix(
                at, page,
            )?)))?
        }
        IgvmPlatformType::CCA => {
            gpa_zero()?;
            if cx.arch != Architecture::AArch64 {
                return Err(IgvmError::WrongArchitecture {
                    at,
                    typ: T::IGVM_VHT_VP_CONTEXT.0,
                    arch: cx.arch.name(),
                });
            }
            let page = cx.file_data(at, h.file_offset, PAGE_SIZE_4K)?;
            VpContextData::Cca(CcaContext(page_prefix(at, page)?))
        }
        IgvmPlatformType::VSM_ISOLATION => {
            gpa_zero()?;
            VpContextData::Vbs(vbs_context(at, h, cx)?)
        }
        // TDX has an architectural reset state: a VP context is invalid (igvm_defs docs).
        _ => return Err(IgvmError::VpContextMask { at, mask }),
    };
    Ok(VpContext {
        gpa,
        compatibility_mask: mask,
        vp_index: h.vp_index,
        platform,
        data,
    })
}

/// A VBS register list. `igvm` 0.5 asserts (panics) on a VP index other than 0 and on mixed
/// VTLs; here they are errors.
fn vbs_context<'a>(
    at: At,
    h: IGVM_VHS_VP_CONTEXT,
    cx: &Context<'_, 'a>,
) -> Result<VbsContext<'a>, IgvmError> {
    if h.vp_index != 0 {
        return Err(IgvmError::InvalidField {
            at,
            field: "vp_index (VBS contexts are for VP 0)",
            value: h.vp_index.into(),
        });
    }
    let head = cx.file_data(at, h.file_offset, size_of::<VbsVpContextHeader>() as u64)?;
    let count = VbsVpContextHeader::read_from_bytes(head)
        .map_err(|_| IgvmError::MissingFileData { at })?
        .register_count;
    if count == 0 {
        return Err(IgvmError::InvalidField {
            at,
            field: "register_count",
            value: 0,
        });
    }
    let size = u64::from(count) * size_of::<VbsVpContextRegister>() as u64;
    let regs_offset = h
        .file_offset
        .checked_add(size_of::<VbsVpContextHeader>() as u32)
        .ok_or(IgvmError::FileDataOutOfRange {
            at,
            file_offset: h.file_offset,
            size,
            data_start: cx.data_start,
            file_len: cx.file.len(),
        })?;
    let registers = cx.file_data(at, regs_offset, size)?;
    let mut vtl_seen = None;
    for reg in registers.chunks_exact(size_of::<VbsVpContextRegister>()) {
        let reg = VbsVpContextRegister::read_from_bytes(reg)
            .map_err(|_| IgvmError::MissingFileData { at })?;
        vtl(at, "register vtl", reg.vtl)?;
        if *vtl_seen.get_or_insert(reg.vtl) != reg.vtl {
            return Err(IgvmError::InvalidField {
                at,
                field: "register vtl (all registers must share one VTL)",
                value: reg.vtl.into(),
            });
        }
        reserved_zero(at, "register mbz", &reg.mbz)?;
    }
    Ok(VbsContext {
        vtl: vtl_seen.unwrap_or(0),
        registers,
    })
}
