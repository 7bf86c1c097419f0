"""train's GPU speed options on a CPU worker: ``liger`` (Liger's Triton kernels) falls back cleanly
where it cannot run and is refused when asked for explicitly; ``compile`` compiles each decoder
layer in place. What they are worth on a GPU is measured by bench/gpu_8b.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from protocol_checks import assert_protocol

import train
from forgeline_recipes.protocol import SpecError
from forgeline_recipes.runner import run_recipe_process
from forgeline_recipes.tiny import DATASET_DIR, DEMO_TRAIN

COMMON = {"device": "cpu", "seed": 0}


@pytest.fixture()
def train_spec(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "base").mkdir()
    return {**COMMON, **DEMO_TRAIN, "base_model": str(tmp_path / "base"), "dataset_dir": str(DATASET_DIR)}


@pytest.fixture()
def liger_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a GPU worker with liger-kernel: the package is importable."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: SimpleNamespace(name=name) if name == "liger_kernel" else real(name, *a))


def options(device: str, liger: str, compile: bool = False) -> Any:
    return SimpleNamespace(device=device, liger=liger, compile=compile)


def test_liger_defaults_to_auto_and_compile_to_off(train_spec: dict[str, Any]) -> None:
    spec = train.parse_spec(train_spec)
    assert (spec.liger, spec.compile) == ("auto", False)


def test_liger_auto_is_off_on_cpu_even_where_the_package_is_installed(liger_installed: None) -> None:
    assert not train.use_liger(options("cpu", "auto"))
    assert not train.use_liger(options("cpu", "off"))


def test_liger_auto_is_on_on_cuda_with_the_package_unless_compile_is_on(liger_installed: None) -> None:
    assert train.use_liger(options("cuda", "auto"))
    assert train.use_liger(options("cuda:1", "auto"))
    # measured: compile alone beats Liger + compile, so auto leaves Liger out under compile
    assert not train.use_liger(options("cuda", "auto", compile=True))
    assert train.use_liger(options("cuda", "on", compile=True))  # an explicit choice is honoured
    assert not train.use_liger(options("cuda", "off"))


def test_liger_auto_is_off_on_cuda_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "liger_kernel" else real(name, *a))
    assert not train.use_liger(options("cuda", "auto"))


def test_liger_on_is_refused_on_cpu(train_spec: dict[str, Any], liger_installed: None) -> None:
    with pytest.raises(SpecError) as caught:
        train.parse_spec({**train_spec, "liger": "on"})
    assert caught.value.field == "liger" and "CUDA" in str(caught.value) and "auto" in str(caught.value)


@pytest.mark.parametrize("change", [{"liger": "yes"}, {"liger": True}, {"compile": "true"}, {"compile": 1}])
def test_bad_option_values_name_the_field(train_spec: dict[str, Any], change: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as caught:
        train.parse_spec({**train_spec, **change})
    assert caught.value.field == next(iter(change))


def test_liger_on_on_a_cpu_worker_exits_2_naming_the_field(tiny_model: Path, tmp_path: Path) -> None:
    spec = {**COMMON, **DEMO_TRAIN, "base_model": str(tiny_model), "dataset_dir": str(DATASET_DIR), "liger": "on"}
    run = run_recipe_process("train", spec, tmp_path / "out")
    assert run.returncode == 2, run.stderr[-2000:]
    assert_protocol(run, success=False)
    assert run.error is not None and run.error["type"] == "InvalidSpec" and run.error["message"].startswith("liger: ")


def test_compile_decoder_layers_compiles_each_layer_in_place(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    names = [name for name, _ in model.named_parameters()]
    assert train.compile_decoder_layers(model) == model.config.num_hidden_layers
    assert all(layer._compiled_call_impl is not None for layer in model.model.layers)
    assert model.model.norm._compiled_call_impl is None  # only the repeated blocks
    assert [name for name, _ in model.named_parameters()] == names  # checkpoints keep their keys


def test_compile_refuses_a_model_without_a_decoder_layer_class() -> None:
    import torch

    with pytest.raises(SpecError) as caught:
        train.compile_decoder_layers(torch.nn.Linear(2, 2))
    assert caught.value.field == "compile"
