"""`virtwatch silence add|list|expire`: create, show and end alert silences in `[alerts] state_dir`.

Bad input exits with status 2 and one line on stderr naming the argument and the reason (a bad config file
prints one line per problem, as every virtwatch command does).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import types
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from tsdb.times import parse_duration as parse_seconds, utc_now

def _one_line_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """Report a usage error on one line (argparse's own also prints the usage) and exit with status 2."""
    parser.exit(2, f"{parser.prog}: {message} (see {parser.prog} --help)\n")


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors, unknown arguments included, are one line on stderr."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        """Parse like argparse, but refuse unknown arguments here rather than leave them to the top parser."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """Print `PROG: MESSAGE` and exit with status 2."""
        _one_line_error(self, message)


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as 30m, 2h, 1d, 1w or 1h30m (tsdb.times) into a positive timedelta."""
    try:
        return timedelta(seconds=parse_seconds(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r}: too long") from None


def parse_until(text: str) -> datetime:
    """Parse an ISO 8601 time with a zone, e.g. 2026-11-24T08:00Z or 2026-11-24T09:00+01:00, into UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an ISO 8601 time like 2026-11-24T08:00Z") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone, e.g. 2026-11-24T08:00Z or +01:00")
    return moment.astimezone(timezone.utc)


def default_author() -> str:
    """Return $USER@hostname (the login name from the password database when $USER is unset)."""
    user = os.environ.get("USER")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    return f"{user}@{socket.gethostname()}"


def add_silence_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `silence`'s actions (add, list, expire) and their arguments."""
    parser.error = types.MethodType(_one_line_error, parser)  # a missing or unknown ACTION: one line too
    actions = parser.add_subparsers(title="actions", dest="silence_action", metavar="ACTION", required=True,
                                    parser_class=_OneLineParser)

    add = actions.add_parser("add", help="silence alerts matching every MATCHER until a time",
                             description="Silence the alerts whose labels match every MATCHER; print its id.")
    _add_config_argument(add)
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--duration", type=parse_duration, metavar="DURATION",
                       help="how long from now, e.g. 30m, 2h, 1d, 1h30m")
    until.add_argument("--until", type=parse_until, metavar="TIME",
                       help="when it ends, ISO 8601 with a zone, e.g. 2026-11-24T08:00Z")
    add.add_argument("--comment", required=True, help="why (required)")
    add.add_argument("--author", help="who (default: $USER@hostname)")
    add.add_argument("matchers", nargs="+", metavar="MATCHER",
                     help='NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX; quote the value ("...") to keep '
                          "blanks at its ends; regexes match whole values; a missing label is empty")
    add.set_defaults(silence_run=_run_add)

    listing = actions.add_parser("list", help="show active and pending silences",
                                 description="Show active and pending silences, newest first.")
    _add_config_argument(listing)
    listing.add_argument("--all", action="store_true", help="also show expired silences (kept 5 days)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(silence_run=_run_list)

    expire = actions.add_parser("expire", help="end a silence now", description="End a silence now.")
    _add_config_argument(expire)
    expire.add_argument("id", metavar="ID", help="the silence's id (from add or list)")
    expire.set_defaults(silence_run=_run_expire)


def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Declare --config, which gives [alerts] state_dir."""
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config file whose [alerts] state_dir holds silences.json (defaults apply "
                             "without one)")


class _BadInput(Exception):
    """Input to report on one line, exit status 2."""


def run_silence(args: argparse.Namespace) -> int:
    """Run `virtwatch silence ACTION`; return 0, or 2 after one line on stderr for bad input."""
    from alerts.silences import SilenceError
    from virtwatch.config import ConfigError

    prog = f"virtwatch silence {args.silence_action}"
    try:
        store = _store(args)
        return args.silence_run(args, store)
    except ConfigError as error:
        for problem in error.problems:
            print(_one_line(f"{args.config}: {problem}"), file=sys.stderr)
        return 2
    except (SilenceError, _BadInput) as error:
        print(_one_line(f"{prog}: {error}"), file=sys.stderr)
        return 2


def _store(args: argparse.Namespace) -> Any:
    """Open the SilenceStore at <[alerts] state_dir>/silences.json of --config (or of the defaults)."""
    from alerts.paths import silences_path
    from alerts.silences import SilenceStore
    from virtwatch.config import load_config_or_defaults

    config = load_config_or_defaults(args.config)
    return SilenceStore(silences_path(config.alerts.state_dir))


def _run_add(args: argparse.Namespace, store: Any) -> int:
    """Add a silence and print its id."""
    from alerts.silences import Matcher, format_time

    now = utc_now()
    if args.until is not None:
        if args.until <= now:
            raise _BadInput(f"--until {format_time(args.until)}: must be in the future (now is {format_time(now)})")
        ends_at = args.until
    else:
        try:
            ends_at = now + args.duration
        except OverflowError:
            raise _BadInput(f"--duration {args.duration}: too long, it ends after the year 9999") from None
    if not args.comment.strip():
        raise _BadInput("--comment: must not be empty")
    author = default_author() if args.author is None else args.author
    if not author.strip():
        raise _BadInput("--author: must not be empty")
    matchers = [Matcher.parse(text) for text in args.matchers]
    silence = store.add(matchers, ends_at, created_by=author, comment=args.comment)
    print(silence.id)
    return 0


def _run_list(args: argparse.Namespace, store: Any) -> int:
    """Print the silences as a table, or as JSON with --json."""
    silences = store.list(include_expired=args.all)
    now = utc_now()
    if args.json:
        rows = [{**silence.to_dict(), "state": silence.state(now)} for silence in silences]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not silences:
        print("no silences" if args.all else "no active or pending silences (--all shows expired ones)")
        return 0
    header = ("ID", "STATE", "MATCHERS", "STARTS", "ENDS", "AUTHOR", "COMMENT")
    rows = [(silence.id, silence.state(now), " ".join(str(m) for m in silence.matchers),
             _time(silence.starts_at), _time(silence.ends_at), silence.created_by, silence.comment)
            for silence in silences]
    rows = [tuple(_cell(value) for value in row) for row in rows]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join([*(value.ljust(width) for value, width in zip(row, widths)), row[-1]]))
    return 0


def _run_expire(args: argparse.Namespace, store: Any) -> int:
    """End a silence now and say which."""
    silence = store.expire(args.id)
    print(_cell(f"expired {silence.id}: {' '.join(str(m) for m in silence.matchers)} "
                f"(by {silence.created_by}: {silence.comment})"))
    return 0


def _time(moment: datetime) -> str:
    """Show a time in UTC to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(text: str) -> str:
    """Show text on one line: control and format characters (newlines, tabs, bidi overrides) escaped."""
    return "".join(char.encode("unicode_escape").decode("ascii") if unicodedata.category(char)[0] == "C"
                   else char for char in text)


def _one_line(message: str) -> str:
    """Keep an error message on one line whatever paths or values it quotes."""
    return message.replace("\r", "\\r").replace("\n", "\\n")
