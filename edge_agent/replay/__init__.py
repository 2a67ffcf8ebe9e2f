"""Presence judged on recordings: readings and ground truth as CSV, fed through the agent's own presence path on
the recording's clock, scored by the measures a store feels, beside the naive strongest-receiver rule."""
