"""Operators' tooling behind `deep ops`: topics, consumer lag, dead letters, control-plane status."""
