//! The launch of one core [`Launch`] on this host: the checks that need no kernel, then
//! `/dev/sev`, what KVM supports, the VM, `KVM_SEV_INIT2`, memory and vCPUs, and the mode's
//! commands in the firmware's order, sending [`Launch::updates`] one by one and programming
//! every vCPU from [`Launch::vmsa`]. Nothing here decides what is sent: the core did.

use super::cpuid::snp_adjust_cpuid;
use super::error::SevError;
use super::memory::{PageBuf, host_range, private_slots, set_private};
use super::session::{
    LaunchSession, Measurement, SnpFinish, create_vm, open_sev, snp_policy_extra,
    supported_vmsa_features, vm_type,
};
use crate::vm::{FOUR_GIB, Vm, VmConfig};
use vmsa_core::hex::Hex;
use vmsa_core::kvm::{InitParams, KvmParams, Preflight};
use vmsa_core::launch::{
    FileDigestDifference, Firmware, Launch, LaunchError, LaunchUpdate, UpdateSource, outside_memory,
};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::page::PageType;
use vmsa_core::snp_cpuid::SnpCpuidInfo;
use vmsa_core::{SevMode, Vmsa};

/// What a launch did: every step in order, the digest the launch gives, and the SEV-ES
/// measurement if it got that far.
#[derive(Debug, Clone, Default)]
pub struct LaunchReport {
    /// The steps that succeeded, in order.
    pub done: Vec<String>,
    /// The launch digest of what is sent (SHA-384 for SNP, SHA-256 for SEV-ES): what the
    /// attestation report's MEASUREMENT (SNP) or the firmware's LD (SEV-ES) will be.
    pub expected_digest: Option<Vec<u8>>,
    /// IGVM: why KVM's launch does not give the file's own digest (`vmsa measure --igvm`),
    /// if it does not.
    pub file_digest_difference: Option<FileDigestDifference>,
    /// The SEV-ES measurement blob (SEV-ES only; SNP's is in the attestation report).
    pub measurement: Option<Measurement>,
}

/// The SEV-ES or SNP launch of `launch` on a VM made as `config` says (for an OVMF image,
/// `config.firmware` is the image the VM maps below 4 GiB; for an IGVM file the platform's
/// pages are loaded into `config.ram_size` of RAM and `config.firmware` is empty), with the
/// guest `policy`.
///
/// The pure checks come first — the core preflight (sev_features, SNP bit, DR7, the policy),
/// the vCPU count, every update inside guest memory — and the digest the launch gives goes into
/// [`LaunchReport::expected_digest`]. Then `/dev/sev`, the VMSA features KVM supports (and the
/// preflight again with them), the VM, `KVM_SEV_INIT2`, memory and vCPUs, and the mode's
/// commands in the firmware's order. Stops at the first failure; everything made so far (VM,
/// memory, vCPUs, `/dev/sev`) is closed when it returns.
pub fn launch(
    launch: &Launch<'_, '_>,
    config: &VmConfig,
    policy: u64,
) -> (LaunchReport, Result<(), SevError>) {
    launch_with(launch, config, policy, &SnpFinish::default())
}

/// [`launch`] with what SNP's `SNP_LAUNCH_FINISH` takes besides the launch (an ID block, host
/// data, VCEK disabled). An ID block is checked before anything is sent: its digest must be
/// the launch's and its policy the launch's (the firmware refuses the launch otherwise), and an
/// enabled author key must be present.
pub fn launch_with(
    launch: &Launch<'_, '_>,
    config: &VmConfig,
    policy: u64,
    finish: &SnpFinish,
) -> (LaunchReport, Result<(), SevError>) {
    let mut report = LaunchReport::default();
    let r = walk(launch, config, policy, finish, &mut report);
    (report, r)
}

