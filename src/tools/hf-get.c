/* hf-get.c — developer tool: make hf:// (or http(s)://) files available in the cache and
 * print their local paths, one per line, in argument order.
 *
 *   hf-get [--offline] [--cache DIR] [--endpoint URL] [--max-mb N] [--path-only] URI...
 *
 * It is the same code path the server uses (model/hf.h), so it doubles as a way to pre-fill
 * the cache on a machine with network before running offline. Progress goes to stderr when
 * it is a terminal; Ctrl-C cancels cleanly (the partial file is kept and resumed next time).
 * --path-only prints where each file would be cached without touching the network.
 * Exit status: 0 all fetched, 2 if any was gated/unauthorised (HF_ERR_GATED), 1 otherwise.
 */
#include "core/err.h"
#include "model/hf.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int g_cancel; /* set by SIGINT/SIGTERM; the only global, and only in this tool */

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_cancel, 1);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: hf-get [--offline] [--cache DIR] [--endpoint URL] [--max-mb N] [--path-only] "
            "URI...\n"
            "  URI: hf://owner/repo/path/in/repo[@revision] or an https:// URL\n"
            "  env: POCKET_TTS_CACHE_DIR, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE\n");
    return 1;
}

int main(int argc, char **argv)
{
    hf_options opt = {0};
    int path_only = 0, first = 1;
    for (; first < argc && !strncmp(argv[first], "--", 2); first++) {
        const char *a = argv[first];
        if (!strcmp(a, "--offline")) opt.offline = 1;
        else if (!strcmp(a, "--path-only")) path_only = 1;
        else if (!strcmp(a, "--cache") && first + 1 < argc) opt.cache_dir = argv[++first];
        else if (!strcmp(a, "--endpoint") && first + 1 < argc) opt.endpoint = argv[++first];
        else if (!strcmp(a, "--max-mb") && first + 1 < argc)
            opt.max_bytes = (uint64_t)strtoull(argv[++first], NULL, 10) << 20;
        else return usage();
    }
    if (first >= argc) return usage();

    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "hf-get: curl_global_init failed\n");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    hf_tty tty = {0};
    opt.cancel = &g_cancel;
    opt.progress = hf_progress_tty;
    opt.progress_user = &tty;
    opt.user_agent = "pockettts-hf-get";

    int status = 0;
    for (int i = first; i < argc; i++) {
        char path[4096], err[1024];
        int rc = path_only ? hf_cache_path(argv[i], &opt, path, sizeof path, err, sizeof err)
                           : hf_fetch(argv[i], &opt, path, sizeof path, err, sizeof err);
        if (tty.drawn) {
            fputc('\n', stderr);
            tty.drawn = 0;
        }
        if (rc) {
            fprintf(stderr, "hf-get: %s\n", err);
            if (rc == HF_ERR_GATED) status = 2;
            else if (!status) status = 1;
            if (rc == ERR_CANCEL) break;
            continue;
        }
        printf("%s\n", path);
        fflush(stdout);
    }
    curl_global_cleanup();
    return status;
}
