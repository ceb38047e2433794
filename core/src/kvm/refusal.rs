//! What KVM (or QEMU in front of it) refuses to launch: the one source of these rules. The
//! launch VMSAs of an OVMF image ([`crate::launch`]), the IGVM VP contexts, the fidelity check
//! ([`super::fidelity::check_vmsa`]) and the preflight before the first ioctl
//! ([`super::preflight::Preflight::check`]) all call the checks below, so a rule is written
//! once and every front end refuses the same input with the same words.
//!
//! | rule | where KVM or QEMU checks it |
//! |---|---|
//! | at least one vCPU, at most the platform's maximum | QEMU `-smp` (q35 `max_cpus` 4096), KVM `KVM_MAX_VCPUS` |
//! | VMSA GPA 0xFFFFFFFFF000 | QEMU `check_vmsa_supported` (KVM places every VMSA there) |
//! | SNP_ACTIVE set exactly for SNP | QEMU `check_sev_features`; KVM `__sev_guest_init` refuses bit 0 in `vmsa_features` and `sev_es_sync_vmsa` ORs it in for SNP |
//! | every vCPU's `sev_features` equal vCPU 0's | `sev_es_sync_vmsa` writes `sev->vmsa_features` into every VMSA |
//! | `vmsa_features` ⊆ `KVM_X86_SEV_VMSA_FEATURES`; Secure TSC only for SNP; nothing, and no SNP, under the legacy `KVM_SEV_ES_INIT` | `__sev_guest_init` |
//! | DR7 = 0x400 | `sev_es_sync_vmsa` (`-EINVAL`) |
//! | SNP policy: bit 17 set, MIGRATE_MA clear, nothing outside the allowed bits; SEV policy 32 bits | `snp_launch_start`; `struct kvm_sev_launch_start` |
//!
//! Sources: Linux `arch/x86/kvm/svm/sev.c` (6.11–6.17), QEMU 10.2 `target/i386/sev.c`.

use crate::arch::DR7_RESET;
use crate::flags::SevFeatures;
use crate::mode::SevMode;
use crate::page::VMSA_GPA;

/// Something KVM or QEMU would refuse, found before anything is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Zero vCPUs.
    #[error("a guest needs at least one vCPU")]
    NoVcpus,
    /// More vCPUs than the platform allows.
    #[error("{vcpus} vCPUs is more than the {max} the platform allows")]
    TooManyVcpus {
        /// Requested.
        vcpus: u32,
        /// Allowed.
        max: u32,
    },
    /// QEMU `check_vmsa_supported`: the VMSA GPA must be 0xFFFFFFFFF000 (KVM places it there).
    #[error(
        "VMSA GPA {gpa:#x}: KVM places every VMSA at 0xfffffffff000 and QEMU refuses any other"
    )]
    VmsaGpa {
        /// vCPU index.
        vcpu: u32,
        /// The GPA asked for.
        gpa: u64,
    },
    /// SNP guest features without SNP_ACTIVE (KVM always sets it; QEMU `check_sev_features`).
    #[error("SEV-SNP guest features {0:#x} lack SNP_ACTIVE (bit 0), which KVM always sets for SNP")]
    SnpActiveMissing(u64),
    /// SEV-ES guest features with SNP_ACTIVE.
    #[error("SEV-ES guest features {0:#x} include SNP_ACTIVE (bit 0), which only SNP guests have")]
    SnpActiveWithoutSnp(u64),
    /// A vCPU's `sev_features` differ from the BSP's.
    #[error(
        "vCPU {vcpu} asks for sev_features {this:#x}, the BSP for {bsp:#x}; KVM gives every vCPU the BSP's (KVM_SEV_INIT2 vmsa_features)"
    )]
    FeaturesDisagree {
        /// vCPU index.
        vcpu: u32,
        /// vCPU 0's.
        bsp: u64,
        /// This vCPU's.
        this: u64,
    },
    /// `sev_es_sync_vmsa` returns `-EINVAL` when `dr7 & ~DR7_FIXED_1`.
    #[error(
        "vCPU {vcpu}: DR7 {dr7:#x} has bits besides 0x400; KVM's sev_es_sync_vmsa refuses it (-EINVAL)"
    )]
    Dr7 {
        /// vCPU index.
        vcpu: u32,
        /// The DR7 asked for.
        dr7: u64,
    },
    /// SNP VMs exist only as `KVM_X86_SNP_VM` with `KVM_SEV_INIT2`.
    #[error(
        "an SNP guest needs KVM_SEV_INIT2 (KVM_X86_SNP_VM); the legacy init is SEV/SEV-ES only"
    )]
    LegacySnp,
    /// `KVM_SEV_ES_INIT` imposes `sev_features`: 0 on Linux ≥ 6.10 (and before 6.6), DebugSwap
    /// on 6.6–6.7 hosts that have it.
    #[error(
        "sev_features {features:#x} need KVM_SEV_INIT2; this host's legacy KVM_SEV_ES_INIT always gives {legacy:#x}"
    )]
    LegacyFeatures {
        /// Asked for.
        features: u64,
        /// What the legacy init gives on this host.
        legacy: u64,
    },
    /// `__sev_guest_init` refuses `vmsa_features` outside `KVM_X86_SEV_VMSA_FEATURES`.
    #[error(
        "vmsa_features {features:#x} are not all supported by KVM (supported: {supported:#x}); KVM_SEV_INIT2 fails with -EINVAL"
    )]
    UnsupportedFeatures {
        /// Requested (SNP_ACTIVE removed).
        features: u64,
        /// Supported.
        supported: u64,
    },
    /// Secure TSC is an SNP feature (`__sev_guest_init` drops it from the valid set otherwise).
    #[error("Secure TSC (bit 9) is SNP-only")]
    SecureTscWithoutSnp,
    /// SNP policy bit 17 clear.
    #[error(
        "SNP policy {policy:#x}: bit 17 (reserved, must be one) is clear; KVM's snp_launch_start refuses it (EINVAL)"
    )]
    PolicyReservedClear {
        /// The policy.
        policy: u64,
    },
    /// SNP policy with MIGRATE_MA.
    #[error(
        "SNP policy {policy:#x}: bit 18 (MIGRATE_MA) is set; KVM never allows a migration agent (EINVAL)"
    )]
    PolicyMigrateMa {
        /// The policy.
        policy: u64,
    },
    /// SNP policy bits KVM does not allow.
    #[error(
        "SNP policy {policy:#x}: bits {bits:#x} are not allowed by KVM (allowed: {allowed:#x}: API version, SMT, DEBUG, SINGLE_SOCKET and what KVM_X86_SNP_POLICY_BITS reports)"
    )]
    PolicyBits {
        /// The policy.
        policy: u64,
        /// The refused bits.
        bits: u64,
        /// The allowed mask.
        allowed: u64,
    },
    /// An SEV/SEV-ES policy wider than 32 bits.
    #[error("SEV-ES policy {policy:#x}: an SEV/SEV-ES policy is 32 bits")]
    SevPolicyWidth {
        /// The policy.
        policy: u64,
    },
}

