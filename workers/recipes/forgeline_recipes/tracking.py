"""W&B tracking from the recipes, with the official ``wandb`` SDK.

A recipe logs to W&B only when its input asks for it with a ``tracking`` object (the GPU activity
adds it when the worker's tracker is W&B)::

    "tracking": {"project": "forgeline", "entity": "my-team", "group": "<release id>",
                 "job_type": "train", "run_name": "train <release id>", "run_id": "<unique per attempt>",
                 "mode": "online", "dir": "/work/attempt-1/wandb", "tags": ["tiny-llama"]}

The API key is never in the input: the SDK reads ``WANDB_API_KEY`` (and ``WANDB_BASE_URL`` for a
self-hosted server) from the recipe's environment. ``mode`` left out lets ``WANDB_MODE`` decide;
``offline`` writes the run under ``dir`` for ``wandb sync`` to upload later.

What is logged mirrors the protocol events the recipe already writes, so no recipe needs code of
its own: ``progress`` numbers (loss, lr, tokens/s, ...) and ``metric`` events with a step go to
the run's history at that step; ``metric`` events without a step (or named like a progress curve:
a whole-run figure) and the scalar fields of the ``result`` go to its summary; ``table`` events become a ``wandb.Table``; ``start`` fields and the
recipe's input (less ``tracking``) become the run's config. Each stage of a release is one run,
grouped by the release (``group``) with the stage as ``job_type``; the TypeScript tracker keeps
the lifecycle run (gates, decisions) in the same group.

Tracking is best-effort: an invalid ``tracking`` object, a failed ``wandb.init`` (server down,
bad key) or any later SDK error prints one warning on stderr and the recipe goes on untracked.
It never changes the recipe's result or exit code. Only the process that speaks the protocol
(rank 0) logs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .protocol import EXIT_NON_RETRYABLE, EXIT_OK, EXIT_RETRYABLE, EventWriter, log

# Run ids W&B accepts (they end up in URLs and file names).
RUN_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# Fields of a progress event that are bookkeeping, not curves.
PROGRESS_BOOKKEEPING = {"step", "total_steps"}


class TrackingSpec(BaseModel):
    """The ``tracking`` object of a recipe input."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=128)
    entity: str | None = Field(default=None, min_length=1)
    group: str = Field(min_length=1, max_length=128, description="the release ID: one group per release")
    job_type: str = Field(min_length=1, max_length=64, description="the stage: train, quantize, evaluate")
    run_name: str | None = Field(default=None, min_length=1, description="display name; W&B makes one up when absent")
    run_id: str | None = Field(
        default=None,
        pattern=RUN_ID_PATTERN,
        description="unique per attempt (a retried attempt is a run of its own in the group); absent: W&B picks one",
    )
    mode: Literal["online", "offline"] | None = Field(default=None, description="absent: WANDB_MODE decides (default online)")
    dir: str = Field(min_length=1, description="where the SDK writes the run (offline runs stay here for `wandb sync`)")
    tags: list[str] = Field(default_factory=list)
    init_timeout_s: float = Field(default=30.0, gt=0, description="give up on an unreachable server after this long")
    finish_timeout_s: float = Field(default=60.0, gt=0, description="stop waiting for uploads at the end after this long")


def _warn(message: str) -> None:
    log(f"warning: W&B tracking off: {message}; the recipe goes on untracked")


