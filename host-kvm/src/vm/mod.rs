//! A KVM VM with guest memory, the firmware image mapped to end at 4 GiB, and N vCPUs programmed
//! from launch VMSAs, each run on its own thread with its exits handled and reported.
//!
//! There is no in-kernel irqchip: every vCPU is runnable from the start and begins exactly at the
//! state of its VMSA (as SEV-ES APs begin at theirs), and `HLT` comes back to userspace, where
//! it ends the vCPU's run.
//!
//! - [`memory`]: the host mappings behind guest memory ([`GuestMemory`]).
//! - [`run`]: one thread per vCPU, the exits, the deadline ([`RunLimits`], [`VcpuRun`]).
// UNSAFETY: guest memory is handed to KVM_SET_USER_MEMORY_REGION, which takes a host address
// KVM will write through; the call proves the mapping outlives the slot.
#![expect(unsafe_code)]

pub mod memory;
pub mod run;

pub use memory::GuestMemory;
pub use run::{Exit, ExitPoint, RunEnd, RunLimits, VcpuRun};

use crate::program::ProgramReport;
use crate::state::{APIC_BASE_BSP, APIC_BASE_DEFAULT, VMSA_MSRS, VcpuCaps, VcpuState};
use crate::vcpu::{self, IoctlCount, VcpuError};
use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, KVM_MEM_READONLY, Msrs, kvm_msr_entry,
    kvm_userspace_memory_region,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use vmm_sys_util::errno;
use vmsa_core::kvm::SregsReadBack;
use vmsa_core::{VmcbSegment, Vmsa};

/// 4 GiB: the firmware image ends here, so its last 16 bytes hold the reset vector 0xfffffff0.
pub const FOUR_GIB: u64 = 1 << 32;
/// The I/O port on which vmsa's test firmware reports the registers a vCPU started with.
pub const REPORT_PORT: u16 = 0xe0;

