#!/usr/bin/env python3
"""Writes the io fuzz seed corpus (fuzz/corpus/<target>/) and, with --pth FILE [--protocol N], one small
PyTorch-style zip checkpoint. Needs only the standard library: stand-in `torch` / `torch._utils`
modules make CPython's own pickler emit exactly the opcodes torch.save writes for a state dict
(GLOBAL torch._utils._rebuild_tensor_v2, BINPERSID ('storage', torch.FloatStorage, key, 'cpu', numel),
collections.OrderedDict, BUILD of _metadata, ...). tests/test_io_pth.c uses --pth to check the C reader
against real pickler output when python3 is present."""
import argparse, collections, io, json, os, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils


def _rebuild_tensor_v2(*a):
    raise RuntimeError("never called")


def _rebuild_parameter(*a):
    raise RuntimeError("never called")


for f in (_rebuild_tensor_v2, _rebuild_parameter):
    f.__module__ = "torch._utils"
    setattr(utils, f.__name__, f)


class FloatStorage: pass
class BFloat16Storage: pass
class LongStorage: pass


for c in (FloatStorage, BFloat16Storage, LongStorage):
    c.__module__ = "torch"
    setattr(torch, c.__name__, c)


class Storage:
    def __init__(s, typ, key, numel):
        s.typ, s.key, s.numel = typ, key, numel


class Tensor:
    def __init__(s, st, off, size, stride, param=False):
        s.st, s.off, s.size, s.stride, s.param = st, off, size, stride, param

    def __reduce__(s):
        if s.param:
            return (_rebuild_parameter, (Tensor(s.st, s.off, s.size, s.stride), True, collections.OrderedDict()))
        return (_rebuild_tensor_v2, (s.st, s.off, s.size, s.stride, False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, o):
        return ("storage", o.typ, o.key, "cpu", o.numel) if isinstance(o, Storage) else None


def state_pickle(proto=2):
    s0, s1, s2 = Storage(FloatStorage, "0", 6), Storage(BFloat16Storage, "1", 4), Storage(LongStorage, "2", 2)
    sd = collections.OrderedDict()
    sd["blocks.0.self_attn.q.weight"] = Tensor(s0, 0, (2, 3), (3, 1))
    sd["blocks.0.self_attn.q.bias"] = Tensor(s0, 3, (3,), (1,), param=True)
    sd["head.modulation"] = Tensor(s1, 0, (1, 2, 2), (4, 2, 1))
    sd["steps"] = Tensor(s2, 1, (), ())
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("blocks", {"version": 1})])
    b = io.BytesIO()
    Pickler(b, protocol=proto).dump(sd)
    return b.getvalue()


STORAGES = {
    "archive/data/0": struct.pack("<6f", 1.5, -2.0, 3.25, 4.0, -5.5, 6.0),
    "archive/data/1": struct.pack("<4H", 0x3F80, 0x4000, 0xC040, 0x4080),
    "archive/data/2": struct.pack("<2q", -7, 1 << 40),
}


def write_pth(path, proto=2):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", state_pickle(proto))
        for k, v in STORAGES.items():
            z.writestr(k, v)
        z.writestr("archive/version", "3\n")


def safetensors(tensors, meta=None):
    h, data = {}, b""
    if meta:
        h["__metadata__"] = meta
    for n, (dt, shape, raw) in tensors.items():
        h[n] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


def gguf(tensors, kvs, version=3, align=32):
    """GGUF bytes: kvs [(key, type id, packed value)], tensors [(name, ggml dims fastest first, type id, raw)]."""
    s = lambda t: struct.pack("<Q", len(t)) + t.encode()
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += s(k) + struct.pack("<I", t) + v
    off, data = 0, b""
    for name, dims, t, raw in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", t, len(data))
        data += raw + bytes(-len(raw) % align)
    return out + bytes(-len(out) % align) + data


