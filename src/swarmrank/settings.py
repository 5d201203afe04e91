"""Where swarmrank keeps its files, from the environment (pydantic-settings), resolved when asked.

``SWARMRANK_HOME``           the data directory (default: the platform's user data dir, e.g.
                             ``~/.local/share/swarmrank``): node keys, the default SQLite
                             database, assembled model files.
``SWARMRANK_DB``             any SQLAlchemy URL; overrides the config's ``[store] url`` and the
                             default ``sqlite:///$SWARMRANK_HOME/swarmrank.db``.
``SWARMRANK_BIGBENCH_DIR``   a ``bigbench/benchmark_tasks`` folder for the ``bb`` dataset loader.

``Settings()`` (or :meth:`Settings.from_env`) reads them, never at import time; keyword arguments
override the environment (``Settings(home=path)``). An empty variable counts as unset.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The platform's user data directory for swarmrank."""
    from platformdirs import user_data_path

    return user_data_path("swarmrank", appauthor=False)


class Settings(BaseSettings):
    """swarmrank's environment: the home directory and the database URL."""

    model_config = SettingsConfigDict(env_prefix="SWARMRANK_", env_ignore_empty=True, extra="ignore", frozen=True,
                                      populate_by_name=True)

    home: Path = Field(default_factory=default_home)
    db_url: str | None = Field(None, validation_alias="SWARMRANK_DB")  # Settings(db_url=...) works too
    bigbench_dir: Path | None = None

    @field_validator("home", "bigbench_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @classmethod
    def from_env(cls) -> Settings:
        """The settings the environment gives (the same as ``Settings()``)."""
        return cls()

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def default_db_url(self) -> str:
        return f"sqlite:///{self.home / 'swarmrank.db'}"
