//! An SNP attestation report for people and programs: the bytes of a report file however it was
//! written (raw, hex or base64), every field as JSON or as text with its offset, and the CPU
//! signature the report's CPUID fields give. Shared by `vmsa report` and the browser page.
use base64::Engine;
use serde_json::{Value, json};
use vmsa_core::report::{GuestPolicy, PolicyFlags, REPORT_LEN, Report, SigningKey, TcbVersion};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// How a report file was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The 1184 bytes.
    Raw,
    /// Hexadecimal text.
    Hex,
    /// Base64 text.
    Base64,
}

/// The report bytes of a file's contents, and how they were written: raw when the file has
/// exactly 1184 bytes; otherwise text, hex if it has only hex digits (whitespace ignored), else
/// base64.
pub fn decode_input(bytes: &[u8]) -> Result<(Vec<u8>, Encoding), String> {
    if bytes.len() == REPORT_LEN {
        return Ok((bytes.to_vec(), Encoding::Raw));
    }
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() || !text.is_ascii() {
        return Err(format!(
            "not a report: {} bytes, neither the {REPORT_LEN} raw bytes nor hex or base64 text",
            bytes.len()
        ));
    }
    let (out, encoding) = if text.iter().all(u8::is_ascii_hexdigit) {
        if !text.len().is_multiple_of(2) {
            return Err(format!("hex text of odd length ({} digits)", text.len()));
        }
        let out = text
            .chunks_exact(2)
            .map(|p| {
                let s = std::str::from_utf8(p).unwrap_or("");
                u8::from_str_radix(s, 16).unwrap_or(0)
            })
            .collect::<Vec<u8>>();
        (out, Encoding::Hex)
    } else {
        let out = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| format!("not a report: neither raw, hex nor base64 ({e})"))?;
        (out, Encoding::Base64)
    };
    if out.len() != REPORT_LEN {
        return Err(format!(
            "the {} text holds {} bytes; a report has {REPORT_LEN}",
            if encoding == Encoding::Hex {
                "hex"
            } else {
                "base64"
            },
            out.len()
        ));
    }
    Ok((out, encoding))
}

fn policy_flags(p: GuestPolicy) -> Vec<&'static str> {
    p.flags().iter_names().map(|(n, _)| n).collect()
}

fn tcb_json(t: &TcbVersion) -> Value {
    json!({
        "fmc": t.fmc, "bootloader": t.bootloader, "tee": t.tee, "snp": t.snp,
        "microcode": t.microcode,
    })
}

fn signing_key_name(k: SigningKey) -> &'static str {
    match k {
        SigningKey::Vcek => "VCEK",
        SigningKey::Vlek => "VLEK",
        SigningKey::None => "none",
    }
}

/// The report as JSON: every field, raw and decoded.
pub fn to_json(r: &Report) -> Value {
    let x = &r.raw;
    let policy = r.policy();
    json!({
        "version": x.version,
        "guest_svn": x.guest_svn,
        "policy": {
            "raw": format!("{:#x}", x.policy),
            "abi_major": policy.abi_major(),
            "abi_minor": policy.abi_minor(),
            "flags": policy_flags(policy),
            "unknown_bits": format!("{:#x}", policy.unknown_bits()),
        },
        "family_id": hex(&x.family_id),
        "image_id": hex(&x.image_id),
        "vmpl": x.vmpl,
        "signature_algo": x.signature_algo,
        "current_tcb": tcb_json(&r.current_tcb),
        "platform_info": {
            "raw": format!("{:#x}", x.platform_info),
            "flags": r.platform_info().iter_names().map(|(n, _)| n).collect::<Vec<_>>(),
            "unknown_bits": format!("{:#x}", x.platform_info & !vmsa_core::report::PlatformInfo::all().bits()),
        },
        "key_info": {
            "raw": format!("{:#x}", x.key_info),
            "author_key_en": r.key_info.author_key_en,
            "mask_chip_key": r.key_info.mask_chip_key,
            "signing_key": signing_key_name(r.key_info.signing_key),
        },
        "report_data": hex(&x.report_data),
        "measurement": hex(&x.measurement),
        "measurement_base64": base64(&x.measurement),
        "host_data": hex(&x.host_data),
        "id_key_digest": hex(&x.id_key_digest),
        "author_key_digest": hex(&x.author_key_digest),
        "report_id": hex(&x.report_id),
        "report_id_ma": hex(&x.report_id_ma),
        "reported_tcb": tcb_json(&r.reported_tcb),
        "cpuid": if x.version >= 3 {
            json!({"family": x.cpuid_fam_id, "model": x.cpuid_mod_id, "stepping": x.cpuid_step})
        } else {
            Value::Null
        },
        "product": r.product.name(),
        "product_from": if r.product_from_cpuid { "report" } else { "--product" },
        "chip_id": hex(&x.chip_id),
        "committed_tcb": tcb_json(&r.committed_tcb),
        "current_version": r.current_version().to_string(),
        "committed_version": r.committed_version().to_string(),
        "launch_tcb": tcb_json(&r.launch_tcb),
        "launch_mit_vector": (x.version >= 5).then(|| format!("{:#x}", x.launch_mit_vector)),
        "current_mit_vector": (x.version >= 5).then(|| format!("{:#x}", x.current_mit_vector)),
        "signature_r": hex(&x.signature_r[..48]),
        "signature_s": hex(&x.signature_s[..48]),
    })
}

