"""Sentiment and emotion of the words: a fine-tuned text classifier over the transcript."""
