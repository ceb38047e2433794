//! A libkrun launch: libkrunfw-sev's qboot, kernel and initrd bundles and the boot_params page
//! libkrun writes, then the VMSAs.
//!
//! Read from containers/libkrun (6ed74fac, v1.19; the layout has not changed since v1.9):
//! `src/vmm/src/builder.rs` (the measured regions, in order), `src/vmm/src/linux/tee/amdsnp/
//! mod.rs` (`SNP_LAUNCH_UPDATE` of those regions as NORMAL pages, then a ZERO page at 0, the
//! SECRETS page at 0x5000, the CPUID page at 0x6000, ZERO pages at 0x8000–0xefff; KVM measures
//! the VMSAs at `SNP_LAUNCH_FINISH`), `src/arch/src/x86_64/{layout.rs,mod.rs}` (the GPAs,
//! `arch_memory_regions` for TEE builds and `configure_64bit_boot`, which writes boot_params at
//! 0x7000). Before v1.11 libkrun launched SEV-ES (`tee/amdsev.rs`): `KVM_SEV_ES_INIT`,
//! `LAUNCH_UPDATE_DATA` of the same four regions, `LAUNCH_UPDATE_VMSA`.
//!
//! The kernel command line is not measured apart: libkrunfw builds it into the kernel
//! (`CONFIG_CMDLINE_OVERRIDE`); boot_params points at 0x20000 for it, where libkrun writes
//! nothing in TEE builds.

use super::error::LaunchError;
use super::update::{LaunchUpdate, UpdateSource};
use crate::measure::ItemKind;
use crate::page::{PAGE_SIZE, PageType};

/// Where qboot is loaded (`FIRMWARE_START`), and its only accepted size (`FIRMWARE_SIZE`).
pub const KRUN_QBOOT_GPA: u64 = 0xffff_0000;
/// qboot's size: libkrun refuses any other (`resources.rs`: `InvalidSize`).
pub const KRUN_QBOOT_SIZE: u64 = 0x1_0000;
/// Where the initrd is loaded in TEE builds (`INITRD_SEV_START`).
pub const KRUN_INITRD_GPA: u64 = 0xa0_0000;
/// Where boot_params is written and measured (`ZERO_PAGE_START`).
pub const KRUN_BOOT_PARAMS_GPA: u64 = 0x7000;
/// The default kernel load address: libkrunfw-sev's `p_vaddr & 0xfffffff` of the first
/// `PT_LOAD` for its `CONFIG_PHYSICAL_START=0x1000000`.
pub const KRUN_KERNEL_GPA: u64 = 0x100_0000;
/// The APs' entry with libkrun ≤ 1.15 (`RESET_VECTOR_SEV_AP` 0xfff3 in qboot's segment).
pub const KRUN_AP_EIP: u32 = 0xffff_fff3;

/// Start of the 32-bit MMIO gap (`MMIO_MEM_START`: 4 GiB − 768 MiB).
const MMIO_MEM_START: u64 = (1 << 32) - (768 << 20);
/// `FIRST_ADDR_PAST_32BITS`.
const FOUR_GIB: u64 = 1 << 32;
/// `EBDA_START`.
const EBDA_START: u64 = 0x9_fc00;
/// `HIMEM_START`.
const HIMEM_START: u64 = 0x10_0000;
/// `CMDLINE_START`, `CMDLINE_SEV_SIZE`.
const CMDLINE: (u64, u64) = (0x2_0000, 0x200);

/// How libkrun programs the vCPUs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum KrunRegs {
    /// libkrun ≤ 1.15: `setup_regs`/`setup_sregs`/`setup_fpu` ([`crate::reset::VmmType::Krun`]),
    /// the APs at 0xfffffff3.
    Programmed,
    /// libkrun ≥ 1.16 (2ecba0f5, "x86_64: support booting from a firmware"): nothing for TEE
    /// builds: every vCPU in KVM's reset state at the reset vector.
    Reset,
}

/// What libkrun launches from: libkrunfw-sev's three bundles (as `krunfw_get_qboot`,
/// `krunfw_get_kernel` and `krunfw_get_initrd` return them) and the VM's size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KrunImages<'a> {
    /// qboot (exactly 64 KiB).
    pub qboot: &'a [u8],
    /// The kernel bundle (its PT_LOAD segments laid out, padded to 64 KiB).
    pub kernel: &'a [u8],
    /// Where the kernel bundle is loaded (`krunfw_get_kernel`'s `load_addr`).
    pub kernel_gpa: u64,
    /// The initrd bundle.
    pub initrd: &'a [u8],
    /// The VM's memory in MiB (`krun_set_vm_config`'s `ram_mib`).
    pub ram_mib: u32,
    /// How the vCPUs are programmed.
    pub regs: KrunRegs,
}

