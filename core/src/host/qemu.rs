//! What each QEMU release from 7.2 to 10.2 does to an SEV-ES/SNP launch.
//!
//! Read from `target/i386/sev.c`, `target/i386/kvm/kvm.c`, `target/i386/cpu.c`,
//! `hw/i386/pc.c`, `hw/i386/pc_sysfw_ovmf.c` and `backends/igvm.c` at each release's "Update
//! version for … release" commit (7.2.0 `b67b00e6b4c7` … 10.2.0 `698104725efa`). What stays the
//! same across every row: the firmware measured first (NORMAL pages), then the `ASEV` sections
//! in table order (SEC_MEM → ZERO, SECRETS, CPUID, kernel hashes → NORMAL with
//! `kernel-hashes=on` or ZERO, any other type — SVSM CAA among them — ZERO), then the VMSAs;
//! every vCPU's RDX the CPU signature, every AP at the SEV-ES reset block's CS:IP; no
//! `debug-swap`, `secure-tsc` or `tsc-frequency` property (proposed in 2025, not merged by 10.2).

use super::{Change, Version};

/// The FPU control words QEMU leaves in an AP before `LAUNCH_UPDATE_VMSA` (they reach the VMSA
/// only under `KVM_SEV_INIT2`, where KVM copies the guest FPU).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ApFpu {
    /// The x86 reset values (`x86_cpu_reset_hold`: FCW 0x37f, MXCSR 0x1f80), as on the BSP.
    Reset,
    /// 0 and 0: since 4c7f0976b0d2 the APs' state is re-applied from a launch VMSA that
    /// `initialize_vmsa` fills without `x87_fcw` and `mxcsr` (`sev.c` 10.2 lines 2181–2236),
    /// and `sev_apply_cpu_context` writes them back (lines 482–483). The BSP keeps the reset
    /// values. (Read from the source; not run on SNP hardware here.)
    Zero,
}

/// One QEMU release line's behaviour: it holds from [`Qemu::from`] until the next row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Qemu {
    /// The first release that behaves so.
    pub from: Version,
    /// `sev-snp-guest` exists (always `KVM_SEV_INIT2`, `vmsa_features` 0, policy 0x30000).
    pub snp: bool,
    /// `sev-guest,legacy-vm-type=off` asks for `KVM_SEV_INIT2`; the default (`auto`, which
    /// `sev_init2_required` makes legacy in every release to 10.2) keeps `KVM_SEV_ES_INIT`.
    pub init2_on_request: bool,
    /// `-object igvm-cfg` exists (its BSP context's `sev_features` become INIT2's
    /// `vmsa_features`).
    pub igvm: bool,
    /// The APs' FCW and MXCSR.
    pub ap_fpu: ApFpu,
    /// `-kernel` with `kernel-hashes=on` gives a reproducible hash table with the release's own
    /// machine type (7.2's `pc-*-7.2` adds a random RNG seed to the hashed kernel).
    pub kernel_hashes_reproducible: bool,
    /// The changes that start this row.
    pub changes: &'static [Change],
}

/// Every row, oldest first. A release between two rows behaves as the earlier one.
pub const QEMUS: &[Qemu] = &[
    Qemu {
        from: Version::new(7, 2),
        snp: false,
        init2_on_request: false,
        igvm: false,
        ap_fpu: ApFpu::Reset,
        kernel_hashes_reproducible: false,
        changes: &[Change {
            commit: "67f7e426e538",
            subject: "hw/i386: pass RNG seed via setup_data entry",
            effect: "the table's start: SEV and SEV-ES by the legacy KVM_SEV_INIT/KVM_SEV_ES_INIT only, no VMSA features; with a pc-*-7.2 machine a random SETUP_RNG_SEED is appended to the kernel QEMU hashes, so kernel-hashes=on gives no reproducible measurement (pc-q35-7.1 avoids it)",
        }],
    },
    Qemu {
        from: Version::new(8, 0),
        snp: false,
        init2_on_request: false,
        igvm: false,
        ap_fpu: ApFpu::Reset,
        kernel_hashes_reproducible: true,
        changes: &[Change {
            commit: "167f4873580d",
            subject: "Revert \"hw/i386: pass RNG seed via setup_data entry\"",
            effect: "kernel hashes reproducible again (8.1's reduced-phys-bits checks and 8.2's EFER.LMA fix change no measured byte)",
        }],
    },
    Qemu {
        from: Version::new(9, 1),
        snp: true,
        init2_on_request: true,
        igvm: false,
        ap_fpu: ApFpu::Reset,
        kernel_hashes_reproducible: true,
        changes: &[
            Change {
                commit: "7b34df44260b",
                subject: "i386/sev: Introduce 'sev-snp-guest' object",
                effect: "SEV-SNP: KVM_X86_SNP_VM by KVM_SEV_INIT2 with vmsa_features 0 (sev_features 0x1), the FPU state copied into every VMSA; kernel hashes through ASEV section 0x10 (c1996992cc88)",
            },
            Change {
                commit: "663e2f443e57",
                subject: "target/i386: SEV: use KVM_SEV_INIT2 if possible",
                effect: "sev-guest can be made by KVM_SEV_INIT2 (vmsa_features 0, FPU state in the VMSA: FCW 0x37f, MXCSR 0x1f80)",
            },
            Change {
                commit: "9d38d9dca2a8",
                subject: "i386/sev: Don't allow automatic fallback to legacy KVM_SEV*_INIT",
                effect: "legacy-vm-type on/off/auto, default auto, which stays legacy (sev_init2_required is false through 10.2): SEV-ES keeps KVM_SEV_ES_INIT unless legacy-vm-type=off",
            },
        ],
    },
    Qemu {
        from: Version::new(10, 1),
        snp: true,
        init2_on_request: true,
        igvm: true,
        ap_fpu: ApFpu::Zero,
        kernel_hashes_reproducible: true,
        changes: &[
            Change {
                commit: "4c7f0976b0d2",
                subject: "i386/sev: Refactor setting of reset vector and initial CPU state",
                effect: "the APs' reset state re-applied from a launch VMSA without x87_fcw and mxcsr: under KVM_SEV_INIT2 (every SNP guest) the APs' VMSAs carry FCW 0 and MXCSR 0, the BSP's 0x37f and 0x1f80 — another measurement from 2 vCPUs on (read from the source)",
            },
            Change {
                commit: "c1d466d267cf",
                subject: "backends/igvm: Add IGVM loader and configuration",
                effect: "-object igvm-cfg: IGVM files, their BSP context's sev_features as INIT2's vmsa_features (d60238b4c1e8); no pflash beside them",
            },
        ],
    },
];
