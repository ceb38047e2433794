//! Fuzz the VMSA page decoders and the KVM model over any page: decode and display every
//! field, diff against the reset state, check what KVM would reproduce on every path, and the
//! `KVM_GET_SREGS` read-back model. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_core::kvm::{
    FidelityParams, KvmParams, SregsReadBack, VmInit, VmmPath, check_vmsa, read_back,
};
use vmsa_core::reset::architectural_reset;
use vmsa_core::{CpuSignature, SevMode, Vmsa};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = Vmsa::from_save_area(data) else {
        return;
    };
    // What the page says of itself chooses the model's knobs (one configuration a run).
    let pick = v.r15;
    let mut s = String::new();
    for (f, value) in v.nonzero_fields() {
        use std::fmt::Write;
        let _ = write!(s, "{} {value}", f.id.index());
    }
    let reset = architectural_reset(CpuSignature(0x800f12));
    let _ = vmsa_core::vmsa::diff(&v, &reset).count();
    let params = FidelityParams {
        mode: SevMode::ALL[(pick % 3) as usize],
        kvm: KvmParams {
            init: if pick & 4 == 0 {
                VmInit::Init2
            } else {
                VmInit::Legacy
            },
            ..KvmParams::default()
        },
        path: if pick & 8 == 0 {
            VmmPath::Qemu
        } else {
            VmmPath::Direct
        },
    };
    let f = check_vmsa(&v, 1, v.rax, v.rbx, &params);
    let _ = (f.is_exact(), f.refusals().len());
    for c in f.findings() {
        let _ = c.reason();
    }
    let rb = if pick & 16 == 0 {
        SregsReadBack::Exact
    } else {
        SregsReadBack::Svm
    };
    let _ = read_back(rb, &v);
});
