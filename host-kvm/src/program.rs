//! What became of every VMSA field on its way into a KVM vCPU: [`ProgramReport`], one
//! [`FieldStatus`] per field of [`FIELDS`], and the VMSA the vCPU actually holds.
//!
//! This is the adapter's report of what it *did* (which ioctl carried a field, what KVM forced,
//! what was lost). The core's [`vmsa_core::kvm::Fidelity`] is the model's prediction of what an
//! SEV launch would reproduce; the integration tests check that the two agree.

use core::fmt;
use vmsa_core::Vmsa;
use vmsa_core::arch::{DR6_RESET, DR7_RESET, MXCSR_RESET, XCR0_RESET};
use vmsa_core::vmsa::{FIELDS, Field, FieldId, FieldKind};
use zerocopy::IntoBytes;

/// The fate of one VMSA field when a vCPU is programmed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldStatus {
    /// Carried by a vCPU ioctl; KVM holds exactly the VMSA's value.
    Programmed,
    /// KVM holds the VMSA's value without an ioctl: `cpl` equal to SS.DPL, `xcr0` = 1 on a vCPU
    /// without XSAVE.
    Implicit,
    /// KVM holds another value, named here (RFLAGS bit 1, EFER without SVME, CPL = SS.DPL).
    Forced {
        /// The value the vCPU holds.
        value: u64,
    },
    /// A property of the VM, not of a vCPU: `sev_features` comes from `KVM_SEV_INIT2`'s
    /// `vmsa_features` (plus SNP_ACTIVE for SNP VMs), the same for every vCPU.
    VmLevel,
    /// Zero, and no KVM state stands behind it.
    Unused,
    /// The vCPU cannot hold this value; it gets the value in [`ProgramReport::expected`]
    /// instead.
    NotExpressible {
        /// Why, in words a user can act on.
        reason: &'static str,
    },
}

const N: usize = FIELDS.len();

/// The position of `id` in [`FIELDS`] (sorted by offset): a binary search, so that building a
/// report costs a few comparisons per field rather than a scan of the table.
fn position(id: FieldId) -> Option<usize> {
    FIELDS.binary_search_by_key(&id.offset(), |f| f.offset).ok()
}

/// A per-field report: the status of every field of [`FIELDS`], and the VMSA the vCPU will
/// actually hold.
#[derive(Clone)]
pub struct ProgramReport {
    statuses: [Option<FieldStatus>; N],
    expected: Box<Vmsa>,
}

impl ProgramReport {
    /// A report in progress for `vmsa`: nothing decided yet.
    pub(crate) fn new(vmsa: &Vmsa) -> Self {
        Self {
            statuses: [None; N],
            expected: Box::new(vmsa.clone()),
        }
    }

    /// Records a status; for [`FieldStatus::Forced`] the expected value changes too.
    pub(crate) fn set(&mut self, id: FieldId, status: FieldStatus) {
        let Some(i) = position(id) else { return };
        if let FieldStatus::Forced { value } = status {
            self.write(i, &value.to_le_bytes());
        }
        self.decide(i, status);
    }

    /// Records a field the vCPU cannot hold; the vCPU keeps its reset value for it.
    pub(crate) fn mark_lost(&mut self, id: FieldId, reason: &'static str) {
        let Some(i) = position(id) else { return };
        self.write(i, &reset_value(id).to_le_bytes());
        self.decide(i, FieldStatus::NotExpressible { reason });
    }

    /// Records a field the vCPU cannot hold exactly; it holds `held` (the field's bytes) instead.
    pub(crate) fn not_expressible_as(&mut self, id: FieldId, reason: &'static str, held: &[u8]) {
        let Some(i) = position(id) else { return };
        self.write(i, held);
        self.decide(i, FieldStatus::NotExpressible { reason });
    }

    fn decide(&mut self, i: usize, status: FieldStatus) {
        if let Some(s) = self.statuses.get_mut(i) {
            *s = Some(status);
        }
    }

    /// Writes the low bytes of `bytes` into field `i` of the expected page, zero-extended.
    fn write(&mut self, i: usize, bytes: &[u8]) {
        let Some(f) = FIELDS.get(i) else { return };
        let page = self.expected.as_mut_bytes();
        if let Some(dst) = page.get_mut(f.offset..f.offset + f.size) {
            dst.fill(0);
            let n = dst.len().min(bytes.len());
            if let (Some(d), Some(s)) = (dst.get_mut(..n), bytes.get(..n)) {
                d.copy_from_slice(s);
            }
        }
    }

    /// Decides every field not yet decided: zero is [`FieldStatus::Unused`], anything else is
    /// not expressible (no vCPU ioctl carries it), `sev_features` is [`FieldStatus::VmLevel`].
    pub(crate) fn finish(&mut self, vmsa: &Vmsa) {
        let page = vmsa.as_page();
        for (i, f) in FIELDS.iter().enumerate() {
            if self.statuses.get(i).copied().flatten().is_some() {
                continue;
            }
            // OR-fold rather than `all`: it vectorizes (reserved_670 alone is 2448 bytes).
            let zero = page
                .get(f.offset..f.offset + f.size)
                .is_some_and(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0);
            if zero {
                self.decide(i, FieldStatus::Unused);
            } else if f.id == FieldId::SEV_FEATURES {
                self.write(i, &[]);
                self.decide(i, FieldStatus::VmLevel);
            } else {
                self.mark_lost(f.id, unexpressible_reason(f));
            }
        }
    }

