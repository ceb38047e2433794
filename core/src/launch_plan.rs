//! The launch plan: every update an SEV-ES or SEV-SNP launch sends to the AMD secure processor,
//! in order — the GPA, the length, the SNP page type and where the bytes come from. The KVM
//! adapter walks it to launch (`SNP_LAUNCH_UPDATE`, `LAUNCH_UPDATE_DATA`, then the VMSAs KVM
//! measures), and [`snp_digest`] / [`sev_digest`] hash it, so that the launch and the digest
//! `vmsa measure` computes come from one description. Tests check that hashing the plan gives
//! exactly `vmsa measure`'s digest and `--explain` items.
//!
//! **OVMF** ([`OvmfPlan`]), in QEMU's order:
//!
//! | # | SNP (`sev_snp_launch_finish`) | SEV-ES (`sev_launch_update_data`, `sev_launch_get_measure`) |
//! |---|---|---|
//! | 1 | the image, NORMAL, from `4 GiB - size` upward | the image (`LAUNCH_UPDATE_DATA`) |
//! | 2 | the `ASEV` sections in descriptor order (`snp_populate_metadata_pages`) with the VMM's [`SectionPolicy`]: SNP_SEC_MEM ZERO (gce: UNMEASURED), SECRETS, CPUID (ec2: after the others), SVSM_CAA ZERO, SNP_KERNEL_HASHES NORMAL with a kernel, else ZERO | the padded kernel hash table, with a kernel |
//! | 3 | every vCPU's VMSA at 0xFFFFFFFFF000, measured by KVM in `SNP_LAUNCH_FINISH` | every vCPU's VMSA (`LAUNCH_UPDATE_VMSA`) |
//!
//! One difference with QEMU is refused rather than measured: QEMU launches a SECRETS or CPUID
//! section of any length (`desc->len`), while sev-snp-measure and `vmsa measure` measure one
//! page; the plan refuses such a section (the digest's
//! [`LaunchDigestError::SinglePageSectionSize`]) because the launch
//! could not produce the digest.
//!
//! **IGVM** ([`IgvmPlan`]): the platform's directives in file order with the rules of
//! [`crate::measure::igvm`] (the `igvm` crate's and igvmmeasure's), then, as KVM does, every
//! vCPU's VMSA last: a VP context's page, or the reset state for a vCPU without one. The file's
//! own digest (`vmsa measure --igvm`) measures VP contexts where they stand and at their GPA,
//! and no VMSA for a vCPU without a context; [`IgvmPlan::file_digest_difference`] says when
//! KVM's order makes the two differ (a context before a measured directive, a context GPA other
//! than 0xFFFFFFFFF000, a replaced context, a vCPU without a context).
//!
//! The plan is allocation-free and never panics; everything a walk could fail on is checked
//! when it is made.

use crate::igvm::vp::{LaunchEntry, Source as VpSource};
use crate::igvm::{At, Entry, Header, IgvmFile, PageData, Platform, VpContextData};
use crate::measure::igvm::{IgvmMeasureError, IgvmOptions, IgvmProfile};
use crate::measure::ovmf::{
    LaunchDigestError, LaunchMode, SectionPolicy, check_launch_inputs, sev_hash_table,
};
use crate::measure::snp::{PAGE_SIZE, sha384, sha384_zero_page};
use crate::measure::{
    ItemKind, MeasureError, Observer, PageType, SEV_HASH_TABLE_PADDED_SIZE, SevDigest, SevHashes,
    SnpDigest, VMSA_GPA,
};
use crate::ovmf::{OvmfImage, Section, SectionType, SevMetadata, gpa_ending_at_4g};
use crate::reset::{LaunchVmsas, VmmType};
use crate::vmsa::Vmsa;
use igvm_defs::{IgvmPageDataType, IgvmPlatformType};
use zerocopy::IntoBytes;

/// Where an update's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateSource<'a> {
    /// These bytes, then zeros up to the update's length.
    Bytes(&'a [u8]),
    /// Zeros (ZERO, UNMEASURED and SECRETS pages, and IGVM pages without data).
    Zero,
    /// The SNP CPUID page, which the VMM fills from the vCPU's CPUID
    /// ([`crate::snp_cpuid::SnpCpuidInfo`]); its contents are not measured.
    Cpuid,
    /// IGVM: what the loader placed at this GPA ([`crate::igvm_load::loads`]: a parameter area
    /// with the loader's values); not measured.
    Loaded,
    /// A vCPU's VMSA, measured by KVM itself (`LAUNCH_UPDATE_VMSA`, `SNP_LAUNCH_FINISH`) from
    /// the state the vCPU was programmed with.
    Vmsa {
        /// vCPU index.
        cpu: u32,
        /// The page.
        vmsa: &'a Vmsa,
    },
}

/// One update of the launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchUpdate<'a> {
    /// What it is (the `--explain` item kind).
    pub kind: ItemKind,
    /// Guest physical address (SNP: page aligned).
    pub gpa: u64,
    /// Bytes (SNP: a multiple of 4 KiB; a VMSA is one page).
    pub len: u64,
    /// The SNP page type; `None` for SEV-ES.
    pub page_type: Option<PageType>,
    /// Where the bytes come from.
    pub source: UpdateSource<'a>,
}

impl LaunchUpdate<'_> {
    /// Whether KVM measures it itself (a VMSA) rather than the VMM sending it.
    pub fn is_vmsa(&self) -> bool {
        matches!(self.source, UpdateSource::Vmsa { .. })
    }
}

