//! What `KVM_GET_SREGS` reports for a vCPU that holds a VMSA's segments: the read-back side of
//! the KVM model.
//!
//! A VMM programs segments with `KVM_SET_SREGS`; on AMD SVM, `svm_set_segment` packs each
//! `struct kvm_segment` into the VMCB (`vmcb_seg.attrib`, the encoding of the VMSA) and that is
//! what the VMCB holds, what the CPU runs, and what `sev_es_sync_vmsa` copies into the measured
//! VMSA. Reading back goes through `svm_get_segment`, which is **not** the inverse
//! (Linux `arch/x86/kvm/svm/svm.c`, unchanged from 4.0 to 6.17):
//!
//! | quirk | segments |
//! |---|---|
//! | G is synthesized as `limit > 0xfffff` (attrib bit 11 ignored) | all |
//! | `unusable = !present` | all |
//! | type bit 0 (accessed) forced when usable | DS, ES, FS, GS |
//! | type bit 1 (busy) forced | TR |
//! | DPL taken from the VMCB `cpl` (which `svm_set_segment` set from SS.DPL); D/B cleared when unusable | SS |
//!
//! So on SVM, applying a VMSA and reading it back is the identity on every field KVM holds
//! **except** these bits, which [`read_back`] predicts exactly: the VMCB still holds (and the
//! VMSA measures) the values as programmed. Other KVMs report segments as set
//! ([`SregsReadBack::Exact`]; `kvm_pvm`, the software KVM this project is developed on, does).
//! Intel VMX has rules of its own (`vmx_get_segment`) that are not modelled here
//! ([`SregsReadBack::Unmodeled`]).
//!
//! ```
//! use vmsa_core::kvm::readback::{read_back, SregsReadBack};
//! use vmsa_core::reset::kvm_reset;
//!
//! let v = kvm_reset(); // KVM's own reset segments: data 0x92, TR 0x83
//! let back = read_back(SregsReadBack::Svm, &v);
//! assert_eq!(back.ds.attrib.bits(), 0x93); // accessed forced
//! assert_eq!(back.ss.attrib.bits(), 0x92); // SS keeps its type
//! assert_eq!(read_back(SregsReadBack::Exact, &v), v);
//! ```

use crate::segment::{KvmSegment, SegmentAttributes, VmcbSegment};
use crate::vmsa::{FieldId, Vmsa};

/// KVM's `VCPU_SREG_*`: the segment registers `KVM_SET_SREGS` carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SegmentRegister {
    /// ES.
    Es,
    /// CS.
    Cs,
    /// SS.
    Ss,
    /// DS.
    Ds,
    /// FS.
    Fs,
    /// GS.
    Gs,
    /// TR.
    Tr,
    /// LDTR.
    Ldtr,
}

impl SegmentRegister {
    /// All eight, in VMSA order (es, cs, ss, ds, fs, gs, ldtr, tr).
    pub const ALL: [Self; 8] = [
        Self::Es,
        Self::Cs,
        Self::Ss,
        Self::Ds,
        Self::Fs,
        Self::Gs,
        Self::Ldtr,
        Self::Tr,
    ];

    /// The VMSA field.
    pub const fn field(self) -> FieldId {
        match self {
            Self::Es => FieldId::ES,
            Self::Cs => FieldId::CS,
            Self::Ss => FieldId::SS,
            Self::Ds => FieldId::DS,
            Self::Fs => FieldId::FS,
            Self::Gs => FieldId::GS,
            Self::Tr => FieldId::TR,
            Self::Ldtr => FieldId::LDTR,
        }
    }

    /// The segment of `v`.
    pub fn of(self, v: &Vmsa) -> &VmcbSegment {
        match self {
            Self::Es => &v.es,
            Self::Cs => &v.cs,
            Self::Ss => &v.ss,
            Self::Ds => &v.ds,
            Self::Fs => &v.fs,
            Self::Gs => &v.gs,
            Self::Tr => &v.tr,
            Self::Ldtr => &v.ldtr,
        }
    }

