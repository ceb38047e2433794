//! The launch of an IGVM file on its SEV, SEV-ES or SNP platform: the pages an IGVM loader
//! sends, in the order of the profile ([`IgvmProfile`]), each page's type from one table
//! ([`IgvmPlan::page`]) that every profile shares.
//!
//! - **Spec**, as the file says (`igvm` crate `generate_snp_measurement`; QEMU's
//!   `LAUNCH_UPDATE_DATA` sequence for SEV/SEV-ES): `PAGE_DATA` as NORMAL (data, or zeros),
//!   ZERO (`native_zero`), UNMEASURED, SECRETS or CPUID; `shared` pages not measured; each
//!   `PARAMETER_INSERT` as UNMEASURED pages; each VP context's VMSA in place at its GPA
//!   ([`Order::File`]). Launched, the same pages go to KVM, which measures every vCPU's VMSA
//!   last ([`Order::Kvm`]); [`FileDigestDifference`] says when the two digests differ.
//! - **Qemu**: what QEMU 10.1/10.2 sends (`backends/igvm.c`): `shared` pages measured, 2 MiB
//!   pages as 512, inserts ahead of the page run before them ([`QemuOrder`]), the VMSAs last.
//! - **Igvmmeasure**: coconut-svsm's reading, its defects included (see [`IgvmProfile`]).
//!
//! What a profile cannot measure is refused when the plan is made ([`IgvmPlan::new`]); walking
//! it never fails.

use super::config::{IgvmOptions, IgvmProfile};
use super::error::LaunchError;
use super::update::{LaunchUpdate, UpdateSource};
use super::vmsas::VmsaSource;
use crate::igvm::load::parameter_area;
use crate::igvm::{At, Entry, Header, IgvmFile, PageData, Platform, VpContextData};
use crate::measure::ItemKind;
use crate::mode::SevMode;
use crate::page::{PAGE_SIZE, PageType, VMSA_GPA};
use igvm_defs::{IgvmPageDataType, IgvmPlatformType};

/// Where the VMSAs of an IGVM launch are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// Each VP context where it stands in the file, at its GPA (the file's own digest).
    File,
    /// KVM's: the pages in the profile's order, then every vCPU's VMSA (the caller appends them).
    Kvm,
}

/// Why KVM's launch of an IGVM file does not give the file's own digest
/// ([`Launch::digest`](super::Launch::digest), `vmsa measure --igvm`).
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

/// The launch plan of an IGVM file on one platform (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(super) struct IgvmPlan<'f, 'a> {
    file: &'f IgvmFile<'a>,
    mask: u32,
    mode: SevMode,
    platform_type: IgvmPlatformType,
    options: IgvmOptions,
}

