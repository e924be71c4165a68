/* cpuenv.c — OPENBLAS_CORETYPE choice and the one-time re-exec. See cpuenv.h. */
#include "core/cpuenv.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

const char *cpuenv_openblas_core(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) return NULL;
    return __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
#else
    return NULL;
#endif
}

void cpuenv_fix_openblas(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("POCKETTTS_REEXEC")) return;
    const char *core = cpuenv_openblas_core();
    if (!core) return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) || setenv("POCKETTTS_REEXEC", "1", 1)) return;
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old);
    execv("/proc/self/exe", argv);
    sigprocmask(SIG_SETMASK, &old, NULL); /* exec failed: carry on in this process */
}