/// Setting up or running a VM failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {0} (is KVM available and accessible to this user?)")]
    OpenKvm(#[source] errno::Error),
    /// `KVM_CREATE_VM` failed.
    #[error("KVM_CREATE_VM (type {vm_type}) failed: {source}")]
    CreateVm {
        /// The VM type.
        vm_type: u64,
        /// errno.
        source: errno::Error,
    },
    /// mmap of guest memory failed.
    #[error("cannot map {size:#x} bytes of guest memory: {source}")]
    Mmap {
        /// Bytes asked for.
        size: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_SET_USER_MEMORY_REGION` failed.
    #[error(
        "KVM_SET_USER_MEMORY_REGION for slot {slot} at GPA {gpa:#x} ({size:#x} bytes) failed: {source}"
    )]
    MemoryRegion {
        /// Slot.
        slot: u32,
        /// Guest physical address.
        gpa: u64,
        /// Size.
        size: u64,
        /// errno.
        source: errno::Error,
    },
    /// The firmware image cannot be mapped below 4 GiB.
    #[error(
        "firmware image of {0} bytes cannot end at 4 GiB (empty, not a multiple of 4 KiB, or above 16 MiB)"
    )]
    FirmwareSize(usize),
    /// Guest RAM would overlap the firmware or is not page-sized.
    #[error("guest RAM of {0:#x} bytes must be a non-zero multiple of 4 KiB below the firmware")]
    RamSize(u64),
    /// Data does not fit in guest RAM.
    #[error("{len} bytes at GPA {gpa:#x} do not fit in guest RAM")]
    OutOfRam {
        /// Guest physical address.
        gpa: u64,
        /// Length.
        len: usize,
    },
    /// More vCPUs than KVM allows.
    #[error("{asked} vCPUs asked for, KVM allows {max}")]
    TooManyVcpus {
        /// Asked.
        asked: usize,
        /// `KVM_CAP_MAX_VCPUS`.
        max: usize,
    },
    /// The number of VMSAs is not the number of vCPUs.
    #[error("{vmsas} VMSAs for {vcpus} vCPUs")]
    VmsaCount {
        /// VMSAs given.
        vmsas: usize,
        /// vCPUs.
        vcpus: usize,
    },
    /// `KVM_CREATE_VCPU` failed.
    #[error("KVM_CREATE_VCPU {index} failed: {source}")]
    CreateVcpu {
        /// vCPU index.
        index: usize,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_GET_SUPPORTED_CPUID` or `KVM_SET_CPUID2` failed.
    #[error("{ioctl} failed: {source}")]
    Cpuid {
        /// The ioctl.
        ioctl: &'static str,
        /// errno.
        source: errno::Error,
    },
    /// `KVM_GET_MSR_INDEX_LIST` failed.
    #[error("KVM_GET_MSR_INDEX_LIST failed: {0}")]
    MsrIndexList(#[source] errno::Error),
    /// Strict mode: a VMSA has fields the vCPU cannot hold. No vCPU was touched.
    #[error(
        "strict mode: the VMSA of vCPU {vcpu} has fields KVM cannot hold, so no vCPU was programmed:\n{report}"
    )]
    NotExpressible {
        /// The first vCPU whose VMSA is not expressible.
        vcpu: usize,
        /// Its report.
        report: Box<ProgramReport>,
    },
    /// A vCPU ioctl failed.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// A vCPU read back holds a state no VMSA can.
    #[error(transparent)]
    ReadBack(#[from] crate::state::ReadBackError),
    /// A vCPU thread panicked.
    #[error("the thread of vCPU {0} panicked")]
    VcpuThread(usize),
    /// An IGVM placement cannot be made.
    #[error(transparent)]
    IgvmLoad(#[from] vmsa_core::igvm::load::LoadError),
}
/// What a VM is made of.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Guest RAM at GPA 0, bytes (multiple of 4 KiB).
    pub ram_size: u64,
    /// The firmware image, mapped read-only so that it ends at 4 GiB; empty for none (an IGVM
    /// guest, whose pages are loaded into RAM with [`Vm::load_igvm`]).
    pub firmware: Vec<u8>,
    /// Number of vCPUs.
    pub vcpus: usize,
}

/// One vCPU: its fd and the launch state it is programmed from (re-applied on reset).
#[derive(Debug)]
pub struct Vcpu {
    /// The KVM vCPU.
    pub fd: VcpuFd,
    /// vCPU index (also its APIC ID).
    pub index: usize,
    /// The state built from its launch VMSA.
    pub launch: Option<VcpuState>,
    /// What became of each field of its launch VMSA.
    pub report: Option<ProgramReport>,
}

/// A KVM VM. Drop order: vCPUs, then the VM fd, then guest memory.
#[derive(Debug)]
pub struct Vm {
    /// vCPUs, in index order.
    pub vcpus: Vec<Vcpu>,
    /// The VM fd.
    pub fd: VmFd,
    /// `/dev/kvm`.
    pub kvm: Kvm,
    /// What the vCPUs can hold.
    pub caps: VcpuCaps,
    /// Guest RAM at GPA 0.
    pub ram: GuestMemory,
    /// The firmware, ending at 4 GiB (none for an IGVM guest, whose pages go into RAM).
    pub flash: Option<GuestMemory>,
    /// GPA of the first firmware byte (4 GiB when there is no firmware).
    pub flash_base: u64,
}

/// Largest firmware image mapped (OVMF images are 2 or 4 MiB).
const MAX_FIRMWARE: usize = 16 << 20;

impl Vm {
    /// Opens `/dev/kvm`, or says why not.
    pub fn open_kvm() -> Result<Kvm, VmError> {
        Kvm::new().map_err(VmError::OpenKvm)
    }

    /// Creates the VM, its memory and its vCPUs (with the CPUID KVM supports); no vCPU is
    /// programmed yet.
    pub fn new(config: &VmConfig) -> Result<Self, VmError> {
        let kvm = Self::open_kvm()?;
        let fd = kvm
            .create_vm()
            .map_err(|source| VmError::CreateVm { vm_type: 0, source })?;
        Self::with_vm(kvm, fd, config)
    }

    /// Like [`Vm::new`], on a VM fd already created (of any type).
    pub fn with_vm(kvm: Kvm, fd: VmFd, config: &VmConfig) -> Result<Self, VmError> {
        let fw_len = config.firmware.len();
        if fw_len % 4096 != 0 || fw_len > MAX_FIRMWARE {
            return Err(VmError::FirmwareSize(fw_len));
        }
        let flash_base = FOUR_GIB - fw_len as u64;
        if config.ram_size == 0 || config.ram_size % 4096 != 0 || config.ram_size > flash_base {
            return Err(VmError::RamSize(config.ram_size));
        }
        let max = kvm.get_max_vcpus();
        if config.vcpus == 0 || config.vcpus > max {
            return Err(VmError::TooManyVcpus {
                asked: config.vcpus,
                max,
            });
        }
        let ram_size =
            usize::try_from(config.ram_size).map_err(|_| VmError::RamSize(config.ram_size))?;
        let ram = GuestMemory::new(ram_size)?;
        let flash = if fw_len == 0 {
            None
        } else {
            let f = GuestMemory::new(fw_len)?;
            f.write(0, &config.firmware)
                .ok_or(VmError::FirmwareSize(fw_len))?;
            Some(f)
        };
        let readonly = if kvm.check_extension(Cap::ReadonlyMem) {
            KVM_MEM_READONLY
        } else {
            0
        };
        let mut slots = vec![(0u32, 0u64, &ram, 0)];
        if let Some(f) = &flash {
            slots.push((1, flash_base, f, readonly));
        }
        for (slot, gpa, mem, flags) in slots {
            let region = kvm_userspace_memory_region {
                slot,
                flags,
                guest_phys_addr: gpa,
                memory_size: mem.len() as u64,
                userspace_addr: mem.host_addr(),
            };
            // SAFETY: the region is backed by `mem`, a live mapping of exactly `memory_size`
            // bytes owned by the returned `Vm`, which drops the VM fd (and so the slot) before it.
            unsafe { fd.set_user_memory_region(region) }.map_err(|source| {
                VmError::MemoryRegion {
                    slot,
                    gpa,
                    size: mem.len() as u64,
                    source,
                }
            })?;
        }

        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|source| VmError::Cpuid {
                ioctl: "KVM_GET_SUPPORTED_CPUID",
                source,
            })?;
        let mut vcpus = Vec::with_capacity(config.vcpus);
        for index in 0..config.vcpus {
            let vfd = fd
                .create_vcpu(index as u64)
                .map_err(|source| VmError::CreateVcpu { index, source })?;
            let mut c = cpuid.clone();
            for e in c.as_mut_slice() {
                // Leaf 1 EBX[31:24]: initial APIC ID.
                if e.function == 1 {
                    e.ebx = (e.ebx & 0x00ff_ffff) | ((index as u32 & 0xff) << 24);
                }
            }
            vfd.set_cpuid2(&c).map_err(|source| VmError::Cpuid {
                ioctl: "KVM_SET_CPUID2",
                source,
            })?;
            vcpus.push(Vcpu {
                fd: vfd,
                index,
                launch: None,
                report: None,
            });
        }
        let caps = probe_caps(&kvm, &cpuid, vcpus.first().map(|v| &v.fd))?;
        Ok(Self {
            vcpus,
            fd,
            kvm,
            caps,
            ram,
            flash,
            flash_base,
        })
    }

    /// The capabilities of vCPU `index` (APIC base with the BSP flag on vCPU 0).
    pub fn caps_for(&self, index: usize) -> VcpuCaps {
        let mut c = self.caps.clone();
        c.apic_base = APIC_BASE_DEFAULT | if index == 0 { APIC_BASE_BSP } else { 0 };
        c
    }

    /// Builds the vCPU states from the launch VMSAs (one per vCPU, in order) and their
    /// reports. In strict mode a VMSA with any field the vCPU cannot hold is refused
    /// before any vCPU is touched. Then programs every vCPU; returns the ioctls per vCPU.
    pub fn program(&mut self, vmsas: &[Vmsa], strict: bool) -> Result<Vec<IoctlCount>, VmError> {
        if vmsas.len() != self.vcpus.len() {
            return Err(VmError::VmsaCount {
                vmsas: vmsas.len(),
                vcpus: self.vcpus.len(),
            });
        }
        let planned: Vec<(VcpuState, ProgramReport)> = vmsas
            .iter()
            .enumerate()
            .map(|(i, v)| VcpuState::from_vmsa(v, &self.caps_for(i)))
            .collect();
        if strict {
            if let Some((vcpu, (_, report))) =
                planned.iter().enumerate().find(|(_, (_, f))| !f.is_exact())
            {
                return Err(VmError::NotExpressible {
                    vcpu,
                    report: Box::new(report.clone()),
                });
            }
        }
        for (v, (state, fid)) in self.vcpus.iter_mut().zip(planned) {
            v.launch = Some(state);
            v.report = Some(fid);
        }
        (0..self.vcpus.len()).map(|i| self.reset_vcpu(i)).collect()
    }

    /// Resets vCPU `index`: re-applies its launch state, as QEMU's `kvm_arch_reset_vcpu` →
    /// `sev_es_set_reset_vector` → `sev_apply_cpu_context` does on every CPU reset
    /// (target/i386/kvm/kvm.c, target/i386/sev.c).
    pub fn reset_vcpu(&self, index: usize) -> Result<IoctlCount, VmError> {
        let Some(v) = self.vcpus.get(index) else {
            return Err(VmError::VmsaCount {
                vmsas: index,
                vcpus: self.vcpus.len(),
            });
        };
        match &v.launch {
            Some(state) => Ok(vcpu::apply(&v.fd, index, state)?),
            None => Ok(IoctlCount(0)),
        }
    }

    /// Reads vCPU `index` back into a VMSA (the fields KVM holds; see [`VcpuState::to_vmsa`]).
    pub fn read_vmsa(&self, index: usize) -> Result<(Vmsa, IoctlCount), VmError> {
        let v = self.vcpus.get(index).ok_or(VmError::VmsaCount {
            vmsas: index,
            vcpus: self.vcpus.len(),
        })?;
        let like = match &v.launch {
            Some(s) => s.clone(),
            None => {
                VcpuState::from_vmsa(&zerocopy::FromZeros::new_zeroed(), &self.caps_for(index)).0
            }
        };
        let (state, n) = vcpu::read(&v.fd, index, &like)?;
        Ok((state.to_vmsa()?, n))
    }

    /// What reading vCPU `index` back must give right after it was programmed or reset: the
    /// VMSA its report says it holds ([`ProgramReport::expected`]), as this KVM reports it
    /// (the core's read-back model, [`vmsa_core::kvm::read_back`], with the model
    /// probed for this KVM: exact here on `kvm_pvm`, `svm_get_segment`'s quirks on AMD SVM).
    /// `None` before the vCPU is programmed.
    pub fn expected_read_back(&self, index: usize) -> Option<Vmsa> {
        let fid = self.vcpus.get(index)?.report.as_ref()?;
        Some(vmsa_core::kvm::read_back(
            self.caps.read_back,
            fid.expected(),
        ))
    }

    /// Loads what an IGVM file places in guest memory for the platform with compatibility mask
    /// `mask` ([`vmsa_core::igvm::load::loads`]: page data, parameter areas, required memory,
    /// the VP count) into guest RAM, in file order. Everything must lie in RAM.
    pub fn load_igvm(
        &self,
        file: &vmsa_core::igvm::IgvmFile<'_>,
        mask: u32,
        vcpus: u32,
    ) -> Result<IgvmLoadReport, VmError> {
        use vmsa_core::igvm::load::{LoadData, LoadKind, loads};
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut report = IgvmLoadReport::default();
        for l in loads(file, mask, vcpus) {
            let l = l?;
            if let LoadKind::Parameter { kind, value: None } = l.kind {
                report.not_supplied.push(kind.0);
                continue;
            }
            let out = || VmError::OutOfRam {
                gpa: l.gpa,
                len: usize::try_from(l.size).unwrap_or(usize::MAX),
            };
            let start = usize::try_from(l.gpa).map_err(|_| out())?;
            let size = usize::try_from(l.size).map_err(|_| out())?;
            if start
                .checked_add(size)
                .is_none_or(|end| end > self.ram.len())
            {
                return Err(out());
            }
            let data = l.data.bytes();
            let head = data.get(..size.min(data.len())).unwrap_or(&[]);
            self.ram.write(start, head).ok_or_else(out)?;
            let mut at = start + head.len();
            while at < start + size {
                let n = (start + size - at).min(ZEROS.len());
                self.ram.write(at, &ZEROS[..n]).ok_or_else(out)?;
                at += n;
            }
            match (l.kind, l.data) {
                (LoadKind::Page { .. }, LoadData::File(_)) => report.data_pages += 1,
                (LoadKind::Page { .. }, _) => report.zero_pages += 1,
                (LoadKind::ParameterArea { .. }, _) => report.parameter_areas += 1,
                (LoadKind::Parameter { .. }, _) => report.parameters += 1,
                _ => {}
            }
            report.bytes += l.size;
        }
        Ok(report)
    }

    /// Copies `data` into guest RAM at `gpa`.
    pub fn write_ram(&self, gpa: u64, data: &[u8]) -> Result<(), VmError> {
        usize::try_from(gpa)
            .ok()
            .and_then(|o| self.ram.write(o, data))
            .ok_or(VmError::OutOfRam {
                gpa,
                len: data.len(),
            })
    }
    /// Runs every vCPU on its own thread until each halts, shuts down, fails, reaches
    /// `limits.max_exits`, or `limits.timeout` passes.
    pub fn run(&mut self, limits: RunLimits) -> Result<Vec<VcpuRun>, VmError> {
        let flash = (self.flash_base, self.flash.as_ref());
        run::run_all(&mut self.vcpus, limits, flash)
    }
}

