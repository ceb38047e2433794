//! IGVM files: a `no_std`, allocation-free, panic-free reader, and VP contexts as launch VMSAs.
//!
//! IGVM (Independent Guest Virtual Machine, `microsoft/igvm`) is how firmware tooling
//! (coconut-svsm, OpenVMM, QEMU's `igvm-cfg`) hands a VMM the initial guest state. The
//! on-disk structures are those of the `igvm_defs` 0.5 crate.
//!
//! [`IgvmFile::parse`] checks the whole file once — fixed header, CRC-32, every variable
//! header with bounds, alignment, reserved fields, file-data references, section order,
//! parameter-area life cycle and relocation regions — and refuses it with a typed
//! [`IgvmError`] naming the header index and file offset. After that the iterators
//! ([`IgvmFile::headers`], [`IgvmFile::directives`], [`IgvmFile::vp_contexts`]) borrow from the
//! input and never fail.
//!
//! ```
//! use vmsa_core::igvm::{IgvmFile, PlatformChoice, Header};
//! # fn demo(bytes: &[u8]) -> Result<(), vmsa_core::igvm::IgvmError> {
//! let file = IgvmFile::parse(bytes)?;
//! let platform = file.select(PlatformChoice::Strongest)?;
//! for entry in file.directives(platform.compatibility_mask) {
//!     if let Header::PageData(page) = entry.header {
//!         let _ = (page.gpa, page.data_type, page.flags, page.data);
//!     }
//! }
//! # Ok(()) }
//! # assert!(IgvmFile::parse(b"not igvm").is_err());
//! ```
//!
//! # What a launch digest needs (issue 5)
//!
//! Everything a launch measurement consumes is reachable in file order without allocation:
//! - the selected platform's mask: [`IgvmFile::select`] → [`Platform::compatibility_mask`];
//! - [`IgvmFile::directives`]`(mask)` yields, in file order, only the directives for that
//!   platform (plus the mask-less parameter headers):
//!   - [`Header::PageData`]: `gpa`, `data_type`, `flags` (`unmeasured`, `shared`,
//!     `is_2mb_page`) and `data: Option<&[u8; 4096]>` (`None` = a normal page of zeros);
//!   - [`Header::ParameterArea`] / [`Header::ParameterInsert`]: area size and the GPA where
//!     it is inserted (as unmeasured pages);
//!   - [`Header::VpContext`]: `vp_index`, `gpa` and, for SEV-ES/SNP,
//!     [`VpContextData::Vmsa`] with the 4 KiB VMSA bytes;
//!   - [`Header::SnpIdBlock`]: [`SnpIdBlock::ld`] and the whole block.
//! - [`IgvmFile::initializations`]`(mask)` gives the guest policy.
//!
//! # Differences from `igvm` 0.5 `IgvmFile::new_from_binary`
//!
//! On every file `igvm` accepts and that follows the spec, both readers see the same headers
//! (checked by `tests/igvm_vs_crate.rs`). This reader also:
//! - never panics (igvm 0.5 panics when `variable_header_offset + variable_header_size`
//!   overflows, on a relocation alignment of 0, and on a file offset inside the headers);
//! - honours the optional bit (bit 31): an unknown optional header is skipped and reported
//!   as [`Header::Skipped`]; igvm refuses it;
//! - accepts a file with an empty data section (igvm refuses files it writes itself);
//! - additionally refuses: non-zero padding, masks naming undeclared platforms, parameters
//!   that do not fit their area, two ID blocks for one platform, non-zero reserved fields of
//!   VP contexts and ID blocks, and a non-zero VP context GPA for non-SEV-ES platforms.

mod check;
pub mod error;
pub mod fixed;
pub mod header;
pub mod load;
pub mod platform;
pub mod walk;

pub use check::{MAX_PARAMETER_AREAS, MAX_REGIONS};
pub use error::{At, IgvmError, ParameterAreaProblem, Section, header_type_name};
pub use fixed::{Architecture, FixedHeader};
pub use header::{
    CcaContext, Corim, Entry, Header, NativeX64Context, PageData, Parameter, ParameterArea,
    SnpIdBlock, VbsContext, VbsMeasurement, VpContext, VpContextData,
};
/// The on-disk IGVM definitions this module reads (`igvm_defs` 0.5).
pub use igvm_defs;
pub use platform::{Platform, PlatformChoice, Platforms, platform_from_name, platform_name};

use header::{Context, decode, section_of};
use igvm_defs::IgvmPlatformType;
use walk::RawHeaders;

/// A checked IGVM file, borrowing the input bytes.
#[derive(Debug, Clone)]
pub struct IgvmFile<'a> {
    file: &'a [u8],
    fixed: FixedHeader,
    platforms: Platforms,
    header_count: u32,
    skipped: u32,
}

