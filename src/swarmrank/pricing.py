"""Dollar cost: a price per model, and what a round's calls cost by it.

The ``[prices]`` section of a swarm config maps a model to its price in US dollars per million
tokens (the unit providers quote)::

    [prices."gpt-4o-mini"]          # a [models.NAME] key, or an openai node's upstream `model`
    input = 0.15
    output = 0.60
    cached_input = 0.075            # prompt tokens served from the provider's cache (default: input)

Every round then carries its cost in dollars (``RoundResult.cost.dollars``, per node in
``cost.nodes``), and an evaluation sums it per system. Nodes without a price are left out of the sum
and their cost is null (a local model costs what its machine costs, which no table knows).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from swarmrank.options import options

__all__ = ["PER", "Price"]

PER = 1_000_000
"""Prices are per this many tokens."""


@options
class Price:
    """A model's price in US dollars per million tokens."""

    input: Annotated[float, Field(ge=0)]  # prompt tokens
    output: Annotated[float, Field(ge=0)]  # completion tokens
    cached_input: Annotated[float, Field(ge=0)] | None = None  # cached prompt tokens (default: input)

    def dollars(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """What these tokens cost; ``cached_tokens`` are part of ``prompt_tokens``."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((prompt_tokens - cached) * self.input + cached * cached_rate + completion_tokens * self.output) / PER
