//! Versioned host profiles: what each Linux KVM release ([`kernel`]) and each QEMU release
//! ([`qemu`]) does to the VMSAs and the measurement, each row citing the commits that made it
//! so, and the launch parameters a pair of them gives ([`Host::resolve`]).
//!
//! The VMM types of [`crate::reset::VmmType`] say *who* programs the vCPUs; a host profile
//! says *which versions* of QEMU and KVM do: whether the VM is made by `KVM_SEV_INIT2` or the
//! legacy init (and so whether the FPU state is in the VMSA), which `sev_features` the kernel
//! imposes or offers, whether SNP and IGVM exist at all, and what QEMU leaves in the APs.
//!
//! ```
//! use vmsa_core::host::{Host, Version};
//! use vmsa_core::{CpuSignature, SevMode};
//!
//! let host = Host::resolve(Some(Version::new(6, 8)), Some(Version::new(10, 1)), SevMode::Snp, false,
//!     CpuSignature(0xa10f11));
//! assert!(host.is_err()); // SNP needs Linux 6.11
//! let host = Host::resolve(Some(Version::new(6, 12)), Some(Version::new(10, 2)), SevMode::Snp, false,
//!     CpuSignature(0xa10f11)).unwrap();
//! assert_eq!(host.qemu.unwrap().from, Version::new(10, 1));
//! ```

pub mod kernel;
pub mod qemu;

pub use kernel::{Dump, KERNELS, Kernel, LegacyDebugSwap};
pub use qemu::{ApFpu, QEMUS, Qemu};

use crate::cpu::CpuSignature;
use crate::flags::SevFeatures;
use crate::kvm::{KvmParams, VmInit};
use crate::mode::SevMode;
use core::fmt;

/// A release, `major.minor` (point releases behave as their line).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Version {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
}

impl Version {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// `6.8`, `6.8.12`, `v6.8`, `6.8.0-45-generic`, `9.1.0`, `10.2.2`: the first two numbers.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split(['.', '-', '+', '~']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One commit that changed what a release does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Change {
    /// Its hash (12 digits).
    pub commit: &'static str,
    /// Its subject line.
    pub subject: &'static str,
    /// What it does to the VMSA or the measurement.
    pub effect: &'static str,
}

/// The row that describes `version` in `rows` (sorted oldest first): the last one not newer.
fn row<T: Copy>(rows: &[T], from: impl Fn(&T) -> Version, version: Version) -> Option<T> {
    rows.iter().rev().find(|r| from(r) <= version).copied()
}

impl Kernel {
    /// The row for Linux `version`, or `None` before 5.19 (where the table starts).
    pub fn of(version: Version) -> Option<Self> {
        row(KERNELS, |k| k.from, version)
    }
}

impl Qemu {
    /// The row for QEMU `version`, or `None` before 7.2 (where the table starts).
    pub fn of(version: Version) -> Option<Self> {
        row(QEMUS, |q| q.from, version)
    }
}