impl<'a> IgvmFile<'a> {
    /// Checks a whole IGVM file. See the module docs for what is checked.
    pub fn parse(file: &'a [u8]) -> Result<Self, IgvmError> {
        let fixed = FixedHeader::parse(file)?;
        let mut this = IgvmFile {
            file,
            fixed,
            platforms: Platforms::default(),
            header_count: 0,
            skipped: 0,
        };
        let mut state = check::State::default();
        let mut stage = Section::Platform;
        for raw in RawHeaders::new(this.variable_section(), fixed.variable_header_offset) {
            let raw = raw?;
            this.header_count = this.header_count.saturating_add(1);
            let cx = this.context();
            let header = decode(&raw, &cx)?;
            if let Header::Skipped(_) = header {
                this.skipped = this.skipped.saturating_add(1);
                continue;
            }
            if let Some(section) = section_of(raw.typ) {
                if section < stage {
                    return Err(IgvmError::OutOfOrder {
                        at: raw.at,
                        typ: raw.typ.0,
                        section,
                        after: stage,
                    });
                }
                stage = section;
            }
            if let Header::SupportedPlatform(p) = &header {
                this.platforms.add(raw.at, p, fixed.architecture)?;
            }
            state.observe(&Entry { at: raw.at, header })?;
        }
        if this.platforms.as_slice().is_empty() {
            return Err(IgvmError::NoPlatform);
        }
        for region in &state.regions {
            let found = this.headers().any(|e| match e.header {
                Header::VpContext(vp) => {
                    vp.vp_index == region.vp_index
                        && vp.compatibility_mask & region.mask != 0
                        && match vp.data {
                            VpContextData::Vbs(v) => v.vtl == region.vtl,
                            // Every other context is VTL 0's (the igvm crate reads them so);
                            // a region naming VTL 2 has none of those.
                            _ => region.vtl == 0,
                        }
                }
                _ => false,
            });
            if !found {
                return Err(IgvmError::NoMatchingVpContext {
                    at: region.at,
                    vp_index: region.vp_index,
                    vtl: region.vtl,
                });
            }
        }
        Ok(this)
    }

    fn variable_section(&self) -> &'a [u8] {
        let start = self.fixed.variable_header_offset as usize;
        self.file
            .get(start..self.fixed.data_start() as usize)
            .unwrap_or(&[])
    }

    fn context(&self) -> Context<'_, 'a> {
        Context {
            file: self.file,
            data_start: self.fixed.data_start(),
            arch: self.fixed.architecture,
            platforms: &self.platforms,
        }
    }

    /// The input bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.file
    }

    /// The fixed header.
    pub fn fixed_header(&self) -> &FixedHeader {
        &self.fixed
    }

    /// Number of variable headers, skipped ones included.
    pub fn header_count(&self) -> u32 {
        self.header_count
    }

    /// Number of unknown optional headers that were skipped.
    pub fn skipped_count(&self) -> u32 {
        self.skipped
    }

    /// The declared platforms, in file order.
    pub fn platforms(&self) -> &[Platform] {
        self.platforms.as_slice()
    }

    /// Picks the platform to load: the strongest QEMU can launch, or a named one.
    pub fn select(&self, choice: PlatformChoice) -> Result<Platform, IgvmError> {
        self.platforms.select(choice)
    }

    /// The platform of type `t`, if declared.
    pub fn platform(&self, t: IgvmPlatformType) -> Option<Platform> {
        self.platforms.of_type(t).copied()
    }

    /// Every header in file order, skipped ones included.
    pub fn headers(&self) -> Headers<'_, 'a> {
        Headers {
            file: self,
            raw: RawHeaders::new(self.variable_section(), self.fixed.variable_header_offset),
        }
    }

    /// The initialization headers that apply to the platform with mask `mask`, in file order.
    pub fn initializations(&self, mask: u32) -> impl Iterator<Item = Entry<'a>> + '_ {
        self.headers().filter(move |e| {
            section_of(e.header.typ()) == Some(Section::Initialization)
                && !matches!(e.header, Header::Skipped(_))
                && e.header.applies_to(mask)
        })
    }

    /// The directives that apply to the platform with mask `mask`, in file order. Parameter
    /// areas and parameter usages have no mask and are always included (as `igvm` 0.5 does).
    pub fn directives(&self, mask: u32) -> impl Iterator<Item = Entry<'a>> + Clone + '_ {
        self.headers().filter(move |e| {
            section_of(e.header.typ()) == Some(Section::Directive)
                && !matches!(e.header, Header::Skipped(_))
                && e.header.applies_to(mask)
        })
    }

    /// The VP contexts of the platform with mask `mask`, in file order.
    pub fn vp_contexts(&self, mask: u32) -> impl Iterator<Item = (At, VpContext<'a>)> + '_ {
        self.headers().filter_map(move |e| match e.header {
            Header::VpContext(vp) if vp.compatibility_mask & mask != 0 => Some((e.at, vp)),
            _ => None,
        })
    }

    /// The unknown optional headers that were skipped.
    pub fn skipped(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        self.headers()
            .filter(|e| matches!(e.header, Header::Skipped(_)))
    }
}

/// Iterator over the headers of a parsed file. The file was checked by
/// [`IgvmFile::parse`], so decoding cannot fail here; if it ever did, iteration would end.
#[derive(Debug, Clone)]
pub struct Headers<'f, 'a> {
    file: &'f IgvmFile<'a>,
    raw: RawHeaders<'a>,
}

impl<'a> Iterator for Headers<'_, 'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        let raw = self.raw.next()?.ok()?;
        let header = decode(&raw, &self.file.context()).ok()?;
        Some(Entry { at: raw.at, header })
    }
}
