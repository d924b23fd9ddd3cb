"""Training sets written by the real tools for tests: img2dataset (run in its own virtualenv, over a loopback HTTP
server), webdataset.ShardWriter and Hugging Face `datasets`. Fixture images are openclipart drawings rendered
to PNG."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPENCLIPART = REPO / "tests" / "fixtures" / "openclipart"
# img2dataset pins pandas<3 and opencv<5, older than the product's: it lives in a virtualenv of its own
# (`make img2dataset`), found here or through PROVENANT_IMG2DATASET_PYTHON
IMG2DATASET_PYTHON = Path(
    os.environ.get("PROVENANT_IMG2DATASET_PYTHON", REPO / "var" / "img2dataset-venv" / "bin" / "python")
)


@dataclass(frozen=True)
class Work:
    name: str  # file name on the server
    data: bytes
    caption: str
    author: str


def drawings(count: int, side: int = 256, start: int = 0) -> list[Work]:
    """Openclipart fixture drawings rendered as JPEGs (what most of the web serves, and what img2dataset stores
    unchanged with skip_reencode), with their titles and credits."""
    from provenance.imaging import load_rgb_path
    from provenance.metadata import svg_metadata

    works = []
    for path in sorted(OPENCLIPART.rglob("*.svg"))[start : start + count]:
        image = load_rgb_path(path, max_side=side).image
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        meta = svg_metadata(path.read_bytes())
        works.append(
            Work(f"{path.stem}.jpg", buffer.getvalue(), meta.title or path.stem, meta.creator or "anon")
        )
    return works


@contextlib.contextmanager
def serve(files: dict[str, bytes], headers: dict[str, dict[str, str]] | None = None) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `files` (with per-file extra headers); yields its base URL."""
    headers = headers or {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            name = self.path.lstrip("/")
            if name not in files:
                self.send_error(404, "File not found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(files[name])))
            for key, value in headers.get(name, {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(files[name])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def img2dataset_available() -> bool:
    return IMG2DATASET_PYTHON.is_file()


def run_img2dataset(rows: list[dict], out: Path, output_format: str, **options) -> Path:
    """img2dataset 1.47 over a URL list (url, caption, author columns), as an operator would run it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    url_list = out.parent / f"{out.name}-urls.json"
    url_list.write_text(json.dumps(rows))
    arguments = {
        "url_list": str(url_list),
        "input_format": "json",
        "caption_col": "caption",
        "save_additional_columns": ["author"],
        "output_format": output_format,
        "output_folder": str(out),
        "processes_count": 1,
        "thread_count": 4,
        "resize_mode": "no",
        "skip_reencode": True,
        "number_sample_per_shard": 1000,
        "enable_wandb": False,
        "retries": 0,
        "timeout": 5,
        **options,
    }
    script = "import json, sys; from img2dataset import download; download(**json.loads(sys.argv[1]))"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": ""}
    subprocess.run(
        [str(IMG2DATASET_PYTHON), "-c", script, json.dumps(arguments)],
        check=True,
        env=env,
        cwd=out.parent,
        capture_output=True,
        timeout=300,
    )
    url_list.unlink()
    return out


def write_webdataset(out: Path, works: list[Work], per_shard: int, urls: list[str] | None = None) -> Path:
    """Shards written by webdataset.ShardWriter with img2dataset's member layout (.jpg, .json, .txt)."""
    import webdataset

    out.mkdir(parents=True, exist_ok=True)
    with webdataset.ShardWriter(str(out / "%05d.tar"), maxcount=per_shard, verbose=0) as writer:
        for number, work in enumerate(works):
            key = f"{number // per_shard:05d}{number % per_shard:04d}"
            url = urls[number] if urls else f"https://art.example.org/{work.name}"
            meta = {
                "key": key,
                "url": url,
                "caption": work.caption,
                "author": work.author,
                "status": "success",
            }
            writer.write({"__key__": key, "jpg": work.data, "txt": work.caption, "json": meta})
    return out


def write_hf_parquet(path: Path, works: list[Work]) -> Path:
    """A Hugging Face `datasets` Parquet with an Image feature, as `Dataset.to_parquet` writes it."""
    from datasets import Dataset, Features, Image, Value

    features = Features(
        {"image": Image(), "text": Value("string"), "author": Value("string"), "id": Value("string")}
    )
    data = {
        "image": [{"bytes": w.data, "path": w.name} for w in works],
        "text": [w.caption for w in works],
        "author": [w.author for w in works],
        "id": [f"hf{i:04d}" for i in range(len(works))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(data, features=features).to_parquet(str(path))
    return path


def download(works: list[Work], base_url: str, out: Path, output_format: str) -> Path:
    """img2dataset's output for `works` served at `base_url`: by img2dataset itself where it is installed,
    otherwise written in its layout with webdataset.ShardWriter / pyarrow (same members, same columns)."""
    rows = [{"url": f"{base_url}/{w.name}", "caption": w.caption, "author": w.author} for w in works]
    if img2dataset_available():
        return run_img2dataset(rows, out, output_format)
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = [
        {**row, "key": f"00000{n:04d}", "status": "success", "sha256": hashlib.sha256(w.data).hexdigest()}
        for n, (row, w) in enumerate(zip(rows, works, strict=True))
    ]
    out.mkdir(parents=True, exist_ok=True)
    if output_format == "webdataset":
        write_webdataset(out, works, per_shard=len(works) + 1, urls=[row["url"] for row in rows])
        pq.write_table(pa.Table.from_pylist(meta), out / "00000.parquet")
    else:
        pq.write_table(pa.Table.from_pylist([{**m, "jpg": w.data} for m, w in zip(meta, works, strict=True)]),
                       out / "00000.parquet")  # fmt: skip
    return out