/// The vCPU count: at least one, at most `max`.
pub const fn vcpu_count(vcpus: u32, max: u32) -> Result<(), Refusal> {
    if vcpus == 0 {
        Err(Refusal::NoVcpus)
    } else if vcpus > max {
        Err(Refusal::TooManyVcpus { vcpus, max })
    } else {
        Ok(())
    }
}

/// SNP_ACTIVE set exactly for SNP (QEMU `check_sev_features`). Plain SEV has no VMSAs and is
/// checked as SEV-ES.
pub const fn snp_bit(mode: SevMode, features: u64) -> Result<(), Refusal> {
    let snp_bit = features & SevFeatures::SNP_ACTIVE.bits() != 0;
    match mode {
        SevMode::Snp if !snp_bit => Err(Refusal::SnpActiveMissing(features)),
        SevMode::Sev | SevMode::SevEs if snp_bit => Err(Refusal::SnpActiveWithoutSnp(features)),
        _ => Ok(()),
    }
}

/// DR7 = 0x400 (`sev_es_sync_vmsa`).
pub const fn dr7(vcpu: u32, dr7: u64) -> Result<(), Refusal> {
    if dr7 & !DR7_RESET != 0 {
        Err(Refusal::Dr7 { vcpu, dr7 })
    } else {
        Ok(())
    }
}

/// The VMSA GPA QEMU accepts (`check_vmsa_supported`).
pub const fn vmsa_gpa(vcpu: u32, gpa: u64) -> Result<(), Refusal> {
    if gpa != VMSA_GPA {
        Err(Refusal::VmsaGpa { vcpu, gpa })
    } else {
        Ok(())
    }
}

/// vCPU `vcpu`'s `sev_features` equal vCPU 0's.
pub const fn same_features(vcpu: u32, bsp: u64, this: u64) -> Result<(), Refusal> {
    if bsp != this {
        Err(Refusal::FeaturesDisagree { vcpu, bsp, this })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule() {
        assert_eq!(vcpu_count(0, 4), Err(Refusal::NoVcpus));
        assert_eq!(
            vcpu_count(5, 4),
            Err(Refusal::TooManyVcpus { vcpus: 5, max: 4 })
        );
        assert_eq!(vcpu_count(4, 4), Ok(()));
        assert_eq!(
            snp_bit(SevMode::Snp, 0x20),
            Err(Refusal::SnpActiveMissing(0x20))
        );
        assert_eq!(
            snp_bit(SevMode::SevEs, 1),
            Err(Refusal::SnpActiveWithoutSnp(1))
        );
        assert_eq!(snp_bit(SevMode::Snp, 0x21), Ok(()));
        assert_eq!(
            dr7(3, 0x401),
            Err(Refusal::Dr7 {
                vcpu: 3,
                dr7: 0x401
            })
        );
        assert_eq!(dr7(0, 0x400), Ok(()));
        assert_eq!(dr7(0, 0), Ok(()));
        assert_eq!(
            vmsa_gpa(1, 0x7000),
            Err(Refusal::VmsaGpa {
                vcpu: 1,
                gpa: 0x7000
            })
        );
        assert_eq!(
            same_features(2, 1, 0x21),
            Err(Refusal::FeaturesDisagree {
                vcpu: 2,
                bsp: 1,
                this: 0x21
            })
        );
    }
}