    /// The status of a field.
    pub fn status(&self, id: FieldId) -> Option<FieldStatus> {
        self.statuses.get(position(id)?).copied().flatten()
    }

    /// Every field with its status, in offset order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static Field, FieldStatus)> + '_ {
        FIELDS
            .iter()
            .zip(self.statuses.iter())
            .map(|(f, s)| (f, s.unwrap_or(FieldStatus::Unused)))
    }

    /// The fields the vCPU cannot hold, with the reason.
    pub fn not_expressible(&self) -> impl Iterator<Item = (&'static Field, &'static str)> + '_ {
        self.fields().filter_map(|(f, s)| match s {
            FieldStatus::NotExpressible { reason } => Some((f, reason)),
            _ => None,
        })
    }

    /// Whether every field is held (programmed, implicit, forced or VM-level): nothing lost.
    pub fn is_exact(&self) -> bool {
        self.not_expressible().next().is_none()
    }

    /// The VMSA the vCPU holds after programming: forced values in, lost fields at their reset
    /// value, `sev_features` zero (it belongs to the VM). Reading the vCPU back gives exactly
    /// this on a KVM that reports segments as set, and this with `svm_get_segment`'s quirks on
    /// AMD SVM ([`vmsa_core::kvm::read_back`], `crate::vm::Vm::expected_read_back`): there the
    /// VMCB, and so the measured VMSA, still holds these values.
    pub fn expected(&self) -> &Vmsa {
        &self.expected
    }
}

/// The value a vCPU keeps for a field it cannot take from the VMSA: its reset value
/// ([`vmsa_core::arch`]), zero for every field without one.
fn reset_value(id: FieldId) -> u64 {
    match id {
        FieldId::DR6 => DR6_RESET,
        FieldId::DR7 => DR7_RESET,
        FieldId::XCR0 => XCR0_RESET,
        FieldId::MXCSR => u64::from(MXCSR_RESET),
        _ => 0,
    }
}

/// Why no vCPU ioctl carries `field`.
fn unexpressible_reason(field: &Field) -> &'static str {
    match field.id {
        FieldId::VMPL => "KVM launches every VMSA at VMPL0; no ioctl sets the VMPL",
        FieldId::X87_DS | FieldId::X87_CS => {
            "struct kvm_fpu has no x87 selector fields, and sev_es_sync_vmsa writes them as 0"
        }
        FieldId::FPREG_YMM => {
            "the upper YMM halves need the AVX state component, which this vCPU does not have"
        }
        FieldId::PKRU => "PKRU needs the PKRU state component, which this vCPU does not have",
        FieldId::TSC_SCALE | FieldId::TSC_OFFSET => {
            "Secure TSC scale/offset are set by the SEV firmware, not by KVM"
        }
        FieldId::SSP => "no KVM vCPU ioctl sets the shadow stack pointer here",
        _ if field.kind == FieldKind::Reserved => {
            "reserved bytes must be zero; no KVM state stands behind them"
        }
        _ => "no KVM vCPU ioctl carries this field",
    }
}

impl fmt::Debug for ProgramReport {
    /// The structure: every field that is not [`FieldStatus::Unused`], by name, with its status,
    /// and whether the report is exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Decided<'r>(&'r ProgramReport);
        impl fmt::Debug for Decided<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(
                        self.0
                            .fields()
                            .filter(|(_, s)| *s != FieldStatus::Unused)
                            .map(|(field, s)| (field.name, s)),
                    )
                    .finish()
            }
        }
        f.debug_struct("ProgramReport")
            .field("exact", &self.is_exact())
            .field("fields", &Decided(self))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ProgramReport {
    /// One line per field that is not simply programmed or unused.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (field, status) in self.fields() {
            let name = field.name;
            match status {
                FieldStatus::Programmed | FieldStatus::Unused => continue,
                FieldStatus::Implicit => writeln!(f, "  {name:<16} held by KVM without an ioctl")?,
                FieldStatus::Forced { value } => {
                    writeln!(f, "  {name:<16} forced by KVM to {value:#x}")?
                }
                FieldStatus::VmLevel => writeln!(
                    f,
                    "  {name:<16} VM-level: KVM_SEV_INIT2 vmsa_features (+SNP_ACTIVE for SNP)"
                )?,
                FieldStatus::NotExpressible { reason } => {
                    writeln!(f, "  {name:<16} NOT EXPRESSIBLE: {reason}")?
                }
            }
            any = true;
        }
        if !any {
            writeln!(f, "  every field programmed exactly")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_its_position() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(position(f.id), Some(i), "{}", f.name);
            assert_eq!(f.id.index(), i, "{}", f.name);
        }
    }

    #[test]
    fn debug_shows_structure_not_the_display() {
        let mut v: Vmsa = zerocopy::FromZeros::new_zeroed();
        v.rip = 0xfff0;
        v.vmpl = 1;
        let mut r = ProgramReport::new(&v);
        r.set(FieldId::RIP, FieldStatus::Programmed);
        r.finish(&v);
        let debug = format!("{r:?}");
        assert!(
            debug.starts_with("ProgramReport { exact: false, fields: {"),
            "{debug}"
        );
        assert!(debug.contains("\"rip\": Programmed"), "{debug}");
        assert!(debug.contains("\"vmpl\": NotExpressible"), "{debug}");
        assert!(
            !debug.contains("\"es\""),
            "unused fields are left out: {debug}"
        );
        assert_ne!(debug, r.to_string());
    }
}
