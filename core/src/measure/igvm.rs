//! Launch digests of IGVM files.
//!
//! SNP follows the `igvm` crate's `measurement::generate_snp_measurement` (0.5, feature `corim`),
//! which is also coconut-svsm `igvmmeasure`'s algorithm, directive by directive in file order for
//! the selected platform's compatibility mask:
//!
//! | directive | measured as |
//! |---|---|
//! | `PAGE_DATA` NORMAL with data | NORMAL, SHA-384 of the 4 KiB |
//! | `PAGE_DATA` NORMAL without data | NORMAL of a zero page (spec: "a normal measured page of zeros"), or ZERO with [`IgvmOptions::native_zero`] |
//! | `PAGE_DATA` with the `unmeasured` flag | UNMEASURED |
//! | `PAGE_DATA` SECRETS / CPUID_DATA / CPUID_XF | SECRETS / CPUID |
//! | `PAGE_DATA` with the `shared` flag | nothing (host-visible memory is not launched) |
//! | `PARAMETER_INSERT` | UNMEASURED, every page of the area |
//! | `VP_CONTEXT` (SEV-ES/SNP VMSA) | VMSA at the directive's GPA |
//! | `SNP_ID_BLOCK` | its `ld` is compared with the result |
//!
//! Where the peers disagree, and what we do ([`IgvmProfile::Spec`], the default):
//! - igvmmeasure (coconut-svsm `tools/igvmmeasure`) measures a `PARAMETER_INSERT` as **one** page
//!   whatever the area size, while QEMU (`qigvm_directive_parameter_insert` →
//!   `set_guest_state(…, UNMEASURED)` over the whole area) and the `igvm` crate measure every page.
//!   igvmmeasure is wrong for areas over 4 KiB; we measure every page.
//! - igvmmeasure and QEMU (`qigvm_type_to_cgs_type` never reads the flag) measure `shared` pages,
//!   against the spec ("host visible … not part of the launch measurement"); the `igvm` crate
//!   skips them, as we do. igvmmeasure also measures the VMSA of every VP context whatever its
//!   compatibility mask (and so another platform's); we and the crate filter by mask.
//! - 2 MiB pages are measured as one 4 KiB page by the `igvm` crate and as 512 pages by
//!   igvmmeasure and QEMU + KVM (which also get only 4 KiB of file data for them from the `igvm`
//!   library); we refuse them ([`IgvmMeasureError::LargePage`]) rather than pick one.
//! - QEMU measures a `PARAMETER_INSERT` ahead of the run of `PAGE_DATA` just before it (it sends
//!   page runs late); we measure file order, as the crate, igvmmeasure and our own launch do.
//!
//! SEV and SEV-ES use one SHA-256 over what `KVM_SEV_LAUNCH_UPDATE_DATA` encrypts, in directive
//! order, as QEMU (`cgs_set_guest_state` → `sev_launch_update_data`) launches a file: the data of
//! every page, zero-padded to 4 KiB, **a page of zeros for a page without data** (the spec: "a
//! normal private page with zeros as contents"), nothing for an `unmeasured` page (QEMU leaves
//! it in plaintext and sends no command), then for SEV-ES each VMSA page. SECRETS and CPUID pages
//! exist only on SNP: QEMU refuses them on SEV/SEV-ES ("attempt to configure secrets page, but
//! SEV-SNP is not supported"), and so do we ([`IgvmMeasureError::SnpOnlyPage`]).
//!
//! [`IgvmProfile::Igvmmeasure`] reproduces coconut-svsm's `igvmmeasure` instead, including its
//! defects (each marked in [`IgvmProfile`]), so that digests published with it can be checked.
//! [`IgvmProfile::Qemu`] predicts what a QEMU 10.1/10.2 launch measures (its shared-page and
//! ordering quirks, KVM's VMSAs for every vCPU); it needs the vCPUs, so the launch plan computes
//! it. (QEMU master after `d5266c4740`, Feb 2026, loads the file at reset, which by code reading
//! comes after `LAUNCH_MEASURE` for SEV/SEV-ES: not verified, not modelled.)

use super::sev::SevDigest;
use super::snp::{PAGE_SIZE, PageType, SnpDigest, sha384, sha384_zero_page};
use super::{ItemKind, MeasuredItem, Observer};
use crate::igvm::{Header, IgvmFile, MAX_PARAMETER_AREAS, PageData, Platform, VpContextData};
use igvm_defs::{IgvmPageDataType, IgvmPlatformType};

