"""sev-snp-measure's library, on vmsa: the modules ``guest``, ``vcpu_types``, ``vmm_types``,
``sev_mode`` and ``id_block`` with the same names, signatures, results and exceptions as
sev-snp-measure 0.0.13's, so that ``from sevsnpmeasure import guest`` becomes
``from vmsa.sevsnpmeasure import guest`` and nothing else changes.

Where sev-snp-measure measures a launch that cannot happen, vmsa refuses it with a
``RuntimeError`` naming why (an SNP image without ``ASEV`` metadata, a variable store QEMU's
pflash refuses, ...); the SVSM mode reproduces 0.0.13's digests (its ``sev-snp-measure``
profile), whose VMSA is not the one its authors measured on a real launch (see ``vmsa measure
--svsm-profile``).
"""
