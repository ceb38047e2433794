//! vmsa-kvm on the real `/dev/kvm`: program vCPUs from VMSAs, read them back, run the test
//! firmware, reset, and the SEV launch failing cleanly where there is no SEV hardware.
//!
//! The tests that need `/dev/kvm` (or `/dev/sev`) show as ignored where it is missing; with
//! `VMSA_REQUIRE=kvm` (or `sev`) they run anyway, and fail there (see `build.rs`).
#![warn(clippy::allow_attributes)]

use vmsa_core::flags::SevFeatures;
use vmsa_core::kvm::fidelity::origin;
use vmsa_core::kvm::{
    FidelityParams, KvmParams, Origin, Refusal, SregsReadBack, VmmPath, read_back,
};
use vmsa_core::launch::{Firmware, Launch, LaunchConfig, LaunchError};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::{self, VmmType};
use vmsa_core::vmsa::FieldId;
use vmsa_core::{CpuSignature, SegmentAttributes, SevMode, Vmsa};
use vmsa_kvm::program::FieldStatus;
use vmsa_kvm::sev::{self, Command, LaunchSession, LaunchState, SevError};
use vmsa_kvm::testfw;
use vmsa_kvm::vm::{RunEnd, RunLimits, Vm, VmConfig, VmError};

const SIGNATURE: CpuSignature = CpuSignature(0x00a0_0f11); // EPYC-Milan

fn test_vm(vcpus: usize) -> Vm {
    Vm::new(&VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: testfw::image(),
        vcpus,
    })
    .expect("VM")
}

/// The launch VMSAs vmsa computes for the test firmware (QEMU path, SNP).
fn launch_vmsas(vcpus: u32) -> Vec<Vmsa> {
    let img = testfw::image();
    let fw = Firmware::Ovmf(OvmfImage::parse(&img).unwrap());
    let cfg = LaunchConfig::new(SevMode::Snp, vcpus, SIGNATURE, VmmType::Qemu);
    let launch = Launch::new(&fw, &cfg).unwrap();
    launch.vmsas().map(|v| v.unwrap().vmsa).collect()
}

/// The test firmware's VM: its RAM, the image at 4 GiB, `vcpus` vCPUs.
fn testfw_config(vcpus: usize) -> VmConfig {
    VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: testfw::image(),
        vcpus,
    }
}

#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn bsp_at_the_reset_vector_and_aps_at_the_reset_block_report_their_vmsas() {
    let vmsas = launch_vmsas(4);
    // The computed launch VMSAs: BSP at 0xfffffff0, APs at the reset block address.
    assert_eq!((vmsas[0].cs.base, vmsas[0].rip), (0xffff_0000, 0xfff0));
    for ap in &vmsas[1..] {
        assert_eq!((ap.cs.base, ap.rip), (0xfffe_0000, 0xf000));
    }
    let mut vm = test_vm(4);
    let counts = vm
        .program(&vmsas, true)
        .expect("launch VMSAs are expressible");
    assert!(counts.iter().all(|c| c.0 <= 6), "{counts:?}");
    let runs = vm.run(RunLimits::default()).unwrap();
    for r in &runs {
        assert_eq!(r.end, RunEnd::Halted, "vCPU {}: {:?}", r.index, r.last_exit);
        let expected = vm.vcpus[r.index]
            .report
            .as_ref()
            .unwrap()
            .expected()
            .clone();
        let ip = if r.index == 0 {
            (testfw::BSP_ENTRY & 0xffff) as u16
        } else {
            expected.rip as u16
        };
        let diff = testfw::compare(&testfw::real_mode_expected(&expected, ip), &r.reports);
        assert!(
            diff.is_empty(),
            "vCPU {} reported other registers: {diff:?}",
            r.index
        );
        // The values that matter, spelled out: the CPU signature in EDX, CS, KVM-shaped CR0/CR4.
        assert_eq!(r.reports[3], 0x00a0_0f11, "EDX = signature");
        assert_eq!(r.reports[8], 0x10, "CR0 as KVM leaves it (CD/NW cleared)");
        assert_eq!(r.reports[15], 0xf000, "CS selector");
    }
}