/// A launch that cannot be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The firmware cannot be measured this way (the digest's own refusals).
    #[error(transparent)]
    Digest(#[from] LaunchDigestError),
    /// The IGVM file cannot be measured (the digest's own refusals).
    #[error(transparent)]
    Igvm(#[from] IgvmMeasureError),
    /// SNP: the image is not whole pages.
    #[error(transparent)]
    Range(#[from] MeasureError),
    /// Plain SEV has no VMSAs and is not launched by this plan.
    #[error("plain SEV is not launched (only SEV-ES and SNP)")]
    PlainSev,
    /// The IGVM platform is not SEV-ES or SNP.
    #[error("IGVM platform type {0} is not SEV-ES or SNP")]
    NotSevEsOrSnp(u8),
    /// The VMSAs are not one per vCPU, in index order, from vCPU 0.
    #[error("launch VMSA {position} is for vCPU {cpu}; the VMSAs must be vCPU 0, 1, ... in order")]
    VcpuOrder {
        /// Position in the list.
        position: usize,
        /// Its vCPU index.
        cpu: u32,
    },
    /// No VMSAs.
    #[error("a launch needs at least one vCPU")]
    NoVcpus,
    /// A parameter insert of an area no header declares.
    #[error("{at}: parameter insert of undeclared area {index}")]
    UnknownParameterArea {
        /// The header.
        at: At,
        /// Area index.
        index: u32,
    },
    /// The qemu profile: a header type QEMU's IGVM loader has no handler for (it refuses the
    /// file whatever the header's compatibility mask: "IGVM: Unknown header type encountered").
    #[error("{at}: QEMU's IGVM loader refuses header type {typ:#x} (whatever its mask)")]
    QemuUnknownHeader {
        /// The header.
        at: At,
        /// Its type.
        typ: u32,
    },
    /// The qemu profile: a second `SNP_ID_BLOCK` for the platform (QEMU: "IGVM: Multiple ID
    /// blocks encountered").
    #[error("{at}: a second SNP_ID_BLOCK for the platform (QEMU refuses the file)")]
    QemuSecondIdBlock {
        /// The second block.
        at: At,
    },
    /// The qemu profile with `native_zero`: QEMU always sends empty pages as NORMAL.
    #[error("QEMU measures pages without data as NORMAL pages of zeros, never as ZERO pages")]
    QemuNativeZero,
    /// The launch VMSAs cannot be made (or QEMU would refuse a VP context).
    #[error(transparent)]
    Launch(#[from] crate::igvm::vp::IgvmLaunchError),
    /// A digest profile that reproduces a measuring tool, not a launch.
    #[error(
        "the IGVM profile {} reproduces a measuring tool's digest; a launch follows the spec profile",
        .0.name()
    )]
    DigestOnlyProfile(IgvmProfile),
}

// ------------------------------------------------------------------------------------------------
// OVMF
// ------------------------------------------------------------------------------------------------

/// The kernel hash table, when a kernel is given.
// No allocator in the core: the page lives in the plan, once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum KernelTable {
    /// SNP: the `SNP_KERNEL_HASHES` page.
    Page([u8; 4096]),
    /// SEV-ES: the padded table, at the hash table GPA.
    Table([u8; SEV_HASH_TABLE_PADDED_SIZE], u64),
}

/// The launch plan of an OVMF image (see the module docs).
#[derive(Debug, Clone)]
pub struct OvmfPlan<'a> {
    image: &'a [u8],
    snp: bool,
    policy: SectionPolicy,
    kernel: Option<KernelTable>,
    metadata: Option<SevMetadata<'a>>,
    vmsas: &'a LaunchVmsas,
}

impl<'a> OvmfPlan<'a> {
    /// The plan for `image` (parsed as `fw`) launched in `mode` (SEV-ES or SNP) by `vmm`, with
    /// the kernel `hashes` when a kernel is given, and the launch VMSAs `vmsas`. Refuses what
    /// [`crate::measure::ovmf::launch_digest`] refuses, and what the launch could not measure
    /// as it does.
    pub fn new(
        image: &'a [u8],
        fw: OvmfImage<'a>,
        mode: LaunchMode,
        vmm: VmmType,
        hashes: Option<&SevHashes>,
        vmsas: &'a LaunchVmsas,
    ) -> Result<Self, PlanError> {
        let snp = match mode {
            LaunchMode::Sev => return Err(PlanError::PlainSev),
            LaunchMode::SevEs => false,
            LaunchMode::Snp => true,
        };
        check_launch_inputs(&fw, mode, hashes, Some(vmsas))?;
        let kernel = match (hashes, snp) {
            (None, _) => None,
            (Some(h), true) => {
                // check_launch_inputs found the table and checked that it fits in its page.
                let base = fw.sev_hash_table().map_or(0, |t| t.base);
                let page = h
                    .page((base & 0xfff) as usize)
                    .ok_or(LaunchDigestError::HashTableOutsidePage { gpa: base })?;
                Some(KernelTable::Page(page))
            }
            (Some(h), false) => {
                let base = fw.sev_hash_table().map_or(0, |t| u64::from(t.base));
                Some(KernelTable::Table(sev_hash_table(&fw, h)?, base))
            }
        };
        // (A SECRETS or CPUID section longer than a page is refused by the digest's own check,
        // `check_launch_inputs` above: `LaunchDigestError::SinglePageSectionSize`.)
        if snp && (image.is_empty() || image.len() as u64 % PAGE_SIZE != 0) {
            return Err(MeasureError::NotPageMultiple {
                what: "the firmware image",
                len: image.len() as u64,
            }
            .into());
        }
        Ok(Self {
            image,
            snp,
            policy: SectionPolicy::for_vmm(vmm),
            kernel,
            metadata: fw.sev_metadata(),
            vmsas,
        })
    }

