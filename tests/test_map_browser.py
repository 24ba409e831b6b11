"""The map page in a real browser: headless Chromium through selenium + chromedriver.

Renders the HTML that ``python -m pipelines.map`` wrote, with the network cut off (every
host resolves to nothing, so a CDN or other remote fetch would fail and log an error), and
checks: the expected number of points is plotted and drawn (WebGL pixels in the
screenshot), no console error, a real mouse hover shows the clip's uri in the tooltip
(including a uri with ``<``, ``&``, quotes and non-ASCII), and a click plays the clip (the
real WAV file loads in the page's audio element). Also renders the PNG with kaleido.

``test_map_of_the_real_output_in_chromium`` maps the REAL pipeline output of
``tests/explore_fixtures.py`` (vggish, yamnet, clap over a small corpus, test weights): every
clip plotted, the hover of a real clip shows YAMNet's and CLAP's labels from its rows, a
click plays the real file. The other tests use an output WRITTEN BY THE TEST
(``explore.testing.write_synthetic_output``, with real WAV files at the uris) because they
need a file name with ``<``, ``&``, quotes and non-ASCII characters. Screenshots are saved under pytest's tmp dir
and copied to ``$AUDIOBEAM_TEST_ARTIFACTS`` when set. Skipped only when Chromium or
chromedriver is not installed (CI installs Debian's ``chromium chromium-driver``).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time

import numpy as np
import pytest

from explore.testing import write_synthetic_output
from pipelines import map as map_cli

pytest_plugins = ("explore_fixtures",)

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_DRIVER = "chromedriver"
_ODD_NAME = 'odd <i>name & "quotes" ü 日本.wav'
_ARTIFACTS_ENV = "AUDIOBEAM_TEST_ARTIFACTS"


def _find_browser() -> tuple[str, str]:
  browser = next((shutil.which(b) for b in _BROWSERS if shutil.which(b)), None)
  driver = shutil.which(_DRIVER)
  if browser is None or driver is None:
    pytest.skip(f"needs Chromium and chromedriver on PATH (found browser={browser}, "
                f"driver={driver}); Debian: apt-get install chromium chromium-driver")
  return browser, driver


@pytest.fixture(scope="module")
def map_page(tmp_path_factory):
  """(page path, synthetic output): 40 clips + one odd name in its own folder, real WAVs."""
  root = tmp_path_factory.mktemp("map_browser")
  odd = str(root / "audio" / "odd folder" / _ODD_NAME)
  synthetic = write_synthetic_output(str(root / "out"), n_clips=40, models=("vggish", "yamnet"),
                                     root=str(root / "audio"), extra_uris=[odd],
                                     write_frames=False, write_audio=True)
  page = root / "map.html"
  assert map_cli.main(["--input", synthetic.output, "--model", "vggish", "--output", str(page),
                       "--method", "pca", "--color_by", "folder"]) == 0
  return page, synthetic, odd


@pytest.fixture(scope="module")
def browser():
  from selenium import webdriver
  from selenium.webdriver.chrome.options import Options
  from selenium.webdriver.chrome.service import Service

  binary, driver_path = _find_browser()
  options = Options()
  options.binary_location = binary
  for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
               "--enable-unsafe-swiftshader", "--window-size=1280,900",
               "--autoplay-policy=no-user-gesture-required",
               "--host-resolver-rules=MAP * ~NOTFOUND"):  # offline: no host resolves
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(options=options, service=Service(driver_path))
  yield driver
  driver.quit()


def _save_screenshot(driver, tmp_path, name: str) -> str:
  path = str(tmp_path / name)
  driver.save_screenshot(path)
  target = os.environ.get(_ARTIFACTS_ENV)
  if target:
    os.makedirs(target, exist_ok=True)
    shutil.copy(path, os.path.join(target, name))
  return path


def _pixel_positions(driver, element) -> dict[str, tuple[float, float]]:
  """uri -> (x, y) of its point, in pixels from the plot element's centre."""
  positions = driver.execute_script("""
    const gd = arguments[0], out = {};
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    for (const trace of gd._fullData) {
      trace.customdata.forEach((uri, i) => {
        out[uri] = [xa._offset + xa.l2p(trace.x[i]) - box.width / 2,
                    ya._offset + ya.l2p(trace.y[i]) - box.height / 2];
      });
    }
    return out;""", element)
  return {uri: tuple(xy) for uri, xy in positions.items()}


