"""Behaviour: examples, few-shot selection, output contracts, the knowledge-leak lint, adapters."""
