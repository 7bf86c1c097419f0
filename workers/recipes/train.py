"""Recipe train: supervised fine-tuning of a LoRA adapter with TRL's SFTTrainer and PEFT.

Spec (see README.md for every field and its default)::

    {"base_model": "/models/tiny-llama", "dataset_dir": "/data/tiny-instruct",
     "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
     "qlora": false, "steps": 200, "learning_rate": 3e-3, "batch_size": 16, "seq_length": 64,
     "checkpoint_every": 50, "resume_from": "/ckpt/step-100", "device": "cpu", "seed": 0,
     "packing": false}

``packing`` packs several examples into each ``seq_length`` row (best-fit decreasing, padding-free,
each example still attends only to itself through position IDs), so short instruction data keeps
a GPU busy; the loss still covers completions only.

Writes ``<out>/checkpoints/step-<n>/`` (adapter + optimizer, scheduler, RNG and trainer state:
resumable) and ``<out>/adapter/`` (PEFT format, with the tokenizer). With ``resume_from`` the run
continues from that checkpoint's step and still ends at ``steps`` in total.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline_recipes import preemption
from forgeline_recipes.launch import gather_from_ranks, is_distributed
from forgeline_recipes.protocol import EventWriter, RecipeContext, SpecError, log, run_recipe
from forgeline_recipes.spec import TrainInput, TrainResult, parse_input, require_dir

if TYPE_CHECKING:
    import torch
    from transformers import TrainerCallback

STAGING_DIR = ".trainer"  # where the Trainer writes checkpoint-<n> before it is moved into place


def parse_spec(raw: dict[str, Any]) -> TrainInput:
    """Validate the spec (src/contracts/recipes/train.ts) without importing torch; errors name the field."""
    spec = parse_input(TrainInput, raw)
    device = spec.device
    require_dir("base_model", spec.base_model)
    require_dir("dataset_dir", spec.dataset_dir, containing="train.jsonl")
    require_dir("resume_from", spec.resume_from)
    if spec.steps is not None and spec.epochs is not None:
        raise SpecError("steps", "set either steps or epochs, not both")
    if spec.resume_from is not None:
        for name in ("trainer_state.json", "adapter_model.safetensors"):
            if not (spec.resume_from / name).is_file():
                raise SpecError("resume_from", f"{spec.resume_from} is not a train checkpoint (no {name})")
    if spec.attn_implementation == "flex_attention" and not device.startswith("cuda"):
        raise SpecError("attn_implementation", "flex_attention has no backward pass on CPU; use auto or sdpa")
    if spec.liger == "on" and not liger_available(device):
        raise SpecError("liger", "Liger's Triton kernels need a CUDA device and the liger-kernel package; use auto (on where they can run) or off")
    if spec.qlora and spec.strategy == "fsdp":
        raise SpecError("strategy", "fsdp does not shard a 4-bit QLoRA base here; use ddp with qlora, or fsdp without it")
    if spec.qlora:
        if not device.startswith("cuda"):
            raise SpecError("qlora", "4-bit QLoRA needs a CUDA device; set qlora to false on CPU pools")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise SpecError("qlora", "4-bit QLoRA needs bitsandbytes, which this worker does not have; set qlora to false")
    return spec


def liger_available(device: str) -> bool:
    """Whether Liger's kernels can run here: they are Triton kernels, so CUDA only."""
    return device.startswith("cuda") and importlib.util.find_spec("liger_kernel") is not None


def use_liger(spec: TrainInput) -> bool:
    """``liger`` resolved. ``auto`` is on where the kernels can run (not on CPU) and ``compile`` is
    off: on an H200 at 8B, Liger alone was +17-21% tokens/s over neither, compile alone +33-39%, and
    both together slower than compile alone (bench/results/gpu-8b.json)."""
    if spec.liger == "auto":
        return liger_available(spec.device) and not spec.compile
    return spec.liger == "on"


def compile_decoder_layers(model: Any) -> int:
    """``torch.compile`` each decoder layer in place (regional compilation: the layers share one
    compiled graph, so a 32-layer model compiles about as fast as one layer, and parameter names,
    hence checkpoints, are unchanged). Returns how many layers were compiled."""
    layer_classes = set(getattr(model, "_no_split_modules", None) or [])
    if not layer_classes:
        raise SpecError("compile", f"{type(model).__name__} names no decoder layer class to compile; set compile to false")
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    for layer in layers:
        layer.compile()
    return len(layers)


