"""alembic's environment: run the migrations on the connection swarmrank hands over.

swarmrank runs migrations itself (:func:`swarmrank.store.migrations.upgrade`), passing an open
connection inside a transaction in ``config.attributes["connection"]``. Run from alembic's own
command line, the database is ``SWARMRANK_DB`` (or ``-x url=...``).
"""

from __future__ import annotations

import os

from alembic import context

config = context.config
connection = config.attributes.get("connection")
on_version_apply = config.attributes.get("on_version_apply")

if connection is not None:
    context.configure(connection=connection, on_version_apply=on_version_apply)
    with context.begin_transaction():
        context.run_migrations()
else:  # alembic's command line
    from swarmrank.store.engine import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("SWARMRANK_DB")
    if not url:
        raise SystemExit("give the database: SWARMRANK_DB=<SQLAlchemy URL> or alembic -x url=<URL> ...")
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
