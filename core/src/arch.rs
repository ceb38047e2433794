//! Architectural register values that every layer above names: what an x86 CPU holds after
//! RESET, and the DR7 bit that is always one.
//!
//! Sources: AMD APM Vol. 2 rev. 3.42, Table 14-1 "Initial Processor State"; QEMU 10.2
//! `target/i386/cpu.c` `x86_cpu_reset_hold`; Linux `arch/x86/include/asm/debugreg.h`
//! (`DR6_ACTIVE_LOW`, `DR7_FIXED_1`) and `arch/x86/include/asm/fpu/types.h`.

use crate::flags::Cr0;

/// CR0 at reset: CD | NW | ET = 0x60000010 (`x86_cpu_reset_hold`, APM Table 14-1).
pub const CR0_RESET: u64 = Cr0::CD.bits() | Cr0::NW.bits() | Cr0::ET.bits();
/// DR6 at reset (`DR6_ACTIVE_LOW`).
pub const DR6_RESET: u64 = 0xffff_0ff0;
/// DR7 at reset, which is also its only fixed bit (`DR7_FIXED_1`, bit 10): KVM's
/// `sev_es_sync_vmsa` refuses a DR7 with any other bit.
pub const DR7_RESET: u64 = 0x400;
/// x87 control word at reset (FNINIT).
pub const FCW_RESET: u16 = 0x37f;
/// MXCSR at reset (all SIMD exceptions masked).
pub const MXCSR_RESET: u32 = 0x1f80;
/// XCR0 at reset: x87 state only (`XSTATE_FP_MASK`).
pub const XCR0_RESET: u64 = 1;
/// Guest PAT at reset (`MSR_IA32_CR_PAT_DEFAULT`, APM Vol. 2 §7.8.2 / A.3).
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// The reset vector: the BSP starts at 0xfffffff0 (CS base 0xffff0000, IP 0xfff0).
pub const RESET_VECTOR: u32 = 0xffff_fff0;