#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn apply_then_read_back_gives_what_the_report_expects() {
    let mut rich = testfw::long_mode_vmsa();
    rich.star = 0x0023_0010_0000_0000;
    rich.lstar = 0xffff_ffff_8100_0000;
    rich.cstar = 0xffff_ffff_8100_1000;
    rich.sfmask = 0x4_7700;
    rich.kernel_gs_base = 0xffff_8880_0000_0000;
    rich.sysenter_cs = 0x10;
    rich.sysenter_esp = 0xffff_c000;
    rich.sysenter_eip = 0xffff_d000;
    rich.dr0 = 0x1000;
    rich.dr3 = 0x4000;
    rich.dr7 = 0x400;
    rich.cr2 = 0xdead_0000;
    rich.x87_fcw = 0x27f;
    rich.x87_fsw = 0x3800;
    rich.x87_ftw = 0x80;
    rich.mxcsr = 0x1fa0;
    rich.fpreg_x87[0] = 0x11;
    rich.fpreg_x87[64] = 0xff;
    rich.fpreg_xmm[0] = 0x42;
    rich.fpreg_xmm[255] = 0x24;
    rich.fs.base = 0x7f00_0000_0000;
    rich.gs.base = 0xffff_8880_1234_0000;
    let mut lossy = launch_vmsas(1).remove(0);
    lossy.vmpl = 2;
    lossy.x87_ds = 0x2b;
    lossy.gdtr.attrib = SegmentAttributes(0x82);
    let mut vms = vec![
        launch_vmsas(2).remove(1),
        testfw::long_mode_vmsa(),
        rich,
        lossy,
    ];
    vms.push(reset::kvm_reset());
    let mut vm = test_vm(vms.len());
    let counts = vm.program(&vms, false).unwrap();
    for (i, n) in counts.iter().enumerate() {
        let fid = vm.vcpus[i].report.as_ref().unwrap();
        let (back, reads) = vm.read_vmsa(i).unwrap();
        assert!(
            n.0 <= 6 && reads.0 == n.0,
            "vCPU {i}: {n:?} to apply, {reads:?} to read"
        );
        let want = vm.expected_read_back(i).unwrap();
        let diff: Vec<_> = vmsa_core::vmsa::diff(&want, &back)
            .map(|d| d.field.name)
            .collect();
        assert!(
            diff.is_empty(),
            "vCPU {i}: read back differs in {diff:?}\n{fid}"
        );
    }
    let lost: Vec<_> = vm.vcpus[3]
        .report
        .as_ref()
        .unwrap()
        .not_expressible()
        .map(|(f, _)| f.name)
        .collect();
    assert_eq!(lost, ["gdtr", "vmpl", "x87_ds"]);
    // Every field the core's KVM model says a direct VMM programs is programmed here (or held
    // implicitly); the forced ones say to what.
    let params = FidelityParams {
        mode: SevMode::Snp,
        kvm: KvmParams::default(),
        path: VmmPath::Direct,
    };
    for (field, status) in vm.vcpus[0].report.as_ref().unwrap().fields() {
        if origin(field, &params) == Origin::Programmed {
            let zero = vm.vcpus[0].report.as_ref().unwrap().expected().as_page()
                [field.offset..field.offset + field.size]
                .iter()
                .all(|&b| b == 0);
            assert!(
                matches!(status, FieldStatus::Programmed | FieldStatus::Implicit)
                    || (zero && status == FieldStatus::Unused),
                "{}: the core says programmed, the adapter says {status:?}",
                field.name
            );
        }
    }
    let efer = vm.vcpus[1].report.as_ref().unwrap().status(FieldId::EFER);
    assert_eq!(
        efer,
        Some(FieldStatus::Forced { value: 0xd00 }),
        "SVME stays out of KVM_SET_SREGS"
    );
}