/// Options of the IGVM digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IgvmOptions {
    /// Measure NORMAL pages without data as ZERO pages (igvmmeasure `--native-zero`) instead of
    /// NORMAL pages of zeros.
    pub native_zero: bool,
    /// Whose reading of the file the digest follows.
    pub profile: IgvmProfile,
}

/// Whose reading of an IGVM file the digest follows (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IgvmProfile {
    /// The IGVM specification, which is what QEMU + KVM launch (SNP: as the `igvm` crate's
    /// `generate_snp_measurement`; SEV/SEV-ES: as QEMU's `LAUNCH_UPDATE_DATA` sequence), and what
    /// `vmsa run --launch` sends.
    #[default]
    Spec,
    /// coconut-svsm `igvmmeasure` (`tools/igvmmeasure/src/igvm_measure.rs`), defects included:
    /// - SNP: a `PARAMETER_INSERT` is **one** UNMEASURED page whatever the area size (QEMU and
    ///   the spec: every page); `shared` pages are measured as private ones (the spec: not
    ///   measured); an empty 2 MiB page is 512 pages (one with data makes igvmmeasure panic: we
    ///   refuse it).
    /// - SEV/SEV-ES: the data of every page whatever its type or flags (unmeasured, SECRETS and
    ///   CPUID included) and **nothing for a page without data** (QEMU encrypts, and so measures,
    ///   a page of zeros).
    /// - Every platform: the VMSA of **every** VP context in the file, whatever its compatibility
    ///   mask, in place at its GPA, also on plain SEV.
    Igvmmeasure,
    /// What QEMU 10.1/10.2 + KVM measure when QEMU launches the file (`backends/igvm.c`,
    /// `target/i386/sev.c`): as [`IgvmProfile::Spec`], except that `shared` pages are measured
    /// (QEMU never reads the flag: a QEMU bug against the spec); on SNP a `PARAMETER_INSERT` is
    /// measured ahead of the run of contiguous `PAGE_DATA` before it (QEMU sends page runs only
    /// when the next page breaks them); a 2 MiB page is 512 pages, the first holding the file's
    /// 4 KiB of data; empty pages are always NORMAL; and the VMSAs are KVM's, built from the
    /// fields QEMU copies, for every vCPU, last. It needs the vCPUs, so only the launch plan
    /// computes it (`launch_plan::igvm_qemu_digest`, `vmsa measure --igvm-profile qemu`).
    Qemu,
}

impl IgvmProfile {
    /// Every profile, in the order the command line lists them.
    pub const ALL: [Self; 3] = [Self::Spec, Self::Igvmmeasure, Self::Qemu];

    /// The profile's command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Spec => "spec",
            Self::Igvmmeasure => "igvmmeasure",
            Self::Qemu => "qemu",
        }
    }

    /// The profile named `name` (as [`IgvmProfile::name`] spells it, any case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// An IGVM file cannot be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgvmMeasureError {
    /// A 2 MiB `PAGE_DATA`; see the module docs.
    #[error(
        "IGVM header {header_index}: 2 MiB page at GPA {gpa:#x}: the peers measure 2 MiB pages differently (igvm: one 4 KiB page, igvmmeasure and QEMU: 512 pages), so it is refused"
    )]
    LargePage {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
    },
    /// igvmmeasure profile: a 2 MiB page with data (igvmmeasure asserts that such a page has
    /// 2 MiB of data, which the file format cannot give, and panics).
    #[error(
        "IGVM header {header_index}: 2 MiB page with data at GPA {gpa:#x}: igvmmeasure cannot measure it (it panics)"
    )]
    LargePageWithData {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
    },
    /// A SECRETS or CPUID page for an SEV or SEV-ES platform: those pages exist only on SNP, and
    /// QEMU refuses the file.
    #[error(
        "IGVM header {header_index}: {what} page at GPA {gpa:#x} for an SEV/SEV-ES platform: only SNP has them (QEMU: \"attempt to configure {what} page, but SEV-SNP is not supported\")"
    )]
    SnpOnlyPage {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
        /// "secrets" or "CPUID".
        what: &'static str,
    },
    /// A `PARAMETER_INSERT` of an area that was not declared (the reader checks this; kept so the
    /// digest never assumes it).
    #[error("IGVM header {header_index}: parameter insert of undeclared area {index}")]
    UnknownParameterArea {
        /// Header index.
        header_index: u32,
        /// Area index.
        index: u32,
    },
    /// More parameter areas than the reader allows.
    #[error("IGVM header {header_index}: more than {MAX_PARAMETER_AREAS} parameter areas")]
    TooManyParameterAreas {
        /// Header index.
        header_index: u32,
    },
    /// A range that overflows the address space.
    #[error("IGVM header {header_index}: range at GPA {gpa:#x} of {len:#x} bytes overflows")]
    Range {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// The platform is not SEV, SEV-ES or SNP.
    #[error("IGVM platform type {0} has no SEV launch digest")]
    NotSev(u8),
    /// A profile whose digest depends on the launch VMSAs of every vCPU: the launch plan
    /// computes it.
    #[error(
        "the IGVM profile {} needs the vCPUs: use launch_plan::igvm_qemu_digest",
        .0.name()
    )]
    NeedsLaunchPlan(IgvmProfile),
}