    /// Whether this is an SNP plan (else SEV-ES).
    pub fn is_snp(&self) -> bool {
        self.snp
    }

    /// The updates, in launch order.
    pub fn updates(&self) -> impl Iterator<Item = LaunchUpdate<'_>> + '_ {
        let firmware = LaunchUpdate {
            kind: ItemKind::Firmware,
            gpa: gpa_ending_at_4g(self.image.len()),
            len: self.image.len() as u64,
            page_type: self.snp.then_some(PageType::NORMAL),
            source: UpdateSource::Bytes(self.image),
        };
        let sev_kernel = match &self.kernel {
            Some(KernelTable::Table(t, base)) if !self.snp => Some(LaunchUpdate {
                kind: ItemKind::KernelHashes,
                gpa: *base,
                len: t.len() as u64,
                page_type: None,
                source: UpdateSource::Bytes(t),
            }),
            _ => None,
        };
        let kernel_page = match &self.kernel {
            Some(KernelTable::Page(p)) => Some(p),
            _ => None,
        };
        let sections = self
            .metadata
            .filter(|_| self.snp)
            .into_iter()
            .flat_map(move |m| section_updates(m, self.policy, kernel_page));
        let vmsas = self.vmsas.pages().map(|(cpu, vmsa)| LaunchUpdate {
            kind: ItemKind::Vmsa { cpu },
            gpa: VMSA_GPA,
            len: PAGE_SIZE,
            page_type: self.snp.then_some(PageType::VMSA),
            source: UpdateSource::Vmsa { cpu, vmsa },
        });
        core::iter::once(firmware)
            .chain(sev_kernel)
            .chain(sections)
            .chain(vmsas)
    }
}

/// The `ASEV` sections of an SNP launch, in launch order, as QEMU's
/// `snp_populate_metadata_pages` launches them with the VMM's [`SectionPolicy`]: descriptor
/// order, CPUID deferred after the others for ec2; SNP_SEC_MEM ZERO (gce: UNMEASURED), SECRETS,
/// CPUID (filled by the VMM), SVSM_CAA ZERO, SNP_KERNEL_HASHES the kernel-hashes page as NORMAL
/// when given, else ZERO. The one definition of this order: the plan launches it and
/// [`crate::measure::ovmf::snp_update_metadata`] measures it. The caller has checked the
/// sections (`check_launch_inputs`).
pub fn section_updates<'a>(
    metadata: SevMetadata<'a>,
    policy: SectionPolicy,
    kernel_page: Option<&'a [u8; 4096]>,
) -> impl Iterator<Item = LaunchUpdate<'a>> + 'a {
    let all = metadata.sections();
    let cpuid_last = policy.cpuid_last;
    let in_order = all
        .clone()
        .filter(move |s| !(cpuid_last && s.section_type == SectionType::CPUID));
    let deferred = all.filter(move |s| cpuid_last && s.section_type == SectionType::CPUID);
    in_order
        .chain(deferred)
        .map(move |s| section_update(&s, policy, kernel_page))
}

/// One `ASEV` section's update.
fn section_update<'a>(
    s: &Section,
    policy: SectionPolicy,
    kernel_page: Option<&'a [u8; 4096]>,
) -> LaunchUpdate<'a> {
    let kind = ItemKind::MetadataSection {
        section_type: s.section_type.0,
    };
    let (gpa, len) = (u64::from(s.gpa), u64::from(s.size));
    let (kind, page_type, source) = match (s.section_type, kernel_page) {
        (SectionType::SNP_SEC_MEM, _) => (kind, policy.sec_mem, UpdateSource::Zero),
        (SectionType::SNP_SECRETS, _) => (kind, PageType::SECRETS, UpdateSource::Zero),
        (SectionType::CPUID, _) => (kind, PageType::CPUID, UpdateSource::Cpuid),
        (SectionType::SNP_KERNEL_HASHES, Some(p)) => (
            ItemKind::KernelHashes,
            PageType::NORMAL,
            UpdateSource::Bytes(p),
        ),
        // SNP_KERNEL_HASHES without a kernel, SVSM_CAA, and (refused before) anything else.
        _ => (kind, PageType::ZERO, UpdateSource::Zero),
    };
    LaunchUpdate {
        kind,
        gpa,
        len,
        page_type: Some(page_type),
        source,
    }
}

// ------------------------------------------------------------------------------------------------
// IGVM
// ------------------------------------------------------------------------------------------------

