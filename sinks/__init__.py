"""Sinks: consumers that copy topics into ClickHouse (the analytics timeline Grafana reads)."""