/// What [`Vm::load_igvm`] placed in guest RAM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgvmLoadReport {
    /// `PAGE_DATA` with file data.
    pub data_pages: u32,
    /// `PAGE_DATA` without file data (zero pages).
    pub zero_pages: u32,
    /// Parameter areas inserted.
    pub parameter_areas: u32,
    /// Parameters the loader supplied (the VP count).
    pub parameters: u32,
    /// Parameter types the loader does not supply (left as the area's initial bytes).
    pub not_supplied: Vec<u32>,
    /// Bytes of guest memory written.
    pub bytes: u64,
}
/// Finds what the vCPUs can hold: XSAVE/XCR0 from the guest CPUID, and which VMSA MSRs KVM lists
/// and lets userspace read on a real vCPU.
fn probe_caps(kvm: &Kvm, cpuid: &CpuId, vcpu: Option<&VcpuFd>) -> Result<VcpuCaps, VmError> {
    let leaf = |f: u32, i: u32| {
        cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == f && e.index == i)
            .copied()
    };
    let xsave = leaf(1, 0).is_some_and(|e| e.ecx & (1 << 26) != 0);
    let supported_xcr0 = leaf(0xd, 0).map_or(1, |e| u64::from(e.eax) | (u64::from(e.edx) << 32));
    let xcrs = xsave && kvm.check_extension(Cap::Xcrs);
    let listed = kvm.get_msr_index_list().map_err(VmError::MsrIndexList)?;
    let mut msrs: Vec<u32> = VMSA_MSRS
        .iter()
        .map(|m| m.index)
        .filter(|i| listed.as_slice().contains(i))
        .collect();
    if let Some(vcpu) = vcpu {
        // KVM_GET_MSRS stops at the first MSR it refuses; drop that one and go on.
        let mut ok = Vec::with_capacity(msrs.len());
        for idx in msrs {
            let entry = [kvm_msr_entry {
                index: idx,
                ..Default::default()
            }];
            if let Ok(mut m) = Msrs::from_entries(&entry) {
                if vcpu.get_msrs(&mut m) == Ok(1) {
                    ok.push(idx);
                }
            }
        }
        msrs = ok;
    }
    // KVM_SET_XSAVE takes a 4 KiB `struct kvm_xsave` unless KVM_CAP_XSAVE2 says the guest state
    // is bigger (AMX); then vmsa-kvm falls back to KVM_SET_FPU.
    let xsave2 = kvm.check_extension_int(Cap::Xsave2);
    let xsave = kvm.check_extension(Cap::Xsave) && xsave2 <= 4096;
    let read_back = match vcpu {
        Some(v) => probe_read_back(v)?,
        None => SregsReadBack::Exact,
    };
    Ok(VcpuCaps {
        xcrs,
        supported_xcr0: if xcrs { supported_xcr0 } else { 1 },
        msrs,
        xsave,
        apic_base: APIC_BASE_DEFAULT,
        read_back,
    })
}

