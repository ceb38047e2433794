//! proptest strategies for the core types, shared by every crate's tests (feature `proptest`).
// Test support: a strategy that produced a malformed value is a bug in the strategy.
#![allow(clippy::expect_used)]

use crate::segment::{KvmSegment, SegmentAttributes, VmcbSegment};
use crate::vmsa::{VMSA_SIZE, Vmsa};
use proptest::prelude::*;
use zerocopy::FromBytes;

/// Any valid 12-bit VMSA attribute.
pub fn segment_attributes() -> impl Strategy<Value = SegmentAttributes> {
    (0u16..0x1000).prop_map(SegmentAttributes)
}

/// Any raw 16-bit VMSA attribute field, reserved bits included.
pub fn raw_segment_attributes() -> impl Strategy<Value = SegmentAttributes> {
    any::<u16>().prop_map(SegmentAttributes)
}

/// A segment with a valid attribute and arbitrary selector, limit and base.
pub fn vmcb_segment() -> impl Strategy<Value = VmcbSegment> {
    (
        any::<u16>(),
        segment_attributes(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(s, a, l, b)| VmcbSegment::new(s, a, l, b))
}

/// A `kvm_segment` as KVM reports one: every field in range and `unusable == !present`.
pub fn kvm_segment() -> impl Strategy<Value = KvmSegment> {
    (
        (
            any::<u64>(),
            any::<u32>(),
            any::<u16>(),
            0u8..16,
            any::<bool>(),
            0u8..4,
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((base, limit, selector, type_, present, dpl), (db, s, l, g, avl))| KvmSegment {
                base,
                limit,
                selector,
                type_,
                present: u8::from(present),
                dpl,
                db: u8::from(db),
                s: u8::from(s),
                l: u8::from(l),
                g: u8::from(g),
                avl: u8::from(avl),
                unusable: u8::from(!present),
            },
        )
}

/// Any 4096 bytes.
pub fn page() -> impl Strategy<Value = std::vec::Vec<u8>> {
    proptest::collection::vec(any::<u8>(), VMSA_SIZE)
}

/// Any VMSA (any 4096 bytes read as one).
pub fn vmsa() -> impl Strategy<Value = Vmsa> {
    page().prop_map(|p| Vmsa::read_from_bytes(&p).expect("4096 bytes"))
}

/// A proptest configuration with `cases` cases whose failures are saved to
/// `proptest-regressions/<name>.txt` under the running crate's root (the directory the project
/// commits), instead of proptest's default beside the source file.
pub fn config(name: &str, cases: u32) -> ProptestConfig {
    // The workspace's `proptest-regressions/`, whichever crate's tests run (cargo runs each in
    // its own package directory).
    let path: &'static str = std::boxed::Box::leak(
        std::format!(
            "{}/../proptest-regressions/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        )
        .into_boxed_str(),
    );
    ProptestConfig {
        cases,
        failure_persistence: Some(std::boxed::Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(path),
        )),
        ..ProptestConfig::default()
    }
}
