"""``swarmrank ledger``: verify, show, head, export and import the signed ledger (a Typer sub-app)."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from swarmrank.cli._common import ConfigOpt, JsonOpt, console, note, open_store, say
from swarmrank.errors import LedgerError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from swarmrank.ledger import Entry, Ledger, SignerPolicy
    from swarmrank.store import Store

ledger_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                         help="Verify, show, export and import the signed, hash-chained ledger.")

KindOpt = Annotated[str | None, typer.Option("--kind", "-k", help="only entries of this kind")]
AuthorityOpt = Annotated[list[str] | None, typer.Option(
    "--authority", metavar="KEY", help="a public key that may write trust entries (repeat for several; default: "
                                       "[trust] authorities, else this machine's coordinator key)")]
AnySignerOpt = Annotated[bool, typer.Option(
    "--any-signer", help="check the chain and signatures only, not who may write trust entries")]


@contextmanager
def _ledger(config: Path | None) -> Iterator[tuple[Ledger, Store]]:
    from swarmrank.ledger import Ledger

    store = open_store(config)
    try:
        yield Ledger(store), store
    finally:
        store.close()


def _policy(config: Path | None, given: list[str] | None, any_signer: bool) -> SignerPolicy | None:
    """Who may write trust entries: --authority, else [trust] authorities, else the coordinator key
    on this machine (never one found in the database: whoever can write there could have put it)."""
    from swarmrank.config import load_config
    from swarmrank.identity import load_or_create
    from swarmrank.ledger import SignerPolicy
    from swarmrank.settings import Settings
    from swarmrank.swarm import COORDINATOR_ID

    if any_signer:
        if given:
            raise LedgerError("--any-signer and --authority contradict each other")
        return None
    keys = list(given or load_config(config).trust.authorities)
    if not keys:
        keys_dir = Settings.from_env().keys_dir
        if not (keys_dir / f"{COORDINATOR_ID}.pem").exists():
            raise LedgerError(f"no trust authority to check signers against: no coordinator key in {keys_dir} and "
                              "no [trust] authorities; pass --authority KEY (or --any-signer to check the chain only)")
        keys = [load_or_create(keys_dir, COORDINATOR_ID).public_hex]
    return SignerPolicy.of(keys)


@ledger_app.command("verify")
def verify(
    head: Annotated[str | None, typer.Option("--head", help="a head hash kept from `swarmrank ledger head`: "
                                                "also detects entries cut off the end")] = None,
    authority: AuthorityOpt = None,
    any_signer: AnySignerOpt = False,
    allow_untrusted: Annotated[bool, typer.Option(
        "--allow-untrusted-rounds", help="do not fail on rounds stored without a ledger record since trust "
                                         "began (trust turned off for a while, a swarm without trust sharing "
                                         "this database); they are still counted")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every entry's hash, chain link, signature and signer, that every round saved under
    trust has its ledger entries, that every round stored since trust began is in the ledger, and
    that every round's columns agree with its record; exit 1 if anything is wrong."""
    from swarmrank.audit import audit_rounds

    policy = _policy(config, authority, any_signer)
    with _ledger(config) as (ledger, store):
        report = ledger.verify(expected_head=head, policy=policy)
        rounds = audit_rounds(store, ledger, skip=[seq for seq, _ in report.unauthorised],
                              allow_untrusted=allow_untrusted)
    ok = report.ok and rounds.ok
    if as_json:
        print(json.dumps({**asdict(report), "ok": ok, "signers_checked": policy is not None,
                          "rounds": asdict(rounds)}, indent=2))
        if not ok:
            raise typer.Exit(1)
        return
    for _, why in report.unauthorised:  # the findings on stdout, the verdict on stderr
        say(why)
    for problem in rounds.problems:
        say(problem)
    unrecorded = _unrecorded(rounds.unrecorded)
    if rounds.unrecorded and not allow_untrusted:
        for round_id in rounds.unrecorded_ids:
            say(f"round {round_id}: stored without a ledger record since trust began at {rounds.trust_began}")
        if rounds.unrecorded > len(rounds.unrecorded_ids):
            say(f"… and {rounds.unrecorded - len(rounds.unrecorded_ids)} more round(s) like it")
    if report.bad_seq is not None:
        raise LedgerError(f"ledger broken at entry {report.bad_seq}: {report.reason}")
    if report.unauthorised:
        raise LedgerError(f"{_entries(len(report.unauthorised))} signed by keys that are not trust authorities "
                          f"(the first: entry {report.unauthorised[0][0]}); the trust registry ignores them")
    if rounds.problems:
        also = f", and {unrecorded} stored without a ledger record since trust began" if (
            rounds.unrecorded and not allow_untrusted) else ""
        raise LedgerError(f"{len(rounds.problems)} problem(s) with the rounds the ledger records{also} "
                          "(above); the chain itself is intact")
    if rounds.unrecorded and not allow_untrusted:
        raise LedgerError(f"{unrecorded} stored without a ledger record since trust began (above): entries cut off "
                          "the end with the rounds' trusted mark cleared, or rounds written in SQL, look like this; "
                          "if this database legitimately holds rounds stored without trust since then (trust turned "
                          "off, a swarm without trust sharing it), pass --allow-untrusted-rounds")
    if report.head is None:
        say("ledger ok: empty")
        return
    kept = ", contains the expected head" if head is not None else ""
    signers = (f"; every trust entry signed by {_keys(len(policy.authorities))}" if policy is not None
               else "; signers not checked (--any-signer)")
    allowed = (f"; {unrecorded} stored without a ledger record since trust began (allowed by "
               "--allow-untrusted-rounds)" if rounds.unrecorded else "")
    say(f"ledger ok: {_entries(report.entries)}, head {report.head[:12]}…{kept}{signers}; "
        f"{rounds.rounds} trusted round(s) recorded{allowed}")


