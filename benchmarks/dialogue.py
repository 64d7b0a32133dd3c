"""Multi-turn task success of the Assistant on scripted dialogues (text, and optionally spoken).

Reads ``DATA_DIR/dialogues.yaml`` (benchmarks/data/dialogues/: 68 dialogues on the demo domain: missing slots,
follow-ups, corrections, confirmation, cancel, out-of-scope, switching requests), runs each one as a session of an
:class:`~speech_intent.dialogue.Assistant` whose handlers record every action, and scores a dialogue as a success
when the handlers received exactly the expected actions (intent + slot values, in order; values compared after
the text normaliser and lower-casing, without a leading article) and the final state is the expected one (by default: nothing pending).
The turns of all dialogues run in step: turn ``i`` of every dialogue is one batched ``respond_batch`` call.

``--spoken``: every user turn is also spoken by a TTS voice that trained neither Whisper nor the intent model
(hibari-tts when installed, and espeak-ng accents; a dialogue keeps one voice), once clean and once per ``--snr``
with pink noise (or ``--noise FILE``), and the audio goes through the whole pipeline (bundled Whisper tiny.en).

    python -m benchmarks.dialogue benchmarks/data/dialogues --out /tmp/dialogue
    python -m benchmarks.dialogue benchmarks/data/dialogues --out /tmp/dialogue --spoken --snr 10

Writes ``OUT/dialogue.json`` (per condition: success rate overall and per tag, every dialogue's turns, responses,
actions and why it failed) and prints a table.
"""
from __future__ import annotations

import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml

from benchmarks.common import benchmark_parser, write_json

#: Final-state fields a dialogue may state (default: all empty: nothing left pending).
STATE_FIELDS = {"active_intent": None, "requested_slot": None, "confirming": False}


@dataclass
class Script:
    """One scripted dialogue."""

    name: str
    turns: List[str]
    actions: List[Tuple[str, Dict[str, str]]]
    final: Dict[str, Any] = field(default_factory=dict)
    tags: List[str] = field(default_factory=list)


def load_dialogues(path: Path) -> List[Script]:
    """The dialogues of ``path`` (a ``dialogues.yaml`` or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "dialogues.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    scripts = []
    for item in data["dialogues"]:
        actions = [(a["intent"], {k: str(v) for k, v in (a.get("slots") or {}).items()})
                   for a in item.get("actions") or []]
        final = {**STATE_FIELDS, **(item.get("final") or {})}
        scripts.append(Script(item["name"], [str(t) for t in item["turns"]], actions, final, list(item.get("tags") or [])))
    return scripts


def _canonical(value: str, normalize: Callable[[str], str]) -> str:
    """A slot value as compared: normalised, lower-cased, without end punctuation or a leading article
    ("the train station" = "train station")."""
    text = " ".join(normalize(str(value)).lower().split()).strip(" .,!?")
    return re.sub(r"^(?:the|a|an) ", "", text)


def score(script: Script, actions: Sequence[Tuple[str, Dict[str, str]]], state: Mapping[str, Any],
          normalize: Callable[[str], str]) -> Optional[str]:
    """None when the dialogue succeeded, else why it failed."""
    def canon(pairs):
        return [(intent, {k: _canonical(v, normalize) for k, v in slots.items()}) for intent, slots in pairs]

    want, got = canon(script.actions), canon(actions)
    if want != got:
        return f"actions {got} != expected {want}"
    for key, expected in script.final.items():
        if state.get(key) != expected:
            return f"final {key}={state.get(key)!r} != expected {expected!r}"
    return None


def run_dialogues(assistant, scripts: Sequence[Script], inputs: Sequence[Sequence[Any]], *,
                  tag: str) -> Dict[str, Any]:
    """Run every dialogue (turn i of all in one batch); ``inputs[d][i]`` is dialogue d's turn i (text or audio)."""
    recorded: Dict[str, List[Tuple[str, Dict[str, str]]]] = defaultdict(list)

    def record(action):
        recorded[action.session].append((action.intent, dict(action.slots)))
        return {"forecast": "sunny, 21 degrees"} if action.intent == "get_weather" else {}

    for intent in assistant.domain.intents:
        assistant.add_handler(intent, record)
    sessions = [f"{tag}-{i}-{script.name}" for i, script in enumerate(scripts)]
    for session in sessions:
        assistant.reset(session)
    transcripts: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    seconds = 0.0
    for step in range(max(len(s.turns) for s in scripts)):
        live = [d for d, s in enumerate(scripts) if step < len(s.turns)]
        start = time.perf_counter()
        turns = assistant.respond_batch([inputs[d][step] for d in live], [sessions[d] for d in live])
        seconds += time.perf_counter() - start
        for d, turn in zip(live, turns):
            transcripts[sessions[d]].append({"said": scripts[d].turns[step], "heard": turn.text,
                                             "act": turn.action, "reason": turn.decision.reason,
                                             "response": turn.response})
    normalize = getattr(assistant.nlu, "normalize", lambda text: text)
    rows = []
    for script, session in zip(scripts, sessions):
        state = assistant.state(session).to_dict()
        failure = score(script, recorded[session], state, normalize)
        rows.append({"name": script.name, "tags": script.tags, "success": failure is None, "failure": failure,
                     "turns": transcripts[session], "actions": recorded[session]})
    return summarise(rows, seconds)


