"""The on-disk cache of compiled contracts: hits, misses, corruption, keys, location."""

import json
from pathlib import Path

import pytest
import vyper

from clearway.chain import contracts
from clearway.chain.contracts import (
    CACHE_DIR_ENV,
    cache_dir,
    cached_json,
    compile_contract,
    contract_cache_key,
)

TINY = """# pragma version ~=0.4.3
value: public(uint256)

@deploy
def __init__(v: uint256):
    self.value = v
"""


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A private contracts directory with one tiny contract, and a private cache."""
    sources = tmp_path / "contracts"
    sources.mkdir()
    (sources / "Tiny.vy").write_text(TINY)
    monkeypatch.setattr(contracts, "CONTRACTS_DIR", sources)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    compile_contract.cache_clear()
    yield sources
    compile_contract.cache_clear()


def entry_path(name: str) -> Path:
    return cache_dir() / "contracts" / f"{contract_cache_key(name)}.json"


def count_compiles(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = vyper.compile_code

    def spy(source, *args, **kwargs):
        calls.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(vyper, "compile_code", spy)
    return calls


def test_miss_compiles_and_stores_then_a_new_process_hits(sandbox, monkeypatch):
    calls = count_compiles(monkeypatch)
    first = compile_contract("Tiny")
    assert len(calls) == 1 and entry_path("Tiny").is_file()
    assert {item.get("name") for item in first.abi} >= {"value"}
    compile_contract.cache_clear()  # as a fresh process would
    second = compile_contract("Tiny")
    assert len(calls) == 1
    assert second == first
    assert not list(entry_path("Tiny").parent.glob("*.tmp"))


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{not json", b'{"key": "other", "value": {"abi": [], "bytecode": "00"}}',
     b'{"key": "KEY", "value": {"abi": [], "bytecode": "zz"}}', b'{"key": "KEY"}', b"[1, 2]"],
)
def test_a_corrupt_entry_is_ignored_and_rebuilt(sandbox, monkeypatch, garbage):
    good = compile_contract("Tiny")
    compile_contract.cache_clear()
    path = entry_path("Tiny")
    path.write_bytes(garbage.replace(b"KEY", contract_cache_key("Tiny").encode()))
    calls = count_compiles(monkeypatch)
    assert compile_contract("Tiny") == good
    assert len(calls) == 1
    assert json.loads(path.read_bytes())["value"]["bytecode"] == good.bytecode.hex()


def test_key_covers_every_source_and_the_compiler(sandbox, monkeypatch):
    key = contract_cache_key("Tiny")
    (sandbox / "Lib.vy").write_text("# pragma version ~=0.4.3\n")
    with_other_source = contract_cache_key("Tiny")
    assert with_other_source != key
    (sandbox / "Tiny.vy").write_text(TINY.replace("self.value = v", "self.value = v + 1"))
    assert contract_cache_key("Tiny") not in (key, with_other_source)
    edited = contract_cache_key("Tiny")
    monkeypatch.setattr(vyper, "__version__", "0.4.99")
    assert contract_cache_key("Tiny") != edited


def test_an_edited_source_is_recompiled_not_served_stale(sandbox):
    before = compile_contract("Tiny")
    compile_contract.cache_clear()
    (sandbox / "Tiny.vy").write_text(TINY.replace("value: public(uint256)", "value: public(uint128)")
                                     .replace("v: uint256", "v: uint128"))
    after = compile_contract("Tiny")
    assert after.abi != before.abi


def test_unwritable_cache_only_costs_the_rebuild(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker))
    assert cached_json("kind", "k", lambda: {"x": 1}) == {"x": 1}


def test_cache_directory_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "clearway"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "clearway"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_missing_contract_is_still_an_error(sandbox):
    with pytest.raises(FileNotFoundError):
        compile_contract("Nope")
