//! `vmsa-attest`: is an SEV-SNP attestation report genuine?
//!
//! The checks a guest owner makes before trusting a report's measurement, each with its own
//! result ([`verify`]): the report's ECDSA P-384/SHA-384 signature against the VCEK or VLEK
//! certificate; that certificate's RSASSA-PSS signature by AMD's ASK (or ASVK, for a VLEK), and
//! the ASK's by the ARK, whose keys for Milan, Genoa and Turin are built in ([`builtin`]); the
//! certificate's TCB extensions against the report's `REPORTED_TCB` and its hardware ID
//! against `CHIP_ID`; the report's signing-key field against the certificate kind; and the
//! certificates' validity periods.
//!
//! Everything comes from files: nothing is fetched. Users get a VCEK from AMD's key
//! distribution service, `https://kdsintf.amd.com/vcek/v1/{Milan,Genoa,Turin}/{hwid}?blSPL=…`
//! (the `snpguest fetch vcek` command builds the URL from a report), the ASK/ARK bundle from
//! `…/vcek/v1/{product}/cert_chain`, and a VLEK from their cloud provider (or the host's
//! extended report, `snpguest report --certs`).
//!
//! The crypto is RustCrypto's (`p384`/`ecdsa`, `rsa` with PSS, `x509-cert`); no OpenSSL.

use der::{Decode, Encode};
use p384::ecdsa::signature::Verifier;
use rsa::pkcs8::DecodePublicKey;
use std::fmt;
use std::time::{Duration, SystemTime};
use vmsa_core::report::{Product, Report, SigningKey, TcbVersion};
use x509_cert::Certificate;

pub mod builtin;
pub mod id_block;
pub mod view;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Neither DER nor PEM.
    #[error("not an X.509 certificate (DER or PEM): {0}")]
    Parse(String),
    /// A PEM bundle without a certificate.
    #[error("no certificate in the PEM text")]
    Empty,
}

/// An X.509 certificate of AMD's SEV key hierarchy, and its DER bytes.
#[derive(Clone, Debug)]
pub struct Cert {
    cert: Certificate,
    der: Vec<u8>,
}

/// A certificate's place in AMD's hierarchy, from its subject's common name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// `ARK-<product>`: AMD Root Key, self-signed.
    Ark,
    /// `SEV-<product>`: AMD SEV Key, signs VCEKs.
    Ask,
    /// `SEV-VLEK-<product>`: AMD SEV VLEK signing key, signs VLEKs.
    Asvk,
    /// `SEV-VCEK`: a chip's Versioned Chip Endorsement Key.
    Vcek,
    /// `SEV-VLEK`: a cloud provider's Versioned Loaded Endorsement Key.
    Vlek,
    /// Something else.
    Other,
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertKind::Ark => "ARK",
            CertKind::Ask => "ASK",
            CertKind::Asvk => "ASVK",
            CertKind::Vcek => "VCEK",
            CertKind::Vlek => "VLEK",
            CertKind::Other => "certificate",
        })
    }
}

/// AMD's OIDs for the VCEK/VLEK extensions (KDS specification, doc. 57230).
mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    pub const PRODUCT_NAME: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.2");
    pub const BL_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    pub const TEE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    pub const SNP_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    pub const UCODE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    pub const FMC_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    pub const HWID: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.4");
    pub const CSP_ID: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.5");
    /// RSASSA-PSS (RFC 4055).
    pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    /// ecPublicKey.
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
}

/// What a VCEK or VLEK certifies: the TCB it was derived for, the chip, the provider.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyExtensions {
    /// `productName1` (`Milan-B0`, `Genoa`, `Turin`).
    pub product_name: Option<String>,
    /// `blSPL`.
    pub bootloader: Option<u8>,
    /// `teeSPL`.
    pub tee: Option<u8>,
    /// `snpSPL`.
    pub snp: Option<u8>,
    /// `ucodeSPL`.
    pub microcode: Option<u8>,
    /// `fmcSPL` (Turin and later).
    pub fmc: Option<u8>,
    /// `hwID`: the chip ID (64 bytes; Turin 8), VCEKs only.
    pub hwid: Option<Vec<u8>>,
    /// `csp_id`: the cloud provider, VLEKs only.
    pub csp_id: Option<String>,
}

