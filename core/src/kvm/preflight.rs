//! The SEV-ES/SNP launch preflight: every host constraint KVM would check during the launch,
//! checked here first, purely, so that a launch KVM would refuse never sends its first ioctl.
//! The KVM adapter calls [`Preflight::check`] before it opens anything, and again once KVM has
//! said what it supports. The rules are [`super::refusal`]'s: features equal on every vCPU,
//! SNP_ACTIVE exactly for SNP, `vmsa_features` KVM accepts, DR7 = 0x400, and the policy
//! (SNP: bit 17 set, MIGRATE_MA clear, nothing outside the allowed bits; SEV/SEV-ES: 32 bits).
//!
//! ```
//! use vmsa_core::kvm::{KvmParams, Preflight, SnpPolicy};
//! use vmsa_core::reset::architectural_reset;
//! use vmsa_core::{CpuSignature, SevMode};
//!
//! let mut bsp = architectural_reset(CpuSignature(0x800f12));
//! bsp.sev_features = 0x21; // SNP_ACTIVE | DEBUG_SWAP
//! let pf = Preflight::new(SevMode::Snp, SnpPolicy::QEMU_DEFAULT.0, KvmParams::default());
//! let init = pf.check(&[bsp.clone(), bsp]).unwrap();
//! assert_eq!(init.vmsa_features.bits(), 0x20); // KVM_SEV_INIT2 vmsa_features
//! ```

use super::refusal::{self, Refusal};
use super::sync::KvmParams;
use crate::flags::SevFeatures;
use crate::mode::SevMode;
use crate::vmsa::Vmsa;

/// An SNP guest policy (SEV-SNP Firmware ABI Specification, AMD 56860 rev 1.57, Table 9
/// "Guest Policy Structure"; Linux `include/linux/psp-sev.h` `SNP_POLICY_MASK_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SnpPolicy(pub u64);

impl SnpPolicy {
    /// Bits 7:0, the minimum ABI minor version.
    pub const API_MINOR: u64 = 0xff;
    /// Bits 15:8, the minimum ABI major version.
    pub const API_MAJOR: u64 = 0xff00;
    /// Bit 16: SMT allowed.
    pub const SMT: u64 = 1 << 16;
    /// Bit 17: reserved, must be one.
    pub const RSVD_MBO: u64 = 1 << 17;
    /// Bit 18: a migration agent may be associated. KVM never allows it.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: debugging allowed.
    pub const DEBUG: u64 = 1 << 19;
    /// Bit 20: single socket only.
    pub const SINGLE_SOCKET: u64 = 1 << 20;
    /// Bits 21–25 (CXL_ALLOW, MEM_AES_256_XTS, RAPL_DIS, CIPHERTEXT_HIDING_DRAM,
    /// PAGE_SWAP_DISABLE): allowed by the newest kernels only when the firmware reports them
    /// (`KVM_X86_SNP_POLICY_BITS`).
    pub const FIRMWARE_DEPENDENT: u64 = 0x1f << 21;
    /// What `snp_launch_start` accepts on every kernel with SNP (`SNP_POLICY_MASK_VALID`,
    /// Linux 6.11): API version, SMT, RSVD_MBO, DEBUG, SINGLE_SOCKET.
    pub const KVM_ALLOWED: u64 = Self::API_MINOR
        | Self::API_MAJOR
        | Self::SMT
        | Self::RSVD_MBO
        | Self::DEBUG
        | Self::SINGLE_SOCKET;
    /// QEMU's `sev-snp-guest` default policy (SMT, RSVD_MBO).
    pub const QEMU_DEFAULT: Self = Self(Self::SMT | Self::RSVD_MBO);

    /// Checks the policy as `snp_launch_start` does: bit 17 set, MIGRATE_MA clear, nothing
    /// outside [`SnpPolicy::KVM_ALLOWED`] plus `extra_allowed` (the bits 21–25 a newer kernel
    /// reports through `KVM_X86_SNP_POLICY_BITS`; pass 0 when it reports none).
    pub fn check(self, extra_allowed: u64) -> Result<(), Refusal> {
        let policy = self.0;
        if policy & Self::RSVD_MBO == 0 {
            return Err(Refusal::PolicyReservedClear { policy });
        }
        if policy & Self::MIGRATE_MA != 0 {
            return Err(Refusal::PolicyMigrateMa { policy });
        }
        let allowed = Self::KVM_ALLOWED | (extra_allowed & Self::FIRMWARE_DEPENDENT);
        let bits = policy & !allowed;
        if bits != 0 {
            return Err(Refusal::PolicyBits {
                policy,
                bits,
                allowed,
            });
        }
        Ok(())
    }
}

