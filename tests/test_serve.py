"""``tcm serve``: the JSON API (in process) and the page in a real headless Chromium.

The browser tests drive Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``)
through Playwright; they are skipped, with the reason, where neither is installed.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="needs the serve extra: pip install 'tcmcodec[serve]'")

from starlette.testclient import TestClient  # noqa: E402

from tcmcodec import decode  # noqa: E402
from tcmcodec.serve.app import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
POLL_SECONDS = 0.1
JOB_TIMEOUT = 120


def _photo(width: int = 256, height: int = 192, seed: int = 0) -> bytes:
    """A smooth synthetic photo (gradients and noise), as PNG bytes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], axis=-1)
    rgb = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _wait(client: TestClient, job_id: str) -> dict:
    deadline = time.time() + JOB_TIMEOUT
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(max_upload=2**20, max_pixels=2**20)) as c:
        yield c


def test_comparison_codes_every_codec_at_tcms_size_and_the_tcm_download_decodes(client):
    reply = client.post("/api/compare", files={"file": ("p.png", _photo(), "image/png")},
                        data={"quality": "60", "codecs": "jpeg,webp"})
    assert reply.status_code == 202
    job = _wait(client, reply.json()["id"])
    assert job["state"] == "done", job.get("error")
    entries = {e["name"]: e for e in job["results"]["codecs"]}
    assert list(entries) == ["tcm", "jpeg", "webp"]
    tcm = entries["tcm"]
    for name in ("jpeg", "webp"):  # the classical codec's quality closest to TCM's size
        assert abs(entries[name]["bpp"] - tcm["bpp"]) < 0.5 * tcm["bpp"]
        assert entries[name]["psnr"] > 15 and 0 < entries[name]["ms_ssim"] <= 1
    coded = client.get(f"/api/jobs/{job['id']}/files/{tcm['download']}")
    assert coded.status_code == 200 and len(coded.content) == tcm["bytes"]
    shown = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/files/{tcm['image']}").content))
    assert np.array_equal(np.asarray(shown), np.asarray(decode(coded.content).convert("RGB")))


def test_a_bundled_sample_can_be_compared_without_an_upload(client):
    samples = client.get("/api/config").json()["samples"]
    assert [s["name"] for s in samples] == ["grace-hopper"]  # matplotlib comes with the serve extra
    job = _wait(client, client.post("/api/compare", data={"sample": "grace-hopper", "quality": "0", "codecs": "jpeg"}).json()["id"])
    assert job["state"] == "done" and job["results"]["width"] == 512
    assert client.post("/api/compare", data={"sample": "nope", "quality": "0"}).status_code == 400


def test_a_size_target_is_met_by_tcm(client):
    reply = client.post("/api/compare", files={"file": ("p.png", _photo(seed=1), "image/png")},
                        data={"max_bytes": "1500", "codecs": ""})
    job = _wait(client, reply.json()["id"])
    assert job["state"] == "done" and job["results"]["codecs"][0]["bytes"] <= 1500


def test_an_uploaded_tcm_is_decoded_and_described(client):
    from tcmcodec import encode

    data = encode(np.asarray(Image.open(io.BytesIO(_photo(seed=2)))), None, 40)
    job = _wait(client, client.post("/api/decode", files={"file": ("x.tcm", data)}).json()["id"])
    assert job["state"] == "done"
    assert job["results"]["info"]["bytes"] == len(data) and job["results"]["info"]["model"] == "tcm-cpu-mse"
    png = client.get(f"/api/jobs/{job['id']}/files/decoded.png").content
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(decode(data).convert("RGB")))


