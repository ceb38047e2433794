//! Differential IGVM fuzzing: `vmsa_core::igvm` against the `igvm` crate 0.5 on the same bytes
//! (checksums fixed so that mutations reach the headers). Both accept or both refuse, but for
//! the classes where the two differ on purpose, each named below; files both accept are seen
//! the same by both, unfiltered and filtered by every platform.
#![no_main]

#[path = "../../core/tests/igvm_common/mod.rs"]
#[allow(dead_code, unused_imports)]
mod igvm_common;

use libfuzzer_sys::fuzz_target;
use vmsa_core::igvm::{IgvmError, IgvmFile};

fuzz_target!(|data: &[u8]| {
    compare(data);
    if let Some(fixed) = vmsa_fuzz::with_fixed_checksum(data) {
        compare(&fixed);
    }
});

/// The checks this reader makes and `igvm` 0.5 does not (each one a rule of the IGVM
/// specification or of QEMU's loader, see `core/tests/igvm_bad.rs`): a refusal of one of these
/// where the crate accepts is expected.
fn stricter(e: &IgvmError) -> bool {
    matches!(
        e,
        // Each platform owns one bit of the mask, no two the same (igvm_defs docs of
        // `IGVM_VHS_SUPPORTED_PLATFORM::compatibility_mask`); the crate does not check it.
        IgvmError::PlatformMask { .. }
            // Variable headers inside the fixed header or not 8-byte aligned (the campaign's
            // find; `variable_headers_overlapping_the_fixed_header_or_unaligned`).
            | IgvmError::VariableHeadersMisplaced { .. }
            | IgvmError::NonZeroPadding { .. }
            | IgvmError::ReservedNotZero { .. }
            | IgvmError::UnknownFlags { .. }
            | IgvmError::Unaligned { .. }
            | IgvmError::InvalidField { .. }
            | IgvmError::RegionsOverlap { .. }
            | IgvmError::DuplicatePageTableRegion { .. }
            | IgvmError::InsertInPageTableRegion { .. }
            | IgvmError::Duplicate { .. }
            | IgvmError::VpContextMask { .. }
            | IgvmError::VpContextTrailingBytes { .. }
            | IgvmError::UndeclaredMask { .. }
            | IgvmError::ParameterArea { .. }
            | IgvmError::ParameterOutsideArea { .. }
            | IgvmError::CapacityExceeded { .. }
            | IgvmError::UnknownPageDataType { .. }
            | IgvmError::CorimSignatureWithoutDocument { .. }
    )
}

