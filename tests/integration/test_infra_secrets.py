"""infra/ keeps the secured listener's secrets to their owner: the private keys, the key
store, the password and the broker's configuration (which holds the password) are 0600 in
a 0700 folder, and the SCRAM password is on no command line and in no log. Run on an infra
folder of its own, with the shared downloads (INFRA_CACHE_DIR): it formats a broker's
storage, as the first `infra.py up` does."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.integration


def infra_module(folder: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("INFRA_DIR", str(folder))
    spec = importlib.util.spec_from_file_location("infra_under_test", REPO / "infra" / "infra.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "infra_under_test", module)
    spec.loader.exec_module(module)
    return module


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_and_passwords_are_the_owners_and_on_no_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra = infra_module(tmp_path / "infra", monkeypatch)
    if not list(infra.KAFKA_JARS.glob("kafka-clients-*.jar")):
        pytest.fail(f"no Kafka jars in {infra.KAFKA_JARS}: run `infra/infra.py up` once")
    monkeypatch.setattr(infra, "say", lambda *_: None)
    ports = infra.Ports(kafka=1, kafka_controller=2, postgres=3, mongo=4, kafka_secured=5)
    infra.prepare_kafka(ports)

    tls = infra.TLS_DIR
    assert mode(tls) == 0o700
    for name in ("ca.key", "broker.key", "client.key", "broker.pem", "plain.password"):
        assert mode(tls / name) == 0o600, name
    assert mode(infra.KAFKA_CONFIG) == 0o600  # the JAAS line holds the password
    password = (tls / "plain.password").read_text().strip()
    assert password in infra.KAFKA_CONFIG.read_text()
    # The storage was formatted with the SCRAM user, the password read from a file.
    assert (infra.KAFKA_DATA / "meta.properties").exists()
    assert (infra.KAFKA_DATA / "scram-users").read_text().strip() == infra.PLAIN_USER
    log = (infra.LOG_DIR / "kafka-format.log").read_text()
    assert log.startswith("$ ") and "@" in log.splitlines()[0]
    assert password not in log
    assert not list(infra.CONF_DIR.glob("*.args")), "an argument file outlived its command"

    # A folder made by an older infra.py, with the default umask and the password in its
    # format log, is put right.
    (tls / "ca.key").chmod(0o644)
    (infra.LOG_DIR / "kafka-format.log").write_text(f"$ java ... password={password}]\n")
    infra.make_tls_material()
    assert mode(tls / "ca.key") == 0o600
    assert password not in (infra.LOG_DIR / "kafka-format.log").read_text()


def test_kafka_cluster_ids_never_read_as_an_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One id in 64 began with "-", and the storage tool took it for an option: formatting
    failed on a fresh machine (seen once, in a fresh clone's `make run`)."""
    infra = infra_module(tmp_path / "infra", monkeypatch)
    ids = [infra.new_kafka_cluster_id() for _ in range(3000)]
    assert not [made for made in ids if made.startswith("-")]
    assert {len(made) for made in ids} == {22} and len(set(ids)) == len(ids)
