//! Programming a KVM vCPU from a [`VcpuState`] and reading it back: one ioctl per structure.
//!
//! Applying takes at most six ioctls (`KVM_SET_SREGS`, `KVM_SET_MSRS`, `KVM_SET_DEBUGREGS`,
//! `KVM_SET_XCRS` when the vCPU has XSAVE, `KVM_SET_XSAVE` (or `KVM_SET_FPU` on a KVM without
//! it), `KVM_SET_REGS`), reading back the same
//! six `GET`s; [`IoctlCount`] counts them. They are issued in that order, the most demanding
//! first: `KVM_SET_SREGS` checks CR0/CR4/EFER consistency, so a state KVM refuses fails before
//! the general registers are touched.
// UNSAFETY: kvm-ioctls marks KVM_SET_XSAVE unsafe (the kernel may read more than 4 KiB when the
// guest state is larger); the one call proves why it does not here.
#![expect(unsafe_code)]

use crate::state::{MAX_MSRS, VcpuState};
use kvm_bindings::{Msrs, kvm_msr_entry};
use kvm_ioctls::VcpuFd;
use vmm_sys_util::errno;

/// A vCPU ioctl failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VcpuError {
    /// `KVM_SET_SREGS` refused the segments/control registers (EINVAL: an inconsistent
    /// CR0/CR4/EFER combination or a bit the guest CPUID does not allow).
    #[error("KVM_SET_SREGS failed on vCPU {vcpu}: {source}")]
    SetSregs {
        /// vCPU index.
        vcpu: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_SET_REGS` failed.
    #[error("KVM_SET_REGS failed on vCPU {vcpu}: {source}")]
    SetRegs {
        /// vCPU index.
        vcpu: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_SET_FPU` failed.
    #[error("KVM_SET_FPU failed on vCPU {vcpu}: {source}")]
    SetFpu {
        /// vCPU index.
        vcpu: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_SET_XSAVE` failed.
    #[error("KVM_SET_XSAVE failed on vCPU {vcpu}: {source}")]
    SetXsave {
        /// vCPU index.
        vcpu: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_SET_DEBUGREGS` failed.
    #[error("KVM_SET_DEBUGREGS failed on vCPU {vcpu}: {source}")]
    SetDebugRegs {
        /// vCPU index.
        vcpu: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_SET_XCRS` failed.
    #[error("KVM_SET_XCRS failed on vCPU {vcpu}: {source}")]
    SetXcrs {
        /// vCPU index.
        vcpu: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_SET_MSRS` failed, or stopped at an MSR it refused.
    #[error("KVM_SET_MSRS failed on vCPU {vcpu} at MSR {msr:#x}{}", source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    SetMsrs {
        /// vCPU index.
        vcpu: usize,
        /// The first MSR not written.
        msr: u32,
        /// errno, when the ioctl itself failed.
        source: Option<errno::Error>,
    },
    /// A `KVM_GET_*` ioctl failed.
    #[error("{ioctl} failed on vCPU {vcpu}: {source}")]
    Get {
        /// The ioctl.
        ioctl: &'static str,
        /// vCPU index.
        vcpu: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_GET_MSRS` read fewer MSRs than asked.
    #[error("KVM_GET_MSRS read {read} of {asked} MSRs on vCPU {vcpu}")]
    GetMsrsShort {
        /// vCPU index.
        vcpu: usize,
        /// MSRs read.
        read: usize,
        /// MSRs asked for.
        asked: usize,
    },
    /// The kvm-bindings MSR buffer could not be built.
    #[error("cannot build the KVM_SET_MSRS buffer for {0} MSRs")]
    MsrBuffer(usize),
}

/// How many ioctls an operation took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoctlCount(pub u32);

fn msrs_of(state: &VcpuState) -> Result<Msrs, VcpuError> {
    let entries: &[kvm_msr_entry] = state.msrs.get(..state.msr_count).unwrap_or(&[]);
    Msrs::from_entries(entries).map_err(|_| VcpuError::MsrBuffer(entries.len()))
}

/// Programs `vcpu` with `state`. Returns the number of ioctls issued (5, or 6 with XCR0).
pub fn apply(vcpu: &VcpuFd, index: usize, state: &VcpuState) -> Result<IoctlCount, VcpuError> {
    let mut n = 0;
    vcpu.set_sregs(&state.sregs)
        .map_err(|source| VcpuError::SetSregs {
            vcpu: index,
            source,
        })?;
    n += 1;
    if state.msr_count > 0 {
        let msrs = msrs_of(state)?;
        let written = vcpu.set_msrs(&msrs).map_err(|source| VcpuError::SetMsrs {
            vcpu: index,
            msr: state.msrs.first().map_or(0, |e| e.index),
            source: Some(source),
        })?;
        n += 1;
        if written < state.msr_count {
            return Err(VcpuError::SetMsrs {
                vcpu: index,
                msr: state.msrs.get(written).map_or(0, |e| e.index),
                source: None,
            });
        }
    }
    vcpu.set_debug_regs(&state.debugregs)
        .map_err(|source| VcpuError::SetDebugRegs {
            vcpu: index,
            source,
        })?;
    n += 1;
    if let Some(xcrs) = &state.xcrs {
        vcpu.set_xcrs(xcrs).map_err(|source| VcpuError::SetXcrs {
            vcpu: index,
            source,
        })?;
        n += 1;
    }
    match &state.xsave {
        Some(xsave) => {
            // SAFETY: `VcpuCaps::xsave` is set only when KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)
            // reports at most 4096 bytes, so the kernel reads no more than `struct kvm_xsave`.
            unsafe { vcpu.set_xsave(xsave) }.map_err(|source| VcpuError::SetXsave {
                vcpu: index,
                source,
            })?;
        }
        None => vcpu
            .set_fpu(&state.fpu)
            .map_err(|source| VcpuError::SetFpu {
                vcpu: index,
                source,
            })?,
    }
    n += 1;
    vcpu.set_regs(&state.regs)
        .map_err(|source| VcpuError::SetRegs {
            vcpu: index,
            source,
        })?;
    n += 1;
    Ok(IoctlCount(n))
}

/// Reads `vcpu` back into a [`VcpuState`] shaped like `like` (the same MSRs, XCRs if it has
/// them). Returns the state and the number of ioctls issued.
pub fn read(
    vcpu: &VcpuFd,
    index: usize,
    like: &VcpuState,
) -> Result<(VcpuState, IoctlCount), VcpuError> {
    let get = |ioctl| {
        move |source| VcpuError::Get {
            ioctl,
            vcpu: index,
            source,
        }
    };
    // Built field by field rather than cloned from `like`: no copy of its 4 KiB XSAVE image.
    let mut n = 0;
    let sregs = vcpu.get_sregs().map_err(get("KVM_GET_SREGS"))?;
    n += 1;
    let mut msrs = [kvm_msr_entry::default(); MAX_MSRS];
    if like.msr_count > 0 {
        let mut fam = msrs_of(like)?;
        let read = vcpu.get_msrs(&mut fam).map_err(get("KVM_GET_MSRS"))?;
        n += 1;
        if read < like.msr_count {
            return Err(VcpuError::GetMsrsShort {
                vcpu: index,
                read,
                asked: like.msr_count,
            });
        }
        for (dst, src) in msrs.iter_mut().zip(fam.as_slice()) {
            *dst = *src;
        }
    }
    let debugregs = vcpu.get_debug_regs().map_err(get("KVM_GET_DEBUGREGS"))?;
    n += 1;
    let xcrs = match like.xcrs {
        Some(_) => {
            n += 1;
            Some(vcpu.get_xcrs().map_err(get("KVM_GET_XCRS"))?)
        }
        None => None,
    };
    let (fpu, xsave) = if like.xsave.is_some() {
        let x = Box::new(vcpu.get_xsave().map_err(get("KVM_GET_XSAVE"))?);
        (like.fpu, Some(x))
    } else {
        (vcpu.get_fpu().map_err(get("KVM_GET_FPU"))?, None)
    };
    n += 1;
    let regs = vcpu.get_regs().map_err(get("KVM_GET_REGS"))?;
    n += 1;
    let out = VcpuState {
        regs,
        sregs,
        fpu,
        xsave,
        debugregs,
        xcrs,
        msrs,
        msr_count: like.msr_count,
    };
    Ok((out, IoctlCount(n)))
}
