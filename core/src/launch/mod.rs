//! One launch, for every consumer: from firmware (an OVMF image or an IGVM file) and a
//! [`LaunchConfig`], the vCPUs' VMSAs, the ordered updates the VMM sends, what KVM would refuse,
//! and the digest. The command line, the browser page, `vmsa run` and the KVM adapter all go
//! through [`Launch`]; everything that can be refused is refused by [`Launch::new`], once.
//!
//! ```text
//!   Firmware::Ovmf ─┐                    ┌─ vmsas()    every vCPU's VMSA (and fidelity())
//!                   ├─ Launch::new(cfg) ─┼─ updates()  what the VMM sends, in order
//!   Firmware::Igvm ─┘   (all refusals)   └─ digest()   the one walk: SNP PAGE_INFO chain or SHA-256
//! ```
//!
//! - [`ovmf`](self::SectionPolicy): the OVMF image, the `ASEV` sections and the kernel hashes in
//!   QEMU's order; then every VMSA.
//! - IGVM: the platform's directives with the profile's page types ([`IgvmProfile`]); the VP
//!   contexts as the launch VMSAs, the reset state for the other vCPUs.
//!
//! ```
//! use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
//! use vmsa_core::measure::{NoObserver, Sha2Pages};
//! use vmsa_core::ovmf::{build, OvmfImage, Section, SectionType, TableEntry};
//! use vmsa_core::reset::VmmType;
//! use vmsa_core::{CpuSignature, SevMode};
//!
//! let mut image = [0u8; 8192];
//! let secs = [Section::new(0x80_0000, 0x1000, SectionType::SNP_SECRETS)];
//! build(&mut image, &[TableEntry::SevEsResetBlock { reset_addr: 0x80_b004 }], Some(&secs)).unwrap();
//! let fw = Firmware::Ovmf(OvmfImage::parse(&image).unwrap());
//! let cfg = LaunchConfig::new(SevMode::Snp, 2, CpuSignature(0x800f12), VmmType::Qemu);
//! let launch = Launch::new(&fw, &cfg).unwrap();
//! // The image's two pages, the secrets page, two VMSAs.
//! assert_eq!(launch.updates().unwrap().count(), 4);
//! let (digest, NoObserver) = launch.digest(&Sha2Pages, NoObserver).unwrap();
//! assert_eq!(digest.bytes().len(), 48);
//! ```

mod config;
mod digest;
mod error;
mod igvm;
mod igvm_vmsas;
pub mod krun;
mod ovmf;
mod svsm;
mod update;
mod vmsas;

pub use config::{
    IgvmOptions, IgvmProfile, LaunchConfig, MAX_VCPUS, SvsmProfile, default_features,
};
pub use error::LaunchError;
pub use igvm::FileDigestDifference;
pub use ovmf::{MAX_FIRMWARE_SIZE, SectionPolicy};
pub use svsm::{MAX_PFLASH_SIZE, svsm_entry, svsm_gpa, svsm_vmsa};
pub use update::{LaunchUpdate, UpdateSource, outside_memory};
pub use vmsas::{LaunchVmsa, VmsaSource, vcpu_vmsa};

use crate::arch::RESET_VECTOR;
use crate::igvm::{IgvmError, IgvmFile, Platform, PlatformChoice, platform_name};
use crate::kvm::{Fidelity, refusal};
use crate::measure::{Digest, ItemKind, Observer, PageHasher};
use crate::mode::SevMode;
use crate::ovmf::OvmfImage;
use crate::page::{PAGE_SIZE, PageType, VMSA_GPA};
use crate::reset::VmmType;
use igvm::{IgvmPlan, Order};
use igvm_vmsas::IgvmVmsas;
use krun::{KRUN_AP_EIP, KrunImages, KrunPlan, KrunRegs};
use ovmf::OvmfPlan;
use vmsas::OvmfVmsas;

