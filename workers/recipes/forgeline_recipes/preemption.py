"""Preemption: a worker that is shutting down asks its recipes to save a checkpoint and stop.

The JobRunner sends SIGUSR1 to the recipe's process group when its worker gets SIGTERM (spot
notice, rolling deploy). :func:`run_recipe <forgeline_recipes.protocol.run_recipe>` ignores the
signal by default, so a recipe that cannot checkpoint (quantize, evaluate) keeps going and usually
finishes within the worker's grace time. A recipe that can (train) calls :func:`watch`, and its
loop checks :func:`requested`; when it has saved a checkpoint (and emitted the ``checkpoint``
event) it raises :class:`Preempted`, which ``run_recipe`` turns into exit code
:data:`EXIT_PREEMPTED` (75, EX_TEMPFAIL): "stopped on request, retry", after which the runner
fails the attempt retryably and the retry resumes from that checkpoint.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

EXIT_PREEMPTED = 75
SIGNAL = signal.SIGUSR1

_requested = threading.Event()


class Preempted(Exception):
    """Raised by a recipe that stopped early because its worker asked it to (after checkpointing)."""


def ignore() -> None:
    """Ignore the runner's preemption signal (the default for every recipe; inherited by the ranks
    a launcher starts, which :func:`watch` again if they can checkpoint)."""
    signal.signal(SIGNAL, signal.SIG_IGN)


def watch() -> None:
    """Record the runner's preemption signal instead of ignoring it; see :func:`requested`."""
    signal.signal(SIGNAL, lambda _signum, _frame: _requested.set())


def requested() -> bool:
    """True once this process got the preemption signal."""
    return _requested.is_set()


def make_preemption_callback() -> Any:
    """A TrainerCallback that, once preemption is requested, makes the Trainer save a checkpoint at
    the end of the current step and stop. In a data-parallel run the ranks agree first (one
    all-reduce of a flag per step), since each got the signal at its own moment and a checkpoint
    is saved by all of them together. ``stopped_early`` tells the recipe afterwards."""
    from transformers import TrainerCallback

    from .launch import is_distributed

    class PreemptionCallback(TrainerCallback):
        def __init__(self) -> None:
            self.stopped_early = False

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            wanted = requested()
            if is_distributed():
                import torch
                import torch.distributed as dist

                flag = torch.tensor([1 if wanted else 0], device=args.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                wanted = bool(flag.item())
            if wanted and not self.stopped_early:
                self.stopped_early = True
                control.should_save = True
                control.should_training_stop = True

    return PreemptionCallback()
