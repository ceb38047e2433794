//! What decides a launch besides the firmware: the mode, the vCPUs, who programs them, the host,
//! the kernel hashes, and how an IGVM file is read.

use crate::cpu::CpuSignature;
use crate::flags::SevFeatures;
use crate::hash_table::SevHashes;
use crate::host::{ApFpu, Host, HostError, LegacyDebugSwap, Version};
use crate::kvm::{KvmParams, VmmPath};
use crate::mode::SevMode;
use crate::reset::VmmType;

/// The largest vCPU count accepted: QEMU q35 `max_cpus` (4096 since QEMU 9.0) and KVM's
/// `KVM_MAX_VCPUS` ceiling (`CONFIG_KVM_MAX_NR_VCPUS` ≤ 4096).
pub const MAX_VCPUS: u32 = 4096;

/// Everything that decides a launch besides the firmware.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LaunchConfig {
    /// SEV, SEV-ES or SNP. For an IGVM file the selected platform decides it.
    pub mode: SevMode,
    /// vCPU count (1..=`max_vcpus`).
    pub vcpus: u32,
    /// The vCPU signature (RDX at reset for QEMU).
    pub signature: CpuSignature,
    /// Who programs the vCPUs, and how it measures the `ASEV` sections.
    pub vmm: VmmType,
    /// `sev_features` of every VMSA, as sev-snp-measure's `--guest-features`: for SNP it must
    /// include SNP_ACTIVE (default 0x1); for SEV-ES it must not (default 0). The bits besides
    /// SNP_ACTIVE are `KVM_SEV_INIT2`'s `vmsa_features`. For an IGVM file, vCPU 0's VP context
    /// decides them when it has one.
    pub guest_features: SevFeatures,
    /// The KVM host facts (host CR4.MCE, INIT2 or legacy init, CD/NW quirk) for the `qemu` and
    /// `kvm` VMM types; EC2 and GCE are not KVM and ignore them.
    pub kvm: KvmParams,
    /// The most vCPUs the platform allows ([`MAX_VCPUS`]).
    pub max_vcpus: u32,
    /// The hashes of a direct-boot kernel, initrd and command line (`-kernel` with
    /// `kernel-hashes=on`), installed in the firmware's hash table.
    pub kernel: Option<SevHashes>,
    /// How an IGVM file is read and measured.
    pub igvm: IgvmOptions,
    /// Who programs the vCPUs from an IGVM file's VP contexts: QEMU (the registers it copies
    /// into KVM) or a VMM that programs every register (`vmsa-kvm`).
    pub path: VmmPath,
    /// Whose SVSM VMSA an SVSM launch ([`crate::launch::Firmware::Svsm`]) measures.
    pub svsm: SvsmProfile,
    /// What QEMU leaves in the APs' FCW and MXCSR (QEMU ≥ 10.1: 0; [`crate::host::qemu`]).
    /// The `qemu` VMM type of an OVMF launch only.
    pub ap_fpu: ApFpu,
}

impl LaunchConfig {
    /// A configuration with the common defaults: guest features SNP_ACTIVE for SNP and 0
    /// otherwise, [`KvmParams::default`], [`MAX_VCPUS`], no kernel, the IGVM spec profile, QEMU.
    pub fn new(mode: SevMode, vcpus: u32, signature: CpuSignature, vmm: VmmType) -> Self {
        Self {
            mode,
            vcpus,
            signature,
            vmm,
            guest_features: default_features(mode),
            kvm: KvmParams::default(),
            max_vcpus: MAX_VCPUS,
            kernel: None,
            igvm: IgvmOptions::default(),
            path: VmmPath::Qemu,
            svsm: SvsmProfile::Launch,
            ap_fpu: ApFpu::Reset,
        }
    }
}