def _unrecorded(n: int) -> str:
    return f"{n} round{'' if n == 1 else 's'}"


def _keys(n: int) -> str:
    return "the trust authority" if n == 1 else f"one of {n} trust authorities"


@ledger_app.command("show")
def show(
    kind: KindOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many entries (the last ones)")] = 20,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the last entries (oldest first)."""
    from rich.table import Table

    with _ledger(config) as (ledger, _):
        entries = ledger.last(limit, kind=kind)
    if as_json:
        print(json.dumps([asdict(e) for e in entries], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"Ledger entries ({len(entries)}{', ' + kind if kind else ''})", title_justify="left")
    names = ("seq", "when (UTC)", "kind", "signer", "hash", "payload")
    rows = [[str(e.seq), e.created_at[5:19].replace("T", " "), e.kind, e.signer, e.hash[:8] + "…"] for e in entries]
    fixed = sum(max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(names[:-1]))
    room = max(8, console.width - fixed - 3 * len(names) - 1)  # the payload gets what the table borders leave
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(names[:-1])]
    for name, width in zip(names[:-1], widths):
        table.add_column(name, no_wrap=True, min_width=width)  # the fixed columns never shrink
    table.add_column(names[-1], no_wrap=True, overflow="ellipsis")
    for row, entry in zip(rows, entries):
        table.add_row(*row, _summary(entry, room))
    console.print(table, markup=False, highlight=False)


def _entries(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def _summary(entry: Entry, width: int) -> str:
    """A short reading of the payload for the known kinds; compact JSON otherwise."""
    p = entry.payload
    try:
        if entry.kind == "reputation":
            text = f"{p['node']} {p['before']:+.2f}→{p['after']:+.2f} (score {p['score']:+.2f})"
        elif entry.kind in ("slash", "stake"):
            sign = "−" if entry.kind == "slash" else "+"
            text = f"{p['node']} {sign}{p['amount']:g}" + (f": {p['reason']}" if p.get("reason") else "")
        elif entry.kind == "admission":
            text = f"{p['node']} {'passed' if p.get('passed') else 'refused'}"
            if "answer" in p and "judge" in p:
                text += f" (answers {p['answer'][0]}/{p['answer'][1]}, judging {p['judge'][0]}/{p['judge'][1]})"
        elif entry.kind == "round":
            text = (f"{str(p['round_id'])[:8]} {p['protocol']} → {p['answer']!s}, {len(p['nodes'])} node(s)"
                    + (" [spot check]" if p.get("spot_check") else ""))
        elif entry.kind == "key":
            text = f"{p['node']} {str(p['public_key'])[:16]}…"
        else:
            raise KeyError(entry.kind)
    except (KeyError, TypeError, ValueError, IndexError):
        text = json.dumps(p, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[:width - 1] + "…"


@ledger_app.command("head")
def head(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print the last entry's seq and hash (keep the hash elsewhere for `verify --head`)."""
    with _ledger(config) as (ledger, _):
        last = ledger.head()
    if as_json:
        print(json.dumps(None if last is None else {"seq": last.seq, "hash": last.hash}))
    elif last is None:
        say("ledger is empty")
    else:
        say(f"{last.seq} {last.hash}")


@ledger_app.command("export")
def export(
    file: Annotated[str, typer.Argument(help="where to write the JSON Lines ('-' for stdout)")],
    config: ConfigOpt = None,
) -> None:
    """Write every entry to FILE as JSON Lines."""
    with _ledger(config) as (ledger, _):
        if file == "-":
            count = ledger.export(sys.stdout)
            sys.stdout.flush()
        else:
            try:
                with open(file, "w", encoding="utf-8", newline="\n") as fh:
                    count = ledger.export(fh)
            except OSError as exc:
                raise LedgerError(f"cannot write {file}: {exc.strerror or exc}") from None
    note(f"exported {_entries(count)} to {'stdout' if file == '-' else file}")


@ledger_app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="a JSON Lines export ('-' for stdin)")],
    authority: AuthorityOpt = None,
    any_signer: AnySignerOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Add the entries of FILE that this ledger lacks (its entries must be the file's first ones);
    a file with a trust entry from a key that is not a trust authority is refused."""
    policy = _policy(config, authority, any_signer)
    with _ledger(config) as (ledger, _):
        if file == "-":
            added = ledger.import_(sys.stdin, policy=policy)
        else:
            try:
                with open(file, encoding="utf-8") as fh:
                    added = ledger.import_(fh, policy=policy)
            except OSError as exc:
                raise LedgerError(f"cannot read {file}: {exc.strerror or exc}") from None
        last = ledger.head()
    where = "" if last is None else f"; head is entry {last.seq} {last.hash[:12]}…"
    say(f"imported {_entries(added)}{where}")
