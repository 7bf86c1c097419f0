"""make_tiny_model: protocol, a loadable model + tokenizer, determinism, the 0.5b config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from protocol_checks import assert_protocol
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from forgeline_recipes.modeling import weights_sha256
from forgeline_recipes.runner import RecipeRun
from forgeline_recipes.tiny import SIZES, llama_config, task_vocabulary
from make_tiny_model import build_model


def test_emits_protocol_and_saves_a_loadable_model(tiny_model_run: RecipeRun, tiny_model: Path) -> None:
    assert_protocol(tiny_model_run)
    result = tiny_model_run.result
    assert result["size"] == "tiny" and 300_000 < result["parameters"] < 600_000
    assert result["weights_sha256"] == weights_sha256(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert model.config.model_type == "llama"
    ids = tokenizer("reverse : a b c =", return_tensors="pt")
    assert ids["input_ids"][0, 0].item() == tokenizer.bos_token_id
    assert tokenizer.unk_token_id not in ids["input_ids"][0].tolist()
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()


def test_same_seed_same_weights_other_seed_other_weights(tiny_model_run: RecipeRun, tmp_path: Path) -> None:
    again = build_model("tiny", seed=0, out_dir=tmp_path / "same")
    other = build_model("tiny", seed=1, out_dir=tmp_path / "other")
    assert again["weights_sha256"] == tiny_model_run.result["weights_sha256"]
    assert other["weights_sha256"] != again["weights_sha256"]


@pytest.mark.parametrize("size", list(SIZES))
def test_configs_fit_gptq_groups_and_target_size(size: str) -> None:
    config = llama_config(size, len(task_vocabulary()))
    head_dim = config.hidden_size // config.num_attention_heads
    for dim in (config.hidden_size, config.num_attention_heads * head_dim, config.intermediate_size):
        assert dim % 128 == 0, f"{size}: {dim} is not a multiple of the largest group size"
    with torch.device("meta"):  # shapes only: nothing is allocated
        parameters = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    low, high = {"tiny": (3e5, 6e5), "0.5b": (4e8, 6e8), "1.5b": (1.4e9, 1.6e9), "8b": (7.9e9, 8.1e9)}[size]
    assert low < parameters < high, parameters
