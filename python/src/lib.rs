//! `vmsa._vmsa`: the native part of the Python package `vmsa` (pyo3, one abi3 wheel for
//! CPython ≥ 3.9). Every launch goes through the core's one entry point,
//! [`vmsa_core::launch::Launch`]; the Python layer (`python/python/vmsa`) gives it its Pythonic
//! shape and the `vmsa.sevsnpmeasure` compatibility modules. Errors are Python exceptions:
//! `RuntimeError` for launches that cannot happen (with sev-snp-measure's own words where it has
//! them), `ValueError` for bad arguments, `OSError` for files. No panic crosses into Python
//! (pyo3 turns one into `PanicException`; the core does not panic on input).

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::path::PathBuf;
use vmsa_core::flags::SevFeatures;
use vmsa_core::hash_table::SevHashes;
use vmsa_core::launch::{self as core_launch, Firmware, IgvmProfile, LaunchConfig, SvsmProfile};
use vmsa_core::measure::{MeasuredItem, Observer};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::report::Report;
use vmsa_core::reset::VmmType;
use vmsa_core::vmsa::{FIELDS, FieldValue};
use vmsa_core::{CpuSignature, SevMode, Vmsa as CoreVmsa};

/// The largest file read (firmware, IGVM, kernel): QEMU's firmware limit.
const MAX_FILE: u64 = core_launch::MAX_FIRMWARE_SIZE;

