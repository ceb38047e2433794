//! Apply + read back for 256 vCPUs: vmsa-kvm (VMSA → ioctl structures → ioctls → structures →
//! VMSA) against the floor, the same ioctls issued directly with prepared structures.
//!
//! `cargo bench -p vmsa-kvm --bench apply`; needs `/dev/kvm` (prints SKIPPED without it, runs
//! and fails with `VMSA_REQUIRE=kvm`).
//! Throughput is in vCPUs, so criterion's time per element is the time per vCPU.
#![warn(clippy::allow_attributes)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvm_bindings::Msrs;
use std::hint::black_box;
use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use vmsa_kvm::state::VcpuState;
use vmsa_kvm::testfw;
use vmsa_kvm::vcpu;
use vmsa_kvm::vm::{Vm, VmConfig};

const VCPUS: usize = 256;

fn bench(c: &mut Criterion) {
    if cfg!(not(has_kvm)) {
        eprintln!("SKIPPED: no /dev/kvm (apply benchmark)");
        return;
    }
    let img = testfw::image();
    let fw = Firmware::Ovmf(OvmfImage::parse(&img).unwrap());
    let cfg = LaunchConfig::new(
        SevMode::Snp,
        VCPUS as u32,
        CpuSignature(0x800f12),
        VmmType::Qemu,
    );
    let launch = Launch::new(&fw, &cfg).unwrap();
    let vmsas: Vec<_> = launch.vmsas().map(|v| v.unwrap().vmsa).collect();
    let mut vm = Vm::new(&VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: img.clone(),
        vcpus: VCPUS,
    })
    .unwrap();
    let counts = vm.program(&vmsas, true).unwrap();
    let (_, reads) = vm.read_vmsa(0).unwrap();
    eprintln!(
        "ioctls per vCPU: {} to apply, {} to read back (256 vCPUs)",
        counts[0].0, reads.0
    );
    let caps: Vec<_> = (0..VCPUS).map(|i| vm.caps_for(i)).collect();

    let mut g = c.benchmark_group("apply+read 256 vCPUs");
    g.throughput(Throughput::Elements(VCPUS as u64));
    g.sample_size(20);
    g.bench_function("vmsa-kvm (VMSA in, VMSA out)", |b| {
        b.iter(|| {
            for (i, v) in vm.vcpus.iter().enumerate() {
                let (state, fid) = VcpuState::from_vmsa(&vmsas[i], &caps[i]);
                vcpu::apply(&v.fd, i, &state).unwrap();
                let (back, _) = vcpu::read(&v.fd, i, &state).unwrap();
                black_box((back.to_vmsa().unwrap(), fid));
            }
        })
    });
    // The floor: the same ioctls with structures prepared outside the loop.
    let states: Vec<_> = (0..VCPUS)
        .map(|i| VcpuState::from_vmsa(&vmsas[i], &caps[i]).0)
        .collect();
    let msrs: Vec<Msrs> = states
        .iter()
        .map(|s| Msrs::from_entries(&s.msrs[..s.msr_count]).unwrap())
        .collect();
    g.bench_function("floor (the same ioctls, direct)", |b| {
        b.iter(|| {
            for (i, v) in vm.vcpus.iter().enumerate() {
                let s = &states[i];
                v.fd.set_sregs(&s.sregs).unwrap();
                v.fd.set_msrs(&msrs[i]).unwrap();
                v.fd.set_debug_regs(&s.debugregs).unwrap();
                if let Some(x) = &s.xsave {
                    // UNSAFETY: the floor issues KVM_SET_XSAVE directly, which kvm-ioctls marks
                    // unsafe.
                    #[expect(unsafe_code)]
                    // SAFETY: a 4 KiB kvm_xsave; vmsa-kvm uses KVM_SET_XSAVE only when
                    // KVM_CAP_XSAVE2 reports at most 4096 bytes, as on this host.
                    unsafe {
                        v.fd.set_xsave(x).unwrap()
                    };
                } else {
                    v.fd.set_fpu(&s.fpu).unwrap();
                }
                v.fd.set_regs(&s.regs).unwrap();
                black_box(v.fd.get_sregs().unwrap());
                let mut m = msrs[i].clone();
                black_box(v.fd.get_msrs(&mut m).unwrap());
                black_box(v.fd.get_debug_regs().unwrap());
                if s.xsave.is_some() {
                    black_box(v.fd.get_xsave().unwrap());
                } else {
                    black_box(v.fd.get_fpu().unwrap());
                }
                black_box(v.fd.get_regs().unwrap());
            }
        })
    });
    g.finish();
    vm.vcpus.truncate(0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
