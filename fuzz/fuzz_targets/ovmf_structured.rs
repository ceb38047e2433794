//! Structure-aware OVMF fuzzing: images with a valid footer table and `ASEV` block built from
//! arbitrary entries and sections (so the launch rules, not the table parser, get the inputs),
//! a kernel or none, any guest features. Checks that `parse(build(x))` gives `x` back, and that
//! every launch of the image computes without panicking.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vmsa_core::hash_table::SevHashes;
use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::ovmf::{self, GpaRange, OvmfImage, Section, SectionType, TableEntry};
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, Guid, SevMode};

#[derive(Debug, Arbitrary)]
enum Entry {
    ResetBlock(u32),
    HashTable(u32, u32),
    SecretArea(u32, u32),
    Tdx(u32),
    Svsm(Vec<u8>),
    Unknown([u8; 16], Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    pages: u8,
    entries: Vec<Entry>,
    /// (gpa page, pages, type): page-granular, so most sections pass the launch checks.
    sections: Option<Vec<(u32, u8, u8)>>,
    kernel: bool,
    vcpus: u8,
    features: u16,
}

fn section_type(t: u8) -> SectionType {
    match t % 7 {
        0 => SectionType::SNP_SEC_MEM,
        1 => SectionType::SNP_SECRETS,
        2 => SectionType::CPUID,
        3 => SectionType::SVSM_CAA,
        4 => SectionType::SNP_KERNEL_HASHES,
        5 => SectionType(u32::from(t)),
        _ => SectionType::UNDEF,
    }
}

fuzz_target!(|input: Input| {
    let entries: Vec<TableEntry<'_>> = input
        .entries
        .iter()
        .map(|e| match e {
            Entry::ResetBlock(a) => TableEntry::SevEsResetBlock { reset_addr: *a },
            Entry::HashTable(base, size) => TableEntry::SevHashTable(GpaRange {
                base: *base,
                size: *size,
            }),
            Entry::SecretArea(base, size) => TableEntry::SevSecretArea(GpaRange {
                base: *base,
                size: *size,
            }),
            Entry::Tdx(o) => TableEntry::TdxMetadataOffset {
                offset_from_end: *o,
            },
            Entry::Svsm(d) => TableEntry::SvsmInfo(d),
            Entry::Unknown(g, d) => TableEntry::Unknown {
                guid: Guid(*g),
                data: d,
            },
        })
        .collect();
    let sections: Option<Vec<Section>> = input.sections.as_ref().map(|s| {
        s.iter()
            .map(|&(page, n, t)| Section::new(page << 12, u32::from(n) << 12, section_type(t)))
            .collect()
    });
    let mut image = vec![0u8; (usize::from(input.pages % 16) + 1) * 4096];
    if ovmf::build(&mut image, &entries, sections.as_deref()).is_err() {
        return;
    }
    let Ok(fw) = OvmfImage::parse(&image) else {
        return;
    };
    // parse(build(x)) == x: the entries as written (known GUIDs typed), then the metadata's.
    let parsed: Vec<TableEntry<'_>> = fw.entries().map(|e| e.entry).collect();
    assert_eq!(&parsed[..entries.len()], &entries[..]);
    if let (Some(s), Some(md)) = (&sections, fw.sev_metadata()) {
        assert!(md.sections().eq(s.iter().copied()));
    }
    let fw = Firmware::Ovmf(fw);
    let mode = SevMode::ALL[usize::from(input.vcpus) % 3];
    let vmm = VmmType::ALL[usize::from(input.vcpus >> 2) % VmmType::ALL.len()];
    let mut cfg = LaunchConfig::new(
        mode,
        u32::from(input.vcpus % 8),
        CpuSignature(0x800f12),
        vmm,
    );
    cfg.guest_features = vmsa_core::flags::SevFeatures::from_bits_retain(u64::from(input.features));
    if input.kernel {
        cfg.kernel = Some(SevHashes {
            kernel: [1; 32],
            initrd: [2; 32],
            cmdline: [3; 32],
        });
    }
    let Ok(l) = Launch::new(&fw, &cfg) else {
        return;
    };
    assert_eq!(l.vmsas().count() as u32, l.vcpus());
    let _ = l.digest(&Sha2Pages, NoObserver);
    if let Ok(u) = l.updates() {
        // What an OVMF launch sends is what it measures.
        assert!(u.eq(l.measured_updates()));
    }
});
