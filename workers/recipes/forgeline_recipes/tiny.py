"""The tiny end-to-end fixture: a synthetic instruction task, its word-level tokenizer, and
Llama configs (``tiny`` for CPU tests and demos, ``0.5b`` for a GPU throughput run).

The task ("tiny-instruct") is five templated list operations over a closed vocabulary of twelve
symbols, e.g. ``reverse : c a f =`` → ``f a c``. Answers depend on the input (never constant),
the eval split holds prompts never seen in training, and a 2-layer random Llama with LoRA
adapters learns much of it in 200 steps (seconds on two CPU cores). ``first``/``last``/``count``
are learnt almost perfectly; ``reverse``/``next`` need position-wise copying that a few hundred
steps only partly learn, which keeps exact match well below 1 and the metrics informative.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import LlamaConfig, PreTrainedTokenizerFast

# ---------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------

DATASET_DIR = Path(__file__).resolve().parent.parent / "data" / "tiny-instruct"

SYMBOLS: tuple[str, ...] = tuple("abcdefghijkl")
MIN_ITEMS, MAX_ITEMS = 2, 5


def _successor(symbol: str) -> str:
    return SYMBOLS[(SYMBOLS.index(symbol) + 1) % len(SYMBOLS)]


# name -> function from the listed symbols to the answer tokens
OPERATIONS: dict[str, Callable[[Sequence[str]], list[str]]] = {
    "reverse": lambda items: list(reversed(items)),
    "first": lambda items: [items[0]],
    "last": lambda items: [items[-1]],
    "count": lambda items: [str(len(items))],
    "next": lambda items: [_successor(s) for s in items],
}

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = SPECIAL_TOKENS


def task_vocabulary() -> list[str]:
    """Every token of the task, special tokens first (ids 0-3), in a fixed order."""
    digits = [str(n) for n in range(10)]
    return [*SPECIAL_TOKENS, *OPERATIONS, ":", "=", *SYMBOLS, *digits]


def render_example(operation: str, items: Sequence[str]) -> dict[str, str]:
    """One record: ``{"prompt": "<op> : <items> =", "completion": "<answer>"}``."""
    answer = OPERATIONS[operation](items)
    return {"prompt": f"{operation} : {' '.join(items)} =", "completion": " ".join(answer)}


def generate_tiny_instruct(seed: int, train_per_op: int, eval_per_op: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Deterministic train/eval splits with disjoint prompts, balanced across operations."""
    rng = random.Random(seed)
    train: list[dict[str, str]] = []
    evaluation: list[dict[str, str]] = []
    for operation in OPERATIONS:
        seen: set[tuple[str, ...]] = set()
        examples: list[dict[str, str]] = []
        while len(examples) < train_per_op + eval_per_op:
            items = tuple(rng.choice(SYMBOLS) for _ in range(rng.randint(MIN_ITEMS, MAX_ITEMS)))
            if items in seen:
                continue
            seen.add(items)
            examples.append(render_example(operation, items))
        evaluation.extend(examples[:eval_per_op])
        train.extend(examples[eval_per_op:])
    rng.shuffle(train)
    rng.shuffle(evaluation)
    return train, evaluation


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def build_word_tokenizer(vocabulary: Sequence[str], model_max_length: int) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer that prepends ``<bos>``; unknown words map to ``<unk>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(vocabulary)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=model_max_length,
        padding_side="right",
    )


# ---------------------------------------------------------------------------------------------
# Model configs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LlamaShape:
    """The knobs of a Llama config that the sizes differ in."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int
    initializer_range: float
    default_dtype: str


# Every Linear input dim (hidden, heads*head_dim, intermediate) is a multiple of 128, so GPTQ/AWQ
# group sizes 32, 64 and 128 all work on both. initializer_range is about 1/sqrt(hidden_size): the
# usual 0.02 is tuned for ~2k-wide models and, at width 128, caps the frozen LM head's logits at
# about 2.5 nats of margin, so LoRA (which cannot rescale them) barely learns.
SIZES: dict[str, LlamaShape] = {
    # ~0.41M parameters: trains, quantizes and evaluates on 2 CPU cores in well under a minute each.
    "tiny": LlamaShape(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=64,
        max_position_embeddings=128,
        initializer_range=0.088,
        default_dtype="float32",
    ),
    # ~0.48B parameters (24 x 1024 wide, GQA 16/8 heads, 32k-row embeddings and LM head, untied):
    # a realistic shape for GPU throughput/MFU runs. The vocabulary is padded; only the task's
    # words have tokenizer entries.
    "0.5b": LlamaShape(
        hidden_size=1024,
        intermediate_size=4608,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=8,
        vocab_size=32768,
        max_position_embeddings=2048,
        initializer_range=0.02,
        default_dtype="bfloat16",
    ),
    # Llama-3.2-1B's shape with untied embeddings (~1.5B): GPU benchmarks between the two.
    "1.5b": LlamaShape(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=8192,
        initializer_range=0.02,
        default_dtype="bfloat16",
    ),
    # Llama-3-8B's shape (~8.0B; 128k vocabulary, so logits dominate memory unless fused): the size
    # users fine-tune, for bench/gpu_8b.py.
    "8b": LlamaShape(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=8192,
        initializer_range=0.02,
        default_dtype="bfloat16",
    ),
}


def llama_config(size: str, vocabulary_size: int) -> LlamaConfig:
    """The :class:`LlamaConfig` of ``size``; the vocab is at least ``vocabulary_size`` rows."""
    from transformers import LlamaConfig

    shape = SIZES[size]
    if vocabulary_size > shape.vocab_size:
        raise ValueError(f"tokenizer has {vocabulary_size} tokens but size {size!r} has {shape.vocab_size} rows")
    return LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        initializer_range=shape.initializer_range,
        tie_word_embeddings=False,
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
        dtype=shape.default_dtype,
    )


# ---------------------------------------------------------------------------------------------
# Demo hyperparameters (the release spec of `forgeline demo`, src/cli/release.ts, in recipe terms)
# ---------------------------------------------------------------------------------------------

DEMO_TRAIN: dict[str, Any] = {
    "lora": {
        "r": 16,
        "alpha": 32,
        "dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    },
    "qlora": False,
    "steps": 200,
    "learning_rate": 3e-3,
    "batch_size": 16,
    "seq_length": 64,
    "checkpoint_every": 50,
}
DEMO_QUANTIZE: dict[str, Any] = {"method": "gptq", "bits": 4, "group_size": 32, "calibration_samples": 32}
