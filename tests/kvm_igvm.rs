//! IGVM on the real `/dev/kvm`: an SNP IGVM file built here with the `igvm` crate (page tables,
//! a GDT and vmsa's long-mode test program as PAGE_DATA; a parameter area with the VP count;
//! one 64-bit VP context per vCPU) is loaded into guest RAM, its VP contexts program the vCPUs,
//! and each vCPU reports over an I/O port the registers it started with. Also `vmsa run --igvm`.
//!
//! The tests that need `/dev/kvm` print "SKIPPED: no /dev/kvm" and pass without it.

mod common;

use common::{TempDir, kvm_or_skip, vmsa_bin};
use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags,
    IgvmPageDataType, IgvmPlatformType, IgvmVariableHeaderType,
};
use vmsa_core::flags::Cr4;
use vmsa_core::igvm::load::{self as igvm_load, LoadData, LoadKind};
use vmsa_core::igvm::{IgvmFile, PlatformChoice};
use vmsa_core::kvm::VmmPath;
use vmsa_core::launch::{Firmware, Launch, LaunchConfig, VmsaSource};
use vmsa_core::page::VMSA_GPA;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode, Vmsa};
use vmsa_kvm::testfw::{self, long_mode};
use vmsa_kvm::vm::{RunEnd, RunLimits, Vm, VmConfig};
use zerocopy::{FromBytes, IntoBytes};

const MASK: u32 = 1;
/// Where the parameter area (the VP count at offset 0) is inserted.
const PARAMS_GPA: u64 = 0x9000;
/// The second vCPU's stack: apart from the first's, since both run the same code.
const AP_STACK_TOP: u64 = 0x6000;

/// The VP context of vCPU `vp`: the long-mode test guest, with CR4.MCE as KVM would force it in
/// an SEV launch (so the context is one KVM reproduces exactly), distinct GPRs per vCPU.
fn context(vp: u16) -> Vmsa {
    let mut v = testfw::long_mode_vmsa();
    v.cr4 |= Cr4::MCE.bits();
    if vp > 0 {
        v.rsp = AP_STACK_TOP;
        for r in [&mut v.rax, &mut v.rbx, &mut v.r8, &mut v.r15] {
            *r ^= 0xa5a5_0000_0000_0000 | u64::from(vp);
        }
    }
    v
}

/// The IGVM file: an SNP platform, its policy, the long-mode guest's pages, a parameter area
/// with the VP count, 2 MiB of required memory, and a VP context for each of `contexts` vCPUs.
fn igvm_file(contexts: u16) -> Vec<u8> {
    igvm_file_of(&(0..contexts).map(context).collect::<Vec<_>>())
}

/// [`igvm_file`] with these VP contexts, vCPU 0's first.
fn igvm_file_of(contexts: &[Vmsa]) -> Vec<u8> {
    let platforms = vec![IgvmPlatformHeader::SupportedPlatform(
        IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: MASK,
            highest_vtl: 0,
            platform_type: IgvmPlatformType::SEV_SNP,
            platform_version: 1,
            shared_gpa_boundary: 0,
        },
    )];
    let inits = vec![IgvmInitializationHeader::GuestPolicy {
        policy: 0x30000,
        compatibility_mask: MASK,
    }];
    let mut d = vec![IgvmDirectiveHeader::RequiredMemory {
        gpa: 0,
        compatibility_mask: MASK,
        number_of_bytes: 2 << 20,
        vtl2_protectable: false,
    }];
    for (gpa, data) in testfw::long_mode_pages() {
        d.push(IgvmDirectiveHeader::PageData {
            gpa,
            compatibility_mask: MASK,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data,
        });
    }
    d.push(IgvmDirectiveHeader::ParameterArea {
        number_of_bytes: 4096,
        parameter_area_index: 0,
        initial_data: vec![0xee; 16],
    });
    d.push(IgvmDirectiveHeader::VpCount(IGVM_VHS_PARAMETER {
        parameter_area_index: 0,
        byte_offset: 0,
    }));
    d.push(IgvmDirectiveHeader::CommandLine(IGVM_VHS_PARAMETER {
        parameter_area_index: 0,
        byte_offset: 8,
    }));
    d.push(IgvmDirectiveHeader::ParameterInsert(
        IGVM_VHS_PARAMETER_INSERT {
            gpa: PARAMS_GPA,
            compatibility_mask: MASK,
            parameter_area_index: 0,
        },
    ));
    for (vp, vmsa) in (0..).zip(contexts) {
        d.push(IgvmDirectiveHeader::SnpVpContext {
            gpa: VMSA_GPA,
            compatibility_mask: MASK,
            vp_index: vp,
            vmsa: Box::new(SevVmsa::read_from_bytes(vmsa.as_bytes()).unwrap()),
        });
    }
    let file = igvm::IgvmFile::new(IgvmRevision::V1, platforms, inits, d).expect("igvm accepts");
    let mut out = Vec::new();
    file.serialize(&mut out).expect("igvm serializes");
    out
}

