"""The committed Sparkplug B message classes are what protoc makes of the official proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SPB = ROOT / "monitor" / "schemas"


def test_the_committed_gencode_is_what_make_proto_writes(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={SPB}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(SPB / "sparkplug_b.proto"),
        ],
        check=True,
    )
    for name in ("sparkplug_b_pb2.py", "sparkplug_b_pb2.pyi"):
        assert (tmp_path / name).read_text() == (SPB / name).read_text(), f"run make proto ({name})"


def test_it_is_the_official_tahu_schema() -> None:
    from monitor.schemas import sparkplug_b_pb2 as pb

    assert pb.DESCRIPTOR.package == "org.eclipse.tahu.protobuf"
    payload = pb.Payload
    assert [f.name for f in payload.DESCRIPTOR.fields] == [
        "timestamp",
        "metrics",
        "seq",
        "uuid",
        "body",
    ]
    assert pb.DataType.Value("Int8") == 1 and pb.DataType.Value("DateTime") == 13
    assert pb.DataType.Value("Template") == 19