    /// The segment of `v`, mutably.
    pub fn of_mut(self, v: &mut Vmsa) -> &mut VmcbSegment {
        match self {
            Self::Es => &mut v.es,
            Self::Cs => &mut v.cs,
            Self::Ss => &mut v.ss,
            Self::Ds => &mut v.ds,
            Self::Fs => &mut v.fs,
            Self::Gs => &mut v.gs,
            Self::Tr => &mut v.tr,
            Self::Ldtr => &mut v.ldtr,
        }
    }
}

/// How a KVM reports segments through `KVM_GET_SREGS`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum SregsReadBack {
    /// Exactly as `KVM_SET_SREGS` set them (`kvm_pvm`, and any KVM that stores
    /// `struct kvm_segment` as given).
    Exact,
    /// AMD SVM (`kvm_amd`): `svm_set_segment` then `svm_get_segment`.
    Svm,
    /// A KVM whose rules are not modelled (Intel VMX's `vmx_get_segment`); [`read_back`]
    /// returns its input unchanged, so a comparison shows every difference.
    Unmodeled,
}

/// `svm_set_segment`: the VMCB segment KVM stores for `k`, and for SS the VMCB `cpl`
/// (`svm->vmcb->save.cpl = var->dpl & 3`). Every field is masked to its width as the kernel
/// masks it; `present && !unusable` becomes P.
pub const fn svm_set_segment(reg: SegmentRegister, k: &KvmSegment) -> (VmcbSegment, Option<u8>) {
    let present = (k.present & 1 == 1) && k.unusable == 0;
    let attrib = (k.type_ as u16 & SegmentAttributes::TYPE_MASK)
        | ((k.s as u16 & 1) << 4)
        | ((k.dpl as u16 & 3) << SegmentAttributes::DPL_SHIFT)
        | if present { SegmentAttributes::P } else { 0 }
        | ((k.avl as u16 & 1) << 8)
        | ((k.l as u16 & 1) << 9)
        | ((k.db as u16 & 1) << 10)
        | ((k.g as u16 & 1) << 11);
    let seg = VmcbSegment::new(k.selector, SegmentAttributes(attrib), k.limit, k.base);
    let cpl = match reg {
        SegmentRegister::Ss => Some(k.dpl & 3),
        _ => None,
    };
    (seg, cpl)
}

/// `svm_get_segment`: the `struct kvm_segment` KVM reports for VMCB segment `s` when the VMCB
/// `cpl` is `cpl` (only SS uses it). Attribute bits 15:12 (reserved) are not seen.
pub const fn svm_get_segment(reg: SegmentRegister, s: &VmcbSegment, cpl: u8) -> KvmSegment {
    let a = s.attrib;
    let present = a.present();
    let unusable = !present;
    let mut type_ = a.segment_type();
    let mut dpl = a.dpl();
    let mut db = a.db();
    match reg {
        // "Work around a bug where the busy flag in the tr selector isn't exposed".
        SegmentRegister::Tr => type_ |= 0x2,
        // "The accessed bit must always be set in the segment descriptor cache".
        SegmentRegister::Ds | SegmentRegister::Es | SegmentRegister::Fs | SegmentRegister::Gs => {
            if !unusable {
                type_ |= 0x1;
            }
        }
        // D/B cleared when unusable; "This is symmetric with svm_set_segment()".
        SegmentRegister::Ss => {
            if unusable {
                db = false;
            }
            dpl = cpl & 3;
        }
        SegmentRegister::Cs | SegmentRegister::Ldtr => {}
    }
    KvmSegment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_,
        present: present as u8,
        dpl,
        db: db as u8,
        s: a.code_or_data() as u8,
        l: a.long() as u8,
        // "synthesize a legal G bit for all segments".
        g: (s.limit > 0xfffff) as u8,
        avl: a.avl() as u8,
        unusable: unusable as u8,
    }
}

