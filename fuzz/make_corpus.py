#!/usr/bin/env python3
"""Writes the seed corpus of small hand-made GGUF files to fuzz/corpus/gguf/.

Files named ok_* are valid and must parse; files named bad_* break exactly one rule of
docs/gguf.md and must be rejected with an error. The `model_tests` corpus test checks both, and
the fuzzer starts from these files. Layout: docs/MODELS.md §1.1. Run: python3 fuzz/make_corpus.py
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")

# Metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMATS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
                  F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
# ggml types: id -> (block elements, block bytes).
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
        "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q2_K": (10, 256, 84),
        "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210),
        "BF16": (30, 1, 2)}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    if vtype == STRING:
        return gstr(v)
    if vtype == ARRAY:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(value(etype, i) for i in items)
    return struct.pack(SCALAR_FORMATS[vtype], v)


def kv(key, vtype, v):
    return gstr(key) + struct.pack("<I", vtype) + value(vtype, v)


def tensor_info(name, dims, type_id, offset):
    return (gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", type_id, offset))


def gguf(kvs=(), tensors=(), data=b"", version=3, alignment=32, magic=b"GGUF", counts=None):
    """kvs: encoded pairs; tensors: encoded infos; data is placed at the aligned data start."""
    n_tensors, n_kv = counts if counts else (len(tensors), len(kvs))
    head = magic + struct.pack("<IQQ", version, n_tensors, n_kv) + b"".join(kvs) + b"".join(tensors)
    if not tensors and not data:
        return head
    pad = (alignment - len(head) % alignment) % alignment
    return head + b"\0" * pad + data


def pattern(n, seed):
    """Deterministic bytes that make sane small scales when read as fp16 (no NaN/inf)."""
    return bytes(((i * 37 + seed * 11) % 251) & 0x3B for i in range(n))


def tensor_file(type_name, rows=2):
    type_id, block, block_bytes = GGML[type_name]
    ne0 = block if block > 1 else 8
    size = rows * (ne0 // block) * block_bytes
    return gguf([kv("general.architecture", STRING, "llama")],
                [tensor_info("w." + type_name.lower(), [ne0, rows], type_id, 0)],
                pattern(size, type_id))


def cases():
    arch = kv("general.architecture", STRING, "llama")
    f32_info = tensor_info("w", [4, 2], 0, 0)
    f32_data = struct.pack("<8f", *range(8))
    every_type = [
        kv("u8", U8, 200), kv("i8", I8, -100), kv("u16", U16, 60000), kv("i16", I16, -30000),
        kv("u32", U32, 4000000000), kv("i32", I32, -2000000000), kv("f32", F32, 1e-5),
        kv("bool", BOOL, 1), kv("string", STRING, "h\u00e9llo"), kv("u64", U64, 1 << 40),
        kv("i64", I64, -(1 << 40)), kv("f64", F64, 0.125),
        kv("strings", ARRAY, (STRING, ["a", "bc", ""])),
        kv("nested", ARRAY, (ARRAY, [(U16, [1, 2]), (U16, []), (I32, [3])])),
    ]
    yield "ok_v3_empty", gguf()
    yield "ok_v2_one_key", gguf([arch], version=2)
    yield "ok_v3_every_metadata_type", gguf(every_type)
    yield "ok_v3_f32_tensor", gguf([arch], [f32_info], f32_data)
    yield "ok_v2_f32_tensor", gguf([arch], [f32_info], f32_data, version=2)
    yield "ok_alignment_64", gguf([kv("general.alignment", U32, 64)], [f32_info], f32_data,
                                  alignment=64)
    yield "ok_two_tensors", gguf([arch], [f32_info, tensor_info("b", [8], 1, 32)],
                                 f32_data + pattern(16, 1))
    yield "ok_unsupported_q2_k", gguf([arch], [tensor_info("q", [256], 10, 0)], pattern(84, 3))
    for name in ("F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"):
        yield "ok_tensor_" + name.lower(), tensor_file(name, rows=1 if "K" in name else 2)

    yield "bad_magic", gguf([arch], magic=b"GGUG")
    yield "bad_version_1", gguf([arch], version=1)
    yield "bad_version_4", gguf([arch], version=4)
    yield "bad_big_endian", gguf([arch], version=0x03000000)
    full = gguf([arch], [f32_info], f32_data)
    for cut in (3, 12, 30, 45, len(full) - 40, len(full) - 1):
        yield "bad_truncated_%d" % cut, full[:cut]
    yield "bad_huge_array_count", gguf([gstr("a") + struct.pack("<IIQ", ARRAY, U8, 1 << 60)
                                        + b"\0" * 16])
    yield "bad_huge_string_array", gguf([gstr("t") + struct.pack("<IIQ", ARRAY, STRING, 1 << 60)
                                         + b"\0" * 16])
    yield "bad_huge_string", gguf([gstr("s") + struct.pack("<IQ", STRING, (1 << 64) - 1) + b"x"])
    yield "bad_huge_kv_count", gguf([arch], counts=(0, 1 << 60))
    yield "bad_huge_tensor_count", gguf([arch], [f32_info], f32_data, counts=(1 << 60, 1))
    yield "bad_deep_nesting", gguf([gstr("d") + struct.pack("<I", ARRAY)
                                    + struct.pack("<IQ", ARRAY, 1) * 12 + struct.pack("<IQ", U8, 0)])
    yield "bad_bool_value", gguf([gstr("b") + struct.pack("<IB", BOOL, 2)])
    yield "bad_value_type", gguf([gstr("x") + struct.pack("<I", 13) + b"\0" * 8])
    yield "bad_duplicate_key", gguf([arch, arch])
    yield "bad_empty_key", gguf([kv("", U32, 1)])
    yield "bad_alignment_0", gguf([kv("general.alignment", U32, 0)], [f32_info], f32_data)
    yield "bad_alignment_24", gguf([kv("general.alignment", U32, 24)], [f32_info], f32_data,
                                   alignment=24)
    yield "bad_alignment_type", gguf([kv("general.alignment", STRING, "32")])
    yield "bad_misaligned_offset", gguf([arch], [tensor_info("w", [4], 0, 16)], b"\0" * 64)
    yield "bad_offset_past_end", gguf([arch], [tensor_info("w", [4], 0, 1 << 63)], b"\0" * 64)
    yield "bad_data_past_end", gguf([arch], [f32_info], f32_data[:-1])
    yield "bad_overlap", gguf([arch], [tensor_info("a", [16], 0, 0), tensor_info("b", [8], 0, 32)],
                              b"\0" * 96)
    yield "bad_duplicate_tensor", gguf([arch], [f32_info, tensor_info("w", [8], 0, 32)],
                                       b"\0" * 64)
    yield "bad_five_dims", gguf([arch], [tensor_info("w", [1, 1, 1, 1, 1], 0, 0)], b"\0" * 4)
    yield "bad_zero_dim", gguf([arch], [tensor_info("w", [4, 0], 0, 0)], b"\0" * 32)
    yield "bad_dim_overflow", gguf([arch], [tensor_info("w", [1 << 32, 1 << 32], 0, 0)], b"\0" * 4)
    yield "bad_row_not_block_multiple", gguf([arch], [tensor_info("w", [48, 2], 3, 0)], b"\0" * 80)
    yield "bad_unknown_tensor_type", gguf([arch], [tensor_info("w", [4], 99, 0)], b"\0" * 16)
    yield "bad_long_tensor_name", gguf([arch], [tensor_info("n" * 65, [8], 0, 0)], b"\0" * 32)


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    count = 0
    for name, data in cases():
        assert len(data) <= 1024, (name, len(data))
        with open(os.path.join(OUT, name + ".gguf"), "wb") as f:
            f.write(data)
        count += 1
    print("make_corpus: wrote %d files to %s" % (count, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
