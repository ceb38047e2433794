//! `vmsa reset --ovmf FILE --vcpus N ...`: the launch VMSAs of an SEV-ES/SNP guest booted from
//! OVMF, written as `vmsa0.bin`… (the same files as `sev-snp-measure --dump-vmsa`).
use super::{CmdResult, read_file};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use vmsa_core::flags::SevFeatures;
use vmsa_core::kvm_model::{KvmParams, VmInit};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::{CpuSignature, LaunchConfig, SevMode, VmmType, launch_vmsas};

/// `--mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    /// SEV-ES (sev-snp-measure `seves`).
    #[value(name = "sev-es", alias = "seves")]
    SevEs,
    /// SEV-SNP.
    Snp,
}

/// Arguments of `vmsa reset`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The OVMF firmware image (placed so that it ends at 4 GiB).
    #[arg(long, required_unless_present = "igvm", conflicts_with = "igvm")]
    pub ovmf: Option<PathBuf>,
    /// An IGVM file: its VP contexts are the launch VMSAs, the other vCPUs get the reset state.
    #[arg(long)]
    pub igvm: Option<PathBuf>,
    /// With --igvm: the platform to load (snp, sev-es, sev, native); default the strongest.
    #[arg(long, requires = "igvm")]
    pub platform: Option<String>,
    /// With --igvm: refuse VP contexts KVM would not reproduce exactly.
    #[arg(long, requires = "igvm")]
    pub strict: bool,
    /// Number of vCPUs.
    #[arg(long)]
    pub vcpus: u32,
    /// SEV-ES or SNP.
    #[arg(long, value_enum, default_value = "snp")]
    pub mode: Mode,
    /// A QEMU CPU model (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...).
    #[arg(long, group = "sig")]
    pub vcpu_type: Option<String>,
    /// A raw CPUID signature (CPUID 1 EAX; 0x prefix for hex, 0 is valid).
    #[arg(long, group = "sig", value_parser = parse_u32)]
    pub vcpu_sig: Option<u32>,
    /// CPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, group = "sig", requires_all = ["vcpu_model", "vcpu_stepping"], value_parser = parse_u32)]
    pub vcpu_family: Option<u32>,
    /// CPU model.
    #[arg(long, requires = "vcpu_family", value_parser = parse_u32)]
    pub vcpu_model: Option<u32>,
    /// CPU stepping.
    #[arg(long, requires = "vcpu_family", value_parser = parse_u32)]
    pub vcpu_stepping: Option<u32>,
    /// The VMM: qemu, ec2, gce or kvm (KVM's own reset values).
    #[arg(long, default_value = "qemu", value_parser = parse_vmm)]
    pub vmm_type: VmmType,
    /// `sev_features` of every VMSA (default 0x1 for SNP, 0 for SEV-ES).
    #[arg(long, value_parser = parse_u64)]
    pub guest_features: Option<u64>,
    /// The VM was made with the legacy KVM_SEV_ES_INIT (QEMU `sev-guest` default): no FPU state
    /// and no features in the VMSA.
    #[arg(long)]
    pub legacy_init: bool,
    /// The host runs without CR4.MCE.
    #[arg(long)]
    pub no_host_mce: bool,
    /// KVM_X86_QUIRK_CD_NW_CLEARED is disabled.
    #[arg(long)]
    pub no_cd_nw_quirk: bool,
    /// Directory to write vmsa0.bin … vmsa{N-1}.bin into.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the decoded pages as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses an integer in any base the way Python's `int(x, 0)` does (`0x`, `0o`, `0b`, decimal).
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (digits, radix) = match t.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (&t[2..], 16),
        Some("0o") => (&t[2..], 8),
        Some("0b") => (&t[2..], 2),
        _ => (t.as_str(), 10),
    };
    u64::from_str_radix(digits, radix).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let v = parse_u64(s)?;
    u32::try_from(v).map_err(|_| format!("{s:?} does not fit 32 bits"))
}

