"""A tiny random Llama with a byte-level tokenizer, for tests that need a model able to write any text.

    python byte_llama.py --out DIR [--seed 0]

The serving tests' tiny model (workers/recipes/make_tiny_model.py) has a word-level tokenizer over
its task vocabulary: it cannot spell JSON, so a judge served on it can never give a verdict, not
even under vLLM's structured outputs. This one has the 256 byte tokens of GPT-2's byte-level
alphabet (no merges: one token per UTF-8 byte) plus <s>, </s> and <pad>, so grammar-constrained
decoding can produce any JSON the schema allows; its weights are random (seeded), so what it says
is noise. A one-line chat template (role: content lines) makes /v1/chat/completions work.
Run with the main venv's python. Prints one JSON line with what it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<pad>", "<unk>"]
    # GPT-2's byte-to-unicode map: printable ASCII maps to itself, space to U+0120, newline to U+010A.
    ascii_tokens = [chr(b) for b in range(33, 127)] + ["\u0120", "\u010a"]
    vocab = {tok: i for i, tok in enumerate([*specials, *ascii_tokens])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", model_max_length=4096)
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    # Random weights give near-uniform logits, so under a JSON grammar the model closes every list
    # at once (`[]`: no statements, nothing to verify). Make it prefer `"` (open a string, close a
    # string) over `]` at every position: residual dimension 0 is a constant 1 that no layer
    # writes to, and the output rows of `"` and `]` read it with opposite signs. Lists then run to
    # the schema's maxItems and strings stay short; everything else is still noise.
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[vocab['"'], 0] = 1.0
        model.lm_head.weight[vocab["]"], 0] = -1.0
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    print(json.dumps({"model": str(args.out), "vocab_size": len(vocab), "parameters": sum(p.numel() for p in model.parameters())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
