//! CPU signatures: the CPUID Fn0000_0001 EAX value (family, model, stepping) QEMU puts in RDX
//! at reset, and the named QEMU CPU models that give one.

use core::fmt;

/// The CPUID signature (CPUID Fn0000_0001 EAX: family, model, stepping) that QEMU puts in RDX
/// at reset. Any `u32` is a signature, 0 included.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct CpuSignature(pub u32);

/// One named QEMU CPU model (`builtin_x86_defs` and its versions, `target/i386/cpu.c`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuType {
    /// The name `-cpu` takes.
    pub name: &'static str,
    /// Family.
    pub family: u32,
    /// Model.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
}

const fn cpu(name: &'static str, family: u32, model: u32, stepping: u32) -> CpuType {
    CpuType {
        name,
        family,
        model,
        stepping,
    }
}

/// The QEMU EPYC family: every name sev-snp-measure 0.0.13 knows (`vcpu_types.py` `CPU_SIGS`)
/// plus the later versions QEMU 10.2 defines (EPYC-Rome-v4/v5, EPYC-Milan-v3, EPYC-Genoa-v2,
/// EPYC-Turin-v1); versions of a model share its family/model/stepping. `qemu64` (15/107/1) is
/// QEMU's default x86-64 model.
pub const CPU_TYPES: &[CpuType] = &[
    cpu("EPYC", 23, 1, 2),
    cpu("EPYC-v1", 23, 1, 2),
    cpu("EPYC-v2", 23, 1, 2),
    cpu("EPYC-IBPB", 23, 1, 2),
    cpu("EPYC-v3", 23, 1, 2),
    cpu("EPYC-v4", 23, 1, 2),
    cpu("EPYC-Rome", 23, 49, 0),
    cpu("EPYC-Rome-v1", 23, 49, 0),
    cpu("EPYC-Rome-v2", 23, 49, 0),
    cpu("EPYC-Rome-v3", 23, 49, 0),
    cpu("EPYC-Rome-v4", 23, 49, 0),
    cpu("EPYC-Rome-v5", 23, 49, 0),
    cpu("EPYC-Milan", 25, 1, 1),
    cpu("EPYC-Milan-v1", 25, 1, 1),
    cpu("EPYC-Milan-v2", 25, 1, 1),
    cpu("EPYC-Milan-v3", 25, 1, 1),
    cpu("EPYC-Genoa", 25, 17, 0),
    cpu("EPYC-Genoa-v1", 25, 17, 0),
    cpu("EPYC-Genoa-v2", 25, 17, 0),
    cpu("EPYC-Turin", 26, 0, 0),
    cpu("EPYC-Turin-v1", 26, 0, 0),
    cpu("qemu64", 15, 107, 1),
];

/// What cannot become a [`CpuSignature`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A family above 0x10e (0xf + 0xff) does not fit the base and extended family fields.
    #[error("family {0:#x} does not fit CPUID (at most 0x10e)")]
    Family(u32),
    /// A model above 0xff.
    #[error("model {0:#x} does not fit CPUID (at most 0xff)")]
    Model(u32),
    /// A stepping above 0xf.
    #[error("stepping {0:#x} does not fit CPUID (at most 0xf)")]
    Stepping(u32),
}

/// A CPU type name nobody defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCpuType;

impl fmt::Display for UnknownCpuType {
    /// Lists every name [`CPU_TYPES`] knows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown vCPU type; known types are")?;
        for (i, t) in CPU_TYPES.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            f.write_str(t.name)?;
        }
        Ok(())
    }
}

impl core::error::Error for UnknownCpuType {}

impl CpuSignature {
    /// The signature of a family/model/stepping, as QEMU's `x86_cpuid_version_set_family/model/
    /// stepping` and sev-snp-measure's `cpu_sig` compute it (AMD CPUID spec #25481, Fn0000_0001
    /// EAX): family above 0xf goes to base 0xf plus extended family; model bits 7:4 to the
    /// extended model. Values that do not fit are errors, not masked.
    pub const fn from_family_model_stepping(
        family: u32,
        model: u32,
        stepping: u32,
    ) -> Result<Self, SignatureError> {
        if family > 0xf + 0xff {
            return Err(SignatureError::Family(family));
        }
        if model > 0xff {
            return Err(SignatureError::Model(model));
        }
        if stepping > 0xf {
            return Err(SignatureError::Stepping(stepping));
        }
        let (base, ext) = if family > 0xf {
            (0xf, family - 0xf)
        } else {
            (family, 0)
        };
        Ok(Self(
            ext << 20 | (model >> 4) << 16 | base << 8 | (model & 0xf) << 4 | stepping,
        ))
    }

    /// The signature of a named CPU type ([`CPU_TYPES`], names compared ignoring ASCII case).
    pub fn named(name: &str) -> Result<Self, UnknownCpuType> {
        let t = CPU_TYPES
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or(UnknownCpuType)?;
        Self::from_family_model_stepping(t.family, t.model, t.stepping).map_err(|_| UnknownCpuType)
    }

    /// The displayed family (base + extended when base is 0xf).
    pub const fn family(self) -> u32 {
        let base = (self.0 >> 8) & 0xf;
        if base == 0xf {
            base + ((self.0 >> 20) & 0xff)
        } else {
            base
        }
    }

    /// The displayed model (extended model bits included).
    pub const fn model(self) -> u32 {
        ((self.0 >> 16) & 0xf) << 4 | (self.0 >> 4) & 0xf
    }

    /// The stepping.
    pub const fn stepping(self) -> u32 {
        self.0 & 0xf
    }
}

impl fmt::Display for CpuSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x} (family {:#x}, model {:#x}, stepping {})",
            self.0,
            self.family(),
            self.model(),
            self.stepping()
        )
    }
}

impl fmt::Debug for CpuSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSignature({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_sev_snp_measure() {
        // vcpu_types.py unit test: cpu_sig(14, 1, 2) == 0x0e12.
        assert_eq!(
            CpuSignature::from_family_model_stepping(14, 1, 2),
            Ok(CpuSignature(0xe12))
        );
        let expect = [
            ("EPYC-v4", 0x800f12),
            ("EPYC-Rome", 0x830f10),
            ("EPYC-Milan-v2", 0xa00f11),
            ("EPYC-Genoa", 0xa10f10),
            ("EPYC-Turin", 0xb00f00),
            ("epyc-ibpb", 0x800f12),
        ];
        for (name, sig) in expect {
            assert_eq!(CpuSignature::named(name), Ok(CpuSignature(sig)), "{name}");
        }
        assert_eq!(CpuSignature::named("EPYC-v9"), Err(UnknownCpuType));
        let s = CpuSignature(0xa10f10);
        assert_eq!((s.family(), s.model(), s.stepping()), (25, 17, 0));
    }

    #[test]
    fn signature_bits_are_not_masked() {
        assert_eq!(
            CpuSignature::from_family_model_stepping(0x10f, 0, 0),
            Err(SignatureError::Family(0x10f))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(0x10e, 0xff, 0xf),
            Ok(CpuSignature(0x0fff_0fff))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(6, 0x100, 0),
            Err(SignatureError::Model(0x100))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(6, 0, 16),
            Err(SignatureError::Stepping(16))
        );
    }

    #[test]
    fn every_cpu_type_round_trips() {
        for t in CPU_TYPES {
            let s = CpuSignature::named(t.name).unwrap();
            assert_eq!(
                (s.family(), s.model(), s.stepping()),
                (t.family, t.model, t.stepping)
            );
        }
    }
}