#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn strict_mode_refuses_before_any_vcpu_is_touched() {
    let mut vmsas = launch_vmsas(3);
    vmsas[2].tsc_scale = 1;
    let mut vm = test_vm(3);
    let before: Vec<Vmsa> = (0..3).map(|i| vm.read_vmsa(i).unwrap().0).collect();
    match vm.program(&vmsas, true) {
        Err(VmError::NotExpressible { vcpu: 2, report }) => {
            let lost: Vec<_> = report.not_expressible().map(|(f, _)| f.name).collect();
            assert_eq!(lost, ["tsc_scale"]);
        }
        other => panic!("expected a refusal of vCPU 2, got {other:?}"),
    }
    for (i, b) in before.iter().enumerate() {
        assert_eq!(&vm.read_vmsa(i).unwrap().0, b, "vCPU {i} was touched");
    }
    // The message names the field and why.
    let msg = vm.program(&vmsas, true).unwrap_err().to_string();
    assert!(
        msg.contains("tsc_scale") && msg.contains("SEV firmware"),
        "{msg}"
    );
}

#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn long_mode_vp_context_runs_with_paging_and_64_bit_cs() {
    let v = testfw::long_mode_vmsa();
    assert_eq!(v.sev_features(), SevFeatures::SNP_ACTIVE);
    let mut vm = test_vm(1);
    for (gpa, page) in testfw::long_mode_pages() {
        vm.write_ram(gpa, &page).unwrap();
    }
    vm.program(std::slice::from_ref(&v), true).unwrap();
    let runs = vm.run(RunLimits::default()).unwrap();
    let r = &runs[0];
    assert_eq!(r.end, RunEnd::Halted, "{:?}", r.first_exits);
    let expected = vm.vcpus[0].report.as_ref().unwrap().expected().clone();
    let diff = testfw::compare(&testfw::long_mode_expected(&expected), &r.reports);
    assert!(diff.is_empty(), "long-mode report differs: {diff:?}");
    assert_eq!(r.reports[41], 0x8000, "RIP of the 64-bit code");
    assert_eq!(r.reports[49], 0xd00, "EFER: LME|LMA|NXE, SVME left to KVM");
    let (back, _) = vm.read_vmsa(0).unwrap();
    assert_eq!(back.mxcsr, 0x1f80, "MXCSR through KVM_SET_XSAVE");
}

#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn reset_reapplies_the_launch_state() {
    let vmsas = launch_vmsas(2);
    let mut vm = test_vm(2);
    vm.program(&vmsas, true).unwrap();
    let first = vm.run(RunLimits::default()).unwrap();
    // The firmware scrambles its GPRs before halting.
    let (after, _) = vm.read_vmsa(1).unwrap();
    assert_eq!(after.rbx as u32, 0xdead_beef);
    assert_ne!(after.rip, vmsas[1].rip);
    let n = vm.reset_vcpu(1).unwrap();
    assert!(n.0 <= 6);
    let (back, _) = vm.read_vmsa(1).unwrap();
    assert_eq!(back, vm.expected_read_back(1).unwrap());
    vm.reset_vcpu(0).unwrap();
    let second = vm.run(RunLimits::default()).unwrap();
    for i in 0..2 {
        assert_eq!(second[i].reports, first[i].reports, "vCPU {i} after reset");
        assert_eq!(second[i].end, RunEnd::Halted);
    }
}

#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn a_vcpu_that_never_halts_is_stopped_at_the_time_limit() {
    let mut v = launch_vmsas(1).remove(0);
    // Point the BSP at a `jmp $` (EB FE) written into RAM.
    v.cs.base = 0;
    v.cs.selector = 0;
    v.rip = 0x500;
    let mut vm = test_vm(1);
    vm.write_ram(0x500, &[0xeb, 0xfe]).unwrap();
    vm.program(&[v], true).unwrap();
    let t = std::time::Instant::now();
    let runs = vm
        .run(RunLimits {
            max_exits: 10,
            timeout: std::time::Duration::from_millis(200),
        })
        .unwrap();
    assert_eq!(runs[0].end, RunEnd::Timeout);
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