/// What a guest is launched from.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "no allocator in the core; a launch holds its firmware view once"
)]
pub enum Firmware<'a> {
    /// An OVMF image, placed so that it ends at 4 GiB.
    Ovmf(OvmfImage<'a>),
    /// COCONUT-SVSM and OVMF without IGVM (sev-snp-measure's `snp:svsm`): OVMF ending at 4 GiB,
    /// its variable store below it, the SVSM below that ([`svsm_gpa`]); SNP only.
    Svsm {
        /// The OVMF code image.
        ovmf: OvmfImage<'a>,
        /// The SVSM image (an OVMF-style footer table with `SVSM_INFO` and `ASEV` metadata).
        svsm: OvmfImage<'a>,
        /// The size of the OVMF variable store between them (QEMU's pflash1).
        vars_size: u64,
    },
    /// libkrun's launch of libkrunfw-sev's qboot, kernel and initrd ([`krun`]).
    Krun(KrunImages<'a>),
    /// An IGVM file, on one of its platforms (which decides the mode).
    Igvm {
        /// The file.
        file: IgvmFile<'a>,
        /// The platform loaded.
        platform: Platform,
    },
}

impl<'a> Firmware<'a> {
    /// An IGVM file read from `bytes`, on the platform `choice` selects (QEMU loads the
    /// platform of its confidential-guest object's mode: [`PlatformChoice::Only`] of
    /// [`mode_platform`]).
    pub fn igvm(bytes: &'a [u8], choice: PlatformChoice) -> Result<Self, IgvmError> {
        let file = IgvmFile::parse(bytes)?;
        let platform = file.select(choice)?;
        Ok(Self::Igvm { file, platform })
    }

    /// An IGVM file on the platform of `mode`, as QEMU's `sev-guest`/`sev-snp-guest` loads it.
    pub fn igvm_for_mode(bytes: &'a [u8], mode: SevMode) -> Result<Self, IgvmError> {
        Self::igvm(bytes, PlatformChoice::Only(mode_platform(mode)))
    }

    /// An IGVM file's vCPU count as QEMU takes it by default ([`igvm_vcpus`]); `None` for
    /// OVMF.
    pub fn igvm_vcpus(&self) -> Option<u32> {
        match self {
            Self::Igvm { file, platform } => Some(igvm_vcpus(file, platform)),
            Self::Ovmf(_) | Self::Svsm { .. } | Self::Krun(_) => None,
        }
    }
}

/// The SEV mode of an IGVM platform, if it is an SEV platform.
pub fn platform_mode(platform: &Platform) -> Option<SevMode> {
    use igvm_defs::IgvmPlatformType as P;
    match platform.platform_type {
        P::SEV => Some(SevMode::Sev),
        P::SEV_ES => Some(SevMode::SevEs),
        P::SEV_SNP => Some(SevMode::Snp),
        _ => None,
    }
}

/// The IGVM platform type of a mode.
pub const fn mode_platform(mode: SevMode) -> igvm_defs::IgvmPlatformType {
    use igvm_defs::IgvmPlatformType as P;
    match mode {
        SevMode::Sev => P::SEV,
        SevMode::SevEs => P::SEV_ES,
        SevMode::Snp => P::SEV_SNP,
    }
}

/// The guest policy of an IGVM platform: its last `GUEST_POLICY` header (QEMU
/// `qigvm_initialization_guest_policy` keeps the last one), if it has one.
pub fn igvm_guest_policy(file: &IgvmFile<'_>, platform: &Platform) -> Option<u64> {
    file.initializations(platform.compatibility_mask)
        .filter_map(|e| match e.header {
            crate::igvm::Header::GuestPolicy(p) => Some(p.policy),
            _ => None,
        })
        .last()
}

/// An IGVM platform's `SNP_ID_BLOCK` as QEMU passes it to `SNP_LAUNCH_FINISH`
/// ([`crate::id_block::from_igvm`]) with the guest `policy`, and the directive's
/// `author_key_enabled` (which QEMU does not read). The reader refuses a second block.
pub fn igvm_id_block(
    file: &IgvmFile<'_>,
    platform: &Platform,
    policy: u64,
) -> Option<(crate::id_block::IdBlock, crate::id_block::IdAuthInfo, bool)> {
    file.directives(platform.compatibility_mask)
        .find_map(|e| match e.header {
            crate::igvm::Header::SnpIdBlock(b) => Some(b.get()),
            _ => None,
        })
        .map(|b| {
            let (block, auth) = crate::id_block::from_igvm(&b, policy);
            (block, auth, b.author_key_enabled != 0)
        })
}

/// The vCPUs an IGVM file's platform has VP contexts for: one more than the highest VP index
/// (at least one). A launch with fewer is refused ([`LaunchError::VpIndexOutOfRange`]).
pub fn igvm_vcpus(file: &IgvmFile<'_>, platform: &Platform) -> u32 {
    file.vp_contexts(platform.compatibility_mask)
        .map(|(_, vp)| u32::from(vp.vp_index) + 1)
        .max()
        .unwrap_or(1)
}

/// The launch VMSAs, from the firmware.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "no allocator in the core: the OVMF pages live in the launch, once"
)]
enum Vmsas<'f, 'a> {
    /// Plain SEV.
    None,
    Ovmf(OvmfVmsas),
    Igvm(IgvmVmsas<'f, 'a>),
}

