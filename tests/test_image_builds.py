"""images.build_missing: what it builds, and that with nothing missing it asks no registry and runs
no builder (every `make run` calls it). A fake engine: this is the logic around the builds."""

from __future__ import annotations

import docker.errors
import pytest

from executions.sandbox import images

pytestmark = pytest.mark.no_database


class FakeEngine:
    """The few calls of docker.APIClient that build_missing makes; a Dockerfile build makes its image."""

    def __init__(self, present: set[str] = frozenset()):
        self.present = set(present)
        self.pulls: list[str] = []
        self.builds: list[str] = []

    def inspect_image(self, image: str) -> dict:
        if image not in self.present:
            raise docker.errors.ImageNotFound(image)
        return {"Size": 100e6}

    def pull(self, image: str) -> None:
        self.pulls.append(image)

    def build(self, tag: str, **kwargs):
        self.builds.append(tag)
        self.present.add(tag)
        return iter([{"stream": "built"}])


@pytest.fixture(autouse=True)
def one_image_per_family(settings):
    settings.SANDBOX_IMAGE = ""


def test_it_builds_the_missing_images_only(monkeypatch):
    wanted = [images.sandbox_image(family) for family in images.families()]
    engine = FakeEngine(present=set(wanted[1:]))
    assert images.build_missing(engine, "auto", False, 2, lambda message: None) == []
    assert (engine.pulls, engine.builds) == ([images.BASE_IMAGE], [wanted[0]])


def test_a_second_build_asks_no_registry_and_builds_nothing():
    engine = FakeEngine()
    reports: list[str] = []
    assert images.build_missing(engine, "auto", False, 3, reports.append) == []
    assert len(engine.builds) == len(images.families()) and len(engine.pulls) == 1
    engine.pulls.clear(), engine.builds.clear(), reports.clear()
    for method in ("auto", "dockerfile", "offline"):
        assert images.build_missing(engine, method, False, 3, reports.append) == []
    assert (engine.pulls, engine.builds) == ([], [])
    assert all(report.endswith(" exists") for report in reports)


def test_force_builds_every_image_again():
    engine = FakeEngine(present={images.sandbox_image(family) for family in images.families()})
    assert images.build_missing(engine, "dockerfile", True, 3, lambda message: None) == []
    assert sorted(engine.builds) == sorted(images.sandbox_image(family) for family in images.families())
    assert engine.pulls == []
