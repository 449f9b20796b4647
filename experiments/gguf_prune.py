#!/usr/bin/env python3
"""gguf_prune.py — a GGUF holding only some decoder layers of a model (every metadata key kept).

The cloud's middle submodel [a, L-b) of SmolLM2-135M (26 of 30 layers, ~58 MB) fits where the
whole file (98 MB) does not, e.g. in the 64 MiB a GPU test machine accepts: `hat` and the tests
load a layer range of it like any GGUF part (model_load with l0 = a, l1 = L-b, no embedding, no
head). Tensors are copied byte for byte; a key `hat.pruned` records the source and the range.

    experiments/gguf_prune.py MODEL.gguf --layers A B -o OUT.gguf

No dependency beyond the standard library (GGUF v2/v3, little-endian).
"""
import argparse
import os
import re
import struct
import sys

# fixed-size value types: struct format by GGUF type id (8 string and 9 array are variable)
FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class Reader:
    def __init__(self, buf):
        self.b, self.o = buf, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.b, self.o)
        self.o += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("Q")
        if n > len(self.b) - self.o:
            raise ValueError(f"string of {n} bytes at offset {self.o} runs past the end of the file")
        s = self.b[self.o:self.o + n]
        self.o += n
        return bytes(s)

    def value(self, t):
        if t in FIXED:
            return self.take(FIXED[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            if et in FIXED:   # skip without materialising (tokenizer arrays are large)
                self.o += n * struct.calcsize("<" + FIXED[et])
                return None
            for _ in range(n):
                self.value(et)
            return None
        raise ValueError(f"unknown GGUF value type {t} at offset {self.o}")


def gguf_str(s):
    return struct.pack("<Q", len(s)) + s


def read_kv(src, buf):
    """(reader after the metadata, version, n_tensors, n_kv, metadata bytes, alignment, n_layer, arch, keys)"""
    r = Reader(buf)
    if bytes(buf[:4]) != b"GGUF":
        sys.exit(f"gguf_prune: {src}: not a GGUF file (magic {bytes(buf[:4])!r})")
    r.o = 4
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    if version not in (2, 3):
        sys.exit(f"gguf_prune: {src}: GGUF version {version} is not supported (2 or 3)")
    kv_start = r.o
    alignment, n_layer, arch, keys = 32, None, "llama", set()
    for _ in range(n_kv):
        key = r.string().decode()
        t = r.take("I")
        v = r.value(t)
        if key == "general.alignment":
            alignment = int(v)
        if key.endswith(".block_count"):
            n_layer = int(v)
        if key == "general.architecture":
            arch = v.decode()
        keys.add(key)
    return r, version, n_tensors, n_kv, bytes(buf[kv_start:r.o]), alignment, n_layer, arch, keys


def read_meta(src, buf):
    """read_kv, then the tensor infos: a clear error for a truncated or corrupt file"""
    try:
        r, version, n_tensors, n_kv, kv_bytes, alignment, n_layer, arch, keys = read_kv(src, buf)
        infos = []
        for _ in range(n_tensors):
            name = r.string()
            nd = r.take("I")
            dims = [r.take("Q") for _ in range(nd)]
            ttype, off = r.take("I"), r.take("Q")
            infos.append((name, dims, ttype, off))
    except (struct.error, ValueError) as e:
        sys.exit(f"gguf_prune: {src}: truncated or corrupt GGUF header ({e})")
    data0 = (r.o + alignment - 1) // alignment * alignment
    bad = [name for name, _, _, off in infos if data0 + off > len(buf)]
    if bad:
        sys.exit(f"gguf_prune: {src}: tensor {bad[0].decode(errors='replace')} starts past the end of the file "
                 f"(truncated file)")
    return version, n_kv, kv_bytes, alignment, n_layer, arch, keys, infos, data0


def block_count(src):
    with open(src, "rb") as f:
        buf = memoryview(f.read())
    return read_meta(src, buf)[4]


def prune(src, l0, l1, dst):
    with open(src, "rb") as f:
        buf = memoryview(f.read())
    version, n_kv, kv_bytes, alignment, n_layer, arch, keys, infos, data0 = read_meta(src, buf)
    if n_layer is None:
        sys.exit(f"gguf_prune: {src}: no <arch>.block_count key")
    if not (0 <= l0 < l1 <= n_layer):
        sys.exit(f"gguf_prune: layers [{l0}, {l1}) are outside the model's {n_layer} layers")
    # a tensor's bytes run to the next tensor's offset (or the end of the file): no type table needed
    ends = sorted(off for _, _, _, off in infos) + [len(buf) - data0]
    size = {off: ends[i + 1] - off for i, off in enumerate(ends[:-1])}
    keep = []
    for name, dims, ttype, off in infos:
        m = re.match(rb"blk\.(\d+)\.", name)
        if m and l0 <= int(m.group(1)) < l1:
            keep.append((name, dims, ttype, off))
    if not keep:
        sys.exit(f"gguf_prune: no tensor of layers [{l0}, {l1}) in {src}")
    note = f"{os.path.basename(src)} layers [{l0}, {l1}) of {n_layer}".encode()
    kv_bytes += gguf_str(b"hat.pruned") + struct.pack("<I", 8) + gguf_str(note)
    n_kv += 1
    # without the embedding, the vocabulary size must be said (loaders read it from token_embd)
    vkey = f"{arch}.vocab_size"
    emb = [dims for name, dims, _, _ in infos if name == b"token_embd.weight"]
    if vkey not in keys and emb:
        kv_bytes += gguf_str(vkey.encode()) + struct.pack("<II", 4, emb[0][1])
        n_kv += 1
    head = b"GGUF" + struct.pack("<IQQ", version, len(keep), n_kv) + kv_bytes
    offs, pos = [], 0
    for name, dims, ttype, off in keep:
        offs.append(pos)
        pos = (pos + size[off] + alignment - 1) // alignment * alignment
        head += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", ttype, offs[-1])
    head += b"\0" * ((-len(head)) % alignment)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        for (name, dims, ttype, off), o in zip(keep, offs):
            f.seek(len(head) + o)
            f.write(buf[data0 + off:data0 + off + size[off]])
        f.truncate(len(head) + pos)
    os.replace(tmp, dst)
    print(f"{dst}: {len(keep)} tensors of layers [{l0}, {l1}) from {src}, {os.path.getsize(dst) / 1e6:.1f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--layers", nargs=2, type=int, required=True, metavar=("A", "B"), help="keep layers [A, B)")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    prune(a.model, a.layers[0], a.layers[1], a.out)


if __name__ == "__main__":
    main()
