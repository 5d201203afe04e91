"""The ``swarmrank`` command: a thin Typer layer over the library.

Library errors (:class:`~swarmrank.errors.SwarmError`) become one line on stderr and exit code 1;
usage errors exit 2. Anything else is a bug and keeps its traceback.

One module per group of commands (:mod:`~swarmrank.cli.swarm`, :mod:`~swarmrank.cli.rounds`,
:mod:`~swarmrank.cli.evaluation`, :mod:`~swarmrank.cli.judges`, :mod:`~swarmrank.cli.ledger`,
:mod:`~swarmrank.cli.node`, :mod:`~swarmrank.cli.serve`); what they share (consoles, options, opening
the store, building the swarm) is in :mod:`~swarmrank.cli._common`, and the Rich views in :mod:`~swarmrank.cli.render`.
Only this module puts them together.
"""

from __future__ import annotations

import typer

from swarmrank.cli import evaluation, judges, ledger, node, rounds, serve, swarm
from swarmrank.cli._common import RegistryHelp, run_app

__all__ = ["app", "main"]

app = typer.Typer(rich_markup_mode=None, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Swarm inference: many nodes answer and judge each other in pairs; the votes and the verdicts, "
                       "each judge weighted by its learnt reliability, decide.")
app.add_typer(swarm.config_app, name="config")
app.add_typer(rounds.rounds_app, name="rounds")
app.add_typer(evaluation.eval_app, name="eval")
app.add_typer(serve.keys_app, name="keys")
app.command("serve")(serve.serve)
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(node.node_app, name="node")
app.add_typer(judges.judges_app, name="judges")
app.command(cls=RegistryHelp)(swarm.ask)
app.command()(swarm.nodes)
app.command()(swarm.protocols)
app.command()(evaluation.simulate)
app.command()(evaluation.report)


def main() -> None:
    run_app(app)
