"""End of turn: whether the user has finished speaking, from the partial transcript and the domain."""
