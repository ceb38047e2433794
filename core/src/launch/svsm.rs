//! A COCONUT-SVSM + OVMF launch without IGVM (sev-snp-measure's `snp:svsm` mode): coconut-svsm's
//! QEMU fork (0e64fb84) loads the SVSM binary below OVMF and its variable store, and every vCPU
//! starts in the SVSM, at VMPL0, in 32-bit protected mode.
//!
//! | # | update |
//! |---|---|
//! | 1 | the OVMF image, NORMAL, ending at 4 GiB |
//! | 2 | the SVSM image, NORMAL, ending where the OVMF variable store (`--vars-size`) begins |
//! | 3 | the **SVSM's** `ASEV` sections, as QEMU launches an OVMF image's (OVMF's own are not launched: the SVSM provides them to OVMF) |
//! | 4 | every vCPU's VMSA: the same page for all, [`svsm_vmsa`] |
//!
//! The placement is QEMU's: `pc_system_flash_map` maps pflash units 0 (OVMF code), 1 (its
//! variables) and 2 (the SVSM) downward from 4 GiB without gaps, each a non-zero multiple of
//! 4 KiB, together at most the machine's `max-fw-size` (8 MiB by default, 16 MiB at most). The
//! SVSM's 32-bit entry is its `SVSM_INFO` launch offset (coconut-svsm `utils/gen_meta.c`: 0).
//! The SVSM starts the APs and OVMF itself, so every vCPU's launch VMSA is the SVSM's.
//!
//! sev-snp-measure 0.0.13 models this launch, with one defect ([`SvsmProfile::SevSnpMeasure`]):
//! its first SVSM digests (commit 0a1396f) were taken from a real launch (QEMU 0e64fb84 on host
//! kernel e1335c6f0, its `tests/fixtures/README.md`) and are [`SvsmProfile::Launch`]'s.

use super::config::{LaunchConfig, SvsmProfile};
use super::error::LaunchError;
use crate::arch::{DR6_RESET, DR7_RESET, MXCSR_RESET, PAT_RESET, XCR0_RESET};
use crate::flags::{Cr0, Cr4, Efer, Rflags, SevFeatures};
use crate::ovmf::OvmfImage;
use crate::page::PAGE_SIZE;
use crate::reset::VmmType;
use crate::segment::{SegmentAttributes, VmcbSegment};
use crate::vmsa::Vmsa;
use zerocopy::FromZeros;

/// The most a PC machine's pflash units may hold together: `max-fw-size` is 8 MiB by default
/// and QEMU refuses a larger setting than 16 MiB (`pc_machine_set_max_fw_size`: "is greater than
/// 16MiB"); `pc_system_flash_map` refuses a set beyond it ("combined size of system firmware
/// exceeds").
pub const MAX_PFLASH_SIZE: u64 = 16 << 20;

/// Where the SVSM image is loaded: it ends where the OVMF variable store begins, which ends where
/// the OVMF code begins (`4 GiB - ovmf_len - vars_size - svsm_len`, sev-snp-measure's
/// `SVSM(end_at=ovmf.gpa() - vars_size)`). Refused if the variable store is not a non-zero
/// multiple of 4 KiB (QEMU's pflash: "its size must be a non-zero multiple of 0x1000") or the
/// image would not fit below it, or the three exceed [`MAX_PFLASH_SIZE`].
pub fn svsm_gpa(ovmf_len: u64, vars_size: u64, svsm_len: u64) -> Result<u64, LaunchError> {
    if vars_size == 0 || vars_size % PAGE_SIZE != 0 {
        return Err(LaunchError::VarsSize { size: vars_size });
    }
    if svsm_len == 0 || svsm_len % PAGE_SIZE != 0 {
        return Err(LaunchError::SvsmNotPageMultiple { len: svsm_len });
    }
    let total = ovmf_len.saturating_add(vars_size).saturating_add(svsm_len);
    if total > MAX_PFLASH_SIZE {
        return Err(LaunchError::SvsmFirmwareTooLarge {
            total,
            max: MAX_PFLASH_SIZE,
        });
    }
    (1u64 << 32)
        .checked_sub(ovmf_len)
        .and_then(|g| g.checked_sub(vars_size))
        .and_then(|g| g.checked_sub(svsm_len))
        .ok_or(LaunchError::SvsmDoesNotFit {
            ovmf_len,
            vars_size,
            svsm_len,
        })
}

