"""Data-parallel runs of one recipe over several processes (one per GPU, or gloo ranks on CPU).

A recipe whose spec asks for ``processes: N`` (N > 1) does not run its work in the process the
JobRunner started. That process validates the spec (a bad spec still exits 2 before anything
starts), then becomes the *launcher*: it starts N copies of the same script as ranks 0..N-1 with
the environment torch.distributed and the HF Trainer read (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and waits for them.

- Only rank 0 speaks the protocol: its stdout is forwarded line by line to the launcher's event
  stream; the other ranks' stdout goes to stderr, and their event writers are silent.
- The ranks stay in the launcher's process group. (torchrun starts each worker in a session of
  its own, so the JobRunner's kill of the recipe's group on cancel or crash would miss them and
  leave GPUs held; that is why the launcher is ours.)
- The first rank to fail ends the run: the others get SIGTERM, then SIGKILL after a grace
  period. The launcher's exit code follows the protocol: 2 when rank 0 reported a non-retryable
  error, 75 when every rank stopped on a preemption request (:mod:`.preemption`), otherwise 1
  with one ``error`` event naming the rank that failed.
- CPU threads are shared out: each rank gets ``cpu_threads() // N`` (at least 1).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .protocol import EXIT_NON_RETRYABLE, EXIT_OK, EXIT_RETRYABLE, EventWriter, cpu_threads, log
from .preemption import EXIT_PREEMPTED

RANK_MARKER = "FORGELINE_RANK"  # set in every rank's environment; absent in the launcher
DEFAULT_GRACE_S = 10.0
SETTLE_S = 3.0  # after one rank fails, how long the others get to end on their own


@dataclass(frozen=True)
class Rank:
    """This process's place in a data-parallel run."""

    rank: int
    local_rank: int
    world_size: int


def current_rank() -> Rank | None:
    """The rank this process runs as, or None outside a launched run."""
    if RANK_MARKER not in os.environ:
        return None
    return Rank(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))


def is_main_process() -> bool:
    """True in rank 0 and in an ordinary single-process run: the process that writes outputs."""
    rank = current_rank()
    return rank is None or rank.rank == 0


def is_distributed() -> bool:
    """True inside a rank whose torch.distributed process group is up."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def gather_from_ranks(value: Any) -> list[Any]:
    """``value`` from every rank, in rank order (just ``[value]`` in a single-process run)."""
    if not is_distributed():
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    script: str,
    argv: Sequence[str],
    processes: int,
    events: EventWriter,
    event_stream: TextIO,
    grace_s: float = DEFAULT_GRACE_S,
) -> int:
    """Run ``python script *argv`` as ``processes`` ranks; return the launcher's exit code."""
    port = str(_free_port())
    threads = str(max(1, cpu_threads() // processes))
    log(f"launching {processes} ranks of {os.path.basename(script)} (master port {port}, {threads} CPU threads each)")
    ranks: list[subprocess.Popen[str]] = []
    for rank in range(processes):
        env = {
            **os.environ,
            RANK_MARKER: str(rank),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(processes),
            "LOCAL_WORLD_SIZE": str(processes),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "FORGELINE_CPU_THREADS": threads,
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }
        ranks.append(
            subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [sys.executable, script, *argv],
                env=env,
                stdout=subprocess.PIPE if rank == 0 else sys.stderr,
                text=True,
            )
        )

    reported_error = threading.Event()

    def forward_rank0() -> None:
        assert ranks[0].stdout is not None
        for line in ranks[0].stdout:
            event_stream.write(line)
            event_stream.flush()
            if line.startswith("{") and _is_error_event(line):
                reported_error.set()

    forwarder = threading.Thread(target=forward_rank0, name="rank0-events", daemon=True)
    forwarder.start()

    failed: tuple[int, int] | None = None  # (rank, exit code) of the first rank to fail
    try:
        while True:
            codes = [p.poll() for p in ranks]
            failed = next(((r, c) for r, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is not None or all(c == 0 for c in codes):
                break
            time.sleep(0.1)
        if failed is not None:
            # A bad input fails every rank at about the same point: let rank 0 say so itself
            # before stopping whoever is left (a rank stuck in a collective would wait forever).
            _wait_all(ranks, SETTLE_S)
    finally:
        # On failure, or when the launcher itself is interrupted, no rank may outlive it.
        if any(p.poll() is None for p in ranks):
            _stop(ranks, grace_s)
        forwarder.join(timeout=5)

    if failed is None:
        return EXIT_OK
    if all(p.returncode in (EXIT_OK, EXIT_PREEMPTED) for p in ranks):
        return EXIT_PREEMPTED  # every rank saved its part of the checkpoint and stopped on request
    rank, code = failed
    if ranks[0].returncode == EXIT_NON_RETRYABLE and reported_error.is_set():
        return EXIT_NON_RETRYABLE  # rank 0 already said why (a spec or data problem every rank shares)
    if reported_error.is_set():
        return EXIT_RETRYABLE
    if any(p.returncode == EXIT_NON_RETRYABLE for p in ranks):
        bad = next(r for r, p in enumerate(ranks) if p.returncode == EXIT_NON_RETRYABLE)
        events.error(f"rank {bad} of {processes} failed with a non-retryable error (its message is in the log)", "RecipeFailed", False)
        return EXIT_NON_RETRYABLE
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    events.error(f"rank {rank} of {processes} {how}; the other ranks were stopped", "RecipeCrashed", True)
    return EXIT_RETRYABLE


def _is_error_event(line: str) -> bool:
    try:
        payload = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(payload, dict) and payload.get("event") == "error"


def _wait_all(ranks: Sequence[subprocess.Popen[str]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(p.poll() is None for p in ranks) and time.monotonic() < deadline:
        time.sleep(0.05)


def _stop(ranks: Sequence[subprocess.Popen[str]], grace_s: float) -> None:
    """SIGTERM the ranks still running, SIGKILL those left after ``grace_s``."""
    for p in ranks:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in ranks:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
