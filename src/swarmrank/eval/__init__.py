"""Evaluation harness: score consensus protocols and single nodes on labelled items."""
