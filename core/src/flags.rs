//! Flag registers that appear in the VMSA, as `bitflags` types.
//!
//! Bit positions follow the AMD64 Architecture Programmer's Manual, Volume 2 (rev. 3.42):
//! §3.1 (CR0, CR4, RFLAGS), §3.1.7 (EFER) and Table 15-36 (SEV_FEATURES).

use bitflags::bitflags;

bitflags! {
    /// `SEV_FEATURES` at VMSA offset 0x3b0 (APM Vol. 2, Table 15-36; Linux `SVM_SEV_FEAT_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct SevFeatures: u64 {
        /// Bit 0: the guest runs under SEV-SNP. KVM sets it itself for SNP VMs.
        const SNP_ACTIVE = 1 << 0;
        /// Bit 1: virtual TOM (`virtual_tom` field is used).
        const VTOM = 1 << 1;
        /// Bit 2: reflect #VC as a #HV-style exit to the hypervisor.
        const REFLECT_VC = 1 << 2;
        /// Bit 3: restricted injection.
        const RESTRICTED_INJECTION = 1 << 3;
        /// Bit 4: alternate injection.
        const ALTERNATE_INJECTION = 1 << 4;
        /// Bit 5: debug register swap ("DebugSwap"/"DebugVirtualization").
        const DEBUG_SWAP = 1 << 5;
        /// Bit 6: prevent the host from using IBS on the guest.
        const PREVENT_HOST_IBS = 1 << 6;
        /// Bit 7: branch target buffer isolation.
        const BTB_ISOLATION = 1 << 7;
        /// Bit 8: VMPL supervisor shadow stack.
        const VMPL_SSS = 1 << 8;
        /// Bit 9: Secure TSC.
        const SECURE_TSC = 1 << 9;
        /// Bit 10: VMGEXIT parameter.
        const VMGEXIT_PARAMETER = 1 << 10;
        /// Bit 11: PMC virtualization.
        const PMC_VIRTUALIZATION = 1 << 11;
        /// Bit 12: IBS virtualization.
        const IBS_VIRTUALIZATION = 1 << 12;
        /// Bit 14: VMSA register protection.
        const VMSA_REG_PROT = 1 << 14;
        /// Bit 15: SMT protection.
        const SMT_PROTECTION = 1 << 15;
    }
}

bitflags! {
    /// The EFER MSR (C000_0080h), APM Vol. 2 §3.1.7.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Efer: u64 {
        /// System call extensions.
        const SCE = 1 << 0;
        /// Long mode enable.
        const LME = 1 << 8;
        /// Long mode active.
        const LMA = 1 << 10;
        /// No-execute enable.
        const NXE = 1 << 11;
        /// Secure virtual machine enable. KVM forces it in every SVM guest's VMCB.
        const SVME = 1 << 12;
        /// Long mode segment limit enable.
        const LMSLE = 1 << 13;
        /// Fast FXSAVE/FXRSTOR.
        const FFXSR = 1 << 14;
        /// Translation cache extension.
        const TCE = 1 << 15;
        /// Automatic IBRS.
        const AUTOIBRS = 1 << 21;
    }
}

bitflags! {
    /// CR0, APM Vol. 2 §3.1.1.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Cr0: u64 {
        /// Protection enable.
        const PE = 1 << 0;
        /// Monitor coprocessor.
        const MP = 1 << 1;
        /// Emulation.
        const EM = 1 << 2;
        /// Task switched.
        const TS = 1 << 3;
        /// Extension type (hard-wired to 1).
        const ET = 1 << 4;
        /// Numeric error.
        const NE = 1 << 5;
        /// Write protect.
        const WP = 1 << 16;
        /// Alignment mask.
        const AM = 1 << 18;
        /// Not write-through.
        const NW = 1 << 29;
        /// Cache disable.
        const CD = 1 << 30;
        /// Paging.
        const PG = 1 << 31;
    }
}

