"""Cameras → anonymous audience and consented face matches (see `source.py` for the whole flow).

models (manifest, verification) · camera (capture thread) · motion (gating) · detect (people, faces) ·
embed (alignment, MobileFaceNet) · match (gallery) · track (IoU tracks) · pipeline (one frame through
the models) · source (the event-loop side) · operator (enroll, verify) · profile (camera profiles).
"""
