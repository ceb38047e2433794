//! Hashing pages on several threads, four per AVX2 register, gives the same contents hashes as
//! `sha2` on one thread, and the ordered hand-over chains every block once, in page order.
use proptest::prelude::*;
use vmsa_core::measure::{ItemKind, SnpDigest};
use vmsa_core::page::PageType;
use vmsa_pagehash::parallel::{sha384_pages, sha384_pages_ordered, sha384_pages_with};

fn pages(n: usize, seed: u8) -> Vec<u8> {
    (0..n * 4096)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

proptest! {
    #![proptest_config(vmsa_core::strategy::config("parallel", 64))]

    #[test]
    fn threads_equal_one(n in 1usize..24, seed in any::<u8>(), gpa_page in 0u64..0x10_0000) {
        let data = pages(n, seed);
        let gpa = gpa_page * 4096;
        let mut whole = SnpDigest::new();
        whole.update_normal_pages(ItemKind::Firmware, gpa, &data).unwrap();
        // Contents hashed on several threads, chained in order.
        for threads in [1, 2, 3, 8] {
            let mut par = SnpDigest::new();
            for (i, h) in sha384_pages(&data, threads).into_iter().enumerate() {
                par.update_with_contents(ItemKind::Firmware, PageType::NORMAL, gpa + 4096 * i as u64, h);
            }
            prop_assert_eq!(whole.ld(), par.ld());
        }
        // The CLI's bulk hasher (four pages per AVX2 register) gives the same contents hashes.
        for threads in [1, 2, 3] {
            prop_assert_eq!(
                sha384_pages_with(&data, threads, vmsa_pagehash::sha384_pages),
                sha384_pages(&data, 1)
            );
        }
    }

    /// Many blocks of 64 pages on up to six workers: the chain sees every block once, in page
    /// order, while later blocks are still being hashed, and equals the digest fed at once.
    #[test]
    fn ordered_blocks_chain_equals_whole(n in 0usize..420, tail in 0usize..4096, threads in 1usize..7, seed in any::<u8>()) {
        let mut data = pages(n, seed);
        data.extend(std::iter::repeat_n(0xa5, tail)); // a partial page at the end is not hashed
        let mut whole = SnpDigest::new();
        whole.update_normal_pages(ItemKind::Firmware, 0, &data[..n * 4096]).unwrap();
        let mut chained = SnpDigest::new();
        let mut sizes = Vec::new();
        let mut gpa = 0;
        sha384_pages_ordered(&data, threads, vmsa_pagehash::sha384_pages, |block| {
            sizes.push(block.len());
            for h in block {
                chained.update_with_contents(ItemKind::Firmware, PageType::NORMAL, gpa, *h);
                gpa += 4096;
            }
        });
        let mut want = vec![64; n / 64];
        if n % 64 != 0 {
            want.push(n % 64);
        }
        prop_assert_eq!(sizes, want);
        prop_assert_eq!(chained.ld(), whole.ld());
    }

}
