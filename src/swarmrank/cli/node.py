"""``swarmrank node …``: admission exams, stake, and the trust view of the swarm's nodes."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Annotated, Any

import typer

from swarmrank.cli._common import (
    ConfigOpt,
    JsonOpt,
    LogLevel,
    LogLevelOpt,
    build_swarm,
    console,
    err,
    is_loopback,
    open_registry,
    without_trust,
)
from swarmrank.errors import ConfigError

node_app = typer.Typer(
    rich_markup_mode=None, help="Admit nodes (proof-of-capability exam) and manage their stake.", no_args_is_help=True)


@node_app.command("admit")
def admit(
    node_id: Annotated[str, typer.Argument(metavar="NODE", help="a node id from the swarm config")],
    config: ConfigOpt = None,
    stake: Annotated[float | None, typer.Option("--stake", help="deposit on a pass (default: [trust] deposit)")] = None,
    level: Annotated[str | None, typer.Option(
        "--level", help="easy, medium or hard (default: [trust] exam_level)")] = None,
    items: Annotated[int, typer.Option("--items", min=1, help="questions and A/B challenges, each")] = 20,
    threshold: Annotated[float, typer.Option("--threshold", help="share right needed in each part")] = 0.6,
    seed: Annotated[int | None, typer.Option("--seed", help="fixed exam seed (default: fresh items)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Examine NODE (answers, and A/B judging in both orders) and record the result in the ledger."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from swarmrank.admission import ExamParams
    from swarmrank.config import load_config

    if not 0 < threshold <= 1:
        raise ConfigError("--threshold must be in (0, 1]")
    cfg = load_config(config)
    params = ExamParams(answer_items=items, judge_items=items, threshold=threshold,
                        level=level or cfg.trust.exam_level, seed=seed)
    # the node is built without the trust layer: the exam talks to it directly
    swarm = build_swarm(without_trust(cfg), store=None)
    registry, store = open_registry(cfg)
    try:
        registry.check_deposit(stake)  # a bad deposit fails now, not after the whole exam
        node = swarm.node(node_id)
        with Progress(TextColumn(f"exam of {node_id}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("exam", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = asyncio.run(_exam(swarm, node, params, tick, cfg.round.node_timeout))
        registry.register([node])
        # the admission countersigns the key the node answered the exam with (a remote node's too)
        registry.admit(node_id, passed=result.passed, report=result.report(), stake=stake,
                       public_key=_examined_key(node))
        state = registry.state().node(node_id)
    finally:
        store.close()
        swarm.close()
    data = {"node": node_id, "passed": result.passed, **result.report(), "stake": state.stake,
            "admitted": state.admitted}
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        def part(correct: int, total: int) -> str:
            return "—" if total == 0 else f"{correct}/{total} ({correct / total:.0%})"

        console.print(f"{node_id}: answers {part(result.answer_correct, result.answer_total)}, "
                      f"judging in both orders {part(result.judge_correct, result.judge_total)}; "
                      f"threshold {threshold:.0%} → " + ("[green]admitted[/]" if result.passed else "[red]refused[/]"),
                      highlight=False)
        console.print(f"exam cost: {result.calls} calls, {result.prompt_tokens + result.completion_tokens} tokens, "
                      f"{result.seconds:.1f} s; stake {state.stake:g}", highlight=False)
    if not result.passed:
        raise typer.Exit(1)


def _examined_key(node: Any) -> str | None:
    """The key that signed the node's exam answers: its own, or the one its node agent is pinned to
    (configured, or learnt from the first signed reply)."""
    if node.public_key:
        return str(node.public_key)
    expected = getattr(node.backend, "expected", None)
    key = expected()[1] if callable(expected) else None
    return str(key) if key else None


async def _exam(swarm: Any, node: Any, params: Any, tick: Any, timeout: float) -> Any:
    from swarmrank.admission import run_exam

    try:
        return await run_exam(node, params, on_progress=tick, node_timeout=timeout)
    finally:
        await swarm.aclose_backends()


# a negative AMOUNT ("-5") would otherwise be taken for an unknown option: let it through to the check below
@node_app.command("stake", context_settings={"ignore_unknown_options": True})
def add_stake(
    node_id: Annotated[str, typer.Argument(metavar="NODE")],
    amount: Annotated[float, typer.Argument(help="points to deposit (positive: stake is only ever added)")],
    config: ConfigOpt = None,
) -> None:
    """Deposit more stake for NODE (e.g. after slashing took it below the minimum)."""
    from swarmrank.config import load_config

    if not (amount > 0 and math.isfinite(amount)):
        raise ConfigError(f"a deposit must be a positive amount, got {amount:g} (stake is only ever added; "
                          "slashing is what takes it away)")
    cfg = load_config(config)
    if node_id not in {n.id for n in cfg.nodes}:
        raise ConfigError(f"no node {node_id!r} in swarm {cfg.swarm.name!r}")
    registry, store = open_registry(cfg)
    try:
        registry.add_stake(node_id, amount)
        state = registry.state()
    finally:
        store.close()
    info = state.node(node_id)
    console.print(f"{node_id}: stake {info.stake:g} ({'counts' if info.eligible(state.params) else 'does not count'}"
                  f"{'' if info.admitted else ': not admitted'})", highlight=False)


@node_app.command("serve")
def serve_node(
    model: Annotated[str | None, typer.Option("--model", "-m", help="a [models.NAME] entry to serve")] = None,
    config: ConfigOpt = None,
    node_id: Annotated[str | None, typer.Option(
        "--node",
        help="the node id: its key, and its [[nodes]] options if any (default: the model's name)")] = None,
    host: Annotated[str, typer.Option("--host", help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = 9101,
    max_body: Annotated[int, typer.Option("--max-body", min=1, help="largest request body in bytes")] = 1024 * 1024,
    log_level: LogLevelOpt = LogLevel.info,
) -> None:
    """Run ONE node as an HTTP agent that signs every completion (a `remote` node for coordinators)."""
    from swarmrank.agent import agent_from_config
    from swarmrank.config import load_config

    try:
        import uvicorn

        from swarmrank.agent.app import create_agent_app
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError(f"swarmrank node serve needs fastapi and uvicorn ({exc.name} is not installed)") from None
    agent = agent_from_config(load_config(config), model=model, node=node_id)
    me = agent.identity
    if me.created:
        err.print(f"created an Ed25519 key for node {me.node_id}", style="dim", markup=False, highlight=False)
    if not is_loopback(host):
        err.print(f"warning: {host} is not a loopback address and the agent has no authentication: anyone who can "
                  "reach it can use this node's model (its signatures only prove who answered)", style="yellow",
                  markup=False, highlight=False, soft_wrap=True)
    url = f"http://{host}:{port}"
    err.print(f"node {me.node_id} ({agent.backend.describe()}; roles {', '.join(sorted(agent.roles))}) at {url}\n"
              f"key {me.public_hex}\n"
              f"a coordinator's config can pin it:\n"
              f"  [[nodes]]\n  id = \"{me.node_id}\"\n  backend = \"remote\"\n  url = \"{url}\"\n"
              f"  node = \"{me.node_id}\"\n  public_key = \"{me.public_hex}\"\n"
              f"  roles = {json.dumps(sorted(agent.roles))}",
              markup=False, highlight=False, soft_wrap=True)
    uvicorn.run(create_agent_app(agent, max_body_bytes=max_body), host=host, port=port, log_level=log_level.value)
