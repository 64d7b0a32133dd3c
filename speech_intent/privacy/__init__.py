"""Privacy: redaction of personal data and differentially private fine-tuning."""