def _point_offset(driver, element, uri: str) -> tuple[int, int]:
  """Offset from the plot element's centre of the point whose customdata is ``uri``."""
  position = driver.execute_script("""
    const gd = arguments[0], uri = arguments[1];
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    for (const trace of gd._fullData) {
      const i = trace.customdata.indexOf(uri);
      if (i >= 0) {
        const box = gd.getBoundingClientRect();
        return [xa._offset + xa.l2p(trace.x[i]), ya._offset + ya.l2p(trace.y[i]),
                box.width, box.height];
      }
    }
    return null;""", element, uri)
  assert position is not None, f"{uri!r} is not on the map"
  x, y, width, height = position
  return round(x - width / 2), round(y - height / 2)


def test_map_renders_hovers_and_plays_in_chromium(map_page, browser, tmp_path):
  from PIL import Image
  from selenium.webdriver.common.action_chains import ActionChains
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait

  page, synthetic, odd = map_page
  browser.get(page.as_uri())
  plot = WebDriverWait(browser, 30).until(
      lambda d: d.find_element(By.CSS_SELECTOR, "#audiobeam-map.js-plotly-plot"))
  WebDriverWait(browser, 30).until(lambda d: d.execute_script(
      "return document.querySelectorAll('#audiobeam-map canvas').length > 0"))
  time.sleep(0.5)  # let WebGL draw

  # Points: every clip is in the plotted data, in WebGL traces.
  lengths = browser.execute_script(
      "return document.getElementById('audiobeam-map')._fullData.map(t => [t.type, t._length]);")
  assert {kind for kind, _ in lengths} == {"scattergl"}
  assert sum(n for _, n in lengths) == len(synthetic.uris) == 41
  assert "All 41 clips." in browser.find_element(By.TAG_NAME, "header").text

  # Drawn: the plot area holds coloured marker pixels (the WebGL canvas rendered them).
  shot = _save_screenshot(browser, tmp_path, "map_rendered.png")
  box = plot.rect
  pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
  area = pixels[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]
  coloured = (area.max(axis=2) - area.min(axis=2)) > 60  # saturated: markers, not grid/text
  assert coloured.sum() > 20 * 41, f"only {coloured.sum()} coloured pixels in the plot"

  # Hover: a real mouse move onto the odd-named clip (alone in its folder's cluster).
  dx, dy = _point_offset(browser, plot, odd)
  ActionChains(browser).move_to_element_with_offset(plot, dx, dy).perform()
  tooltip = WebDriverWait(browser, 10).until(lambda d: d.execute_script(
      "const h = document.querySelector('.hoverlayer .hovertext'); return h && h.textContent;"))
  assert tooltip.startswith(odd), tooltip
  assert "duration" in tooltip and "yamnet: Unknown, Noise, Silence" in tooltip
  _save_screenshot(browser, tmp_path, "map_hover.png")

  # Click: the page plays that file (a real WAV at a path with odd characters).
  ActionChains(browser).click().perform()
  state = WebDriverWait(browser, 10).until(lambda d: d.execute_script("""
    const p = document.getElementById('audiobeam-player');
    return p.readyState >= 1 || p.error ? [p.src, p.readyState, p.error && p.error.code,
      document.getElementById('audiobeam-status').textContent] : null;"""))
  src, ready_state, error_code, status = state
  assert error_code is None and ready_state >= 1, state
  assert src == page.parent.joinpath("audio", "odd folder", _ODD_NAME).as_uri()
  assert status == f"Playing {odd}"

  # No console errors (warnings such as WebGL driver notes are fine).
  severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not severe, severe


