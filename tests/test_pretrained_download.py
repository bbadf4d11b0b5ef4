"""`GPT.from_pretrained(name)` downloads through the real `huggingface_hub` client, tested without the network.

A small Hub is served on 127.0.0.1: the three routes `snapshot_download` uses (repository info, file tree, and
`resolve` for each file), with the headers the real Hub sends (`X-Repo-Commit`, `ETag`). The download lands in a
scratch HF cache in the real layout (`models--org--name/snapshots/<commit>/`), so what is checked here is what a user
online gets: the right files and only those, the same model, offline mode honoured, and clear errors.
"""
import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

import gpt2_edu.pretrained  # noqa: F401  (adds GPT.from_pretrained)
from gpt2_edu.model import GPT, GPTConfig
from gpt2_edu.pretrained import resolve_checkpoint

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
                    repo, kind = (rest.split("/revision/")[0], "info") if "/revision/" in rest else \
                        (rest.split("/tree/")[0], "tree")
                    if repo not in hub.repos:
                        return self.send(404, b'{"error": "Repository not found"}',
                                         [("X-Error-Code", "RepoNotFound"), ("Content-Type", "application/json")])
                    files = hub.repos[repo]
                    if kind == "info":
                        body = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": name} for name in files]}
                    else:
                        body = [{"type": "file", "path": name, "size": len(data),
                                 "oid": hashlib.sha1(data).hexdigest()} for name, data in files.items()]
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
        return sorted(path.rsplit("/", 1)[1] for command, path in self.requests if command == "GET" and "/resolve/" in path)


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
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        hubs.append(hub)
        return hub

    yield serve
    for hub in hubs:
        hub.server.shutdown()


def logits(model, ids):
    with torch.no_grad():
        return model(ids)[0]


def test_download_gets_only_the_files_a_gpt2_needs(tiny, online, tmp_path):
    model, files = tiny
    extra = {"README.md": b"# tiny", "pytorch_model.bin": b"not needed when safetensors exist",
             "flax_model.msgpack": b"x" * 1000, "onnx/decoder_model.onnx": b"x" * 1000}
    hub = online({"someone/tiny-gpt2": {**files, **extra}})
    loaded = GPT.from_pretrained("someone/tiny-gpt2")
    ids = torch.randint(0, 300, (2, 12))
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids))
    assert hub.downloaded() == sorted(files)                       # weights, config, tokenizer files; nothing else
    snapshot = tmp_path / "hub" / "models--someone--tiny-gpt2" / "snapshots" / COMMIT
    assert resolve_checkpoint("someone/tiny-gpt2") == snapshot    # the real cache layout, found again by name
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
    state = load(files["model.safetensors"])            # the same tensors, in the older pickled file
    buffer = io.BytesIO()
    torch.save(state, buffer)
    hub = online({"someone/old-gpt2": {"config.json": files["config.json"], "pytorch_model.bin": buffer.getvalue()}})
    loaded = GPT.from_pretrained("someone/old-gpt2")
    ids = torch.randint(0, 300, (1, 9))
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids))
    assert hub.downloaded() == ["config.json", "pytorch_model.bin"]


def test_unknown_model_is_one_clear_error(online):
    online({})
    with pytest.raises(FileNotFoundError, match=r"'someone/no-such-gpt2' is not a folder, and downloading it from the "
                                                r"Hugging Face Hub failed \(RepositoryNotFoundError.*pass a local folder"):
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
    (tmp_path / "runs").mkdir()                                 # "runs/no-such-run" also reads as owner/name
    with pytest.raises(FileNotFoundError, match="neither a folder nor a model in the local HF cache;"):
        GPT.from_pretrained("runs/no-such-run")
    assert hub.requests == []
