//! `vmsa-kvm`: programs real KVM vCPUs from VMSAs, reads them back, runs them, and drives the
//! SEV-ES/SNP launch sequence. The only crate of the workspace that talks to the kernel.