/// The digest, and what the file's `SNP_ID_BLOCK` says it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgvmDigest {
    /// The launch digest: 48 bytes for SNP, the first 32 for SEV/SEV-ES.
    pub digest: [u8; 48],
    /// Its length (48 or 32).
    pub len: usize,
    /// The `ld` of the platform's `SNP_ID_BLOCK`, if any.
    pub id_block_ld: Option<[u8; 48]>,
}

impl IgvmDigest {
    /// The digest bytes.
    pub fn bytes(&self) -> &[u8] {
        self.digest.get(..self.len).unwrap_or(&self.digest)
    }
    /// Whether an ID block exists and differs from the digest.
    pub fn id_block_mismatch(&self) -> bool {
        self.id_block_ld.is_some_and(|ld| ld != self.digest)
    }
}

/// Measures `file` for `platform` (SNP: SHA-384 chain; SEV/SEV-ES: SHA-256), reporting every
/// page to `observer`.
pub fn igvm_launch_digest<O: Observer>(
    file: &IgvmFile<'_>,
    platform: &Platform,
    options: IgvmOptions,
    observer: O,
) -> Result<IgvmDigest, IgvmMeasureError> {
    let mask = platform.compatibility_mask;
    let snp = match platform.platform_type {
        IgvmPlatformType::SEV_SNP => true,
        IgvmPlatformType::SEV | IgvmPlatformType::SEV_ES => false,
        other => return Err(IgvmMeasureError::NotSev(other.0)),
    };
    let mut areas: heapless::Vec<(u32, u64), MAX_PARAMETER_AREAS> = heapless::Vec::new();
    let mut id_block_ld = None;
    let mut sink = if snp {
        Sink::Snp(SnpDigest::with_observer([0; 48], observer))
    } else {
        Sink::Sev(SevDigest::with_observer(observer))
    };
    if options.profile == IgvmProfile::Qemu {
        return Err(IgvmMeasureError::NeedsLaunchPlan(options.profile));
    }
    let igvmmeasure = options.profile == IgvmProfile::Igvmmeasure;
    // igvmmeasure measures VP contexts of every mask: walk them all, and filter the rest below.
    for entry in file.directives(if igvmmeasure { u32::MAX } else { mask }) {
        let header_index = entry.at.index;
        let kind = ItemKind::IgvmDirective { header_index };
        match entry.header {
            Header::VpContext(_) if igvmmeasure => {}
            _ if !entry.header.applies_to(mask) => continue,
            _ => {}
        }
        match entry.header {
            Header::ParameterArea(a) => {
                areas
                    .push((a.parameter_area_index, a.number_of_bytes))
                    .map_err(|_| IgvmMeasureError::TooManyParameterAreas { header_index })?;
            }
            Header::PageData(p) => {
                if p.flags.shared() && !igvmmeasure {
                    continue;
                }
                let data = p.data.map(|d| &d[..]);
                let pages = match (p.flags.is_2mb_page(), igvmmeasure, data) {
                    (false, _, _) => 1,
                    (true, true, None) => 512,
                    (true, true, Some(_)) => {
                        return Err(IgvmMeasureError::LargePageWithData {
                            header_index,
                            gpa: p.gpa,
                        });
                    }
                    (true, false, _) => {
                        return Err(IgvmMeasureError::LargePage {
                            header_index,
                            gpa: p.gpa,
                        });
                    }
                };
                if p.gpa.checked_add(pages * PAGE_SIZE).is_none() {
                    return Err(IgvmMeasureError::Range {
                        header_index,
                        gpa: p.gpa,
                        len: pages * PAGE_SIZE,
                    });
                }
                for gpa in (0..pages).map(|i| p.gpa + i * PAGE_SIZE) {
                    match &mut sink {
                        Sink::Snp(d) => {
                            let (ty, contents) = match p.data_type {
                                IgvmPageDataType::SECRETS => (PageType::SECRETS, [0; 48]),
                                IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => {
                                    (PageType::CPUID, [0; 48])
                                }
                                _ if p.flags.unmeasured() => (PageType::UNMEASURED, [0; 48]),
                                _ => match data {
                                    Some(bytes) => (PageType::NORMAL, sha384(bytes)),
                                    None if options.native_zero => (PageType::ZERO, [0; 48]),
                                    None => (PageType::NORMAL, sha384_zero_page()),
                                },
                            };
                            d.update_with_contents(kind, ty, gpa, contents);
                        }
                        Sink::Sev(d) if igvmmeasure => {
                            // Every page's data, whatever its type; nothing for an empty page.
                            if let Some(bytes) = data {
                                d.update_data(kind, gpa, bytes);
                            }
                        }
                        Sink::Sev(d) => {
                            check_sev_page(&p, header_index, gpa)?;
                            if !p.flags.unmeasured() {
                                d.update_data(kind, gpa, data.unwrap_or(&ZERO_PAGE));
                            }
                        }
                    }
                }
            }
            Header::ParameterInsert(ins) => {
                let index = ins.parameter_area_index;
                let size = areas
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, s)| *s)
                    .ok_or(IgvmMeasureError::UnknownParameterArea {
                        header_index,
                        index,
                    })?;
                if ins.gpa.checked_add(size).is_none() {
                    return Err(IgvmMeasureError::Range {
                        header_index,
                        gpa: ins.gpa,
                        len: size,
                    });
                }
                // igvmmeasure measures the first page only.
                let size = if igvmmeasure { PAGE_SIZE } else { size };
                if let Sink::Snp(d) = &mut sink {
                    let mut off = 0;
                    while off < size {
                        d.update_with_contents(kind, PageType::UNMEASURED, ins.gpa + off, [0; 48]);
                        off += PAGE_SIZE;
                    }
                }
            }
            Header::VpContext(vp) => {
                if let VpContextData::Vmsa(page) = vp.data {
                    match &mut sink {
                        Sink::Snp(d) => {
                            d.update_with_contents(kind, PageType::VMSA, vp.gpa, sha384(page));
                        }
                        Sink::Sev(d) => {
                            if igvmmeasure || platform.platform_type == IgvmPlatformType::SEV_ES {
                                d.update_data(kind, vp.gpa, page);
                            }
                        }
                    }
                }
            }
            Header::SnpIdBlock(b) => id_block_ld = Some(b.ld()),
            _ => {}
        }
    }
    let (digest, len) = match sink {
        Sink::Snp(d) => (d.ld(), 48),
        Sink::Sev(d) => {
            let mut out = [0u8; 48];
            let (h, _) = d.finish();
            if let Some(dst) = out.get_mut(..32) {
                dst.copy_from_slice(&h);
            }
            (out, 32)
        }
    };
    Ok(IgvmDigest {
        digest,
        len,
        id_block_ld,
    })
}

