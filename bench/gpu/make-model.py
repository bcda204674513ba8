#!/usr/bin/env python3
"""A llama-architecture GGUF shaped like a 7B (32 layers, embedding 4096,
32 heads, f16, trained context 131072) with zero weights: big enough that two
instances at full context do not fit one H200. Written with gguf-py from the
llama.cpp source in seconds (zero pages are cheap); nothing is downloaded.

usage: PYTHONPATH=<llama.cpp>/gguf-py make-model.py OUT.gguf [--layers N] [--ctx N]
"""
import argparse

import numpy as np
from gguf import GGUFWriter, TokenType

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--layers", type=int, default=32)
p.add_argument("--embd", type=int, default=4096)
p.add_argument("--ff", type=int, default=11008)
p.add_argument("--heads", type=int, default=32)
p.add_argument("--ctx", type=int, default=131072)
a = p.parse_args()

# The tiny model's vocabulary (tools/tiny-model): specials, the 256 byte tokens, printable ASCII.
tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581" if c == 0x20 else chr(c) for c in range(0x20, 0x7F)]
types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256 + [TokenType.NORMAL] * 95
n_vocab = len(tokens)

w = GGUFWriter(a.out, "llama")
w.add_name("infer-dev 7B-shaped zero llama")
w.add_context_length(a.ctx)
w.add_embedding_length(a.embd)
w.add_feed_forward_length(a.ff)
w.add_block_count(a.layers)
w.add_head_count(a.heads)
w.add_head_count_kv(a.heads)
w.add_rope_dimension_count(a.embd // a.heads)
w.add_layer_norm_rms_eps(1e-5)
w.add_file_type(1)  # MOSTLY_F16
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores([0.0] * n_vocab)
w.add_token_types(types)
w.add_unk_token_id(0)
w.add_bos_token_id(1)
w.add_eos_token_id(2)

f16 = lambda *shape: np.zeros(shape, dtype=np.float16)
f32 = lambda *shape: np.ones(shape, dtype=np.float32)
w.add_tensor("token_embd.weight", f16(n_vocab, a.embd))
w.add_tensor("output_norm.weight", f32(a.embd))
w.add_tensor("output.weight", f16(n_vocab, a.embd))
for i in range(a.layers):
    b = f"blk.{i}."
    w.add_tensor(b + "attn_norm.weight", f32(a.embd))
    for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
        w.add_tensor(b + t + ".weight", f16(a.embd, a.embd))
    w.add_tensor(b + "ffn_norm.weight", f32(a.embd))
    w.add_tensor(b + "ffn_gate.weight", f16(a.ff, a.embd))
    w.add_tensor(b + "ffn_up.weight", f16(a.ff, a.embd))
    w.add_tensor(b + "ffn_down.weight", f16(a.embd, a.ff))

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