def allow_cpu_rank_locations() -> None:
    """Let torch.load restore storage tagged ``cpu:<rank>``. In a multi-process CPU run the
    Trainer loads the optimizer state with ``map_location=args.device``, which is ``cpu:<rank>``
    there, and torch only knows plain ``cpu``; without this a gloo run could not resume."""
    import torch.serialization

    torch.serialization.register_package(
        99, lambda _obj: None, lambda obj, location: obj.cpu() if location.startswith("cpu:") else None
    )


def logical_numel(param: Any) -> int:
    """Weights a parameter stands for. A bitsandbytes 4-bit weight packs two into each stored
    byte, so its ``numel()`` is half the layer's size; its quant state keeps the real shape."""
    quant_state = getattr(param, "quant_state", None)
    if quant_state is not None and getattr(quant_state, "shape", None) is not None:
        return math.prod(quant_state.shape)
    return int(param.numel())


def fsdp_arguments(spec: TrainInput, model: Any) -> dict[str, Any]:
    """SFTConfig fields for FSDP (version 2): every decoder layer is its own shard unit, so each
    rank holds 1/processes of the frozen base; none for DDP or a single process."""
    if spec.strategy != "fsdp" or spec.processes == 1:
        return {}
    layers = list(getattr(model, "_no_split_modules", None) or [])
    if not layers:
        raise SpecError("strategy", f"fsdp needs the model's decoder layer class; {type(model).__name__} does not name one, use ddp")
    return {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True, "transformer_layer_cls_to_wrap": layers}}


