//! The SEV-SNP CPUID page: the table of CPUID results the VMM gives an SNP guest and the AMD
//! secure processor checks against the host (SNP_LAUNCH_UPDATE with page type CPUID).
//!
//! Layout (SEV-SNP Firmware ABI, AMD 56860 rev 1.55, §8.17.2.6 "CPUID Page", Table 75
//! "CPUID_FUNCTION"; QEMU `target/i386/sev.c` `SnpCpuidInfo`/`SnpCpuidFunc`; Linux
//! `arch/x86/include/asm/sev.h` `struct snp_cpuid_table`):
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | `count` (u32), then 12 reserved bytes |
//! | 0x10 | 64 entries of 48 bytes: `eax_in`, `ecx_in` (u32), `xcr0_in`, `xss_in` (u64), `eax`, `ebx`, `ecx`, `edx` (u32), reserved (u64) |
//!
//! How QEMU fills it (`snp_launch_update_cpuid` → `sev_snp_cpuid_info_fill`, QEMU 9.1–10.1),
//! which [`SnpCpuidInfo::from_entries`] does the same way:
//! - the entries are `KVM_GET_CPUID2` of the first vCPU, in KVM's order; more than 64 is an
//!   error ("CPUID entry count (%d) exceeds max (%d)");
//! - `ecx_in` is the KVM entry's `index` only when its `flags` **equal**
//!   `KVM_CPUID_FLAG_SIGNIFCANT_INDEX` (QEMU compares with `==`, not a bit test), else 0;
//! - leaf 0xD subleaf 0 and 1: `ebx = 0x240` (the XSAVE area of the XCR0 = 1 state),
//!   `xcr0_in = 1`, `xss_in = 0` ("guest kernels will calculate EBX themselves").
//!
//! The guest CPUID itself is first masked as QEMU masks it for SNP guests
//! (`sev_snp_adjust_cpuid_features`, called from `kvm_arch_get_supported_cpuid`):
//! [`adjust_cpuid_features`].
//!
//! When the firmware refuses the page (SEV_RET_INVALID_PARAM), KVM copies the firmware's
//! corrected page back to the VMM's buffer; [`mismatches`] lists what differs, as QEMU's
//! `sev_snp_cpuid_report_mismatches` does.
//!
//! ```
//! use vmsa_core::snp_cpuid::{CpuidEntry, SnpCpuidInfo};
//! let leaf_d = CpuidEntry { function: 0xd, index: 0, flags: 1, eax: 0x207, ebx: 0x988, ecx: 0x988, edx: 0 };
//! let info = SnpCpuidInfo::from_entries([leaf_d]).unwrap();
//! assert_eq!(info.count, 1);
//! assert_eq!(info.entries[0].ebx, 0x240);
//! assert_eq!(info.entries[0].xcr0_in, 1);
//! assert_eq!(info.page().len(), 4096);
//! ```

use core::fmt;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Entries the page holds (`SNP_CPUID_FUNCTION_MAXCOUNT`).
pub const MAX_ENTRIES: usize = 64;
/// `KVM_CPUID_FLAG_SIGNIFCANT_INDEX` (uapi `arch/x86/include/uapi/asm/kvm.h`, spelled so).
pub const KVM_CPUID_FLAG_SIGNIFCANT_INDEX: u32 = 1;
/// The XSAVE area size of the XCR0 = 1 (x87 only) state: legacy area 512 + header 64.
pub const XSAVE_BASE_SIZE: u32 = 0x240;

/// One CPUID result as KVM holds it (`struct kvm_cpuid_entry2` without its padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuidEntry {
    /// Leaf (EAX in).
    pub function: u32,
    /// Subleaf (ECX in).
    pub index: u32,
    /// `KVM_CPUID_FLAG_*`.
    pub flags: u32,
    /// EAX out.
    pub eax: u32,
    /// EBX out.
    pub ebx: u32,
    /// ECX out.
    pub ecx: u32,
    /// EDX out.
    pub edx: u32,
}

/// One entry of the CPUID page (`SnpCpuidFunc`, 48 bytes).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SnpCpuidFunc {
    /// Leaf.
    pub eax_in: u32,
    /// Subleaf (0 unless the leaf has subleaves).
    pub ecx_in: u32,
    /// The XCR0 the result holds for (leaf 0xD).
    pub xcr0_in: u64,
    /// The XSS the result holds for (leaf 0xD).
    pub xss_in: u64,
    /// EAX out.
    pub eax: u32,
    /// EBX out.
    pub ebx: u32,
    /// ECX out.
    pub ecx: u32,
    /// EDX out.
    pub edx: u32,
    /// Reserved, zero.
    pub reserved: u64,
}

