/*
 * PlasmaVMC BIOS test guest: a 512-byte boot sector for hypervisors that boot only by firmware (mvisor's
 * SeaBIOS, QEMU q35 without a kernel). SeaBIOS loads it at 0x7c00 and jumps to it in real mode.
 *
 * Behaviour (the test contract): it prints "PLASMAVMC-BIOS-GUEST READY\r\n" on the 16550 UART at 0x3f8,
 * then halts with interrupts off (the vCPU stays idle; the VM runs until it is stopped).
 */
        .code16
        .globl  _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %ss
        movw    $0x7c00, %sp
        movw    $msg, %si
print:
        lodsb
        testb   %al, %al
        jz      idle
        movw    $0x3f8, %dx
        outb    %al, %dx
        jmp     print
idle:
        hlt
        jmp     idle
msg:
        .asciz  "PLASMAVMC-BIOS-GUEST READY\r\n"
        .org    510
        .word   0xaa55
