"""Input discovery for batch jobs (speech_intent/batch/inputs.py): files, folders, globs; nothing given dropped."""
from __future__ import annotations

import logging

from speech_intent.batch.inputs import expand_inputs


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_folders_are_searched_recursively_for_audio_in_sorted_order_and_files_are_kept_as_given(tmp_path):
    b = _touch(tmp_path / "in" / "b.wav")
    a = _touch(tmp_path / "in" / "sub" / "a.FLAC")  # extensions in any case
    _touch(tmp_path / "in" / "notes.txt")  # not audio: left out of a folder
    text = _touch(tmp_path / "notes.txt")  # a file given by name is kept, whatever its suffix
    assert expand_inputs([str(tmp_path / "in"), text]) == [b, a, text]
    assert expand_inputs([text, str(tmp_path / "in")]) == [text, b, a]  # in the order given


def test_globs_are_expanded_sorted_and_duplicates_are_removed(tmp_path):
    one, two = _touch(tmp_path / "x" / "2.wav"), _touch(tmp_path / "x" / "1.wav")
    _touch(tmp_path / "x" / "deep" / "3.wav")
    pattern = str(tmp_path / "x" / "*.wav")
    assert expand_inputs([pattern]) == [two, one]
    assert expand_inputs([one, pattern, str(tmp_path / "x")]) == [one, two, str(tmp_path / "x" / "deep" / "3.wav")]
    recursive = expand_inputs([str(tmp_path / "x" / "**" / "*.wav")])
    assert sorted(recursive) == sorted([one, two, str(tmp_path / "x" / "deep" / "3.wav")])


def test_nothing_given_is_dropped_each_problem_becomes_that_inputs_error_row(tmp_path, caplog):
    missing = str(tmp_path / "missing.wav")
    empty = tmp_path / "empty"
    empty.mkdir()
    no_match = str(tmp_path / "*.mp3")
    with caplog.at_level(logging.WARNING, logger="speech_intent.batch.inputs"):
        assert expand_inputs([missing, str(empty), no_match]) == [missing, str(empty), no_match]
    assert "holds no audio files" in caplog.text and "matched no files" in caplog.text
    assert expand_inputs([]) == []


def test_a_file_whose_name_looks_like_a_glob_is_taken_as_the_file(tmp_path):
    odd = _touch(tmp_path / "take[1].wav")
    assert expand_inputs([odd]) == [odd]
    assert expand_inputs([str(tmp_path)], extensions=(".txt",)) == [str(tmp_path)]  # no .txt: the folder itself