/// Why a host cannot launch the guest asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// A kernel older than the table.
    #[error("Linux {0}: the host profiles start at 5.19")]
    KernelTooOld(Version),
    /// A QEMU older than the table.
    #[error("QEMU {0}: the host profiles start at 7.2")]
    QemuTooOld(Version),
    /// SNP before Linux 6.11.
    #[error("Linux {0} has no SEV-SNP host support (KVM_SEV_SNP_LAUNCH_*: 6.11, ad27ce155566)")]
    KernelWithoutSnp(Version),
    /// SNP before QEMU 9.1.
    #[error("QEMU {0} has no sev-snp-guest object (9.1, 7b34df44260b)")]
    QemuWithoutSnp(Version),
    /// IGVM before QEMU 10.1.
    #[error("QEMU {0} cannot load IGVM files (-object igvm-cfg: 10.1, c1d466d267cf)")]
    QemuWithoutIgvm(Version),
    /// `legacy-vm-type=off` before QEMU 9.1, or for an SNP guest (a `sev-guest` property).
    #[error(
        "QEMU {0} has no sev-guest legacy-vm-type=off (9.1, 663e2f443e57; sev-snp-guest is always KVM_SEV_INIT2)"
    )]
    NoInit2Request(Version),
    /// `--qemu` (a QEMU release) for another VMM type.
    #[error("a QEMU release describes the qemu VMM type, not {0}")]
    NotQemu(&'static str),
    /// Guest features QEMU never asks KVM for.
    #[error(
        "QEMU {qemu} asks KVM for no VMSA features (sev.c: `struct kvm_sev_init args = {{ 0 }}`): an SNP guest's sev_features are {gives:#x}, not {asked:#x}"
    )]
    QemuFeatures {
        /// The QEMU release.
        qemu: Version,
        /// What it gives.
        gives: u64,
        /// What was asked for.
        asked: u64,
    },
    /// Guest features the legacy init does not give on this kernel.
    #[error(
        "this host's legacy KVM_SEV_ES_INIT gives sev_features {gives:#x}, not {asked:#x} (`vmsa profiles`)"
    )]
    LegacyFeatures {
        /// What it gives.
        gives: u64,
        /// What was asked for.
        asked: u64,
    },
    /// `KVM_SEV_INIT2` asked of a kernel without it.
    #[error(
        "Linux {0} has no KVM_SEV_INIT2 (6.10, 4f5defae7089): QEMU's legacy-vm-type=off fails there"
    )]
    KernelWithoutInit2(Version),
}

/// The launch parameters a kernel and a QEMU (either may be unknown) give a guest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Host {
    /// The kernel's row, if a kernel was named.
    pub kernel: Option<Kernel>,
    /// The QEMU's row, if a QEMU was named.
    pub qemu: Option<Qemu>,
    /// The init the VM is made with: `None` when neither side decides it (no QEMU named and a
    /// kernel with `KVM_SEV_INIT2`).
    pub init: Option<VmInit>,
    /// What the legacy init imposes (the kernel's, on a host like the vCPU type).
    pub legacy_features: SevFeatures,
    /// What `KVM_SEV_INIT2` can be given (`None`: no kernel named).
    pub offers: Option<SevFeatures>,
    /// The guest features QEMU asks for: `Some(SNP_ACTIVE)` for SNP (`vmsa_features` 0), the
    /// legacy init's for SEV-ES; `None` with no QEMU named (or an IGVM file, whose BSP context
    /// decides).
    pub features: Option<SevFeatures>,
    /// What QEMU leaves in the APs' FPU control words.
    pub ap_fpu: ApFpu,
}

impl Host {
    /// The host that Linux `kernel` and QEMU `qemu` make for a guest in `mode` (an IGVM file if
    /// `igvm`). `signature` stands for the host CPU where a kernel's default depends on it
    /// (Linux 6.6–6.7 add DebugSwap to legacy SEV-ES VMSAs on Zen 4 and later).
    pub fn resolve(
        kernel: Option<Version>,
        qemu: Option<Version>,
        mode: SevMode,
        igvm: bool,
        signature: CpuSignature,
    ) -> Result<Self, HostError> {
        Self::resolve_with(kernel, qemu, mode, igvm, signature, false)
    }

