//! `vmsa-wasm`: vmsa-core in the browser, for the preview page in `wasm/web/`.
//!
//! A thin boundary: every function here calls `vmsa-core` and turns its answer into JSON (with
//! the core's own `serde` derives and `Display` texts) and its errors into messages (the core
//! error's `Display`, which names what is wrong and where). Built with wasm-bindgen, the
//! ecosystem's convention, by `wasm/build.sh` (Debian's rustc-web, `-Zbuild-std`).
//!
//! The same functions run natively, which is how the tests check them:
//!
//! ```
//! let page = [0u8; 4096];
//! assert_eq!(vmsa_wasm::detect(&page), "vmsa");
//! assert_eq!(vmsa_wasm::inspect_vmsa(&page).unwrap(), r#"{"fields":[]}"#);
//! assert_eq!(
//!     vmsa_wasm::inspect_vmsa(&page[..100]).unwrap_err().to_string(),
//!     "a VMSA is a 4096-byte page (or QEMU's 1648-byte save area), but the input has 100 bytes"
//! );
//! ```
use serde::Serialize;
use vmsa_core::cpu::CPU_TYPES;
use vmsa_core::flags::SevFeatures;
use vmsa_core::hex::Hex;
use vmsa_core::igvm::{IgvmFile, PlatformChoice, header_type_name};
use vmsa_core::kvm::Fidelity;
use vmsa_core::launch::{self, Firmware, LaunchConfig, mode_platform};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::ovmf::{OvmfImage, Section};
use vmsa_core::reset::VmmType;
use vmsa_core::vmsa::{Field, FieldKind, FieldValue};
use vmsa_core::{CpuSignature, SevMode, Vmsa};
use wasm_bindgen::prelude::*;

/// An error at the boundary: a message for the page. On wasm it is thrown as a JS `Error`
/// (`JsError`); natively (tests, docs) it is the message itself.
#[cfg(target_arch = "wasm32")]
pub type Error = JsError;
/// An error at the boundary: a message for the page.
#[cfg(not(target_arch = "wasm32"))]
pub type Error = String;

fn message(e: impl core::fmt::Display) -> Error {
    #[cfg(target_arch = "wasm32")]
    return JsError::new(&e.to_string());
    #[cfg(not(target_arch = "wasm32"))]
    return e.to_string();
}

fn json(value: &impl Serialize) -> String {
    // Plain data (strings, integers, vectors) always serializes.
    serde_json::to_string(value).unwrap_or_default()
}

/// The crate version, for the page footer.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// The choices the page offers, from the core's tables: CPU types (`cpu::CPU_TYPES`) and
/// VMM profiles (`reset::VmmType::ALL`).
#[wasm_bindgen]
pub fn catalog() -> String {
    #[derive(Serialize)]
    struct Catalog {
        cpu_types: Vec<&'static str>,
        default_cpu_type: &'static str,
        vmm_profiles: Vec<&'static str>,
        default_vmm_profile: &'static str,
    }
    json(&Catalog {
        cpu_types: CPU_TYPES.iter().map(|c| c.name).collect(),
        default_cpu_type: "EPYC-v4",
        vmm_profiles: VmmType::ALL.iter().map(|v| v.name()).collect(),
        default_vmm_profile: VmmType::Qemu.name(),
    })
}

/// What a file is, by content: `"igvm"` (the IGVM magic), `"ovmf"` (the GUIDed footer table)
/// or `"vmsa"` (anything else, which [`inspect_vmsa`] then accepts or refuses with a reason).
/// The same checks as `vmsa inspect`.
#[wasm_bindgen]
pub fn detect(bytes: &[u8]) -> String {
    vmsa_core::FileKind::detect(bytes).name().into()
}

/// One field as the page shows it: the core's [`Field`] and its `Display` text.
#[derive(Serialize)]
struct FieldView {
    name: &'static str,
    offset: usize,
    size: usize,
    kind: FieldKind,
    decoded: String,
}

impl FieldView {
    fn new(field: &'static Field, value: FieldValue<'_>) -> Self {
        Self {
            name: field.name,
            offset: field.offset,
            size: field.size,
            kind: field.kind,
            decoded: value.to_string(),
        }
    }
}

