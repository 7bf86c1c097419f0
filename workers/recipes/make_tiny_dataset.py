"""Write the shipped tiny-instruct data set (data/tiny-instruct/{train,eval}.jsonl).

Deterministic: the committed files are what this script writes with its defaults, and a test
checks that. Run it only to change the task:  .venv/bin/python workers/recipes/make_tiny_dataset.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forgeline_recipes.tiny import DATASET_DIR, generate_tiny_instruct

SEED, TRAIN_PER_OP, EVAL_PER_OP = 0, 160, 20


def write_dataset(out_dir: Path, seed: int = SEED, train_per_op: int = TRAIN_PER_OP, eval_per_op: int = EVAL_PER_OP) -> None:
    """Write ``train.jsonl`` and ``eval.jsonl`` (one sorted-key JSON object per line) into ``out_dir``."""
    train, evaluation = generate_tiny_instruct(seed, train_per_op, eval_per_op)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("eval", evaluation)):
        (out_dir / f"{name}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DATASET_DIR)
    write_dataset(parser.parse_args().out)