fn read(path: &PathBuf) -> PyResult<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| PyOSError::new_err(format!("{}: {e}", path.display())))?
        .len();
    if len > MAX_FILE {
        return Err(PyValueError::new_err(format!(
            "{}: {len} bytes, more than the {MAX_FILE} read",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| PyOSError::new_err(format!("{}: {e}", path.display())))
}

fn sha256_file(path: &PathBuf) -> PyResult<[u8; 32]> {
    Ok(SevHashes::sha256(&read(path)?))
}

fn runtime(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// Collects the measured items for `explain`.
#[derive(Default)]
struct Items(Vec<MeasuredItem>);

impl Observer for Items {
    fn measured(&mut self, item: &MeasuredItem) {
        self.0.push(*item);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One measured item for Python: `(item, gpa, page_type, length, contents_hex,
/// digest_after_hex)`.
type Item = (String, u64, Option<String>, u64, String, Option<String>);

/// A computed launch: its digest, every vCPU's VMSA page, and (with `explain`) every measured
/// item in order as `(item, gpa, page_type, length, contents_hex, digest_after_hex)`.
#[pyclass(module = "vmsa._vmsa", frozen)]
struct LaunchResult {
    #[pyo3(get)]
    digest: Py<PyBytes>,
    #[pyo3(get)]
    mode: String,
    pages: Vec<[u8; 4096]>,
    items: Vec<Item>,
}

#[pymethods]
impl LaunchResult {
    /// The VMSA pages, one `bytes` of 4096 per vCPU (none for plain SEV).
    fn vmsa_pages<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.pages.iter().map(|p| PyBytes::new(py, p)).collect()
    }

    /// The measured items, in order (empty unless computed with `explain=True`).
    fn items(&self) -> Vec<Item> {
        self.items.clone()
    }
}

/// The launch digest and VMSAs of one launch (see `vmsa.launch` in Python for the arguments).
#[pyfunction]
#[pyo3(signature = (mode, vcpus, vcpu_sig, ovmf=None, igvm=None, kernel=None, initrd=None,
    append=None, kernel_hashes=None, guest_features=None, vmm_type="qemu", snp_ovmf_hash=None,
    svsm=None, vars_size=0, svsm_profile="launch", igvm_profile="spec", explain=false,
    qemu=None, host_kernel=None, legacy_vm_type_off=false))]
#[allow(clippy::too_many_arguments)]
fn launch(
    py: Python<'_>,
    mode: &str,
    vcpus: Option<u32>,
    vcpu_sig: u32,
    ovmf: Option<PathBuf>,
    igvm: Option<PathBuf>,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<&str>,
    kernel_hashes: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    guest_features: Option<u64>,
    vmm_type: &str,
    snp_ovmf_hash: Option<&str>,
    svsm: Option<PathBuf>,
    vars_size: u64,
    svsm_profile: &str,
    igvm_profile: &str,
    explain: bool,
    qemu: Option<&str>,
    host_kernel: Option<&str>,
    legacy_vm_type_off: bool,
) -> PyResult<LaunchResult> {
    let sev_mode = SevMode::from_name(mode)
        .ok_or_else(|| PyValueError::new_err(format!("unknown SEV mode {mode:?}")))?;
    let vmm = VmmType::from_name(vmm_type)
        .ok_or_else(|| PyValueError::new_err(format!("unknown VMM type {vmm_type:?}")))?;
    let mut cfg = LaunchConfig::new(sev_mode, vcpus.unwrap_or(1), CpuSignature(vcpu_sig), vmm);
    if let Some(f) = guest_features {
        cfg.guest_features = SevFeatures::from_bits_retain(f);
    }
    cfg.kernel = match (kernel, kernel_hashes) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "kernel and kernel_hashes: give the files or their hashes, not both",
            ));
        }
        (Some(k), None) => Some(SevHashes {
            kernel: sha256_file(&k)?,
            initrd: match &initrd {
                Some(i) => sha256_file(i)?,
                None => SevHashes::sha256(b""),
            },
            cmdline: SevHashes::cmdline_hash(append),
        }),
        (None, Some((k, i, c))) => {
            let h = |what: &str, v: Vec<u8>| {
                <[u8; 32]>::try_from(v.as_slice())
                    .map_err(|_| PyValueError::new_err(format!("{what} hash: 32 bytes")))
            };
            Some(SevHashes {
                kernel: h("kernel", k)?,
                initrd: h("initrd", i)?,
                cmdline: h("cmdline", c)?,
            })
        }
        (None, None) => None,
    };
    // The host profiles (`vmsa profiles`): QEMU's and the kernel's init, features, APs.
    let version = |what: &str, v: Option<&str>| -> PyResult<Option<vmsa_core::host::Version>> {
        v.map(|t| {
            vmsa_core::host::Version::parse(t).ok_or_else(|| {
                PyValueError::new_err(format!("{what} {t:?}: not a release version"))
            })
        })
        .transpose()
    };
    let (qemu, host_kernel) = (version("qemu", qemu)?, version("host_kernel", host_kernel)?);
    if qemu.is_some() || host_kernel.is_some() {
        cfg.apply_host(
            host_kernel,
            qemu,
            legacy_vm_type_off,
            guest_features.map(SevFeatures::from_bits_retain),
            igvm.is_some(),
        )
        .map_err(runtime)?;
    }
    cfg.svsm = SvsmProfile::from_name(svsm_profile)
        .ok_or_else(|| PyValueError::new_err(format!("unknown SVSM profile {svsm_profile:?}")))?;
    cfg.igvm.profile = IgvmProfile::from_name(igvm_profile)
        .ok_or_else(|| PyValueError::new_err(format!("unknown IGVM profile {igvm_profile:?}")))?;
    let seed = match snp_ovmf_hash {
        None | Some("") => None,
        Some(h) => Some(
            vmsa_core::hex::parse::<48>(h.trim())
                .ok_or_else(|| PyValueError::new_err("snp_ovmf_hash: 96 hex digits (a SHA-384)"))?,
        ),
    };
    let bytes = match (&ovmf, &igvm) {
        (Some(p), None) | (None, Some(p)) => read(p)?,
        _ => return Err(PyValueError::new_err("give one of ovmf or igvm")),
    };
    let svsm_bytes = svsm.as_ref().map(read).transpose()?;
    let firmware = if igvm.is_some() {
        let fw = Firmware::igvm_for_mode(&bytes, sev_mode).map_err(runtime)?;
        if let (None, Some(n)) = (vcpus, fw.igvm_vcpus()) {
            cfg.vcpus = n;
        }
        fw
    } else {
        let image = OvmfImage::parse(&bytes).map_err(runtime)?;
        match &svsm_bytes {
            Some(s) => Firmware::Svsm {
                ovmf: image,
                svsm: OvmfImage::parse(s).map_err(runtime)?,
                vars_size,
            },
            None => Firmware::Ovmf(image),
        }
    };
    let l = core_launch::Launch::new(&firmware, &cfg).map_err(runtime)?;
    let hasher = vmsa_pagehash::Parallel::all_cores();
    let (digest, items) = match seed {
        Some(s) => l.digest_from_seed(s, Items::default()),
        None => l.digest(&hasher, Items::default()),
    }
    .map_err(runtime)?;
    result(py, &l, digest.bytes(), &items, explain)
}

