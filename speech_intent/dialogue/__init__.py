"""Dialogue: per-session state, the policy that asks for missing slots, and the Assistant that answers."""
