"""Prefect 3 peer for the orchestration benchmark (driven by bench/run.ts).

The same 9-step release pipeline as modelReleaseWorkflow, as a Prefect user would write it: one
flow, 9 sequential no-op tasks (named after our activities), against a local `prefect server
start` (PREFECT_API_URL set by the driver). Each flow run is timed by the caller, from calling
the flow to its return, as a user's code waits for it.

Protocol (JSON lines, so the driver can interleave batches with the Temporal side):
  stdin  {"spec": {...}, "warmup": 3}   -> stdout {"ready": true, "prefect": "<version>"}
  stdin  {"runs": 10}                    -> stdout {"ms": [..10 wall times..]}
  EOF on stdin ends the process.
"""

import json
import sys
import time

import prefect
from prefect import flow, task

STAGES = (
    "validateReleaseSpec",
    "openReleaseRun",
    "trainAdapter",
    "quantizeModel",
    "runEvalSuite",
    "logGateResults",
    "registerRelease",
    "promoteCandidate",
    "closeReleaseRun",
)


def noop(spec: dict) -> dict:
    return spec


TASKS = [task(noop, name=name) for name in STAGES]


@flow(name="model-release")
def model_release(spec: dict) -> None:
    for stage in TASKS:
        stage(spec)


def timed_runs(spec: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        model_release(spec)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    spec: dict | None = None
    for line in sys.stdin:
        msg = json.loads(line)
        if "spec" in msg:
            spec = msg["spec"]
            timed_runs(spec, int(msg.get("warmup", 3)))
            reply({"ready": True, "prefect": prefect.__version__})
        elif "runs" in msg:
            if spec is None:
                raise SystemExit('prefect_release: send {"spec": ...} before {"runs": n}')
            reply({"ms": timed_runs(spec, int(msg["runs"]))})
        else:
            raise SystemExit(f"prefect_release: unknown message {line.strip()!r}")


if __name__ == "__main__":
    main()
