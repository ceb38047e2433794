//! `vmsa profiles`: the VMM types and the versioned host profiles (`vmsa_core::host`), each
//! row with the commits that made it so.
use super::CmdResult;
use serde_json::{Value, json};
use std::process::ExitCode;
use vmsa_core::flags::SevFeatures;
use vmsa_core::host::{ApFpu, Change, Dump, KERNELS, LegacyDebugSwap, QEMUS};
use vmsa_core::reset::VmmType;

/// Arguments of `vmsa profiles`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What each VMM type programs (`--vmm-type`).
fn vmm_text(v: VmmType) -> &'static str {
    match v {
        VmmType::Qemu => {
            "QEMU: the x86 reset state (CS 0x9b, data 0x93, TR 0x8b, RDX the CPU signature, FCW 0x37f, MXCSR 0x1f80) through KVM"
        }
        VmmType::Ec2 => {
            "Amazon EC2: CS 0x9a on the BSP and 0x9b on APs, SS 0x92, TR 0x83, RDX 0x600, no FPU state"
        }
        VmmType::Gce => {
            "Google Compute Engine: QEMU's segments, RDX 0x600, no FPU state, guest PAT 0x00070106"
        }
        VmmType::Kvm => {
            "KVM's own reset values (CS 0x9a, data 0x92, TR 0x83, RDX 0x600): a VMM that programs nothing"
        }
        VmmType::Krun => {
            "libkrun ≤ 1.15: CS 0x9a, SS 0x92, data 0x93, TR 0x83, RDX 0, the BSP's RSP/RBP 0x8ff0 and RSI 0x7000, FCW 0x37f, MXCSR 0x1f80 (a whole libkrun launch: --krun-qboot)"
        }
    }
}

fn features(f: SevFeatures) -> String {
    format!("{:#x}", f.bits())
}

fn legacy_text(l: LegacyDebugSwap) -> &'static str {
    match l {
        LegacyDebugSwap::Never => "0",
        LegacyDebugSwap::OnCapableHosts => "0x20 on Zen 4 and later hosts, else 0",
        LegacyDebugSwap::ParamOff => "0 (0x20 with kvm_amd.debug_swap=1)",
    }
}

fn dump_text(d: Dump) -> &'static str {
    match d {
        Dump::None => "none",
        Dump::Always => "always",
        Dump::Debug => "dynamic debug",
    }
}

fn ap_text(a: ApFpu) -> &'static str {
    match a {
        ApFpu::Reset => "FCW 0x37f, MXCSR 0x1f80",
        ApFpu::Zero => "FCW 0, MXCSR 0 (the BSP 0x37f, 0x1f80)",
    }
}

fn changes_json(c: &[Change]) -> Value {
    c.iter()
        .map(|c| json!({"commit": c.commit, "subject": c.subject, "effect": c.effect}))
        .collect()
}

fn changes_text(c: &[Change]) {
    for c in c {
        crate::outln!("      {} {}", c.commit, c.subject);
        crate::outln!("        {}", c.effect);
    }
}

/// Runs `vmsa profiles`.
pub fn run(args: &Args) -> CmdResult {
    if args.json {
        let out = json!({
            "vmm_types": VmmType::ALL.iter().map(|v| json!({"name": v.name(), "what": vmm_text(*v)})).collect::<Vec<_>>(),
            "kernels": KERNELS.iter().map(|k| json!({
                "from": k.from.to_string(),
                "legacy_es_init_sev_features": legacy_text(k.legacy_debug_swap),
                "init2": k.init2,
                "snp": k.snp,
                "offers": features(k.offers),
                "vmsa_dump": dump_text(k.dump),
                "changes": changes_json(k.changes),
            })).collect::<Vec<_>>(),
            "qemus": QEMUS.iter().map(|q| json!({
                "from": q.from.to_string(),
                "snp": q.snp,
                "init2_on_request": q.init2_on_request,
                "igvm": q.igvm,
                "ap_fpu": ap_text(q.ap_fpu),
                "kernel_hashes_reproducible": q.kernel_hashes_reproducible,
                "changes": changes_json(q.changes),
            })).collect::<Vec<_>>(),
        });
        crate::outln!(
            "{}",
            super::output::to_json(&out).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!("VMM types (--vmm-type)");
    for v in VmmType::ALL {
        crate::outln!("  {:<5} {}", v.name(), vmm_text(v));
    }
    crate::outln!();
    crate::outln!(
        "Linux KVM (--host-kernel VERSION): each row holds until the next; SNP VMSAs always at 0xfffffffff000, in vCPU order"
    );
    for k in KERNELS {
        crate::outln!(
            "  {:<5} legacy KVM_SEV_ES_INIT sev_features {}; KVM_SEV_INIT2 {}{}; SNP {}; VMSA dump {}",
            k.from.to_string(),
            legacy_text(k.legacy_debug_swap),
            if k.init2 {
                "yes (the FPU state in its VMSAs)"
            } else {
                "no"
            },
            if k.init2 {
                format!(", offers {}", features(k.offers))
            } else {
                String::new()
            },
            if k.snp { "yes" } else { "no" },
            dump_text(k.dump),
        );
        changes_text(k.changes);
    }
    crate::outln!();
    crate::outln!(
        "QEMU (--qemu VERSION): each row holds until the next; VMSA features asked of KVM: none (but an IGVM file's)"
    );
    for q in QEMUS {
        crate::outln!(
            "  {:<5} sev-snp-guest {}; SEV-ES by KVM_SEV_INIT2 {}; IGVM {}; APs {}; kernel hashes reproducible {}",
            q.from.to_string(),
            if q.snp { "yes (KVM_SEV_INIT2)" } else { "no" },
            if q.init2_on_request {
                "with legacy-vm-type=off (default auto: legacy)"
            } else {
                "no"
            },
            if q.igvm { "yes" } else { "no" },
            ap_text(q.ap_fpu),
            if q.kernel_hashes_reproducible {
                "yes"
            } else {
                "not with a pc-*-7.2 machine"
            },
        );
        changes_text(q.changes);
    }
    Ok(ExitCode::SUCCESS)
}