/// The CPUID page's table (`SnpCpuidInfo`, 3088 bytes; the rest of the 4 KiB page is zero).
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SnpCpuidInfo {
    /// Entries in use.
    pub count: u32,
    /// Reserved, zero.
    pub reserved1: u32,
    /// Reserved, zero.
    pub reserved2: u64,
    /// The entries; those past `count` are zero.
    pub entries: [SnpCpuidFunc; MAX_ENTRIES],
}

const _: () = assert!(core::mem::size_of::<SnpCpuidFunc>() == 48);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, ecx_in) == 4);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, xcr0_in) == 8);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, xss_in) == 16);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, eax) == 24);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, ebx) == 28);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, ecx) == 32);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, edx) == 36);
const _: () = assert!(core::mem::offset_of!(SnpCpuidFunc, reserved) == 40);
const _: () = assert!(core::mem::size_of::<SnpCpuidInfo>() == 16 + 48 * MAX_ENTRIES);
const _: () = assert!(core::mem::offset_of!(SnpCpuidInfo, entries) == 16);

/// The CPUID page cannot be made or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuidPageError {
    /// More CPUID entries than the page holds (QEMU: "CPUID entry count (%d) exceeds max (%d)").
    #[error(
        "the vCPU has {count} CPUID entries; the SNP CPUID page holds at most {MAX_ENTRIES} (QEMU: \"CPUID entry count exceeds max\")"
    )]
    TooManyEntries {
        /// Entries the vCPU has.
        count: usize,
    },
    /// A page (from the firmware) shorter than the table.
    #[error("a CPUID page of {len} bytes is shorter than the {size}-byte table")]
    Short {
        /// Its length.
        len: usize,
        /// The table size.
        size: usize,
    },
    /// A page whose `count` exceeds the table.
    #[error("the CPUID page says it has {count} entries; it holds at most {MAX_ENTRIES}")]
    Count {
        /// The count field.
        count: u32,
    },
}

/// CPUID feature bits QEMU clears for SNP guests (`sev_snp_adjust_cpuid_features`,
/// target/i386/sev.c, QEMU 9.1–10.1; bit names from target/i386/cpu.h).
pub mod masked {
    /// Leaf 1 ECX bit 24, `CPUID_EXT_TSC_DEADLINE_TIMER`.
    pub const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
    /// Leaf 7.0 EBX bit 1, `CPUID_7_0_EBX_TSC_ADJUST`.
    pub const LEAF7_EBX_TSC_ADJUST: u32 = 1 << 1;
    /// Leaf 7.0 EDX bits 26–31: `SPEC_CTRL`, `STIBP`, `FLUSH_L1D`, `ARCH_CAPABILITIES`,
    /// `CORE_CAPABILITY`, `SPEC_CTRL_SSBD`.
    pub const LEAF7_EDX: u32 = 0x3f << 26;
    /// Leaf 0x8000_0008 EBX bit 25, `CPUID_8000_0008_EBX_VIRT_SSBD`.
    pub const LEAF80000008_EBX_VIRT_SSBD: u32 = 1 << 25;
}

/// Clears, in one guest CPUID entry, the features QEMU hides from SNP guests (see [`masked`]).
pub fn adjust_cpuid_features(e: &mut CpuidEntry) {
    match (e.function, e.index) {
        (1, _) => e.ecx &= !masked::LEAF1_ECX_TSC_DEADLINE,
        (7, 0) => {
            e.ebx &= !masked::LEAF7_EBX_TSC_ADJUST;
            e.edx &= !masked::LEAF7_EDX;
        }
        (0x8000_0008, _) => e.ebx &= !masked::LEAF80000008_EBX_VIRT_SSBD,
        _ => {}
    }
}

impl SnpCpuidFunc {
    /// The page entry of one KVM CPUID entry (`sev_snp_cpuid_info_fill`).
    pub fn from_kvm(e: &CpuidEntry) -> Self {
        let ecx_in = if e.flags == KVM_CPUID_FLAG_SIGNIFCANT_INDEX {
            e.index
        } else {
            0
        };
        let mut f = Self {
            eax_in: e.function,
            ecx_in,
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
            ..Self::default()
        };
        if f.eax_in == 0xd && (f.ecx_in == 0 || f.ecx_in == 1) {
            f.ebx = XSAVE_BASE_SIZE;
            f.xcr0_in = 1;
            f.xss_in = 0;
        }
        f
    }
}

