"""The reference docs list exactly what the code has: check ids and settings keys.

Read from the source and the Markdown as text, so a check id added in code but
not in docs/checks.md (or a setting added to ``conf`` without its row in
docs/settings.md) fails here, and so does a documented id or key that no
longer exists.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django_redisroles import clientip, conf
from django_redisroles.cache import options as cache_options
from django_redisroles.locks import options as locks_options
from django_redisroles.pubsub import options as pubsub_options
from django_redisroles.ratelimit import options as ratelimit_options
from django_redisroles.sessions import options as sessions_options

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_redisroles"
DOCS = ROOT / "docs"

# A table row's first cell holding one or more `NAME`s: "| `KEY` |", "| `A`, `B` |".
ROW = re.compile(r"^\|\s*((?:`[^`]+`(?:,\s*)?)+)\s*\|", re.MULTILINE)


def _row_names(markdown: str) -> list[str]:
    names: list[str] = []
    for cell in ROW.findall(markdown):
        names.extend(re.findall(r"`([^`]+)`", cell))
    return names


def _role_defaults(role: str) -> dict[str, object]:
    """A role's settings defaults: in conf until the role moved them to its options.py."""
    moved: dict[str, dict[str, object]] = {
        "pubsub": pubsub_options.DEFAULTS,
        "ratelimit": ratelimit_options.DEFAULTS,
        "sessions": sessions_options.DEFAULTS,
        "locks": locks_options.DEFAULTS,
    }
    return moved[role] if role in moved else conf.ROLE_DEFAULTS[role]


def _section(markdown: str, start_marker: str) -> str:
    """The text from ``<!-- start_marker -->`` to the next ``<!-- ... -->`` marker."""
    start = markdown.index(f"<!-- {start_marker} -->") + len(start_marker) + 9
    end = markdown.find("<!--", start)
    return markdown[start : end if end != -1 else None]


# --- check ids ----------------------------------------------------------------------------


def _code_check_ids() -> dict[str, str]:
    """Every check id the code can emit -> its level ("error"/"warning")."""
    ids: dict[str, str] = {}
    for path in sorted((PACKAGE / "checks").glob("*.py")):
        source = path.read_text()
        for match in re.finditer(r'id="redisroles\.([EW]\d{3})"', source):
            # The level is the class of the call the id belongs to: the closest
            # Error( / Warning( before it.
            before = source[: match.start()]
            level = "error" if before.rfind("Error(") > before.rfind("Warning(") else "warning"
            ids.setdefault(match.group(1), level)
            assert ids[match.group(1)] == level, f"{match.group(1)} used as both levels"
    doctor = "\n".join(p.read_text() for p in sorted((PACKAGE / "doctor").rglob("*.py")))
    for check_id, level in re.findall(r'"([EW]\d{3})",\s*"(error|warning)"', doctor):
        ids.setdefault(check_id, level)
        assert ids[check_id] == level, f"doctor {check_id} used as both levels"
    for check_id in re.findall(r'"\w+":\s*"([EW]\d{3})"', doctor):  # per-role id tables
        ids.setdefault(check_id, "warning")
    return ids


def _documented_check_ids() -> dict[str, str]:
    text = (DOCS / "checks.md").read_text()
    rows = re.findall(r"^\| `redisroles\.([EW]\d{3})` \| (error|warning) \|", text, re.MULTILINE)
    ids = [check_id for check_id, _ in rows]
    assert len(ids) == len(set(ids)), "an id has two rows in docs/checks.md"
    return dict(rows)


def test_every_check_id_matches_its_level() -> None:
    for check_id, level in _code_check_ids().items():
        assert check_id[0] == level[0].upper(), f"{check_id} is raised as a {level}"


def test_docs_checks_lists_exactly_the_check_ids_in_code() -> None:
    code = _code_check_ids()
    documented = _documented_check_ids()
    # E100 is the doctor's "unreachable" error; as a system check it is W100
    # (checks/deploy.py), which is the row; the doctor's id is in that row's text.
    assert code.pop("E100") == "error"
    assert "`E100`" in (DOCS / "checks.md").read_text()
    assert sorted(set(code) - set(documented)) == [], "ids in code but not in docs/checks.md"
    assert sorted(set(documented) - set(code)) == [], "ids in docs/checks.md but not in code"
    assert documented == code, "a level in docs/checks.md differs from the code's"


def test_every_check_id_the_prose_mentions_exists() -> None:
    """README, CHANGELOG, every docs page and the docstrings name only real ids."""
    texts = [ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS.glob("*.md"), *PACKAGE.rglob("*.py")]
    mentioned = {m for f in texts for m in re.findall(r"\b([EW]\d{3})\b", f.read_text())}
    mentioned.discard("E009")  # the end of the configuration range "E001-E009", not an id
    assert sorted(mentioned - set(_code_check_ids())) == []


