//! `vmsa verify --report FILE --vcek CERT`: one verdict on an SNP attestation report, every
//! check listed with its result — the signature, AMD's chain, the certificate's TCB and chip
//! against the report, the certificates' validity, then what the caller expects of the guest:
//! its measurement, REPORT_DATA (a nonce), HOST_DATA, VMPL, and no debugging unless allowed.
//!
//! Exit codes, by the first class of check that fails: 0 all pass; 1 not authentic (the
//! signature, the chain, the key kind); 3 the platform (TCB, chip ID, product, validity);
//! 4 the measurement; 5 the other expectations (policy, VMPL, data); 2 bad input.
use super::CmdResult;
use super::files::{self, limits};
use super::report::parse_product;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;
use vmsa_attest::{Cert, Check, Options, verify};
use vmsa_core::report::{PolicyFlags, Product};

/// Arguments of `vmsa verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report (raw, hex or base64).
    #[arg(long)]
    pub report: PathBuf,
    /// The VCEK or VLEK certificate that signed it (DER or PEM), from AMD's key distribution
    /// service (`snpguest fetch vcek`) or the host's extended report.
    #[arg(long, visible_alias = "vlek")]
    pub vcek: PathBuf,
    /// AMD's chain as a PEM bundle (ASK or ASVK, then ARK: `…/vcek/v1/{product}/cert_chain`);
    /// by default the built-in certificates. A given ARK must be AMD's own.
    #[arg(long)]
    pub chain: Option<PathBuf>,
    /// The processor that signed a version 2 report (milan, genoa, turin).
    #[arg(long, value_parser = parse_product)]
    pub product: Option<Product>,
    /// The expected launch measurement (hex or base64), as `vmsa measure` prints it.
    #[arg(long)]
    pub measurement: Option<String>,
    /// The expected measurement from a file `vmsa measure --json` wrote (its "measurement").
    #[arg(long, conflicts_with = "measurement")]
    pub reference: Option<PathBuf>,
    /// The expected REPORT_DATA (hex or base64, up to 64 bytes, zero-padded): the nonce.
    #[arg(long)]
    pub report_data: Option<String>,
    /// The expected HOST_DATA (hex or base64, up to 32 bytes, zero-padded).
    #[arg(long)]
    pub host_data: Option<String>,
    /// The expected VMPL of the guest that asked for the report.
    #[arg(long)]
    pub vmpl: Option<u32>,
    /// Accept a guest whose policy allows debugging (its memory is readable by the host).
    #[arg(long)]
    pub allow_debug: bool,
    /// Accept a guest whose policy allows a migration agent.
    #[arg(long)]
    pub allow_migration_agent: bool,
    /// Require a policy that forbids SMT.
    #[arg(long)]
    pub no_smt: bool,
    /// Require a policy that asks for a single socket.
    #[arg(long)]
    pub single_socket: bool,
    /// Require the policy's minimum ABI version to be at least MAJOR.MINOR.
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub min_abi: Option<String>,
    /// The expected ID_KEY_DIGEST (hex or base64: `vmsa id-block` prints it).
    #[arg(long)]
    pub id_key_digest: Option<String>,
    /// The expected AUTHOR_KEY_DIGEST (hex or base64).
    #[arg(long)]
    pub author_key_digest: Option<String>,
    /// Do not check the certificates' validity periods (as `openssl verify -no_check_time`).
    #[arg(long)]
    pub no_check_time: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The launch the measurement must be, as `vmsa measure` takes it (`-- --mode snp --vcpus 4
    /// --vcpu-type EPYC-v4 --ovmf OVMF.fd`). When it differs, the launches near it are searched
    /// and the inputs that would explain the report named.
    #[arg(last = true, value_name = "MEASURE ARGS", conflicts_with_all = ["measurement", "reference"])]
    pub launch: Vec<String>,
}