/// The core's launch of the test firmware, as `vmsa run --launch` computes it.
fn testfw_launch<'f, 'a>(fw: &'f Firmware<'a>, mode: SevMode, vcpus: u32) -> Launch<'f, 'a> {
    Launch::new(
        fw,
        &LaunchConfig::new(mode, vcpus, SIGNATURE, VmmType::Qemu),
    )
    .unwrap()
}

#[test]
#[cfg_attr(
    any(not(has_kvm), has_sev),
    ignore = "needs /dev/kvm and no /dev/sev: it covers the launch failing without SEV hardware"
)]
fn sev_launch_fails_cleanly_without_sev_hardware() {
    let img = testfw::image();
    let fw = Firmware::Ovmf(OvmfImage::parse(&img).unwrap());
    let cfg = testfw_config(4);
    // The whole launch, for both modes: the preflight passes, the digest is the one
    // `vmsa measure` computes, then /dev/sev is missing.
    for mode in [SevMode::Snp, SevMode::SevEs] {
        let launch = testfw_launch(&fw, mode, 4);
        let (report, r) = sev::launch(&launch, &cfg, sev::SNP_POLICY_DEFAULT);
        assert_eq!(report.done.len(), 1, "{:?}", report.done);
        let (digest, NoObserver) = launch.digest(&Sha2Pages, NoObserver).unwrap();
        assert_eq!(report.expected_digest.as_deref(), Some(digest.bytes()));
        assert_eq!(report.file_digest_difference, None);
        let e = r.unwrap_err();
        assert!(matches!(e, SevError::NoSevDevice(_)));
        assert!(e.to_string().starts_with("no /dev/sev"), "{e}");
    }

    // Each later step, on its own, fails with what is missing.
    let kvm = Vm::open_kvm().unwrap();
    let e = sev::supported_vmsa_features(&kvm).unwrap_err();
    assert!(e.to_string().contains("KVM_X86_SEV_VMSA_FEATURES"), "{e}");
    for mode in [SevMode::SevEs, SevMode::Snp] {
        let e = sev::create_vm(&kvm, mode).unwrap_err();
        assert!(matches!(e, SevError::CreateVm { .. }), "{e}");
    }
    // The commands on a VM without SEV: ENOTTY, the firmware status kept, state Failed.
    let vm = kvm.create_vm().unwrap();
    let dummy = || std::fs::File::open("/dev/null").unwrap();
    let mut l = LaunchSession::new(dummy(), SevMode::SevEs);
    let e = l.init2(&vm, SevFeatures::empty()).unwrap_err();
    match &e {
        SevError::MemoryEncryptOp {
            command: Command::Init2,
            source,
            ..
        } => assert_eq!(source.0, libc::ENOTTY),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("ENOTTY from KVM"), "{e}");
    assert!(e.to_string().starts_with("KVM_SEV_INIT2 failed: "), "{e}");
    assert_eq!(l.state(), LaunchState::Failed);
    // Nothing more is sent after a failure.
    assert!(matches!(
        l.launch_start(&vm, 0),
        Err(SevError::WrongState {
            command: Command::LaunchStart,
            ..
        })
    ));
    assert_eq!(l.log, ["KVM_SEV_INIT2"]);
    // SNP commands out of order are refused without an ioctl.
    let mut l = LaunchSession::new(dummy(), SevMode::Snp);
    assert!(matches!(
        l.snp_launch_finish(&vm, &sev::SnpFinish::default()),
        Err(SevError::WrongState { .. })
    ));
    assert!(l.log.is_empty());
    // The SNP policy bits KVM reports (none here: no such attribute without SEV).
    assert_eq!(sev::snp_policy_extra(&kvm), 0);
}