/// The checks that need no kernel: the launch can be sent (not plain SEV, not a measuring
/// tool's profile), its VMSAs pass the preflight and fit the VM, its updates lie in guest
/// memory. Returns the preflight (to run again once KVM is asked) and the VMSAs.
fn check(
    launch: &Launch<'_, '_>,
    config: &VmConfig,
    policy: u64,
    finish: &SnpFinish,
    report: &mut LaunchReport,
) -> Result<(Preflight, Vec<Vmsa>), SevError> {
    report.file_digest_difference = launch.file_digest_difference();
    let updates: Vec<LaunchUpdate<'_>> = launch.updates()?.collect();
    let vmsas: Vec<Vmsa> = launch
        .vmsas()
        .map(|v| v.map(|v| v.vmsa))
        .collect::<Result<_, LaunchError>>()?;
    let preflight = Preflight::new(launch.mode(), policy, KvmParams::default());
    let init = preflight.before_kvm().check(&vmsas)?;
    if vmsas.len() != config.vcpus {
        return Err(SevError::VcpuCount {
            launch: launch.vcpus(),
            vm: config.vcpus,
        });
    }
    let fw_len = config.firmware.len() as u64;
    let memory = [(0, config.ram_size), (FOUR_GIB - fw_len, fw_len)];
    if let Some(u) = outside_memory(updates.iter().copied(), &memory) {
        return Err(SevError::OutsideMemory {
            gpa: u.gpa,
            len: u.len,
            ram: config.ram_size,
        });
    }
    let pages: u64 = updates.iter().map(|u| u.len.div_ceil(4096)).sum();
    let (digest, NoObserver) = launch.launch_digest(&Sha2Pages, NoObserver)?;
    let digest = digest.bytes().to_vec();
    report.done.push(format!(
        "preflight: INIT2 vmsa_features {:#x}, policy {:#x} (sev_features agree, SNP bit, DR7); plan of {} updates ({} pages), all in guest memory, expected launch digest {}",
        init.vmsa_features.bits(),
        init.policy,
        updates.len(),
        pages,
        Hex(&digest)
    ));
    if let Some(id) = &finish.id {
        if launch.mode() != SevMode::Snp {
            return Err(SevError::IdBlock("an ID block is for SNP launches".into()));
        }
        if id.block.ld[..] != digest[..] {
            return Err(SevError::IdBlock(format!(
                "the ID block binds launch digest {}, the launch gives {}: SNP_LAUNCH_FINISH would fail",
                Hex(&id.block.ld),
                Hex(&digest)
            )));
        }
        if id.block.policy != policy {
            return Err(SevError::IdBlock(format!(
                "the ID block's policy is {:#x}, the launch's {policy:#x}: SNP_LAUNCH_FINISH would fail",
                id.block.policy
            )));
        }
        if id.author_key_en && id.auth.author_key.curve == 0 {
            return Err(SevError::IdBlock(
                "AUTHOR_KEY_EN without an author key in the ID authentication information".into(),
            ));
        }
        report.done.push(format!(
            "ID block: launch digest and policy {policy:#x} match{}",
            if id.author_key_en {
                ", author key enabled"
            } else {
                ""
            }
        ));
    }
    report.expected_digest = Some(digest);
    Ok((preflight, vmsas))
}

/// The pure checks, then the kernel.
fn walk(
    launch: &Launch<'_, '_>,
    config: &VmConfig,
    policy: u64,
    finish: &SnpFinish,
    report: &mut LaunchReport,
) -> Result<(), SevError> {
    let (preflight, vmsas) = check(launch, config, policy, finish, report)?;
    let mode = launch.mode();
    let sev = open_sev()?;
    report.done.push("opened /dev/sev".into());
    let kvm = Vm::open_kvm()?;
    let supported = supported_vmsa_features(&kvm)?;
    let extra = snp_policy_extra(&kvm);
    let init = Preflight {
        kvm: KvmParams {
            supported_vmsa_features: supported,
            ..preflight.kvm
        },
        snp_policy_extra: extra,
        ..preflight
    }
    .check(&vmsas)?;
    report.done.push(format!(
        "KVM supports VMSA features {:#x}",
        supported.bits()
    ));
    let vmfd = create_vm(&kvm, mode)?;
    report.done.push(format!(
        "created a {} VM (type {})",
        mode.name(),
        vm_type(mode)
    ));
    // HARDWARE-ONLY from here: without SEV hardware no kernel gets this far (no /dev/sev, no
    // KVM_X86_SEV_VMSA_FEATURES, no SEV VM types). Reviewed against Linux 6.15
    // `arch/x86/kvm/svm/sev.c` and QEMU 10.1 `target/i386/sev.c`; not run.
    let mut session = LaunchSession::new(sev, mode).with_snp_policy_extra(extra);
    session.init2(&vmfd, init.vmsa_features)?;
    report.done.push(format!(
        "KVM_SEV_INIT2 vmsa_features {:#x}",
        init.vmsa_features.bits()
    ));
    // Memory and vCPUs (KVM_CREATE_VCPU must follow INIT2).
    let mut vm = Vm::with_vm(kvm, vmfd, config)?;
    if let Firmware::Igvm { file, platform } = launch.firmware() {
        vm.load_igvm(file, platform.compatibility_mask, launch.vcpus())?;
    }
    let step = Step {
        launch,
        vmsas: &vmsas,
        init: &init,
        finish,
        report,
    };
    match mode {
        SevMode::SevEs => step.sev_es(&mut session, &mut vm),
        SevMode::Snp => step.snp(&mut session, &mut vm),
        // `Launch::updates` refused it above.
        SevMode::Sev => Err(LaunchError::PlainSev.into()),
    }
}

/// What the commands of one mode need: the launch, its VMSAs, the INIT2 parameters, and the
/// report to add to.
struct Step<'s, 'l, 'f, 'a> {
    launch: &'l Launch<'f, 'a>,
    vmsas: &'s [Vmsa],
    init: &'s InitParams,
    finish: &'s SnpFinish,
    report: &'s mut LaunchReport,
}

