/*
 * Minimal Cortex-M4 startup for the MPS2 AN386 board (and qemu-system-arm -M mps2-an386).
 *
 * The vector table sits at address 0 (see mps2_an386.ld). On reset the core loads the stack
 * pointer from entry 0 and jumps to Reset_Handler, which enables the FPU and hands over to
 * newlib's _start (rdimon-crt0 with --specs=rdimon.specs): that clears .bss, opens the
 * semihosting console, runs main() and exits through semihosting.
 *
 * On your own board keep Reset_Handler's FPU enable, and call your usual startup instead of _start.
 */
#include <stdint.h>

extern uint32_t __stack;         /* top of the stack, from the linker script */
extern void _start(void);        /* newlib's C runtime entry */
extern void _exit(int status);   /* newlib: ends the program (a semihosting exit under qemu) */

/* Cortex-M4 Coprocessor Access Control Register: bits 20-23 give CP10 and CP11 (the FPU) full
 * access. Until they are set, the first floating-point instruction raises a UsageFault. */
#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_FPU_FULL_ACCESS (0xFu << 20)

/* Semihosting SYS_WRITE0: print a NUL-terminated string on the host console, without newlib. */
static void semihosting_write0(const char *text)
{
    register uint32_t operation __asm__("r0") = 0x04u;
    register const char *argument __asm__("r1") = text;
    __asm__ __volatile__("bkpt 0xAB" : "+r"(operation) : "r"(argument) : "memory");
}

void Reset_Handler(void)
{
    CPACR |= CPACR_FPU_FULL_ACCESS;
    __asm__ __volatile__("dsb\n\tisb" ::: "memory");
    _start();
    for (;;) {
    }
}

/* Any fault ends the run with a message instead of hanging the board or the emulator. */
void Fault_Handler(void)
{
    semihosting_write0("FAULT: the core took a fault exception\n");
    _exit(3);
}

typedef void (*vector_t)(void);

/* Initial stack pointer, then the exception handlers (ARMv7-M: 16 system entries). */
__attribute__((section(".vectors"), used)) static const vector_t vectors[16] = {
    (vector_t)(uintptr_t)&__stack,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
};
