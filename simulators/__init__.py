"""Stand-ins for the world around the agent (phones, screens, the cloud), for tests, demo and benchmarks."""