bitflags! {
    /// CR4, APM Vol. 2 §3.1.3.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Cr4: u64 {
        /// Virtual-8086 mode extensions.
        const VME = 1 << 0;
        /// Protected-mode virtual interrupts.
        const PVI = 1 << 1;
        /// Time stamp disable.
        const TSD = 1 << 2;
        /// Debugging extensions.
        const DE = 1 << 3;
        /// Page size extensions.
        const PSE = 1 << 4;
        /// Physical address extension.
        const PAE = 1 << 5;
        /// Machine check enable. KVM ORs in the host's value on every guest CR4 write.
        const MCE = 1 << 6;
        /// Page global enable.
        const PGE = 1 << 7;
        /// Performance counter enable.
        const PCE = 1 << 8;
        /// OS FXSAVE/FXRSTOR support.
        const OSFXSR = 1 << 9;
        /// OS unmasked SIMD exception support.
        const OSXMMEXCPT = 1 << 10;
        /// User-mode instruction prevention.
        const UMIP = 1 << 11;
        /// 5-level paging.
        const LA57 = 1 << 12;
        /// FSGSBASE instructions.
        const FSGSBASE = 1 << 16;
        /// Process-context identifiers.
        const PCIDE = 1 << 17;
        /// XSAVE and extended states.
        const OSXSAVE = 1 << 18;
        /// Supervisor-mode execution prevention.
        const SMEP = 1 << 20;
        /// Supervisor-mode access prevention.
        const SMAP = 1 << 21;
        /// Protection keys for user pages.
        const PKE = 1 << 22;
        /// Control-flow enforcement technology.
        const CET = 1 << 23;
        /// Protection keys for supervisor pages.
        const PKS = 1 << 24;
    }
}

bitflags! {
    /// RFLAGS, APM Vol. 2 §3.1.6.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Rflags: u64 {
        /// Carry.
        const CF = 1 << 0;
        /// Reserved, always 1 (`X86_EFLAGS_FIXED`).
        const FIXED = 1 << 1;
        /// Parity.
        const PF = 1 << 2;
        /// Auxiliary carry.
        const AF = 1 << 4;
        /// Zero.
        const ZF = 1 << 6;
        /// Sign.
        const SF = 1 << 7;
        /// Trap.
        const TF = 1 << 8;
        /// Interrupt enable.
        const IF = 1 << 9;
        /// Direction.
        const DF = 1 << 10;
        /// Overflow.
        const OF = 1 << 11;
        /// I/O privilege level, low bit.
        const IOPL0 = 1 << 12;
        /// I/O privilege level, high bit.
        const IOPL1 = 1 << 13;
        /// Nested task.
        const NT = 1 << 14;
        /// Resume.
        const RF = 1 << 16;
        /// Virtual-8086 mode.
        const VM = 1 << 17;
        /// Alignment check.
        const AC = 1 << 18;
        /// Virtual interrupt.
        const VIF = 1 << 19;
        /// Virtual interrupt pending.
        const VIP = 1 << 20;
        /// ID (CPUID available).
        const ID = 1 << 21;
    }
}

/// Writes the names of the set flags of `value` joined by `|`, then any bits without a name in hex.
///
/// `0x2021` as [`SevFeatures`] prints `SNP_ACTIVE|DEBUG_SWAP|0x2000` (bit 13 has no name);
/// zero prints `0`.
pub fn write_flag_names<F>(f: &mut core::fmt::Formatter<'_>, value: F) -> core::fmt::Result
where
    F: bitflags::Flags<Bits = u64>,
{
    let mut first = true;
    for (name, _) in value.iter_names() {
        if !first {
            f.write_str("|")?;
        }
        f.write_str(name)?;
        first = false;
    }
    let unknown = value.bits() & !F::all().bits();
    if unknown != 0 {
        if !first {
            f.write_str("|")?;
        }
        write!(f, "{unknown:#x}")?;
        first = false;
    }
    if first {
        f.write_str("0")?;
    }
    Ok(())
}

/// A [`core::fmt::Display`] adapter that prints a flag value by its names (see [`write_flag_names`]).
#[derive(Debug, Clone, Copy)]
pub struct FlagNames<F>(pub F);

impl<F> core::fmt::Display for FlagNames<F>
where
    F: bitflags::Flags<Bits = u64> + Copy,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write_flag_names(f, self.0)
    }
}
