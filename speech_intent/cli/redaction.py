"""The ``--redact`` flags shared by ``predict`` and ``serve``, and the redactor they make."""
from __future__ import annotations

import argparse
from typing import Optional

from ..errors import ConfigError
from ..privacy.pii import BACKENDS, ENTITIES, PiiOptions
from ..privacy.redact import RedactionOptions, Redactor, demo_domain, personal_slots_of


def add_redact_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("redaction (--redact)")
    group.add_argument("--redact", action="store_true",
                       help="replace personal slot values (<contact>, <message>) and phone numbers, e-mail addresses, "
                            "card numbers and names found in transcripts (<PHONE_NUMBER>, ...) by placeholders in "
                            "every output and log line")
    group.add_argument("--redact-domain", default=None, metavar="YAML",
                       help="domain whose slots marked 'personal: true' are redacted (default: the demo domain)")
    group.add_argument("--personal-slot", action="append", default=[], metavar="NAME",
                       help="also redact this slot's values (repeatable)")
    group.add_argument("--redact-entities", default=",".join(ENTITIES), metavar="LIST",
                       help=f"personal data to find, comma-separated ({', '.join(ENTITIES)}; 'none': only "
                            "personal slots; default: all)")
    group.add_argument("--redact-name", action="append", default=[], metavar="NAME",
                       help="a name to redact as <PERSON> besides the built-in list of given names (repeatable)")
    group.add_argument("--pii-backend", choices=BACKENDS, default="patterns",
                       help="patterns: phonenumbers + patterns (default); presidio: Presidio's recognisers "
                            "(pip install 'speech-intent[presidio]')")


def redaction_options(args: argparse.Namespace) -> Optional[RedactionOptions]:
    """The :class:`RedactionOptions` of ``--redact`` and its flags (``None`` without ``--redact``); checked now,
    before any model loads."""
    if not getattr(args, "redact", False):
        if args.personal_slot or args.redact_name or args.redact_domain:
            raise ConfigError("--personal-slot, --redact-name and --redact-domain need --redact")
        return None
    entities = tuple(e.strip().upper() for e in args.redact_entities.split(",") if e.strip())
    if entities == ("NONE",):
        entities = ()
    slots = tuple(dict.fromkeys((*_domain_slots(args.redact_domain), *args.personal_slot)))
    return RedactionOptions(personal_slots=slots, pii=PiiOptions(entities=entities, backend=args.pii_backend,
                                                                  names=tuple(args.redact_name)))


def redactor_from_args(args: argparse.Namespace) -> Optional[Redactor]:
    """The redactor of ``--redact`` (``None`` without it)."""
    options = redaction_options(args)
    return Redactor(options) if options is not None else None


def _domain_slots(domain: Optional[str]) -> tuple:
    return personal_slots_of(domain if domain is not None else demo_domain())