/// Finds how this KVM reports segments through `KVM_GET_SREGS`, by experiment on a vCPU that
/// has not been programmed yet: DS data with the accessed bit clear and a limit above 1 MiB with
/// G clear, TR an available (not busy) 32-bit TSS. AMD SVM's `svm_get_segment` reports DS
/// accessed with G set and TR busy; a KVM that stores segments as given reports them back as
/// set. The vCPU's registers are restored afterwards (4 ioctls, once per VM).
fn probe_read_back(vcpu: &VcpuFd) -> Result<SregsReadBack, VmError> {
    use crate::state::{seg_from_kvm, seg_to_kvm};
    use vmsa_core::kvm::{SegmentRegister, readback::read_back_segment};
    use vmsa_core::segment::SegmentAttributes as A;
    let get = |source| VcpuError::Get {
        ioctl: "KVM_GET_SREGS",
        vcpu: 0,
        source,
    };
    let set = |source| VcpuError::SetSregs { vcpu: 0, source };
    let original = vcpu.get_sregs().map_err(get)?;
    let ds = VmcbSegment::new(0x10, A(A::P | A::S | A::TYPE_READ_WRITE), 0x10_0000, 0);
    let tr = VmcbSegment::new(0x18, A(A::P | 9), 0x67, 0x1000);
    let (Ok(kds), Ok(ktr)) = (ds.to_kvm(), tr.to_kvm()) else {
        return Ok(SregsReadBack::Unmodeled);
    };
    let mut probe = original;
    probe.ds = seg_to_kvm(&kds);
    probe.tr = seg_to_kvm(&ktr);
    vcpu.set_sregs(&probe).map_err(set)?;
    let got = vcpu.get_sregs().map_err(get);
    vcpu.set_sregs(&original).map_err(set)?;
    let got = got?;
    let seen = (
        VmcbSegment::from_kvm(&seg_from_kvm(&got.ds)).ok(),
        VmcbSegment::from_kvm(&seg_from_kvm(&got.tr)).ok(),
    );
    let ss_dpl = original.ss.dpl;
    for rb in [SregsReadBack::Exact, SregsReadBack::Svm] {
        let predicted = (
            read_back_segment(rb, SegmentRegister::Ds, &ds, ss_dpl),
            read_back_segment(rb, SegmentRegister::Tr, &tr, ss_dpl),
        );
        if seen == (Some(predicted.0), Some(predicted.1)) {
            return Ok(rb);
        }
    }
    Ok(SregsReadBack::Unmodeled)
}