impl SnpCpuidInfo {
    /// The table of `entries` (a vCPU's CPUID, in KVM's order), as QEMU fills it.
    pub fn from_entries(
        entries: impl IntoIterator<Item = CpuidEntry>,
    ) -> Result<Self, CpuidPageError> {
        let mut info = Self::new_zeroed();
        let mut count = 0usize;
        for e in entries {
            if let Some(slot) = info.entries.get_mut(count) {
                *slot = SnpCpuidFunc::from_kvm(&e);
            }
            count += 1;
        }
        if count > MAX_ENTRIES {
            return Err(CpuidPageError::TooManyEntries { count });
        }
        // count <= 64 here.
        info.count = count as u32;
        Ok(info)
    }

    /// The 4 KiB page: the table, then zeros.
    pub fn page(&self) -> [u8; 4096] {
        let mut page = [0u8; 4096];
        let bytes = self.as_bytes();
        if let Some(dst) = page.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        page
    }

    /// Reads a table back from a page (the firmware's corrected page), checking `count`.
    pub fn from_page(page: &[u8]) -> Result<Self, CpuidPageError> {
        let (info, _) = Self::read_from_prefix(page).map_err(|_| CpuidPageError::Short {
            len: page.len(),
            size: core::mem::size_of::<Self>(),
        })?;
        if info.count as usize > MAX_ENTRIES {
            return Err(CpuidPageError::Count { count: info.count });
        }
        Ok(info)
    }

    /// The entries in use.
    pub fn used(&self) -> &[SnpCpuidFunc] {
        self.entries
            .get(..self.count as usize)
            .unwrap_or(&self.entries)
    }
}

/// One difference between the CPUID page the VMM provided and the one the firmware expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuidMismatch {
    /// The counts differ (QEMU reports only this, then stops).
    Count {
        /// The VMM's count.
        provided: u32,
        /// The firmware's.
        expected: u32,
    },
    /// Entry `index` differs.
    Function {
        /// Entry index in the table.
        index: usize,
        /// The VMM's entry.
        provided: SnpCpuidFunc,
        /// The firmware's.
        expected: SnpCpuidFunc,
    },
}

impl fmt::Display for CpuidMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count { provided, expected } => write!(
                f,
                "CPUID validation failed due to count mismatch, provided: {provided}, expected: {expected}"
            ),
            Self::Function {
                provided: p,
                expected: e,
                ..
            } => write!(
                f,
                "CPUID validation failed for function {:#x}, index: {:#x}, provided: eax:{:#010x}, ebx: {:#010x}, ecx: {:#010x}, edx: {:#010x}, expected: eax:{:#010x}, ebx: {:#010x}, ecx: {:#010x}, edx: {:#010x}",
                p.eax_in, p.ecx_in, p.eax, p.ebx, p.ecx, p.edx, e.eax, e.ebx, e.ecx, e.edx
            ),
        }
    }
}