/// A VMSA page as the page shows it: its non-zero fields, decoded.
#[derive(Serialize)]
struct VmsaView {
    fields: Vec<FieldView>,
}

impl From<&Vmsa> for VmsaView {
    fn from(vmsa: &Vmsa) -> Self {
        Self {
            fields: vmsa
                .nonzero_fields()
                .map(|(f, v)| FieldView::new(f, v))
                .collect(),
        }
    }
}

/// The non-zero fields of a 4096-byte VMSA page, as JSON `{"fields":[{name, offset, size,
/// kind, decoded}]}`.
#[wasm_bindgen(js_name = inspectVmsa)]
pub fn inspect_vmsa(bytes: &[u8]) -> Result<String, Error> {
    let vmsa = Vmsa::from_save_area(bytes).map_err(message)?;
    Ok(json(&VmsaView::from(&vmsa)))
}

/// One differing field of [`diff_vmsa`].
#[derive(Serialize)]
struct DiffView {
    name: &'static str,
    offset: usize,
    size: usize,
    left: String,
    right: String,
}

/// The fields that differ between two VMSA pages ([`vmsa_core::vmsa::diff`]), as a JSON array
/// of `{name, offset, size, left, right}` in offset order; empty when the pages are equal.
#[wasm_bindgen(js_name = diffVmsa)]
pub fn diff_vmsa(left: &[u8], right: &[u8]) -> Result<String, Error> {
    let l = Vmsa::from_save_area(left).map_err(|e| message(format_args!("first VMSA: {e}")))?;
    let r = Vmsa::from_save_area(right).map_err(|e| message(format_args!("second VMSA: {e}")))?;
    let diffs: Vec<DiffView> = vmsa_core::vmsa::diff(&l, &r)
        .map(|d| DiffView {
            name: d.field.name,
            offset: d.field.offset,
            size: d.field.size,
            left: d.left.to_string(),
            right: d.right.to_string(),
        })
        .collect();
    Ok(json(&diffs))
}

/// The firmware view of an OVMF image or an IGVM file, as JSON:
/// - OVMF: `{kind:"ovmf", size, entries:[{index, offset, guid, name, data}], sections:[{gpa,
///   size, type}] | null}` (footer table nearest the footer first; `data` in hex);
/// - IGVM: `{kind:"igvm", size, headers:[{index, offset, type, mask}]}`.
#[wasm_bindgen(js_name = inspectFirmware)]
pub fn inspect_firmware(bytes: &[u8]) -> Result<String, Error> {
    #[derive(Serialize)]
    struct EntryView {
        index: usize,
        offset: usize,
        guid: String,
        name: &'static str,
        value: String,
        data: String,
    }
    #[derive(Serialize)]
    struct SectionView {
        gpa: u32,
        size: u32,
        #[serde(rename = "type")]
        section_type: String,
    }
    #[derive(Serialize)]
    struct HeaderView {
        index: u32,
        offset: u32,
        #[serde(rename = "type")]
        type_name: String,
        mask: Option<u32>,
    }
    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum View {
        Ovmf {
            size: usize,
            entries: Vec<EntryView>,
            sections: Option<Vec<SectionView>>,
        },
        Igvm {
            size: usize,
            headers: Vec<HeaderView>,
        },
    }
    let section = |s: Section| SectionView {
        gpa: s.gpa,
        size: s.size,
        section_type: s.section_type.to_string(),
    };
    let view = if detect(bytes) == "igvm" {
        let file = IgvmFile::parse(bytes).map_err(message)?;
        View::Igvm {
            size: bytes.len(),
            headers: file
                .headers()
                .map(|e| HeaderView {
                    index: e.at.index,
                    offset: e.at.offset,
                    type_name: match header_type_name(e.header.typ()) {
                        Some(name) => name.into(),
                        None => format!("{:#x}", e.header.typ().0),
                    },
                    mask: e.header.compatibility_mask(),
                })
                .collect(),
        }
    } else {
        let fw = OvmfImage::parse(bytes).map_err(message)?;
        View::Ovmf {
            size: bytes.len(),
            entries: fw
                .entries()
                .map(|e| EntryView {
                    index: e.index,
                    offset: e.offset,
                    guid: e.entry.guid().to_string(),
                    name: e.entry.name(),
                    value: e.entry.value().to_string(),
                    data: Hex(e.data).to_string(),
                })
                .collect(),
            sections: fw
                .sev_metadata()
                .map(|m| m.sections().map(section).collect()),
        }
    };
    Ok(json(&view))
}