impl LaunchConfig {
    /// Applies the host Linux `kernel` and QEMU `qemu` make ([`Host::resolve_with`]; either may
    /// be unknown, `init2_asked` for `sev-guest,legacy-vm-type=off`) to this configuration,
    /// whose mode, VMM and signature are set: the init, the features KVM offers or imposes,
    /// what QEMU leaves in the APs, and the guest features unless `explicit` ones are given —
    /// which must then be ones the host can give. On Linux 6.6–6.9, whose legacy init gives
    /// DebugSwap on some hosts and not others, explicit DebugSwap says which host this is.
    pub fn apply_host(
        &mut self,
        kernel: Option<Version>,
        qemu: Option<Version>,
        init2_asked: bool,
        explicit: Option<SevFeatures>,
        igvm: bool,
    ) -> Result<Host, HostError> {
        if qemu.is_some() && self.vmm != VmmType::Qemu {
            return Err(HostError::NotQemu(self.vmm.name()));
        }
        let host = Host::resolve_with(kernel, qemu, self.mode, igvm, self.signature, init2_asked)?;
        self.kvm = host.kvm(self.kvm);
        self.ap_fpu = host.ap_fpu;
        match (explicit, host.features) {
            (None, Some(f)) => self.guest_features = f,
            (None, None) => {}
            (Some(f), _)
                if f == SevFeatures::DEBUG_SWAP
                    && self.kvm.init == crate::kvm::VmInit::Legacy
                    && host
                        .kernel
                        .is_some_and(|k| k.legacy_debug_swap != LegacyDebugSwap::Never) =>
            {
                self.kvm.legacy_features = f;
                self.guest_features = f;
            }
            (Some(f), Some(gives)) if f != gives => {
                return Err(match (qemu, self.mode) {
                    (Some(qemu), SevMode::Snp) => HostError::QemuFeatures {
                        qemu,
                        gives: gives.bits(),
                        asked: f.bits(),
                    },
                    _ => HostError::LegacyFeatures {
                        gives: gives.bits(),
                        asked: f.bits(),
                    },
                });
            }
            (Some(f), _) => self.guest_features = f,
        }
        Ok(host)
    }
}

/// The guest features a mode has unless told otherwise: SNP_ACTIVE for SNP, none otherwise.
pub const fn default_features(mode: SevMode) -> SevFeatures {
    match mode {
        SevMode::Snp => SevFeatures::SNP_ACTIVE,
        SevMode::Sev | SevMode::SevEs => SevFeatures::empty(),
    }
}

/// How an IGVM file is measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IgvmOptions {
    /// Measure NORMAL pages without data as ZERO pages (igvmmeasure `--native-zero`) instead of
    /// NORMAL pages of zeros.
    pub native_zero: bool,
    /// Whose reading of the file the digest follows.
    pub profile: IgvmProfile,
}

/// Whose reading of an IGVM file the digest follows. Each is a variant of one launch plan
/// (`crate::launch::igvm`), sharing one page-type table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IgvmProfile {
    /// The IGVM specification, as the `igvm` crate's `generate_snp_measurement` measures a
    /// file (SEV/SEV-ES: as QEMU's `LAUNCH_UPDATE_DATA` sequence): the directives in file
    /// order, each VP context's VMSA where it stands and at its GPA. Launched, the same pages
    /// go to KVM, which measures every vCPU's VMSA last: `Launch::file_digest_difference` says
    /// when the two digests differ.
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
    ///
    /// A measuring tool's digest, not a launch: nothing launches it.
    Igvmmeasure,
    /// What QEMU 10.1/10.2 + KVM measure when QEMU launches the file (`backends/igvm.c`,
    /// `target/i386/sev.c`): as [`IgvmProfile::Spec`], except that `shared` pages are measured
    /// (QEMU never reads the flag: a QEMU bug against the spec); on SNP a `PARAMETER_INSERT` is
    /// measured ahead of the run of contiguous `PAGE_DATA` before it (QEMU sends page runs only
    /// when the next page breaks them); a 2 MiB page is 512 pages, the first holding the file's
    /// 4 KiB of data; empty pages are always NORMAL; and the VMSAs are KVM's, built from the
    /// fields QEMU copies, for every vCPU, last.
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

/// Whose VMSA an SVSM launch (sev-snp-measure's `snp:svsm`) measures for every vCPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SvsmProfile {
    /// The launch the mode models, as it was measured: coconut-svsm's QEMU fork (0e64fb84) on
    /// its host kernel (e1335c6f0, Linux 6.5 based), whose `sev_es_sync_vmsa` copies no FPU
    /// state: MXCSR 0 and FCW 0. sev-snp-measure's own first test digests (commit 0a1396f,
    /// "obtained" from that launch per its fixtures README) are this profile's.
    #[default]
    Launch,
    /// sev-snp-measure 0.0.13: MXCSR 0x1f80 and FCW 0. Its commit ae95e59 ("Update the VMSA to
    /// match latest upstream kernel", for `KVM_SEV_INIT2`) gave the SVSM VMSA MXCSR 0x1f80 and
    /// meant FCW 0x37f, but passes `fcw=` to a structure whose field is `x87_fcw`, so FCW stays
    /// 0; and the fork's kernel has no INIT2. A page no kernel produces: a peer bug, kept here
    /// to reproduce its digests and `--dump-vmsa` files byte for byte.
    SevSnpMeasure,
}

impl SvsmProfile {
    /// Every profile, in the order the command line lists them.
    pub const ALL: [Self; 2] = [Self::Launch, Self::SevSnpMeasure];

    /// The profile's command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Launch => "launch",
            Self::SevSnpMeasure => "sev-snp-measure",
        }
    }

    /// The profile named `name` (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}
