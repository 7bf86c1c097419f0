"""The shipped tiny-instruct data set: reproducible, held out, learnable, tokenizable."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from forgeline_recipes.data import load_split
from forgeline_recipes.tiny import DATASET_DIR, OPERATIONS, build_word_tokenizer, render_example, task_vocabulary
from make_tiny_dataset import write_dataset


def test_committed_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    for split in ("train", "eval"):
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (DATASET_DIR / f"{split}.jsonl").read_bytes(), split


def test_splits_are_disjoint_balanced_and_correct() -> None:
    train, evaluation = load_split(DATASET_DIR, "train"), load_split(DATASET_DIR, "eval")
    assert 300 <= len(train) <= 2000 and 50 <= len(evaluation) <= 500
    assert not {e.prompt for e in train} & {e.prompt for e in evaluation}, "eval prompts must be held out"
    for split in (train, evaluation):
        ops = Counter(e.prompt.split()[0] for e in split)
        assert set(ops) == set(OPERATIONS) and len(set(ops.values())) == 1, ops
        for example in split:
            operation, colon, *items, equals = example.prompt.split()
            assert (colon, equals) == (":", "=")
            assert render_example(operation, items) == {"prompt": example.prompt, "completion": example.completion}
    assert len({e.completion for e in evaluation}) > len(evaluation) // 2, "answers must not be (nearly) constant"


def test_every_word_is_in_the_tokenizer_vocabulary() -> None:
    tokenizer = build_word_tokenizer(task_vocabulary(), 128)
    for split in ("train", "eval"):
        for example in load_split(DATASET_DIR, split):
            ids = tokenizer(f"{example.prompt} {example.completion}")["input_ids"]
            assert tokenizer.unk_token_id not in ids, example
