//! vmsa's test firmware: tiny guests whose vCPUs report, over an I/O port, the registers they
//! started with, so a test can check a real vCPU against the VMSA it was programmed from.
//!
//! Two programs, each assembled once with GNU as (`as --32`/`as --64`, binutils 2.40) and kept
//! here as bytes with the disassembly beside each instruction:
//!
//! * [`REAL_MODE_DUMP`] (16-bit): writes EAX, EBX, ECX, EDX, ESI, EDI, EBP, ESP, CR0, CR2, CR3,
//!   CR4, DR6, DR7, EFLAGS, CS, DS, ES, SS, FS, GS, its own IP, EFER (low, high), PAT (low, high),
//!   FCW and the marker `0x564d5341` to port [`REPORT_PORT`](crate::vm::REPORT_PORT) as dwords — EAX first, before
//!   anything can change it — then overwrites the GPRs with 0xdeadbeef (so that a reset has
//!   something to undo) and halts. After reporting the GPRs it moves its stack to
//!   `0:e000 + 256 × APIC ID` (CPUID 1 EBX bits 31:24, with flag-neutral instructions only, before
//!   `pushfl`), so that vCPUs running at once never share a stack slot: they all start with
//!   SS:SP = 0:0, and a shared slot made `pushfl`/`call`/`fnstcw` race between vCPUs.
//! * [`LONG_MODE_DUMP`] (64-bit): the same for a long-mode vCPU, every 64-bit register as two
//!   dwords (low, high); RFLAGS is pushed right after the first `out`, before any instruction
//!   that changes flags, and RSP is reported as it was at entry. (No MXCSR: `stmxcsr` stops this nested KVM with an internal
//!   error, so MXCSR is checked by reading the vCPU back instead.)
//!
//! [`image`] lays them out as a firmware image that ends at 4 GiB: the reset vector at
//! 0xfffffff0 jumps to a copy of the real-mode program at [`BSP_ENTRY`], a second copy sits at
//! the SEV-ES AP reset address [`AP_RESET_ADDR`], and an OVMF footer table (written with
//! [`vmsa_core::ovmf::build()`]) carries the SEV-ES reset block and `ASEV` metadata, so the
//! launch the core computes ([`vmsa_core::launch::Launch`]) finds the APs' start exactly as it
//! does in a real OVMF.

