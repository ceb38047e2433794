//! `vmsa capture LOG -- LAUNCH`: the VMSAs the host kernel measured, from its log, against the
//! prediction for the launch given (`vmsa measure`'s arguments, or `--from-qemu`).
//!
//! KVM prints every VMSA it encrypts when its `sev_es_sync_vmsa` debug messages are enabled
//! (`echo 'func sev_es_sync_vmsa +p' > /sys/kernel/debug/dynamic_debug/control`): since Linux
//! 6.0 (commit 6fac42f127b8, "KVM: SVM: Dump Virtual Machine Save Area (VMSA) to klog", with
//! Peter Gonda's fix to `print_hex_dump_debug`) `arch/x86/kvm/svm/sev.c` does
//!
//! ```c
//! pr_debug("Virtual Machine Save Area (VMSA):\n");
//! print_hex_dump_debug("", DUMP_PREFIX_NONE, 16, 1, save, sizeof(*save), false);
//! ```
//!
//! one line of 16 space-separated hex bytes per row, no prefix and no ASCII column, for the
//! `struct sev_es_save_area` (0x670 bytes; the rest of the page is zero), vCPU by vCPU in the
//! order of `LAUNCH_UPDATE_VMSA` (SEV-ES) or `SNP_LAUNCH_FINISH` (SNP). `dmesg` adds a
//! `[seconds]` stamp, `journalctl -k` a date, host and `kernel:`; both are read past.
use super::CmdResult;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use vmsa_core::Vmsa;
use vmsa_core::vmsa::diff;

/// Arguments of `vmsa capture`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kernel log: `dmesg` or `journalctl -k` text, or a file holding it.
    pub log: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The launch whose VMSAs were predicted: `vmsa measure`'s arguments (`-- --mode snp
    /// --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.fd`).
    #[arg(last = true, value_name = "MEASURE ARGS", required = true)]
    pub launch: Vec<String>,
}

/// The header line KVM prints before each dump.
const HEADER: &str = "Virtual Machine Save Area (VMSA):";

/// The 16 (or fewer) hex bytes at the end of a log line, if the line is a dump row.
fn row(line: &str) -> Option<Vec<u8>> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let n = tokens
        .iter()
        .rev()
        .take_while(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .count();
    if n == 0 || n > 16 {
        return None;
    }
    tokens[tokens.len() - n..]
        .iter()
        .map(|t| u8::from_str_radix(t, 16).ok())
        .collect()
}

/// Every VMSA dump in `log`, in order: the rows after each header, up to the next line that
/// is not a row.
pub fn dumps(log: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in log.lines() {
        if line.contains(HEADER) {
            if let Some(d) = current.take() {
                out.push(d);
            }
            current = Some(Vec::new());
            continue;
        }
        match (&mut current, row(line)) {
            (Some(d), Some(bytes)) if d.len() < 4096 => d.extend(bytes),
            (Some(_), _) => {
                if let Some(d) = current.take() {
                    out.push(d);
                }
            }
            (None, _) => {}
        }
    }
    out.extend(current);
    out
}

/// What a differing field most likely means.
fn hint(name: &str, host: &Vmsa, ours: &Vmsa) -> Option<String> {
    Some(match name {
        "rdx" => format!(
            "the host used vCPU signature {:#x}, you measured with {:#x}",
            host.rdx, ours.rdx
        ),
        "sev_features" => format!(
            "the host's KVM set sev_features {:#x}, you measured {:#x} (KVM_SEV_INIT2's vmsa_features, e.g. debug_swap 0x20)",
            host.sev_features, ours.sev_features
        ),
        "mxcsr" | "x87_fcw" => {
            "the FPU state: KVM_SEV_INIT2 copies it into the VMSA, the legacy init does not".into()
        }
        "cs" | "rip" => {
            "the reset vector: another firmware image, or another VMM's AP reset state".into()
        }
        _ => return None,
    })
}

/// `vmsa capture`.
pub fn run(args: &Args) -> CmdResult {
    let bytes = super::files::read(&args.log, 64 << 20)?;
    let log = String::from_utf8_lossy(&bytes);
    let captured = dumps(&log);
    if captured.is_empty() {
        return Err(format!(
            "{}: no \"{HEADER}\" dump (enable KVM's: echo 'func sev_es_sync_vmsa +p' > /sys/kernel/debug/dynamic_debug/control)",
            args.log.display()
        ));
    }
    let m = super::measure::parse_launch(&args.launch)?;
    let predicted =
        super::measure::launch_vmsas(&m).map_err(|e| format!("the launch after --: {e}"))?;
    let mut differs = false;
    let mut report = Vec::new();
    for (cpu, dump) in captured.iter().enumerate() {
        let host = Vmsa::from_save_area(dump)
            .map_err(|e| format!("dump {cpu}: {} bytes: {e}", dump.len()))?;
        let Some(ours) = predicted.get(cpu) else {
            differs = true;
            report.push(json!({"vcpu": cpu, "equal": false, "note": format!("the launch has {} vCPUs; the host measured more", predicted.len())}));
            continue;
        };
        let fields: Vec<_> = diff(&host, ours)
            .map(|d| {
                json!({
                    "offset": d.field.offset,
                    "field": d.field.name,
                    "host": host.field(d.field).to_string(),
                    "predicted": ours.field(d.field).to_string(),
                    "hint": hint(d.field.name, &host, ours),
                })
            })
            .collect();
        differs |= !fields.is_empty();
        report.push(
            json!({"vcpu": cpu, "bytes": dump.len(), "equal": fields.is_empty(), "fields": fields}),
        );
    }
    if predicted.len() > captured.len() {
        differs = true;
        report.push(json!({"note": format!("the log holds {} VMSAs; the launch has {}", captured.len(), predicted.len())}));
    }
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"equal": !differs, "vcpus": report}))
                .map_err(|e| e.to_string())?
        );
    } else {
        for r in &report {
            match (r["vcpu"].as_u64(), r["equal"].as_bool()) {
                (Some(cpu), Some(true)) => {
                    crate::outln!("vCPU {cpu}: equal ({} bytes captured)", r["bytes"])
                }
                (Some(cpu), _) => {
                    for f in r["fields"].as_array().into_iter().flatten() {
                        crate::outln!(
                            "vCPU {cpu}: {:#05x} {} differs: host {}, predicted {}{}",
                            f["offset"].as_u64().unwrap_or(0),
                            f["field"].as_str().unwrap_or(""),
                            f["host"].as_str().unwrap_or(""),
                            f["predicted"].as_str().unwrap_or(""),
                            f["hint"]
                                .as_str()
                                .map_or(String::new(), |h| format!(": {h}"))
                        );
                    }
                    if let Some(n) = r["note"].as_str() {
                        crate::outln!("vCPU {cpu}: {n}");
                    }
                }
                (None, _) => crate::outln!("{}", r["note"].as_str().unwrap_or("")),
            }
        }
    }
    Ok(if differs {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_after_dmesg_and_journal_prefixes() {
        assert_eq!(
            row("[  12.345678] 00 10 ff 0a").unwrap(),
            [0, 0x10, 0xff, 0xa]
        );
        assert_eq!(row("Dec 03 07:00:01 host kernel: 01 02").unwrap(), [1, 2]);
        assert_eq!(
            row("[ 1.0] kvm_amd: Virtual Machine Save Area (VMSA):"),
            None
        );
        let log = "[1.0] kvm_amd: Virtual Machine Save Area (VMSA):\n[1.0] 01 02\n[1.0] 03\n[1.1] something else\n";
        assert_eq!(dumps(log), [vec![1, 2, 3]]);
    }
}
