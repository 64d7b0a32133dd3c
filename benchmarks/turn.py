"""The end-of-turn model's choice: hashed n-gram logistic regression vs MiniLM features with the same head.

Both are fitted on the same labelled texts of the coffee grammar (:func:`speech_intent.turn.turn_examples`:
sentences vs their truncations, ASR-noisy copies) and scored on texts of held-out sentences: AUC,
accuracy at 0.5, and the cost of one call (one text, one thread), p50 / p95 in ms. The MiniLM row
encodes with the bundled all-MiniLM-L6-v2 (mean pooling, frozen) and fits scikit-learn's logistic
regression on the embeddings: the intent model's encoder with a small head.

    python -m benchmarks.turn --out /tmp/turn-bench
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from .common import COFFEE_DATA, add_data_flag, benchmark_parser, write_json


def per_call_ms(function, texts) -> dict:
    times = []
    for text in texts:
        began = time.perf_counter()
        function([text])
        times.append(time.perf_counter() - began)
    return {"p50": round(1000 * float(np.percentile(times, 50)), 3), "p95": round(1000 * float(np.percentile(times, 95)), 3)}


def main() -> None:
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, COFFEE_DATA, "coffee data (grammar.yaml)")
    parser.add_argument("--sentences", type=int, default=1500, help="grammar sentences (10%% held out)")
    parser.add_argument("--minilm-train", type=int, default=4000, help="training texts of the MiniLM row")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from transformers import AutoModel, AutoTokenizer

    from speech_intent.bundled import bundled_encoder_path
    from speech_intent.data.grammar import expand_grammar
    from speech_intent.normalize import TextNormalizer
    from speech_intent.turn import GrammarCompleteness, TurnTrainingOptions, train_turn_detector, turn_examples

    torch.set_num_threads(1)
    grammar = args.data / "grammar.yaml"
    norm = TextNormalizer()
    sentences = list(dict.fromkeys(norm(e.text) for e in expand_grammar(grammar, max_examples=args.sentences)))
    random.Random(0).shuffle(sentences)
    held = len(sentences) // 10
    dev_sentences, train_sentences = sentences[:held], sentences[held:]
    is_sentence = GrammarCompleteness(grammar, norm).is_sentence
    train = turn_examples(train_sentences, normalizer=lambda s: s, is_sentence=is_sentence)
    dev = turn_examples(dev_sentences, normalizer=lambda s: s, is_sentence=is_sentence, seed=1)
    truth = np.array([e.label for e in dev])
    rows = []

    ngram = train_turn_detector(train_sentences, options=TurnTrainingOptions(dev_share=0.0))  # no grammar: the model alone
    p = ngram.model_probabilities([e.text for e in dev])
    rows.append({"model": "hashed n-gram logistic regression", "train_texts": len(train),
                 "auc": round(float(roc_auc_score(truth, p)), 4), "accuracy": round(float(accuracy_score(truth, p >= 0.5)), 4),
                 "ms_per_call": per_call_ms(ngram.model_probabilities, [e.text for e in dev[:300]]),
                 "weights_mb": round(ngram.coef.nbytes / 2 ** 20, 2)})
    print(rows[-1], flush=True)

    path = str(bundled_encoder_path())
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts):
        with torch.inference_mode():
            batch = tokenizer(list(texts), padding=True, truncation=True, max_length=48, return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            return ((hidden * mask).sum(1) / mask.sum(1)).numpy()

    subset = random.Random(0).sample(train, min(args.minilm_train, len(train)))
    features = np.concatenate([embed([e.text for e in subset[i: i + 64]]) for i in range(0, len(subset), 64)])
    head = LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000).fit(features, [e.label for e in subset])
    dev_features = np.concatenate([embed([e.text for e in dev[i: i + 64]]) for i in range(0, len(dev), 64)])
    p = head.predict_proba(dev_features)[:, 1]
    rows.append({"model": "MiniLM-L6 (frozen, mean pooled) + logistic regression", "train_texts": len(subset),
                 "auc": round(float(roc_auc_score(truth, p)), 4), "accuracy": round(float(accuracy_score(truth, p >= 0.5)), 4),
                 "ms_per_call": per_call_ms(lambda t: head.predict_proba(embed(t)), [e.text for e in dev[:300]]),
                 "weights_mb": round(sum(x.numel() * 4 for x in encoder.parameters()) / 2 ** 20, 1)})
    print(rows[-1], flush=True)
    write_json(args.out / "turn.json", {"dev_texts": len(dev), "dev_sentences": len(dev_sentences), "rows": rows})


if __name__ == "__main__":
    main()