def test_the_id_extraction_sees_every_module() -> None:
    """Guard for the test above: it must find ids from each role's checks and the doctor."""
    code = _code_check_ids()
    for expected in ("E001", "E010", "E020", "E031", "E040", "E050", "E100", "W110", "W150"):
        assert expected in code


# --- settings -----------------------------------------------------------------------------


def test_top_level_keys_and_connection_options_are_documented() -> None:
    settings_md = (DOCS / "settings.md").read_text()
    top = settings_md[settings_md.index("## Top level") : settings_md.index("## URLs")]
    assert set(_row_names(top)) == set(conf.TOP_LEVEL_KEYS)
    options = settings_md[
        settings_md.index("## Connection options") : settings_md.index("## Pools")
    ]
    assert set(conf.DEFAULT_OPTIONS) <= set(_row_names(options))
    for role_options in conf.ROLE_DEFAULT_OPTIONS.values():
        assert set(role_options) <= set(_row_names(options))


def test_each_roles_settings_table_lists_exactly_its_keys() -> None:
    settings_md = (DOCS / "settings.md").read_text()
    for role in ("sessions", "ratelimit", "pubsub", "locks"):
        documented = _row_names(_section(settings_md, f"{role} settings"))
        assert len(documented) == len(set(documented)), f"{role}: a key has two rows"
        assert set(documented) == set(_role_defaults(role)), role
    # The cache role's own settings live in its CACHES entry's OPTIONS.
    assert conf.ROLE_DEFAULTS["cache"] == {}
    documented = set(_row_names(_section(settings_md, "cache settings")))
    assert documented == set(cache_options.DEFAULTS) | {"SERIALIZER", "COMPRESSOR"}


def _documented_defaults(markdown: str) -> dict[str, object]:
    """``KEY -> default`` of each settings table row whose default cell starts with a literal."""
    found: dict[str, object] = {}
    row = re.compile(r"^\| `([A-Za-z0-9_]+)` \|(?: `[a-z][a-z0-9_]*` \|)? `([^`]+)`", re.MULTILINE)
    for name, literal in row.findall(markdown):
        try:
            found[name] = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            found[name] = literal  # e.g. `LOCK_TIMEOUT`: named, not a value
    return found


def test_documented_defaults_are_the_codes_defaults() -> None:
    settings_md = (DOCS / "settings.md").read_text()
    documented = _documented_defaults(settings_md)
    expected: dict[str, object] = dict(conf.DEFAULT_OPTIONS)
    for role in conf.ROLES:
        expected.update(_role_defaults(role))
    expected.update(clientip.DEFAULTS)  # top level; the ratelimit role's rows agree
    expected.update(cache_options.DEFAULTS)
    # Described in words, not as a literal: "compressor's own", "`LOCK_TIMEOUT`".
    expected.pop("COMPRESS_MIN_SIZE")
    assert expected.pop("LOCK_WAIT") is None and documented["LOCK_WAIT"] == "LOCK_TIMEOUT"
    assert {k: documented.get(k) for k in expected} == expected
    doctor = _documented_defaults((DOCS / "operations.md").read_text())
    assert {k: doctor.get(k) for k in conf.DOCTOR_DEFAULTS} == conf.DOCTOR_DEFAULTS
    pubsub = _documented_defaults((DOCS / "pubsub.md").read_text())
    assert {k: pubsub.get(k) for k in pubsub_options.DEFAULTS} == pubsub_options.DEFAULTS


def test_doctor_settings_are_documented() -> None:
    operations = (DOCS / "operations.md").read_text()
    start = operations.index('### `REDISROLES["DOCTOR"]`')
    table = operations[start : operations.index("\n\n", operations.index("|", start))]
    assert set(_row_names(table)) == set(conf.DOCTOR_DEFAULTS)


def test_every_doctor_setting_but_checks_is_a_doctor_limit() -> None:
    from dataclasses import fields

    from django_redisroles.doctor import Limits

    names = {f.name.upper() for f in fields(Limits)}
    assert names == set(conf.DOCTOR_DEFAULTS) - {"CHECKS"}
    assert all(getattr(Limits(), n.lower()) == conf.DOCTOR_DEFAULTS[n] for n in names)


# --- links --------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_in_the_docs_resolve() -> None:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
    anchors = {
        f.resolve(): {_slug(h) for h in re.findall(r"^#+ (.*)$", f.read_text(), re.MULTILINE)}
        for f in files
    }
    broken = []
    for f in files:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", f.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (f.parent / target).resolve() if target else f.resolve()
            if not path.exists():
                broken.append(f"{f.name}: {target}")
            elif anchor and path in anchors and anchor not in anchors[path]:
                broken.append(f"{f.name}: {target}#{anchor}")
    assert broken == []
