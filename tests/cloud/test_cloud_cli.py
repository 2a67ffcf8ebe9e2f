"""`edge-agent keys new`, `bundle sign`, `bundle publish`: an operator's own signed bundle reaches the store."""

import asyncio
import json

import tomli_w

from edge_agent.cli import main
from edge_agent.cloud.envelope import open_envelope
from edge_agent.config import from_dict
from edge_agent.keys import public_keys
from simulators.broker import Mosquitto
from simulators.cloud import offer_bundle
from tests.factories import STORE, config_dict, offer


def test_keys_new_never_overwrites(tmp_path, capsys):
    assert main(["keys", "new", "--dir", str(tmp_path), "--name", "k"]) == 0
    public = capsys.readouterr().out.strip()
    assert (tmp_path / "k.pub").read_text().strip() == public
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert main(["keys", "new", "--dir", str(tmp_path), "--name", "k"]) == 2
    assert "exists" in capsys.readouterr().err


def test_sign_checks_the_bundle_first(tmp_path, capsys):
    main(["keys", "new", "--dir", str(tmp_path)])
    public = capsys.readouterr().out.strip()
    good = tmp_path / "offers.json"
    good.write_text(json.dumps(offer_bundle(3, [offer("o1")])))
    key = str(tmp_path / "bundle-signing.key")
    assert main(["bundle", "sign", str(good), "--key", key, "--store", STORE]) == 0
    envelope = (tmp_path / "offers.signed.json").read_bytes()
    assert json.loads(open_envelope(envelope, "offers", STORE, public_keys([public]), 1 << 20))["version"] == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 0, "offers": []}))
    assert main(["bundle", "sign", str(bad), "--key", key, "--store", STORE]) == 2
    err = capsys.readouterr().err
    assert "not a valid offers bundle" in err and "version" in err and "issued_at" in err
    assert main(["bundle", "sign", str(good), "--key", key, "--store", "not a store"]) == 2
    assert "--store: store must be a store id" in capsys.readouterr().err


async def test_a_bundle_signed_and_published_with_the_tools_is_applied(tmp_path, issuer, running, capsys):
    loop = asyncio.get_running_loop()
    with Mosquitto(tmp_path / "mq") as broker:
        await loop.run_in_executor(None, main, ["keys", "new", "--dir", str(tmp_path)])
        public = capsys.readouterr().out.strip()
        mqtt = {"host": broker.host, "port": broker.port, "bundle_public_keys": [public], "reconnect_max_s": 1.0}
        data = config_dict(tmp_path, issuer, mqtt=mqtt)
        (tmp_path / "store.toml").write_text(tomli_w.dumps(data))
        agent = await running(from_dict(data), seeded=False)
        bundle = tmp_path / "offers.json"
        bundle.write_text(json.dumps(offer_bundle(1, [offer("from-the-operator")])))
        key = str(tmp_path / "bundle-signing.key")
        other = ["bundle", "sign", str(bundle), "--key", key, "--store", "store-other", "--out", str(tmp_path / "o")]
        assert await loop.run_in_executor(None, main, other) == 0
        publish = ["bundle", "publish", str(tmp_path / "o"), "--config", str(tmp_path / "store.toml")]
        assert await loop.run_in_executor(None, main, publish) == 2  # the tool says so before the store refuses it
        assert "signed for store 'store-other', not 'store-test'" in capsys.readouterr().err
        sign = ["bundle", "sign", str(bundle), "--key", key, "--store", STORE]
        assert await loop.run_in_executor(None, main, sign) == 0
        signed = str(tmp_path / "offers.signed.json")
        publish = ["bundle", "publish", signed, "--config", str(tmp_path / "store.toml")]
        assert await loop.run_in_executor(None, main, publish) == 0
        assert "retail/v1/store-test/offers" in capsys.readouterr().out
        async with asyncio.timeout(15):
            while agent.store.bundle_versions.current("offers") != 1:
                await asyncio.sleep(0.05)
        assert [o.offer_id for o in agent.catalog.slate(agent.settings.touchpoints[0]).offers] == ["from-the-operator"]