/// A computed launch as Python sees it: the digest, the VMSA pages and, with `explain`, the
/// measured items.
fn result(
    py: Python<'_>,
    l: &core_launch::Launch<'_, '_>,
    digest: &[u8],
    items: &Items,
    explain: bool,
) -> PyResult<LaunchResult> {
    let pages = l
        .vmsas()
        .map(|v| v.map(|v| *v.vmsa.as_page()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(runtime)?;
    let items = match explain {
        false => Vec::new(),
        true => items
            .0
            .iter()
            .map(|it| {
                (
                    it.kind.to_string(),
                    it.gpa,
                    it.page_type.map(|t| t.to_string()),
                    it.len,
                    hex(if it.page_type.is_some() {
                        &it.contents
                    } else {
                        &it.contents[..32]
                    }),
                    it.page_type.map(|_| hex(&it.digest_after)),
                )
            })
            .collect(),
    };
    Ok(LaunchResult {
        digest: PyBytes::new(py, digest).unbind(),
        mode: l.mode().name().into(),
        pages,
        items,
    })
}

/// A libkrun launch of libkrunfw-sev's bundles (see `vmsa.krun_launch`).
#[pyfunction]
#[pyo3(signature = (mode, vcpus, qboot, kernel, initrd, ram_mib, kernel_gpa=0x100_0000,
    programmed=false, explain=false))]
#[allow(clippy::too_many_arguments)]
fn krun_launch(
    py: Python<'_>,
    mode: &str,
    vcpus: u32,
    qboot: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    ram_mib: u32,
    kernel_gpa: u64,
    programmed: bool,
    explain: bool,
) -> PyResult<LaunchResult> {
    use vmsa_core::launch::krun::{KrunImages, KrunRegs};
    let sev_mode = SevMode::from_name(mode)
        .ok_or_else(|| PyValueError::new_err(format!("unknown SEV mode {mode:?}")))?;
    let (q, k, i) = (read(&qboot)?, read(&kernel)?, read(&initrd)?);
    let fw = Firmware::Krun(KrunImages {
        qboot: &q,
        kernel: &k,
        kernel_gpa,
        initrd: &i,
        ram_mib,
        regs: match programmed {
            true => KrunRegs::Programmed,
            false => KrunRegs::Reset,
        },
    });
    let cfg = LaunchConfig::new(sev_mode, vcpus, CpuSignature(0), VmmType::Krun);
    let l = core_launch::Launch::new(&fw, &cfg).map_err(runtime)?;
    let hasher = vmsa_pagehash::Parallel::all_cores();
    let (digest, items) = l.digest(&hasher, Items::default()).map_err(runtime)?;
    result(py, &l, digest.bytes(), &items, explain)
}

/// SHA-384 launch digest of an OVMF image's pages alone (sev-snp-measure's `snp:ovmf-hash`).
#[pyfunction]
fn snp_ovmf_hash<'py>(py: Python<'py>, ovmf: PathBuf) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = read(&ovmf)?;
    let hasher = vmsa_pagehash::Parallel::all_cores();
    let (d, _) = core_launch::firmware_digest(&bytes, &hasher, vmsa_core::measure::NoObserver)
        .map_err(runtime)?;
    Ok(PyBytes::new(py, &d))
}