def corpus(root):
    for t in ("fuzz_safetensors", "fuzz_index_json", "fuzz_pth", "fuzz_serve_request", "fuzz_gguf"):
        os.makedirs(os.path.join(root, t), exist_ok=True)
    w = lambda rel, b: open(os.path.join(root, rel), "wb").write(b)
    w("fuzz_safetensors/two.safetensors", safetensors(
        {"a": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), "b": ("BF16", [3], b"\x80\x3f" * 3)}, {"kind": "test"}))
    w("fuzz_safetensors/empty.safetensors", safetensors({}))
    w("fuzz_safetensors/dtypes.safetensors", safetensors({
        "i64": ("I64", [1], bytes(8)), "f64": ("F64", [], bytes(8)), "i32": ("I32", [1, 1], bytes(4)),
        "f16": ("F16", [2], bytes(4)), "i16": ("I16", [1], bytes(2)), "u8": ("U8", [0, 3], b""),
        "b": ("BOOL", [2], b"\x01\x00"), "i8": ("I8", [1], b"\x05")}))
    # scaled fp8: per tensor (ComfyUI/Kijai, with the marker) and per output channel (LightX2V)
    w("fuzz_safetensors/fp8_tensor.safetensors", safetensors({
        "l.weight": ("F8_E4M3", [2, 4], bytes([0x38, 0xb8, 0x01, 0x7e, 0x40, 0x00, 0x80, 0x22])),
        "l.scale_weight": ("F32", [], struct.pack("<f", 0.5)), "scaled_fp8": ("F8_E4M3", [0], b"")}))
    w("fuzz_safetensors/fp8_channel.safetensors", safetensors({
        "l.weight": ("F8_E4M3", [2, 2], bytes([0x38, 0xb8, 0x01, 0x7e])),
        "l.weight_scale": ("BF16", [2, 1], b"\x80\x3f\x00\x40")}))
    w("fuzz_index_json/index.json", json.dumps({"metadata": {"total_size": 36}, "weight_map": {
        "x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}}).encode())
    w("fuzz_index_json/one.json", json.dumps({"weight_map": {"z": "b.safetensors"}}).encode())
    buf = io.BytesIO()
    write_pth(buf)
    w("fuzz_pth/zip_good.bin", b"\x00" + buf.getvalue())
    w("fuzz_pth/pkl_p2.bin", b"\x01" + state_pickle(2))
    w("fuzz_pth/pkl_p4.bin", b"\x01" + state_pickle(4))
    st = lambda t: struct.pack("<Q", len(t)) + t.encode()
    q8 = (b"\x00\x2c" + bytes(range(32))) * 2
    w("fuzz_gguf/wan_q8.gguf", gguf(
        [("patch_embedding.bias", [4], 0, struct.pack("<4f", 1, 2, 3, 4)),
         ("patch_embedding.weight", [1, 1, 1, 1, 4], 0, struct.pack("<4f", 1, 2, 3, 4)),
         ("blocks.0.self_attn.q.weight", [32, 2], 8, q8), ("head.modulation", [2, 1, 1], 0, bytes(8))],
        [("general.architecture", 8, st("wan")), ("general.file_type", 4, struct.pack("<I", 7))]))
    w("fuzz_gguf/v2_align64_kinds.gguf", gguf(
        [("model.diffusion_model.blocks.0.ffn.0.weight", [256, 1], 12, bytes(144)),
         ("blocks.0.ffn.2.weight", [256, 1], 14, bytes(210)), ("x", [2], 30, bytes(4)), ("y", [2], 1, bytes(4))],
        [("general.alignment", 4, struct.pack("<I", 64)), ("k.f64", 12, struct.pack("<d", 2.5)),
         ("k.nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 8, 1) + st("a")),
         ("comfy.gguf.orig_shape.x", 9, struct.pack("<IQii", 5, 2, 1, 2))], version=2, align=64))

    serve_corpus(w)


def serve_corpus(w):
    """fuzz_serve_request: byte 0 = entry (0 JSON, 1 multipart, 2 path, 3 auth, 4 --store
    URL), byte 1 = model (0 XT, 1 XTX)."""
    j = lambda o: json.dumps(o).encode()
    w("fuzz_serve_request/json_t2v", b"\x00\x00" + j({"prompt": "a cat", "size": "1280x720", "seconds": "4", "seed": 3}))
    w("fuzz_serve_request/json_all", b"\x00\x00" + j({
        "prompt": "a cat", "model": "xt", "size": "64x96", "num_frames": 9, "fps": 12.5, "negative_prompt": "blur",
        "steps": [1000, 750, 500], "shift": 5, "sampler": "xt", "mode": "xt"}))
    w("fuzz_serve_request/json_ar", b"\x00\x01" + j({
        "prompt": "a cat", "mode": "ar", "size": "832x480", "num_frames": 45, "prompts": [{"frame": 20, "prompt": "a dog"}]}))
    w("fuzz_serve_request/json_bad", b"\x00\x00" + b'{"prompt": 1, "seed": "x", "size": "65x64"}')
    b = "XyZzy"
    form = (f'--{b}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="num_frames"\r\n\r\n5\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="input_reference"; filename="a.png"\r\n'
            f'Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n--{b}--\r\n').encode("latin-1")
    w("fuzz_serve_request/multipart", b"\x01\x00" + f"multipart/form-data; boundary={b}\n".encode() + form)
    w("fuzz_serve_request/multipart_quoted", b"\x01\x00" + f'multipart/form-data; boundary="{b}"\n'.encode() + form)
    w("fuzz_serve_request/path_list", b"\x02\x00/v1/videos?after=video_" + b"0" * 32 + b"&limit=5&order=asc")
    w("fuzz_serve_request/path_content", b"\x02\x00/v1/videos/video_" + b"a" * 32 + b"/content?variant=thumbnail")
    w("fuzz_serve_request/path_events", b"\x02\x00/v1/videos/video_" + b"b" * 32 + b"/events")
    w("fuzz_serve_request/auth", b"\x03\x00Bearer s3cret-key")
    w("fuzz_serve_request/store_url", b"\x04\x00redis://user:p%40ss@redis-1.lan:6380/2")
    w("fuzz_serve_request/store_url_ipv6", b"\x04\x00redis://:secret@[::1]:6379")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", help="write the seed corpus under this folder")
    ap.add_argument("--pth", help="write one .pth file here")
    ap.add_argument("--protocol", type=int, default=2)
    a = ap.parse_args()
    if a.corpus:
        corpus(a.corpus)
    if a.pth:
        write_pth(a.pth, a.protocol)
    if not a.corpus and not a.pth:
        ap.error("nothing to do (--corpus DIR and/or --pth FILE)")