/// A guest launched from an OVMF image or an IGVM file: its VMSAs, their KVM fidelity
/// findings and the launch digest, as `vmsa measure` computes them (the core's
/// [`vmsa_core::launch::Launch`]).
#[wasm_bindgen]
pub struct Launch {
    mode: &'static str,
    digest: String,
    vmsas: Vec<Vmsa>,
    findings: Vec<Finding>,
}

/// One KVM fidelity finding: a refusal or a field KVM would not reproduce
/// ([`vmsa_core::kvm::check_vmsa`]).
#[derive(Serialize)]
struct Finding {
    cpu: u32,
    severity: &'static str,
    message: String,
}

fn findings(cpu: u32, fidelity: &Fidelity<'_>, out: &mut Vec<Finding>) {
    for r in fidelity.refusals() {
        out.push(Finding {
            cpu,
            severity: "error",
            message: format!("vCPU {cpu}: KVM/QEMU refuse it: {r}"),
        });
    }
    for c in fidelity.findings() {
        out.push(Finding {
            cpu,
            severity: "warning",
            message: format!("vCPU {cpu}: not reproduced: {c}"),
        });
    }
}

#[wasm_bindgen]
impl Launch {
    /// Launches `bytes` (an OVMF image or an IGVM file) in `mode` (`sev`, `sev-es`, `snp`) with
    /// `vcpus` vCPUs of CPU type `cpu` (a `cpu::CPU_TYPES` name), VMM profile `vmm`
    /// (`qemu`, `ec2`, `gce`, `kvm`) and SNP guest features `guest_features` (ignored for
    /// SEV-ES and SEV, as in `vmsa measure`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        bytes: &[u8],
        mode: &str,
        vcpus: u32,
        cpu: &str,
        vmm: &str,
        guest_features: u64,
    ) -> Result<Launch, Error> {
        let sev_mode = SevMode::from_name(mode)
            .ok_or_else(|| message(format_args!("unknown mode '{mode}' (sev, sev-es, snp)")))?;
        let signature = CpuSignature::named(cpu)
            .map_err(|_| message(format_args!("unknown CPU type '{cpu}'")))?;
        let vmm = VmmType::from_name(vmm)
            .ok_or_else(|| message(format_args!("unknown VMM profile '{vmm}'")))?;
        let mut cfg = LaunchConfig::new(sev_mode, vcpus, signature, vmm);
        if sev_mode == SevMode::Snp {
            cfg.guest_features = SevFeatures::from_bits_retain(guest_features);
        }
        let firmware = if detect(bytes) == "igvm" {
            let file = IgvmFile::parse(bytes).map_err(message)?;
            let platform = file
                .select(PlatformChoice::Only(mode_platform(sev_mode)))
                .map_err(message)?;
            Firmware::Igvm { file, platform }
        } else {
            Firmware::Ovmf(OvmfImage::parse(bytes).map_err(message)?)
        };
        Self::of(&firmware, &cfg)
    }

    /// A COCONUT-SVSM + OVMF launch (`vmsa measure --mode snp:svsm`): OVMF, the SVSM binary
    /// below OVMF's variable store of `vars_size` bytes, `vcpus` vCPUs of CPU type `cpu`, the
    /// SVSM VMSA of `profile` (`launch` or `sev-snp-measure`).
    pub fn svsm(
        ovmf: &[u8],
        svsm: &[u8],
        vars_size: u64,
        vcpus: u32,
        cpu: &str,
        profile: &str,
    ) -> Result<Launch, Error> {
        let signature = CpuSignature::named(cpu)
            .map_err(|_| message(format_args!("unknown CPU type '{cpu}'")))?;
        let mut cfg = LaunchConfig::new(SevMode::Snp, vcpus, signature, VmmType::Qemu);
        cfg.svsm = launch::SvsmProfile::from_name(profile)
            .ok_or_else(|| message(format_args!("unknown SVSM profile '{profile}'")))?;
        let firmware = Firmware::Svsm {
            ovmf: OvmfImage::parse(ovmf).map_err(|e| message(format_args!("OVMF: {e}")))?,
            svsm: OvmfImage::parse(svsm).map_err(|e| message(format_args!("SVSM: {e}")))?,
            vars_size,
        };
        Self::of(&firmware, &cfg)
    }
}