/// The value of one field as Python sees it: an int, a `(selector, attrib, limit, base)`
/// tuple for a segment, or bytes.
fn field_value<'py>(py: Python<'py>, v: FieldValue<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        FieldValue::Int { value, .. } => value.into_pyobject(py)?.into_any(),
        FieldValue::Segment(s) => (s.selector, s.attrib.0, s.limit, s.base)
            .into_pyobject(py)?
            .into_any(),
        FieldValue::Bytes(b) => PyBytes::new(py, b).into_any(),
    })
}

fn page(bytes: &[u8]) -> PyResult<CoreVmsa> {
    CoreVmsa::from_save_area(bytes).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Every field of a VMSA page (4096 bytes, or QEMU's 1648-byte save area) as an ordered
/// `{name: value}` dict, and each field's offset as `{name: offset}`.
#[pyfunction]
fn vmsa_fields<'py>(
    py: Python<'py>,
    bytes: &[u8],
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    let v = page(bytes)?;
    let (values, offsets) = (PyDict::new(py), PyDict::new(py));
    for f in FIELDS.iter() {
        values.set_item(f.name, field_value(py, v.field(f))?)?;
        offsets.set_item(f.name, f.offset)?;
    }
    Ok((values, offsets))
}

/// The fields in which two VMSA pages differ: `[(offset, name, left, right)]`.
#[pyfunction]
fn vmsa_diff<'py>(py: Python<'py>, left: &[u8], right: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let (l, r) = (page(left)?, page(right)?);
    let out = PyList::empty(py);
    for d in vmsa_core::vmsa::diff(&l, &r) {
        out.append((
            d.field.offset,
            d.field.name,
            field_value(py, l.field(d.field))?,
            field_value(py, r.field(d.field))?,
        ))?;
    }
    Ok(out)
}

/// An attestation report (raw, hex or base64) decoded: the JSON `vmsa report --json` prints.
#[pyfunction]
fn report_json(bytes: &[u8]) -> PyResult<String> {
    let (raw, _) = vmsa_attest::view::decode_input(bytes).map_err(PyValueError::new_err)?;
    let r = Report::parse(&raw, None).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(vmsa_attest::view::to_json(&r).to_string())
}

/// One check of a verdict for Python: `(name, ok, detail)`.
type CheckRow = (&'static str, bool, String);

/// Verifies a report (raw, hex or base64) with its VCEK or VLEK certificate (DER or PEM) and
/// optionally AMD's chain (a PEM bundle; by default the built-in one): `(passed, [(check, ok,
/// detail)])`, every check `vmsa verify` makes of the report's authenticity and platform.
#[pyfunction]
#[pyo3(signature = (report, key, chain=None, check_time=true))]
fn verify_report(
    report: &[u8],
    key: &[u8],
    chain: Option<&[u8]>,
    check_time: bool,
) -> PyResult<(bool, Vec<CheckRow>)> {
    let (raw, _) = vmsa_attest::view::decode_input(report).map_err(PyValueError::new_err)?;
    let r = Report::parse(&raw, None).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let key = vmsa_attest::Cert::parse(key).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let chain = match chain {
        Some(c) => {
            vmsa_attest::Cert::bundle(c).map_err(|e| PyValueError::new_err(e.to_string()))?
        }
        None => Vec::new(),
    };
    let options = vmsa_attest::Options {
        now: check_time.then(std::time::SystemTime::now),
    };
    let v = vmsa_attest::verify(&r, &key, &chain, options);
    let checks = v
        .checks
        .iter()
        .map(|c| match &c.result {
            Ok(d) => (c.name, true, d.clone()),
            Err(d) => (c.name, false, d.clone()),
        })
        .collect();
    Ok((v.passed(), checks))
}

/// An ID block and its authentication information for launch digest `ld`, signed with the ID
/// key (and the author key), both PEM (SEC1 or PKCS#8): `(id_block, id_auth, id_key_digest,
/// author_key_digest or None)`, as bytes.
#[pyfunction]
#[pyo3(signature = (ld, id_key_pem, author_key_pem=None, family_id=[0; 16], image_id=[0; 16], guest_svn=0, policy=0x30000))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn id_block<'py>(
    py: Python<'py>,
    ld: &[u8],
    id_key_pem: &str,
    author_key_pem: Option<&str>,
    family_id: [u8; 16],
    image_id: [u8; 16],
    guest_svn: u32,
    policy: u64,
) -> PyResult<(
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Option<Bound<'py, PyBytes>>,
)> {
    use zerocopy::IntoBytes;
    let ld: [u8; 48] = ld
        .try_into()
        .map_err(|_| PyValueError::new_err("ld: 48 bytes"))?;
    let id = vmsa_attest::id_block::signing_key(id_key_pem).map_err(PyValueError::new_err)?;
    let author = author_key_pem
        .map(vmsa_attest::id_block::signing_key)
        .transpose()
        .map_err(PyValueError::new_err)?;
    let block = vmsa_core::id_block::IdBlock::new(ld, family_id, image_id, guest_svn, policy);
    let auth = vmsa_attest::id_block::id_auth(&block, &id, author.as_ref());
    Ok((
        PyBytes::new(py, block.as_bytes()),
        PyBytes::new(py, auth.as_bytes()),
        PyBytes::new(py, &auth.id_key.digest()),
        author.map(|_| PyBytes::new(py, &auth.author_key.digest())),
    ))
}

