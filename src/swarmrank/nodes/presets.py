"""Provider presets for the ``openai`` backend: the defaults each OpenAI-compatible provider needs.

A node (or ``[models.NAME]`` entry) names one with ``preset = "..."``; every preset default can be
overridden by the node's own options (``base_url``, ``api_key_env``, ``headers``, ...)::

    [models.qwen]
    backend = "openai"
    preset = "ollama"
    model = "qwen2.5:7b-instruct"

=================  ==========================================  ==============================================
preset             defaults                                    notes
=================  ==========================================  ==============================================
``ollama``         ``http://localhost:11434/v1``, no key       no logprobs (verdicts are read from the text)
``vllm``           ``http://localhost:8000/v1``; key from      logprobs; ``extra_body`` takes vLLM's sampling
                   ``VLLM_API_KEY`` when it is set             extras (``top_k``, ``min_p``, ...)
``llamacpp-server``  ``http://localhost:8080/v1``, no key      llama.cpp's ``llama-server``; llama-cpp-python's
                                                               server (``python -m llama_cpp.server``) too,
                                                               with its port (8000) in ``base_url``
``openrouter``     ``https://openrouter.ai/api/v1``; key from  sends ``X-Title: swarmrank``; ``headers`` may add
                   ``OPENROUTER_API_KEY``                      ``HTTP-Referer``; ``extra_body`` takes routing
``anthropic``      ``https://api.anthropic.com/v1/``; key      Anthropic's OpenAI-compatible endpoint: no
                   from ``ANTHROPIC_API_KEY``                  logprobs, temperature capped at 1
``azure``          ``https://{resource}.openai.azure.com``;    Azure OpenAI: needs ``resource`` (or
                   key from ``AZURE_OPENAI_API_KEY``           ``endpoint``), ``deployment`` and
                                                               ``api_version``; sends the ``api-key`` header
=================  ==========================================  ==============================================

Keys come from environment variables only (``api_key_env`` names the variable): a preset's key
variable is required when the preset says so (hosted providers) and used when set otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from swarmrank.errors import ConfigError

__all__ = ["PRESETS", "Preset", "preset_names", "resolve_preset"]


@dataclass(frozen=True)
class Preset:
    """What a provider needs by default (every field can be overridden by the node's own options)."""

    name: str
    summary: str
    base_url: str | None = None
    api_key_env: str | None = None
    key_required: bool = False  # hosted providers refuse requests without a key
    logprobs: bool = True  # asks for top-logprobs for judge verdicts (some servers refuse them)
    headers: dict[str, str] = field(default_factory=dict)
    max_temperature: float | None = None  # sampling temperatures above this are capped (the provider refuses them)
    azure: bool = False  # Azure OpenAI: deployments, api-version, the api-key header
    # how a JSON Schema is sent: OpenAI's {"type": "json_schema", ...}, or llama.cpp's {"type": "json_object",
    # "schema": ...} (llama-cpp-python's server knows only that one; llama-server knows both)
    schema_format: str = "json_schema"


PRESETS: MappingProxyType[str, Preset] = MappingProxyType({p.name: p for p in (
    Preset("ollama", "Ollama's OpenAI-compatible endpoint", base_url="http://localhost:11434/v1", logprobs=False),
    Preset("vllm", "a vLLM server", base_url="http://localhost:8000/v1", api_key_env="VLLM_API_KEY"),
    Preset("llamacpp-server", "llama.cpp's llama-server (or llama-cpp-python's server)",
           base_url="http://localhost:8080/v1", schema_format="json_object"),
    Preset("openrouter", "OpenRouter", base_url="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY",
           key_required=True, headers={"X-Title": "swarmrank"}),
    Preset("anthropic", "Anthropic's OpenAI-compatible endpoint", base_url="https://api.anthropic.com/v1/",
           api_key_env="ANTHROPIC_API_KEY", key_required=True, logprobs=False, max_temperature=1.0),
    Preset("azure", "Azure OpenAI", api_key_env="AZURE_OPENAI_API_KEY", key_required=True, azure=True),
)})


def preset_names() -> list[str]:
    return list(PRESETS)


def resolve_preset(name: Any) -> Preset:
    """The preset called ``name`` (a ConfigError listing the known ones otherwise)."""
    preset = PRESETS.get(str(name))
    if preset is None:
        raise ConfigError(f"unknown openai preset {name!r} (known: {', '.join(PRESETS)})")
    return preset