/// The page updates, from the firmware. (No allocator in the core: the generated pages — the
/// kernel-hashes page, libkrun's boot_params — live in the plan, once.)
#[derive(Debug, Clone)]
enum Plan<'f, 'a> {
    Ovmf(OvmfPlan<'a>),
    Krun(KrunPlan<'a>),
    Igvm(IgvmPlan<'f, 'a>),
}

/// A guest's launch: checked whole by [`Launch::new`], then read without failing.
#[derive(Debug, Clone)]
pub struct Launch<'f, 'a> {
    firmware: &'f Firmware<'a>,
    config: LaunchConfig,
    vmsas: Vmsas<'f, 'a>,
    plan: Plan<'f, 'a>,
}

impl<'f, 'a> Launch<'f, 'a> {
    /// The launch of `firmware` under `config`, refused if QEMU, KVM or the firmware's own
    /// metadata would not let it happen (see [`LaunchError`] for every reason), before anything
    /// is hashed or sent. For an IGVM file the platform decides the mode and vCPU 0's VP
    /// context the guest features.
    pub fn new(firmware: &'f Firmware<'a>, config: &LaunchConfig) -> Result<Self, LaunchError> {
        let mut cfg = *config;
        let launch = match firmware {
            Firmware::Ovmf(fw) => {
                check_firmware_size(fw.bytes())?;
                let has_vmsas = cfg.mode.has_vmsas();
                if has_vmsas {
                    refusal::vcpu_count(cfg.vcpus, cfg.max_vcpus)?;
                    refusal::snp_bit(cfg.mode, cfg.guest_features.bits())?;
                }
                let metadata = match cfg.mode {
                    SevMode::Snp => {
                        Some(ovmf::check_snp_metadata(fw, fw.gpa(), cfg.kernel.as_ref())?)
                    }
                    _ => None,
                };
                let vmsas = match has_vmsas {
                    true => Vmsas::Ovmf(OvmfVmsas::new(fw, &cfg)?),
                    false => Vmsas::None,
                };
                let vcpus = if has_vmsas { cfg.vcpus } else { 0 };
                let plan =
                    OvmfPlan::new(fw, cfg.mode, cfg.vmm, cfg.kernel.as_ref(), metadata, vcpus)?;
                Self {
                    firmware,
                    config: cfg,
                    vmsas,
                    plan: Plan::Ovmf(plan),
                }
            }
            Firmware::Svsm {
                ovmf,
                svsm,
                vars_size,
            } => {
                check_firmware_size(ovmf.bytes())?;
                if cfg.mode != SevMode::Snp {
                    return Err(LaunchError::SvsmNotSnp(cfg.mode));
                }
                svsm::check_config(&cfg)?;
                refusal::vcpu_count(cfg.vcpus, cfg.max_vcpus)?;
                let svsm_len = svsm.bytes().len() as u64;
                let gpa = svsm_gpa(ovmf.bytes().len() as u64, *vars_size, svsm_len)?;
                let entry = svsm_entry(svsm, gpa)?;
                let metadata = ovmf::check_snp_metadata(svsm, gpa, None)?;
                let vmsa = svsm_vmsa(entry, cfg.signature, cfg.svsm);
                let plan = OvmfPlan::new(ovmf, cfg.mode, cfg.vmm, None, None, cfg.vcpus)?
                    .with_svsm(svsm.bytes(), gpa, metadata);
                Self {
                    firmware,
                    config: cfg,
                    vmsas: Vmsas::Ovmf(OvmfVmsas::same(cfg.vcpus, vmsa)),
                    plan: Plan::Ovmf(plan),
                }
            }
            Firmware::Krun(images) => {
                if cfg.mode == SevMode::Sev {
                    return Err(LaunchError::KrunMode(cfg.mode));
                }
                refusal::vcpu_count(cfg.vcpus, cfg.max_vcpus)?;
                refusal::snp_bit(cfg.mode, cfg.guest_features.bits())?;
                // libkrun's SEV-ES was KVM_SEV_ES_INIT (`Launcher::new_es`), its SNP KVM_SEV_INIT2.
                if cfg.mode == SevMode::SevEs {
                    cfg.kvm.init = crate::kvm::VmInit::Legacy;
                }
                let plan = KrunPlan::new(*images, cfg.mode == SevMode::Snp, cfg.vcpus)?;
                let vmsas = match images.regs {
                    KrunRegs::Programmed => {
                        cfg.vmm = VmmType::Krun;
                        OvmfVmsas::with_ap_eip(&cfg, KRUN_AP_EIP)?
                    }
                    KrunRegs::Reset => {
                        // KVM's reset state, untouched, on every vCPU: the kvm VMM type's BSP.
                        cfg.vmm = VmmType::Kvm;
                        OvmfVmsas::same(cfg.vcpus, vcpu_vmsa(&cfg, 0, RESET_VECTOR)?)
                    }
                };
                Self {
                    firmware,
                    config: cfg,
                    vmsas: Vmsas::Ovmf(vmsas),
                    plan: Plan::Krun(plan),
                }
            }
            Firmware::Igvm { file, platform } => {
                cfg.mode = platform_mode(platform)
                    .ok_or(LaunchError::NotSev(platform_name(platform.platform_type)))?;
                let vmsas = match cfg.mode.has_vmsas() {
                    true => {
                        let v = IgvmVmsas::new(file, *platform, cfg)?;
                        cfg = *v.config();
                        Vmsas::Igvm(v)
                    }
                    false => Vmsas::None,
                };
                let plan = IgvmPlan::new(file, platform, cfg.mode, cfg.igvm)?;
                Self {
                    firmware,
                    config: cfg,
                    vmsas,
                    plan: Plan::Igvm(plan),
                }
            }
        };
        // Every VMSA the digest measures can be made (KVM accepts it; QEMU copies it, for the
        // qemu profile). The IGVM spec and igvmmeasure digests measure the file's contexts in
        // place, not these: those are made (and refused) when asked for.
        if launch.measures_vmsas() {
            for v in launch.vmsas() {
                v?;
            }
        }
        Ok(launch)
    }

    /// What the guest is launched from.
    pub fn firmware(&self) -> &'f Firmware<'a> {
        self.firmware
    }

    /// The configuration as resolved (an IGVM platform's mode, vCPU 0's context's features).
    pub fn config(&self) -> &LaunchConfig {
        &self.config
    }

    /// SEV, SEV-ES or SNP.
    pub fn mode(&self) -> SevMode {
        self.config.mode
    }

    /// How many VMSAs the launch has: one per vCPU, none for plain SEV.
    pub fn vcpus(&self) -> u32 {
        match self.vmsas {
            Vmsas::None => 0,
            Vmsas::Ovmf(_) | Vmsas::Igvm(_) => self.config.vcpus,
        }
    }

    /// The vCPU index from which every vCPU's launch VMSA is the same page, when the launch has
    /// one: 1 for OVMF launches (the APs share one page) and SVSM launches (every vCPU starts
    /// in the SVSM); none for IGVM files (their VP contexts differ). A caller walking many vCPU
    /// counts hashes each distinct page once.
    pub fn shared_vmsa_from(&self) -> Option<u32> {
        match self.vmsas {
            Vmsas::Ovmf(_) => Some(1),
            Vmsas::None | Vmsas::Igvm(_) => None,
        }
    }

    /// vCPU `cpu`'s launch VMSA: the page KVM measures for it. For the qemu IGVM profile a VP
    /// context becomes the page KVM builds from the registers QEMU copies.
    pub fn vmsa(&self, cpu: u32) -> Result<LaunchVmsa, LaunchError> {
        if cpu >= self.vcpus() {
            return Err(LaunchError::Refused(refusal::Refusal::TooManyVcpus {
                vcpus: cpu.saturating_add(1),
                max: self.vcpus(),
            }));
        }
        match &self.vmsas {
            Vmsas::None => Err(LaunchError::PlainSev),
            Vmsas::Ovmf(v) => v.get(cpu).ok_or(LaunchError::PlainSev),
            Vmsas::Igvm(v) => {
                let entry = v.entry(cpu)?;
                match self.config.igvm.profile {
                    IgvmProfile::Qemu => v.as_launched(entry),
                    IgvmProfile::Spec | IgvmProfile::Igvmmeasure => Ok(entry),
                }
            }
        }
    }

    /// Every vCPU's launch VMSA, in index (measurement) order.
    pub fn vmsas(&self) -> impl Iterator<Item = Result<LaunchVmsa, LaunchError>> + '_ {
        (0..self.vcpus()).map(|cpu| self.vmsa(cpu))
    }

    /// Whether KVM (behind the configured VMM path) would reproduce `vmsa` exactly.
    pub fn fidelity<'v>(&self, vmsa: &'v LaunchVmsa) -> Fidelity<'v> {
        vmsas::fidelity(&self.config, vmsa)
    }

    /// Strict mode: refuses the first VP context KVM would not reproduce exactly.
    pub fn check_strict(&self) -> Result<(), LaunchError> {
        for v in self.vmsas() {
            let v = v?;
            let VmsaSource::Context { at, .. } = v.source else {
                continue;
            };
            let f = self.fidelity(&v);
            if !f.is_exact() {
                return Err(LaunchError::NotReproducible {
                    cpu_index: v.cpu_index,
                    at,
                    refusals: f.refusals().len(),
                    fields: f.findings().count(),
                });
            }
        }
        Ok(())
    }

    /// What the VMM sends and KVM measures, in order: the pages, then every vCPU's VMSA.
    /// Refused for plain SEV (not launched here) and for a measuring tool's IGVM profile.
    pub fn updates(&self) -> Result<impl Iterator<Item = LaunchUpdate<'_>> + '_, LaunchError> {
        if self.config.mode == SevMode::Sev {
            return Err(LaunchError::PlainSev);
        }
        if self.config.igvm.profile == IgvmProfile::Igvmmeasure
            && matches!(self.plan, Plan::Igvm(_))
        {
            return Err(LaunchError::DigestOnlyProfile(IgvmProfile::Igvmmeasure));
        }
        Ok(self.in_order(Order::Kvm))
    }

    /// Whether the digest measures the launch VMSAs ([`Launch::vmsa`]) rather than the file's
    /// VP contexts where they stand.
    fn measures_vmsas(&self) -> bool {
        match self.plan {
            Plan::Ovmf(_) | Plan::Krun(_) => true,
            Plan::Igvm(_) => self.config.igvm.profile == IgvmProfile::Qemu,
        }
    }

    /// What the digest hashes, in order: [`Launch::updates`], except for the IGVM spec and
    /// igvmmeasure profiles, which measure each VP context where it stands in the file.
    pub fn measured_updates(&self) -> impl Iterator<Item = LaunchUpdate<'_>> + '_ {
        let order = match self.config.igvm.profile {
            IgvmProfile::Spec | IgvmProfile::Igvmmeasure => Order::File,
            IgvmProfile::Qemu => Order::Kvm,
        };
        self.in_order(order)
    }

    fn in_order(&self, order: Order) -> impl Iterator<Item = LaunchUpdate<'_>> + '_ {
        match &self.plan {
            // (the first two kinds of plan: their updates and the VMSAs, in one order)
            Plan::Ovmf(p) => Either::A(Either::<_, _, core::iter::Empty<_>>::A(p.updates())),
            Plan::Krun(p) => Either::A(Either::B(p.updates())),
            Plan::Igvm(p) if order == Order::File => Either::B(p.updates(Order::File)),
            Plan::Igvm(p) => Either::C(
                p.updates(Order::Kvm)
                    .chain((0..self.vcpus()).filter_map(|cpu| self.igvm_vmsa_update(cpu))),
            ),
        }
    }

    /// vCPU `cpu`'s VMSA as the last update of an IGVM launch: at 0xFFFFFFFFF000 for SNP
    /// (SEV-ES: the context's GPA), named by its VP context header when it has one.
    fn igvm_vmsa_update(&self, cpu: u32) -> Option<LaunchUpdate<'_>> {
        let Vmsas::Igvm(v) = &self.vmsas else {
            return None;
        };
        let snp = self.config.mode == SevMode::Snp;
        let (kind, gpa) = match v.last_context(cpu) {
            Some(LaunchVmsa {
                source: VmsaSource::Context { at, .. },
                gpa,
                ..
            }) => (
                ItemKind::IgvmDirective {
                    header_index: at.index,
                },
                gpa,
            ),
            _ => (ItemKind::Vmsa { cpu }, VMSA_GPA),
        };
        Some(LaunchUpdate {
            kind,
            gpa: if snp { VMSA_GPA } else { gpa },
            len: PAGE_SIZE,
            page_type: snp.then_some(PageType::VMSA),
            source: UpdateSource::Vmsa { cpu },
        })
    }

    /// The launch digest ([`Launch::measured_updates`] hashed), every step reported to
    /// `observer`; whole pages of firmware hashed by `hasher`.
    pub fn digest<O: Observer>(
        &self,
        hasher: &dyn PageHasher,
        observer: O,
    ) -> Result<(Digest, O), LaunchError> {
        self.digest_of(&mut self.measured_updates(), None, hasher, observer)
    }

    /// The digest of what the launch sends ([`Launch::updates`], KVM's order): what the
    /// attestation report's MEASUREMENT (SNP) or the firmware's LD (SEV-ES) will be. It equals
    /// [`Launch::digest`] except where [`Launch::file_digest_difference`] says why not.
    pub fn launch_digest<O: Observer>(
        &self,
        hasher: &dyn PageHasher,
        observer: O,
    ) -> Result<(Digest, O), LaunchError> {
        self.digest_of(&mut self.updates()?, None, hasher, observer)
    }

    /// The SNP digest with the firmware pages already measured into `seed` (sev-snp-measure's
    /// `--snp-ovmf-hash`): the rest of the launch, from `seed`.
    pub fn digest_from_seed<O: Observer>(
        &self,
        seed: [u8; 48],
        observer: O,
    ) -> Result<(Digest, O), LaunchError> {
        let mut rest = self
            .measured_updates()
            .filter(|u| u.kind != ItemKind::Firmware);
        if matches!(self.firmware, Firmware::Svsm { .. }) {
            return Err(LaunchError::SvsmSeed);
        }
        self.digest_of(&mut rest, Some(seed), &crate::measure::Sha2Pages, observer)
    }

    /// SNP: the launch digest just before the first VMSA, from `seed` (after the firmware
    /// pages, as [`firmware_digest`] gives them) or from the start: every vCPU count of one
    /// configuration continues from it with one `PAGE_INFO` per VMSA (`vmsa solve`, the page's
    /// neighbourhood search). `None` unless the launch measures every VMSA after every other
    /// page (OVMF and SVSM launches, IGVM's qemu profile) and is SNP.
    pub fn digest_before_vmsas(
        &self,
        seed: Option<[u8; 48]>,
    ) -> Result<Option<[u8; 48]>, LaunchError> {
        /// The digest before the first VMSA, and whether a page came after a VMSA.
        struct Before {
            ld: [u8; 48],
            seen_vmsa: bool,
            page_after_vmsa: bool,
        }
        impl Observer for Before {
            fn measured(&mut self, item: &crate::measure::MeasuredItem) {
                if item.page_type == Some(PageType::VMSA) {
                    self.seen_vmsa = true;
                } else if self.seen_vmsa {
                    self.page_after_vmsa = true;
                } else {
                    self.ld = item.digest_after;
                }
            }
        }
        if self.config.mode != SevMode::Snp || !self.measures_vmsas() {
            return Ok(None);
        }
        let start = Before {
            ld: seed.unwrap_or([0; 48]),
            seen_vmsa: false,
            page_after_vmsa: false,
        };
        let (_, b) = match seed {
            Some(s) => self.digest_from_seed(s, start)?,
            None => self.digest(&crate::measure::Sha2Pages, start)?,
        };
        Ok((!b.page_after_vmsa).then_some(b.ld))
    }

    fn digest_of<'u, O: Observer>(
        &self,
        updates: &mut dyn Iterator<Item = LaunchUpdate<'u>>,
        seed: Option<[u8; 48]>,
        hasher: &dyn PageHasher,
        observer: O,
    ) -> Result<(Digest, O), LaunchError> {
        let vmsa = |cpu| self.vmsa(cpu).map(|v| v.vmsa);
        Ok(match self.config.mode {
            SevMode::Snp => {
                let (d, o) =
                    digest::snp(updates, &vmsa, seed.unwrap_or([0; 48]), hasher, observer)?;
                (Digest::Sha384(d), o)
            }
            SevMode::Sev | SevMode::SevEs => {
                let (d, o) = digest::sev(updates, &vmsa, observer)?;
                (Digest::Sha256(d), o)
            }
        })
    }

    /// The `ld` of the IGVM platform's `SNP_ID_BLOCK`: the digest the file says it launches
    /// with (the last block, if several).
    pub fn id_block_ld(&self) -> Option<[u8; 48]> {
        match &self.plan {
            Plan::Igvm(p) => p.id_block_ld(),
            Plan::Ovmf(_) | Plan::Krun(_) => None,
        }
    }

    /// IGVM: why KVM's launch ([`Launch::updates`]) does not give the file's own digest (the
    /// spec profile's), if it does not.
    pub fn file_digest_difference(&self) -> Option<FileDigestDifference> {
        let (Plan::Igvm(p), Vmsas::Igvm(v)) = (&self.plan, &self.vmsas) else {
            return None;
        };
        let sources = (0..self.config.vcpus).map(|cpu| match v.last_context(cpu) {
            Some(c) => (cpu, c.source, c.gpa),
            None => (cpu, VmsaSource::Reset, VMSA_GPA),
        });
        p.file_digest_difference(sources).err()
    }
}

