"""Packing: best-fit rows, and packed examples see exactly what they would see alone."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from forgeline_recipes.data import IGNORE_INDEX, EncodedExample, PackedCollator, encode_for_training, load_split, pack_examples
from forgeline_recipes.modeling import load_tokenizer
from forgeline_recipes.tiny import DATASET_DIR


def _example(n: int, start: int = 0) -> EncodedExample:
    ids = list(range(start, start + n))
    return EncodedExample(ids, [IGNORE_INDEX] + ids[1:], 1)


def test_rows_hold_every_token_once_and_never_overflow() -> None:
    encoded = [_example(n, 100 * i) for i, n in enumerate([7, 3, 5, 9, 2, 8, 4, 6, 1, 10])]
    rows = pack_examples(encoded, seq_length=16, seed=0)
    assert all(len(r.input_ids) <= 16 and sum(r.seq_lengths) == len(r.input_ids) == len(r.labels) for r in rows)
    assert sorted(t for r in rows for t in r.input_ids) == sorted(t for e in encoded for t in e.input_ids)
    assert len(rows) == 4  # 55 tokens in rows of 16: best fit needs the minimum, ceil(55 / 16)
    assert pack_examples(encoded, 16, seed=0) == rows, "deterministic for a seed"


def test_an_example_longer_than_a_row_is_cut_before_packing(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    encoded, _ = encode_for_training(tokenizer, load_split(DATASET_DIR, "train")[:50], 8)
    assert all(len(r.input_ids) <= 8 for r in pack_examples(encoded, 8, seed=0))


def test_collator_restarts_positions_and_masks_padding() -> None:
    batch = PackedCollator(pad_token_id=0)([{"input_ids": [5, 6, 7, 8, 9], "labels": [-100, 6, 7, -100, 9], "seq_lengths": [3, 2]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9, -100, -100, -100]]
    assert "attention_mask" not in batch


def test_packed_examples_do_not_attend_to_each_other(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    encoded, _ = encode_for_training(tokenizer, load_split(DATASET_DIR, "eval")[:6], 64)
    (row,) = pack_examples(encoded, seq_length=128, seed=0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa").eval()
    batch = PackedCollator(tokenizer.pad_token_id)([{"input_ids": row.input_ids, "labels": row.labels, "seq_lengths": row.seq_lengths}])
    with torch.no_grad():
        # Training runs without a KV cache (train sets use_cache=False; TRL does too). With a
        # cache, transformers ignores the restarts in position_ids and packing would leak.
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        offset = 0
        for length in row.seq_lengths:
            alone = model(input_ids=torch.tensor([row.input_ids[offset : offset + length]])).logits[0]
            torch.testing.assert_close(packed[offset : offset + length], alone, rtol=1e-4, atol=1e-4)
            offset += length