/// What a launch passes to KVM once the preflight passed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InitParams {
    /// `KVM_SEV_INIT2` `vmsa_features`: vCPU 0's `sev_features` without SNP_ACTIVE.
    pub vmsa_features: SevFeatures,
    /// The `sev_features` KVM writes into every VMSA (`vmsa_features`, plus SNP_ACTIVE for SNP).
    pub sev_features: SevFeatures,
    /// The policy for LAUNCH_START / SNP_LAUNCH_START.
    pub policy: u64,
}

/// The inputs of the preflight besides the VMSAs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Preflight {
    /// SEV-ES or SNP.
    pub mode: SevMode,
    /// The guest policy (SNP policy, or the 32-bit SEV policy).
    pub policy: u64,
    /// The host facts; `supported_vmsa_features` is `KVM_X86_SEV_VMSA_FEATURES`
    /// (use [`Preflight::before_kvm`] while it is not known yet).
    pub kvm: KvmParams,
    /// The SNP policy bits 21–25 the kernel reports allowed (`KVM_X86_SNP_POLICY_BITS`), 0 if
    /// it reports none.
    pub snp_policy_extra: u64,
}

impl Preflight {
    /// A preflight with no extra SNP policy bits.
    pub const fn new(mode: SevMode, policy: u64, kvm: KvmParams) -> Self {
        Self {
            mode,
            policy,
            kvm,
            snp_policy_extra: 0,
        }
    }

    /// The same preflight for before KVM was asked what it supports: every VMSA feature is
    /// taken as supported (the other rules all apply). Run [`Preflight::check`] again with the
    /// real `KVM_X86_SEV_VMSA_FEATURES` once it is known.
    pub const fn before_kvm(mut self) -> Self {
        self.kvm.supported_vmsa_features =
            SevFeatures::from_bits_retain(!SevFeatures::SNP_ACTIVE.bits());
        self
    }

    /// Checks the launch of `vmsas` (one per vCPU, vCPU 0 first). Pure, allocation-free.
    pub fn check(&self, vmsas: &[Vmsa]) -> Result<InitParams, Refusal> {
        match self.mode {
            SevMode::Snp => SnpPolicy(self.policy).check(self.snp_policy_extra)?,
            SevMode::SevEs | SevMode::Sev => {
                if u32::try_from(self.policy).is_err() {
                    return Err(Refusal::SevPolicyWidth {
                        policy: self.policy,
                    });
                }
            }
        }
        let features = vmsas.iter().map(|v| v.sev_features);
        let (vmsa_features, sev_features) = init2_features(self.mode, features, &self.kvm)?;
        for (vcpu, v) in (0u32..).zip(vmsas) {
            refusal::dr7(vcpu, v.dr7)?;
        }
        Ok(InitParams {
            vmsa_features,
            sev_features,
            policy: self.policy,
        })
    }
}

