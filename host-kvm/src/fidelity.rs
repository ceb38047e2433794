//! What became of every VMSA field on its way into a KVM vCPU.

use core::fmt;
use vmsa_core::Vmsa;
use vmsa_core::vmsa::{FIELDS, Field};
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
    /// The vCPU cannot hold this value; it gets the value in [`Fidelity::expected`] instead.
    NotExpressible {
        /// Why, in words a user can act on.
        reason: &'static str,
    },
}

const N: usize = FIELDS.len();

/// A field of [`FIELDS`] by index, found at compile time with [`field!`](crate::field) (a
/// misspelt name is a build error), so that building a report costs no name lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldId(usize);

impl FieldId {
    /// The field called `name`; a name that is not in [`FIELDS`] fails the build when evaluated
    /// in a constant (as [`field!`](crate::field) does).
    pub const fn of(name: &str) -> Self {
        let mut i = 0;
        while i < N {
            if const_str_eq(FIELDS[i].name, name) {
                return Self(i);
            }
            i += 1;
        }
        panic!("not a VMSA field name")
    }

    /// The field.
    pub fn field(self) -> Option<&'static Field> {
        FIELDS.get(self.0)
    }
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The [`FieldId`] of a VMSA field, computed at compile time: `field!("rax")`.
#[macro_export]
macro_rules! field {
    ($name:expr) => {
        const { $crate::fidelity::FieldId::of($name) }
    };
}

/// A per-field report: the status of every field of [`FIELDS`], and the VMSA the vCPU will
/// actually hold.
#[derive(Clone)]
pub struct Fidelity {
    statuses: [Option<FieldStatus>; N],
    expected: Box<Vmsa>,
}

impl Fidelity {
    /// A report in progress for `vmsa`: nothing decided yet.
    pub(crate) fn new(vmsa: &Vmsa) -> Self {
        Self {
            statuses: [None; N],
            expected: Box::new(vmsa.clone()),
        }
    }

    fn index(name: &str) -> Option<usize> {
        FIELDS.iter().position(|f| f.name == name)
    }

    /// Records a status; for [`FieldStatus::Forced`] the expected value changes too.
    pub(crate) fn set(&mut self, id: FieldId, status: FieldStatus) {
        let i = id.0;
        if let FieldStatus::Forced { value } = status {
            self.write(i, &value.to_le_bytes());
        }
        if let Some(s) = self.statuses.get_mut(i) {
            *s = Some(status);
        }
    }

    /// Records a field the vCPU cannot hold; the vCPU keeps its reset value for it.
    pub(crate) fn mark_lost(&mut self, id: FieldId, reason: &'static str) {
        let i = id.0;
        let reset = id.field().and_then(|f| reset_value(f.name)).unwrap_or(0);
        self.write(i, &reset.to_le_bytes());
        if let Some(s) = self.statuses.get_mut(i) {
            *s = Some(FieldStatus::NotExpressible { reason });
        }
    }

    /// Records a field the vCPU cannot hold exactly; it holds `held` (the field's bytes) instead.
    pub(crate) fn not_expressible_as(&mut self, id: FieldId, reason: &'static str, held: &[u8]) {
        let i = id.0;
        self.write(i, held);
        if let Some(s) = self.statuses.get_mut(i) {
            *s = Some(FieldStatus::NotExpressible { reason });
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
        const SEV_FEATURES: FieldId = FieldId::of("sev_features");
        let page = vmsa.as_page();
        for i in 0..N {
            let Some(f) = FIELDS.get(i) else { continue };
            if self.statuses.get(i).copied().flatten().is_some() {
                continue;
            }
            // OR-fold rather than `all`: it vectorizes (reserved_670 alone is 2448 bytes).
            let zero = page
                .get(f.offset..f.offset + f.size)
                .is_some_and(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0);
            if i == SEV_FEATURES.0 && !zero {
                self.write(i, &[]);
                if let Some(s) = self.statuses.get_mut(i) {
                    *s = Some(FieldStatus::VmLevel);
                }
            } else if zero {
                if let Some(s) = self.statuses.get_mut(i) {
                    *s = Some(FieldStatus::Unused);
                }
            } else {
                self.mark_lost(FieldId(i), unexpressible_reason(f.name));
            }
        }
    }

    /// The status of a field, by name.
    pub fn status(&self, name: &str) -> Option<FieldStatus> {
        self.statuses.get(Self::index(name)?).copied().flatten()
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
    /// AMD SVM ([`vmsa_core::kvm_readback::read_back`], `crate::vm::Vm::expected_read_back`):
    /// there the VMCB, and so the measured VMSA, still holds these values.
    pub fn expected(&self) -> &Vmsa {
        &self.expected
    }
}

/// The value a vCPU keeps for a field it cannot take from the VMSA: its reset value (`None`:
/// zero).
fn reset_value(name: &str) -> Option<u64> {
    use crate::state::{DR6_RESET, DR7_RESET, MXCSR_RESET};
    match name {
        "dr6" => Some(DR6_RESET),
        "dr7" => Some(DR7_RESET),
        "xcr0" => Some(1),
        "mxcsr" => Some(u64::from(MXCSR_RESET)),
        _ => None,
    }
}

fn unexpressible_reason(name: &str) -> &'static str {
    match name {
        "vmpl" => "KVM launches every VMSA at VMPL0; no ioctl sets the VMPL",
        "x87_ds" | "x87_cs" => {
            "struct kvm_fpu has no x87 selector fields, and sev_es_sync_vmsa writes them as 0"
        }
        "fpreg_ymm" => {
            "the upper YMM halves need the AVX state component, which this vCPU does not have"
        }
        "pkru" => "PKRU needs the PKRU state component, which this vCPU does not have",
        "tsc_scale" | "tsc_offset" => {
            "Secure TSC scale/offset are set by the SEV firmware, not by KVM"
        }
        "ssp" => "no KVM vCPU ioctl sets the shadow stack pointer here",
        _ if name.starts_with("reserved") => {
            "reserved bytes must be zero; no KVM state stands behind them"
        }
        _ => "no KVM vCPU ioctl carries this field",
    }
}

impl fmt::Debug for Fidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Fidelity {
    /// One line per field that is not simply programmed or unused.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (field, status) in self.fields() {
            let line = match status {
                FieldStatus::Programmed | FieldStatus::Unused => continue,
                FieldStatus::Implicit => "held by KVM without an ioctl".to_string(),
                FieldStatus::Forced { value } => format!("forced by KVM to {value:#x}"),
                FieldStatus::VmLevel => {
                    "VM-level: KVM_SEV_INIT2 vmsa_features (+SNP_ACTIVE for SNP)".to_string()
                }
                FieldStatus::NotExpressible { reason } => format!("NOT EXPRESSIBLE: {reason}"),
            };
            any = true;
            writeln!(f, "  {:<16} {line}", field.name)?;
        }
        if !any {
            writeln!(f, "  every field programmed exactly")?;
        }
        Ok(())
    }
}
