/* cpuenv.h — process environment fixes that must happen before libraries initialise.
 *
 * OpenBLAS 0.3.21 (Debian 12) picks its kernels when the library is loaded, before main,
 * and misdetects some CPUs (this VM's Zen 4 reads as "Prescott": SSE3 kernels, 1.5-2.5x
 * slower sgemm). cpuenv_fix_openblas() sets OPENBLAS_CORETYPE from the CPU's features
 * and re-executes the program once so the library sees it. The server (src/main.c) and
 * the bench tools call it first thing in main, so they all measure the same kernels.
 * A user's own OPENBLAS_CORETYPE wins; POCKETTTS_REEXEC marks the second run (no loop).
 */
#ifndef CORE_CPUENV_H
#define CORE_CPUENV_H

/* The core name cpuenv_fix_openblas would choose for this CPU ("SkylakeX" with AVX-512F,
 * "Haswell" with AVX2, NULL otherwise: leave the library's choice). Static string. */
const char *cpuenv_openblas_core(void);

/* Call first in main(), before any thread exists. argv: main's (borrowed, passed to
 * execv unchanged). Returns only when no re-exec was needed or the exec failed (then
 * the process just goes on with the library's choice). SIGINT/SIGTERM are blocked across
 * the exec (the mask survives it) so a stop signal waits for the new image's handler;
 * the caller's mask is restored if the exec fails. */
void cpuenv_fix_openblas(char **argv);

#endif
