"""Store edge agent: notices opted-in shoppers, picks the next best offer and drives in-store touchpoints."""

__version__ = "0.1.0"
