"""The reference node's side of the variants (``conformance/reference/variants.py``): each
names the sentence of ATS that allows it and the chapters it touches, the variant table of
``docs/reference-node.md`` lists them, and a node file naming an unknown one does not start.
That every variant passes every check is proven by the matrix (tests/test_fault_matrix.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from conformance.profile import load_profile
from conformance.reference.variants import VARIANTS
from conformance.runner import embedded_files

ROOT = Path(__file__).resolve().parents[2]


def test_every_variant_names_its_sentence_and_chapters() -> None:
    chapters = {c.chapter for c in load_profile("provincial").clauses}
    for name, variant in VARIANTS.items():
        assert variant.allowed_by, name
        assert variant.description, name
        assert variant.touches, name
        assert set(variant.touches) <= chapters, name


def test_the_reference_docs_list_every_variant() -> None:
    text = (ROOT / "docs" / "reference-node.md").read_text("utf-8")
    for name in VARIANTS:
        assert f"`{name}`" in text, name


def test_an_unknown_variant_stops_the_node_file(tmp_path: Path) -> None:
    node_file, _ = embedded_files(tmp_path)
    node = yaml.safe_load(node_file.read_text("utf-8"))
    node["variants"] = ["no-such-variant"]
    node_file.write_text(yaml.safe_dump(node, allow_unicode=True), "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--config", str(node_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "variants: unknown variant no-such-variant" in done.stderr
