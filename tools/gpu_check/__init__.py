"""GPU readiness: every GPU path of the library in one short run, each with a pass/fail line and a number.

A GPU machine is lent rarely and briefly, and it reaches no package registry: the check runs from
what ``tools/gpu_check/prepare.sh`` put into ``.whl/`` (small wheels) and ``.gpu/`` (tiny.en converted
to transformers, its weights packed as int8 rows and unpacked to fp16 here; the MiniLM tokenizer, the
coffee grammar, a few coffee recordings and synthesised training clips), and says exactly what is
missing for any check it cannot run (``SKIP``).

Checks (``--device cuda``): WhisperASR fp16 and bf16 batched transcription of the sample commands
(agreement with CPU fp32 transcripts), SDPA vs eager attention, static cache + ``torch.compile``,
grammar-constrained 4-beam decoding of coffee recordings, Wav2Vec2ASR (tiny random model),
FasterWhisperASR on CUDA (float16, int8_float16), ``fine_tune`` for one epoch (bf16 on CUDA), the full
pipeline end to end, 1 and 64 concurrent streams through the service's micro-batcher (end of speech ->
final latency), throughput (RTFx) at batch sizes 1, 8 and 32, and ``fine_tune_asr`` of tiny.en for 8
steps on speech synthesised beforehand (bf16 on CUDA; seconds per step against the same steps on the
CPU). Modules: ``model_checks`` (the library's model paths), ``streams`` (the service's micro-batcher),
``asr_finetune`` (ASR fine-tuning), ``weights`` (the int8 packing of the carried tiny.en), ``base``
(what they share) and ``runner`` (the run and the command line).

``--dry-run`` runs the same code paths with tiny random models on a few files (the test suite runs it
on CPU, so the script cannot rot between GPU runs); agreement numbers are then reported, not judged.

Usage::

    bash tools/gpu_check/prepare.sh                                 # here, once (network)
    bash tools/gpu_check/run.sh OUT --device cuda                   # there: installs .whl/, runs this
    python -m tools.gpu_check OUT --device cpu --dry-run            # anywhere, seconds

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.txt`` (one row per result; a check may give several);
exits 1 when a check failed. ``--only`` takes check names with ``-`` or ``_``.
"""