impl Cert {
    /// A certificate from DER or PEM bytes (the first one of a PEM bundle).
    pub fn parse(bytes: &[u8]) -> Result<Cert, CertError> {
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            return Cert::bundle(bytes)?
                .into_iter()
                .next()
                .ok_or(CertError::Empty);
        }
        let cert = Certificate::from_der(bytes).map_err(|e| CertError::Parse(e.to_string()))?;
        Ok(Cert {
            cert,
            der: bytes.to_vec(),
        })
    }

    /// Every certificate of a PEM bundle (AMD's `cert_chain`: ASK first, then ARK).
    pub fn bundle(pem: &[u8]) -> Result<Vec<Cert>, CertError> {
        let certs =
            Certificate::load_pem_chain(pem).map_err(|e| CertError::Parse(e.to_string()))?;
        if certs.is_empty() {
            return Err(CertError::Empty);
        }
        certs
            .into_iter()
            .map(|cert| {
                let der = cert.to_der().map_err(|e| CertError::Parse(e.to_string()))?;
                Ok(Cert { cert, der })
            })
            .collect()
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's common name.
    pub fn common_name(&self) -> String {
        name_cn(&self.cert.tbs_certificate().subject().to_string())
    }

    /// The issuer's common name.
    pub fn issuer_common_name(&self) -> String {
        name_cn(&self.cert.tbs_certificate().issuer().to_string())
    }

    /// Its place in AMD's hierarchy.
    pub fn kind(&self) -> CertKind {
        let cn = self.common_name();
        match cn.as_str() {
            "SEV-VCEK" => CertKind::Vcek,
            "SEV-VLEK" => CertKind::Vlek,
            _ if cn.starts_with("ARK-") => CertKind::Ark,
            _ if cn.starts_with("SEV-VLEK-") => CertKind::Asvk,
            _ if cn.starts_with("SEV-") => CertKind::Ask,
            _ => CertKind::Other,
        }
    }

    /// The product an ARK, ASK or ASVK is for (`ARK-Milan`, `SEV-Genoa`, `SEV-VLEK-Turin`), or
    /// a VCEK's/VLEK's `productName1` extension (`Milan-B0` is Milan).
    pub fn product(&self) -> Option<Product> {
        let cn = self.common_name();
        let name = match self.kind() {
            CertKind::Vcek | CertKind::Vlek => self.extensions().product_name?,
            _ => cn.rsplit('-').next()?.to_string(),
        };
        let base = name.split('-').next()?;
        Product::from_name(base)
    }

    /// The AMD extensions of a VCEK or VLEK (all `None` on other certificates).
    pub fn extensions(&self) -> KeyExtensions {
        let mut out = KeyExtensions::default();
        let Some(exts) = self.cert.tbs_certificate().extensions() else {
            return out;
        };
        for e in exts.iter() {
            let v = e.extn_value.as_bytes();
            let int = || {
                der::asn1::Int::from_der(v)
                    .ok()
                    .and_then(|i| small_uint(i.as_bytes()))
            };
            let string = || {
                der::asn1::Ia5StringRef::from_der(v)
                    .map(|s| s.as_str().to_string())
                    .ok()
            };
            match e.extn_id {
                oid::PRODUCT_NAME => out.product_name = string(),
                oid::BL_SPL => out.bootloader = int(),
                oid::TEE_SPL => out.tee = int(),
                oid::SNP_SPL => out.snp = int(),
                oid::UCODE_SPL => out.microcode = int(),
                oid::FMC_SPL => out.fmc = int(),
                // Raw bytes, no tag (AMD's encoding); an OCTET STRING also, in case AMD adds
                // the tag as go-sev-guest and snpguest anticipate.
                oid::HWID => {
                    out.hwid = Some(match <&der::asn1::OctetStringRef>::from_der(v) {
                        Ok(o) if v.len() != 64 && v.len() != 8 => o.as_bytes().to_vec(),
                        _ => v.to_vec(),
                    })
                }
                oid::CSP_ID => out.csp_id = string(),
                _ => {}
            }
        }
        out
    }

    /// Whether `now` is within the validity period.
    pub fn valid_at(&self, now: SystemTime) -> bool {
        let v = self.cert.tbs_certificate().validity();
        let not_before = v.not_before.to_system_time();
        let not_after = v.not_after.to_system_time();
        now >= not_before && now <= not_after
    }

    /// The validity period, as seconds since the Unix epoch.
    pub fn validity(&self) -> (Duration, Duration) {
        let v = self.cert.tbs_certificate().validity();
        (
            v.not_before.to_unix_duration(),
            v.not_after.to_unix_duration(),
        )
    }

    /// Whether `self` is signed by `issuer`'s key (RSASSA-PSS with SHA-384, as AMD signs its
    /// certificates) and names it as its issuer.
    pub fn signed_by(&self, issuer: &Cert) -> Result<(), String> {
        if self.cert.tbs_certificate().issuer() != issuer.cert.tbs_certificate().subject() {
            return Err(format!(
                "issued by {}, not by {}",
                self.issuer_common_name(),
                issuer.common_name()
            ));
        }
        if self.cert.signature_algorithm().oid != oid::RSASSA_PSS {
            return Err(format!(
                "signature algorithm {} is not RSASSA-PSS",
                self.cert.signature_algorithm().oid
            ));
        }
        let spki = issuer
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| e.to_string())?;
        let key = rsa::PublicKey::from_public_key_der(&spki)
            .map_err(|e| format!("{}'s key is not RSA: {e}", issuer.common_name()))?;
        // AMD signs with a salt as long as the SHA-384 digest (48 bytes), the key's default.
        let key = rsa::pss::VerifyingKey::<sha2::Sha384>::new(key);
        let sig = rsa::pss::Signature::try_from(self.cert.signature().raw_bytes())
            .map_err(|e| e.to_string())?;
        let tbs = self
            .cert
            .tbs_certificate()
            .to_der()
            .map_err(|e| e.to_string())?;
        key.verify(&tbs, &sig).map_err(|_| {
            format!(
                "the signature does not verify with {}'s key",
                issuer.common_name()
            )
        })
    }

    /// Whether `report`'s signature verifies with this certificate's P-384 key.
    pub fn signed_report(&self, report: &Report) -> Result<(), String> {
        let spki = self.cert.tbs_certificate().subject_public_key_info();
        if spki.algorithm.oid != oid::EC_PUBLIC_KEY {
            return Err(format!("{} has no elliptic-curve key", self.common_name()));
        }
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
            .map_err(|_| format!("{}'s key is not a P-384 point", self.common_name()))?;
        let (r, s) = report
            .signature_be()
            .ok_or("the signature's top 24 bytes of r or s are not zero")?;
        let sig = p384::ecdsa::Signature::from_scalars(r, s)
            .map_err(|_| "r or s is not a P-384 scalar (zero or too large)".to_string())?;
        key.verify(report.signed_bytes(), &sig)
            .map_err(|_| "the report's signature does not verify with this key".to_string())
    }
}

