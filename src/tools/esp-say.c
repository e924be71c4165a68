/* esp-say.c — dev tool: speak text with the espeak engine into a 24 kHz 16-bit WAV.
 *
 *   esp-say [-v voice] [-s speed] [-o out.wav] [-n repeat] text...
 *
 * Prints to stderr: audio seconds, wall milliseconds to the first chunk and to the end, and
 * the real-time factor; with -n it repeats the synthesis and reports whether every run gave
 * identical samples (determinism check). Without -o nothing is written. Uses only engine.h,
 * so it exercises exactly what the server calls.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/espeak/espeak.h"

typedef struct say_acc {
    int16_t *pcm;
    size_t n, cap;
    double t0, t_first;
} say_acc;

static double say_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int say_sink(void *user, const float *pcm, size_t n)
{
    say_acc *a = user;
    if (a->t_first < 0) a->t_first = say_now_ms() - a->t0;
    if (a->n + n > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 1 << 16;
        while (nc < a->n + n) nc *= 2;
        int16_t *p = realloc(a->pcm, nc * sizeof *p);
        if (!p) return 1;
        a->pcm = p;
        a->cap = nc;
    }
    for (size_t i = 0; i < n; i++) {
        float v = pcm[i] * 32767.0f;
        a->pcm[a->n++] = (int16_t)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : v);
    }
    return 0;
}

static void say_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int say_write_wav(const char *path, const int16_t *pcm, size_t n)
{
    unsigned char h[44];
    memcpy(h, "RIFF", 4);
    say_le32(h + 4, (uint32_t)(36 + 2 * n));
    memcpy(h + 8, "WAVEfmt ", 8);
    say_le32(h + 16, 16);
    h[20] = 1, h[21] = 0, h[22] = 1, h[23] = 0;
    say_le32(h + 24, ENG_SAMPLE_RATE);
    say_le32(h + 28, ENG_SAMPLE_RATE * 2);
    h[32] = 2, h[33] = 0, h[34] = 16, h[35] = 0;
    memcpy(h + 36, "data", 4);
    say_le32(h + 40, (uint32_t)(2 * n));
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(h, 1, 44, f) == 44 && fwrite(pcm, 2, n, f) == n; /* little-endian host */
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *voice = NULL, *out = NULL;
    float speed = 1.0f;
    int repeat = 1, c;
    while ((c = getopt(argc, argv, "v:s:o:n:")) != -1) {
        switch (c) {
        case 'v': voice = optarg; break;
        case 's': speed = strtof(optarg, NULL); break;
        case 'o': out = optarg; break;
        case 'n': repeat = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        default:
            fprintf(stderr, "usage: esp-say [-v voice] [-s speed] [-o out.wav] [-n repeat] text...\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "esp-say: no text\n");
        return 2;
    }
    size_t tl = 0;
    for (int i = optind; i < argc; i++) tl += strlen(argv[i]) + 1;
    char *text = calloc(tl + 1, 1);
    for (int i = optind; i < argc; i++) {
        strcat(text, argv[i]);
        if (i + 1 < argc) strcat(text, " ");
    }
    char err[256];
    engine *e = NULL;
    double t = say_now_ms();
    if (esp_engine_new(&e, NULL, err, sizeof err)) {
        fprintf(stderr, "esp-say: %s\n", err);
        return 1;
    }
    fprintf(stderr, "engine: %s (%.1f ms to load)\n", e->desc, say_now_ms() - t);
    say_acc first = {0};
    int same = 1, rc = 0;
    for (int r = 0; r < repeat && !rc; r++) {
        say_acc a = {.t_first = -1};
        eng_synth_req q = {.text = text, .voice = voice, .speed = speed};
        a.t0 = say_now_ms();
        rc = eng_synth(e, &q, say_sink, &a, err, sizeof err);
        double ms = say_now_ms() - a.t0, sec = (double)a.n / ENG_SAMPLE_RATE;
        if (rc) {
            fprintf(stderr, "esp-say: %s\n", err);
        } else {
            fprintf(stderr, "run %d: %.3f s audio, first chunk %.1f ms, total %.1f ms, RTF %.4f\n",
                    r, sec, a.t_first, ms, sec > 0 ? ms / 1e3 / sec : 0.0);
        }
        if (r == 0) {
            first = a;
        } else {
            same &= a.n == first.n && !memcmp(a.pcm, first.pcm, a.n * sizeof *a.pcm);
            free(a.pcm);
        }
    }
    if (repeat > 1) fprintf(stderr, "identical across runs: %s\n", same ? "yes" : "NO");
    if (!rc && out && say_write_wav(out, first.pcm, first.n)) {
        fprintf(stderr, "esp-say: cannot write %s\n", out);
        rc = 1;
    }
    free(first.pcm);
    free(text);
    eng_free(e);
    return rc ? 1 : 0;
}
