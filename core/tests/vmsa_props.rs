//! Property tests of the VMSA page: any 4096 bytes read and written back are the same bytes, and
//! the field table covers every byte.
use proptest::prelude::*;
use vmsa_core::vmsa::{FIELDS, diff};
use vmsa_core::{Vmsa, VmsaError, strategy};
use zerocopy::IntoBytes;

proptest! {
    #![proptest_config(vmsa_core::strategy::config("vmsa_props", 256))]

    #[test]
    fn any_page_round_trips(page in strategy::page()) {
        let vmsa = Vmsa::from_page(&page).unwrap();
        prop_assert_eq!(vmsa.as_bytes(), &page[..]);
        prop_assert_eq!(&vmsa.as_page()[..], &page[..]);
    }

    #[test]
    fn wrong_sizes_are_refused(len in 0usize..9000) {
        prop_assume!(len != 4096);
        let bytes = vec![0u8; len];
        prop_assert_eq!(Vmsa::from_page(&bytes), Err(VmsaError::WrongSize(len)));
    }

    /// Changing one byte makes `diff` report exactly the field that holds it.
    #[test]
    fn diff_finds_the_changed_byte(a in strategy::vmsa(), offset in 0usize..4096, xor in 1u8..) {
        let mut page = a.as_bytes().to_vec();
        page[offset] ^= xor;
        let b = Vmsa::from_page(&page).unwrap();
        let diffs: Vec<_> = diff(&a, &b).map(|d| d.field.name).collect();
        let field = Vmsa::field_at(offset).unwrap();
        prop_assert_eq!(diffs, vec![field.name]);
        prop_assert_eq!(diff(&a, &a).count(), 0);
    }
}

#[test]
fn field_table_matches_linux_offsets() {
    // Spot checks against Linux `struct sev_es_save_area` (and measure.md §3.1).
    let expect = [
        ("es", 0x000),
        ("tr", 0x090),
        ("vmpl", 0x0ca),
        ("cpl", 0x0cb),
        ("efer", 0x0d0),
        ("xss", 0x140),
        ("cr4", 0x148),
        ("rip", 0x178),
        ("rsp", 0x1d8),
        ("rax", 0x1f8),
        ("g_pat", 0x268),
        ("pkru", 0x2e8),
        ("tsc_aux", 0x2ec),
        ("rcx", 0x308),
        ("r15", 0x378),
        ("sev_features", 0x3b0),
        ("xcr0", 0x3e8),
        ("mxcsr", 0x408),
        ("x87_fcw", 0x410),
        ("fpreg_x87", 0x420),
        ("fpreg_xmm", 0x470),
        ("fpreg_ymm", 0x570),
    ];
    for (name, offset) in expect {
        assert_eq!(Vmsa::field_named(name).unwrap().offset, offset, "{name}");
    }
    assert_eq!(
        FIELDS.last().unwrap().offset + FIELDS.last().unwrap().size,
        4096
    );
}
