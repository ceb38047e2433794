//! Property tests of the segment attribute conversions (vmsa-core `segment`): every conversion is
//! the identity on its valid domain when composed with its inverse, and invalid inputs are
//! rejected rather than mangled.
use proptest::prelude::*;
use vmsa_core::segment::{
    KvmSegment, SEGCACHE_ATTRIBUTE_MASK, SegmentAttributes, SegmentError, VmcbSegment,
};
use vmsa_core::strategy;

proptest! {
    #![proptest_config(vmsa_core::strategy::config("segment_props", 2048))]

    #[test]
    fn vmsa_segcache_vmsa_is_identity(a in strategy::segment_attributes()) {
        let flags = a.to_segcache().unwrap();
        prop_assert_eq!(flags & !SEGCACHE_ATTRIBUTE_MASK, 0);
        prop_assert_eq!(SegmentAttributes::from_segcache(flags).unwrap(), a);
    }

    #[test]
    fn segcache_vmsa_segcache_is_identity_on_the_mask(flags in any::<u32>()) {
        let masked = flags & SEGCACHE_ATTRIBUTE_MASK;
        let a = SegmentAttributes::from_segcache(masked).unwrap();
        prop_assert_eq!(a.to_segcache().unwrap(), masked);
        if flags != masked {
            prop_assert_eq!(
                SegmentAttributes::from_segcache(flags),
                Err(SegmentError::SegcacheBitsOutsideMask(flags))
            );
        }
    }

    #[test]
    fn reserved_vmsa_bits_are_refused_everywhere(raw in strategy::raw_segment_attributes()) {
        let a = raw;
        let reserved = a.bits() & 0xf000 != 0;
        prop_assert_eq!(SegmentAttributes::new(a.bits()).is_none(), reserved);
        if reserved {
            let err = SegmentError::ReservedVmsaBits(a.bits());
            prop_assert_eq!(a.to_segcache(), Err(err));
            prop_assert_eq!(a.to_igvm(), Err(err));
            let seg = VmcbSegment::new(0, a, 0, 0);
            prop_assert_eq!(seg.to_kvm(), Err(SegmentError::ReservedVmsaBits(a.bits())));
        }
    }

    #[test]
    fn vmsa_kvm_vmsa_is_identity(seg in strategy::vmcb_segment()) {
        let kvm = seg.to_kvm().unwrap();
        prop_assert_eq!(kvm.unusable, u8::from(!seg.attrib.present()));
        prop_assert_eq!(VmcbSegment::from_kvm(&kvm).unwrap(), seg);
    }

    #[test]
    fn kvm_vmsa_kvm_is_identity(kvm in strategy::kvm_segment()) {
        let seg = VmcbSegment::from_kvm(&kvm).unwrap();
        prop_assert_eq!(seg.to_kvm().unwrap(), kvm);
    }

    #[test]
    fn kvm_present_unusable_conflicts_are_refused(kvm in strategy::kvm_segment()) {
        let mut bad = kvm;
        bad.unusable = 1 - kvm.unusable;
        let expected = if bad.present == 1 {
            SegmentError::UnusablePresent
        } else {
            SegmentError::NotPresentUsable
        };
        prop_assert_eq!(VmcbSegment::from_kvm(&bad), Err(expected));
    }

    #[test]
    fn kvm_fields_out_of_range_are_refused(kvm in strategy::kvm_segment(), field in 0usize..8, extra in any::<u8>()) {
        let mut bad = kvm;
        let (name, slot, width): (&str, &mut u8, u8) = match field {
            0 => ("type", &mut bad.type_, 16),
            1 => ("dpl", &mut bad.dpl, 4),
            2 => ("db", &mut bad.db, 2),
            3 => ("s", &mut bad.s, 2),
            4 => ("l", &mut bad.l, 2),
            5 => ("g", &mut bad.g, 2),
            6 => ("avl", &mut bad.avl, 2),
            _ => ("present", &mut bad.present, 2),
        };
        // Any value from `width` (one past the largest that fits) up to 255.
        let value = width + extra % (u8::MAX - width + 1);
        *slot = value;
        prop_assert_eq!(
            VmcbSegment::from_kvm(&bad),
            Err(SegmentError::KvmFieldOutOfRange { field: name, value })
        );
    }

    #[test]
    fn vmsa_igvm_vmsa_is_identity(a in strategy::segment_attributes()) {
        let igvm = a.to_igvm().unwrap();
        prop_assert_eq!(igvm & 0x0f00, 0);
        prop_assert_eq!(SegmentAttributes::from_igvm(igvm).unwrap(), a);
    }

    #[test]
    fn igvm_vmsa_igvm_is_identity_without_limit_bits(x in any::<u16>()) {
        let valid = x & !0x0f00;
        prop_assert_eq!(SegmentAttributes::from_igvm(valid).unwrap().to_igvm().unwrap(), valid);
        if x != valid {
            prop_assert_eq!(SegmentAttributes::from_igvm(x), Err(SegmentError::IgvmLimitBits(x)));
        }
    }
}