    /// [`Host::resolve`] for a `sev-guest` with `legacy-vm-type=off` when `init2_asked`.
    pub fn resolve_with(
        kernel: Option<Version>,
        qemu: Option<Version>,
        mode: SevMode,
        igvm: bool,
        signature: CpuSignature,
        init2_asked: bool,
    ) -> Result<Self, HostError> {
        let k = match kernel {
            Some(v) => Some(Kernel::of(v).ok_or(HostError::KernelTooOld(v))?),
            None => None,
        };
        let q = match qemu {
            Some(v) => Some(Qemu::of(v).ok_or(HostError::QemuTooOld(v))?),
            None => None,
        };
        if mode == SevMode::Snp {
            if let (Some(v), Some(k)) = (kernel, k) {
                if !k.snp {
                    return Err(HostError::KernelWithoutSnp(v));
                }
            }
            if let (Some(v), Some(q)) = (qemu, q) {
                if !q.snp {
                    return Err(HostError::QemuWithoutSnp(v));
                }
            }
        }
        if let (true, Some(v), Some(q)) = (igvm, qemu, q) {
            if !q.igvm {
                return Err(HostError::QemuWithoutIgvm(v));
            }
        }
        if init2_asked {
            if let (Some(v), Some(q)) = (qemu, q) {
                if !q.init2_on_request || mode == SevMode::Snp {
                    return Err(HostError::NoInit2Request(v));
                }
            }
            if let (Some(v), Some(k)) = (kernel, k) {
                if !k.init2 {
                    return Err(HostError::KernelWithoutInit2(v));
                }
            }
        }
        let legacy_features = k.map_or(SevFeatures::empty(), |k| {
            k.legacy_debug_swap.features(zen4_or_later(signature))
        });
        // SNP is INIT2 everywhere; SEV-ES is legacy under every QEMU's default and on every
        // kernel without INIT2; otherwise nobody named decides.
        let init = match mode {
            SevMode::Snp => Some(VmInit::Init2),
            _ if init2_asked => Some(VmInit::Init2),
            _ if q.is_some() || k.is_some_and(|k| !k.init2) => Some(VmInit::Legacy),
            _ => None,
        };
        let features = match (q, mode, igvm) {
            (None, _, _) | (_, _, true) => None,
            (Some(_), SevMode::Snp, false) => Some(SevFeatures::SNP_ACTIVE),
            // QEMU's KVM_SEV_INIT2: `vmsa_features` 0.
            (Some(_), _, false) if init2_asked => Some(SevFeatures::empty()),
            (Some(_), _, false) => Some(legacy_features),
        };
        Ok(Self {
            kernel: k,
            qemu: q,
            init,
            legacy_features,
            offers: k.map(|k| k.offers),
            features,
            ap_fpu: q.map_or(ApFpu::Reset, |q| q.ap_fpu),
        })
    }

    /// `kvm` with what this host decides: the init, the offered features, the legacy init's.
    pub fn kvm(&self, kvm: KvmParams) -> KvmParams {
        KvmParams {
            init: self.init.unwrap_or(kvm.init),
            supported_vmsa_features: self.offers.unwrap_or(kvm.supported_vmsa_features),
            legacy_features: self.legacy_features,
            ..kvm
        }
    }
}

