//! What each Linux KVM release does to an SEV-ES/SNP VMSA and its measurement, from 5.19 on.
//!
//! Read from `arch/x86/kvm/svm/sev.c` (`sev_es_sync_vmsa`, `__sev_guest_init`,
//! `sev_guest_init`, `sev_hardware_setup`, `snp_launch_update_vmsa`) of Debian's
//! `linux-source` 6.1.176, 6.12.117, 7.2.13 and 7.3.4, and placed in releases by the commits'
//! merge-window pulls and kernel.org push logs. What stays the same across every row: the
//! VMCB save area copied into the page, the GPRs, RIP, XCR0, PKRU, XSS and DR6 written after
//! it, `vmpl` 0, every SNP VMSA measured at `INITIAL_VMSA_GPA` 0xFFFFFFFFF000 in vCPU order at
//! `SNP_LAUNCH_FINISH`, and KVM never writing the guest's `tsc_aux` (0x2ec).

use super::{Change, Version};
use crate::flags::SevFeatures;

/// What `KVM_SEV_ES_INIT` (the legacy init) puts in `sev_features`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LegacyDebugSwap {
    /// Nothing: `sev_features` 0.
    Never,
    /// DebugSwap (0x20) on hosts whose CPU has it (`X86_FEATURE_DEBUG_SWAP` and
    /// `NO_NESTED_DATA_BP`: Zen 4 and later), by default (`kvm_amd.debug_swap=1`).
    OnCapableHosts,
    /// Nothing by default; DebugSwap with `kvm_amd.debug_swap=1` on a capable host.
    ParamOff,
}

/// One Linux release line's behaviour: it holds from [`Kernel::from`] until the next row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Kernel {
    /// The first release that behaves so.
    pub from: Version,
    /// `KVM_SEV_ES_INIT`'s `sev_features`.
    pub legacy_debug_swap: LegacyDebugSwap,
    /// `KVM_SEV_INIT2` and the SEV/SEV-ES VM types exist (the VMM chooses `vmsa_features`,
    /// and the FPU state is copied into the VMSA for those VM types).
    pub init2: bool,
    /// SEV-SNP (`KVM_X86_SNP_VM`, `KVM_SEV_SNP_LAUNCH_*`).
    pub snp: bool,
    /// What `KVM_X86_SEV_VMSA_FEATURES` can offer (on a CPU that has them).
    pub offers: SevFeatures,
    /// `sev_es_sync_vmsa` prints the VMSA (`vmsa capture` reads it): not at all, always (the
    /// `KERN_CONT` bug of 6.0), or as a `pr_debug` under dynamic debug.
    pub dump: Dump,
    /// The changes that start this row.
    pub changes: &'static [Change],
}

/// Whether and how KVM prints the VMSA it encrypts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Dump {
    /// No dump.
    None,
    /// Printed at every launch (6.0: `print_hex_dump(KERN_CONT, …)`).
    Always,
    /// `print_hex_dump_debug("", DUMP_PREFIX_NONE, 16, 1, save, sizeof(*save), false)` after
    /// `pr_debug("Virtual Machine Save Area (VMSA):\n")`: with `DYNAMIC_DEBUG` enabled for
    /// `sev.c`.
    Debug,
}

const NONE: SevFeatures = SevFeatures::empty();
const DS: SevFeatures = SevFeatures::DEBUG_SWAP;
const DS_STSC: SevFeatures = SevFeatures::DEBUG_SWAP.union(SevFeatures::SECURE_TSC);

