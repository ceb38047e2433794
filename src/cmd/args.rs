//! The arguments several subcommands share: one integer parser, the vCPU signature, the mode,
//! the VMM and the KVM host, each parsed in one place.
use vmsa_core::flags::SevFeatures;
use vmsa_core::host::{Host, HostError, Version};
use vmsa_core::kvm::{KvmParams, VmInit};
use vmsa_core::launch::LaunchConfig;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};

/// Bytes given as hex or base64 text (digests, nonces, keys' digests): exactly `len` bytes, or
/// at most `len` zero-padded to `len` when `pad`. Hex is tried first (an even number of hex
/// digits); `what` names the argument in the error.
pub fn hex_or_base64(what: &str, text: &str, len: usize, pad: bool) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let t = text.trim();
    let mut bytes =
        if t.len().is_multiple_of(2) && !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..t.len() / 2)
                .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
                .collect::<Result<Vec<u8>, String>>()?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|_| format!("{what}: neither hex nor base64: {t:?}"))?
        };
    if bytes.len() == len || (pad && bytes.len() < len) {
        bytes.resize(len, 0);
        return Ok(bytes);
    }
    Err(format!(
        "{what}: {} bytes; {}{len} expected",
        bytes.len(),
        if pad { "at most " } else { "" }
    ))
}

/// Parses an integer the way Python's `int(x, 0)` and sev-snp-measure do: `0x`, `0o`, `0b` or
/// decimal, underscores allowed, surrounding blanks ignored.
pub fn parse_int(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let lower = t.to_ascii_lowercase();
    let (digits, radix) = match lower.get(..2) {
        Some("0x") => (&lower[2..], 16),
        Some("0o") => (&lower[2..], 8),
        Some("0b") => (&lower[2..], 2),
        _ => (lower.as_str(), 10),
    };
    u64::from_str_radix(digits, radix).map_err(|e| format!("invalid integer {s:?}: {e}"))
}

/// [`parse_int`] for a value that must fit 32 bits.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let v = parse_int(s)?;
    u32::try_from(v).map_err(|_| format!("{s:?} does not fit in 32 bits"))
}

/// The SEV mode, in every spelling [`SevMode::from_name`] takes.
pub fn parse_mode(s: &str) -> Result<SevMode, String> {
    SevMode::from_name(s).ok_or_else(|| format!("invalid mode {s:?} (sev, seves, sev-es, snp)"))
}

/// The VMM profile: `qemu`, `ec2`, `gce` or `kvm`, any case.
pub fn parse_vmm(s: &str) -> Result<VmmType, String> {
    VmmType::from_name(s)
        .ok_or_else(|| format!("unknown VMM type {s:?} (qemu, ec2, gce, kvm, krun)"))
}

/// The vCPU signature, by CPU type, raw value or family/model/stepping (one of the three).
#[derive(Debug, Clone, clap::Args)]
pub struct CpuArgs {
    /// Type of guest vCPU: a QEMU CPU model (EPYC, EPYC-v1…v4, EPYC-Rome, EPYC-Milan,
    /// EPYC-Genoa, EPYC-Turin, … qemu64).
    #[arg(long, value_name = "CPUTYPE", group = "cpu")]
    pub vcpu_type: Option<String>,
    /// Guest vCPU signature value (CPUID 1 EAX; any base: 0x800f12, 8392466; 0 is valid).
    #[arg(long, value_name = "VALUE", group = "cpu", value_parser = parse_u32)]
    pub vcpu_sig: Option<u32>,
    /// Guest vCPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, value_name = "FAMILY", group = "cpu", value_parser = parse_u32,
          requires_all = ["vcpu_model", "vcpu_stepping"])]
    pub vcpu_family: Option<u32>,
    /// Guest vCPU model.
    #[arg(long, value_name = "MODEL", requires = "vcpu_family", value_parser = parse_u32)]
    pub vcpu_model: Option<u32>,
    /// Guest vCPU stepping.
    #[arg(long, value_name = "STEPPING", requires = "vcpu_family", value_parser = parse_u32)]
    pub vcpu_stepping: Option<u32>,
}

impl CpuArgs {
    /// The signature given, if any.
    pub fn signature(&self) -> Result<Option<CpuSignature>, String> {
        if let Some(name) = &self.vcpu_type {
            return CpuSignature::named(name)
                .map(Some)
                .map_err(|e| format!("--vcpu-type {name:?}: {e}"));
        }
        if let Some(sig) = self.vcpu_sig {
            return Ok(Some(CpuSignature(sig)));
        }
        if let (Some(f), Some(m), Some(s)) = (self.vcpu_family, self.vcpu_model, self.vcpu_stepping)
        {
            return CpuSignature::from_family_model_stepping(f, m, s)
                .map(Some)
                .map_err(|e| e.to_string());
        }
        Ok(None)
    }