fn parse_vmm(s: &str) -> Result<VmmType, String> {
    VmmType::from_name(s).ok_or_else(|| format!("{s:?}: expected qemu, ec2, gce or kvm"))
}

impl Args {
    fn signature(&self) -> Result<CpuSignature, String> {
        if let Some(name) = &self.vcpu_type {
            return CpuSignature::named(name).map_err(|e| format!("{name:?}: {e}"));
        }
        if let Some(sig) = self.vcpu_sig {
            return Ok(CpuSignature(sig));
        }
        if let (Some(f), Some(m), Some(s)) = (self.vcpu_family, self.vcpu_model, self.vcpu_stepping)
        {
            return CpuSignature::from_family_model_stepping(f, m, s).map_err(|e| e.to_string());
        }
        match self.vmm_type {
            VmmType::Qemu => Err("QEMU puts the vCPU signature in RDX: give --vcpu-type, \
                 --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping"
                .into()),
            // RDX is KVM's 0x600 for these; the signature is not used.
            _ => Ok(CpuSignature(0)),
        }
    }

    /// The launch configuration these arguments describe.
    pub fn config(&self) -> Result<LaunchConfig, String> {
        let mode = match self.mode {
            Mode::SevEs => SevMode::SevEs,
            Mode::Snp => SevMode::Snp,
        };
        let mut cfg = LaunchConfig::new(mode, self.vcpus, self.signature()?, self.vmm_type);
        if let Some(f) = self.guest_features {
            cfg.guest_features = SevFeatures::from_bits_retain(f);
        }
        cfg.kvm = KvmParams {
            host_cr4_mce: !self.no_host_mce,
            init: if self.legacy_init {
                VmInit::Legacy
            } else {
                VmInit::Init2
            },
            cd_nw_quirk: !self.no_cd_nw_quirk,
            ..KvmParams::default()
        };
        Ok(cfg)
    }
}

#[derive(Serialize)]
struct JsonPage {
    cpu_index: u32,
    gpa: u64,
    fields: Vec<JsonField>,
}

#[derive(Serialize)]
struct JsonField {
    name: &'static str,
    offset: usize,
    value: String,
}

/// Runs `vmsa reset`.
pub fn run(args: &Args) -> CmdResult {
    if let Some(igvm) = &args.igvm {
        return super::inspect_igvm::reset(args, igvm);
    }
    let cfg = args.config()?;
    let ovmf = args
        .ovmf
        .as_ref()
        .ok_or("give --ovmf FILE or --igvm FILE")?;
    let bytes = read_file(ovmf)?;
    let fw = OvmfImage::parse(&bytes).map_err(|e| format!("{}: {e}", ovmf.display()))?;
    let launch = launch_vmsas(&fw, &cfg).map_err(|e| format!("{}: {e}", ovmf.display()))?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (i, page) in launch.pages() {
            let path = dir.join(format!("vmsa{i}.bin"));
            std::fs::write(&path, page.as_page())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    if args.json {
        let pages: Vec<JsonPage> = launch
            .iter()
            .map(|l| JsonPage {
                cpu_index: l.cpu_index,
                gpa: l.gpa,
                fields: l
                    .vmsa
                    .nonzero_fields()
                    .map(|(f, v)| JsonField {
                        name: f.name,
                        offset: f.offset,
                        value: v.to_string(),
                    })
                    .collect(),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&pages).map_err(|e| e.to_string())?
        );
    } else if args.out.is_none() {
        for l in launch.iter().take(2) {
            let role = if l.cpu_index == 0 { "BSP" } else { "AP" };
            println!("vCPU {} ({role}), VMSA GPA {:#x}:", l.cpu_index, l.gpa);
            for (f, v) in l.vmsa.nonzero_fields() {
                println!("  {:#05x} {:<16} {v}", f.offset, f.name);
            }
        }
        if launch.len() > 2 {
            println!("vCPUs 2..{} are identical to vCPU 1", launch.len() - 1);
        }
    }
    Ok(ExitCode::SUCCESS)
}
