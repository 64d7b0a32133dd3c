"""A short list of common English given names, the names :class:`~speech_intent.privacy.pii.PiiDetector` finds.

Written for this project (not a census list): names a voice assistant often hears, without those that
are also common words in lower-case transcripts ("will", "mark", "grace", "dawn", "max", "may", "jack",
"rose", "don", "bill", ...), which would be redacted wherever the word is used. Names missing from
the list, and surnames, are not found by it (see the README's "Privacy: redaction").
"""
from __future__ import annotations

COMMON_GIVEN_NAMES = frozenset("""
aaron abigail adam ben jake kate nina sam tom adrian aidan alan albert alex alexander alexandra alice alicia amanda amelia amy andrea
andrew angela anna anne anthony antonio arthur ashley austin barbara benjamin beth betty brandon brenda
brian brittany bruce caleb carl carlos caroline catherine charles charlie charlotte chloe chris christina
christine christopher cindy claire connor craig cynthia daniel danielle david deborah debra denise dennis
diana diane donald donna dorothy dylan edward elijah elizabeth ella emily emma eric erica ethan evelyn
fiona gabriel gary george gerald gloria gregory hannah harold harry heather helen henry isaac isabella
jacob james jane janet jasmine jason jeffrey jennifer jenny jeremy jessica joan joe john johnny jonathan
jordan jose joseph joshua joyce juan judith julia julie justin karen katherine kathleen kathy katie kevin
kimberly kyle laura lauren leah linda lisa logan louis lucas lucy luis madison margaret maria marie
marilyn martha martin mary matthew megan melissa michael michelle mike nancy natalie nathan nicholas
nicole noah oliver olivia pamela patricia patrick paul peter philip rachel raymond rebecca richard robert
roger ronald ruth ryan samantha samuel sandra sara sarah scott sean sharon shirley sophia sophie stephanie
stephen steven susan teresa thomas timothy tyler victoria vincent walter wayne william zachary zoe
""".split())