/// Verifies an ID block and its authentication information as the firmware does: returns
/// `(id_key_digest, author_key_digest or None)`; raises `ValueError` when they do not verify.
#[pyfunction]
fn verify_id_block<'py>(
    py: Python<'py>,
    block: &[u8],
    auth: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> {
    use zerocopy::FromBytes;
    let block = vmsa_core::id_block::IdBlock::read_from_bytes(block)
        .map_err(|_| PyValueError::new_err("id_block: 96 bytes"))?;
    let auth = vmsa_core::id_block::IdAuthInfo::read_from_bytes(auth)
        .map_err(|_| PyValueError::new_err("id_auth: 4096 bytes"))?;
    let k = vmsa_attest::id_block::verify_id_auth(&block, &auth).map_err(PyValueError::new_err)?;
    Ok((
        PyBytes::new(py, &k.id_key_digest),
        k.author_key_digest.map(|d| PyBytes::new(py, &d)),
    ))
}

/// Which launches give `measurement` (48 bytes): `vmsa solve`'s search over the OVMF images
/// and IGVM files given, vCPU counts `min_vcpus..=max_vcpus`, the vCPU types named (default
/// every one), the VMM profiles named (default all), the guest features given (default 0x1 and
/// 0x21), with and without the kernel hashes when `kernel` is given. Returns `(matches,
/// searched, refused)`, each match a dict.
#[pyfunction]
#[pyo3(signature = (measurement, ovmf=Vec::new(), igvm=Vec::new(), min_vcpus=1, max_vcpus=512,
    vcpu_types=None, vmm_types=None, guest_features=None, kernel=None, initrd=None, append=None))]
