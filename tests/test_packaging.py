"""The wheel a Docker image installs (`pip install .`) carries the data files the code reads."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_has_the_data_model_schemas(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("switchboard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("contact", "company", "customer", "order", "product", "invoice"):
        assert f"engine/datamodel/schemas/{kind}.json" in names
    assert "switchboard/cli.py" in names and "engine/specs/_workflow.py" in names
