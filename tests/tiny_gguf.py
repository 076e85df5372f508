"""A tiny but real GGUF file, written here with the `gguf` package's writer (never a mock).

`write_tiny_llama_gguf(path)` writes a 2-layer Llama with a sentencepiece-style vocabulary (byte
fallback tokens, BOS/EOS/UNK, a few hundred word pieces with scores) whose linear weights are stored
quantized (Q8_0 and Q4_0) and whose norms are F32, the way llama.cpp's converter lays a Llama out:
q/k projections permuted for its rotary layout, names `blk.N.attn_q.weight`, `token_embd.weight`, ….
Converting it exercises the same code as a real GGUF (header parsing, dequantization, the
architecture's tensor processor, name mapping, the tokenizer converter) in about a second.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ("the quick brown fox jumps over lazy dog rewrite this text as a poem make it more formal "
         "turn into pirate shanty improve shorten story add twist email recipe haiku tone").split()


def _permute(weights, heads: int):
    """llama.cpp's q/k permutation (transformers' GGUF loader undoes it)."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def write_tiny_llama_gguf(path: Path, *, seed: int = 0) -> Path:
    """Write the tiny GGUF to `path` and return it."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, TokenType
    from gguf.quants import quantize

    rng = np.random.default_rng(seed)
    hidden, intermediate, layers, heads, kv_heads = 64, 128, 2, 4, 2
    head_dim = hidden // heads
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    pieces = ["▁"] + [f"▁{w}" for w in WORDS] + sorted({c for w in WORDS for c in w})
    pieces = list(dict.fromkeys(pieces))
    tokens += pieces
    types += [TokenType.NORMAL] * len(pieces)
    scores = [0.0] * (len(tokens) - len(pieces)) + [-float(i) for i in range(len(pieces))]
    vocab = len(tokens)

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(intermediate)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    def linear(name: str, rows: int, cols: int, qtype: GGMLQuantizationType, heads_to_permute: int = 0) -> None:
        weights = rng.normal(0, 0.08, size=(rows, cols)).astype(np.float32)
        if heads_to_permute:
            weights = _permute(weights, heads_to_permute)
        writer.add_tensor(name, quantize(weights, qtype), raw_dtype=qtype)

    def norm(name: str) -> None:
        writer.add_tensor(name, (1.0 + rng.normal(0, 0.05, size=hidden)).astype(np.float32))

    q8, q4 = GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0
    linear("token_embd.weight", vocab, hidden, q8)
    for layer in range(layers):
        block = f"blk.{layer}"
        norm(f"{block}.attn_norm.weight")
        linear(f"{block}.attn_q.weight", hidden, hidden, q8, heads)
        linear(f"{block}.attn_k.weight", kv_heads * head_dim, hidden, q8, kv_heads)
        linear(f"{block}.attn_v.weight", kv_heads * head_dim, hidden, q4)
        linear(f"{block}.attn_output.weight", hidden, hidden, q4)
        norm(f"{block}.ffn_norm.weight")
        linear(f"{block}.ffn_gate.weight", intermediate, hidden, q4)
        linear(f"{block}.ffn_up.weight", intermediate, hidden, q8)
        linear(f"{block}.ffn_down.weight", hidden, intermediate, q4)
    norm("output_norm.weight")
    linear("output.weight", vocab, hidden, q8)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
