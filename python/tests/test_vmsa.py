"""The Python API of vmsa against known answers: sev-snp-measure's test vectors
(tests/data/sev-snp-measure/vectors.json), a real attestation report, and the core's refusals."""
import json
import pathlib
import unittest

import vmsa

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
VECTORS = json.loads((DATA / "sev-snp-measure" / "vectors.json").read_text())


class TestLaunch(unittest.TestCase):
    def test_every_vector(self):
        # kernel/initrd '' is an empty file (the peer's tests use /dev/null), null not given.
        checked = 0
        for v in VECTORS["vectors"]:
            if v.get("snp_ovmf_hash"):
                continue
            mode = {"seves": "sev-es"}.get(v["mode"], v["mode"])
            kernel = None if v.get("kernel") is None else (v["kernel"] or "/dev/null")
            initrd = None if v.get("initrd") is None else (v["initrd"] or "/dev/null")
            sig = v.get("vcpu_sig")
            l = vmsa.launch(DATA / "sev-snp-measure" / v["firmware"], mode=mode,
                            vcpus=v["vcpus"], vcpu_sig=int(sig, 16) if sig else 0,
                            vmm_type=v["vmm"], kernel=kernel, initrd=initrd if kernel else None,
                            append=(v.get("append") or None) if kernel else None,
                            guest_features=int(v["guest_features"], 16) if mode == "snp" else None)
            self.assertEqual(l.hexdigest(), v["digest"], v["name"])
            checked += 1
        self.assertGreater(checked, 10)

    def test_vmsas_fields_explain_and_diff(self):
        l = vmsa.launch(DATA / "sev-snp-measure" / "ovmf_AmdSev_suffix.bin", mode="snp", vcpus=3,
                        vcpu_type="EPYC-Milan", explain=True)
        self.assertEqual(len(l.vmsas), 3)
        bsp, ap = l.vmsas[0], l.vmsas[1]
        self.assertEqual(bsp["rip"], 0xfff0)
        self.assertEqual(bsp["cs"][3], 0xffff0000)  # (selector, attrib, limit, base)
        self.assertEqual(bsp["rdx"], vmsa.cpu_sig(25, 1, 1))
        self.assertEqual(bsp["sev_features"], 0x1)
        self.assertEqual(bsp.offsets["rip"], 0x178)
        self.assertEqual(len(bytes(bsp)), 4096)
        self.assertEqual(l.vmsas[1], l.vmsas[2])
        changed = {name for _, name, _, _ in bsp.diff(ap)}
        self.assertIn("rip", changed)
        self.assertIn("cs", changed)
        items = l.explain()
        self.assertEqual([i.item for i in items[-3:]], ["vmsa cpu0", "vmsa cpu1", "vmsa cpu2"])
        self.assertEqual(items[-1].digest_after, l.hexdigest())
        self.assertEqual(items[0].item, "firmware")

    def test_refusals_are_runtime_errors_with_the_reason(self):
        with self.assertRaises(RuntimeError) as c:
            vmsa.launch(DATA / "sev-snp-measure" / "ovmf_OvmfX64_suffix.bin", mode="snp",
                        vcpus=1, vcpu_type="EPYC-v4", kernel="/dev/null")
        self.assertEqual(str(c.exception),
                         "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section")
        with self.assertRaises(RuntimeError) as c:
            vmsa.launch(DATA / "svsm" / "svsm_ovmf.fd", mode="snp", vcpus=2, vcpu_type="EPYC-v4",
                        svsm=DATA / "svsm" / "svsm.bin", vars_size=4097)
        self.assertIn("non-zero multiple of 0x1000", str(c.exception))
        with self.assertRaises(ValueError):
            vmsa.launch(DATA / "sev-snp-measure" / "ovmf_AmdSev_suffix.bin", vcpu_type="Pentium")
        with self.assertRaises(OSError):
            vmsa.launch(DATA / "no-such-file.fd", vcpus=1)

    def test_kernel_hashes_measure_as_the_files(self):
        import hashlib
        import tempfile
        fw = DATA / "sev-snp-measure" / "ovmf_AmdSev_suffix.bin"
        with tempfile.TemporaryDirectory() as d:
            k = pathlib.Path(d) / "vmlinuz"
            k.write_bytes(b"a kernel")
            files = vmsa.launch(fw, vcpus=2, vcpu_type="EPYC-v4", kernel=k, append="console=ttyS0")
            hashes = (hashlib.sha256(b"a kernel").digest(), hashlib.sha256(b"").digest(),
                      hashlib.sha256(b"console=ttyS0\0").digest())
            self.assertEqual(vmsa.launch(fw, vcpus=2, vcpu_type="EPYC-v4",
                                         kernel_hashes=hashes).digest, files.digest)
            self.assertNotEqual(vmsa.launch(fw, vcpus=2, vcpu_type="EPYC-v4").digest,
                                files.digest)
            with self.assertRaises(ValueError):
                vmsa.launch(fw, vcpus=2, vcpu_type="EPYC-v4", kernel=k, kernel_hashes=hashes)
            with self.assertRaises(ValueError):
                vmsa.launch(fw, vcpus=2, vcpu_type="EPYC-v4", kernel_hashes=(b"short",) * 3)

    def test_host_profiles(self):
        fw = DATA / "sev-snp-measure" / "ovmf_AmdSev_suffix.bin"
        plain = vmsa.launch(fw, vcpus=4, vcpu_type="EPYC-v4")
        self.assertEqual(vmsa.launch(fw, vcpus=4, vcpu_type="EPYC-v4", qemu="10.0").digest,
                         plain.digest)
        q101 = vmsa.launch(fw, vcpus=4, vcpu_type="EPYC-v4", qemu="10.1", host_kernel="6.12")
        self.assertNotEqual(q101.digest, plain.digest)
        self.assertEqual(q101.vmsas[1]["x87_fcw"], 0)
        self.assertEqual(q101.vmsas[0]["x87_fcw"], 0x37f)
        with self.assertRaises(RuntimeError) as c:
            vmsa.launch(fw, vcpus=4, vcpu_type="EPYC-v4", qemu="9.0")
        self.assertIn("no sev-snp-guest", str(c.exception))
        es = dict(mode="seves", vcpus=2, vcpu_type="EPYC-v4", qemu="9.1", host_kernel="6.10")
        self.assertNotEqual(vmsa.launch(fw, **es).digest,
                            vmsa.launch(fw, legacy_vm_type="off", **es).digest)

    def test_a_libkrun_launch_is_vmsa_measures(self):
        import subprocess
        import tempfile
        qboot = DATA / "libkrunfw" / "qboot-sev-bios.bin"
        with tempfile.TemporaryDirectory() as d:
            k, i = pathlib.Path(d) / "k", pathlib.Path(d) / "i"
            k.write_bytes(bytes(range(256)) * 256)
            i.write_bytes(b"\x5a" * 0x10000)
            for libkrun in ("1.16", "1.12"):
                l = vmsa.krun_launch(qboot, k, i, ram_mib=512, vcpus=2, libkrun=libkrun,
                                     explain=True)
                cli = subprocess.run(
                    ["cargo", "run", "-q", "--release", "--bin", "vmsa", "--", "measure", "--mode", "snp",
                     "--vcpus", "2", "--krun-qboot", str(qboot), "--krun-kernel", str(k),
                     "--krun-initrd", str(i), "--ram-mib", "512", "--libkrun", libkrun],
                    check=True, capture_output=True, text=True, cwd=REPO).stdout.strip()
                self.assertEqual(l.hexdigest(), cli)
                kinds = [m.item for m in l.explain()]
                kinds = [k for n, k in enumerate(kinds) if n == 0 or kinds[n - 1] != k]
                self.assertEqual(kinds[:5], ["firmware", "kernel", "initrd", "boot-params",
                                             "section SNP_SEC_MEM"])
            self.assertEqual(l.vmsas[1]["rip"], 0xfff3)
            with self.assertRaises(RuntimeError):
                vmsa.krun_launch(qboot, k, i, ram_mib=8)

    def test_svsm_launch_is_the_measured_one(self):
        l = vmsa.launch(DATA / "svsm" / "svsm_ovmf.fd", mode="snp", vcpus=2, vcpu_type="EPYC-v4",
                        svsm=DATA / "svsm" / "svsm.bin", vars_size=540672)
        self.assertTrue(l.hexdigest().startswith("4ae03ca013690e95"))

    def test_solve_finds_the_launch(self):
        fw = DATA / "sev-snp-measure" / "ovmf_AmdSev_suffix.bin"
        l = vmsa.launch(fw, mode="snp", vcpus=7, vcpu_type="EPYC-Genoa", vmm_type="gce",
                        guest_features=0x21)
        matches, searched = vmsa.solve(l.digest, ovmf=[fw], vcpus=(1, 16))
        self.assertIn({"ovmf": str(fw), "vcpus": 7, "vcpu_sig": vmsa.cpu_sig(25, 17, 0),
                       "vmm_type": "gce", "guest_features": 0x21, "kernel_hashes": False,
                       "qemu_10_1_aps": False},
                      matches)
        self.assertGreater(searched, 16 * 4)
        none, _ = vmsa.solve(bytes(48), ovmf=[fw], vcpus=(1, 4))
        self.assertEqual(none, [])

    def test_snp_ovmf_hash(self):
        for v in VECTORS["snp_ovmf_hash"]:
            self.assertEqual(vmsa.snp_ovmf_hash(DATA / "sev-snp-measure" / v["firmware"]).hex(),
                             v["digest"])


