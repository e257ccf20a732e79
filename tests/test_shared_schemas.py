"""The Kubernetes tests read KubeRay's CRDs from ../shared/schemas; absent, they skip with why."""

from __future__ import annotations

from pathlib import Path

import fake_admission
import pytest
from fake_admission import KUBERAY_CRDS, AdmittingEmulator, require_kuberay_crds


def test_absent_schemas_skip_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    gone = {
        version: tmp_path / "shared/schemas" / path.name for version, path in KUBERAY_CRDS.items()
    }
    monkeypatch.setattr(fake_admission, "KUBERAY_CRDS", gone)
    with pytest.raises(pytest.skip.Exception, match=r"\.\./shared/schemas is absent"):
        require_kuberay_crds()
    with pytest.raises(pytest.skip.Exception):  # what the operator tests' fixture calls
        AdmittingEmulator().install_kuberay_crd()


@pytest.mark.skipif(
    not all(p.is_file() for p in KUBERAY_CRDS.values()), reason="../shared/schemas is absent"
)
def test_present_schemas_are_used() -> None:
    require_kuberay_crds()  # no skip
    emulator = AdmittingEmulator()
    emulator.install_kuberay_crd()
    key = ("apiextensions.k8s.io/v1/customresourcedefinitions", None, "rayjobs.ray.io")
    assert emulator.objects[key]["spec"]["names"]["kind"] == "RayJob"
