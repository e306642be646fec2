"""The one sanitiser for remote text: nothing a server or a run sends can drive the terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fitwire.cli.display import clean, remote


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2Jcleared", r"\x1b[2Jcleared"),  # ESC: C0
        ("\x9b2J", r"\x9b2J"),  # CSI: C1, one character on its own
        ("two\nlines\r\tx\x7f", r"two\nlines\r\tx\x7f"),
        ("abc\u202edef", r"abc\u202edef"),  # right-to-left override
        ("para\u2029graph", r"para\u2029graph"),
        ("ünïcödé ✓ 训练", "ünïcödé ✓ 训练"),  # printable text passes as it is
    ],
)
def test_clean_escapes_every_control_character(raw: str, shown: str) -> None:
    assert clean(raw) == shown


def test_remote_text_is_printed_literally() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, color_system="truecolor", force_terminal=True)

    console.print(remote("[bold]net[/bold] \x1b[31mred"))

    printed = out.getvalue()
    assert "[bold]net[/bold] \\x1b[31mred" in printed
    assert "\x1b[1m" not in printed and "\x1b[31m" not in printed  # neither rich markup nor the raw code
