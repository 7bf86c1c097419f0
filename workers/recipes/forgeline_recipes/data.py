"""Prompt/completion JSONL data sets and the one tokenization shared by training, calibration and eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .protocol import InputNotFound, SpecError


def read_jsonl(path: Path, field: str) -> list[dict[str, str]]:
    """Records ``{"prompt", "completion"}``; a bad line is an invalid input naming file and line."""
    if not path.is_file():
        raise InputNotFound(field, path)
    rows: list[dict[str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(field, f"{path}:{number} is not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise SpecError(field, f"{path}:{number}: expected an object with string fields prompt and completion")
        rows.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not rows:
        raise SpecError(field, f"{path} has no records")
    return rows


def load_split(dataset_dir: Path, split: str) -> list[dict[str, str]]:
    return read_jsonl(dataset_dir / f"{split}.jsonl", f"dataset_dir ({split}.jsonl)")


def encode(tokenizer: Any, prompt: str, completion: str, max_length: int) -> dict[str, list[int]]:
    """``<bos> prompt completion <eos>`` with labels only on the completion (and eos)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + completion_ids)[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}