/// Whether a CPU signature is of a Zen 4 or later part (family 0x19 model 0x10 and up —
/// Genoa, Bergamo, Siena — or family 0x1a), the CPUs with DebugSwap.
pub const fn zen4_or_later(signature: CpuSignature) -> bool {
    let (family, model) = (signature.family(), signature.model());
    family > 0x19 || (family == 0x19 && model >= 0x10)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENOA: CpuSignature = CpuSignature(0xa10f10);
    const MILAN: CpuSignature = CpuSignature(0xa00f11);

    fn v(s: &str) -> Option<Version> {
        Version::parse(s)
    }

    #[test]
    fn versions_as_uname_and_qemu_print_them() {
        assert_eq!(v("6.8.0-45-generic"), Some(Version::new(6, 8)));
        assert_eq!(v("v6.11"), Some(Version::new(6, 11)));
        assert_eq!(v("10.2.2"), Some(Version::new(10, 2)));
        assert_eq!(v("7.0-rc1"), Some(Version::new(7, 0)));
        assert_eq!(v("10"), None);
        assert_eq!(v("6"), None);
        assert_eq!(v("six.eight"), None);
        assert!(Version::new(6, 9) < Version::new(6, 10));
    }

    #[test]
    fn rows_are_sorted_and_cite_commits() {
        for rows in [
            KERNELS
                .iter()
                .map(|k| (k.from, k.changes))
                .collect::<heapless::Vec<_, 16>>(),
            QEMUS.iter().map(|q| (q.from, q.changes)).collect(),
        ] {
            assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
            for (_, changes) in rows {
                assert!(!changes.is_empty());
                for c in changes {
                    assert_eq!(c.commit.len(), 12, "{}", c.commit);
                    assert!(c.commit.bytes().all(|b| b.is_ascii_hexdigit()));
                }
            }
        }
    }

    #[test]
    fn the_debug_swap_history_of_legacy_sev_es() {
        let legacy = |k: &str, sig| {
            let h = Host::resolve(v(k), v("9.0"), SevMode::SevEs, false, sig).unwrap();
            (h.init, h.features.unwrap().bits())
        };
        let l = Some(VmInit::Legacy);
        assert_eq!(legacy("6.5", GENOA), (l, 0));
        assert_eq!(legacy("6.6", GENOA), (l, 0x20));
        assert_eq!(legacy("6.7.5", GENOA), (l, 0x20));
        assert_eq!(legacy("6.6", MILAN), (l, 0));
        assert_eq!(legacy("6.8", GENOA), (l, 0));
        assert_eq!(legacy("6.10", GENOA), (l, 0));
        assert_eq!(legacy("7.3", GENOA), (l, 0));
    }

    #[test]
    fn snp_needs_6_11_and_9_1_and_igvm_10_1() {
        let r = |k: &str, q: &str, igvm| Host::resolve(v(k), v(q), SevMode::Snp, igvm, GENOA);
        assert_eq!(
            r("6.10", "9.1", false),
            Err(HostError::KernelWithoutSnp(Version::new(6, 10)))
        );
        assert_eq!(
            r("6.11", "9.0", false),
            Err(HostError::QemuWithoutSnp(Version::new(9, 0)))
        );
        assert_eq!(
            r("6.11", "10.0", true),
            Err(HostError::QemuWithoutIgvm(Version::new(10, 0)))
        );
        let h = r("6.11", "9.2", false).unwrap();
        assert_eq!(h.init, Some(VmInit::Init2));
        assert_eq!(h.features, Some(SevFeatures::SNP_ACTIVE));
        assert_eq!(h.offers, Some(SevFeatures::DEBUG_SWAP));
        assert_eq!(h.ap_fpu, ApFpu::Reset);
        let h = r("6.18", "10.1", false).unwrap();
        assert_eq!(h.ap_fpu, ApFpu::Zero);
        assert_eq!(
            h.offers,
            Some(SevFeatures::DEBUG_SWAP | SevFeatures::SECURE_TSC)
        );
        assert_eq!(r("6.18", "10.1", true).unwrap().features, None);
        assert_eq!(
            Host::resolve(v("5.18"), None, SevMode::SevEs, false, GENOA),
            Err(HostError::KernelTooOld(Version::new(5, 18)))
        );
        assert_eq!(
            Host::resolve(None, v("7.1"), SevMode::SevEs, false, GENOA),
            Err(HostError::QemuTooOld(Version::new(7, 1)))
        );
    }

    #[test]
    fn legacy_vm_type_off_asks_for_init2_where_it_exists() {
        let r = |k: &str, q: &str, mode| Host::resolve_with(v(k), v(q), mode, false, GENOA, true);
        let h = r("6.10", "9.1", SevMode::SevEs).unwrap();
        assert_eq!(
            (h.init, h.features),
            (Some(VmInit::Init2), Some(SevFeatures::empty()))
        );
        assert_eq!(
            r("6.10", "9.0", SevMode::SevEs),
            Err(HostError::NoInit2Request(Version::new(9, 0)))
        );
        assert_eq!(
            r("6.9", "9.1", SevMode::SevEs),
            Err(HostError::KernelWithoutInit2(Version::new(6, 9)))
        );
        assert_eq!(
            r("6.11", "9.1", SevMode::Snp),
            Err(HostError::NoInit2Request(Version::new(9, 1)))
        );
    }

    #[test]
    fn a_kernel_alone_decides_only_what_it_must() {
        let h = Host::resolve(v("6.9"), None, SevMode::SevEs, false, GENOA).unwrap();
        assert_eq!(h.init, Some(VmInit::Legacy));
        let h = Host::resolve(v("6.12"), None, SevMode::SevEs, false, GENOA).unwrap();
        assert_eq!((h.init, h.features), (None, None));
        let kvm = h.kvm(KvmParams::default());
        assert_eq!(kvm.init, VmInit::Init2);
        assert_eq!(kvm.supported_vmsa_features, SevFeatures::DEBUG_SWAP);
    }
}
