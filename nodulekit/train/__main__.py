"""The one ``train`` command: ``nodulekit train``, ``python -m nodulekit.train`` and
``torchrun --nproc_per_node=N -m nodulekit.train`` are the same typer command.

Its options are generated from `TrainConfig`, one per field (``batch_size`` is
``--batch-size``, a bool ``augment`` is ``--augment/--no-augment``, a tuple of ints is written
``8,9`` or ``none``, a dict is JSON), so the Python API and the command line cannot drift.
Under torchrun each process joins a process group (gloo on the CPU, nccl on CUDA), trains on its
own shard, and rank 0 writes the run folder and prints the result.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from nodulekit._cmdline import OneLineErrorsCommand
from nodulekit._files import check_writable
from nodulekit.train.config import TrainConfig
from nodulekit.train.summary import result_lines


# ---- option types -------------------------------------------------------------------------
def int_tuple(value: Any) -> tuple[int, ...]:
    """``"8,9"``, ``"0-3"`` or ``"none"`` -> a tuple of ints (the type of tuple options)."""
    if isinstance(value, tuple | list):
        return tuple(int(v) for v in value)
    text = str(value).strip().lower()
    if text in ("", "none"):
        return ()
    numbers: list[int] = []
    for part in re.split(r"[,\s]+", text):
        if re.fullmatch(r"\d+", part):
            numbers.append(int(part))
        elif match := re.fullmatch(r"(\d+)-(\d+)", part):
            numbers.extend(range(int(match.group(1)), int(match.group(2)) + 1))
        else:
            raise ValueError(f"{value!r}: write whole numbers such as '8 9' or '8,9', or 'none'")
    return tuple(numbers)


def json_object(value: Any) -> dict:
    """A JSON object (``'{"channels": [8, 16]}'``) -> a dict (the type of dict options)."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{value!r} is not JSON ({error.msg}); e.g. '{{\"channels\": [8, 16]}}'"
        ) from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{value!r} is not a JSON object; e.g. '{{\"channels\": [8, 16]}}'")
    return parsed


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return annotation, False


def option_name(field_name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + field_name.replace("_", "-")


def _option(f: dataclasses.Field, hint: Any) -> inspect.Parameter:
    """The typer option of one `TrainConfig` field."""
    kind, optional = _base_type(hint)
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    help_text = re.sub(r"<(\w+)>", lambda m: m.group(1).upper(), f.metadata.get("help", ""))
    name = option_name(f.name)
    if kind is bool:
        info = typer.Option(f"{name}/--no-{name[2:]}", help=help_text)
        annotation: Any = bool
    elif typing.get_origin(kind) is tuple:
        info = typer.Option(name, help=help_text, parser=int_tuple, metavar="INTS")
        default = None if default is None else " ".join(map(str, default)) or "none"
        annotation = str
    elif kind is dict:
        info = typer.Option(name, help=help_text, parser=json_object, metavar="JSON")
        default, annotation = json.dumps(default), str
    elif kind in (int, float, str):
        info, annotation = typer.Option(name, help=help_text), kind
    else:  # anything else is passed as text; TrainConfig validates it
        info, annotation = typer.Option(name, help=help_text), str
    if optional:
        annotation = typing.Optional[annotation]  # noqa: UP045 - typer needs Optional on 3.10
    return inspect.Parameter(
        f.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[annotation, info],
    )


def _tuple_options() -> set[str]:
    hints = typing.get_type_hints(TrainConfig)
    return {
        option_name(f.name)
        for f in dataclasses.fields(TrainConfig)
        if typing.get_origin(_base_type(hints[f.name])[0]) is tuple
    }


def join_tuple_values(args: list[str], names: set[str]) -> list[str]:
    """Let tuple options take several values as argparse's ``nargs="*"`` did:
    ``--crop-shape 16 16 16`` -> ``--crop-shape 16,16,16``, a bare ``--test-subsets`` -> none."""
    out: list[str] = []
    i = 0
    while i < len(args):
        out.append(args[i])
        i += 1
        if out[-1] in names:
            values = []
            while i < len(args) and not args[i].startswith("--"):
                values.append(args[i])
                i += 1
                if not re.fullmatch(r"[\d,\-]+", values[-1]):
                    break  # "none", or a mistake that the parser will name
            out.append(",".join(values) or "none")
    return out


class TrainCommand(OneLineErrorsCommand):
    """The train command: errors in one line, and several values after a tuple option."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, join_tuple_values(list(args), _tuple_options()))


# ---- what the command does ----------------------------------------------------------------
def run(config: TrainConfig, *, echo: Callable[[str], None] = typer.echo):
    """Check the folders, train, and print the result (rank 0 only). Too few subsets are
    refused by `train` itself, before the crop cache is built."""
    from nodulekit.train import distributed as ddp
    from nodulekit.train.pipeline import train

    check_writable(config.out, "--out")
    if config.cache:
        check_writable(config.cache, "--cache")
    result = train(config)
    info = ddp.init_distributed()
    if info.is_main:
        for line in result_lines(result):
            echo(line)
    ddp.cleanup(info)
    return result


def make_train_command() -> Callable[..., None]:
    """The ``train`` command function, with one typer option per `TrainConfig` field."""
    hints = typing.get_type_hints(TrainConfig)
    parameters = [_option(f, hints[f.name]) for f in dataclasses.fields(TrainConfig)]

    def train_command(**values: Any) -> None:
        try:
            config = TrainConfig(**values)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from error
        run(config)

    train_command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    train_command.__annotations__ = {p.name: p.annotation for p in parameters}
    train_command.__doc__ = (
        "Train a nodule classifier on the candidates of a LUNA16-layout data root: crop cache, "
        "balanced and augmented training, validation each epoch, checkpoints, held-out test. "
        "Every option is a field of nodulekit.train.TrainConfig. INTS options take several "
        "numbers (--val-subsets 7 8, or 7,8) or none (--test-subsets none). "
        "--debug shows the traceback of an error."
    )
    return train_command


def make_app() -> typer.Typer:
    """The typer app of ``python -m nodulekit.train``: the ``train`` command alone."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(cls=TrainCommand)(make_train_command())
    return app


def main(argv: list[str] | None = None) -> int:
    """``python -m nodulekit.train`` / torchrun: run the ``train`` command, return its status."""
    try:
        make_app()(args=argv, prog_name="python -m nodulekit.train")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
