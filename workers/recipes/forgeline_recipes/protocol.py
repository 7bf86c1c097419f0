"""The recipe side of PROTOCOL.md: events on stdout, understood errors, exit codes.

Every recipe script ends with::

    if __name__ == "__main__":
        sys.exit(run_recipe("train", parse_spec, run))

``parse_spec`` turns the raw JSON into a typed spec without importing torch (so a bad spec fails
fast), ``run`` does the work and returns the ``result`` payload. ``run_recipe`` maps outcomes to
the protocol: result → exit 0; :class:`RecipeError` → ``error`` event and exit 2 (or 1 when the
error says it is retryable); any other exception → traceback on stderr, an ``error`` event with
``type: "RecipeCrashed"`` and exit 1, so the runner retries.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TextIO, TypeVar

EXIT_OK = 0
EXIT_RETRYABLE = 1
EXIT_NON_RETRYABLE = 2


class RecipeError(Exception):
    """A failure the recipe understood. Non-retryable unless ``retryable`` is set."""

    error_type = "RecipeFailed"

    def __init__(self, message: str, *, error_type: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        if error_type is not None:
            self.error_type = error_type


class SpecError(RecipeError):
    """The spec is invalid; the message starts with the dotted path of the offending field."""

    error_type = "InvalidSpec"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class InputNotFound(RecipeError):
    """A path named by the spec does not exist (or is the wrong kind of thing)."""

    error_type = "ArtifactNotFound"

    def __init__(self, field: str, path: Path | str, problem: str = "no such file or directory") -> None:
        super().__init__(f"{field}: {problem}: {path}")
        self.field = field
        self.path = str(path)


def _jsonable(value: Any) -> Any:
    """Make ``value`` strict-JSON safe: non-finite floats become null, numpy/paths become plain values."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class EventWriter:
    """Writes protocol events, one JSON object per line, to the event stream (stdout)."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream  # None: a silent writer (ranks other than 0 of a data-parallel run)

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event; ``None`` fields are omitted, non-finite numbers become null."""
        if self._stream is None:
            return
        payload = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
        self._stream.write(json.dumps(_jsonable(payload), allow_nan=False) + "\n")
        self._stream.flush()

    def start(self, recipe: str, device: str, total_steps: int | None = None, **extra: Any) -> None:
        self.emit("start", recipe=recipe, device=device, total_steps=total_steps, **extra)

    def progress(self, step: int, total_steps: int, **fields: Any) -> None:
        self.emit("progress", step=step, total_steps=total_steps, **fields)

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.emit("metric", name=name, value=value, step=step)

    def checkpoint(self, step: int, path: str) -> None:
        self.emit("checkpoint", step=step, path=path)

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.emit("table", name=name, columns=list(columns), rows=[list(r) for r in rows])

    def result(self, result: Mapping[str, Any]) -> None:
        self.emit("result", result=dict(result))

    def error(self, message: str, error_type: str, retryable: bool) -> None:
        self.emit("error", message=message, type=error_type, retryable=retryable)


def log(message: str) -> None:
    """A free-form log line (stderr, per the protocol)."""
    print(message, file=sys.stderr, flush=True)


SpecT = TypeVar("SpecT")


@dataclass
class RecipeContext(Generic[SpecT]):
    """What a recipe's ``run`` gets: its validated spec, its output directory and the event writer."""

    recipe: str
    spec: SpecT
    out_dir: Path
    events: EventWriter