def summarise(rows: List[Dict[str, Any]], seconds: float) -> Dict[str, Any]:
    by_tag: Dict[str, List[bool]] = defaultdict(list)
    for row in rows:
        for name in row["tags"]:
            by_tag[name].append(row["success"])
    turns = sum(len(row["turns"]) for row in rows)
    return {
        "dialogues": len(rows),
        "turns": turns,
        "task_success": sum(row["success"] for row in rows) / len(rows),
        "by_tag": {name: {"dialogues": len(v), "task_success": sum(v) / len(v)} for name, v in sorted(by_tag.items())},
        "seconds_per_turn": seconds / max(turns, 1),
        "failed": [row["name"] for row in rows if not row["success"]],
        "rows": rows,
    }


def by_voice(rows: Sequence[Mapping[str, Any]], voices: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Task success per voice (each dialogue is spoken by one voice)."""
    groups: Dict[str, List[bool]] = defaultdict(list)
    for row, voice in zip(rows, voices):
        groups[voice].append(bool(row["success"]))
    return {voice: {"dialogues": len(v), "task_success": sum(v) / len(v)} for voice, v in groups.items()}


def spoken_inputs(scripts: Sequence[Script], *, hibari: bool, noise: Optional[np.ndarray], snr: Optional[float],
                  seed: int = 0) -> Tuple[List[List[np.ndarray]], List[str]]:
    """Each dialogue's turns spoken by one voice (cycled over the voices), noise mixed in when given."""
    from speech_intent.synthesis.noise import mix_at_snr
    from speech_intent.synthesis.tts import EspeakSynthesizer, EspeakVoice, HibariSynthesizer, SynthesizerUnavailable

    voices: List[Tuple[str, Any, int]] = []
    if hibari:
        try:
            neural = HibariSynthesizer(speeds=(1.0,))
            voices.append(("hibari-heart", neural, 0))
        except SynthesizerUnavailable:
            pass
    accents = [EspeakVoice("en-us", 140, 3), EspeakVoice("en-gb", 145, 3), EspeakVoice("en-us+f3", 135, 3)]
    espeak = EspeakSynthesizer(accents)
    voices += [(f"espeak-{v.name}", espeak, i) for i, v in enumerate(accents)]
    out, names = [], []
    index = 0
    for d, script in enumerate(scripts):
        name, synthesizer, voice = voices[d % len(voices)]
        names.append(name)
        clips = []
        for text in script.turns:
            audio = synthesizer.synthesize(text, voice=voice)
            if noise is not None and snr is not None:
                audio = mix_at_snr(audio, noise, snr, seed=seed, index=index)
            clips.append(audio)
            index += 1
        out.append(clips)
    return out, names


def _table(results: Mapping[str, Mapping[str, Any]]) -> str:
    tags = sorted({t for r in results.values() for t in r["by_tag"]})
    head = "| condition | dialogues | task success | " + " | ".join(tags) + " |"
    lines = [head, "|" + "---|" * (3 + len(tags))]
    for condition, r in results.items():
        cells = [f"{r['by_tag'][t]['task_success']:.0%}" if t in r["by_tag"] else "-" for t in tags]
        lines.append(f"| {condition} | {r['dialogues']} | {r['task_success']:.1%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("data", type=Path, help="folder with dialogues.yaml (or the file)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/speech-intent-dialogue"), help="result folder")
    parser.add_argument("--spoken", action="store_true", help="also run the dialogues spoken (TTS -> the pipeline)")
    parser.add_argument("--snr", type=float, nargs="*", default=[10.0], help="noisy spoken runs at these SNRs (dB)")
    parser.add_argument("--noise", type=Path, default=None, help="a noise recording (default: pink noise)")
    parser.add_argument("--no-hibari", action="store_true", help="espeak-ng voices only")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    from speech_intent import SpeechIntentPipeline
    from speech_intent.demo_model import demo_domain_path
    from speech_intent.dialogue import Assistant

    scripts = load_dialogues(args.data)
    if args.spoken:
        pipeline = SpeechIntentPipeline.default(device=args.device, progress=False)
    else:
        from speech_intent.demo_model import default_intent_model

        pipeline = default_intent_model(device=args.device, progress=False)
    assistant = Assistant(pipeline, demo_domain_path())
    results: Dict[str, Dict[str, Any]] = {"text": run_dialogues(assistant, scripts, [s.turns for s in scripts], tag="text")}
    voices: Dict[str, List[str]] = {}
    if args.spoken:
        noise = None
        if args.snr:
            if args.noise:
                from speech_intent.audio import load_audio

                noise = load_audio(str(args.noise))
            else:
                from speech_intent.synthesis.noise import colored_noise

                noise = colored_noise(16000 * 30, 1.0, np.random.default_rng(7))
        conditions = [("spoken clean", None)] + [(f"spoken {snr:g} dB", snr) for snr in (args.snr or [])]
        for condition, snr in conditions:
            clips, voices[condition] = spoken_inputs(scripts, hibari=not args.no_hibari, noise=noise, snr=snr)
            results[condition] = run_dialogues(assistant, scripts, clips, tag=condition.replace(" ", "-"))
            results[condition]["by_voice"] = by_voice(results[condition]["rows"], voices[condition])
    print(_table(results))
    for condition, r in results.items():
        if "by_voice" in r:
            print(f"{condition}: " + ", ".join(f"{voice} {v['task_success']:.0%} ({v['dialogues']})"
                                                for voice, v in r["by_voice"].items()))
    for condition, r in results.items():
        for row in r["rows"]:
            if not row["success"]:
                print(f"[{condition}] {row['name']}: {row['failure']}")
    write_json(args.out / "dialogue.json", {"data": str(args.data), "results": results, "voices": voices})
    return 0


if __name__ == "__main__":
    sys.exit(main())