fn compare(data: &[u8]) {
    let ours = IgvmFile::parse(data);
    let theirs = {
        let bytes = data.to_vec();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = std::panic::catch_unwind(move || {
            igvm::IgvmFile::new_from_binary(&bytes, None)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        std::panic::set_hook(hook);
        r
    };
    // The crate panics on some inputs (core/tests/igvm_bad.rs names them): nothing to compare.
    let Ok(theirs) = theirs else {
        return;
    };
    let theirs_ok = theirs.is_ok();
    match (&ours, theirs_ok) {
        (Ok(f), true) => {
            let f = f.clone();
            assert_eq!(
                igvm_common::seen_by_us(data, None),
                igvm_common::seen_by_igvm(data, None)
            );
            for p in f.platforms() {
                let t = Some(p.platform_type);
                // The crate's filtered reading can refuse a file it accepts whole (found by this
                // target: "NoMatchingVpContext" once the filter drops a context another
                // platform's region names): nothing to compare for that platform.
                if igvm::IgvmFile::new_from_binary(
                    data,
                    Some(igvm_common::isolation(p.platform_type)),
                )
                .is_err()
                {
                    continue;
                }
                assert_eq!(
                    igvm_common::seen_by_us(data, t),
                    igvm_common::seen_by_igvm(data, t)
                );
            }
        }
        (Err(_), false) => {}
        // Optional headers of unknown types are skipped, as the specification says; the crate
        // refuses them. A file without file data is read; the crate refuses it. A VBS register
        // list may name any Hyper-V register (the specification's `VbsVpContextRegister`); the
        // crate decodes only the subset its `registers` module models and refuses the others.
        // `VERSION_STRING` (0x107) is defined by igvm_defs 0.5, which this reader reads; the
        // igvm crate 0.5 does not parse it yet and refuses the file. A known header type with
        // the optional flag (bit 31) is read as that type here; the crate compares the raw type
        // (as QEMU does) and refuses it. A relocation or page-table region is matched here by
        // any VP context of its VP index and VTL (SNP, native and TDX contexts are VTL 0's); the
        // crate matches regions only against VBS contexts (its SNP case is a TODO) and refuses
        // the file (the campaign's find).
        (Ok(f), false) => {
            let no_data = f.fixed_header().data_start() as usize >= data.len();
            let version_string = f
                .headers()
                .any(|e| matches!(e.header, vmsa_core::igvm::header::Header::VersionString(_)));
            assert!(
                f.skipped_count() > 0
                    || no_data
                    || unmodelled_vbs_register(f)
                    || version_string
                    || optional_flag(data)
                    || region_without_vbs_context(f),
                "vmsa-core accepts a file igvm 0.5 refuses: {:?}",
                theirs.err()
            );
        }
        (Err(e), true) => assert!(stricter(e), "igvm 0.5 accepts a file refused with {e:?}"),
    }
}

/// Whether a relocation or page-table region of `f` has no VBS context the `igvm` crate would
/// match it with (VP index 0, an overlapping mask, the region's VTL).
fn region_without_vbs_context(f: &IgvmFile<'_>) -> bool {
    use vmsa_core::igvm::header::{Header, VpContextData};
    let regions: Vec<(u32, u16, u8)> = f
        .headers()
        .filter_map(|e| match e.header {
            Header::RelocatableRegion(r) => Some((r.compatibility_mask, r.vp_index, r.vtl)),
            Header::PageTableRelocation(r) => Some((r.compatibility_mask, r.vp_index, r.vtl)),
            _ => None,
        })
        .collect();
    regions.iter().any(|&(mask, vp_index, vtl)| {
        !f.headers().any(|e| match e.header {
            Header::VpContext(v) => match v.data {
                VpContextData::Vbs(c) => {
                    vp_index == 0 && v.compatibility_mask & mask != 0 && c.vtl == vtl
                }
                _ => false,
            },
            _ => false,
        })
    })
}

/// Whether a VBS context of `f` names a register the `igvm` crate does not model.
fn unmodelled_vbs_register(f: &IgvmFile<'_>) -> bool {
    use igvm::registers::{AArch64Register, X86Register};
    use vmsa_core::igvm::fixed::Architecture;
    use vmsa_core::igvm::header::{Header, VpContextData};
    let x64 = f.fixed_header().architecture == Architecture::X64;
    f.headers().any(|e| match e.header {
        Header::VpContext(v) => match v.data {
            VpContextData::Vbs(c) => c.registers().any(|r| {
                if x64 {
                    X86Register::try_from(r).is_err()
                } else {
                    AArch64Register::try_from(r).is_err()
                }
            }),
            _ => false,
        },
        _ => false,
    })
}

/// Whether a variable header's raw type carries the optional flag (bit 31).
fn optional_flag(data: &[u8]) -> bool {
    let word = |at: usize| {
        data.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let (Some(off), Some(size)) = (word(8), word(12)) else {
        return false;
    };
    let (mut p, end) = (off as usize, off as usize + size as usize);
    while p + 8 <= end {
        let (Some(typ), Some(len)) = (word(p), word(p + 4)) else {
            return false;
        };
        if typ & 0x8000_0000 != 0 {
            return true;
        }
        p += 8 + (len as usize).div_ceil(8) * 8;
    }
    false
}
