"""Where swarmrank keeps its files, resolved when asked (never at import time).

``SWARMRANK_HOME``  the data directory (default: the platform's user data dir, e.g.
                    ``~/.local/share/swarmrank``): node keys, the default SQLite database,
                    assembled model files.
``SWARMRANK_DB``    any SQLAlchemy URL; overrides the config's ``[store] url`` and the default
                    ``sqlite:///$SWARMRANK_HOME/swarmrank.db``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        if env.get("SWARMRANK_HOME"):
            home = Path(env["SWARMRANK_HOME"]).expanduser()
        else:
            from platformdirs import user_data_path

            home = user_data_path("swarmrank", appauthor=False)
        return cls(home=home, db_url=env.get("SWARMRANK_DB") or None)

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def default_db_url(self) -> str:
        return f"sqlite:///{self.home / 'swarmrank.db'}"
