//! AMD's certificates for SEV-SNP, built in: the ARK (root) of Milan, Genoa and Turin, the ASK
//! that signs each product's VCEKs and the ASVK that signs its VLEKs.
//!
//! As AMD's key distribution service serves them (`https://kdsintf.amd.com/vcek/v1/{product}/
//! cert_chain` and `…/vlek/v1/{product}/cert_chain`); the files here are the copies the
//! virtee `sev` crate ships (`src/certs/snp/builtin/{milan,genoa,turin}/{ark,ask}.pem`, Apache-2.0)
//! and go-sev-guest's (`verify/trust/ask_ark_*_vlek.pem`, Apache-2.0), the same bytes project
//! Oak ships; TESTING.md gives each file's SHA-256.
use crate::Cert;
use vmsa_core::report::Product;

fn pem(text: &str) -> Cert {
    // Built-in data, parsed by the tests: cannot fail.
    #[allow(clippy::expect_used)]
    Cert::parse(text.as_bytes()).expect("a built-in certificate parses")
}

/// The ARK (AMD Root Key) of `product`: self-signed, RSA-4096.
pub fn ark(product: Product) -> Cert {
    pem(match product {
        Product::Milan => include_str!("../data/ark_milan.pem"),
        Product::Genoa => include_str!("../data/ark_genoa.pem"),
        Product::Turin => include_str!("../data/ark_turin.pem"),
    })
}

/// The ASK (AMD SEV Key) of `product`, signed by its ARK; it signs VCEKs.
pub fn ask(product: Product) -> Cert {
    pem(match product {
        Product::Milan => include_str!("../data/ask_milan.pem"),
        Product::Genoa => include_str!("../data/ask_genoa.pem"),
        Product::Turin => include_str!("../data/ask_turin.pem"),
    })
}

/// The ASVK (AMD SEV VLEK key) of `product`, signed by its ARK; it signs VLEKs.
pub fn asvk(product: Product) -> Cert {
    pem(match product {
        Product::Milan => include_str!("../data/asvk_milan.pem"),
        Product::Genoa => include_str!("../data/asvk_genoa.pem"),
        Product::Turin => include_str!("../data/asvk_turin.pem"),
    })
}