/// Why KVM's launch of an IGVM file does not give the file's own digest
/// ([`crate::measure::igvm::igvm_launch_digest`], `vmsa measure --igvm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileDigestDifference {
    /// A VP context comes before a measured directive; KVM measures every VMSA last.
    #[error(
        "the VP context at {context} comes before a measured directive ({directive}); KVM measures every VMSA after all pages"
    )]
    ContextNotLast {
        /// The VP context.
        context: At,
        /// The measured directive after it.
        directive: At,
    },
    /// SNP: a VP context at a GPA other than KVM's.
    #[error(
        "the VP context at {at} is for GPA {gpa:#x}; KVM measures every VMSA at 0xfffffffff000"
    )]
    ContextGpa {
        /// The VP context.
        at: At,
        /// Its GPA.
        gpa: u64,
    },
    /// A vCPU has several VP contexts: the file's digest measures each, KVM the last.
    #[error(
        "vCPU {cpu}'s VP context at {at} replaces {replaced} earlier ones, which the file's digest also measures"
    )]
    ReplacedContext {
        /// The vCPU.
        cpu: u32,
        /// The context used.
        at: At,
        /// How many it replaced.
        replaced: u32,
    },
    /// The VP contexts are not in vCPU order.
    #[error(
        "the VP context of vCPU {cpu} at {at} comes before a lower vCPU's; KVM measures VMSAs in vCPU order"
    )]
    ContextOrder {
        /// The vCPU.
        cpu: u32,
        /// Its context.
        at: At,
    },
    /// A vCPU without a VP context: KVM measures its reset VMSA, the file's digest nothing.
    #[error(
        "vCPU {cpu} has no VP context: KVM measures its reset-state VMSA, which the file's digest does not include"
    )]
    ResetVmsa {
        /// The vCPU.
        cpu: u32,
    },
}

/// The launch plan of an IGVM file on its SEV-ES or SNP platform (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct IgvmPlan<'f, 'a> {
    file: &'f IgvmFile<'a>,
    mask: u32,
    snp: bool,
    options: IgvmOptions,
    vmsas: &'f [LaunchEntry],
}