class TestAttestation(unittest.TestCase):
    def test_a_real_report(self):
        r = vmsa.report((DATA / "reports" / "genoa-v5-oak.report.bin").read_bytes())
        self.assertTrue(r["measurement"].startswith("c57729018b0a6fb9"))
        self.assertEqual(r["version"], 5)
        with self.assertRaises(ValueError):
            vmsa.report(b"not a report")

    def test_a_real_report_verifies_and_a_tampered_one_does_not(self):
        reports = DATA / "reports"
        report = (reports / "genoa-v5-oak.report.bin").read_bytes()
        vcek = (reports / "genoa-v5-oak.vcek.der").read_bytes()
        v = vmsa.verify(report, vcek)
        self.assertTrue(v.passed, v.checks)
        self.assertIn(("report signature", True), [(n, ok) for n, ok, _ in v.checks])
        tampered = bytearray(report)
        tampered[0x90] ^= 1
        v = vmsa.verify(bytes(tampered), vcek)
        self.assertFalse(v.passed)
        self.assertIn(("report signature", False), [(n, ok) for n, ok, _ in v.checks])

    def test_id_block_signs_and_verifies(self):
        keys = DATA / "keys"
        b = vmsa.id_block(bytes(range(48)), (keys / "id-sec1.pem").read_text(),
                          (keys / "author-pkcs8.pem").read_text(), guest_svn=3)
        self.assertEqual(len(b.id_block), 96)
        self.assertEqual(len(b.id_auth), 4096)
        self.assertEqual(b.id_block[:48], bytes(range(48)))
        self.assertEqual(vmsa.verify_id_block(b.id_block, b.id_auth), (b.id_key_digest, b.author_key_digest))
        self.assertTrue(b.qemu_properties().endswith(",author-key-enabled=on"))
        tampered = bytearray(b.id_block)
        tampered[0x54] ^= 1  # GUEST_SVN
        with self.assertRaises(ValueError):
            vmsa.verify_id_block(bytes(tampered), b.id_auth)


if __name__ == "__main__":
    unittest.main()