/// A launch KVM would refuse never opens anything (no device needed): the core refuses it
/// when it computes the launch, or the preflight with the policy, or the VM it is sent to.
#[test]
fn launches_that_would_be_refused_never_open_anything() {
    let img = testfw::image();
    let fw = Firmware::Ovmf(OvmfImage::parse(&img).unwrap());
    let cfg = testfw_config(4);
    let launch = testfw_launch(&fw, SevMode::Snp, 4);
    // The preflight: a policy KVM refuses (disagreeing sev_features: tests/kvm_igvm.rs).
    let (report, r) = sev::launch(&launch, &cfg, 0x1_0000);
    assert!(report.done.is_empty());
    assert!(matches!(
        r,
        Err(SevError::Refused(Refusal::PolicyReservedClear {
            policy: 0x1_0000
        }))
    ));
    // Pages outside guest memory (RAM too small for the ASEV sections at 8 MiB).
    let small = VmConfig {
        ram_size: 1 << 20,
        ..cfg.clone()
    };
    let (report, r) = sev::launch(&launch, &small, sev::SNP_POLICY_DEFAULT);
    assert!(report.done.is_empty(), "{:?}", report.done);
    assert!(
        matches!(r, Err(SevError::OutsideMemory { gpa, .. }) if gpa >= 1 << 20),
        "{r:?}"
    );
    // A VM with another vCPU count than the launch.
    let (report, r) = sev::launch(&launch, &testfw_config(3), sev::SNP_POLICY_DEFAULT);
    assert!(report.done.is_empty());
    assert!(
        matches!(r, Err(SevError::VcpuCount { launch: 4, vm: 3 })),
        "{r:?}"
    );
    // Plain SEV is measured, not launched here.
    let plain = testfw_launch(&fw, SevMode::Sev, 4);
    let (report, r) = sev::launch(&plain, &cfg, 0);
    assert!(report.done.is_empty());
    assert!(
        matches!(r, Err(SevError::Launch(LaunchError::PlainSev))),
        "{r:?}"
    );
    // A firmware the core refuses (SNP without ASEV metadata): no launch to send at all.
    let mut no_md = vec![0u8; 64 * 1024];
    vmsa_core::ovmf::build(
        &mut no_md,
        &[vmsa_core::ovmf::TableEntry::SevEsResetBlock {
            reset_addr: testfw::AP_RESET_ADDR,
        }],
        None,
    )
    .unwrap();
    let no_md = Firmware::Ovmf(OvmfImage::parse(&no_md).unwrap());
    let cfg = LaunchConfig::new(SevMode::Snp, 4, SIGNATURE, VmmType::Qemu);
    let e = Launch::new(&no_md, &cfg).unwrap_err();
    assert!(matches!(e, LaunchError::NoSevMetadata), "{e:?}");
    assert!(e.to_string().contains("SEV metadata"), "{e}");
}

/// The success path, which only SEV hardware can run: both launches of the test firmware
/// finish, with the SEV-ES measurement blob.
#[test]
#[cfg_attr(
    not(all(has_kvm, has_sev)),
    ignore = "needs /dev/kvm and /dev/sev (SEV hardware)"
)]
fn sev_launch_of_the_test_firmware_finishes_on_sev_hardware() {
    let img = testfw::image();
    let fw = Firmware::Ovmf(OvmfImage::parse(&img).unwrap());
    // SEV-ES: NODBG | ES (QEMU's sev-guest needs ES in the policy); SNP: QEMU's default.
    for (mode, policy, last) in [
        (
            SevMode::Snp,
            sev::SNP_POLICY_DEFAULT,
            "KVM_SEV_SNP_LAUNCH_FINISH",
        ),
        (SevMode::SevEs, 0x5, "KVM_SEV_LAUNCH_FINISH"),
    ] {
        let launch = testfw_launch(&fw, mode, 2);
        let (report, r) = sev::launch(&launch, &testfw_config(2), policy);
        if let Err(e) = r {
            panic!("{mode}: {e}\nsteps done: {:#?}", report.done);
        }
        let done = report.done.last().unwrap();
        assert!(done.starts_with(last), "{mode}: {done}");
        assert_eq!(report.measurement.is_some(), mode == SevMode::SevEs);
    }
}