/// The report as text, one field a line with its offset.
pub fn to_text(r: &Report) -> String {
    let x = &r.raw;
    let p = r.policy();
    let mut flags = policy_flags(p).join(" ");
    if p.unknown_bits() != 0 {
        flags.push_str(&format!(" unknown {:#x}", p.unknown_bits()));
    }
    if !p.flags().contains(PolicyFlags::RESERVED_1) {
        flags.push_str(" (bit 17, which must be 1, is 0)");
    }
    let mut platform: Vec<String> = r
        .platform_info()
        .iter_names()
        .map(|(n, _)| n.to_string())
        .collect();
    let unknown = x.platform_info & !vmsa_core::report::PlatformInfo::all().bits();
    if unknown != 0 {
        // Turin sets bit 6, which the ABI revisions the peers follow call reserved.
        platform.push(format!("unknown {unknown:#x}"));
    }
    let product = format!(
        "{}{}",
        r.product,
        if r.product_from_cpuid {
            ""
        } else {
            " (as named: the report does not say)"
        }
    );
    let cpuid = if x.version >= 3 {
        format!(
            "family {:#x} model {:#x} stepping {:#x}: {product}",
            x.cpuid_fam_id, x.cpuid_mod_id, x.cpuid_step
        )
    } else {
        format!("not in a version {} report; {product}", x.version)
    };
    let mut lines = vec![
        format!("SEV-SNP attestation report, version {}", x.version),
        format!("0x000 version            {}", x.version),
        format!("0x004 guest_svn          {}", x.guest_svn),
        format!(
            "0x008 policy             {:#x}: ABI {}.{} or later, {}",
            x.policy,
            p.abi_major(),
            p.abi_minor(),
            if flags.is_empty() {
                "no flags".into()
            } else {
                flags
            }
        ),
        format!("0x010 family_id          {}", hex(&x.family_id)),
        format!("0x020 image_id           {}", hex(&x.image_id)),
        format!("0x030 vmpl               {}", x.vmpl),
        format!(
            "0x034 signature_algo     {}{}",
            x.signature_algo,
            if x.signature_algo == 1 {
                " (ECDSA P-384 with SHA-384)"
            } else {
                " (unknown)"
            }
        ),
        format!("0x038 current_tcb        {}", r.current_tcb),
        format!(
            "0x040 platform_info      {:#x}: {}",
            x.platform_info,
            if platform.is_empty() {
                "none".into()
            } else {
                platform.join(" ")
            }
        ),
        format!(
            "0x048 key_info           {:#x}: signed by {}{}{}",
            x.key_info,
            signing_key_name(r.key_info.signing_key),
            if r.key_info.author_key_en {
                ", author key"
            } else {
                ""
            },
            if r.key_info.mask_chip_key {
                ", chip ID masked"
            } else {
                ""
            }
        ),
        format!("0x050 report_data        {}", hex(&x.report_data)),
        format!("0x090 measurement        {}", hex(&x.measurement)),
        format!("0x0c0 host_data          {}", hex(&x.host_data)),
        format!("0x0e0 id_key_digest      {}", hex(&x.id_key_digest)),
        format!("0x110 author_key_digest  {}", hex(&x.author_key_digest)),
        format!("0x140 report_id          {}", hex(&x.report_id)),
        format!("0x160 report_id_ma       {}", hex(&x.report_id_ma)),
        format!("0x180 reported_tcb       {}", r.reported_tcb),
        format!("0x188 cpuid              {cpuid}"),
        format!("0x1a0 chip_id            {}", hex(&x.chip_id)),
        format!("0x1e0 committed_tcb      {}", r.committed_tcb),
        format!("0x1e8 current_version    {}", r.current_version()),
        format!("0x1ec committed_version  {}", r.committed_version()),
        format!("0x1f0 launch_tcb         {}", r.launch_tcb),
    ];
    if x.version >= 5 {
        lines.push(format!(
            "0x1f8 launch_mit_vector  {:#x}",
            x.launch_mit_vector
        ));
        lines.push(format!(
            "0x200 current_mit_vector {:#x}",
            x.current_mit_vector
        ));
    }
    lines.push(format!(
        "0x2a0 signature_r        {}",
        hex(&x.signature_r[..48])
    ));
    lines.push(format!(
        "0x2e8 signature_s        {}",
        hex(&x.signature_s[..48])
    ));
    lines.join("\n")
}

/// The CPU signature of a report with CPUID fields (version 3 and later): what the guest's
/// vCPUs were told, a value `vmsa solve` tries.
pub fn cpu_signature(report: &vmsa_core::report::Report) -> Option<vmsa_core::CpuSignature> {
    let r = &report.raw;
    (r.version >= 3)
        .then(|| {
            vmsa_core::CpuSignature::from_family_model_stepping(
                u32::from(r.cpuid_fam_id),
                u32::from(r.cpuid_mod_id),
                u32::from(r.cpuid_step),
            )
            .ok()
        })
        .flatten()
}
