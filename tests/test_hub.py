"""The Hub's files (`gpt2_edu.hub`): finding, downloading (a fake Hub on 127.0.0.1) and reading checkpoints without
trusting them."""

import hashlib
import io
import json
import struct
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2_edu.hub import resolve_checkpoint
from gpt2_edu.model.config import GPTConfig, config_to_hf
from gpt2_edu.model.gpt import GPT

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def folder_files(folder) -> dict[str, bytes]:
    "Every file of a folder, by name."
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


class FakeHub:
    "The Hub's read API for a few repositories, on a free loopback port; records every request."

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status, body=b"", headers=(), head=False):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def route(self, head):
                path = self.path.split("?")[0]
                hub.requests.append((self.command, path))
                if path.startswith("/api/models/"):
                    rest = path.removeprefix("/api/models/")
                    repo, kind = (
                        (rest.split("/revision/")[0], "info")
                        if "/revision/" in rest
                        else (rest.split("/tree/")[0], "tree")
                    )
                    if repo not in hub.repos:
                        return self.send(
                            404,
                            b'{"error": "Repository not found"}',
                            [("X-Error-Code", "RepoNotFound"), ("Content-Type", "application/json")],
                        )
                    files = hub.repos[repo]
                    if kind == "info":
                        body = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": name} for name in files]}
                    else:
                        body = [
                            {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                            for name, data in files.items()
                        ]
                    return self.send(200, json.dumps(body).encode(), [("Content-Type", "application/json")])
                repo, _, rest = path.lstrip("/").partition("/resolve/")
                name = rest.split("/", 1)[1] if "/" in rest else ""
                data = hub.repos.get(repo, {}).get(name)
                if data is None:
                    return self.send(404, headers=[("X-Error-Code", "EntryNotFound")], head=head)
                etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                self.send(200, data, [("X-Repo-Commit", COMMIT), ("ETag", etag)], head=head)

            def do_HEAD(self):
                self.route(head=True)

            def do_GET(self):
                self.route(head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def downloaded(self) -> list[str]:
        "The file names fetched with GET."
        return sorted(
            path.rsplit("/", 1)[1] for command, path in self.requests if command == "GET" and "/resolve/" in path
        )


@pytest.fixture
def tiny(tmp_path):
    "A tiny GPT-2 and its files, as `save_pretrained` writes them (a complete HF model folder)."
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=300)).eval()
    model.save_pretrained(tmp_path / "saved")
    return model, folder_files(tmp_path / "saved")


@pytest.fixture
def online(tmp_path, monkeypatch):
    "Online mode with a scratch HF cache; returns a function that serves repositories and points the client at them."
    import huggingface_hub.constants as constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    hubs = []

    def serve(repos):
        hub = FakeHub(repos)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        hubs.append(hub)
        return hub

    yield serve
    for hub in hubs:
        hub.server.shutdown()


def logits(model, ids):
    with torch.no_grad():
        return model(ids)[0]


transformers.utils.logging.disable_progress_bar()


def tiny_model(vocab_size=300, seed=0):
    "A small GPT with every tensor moved away from its initial value (so a mapping mistake would show)."
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=vocab_size)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model


def random_hf(vocab_size=300):
    torch.manual_seed(1)
    hf = GPT2LMHeadModel(
        GPT2Config(
            n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=vocab_size, bos_token_id=None, eos_token_id=None
        )
    ).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return hf


def logits_of(model, ids):
    with torch.no_grad():
        return model(ids)[0] if isinstance(model, GPT) else model(ids).logits


def write_two_shards(
    model: GPT,
    folder: Path,
    first_name="model-00001-of-00002.safetensors",
    second_name="model-00002-of-00002.safetensors",
):
    "A real 2-shard checkpoint: the tensors split in two files, and the index that maps each tensor to its file."
    folder.mkdir(parents=True, exist_ok=True)
    tensors = model.hf_state_dict()
    names = sorted(tensors)
    halves = {first_name: names[: len(names) // 2], second_name: names[len(names) // 2 :]}
    weight_map = {}
    for shard_name, keys in halves.items():
        shard_path = folder / shard_name
        shard_path.parent.mkdir(parents=True, exist_ok=True)
        save_file({key: tensors[key] for key in keys}, shard_path, metadata={"format": "pt"})
        weight_map.update({key: shard_name for key in keys})
    (folder / "config.json").write_text(json.dumps(config_to_hf(model.config)))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return weight_map


class NotATensor:
    "Anything a pickle could rebuild (and run code while doing it)."


def test_download_gets_only_the_files_a_gpt2_needs(tiny, online, tmp_path):
    model, files = tiny
    extra = {
        "README.md": b"# tiny",
        "pytorch_model.bin": b"not needed when safetensors exist",
        "flax_model.msgpack": b"x" * 1000,
        "onnx/decoder_model.onnx": b"x" * 1000,
    }
    hub = online({"someone/tiny-gpt2": {**files, **extra}})
    loaded = GPT.from_pretrained("someone/tiny-gpt2")
    ids = torch.randint(0, 300, (2, 12))
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids))
    assert hub.downloaded() == sorted(files)  # weights, config, tokenizer files; nothing else
    snapshot = tmp_path / "hub" / "models--someone--tiny-gpt2" / "snapshots" / COMMIT
    assert resolve_checkpoint("someone/tiny-gpt2") == snapshot  # the real cache layout, found again by name
    assert (snapshot.parent.parent / "refs" / "main").read_text() == COMMIT