/// What differs between the `provided` page and the firmware's `expected` one, as QEMU's
/// `sev_snp_cpuid_report_mismatches` reports it: the count alone when the counts differ, else
/// every entry that differs.
pub fn mismatches<'a>(
    provided: &'a SnpCpuidInfo,
    expected: &'a SnpCpuidInfo,
) -> impl Iterator<Item = CpuidMismatch> + 'a {
    let counts_differ = provided.count != expected.count;
    let count = counts_differ.then_some(CpuidMismatch::Count {
        provided: provided.count,
        expected: expected.count,
    });
    let entries = provided
        .used()
        .iter()
        .zip(expected.used())
        .enumerate()
        .filter(move |(_, (p, e))| !counts_differ && p != e)
        .map(|(index, (p, e))| CpuidMismatch::Function {
            index,
            provided: *p,
            expected: *e,
        });
    count.into_iter().chain(entries)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    fn e(function: u32, index: u32, flags: u32) -> CpuidEntry {
        CpuidEntry {
            function,
            index,
            flags,
            eax: 0x1000 + function,
            ebx: 0xffff_ffff,
            ecx: 0xffff_ffff,
            edx: 0xffff_ffff,
        }
    }

    #[test]
    fn entries_are_filled_as_qemu_fills_them() {
        let info = SnpCpuidInfo::from_entries([
            e(0, 0, 0),
            e(7, 0, 1),
            e(0xd, 0, 1),
            e(0xd, 1, 1),
            e(0xd, 2, 1),
            // Index without the significant flag: ecx_in stays 0 (and a 0xD entry so flagged
            // gets the 0x240 treatment as subleaf 0).
            e(0xd, 5, 0),
            // Other flag bits: QEMU compares flags with ==, so ecx_in stays 0.
            e(4, 3, 1 | 2),
        ])
        .unwrap();
        assert_eq!(info.count, 7);
        let u = info.used();
        assert_eq!((u[1].eax_in, u[1].ecx_in, u[1].eax), (7, 0, 0x1007));
        for i in [2, 3, 5] {
            assert_eq!((u[i].ebx, u[i].xcr0_in, u[i].xss_in), (0x240, 1, 0), "{i}");
        }
        assert_eq!((u[4].ecx_in, u[4].ebx, u[4].xcr0_in), (2, 0xffff_ffff, 0));
        assert_eq!(u[5].ecx_in, 0);
        assert_eq!(u[6].ecx_in, 0);
        let page = info.page();
        // count, then entry 1 at 0x10 + 48: eax_in 7.
        assert_eq!(&page[..4], &7u32.to_le_bytes());
        assert_eq!(&page[0x40..0x44], &7u32.to_le_bytes());
        assert!(page[16 + 48 * 7..].iter().all(|&b| b == 0));
        assert_eq!(SnpCpuidInfo::from_page(&page).unwrap(), info);
    }

    #[test]
    fn more_than_64_entries_and_bad_pages_are_errors() {
        let many: Vec<_> = (0..65).map(|i| e(i, 0, 0)).collect();
        assert_eq!(
            SnpCpuidInfo::from_entries(many.iter().copied()),
            Err(CpuidPageError::TooManyEntries { count: 65 })
        );
        assert_eq!(
            SnpCpuidInfo::from_entries(many[..64].iter().copied())
                .unwrap()
                .count,
            64
        );
        assert!(matches!(
            SnpCpuidInfo::from_page(&[0u8; 100]),
            Err(CpuidPageError::Short { len: 100, .. })
        ));
        let mut page = [0u8; 4096];
        page[0] = 65;
        assert_eq!(
            SnpCpuidInfo::from_page(&page),
            Err(CpuidPageError::Count { count: 65 })
        );
    }

    #[test]
    fn qemus_snp_masking() {
        let mut l1 = CpuidEntry {
            function: 1,
            ecx: u32::MAX,
            ebx: u32::MAX,
            ..Default::default()
        };
        adjust_cpuid_features(&mut l1);
        assert_eq!((l1.ecx, l1.ebx), (!(1 << 24), u32::MAX));
        let mut l7 = CpuidEntry {
            function: 7,
            ebx: u32::MAX,
            ecx: u32::MAX,
            edx: u32::MAX,
            ..Default::default()
        };
        let mut l7_1 = CpuidEntry { index: 1, ..l7 };
        adjust_cpuid_features(&mut l7);
        assert_eq!((l7.ebx, l7.ecx, l7.edx), (!2, u32::MAX, 0x03ff_ffff));
        adjust_cpuid_features(&mut l7_1);
        assert_eq!((l7_1.ebx, l7_1.edx), (u32::MAX, u32::MAX));
        let mut ext = CpuidEntry {
            function: 0x8000_0008,
            ebx: u32::MAX,
            ..Default::default()
        };
        adjust_cpuid_features(&mut ext);
        assert_eq!(ext.ebx, !(1 << 25));
    }

    #[test]
    fn mismatches_are_reported_as_qemu_does() {
        let a = SnpCpuidInfo::from_entries([e(0, 0, 0), e(7, 0, 1), e(0x8000_0001, 0, 0)]).unwrap();
        let mut b = a.clone();
        assert_eq!(mismatches(&a, &b).count(), 0);
        b.entries[1].edx = 0x1234;
        let m: Vec<_> = mismatches(&a, &b).collect();
        assert_eq!(m.len(), 1);
        assert!(matches!(m[0], CpuidMismatch::Function { index: 1, .. }));
        assert_eq!(
            m[0].to_string(),
            "CPUID validation failed for function 0x7, index: 0x0, provided: eax:0x00001007, ebx: 0xffffffff, ecx: 0xffffffff, edx: 0xffffffff, expected: eax:0x00001007, ebx: 0xffffffff, ecx: 0xffffffff, edx: 0x00001234"
        );
        b.count = 2;
        let m: Vec<_> = mismatches(&a, &b).collect();
        assert_eq!(
            m,
            [CpuidMismatch::Count {
                provided: 3,
                expected: 2
            }]
        );
    }
}
