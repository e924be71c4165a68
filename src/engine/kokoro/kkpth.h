/* kkpth.h — reads a PyTorch checkpoint (torch.save zip, e.g. upstream kokoro-v1_0.pth)
 * and writes its tensors as a safetensors file that kk_open() loads.
 *
 * Upstream publishes Kokoro-82M only as kokoro-v1_0.pth: a zip (entries stored, not
 * compressed) holding `<root>/data.pkl`, a protocol-2 pickle of {component: OrderedDict(key
 * -> tensor)}, and `<root>/data/<storage key>` raw little-endian storages. This is not a
 * general unpickler: a tiny stack machine understands the opcodes torch.save emits (dicts,
 * tuples, ints, strings, GLOBAL + REDUCE of torch._utils._rebuild_tensor_v2 and
 * collections.OrderedDict, BINPERSID storages) and treats every other callable as opaque
 * data it never runs. Tensors must be C-contiguous F32/F16/BF16/F64 views of a storage.
 * Output names are `<component>.<key>` (the layout of kokoro-tiny-random.safetensors); a
 * top-level entry that is itself a tensor keeps its own name.
 *
 * The output is written to `out_path`.tmp and renamed, so a complete file appears or none.
 * Caps: pickle <= 64 MiB, <= 65536 tensors, names <= 512 bytes, <= 8 dims.
 *
 * Ownership: nothing is allocated for the caller.
 */
#ifndef ENGINE_KOKORO_KKPTH_H
#define ENGINE_KOKORO_KKPTH_H

#include <stddef.h>

/* pth_path -> safetensors at out_path. *ntensors (may be NULL) = tensors written.
 * ERR_NOTFOUND (no file), ERR_FORMAT (not a torch zip / unsupported content), ERR_IO. */
int kk_pth_to_safetensors(const char *pth_path, const char *out_path, size_t *ntensors, char *err,
                          size_t errlen);

#endif
