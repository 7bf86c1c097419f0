"""Recipe train_lora: supervised fine-tuning of a LoRA adapter with TRL's SFTTrainer and PEFT.

Spec:
  {"base_model": "/dir", "dataset_dir": "/dir with train.jsonl",
   "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
   "qlora": false, "steps": 60 | "epochs": 1.0, "learning_rate": 3e-3, "batch_size": 16,
   "seq_length": 64, "checkpoint_every": 20, "resume_from": "/checkpoint dir" (optional),
   "device": "cpu" | "cuda", "seed": 0}
Output: <out>/checkpoints/step-<n>/ (resumable Trainer checkpoints), <out>/adapter/ (PEFT).
Events: progress every step (loss, lr, tokens/s), checkpoint after each save, metric train_loss.
Result: total_steps, steps_done_this_run, resumed_from_step, final_loss, tokens_per_s,
  train_runtime_s, trainable_parameters, and on CUDA peak_memory_bytes and mfu.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeline_recipes.protocol import RecipeContext, RecipeError, SpecError, run_recipe
from forgeline_recipes.spec import SpecReader, read_common


@dataclass
class Spec:
    base_model: Path
    dataset_dir: Path
    r: int
    alpha: float
    dropout: float
    target_modules: list[str]
    qlora: bool
    steps: int | None
    epochs: float | None
    learning_rate: float
    batch_size: int
    seq_length: int
    checkpoint_every: int
    resume_from: Path | None
    device: str
    seed: int


def parse_spec(raw: dict[str, Any]) -> Spec:
    r = SpecReader(raw)
    device, seed = read_common(r)
    lora = r.section("lora")
    spec = Spec(
        base_model=r.path("base_model", kind="dir"),
        dataset_dir=r.path("dataset_dir", kind="dir"),
        r=lora.integer("r", 16, minimum=1, maximum=1024),
        alpha=lora.number("alpha", 32.0),
        dropout=lora.number("dropout", 0.0),
        target_modules=lora.string_list("target_modules", ["q_proj", "v_proj"]),
        qlora=r.boolean("qlora", False),
        steps=r.integer("steps", None, minimum=1),
        epochs=r.number("epochs", None),
        learning_rate=r.number("learning_rate", 2e-4),
        batch_size=r.integer("batch_size", 8, minimum=1),
        seq_length=r.integer("seq_length", 128, minimum=8),
        checkpoint_every=r.integer("checkpoint_every", 20, minimum=1),
        resume_from=r.path("resume_from", None, kind="dir"),
        device=device,
        seed=seed,
    )
    r.finish()
    if spec.steps is None and spec.epochs is None:
        spec.steps = 100
    if spec.steps is not None and spec.epochs is not None:
        raise SpecError("steps", "set either steps or epochs, not both")
    if not 0 <= spec.dropout < 1:
        raise SpecError("lora.dropout", "expected 0 <= dropout < 1")
    if spec.qlora and not device.startswith("cuda"):
        raise SpecError("qlora", "QLoRA (4-bit base weights) needs a CUDA device and bitsandbytes; use qlora: false on CPU pools")
    return spec


def run(ctx: RecipeContext[Spec]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from forgeline_recipes.data import load_split
    from forgeline_recipes.runtime import PEAK_BF16_FLOPS, setup

    spec = ctx.spec
    device = setup(spec.device, spec.seed)
    cuda = device.type == "cuda"
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    load_kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if cuda:
        load_kwargs["attn_implementation"] = "sdpa"
    if spec.qlora:
        try:
            from transformers import BitsAndBytesConfig
        except ImportError as exc:  # pragma: no cover - CUDA only
            raise RecipeError("qlora: bitsandbytes is not installed on this worker", error_type="InvalidSpec") from exc
        load_kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")
    model = AutoModelForCausalLM.from_pretrained(spec.base_model, **load_kwargs)
    missing = [m for m in spec.target_modules if not any(name.endswith(m) for name, _ in model.named_modules())]
    if missing:
        raise SpecError("lora.target_modules", f"{missing} match no module of {spec.base_model.name}")

    train_rows = load_split(spec.dataset_dir, "train")
    # TRL joins prompt and completion as plain strings: keep a word boundary between them, so a
    # word-level tokenizer sees the same tokens here as evaluation does.
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"] if r["completion"][:1].isspace() else " " + r["completion"]} for r in train_rows])
    ckpt_dir = ctx.out_dir / "checkpoints"
    total_steps = spec.steps if spec.steps is not None else math.ceil(len(train_rows) / spec.batch_size * (spec.epochs or 1))
    resumed_from = 0
    if spec.resume_from is not None:
        state = spec.resume_from / "trainer_state.json"
        if not state.is_file():
            raise SpecError("resume_from", f"{spec.resume_from} is not a Trainer checkpoint (no trainer_state.json)")
        import json

        resumed_from = int(json.loads(state.read_text())["global_step"])

    config = SFTConfig(
        output_dir=str(ckpt_dir),
        max_steps=total_steps,
        per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="steps",
        save_steps=spec.checkpoint_every,
        save_total_limit=2,
        report_to="none",
        seed=spec.seed,
        data_seed=spec.seed,
        max_length=spec.seq_length,
        completion_only_loss=True,
        bf16=cuda,
        use_cpu=not cuda,
        dataloader_num_workers=0,
        disable_tqdm=True,
        dataset_num_proc=None,
    )
    lora = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules, task_type="CAUSAL_LM")

    events = ctx.events
    tokens_seen = {"n": 0.0, "t0": time.perf_counter(), "last_loss": float("nan"), "at_start": 0.0}

    class Protocol(TrainerCallback):
        """Progress on every log, a checkpoint event once a save is complete on disk."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any) -> None:
            logs = logs or {}
            if "loss" not in logs:
                return
            tokens_seen["last_loss"] = float(logs["loss"])
            if "num_tokens" in logs:  # TRL counts the real (unpadded) tokens seen so far
                tokens_seen["n"] = float(logs["num_tokens"]) - tokens_seen["at_start"]
            elapsed = max(time.perf_counter() - tokens_seen["t0"], 1e-9)
            events.progress(state.global_step, total_steps, loss=float(logs["loss"]), lr=logs.get("learning_rate"), tokens_per_s=tokens_seen["n"] / elapsed, epoch=logs.get("epoch"))

        def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            src = ckpt_dir / f"checkpoint-{state.global_step}"
            dst = ckpt_dir / f"step-{state.global_step}"
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst)
            events.checkpoint(state.global_step, str(dst.relative_to(ctx.out_dir)))

    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora, callbacks=[Protocol()])
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    events.start(ctx.recipe, device=str(device), total_steps=total_steps, resumed_from_step=resumed_from, trainable_parameters=trainable)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = tokens_seen["t0"] = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(spec.resume_from) if spec.resume_from else None)
    runtime = time.perf_counter() - t0
    steps_this_run = trainer.state.global_step - resumed_from
    tokens_per_s = tokens_seen["n"] / max(runtime, 1e-9)
    trainer.model.save_pretrained(ctx.out_dir / "adapter")
    tokenizer.save_pretrained(ctx.out_dir / "adapter")
    final_loss = tokens_seen["last_loss"]
    events.metric("train_loss", out.training_loss, step=trainer.state.global_step)
    result: dict[str, Any] = {
        "total_steps": trainer.state.global_step,
        "steps_done_this_run": steps_this_run,
        "resumed_from_step": resumed_from,
        "final_loss": final_loss,
        "mean_train_loss": out.training_loss,
        "tokens_per_s": tokens_per_s,
        "train_runtime_s": runtime,
        "trainable_parameters": trainable,
    }
    if cuda:
        params = sum(p.numel() for p in trainer.model.parameters())
        name = torch.cuda.get_device_name(device)
        peak = next((f for k, f in PEAK_BF16_FLOPS if k in name), None)
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        result["gpu"] = name
        if peak:
            result["mfu"] = 6 * params * tokens_per_s / peak
    return result


if __name__ == "__main__":
    sys.exit(run_recipe("train_lora", parse_spec, run))