def test_map_png_is_rendered_offline(map_page, tmp_path):
  from PIL import Image

  _find_browser()
  page, synthetic, _ = map_page
  png = tmp_path / "map.png"
  assert map_cli.main(["--input", synthetic.output, "--model", "vggish", "--output",
                       str(tmp_path / "again.html"), "--png", str(png), "--method", "pca",
                       "--color_by", "folder"]) == 0
  image = Image.open(png)
  assert image.format == "PNG" and image.size == (1600, 1000)
  pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
  assert ((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum() > 20 * 41
  target = os.environ.get(_ARTIFACTS_ENV)
  if target:
    os.makedirs(target, exist_ok=True)
    shutil.copy(png, os.path.join(target, "map_kaleido.png"))


@pytest.fixture(scope="module")
def real_map_page(real_output, tmp_path_factory):
  """The map of the real output's YAMNet clips, coloured by folder, as the CLI writes it."""
  page = tmp_path_factory.mktemp("real_map") / "map.html"
  assert map_cli.main(["--input", real_output.output, "--model", "yamnet", "--output", str(page),
                       "--method", "pca", "--color_by", "folder"]) == 0
  return page


def test_map_of_the_real_output_in_chromium(real_output, real_map_page, browser, tmp_path):
  import pyarrow.parquet as pq
  from selenium.webdriver.common.action_chains import ActionChains
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait

  rows = {r["uri"]: r for r in pq.read_table(os.path.join(real_output.output, "yamnet", "clips")).to_pylist()}
  clap = {r["uri"]: r for r in pq.read_table(os.path.join(real_output.output, "clap", "clips")).to_pylist()}
  browser.get(real_map_page.as_uri())
  plot = WebDriverWait(browser, 30).until(
      lambda d: d.find_element(By.CSS_SELECTOR, "#audiobeam-map.js-plotly-plot"))
  WebDriverWait(browser, 30).until(lambda d: d.execute_script(
      "return document.querySelectorAll('#audiobeam-map canvas').length > 0"))
  time.sleep(0.5)
  positions = _pixel_positions(browser, plot)
  assert sorted(positions) == sorted(rows)  # every clip of the output, nothing else
  legend = sorted(browser.execute_script(
      "return document.getElementById('audiobeam-map')._fullData.map(t => t.name);"))
  folders = [real_output.folder(u) for u in rows]
  assert legend == sorted(f"{f} ({folders.count(f)})" for f in set(folders))
  _save_screenshot(browser, tmp_path, "real_map_rendered.png")

  # Hover the real WAV whose point is farthest from any other (no overlap to pick wrongly).
  def isolation(uri):
    x, y = positions[uri]
    return min((x - a) ** 2 + (y - b) ** 2 for other, (a, b) in positions.items() if other != uri)
  uri = max((u for u in positions if u.endswith(".wav")), key=isolation)
  ActionChains(browser).move_to_element_with_offset(
      plot, round(positions[uri][0]), round(positions[uri][1])).perform()
  tooltip = WebDriverWait(browser, 10).until(lambda d: d.execute_script(
      "const h = document.querySelector('.hoverlayer .hovertext'); return h && h.textContent;"))
  best = rows[uri]["top_labels"][0]
  assert tooltip.startswith(uri), tooltip
  assert f"duration {rows[uri]['duration_seconds']:.2f} s" in tooltip
  assert f"yamnet: {best['display_name']} ({best['score']:.2f})" in tooltip
  assert f"clap: {clap[uri]['top_label']} ({clap[uri]['top_label_score']:.2f})" in tooltip
  _save_screenshot(browser, tmp_path, "real_map_hover.png")

  ActionChains(browser).click().perform()
  state = WebDriverWait(browser, 10).until(lambda d: d.execute_script("""
    const p = document.getElementById('audiobeam-player');
    return p.readyState >= 1 || p.error ? [p.src, p.readyState, p.error && p.error.code,
      document.getElementById('audiobeam-status').textContent] : null;"""))
  src, ready_state, error_code, status = state
  assert error_code is None and ready_state >= 1, state
  assert src == pathlib.Path(uri).as_uri() and status == f"Playing {uri}"
  duration = browser.execute_script("return document.getElementById('audiobeam-player').duration;")
  assert duration == pytest.approx(rows[uri]["duration_seconds"], abs=0.01)
  severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not severe, severe
