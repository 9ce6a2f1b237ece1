"""The repository carries its own contract: every link in the README and docs/ stays inside it."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def pages():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from sorted(ROOT.glob("*/README.md"))


def test_every_relative_link_resolves_inside_the_repository():
    checked = 0
    for page in pages():
        for target in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path = target.split("#", 1)[0]
            if not path:
                continue
            resolved = (page.parent / path).resolve()
            assert resolved.is_relative_to(ROOT), f"{page.relative_to(ROOT)} links outside: {target}"
            assert resolved.exists(), f"{page.relative_to(ROOT)} links to a missing {target}"
            checked += 1
    assert checked > 10


def test_the_contract_names_every_metric_the_daemon_exports():
    source = (ROOT / "Sources/HeatGateServer/Metrics.swift").read_text()
    names = set(re.findall(r'"((?:p26|process)_[a-z_]+?)(?:_bucket|_count|_sum)?[ {"]', source))
    assert "process_open_fds" in names
    contract = (ROOT / "docs/contract.md").read_text()
    missing = sorted(n for n in names if n not in contract)
    assert names and not missing, missing


def test_the_contract_names_every_rejection_reason():
    source = (ROOT / "Sources/HeatGateCore/Messages.swift").read_text()
    enum = source.split("enum RejectReason", 1)[1].split("}", 1)[0]
    reasons = re.findall(r'= "([a-z_]+)"', enum)
    contract = (ROOT / "docs/contract.md").read_text()
    assert len(reasons) >= 15
    assert [r for r in reasons if f"`{r}`" not in contract] == []
