"""Shared code of Forgeline's Python recipes (see ../PROTOCOL.md).

Modules, lightest first (only ``protocol`` and ``spec`` are imported before a spec is validated,
so a bad spec fails in well under a second, before torch is loaded):

- ``protocol``: JSON-lines events, recipe errors, the ``run_recipe`` entry point, exit codes.
- ``spec``: a small typed reader for spec objects whose errors name the offending field.
- ``runtime``: device resolution, CPU threads, seeding, accelerator peak FLOPS.
- ``data``: JSONL prompt/completion datasets and the one tokenization shared by training and eval.
- ``metrics``: the pluggable task-metric registry and bootstrap confidence intervals.
- ``modeling``: loading models, adapters and tokenizers; artifact sizes; logit sanity checks.
- ``tiny``: the tiny Llama configs, the word-level tokenizer, the synthetic tiny-instruct task
  and the demo hyperparameters.
- ``runner``: runs a recipe as a subprocess and parses its events (tests, the pipeline script).
"""