/// The real-mode program (source: the right-hand column; `as --32`, `.code16`).
#[rustfmt::skip]
pub const REAL_MODE_DUMP: [u8; 240] = [
    0x66, 0xe7, 0xe0,                            // 0000: out %eax,$0xe0
    0x66, 0x89, 0xd8,                            // 0003: mov %ebx,%eax
    0x66, 0xe7, 0xe0,                            // 0006: out %eax,$0xe0
    0x66, 0x89, 0xc8,                            // 0009: mov %ecx,%eax
    0x66, 0xe7, 0xe0,                            // 000c: out %eax,$0xe0
    0x66, 0x89, 0xd0,                            // 000f: mov %edx,%eax
    0x66, 0xe7, 0xe0,                            // 0012: out %eax,$0xe0
    0x66, 0x89, 0xf0,                            // 0015: mov %esi,%eax
    0x66, 0xe7, 0xe0,                            // 0018: out %eax,$0xe0
    0x66, 0x89, 0xf8,                            // 001b: mov %edi,%eax
    0x66, 0xe7, 0xe0,                            // 001e: out %eax,$0xe0
    0x66, 0x89, 0xe8,                            // 0021: mov %ebp,%eax
    0x66, 0xe7, 0xe0,                            // 0024: out %eax,$0xe0
    0x66, 0x89, 0xe0,                            // 0027: mov %esp,%eax
    0x66, 0xe7, 0xe0,                            // 002a: out %eax,$0xe0
    0x0f, 0x20, 0xc0,                            // 002d: mov %cr0,%eax
    0x66, 0xe7, 0xe0,                            // 0030: out %eax,$0xe0
    0x0f, 0x20, 0xd0,                            // 0033: mov %cr2,%eax
    0x66, 0xe7, 0xe0,                            // 0036: out %eax,$0xe0
    0x0f, 0x20, 0xd8,                            // 0039: mov %cr3,%eax
    0x66, 0xe7, 0xe0,                            // 003c: out %eax,$0xe0
    0x0f, 0x20, 0xe0,                            // 003f: mov %cr4,%eax
    0x66, 0xe7, 0xe0,                            // 0042: out %eax,$0xe0
    0x0f, 0x21, 0xf0,                            // 0045: mov %db6,%eax
    0x66, 0xe7, 0xe0,                            // 0048: out %eax,$0xe0
    0x0f, 0x21, 0xf8,                            // 004b: mov %db7,%eax
    0x66, 0xe7, 0xe0,                            // 004e: out %eax,$0xe0
    0x66, 0xb8, 0x01, 0x00, 0x00, 0x00,          // 0051: mov $0x1,%eax
    0x0f, 0xa2,                                  // 0057: cpuid
    0x66, 0x0f, 0xcb,                            // 0059: bswap %ebx
    0x88, 0xdf,                                  // 005c: mov %bl,%bh
    0xb3, 0x00,                                  // 005e: mov $0x0,%bl
    0x8d, 0xa7, 0x00, 0xe0,                      // 0060: lea -0x2000(%bx),%sp
    0x66, 0x9c,                                  // 0064: pushfl
    0x66, 0x58,                                  // 0066: pop %eax
    0x66, 0xe7, 0xe0,                            // 0068: out %eax,$0xe0
    0x66, 0x31, 0xc0,                            // 006b: xor %eax,%eax
    0x8c, 0xc8,                                  // 006e: mov %cs,%ax
    0x66, 0xe7, 0xe0,                            // 0070: out %eax,$0xe0
    0x8c, 0xd8,                                  // 0073: mov %ds,%ax
    0x66, 0xe7, 0xe0,                            // 0075: out %eax,$0xe0
    0x8c, 0xc0,                                  // 0078: mov %es,%ax
    0x66, 0xe7, 0xe0,                            // 007a: out %eax,$0xe0
    0x8c, 0xd0,                                  // 007d: mov %ss,%ax
    0x66, 0xe7, 0xe0,                            // 007f: out %eax,$0xe0
    0x8c, 0xe0,                                  // 0082: mov %fs,%ax
    0x66, 0xe7, 0xe0,                            // 0084: out %eax,$0xe0
    0x8c, 0xe8,                                  // 0087: mov %gs,%ax
    0x66, 0xe7, 0xe0,                            // 0089: out %eax,$0xe0
    0xe8, 0x00, 0x00,                            // 008c: call 8f <dump+0x8f>
    0x58,                                        // 008f: pop %ax
    0x2d, 0x8f, 0x00,                            // 0090: sub $0x8f,%ax
    0x66, 0xe7, 0xe0,                            // 0093: out %eax,$0xe0
    0x66, 0xb9, 0x80, 0x00, 0x00, 0xc0,          // 0096: mov $0xc0000080,%ecx
    0x0f, 0x32,                                  // 009c: rdmsr
    0x66, 0xe7, 0xe0,                            // 009e: out %eax,$0xe0
    0x66, 0x89, 0xd0,                            // 00a1: mov %edx,%eax
    0x66, 0xe7, 0xe0,                            // 00a4: out %eax,$0xe0
    0x66, 0xb9, 0x77, 0x02, 0x00, 0x00,          // 00a7: mov $0x277,%ecx
    0x0f, 0x32,                                  // 00ad: rdmsr
    0x66, 0xe7, 0xe0,                            // 00af: out %eax,$0xe0
    0x66, 0x89, 0xd0,                            // 00b2: mov %edx,%eax
    0x66, 0xe7, 0xe0,                            // 00b5: out %eax,$0xe0
    0x83, 0xec, 0x02,                            // 00b8: sub $0x2,%sp
    0x89, 0xe5,                                  // 00bb: mov %sp,%bp
    0xd9, 0x7e, 0x00,                            // 00bd: fnstcw 0x0(%bp)
    0x66, 0x31, 0xc0,                            // 00c0: xor %eax,%eax
    0x8b, 0x46, 0x00,                            // 00c3: mov 0x0(%bp),%ax
    0x66, 0xe7, 0xe0,                            // 00c6: out %eax,$0xe0
    0x83, 0xc4, 0x02,                            // 00c9: add $0x2,%sp
    0x66, 0xb8, 0x41, 0x53, 0x4d, 0x56,          // 00cc: mov $0x564d5341,%eax
    0x66, 0xe7, 0xe0,                            // 00d2: out %eax,$0xe0
    0x66, 0xb8, 0xef, 0xbe, 0xad, 0xde,          // 00d5: mov $0xdeadbeef,%eax
    0x66, 0x89, 0xc3,                            // 00db: mov %eax,%ebx
    0x66, 0x89, 0xc1,                            // 00de: mov %eax,%ecx
    0x66, 0x89, 0xc2,                            // 00e1: mov %eax,%edx
    0x66, 0x89, 0xc6,                            // 00e4: mov %eax,%esi
    0x66, 0x89, 0xc7,                            // 00e7: mov %eax,%edi
    0x66, 0x89, 0xc5,                            // 00ea: mov %eax,%ebp
    0xf4,                                        // 00ed: hlt
    0xeb, 0xfd,                                  // 00ee: jmp ed <dump+0xed>
];