def test_a_second_load_uses_the_cache_without_any_request(tiny, online):
    model, files = tiny
    hub = online({"someone/tiny-gpt2": files})
    GPT.from_pretrained("someone/tiny-gpt2")
    before = len(hub.requests)
    GPT.from_pretrained("someone/tiny-gpt2")
    assert len(hub.requests) == before


def test_older_repository_with_only_pytorch_model_bin(tiny, online, tmp_path):
    model, files = tiny
    from safetensors.torch import load

    state = load(files["model.safetensors"])  # the same tensors, in the older pickled file
    buffer = io.BytesIO()
    torch.save(state, buffer)
    hub = online({"someone/old-gpt2": {"config.json": files["config.json"], "pytorch_model.bin": buffer.getvalue()}})
    loaded = GPT.from_pretrained("someone/old-gpt2")
    ids = torch.randint(0, 300, (1, 9))
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids))
    assert hub.downloaded() == ["config.json", "pytorch_model.bin"]


def test_unknown_model_is_one_clear_error(online):
    online({})
    with pytest.raises(
        FileNotFoundError,
        match=r"'someone/no-such-gpt2' is not a folder, and downloading it from the "
        r"Hugging Face Hub failed \(RepositoryNotFoundError.*pass a local folder",
    ):
        GPT.from_pretrained("someone/no-such-gpt2")


def test_offline_mode_never_asks_the_hub(tiny, online, monkeypatch):
    model, files = tiny
    hub = online({"someone/tiny-gpt2": files})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set, so nothing was downloaded"):
        GPT.from_pretrained("someone/tiny-gpt2")
    assert hub.requests == []


def test_a_missing_path_is_not_taken_for_a_model_name(online):
    hub = online({})
    with pytest.raises(FileNotFoundError, match="neither a folder nor a model in the local HF cache;"):
        GPT.from_pretrained("./runs/no-such-run")
    assert hub.requests == []


def test_a_missing_run_in_an_existing_folder_is_not_taken_for_a_model_name(online, tmp_path, monkeypatch):
    hub = online({})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # "runs/no-such-run" also reads as owner/name
    with pytest.raises(FileNotFoundError, match="neither a folder nor a model in the local HF cache;"):
        GPT.from_pretrained("runs/no-such-run")
    assert hub.requests == []


