/*
 * PlasmaVMC PVH test guest: a tiny x86 kernel for Firecracker (and any PVH loader) on hosts whose KVM
 * cannot run Linux (kvm_pvm). It is an ELF64 file with a Xen PVH note (type 18, XEN_ELFNOTE_PHYS32_ENTRY)
 * giving its 32-bit entry point; the loader puts it at 0x100000 and enters it in 32-bit protected mode
 * with paging off.
 *
 * Behaviour (the test contract, relied on by tests and the PlasmaVMC seed image):
 *   - on boot it prints "PLASMAVMC-PVH-GUEST READY\n" on the 16550 UART at 0x3f8;
 *   - it echoes every byte received on the UART; at each end of line ('\r' or '\n') it prints
 *     "#<n> <line>\n", n being a 4-hex-digit count of lines seen since boot (memory state that a
 *     snapshot/restore must carry over);
 *   - the line "poweroff" or "reboot" makes it print "bye\n" and pulse the i8042 reset line (0xFE to
 *     port 0x64): Firecracker ends the VM, QEMU resets it;
 *   - the line "halt" makes it print "halted\n" and halt with interrupts off (the vCPU stays idle);
 *   - Ctrl-Alt-Del on the i8042 keyboard (Firecracker SendCtrlAltDel: scan code set 2, Del = E0 71)
 *     makes it print "ctrl-alt-del\n" and power off as above.
 * It polls the UART and the i8042 instead of taking interrupts: under kvm_pvm a non-PVM-aware guest dies
 * with KVM_EXIT_INTERNAL_ERROR when an interrupt is delivered through its IDT, so a running guest keeps
 * one host CPU busy (tests keep it short-lived); "halt" stops that.
 */
        .set    COM1, 0x3f8
        .set    LINE_MAX, 64

        .section .note.Xen, "a", @note
        .balign 4
        .long   4                       /* namesz: "Xen\0" */
        .long   4                       /* descsz */
        .long   18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz  "Xen"
        .long   pvh_entry

        .text
        .code32
        .globl  pvh_entry
pvh_entry:
        cli
        cld
        lgdt    gdt_desc
        ljmp    $0x08, $reloaded
reloaded:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    %ax, %fs
        movw    %ax, %gs
        movl    $stack_top, %esp
        call    uart_init
        movl    $msg_ready, %esi
        call    puts

main_loop:
        pause
poll:
        movw    $COM1+5, %dx            /* line status: bit 0 = data ready */
        inb     %dx, %al
        testb   $1, %al
        jz      poll_kbd
        movw    $COM1, %dx
        inb     %dx, %al
        call    on_byte
        jmp     poll
poll_kbd:
        inb     $0x64, %al              /* i8042 status: bit 0 = output buffer full */
        testb   $1, %al
        jz      main_loop
        inb     $0x60, %al
        cmpb    $0x71, %al              /* Del, the last byte of Ctrl-Alt-Del */
        jne     poll_kbd
        movl    $msg_cad, %esi
        call    puts
        jmp     power_off

/* on_byte: echo %al; collect it into the line buffer; act on a complete line. */
on_byte:
        cmpb    $'\r', %al
        je      end_of_line
        cmpb    $'\n', %al
        je      end_of_line
        call    putc
        movl    line_len, %ecx
        cmpl    $LINE_MAX, %ecx
        jae     1f
        movb    %al, line_buf(%ecx)
        incl    line_len
1:      ret

end_of_line:
        movb    $'\n', %al
        call    putc
        incw    line_count
        movb    $'#', %al
        call    putc
        movw    line_count, %bx
        call    puthex16
        movb    $' ', %al
        call    putc
        movl    $line_buf, %esi
        movl    line_len, %ecx
        call    putn
        movb    $'\n', %al
        call    putc
        movl    $cmd_poweroff, %edi
        call    line_is
        je      do_poweroff
        movl    $cmd_reboot, %edi
        call    line_is
        je      do_poweroff
        movl    $cmd_halt, %edi
        call    line_is
        je      do_halt
        movl    $0, line_len
        ret

do_poweroff:
        movl    $msg_bye, %esi
        call    puts
power_off:
        movb    $0xfe, %al
        outb    %al, $0x64
1:      cli
        hlt
        jmp     1b

do_halt:
        movl    $msg_halted, %esi
        call    puts
        jmp     1b

/* line_is: ZF set when the line buffer equals the NUL-terminated string at %edi. */
line_is:
        movl    line_len, %ecx
        movl    $line_buf, %esi
        cmpb    $0, (%edi,%ecx)
        jne     2f
        repe cmpsb
        ret
2:      ret                             /* ZF is clear from the cmpb */

/* putc: write %al to the UART once its transmit holding register is empty. */
putc:
        pushl   %eax
        movw    $COM1+5, %dx
1:      inb     %dx, %al
        testb   $0x20, %al
        jz      1b
        popl    %eax
        movw    $COM1, %dx
        outb    %al, %dx
        ret

/* puts: write the NUL-terminated string at %esi. */
puts:
        lodsb
        testb   %al, %al
        jz      1f
        call    putc
        jmp     puts
1:      ret

/* putn: write %ecx bytes from %esi. */
putn:
        jecxz   1f
        lodsb
        pushl   %ecx
        call    putc
        popl    %ecx
        decl    %ecx
        jmp     putn
1:      ret

/* puthex16: write %bx as 4 hex digits. */
puthex16:
        movl    $4, %ecx
1:      rolw    $4, %bx
        movb    %bl, %al
        andb    $0x0f, %al
        addb    $'0', %al
        cmpb    $'9', %al
        jbe     2f
        addb    $('a' - '9' - 1), %al
2:      pushl   %ecx
        call    putc
        popl    %ecx
        loop    1b
        ret

/* uart_init: 8N1, FIFOs on, no interrupts (see above). */
uart_init:
        movw    $COM1+3, %dx
        movb    $0x03, %al
        outb    %al, %dx
        movw    $COM1+2, %dx
        movb    $0x07, %al
        outb    %al, %dx
        movw    $COM1+1, %dx
        xorb    %al, %al
        outb    %al, %dx
        ret

        .section .rodata
        .balign 8
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* 0x08: flat 32-bit code */
        .quad   0x00cf92000000ffff      /* 0x10: flat data */
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
msg_ready:      .asciz "PLASMAVMC-PVH-GUEST READY\n"
msg_bye:        .asciz "bye\n"
msg_halted:     .asciz "halted\n"
msg_cad:        .asciz "ctrl-alt-del\n"
cmd_poweroff:   .asciz "poweroff"
cmd_reboot:     .asciz "reboot"
cmd_halt:       .asciz "halt"

        .data
        .balign 4
line_len:       .long 0
line_count:     .word 0

        .bss
        .balign 16
line_buf:       .skip LINE_MAX
stack:          .skip 4096
stack_top:
