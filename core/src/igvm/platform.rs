//! Supported platforms and platform selection.
//!
//! Each `SUPPORTED_PLATFORM` header owns one bit of the 32-bit compatibility mask; every
//! later header with a mask applies to the platforms whose bits it has. A loader picks one
//! platform and ignores the headers whose mask does not have its bit.

use super::error::{At, IgvmError};
use super::fixed::Architecture;
use igvm_defs::{IGVM_VHS_SUPPORTED_PLATFORM, IgvmPlatformType, IgvmVariableHeaderType};

/// A declared platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Platform {
    /// Where its header is.
    pub at: At,
    /// Its single mask bit.
    pub compatibility_mask: u32,
    /// NATIVE, VSM_ISOLATION, SEV_SNP, TDX, SEV, SEV_ES or CCA.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser_platform_type"))]
    pub platform_type: IgvmPlatformType,
    /// Highest VTL (0 or 2).
    pub highest_vtl: u8,
    /// Platform version (1).
    pub platform_version: u16,
    /// GPA above which memory is host visible, 0 for "enlightened".
    pub shared_gpa_boundary: u64,
}

#[cfg(feature = "serde")]
fn ser_platform_type<S: serde::Serializer>(t: &IgvmPlatformType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(platform_name(*t))
}

/// Short name of a platform type: `snp`, `sev-es`, `sev`, `native`, `vbs`, `tdx`, `cca`,
/// or `unknown`.
pub fn platform_name(t: IgvmPlatformType) -> &'static str {
    match t {
        IgvmPlatformType::SEV_SNP => "snp",
        IgvmPlatformType::SEV_ES => "sev-es",
        IgvmPlatformType::SEV => "sev",
        IgvmPlatformType::NATIVE => "native",
        IgvmPlatformType::VSM_ISOLATION => "vbs",
        IgvmPlatformType::TDX => "tdx",
        IgvmPlatformType::CCA => "cca",
        _ => "unknown",
    }
}

/// The platform type with short name `name` (see [`platform_name`]).
pub fn platform_from_name(name: &str) -> Option<IgvmPlatformType> {
    Some(match name {
        "snp" | "sev-snp" => IgvmPlatformType::SEV_SNP,
        "sev-es" => IgvmPlatformType::SEV_ES,
        "sev" => IgvmPlatformType::SEV,
        "native" => IgvmPlatformType::NATIVE,
        "vbs" => IgvmPlatformType::VSM_ISOLATION,
        "tdx" => IgvmPlatformType::TDX,
        "cca" => IgvmPlatformType::CCA,
        _ => return None,
    })
}

/// Which platform to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The strongest one QEMU can launch: SNP, then SEV-ES, then SEV, then native
    /// (QEMU `qigvm_supported_platform_compat_mask`, backends/igvm.c).
    Strongest,
    /// Exactly this platform type.
    Only(IgvmPlatformType),
}

impl PlatformChoice {
    /// The choice a command line or page names: none is [`PlatformChoice::Strongest`], a name
    /// ([`platform_from_name`]) is that platform only; `None` for an unknown name.
    pub fn from_name(name: Option<&str>) -> Option<Self> {
        match name {
            None => Some(Self::Strongest),
            Some(n) => platform_from_name(n).map(Self::Only),
        }
    }
}

/// The platforms of a file, in file order (at most 32: one per mask bit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platforms {
    list: heapless::Vec<Platform, 32>,
}