#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn the_read_back_model_of_this_kvm_is_detected_and_holds() {
    let vm = test_vm(1);
    let rb = vm.caps.read_back;
    let module = |m: &str| std::path::Path::new(&format!("/sys/module/{m}")).exists();
    eprintln!("KVM_GET_SREGS read-back model of this KVM: {rb:?}");
    if module("kvm_amd") {
        assert_eq!(
            rb,
            SregsReadBack::Svm,
            "kvm_amd reports segments through svm_get_segment"
        );
    } else if module("kvm_pvm") {
        assert_eq!(rb, SregsReadBack::Exact, "kvm_pvm reports segments as set");
    } else if rb == SregsReadBack::Unmodeled {
        // Another KVM (Intel VMX, say) whose read-back the core does not model: nothing below
        // would hold, and no device is missing, so the test says so and ends here.
        eprintln!("note: this KVM's KVM_GET_SREGS read-back is not modelled; nothing to check");
        return;
    }
    // Another KVM that behaved as a model on the probe is checked against it below.
    // KVM's own reset segments (data 0x92, TR 0x83): programmed and read back as the model says.
    let mut vm = test_vm(1);
    let v = reset::kvm_reset();
    vm.program(std::slice::from_ref(&v), true).unwrap();
    let (back, _) = vm.read_vmsa(0).unwrap();
    assert_eq!(
        back,
        read_back(rb, vm.vcpus[0].report.as_ref().unwrap().expected())
    );
    let ds = if rb == SregsReadBack::Svm { 0x93 } else { 0x92 };
    assert_eq!(back.ds.attrib.bits(), ds);
}

/// The SNP CPUID page from a real vCPU: QEMU's SNP masking is set on every vCPU
/// (KVM_SET_CPUID2), the page holds vCPU 0's CPUID as KVM then reports it (KVM_GET_CPUID2, as
/// QEMU reads it), filled as QEMU fills it — or, with more than 64 entries, the typed error
/// QEMU also stops with. What KVM did not take as set is reported.
#[test]
#[cfg_attr(not(has_kvm), ignore = "needs /dev/kvm")]
fn snp_cpuid_page_from_a_real_vcpu() {
    use vmsa_core::snp_cpuid::{CpuidPageError, SnpCpuidInfo, masked};
    let vm = test_vm(2);
    let held = |i: usize| -> Vec<_> {
        vm.vcpus[i]
            .fd
            .get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .unwrap()
            .as_slice()
            .iter()
            .map(sev::cpuid_from_kvm)
            .collect()
    };
    let supported = held(1);
    let cpuid = sev::snp_adjust_cpuid(&vm).unwrap();
    assert_eq!(
        cpuid.entries,
        held(0),
        "the page is vCPU 0's CPUID as KVM holds it"
    );
    // Every vCPU got the same masked CPUID (but for its APIC ID in leaf 1 EBX[31:24]).
    let no_apic_id = |v: Vec<vmsa_core::snp_cpuid::CpuidEntry>| -> Vec<_> {
        v.into_iter()
            .map(|mut e| {
                if e.function == 1 {
                    e.ebx &= 0x00ff_ffff;
                }
                e
            })
            .collect()
    };
    assert_eq!(no_apic_id(held(1)), no_apic_id(held(0)));
    // Every masked bit was cleared in what was set; KVM kept the others as they were.
    for (set, now) in &cpuid.kvm_changed {
        eprintln!("KVM did not take CPUID {set:x?} as set; it holds {now:x?}");
        let before = supported
            .iter()
            .find(|e| (e.function, e.index) == (set.function, set.index))
            .unwrap();
        assert_eq!(now, before, "KVM forced the entry back to what it supports");
    }
    for e in &cpuid.entries {
        let forced = cpuid
            .kvm_changed
            .iter()
            .any(|(s, _)| (s.function, s.index) == (e.function, e.index));
        match (e.function, e.index) {
            (1, _) => assert_eq!(e.ecx & masked::LEAF1_ECX_TSC_DEADLINE, 0),
            (7, 0) if !forced => {
                assert_eq!(e.ebx & masked::LEAF7_EBX_TSC_ADJUST, 0);
                assert_eq!(e.edx & masked::LEAF7_EDX, 0);
            }
            (0x8000_0008, _) => assert_eq!(e.ebx & masked::LEAF80000008_EBX_VIRT_SSBD, 0),
            _ => {}
        }
    }
    let n = cpuid.entries.len();
    eprintln!("this KVM gives a vCPU {n} CPUID entries");
    match SnpCpuidInfo::from_entries(cpuid.entries.iter().copied()) {
        Ok(info) => {
            assert_eq!(info.count as usize, n);
            for f in info.used() {
                if f.eax_in == 0xd && f.ecx_in <= 1 {
                    assert_eq!((f.ebx, f.xcr0_in), (0x240, 1));
                }
            }
            let page = info.page();
            assert_eq!(SnpCpuidInfo::from_page(&page).unwrap(), info);
        }
        Err(e) => {
            assert!(n > 64);
            assert_eq!(e, CpuidPageError::TooManyEntries { count: n });
        }
    }
}