def training_flops_per_token(parameters: int, trainable: int) -> int:
    """Model FLOPs per trained token for LoRA: forward 2·N, backward through the frozen base for
    activation gradients 2·N, weight gradients only for the trainable 2·N_trainable. (Full
    fine-tuning would be the usual 6·N; attention-score FLOPs are left out, which for short
    packed examples is under 1%.)"""
    return 4 * parameters + 2 * trainable


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a Trainer checkpoint was saved at."""
    return int(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])


def make_protocol_callback(events: EventWriter, out_dir: Path, total_steps: int) -> TrainerCallback:
    """A TrainerCallback that speaks the protocol: progress + loss metrics on every log, and a
    ``checkpoint`` event once a checkpoint is complete on disk and moved to ``checkpoints/step-<n>``."""
    from transformers import TrainerCallback

    class ProtocolCallback(TrainerCallback):
        def __init__(self) -> None:
            self.tokens_at_start = 0
            self.window_tokens = 0
            self.window_time = 0.0
            self.last_loss: float | None = None
            self.after_first_step: tuple[float, int] | None = None  # (time, tokens) once step 1 of this run is done

        def steady_tokens_per_s(self, state: Any) -> float | None:
            """Tokens/s after the first step (which pays for CUDA context, kernel selection and
            compilation); None when the run had fewer than two steps."""
            if self.after_first_step is None or state.num_input_tokens_seen == self.after_first_step[1]:
                return None
            started, tokens = self.after_first_step
            return (state.num_input_tokens_seen - tokens) / max(time.perf_counter() - started, 1e-9)

        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            self.tokens_at_start = self.window_tokens = state.num_input_tokens_seen
            self.window_time = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if self.after_first_step is None:
                self.after_first_step = (time.perf_counter(), state.num_input_tokens_seen)
            if state.global_step >= state.max_steps:
                control.should_log = True  # the last step is always reported, whatever log_every is

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any) -> None:
            logs = logs or {}
            if "loss" not in logs:  # the end-of-training summary, reported in `result`
                return
            now = time.perf_counter()
            tokens_per_s = (state.num_input_tokens_seen - self.window_tokens) / max(now - self.window_time, 1e-9)
            self.window_tokens, self.window_time = state.num_input_tokens_seen, now
            self.last_loss = float(logs["loss"])
            events.progress(
                state.global_step,
                total_steps,
                loss=self.last_loss,
                lr=logs.get("learning_rate"),
                tokens_per_s=tokens_per_s,
                epoch=logs.get("epoch"),
            )
            events.metric("train_loss", self.last_loss, step=state.global_step)
            if "mean_token_accuracy" in logs:
                events.metric("train_token_accuracy", float(logs["mean_token_accuracy"]), step=state.global_step)

        def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            # on_save runs after the Trainer has written weights, optimizer, scheduler, RNG and
            # trainer state, so the rename publishes a complete checkpoint.
            if is_distributed():
                import torch.distributed as dist

                dist.barrier()  # every rank has written its part (RNG state) before rank 0 moves it
            if not state.is_world_process_zero:
                return
            staged = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            final = out_dir / "checkpoints" / f"step-{state.global_step}"
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # left by an earlier attempt that got further than the one we resumed
                shutil.rmtree(final)
            staged.rename(final)
            events.checkpoint(state.global_step, final.relative_to(out_dir).as_posix())

    return ProtocolCallback()


def load_base_model(spec: TrainInput, device: torch.device) -> Any:
    """The base model: fp32 on CPU; bf16 + SDPA/flash-attention on CUDA; 4-bit NF4 for QLoRA."""
    import torch
    from transformers import AutoModelForCausalLM

    from forgeline_recipes.runtime import best_attention_implementation

    kwargs: dict[str, Any] = {
        "dtype": torch.bfloat16 if device.type == "cuda" else torch.float32,
        "attn_implementation": best_attention_implementation(device, spec.attn_implementation),
    }
    if spec.qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": device.index or 0}
    model = AutoModelForCausalLM.from_pretrained(spec.base_model, **kwargs)
    # No KV cache in training: besides wasting memory, a cache makes transformers ignore the
    # position-id restarts that keep packed examples apart.
    model.config.use_cache = False
    module_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in spec.lora.target_modules if m not in module_names]
    if missing:
        raise SpecError("lora.target_modules", f"no module named {', '.join(missing)} in {spec.base_model}")
    return model


def run(ctx: RecipeContext[TrainInput]) -> dict[str, Any]:
    preemption.watch()  # the worker's "save a checkpoint and stop" (preemption.py), from the start
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from forgeline_recipes.data import PackedCollator, encode_for_training, load_split, pack_examples
    from forgeline_recipes.runtime import peak_flops, peak_memory_bytes, reset_peak_memory, setup

    spec, out_dir = ctx.spec, ctx.out_dir
    device = setup(spec.device, spec.seed)
    cuda = device.type == "cuda"
    liger = use_liger(spec)

    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded, dropped = encode_for_training(tokenizer, load_split(spec.dataset_dir, "train"), spec.seq_length)
    if not encoded:
        raise SpecError("seq_length", f"{spec.seq_length} tokens cut every completion off; raise it")
    if dropped:
        log(f"dropped {dropped} examples whose completion does not fit in seq_length={spec.seq_length}")
    collator = None
    if spec.packing:
        packed = pack_examples(encoded, spec.seq_length, spec.seed)
        fill = sum(len(row.input_ids) for row in packed) / (len(packed) * spec.seq_length)
        log(f"packed {len(encoded)} examples into {len(packed)} rows of {spec.seq_length} tokens ({fill:.1%} full)")
        train_dataset = Dataset.from_dict(
            {"input_ids": [r.input_ids for r in packed], "labels": [r.labels for r in packed], "seq_lengths": [r.seq_lengths for r in packed]}
        )
        collator = PackedCollator(tokenizer.pad_token_id)
    else:
        train_dataset = Dataset.from_dict({"input_ids": [e.input_ids for e in encoded], "labels": [e.labels for e in encoded]})
    # batch_size is per process: a step of a data-parallel run covers batch_size x processes rows.
    steps_per_epoch = math.ceil(len(train_dataset) / (spec.batch_size * spec.gradient_accumulation_steps * spec.processes))
    total_steps = spec.steps if spec.steps is not None else math.ceil(steps_per_epoch * (spec.epochs or 1.0))
    resumed_from = checkpoint_step(spec.resume_from) if spec.resume_from else 0
    if resumed_from > total_steps:
        raise SpecError("resume_from", f"checkpoint is at step {resumed_from}, past the run's {total_steps} steps")

    model = load_base_model(spec, device)
    if spec.processes > 1 and not cuda:
        allow_cpu_rank_locations()
    args = SFTConfig(
        output_dir=str(out_dir / STAGING_DIR),
        max_steps=total_steps,
        per_device_train_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.lr_scheduler,
        warmup_steps=spec.warmup_steps,
        logging_steps=spec.log_every,
        save_strategy="steps",
        save_steps=spec.checkpoint_every,
        report_to="none",
        seed=spec.seed,
        data_seed=spec.seed,
        max_length=spec.seq_length,
        bf16=cuda,
        use_cpu=not cuda,
        ddp_backend=("nccl" if cuda else "gloo") if spec.processes > 1 else None,
        ddp_find_unused_parameters=False,  # every LoRA weight gets a gradient on every step
        **fsdp_arguments(spec, model),
        gradient_checkpointing=spec.gradient_checkpointing,
        # Liger's RMSNorm, RoPE and SwiGLU kernels, patched in when training starts. TRL keeps its own
        # fused LM head (chunked log-probs, no full logits) in place of Liger's fused linear CE.
        use_liger_kernel=liger,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    lora_config = LoraConfig(
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=spec.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    callback = make_protocol_callback(ctx.events, out_dir, total_steps)
    stop = preemption.make_preemption_callback()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=lora_config,
        callbacks=[callback, stop],
        **({"data_collator": collator} if collator else {}),
    )
    if spec.compile:
        log(f"torch.compile: {compile_decoder_layers(trainer.model.get_base_model())} decoder layers")
    parameters = sum(logical_numel(p) for p in trainer.model.parameters())
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    ctx.events.start(
        ctx.recipe,
        device=str(device),
        total_steps=total_steps,
        resumed_from_step=resumed_from,
        trainable_parameters=trainable,
    )

    reset_peak_memory(device)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(spec.resume_from) if spec.resume_from else None)
    runtime_s = time.perf_counter() - started
    if stop.stopped_early and trainer.state.global_step < total_steps:
        # The checkpoint of this step is saved and its event sent (ProtocolCallback.on_save).
        raise preemption.Preempted(f"saved a checkpoint at step {trainer.state.global_step} of {total_steps} and stopped")
    steady_tokens_per_s = callback.steady_tokens_per_s(trainer.state)

    peak_per_process = gather_from_ranks(peak_memory_bytes(device))
    # Every rank takes part (under FSDP the adapter is gathered from the shards); rank 0 writes.
    trainer.save_model(str(out_dir / "adapter"))
    if not trainer.is_world_process_zero():
        return {}  # rank 0 reports; its launcher exits when every rank has
    shutil.rmtree(out_dir / STAGING_DIR, ignore_errors=True)

    tokens = trainer.state.num_input_tokens_seen - callback.tokens_at_start
    tokens_per_s = tokens / max(runtime_s, 1e-9)
    result: dict[str, Any] = {
        "total_steps": trainer.state.global_step,
        "steps_done_this_run": trainer.state.global_step - resumed_from,
        "resumed_from_step": resumed_from,
        "final_loss": callback.last_loss,
        "mean_train_loss": output.training_loss if trainer.state.global_step > resumed_from else None,
        "tokens_this_run": tokens,
        "tokens_per_s": tokens_per_s,
        "steady_tokens_per_s": steady_tokens_per_s,
        "train_runtime_s": runtime_s,
        "parameters": parameters,
        "trainable_parameters": trainable,
        "examples": len(encoded),
        "packing": spec.packing,
        "attn_implementation": trainer.model.config._attn_implementation,
        "liger": liger,
        "compile": spec.compile,
        "seq_length": spec.seq_length,
        "batch_size": spec.batch_size,
        "processes": spec.processes,
        "strategy": spec.strategy if spec.processes > 1 else "single",
        "global_batch_size": spec.batch_size * spec.gradient_accumulation_steps * spec.processes,
        "adapter": "adapter",
    }
    if cuda:
        result["peak_memory_bytes"] = max(peak_per_process)
        result["peak_memory_bytes_per_process"] = peak_per_process
        result["gpu"] = torch.cuda.get_device_name(device)
        peak = peak_flops(device)
        if peak:
            peak *= spec.processes  # tokens/s counts every rank
        result["flops_per_token"] = training_flops_per_token(parameters, trainable)
        # MFU of the steady state, so a short benchmark run is not dominated by its first step.
        result["mfu"] = result["flops_per_token"] * (steady_tokens_per_s or tokens_per_s) / peak if peak else None
    for name in ("final_loss", "tokens_per_s", "train_runtime_s", "mfu", "peak_memory_bytes"):
        if result.get(name) is not None:
            ctx.events.metric(name, result[name], step=trainer.state.global_step)
    return result


if __name__ == "__main__":
    sys.exit(run_recipe("train", parse_spec, run, processes=lambda spec: spec.processes, result_model=TrainResult))
