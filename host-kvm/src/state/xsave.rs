//! The x87/SSE/AVX state as a `KVM_SET_XSAVE`/`KVM_GET_XSAVE` image (the standard,
//! non-compacted XSAVE format), to and from `struct kvm_fpu`.
//!
//! Sources: Intel SDM Vol. 1 §13.4 "XSAVE Area" and §10.5.1 "FXSAVE Area"; AMD APM Vol. 2 rev.
//! 3.42 §11.5.2; Linux `arch/x86/include/uapi/asm/kvm.h` (`struct kvm_xsave`, `struct kvm_fpu`).

use kvm_bindings::{kvm_fpu, kvm_xsave};
use zerocopy::IntoBytes;

/// XSAVE state component bits (Intel SDM Vol. 1 §13.1, AMD APM Vol. 2 §11.5.2).
const XFEATURE_FP: u64 = 1;
const XFEATURE_SSE: u64 = 2;
pub(super) const XFEATURE_YMM: u64 = 4;
/// Byte offsets in the standard-format XSAVE area (the legacy FXSAVE region, the XSAVE header,
/// the AVX component at 576 as CPUID leaf 0xD sub-leaf 2 reports it on every x86-64 CPU).
mod xsave_off {
    pub const FCW: usize = 0;
    pub const FSW: usize = 2;
    pub const FTW: usize = 4;
    pub const FOP: usize = 6;
    pub const FIP: usize = 8;
    pub const FDP: usize = 16;
    pub const MXCSR: usize = 24;
    pub const MXCSR_MASK: usize = 28;
    pub const ST: usize = 32;
    pub const XMM: usize = 160;
    pub const XSTATE_BV: usize = 512;
    pub const YMM_HI: usize = 576;
}

fn put(bytes: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = bytes.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = bytes.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

/// The x87/SSE state (and the upper YMM halves) as a `KVM_SET_XSAVE` image with XSTATE_BV
/// FP|SSE(|YMM).
pub fn fpu_to_xsave(f: &kvm_fpu, ymm: Option<&[u8; 256]>) -> Box<kvm_xsave> {
    use xsave_off::*;
    let mut x = Box::new(kvm_xsave::default());
    let b = x.region.as_mut_bytes();
    put(b, FCW, &f.fcw.to_le_bytes());
    put(b, FSW, &f.fsw.to_le_bytes());
    put(b, FTW, &[f.ftwx]);
    put(b, FOP, &f.last_opcode.to_le_bytes());
    put(b, FIP, &f.last_ip.to_le_bytes());
    put(b, FDP, &f.last_dp.to_le_bytes());
    put(b, MXCSR, &f.mxcsr.to_le_bytes());
    put(b, MXCSR_MASK, &0xffffu32.to_le_bytes());
    for (i, r) in f.fpr.iter().enumerate() {
        put(b, ST + i * 16, r);
    }
    for (i, r) in f.xmm.iter().enumerate() {
        put(b, XMM + i * 16, r);
    }
    let mut bv = XFEATURE_FP | XFEATURE_SSE;
    if let Some(y) = ymm {
        put(b, YMM_HI, y);
        bv |= XFEATURE_YMM;
    }
    put(b, XSTATE_BV, &bv.to_le_bytes());
    x
}

/// The inverse of [`fpu_to_xsave`]: the x87/SSE state, and the upper YMM halves when the image
/// has the AVX component.
pub fn xsave_to_fpu(x: &kvm_xsave) -> (kvm_fpu, Option<[u8; 256]>) {
    use xsave_off::*;
    let b = x.region.as_bytes();
    let mut f = kvm_fpu {
        fcw: u16::from_le_bytes(take(b, FCW)),
        fsw: u16::from_le_bytes(take(b, FSW)),
        ftwx: take::<1>(b, FTW)[0],
        last_opcode: u16::from_le_bytes(take(b, FOP)),
        last_ip: u64::from_le_bytes(take(b, FIP)),
        last_dp: u64::from_le_bytes(take(b, FDP)),
        mxcsr: u32::from_le_bytes(take(b, MXCSR)),
        ..Default::default()
    };
    for (i, r) in f.fpr.iter_mut().enumerate() {
        *r = take(b, ST + i * 16);
    }
    for (i, r) in f.xmm.iter_mut().enumerate() {
        *r = take(b, XMM + i * 16);
    }
    let bv = u64::from_le_bytes(take(b, XSTATE_BV));
    let ymm = (bv & XFEATURE_YMM != 0).then(|| take(b, YMM_HI));
    (f, ymm)
}