fn name_cn(rfc4514: &str) -> String {
    rfc4514
        .split(',')
        .find_map(|p| p.trim().strip_prefix("CN="))
        .unwrap_or("")
        .to_string()
}

/// A small unsigned DER INTEGER's value (its content bytes, big-endian, a leading zero allowed).
fn small_uint(bytes: &[u8]) -> Option<u8> {
    let v = bytes
        .iter()
        .try_fold(0u32, |acc, &b| acc.checked_mul(256)?.checked_add(b.into()))?;
    u8::try_from(v).ok()
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// `Ok(detail)` or `Err(why)`.
    pub result: Result<String, String>,
}

/// Every check of a report, in order; the report is genuine when all pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.result.is_ok())
    }
    fn push(&mut self, name: &'static str, result: Result<String, String>) {
        self.checks.push(Check { name, result });
    }
}

/// What [`verify`] checks against.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The time the certificates must be valid at; `None` skips the validity periods.
    pub now: Option<SystemTime>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            now: Some(SystemTime::now()),
        }
    }
}

/// The TCB a certificate certifies, compared field by field with `want` (the report's
/// `REPORTED_TCB`, laid out for its product).
fn compare_tcb(ext: &KeyExtensions, want: &TcbVersion) -> Result<String, String> {
    let mut bad = Vec::new();
    for (name, cert, report) in [
        ("bootloader", ext.bootloader, Some(want.bootloader)),
        ("tee", ext.tee, Some(want.tee)),
        ("snp", ext.snp, Some(want.snp)),
        ("microcode", ext.microcode, Some(want.microcode)),
        ("fmc", ext.fmc, want.fmc),
    ] {
        if cert != report {
            bad.push(format!(
                "{name}: certificate {}, report {}",
                cert.map_or("absent".into(), |v| v.to_string()),
                report.map_or("absent".into(), |v| v.to_string())
            ));
        }
    }
    if bad.is_empty() {
        Ok(format!("{want}"))
    } else {
        Err(bad.join("; "))
    }
}