impl<'f, 'a> IgvmPlan<'f, 'a> {
    /// The plan for `file` on `platform` (SEV, SEV-ES or SNP: `mode`) read with `options`.
    /// Refuses what the profile cannot measure: 2 MiB pages it has no rule for, SECRETS or
    /// CPUID pages off SNP, inserts of undeclared areas, ranges past 2^64, and for the qemu
    /// profile what QEMU's loader refuses.
    pub(super) fn new(
        file: &'f IgvmFile<'a>,
        platform: &Platform,
        mode: SevMode,
        options: IgvmOptions,
    ) -> Result<Self, LaunchError> {
        let qemu = options.profile == IgvmProfile::Qemu;
        if qemu {
            if options.native_zero {
                return Err(LaunchError::QemuNativeZero);
            }
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
                return Err(LaunchError::QemuSecondIdBlock { at: second.at });
            }
            for e in file.headers() {
                let typ = e.header.typ();
                if crate::igvm::header::section_of(typ) != Some(crate::igvm::Section::Platform)
                    && !HANDLED.contains(&typ)
                {
                    return Err(LaunchError::QemuUnknownHeader {
                        at: e.at,
                        typ: typ.0,
                    });
                }
            }
        }
        let plan = Self {
            file,
            mask: platform.compatibility_mask,
            mode,
            platform_type: platform.platform_type,
            options,
        };
        for entry in file.directives(plan.mask) {
            let header_index = entry.at.index;
            match entry.header {
                Header::PageData(p) if plan.measures(&p) => {
                    let snp_only = match p.data_type {
                        IgvmPageDataType::SECRETS => Some("secrets"),
                        IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => Some("CPUID"),
                        _ => None,
                    };
                    let igvmmeasure = options.profile == IgvmProfile::Igvmmeasure;
                    if let (Some(what), false, false) =
                        (snp_only, mode == SevMode::Snp, igvmmeasure)
                    {
                        return Err(LaunchError::SnpOnlyPage {
                            header_index,
                            gpa: p.gpa,
                            what,
                        });
                    }
                    if p.flags.is_2mb_page() {
                        match options.profile {
                            // QEMU sends a 2 MiB NORMAL page as 512 pages; whether the firmware
                            // takes 512 SECRETS or CPUID pages is not known, so those stay
                            // refused.
                            IgvmProfile::Qemu if p.data_type == IgvmPageDataType::NORMAL => {}
                            IgvmProfile::Igvmmeasure if p.data.is_some() => {
                                return Err(LaunchError::LargePageWithData {
                                    header_index,
                                    gpa: p.gpa,
                                });
                            }
                            IgvmProfile::Igvmmeasure => {}
                            _ => {
                                return Err(LaunchError::LargePage {
                                    header_index,
                                    gpa: p.gpa,
                                });
                            }
                        }
                    }
                    if p.gpa.checked_add(p.size()).is_none() {
                        return Err(LaunchError::IgvmRange {
                            header_index,
                            gpa: p.gpa,
                            len: p.size(),
                        });
                    }
                }
                Header::ParameterInsert(ins) => {
                    let index = ins.parameter_area_index;
                    let size = parameter_area(file, index)
                        .ok_or(LaunchError::UnknownParameterArea {
                            at: entry.at,
                            index,
                        })?
                        .number_of_bytes;
                    if ins.gpa.checked_add(size).is_none() || size % PAGE_SIZE != 0 {
                        return Err(LaunchError::IgvmRange {
                            header_index,
                            gpa: ins.gpa,
                            len: size,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    /// Whether the profile measures page `p` at all: `shared` pages are not measured by the
    /// spec; QEMU never reads the flag, igvmmeasure measures them as private.
    fn measures(&self, p: &PageData<'_>) -> bool {
        !p.flags.shared() || self.options.profile != IgvmProfile::Spec
    }

    /// The one page-type table: the update a `PAGE_DATA` makes, if it makes one.
    ///
    /// | page | SNP | SEV / SEV-ES | igvmmeasure SEV / SEV-ES |
    /// |---|---|---|---|
    /// | SECRETS | SECRETS | refused | its data |
    /// | CPUID_DATA, CPUID_XF | CPUID, filled by the VMM | refused | its data |
    /// | `unmeasured` | UNMEASURED | nothing | its data |
    /// | no data, `native_zero` | ZERO | zeros | nothing |
    /// | data, or none | NORMAL | data, or zeros | data, or nothing |
    ///
    /// A 2 MiB page (qemu, igvmmeasure) is one update of 2 MiB: its 4 KiB of data, then zeros.
    fn page(&self, at: At, p: &PageData<'a>) -> Option<LaunchUpdate<'a>> {
        if !self.measures(p) {
            return None;
        }
        let kind = ItemKind::IgvmDirective {
            header_index: at.index,
        };
        let data = p.data.map(|d| &d[..]);
        let source = data.map_or(UpdateSource::Zero, UpdateSource::Bytes);
        let update = |len, page_type, source| {
            Some(LaunchUpdate {
                kind,
                gpa: p.gpa,
                len,
                page_type,
                source,
            })
        };
        if self.mode != SevMode::Snp {
            if self.options.profile == IgvmProfile::Igvmmeasure {
                // Every page's data, whatever its type; nothing for an empty page.
                return update(PAGE_SIZE, None, UpdateSource::Bytes(data?));
            }
            // QEMU encrypts every page but the unmeasured ones in place, a page without data
            // as the zeros the loader left there.
            if p.flags.unmeasured() {
                return None;
            }
            return update(p.size(), None, source);
        }
        let (page_type, source) = match p.data_type {
            IgvmPageDataType::SECRETS => (PageType::SECRETS, source),
            IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => {
                (PageType::CPUID, UpdateSource::Cpuid)
            }
            _ if p.flags.unmeasured() => (PageType::UNMEASURED, source),
            _ if p.data.is_none() && self.options.native_zero => (PageType::ZERO, source),
            _ => (PageType::NORMAL, source),
        };
        update(p.size(), Some(page_type), source)
    }

    /// The update a directive makes, if it makes one: a page, or (SNP) a parameter area's
    /// UNMEASURED pages (igvmmeasure: its first page only). VP contexts are [`Self::context`]'s.
    fn directive(&self, at: At, header: &Header<'a>) -> Option<LaunchUpdate<'a>> {
        match *header {
            Header::PageData(p) => self.page(at, &p),
            Header::ParameterInsert(ins) if self.mode == SevMode::Snp => {
                let area = parameter_area(self.file, ins.parameter_area_index)?;
                let len = match self.options.profile {
                    IgvmProfile::Igvmmeasure => PAGE_SIZE,
                    _ => area.number_of_bytes,
                };
                Some(LaunchUpdate {
                    kind: ItemKind::IgvmDirective {
                        header_index: at.index,
                    },
                    gpa: ins.gpa,
                    len,
                    page_type: Some(PageType::UNMEASURED),
                    source: UpdateSource::Loaded,
                })
            }
            _ => None,
        }
    }

    /// A VP context's VMSA measured where it stands ([`Order::File`]): SNP as a VMSA page at
    /// its GPA; SEV-ES as data (igvmmeasure: on every platform, whatever the context's mask).
    fn context(&self, e: &Entry<'a>) -> Option<LaunchUpdate<'a>> {
        let Header::VpContext(vp) = e.header else {
            return None;
        };
        let VpContextData::Vmsa(page) = vp.data else {
            return None;
        };
        let igvmmeasure = self.options.profile == IgvmProfile::Igvmmeasure;
        if !igvmmeasure && !e.header.applies_to(self.mask) {
            return None;
        }
        let page_type = match self.mode {
            SevMode::Snp => Some(PageType::VMSA),
            _ if igvmmeasure || self.platform_type == IgvmPlatformType::SEV_ES => None,
            _ => return None,
        };
        Some(LaunchUpdate {
            kind: ItemKind::IgvmDirective {
                header_index: e.at.index,
            },
            gpa: vp.gpa,
            len: PAGE_SIZE,
            page_type,
            source: UpdateSource::Bytes(&page[..]),
        })
    }

    /// The page updates in `order` (for [`Order::Kvm`], without the VMSAs KVM measures last).
    pub(super) fn updates(&self, order: Order) -> impl Iterator<Item = LaunchUpdate<'a>> + '_ {
        let mask = match (order, self.options.profile) {
            // igvmmeasure measures VP contexts of every mask: walk them all; `context` and
            // `directive` filter the rest.
            (Order::File, IgvmProfile::Igvmmeasure) => u32::MAX,
            _ => self.mask,
        };
        let directives = self.file.directives(mask);
        match (order, self.options.profile) {
            (Order::Kvm, IgvmProfile::Qemu) | (Order::File, IgvmProfile::Qemu) => {
                Walk::Qemu(QemuOrder {
                    plan: self,
                    main: directives,
                    inserts: None,
                    run: None,
                })
            }
            (Order::File, _) => Walk::File(directives.filter_map(move |e| {
                if matches!(e.header, Header::VpContext(_)) {
                    return self.context(&e);
                }
                if !e.header.applies_to(self.mask) {
                    return None;
                }
                self.directive(e.at, &e.header)
            })),
            (Order::Kvm, _) => {
                Walk::Kvm(directives.filter_map(move |e| self.directive(e.at, &e.header)))
            }
        }
    }

    /// The `ld` of the platform's `SNP_ID_BLOCK`, if any (the last one).
    pub(super) fn id_block_ld(&self) -> Option<[u8; 48]> {
        self.file
            .directives(self.mask)
            .filter_map(|e| match e.header {
                Header::SnpIdBlock(b) => Some(b.ld()),
                _ => None,
            })
            .last()
    }

    /// `Ok` when KVM's launch, whose VMSAs are `vmsas` (vCPU 0 first), gives the file's own
    /// digest ([`Order::File`]), else the first reason it does not.
    pub(super) fn file_digest_difference(
        &self,
        vmsas: impl Iterator<Item = (u32, VmsaSource, u64)>,
    ) -> Result<(), FileDigestDifference> {
        let snp = self.mode == SevMode::Snp;
        let mut last: Option<At> = None;
        for (cpu, source, gpa) in vmsas {
            let VmsaSource::Context { at, replaced, .. } = source else {
                return Err(FileDigestDifference::ResetVmsa { cpu });
            };
            if replaced > 0 {
                return Err(FileDigestDifference::ReplacedContext { cpu, at, replaced });
            }
            if snp && gpa != VMSA_GPA {
                return Err(FileDigestDifference::ContextGpa { at, gpa });
            }
            if last.is_some_and(|l| l.index > at.index) {
                return Err(FileDigestDifference::ContextOrder { cpu, at });
            }
            last = Some(at);
        }
        // The first context in the file (every context is some vCPU's: the launch refuses the
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

/// The page updates in file order (with or without the VP contexts), or in QEMU's.
enum Walk<F, K, Q> {
    File(F),
    Kvm(K),
    Qemu(Q),
}

impl<T, F, K, Q> Iterator for Walk<F, K, Q>
where
    F: Iterator<Item = T>,
    K: Iterator<Item = T>,
    Q: Iterator<Item = T>,
{
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            Self::File(f) => f.next(),
            Self::Kvm(k) => k.next(),
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
