"""Where shoppers are noticed: each source turns raw input into resolved, consented Sightings."""
