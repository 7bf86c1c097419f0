"""Chunking peers for bench/chunking.ts: semchunk and chonkie on the same corpus and tokenizer.

Reads the corpus (JSON lines, one document text each), chunks every document with each peer at
the same size and overlap as ours, and prints one JSON line: the peers' versions and, per side,
the seconds its chunking took (time.perf_counter around the calls only) and the chunk texts, which
bench/chunking.ts counts with the same tokenizer as our chunks.

Tokenizer: the Rust `tokenizers` library on all-MiniLM-L6-v2's tokenizer.json (the file our
chunker loads), with the file's truncation (128) and padding turned off so counts are real.
The peers count content tokens (no [CLS]/[SEP]), so their budget is chunk_tokens - 2.
"""

import argparse
import json
import sys
import time

import chonkie
import semchunk
import tokenizers
from chonkie import RecursiveChunker, SentenceChunker


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--chunk-tokens", type=int, required=True)
    ap.add_argument("--overlap", type=int, required=True)
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    tok = tokenizers.Tokenizer.from_file(args.tokenizer)
    tok.no_truncation()
    tok.no_padding()
    budget = args.chunk_tokens - 2

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False).ids)

    sides = {}

    def run(name: str, what: str, chunk_one) -> None:
        print(f"chunking_peers: {name} on {len(texts)} documents", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        out = []
        for text in texts:
            out.extend(chunk_one(text))
        sides[name] = {"what": what, "seconds": time.perf_counter() - t0, "texts": out}

    chunker = semchunk.chunkerify(count, budget)
    run(
        "semchunk",
        f"semchunk chunkerify(token counter = the same tokenizer without [CLS]/[SEP], chunk_size={budget}, memoize=True), overlap={args.overlap} tokens",
        lambda text: chunker(text, overlap=args.overlap),
    )
    recursive = RecursiveChunker(tokenizer=tok, chunk_size=budget)
    run(
        "chonkieRecursive",
        f"chonkie {chonkie.__version__} RecursiveChunker(tokenizer=the same tokenizers.Tokenizer, chunk_size={budget}); it has no overlap",
        lambda text: [c.text for c in recursive.chunk(text)],
    )
    sentence = SentenceChunker(tokenizer=tok, chunk_size=budget, chunk_overlap=args.overlap)
    run(
        "chonkieSentence",
        f"chonkie {chonkie.__version__} SentenceChunker(tokenizer=the same tokenizers.Tokenizer, chunk_size={budget}, chunk_overlap={args.overlap})",
        lambda text: [c.text for c in sentence.chunk(text)],
    )
    try:
        from importlib.metadata import version

        versions = {p: version(p) for p in ("semchunk", "chonkie", "tokenizers")}
    except Exception:  # pragma: no cover
        versions = {}
    versions["python"] = sys.version.split()[0]
    print(json.dumps({"versions": versions, "sides": sides}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
