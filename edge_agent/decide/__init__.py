"""Choosing what each touchpoint shows: eligibility first, then a score."""
