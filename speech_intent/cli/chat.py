"""``speech-intent chat``: talk to the assistant: text or audio turns -> its state and responses (and reply wavs).

Turns come from the arguments, from ``--file`` (one a line, ``-`` for stdin), or, with neither, from stdin
line by line. A turn that names an existing audio file (``.wav``, ``.flac``, ``.mp3``, ``.ogg``) is heard
through the whole speech pipeline; any other turn is text for the intent model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator, List, Optional

from ..errors import ConfigError
from .options import add_device_arg, add_intent_args, intent_options, load_classifier

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("chat", help="talk to the assistant: text or wav turns -> state and responses")
    p.add_argument("turns", nargs="*", help="turns: text, or paths of audio files")
    p.add_argument("--file", default=None, help="one turn a line ('-' for stdin)")
    p.add_argument("--domain", default=None, help="domain YAML with forms and responses (default: the demo domain)")
    p.add_argument("--session", default="chat", help="the session id (default: %(default)s)")
    p.add_argument("--redis", default=None, metavar="URL",
                   help="keep the session in Redis (redis://host:port/db) instead of in memory")
    p.add_argument("--speak", choices=["none", "espeak", "hibari"], default="none",
                   help="speak the responses (hibari-tts or espeak-ng); wavs go to --out")
    p.add_argument("--out", type=Path, default=None, help="write reply-NNN.wav here (with --speak)")
    p.add_argument("--json", action="store_true", help="one JSON line a turn instead of text")
    p.add_argument("--seed", type=int, default=None, help="pick response variants at random with this seed")
    add_intent_args(p)
    add_device_arg(p)
    p.set_defaults(func=run)
    return p


def _is_audio(turn: str) -> bool:
    return Path(turn).suffix.lower() in AUDIO_SUFFIXES and Path(turn).is_file()


def _turns(args: argparse.Namespace) -> Iterator[str]:
    yield from args.turns
    if args.file and args.file != "-":
        path = Path(args.file)
        if not path.is_file():
            from ..errors import DataNotFoundError

            raise DataNotFoundError("no such turns file", source=path)
        yield from (line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    elif args.file == "-" or not args.turns:
        for line in sys.stdin:
            if line.strip():
                yield line.strip()


def _synthesizer(kind: str):
    from ..synthesis.tts import EspeakSynthesizer, HibariSynthesizer

    if kind == "none":
        return None
    return HibariSynthesizer(speeds=(1.0,)) if kind == "hibari" else EspeakSynthesizer()


def run(args: argparse.Namespace) -> int:
    from ..demo_model import demo_domain_path
    from ..dialogue import Assistant, MemoryStore, RedisStore
    from ..responses.templates import TemplateResponses

    if args.out is not None and args.speak == "none":
        raise ConfigError("--out writes the spoken replies: give --speak espeak or --speak hibari")
    domain = args.domain or demo_domain_path()
    store = RedisStore(args.redis) if args.redis else MemoryStore()
    synthesizer = _synthesizer(args.speak)
    assistant: Optional[Assistant] = None
    heard_audio = False
    count = 0
    for turn in _turns(args):
        audio = _is_audio(turn)
        if assistant is None or (audio and not heard_audio):
            heard_audio = heard_audio or audio
            pipeline = _pipeline(args) if (audio or args.pipeline) else load_classifier(args)
            responses = TemplateResponses(domain if assistant is None else assistant.domain, seed=args.seed)
            assistant = Assistant(pipeline, domain if assistant is None else assistant.domain, responses=responses,
                                  synthesizer=synthesizer, store=store)
        count += 1
        reply = assistant.respond(Path(turn) if audio else turn, session=args.session)
        wav = None
        if reply.audio is not None and args.out is not None:
            import soundfile as sf

            args.out.mkdir(parents=True, exist_ok=True)
            wav = args.out / f"reply-{count:03d}.wav"
            sf.write(str(wav), reply.audio, reply.sample_rate)
        if args.json:
            row = reply.to_dict()
            row["reply_wav"] = str(wav) if wav else None
            print(json.dumps(row, ensure_ascii=False), flush=True)
        else:
            _print_turn(reply, wav)
    if assistant is None:
        print("error: no turns (give them as arguments, with --file, or on stdin)", file=sys.stderr)
        return 2
    return 0


def _pipeline(args: argparse.Namespace):
    """``--pipeline DIR``, else the default pipeline (with ``--intent DIR`` as its intent stage)."""
    from ..pipeline import SpeechIntentPipeline

    if args.pipeline:
        return SpeechIntentPipeline.from_pretrained(args.pipeline, device=args.device,
                                                    intent_options=intent_options(args))
    pipe = SpeechIntentPipeline.default(device=args.device, progress=False, intent_options=intent_options(args))
    if args.intent:
        pipe.intent = load_classifier(args)
    return pipe


def _print_turn(reply, wav: Optional[Path]) -> None:
    prediction = getattr(reply.result, "prediction", reply.result)
    intent = getattr(prediction, "intent", None)
    confidence = getattr(prediction, "confidence", None) or 0.0
    slots = dict(getattr(prediction, "slots", {}) or {})
    lines: List[str] = [f"you: {reply.text}",
                        f"  nlu: {intent} ({confidence:.2f}) {json.dumps(slots, ensure_ascii=False)}",
                        f"  action: {reply.action} ({reply.decision.reason})"
                        + (f" -> {json.dumps(reply.decision.slots, ensure_ascii=False)}" if reply.decision.execute else ""),
                        f"assistant: {reply.response}"]
    state = reply.state
    pending = {"active_intent": state.active_intent, "slots": state.slots, "requested_slot": state.requested_slot,
               "confirming": state.confirming}
    lines.append(f"  state: {json.dumps(pending, ensure_ascii=False)}")
    if reply.error:
        lines.append(f"  error: {reply.error}")
    if wav is not None:
        lines.append(f"  reply audio: {wav}")
    print("\n".join(lines), flush=True)