/// The SVSM's entry point: its `SVSM_INFO` footer entry's launch offset (the first `u32`) from
/// the start of the image. Refused without the entry (sev-snp-measure: "Can't find
/// SVSM_INFO_GUID entry in SVSM table") or with an offset outside the image.
pub fn svsm_entry(svsm: &OvmfImage<'_>, gpa: u64) -> Result<u32, LaunchError> {
    let offset = svsm
        .svsm_info()
        .and_then(|d| d.get(..4))
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_le_bytes)
        .ok_or(LaunchError::NoSvsmInfo)?;
    let len = svsm.bytes().len() as u64;
    if u64::from(offset) >= len {
        return Err(LaunchError::SvsmEntryOutside { offset, len });
    }
    // Below 4 GiB: the image ends below the OVMF code, which ends at 4 GiB.
    u32::try_from(gpa + u64::from(offset))
        .map_err(|_| LaunchError::SvsmEntryOutside { offset, len })
}

/// Checks what an SVSM launch takes from its configuration: QEMU's VMM (sev-snp-measure: "SVSM
/// mode is only implemented for Qemu"), no kernel hashes (the SVSM's metadata is launched, and
/// the mode measures no kernel) and the guest features of the launch it models, SNP_ACTIVE only
/// (sev-snp-measure ignores `--guest-features` in this mode; here it is refused, not dropped).
pub(super) fn check_config(cfg: &LaunchConfig) -> Result<(), LaunchError> {
    if cfg.vmm != VmmType::Qemu {
        return Err(LaunchError::SvsmVmm(cfg.vmm));
    }
    if cfg.kernel.is_some() {
        return Err(LaunchError::SvsmKernel);
    }
    if cfg.guest_features != SevFeatures::SNP_ACTIVE {
        return Err(LaunchError::SvsmFeatures(cfg.guest_features.bits()));
    }
    Ok(())
}

/// The VMSA every vCPU of an SVSM launch starts from: flat 32-bit protected mode (CS selector 8,
/// data selector 16, 4 GiB limits, GS and the system segments as at reset), CR0 PE|ET, EIP the
/// SVSM entry, RDX the CPU signature, SNP_ACTIVE, XCR0 1; MXCSR and FCW as `profile` says (the
/// measured launch: both 0; sev-snp-measure 0.0.13: MXCSR 0x1f80, FCW 0).
pub fn svsm_vmsa(entry: u32, signature: crate::CpuSignature, profile: SvsmProfile) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    let flat = |selector: u16, attrib: SegmentAttributes| {
        VmcbSegment::new(selector, attrib, 0xffff_ffff, 0)
    };
    let data = flat(0x10, SegmentAttributes::DATA_32BIT_FLAT);
    v.es = data;
    v.ss = data;
    v.ds = data;
    v.fs = data;
    v.cs = flat(0x8, SegmentAttributes::CODE_32BIT_FLAT);
    v.gs = VmcbSegment::new(0, SegmentAttributes::DATA_16BIT_RESET, 0xffff, 0);
    v.gdtr = VmcbSegment::new(0, SegmentAttributes(0), 0xffff, 0);
    v.idtr = VmcbSegment::new(0, SegmentAttributes(0), 0xffff, 0);
    v.ldtr = VmcbSegment::new(0, SegmentAttributes::LDT_RESET, 0xffff, 0);
    v.tr = VmcbSegment::new(0, SegmentAttributes::TSS32_BUSY_RESET, 0xffff, 0);
    v.efer = Efer::SVME.bits();
    v.cr4 = Cr4::MCE.bits();
    v.cr0 = (Cr0::PE | Cr0::ET).bits();
    v.dr7 = DR7_RESET;
    v.dr6 = DR6_RESET;
    v.rflags = Rflags::FIXED.bits();
    v.rip = u64::from(entry);
    v.g_pat = PAT_RESET;
    v.rdx = u64::from(signature.0);
    v.sev_features = SevFeatures::SNP_ACTIVE.bits();
    v.xcr0 = XCR0_RESET;
    if profile == SvsmProfile::SevSnpMeasure {
        v.mxcsr = MXCSR_RESET;
    }
    v
}