impl Platforms {
    /// Adds a platform header, checking it as `igvm` 0.5 `IgvmPlatformHeader::validate` and
    /// `validate_platform_headers` do: one mask bit, not reused; VTL 0 or 2; version 1; no
    /// shared GPA boundary for native and VBS; a known type, once, valid for `arch`.
    pub(crate) fn add(
        &mut self,
        at: At,
        p: &IGVM_VHS_SUPPORTED_PLATFORM,
        arch: Architecture,
    ) -> Result<(), IgvmError> {
        let mask = p.compatibility_mask;
        if mask.count_ones() != 1 || mask & self.declared_mask() != 0 {
            return Err(IgvmError::PlatformMask { at, mask });
        }
        if p.highest_vtl != 0 && p.highest_vtl != 2 {
            return Err(IgvmError::InvalidPlatform {
                at,
                field: "highest_vtl",
                value: p.highest_vtl.into(),
            });
        }
        let needs_x64 = match p.platform_type {
            IgvmPlatformType::NATIVE | IgvmPlatformType::VSM_ISOLATION => {
                if p.shared_gpa_boundary != 0 {
                    return Err(IgvmError::InvalidPlatform {
                        at,
                        field: "shared_gpa_boundary",
                        value: p.shared_gpa_boundary,
                    });
                }
                p.platform_type == IgvmPlatformType::NATIVE
            }
            IgvmPlatformType::SEV_SNP
            | IgvmPlatformType::TDX
            | IgvmPlatformType::SEV
            | IgvmPlatformType::SEV_ES => true,
            IgvmPlatformType::CCA => false,
            other => return Err(IgvmError::UnknownPlatformType { at, value: other.0 }),
        };
        // Every platform version defined by igvm_defs 0.5 is 1.
        if p.platform_version != 1 {
            return Err(IgvmError::InvalidPlatform {
                at,
                field: "platform_version",
                value: p.platform_version.into(),
            });
        }
        let arch_ok = match p.platform_type {
            IgvmPlatformType::VSM_ISOLATION => true,
            IgvmPlatformType::CCA => arch == Architecture::AArch64,
            _ => needs_x64 && arch == Architecture::X64,
        };
        if !arch_ok {
            return Err(IgvmError::WrongArchitecture {
                at,
                typ: IgvmVariableHeaderType::IGVM_VHT_SUPPORTED_PLATFORM.0,
                arch: arch.name(),
            });
        }
        if self.list.iter().any(|q| q.platform_type == p.platform_type) {
            return Err(IgvmError::DuplicatePlatform {
                at,
                platform: p.platform_type,
            });
        }
        let platform = Platform {
            at,
            compatibility_mask: mask,
            platform_type: p.platform_type,
            highest_vtl: p.highest_vtl,
            platform_version: p.platform_version,
            shared_gpa_boundary: p.shared_gpa_boundary,
        };
        // Cannot fail: each platform has its own bit of 32.
        self.list
            .push(platform)
            .map_err(|_| IgvmError::CapacityExceeded {
                at,
                what: "platforms",
                capacity: 32,
            })
    }

    /// The platforms in file order.
    pub fn as_slice(&self) -> &[Platform] {
        &self.list
    }

    /// The union of the declared masks.
    pub fn declared_mask(&self) -> u32 {
        self.list.iter().fold(0, |m, p| m | p.compatibility_mask)
    }

    /// The platform type whose mask is exactly `mask`.
    pub fn type_of_mask(&self, mask: u32) -> Option<IgvmPlatformType> {
        self.list
            .iter()
            .find(|p| p.compatibility_mask == mask)
            .map(|p| p.platform_type)
    }

    /// The platform of type `t`.
    pub fn of_type(&self, t: IgvmPlatformType) -> Option<&Platform> {
        self.list.iter().find(|p| p.platform_type == t)
    }

    /// Whether every bit of `mask` belongs to a platform of type `t`.
    pub fn all_of_type(&self, mask: u32, t: IgvmPlatformType) -> bool {
        let of_t = self
            .list
            .iter()
            .filter(|p| p.platform_type == t)
            .fold(0, |m, p| m | p.compatibility_mask);
        mask & !of_t == 0
    }

    /// Picks the platform to load.
    pub fn select(&self, choice: PlatformChoice) -> Result<Platform, IgvmError> {
        match choice {
            PlatformChoice::Only(t) => self
                .of_type(t)
                .copied()
                .ok_or(IgvmError::PlatformNotInFile { platform: t }),
            PlatformChoice::Strongest => [
                IgvmPlatformType::SEV_SNP,
                IgvmPlatformType::SEV_ES,
                IgvmPlatformType::SEV,
                IgvmPlatformType::NATIVE,
            ]
            .into_iter()
            .find_map(|t| self.of_type(t).copied())
            .ok_or(IgvmError::NoLaunchablePlatform),
        }
    }
}
