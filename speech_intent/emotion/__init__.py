"""Emotion from the voice: a head over the Whisper encoder's hidden states."""
