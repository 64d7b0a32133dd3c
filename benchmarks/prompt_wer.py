"""Where a sample-commands WER difference comes from: the domain prompt, the encoder context, the decoder.

``benchmarks.throughput`` scores its ``ours`` rows with the coffee intent model, so the pipeline gives
the ASR the coffee domain prompt (drinks, sizes, roasts) on every file, the 30 other-domain sample
commands of ``assets/audio`` included, while the faster-whisper anchor decodes them without a prompt.
This script separates the causes on those 30 commands (WER against their manifest texts, after
``TextNormalizer``):

- ``anchor``: faster-whisper ``WhisperModel.transcribe`` one file at a time, greedy (as in throughput);
- ``anchor + prompt``: the same with the coffee prompt as ``initial_prompt``;
- ``ours``: :class:`~speech_intent.FasterWhisperASR` (the library's decoder) with and without that prompt,
  on the default short context (``context_margin=2``) and on the 30 s window, batch 8 and 1.

The prompt comes from the coffee grammar's closed slot values (``--data``), as the coffee model's would.

    python -m benchmarks.prompt_wer
    python -m benchmarks.prompt_wer --json prompt_wer.json
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional

from .common import ASSETS_AUDIO, COFFEE_DATA, add_data_flag, add_json_flag, benchmark_parser, write_json
from .throughput import anchor_model, anchor_transcripts


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, COFFEE_DATA, "the coffee data folder (its grammar.yaml gives the prompt)")
    add_json_flag(parser)
    args = parser.parse_args(argv)

    import jiwer

    from speech_intent import FasterWhisperASR
    from speech_intent.audio import load_audio
    from speech_intent.data.grammar import expand_grammar
    from speech_intent.nlu.canonical import domain_prompt, infer_closed_values
    from speech_intent.normalize import TextNormalizer

    texts = {r["file"]: r["text"] for r in csv.DictReader(open(ASSETS_AUDIO / "manifest.csv"))}
    files = sorted(str(ASSETS_AUDIO / name) for name in texts)
    norm = TextNormalizer()
    references = [norm(texts[Path(f).name]) for f in files]
    prompt = domain_prompt(infer_closed_values(expand_grammar(Path(args.data) / "grammar.yaml", max_examples=2000)))
    print(f"prompt: {prompt}")

    def wer(hypotheses: List[str]) -> float:
        return jiwer.wer(references, [norm(t) or "<empty>" for t in hypotheses])

    anchor = anchor_model()
    rows: Dict[str, float] = {"anchor": wer(anchor_transcripts(anchor, files)),
                              "anchor + prompt": wer(anchor_transcripts(anchor, files, prompt))}
    asr = FasterWhisperASR.from_pretrained(None, device="cpu")
    audio = [load_audio(f) for f in files]
    for margin, window in ((2.0, "short+2s"), (None, "30 s")):
        asr.configure(context_margin=margin)
        for batch in (8, 1):
            for name, extra in (("", {}), (" + prompt", {"prompt": prompt})):
                rows[f"ours {window}, batch {batch}{name}"] = wer(
                    [t.text for t in asr.transcribe(audio, batch_size=batch, **extra)])
    print("| row | assets WER |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.1%} |")
    if args.json:
        write_json(args.json, {"prompt": prompt, "wer": rows})
    return rows


if __name__ == "__main__":
    main()