/// The ordered updates of a libkrun launch, with the boot_params page it writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KrunPlan<'a> {
    images: KrunImages<'a>,
    boot_params: [u8; 4096],
    snp: bool,
    vcpus: u32,
}

fn put(page: &mut [u8; 4096], at: usize, bytes: &[u8]) {
    if let Some(dst) = page.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// The boot_params page `configure_64bit_boot` writes for a TEE build (Linux's `struct
/// boot_params`, `Documentation/arch/x86/zero-page.rst` and `boot.rst` offsets): the loader
/// type, magic numbers, the command line pointer, the initrd, the vCPU count in `syssize`, and
/// the e820 map of `arch_memory_regions` (whose "last address" is one past the RAM below the
/// gap, so the first high entry is a byte longer than the RAM: libkrun's arithmetic, kept).
pub fn boot_params(ram_mib: u32, initrd_len: u64, vcpus: u32) -> [u8; 4096] {
    let mut p = [0u8; 4096];
    put(&mut p, 0x210, &[0xff]); // type_of_loader: KERNEL_LOADER_OTHER
    put(&mut p, 0x1fe, &0xaa55u16.to_le_bytes()); // boot_flag
    put(&mut p, 0x202, &0x5372_6448u32.to_le_bytes()); // header "HdrS"
    put(&mut p, 0x228, &(CMDLINE.0 as u32).to_le_bytes()); // cmd_line_ptr
    put(&mut p, 0x238, &(CMDLINE.1 as u32).to_le_bytes()); // cmdline_size
    put(&mut p, 0x230, &0x0100_0000u32.to_le_bytes()); // kernel_alignment
    put(&mut p, 0x218, &(KRUN_INITRD_GPA as u32).to_le_bytes()); // ramdisk_image
    put(&mut p, 0x21c, &(initrd_len as u32).to_le_bytes()); // ramdisk_size
    put(&mut p, 0x1f4, &vcpus.to_le_bytes()); // syssize: the vCPU count (TEE)
    let size = u64::from(ram_mib) << 20;
    // arch_memory_regions (TEE): `ram_last_addr` is the size below the gap, or 4 GiB plus
    // what lies above it; configure_64bit_boot's branches on it, as written there.
    let last = match size.checked_sub(MMIO_MEM_START) {
        None | Some(0) => size,
        Some(above) => FOUR_GIB + above,
    };
    let mut e820 = heapless::Vec::<(u64, u64), 3>::new();
    let _ = e820.push((0, EBDA_START));
    if last < MMIO_MEM_START {
        let _ = e820.push((HIMEM_START, last.wrapping_sub(HIMEM_START).wrapping_add(1)));
    } else {
        let _ = e820.push((HIMEM_START, MMIO_MEM_START - HIMEM_START));
        if last > FOUR_GIB {
            let _ = e820.push((FOUR_GIB, last - FOUR_GIB + 1));
        }
    }
    put(&mut p, 0x1e8, &[e820.len() as u8]); // e820_entries
    for (i, (addr, len)) in e820.iter().enumerate() {
        let at = 0x2d0 + 20 * i;
        put(&mut p, at, &addr.to_le_bytes());
        put(&mut p, at + 8, &len.to_le_bytes());
        put(&mut p, at + 16, &1u32.to_le_bytes()); // E820_RAM
    }
    p
}

impl<'a> KrunPlan<'a> {
    /// The plan for `images` with `vcpus` vCPUs in SNP (`snp`) or SEV-ES: refused where libkrun
    /// refuses (qboot not 64 KiB, a kernel beyond the RAM) and where the launch cannot be made
    /// (bundles not whole pages, regions overlapping each other or the fixed pages, or out of
    /// the RAM).
    pub(super) fn new(images: KrunImages<'a>, snp: bool, vcpus: u32) -> Result<Self, LaunchError> {
        let bad = |what: &'static str| Err(LaunchError::Krun(what));
        if images.qboot.len() as u64 != KRUN_QBOOT_SIZE {
            return bad("qboot must be exactly 64 KiB (libkrun: InvalidSize)");
        }
        let (klen, ilen) = (images.kernel.len() as u64, images.initrd.len() as u64);
        if klen == 0 || ilen == 0 || klen % PAGE_SIZE != 0 || ilen % PAGE_SIZE != 0 {
            return bad(
                "the kernel and initrd bundles must be whole 4 KiB pages (libkrunfw pads them to 64 KiB)",
            );
        }
        if images.kernel_gpa % PAGE_SIZE != 0 || images.kernel_gpa < 0x1_0000 {
            return bad("the kernel load address must be page aligned and above the low pages");
        }
        let ram = u64::from(images.ram_mib) << 20;
        let low_ram = ram.min(MMIO_MEM_START);
        let kend = images.kernel_gpa.checked_add(klen);
        if ram == 0 || kend.is_none_or(|e| e > ram || e > MMIO_MEM_START) {
            return bad(
                "the kernel does not fit in the RAM below the 32-bit gap (libkrun: \"Kernel doesn't fit in RAM\")",
            );
        }
        let iend = KRUN_INITRD_GPA + ilen;
        if iend > low_ram {
            return bad("the initrd at 0xa00000 does not fit in the RAM");
        }
        if images.kernel_gpa < iend && KRUN_INITRD_GPA < kend.unwrap_or(u64::MAX) {
            return bad("the kernel and the initrd at 0xa00000 overlap");
        }
        Ok(Self {
            images,
            boot_params: boot_params(images.ram_mib, ilen, vcpus),
            snp,
            vcpus,
        })
    }

    /// What libkrun sends, in order, then the VMSAs KVM measures.
    pub(super) fn updates(&self) -> impl Iterator<Item = LaunchUpdate<'_>> + '_ {
        let snp = self.snp;
        let normal = snp.then_some(PageType::NORMAL);
        let i = &self.images;
        let data = [
            (ItemKind::Firmware, KRUN_QBOOT_GPA, i.qboot),
            (ItemKind::Kernel, i.kernel_gpa, i.kernel),
            (ItemKind::Initrd, KRUN_INITRD_GPA, i.initrd),
            (
                ItemKind::BootParams,
                KRUN_BOOT_PARAMS_GPA,
                &self.boot_params[..],
            ),
        ]
        .into_iter()
        .map(move |(kind, gpa, bytes)| LaunchUpdate {
            kind,
            gpa,
            len: bytes.len() as u64,
            page_type: normal,
            source: UpdateSource::Bytes(bytes),
        });
        // SNP only: amdsnp/mod.rs's fixed pages (types 1..=6 of `MetadataSection` naming).
        let fixed = [
            (0x0, PAGE_SIZE, PageType::ZERO, UpdateSource::Zero, 1),
            (0x5000, PAGE_SIZE, PageType::SECRETS, UpdateSource::Zero, 2),
            (0x6000, PAGE_SIZE, PageType::CPUID, UpdateSource::Cpuid, 3),
            (0x8000, 0x7000, PageType::ZERO, UpdateSource::Zero, 1),
        ]
        .into_iter()
        .filter(move |_| snp)
        .map(|(gpa, len, t, source, section_type)| LaunchUpdate {
            kind: ItemKind::MetadataSection { section_type },
            gpa,
            len,
            page_type: Some(t),
            source,
        });
        let vmsas = super::update::vmsa_updates(self.vcpus, snp);
        data.chain(fixed).chain(vmsas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(p: &[u8; 4096], at: usize, len: usize) -> u64 {
        let mut b = [0u8; 8];
        b[..len].copy_from_slice(&p[at..at + len]);
        u64::from_le_bytes(b)
    }

    #[test]
    fn boot_params_as_libkrun_writes_them() {
        let p = boot_params(1024, 0x21_0000, 2);
        assert_eq!(field(&p, 0x1f4, 4), 2);
        assert_eq!(field(&p, 0x202, 4), 0x5372_6448);
        assert_eq!(field(&p, 0x218, 4), 0xa0_0000);
        assert_eq!(field(&p, 0x21c, 4), 0x21_0000);
        assert_eq!(field(&p, 0x1e8, 1), 2);
        // 0..EBDA, then 1 MiB up to the RAM's end (plus libkrun's one byte).
        assert_eq!((field(&p, 0x2d0, 8), field(&p, 0x2d8, 8)), (0, 0x9_fc00));
        assert_eq!(
            (
                field(&p, 0x2e4, 8),
                field(&p, 0x2ec, 8),
                field(&p, 0x2f4, 4)
            ),
            (0x10_0000, (1 << 30) - 0x10_0000 + 1, 1)
        );
        // Exactly up to the gap: libkrun's `<` sends it to the other branch, without a high
        // entry.
        let p = boot_params(0xd00, 0x1_0000, 1);
        assert_eq!(field(&p, 0x1e8, 1), 2);
        assert_eq!(field(&p, 0x2ec, 8), 0xd000_0000 - 0x10_0000);
        // Beyond the gap: the low part stops at 0xd0000000, the rest from 4 GiB.
        let p = boot_params(4096, 0x1_0000, 1);
        assert_eq!(field(&p, 0x1e8, 1), 3);
        assert_eq!(field(&p, 0x2ec, 8), 0xd000_0000 - 0x10_0000);
        assert_eq!(
            (field(&p, 0x2f8, 8), field(&p, 0x300, 8)),
            (1 << 32, (768 << 20) + 1)
        );
    }
}