#[test]
fn placements_are_the_files_page_data_parameters_and_required_memory() {
    let bytes = igvm_file(2);
    let file = IgvmFile::parse(&bytes).unwrap();
    let loads: Vec<_> = igvm_load::loads(&file, MASK, 2)
        .collect::<Result<_, _>>()
        .unwrap();
    let pages = testfw::long_mode_pages();
    // Required memory, then each page with its bytes, then the area with the VP count.
    assert_eq!((loads[0].gpa, loads[0].size), (0, 2 << 20));
    assert_eq!(loads[0].kind, LoadKind::RequiredMemory);
    for (l, (gpa, data)) in loads[1..].iter().zip(&pages) {
        assert_eq!((l.gpa, l.size), (*gpa, 4096));
        assert_eq!(l.data, LoadData::File(&data[..]));
        assert!(matches!(l.kind, LoadKind::Page { shared: false, .. }));
    }
    let rest = &loads[1 + pages.len()..];
    let kinds: Vec<_> = rest.iter().map(|l| (l.kind, l.gpa, l.size)).collect();
    assert_eq!(
        kinds,
        [
            // The insert copies the area, then the loader's values go in.
            (LoadKind::ParameterArea { index: 0 }, PARAMS_GPA, 4096),
            (
                LoadKind::Parameter {
                    kind: IgvmVariableHeaderType::IGVM_VHT_VP_COUNT_PARAMETER,
                    value: Some(2)
                },
                PARAMS_GPA,
                4
            ),
            (
                LoadKind::Parameter {
                    kind: IgvmVariableHeaderType::IGVM_VHT_COMMAND_LINE,
                    value: None
                },
                PARAMS_GPA + 8,
                0
            ),
        ]
    );
    assert_eq!(rest[1].data, LoadData::U32(2u32.to_le_bytes()));
    // The area's initial bytes, as the igvm crate stores them (padded to the area size).
    assert!(rest[0].data.bytes().starts_with(&[0xee; 16]));
    assert_eq!(
        igvm_load::extent(&file, MASK).unwrap(),
        Some(2 << 20),
        "required memory is the highest placement"
    );
    // Nothing applies to a platform the file does not declare.
    assert_eq!(igvm_load::loads(&file, 2, 1).count(), 0);
}

