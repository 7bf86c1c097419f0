"""Prompt/completion datasets (JSONL) and the single tokenization used by training and evaluation.

A record is ``{"prompt": str, "completion": str}``. A training/eval sequence is::

    tokens(prompt, with the tokenizer's special prefix, e.g. <bos>) + tokens(completion) + <eos>

with the loss (labels) on the completion and ``<eos>`` only. Generation sees exactly the prompt
part, so what the model is trained on and what it is asked at inference agree token for token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import InputNotFound, RecipeError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One prompt/completion pair."""

    prompt: str
    completion: str


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one example; ``labels`` is ``IGNORE_INDEX`` on the prompt."""

    input_ids: list[int]
    labels: list[int]
    prompt_length: int


def read_examples(path: Path, field: str = "dataset") -> list[Example]:
    """Read a JSONL file of ``{"prompt", "completion"}`` records (other keys are ignored).

    Malformed data is a non-retryable failure naming the file and line.
    """
    examples: list[Example] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecipeError(f"{field}: {path}:{line_no}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("prompt", "completion")):
                raise RecipeError(f"{field}: {path}:{line_no}: expected an object with string fields prompt and completion")
            examples.append(Example(record["prompt"], record["completion"]))
    if not examples:
        raise RecipeError(f"{field}: {path}: no examples")
    return examples


def load_split(dataset_dir: Path, split: str, field: str = "dataset_dir") -> list[Example]:
    """The ``<split>.jsonl`` file of a dataset directory (``train`` or ``eval``)."""
    path = dataset_dir / f"{split}.jsonl"
    if not path.is_file():
        raise InputNotFound(field, path)
    return read_examples(path, field)


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """The prompt's ids as the model sees them at inference (with the tokenizer's special prefix)."""
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def encode_example(tokenizer: PreTrainedTokenizerBase, example: Example, max_length: int | None = None) -> EncodedExample:
    """Prompt + completion + eos, truncated from the end to ``max_length`` tokens."""
    if tokenizer.eos_token_id is None:
        raise RecipeError("tokenizer: has no eos token; completions could never end")
    prompt_ids = encode_prompt(tokenizer, example.prompt)
    completion_ids = list(tokenizer(example.completion, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    input_ids = prompt_ids + completion_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return EncodedExample(input_ids=input_ids, labels=labels, prompt_length=len(prompt_ids))


def encode_for_training(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int
) -> tuple[list[EncodedExample], int]:
    """Encode ``examples``; drop those whose completion is cut off entirely. Returns (kept, dropped)."""
    kept = [encode_example(tokenizer, ex, max_length) for ex in examples]
    usable = [enc for enc in kept if any(label != IGNORE_INDEX for label in enc.labels)]
    return usable, len(kept) - len(usable)


def calibration_texts(examples: Sequence[Example], count: int) -> list[str]:
    """Full prompt + completion texts for quantization calibration (the first ``count``)."""
    return [f"{ex.prompt} {ex.completion}" for ex in examples[:count]]


@dataclass(frozen=True)
class PackedRow:
    """Several encoded examples laid end to end in one row of at most ``seq_length`` tokens."""

    input_ids: list[int]
    labels: list[int]
    seq_lengths: list[int]  # the examples' lengths, in order; position ids restart at each


def pack_examples(encoded: Sequence[EncodedExample], seq_length: int, seed: int) -> list[PackedRow]:
    """Pack ``encoded`` into rows by best-fit decreasing after a seeded shuffle (which only breaks
    ties between equal lengths, so equal-length examples do not always share a row).

    Each row keeps its own position ids; with no attention mask, transformers turns position ids
    that restart into a block-diagonal causal mask (SDPA, flex) or varlen boundaries
    (flash-attention), so packing changes throughput, not what each example sees.
    """
    import bisect
    import random

    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: -len(encoded[i].input_ids))  # stable: ties stay shuffled
    # free[c]: rows with exactly c tokens of room; rooms: the sorted c's with rows in free[c]
    free: dict[int, list[int]] = {}
    rooms: list[int] = []
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(encoded[i].input_ids)
        at = bisect.bisect_left(rooms, n)  # best fit: the smallest room that still holds n
        if at == len(rooms):
            rows.append([])
            room.append(seq_length)
            row = len(rows) - 1
        else:
            fit = rooms[at]
            row = free[fit].pop()
            if not free[fit]:
                del free[fit], rooms[at]
        rows[row].append(i)
        room[row] -= n
        if room[row] > 0:
            if room[row] not in free:
                free[room[row]] = []
                bisect.insort(rooms, room[row])
            free[room[row]].append(row)
    packed: list[PackedRow] = []
    for members in rows:
        ids: list[int] = []
        labels: list[int] = []
        for i in members:
            ids += encoded[i].input_ids
            labels += encoded[i].labels
        packed.append(PackedRow(ids, labels, [len(encoded[i].input_ids) for i in members]))
    return packed


class PackedCollator:
    """Batches :class:`PackedRow` records (``input_ids``, ``labels``, ``seq_lengths``) for training:
    right-padded to the longest row (a multiple of 8), ``position_ids`` restarting at every
    example, padding ignored by the loss, and no attention mask, so the model derives the
    per-example causal blocks from the position ids."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        width += -width % 8
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[b, :n] = torch.tensor(row["input_ids"])
            labels[b, :n] = torch.tensor(row["labels"])
            position_ids[b, :n] = torch.cat([torch.arange(length) for length in row["seq_lengths"]])
            position_ids[b, n:] = torch.arange(width - n)  # the padding is one more block of its own
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