impl<'f, 'a> IgvmPlan<'f, 'a> {
    /// The plan for `file` on `platform`, with the launch VMSAs `vmsas` (one per vCPU, vCPU 0
    /// first: [`crate::igvm::vp::IgvmLaunch::entries`]). Refuses what the IGVM digest refuses.
    pub fn new(
        file: &'f IgvmFile<'a>,
        platform: &Platform,
        options: IgvmOptions,
        vmsas: &'f [LaunchEntry],
    ) -> Result<Self, PlanError> {
        let snp = match platform.platform_type {
            IgvmPlatformType::SEV_SNP => true,
            IgvmPlatformType::SEV_ES => false,
            other => return Err(PlanError::NotSevEsOrSnp(other.0)),
        };
        let qemu = match options.profile {
            IgvmProfile::Spec => false,
            IgvmProfile::Qemu if options.native_zero => return Err(PlanError::QemuNativeZero),
            IgvmProfile::Qemu => true,
            IgvmProfile::Igvmmeasure => return Err(PlanError::DigestOnlyProfile(options.profile)),
        };
        if qemu {
            // QEMU 10.1/10.2 `qigvm_handler`: directive and initialization headers it has no
            // handler for are refused before any mask check.
            use igvm_defs::IgvmVariableHeaderType as T;
            const HANDLED: [T; 10] = [
                T::IGVM_VHT_PAGE_DATA,
                T::IGVM_VHT_VP_CONTEXT,
                T::IGVM_VHT_PARAMETER_AREA,
                T::IGVM_VHT_PARAMETER_INSERT,
                T::IGVM_VHT_MEMORY_MAP,
                T::IGVM_VHT_VP_COUNT_PARAMETER,
                T::IGVM_VHT_ENVIRONMENT_INFO_PARAMETER,
                T::IGVM_VHT_REQUIRED_MEMORY,
                T::IGVM_VHT_SNP_ID_BLOCK,
                T::IGVM_VHT_GUEST_POLICY,
            ];
            let mut id_blocks = file
                .directives(platform.compatibility_mask)
                .filter(|e| matches!(e.header, Header::SnpIdBlock(_)));
            if let Some(second) = id_blocks.nth(1) {
                return Err(PlanError::QemuSecondIdBlock { at: second.at });
            }
            for e in file.headers() {
                let typ = e.header.typ();
                if crate::igvm::header::section_of(typ) != Some(crate::igvm::Section::Platform)
                    && !HANDLED.contains(&typ)
                {
                    return Err(PlanError::QemuUnknownHeader {
                        at: e.at,
                        typ: typ.0,
                    });
                }
            }
        }
        if vmsas.is_empty() {
            return Err(PlanError::NoVcpus);
        }
        for (position, e) in vmsas.iter().enumerate() {
            if e.cpu_index as usize != position {
                return Err(PlanError::VcpuOrder {
                    position,
                    cpu: e.cpu_index,
                });
            }
        }
        let plan = Self {
            file,
            mask: platform.compatibility_mask,
            snp,
            options,
            vmsas,
        };
        for entry in file.directives(plan.mask) {
            let header_index = entry.at.index;
            match entry.header {
                // QEMU sends a 2 MiB NORMAL page as 512 pages; whether the firmware takes 512
                // SECRETS or CPUID pages is not known, so those stay refused.
                Header::PageData(p)
                    if p.flags.is_2mb_page()
                        && !(qemu && p.data_type == IgvmPageDataType::NORMAL)
                        && (qemu || !p.flags.shared()) =>
                {
                    return Err(IgvmMeasureError::LargePage {
                        header_index,
                        gpa: p.gpa,
                    }
                    .into());
                }
                Header::PageData(p) if !snp && (qemu || !p.flags.shared()) => {
                    crate::measure::igvm::check_sev_page(&p, header_index, p.gpa)?;
                }
                Header::ParameterInsert(ins) => {
                    let index = ins.parameter_area_index;
                    let size = crate::igvm_load::parameter_area(file, index)
                        .ok_or(PlanError::UnknownParameterArea {
                            at: entry.at,
                            index,
                        })?
                        .number_of_bytes;
                    if ins.gpa.checked_add(size).is_none() || size % PAGE_SIZE != 0 {
                        return Err(IgvmMeasureError::Range {
                            header_index,
                            gpa: ins.gpa,
                            len: size,
                        }
                        .into());
                    }
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    /// Whether this is an SNP plan (else SEV-ES).
    pub fn is_snp(&self) -> bool {
        self.snp
    }

    /// The update a directive makes, if it makes one (VP contexts come last, see
    /// [`IgvmPlan::updates`]).
    fn directive(&self, at: At, header: &Header<'a>) -> Option<LaunchUpdate<'a>> {
        let kind = ItemKind::IgvmDirective {
            header_index: at.index,
        };
        let qemu = self.options.profile == IgvmProfile::Qemu;
        match *header {
            // QEMU measures `shared` pages too (it never reads the flag).
            Header::PageData(p) if qemu || !p.flags.shared() => {
                let source = p
                    .data
                    .map_or(UpdateSource::Zero, |d| UpdateSource::Bytes(&d[..]));
                // A 2 MiB page (qemu profile only): its 4 KiB of data, then zeros.
                let len = p.size();
                let page_type = if !self.snp {
                    // SEV-ES (QEMU): every page but the unmeasured ones is encrypted in place,
                    // a page without data as the zeros `load_igvm` left there.
                    if p.flags.unmeasured() {
                        return None;
                    }
                    None
                } else {
                    Some(match p.data_type {
                        IgvmPageDataType::SECRETS => PageType::SECRETS,
                        IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => {
                            return Some(LaunchUpdate {
                                kind,
                                gpa: p.gpa,
                                len,
                                page_type: Some(PageType::CPUID),
                                source: UpdateSource::Cpuid,
                            });
                        }
                        _ if p.flags.unmeasured() => PageType::UNMEASURED,
                        _ if p.data.is_none() && self.options.native_zero => PageType::ZERO,
                        _ => PageType::NORMAL,
                    })
                };
                Some(LaunchUpdate {
                    kind,
                    gpa: p.gpa,
                    len,
                    page_type,
                    source,
                })
            }
            Header::ParameterInsert(ins) if self.snp => {
                let area = crate::igvm_load::parameter_area(self.file, ins.parameter_area_index)?;
                Some(LaunchUpdate {
                    kind,
                    gpa: ins.gpa,
                    len: area.number_of_bytes,
                    page_type: Some(PageType::UNMEASURED),
                    source: UpdateSource::Loaded,
                })
            }
            _ => None,
        }
    }

    /// The updates, in launch order: the directives, then every vCPU's VMSA.
    pub fn updates(&self) -> impl Iterator<Item = LaunchUpdate<'f>> + '_
    where
        'a: 'f,
    {
        let directives = self.file.directives(self.mask);
        let pages = if self.options.profile == IgvmProfile::Qemu {
            Order::Qemu(QemuOrder {
                plan: self,
                main: directives,
                inserts: None,
                run: None,
            })
        } else {
            Order::File(directives.filter_map(|e| self.directive(e.at, &e.header)))
        };
        let snp = self.snp;
        let vmsas = self.vmsas.iter().map(move |e| {
            let kind = match e.source {
                VpSource::Context { at, .. } => ItemKind::IgvmDirective {
                    header_index: at.index,
                },
                VpSource::Reset => ItemKind::Vmsa { cpu: e.cpu_index },
            };
            LaunchUpdate {
                kind,
                gpa: if snp { VMSA_GPA } else { e.gpa },
                len: PAGE_SIZE,
                page_type: snp.then_some(PageType::VMSA),
                source: UpdateSource::Vmsa {
                    cpu: e.cpu_index,
                    vmsa: &e.vmsa,
                },
            }
        });
        pages.chain(vmsas)
    }

    /// `Ok` when KVM's launch gives the file's own digest (`vmsa measure --igvm`), else the
    /// first reason it does not.
    pub fn file_digest_difference(&self) -> Result<(), FileDigestDifference> {
        let mut last: Option<At> = None;
        for e in self.vmsas {
            let VpSource::Context {
                at,
                replaced,
                first: _,
            } = e.source
            else {
                return Err(FileDigestDifference::ResetVmsa { cpu: e.cpu_index });
            };
            if replaced > 0 {
                return Err(FileDigestDifference::ReplacedContext {
                    cpu: e.cpu_index,
                    at,
                    replaced,
                });
            }
            if self.snp && e.gpa != VMSA_GPA {
                return Err(FileDigestDifference::ContextGpa { at, gpa: e.gpa });
            }
            if last.is_some_and(|l| l.index > at.index) {
                return Err(FileDigestDifference::ContextOrder {
                    cpu: e.cpu_index,
                    at,
                });
            }
            last = Some(at);
        }
        // The first context in the file (every context is some vCPU's: IgvmLaunch refuses the
        // others), and any measured directive after it.
        let first_context = self
            .file
            .directives(self.mask)
            .find_map(|d| match d.header {
                Header::VpContext(vp) if matches!(vp.data, VpContextData::Vmsa(_)) => Some(d.at),
                _ => None,
            });
        if let Some(context) = first_context {
            let after = self
                .file
                .directives(self.mask)
                .filter(|d| d.at.index > context.index)
                .find(|d| self.directive(d.at, &d.header).is_some());
            if let Some(d) = after {
                return Err(FileDigestDifference::ContextNotLast {
                    context,
                    directive: d.at,
                });
            }
        }
        Ok(())
    }
}

/// The page updates in file order, or in QEMU's.
enum Order<F, Q> {
    File(F),
    Qemu(Q),
}

impl<T, F: Iterator<Item = T>, Q: Iterator<Item = T>> Iterator for Order<F, Q> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            Self::File(f) => f.next(),
            Self::Qemu(q) => q.next(),
        }
    }
}

/// QEMU's order of an IGVM file's page updates (`backends/igvm.c`): `qigvm_process_mem_page`
/// gathers a run of `PAGE_DATA` (consecutive headers, contiguous GPAs, equal flags, type and
/// mask, all with data or all without) and sends it only when the next page breaks it, or at the
/// end of the file, while `qigvm_directive_parameter_insert` sends its area at once. So the
/// inserts between a run and the next page go first, then the run. VP contexts are not sent here
/// (KVM measures the VMSAs last). Allocation-free: clones of the directive iterator walk ahead.
struct QemuOrder<'p, 'f, 'a, I> {
    plan: &'p IgvmPlan<'f, 'a>,
    /// The next directive not yet handled: the first header of a run, or before the first run.
    main: I,
    /// After a run: the directives up to (not including) header `.1`, whose inserts go first.
    inserts: Option<(I, u32)>,
    /// The run to send after those inserts: its first page, and how many pages.
    run: Option<(I, u32)>,
}

/// Whether QEMU adds the page `p` (header `at`) to the run whose last page is `prev`.
fn joins_run(prev: &PageData<'_>, prev_at: At, p: &PageData<'_>, at: At) -> bool {
    prev_at.index.checked_add(1) == Some(at.index)
        && prev.data.is_some() == p.data.is_some()
        && prev.flags == p.flags
        && prev.data_type == p.data_type
        && prev.compatibility_mask == p.compatibility_mask
        && prev.gpa.checked_add(prev.size()) == Some(p.gpa)
}

impl<'a, I> Iterator for QemuOrder<'_, '_, 'a, I>
where
    I: Iterator<Item = Entry<'a>> + Clone,
{
    type Item = LaunchUpdate<'a>;

    fn next(&mut self) -> Option<LaunchUpdate<'a>> {
        loop {
            if let Some((it, stop)) = &mut self.inserts {
                match it.next() {
                    Some(e) if e.at.index < *stop => {
                        if let Header::ParameterInsert(_) = e.header {
                            if let Some(u) = self.plan.directive(e.at, &e.header) {
                                return Some(u);
                            }
                        }
                    }
                    _ => self.inserts = None,
                }
                continue;
            }
            if let Some((it, left)) = &mut self.run {
                match (*left).checked_sub(1).and_then(|l| Some((l, it.next()?))) {
                    Some((l, e)) => {
                        *left = l;
                        if let Some(u) = self.plan.directive(e.at, &e.header) {
                            return Some(u);
                        }
                    }
                    None => self.run = None,
                }
                continue;
            }
            let run_start = self.main.clone();
            let e = self.main.next()?;
            match e.header {
                Header::PageData(first) => {
                    let (mut prev, mut prev_at, mut pages) = (first, e.at, 1u32);
                    loop {
                        let before = self.main.clone();
                        match self.main.next() {
                            Some(n) => match n.header {
                                Header::PageData(p) if joins_run(&prev, prev_at, &p, n.at) => {
                                    (prev, prev_at) = (p, n.at);
                                    pages = pages.saturating_add(1);
                                }
                                _ => {
                                    self.main = before;
                                    break;
                                }
                            },
                            None => break,
                        }
                    }
                    // Up to the next page (which flushes the run), or the end of the file.
                    let after_run = self.main.clone();
                    let mut stop = u32::MAX;
                    loop {
                        let before = self.main.clone();
                        match self.main.next() {
                            Some(n) if matches!(n.header, Header::PageData(_)) => {
                                stop = n.at.index;
                                self.main = before;
                                break;
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                    self.inserts = Some((after_run, stop));
                    self.run = Some((run_start, pages));
                }
                // Before the first page: sent at once.
                Header::ParameterInsert(_) => {
                    if let Some(u) = self.plan.directive(e.at, &e.header) {
                        return Some(u);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The digest of the `qemu` IGVM profile ([`IgvmProfile::Qemu`]): what QEMU 10.1/10.2 + KVM
/// measure when QEMU launches `file` on `platform` with `cfg.vcpus` vCPUs — the plan in QEMU's
/// order, with the VMSAs KVM builds from the fields QEMU copies (reset state for the vCPUs
/// without a context), every vCPU, last. `options.profile` must be `Qemu`. Needs an allocation
/// (one VMSA per vCPU).
#[cfg(feature = "alloc")]
pub fn igvm_qemu_digest<O: Observer>(
    file: &IgvmFile<'_>,
    platform: Platform,
    options: IgvmOptions,
    cfg: crate::reset::LaunchConfig,
    observer: O,
) -> Result<crate::measure::igvm::IgvmDigest, PlanError> {
    use crate::igvm::vp::IgvmLaunch;
    let id_block_ld = file
        .directives(platform.compatibility_mask)
        .filter_map(|e| match e.header {
            Header::SnpIdBlock(b) => Some(b.ld()),
            _ => None,
        })
        .last();
    let launch = IgvmLaunch::new(file, platform, cfg, crate::kvm_model::VmmPath::Qemu)?;
    let entries = launch
        .entries()
        .map(|e| e.and_then(|e| launch.as_launched(e)))
        .collect::<Result<alloc::vec::Vec<_>, _>>()?;
    let plan = IgvmPlan::new(file, launch.platform(), options, &entries)?;
    let mut digest = [0u8; 48];
    let len = if plan.is_snp() {
        digest = snp_digest(plan.updates(), observer).0;
        48
    } else {
        let (d, _) = sev_digest(plan.updates(), observer);
        if let Some(dst) = digest.get_mut(..32) {
            dst.copy_from_slice(&d);
        }
        32
    };
    Ok(crate::measure::igvm::IgvmDigest {
        digest,
        len,
        id_block_ld,
    })
}

// ------------------------------------------------------------------------------------------------
// Hashing a plan
// ------------------------------------------------------------------------------------------------

/// The SNP launch digest of a plan's `updates`, each page reported to `observer`: NORMAL pages
/// hashed (bytes, zero-padded), VMSA pages hashed, the other types with zero contents.
pub fn snp_digest<'u, O: Observer>(
    updates: impl IntoIterator<Item = LaunchUpdate<'u>>,
    observer: O,
) -> ([u8; 48], O) {
    let mut d = SnpDigest::with_observer([0; 48], observer);
    for u in updates {
        let page_type = u.page_type.unwrap_or(PageType::NORMAL);
        let mut off = 0u64;
        while off < u.len {
            let gpa = u.gpa.wrapping_add(off);
            let contents = match (page_type, u.source) {
                (PageType::VMSA, UpdateSource::Vmsa { vmsa, .. }) => sha384(vmsa.as_bytes()),
                (PageType::NORMAL, UpdateSource::Bytes(b)) => page_hash(b, off),
                (PageType::NORMAL, _) => sha384_zero_page(),
                _ => [0; 48],
            };
            d.update_with_contents(u.kind, page_type, gpa, contents);
            off += PAGE_SIZE;
        }
    }
    (d.ld(), d.into_observer())
}

/// SHA-384 of the page at `off` of `bytes`, zero-padded past their end.
fn page_hash(bytes: &[u8], off: u64) -> [u8; 48] {
    let start = usize::try_from(off).unwrap_or(usize::MAX);
    let rest = bytes.get(start..).unwrap_or(&[]);
    match rest.get(..PAGE_SIZE as usize) {
        Some(page) => sha384(page),
        None => {
            let mut page = [0u8; PAGE_SIZE as usize];
            if let Some(dst) = page.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            sha384(&page)
        }
    }
}

/// The SEV-ES launch digest of a plan's `updates` (SHA-256 over every update's bytes and every
/// VMSA page, in order), each item reported to `observer` as `vmsa measure` reports it.
pub fn sev_digest<'u, O: Observer>(
    updates: impl IntoIterator<Item = LaunchUpdate<'u>>,
    observer: O,
) -> ([u8; 32], O) {
    let mut d = SevDigest::with_observer(observer);
    for u in updates {
        match (u.kind, u.source) {
            (ItemKind::Firmware, UpdateSource::Bytes(b)) => {
                d.update_firmware(b);
                d.end_firmware();
            }
            (ItemKind::KernelHashes, UpdateSource::Bytes(b)) => {
                let mut t = [0u8; SEV_HASH_TABLE_PADDED_SIZE];
                if let Some(src) = b.get(..t.len()) {
                    t.copy_from_slice(src);
                }
                d.update_hash_table(&t);
            }
            (ItemKind::Vmsa { cpu }, UpdateSource::Vmsa { vmsa, .. }) => d.update_vmsa(cpu, vmsa),
            (kind, UpdateSource::Vmsa { vmsa, .. }) => d.update_data(kind, u.gpa, vmsa.as_bytes()),
            // The bytes in one piece, then zeros up to the length in 4 KiB pieces (an IGVM 2 MiB
            // page: 4 KiB of data; an IGVM page without data: all zeros, encrypted in place).
            (kind, UpdateSource::Bytes(_) | UpdateSource::Zero) => {
                let data = match u.source {
                    UpdateSource::Bytes(b) => b,
                    _ => &[],
                };
                if !data.is_empty() {
                    d.update_data(kind, u.gpa, data);
                }
                let zeros = [0u8; PAGE_SIZE as usize];
                let mut off = data.len() as u64;
                while off < u.len {
                    let n = (u.len - off).min(PAGE_SIZE);
                    let piece = zeros.get(..n as usize).unwrap_or(&zeros);
                    d.update_data(kind, u.gpa.wrapping_add(off), piece);
                    off += n;
                }
            }
            // SEV-ES plans hold no CPUID page and no loaded parameter area.
            _ => {}
        }
    }
    d.finish()
}

/// A plan's updates outside guest memory: the first update (other than the VMSAs, which KVM
/// places) that does not lie inside one of `memory`'s `(gpa, len)` ranges.
pub fn outside_memory<'u>(
    updates: impl IntoIterator<Item = LaunchUpdate<'u>>,
    memory: &[(u64, u64)],
) -> Option<LaunchUpdate<'u>> {
    updates.into_iter().find(|u| {
        !u.is_vmsa()
            && !memory.iter().any(|&(base, size)| {
                u.gpa >= base
                    && u.gpa
                        .checked_add(u.len)
                        .zip(base.checked_add(size))
                        .is_some_and(|(end, mem_end)| end <= mem_end)
            })
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::measure::NoObserver;
    use crate::measure::ovmf::{LaunchDigest, launch_digest};
    use crate::reset::{CpuSignature, LaunchConfig, SevMode, launch_vmsas};
    use std::vec;
    use std::vec::Vec;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/sev-snp-measure/ovmf_AmdSev_suffix.bin"
        ))
        .unwrap()
    }

    fn vmsas(fw: &OvmfImage<'_>, mode: SevMode, n: u32) -> LaunchVmsas {
        launch_vmsas(
            fw,
            &LaunchConfig::new(mode, n, CpuSignature(0x800f12), VmmType::Qemu),
        )
        .unwrap()
    }

    #[test]
    fn ovmf_plan_hashes_to_the_digest_for_every_vmm_and_kernel() {
        let image = fixture();
        let fw = OvmfImage::parse(&image).unwrap();
        let hashes = SevHashes {
            kernel: [1; 32],
            initrd: [2; 32],
            cmdline: SevHashes::cmdline_hash(Some("console=ttyS0")),
        };
        for vmm in [VmmType::Qemu, VmmType::Ec2, VmmType::Gce] {
            for h in [None, Some(&hashes)] {
                let v = vmsas(&fw, SevMode::Snp, 3);
                let plan = OvmfPlan::new(&image, fw, LaunchMode::Snp, vmm, h, &v).unwrap();
                let (ours, _) = snp_digest(plan.updates(), NoObserver);
                let (theirs, _) =
                    launch_digest(&image, &fw, LaunchMode::Snp, vmm, h, Some(&v), NoObserver)
                        .unwrap();
                assert_eq!(LaunchDigest::Sha384(ours), theirs, "{vmm:?} {h:?}");
                let v = vmsas(&fw, SevMode::SevEs, 3);
                let plan = OvmfPlan::new(&image, fw, LaunchMode::SevEs, vmm, h, &v).unwrap();
                let (ours, _) = sev_digest(plan.updates(), NoObserver);
                let (theirs, _) =
                    launch_digest(&image, &fw, LaunchMode::SevEs, vmm, h, Some(&v), NoObserver)
                        .unwrap();
                assert_eq!(LaunchDigest::Sha256(ours), theirs, "{vmm:?} {h:?}");
            }
        }
    }

    #[test]
    fn ovmf_snp_plan_order_and_types() {
        let image = fixture();
        let fw = OvmfImage::parse(&image).unwrap();
        let v = vmsas(&fw, SevMode::Snp, 2);
        let plan = OvmfPlan::new(&image, fw, LaunchMode::Snp, VmmType::Ec2, None, &v).unwrap();
        let u: Vec<_> = plan.updates().collect();
        assert_eq!(u[0].kind, ItemKind::Firmware);
        assert_eq!(u[0].gpa + u[0].len, 1 << 32);
        let n = u.len();
        // ec2: the CPUID section right before the VMSAs.
        assert_eq!(u[n - 3].source, UpdateSource::Cpuid);
        assert_eq!(u[n - 3].page_type, Some(PageType::CPUID));
        assert!(u[n - 2].is_vmsa() && u[n - 1].is_vmsa());
        assert_eq!(u[n - 1].gpa, VMSA_GPA);
        assert!(outside_memory(plan.updates(), &[(0, 16 << 20), (u[0].gpa, u[0].len)]).is_none());
        let out = outside_memory(plan.updates(), &[(0, 1 << 20), (u[0].gpa, u[0].len)]).unwrap();
        assert!(matches!(out.kind, ItemKind::MetadataSection { .. }));
    }

    #[test]
    fn multi_page_secrets_sections_are_refused() {
        let mut buf = vec![0u8; 64 * 1024];
        let sections = [
            Section::new(0x80_0000, 0x1000, SectionType::SNP_SEC_MEM),
            Section::new(0x80_1000, 0x2000, SectionType::SNP_SECRETS),
        ];
        crate::ovmf::build(
            &mut buf,
            &[crate::ovmf::TableEntry::SevEsResetBlock {
                reset_addr: 0xffff_f000,
            }],
            Some(&sections),
        )
        .unwrap();
        let image = &buf[..];
        let fw = OvmfImage::parse(image).unwrap();
        let v = vmsas(&fw, SevMode::Snp, 1);
        assert_eq!(
            OvmfPlan::new(image, fw, LaunchMode::Snp, VmmType::Qemu, None, &v).unwrap_err(),
            PlanError::Digest(LaunchDigestError::SinglePageSectionSize {
                index: 1,
                section_type: SectionType::SNP_SECRETS,
                gpa: 0x80_1000,
                size: 0x2000
            })
        );
        // SEV-ES launches no sections.
        let v = vmsas(&fw, SevMode::SevEs, 1);
        assert!(OvmfPlan::new(image, fw, LaunchMode::SevEs, VmmType::Qemu, None, &v).is_ok());
        assert_eq!(
            OvmfPlan::new(image, fw, LaunchMode::Sev, VmmType::Qemu, None, &v).unwrap_err(),
            PlanError::PlainSev
        );
    }

    #[test]
    fn page_hash_pads_with_zeros() {
        assert_eq!(page_hash(&[], 0), sha384_zero_page());
        assert_eq!(page_hash(&[0; 10], 0), sha384_zero_page());
        assert_eq!(page_hash(&[0; 8192], 4096), sha384_zero_page());
        assert_ne!(page_hash(&[1; 8192], 4096), sha384_zero_page());
    }
}