@pytest.mark.parametrize("url,files,data,status,message", [
    ("/api/compare", {"file": ("x.png", b"not an image", "image/png")}, {"quality": "60"}, 400, "cannot read this file"),
    ("/api/compare", {"file": ("x.png", b"x" * (2**20 + 1), "image/png")}, {"quality": "60"}, 413, "larger than"),
    ("/api/compare", None, {"quality": "60"}, 400, "no file"),
    ("/api/compare", {"file": ("x.png", b"\x89PNG", "image/png")}, {"quality": "101"}, 400, "between 0 and 100"),
    ("/api/compare", {"file": ("x.png", b"\x89PNG", "image/png")}, {}, 400, "either quality or max_bytes"),
    ("/api/compare", {"file": ("x.png", b"\x89PNG", "image/png")}, {"quality": "5", "codecs": "gif"}, 400, "unknown codecs"),
    ("/api/decode", {"file": ("x.tcm", b"TCM garbage")}, {}, 400, "not a .tcm file"),
])
def test_bad_uploads_are_refused_with_a_4xx_and_a_message(client, url, files, data, status, message):
    reply = client.post(url, files=files, data=data) if files else client.post(url, data=data)
    assert reply.status_code == status and message in reply.json()["error"]


def test_too_many_pixels_are_refused_before_any_work(client):
    big = io.BytesIO()
    Image.new("RGB", (2048, 1024)).save(big, format="PNG")
    reply = client.post("/api/compare", files={"file": ("big.png", big.getvalue(), "image/png")}, data={"quality": "5"})
    assert reply.status_code == 400 and "at most 1,048,576" in reply.json()["error"]


def test_files_are_looked_up_by_name_in_the_job_never_on_disk(client):
    assert client.get("/api/jobs/nope/files/tcm.tcm").status_code == 404
    reply = client.post("/api/compare", files={"file": ("p.png", _photo(64, 64), "image/png")},
                        data={"quality": "0", "codecs": ""})
    job_id = reply.json()["id"]
    _wait(client, job_id)
    for name in ("../../pyproject.toml", "..%2F..%2Fpyproject.toml", "/etc/passwd"):
        assert client.get(f"/api/jobs/{job_id}/files/{name}").status_code == 404


# --------------------------------------------------------------------------- real browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    uvicorn = pytest.importorskip("uvicorn")
    port = _free_port()
    config = uvicorn.Config(create_app(max_upload=2**22, max_pixels=2**20), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    if CHROMIUM is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        tab = browser.new_page(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
        tab.goto(server)
        yield tab
        browser.close()


@pytest.mark.slow
def test_the_page_compares_a_dropped_photo_and_its_tcm_download_decodes(page, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(_photo(384, 256, seed=3))
    page.wait_for_selector("#codec-choices input[value=webp]")
    page.set_input_files("#file", str(photo))
    page.fill("#quality", "40")
    page.dispatch_event("#quality", "input")
    page.click("#compare")
    page.wait_for_selector("#results:not([hidden])", timeout=JOB_TIMEOUT * 1000)
    rows = page.locator("#numbers tbody tr")
    names = [rows.nth(i).get_attribute("data-codec") for i in range(rows.count())]
    assert names[0] == "tcm" and "webp" in names
    tcm_bytes = int(page.inner_text("#numbers tr[data-codec=tcm] .bytes"))
    webp_bpp = float(page.inner_text("#numbers tr[data-codec=webp] .bpp"))
    assert tcm_bytes > 0 and webp_bpp > 0
    assert float(page.inner_text("#numbers tr[data-codec=tcm] .psnr")) > 20
    # the wipe slider moves the split; zoom scales both sides together
    page.fill("#wipe", "30")
    page.dispatch_event("#wipe", "input")
    assert "30%" in page.get_attribute("#img-right", "style")
    page.click("[data-zoom='4']")
    assert "scale(4)" in page.get_attribute("#stage-images", "style")
    with page.expect_download() as download:
        page.click("#numbers tr[data-codec=tcm] a.download")
    coded = Path(download.value.path()).read_bytes()
    assert len(coded) == tcm_bytes
    from tcmcodec import decode as decode_bytes

    assert decode_bytes(coded).size == (384, 256)


@pytest.mark.slow
def test_the_page_shows_the_error_of_a_bad_upload(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    page.set_input_files("#file", str(bad))
    page.click("#compare")
    page.wait_for_selector("#error:not([hidden])")
    assert "cannot read this file as an image" in page.inner_text("#error")


def test_serve_refuses_a_taken_port_in_one_line(capsys):
    from tcmcodec.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tcm serve: error: cannot listen on 127.0.0.1:{port}") and "\n" not in err


def test_help_lists_every_command_with_serve(capsys):
    from tcmcodec.cli import main

    assert main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out