/// Every row, oldest first. A release between two rows behaves as the earlier one.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        from: Version::new(5, 19),
        legacy_debug_swap: LegacyDebugSwap::Never,
        init2: false,
        snp: false,
        offers: NONE,
        dump: Dump::None,
        changes: &[Change {
            commit: "296d5a17e793",
            subject: "KVM: SEV-ES: Use V_TSC_AUX if available instead of RDTSC/MSR_TSC_AUX intercepts",
            effect: "the table's start: SEV-ES by KVM_SEV_ES_INIT only, sev_features 0, no FPU state in the VMSA (FCW and MXCSR 0); TSC_AUX interception only, the VMSA unchanged",
        }],
    },
    Kernel {
        from: Version::new(6, 0),
        legacy_debug_swap: LegacyDebugSwap::Never,
        init2: false,
        snp: false,
        offers: NONE,
        dump: Dump::Always,
        changes: &[Change {
            commit: "6fac42f127b8",
            subject: "KVM: SVM: Dump Virtual Machine Save Area (VMSA) to klog",
            effect: "the VMSA printed at LAUNCH_UPDATE_VMSA (KERN_CONT: at every launch); the page unchanged",
        }],
    },
    Kernel {
        from: Version::new(6, 1),
        legacy_debug_swap: LegacyDebugSwap::Never,
        init2: false,
        snp: false,
        offers: NONE,
        dump: Dump::Debug,
        changes: &[Change {
            commit: "0bd8bd2f7a78",
            subject: "KVM: SVM: Only dump VMSA to klog at KERN_DEBUG level",
            effect: "the dump only under dynamic debug, in the format vmsa capture reads",
        }],
    },
    Kernel {
        from: Version::new(6, 6),
        legacy_debug_swap: LegacyDebugSwap::OnCapableHosts,
        init2: false,
        snp: false,
        offers: NONE,
        dump: Dump::Debug,
        changes: &[
            Change {
                commit: "d1f85fbe836e",
                subject: "KVM: SEV: Enable data breakpoints in SEV-ES",
                effect: "kvm_amd.debug_swap, default on where the CPU has DebugSwap (Zen 4 and later): the SEV-ES VMSA's sev_features 0x20, not 0 — another measurement",
            },
            Change {
                commit: "f67063414c0e",
                subject: "KVM: SVM: correct the size of spec_ctrl field in VMCB save area",
                effect: "744 bytes of the VMCB save area copied, not 740: the 4 more are 0 at launch, the page unchanged",
            },
        ],
    },
    Kernel {
        from: Version::new(6, 8),
        legacy_debug_swap: LegacyDebugSwap::ParamOff,
        init2: false,
        snp: false,
        offers: NONE,
        dump: Dump::Debug,
        changes: &[Change {
            commit: "5abf6dceb066",
            subject: "SEV: disable SEV-ES DebugSwap by default",
            effect: "kvm_amd.debug_swap default off: sev_features 0 again unless the module parameter is set (also in 6.6.y and 6.7.y stable)",
        }],
    },
    Kernel {
        from: Version::new(6, 10),
        legacy_debug_swap: LegacyDebugSwap::Never,
        init2: true,
        snp: false,
        offers: DS,
        dump: Dump::Debug,
        changes: &[
            Change {
                commit: "4f5defae7089",
                subject: "KVM: SEV: introduce KVM_SEV_INIT2 operation",
                effect: "the VMM chooses vmsa_features (a subset of KVM_X86_SEV_VMSA_FEATURES); the legacy KVM_SEV_ES_INIT always 0, whatever kvm_amd.debug_swap says",
            },
            Change {
                commit: "eb4441864e03",
                subject: "KVM: SEV: sync FPU and AVX state at LAUNCH_UPDATE_VMSA time",
                effect: "for VMs made by KVM_SEV_INIT2 only: the guest FPU copied into the VMSA (FCW 0x37f, MXCSR 0x1f80 by default, x87/XMM/YMM registers); the legacy init keeps them 0",
            },
            Change {
                commit: "4dd5ecacb9a4",
                subject: "KVM: SEV: allow SEV-ES DebugSwap again",
                effect: "DebugSwap offered in KVM_X86_SEV_VMSA_FEATURES (ac5c48027bac), set only when the VMM asks for it",
            },
        ],
    },
    Kernel {
        from: Version::new(6, 11),
        legacy_debug_swap: LegacyDebugSwap::Never,
        init2: true,
        snp: true,
        offers: DS,
        dump: Dump::Debug,
        changes: &[Change {
            commit: "ad27ce155566",
            subject: "KVM: SEV: Add KVM_SEV_SNP_LAUNCH_FINISH command",
            effect: "SEV-SNP (KVM_X86_SNP_VM, INIT2 only; 136d8bc931c8, dee5a47cc7a4): sev_features = vmsa_features | SNP_ACTIVE, every VMSA measured at 0xFFFFFFFFF000, page type VMSA, in vCPU order at SNP_LAUNCH_FINISH",
        }],
    },
    Kernel {
        from: Version::new(6, 18),
        legacy_debug_swap: LegacyDebugSwap::Never,
        init2: true,
        snp: true,
        offers: DS_STSC,
        dump: Dump::Debug,
        changes: &[Change {
            commit: "a311fce2b694",
            subject: "KVM: SVM: Enable Secure TSC for SNP guests",
            effect: "Secure TSC (0x200) offered for SNP on CPUs that have it: sev_features 0x201 or 0x221 when the VMM asks; SNP_LAUNCH_START's desired_tsc_khz from KVM_SET_TSC_KHZ",
        }],
    },
    Kernel {
        from: Version::new(7, 0),
        legacy_debug_swap: LegacyDebugSwap::Never,
        init2: true,
        snp: true,
        offers: DS_STSC,
        dump: Dump::Debug,
        changes: &[Change {
            commit: "9587dd7a7ebd",
            subject: "KVM: SVM: Drop the module param to control SEV-ES DebugSwap",
            effect: "kvm_amd.debug_swap gone: DebugSwap offered wherever the CPU has it; no VMSA default changes (7.1's VMSA-sync locking, cb923ee6a80f, and 7.2/7.3 leave the page as it is)",
        }],
    },
];

impl LegacyDebugSwap {
    /// The `sev_features` the legacy init gives on a host whose CPU has DebugSwap or not, with
    /// the module parameter at its default.
    pub const fn features(self, capable_host: bool) -> SevFeatures {
        match self {
            Self::OnCapableHosts if capable_host => SevFeatures::DEBUG_SWAP,
            _ => SevFeatures::empty(),
        }
    }
}