/// `KVM_SEV_INIT2`'s `vmsa_features` for vCPUs with these `sev_features` (vCPU 0 first), and
/// the `sev_features` KVM then writes into every VMSA: all vCPUs must agree, SNP_ACTIVE must
/// match `mode`, and [`KvmParams::sync_inputs`] must accept them (supported by KVM, Secure TSC
/// only for SNP, none under the legacy init).
pub fn init2_features(
    mode: SevMode,
    sev_features: impl IntoIterator<Item = u64>,
    kvm: &KvmParams,
) -> Result<(SevFeatures, SevFeatures), Refusal> {
    let mut it = sev_features.into_iter();
    let bsp = it.next().ok_or(Refusal::NoVcpus)?;
    for (vcpu, this) in (1u32..).zip(it) {
        refusal::same_features(vcpu, bsp, this)?;
    }
    refusal::snp_bit(mode, bsp)?;
    let inputs = kvm.sync_inputs(mode, SevFeatures::from_bits_retain(bsp))?;
    Ok((
        inputs.sev_features.difference(SevFeatures::SNP_ACTIVE),
        inputs.sev_features,
    ))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::cpu::CpuSignature;
    use crate::kvm::VmInit;
    use crate::reset::architectural_reset;
    use std::string::ToString;

    fn vcpus(features: &[u64]) -> [Vmsa; 4] {
        let base = architectural_reset(CpuSignature(0x800f12));
        core::array::from_fn(|i| {
            let mut v = base.clone();
            v.sev_features = features.get(i).copied().unwrap_or(features[0]);
            v
        })
    }

    #[test]
    fn policy_rules_are_the_kernels() {
        assert_eq!(SnpPolicy::QEMU_DEFAULT.check(0), Ok(()));
        assert_eq!(
            SnpPolicy(0x1_0000).check(0),
            Err(Refusal::PolicyReservedClear { policy: 0x1_0000 })
        );
        assert_eq!(
            SnpPolicy(0x7_0000).check(0),
            Err(Refusal::PolicyMigrateMa { policy: 0x7_0000 })
        );
        let cxl = 0x3_0000 | 1 << 21;
        assert!(matches!(
            SnpPolicy(cxl).check(0),
            Err(Refusal::PolicyBits {
                bits: 0x20_0000,
                ..
            })
        ));
        assert_eq!(SnpPolicy(cxl).check(1 << 21), Ok(()));
        // Bits beyond 25 stay refused whatever the kernel reports.
        assert!(SnpPolicy(0x3_0000 | 1 << 40).check(u64::MAX).is_err());
        assert_eq!(
            SnpPolicy(0x3_0000 | 1 << 19 | 1 << 20 | 0x1f).check(0),
            Ok(())
        );
        let msg = SnpPolicy(0x1_0000).check(0).unwrap_err().to_string();
        assert!(msg.starts_with("SNP policy 0x10000: bit 17"), "{msg}");
    }

    #[test]
    fn init2_features_come_from_the_bsp() {
        let kvm = KvmParams {
            supported_vmsa_features: SevFeatures::DEBUG_SWAP,
            ..KvmParams::default()
        };
        let snp = Preflight::new(SevMode::Snp, 0x30000, kvm);
        let plan = snp.check(&vcpus(&[0x21])).unwrap();
        assert_eq!(plan.vmsa_features, SevFeatures::DEBUG_SWAP);
        assert_eq!(plan.sev_features.bits(), 0x21);
        let es = Preflight::new(SevMode::SevEs, 0, kvm);
        assert_eq!(es.check(&vcpus(&[0])).unwrap().vmsa_features.bits(), 0);
        assert_eq!(
            snp.check(&vcpus(&[1, 0x21])),
            Err(Refusal::FeaturesDisagree {
                vcpu: 1,
                bsp: 1,
                this: 0x21
            })
        );
        assert_eq!(es.check(&vcpus(&[1])), Err(Refusal::SnpActiveWithoutSnp(1)));
        assert_eq!(
            snp.check(&vcpus(&[0x201])),
            Err(Refusal::UnsupportedFeatures {
                features: 0x200,
                supported: 0x20
            })
        );
        // Before KVM is asked, support is assumed; the other rules still apply.
        assert!(snp.before_kvm().check(&vcpus(&[0x201])).is_ok());
        assert_eq!(
            es.before_kvm().check(&vcpus(&[0x200])),
            Err(Refusal::SecureTscWithoutSnp)
        );
        let legacy = Preflight::new(
            SevMode::SevEs,
            0,
            KvmParams {
                init: VmInit::Legacy,
                ..kvm
            },
        );
        assert_eq!(
            legacy.check(&vcpus(&[0x20])),
            Err(Refusal::LegacyFeatures {
                features: 0x20,
                legacy: 0
            })
        );
        assert_eq!(snp.check(&[]), Err(Refusal::NoVcpus));
    }

    #[test]
    fn dr7_and_policy_width() {
        let mut v = vcpus(&[1]);
        v[3].dr7 = 0x401;
        let snp = Preflight::new(SevMode::Snp, 0x30000, KvmParams::default());
        assert_eq!(
            snp.check(&v),
            Err(Refusal::Dr7 {
                vcpu: 3,
                dr7: 0x401
            })
        );
        let es = Preflight::new(SevMode::SevEs, 1 << 32, KvmParams::default());
        assert_eq!(
            es.check(&vcpus(&[0])),
            Err(Refusal::SevPolicyWidth { policy: 1 << 32 })
        );
    }
}