/// `SNP_LAUNCH_FINISH` with an ID block: one that does not bind this launch (digest, policy) or
/// enables an absent author key is refused before anything is opened; a matching one passes the
/// checks (reported as a step) and the launch goes on to fail where the hardware is missing.
#[test]
#[cfg_attr(
    any(not(has_kvm), has_sev),
    ignore = "needs /dev/kvm and no /dev/sev: it covers the launch failing without SEV hardware"
)]
fn an_id_block_is_checked_against_the_launch_before_anything_is_sent() {
    use vmsa_core::id_block::{IdAuthInfo, IdBlock};
    let img = testfw::image();
    let fw = Firmware::Ovmf(OvmfImage::parse(&img).unwrap());
    let cfg = testfw_config(2);
    let launch = testfw_launch(&fw, SevMode::Snp, 2);
    let (digest, NoObserver) = launch.digest(&Sha2Pages, NoObserver).unwrap();
    let ld: [u8; 48] = digest.bytes().try_into().unwrap();
    let policy = sev::SNP_POLICY_DEFAULT;
    let finish = |ld: [u8; 48], policy: u64, author_key_en: bool| {
        let mut auth = Box::new(<IdAuthInfo as zerocopy::FromZeros>::new_zeroed());
        auth.id_key_algo = 1;
        auth.id_key.curve = 2;
        sev::SnpFinish {
            id: Some(sev::SnpIdBlock {
                block: IdBlock::new(ld, [0; 16], [0; 16], 0, policy),
                auth,
                author_key_en,
            }),
            host_data: [0xab; 32],
            vcek_disabled: false,
        }
    };
    let refused = [
        (finish([0; 48], policy, false), "binds launch digest"),
        (finish(ld, policy | 1, false), "policy is 0x30001"),
        (
            finish(ld, policy, true),
            "AUTHOR_KEY_EN without an author key",
        ),
    ];
    for (f, want) in refused {
        let (report, r) = sev::launch_with(&launch, &cfg, policy, &f);
        let e = r.unwrap_err();
        assert!(matches!(e, SevError::IdBlock(_)), "{e}");
        assert!(e.to_string().contains(want), "{e}");
        assert!(!report.done.iter().any(|s| s.contains("/dev/sev")));
    }
    let (report, r) = sev::launch_with(&launch, &cfg, policy, &finish(ld, policy, false));
    assert!(matches!(r, Err(SevError::NoSevDevice(_))), "{r:?}");
    assert!(
        report.done[1].starts_with("ID block: launch digest and policy 0x30000 match"),
        "{:?}",
        report.done
    );
}