#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    py: Python<'py>,
    measurement: &[u8],
    ovmf: Vec<PathBuf>,
    igvm: Vec<PathBuf>,
    min_vcpus: u32,
    max_vcpus: u32,
    vcpu_types: Option<Vec<String>>,
    vmm_types: Option<Vec<String>>,
    guest_features: Option<Vec<u64>>,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<&str>,
) -> PyResult<(Bound<'py, PyList>, u64, u64)> {
    let target: [u8; 48] = measurement
        .try_into()
        .map_err(|_| PyValueError::new_err("measurement: 48 bytes (an SNP launch digest)"))?;
    if min_vcpus == 0 || min_vcpus > max_vcpus || max_vcpus > core_launch::MAX_VCPUS {
        return Err(PyValueError::new_err(format!(
            "vCPU counts from 1 to {}",
            core_launch::MAX_VCPUS
        )));
    }
    let mut sigs: Vec<(CpuSignature, String)> = Vec::new();
    let names: Vec<String> = match vcpu_types {
        Some(n) => n,
        None => vmsa_core::cpu::CPU_TYPES
            .iter()
            .map(|t| t.name.to_string())
            .collect(),
    };
    for n in names {
        let s = CpuSignature::named(&n).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if !sigs.iter().any(|(x, _)| *x == s) {
            sigs.push((s, n));
        }
    }
    let vmms = match vmm_types {
        None => VmmType::ALL.to_vec(),
        Some(v) => v
            .iter()
            .map(|n| {
                VmmType::from_name(n)
                    .ok_or_else(|| PyValueError::new_err(format!("unknown VMM type {n:?}")))
            })
            .collect::<PyResult<_>>()?,
    };
    let kernel = match &kernel {
        None => None,
        Some(k) => Some(SevHashes {
            kernel: sha256_file(k)?,
            initrd: match &initrd {
                Some(i) => sha256_file(i)?,
                None => SevHashes::sha256(b""),
            },
            cmdline: SevHashes::cmdline_hash(append),
        }),
    };
    let space = vmsa_solve::Space {
        target,
        counts: (min_vcpus..=max_vcpus).collect(),
        sigs,
        vmms,
        features: guest_features.unwrap_or_else(|| vec![0x1, 0x21]),
        inits: vec![vmsa_core::kvm::VmInit::Init2],
        ap_fpus: vec![vmsa_core::host::ApFpu::Reset, vmsa_core::host::ApFpu::Zero],
        kernel,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut tally = vmsa_solve::Tally::default();
    for (i, path) in ovmf.iter().enumerate() {
        let bytes = read(path)?;
        let fw = Firmware::Ovmf(OvmfImage::parse(&bytes).map_err(runtime)?);
        tally.add(vmsa_solve::search_ovmf(&space, i, &fw).map_err(runtime)?);
    }
    for (i, path) in igvm.iter().enumerate() {
        tally.add(vmsa_solve::search_igvm(&space, i, &read(path)?).map_err(runtime)?);
    }
    let out = PyList::empty(py);
    for m in &tally.found {
        let d = PyDict::new(py);
        match m.source {
            vmsa_solve::Source::Ovmf(i) => d.set_item("ovmf", ovmf[i].display().to_string())?,
            vmsa_solve::Source::Igvm(i, o) => {
                d.set_item("igvm", igvm[i].display().to_string())?;
                d.set_item("igvm_profile", o.profile.name())?;
                d.set_item("native_zero", o.native_zero)?;
            }
        }
        d.set_item("vcpus", m.vcpus)?;
        d.set_item("vcpu_sig", m.signature.0)?;
        d.set_item("vmm_type", m.vmm.name())?;
        d.set_item("guest_features", m.features)?;
        d.set_item("kernel_hashes", m.kernel)?;
        // QEMU ≥ 10.1 leaves the APs' FCW and MXCSR 0 (`vmsa profiles`).
        d.set_item("qemu_10_1_aps", m.ap_fpu == vmsa_core::host::ApFpu::Zero)?;
        out.append(d)?;
    }
    Ok((out, tally.searched, tally.refused))
}

/// The named vCPU types and their signatures, in the core's order.
#[pyfunction]
fn cpu_types() -> Vec<(&'static str, u32)> {
    vmsa_core::cpu::CPU_TYPES
        .iter()
        .filter_map(|t| CpuSignature::named(t.name).ok().map(|s| (t.name, s.0)))
        .collect()
}

/// The CPU signature of a family, model and stepping.
#[pyfunction]
fn cpu_sig(family: u32, model: u32, stepping: u32) -> PyResult<u32> {
    CpuSignature::from_family_model_stepping(family, model, stepping)
        .map(|s| s.0)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pymodule]
fn _vmsa(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<LaunchResult>()?;
    m.add_function(wrap_pyfunction!(launch, m)?)?;
    m.add_function(wrap_pyfunction!(krun_launch, m)?)?;
    m.add_function(wrap_pyfunction!(snp_ovmf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(vmsa_fields, m)?)?;
    m.add_function(wrap_pyfunction!(vmsa_diff, m)?)?;
    m.add_function(wrap_pyfunction!(report_json, m)?)?;
    m.add_function(wrap_pyfunction!(id_block, m)?)?;
    m.add_function(wrap_pyfunction!(verify_report, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(verify_id_block, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_types, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_sig, m)?)?;
    Ok(())
}
