//! Streaming: a digest fed the same pages in any split equals the digest fed them at once; the
//! `PAGE_INFO` step by hand; ranges the SNP digest refuses.
use proptest::prelude::*;
use vmsa_core::measure::{ItemKind, SevDigest, SnpDigest, sha384};
use vmsa_core::page::PageType;

fn pages(n: usize, seed: u8) -> Vec<u8> {
    (0..n * 4096)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

proptest! {
    #![proptest_config(vmsa_core::strategy::config("measure_props", 64))]

    #[test]
    fn snp_split_equals_whole(n in 1usize..24, cuts in proptest::collection::vec(0usize..24, 0..6), seed in any::<u8>(), gpa_page in 0u64..0x10_0000) {
        let data = pages(n, seed);
        let gpa = gpa_page * 4096;
        let mut whole = SnpDigest::new();
        whole.update_normal_pages(ItemKind::Firmware, gpa, &data).unwrap();

        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(n)).collect();
        cuts.push(0);
        cuts.push(n);
        cuts.sort_unstable();
        let mut split = SnpDigest::new();
        for w in cuts.windows(2) {
            let (a, b) = (w[0] * 4096, w[1] * 4096);
            split.update_normal_pages(ItemKind::Firmware, gpa + a as u64, &data[a..b]).unwrap();
        }
        prop_assert_eq!(whole.ld(), split.ld());

    }

    #[test]
    fn sev_split_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..20000), cuts in proptest::collection::vec(0usize..20000, 0..6)) {
        let mut whole = SevDigest::new();
        whole.update_firmware(&data);
        whole.end_firmware();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.push(0);
        cuts.push(data.len());
        cuts.sort_unstable();
        let mut split = SevDigest::new();
        for w in cuts.windows(2) {
            split.update_firmware(&data[w[0]..w[1]]);
        }
        split.end_firmware();
        prop_assert_eq!(whole.finish().0, split.finish().0);
    }
}

/// The chain step by hand: SHA-384 over the 0x70-byte PAGE_INFO (sev-snp-measure `gctx.py`).
#[test]
fn page_info_by_hand() {
    let page = pages(1, 7);
    let mut d = SnpDigest::new();
    d.update_normal_pages(ItemKind::Firmware, 0xffff_f000, &page)
        .unwrap();
    let mut info = Vec::new();
    info.extend_from_slice(&[0u8; 48]);
    info.extend_from_slice(&sha384(&page));
    info.extend_from_slice(&0x70u16.to_le_bytes());
    info.push(1); // NORMAL
    info.push(0); // IMI
    info.extend_from_slice(&[0; 4]); // VMPL permissions
    info.extend_from_slice(&0xffff_f000u64.to_le_bytes());
    assert_eq!(info.len(), 0x70);
    assert_eq!(d.ld(), sha384(&info));
}

#[test]
fn unaligned_ranges_are_refused() {
    let mut d = SnpDigest::new();
    assert!(
        d.update_normal_pages(ItemKind::Firmware, 0, &[0u8; 100])
            .is_err()
    );
    assert!(
        d.update_unmeasured_pages(ItemKind::Firmware, PageType::ZERO, 0, 0x1001)
            .is_err()
    );
    assert!(
        d.update_unmeasured_pages(ItemKind::Firmware, PageType::ZERO, u64::MAX - 0xfff, 0x2000)
            .is_err()
    );
    // The last page of the address space is fine.
    assert!(
        d.update_unmeasured_pages(ItemKind::Firmware, PageType::ZERO, u64::MAX - 0xfff, 0x1000)
            .is_ok()
    );
    assert_eq!(d.ld(), {
        let mut e = SnpDigest::new();
        e.update_with_contents(
            ItemKind::Firmware,
            PageType::ZERO,
            u64::MAX - 0xfff,
            [0; 48],
        );
        e.ld()
    });
}