/// The worked values of `qemu.md` §2 and igvmbuilder's examples, exactly.
#[test]
fn known_values() {
    let table: [(u16, u32, u16); 7] = [
        (0x09b, 0x0000_9b00, 0x009b),
        (0x093, 0x0000_9300, 0x0093),
        (0x082, 0x0000_8200, 0x0082),
        (0x08b, 0x0000_8b00, 0x008b),
        (0xc9b, 0x00c0_9b00, 0xc09b),
        (0xa9b, 0x00a0_9b00, 0xa09b),
        (0xc93, 0x00c0_9300, 0xc093),
    ];
    for (vmsa, segcache, igvm) in table {
        let a = SegmentAttributes::new(vmsa).unwrap();
        assert_eq!(a.to_segcache().unwrap(), segcache, "{vmsa:#x}");
        assert_eq!(a.to_igvm().unwrap(), igvm, "{vmsa:#x}");
        assert_eq!(SegmentAttributes::from_segcache(segcache).unwrap(), a);
        assert_eq!(SegmentAttributes::from_igvm(igvm).unwrap(), a);
    }
    assert_eq!(SegmentAttributes::CODE_16BIT_RESET.bits(), 0x9b);
    assert_eq!(SegmentAttributes::CODE_16BIT_KVM_RESET.bits(), 0x9a);
    assert_eq!(SegmentAttributes::DATA_16BIT_RESET.bits(), 0x93);
    assert_eq!(SegmentAttributes::DATA_16BIT_KVM_RESET.bits(), 0x92);
    assert_eq!(SegmentAttributes::LDT_RESET.bits(), 0x82);
    assert_eq!(SegmentAttributes::TSS32_BUSY_RESET.bits(), 0x8b);
    assert_eq!(SegmentAttributes::TSS16_BUSY_KVM_RESET.bits(), 0x83);
    assert_eq!(SegmentAttributes::CODE_64BIT.bits(), 0xa9b);
    assert_eq!(SegmentAttributes::CODE_32BIT_FLAT.bits(), 0xc9b);
    assert_eq!(SegmentAttributes::DATA_32BIT_FLAT.bits(), 0xc93);
}

/// KVM's reset CS as `svm_set_segment` packs it: type 0xa, S, present -> 0x9a.
#[test]
fn kvm_reset_cs_packs_to_0x9a() {
    let kvm = KvmSegment {
        base: 0xffff_0000,
        limit: 0xffff,
        selector: 0xf000,
        type_: 0xa,
        present: 1,
        s: 1,
        ..KvmSegment::default()
    };
    let seg = VmcbSegment::from_kvm(&kvm).unwrap();
    assert_eq!(seg.attrib, SegmentAttributes::CODE_16BIT_KVM_RESET);
    assert_eq!(seg.base, 0xffff_0000);
}
