//! vmsa-kvm on the real `/dev/kvm`: program vCPUs from VMSAs, read them back, run the test
//! firmware, reset, and the SEV launch failing cleanly where there is no SEV hardware.
//!
//! Every test needs `/dev/kvm`; without it each prints "SKIPPED: no /dev/kvm" and passes.

use vmsa_core::flags::SevFeatures;
use vmsa_core::kvm_model::{self, FidelityParams, KvmParams, Origin, VmmPath};
use vmsa_core::kvm_readback::{SregsReadBack, read_back};
use vmsa_core::measure::NoObserver;
use vmsa_core::measure::ovmf::launch_digest;
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::preflight::PreflightError;
use vmsa_core::reset::{self, CpuSignature, LaunchConfig, SevMode, VmmType};
use vmsa_core::{SegmentAttributes, Vmsa};
use vmsa_kvm::fidelity::FieldStatus;
use vmsa_kvm::sev::{self, Launch, LaunchError, LaunchMode, LaunchState};
use vmsa_kvm::testfw;
use vmsa_kvm::vm::{RunEnd, RunLimits, Vm, VmConfig, VmError};

const SIGNATURE: CpuSignature = CpuSignature(0x00a0_0f11); // EPYC-Milan

fn kvm_or_skip(test: &str) -> bool {
    if std::path::Path::new("/dev/kvm").exists() {
        true
    } else {
        eprintln!("SKIPPED: no /dev/kvm ({test})");
        false
    }
}

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
    let fw = OvmfImage::parse(&img).unwrap();
    let cfg = LaunchConfig::new(SevMode::Snp, vcpus, SIGNATURE, VmmType::Qemu);
    let l = reset::launch_vmsas(&fw, &cfg).unwrap();
    l.pages().map(|(_, v)| v.clone()).collect()
}