def _scalars(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a chart or summary cell can show: numbers, strings and booleans."""
    return {k: v for k, v in fields.items() if isinstance(v, (int, float, str, bool))}


def _numbers(fields: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@contextmanager
def _children_write_events_to_stderr() -> Iterator[None]:
    """The SDK starts its service (wandb-core) with this process's file descriptors, and fd 1 is
    the protocol's event stream: whatever the service printed there would corrupt it. While the
    service starts, fd 1 points at stderr, so that is what it inherits."""
    sys.__stdout__.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class WandbTracker:
    """One W&B run for one recipe invocation; every call is best-effort."""

    def __init__(self, run: Any, offline: bool) -> None:
        self._run = run
        self.offline = offline
        self._exit_code = EXIT_RETRYABLE  # until a result or error event says otherwise
        self._warned = False
        self._curves: set[str] = set()  # history keys the progress events log

    def _guard(self, what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the recipe
            if not self._warned:
                self._warned = True
                log(f"warning: W&B {what} failed ({type(exc).__name__}: {exc}); the recipe goes on")

    def observe(self, event: str, fields: Mapping[str, Any]) -> None:
        """Mirror one protocol event into the run."""
        if event == "start":
            self._guard("config update", lambda: self._run.config.update(_scalars(fields), allow_val_change=True))
        elif event == "progress":
            values = {k: v for k, v in _numbers(fields).items() if k not in PROGRESS_BOOKKEEPING}
            self._curves.update(values)
            if values:
                self._guard("log", lambda: self._run.log(values, step=int(fields["step"])))
        elif event == "metric":
            name, value, step = fields["name"], fields["value"], fields.get("step")
            # A metric named like a progress curve (train's closing tokens_per_s) is the figure
            # for the whole run: in the history it would overwrite the curve's last point.
            if step is None or name in self._curves:
                self._guard("summary update", lambda: self._run.summary.update({name: value}))
            else:
                self._guard("log", lambda: self._run.log({name: value}, step=int(step)))
        elif event == "table":
            self._guard("table", lambda: self._log_table(fields["name"], fields["columns"], fields["rows"]))
        elif event == "result":
            self._exit_code = EXIT_OK
            self._guard("summary update", lambda: self._run.summary.update(_scalars(fields["result"])))
        elif event == "error":
            self._exit_code = EXIT_RETRYABLE if fields.get("retryable") else EXIT_NON_RETRYABLE

    def _log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        import wandb

        self._run.log({name: wandb.Table(columns=columns, data=rows)})

    def finish(self) -> None:
        """End the run with the recipe's exit code (as its result or error event told it)."""
        self._guard("finish", lambda: self._run.finish(exit_code=self._exit_code))
        if self.offline:
            log(f"W&B offline run written to {self._run.settings.sync_dir}; upload it with `wandb sync <that dir>`")


class TrackedEventWriter(EventWriter):
    """Writes protocol events to ``stream`` and hands each one to a tracker."""

    def __init__(self, stream: TextIO, tracker: WandbTracker) -> None:
        super().__init__(stream)
        self.tracker = tracker

    def emit(self, event: str, **fields: Any) -> None:
        super().emit(event, **fields)
        self.tracker.observe(event, {k: v for k, v in fields.items() if v is not None})


def start_tracking(raw: Any, recipe: str, config: Mapping[str, Any]) -> WandbTracker | None:
    """Start the W&B run a recipe input's ``tracking`` asks for; None (after one warning when
    something is wrong) means the recipe runs untracked."""
    if raw is None:
        return None
    try:
        spec = TrackingSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"tracking.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        _warn(f"invalid tracking input ({problems})")
        return None
    try:
        import wandb
    except ImportError:
        _warn("the wandb package is not installed in this environment")
        return None
    # The SDK's own usage telemetry and crash reports go to W&B's servers; a training job should
    # not phone home unless the operator says so (WANDB_ERROR_REPORTING=true).
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    try:
        os.makedirs(spec.dir, exist_ok=True)
        settings = wandb.Settings(
            init_timeout=spec.init_timeout_s,
            finish_timeout=spec.finish_timeout_s,
            console="off",  # stdout is the event stream; recipe logs reach the activity on stderr
            silent=True,
        )
        with _children_write_events_to_stderr():
            run = wandb.init(
                project=spec.project,
                entity=spec.entity,
                group=spec.group,
                job_type=spec.job_type,
                name=spec.run_name,
                id=spec.run_id,
                tags=spec.tags or None,
                dir=spec.dir,
                config={"recipe": recipe, **config},
                settings=settings,
                **({"mode": spec.mode} if spec.mode else {}),
            )
    except Exception as exc:  # noqa: BLE001 - init errors come in many types (network, auth, usage)
        _warn(f"wandb.init failed ({type(exc).__name__}: {exc})")
        return None
    offline = bool(run.offline)
    where = f"offline in {run.settings.sync_dir}" if offline else run.settings.run_url
    log(f"W&B run {run.id}: {where} (group {spec.group}, job_type {spec.job_type})")
    return WandbTracker(run, offline)