/// The long-mode program (source: the right-hand column; `as --64`).
#[rustfmt::skip]
pub const LONG_MODE_DUMP: [u8; 350] = [
    0xe7, 0xe0,                                  // 0000: out %eax,$0xe0
    0x9c,                                        // 0002: pushf
    0x48, 0xc1, 0xe8, 0x20,                      // 0003: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0007: out %eax,$0xe0
    0x48, 0x89, 0xd8,                            // 0009: mov %rbx,%rax
    0xe7, 0xe0,                                  // 000c: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 000e: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0012: out %eax,$0xe0
    0x48, 0x89, 0xc8,                            // 0014: mov %rcx,%rax
    0xe7, 0xe0,                                  // 0017: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0019: shr $0x20,%rax
    0xe7, 0xe0,                                  // 001d: out %eax,$0xe0
    0x48, 0x89, 0xd0,                            // 001f: mov %rdx,%rax
    0xe7, 0xe0,                                  // 0022: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0024: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0028: out %eax,$0xe0
    0x48, 0x89, 0xf0,                            // 002a: mov %rsi,%rax
    0xe7, 0xe0,                                  // 002d: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 002f: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0033: out %eax,$0xe0
    0x48, 0x89, 0xf8,                            // 0035: mov %rdi,%rax
    0xe7, 0xe0,                                  // 0038: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 003a: shr $0x20,%rax
    0xe7, 0xe0,                                  // 003e: out %eax,$0xe0
    0x48, 0x89, 0xe8,                            // 0040: mov %rbp,%rax
    0xe7, 0xe0,                                  // 0043: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0045: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0049: out %eax,$0xe0
    0x48, 0x8d, 0x44, 0x24, 0x08,                // 004b: lea 0x8(%rsp),%rax
    0xe7, 0xe0,                                  // 0050: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0052: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0056: out %eax,$0xe0
    0x4c, 0x89, 0xc0,                            // 0058: mov %r8,%rax
    0xe7, 0xe0,                                  // 005b: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 005d: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0061: out %eax,$0xe0
    0x4c, 0x89, 0xc8,                            // 0063: mov %r9,%rax
    0xe7, 0xe0,                                  // 0066: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0068: shr $0x20,%rax
    0xe7, 0xe0,                                  // 006c: out %eax,$0xe0
    0x4c, 0x89, 0xd0,                            // 006e: mov %r10,%rax
    0xe7, 0xe0,                                  // 0071: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0073: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0077: out %eax,$0xe0
    0x4c, 0x89, 0xd8,                            // 0079: mov %r11,%rax
    0xe7, 0xe0,                                  // 007c: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 007e: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0082: out %eax,$0xe0
    0x4c, 0x89, 0xe0,                            // 0084: mov %r12,%rax
    0xe7, 0xe0,                                  // 0087: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0089: shr $0x20,%rax
    0xe7, 0xe0,                                  // 008d: out %eax,$0xe0
    0x4c, 0x89, 0xe8,                            // 008f: mov %r13,%rax
    0xe7, 0xe0,                                  // 0092: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 0094: shr $0x20,%rax
    0xe7, 0xe0,                                  // 0098: out %eax,$0xe0
    0x4c, 0x89, 0xf0,                            // 009a: mov %r14,%rax
    0xe7, 0xe0,                                  // 009d: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 009f: shr $0x20,%rax
    0xe7, 0xe0,                                  // 00a3: out %eax,$0xe0
    0x4c, 0x89, 0xf8,                            // 00a5: mov %r15,%rax
    0xe7, 0xe0,                                  // 00a8: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 00aa: shr $0x20,%rax
    0xe7, 0xe0,                                  // 00ae: out %eax,$0xe0
    0x0f, 0x20, 0xc0,                            // 00b0: mov %cr0,%rax
    0xe7, 0xe0,                                  // 00b3: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 00b5: shr $0x20,%rax
    0xe7, 0xe0,                                  // 00b9: out %eax,$0xe0
    0x0f, 0x20, 0xd0,                            // 00bb: mov %cr2,%rax
    0xe7, 0xe0,                                  // 00be: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 00c0: shr $0x20,%rax
    0xe7, 0xe0,                                  // 00c4: out %eax,$0xe0
    0x0f, 0x20, 0xd8,                            // 00c6: mov %cr3,%rax
    0xe7, 0xe0,                                  // 00c9: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 00cb: shr $0x20,%rax
    0xe7, 0xe0,                                  // 00cf: out %eax,$0xe0
    0x0f, 0x20, 0xe0,                            // 00d1: mov %cr4,%rax
    0xe7, 0xe0,                                  // 00d4: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 00d6: shr $0x20,%rax
    0xe7, 0xe0,                                  // 00da: out %eax,$0xe0
    0x58,                                        // 00dc: pop %rax
    0xe7, 0xe0,                                  // 00dd: out %eax,$0xe0
    0x48, 0x8d, 0x05, 0x1a, 0xff, 0xff, 0xff,    // 00df: lea -0xe6(%rip),%rax # 0 <dump64>
    0xe7, 0xe0,                                  // 00e6: out %eax,$0xe0
    0x48, 0xc1, 0xe8, 0x20,                      // 00e8: shr $0x20,%rax
    0xe7, 0xe0,                                  // 00ec: out %eax,$0xe0
    0x31, 0xc0,                                  // 00ee: xor %eax,%eax
    0x66, 0x8c, 0xc8,                            // 00f0: mov %cs,%ax
    0xe7, 0xe0,                                  // 00f3: out %eax,$0xe0
    0x66, 0x8c, 0xd8,                            // 00f5: mov %ds,%ax
    0xe7, 0xe0,                                  // 00f8: out %eax,$0xe0
    0x66, 0x8c, 0xc0,                            // 00fa: mov %es,%ax
    0xe7, 0xe0,                                  // 00fd: out %eax,$0xe0
    0x66, 0x8c, 0xd0,                            // 00ff: mov %ss,%ax
    0xe7, 0xe0,                                  // 0102: out %eax,$0xe0
    0x66, 0x8c, 0xe0,                            // 0104: mov %fs,%ax
    0xe7, 0xe0,                                  // 0107: out %eax,$0xe0
    0x66, 0x8c, 0xe8,                            // 0109: mov %gs,%ax
    0xe7, 0xe0,                                  // 010c: out %eax,$0xe0
    0xb9, 0x80, 0x00, 0x00, 0xc0,                // 010e: mov $0xc0000080,%ecx
    0x0f, 0x32,                                  // 0113: rdmsr
    0xe7, 0xe0,                                  // 0115: out %eax,$0xe0
    0x89, 0xd0,                                  // 0117: mov %edx,%eax
    0xe7, 0xe0,                                  // 0119: out %eax,$0xe0
    0xb9, 0x77, 0x02, 0x00, 0x00,                // 011b: mov $0x277,%ecx
    0x0f, 0x32,                                  // 0120: rdmsr
    0xe7, 0xe0,                                  // 0122: out %eax,$0xe0
    0x89, 0xd0,                                  // 0124: mov %edx,%eax
    0xe7, 0xe0,                                  // 0126: out %eax,$0xe0
    0x48, 0x83, 0xec, 0x08,                      // 0128: sub $0x8,%rsp
    0xd9, 0x3c, 0x24,                            // 012c: fnstcw (%rsp)
    0x31, 0xc0,                                  // 012f: xor %eax,%eax
    0x66, 0x8b, 0x04, 0x24,                      // 0131: mov (%rsp),%ax
    0xe7, 0xe0,                                  // 0135: out %eax,$0xe0
    0x48, 0x83, 0xc4, 0x08,                      // 0137: add $0x8,%rsp
    0xb8, 0x41, 0x53, 0x4d, 0x56,                // 013b: mov $0x564d5341,%eax
    0xe7, 0xe0,                                  // 0140: out %eax,$0xe0
    0x48, 0xb8, 0xef, 0xbe, 0xad, 0xde, 0x00,    // 0142: movabs $0xdeadbeef,%rax
    0x00, 0x00, 0x00,                            // 0149: 
    0x48, 0x89, 0xc3,                            // 014c: mov %rax,%rbx
    0x48, 0x89, 0xc1,                            // 014f: mov %rax,%rcx
    0x48, 0x89, 0xc2,                            // 0152: mov %rax,%rdx
    0x49, 0x89, 0xc0,                            // 0155: mov %rax,%r8
    0x49, 0x89, 0xc7,                            // 0158: mov %rax,%r15
    0xf4,                                        // 015b: hlt
    0xeb, 0xfd,                                  // 015c: jmp 15b <dump64+0x15b>
];

