//! `vmsa reset`: the launch VMSAs of an SEV-ES/SNP guest, booted from OVMF (`--ovmf`, the same
//! pages as `sev-snp-measure --dump-vmsa`) or from an IGVM file (`--igvm`: its VP contexts,
//! the reset state for the other vCPUs), shown or written as `vmsa0.bin`…
use super::CmdResult;
use super::args::{CpuArgs, HostArgs, ProfileArgs, parse_int, parse_mode, parse_vmm};
use super::files::{self, FirmwareFile, limits};
use super::output::{Existing, to_json, vmsa_fields, write_pages};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vmsa_core::flags::SevFeatures;
use vmsa_core::igvm::{IgvmFile, PlatformChoice};
use vmsa_core::launch::{
    self, Firmware, Launch, LaunchConfig, LaunchVmsa, MAX_FIRMWARE_SIZE, VmsaSource,
};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};

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
    #[arg(long, conflicts_with = "ovmf")]
    pub platform: Option<String>,
    /// With --igvm: refuse VP contexts KVM would not reproduce exactly.
    #[arg(long, conflicts_with = "ovmf")]
    pub strict: bool,
    /// Number of vCPUs.
    #[arg(long)]
    pub vcpus: u32,
    /// SEV-ES (`sev-es`, `seves`) or SNP, for --ovmf (an IGVM platform decides its own).
    #[arg(long, default_value = "snp", value_parser = parse_mode, conflicts_with = "igvm")]
    pub mode: SevMode,
    /// The vCPU signature.
    #[command(flatten)]
    pub cpu: CpuArgs,
    /// The VMM: qemu, ec2, gce, kvm (KVM's own reset values) or krun (libkrun).
    #[arg(long, default_value = "qemu", value_parser = parse_vmm)]
    pub vmm_type: VmmType,
    /// `sev_features` of every VMSA (default 0x1 for SNP, 0 for SEV-ES).
    #[arg(long, value_parser = parse_int)]
    pub guest_features: Option<u64>,
    /// The KVM host.
    #[command(flatten)]
    pub host: HostArgs,
    /// The host's Linux and QEMU versions.
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Directory to write vmsa0.bin … vmsa{N-1}.bin into (all or nothing; refused if it holds
    /// vmsaN.bin files from an earlier run, unless --replace).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --out: replace the vmsaN.bin files an earlier run left there.
    #[arg(long, requires = "out")]
    pub replace: bool,
    /// Print the decoded pages as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// What `--out` does with an earlier run's pages.
    fn existing(&self) -> Existing {
        if self.replace {
            Existing::Replace
        } else {
            Existing::Refuse
        }
    }

    /// The launch configuration these arguments describe, with `signature`.
    fn config(
        &self,
        mode: SevMode,
        signature: CpuSignature,
        igvm: bool,
    ) -> Result<LaunchConfig, String> {
        let mut cfg = LaunchConfig::new(mode, self.vcpus, signature, self.vmm_type);
        if let Some(f) = self.guest_features {
            cfg.guest_features = SevFeatures::from_bits_retain(f);
        }
        cfg.kvm = self.host.kvm();
        self.profile.apply(&mut cfg, self.guest_features, igvm)?;
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
        return reset_igvm(args, igvm);
    }
    if args.mode == SevMode::Sev {
        return Err("plain SEV has no VMSAs: give --mode sev-es or snp".into());
    }
    let cfg = args.config(args.mode, args.cpu.signature_for(args.vmm_type)?, false)?;
    let ovmf = args
        .ovmf
        .as_ref()
        .ok_or("give --ovmf FILE or --igvm FILE")?;
    let image = FirmwareFile::open(ovmf, MAX_FIRMWARE_SIZE)?;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", ovmf.display());
    let fw = Firmware::Ovmf(OvmfImage::parse(image.bytes()).map_err(|e| at(&e))?);
    let launch = Launch::new(&fw, &cfg).map_err(|e| at(&e))?;
    let vmsas = launch
        .vmsas()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(&e))?;
    if let Some(dir) = &args.out {
        write_pages(
            dir,
            vmsas.iter().map(|v| (v.cpu_index, &v.vmsa)),
            args.existing(),
        )?;
    }
    if args.json {
        let pages: Vec<JsonPage> = vmsas
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
        crate::outln!("{}", to_json(&pages)?);
    } else if args.out.is_none() {
        for l in vmsas.iter().take(2) {
            let role = if l.cpu_index == 0 { "BSP" } else { "AP" };
            crate::outln!("vCPU {} ({role}), VMSA GPA {:#x}:", l.cpu_index, l.gpa);
            for (f, v) in l.vmsa.nonzero_fields() {
                crate::outln!("  {:#05x} {:<16} {v}", f.offset, f.name);
            }
        }
        if vmsas.len() > 2 {
            crate::outln!("vCPUs 2..{} are identical to vCPU 1", vmsas.len() - 1);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vmsa reset --igvm FILE`: the launch VMSAs of every vCPU, from the file's VP contexts and
/// the reset state; reports replaced contexts and what KVM would not reproduce.
fn reset_igvm(args: &Args, path: &Path) -> CmdResult {
    let bytes = files::read(path, limits::IGVM)?;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = IgvmFile::parse(&bytes).map_err(|e| at(&e))?;
    let choice = PlatformChoice::from_name(args.platform.as_deref()).ok_or_else(|| {
        let name = args.platform.as_deref().unwrap_or_default();
        format!("{name:?}: expected snp, sev-es, sev or native")
    })?;
    let platform = file.select(choice).map_err(|e| at(&e))?;
    let mode = launch::platform_mode(&platform).unwrap_or(SevMode::Snp);
    // The signature goes only into the reset state of vCPUs without a VP context.
    let given = args.cpu.signature()?;
    let cfg = args.config(mode, given.unwrap_or(CpuSignature(0)), true)?;
    let fw = Firmware::Igvm { file, platform };
    let launch = Launch::new(&fw, &cfg).map_err(|e| at(&e))?;
    if launch.vcpus() == 0 {
        return Err(at(&"the selected platform (plain SEV) has no VMSAs"));
    }
    let entries: Vec<LaunchVmsa> = launch
        .vmsas()
        .collect::<Result<_, _>>()
        .map_err(|e| at(&e))?;
    if given.is_none() && args.vmm_type == VmmType::Qemu {
        if let Some(e) = entries.iter().find(|e| e.source == VmsaSource::Reset) {
            return Err(format!(
                "vCPU {} has no VP context, and QEMU puts the vCPU signature in RDX of its reset state: give --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping",
                e.cpu_index
            ));
        }
    }
    let mut findings = 0usize;
    for e in &entries {
        match e.source {
            VmsaSource::Reset => crate::errln!("vCPU {}: no VP context, reset state", e.cpu_index),
            VmsaSource::Context {
                at,
                replaced,
                first,
            } => {
                crate::errln!("vCPU {}: VP context {at}, gpa {:#x}", e.cpu_index, e.gpa);
                if let Some(first) = first {
                    crate::errln!(
                        "  replaces {replaced} earlier context(s), the first {first} (the later one wins, as in QEMU)"
                    );
                }
                let f = launch.fidelity(e);
                for r in f.refusals() {
                    crate::errln!("  KVM/QEMU refuse: {r}");
                    findings += 1;
                }
                for c in f.findings() {
                    crate::errln!("  not reproduced: {c}");
                    findings += 1;
                }
            }
        }
    }
    if args.strict {
        launch.check_strict().map_err(|e| at(&e))?;
    }
    if let Some(dir) = &args.out {
        write_pages(
            dir,
            entries.iter().map(|e| (e.cpu_index, &e.vmsa)),
            args.existing(),
        )?;
    }
    if args.json {
        let pages: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "cpu_index": e.cpu_index,
                    "gpa": e.gpa,
                    "source": e.source,
                    "fields": vmsa_fields(&e.vmsa),
                })
            })
            .collect();
        crate::outln!("{}", to_json(&pages)?);
    } else if args.out.is_none() {
        for e in &entries {
            crate::outln!(
                "vCPU {} ({:?}), VMSA GPA {:#x}:",
                e.cpu_index,
                e.source,
                e.gpa
            );
            for (k, v) in vmsa_fields(&e.vmsa) {
                crate::outln!("  {k:<22} {v}");
            }
        }
    }
    if findings > 0 {
        crate::errln!(
            "{findings} fidelity finding(s): KVM would not launch these VMSAs exactly (--strict refuses)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
