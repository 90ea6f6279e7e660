"""The README's screenshot of the ``tcm serve`` page: a photo compared, wipe between TCM and
WebP, zoomed 2x (needs the serve and dev extras and Debian's Chromium).

    python scripts/serve_screenshot.py ../shared/data/kodak/kodim23.png docs/images/serve.webp
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import threading
import time

from PIL import Image

WEBP_QUALITY = 80


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from tcmcodec.serve.app import create_app

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("out")
    args = ap.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1100, "height": 980})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#codec-choices input")
        page.set_input_files("#file", args.image)
        page.fill("#max-kb", "12")
        page.click("#compare")
        page.wait_for_selector("#results:not([hidden])", timeout=300_000)
        page.select_option("#right", "webp")
        page.click("[data-zoom='2']")
        page.wait_for_timeout(500)
        png = page.screenshot(full_page=True)
        browser.close()
    server.should_exit = True
    Image.open(io.BytesIO(png)).convert("RGB").save(args.out, quality=WEBP_QUALITY)
    print(args.out)


if __name__ == "__main__":
    main()