/// Hex or base64 bytes, at most `max`, zero-padded to `max`.
fn expected_bytes(what: &str, text: &str, max: usize) -> Result<Vec<u8>, String> {
    super::args::hex_or_base64(&format!("--{what}"), text, max, true)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The class of a check, for the exit code.
fn class(name: &str) -> u8 {
    match name {
        "signing key kind" | "report signature" | "ARK is AMD's" | "ARK self-signed"
        | "ARK signs ASK" | "ASK signs key" => 1,
        "product" | "TCB" | "chip ID" | "validity" => 3,
        "measurement" => 4,
        _ => 5,
    }
}

/// `vmsa verify`.
pub fn run(args: &Args) -> CmdResult {
    let report = super::report::load(&args.report, args.product)?;
    let read_cert =
        |p: &PathBuf| -> Result<Vec<u8>, String> { files::read(p, limits::REPORT_TEXT * 4) };
    let key = Cert::parse(&read_cert(&args.vcek)?)
        .map_err(|e| format!("{}: {e}", args.vcek.display()))?;
    let chain = match &args.chain {
        Some(p) => Cert::bundle(&read_cert(p)?).map_err(|e| format!("{}: {e}", p.display()))?,
        None => Vec::new(),
    };
    let reference = match &args.reference {
        Some(p) => {
            let text = files::read(p, limits::REPORT_TEXT * 64)?;
            let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
                format!(
                    "{}: not the JSON `vmsa measure --json` writes: {e}",
                    p.display()
                )
            })?;
            let m = v["measurement"].as_str().ok_or_else(|| {
                format!(
                    "{}: no \"measurement\" (write it with `vmsa measure --json`)",
                    p.display()
                )
            })?;
            Some(m.to_string())
        }
        None => None,
    };
    let launch = match args.launch.is_empty() {
        true => None,
        false => {
            let m = super::measure::parse_launch(&args.launch)?;
            if m.mode.mode != vmsa_core::SevMode::Snp || m.mode.ovmf_hash {
                return Err("the launch after --: an SNP launch (--mode snp or snp:svsm)".into());
            }
            let d = super::measure::launch_digest(&m)
                .map_err(|e| format!("the launch after --: {e}"))?;
            Some((m, d))
        }
    };
    let expect_measurement = match &launch {
        Some((_, d)) => Some(d.clone()),
        None => args
            .measurement
            .as_deref()
            .or(reference.as_deref())
            .map(|m| expected_bytes("measurement", m, 48))
            .transpose()?,
    };
    let expect_report_data = args
        .report_data
        .as_deref()
        .map(|m| expected_bytes("report-data", m, 64))
        .transpose()?;
    let expect_host_data = args
        .host_data
        .as_deref()
        .map(|m| expected_bytes("host-data", m, 32))
        .transpose()?;
    let options = Options {
        now: (!args.no_check_time).then(SystemTime::now),
    };
    let mut verdict = verify(&report, &key, &chain, options);
    let raw = &report.raw;
    let mut push = |name: &'static str, result: Result<String, String>| {
        verdict.checks.push(Check { name, result });
    };
    let mut explained: Vec<String> = Vec::new();
    if let Some(m) = &expect_measurement {
        let ok = raw.measurement[..] == m[..];
        push(
            "measurement",
            if ok {
                Ok(match &launch {
                    Some(_) => format!("{}, the launch given", hex(m)),
                    None => hex(m),
                })
            } else {
                Err(format!(
                    "the report has {}, expected {}",
                    hex(&raw.measurement),
                    hex(m)
                ))
            },
        );
        // The launches near the one given: which input would explain the report.
        if let (false, Some((given, _))) = (ok, &launch) {
            explained = if given.mode.svsm {
                vec!["(no neighbourhood search for snp:svsm launches)".into()]
            } else {
                let sig = super::report::cpu_signature(&report);
                super::solve::near(given, raw.measurement, sig, 5)?
            };
            if explained.is_empty() {
                explained.push(
                    "no launch near the one given matches the report (vmsa solve searches wider)"
                        .into(),
                );
            }
        }
    }
    let debug = report.policy().flags().contains(PolicyFlags::DEBUG);
    push(
        "policy: debug",
        match (debug, args.allow_debug) {
            (false, _) => Ok("debugging not allowed".into()),
            (true, true) => Ok("debugging allowed, as accepted by --allow-debug".into()),
            (true, false) => {
                Err("the guest's policy allows debugging (--allow-debug accepts it)".into())
            }
        },
    );
    let flags = report.policy().flags();
    push(
        "policy: migration agent",
        match (
            flags.contains(PolicyFlags::MIGRATE_MA),
            args.allow_migration_agent,
        ) {
            (false, _) => Ok("not allowed".into()),
            (true, true) => Ok("allowed, as accepted by --allow-migration-agent".into()),
            (true, false) => Err(
                "the policy allows a migration agent (--allow-migration-agent accepts it)".into(),
            ),
        },
    );
    if args.no_smt {
        push(
            "policy: SMT",
            if flags.contains(PolicyFlags::SMT) {
                Err("the policy allows SMT".into())
            } else {
                Ok("not allowed".into())
            },
        );
    }
    if args.single_socket {
        push(
            "policy: single socket",
            if flags.contains(PolicyFlags::SINGLE_SOCKET) {
                Ok("required".into())
            } else {
                Err("the policy does not ask for a single socket".into())
            },
        );
    }
    if let Some(min) = &args.min_abi {
        let (major, minor) = min
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u8>().ok()?, b.parse::<u8>().ok()?)))
            .ok_or_else(|| format!("--min-abi {min:?}: MAJOR.MINOR"))?;
        let p = report.policy();
        let have = (p.abi_major(), p.abi_minor());
        push(
            "policy: ABI",
            if have >= (major, minor) {
                Ok(format!("{}.{} or later", have.0, have.1))
            } else {
                Err(format!(
                    "the policy accepts ABI {}.{}, below {major}.{minor}",
                    have.0, have.1
                ))
            },
        );
    }
    for (name, want, have) in [
        ("ID key digest", &args.id_key_digest, &raw.id_key_digest),
        (
            "author key digest",
            &args.author_key_digest,
            &raw.author_key_digest,
        ),
    ] {
        if let Some(w) = want {
            let w = expected_bytes(
                if name.starts_with("ID") {
                    "id-key-digest"
                } else {
                    "author-key-digest"
                },
                w,
                48,
            )?;
            push(
                name,
                if have[..] == w[..] {
                    Ok(hex(have))
                } else {
                    Err(format!("the report has {}", hex(have)))
                },
            );
        }
    }
    if let Some(d) = expect_report_data {
        push(
            "REPORT_DATA",
            if raw.report_data[..] == d[..] {
                Ok("as expected".into())
            } else {
                Err(format!("the report has {}", hex(&raw.report_data)))
            },
        );
    }
    if let Some(d) = expect_host_data {
        push(
            "HOST_DATA",
            if raw.host_data[..] == d[..] {
                Ok("as expected".into())
            } else {
                Err(format!("the report has {}", hex(&raw.host_data)))
            },
        );
    }
    if let Some(vmpl) = args.vmpl {
        push(
            "VMPL",
            if raw.vmpl == vmpl {
                Ok(vmpl.to_string())
            } else {
                Err(format!("the report has VMPL {}, expected {vmpl}", raw.vmpl))
            },
        );
    }
    let code = verdict
        .checks
        .iter()
        .filter(|c| c.result.is_err())
        .map(|c| class(c.name))
        .min()
        .unwrap_or(0);
    if args.json {
        let checks: Vec<_> = verdict
            .checks
            .iter()
            .map(|c| match &c.result {
                Ok(d) => json!({"check": c.name, "ok": true, "detail": d}),
                Err(d) => json!({"check": c.name, "ok": false, "detail": d}),
            })
            .collect();
        let out = json!({
            "verdict": if code == 0 { "pass" } else { "fail" },
            "exit_code": code,
            "measurement": hex(&raw.measurement),
            "product": report.product.name(),
            "checks": checks,
            "explanations": explained,
        });
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        for c in &verdict.checks {
            match &c.result {
                Ok(d) => crate::outln!("ok    {:<24} {d}", c.name),
                Err(d) => crate::outln!("FAIL  {:<24} {d}", c.name),
            }
        }
        for e in &explained {
            crate::outln!("      {e}");
        }
        let failed = verdict.checks.iter().filter(|c| c.result.is_err()).count();
        if code == 0 {
            crate::outln!("verdict: pass ({} checks)", verdict.checks.len());
        } else {
            crate::outln!(
                "verdict: FAIL ({failed} of {} checks failed)",
                verdict.checks.len()
            );
        }
    }
    Ok(ExitCode::from(code))
}