/// Size of the test firmware image: 128 KiB, mapped at 0xfffe0000..4 GiB.
pub const IMAGE_SIZE: usize = 0x2_0000;
/// The firmware's first byte in guest-physical memory.
pub const IMAGE_BASE: u64 = crate::vm::FOUR_GIB - IMAGE_SIZE as u64;
/// Where the reset vector (0xfffffff0) jumps: a copy of [`REAL_MODE_DUMP`] in the BSP's segment
/// (CS base 0xffff0000, IP 0xe000).
pub const BSP_ENTRY: u32 = 0xffff_e000;
/// The SEV-ES AP reset address of the reset block: APs start at CS base 0xfffe0000 (`eip &
/// 0xffff0000`), IP 0xf000 (`eip & 0xffff`), a second copy of [`REAL_MODE_DUMP`] — in another
/// 64 KiB segment than the BSP, so a wrong CS base cannot go unnoticed.
pub const AP_RESET_ADDR: u32 = 0xfffe_f000;
/// The reset vector, 16 bytes below 4 GiB.
pub const RESET_VECTOR: u32 = 0xffff_fff0;
/// Guest RAM the test firmware needs: its real-mode stacks are at 0:e000 + 256 × APIC ID, the `ASEV` sections and
/// the long-mode guest below 2 MiB.
pub const RAM_SIZE: u64 = 2 << 20;

