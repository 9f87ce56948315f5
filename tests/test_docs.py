"""Docs that cannot drift: the README's Python blocks run, every `pongrl ...` command in the docs
parses against the real CLI, every file and link they name exists, and the prose stays short."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "src" / "pongrl" / "pretrained" / "README.md"]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
PLACEHOLDERS = {"N": "1", "RUN_DIR": "runs/x", "CHECKPOINT": "runs/x", "FILE": "x.json", "REV": "HEAD"}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) of every `pongrl ...` in a code block or an inline code span."""
    text, found = path.read_text(), []
    for m in FENCE.finditer(text):
        first = text.count("\n", 0, m.start(2)) + 1
        lines = m.group(2).split("\n")
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):  # a command continued on the next line
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            for part in re.split(r"&&|;", line):
                if part.strip().startswith("pongrl "):
                    found.append((first + start, part.strip()))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # keep line numbers
    for m in re.finditer(r"`([^`]+)`", prose):
        span = " ".join(m.group(1).split())  # an inline span may wrap over lines
        if span.startswith("pongrl ") or span == "pongrl":
            found.append((prose.count("\n", 0, m.start()) + 1, span))
    return found


def check_command(line: str) -> str | None:
    """None if `line` parses against pongrl's CLI (and, for `train`, makes a valid config); else why not."""
    argv = [PLACEHOLDERS.get(a, a) for a in shlex.split(line, comments=True)[1:]]
    if not any(a.startswith("-") for a in argv) and (why := parse(argv)) and "arguments are required" in why:
        argv.append("--help")  # a command's name in prose (`pongrl play`): it exists
    return parse(argv)


def parse(argv: list[str]) -> str | None:
    from pongrl import cli
    from pongrl.errors import UserError
    from pongrl.flags import config_from_args

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            args = cli.build_parser().parse_args(argv)
            config = getattr(args, "config", None)
            if args.command == "train" and (config is None or not config.startswith("runs/")):
                config_from_args(args)  # flag values, --config files and shipped config names
    except SystemExit as e:  # --help, --version
        return None if e.code in (0, None) else f"exit {e.code}: {out.getvalue().strip()[-300:]}"
    except (UserError, ValueError) as e:
        return str(e)
    return None


def test_the_docs_have_commands_to_check():
    assert len(commands(README)) >= 10 and len(commands(ROOT / "docs" / "cli.md")) >= 20


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_pongrl_command_in_the_docs_parses(doc, monkeypatch):
    monkeypatch.chdir(ROOT)  # --config bench/... is read from the repository
    bad = [f"{rel(doc)}:{n}: {line}\n    {why}" for n, line in commands(doc) if (why := check_command(line))]
    assert not bad, "commands that pongrl's CLI rejects:\n" + "\n".join(bad)


def test_a_wrong_flag_is_caught():
    assert check_command("pongrl eval --pretrained --games 50") is None
    assert check_command("pongrl train --help") is None
    assert "--no-such-flag" in check_command("pongrl train --no-such-flag 3")
    assert check_command("pongrl train --ppo-obs pixels") is not None
    assert check_command("pongrl evaluate runs/a") is not None


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a Markdown file's headings."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n, base = 0, slug
        while slug in anchors:
            n += 1
            slug = f"{base}-{n}"
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_file_and_link_the_docs_name_exists(doc):
    text = doc.read_text()
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):  # links and pictures, relative to the doc
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            missing.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
            missing.append(target)
    for path in re.findall(r"(?<![\w./-])((?:bench|docs|scripts|notebooks|tests|src)/[\w./+-]*[\w/])", text):
        if not (ROOT / path).exists():  # repository paths in commands and prose
            missing.append(path)
    assert not missing, f"{rel(doc)} names files or anchors that do not exist: {missing}"


def test_the_prose_stays_short():
    lines = {rel(p): len(p.read_text().splitlines()) for p in [*DOCS, *(ROOT / "bench").glob("*.md")]}
    assert lines["README.md"] <= 250 and lines["docs/results.md"] <= 300, lines
    assert sum(lines.values()) <= 1200, lines


def python_blocks() -> list[str]:
    return [m.group(2) for m in FENCE.finditer(README.read_text()) if m.group(1) == "python"]


@pytest.mark.slow
def test_the_readmes_python_blocks_run(tmp_path, monkeypatch):
    """In order, in one namespace, in an empty folder (a game, a 1-game evaluation, a 2,048-step run)."""
    blocks = python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    assert (tmp_path / "runs" / "tiny" / "checkpoint.npz").exists()
