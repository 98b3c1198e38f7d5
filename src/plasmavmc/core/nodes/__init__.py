"""Nodes and what they report: registry, health, agent reports, drain."""