    /// The signature a launch by `vmm` needs: QEMU puts it in RDX, so it must be given; the
    /// other VMMs leave KVM's 0x600 and never read it.
    pub fn signature_for(&self, vmm: VmmType) -> Result<CpuSignature, String> {
        match (self.signature()?, vmm) {
            (Some(s), _) => Ok(s),
            (None, VmmType::Qemu) => Err("QEMU puts the vCPU signature in RDX: give --vcpu-type, \
                 --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping"
                .into()),
            (None, _) => Ok(CpuSignature(0)),
        }
    }
}

/// The KVM host: how the VM was initialised and the host facts KVM folds into the VMSA.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// The VM was made with the legacy KVM_SEV_ES_INIT (QEMU `sev-guest` default): no FPU state
    /// and no features in the VMSA.
    #[arg(long, conflicts_with = "qemu")]
    pub legacy_init: bool,
    /// The host runs without CR4.MCE.
    #[arg(long)]
    pub no_host_mce: bool,
    /// KVM_X86_QUIRK_CD_NW_CLEARED is disabled.
    #[arg(long)]
    pub no_cd_nw_quirk: bool,
}

impl HostArgs {
    /// The KVM parameters these flags describe.
    pub fn kvm(&self) -> KvmParams {
        KvmParams {
            host_cr4_mce: !self.no_host_mce,
            init: if self.legacy_init {
                VmInit::Legacy
            } else {
                VmInit::Init2
            },
            cd_nw_quirk: !self.no_cd_nw_quirk,
            ..KvmParams::default()
        }
    }
}

/// A release version: `6.8`, `6.8.0-45-generic`, `v6.11`, `10.2.2`.
pub fn parse_version(s: &str) -> Result<Version, String> {
    Version::parse(s).ok_or_else(|| format!("{s:?} is not a release version (6.8, 10.2.2)"))
}

/// The host's versions: which row of `vmsa profiles` the kernel and QEMU come from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProfileArgs {
    /// The host's Linux version (`uname -r`: 6.8, 6.8.0-45-generic): its KVM's init, VMSA
    /// features and FPU rules (`vmsa profiles` lists them).
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    pub host_kernel: Option<Version>,
    /// The QEMU version (9.1, 10.2.2): its init, SNP and IGVM support and the APs' state
    /// (`vmsa profiles`). For the qemu VMM type.
    #[arg(long = "qemu", value_name = "VERSION", value_parser = parse_version)]
    pub qemu: Option<Version>,
    /// With --qemu: the `sev-guest` object's `legacy-vm-type` (QEMU ≥ 9.1; `off` makes an
    /// SEV-ES guest by KVM_SEV_INIT2, with its FPU state in the VMSAs; default `auto`, which is
    /// legacy).
    #[arg(long, value_name = "on|off|auto", requires = "qemu", value_parser = ["on", "off", "auto"])]
    pub legacy_vm_type: Option<String>,
}

impl ProfileArgs {
    /// Applies the host these versions make to `cfg` ([`LaunchConfig::apply_host`]); `None`
    /// when no version was named.
    pub fn apply(
        &self,
        cfg: &mut LaunchConfig,
        explicit: Option<u64>,
        igvm: bool,
    ) -> Result<Option<Host>, String> {
        if self.host_kernel.is_none() && self.qemu.is_none() {
            return Ok(None);
        }
        cfg.apply_host(
            self.host_kernel,
            self.qemu,
            self.legacy_vm_type.as_deref() == Some("off"),
            explicit.map(SevFeatures::from_bits_retain),
            igvm,
        )
        .map(Some)
        .map_err(|e| match e {
            HostError::NotQemu(v) => format!("--qemu describes the qemu VMM type, not {v}"),
            e => e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_python_reads_them() {
        for (s, v) in [
            ("0x800f12", 0x800f12),
            ("0X800F12", 0x800f12),
            ("8392466", 0x800f12),
            ("0b101", 5),
            ("0o17", 15),
            (" 0x1_0 ", 16),
        ] {
            assert_eq!(parse_int(s), Ok(v), "{s}");
        }
        assert!(parse_int("0x").is_err());
        assert!(parse_int("12a").is_err());
        assert!(parse_u32("0x100000000").is_err());
        assert_eq!(parse_u32("0xffffffff"), Ok(u32::MAX));
    }
}