/// The VMSA-form segment a KVM of kind `rb` reports through `KVM_GET_SREGS` for a vCPU whose
/// segment `reg` was programmed from `seg` (with the lossless [`VmcbSegment::to_kvm`]) and
/// whose SS.DPL is `ss_dpl`.
pub fn read_back_segment(
    rb: SregsReadBack,
    reg: SegmentRegister,
    seg: &VmcbSegment,
    ss_dpl: u8,
) -> VmcbSegment {
    match rb {
        SregsReadBack::Exact | SregsReadBack::Unmodeled => *seg,
        SregsReadBack::Svm => {
            // The VMCB holds `seg` with bits 15:12 dropped (the adapter refuses those anyway).
            let mut held = *seg;
            held.attrib = SegmentAttributes(seg.attrib.bits() & !SegmentAttributes::RESERVED_MASK);
            let k = svm_get_segment(reg, &held, ss_dpl);
            // `svm_get_segment` always reports unusable == !present, every field in range:
            // the inverse packing is exact.
            svm_set_segment(reg, &k).0
        }
    }
}

/// The VMSA that `KVM_GET_SREGS` (and the other `KVM_GET_*` ioctls) report for a vCPU holding
/// `held`: on SVM the segment quirks of [`svm_get_segment`] applied, everything else as held.
/// `read_back(Exact, v) == v`; on SVM it is idempotent and changes only the attribute bits the
/// module table lists.
pub fn read_back(rb: SregsReadBack, held: &Vmsa) -> Vmsa {
    let mut out = held.clone();
    let ss_dpl = held.ss.attrib.dpl();
    for reg in SegmentRegister::ALL {
        *reg.of_mut(&mut out) = read_back_segment(rb, reg, reg.of(held), ss_dpl);
    }
    out
}

