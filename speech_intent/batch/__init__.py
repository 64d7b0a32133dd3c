"""Batch jobs: many audio files in, one resumable result file out, on this machine or on Ray.

- :mod:`.inputs`: files, folders and globs -> the list of inputs (:func:`~.inputs.expand_inputs`).
- :mod:`.writer`: the resumable JSONL / CSV result file (:class:`~.writer.ResultWriter`).
- :mod:`.parquet`: a finished JSONL as one typed Parquet file.
- :mod:`.run`: the one resumable run loop (:func:`~.run.run_batch`) both engines go through: skip the
  inputs already done, write each row as it comes, count done / skipped / failed, stop resumably on
  Ctrl-C; :class:`~.run.RunSummary` and its one-line :func:`~.run.format_summary`; the local engine.
- :mod:`.ray_runner`: the Ray engine (an actor pool over a Ray Dataset of paths,
  :func:`~.ray_runner.predict_distributed`); :mod:`.ray_cluster`: reaching a cluster and its token.

Nothing here imports a model library at import time: the engines load the pipeline when a run needs it.
"""
