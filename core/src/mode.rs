//! The SEV mode of a guest: the one type every layer and front end uses.

use core::fmt;

/// SEV, SEV-ES or SEV-SNP.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum SevMode {
    /// SEV: memory encryption only. The launch digest is SHA-256 over what `LAUNCH_UPDATE_DATA`
    /// encrypted; there are no VMSAs.
    Sev,
    /// SEV-ES: the VMSAs are encrypted too, and measured into the SHA-256 launch digest by
    /// `LAUNCH_UPDATE_VMSA`.
    SevEs,
    /// SEV-SNP: the SHA-384 `PAGE_INFO` chain; KVM measures the VMSAs at `SNP_LAUNCH_FINISH`.
    Snp,
}

impl SevMode {
    /// Every mode, weakest first.
    pub const ALL: [Self; 3] = [Self::Sev, Self::SevEs, Self::Snp];

    /// The mode with this name, in every spelling users type (ASCII case ignored): `sev`;
    /// `seves`, `sev-es`, `sev_es`, `es`; `snp`, `sev-snp`, `sev_snp` (sev-snp-measure's
    /// `SevMode.from_str`, QEMU's object names, libvirt's `launchSecurity` types).
    pub fn from_name(name: &str) -> Option<Self> {
        let is = |s: &str| name.eq_ignore_ascii_case(s);
        if is("sev") {
            Some(Self::Sev)
        } else if is("seves") || is("sev-es") || is("sev_es") || is("es") {
            Some(Self::SevEs)
        } else if is("snp") || is("sev-snp") || is("sev_snp") {
            Some(Self::Snp)
        } else {
            None
        }
    }

    /// The canonical name: `sev`, `sev-es`, `snp`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sev => "sev",
            Self::SevEs => "sev-es",
            Self::Snp => "snp",
        }
    }

    /// sev-snp-measure's `SevMode.name`: `SEV`, `SEV_ES`, `SEV_SNP` (its `-v` output).
    pub const fn peer_name(self) -> &'static str {
        match self {
            Self::Sev => "SEV",
            Self::SevEs => "SEV_ES",
            Self::Snp => "SEV_SNP",
        }
    }

    /// Whether the guest's vCPUs start from VMSAs (SEV-ES and SNP).
    pub const fn has_vmsas(self) -> bool {
        !matches!(self, Self::Sev)
    }
}

impl fmt::Display for SevMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling() {
        for (s, m) in [
            ("sev", SevMode::Sev),
            ("SEV", SevMode::Sev),
            ("seves", SevMode::SevEs),
            ("SEV-ES", SevMode::SevEs),
            ("sev_es", SevMode::SevEs),
            ("snp", SevMode::Snp),
            ("Sev-Snp", SevMode::Snp),
            ("SEV_SNP", SevMode::Snp),
        ] {
            assert_eq!(SevMode::from_name(s), Some(m), "{s}");
        }
        assert_eq!(SevMode::from_name("snp:ovmf-hash"), None);
        for m in SevMode::ALL {
            assert_eq!(SevMode::from_name(m.name()), Some(m));
        }
    }
}