impl Step<'_, '_, '_, '_> {
    /// The pages the VMM sends (every update but the VMSAs, which KVM measures itself).
    fn pages(&self) -> Result<impl Iterator<Item = LaunchUpdate<'_>>, SevError> {
        Ok(self.launch.updates()?.filter(|u| !u.is_vmsa()))
    }

    /// SEV-ES: LAUNCH_START, LAUNCH_UPDATE_DATA of every page in place, the vCPUs programmed,
    /// LAUNCH_UPDATE_VMSA, LAUNCH_MEASURE, LAUNCH_FINISH.
    fn sev_es(self, session: &mut LaunchSession, vm: &mut Vm) -> Result<(), SevError> {
        let handle = session.launch_start(&vm.fd, self.init.policy as u32)?;
        self.report
            .done
            .push(format!("KVM_SEV_LAUNCH_START handle {handle}"));
        let mut sent = 0;
        for u in self.pages()? {
            // QEMU: the data is in guest memory and encrypted in place, in launch order.
            let (mem, offset) = host_range(vm, u.gpa, u.len)?;
            if let UpdateSource::Bytes(b) = u.source {
                mem.write(offset, b).ok_or(SevError::OutsideMemory {
                    gpa: u.gpa,
                    len: u.len,
                    ram: vm.ram.len() as u64,
                })?;
            }
            let len = usize::try_from(u.len).unwrap_or(usize::MAX);
            session.launch_update_data(&vm.fd, mem, offset, len)?;
            sent += 1;
        }
        self.report
            .done
            .push(format!("KVM_SEV_LAUNCH_UPDATE_DATA of {sent} updates"));
        program_for_launch(vm, self.vmsas)?;
        session.launch_update_vmsa(&vm.fd)?;
        self.report.done.push(format!(
            "KVM_SEV_LAUNCH_UPDATE_VMSA ({} vCPUs)",
            self.vmsas.len()
        ));
        self.report.measurement = Some(session.launch_measure(&vm.fd)?);
        self.report.done.push("KVM_SEV_LAUNCH_MEASURE".into());
        session.launch_finish(&vm.fd)?;
        self.report.done.push("KVM_SEV_LAUNCH_FINISH".into());
        Ok(())
    }

    /// SNP: the guest CPUID masked, guest memory in guest_memfd slots, SNP_LAUNCH_START,
    /// SNP_LAUNCH_UPDATE of every page (private first), the vCPUs programmed,
    /// SNP_LAUNCH_FINISH (which measures every VMSA).
    fn snp(self, session: &mut LaunchSession, vm: &mut Vm) -> Result<(), SevError> {
        // QEMU's guest CPUID for SNP (sev_snp_adjust_cpuid_features) on every vCPU; the CPUID
        // page is vCPU 0's.
        let cpuid = snp_adjust_cpuid(vm)?;
        self.report.done.push(format!(
            "guest CPUID masked for SNP on every vCPU; the CPUID page holds vCPU 0's {} entries ({} not as set: KVM forced them)",
            cpuid.entries.len(),
            cpuid.kvm_changed.len()
        ));
        // Guest memory as guest_memfd slots (RAM, and the firmware when there is one).
        let _gmem = private_slots(vm)?;
        self.report
            .done
            .push("guest memory in private guest_memfd slots".into());
        session.snp_launch_start(&vm.fd, self.init.policy)?;
        self.report.done.push(format!(
            "KVM_SEV_SNP_LAUNCH_START policy {:#x}",
            self.init.policy
        ));
        let mut sent = 0;
        for u in self.pages()? {
            let page_type = u.page_type.unwrap_or(PageType::NORMAL);
            let mut buf = PageBuf::new(u.len)?;
            match u.source {
                UpdateSource::Bytes(b) => buf.fill(b),
                UpdateSource::Cpuid => {
                    let info = SnpCpuidInfo::from_entries(cpuid.entries.iter().copied())?;
                    buf.fill(&info.page());
                }
                UpdateSource::Loaded => {
                    let (mem, offset) = host_range(vm, u.gpa, u.len)?;
                    mem.read(offset, buf.bytes_mut())
                        .ok_or(SevError::OutsideMemory {
                            gpa: u.gpa,
                            len: u.len,
                            ram: vm.ram.len() as u64,
                        })?;
                }
                UpdateSource::Zero | UpdateSource::Vmsa { .. } => {}
            }
            set_private(&vm.fd, u.gpa, u.len)?;
            session.snp_launch_update(&vm.fd, u.gpa, buf.bytes_mut(), page_type.0)?;
            sent += 1;
        }
        self.report
            .done
            .push(format!("KVM_SEV_SNP_LAUNCH_UPDATE of {sent} updates"));
        program_for_launch(vm, self.vmsas)?;
        session.snp_launch_finish(&vm.fd, self.finish)?;
        self.report.done.push(format!(
            "KVM_SEV_SNP_LAUNCH_FINISH (KVM measured {} VMSAs)",
            self.vmsas.len()
        ));
        Ok(())
    }
}

/// Programs the vCPUs in strict mode: a launch VMSA the vCPU cannot hold would be measured
/// differently, so it is refused.
fn program_for_launch(vm: &mut Vm, vmsas: &[Vmsa]) -> Result<(), SevError> {
    vm.program(vmsas, true)?;
    Ok(())
}