/// The attribute bits [`read_back`] may change for `reg` on SVM (type bit 0 or 1, G, and for SS
/// D/B): a field whose attributes differ from the held ones only in these bits is held exactly.
pub const fn svm_read_back_bits(reg: SegmentRegister) -> u16 {
    SegmentAttributes::G
        | match reg {
            SegmentRegister::Tr => SegmentAttributes::TYPE_READ_WRITE,
            SegmentRegister::Ds
            | SegmentRegister::Es
            | SegmentRegister::Fs
            | SegmentRegister::Gs => SegmentAttributes::TYPE_ACCESSED,
            SegmentRegister::Ss => SegmentAttributes::DB,
            SegmentRegister::Cs | SegmentRegister::Ldtr => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuSignature;
    use crate::reset::{architectural_reset, kvm_reset};
    use SegmentAttributes as A;

    #[test]
    fn kvm_reset_segments_on_svm() {
        let v = kvm_reset();
        let b = read_back(SregsReadBack::Svm, &v);
        assert_eq!(b.cs.attrib, A(0x9a), "CS keeps type 0xa");
        for s in [&b.ds, &b.es, &b.fs, &b.gs] {
            assert_eq!(s.attrib, A(0x93), "accessed forced");
        }
        assert_eq!(b.ss.attrib, A(0x92), "SS has no accessed quirk");
        assert_eq!(b.tr.attrib, A(0x83), "16-bit busy TSS is already busy");
        assert_eq!(b.ldtr.attrib, A(0x82));
        // QEMU's reset state (0x9b/0x93/0x8b) already has the forced bits: unchanged.
        let q = architectural_reset(CpuSignature(0x800f12));
        assert_eq!(read_back(SregsReadBack::Svm, &q), q);
    }

    #[test]
    fn g_is_synthesized_from_the_limit() {
        let mut v = kvm_reset();
        v.cs = VmcbSegment::new(8, A::CODE_64BIT, 0xffff_ffff, 0);
        v.cs.attrib = A(v.cs.attrib.bits() & !A::G);
        v.ds = VmcbSegment::new(0x10, A::DATA_32BIT_FLAT, 0xf_ffff, 0);
        v.tr = VmcbSegment::new(0x18, A(A::P | 9), 0x67, 0x1000);
        let b = read_back(SregsReadBack::Svm, &v);
        assert_eq!(
            b.cs.attrib.bits(),
            A::CODE_64BIT.bits(),
            "G set: limit > 0xfffff"
        );
        assert_eq!(
            b.ds.attrib.bits(),
            A::DATA_32BIT_FLAT.bits() & !A::G,
            "G cleared: limit 0xfffff"
        );
        assert_eq!(
            b.tr.attrib.bits(),
            A::P | 0xb,
            "available TSS reads as busy"
        );
    }

    #[test]
    fn ss_unusable_and_cpl() {
        let mut v = kvm_reset();
        v.ss.attrib = A(A::DB | A::S | A::TYPE_READ_WRITE | 3 << A::DPL_SHIFT); // not present
        let b = read_back(SregsReadBack::Svm, &v);
        assert_eq!(
            b.ss.attrib.bits(),
            A::S | A::TYPE_READ_WRITE | 3 << A::DPL_SHIFT
        );
        let k = svm_get_segment(SegmentRegister::Ss, &v.ss, 0);
        assert_eq!((k.dpl, k.unusable, k.present, k.db), (0, 1, 0, 0));
        let (seg, cpl) = svm_set_segment(SegmentRegister::Ss, &k);
        assert_eq!((seg.attrib.dpl(), cpl), (0, Some(0)));
        // unusable collapses P even when present is 1.
        let k = KvmSegment {
            present: 1,
            unusable: 1,
            ..k
        };
        assert!(!svm_set_segment(SegmentRegister::Ds, &k).0.attrib.present());
    }

    #[cfg(feature = "proptest")]
    proptest::proptest! {
        #[test]
        fn exact_is_identity_svm_is_idempotent_and_bounded(v in crate::strategy::vmsa()) {
            proptest::prop_assert_eq!(&read_back(SregsReadBack::Exact, &v), &v);
            let once = read_back(SregsReadBack::Svm, &v);
            let twice = read_back(SregsReadBack::Svm, &once);
            proptest::prop_assert_eq!(&twice, &once);
            for reg in SegmentRegister::ALL {
                let (a, b) = (reg.of(&v), reg.of(&once));
                proptest::prop_assert_eq!((a.selector, a.limit, a.base), (b.selector, b.limit, b.base));
                let changed = (a.attrib.bits() & !A::RESERVED_MASK) ^ b.attrib.bits();
                proptest::prop_assert_eq!(changed & !svm_read_back_bits(reg), 0, "{:?}", reg);
            }
            // Everything but the segments is untouched.
            let mut rest = once.clone();
            for reg in SegmentRegister::ALL {
                *reg.of_mut(&mut rest) = *reg.of(&v);
            }
            proptest::prop_assert_eq!(&rest, &v);
        }

        #[test]
        fn set_then_get_matches_the_model(
            reg in proptest::sample::select(&SegmentRegister::ALL[..]),
            attrib in 0u16..0x1000, limit: u32, base: u64, selector: u16,
        ) {
            let seg = VmcbSegment::new(selector, A(attrib), limit, base);
            let k = seg.to_kvm().unwrap();
            let (vmcb, cpl) = svm_set_segment(reg, &k);
            proptest::prop_assert_eq!(vmcb, seg, "svm_set_segment stores the VMSA encoding");
            let cpl = cpl.unwrap_or(seg.attrib.dpl());
            let got = VmcbSegment::from_kvm(&svm_get_segment(reg, &vmcb, cpl)).unwrap();
            proptest::prop_assert_eq!(got, read_back_segment(SregsReadBack::Svm, reg, &seg, cpl));
        }
    }
}