/// Verifies `report` with the key certificate `key` (VCEK or VLEK) and the chain `chain` (ASK
/// or ASVK, then ARK, as AMD serves them; missing ones are taken from [`builtin`]). The ARK
/// must be AMD's own, built in, whatever the chain holds.
pub fn verify(report: &Report, key: &Cert, chain: &[Cert], options: Options) -> Verdict {
    let mut v = Verdict::default();
    let product = report.product;
    // The key kind against the report's KEY_INFO.
    let kind = key.kind();
    let want = match report.key_info.signing_key {
        SigningKey::Vcek => Some(CertKind::Vcek),
        SigningKey::Vlek => Some(CertKind::Vlek),
        SigningKey::None => None,
    };
    v.push(
        "signing key kind",
        match want {
            Some(w) if w == kind => Ok(format!("the report names a {w}, the certificate is one")),
            Some(w) => Err(format!(
                "the report names a {w}, the certificate is a {kind}"
            )),
            None => Err("the report says it is not signed (KEY_INFO signing key 7)".into()),
        },
    );
    v.push(
        "report signature",
        key.signed_report(report)
            .map(|()| format!("ECDSA P-384/SHA-384 with the {kind}'s key")),
    );
    // The chain: the built-in ARK, an intermediate for the key's kind, the key.
    let ark = builtin::ark(product);
    let intermediate_kind = if kind == CertKind::Vlek {
        CertKind::Asvk
    } else {
        CertKind::Ask
    };
    let given = chain
        .iter()
        .find(|c| c.kind() == intermediate_kind)
        .cloned();
    let intermediate = given.unwrap_or_else(|| {
        if intermediate_kind == CertKind::Asvk {
            builtin::asvk(product)
        } else {
            builtin::ask(product)
        }
    });
    if let Some(given_ark) = chain.iter().find(|c| c.kind() == CertKind::Ark) {
        v.push(
            "ARK is AMD's",
            if given_ark.der() == ark.der() {
                Ok(format!("{} (built in)", ark.common_name()))
            } else {
                Err(format!(
                    "the chain's {} is not the built-in ARK of {product}",
                    given_ark.common_name()
                ))
            },
        );
    }
    v.push(
        "ARK self-signed",
        ark.signed_by(&ark).map(|()| ark.common_name()),
    );
    v.push(
        "ARK signs ASK",
        intermediate.signed_by(&ark).map(|()| {
            format!(
                "{} signed by {}",
                intermediate.common_name(),
                ark.common_name()
            )
        }),
    );
    v.push(
        "ASK signs key",
        key.signed_by(&intermediate).map(|()| {
            format!(
                "{} signed by {}",
                key.common_name(),
                intermediate.common_name()
            )
        }),
    );
    // The certificate's product and TCB against the report.
    let ext = key.extensions();
    v.push(
        "product",
        match key.product() {
            Some(p) if p == product => Ok(format!("{p}")),
            Some(p) => Err(format!(
                "the certificate is for {p}, the report for {product}"
            )),
            None => Err(format!(
                "the certificate names no product ({:?})",
                ext.product_name
            )),
        },
    );
    v.push("TCB", compare_tcb(&ext, &report.reported_tcb));
    // The chip: a VCEK's hwID is the report's CHIP_ID; a VLEK names its provider instead.
    v.push(
        "chip ID",
        match (kind, &ext.hwid, &ext.csp_id) {
            (CertKind::Vlek, None, Some(csp)) => Ok(format!("VLEK of {csp}: no chip ID")),
            (CertKind::Vlek, Some(_), _) => Err("a VLEK with a hardware ID".into()),
            (_, Some(hwid), _) if report.key_info.mask_chip_key => {
                Ok(format!("masked in the report (certificate {})", hex(hwid)))
            }
            (_, Some(hwid), _) if hwid.as_slice() == report.chip_id() => {
                Ok(format!("{} bytes equal", hwid.len()))
            }
            (_, Some(hwid), _) => Err(format!(
                "certificate {}, report {}",
                hex(hwid),
                hex(report.chip_id())
            )),
            (_, None, _) => Err("the certificate has no hardware ID".into()),
        },
    );
    if let Some(now) = options.now {
        for c in [&ark, &intermediate, key] {
            let (from, to) = c.validity();
            v.push(
                "validity",
                if c.valid_at(now) {
                    Ok(format!("{} valid until {}", c.common_name(), date(to)))
                } else {
                    Err(format!(
                        "{} is valid from {} to {}, not now",
                        c.common_name(),
                        date(from),
                        date(to)
                    ))
                },
            );
        }
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `YYYY-MM-DD` of a Unix time (der's calendar).
fn date(t: Duration) -> String {
    match der::DateTime::from_unix_duration(t) {
        Ok(d) => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        Err(_) => format!("{} s after 1970", t.as_secs()),
    }
}