#[test]
fn bsp_at_the_reset_vector_and_aps_at_the_reset_block_report_their_vmsas() {
    if !kvm_or_skip("reset vector") {
        return;
    }
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
            .fidelity
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
fn apply_then_read_back_gives_what_the_report_expects() {
    if !kvm_or_skip("read back") {
        return;
    }
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
        let fid = vm.vcpus[i].fidelity.as_ref().unwrap();
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
        .fidelity
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
    for (field, status) in vm.vcpus[0].fidelity.as_ref().unwrap().fields() {
        if kvm_model::origin(field, &params) == Origin::Programmed {
            let zero = vm.vcpus[0].fidelity.as_ref().unwrap().expected().as_page()
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
    let efer = vm.vcpus[1].fidelity.as_ref().unwrap().status("efer");
    assert_eq!(
        efer,
        Some(FieldStatus::Forced { value: 0xd00 }),
        "SVME stays out of KVM_SET_SREGS"
    );
}

#[test]
fn strict_mode_refuses_before_any_vcpu_is_touched() {
    if !kvm_or_skip("strict") {
        return;
    }
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
fn long_mode_vp_context_runs_with_paging_and_64_bit_cs() {
    if !kvm_or_skip("long mode") {
        return;
    }
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
    let expected = vm.vcpus[0].fidelity.as_ref().unwrap().expected().clone();
    let diff = testfw::compare(&testfw::long_mode_expected(&expected), &r.reports);
    assert!(diff.is_empty(), "long-mode report differs: {diff:?}");
    assert_eq!(r.reports[41], 0x8000, "RIP of the 64-bit code");
    assert_eq!(r.reports[49], 0xd00, "EFER: LME|LMA|NXE, SVME left to KVM");
    let (back, _) = vm.read_vmsa(0).unwrap();
    assert_eq!(back.mxcsr, 0x1f80, "MXCSR through KVM_SET_XSAVE");
}

#[test]
fn reset_reapplies_the_launch_state() {
    if !kvm_or_skip("reset") {
        return;
    }
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
fn a_vcpu_that_never_halts_is_stopped_at_the_time_limit() {
    if !kvm_or_skip("timeout") {
        return;
    }
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

#[test]
fn sev_launch_fails_cleanly_without_sev_hardware() {
    if !kvm_or_skip("sev launch") {
        return;
    }
    if std::path::Path::new("/dev/sev").exists() {
        eprintln!("SKIPPED: /dev/sev exists; this test covers the failure path only");
        return;
    }
    let img = testfw::image();
    let fw = OvmfImage::parse(&img).unwrap();
    let cfg = VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: img.clone(),
        vcpus: 4,
    };
    // The whole launch, for both modes: the preflight and the plan pass (the plan's digest is
    // the one `vmsa measure` computes), then /dev/sev is missing.
    for (mode, smode) in [
        (LaunchMode::Snp, SevMode::Snp),
        (LaunchMode::SevEs, SevMode::SevEs),
    ] {
        let launch =
            reset::launch_vmsas(&fw, &LaunchConfig::new(smode, 4, SIGNATURE, VmmType::Qemu))
                .unwrap();
        let (report, r) = sev::launch_ovmf(mode, &launch, &cfg, sev::SNP_POLICY_DEFAULT);
        assert_eq!(report.done.len(), 1, "{:?}", report.done);
        let (digest, _) = launch_digest(
            &img,
            &fw,
            mode.digest_mode(),
            VmmType::Qemu,
            None,
            Some(&launch),
            NoObserver,
        )
        .unwrap();
        assert_eq!(report.expected_digest.as_deref(), Some(digest.bytes()));
        let e = r.unwrap_err();
        assert!(matches!(e, LaunchError::NoSevDevice(_)));
        assert!(e.to_string().starts_with("no /dev/sev"), "{e}");
    }
    let launch = reset::launch_vmsas(
        &fw,
        &LaunchConfig::new(SevMode::Snp, 4, SIGNATURE, VmmType::Qemu),
    )
    .unwrap();

    // Each later step, on its own, fails with what is missing.
    let kvm = Vm::open_kvm().unwrap();
    let e = sev::supported_vmsa_features(&kvm).unwrap_err();
    assert!(e.to_string().contains("KVM_X86_SEV_VMSA_FEATURES"), "{e}");
    for mode in [LaunchMode::SevEs, LaunchMode::Snp] {
        let e = sev::create_vm(&kvm, mode).unwrap_err();
        assert!(matches!(e, LaunchError::CreateVm { .. }), "{e}");
    }
    // The commands on a VM without SEV: ENOTTY, the firmware status kept, state Failed.
    let vm = kvm.create_vm().unwrap();
    let dummy = || std::fs::File::open("/dev/null").unwrap();
    let mut l = Launch::new(dummy(), LaunchMode::SevEs);
    let e = l.init2(&vm, SevFeatures::empty()).unwrap_err();
    match &e {
        LaunchError::Init2 { errno, .. } => assert_eq!(errno.0, libc::ENOTTY),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("ENOTTY from KVM"), "{e}");
    assert_eq!(l.state(), LaunchState::Failed);
    // Nothing more is sent after a failure.
    assert!(matches!(
        l.launch_start(&vm, 0),
        Err(LaunchError::WrongState { .. })
    ));
    assert_eq!(l.log, ["KVM_SEV_INIT2"]);
    // SNP commands out of order are refused without an ioctl.
    let mut l = Launch::new(dummy(), LaunchMode::Snp);
    assert!(matches!(
        l.snp_launch_finish(&vm, [0; 32]),
        Err(LaunchError::WrongState { .. })
    ));
    assert!(l.log.is_empty());
    // A launch KVM would refuse never opens anything: the core preflight stops it (here the
    // policy; disagreeing sev_features: tests/kvm_igvm.rs), and so does a plan whose pages lie
    // outside guest memory (RAM too small for the ASEV sections at 8 MiB).
    let small = VmConfig {
        ram_size: 1 << 20,
        ..cfg.clone()
    };
    let (report, r) = sev::launch_ovmf(LaunchMode::Snp, &launch, &small, sev::SNP_POLICY_DEFAULT);
    assert!(report.done.is_empty(), "{:?}", report.done);
    assert!(
        matches!(r, Err(LaunchError::OutsideMemory { gpa, .. }) if gpa >= 1 << 20),
        "{r:?}"
    );
    // A firmware the plan refuses (SNP without ASEV metadata) never opens anything either.
    let mut no_md = vec![0u8; 64 * 1024];
    vmsa_core::ovmf::build(
        &mut no_md,
        &[vmsa_core::ovmf::TableEntry::SevEsResetBlock {
            reset_addr: testfw::AP_RESET_ADDR,
        }],
        None,
    )
    .unwrap();
    let (report, r) = sev::launch_ovmf(
        LaunchMode::Snp,
        &launch,
        &VmConfig {
            firmware: no_md,
            ..cfg.clone()
        },
        sev::SNP_POLICY_DEFAULT,
    );
    assert!(report.done.is_empty());
    let e = r.unwrap_err();
    assert!(e.to_string().contains("no SEV metadata"), "{e}");
    let (report, r) = sev::launch_ovmf(LaunchMode::Snp, &launch, &cfg, 0x1_0000);
    assert!(report.done.is_empty());
    assert!(matches!(
        r,
        Err(LaunchError::Preflight(
            PreflightError::PolicyReservedClear { policy: 0x1_0000 }
        ))
    ));
    // The SNP policy bits KVM reports (none here: no such attribute without SEV).
    assert_eq!(sev::snp_policy_extra(&kvm), 0);
}

#[test]
fn the_read_back_model_of_this_kvm_is_detected_and_holds() {
    if !kvm_or_skip("read-back model") {
        return;
    }
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
    } else {
        eprintln!("SKIPPED: neither kvm_amd nor kvm_pvm; the model found is {rb:?}");
        return;
    }
    // KVM's own reset segments (data 0x92, TR 0x83): programmed and read back as the model says.
    let mut vm = test_vm(1);
    let v = reset::kvm_reset();
    vm.program(std::slice::from_ref(&v), true).unwrap();
    let (back, _) = vm.read_vmsa(0).unwrap();
    assert_eq!(
        back,
        read_back(rb, vm.vcpus[0].fidelity.as_ref().unwrap().expected())
    );
    let ds = if rb == SregsReadBack::Svm { 0x93 } else { 0x92 };
    assert_eq!(back.ds.attrib.bits(), ds);
}

/// The SNP CPUID page from a real vCPU: QEMU's SNP masking is set on every vCPU
/// (KVM_SET_CPUID2), the page holds vCPU 0's CPUID as KVM then reports it (KVM_GET_CPUID2, as
/// QEMU reads it), filled as QEMU fills it — or, with more than 64 entries, the typed error
/// QEMU also stops with. What KVM did not take as set is reported.
#[test]
fn snp_cpuid_page_from_a_real_vcpu() {
    use vmsa_core::snp_cpuid::{CpuidPageError, SnpCpuidInfo, masked};
    if !kvm_or_skip("SNP CPUID page") {
        return;
    }
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
