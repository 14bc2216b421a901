"""Chaos level: faults injected through the Toxiproxy-compatible proxy, measured over real TCP."""