impl Launch {
    /// The launch of `firmware` under `cfg`: VMSAs, findings, digest; an IGVM file's ID block
    /// checked as far as the page can (its digest, its keys' digests; the ECDSA signatures are
    /// left to `vmsa id-block --verify-igvm`, P-384 being beyond the page's size budget).
    fn of(firmware: &Firmware<'_>, cfg: &LaunchConfig) -> Result<Launch, Error> {
        let launch = launch::Launch::new(firmware, cfg).map_err(message)?;
        let mut out = Launch {
            mode: match launch.mode() {
                SevMode::Snp if matches!(firmware, Firmware::Svsm { .. }) => "SEV-SNP with SVSM",
                SevMode::Sev => "SEV",
                SevMode::SevEs => "SEV-ES",
                SevMode::Snp => "SEV-SNP",
            },
            digest: String::new(),
            vmsas: Vec::new(),
            findings: Vec::new(),
        };
        for v in launch.vmsas() {
            let v = v.map_err(message)?;
            findings(v.cpu_index, &launch.fidelity(&v), &mut out.findings);
            out.vmsas.push(v.vmsa);
        }
        let (digest, NoObserver) = launch.digest(&Sha2Pages, NoObserver).map_err(message)?;
        if let Some(ld) = launch.id_block_ld().filter(|ld| ld[..] != *digest.bytes()) {
            out.findings.push(Finding {
                cpu: 0,
                severity: "error",
                message: format!(
                    "the file's SNP_ID_BLOCK expects launch digest {}, not the computed one",
                    Hex(&ld)
                ),
            });
        }
        if let Firmware::Igvm { file, platform } = firmware {
            let policy = launch::igvm_guest_policy(file, platform);
            if let Some((block, auth, _)) =
                launch::igvm_id_block(file, platform, policy.unwrap_or(0))
            {
                let author = match auth.author_key.curve {
                    0 => "no author key".into(),
                    _ => format!("author key digest {}", Hex(&auth.author_key.digest())),
                };
                out.findings.push(Finding {
                    cpu: 0,
                    severity: "note",
                    message: format!(
                        "SNP_ID_BLOCK: launch digest {}, policy {}, ID key digest {}, {author}; its signatures are not checked here (vmsa id-block --verify-igvm FILE)",
                        if block.ld[..] == *digest.bytes() { "matches" } else { "differs" },
                        policy.map_or("missing (no GUEST_POLICY)".into(), |p| format!("{p:#x}")),
                        Hex(&auth.id_key.digest()),
                    ),
                });
            }
        }
        out.digest = Hex(digest.bytes()).to_string();
        Ok(out)
    }
}

#[wasm_bindgen]
impl Launch {
    /// The report as JSON: `{mode, digest, vmsas:[{fields}], findings:[{cpu, severity,
    /// message}]}`.
    pub fn report(&self) -> String {
        #[derive(Serialize)]
        struct Report<'a> {
            mode: &'static str,
            digest: &'a str,
            vmsas: Vec<VmsaView>,
            findings: &'a [Finding],
        }
        json(&Report {
            mode: self.mode,
            digest: &self.digest,
            vmsas: self.vmsas.iter().map(VmsaView::from).collect(),
            findings: &self.findings,
        })
    }

    /// vCPU `cpu`'s VMSA page (4096 bytes), for the diff and for download; empty past the end.
    pub fn vmsa(&self, cpu: usize) -> Vec<u8> {
        self.vmsas
            .get(cpu)
            .map(|v| v.as_page().to_vec())
            .unwrap_or_default()
    }
}
