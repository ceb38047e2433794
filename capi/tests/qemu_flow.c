/* What QEMU's SEV code does, through libvmsa_capi: load the firmware, compute the launch of an
 * SNP guest, get every vCPU's VMSA, walk its fields, check it against what KVM reproduces, and
 * print the launch digest (compared with `vmsa measure` by scripts/capi-test.sh). Then the
 * error paths: a changed sev_features refused with its reason, malformed firmware, null
 * arguments, an invalid enum value. Built with AddressSanitizer and UBSan.
 *
 *   qemu_flow FIRMWARE VCPUS VCPU_SIG
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vmsa.h"

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    fclose(f);
    *len = (size_t)n;
    return buf;
}


int main(int argc, char **argv) {
    CHECK(argc == 4, "usage: qemu_flow FIRMWARE VCPUS VCPU_SIG");
    size_t len;
    unsigned char *bytes = read_file(argv[1], &len);
    VmsaError err;
    VmsaFirmware *fw = NULL;
    CHECK(vmsa_firmware_parse(bytes, len, &fw, &err) == VMSA_STATUS_OK, "parse: %s", err.message);
    free(bytes); /* the handle owns its copy */

    VmsaConfig cfg = { VMSA_MODE_SNP, (uint32_t)atoi(argv[2]), (uint32_t)strtoul(argv[3], NULL, 0), VMSA_VMM_QEMU, 0 };
    VmsaLaunch *l = NULL;
    CHECK(vmsa_launch_new(fw, &cfg, &l, &err) == VMSA_STATUS_OK, "launch: %s", err.message);
    uint32_t vcpus = vmsa_launch_vcpus(l);
    CHECK(vcpus == cfg.vcpus, "vcpus %u", vcpus);

    /* The fields QEMU copies, by name. */
    uint32_t rip_off = 0, sev_features_off = 0;
    size_t n = vmsa_field_count();
    CHECK(n > 100, "only %zu fields", n);
    for (size_t i = 0; i < n; i++) {
        const char *name; uint32_t off, size;
        CHECK(vmsa_field(i, &name, &off, &size) == VMSA_STATUS_OK, "field %zu", i);
        CHECK(off + size <= VMSA_PAGE_SIZE, "field %s out of the page", name);
        if (strcmp(name, "rip") == 0) rip_off = off;
        if (strcmp(name, "sev_features") == 0) sev_features_off = off;
    }
    CHECK(rip_off == 0x178 && sev_features_off == 0x3b0, "rip %#x sev_features %#x", rip_off, sev_features_off);

    unsigned char page[VMSA_PAGE_SIZE];
    for (uint32_t cpu = 0; cpu < vcpus; cpu++) {
        CHECK(vmsa_launch_vmsa(l, cpu, page, &err) == VMSA_STATUS_OK, "vmsa %u: %s", cpu, err.message);
        uint64_t rip, features;
        memcpy(&rip, page + rip_off, 8);
        memcpy(&features, page + sev_features_off, 8);
        printf("vcpu%u rip=%#llx sev_features=%#llx\n", cpu, (unsigned long long)rip, (unsigned long long)features);
        CHECK(vmsa_launch_check(l, cpu, page, &err) == VMSA_STATUS_OK, "check %u: %s", cpu, err.message);
    }
    /* A VMM that asks for sev_features the launch does not have: KVM imposes the launch's. */
    uint64_t bad = 0x1 | 0x20 | 0x4;
    memcpy(page + sev_features_off, &bad, 8);
    CHECK(vmsa_launch_check(l, vcpus - 1, page, &err) == VMSA_STATUS_NOT_REPRODUCED, "a changed sev_features passed");
    CHECK(err.status == VMSA_STATUS_NOT_REPRODUCED && strstr(err.message, "sev_features"), "message: %s", err.message);
    printf("changed sev_features: %.120s\n", err.message);

    unsigned char digest[48];
    size_t dlen = 0;
    CHECK(vmsa_launch_digest(l, digest, &dlen, &err) == VMSA_STATUS_OK && dlen == 48, "digest");
    printf("digest ");
    for (size_t i = 0; i < dlen; i++) printf("%02x", digest[i]);
    printf("\n");

    /* Error paths: every one a status and a message, nothing crashes. */
    CHECK(vmsa_launch_vmsa(l, vcpus, page, &err) == VMSA_STATUS_INVALID_ARGUMENT, "vCPU past the end");
    CHECK(vmsa_launch_new(NULL, &cfg, &l, &err) == VMSA_STATUS_INVALID_ARGUMENT, "null firmware");
    VmsaConfig odd = cfg;
    odd.mode = 7;
    VmsaLaunch *none = NULL;
    CHECK(vmsa_launch_new(fw, &odd, &none, &err) == VMSA_STATUS_INVALID_ARGUMENT && none == NULL, "mode 7");
    printf("mode 7: %s\n", err.message);
    odd = cfg;
    odd.vcpus = 5000;
    CHECK(vmsa_launch_new(fw, &odd, &none, &err) == VMSA_STATUS_REFUSED, "5000 vCPUs");
    printf("5000 vCPUs: %s\n", err.message);
    unsigned char junk[100] = { 0 };
    VmsaFirmware *bad_fw = NULL;
    CHECK(vmsa_firmware_parse(junk, sizeof junk, &bad_fw, &err) == VMSA_STATUS_INVALID_FIRMWARE && bad_fw == NULL, "junk firmware");
    printf("junk firmware: %s\n", err.message);
    CHECK(vmsa_firmware_parse(junk, sizeof junk, &bad_fw, NULL) == VMSA_STATUS_INVALID_FIRMWARE, "null error pointer");

    vmsa_launch_free(l);
    vmsa_firmware_free(fw);
    vmsa_launch_free(NULL);
    vmsa_firmware_free(NULL);
    printf("vmsa %s: ok\n", vmsa_version());
    return 0;
}