/// The `ASEV` sections of the test firmware (like OVMF's AmdSev build, scaled down into RAM):
/// pre-validated memory, the secrets page and the CPUID page.
pub const SEV_SECTIONS: [vmsa_core::ovmf::Section; 3] = {
    use vmsa_core::ovmf::{Section, SectionType};
    [
        Section::new(0x10_0000, 0x4000, SectionType::SNP_SEC_MEM),
        Section::new(0x10_4000, 0x1000, SectionType::SNP_SECRETS),
        Section::new(0x10_5000, 0x1000, SectionType::CPUID),
    ]
};

/// `jmp near` from the reset vector to [`BSP_ENTRY`], then `hlt`s: the last 16 bytes.
fn reset_vector_code() -> [u8; 16] {
    // E9 rel16: target = (RESET_VECTOR + 3 + rel) within the 64 KiB segment.
    let rel = ((BSP_ENTRY & 0xffff) as u16).wrapping_sub(((RESET_VECTOR & 0xffff) + 3) as u16);
    let mut code = [0xf4u8; 16];
    code[0] = 0xe9;
    code[1..3].copy_from_slice(&rel.to_le_bytes());
    code
}

/// The test firmware image: 128 KiB ending at 4 GiB, with the OVMF footer table (SEV-ES reset
/// block → [`AP_RESET_ADDR`], `ASEV` metadata [`SEV_SECTIONS`]).
pub fn image() -> Vec<u8> {
    let mut img = vec![0xf4u8; IMAGE_SIZE]; // hlt everywhere else
    let put = |img: &mut Vec<u8>, gpa: u32, bytes: &[u8]| {
        let off = (u64::from(gpa) - IMAGE_BASE) as usize;
        img[off..off + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut img, AP_RESET_ADDR, &REAL_MODE_DUMP);
    put(&mut img, BSP_ENTRY, &REAL_MODE_DUMP);
    // The footer table sits below the last 32 bytes; the reset vector code is written after it.
    let entries = [vmsa_core::ovmf::TableEntry::SevEsResetBlock {
        reset_addr: AP_RESET_ADDR,
    }];
    vmsa_core::ovmf::build(&mut img, &entries, Some(&SEV_SECTIONS))
        .expect("a 128 KiB buffer holds a two-entry footer table");
    put(&mut img, RESET_VECTOR, &reset_vector_code());
    img
}

/// Names of the dwords [`REAL_MODE_DUMP`] reports, in order.
pub const REAL_MODE_REPORT: &[&str] = &[
    "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "cr0", "cr2", "cr3", "cr4", "dr6",
    "dr7", "eflags", "cs", "ds", "es", "ss", "fs", "gs", "ip", "efer_lo", "efer_hi", "pat_lo",
    "pat_hi", "fcw", "marker",
];

/// Names of the dwords [`LONG_MODE_DUMP`] reports, in order.
pub const LONG_MODE_REPORT: &[&str] = &[
    "rax_lo", "rax_hi", "rbx_lo", "rbx_hi", "rcx_lo", "rcx_hi", "rdx_lo", "rdx_hi", "rsi_lo",
    "rsi_hi", "rdi_lo", "rdi_hi", "rbp_lo", "rbp_hi", "rsp_lo", "rsp_hi", "r8_lo", "r8_hi",
    "r9_lo", "r9_hi", "r10_lo", "r10_hi", "r11_lo", "r11_hi", "r12_lo", "r12_hi", "r13_lo",
    "r13_hi", "r14_lo", "r14_hi", "r15_lo", "r15_hi", "cr0_lo", "cr0_hi", "cr2_lo", "cr2_hi",
    "cr3_lo", "cr3_hi", "cr4_lo", "cr4_hi", "rflags", "rip_lo", "rip_hi", "cs", "ds", "es", "ss",
    "fs", "gs", "efer_lo", "efer_hi", "pat_lo", "pat_hi", "fcw", "marker",
];

/// The marker both programs write last (`"ASMV"` little endian).
pub const MARKER: u32 = 0x564d_5341;

/// What [`REAL_MODE_DUMP`] must report on a vCPU that holds `v` (a [`crate::ProgramReport::expected`]
/// VMSA) and entered the program at IP `entry_ip`.
pub fn real_mode_expected(v: &vmsa_core::Vmsa, entry_ip: u16) -> Vec<(&'static str, u32)> {
    let lo = |x: u64| x as u32;
    let hi = |x: u64| (x >> 32) as u32;
    let values = [
        lo(v.rax),
        lo(v.rbx),
        lo(v.rcx),
        lo(v.rdx),
        lo(v.rsi),
        lo(v.rdi),
        lo(v.rbp),
        lo(v.rsp),
        lo(v.cr0),
        lo(v.cr2),
        lo(v.cr3),
        lo(v.cr4),
        lo(v.dr6),
        lo(v.dr7),
        lo(v.rflags),
        u32::from(v.cs.selector),
        u32::from(v.ds.selector),
        u32::from(v.es.selector),
        u32::from(v.ss.selector),
        u32::from(v.fs.selector),
        u32::from(v.gs.selector),
        u32::from(entry_ip),
        lo(v.efer),
        hi(v.efer),
        lo(v.g_pat),
        hi(v.g_pat),
        u32::from(v.x87_fcw),
        MARKER,
    ];
    REAL_MODE_REPORT.iter().copied().zip(values).collect()
}

/// What [`LONG_MODE_DUMP`] must report on a vCPU that holds `v`.
pub fn long_mode_expected(v: &vmsa_core::Vmsa) -> Vec<(&'static str, u32)> {
    let mut values = Vec::new();
    for x in [
        v.rax, v.rbx, v.rcx, v.rdx, v.rsi, v.rdi, v.rbp, v.rsp, v.r8, v.r9, v.r10, v.r11, v.r12,
        v.r13, v.r14, v.r15, v.cr0, v.cr2, v.cr3, v.cr4,
    ] {
        values.push(x as u32);
        values.push((x >> 32) as u32);
    }
    values.push(v.rflags as u32);
    values.push(v.rip as u32);
    values.push((v.rip >> 32) as u32);
    for s in [&v.cs, &v.ds, &v.es, &v.ss, &v.fs, &v.gs] {
        values.push(u32::from(s.selector));
    }
    values.extend([
        v.efer as u32,
        (v.efer >> 32) as u32,
        v.g_pat as u32,
        (v.g_pat >> 32) as u32,
    ]);
    values.extend([u32::from(v.x87_fcw), MARKER]);
    LONG_MODE_REPORT.iter().copied().zip(values).collect()
}

/// What one of the test programs must report on port [`crate::vm::REPORT_PORT`] for a vCPU that
/// holds `held` (its [`crate::ProgramReport::expected`] VMSA), recognised by the length of
/// `reported`: the real-mode dump (the BSP enters it at [`BSP_ENTRY`], an AP at its reset
/// address) or the long-mode dump. `None` when the words are not one of these reports.
pub fn expected_report(
    held: &vmsa_core::Vmsa,
    bsp: bool,
    reported: &[u32],
) -> Option<Vec<(&'static str, u32)>> {
    if reported.last() != Some(&MARKER) {
        return None;
    }
    match reported.len() {
        n if n == REAL_MODE_REPORT.len() => {
            let ip = if bsp {
                (BSP_ENTRY & 0xffff) as u16
            } else {
                held.rip as u16
            };
            Some(real_mode_expected(held, ip))
        }
        n if n == LONG_MODE_REPORT.len() => Some(long_mode_expected(held)),
        _ => None,
    }
}

/// The differences between a report and what was expected: `(name, expected, reported)`.
/// A report of the wrong length shows up as missing or extra entries.
pub fn compare(
    expected: &[(&'static str, u32)],
    reported: &[u32],
) -> Vec<(String, Option<u32>, Option<u32>)> {
    let n = expected.len().max(reported.len());
    (0..n)
        .filter_map(|i| {
            let e = expected.get(i);
            let r = reported.get(i).copied();
            if e.map(|e| e.1) == r {
                None
            } else {
                Some((
                    e.map_or(format!("#{i}"), |e| e.0.to_string()),
                    e.map(|e| e.1),
                    r,
                ))
            }
        })
        .filter(|(_, e, r)| e.is_some() || r.is_some())
        .collect()
}

/// Guest-physical layout of the long-mode guest.
pub mod long_mode {
    /// PML4 (one entry → the PDPT).
    pub const PML4: u64 = 0x1000;
    /// PDPT (one entry → the PD).
    pub const PDPT: u64 = 0x2000;
    /// PD: 512 × 2 MiB pages identity-mapping the first GiB.
    pub const PD: u64 = 0x3000;
    /// The code, [`super::LONG_MODE_DUMP`].
    pub const CODE: u64 = 0x8000;
    /// Top of the stack.
    pub const STACK_TOP: u64 = 0x7000;
    /// GDT (null, 64-bit code 0x08, data 0x10), for a guest that reloads segments.
    pub const GDT: u64 = 0x4000;
}

/// The pages of the long-mode guest: identity-mapping page tables (4-level, 2 MiB pages), a GDT
/// and the code. `(gpa, bytes)`, each a whole 4 KiB page.
pub fn long_mode_pages() -> Vec<(u64, Vec<u8>)> {
    use long_mode::*;
    let entry_page = |entries: &[(usize, u64)]| {
        let mut p = vec![0u8; 4096];
        for &(i, e) in entries {
            p[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
        }
        p
    };
    const P_RW: u64 = 0x3;
    const PS: u64 = 0x80;
    let pd: Vec<(usize, u64)> = (0..512)
        .map(|i| (i, ((i as u64) << 21) | P_RW | PS))
        .collect();
    let gdt = entry_page(&[(1, 0x00af_9b00_0000_ffff), (2, 0x00cf_9300_0000_ffff)]);
    let mut code = vec![0xf4u8; 4096];
    code[..LONG_MODE_DUMP.len()].copy_from_slice(&LONG_MODE_DUMP);
    vec![
        (PML4, entry_page(&[(0, PDPT | P_RW)])),
        (PDPT, entry_page(&[(0, PD | P_RW)])),
        (PD, entry_page(&pd)),
        (GDT, gdt),
        (CODE, code),
    ]
}

/// A 64-bit VP context for the long-mode guest, as an SNP IGVM file carries it: paging on
/// (CR3 = [`long_mode::PML4`]), 64-bit CS, EFER.LME|LMA|NXE with SVME (an SEV VMSA has it), a
/// distinct value in every GPR so that a swapped register cannot go unnoticed.
pub fn long_mode_vmsa() -> vmsa_core::Vmsa {
    use vmsa_core::arch::{DR6_RESET, DR7_RESET, FCW_RESET, MXCSR_RESET, PAT_RESET, XCR0_RESET};
    use vmsa_core::flags::{Cr0, Cr4, Efer, SevFeatures};
    use vmsa_core::{SegmentAttributes, VmcbSegment};
    let mut v: vmsa_core::Vmsa = zerocopy::FromZeros::new_zeroed();
    v.cs = VmcbSegment::new(0x08, SegmentAttributes::CODE_64BIT, 0xffff_ffff, 0);
    let data = VmcbSegment::new(0x10, SegmentAttributes::DATA_32BIT_FLAT, 0xffff_ffff, 0);
    (v.ds, v.es, v.ss, v.fs, v.gs) = (data, data, data, data, data);
    v.tr = VmcbSegment::new(0, SegmentAttributes::TSS32_BUSY_RESET, 0xffff, 0);
    v.ldtr = VmcbSegment::new(0, SegmentAttributes::LDT_RESET, 0xffff, 0);
    v.gdtr = VmcbSegment::new(0, SegmentAttributes(0), 0x17, long_mode::GDT);
    v.idtr = VmcbSegment::new(0, SegmentAttributes(0), 0, 0);
    v.cr0 = (Cr0::PE | Cr0::MP | Cr0::ET | Cr0::NE | Cr0::WP | Cr0::PG).bits();
    v.cr3 = long_mode::PML4;
    v.cr4 = (Cr4::PAE | Cr4::OSFXSR | Cr4::OSXMMEXCPT).bits();
    v.efer = (Efer::LME | Efer::LMA | Efer::NXE | Efer::SVME).bits();
    v.rip = long_mode::CODE;
    v.rsp = long_mode::STACK_TOP;
    v.rflags = 2;
    let mut x = 0x0101_0101_0101_0101u64;
    for r in [
        &mut v.rax, &mut v.rbx, &mut v.rcx, &mut v.rdx, &mut v.rsi, &mut v.rdi, &mut v.rbp,
        &mut v.r8, &mut v.r9, &mut v.r10, &mut v.r11, &mut v.r12, &mut v.r13, &mut v.r14,
        &mut v.r15,
    ] {
        *r = x;
        x = x.wrapping_add(0x1111_1111_1111_1111);
    }
    v.dr6 = DR6_RESET;
    v.dr7 = DR7_RESET;
    v.g_pat = PAT_RESET;
    v.xcr0 = XCR0_RESET;
    v.x87_fcw = FCW_RESET;
    v.mxcsr = MXCSR_RESET;
    v.sev_features = SevFeatures::SNP_ACTIVE.bits();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmsa_core::ovmf::OvmfImage;

    #[test]
    fn image_carries_the_reset_block_and_metadata() {
        let img = image();
        assert_eq!(img.len(), IMAGE_SIZE);
        let fw = OvmfImage::parse(&img).unwrap();
        assert_eq!(fw.sev_es_reset_addr(), Some(AP_RESET_ADDR));
        let md = fw.sev_metadata().unwrap();
        assert!(md.sections().eq(SEV_SECTIONS.iter().copied()));
        // The reset vector: jmp near 0xe000 (E9 0D E0), then hlt.
        assert_eq!(
            img[IMAGE_SIZE - 16..IMAGE_SIZE - 12],
            [0xe9, 0x0d, 0xe0, 0xf4]
        );
        let ap = (u64::from(AP_RESET_ADDR) - IMAGE_BASE) as usize;
        assert_eq!(img[ap..ap + REAL_MODE_DUMP.len()], REAL_MODE_DUMP);
    }

    #[test]
    fn report_tables_match_the_programs() {
        // Every `out %eax,$0xe0` (66 e7 e0 in 16-bit code, e7 e0 in 64-bit code) is one dword.
        let outs16 = REAL_MODE_DUMP
            .windows(3)
            .filter(|w| *w == [0x66, 0xe7, 0xe0])
            .count();
        assert_eq!(outs16, REAL_MODE_REPORT.len());
        let outs64 = LONG_MODE_DUMP
            .windows(2)
            .filter(|w| *w == [0xe7, 0xe0])
            .count();
        assert_eq!(outs64, LONG_MODE_REPORT.len());
        let v = long_mode_vmsa();
        assert_eq!(long_mode_expected(&v).len(), LONG_MODE_REPORT.len());
        assert_eq!(real_mode_expected(&v, 0).len(), REAL_MODE_REPORT.len());
    }
}