/// The SNP digest of an OVMF image's pages alone, as the first update of every SNP launch of
/// it measures them (sev-snp-measure's `snp:ovmf-hash`, the seed of `--snp-ovmf-hash`).
pub fn firmware_digest<O: Observer>(
    image: &[u8],
    hasher: &dyn PageHasher,
    observer: O,
) -> Result<([u8; 48], O), LaunchError> {
    check_firmware_size(image)?;
    if image.is_empty() || image.len() as u64 % PAGE_SIZE != 0 {
        return Err(crate::measure::MeasureError::NotPageMultiple {
            what: "the firmware image",
            len: image.len() as u64,
        }
        .into());
    }
    let update = ovmf::firmware_update(image, SevMode::Snp);
    let no_vmsa = |cpu| {
        Err(LaunchError::Refused(refusal::Refusal::TooManyVcpus {
            vcpus: cpu,
            max: 0,
        }))
    };
    digest::snp(
        &mut core::iter::once(update),
        &no_vmsa,
        [0; 48],
        hasher,
        observer,
    )
}

/// Refuses an image QEMU would not load ([`MAX_FIRMWARE_SIZE`]).
fn check_firmware_size(image: &[u8]) -> Result<(), LaunchError> {
    let len = image.len() as u64;
    if len > MAX_FIRMWARE_SIZE {
        return Err(LaunchError::FirmwareTooLarge {
            len,
            max: MAX_FIRMWARE_SIZE,
        });
    }
    Ok(())
}

/// One of three iterators.
enum Either<A, B, C> {
    A(A),
    B(B),
    C(C),
}

impl<T, A, B, C> Iterator for Either<A, B, C>
where
    A: Iterator<Item = T>,
    B: Iterator<Item = T>,
    C: Iterator<Item = T>,
{
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            Self::A(a) => a.next(),
            Self::B(b) => b.next(),
            Self::C(c) => c.next(),
        }
    }
}
