//! Fuzz the certificate reading of `vmsa-attest`: any bytes as DER, PEM or a PEM bundle; a
//! certificate that parses has its AMD extensions, kind, product and validity read, and is
//! checked as a report's signer and against AMD's built-in keys, without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_attest::{Cert, builtin};
use vmsa_core::report::Product;

fuzz_target!(|data: &[u8]| {
    let mut certs = Vec::new();
    if let Ok(c) = Cert::parse(data) {
        certs.push(c);
    }
    if let Ok(b) = Cert::bundle(data) {
        certs.extend(b);
    }
    for c in &certs {
        let _ = (
            c.kind(),
            c.product(),
            c.extensions(),
            c.common_name(),
            c.validity(),
        );
        let _ = c.valid_at(std::time::SystemTime::now());
        let _ = c.signed_by(&builtin::ask(Product::Milan));
        let _ = c.signed_by(c);
    }
});