/// SEV/SEV-ES: refuses a SECRETS or CPUID page (`gpa` is the 4 KiB page it is at), which only
/// SNP has (QEMU refuses the file).
pub(crate) fn check_sev_page(
    p: &PageData<'_>,
    header_index: u32,
    gpa: u64,
) -> Result<(), IgvmMeasureError> {
    let what = match p.data_type {
        IgvmPageDataType::SECRETS => "secrets",
        IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => "CPUID",
        _ => return Ok(()),
    };
    Err(IgvmMeasureError::SnpOnlyPage {
        header_index,
        gpa,
        what,
    })
}

/// What a page without data holds.
static ZERO_PAGE: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

enum Sink<O: Observer> {
    Snp(SnpDigest<O>),
    Sev(SevDigest<O>),
}

impl<O: Observer> SevDigest<O> {
    /// Data measured by an IGVM directive (SEV/SEV-ES).
    pub(crate) fn update_data(&mut self, kind: ItemKind, gpa: u64, data: &[u8]) {
        self.update_raw(data);
        let mut contents = [0u8; 48];
        if let Some(dst) = contents.get_mut(..32) {
            dst.copy_from_slice(&super::SevHashes::sha256(data));
        }
        self.observe(&MeasuredItem {
            kind,
            gpa,
            page_type: None,
            len: data.len() as u64,
            contents,
            digest_after: [0; 48],
        });
    }
}