def _read_spec_file(path: str) -> dict[str, Any]:
    spec_path = Path(path)
    if not spec_path.is_file():
        raise InputNotFound("--spec", spec_path)
    try:
        raw = json.loads(spec_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError("spec", f"not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise SpecError("spec", "expected a JSON object")
    return raw


def cpu_threads() -> int:
    """Threads for CPU math: ``FORGELINE_CPU_THREADS`` when set, else every core this process may
    use (affinity masks and container CPU sets respected)."""
    override = os.environ.get("FORGELINE_CPU_THREADS", "")
    if override.isdigit() and int(override) > 0:
        return int(override)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _limit_cpu_threads() -> None:
    """Size the CPU thread pools before torch is imported (:func:`cpu_threads` of them).

    OpenMP threads sleep instead of spinning while they wait (``OMP_WAIT_POLICY=PASSIVE``): on a
    small shared machine, spinning threads of two busy processes starve each other, and a tiny
    model's training step measured up to 20x slower with the default (active) policy.
    """
    threads = str(cpu_threads())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


EXIT_WITH_PARENT = "FORGELINE_EXIT_WITH_PARENT"  # set by the JobRunner


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this recipe's process group when the process that started it dies.

    Under the JobRunner that parent is the GPU worker: if the worker is killed (OOM killer,
    kill -9, a crash), nobody is left to publish the recipe's output, and a recipe still running
    would hold the GPU the worker's replacement is about to lease. In a data-parallel run each
    rank watches its launcher the same way. The group is killed only when this process leads it
    or the dead parent did (so never a shell's job group).
    """
    import signal
    import threading
    import time

    parent = os.getppid()
    group = os.getpgrp()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        try:
            log(f"the process that started this recipe (pid {parent}) is gone; stopping the recipe")
        except OSError:
            pass  # stderr was a pipe to the dead parent
        if group in (os.getpid(), parent):
            os.killpg(group, signal.SIGKILL)
        os._exit(EXIT_RETRYABLE)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def run_recipe(
    recipe: str,
    parse_spec: Callable[[dict[str, Any]], SpecT],
    run: Callable[[RecipeContext[SpecT]], Mapping[str, Any]],
    argv: Sequence[str] | None = None,
    event_stream: TextIO | None = None,
    processes: Callable[[SpecT], int] | None = None,
    result_model: type[Any] | None = None,
) -> int:
    """Run one recipe invocation (``--spec <file> --out <dir>``) and return its exit code.

    While the recipe runs, ``sys.stdout`` points at stderr so that libraries printing to stdout can
    never interleave with (or split) an event line; events go to ``event_stream`` (default: stdout).

    ``processes(spec)`` > 1 makes this process the launcher of a data-parallel run of the same
    script (:mod:`forgeline_recipes.launch`) once the spec is valid; in the ranks it started,
    only rank 0 writes events.

    ``result_model`` (a pydantic model from :mod:`forgeline_recipes.spec`) checks the result before
    it is sent: a missing or mistyped field is a ``RecipeContract`` error (exit 2) naming it.
    """
    from . import preemption
    from .launch import current_rank, is_main_process, launch

    parser = argparse.ArgumentParser(prog=f"{recipe}.py", description=f"Forgeline recipe {recipe}")
    parser.add_argument("--spec", required=True, help="JSON file with the recipe's input")
    parser.add_argument("--out", required=True, help="output directory (created if absent)")
    args = parser.parse_args(argv)

    if os.environ.get(EXIT_WITH_PARENT) == "1":
        _exit_with_parent()
    preemption.ignore()  # a recipe that can checkpoint on request watches for it (preemption.py)
    stream = event_stream if event_stream is not None else sys.stdout
    events = EventWriter(stream if is_main_process() else None)
    saved_stdout = sys.stdout
    sys.stdout = sys.stderr
    tracker = None
    try:
        raw = _read_spec_file(args.spec)
        tracking = raw.pop("tracking", None)  # W&B tracking of this run, not the recipe's own input
        spec = parse_spec(raw)
        count = processes(spec) if processes else 1
        if count > 1 and current_rank() is None:
            script = os.path.abspath(sys.argv[0])
            return launch(script, list(argv) if argv is not None else sys.argv[1:], count, events, stream)
        _limit_cpu_threads()
        out_dir = Path(args.out).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        if tracking is not None and is_main_process():
            from .tracking import TrackedEventWriter, start_tracking

            tracker = start_tracking(tracking, recipe, raw)
            events = TrackedEventWriter(stream, tracker) if tracker else events
        result = run(RecipeContext(recipe=recipe, spec=spec, out_dir=out_dir, events=events))
        if result_model is not None and is_main_process():
            from .spec import check_result

            result = check_result(recipe, result_model, result)
        events.result(result)
        return EXIT_OK
    except preemption.Preempted as exc:
        log(f"{recipe}: preempted: {exc}")
        return preemption.EXIT_PREEMPTED
    except RecipeError as exc:
        log(f"{recipe}: {exc.error_type}: {exc.message}")
        events.error(exc.message, exc.error_type, exc.retryable)
        return EXIT_RETRYABLE if exc.retryable else EXIT_NON_RETRYABLE
    except Exception as exc:  # noqa: BLE001 - the protocol turns every crash into a retryable exit
        traceback.print_exc(file=sys.stderr)
        events.error(f"{type(exc).__name__}: {exc}", "RecipeCrashed", True)
        return EXIT_RETRYABLE
    finally:
        if tracker is not None:
            tracker.finish()
        sys.stdout = saved_stdout