def test_two_shard_checkpoint_loads_and_equals_the_model(tmp_path):
    model = tiny_model()
    write_two_shards(model, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
    ids = torch.randint(0, 300, (2, 16))
    loaded = GPT.from_pretrained(tmp_path)
    torch.testing.assert_close(logits_of(loaded, ids), logits_of(model, ids), atol=1e-6, rtol=0)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()  # the same folder is a real HF checkpoint
    torch.testing.assert_close(logits_of(hf, ids), logits_of(model, ids), atol=1e-5, rtol=1e-5)


def test_shards_written_by_transformers_load(tmp_path):
    hf = random_hf()
    hf.save_pretrained(tmp_path, max_shard_size="50KB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) >= 2
    ids = torch.randint(0, 300, (2, 16))
    torch.testing.assert_close(logits_of(GPT.from_pretrained(tmp_path), ids), logits_of(hf, ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shard_name", ["../outside.safetensors", "sub/../../outside.safetensors"])
def test_shard_outside_the_folder_is_refused(tmp_path, shard_name):
    folder = tmp_path / "ckpt"
    model = tiny_model()
    write_two_shards(model, folder)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    moved = "model-00002-of-00002.safetensors"
    (folder / moved).rename(tmp_path / "outside.safetensors")  # a valid shard, but outside the folder
    index["weight_map"] = {key: shard_name if value == moved else value for key, value in index["weight_map"].items()}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=f"names the shard '{shard_name}', which lies outside the checkpoint folder"):
        GPT.from_pretrained(folder)


def test_absolute_shard_path_is_refused(tmp_path):
    folder = tmp_path / "ckpt"
    write_two_shards(tiny_model(), folder)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    absolute = str(folder / "model-00001-of-00002.safetensors")  # inside, but written as an absolute path
    index["weight_map"] = {key: absolute for key in index["weight_map"]}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="lies outside the checkpoint folder"):
        GPT.from_pretrained(folder)


def test_missing_shard_is_named(tmp_path):
    write_two_shards(tiny_model(), tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="names the shard 'model-00002-of-00002.safetensors', but there is no"):
        GPT.from_pretrained(tmp_path)


def test_hf_cache_snapshot_with_shards_linked_to_blobs_loads(tmp_path, monkeypatch):
    "The HF cache stores each file once in blobs/ and links it into snapshots/<hash>/: those links are fine."
    model = tiny_model()
    staging = tmp_path / "staging"
    write_two_shards(model, staging)
    repo = tmp_path / "hub" / "models--someone--sharded"
    snapshot = repo / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in staging.iterdir():
        (file.rename(repo / "blobs" / file.name))
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    ids = torch.randint(0, 300, (1, 12))
    torch.testing.assert_close(
        logits_of(GPT.from_pretrained("someone/sharded"), ids), logits_of(model, ids), atol=1e-6, rtol=0
    )


def test_float16_checkpoint_saved_by_transformers_is_converted_with_a_warning(tmp_path):
    hf = random_hf()
    hf.half().save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match=r"weights are float16 \(e.g. .*\); converted to float32, the model's dtype"):
        ours = GPT.from_pretrained(tmp_path)
    assert {param.dtype for param in ours.parameters()} == {torch.float32}
    ids = torch.randint(0, 300, (2, 16))
    torch.testing.assert_close(logits_of(ours, ids), logits_of(hf.float(), ids), atol=1e-5, rtol=1e-5)


def test_mixed_dtype_file_is_converted_with_a_warning_naming_both(tmp_path):
    model = tiny_model()
    tensors = model.hf_state_dict()
    tensors["transformer.wte.weight"] = tensors["transformer.wte.weight"].half()
    tensors["transformer.h.0.mlp.c_fc.weight"] = tensors["transformer.h.0.mlp.c_fc.weight"].bfloat16()
    save_file(tensors, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(config_to_hf(model.config)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = GPT.from_pretrained(tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "float16 (e.g. transformer.wte.weight)" in messages[0]
    assert "bfloat16 (e.g. transformer.h.0.mlp.c_fc.weight)" in messages[0]
    assert {param.dtype for param in ours.parameters()} == {torch.float32}
    ids = torch.randint(0, 300, (2, 16))
    assert torch.isfinite(logits_of(ours, ids)).all()  # runs: no "mixed dtype" error
    torch.testing.assert_close(logits_of(ours, ids), logits_of(model, ids), atol=0.1, rtol=0)  # rounding only


def test_float32_checkpoint_loads_without_a_warning(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GPT.from_pretrained(tmp_path)


def test_integer_weights_are_refused_naming_the_tensor(tmp_path):
    model = tiny_model()
    tensors = model.hf_state_dict()
    tensors["transformer.ln_f.bias"] = torch.zeros(32, dtype=torch.int64)
    save_file(tensors, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(config_to_hf(model.config)))
    with pytest.raises(ValueError, match="transformer.ln_f.bias is torch.int64, not floating-point weights"):
        GPT.from_pretrained(tmp_path)


def test_pickle_with_objects_is_refused(tmp_path):
    model = tiny_model()
    torch.save({**model.hf_state_dict(), "extra": NotATensor()}, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(config_to_hf(model.config)))
    with pytest.raises(ValueError, match="refused to load .*pytorch_model.bin: not a plain tensor checkpoint") as error:
        GPT.from_pretrained(tmp_path)
    assert "weights_only=False" not in str(error.value)


# --- damaged files: one clear error naming the file, never a traceback from safetensors or torch ---


def _saved(tmp_path, name="run"):
    folder = tmp_path / name
    GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=100)).save_pretrained(folder)
    return folder


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _claim_a_huge_tensor(path):
    "Rewrite the safetensors header so that one tensor claims to end 100 GB into the file."
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    name = next(key for key in header if key != "__metadata__")
    header[name]["data_offsets"][1] = 100 * 2**30
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size :])


def _as_truncated_pickle(folder):
    model = GPT.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.hf_state_dict(), folder / "pytorch_model.bin")
    _truncate(folder / "pytorch_model.bin")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: _truncate(folder / "model.safetensors"), r"model\.safetensors is damaged \(SafetensorError"),
        (lambda folder: _claim_a_huge_tensor(folder / "model.safetensors"), r"model\.safetensors is damaged"),
        (_as_truncated_pickle, r"pytorch_model\.bin is damaged"),
        (
            lambda folder: (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000),
            "nests its JSON too deeply",
        ),
        (lambda folder: (folder / "config.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000), "too deeply"),
    ],
    ids=[
        "truncated safetensors",
        "a 100 GB tensor in the header",
        "truncated pytorch_model.bin",
        "deep list",
        "deep dict",
    ],
)
def test_a_damaged_checkpoint_is_one_clear_error(tmp_path, damage, message):
    folder = _saved(tmp_path)
    damage(folder)
    with pytest.raises(ValueError, match=message):
        GPT.from_pretrained(folder)


def test_the_command_line_says_so_in_one_line(tmp_path, capsys):
    from gpt2_edu.cli.main import main

    folder = _saved(tmp_path)
    _truncate(folder / "model.safetensors")
    assert main(["eval", "--hf", str(folder), "--tasks", "shakespeare_cn", "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "model.safetensors is damaged" in err and "download" in err, err
