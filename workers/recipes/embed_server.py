"""A long-lived embedding process: all-MiniLM-L6-v2 loaded once, then batch after batch.

The re-embed pipeline's workers keep one of these per worker process
(src/adapters/sentence-transformers-server.ts), so the model (about 8 s to import and load on a
shared CPU) is loaded once, not once per batch as ``embed.py`` does.

    <venv>/bin/python workers/recipes/embed_server.py [--batch-size 64] [--device cpu]

- stdout, first line: ``{"event": "ready", "model": ..., "dimensions": 384}`` once the model is
  loaded, or ``{"event": "error", "message", "type", "retryable"}`` and exit 2 (bad options, the
  model package missing) or 1 (a crash).
- stdin: one request per line, ``{"id": <int>, "texts": [<str>, ...]}``. Each gets one reply line,
  in order: ``{"id", "rows", "dimensions", "data"}`` where ``data`` is the base64 of the rows'
  little-endian float32 values (row-major, L2-normalized), or ``{"id", "error", "type"}`` for a
  request that is wrong (the process goes on serving).
- EOF on stdin: exit 0. With ``FORGELINE_EXIT_WITH_PARENT=1`` it ends its process group when the
  process that started it dies.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, TextIO

for _var, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ[_var] = _value  # never a hub download, whatever the caller's environment says

from embed import DIMENSIONS, MODEL_NAME, load_model  # noqa: E402
from forgeline_recipes.protocol import (  # noqa: E402
    EXIT_NON_RETRYABLE,
    EXIT_OK,
    EXIT_RETRYABLE,
    EXIT_WITH_PARENT,
    EventWriter,
    RecipeError,
    SpecError,
    _exit_with_parent,
    cpu_threads,
    log,
)


def parse_request(line: str) -> tuple[Any, list[str]]:
    """The id and texts of one request line; SpecError naming what is wrong."""
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SpecError("request", f"not valid JSON ({exc.msg})") from exc
    if not isinstance(request, dict) or "id" not in request:
        raise SpecError("request", 'expected {"id": <int>, "texts": [<str>, ...]}')
    texts = request.get("texts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise SpecError("texts", "expected a list of strings")
    return request["id"], texts


def serve(model: Any, batch_size: int, lines: TextIO, out: TextIO) -> None:
    import numpy as np

    def reply(payload: dict[str, Any]) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    for line in lines:
        if not line.strip():
            continue
        request_id: Any = None
        try:
            request_id, texts = parse_request(line)
            if texts:
                rows = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
            else:
                rows = np.zeros((0, DIMENSIONS))
            data = np.ascontiguousarray(rows, dtype="<f4").tobytes()
            reply({"id": request_id, "rows": len(texts), "dimensions": DIMENSIONS, "data": base64.b64encode(data).decode("ascii")})
        except RecipeError as exc:
            reply({"id": request_id, "error": exc.message, "type": exc.error_type})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embed_server.py", description=f"Serve {MODEL_NAME} embeddings over stdin/stdout")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if os.environ.get(EXIT_WITH_PARENT) == "1":
        _exit_with_parent()
    out = sys.stdout
    events = EventWriter(out)
    sys.stdout = sys.stderr  # libraries that print never split a reply line
    try:
        if args.batch_size < 1:
            raise SpecError("--batch-size", f"expected at least 1, got {args.batch_size}")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(cpu_threads()))
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        model = load_model(args.device)
        events.emit("ready", model=MODEL_NAME, dimensions=DIMENSIONS, device=args.device)
        serve(model, args.batch_size, sys.stdin, out)
        return EXIT_OK
    except RecipeError as exc:
        log(f"embed_server: {exc.error_type}: {exc.message}")
        events.error(exc.message, exc.error_type, exc.retryable)
        return EXIT_RETRYABLE if exc.retryable else EXIT_NON_RETRYABLE
    except Exception as exc:  # noqa: BLE001 - a crash is retryable, with its traceback on stderr
        traceback.print_exc(file=sys.stderr)
        events.error(f"{type(exc).__name__}: {exc}", "RecipeCrashed", True)
        return EXIT_RETRYABLE


if __name__ == "__main__":
    sys.exit(main())
