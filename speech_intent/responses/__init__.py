"""Responses: template and fine-tuned language-model generation of what the assistant says."""
