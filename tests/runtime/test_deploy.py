"""deploy/: the per-host supervisord confs and host configs, and docs/deploy.md quoting them."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from mdgw.runtime.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
HOSTS = sorted((REPO / "deploy" / "hosts").glob("*.toml"))
DOC = (REPO / "docs" / "deploy.md").read_text()


@pytest.mark.parametrize("path", HOSTS, ids=lambda p: p.name)
def test_every_host_config_is_valid_and_quoted_verbatim_in_the_docs(path: Path) -> None:
    settings = load_settings(path, env={})
    assert settings.zmq.curve, "every host of a multi-host layout uses CURVE"
    assert f"```toml\n{path.read_text()}```" in DOC, f"docs/deploy.md does not quote {path.name}"


def test_the_host_configs_fit_together() -> None:
    hub = load_settings(REPO / "deploy/hosts/hub.toml", env={})
    feeds = [load_settings(REPO / f"deploy/hosts/feed-{x}.toml", env={}) for x in "ab"]
    consumer = load_settings(REPO / "deploy/hosts/consumer.toml", env={})
    assert len({f.ingestor.id for f in feeds}) == 2
    assert feeds[0].bybit.streams == feeds[1].bybit.streams  # redundant: the same streams
    assert all(s.connections == 2 for f in feeds for s in f.bybit.streams)
    for feed in feeds:
        assert (feed.zmq.raw, feed.zmq.control) == (hub.zmq.raw, hub.zmq.control)
        assert feed.zmq.curve_server_public.endswith("server.key")
    assert (consumer.zmq.pub, consumer.zmq.snapshot) == (hub.zmq.pub, hub.zmq.snapshot)


@pytest.mark.parametrize(
    ("conf", "programs"),
    [("feed-host.conf", ["ingestor"]), ("hub-host.conf", ["book_builder", "printer"])],
)
def test_each_host_role_runs_its_programs(conf: str, programs: list[str]) -> None:
    parser = configparser.RawConfigParser()
    parser.read(REPO / "deploy" / conf)
    assert parser.get("group:mdgw", "programs").split(",") == programs
    assert sorted(s.removeprefix("program:") for s in parser if s.startswith("program:")) == sorted(
        programs
    )
    for program in programs:
        command = parser.get(f"program:{program}", "command")
        assert command.startswith("%(here)s/../.venv/bin/python -m mdgw.")
    assert f"deploy/{conf}" in DOC
