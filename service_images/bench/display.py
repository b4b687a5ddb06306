"""The bench's progress display: a live spinner per step on a terminal, a line per step in CI."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class Display:
    """Live progress on a terminal; one line per finished step elsewhere (CI logs)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.live,
        )
        self.current = ""
        """The step under way (or the last one), for what samples the run."""

    def __enter__(self) -> Display:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[Step]:
        task = self.progress.add_task(description, total=1)
        step = Step(self, task, description)
        self.current = description
        started = time.monotonic()
        try:
            yield step
        except BaseException:
            self.progress.update(task, description=f"[red]✗[/] {description}")
            self.progress.stop_task(task)
            if not self.live:
                self.console.print(f"✗ {description}")
            raise
        result = f" — {step.result}" if step.result else ""
        self.progress.update(task, completed=1, description=f"[green]✓[/] {description}{result}")
        if not self.live:
            elapsed = time.monotonic() - started
            self.console.print(f"✓ {description}{result} [dim]({elapsed:.1f} s)[/]")

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {text}")


@dataclass
class Step:
    display: Display
    task: TaskID
    description: str
    result: str = ""

    def status(self, text: str) -> None:
        self.display.progress.update(self.task, description=f"{self.description} [dim]({text})[/]")
        if not self.display.live:
            self.display.console.print(f"  {self.description}: {text}")