/// The file on its strongest platform (SNP).
fn firmware(file: IgvmFile<'_>) -> Firmware<'_> {
    let platform = file.select(PlatformChoice::Strongest).unwrap();
    Firmware::Igvm { file, platform }
}

/// The launch configuration of `vmsa run --igvm`: vmsa-kvm programs every register.
fn config(vcpus: u32) -> LaunchConfig {
    let mut cfg = LaunchConfig::new(
        SevMode::Snp,
        vcpus,
        CpuSignature(0x00a0_0f11),
        VmmType::Qemu,
    );
    cfg.path = VmmPath::Direct;
    cfg
}

/// The launch VMSAs of the file: the contexts, and the reset state for vCPUs without one.
fn launch_vmsas(bytes: &[u8], vcpus: u32) -> Vec<(Vmsa, VmsaSource)> {
    let fw = firmware(IgvmFile::parse(bytes).unwrap());
    let launch = Launch::new(&fw, &config(vcpus)).unwrap();
    launch
        .check_strict()
        .expect("KVM reproduces these contexts");
    launch
        .vmsas()
        .map(|e| e.map(|e| (e.vmsa, e.source)).unwrap())
        .collect()
}

#[test]
fn long_mode_vp_contexts_from_igvm_run_and_report_their_registers() {
    if !kvm_or_skip("IGVM long mode") {
        return;
    }
    let bytes = igvm_file(2);
    let entries = launch_vmsas(&bytes, 2);
    let vmsas: Vec<Vmsa> = entries.iter().map(|(v, _)| v.clone()).collect();
    assert_eq!(vmsas, [context(0), context(1)]);
    assert!(
        entries
            .iter()
            .all(|(_, s)| matches!(s, VmsaSource::Context { .. }))
    );
    let file = IgvmFile::parse(&bytes).unwrap();
    let mut vm = Vm::new(&VmConfig {
        ram_size: 2 << 20,
        firmware: Vec::new(),
        vcpus: 2,
    })
    .unwrap();
    assert!(vm.flash.is_none());
    let loaded = vm.load_igvm(&file, MASK, 2).unwrap();
    assert_eq!(loaded.data_pages as usize, testfw::long_mode_pages().len());
    assert_eq!((loaded.parameter_areas, loaded.parameters), (1, 1));
    assert_eq!(
        loaded.not_supplied,
        [IgvmVariableHeaderType::IGVM_VHT_COMMAND_LINE.0]
    );
    let mut word = [0u8; 4];
    vm.ram.read(PARAMS_GPA as usize, &mut word).unwrap();
    assert_eq!(
        u32::from_le_bytes(word),
        2,
        "VP count in the parameter area"
    );
    vm.ram.read(PARAMS_GPA as usize + 4, &mut word).unwrap();
    assert_eq!(word, [0xee; 4], "the rest of the area is its initial data");
    let mut code = [0u8; 8];
    vm.ram.read(long_mode::CODE as usize, &mut code).unwrap();
    assert_eq!(code, testfw::LONG_MODE_DUMP[..8]);

    let counts = vm.program(&vmsas, true).expect("expressible");
    assert!(counts.iter().all(|c| c.0 <= 6), "{counts:?}");
    let runs = vm.run(RunLimits::default()).unwrap();
    let mut first = Vec::new();
    for r in &runs {
        assert_eq!(
            r.end,
            RunEnd::Halted,
            "vCPU {}: {:?}",
            r.index,
            r.first_exits
        );
        let expected = vm.vcpus[r.index]
            .report
            .as_ref()
            .unwrap()
            .expected()
            .clone();
        let diff = testfw::compare(&testfw::long_mode_expected(&expected), &r.reports);
        assert!(diff.is_empty(), "vCPU {} reported {diff:?}", r.index);
        // Spelled out: 64-bit code at 0x8000 with CS 0x08, paging from CR3 0x1000, EFER
        // LME|LMA|NXE (SVME stays with KVM), CR4 with PAE, the per-vCPU stack and RAX.
        let v = &vmsas[r.index];
        assert_eq!(r.reports[41], 0x8000, "RIP");
        assert_eq!(r.reports[43], 0x08, "CS selector");
        assert_eq!(r.reports[36], 0x1000, "CR3");
        assert_eq!(r.reports[32] & 0x8000_0001, 0x8000_0001, "CR0.PG|PE");
        assert_eq!(r.reports[49], 0xd00, "EFER");
        assert_eq!(r.reports[38] & 0x20, 0x20, "CR4.PAE");
        assert_eq!(r.reports[14], v.rsp as u32, "RSP");
        assert_eq!(
            (r.reports[0], r.reports[1]),
            (v.rax as u32, (v.rax >> 32) as u32)
        );
        first.push(r.reports.clone());
    }
    assert_ne!(first[0], first[1], "each vCPU got its own context");

    // Reset: the vCPUs scrambled their GPRs; re-applying the launch state brings them back,
    // and a second run reports the same registers.
    let (after, _) = vm.read_vmsa(1).unwrap();
    assert_eq!(after.rbx, 0xdead_beef);
    for i in 0..2 {
        vm.reset_vcpu(i).unwrap();
        assert_eq!(
            vm.read_vmsa(i).unwrap().0,
            vm.expected_read_back(i).unwrap()
        );
    }
    let again = vm.run(RunLimits::default()).unwrap();
    for (r, f) in again.iter().zip(&first) {
        assert_eq!(r.end, RunEnd::Halted);
        assert_eq!(&r.reports, f, "vCPU {} after reset", r.index);
    }
}

#[test]
fn a_vcpu_without_a_context_gets_the_reset_state() {
    if !kvm_or_skip("IGVM reset state") {
        return;
    }
    let bytes = igvm_file(1);
    let entries = launch_vmsas(&bytes, 2);
    assert_eq!(entries[1].1, VmsaSource::Reset);
    let ap = &entries[1].0;
    assert_eq!(
        (ap.cs.base, ap.rip, ap.rdx),
        (0xffff_0000, 0xfff0, 0x00a0_0f11)
    );
    let vmsas: Vec<Vmsa> = entries.into_iter().map(|(v, _)| v).collect();
    let mut vm = Vm::new(&VmConfig {
        ram_size: 2 << 20,
        firmware: Vec::new(),
        vcpus: 2,
    })
    .unwrap();
    vm.program(&vmsas, true).unwrap();
    for i in 0..2 {
        assert_eq!(
            vm.read_vmsa(i).unwrap().0,
            vm.expected_read_back(i).unwrap()
        );
    }
}

#[test]
fn vmsa_run_igvm_prints_where_each_vcpu_started_and_how_it_exited() {
    let dir = TempDir::new("run");
    let path = dir.write("guest.igvm", &igvm_file(2));
    let p = path.to_str().unwrap();
    // The launch path: the core preflight takes the file's policy, the plan's digest is the
    // file's own (`vmsa measure --igvm`: the contexts come last, at KVM's VMSA GPA, one per
    // vCPU), then the launch stops at the first SEV step.
    let (code, out, err) = vmsa_bin(&["run", "--igvm", p, "--vcpus", "2", "--launch", "snp"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("ok: preflight: INIT2 vmsa_features 0x0, policy 0x30000"),
        "{out}"
    );
    let (mcode, measured, _) = vmsa_bin(&["measure", "--mode", "snp", "--vcpus", "2", "--igvm", p]);
    assert_eq!(mcode, 0);
    assert!(
        out.contains(&format!("expected launch digest {}", measured.trim())),
        "{out}\n{measured}"
    );
    assert!(!out.contains("differs from the file's own"), "{out}");
    if !std::path::Path::new("/dev/sev").exists() {
        assert!(out.contains("FAILED: no /dev/sev"), "{out}");
        assert!(out.contains("were closed"), "{out}");
    }
    // With a third vCPU, KVM also measures its reset VMSA: said, and a different digest.
    let (_, out3, _) = vmsa_bin(&["run", "--igvm", p, "--vcpus", "3", "--launch", "snp"]);
    assert!(
        out3.contains("note: KVM's launch digest differs from the file's own (vmsa measure --igvm): vCPU 2 has no VP context"),
        "{out3}"
    );
    assert!(!out3.contains(measured.trim()), "{out3}");
    // The launch mode must be the platform's.
    let (code, _, err) = vmsa_bin(&["run", "--igvm", p, "--vcpus", "2", "--launch", "sev-es"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--launch sev-es, but the selected IGVM platform is snp"),
        "{err}"
    );
    let (code, out, _) = vmsa_bin(&[
        "run", "--igvm", p, "--vcpus", "2", "--launch", "snp", "--policy", "0x70000",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("FAILED: SNP policy 0x70000: bit 18"), "{out}");
    if !kvm_or_skip("vmsa run --igvm") {
        return;
    }
    let (code, out, err) = vmsa_bin(&["run", "--igvm", p, "--vcpus", "2", "--strict"]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("platform snp (mask 0x1), 2 vCPUs"), "{out}");
    assert!(
        out.contains("vCPU 1: VP context (variable header #"),
        "{out}"
    );
    assert!(!out.contains("in an SEV launch KVM would"), "{out}");
    assert!(
        out.contains("5 data pages, 0 zero pages, 1 parameter areas, 1 parameters"),
        "{out}"
    );
    assert!(out.contains("parameter COMMAND_LINE not supplied"), "{out}");
    for i in 0..2 {
        assert!(
            out.contains(&format!(
                "vCPU {i}: programmed to start at 0x8000 (CS base 0x0 + RIP 0x8000)"
            )),
            "{out}"
        );
    }
    assert_eq!(out.matches("ended: halted (HLT)").count(), 2, "{out}");
    // The long-mode program reports every register as it was programmed.
    assert_eq!(
        out.matches("registers reported on port 0xe0: 54 of 54 as programmed")
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("efer             forced by KVM to 0xd00"),
        "{out}"
    );
}

/// The IGVM SEV launch through vmsa-kvm: the launch's digest is the file's, VMSAs that disagree
/// on sev_features are refused when the launch is computed and updates outside guest RAM before
/// anything is opened, and without SEV hardware the launch stops at the first SEV step with
/// what is missing.
#[test]
fn igvm_sev_launch_walks_the_plan_and_stops_cleanly() {
    use vmsa_core::kvm::Refusal;
    use vmsa_core::launch::UpdateSource;
    use vmsa_core::measure::{NoObserver, Sha2Pages};
    use vmsa_kvm::sev::{self, SevError};
    let bytes = igvm_file(2);
    let fw = firmware(IgvmFile::parse(&bytes).unwrap());
    let launch = Launch::new(&fw, &config(2)).unwrap();
    let vm = VmConfig {
        ram_size: 2 << 20,
        firmware: Vec::new(),
        vcpus: 2,
    };
    let (report, r) = sev::launch(&launch, &vm, 0x30000);
    // The file's own digest (the spec profile's, `vmsa measure --igvm`).
    let (file_digest, NoObserver) = launch.digest(&Sha2Pages, NoObserver).unwrap();
    assert_eq!(report.expected_digest.as_deref(), Some(file_digest.bytes()));
    assert_eq!(report.file_digest_difference, None);
    // The VMSAs are sent last, one per vCPU, in vCPU order (KVM measures them so).
    let cpus: Vec<u32> = launch
        .updates()
        .unwrap()
        .filter_map(|u| match u.source {
            UpdateSource::Vmsa { cpu } => Some(cpu),
            _ => None,
        })
        .collect();
    assert_eq!(cpus, [0, 1]);
    assert!(launch.updates().unwrap().last().unwrap().is_vmsa());
    if std::path::Path::new("/dev/sev").exists() {
        eprintln!("SKIPPED: /dev/sev exists; the rest covers the failure path only");
        return;
    }
    assert_eq!(report.done.len(), 1, "{:?}", report.done);
    assert!(matches!(r, Err(SevError::NoSevDevice(_))), "{r:?}");

    // vCPU 1's context asks for other sev_features: the core preflight refuses it first.
    let mut ap = context(1);
    ap.sev_features = 0x21;
    let bad = igvm_file_of(&[context(0), ap]);
    let bad = firmware(IgvmFile::parse(&bad).unwrap());
    let bad = Launch::new(&bad, &config(2)).unwrap();
    let (report, r) = sev::launch(&bad, &vm, 0x30000);
    assert!(report.done.is_empty());
    assert!(
        matches!(
            r,
            Err(SevError::Refused(Refusal::FeaturesDisagree { vcpu: 1, .. }))
        ),
        "{r:?}"
    );
    // The parameter area at 0x9000 lies outside 32 KiB of RAM.
    let tiny = VmConfig {
        ram_size: 0x8000,
        ..vm.clone()
    };
    let (report, r) = sev::launch(&launch, &tiny, 0x30000);
    assert!(report.done.is_empty());
    assert!(
        matches!(r, Err(SevError::OutsideMemory { gpa, .. }) if gpa >= 0x8000),
        "{r:?}"
    );
}
