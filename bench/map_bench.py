"""``python -m bench.map_bench``: time and memory of the map for 100,000 clips.

Writes a SYNTHETIC output (``explore.testing``: 100k VGGish clips, 128-d, in folders
whose embeddings cluster; the values are not embeddings of audio) once into
``--work_dir``, then, per ``--methods`` value, runs ``python -m pipelines.map`` as a child
process (start-up included) and reports its wall time, CPU time, peak RSS and the HTML
size. With ``--browser`` (needs Chromium + chromedriver) it opens the 100k-point page in
headless Chromium (software WebGL) and times the first render, a hover (mouse move until
the tooltip shows) and a zoom (``Plotly.relayout`` until redrawn). Not a test: nothing
asserts a speed. ``--report PATH`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

__all__ = ["main"]

_DEFAULT_WORK_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "audiobeam-map-bench")


def _parse(argv):
  p = argparse.ArgumentParser(prog="python -m bench.map_bench", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--clips", type=int, default=100_000)
  p.add_argument("--methods", default="pca,umap", help="comma-separated: pca, umap, tsne")
  p.add_argument("--color_by", default="folder")
  p.add_argument("--work_dir", default=_DEFAULT_WORK_DIR)
  p.add_argument("--browser", action="store_true", help="also time the page in headless Chromium")
  p.add_argument("--report", default=None, help="write the results as JSON here")
  return p.parse_args(argv)


def _write_output(work_dir: str, clips: int) -> str:
  from explore.testing import write_synthetic_output  # pylint: disable=import-outside-toplevel

  output = os.path.join(work_dir, f"out-{clips}")
  if os.path.exists(os.path.join(output, "run.json")):
    return output
  shutil.rmtree(output, ignore_errors=True)
  started = time.monotonic()
  folders = tuple(f"folder_{i:02d}" for i in range(12))
  write_synthetic_output(output, n_clips=clips, models=("vggish",), folders=folders,
                         write_frames=False, n_errors=0, leftover=False, num_shards=4)
  print(f"wrote the synthetic output {output} ({clips:,} clips) in "
        f"{time.monotonic() - started:.1f} s", file=sys.stderr)
  return output


def _run_map(output: str, html: str, method: str, color_by: str) -> dict:
  """One ``python -m pipelines.map`` child: wall time, and its own CPU time and peak RSS."""
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "pipelines.map", "--input", output, "--output", html,
         "--method", method, "--color_by", color_by, "--sample", "0"], stdout=out, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    if child.returncode != 0:
      raise SystemExit(f"pipelines.map failed:\n{err.read()}")
    printed = out.read().strip()
  return {
      "method": method,
      "wall_seconds": round(wall, 2),
      "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
      "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1),
      "html_mb": round(os.path.getsize(html) / 1e6, 1),
      "printed": printed,
  }


def _time_browser(html: str) -> dict:
  from selenium import webdriver  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.chrome.options import Options  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel

  binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
  options = Options()
  options.binary_location = binary
  for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
               "--enable-unsafe-swiftshader", "--window-size=1280,900",
               "--host-resolver-rules=MAP * ~NOTFOUND"):
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
  try:
    driver.set_page_load_timeout(300)
    started = time.monotonic()
    driver.get("file://" + os.path.abspath(html))
    driver.execute_async_script("""
      const done = arguments[arguments.length - 1];
      const wait = () => document.querySelector('#audiobeam-map canvas') ? done(true) : setTimeout(wait, 20);
      wait();""")
    render = time.monotonic() - started
    points = driver.execute_script(
        "return document.getElementById('audiobeam-map')._fullData.reduce((n, t) => n + t._length, 0);")
    plot = driver.find_element(By.ID, "audiobeam-map")
    offsets = driver.execute_script("""
      const gd = document.getElementById('audiobeam-map'), box = gd.getBoundingClientRect();
      const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, t = gd._fullData[0];
      return [0.1, 0.3, 0.5, 0.7, 0.9].map(f => Math.floor(f * t._length)).map(i =>
        [Math.round(xa._offset + xa.l2p(t.x[i]) - box.width / 2),
         Math.round(ya._offset + ya.l2p(t.y[i]) - box.height / 2)]);""")
    hovers = []
    for dx, dy in offsets:  # onto real points
      driver.execute_script("const h = document.querySelector('.hoverlayer'); if (h) h.innerHTML = '';")
      started = time.monotonic()
      ActionChains(driver).move_to_element_with_offset(plot, dx, dy).perform()
      shown = driver.execute_async_script("""
        const done = arguments[arguments.length - 1]; const t0 = performance.now();
        const wait = () => {
          const h = document.querySelector('.hoverlayer .hovertext');
          if (h) done(true); else if (performance.now() - t0 > 5000) done(false); else setTimeout(wait, 5);
        };
        wait();""")
      if shown:
        hovers.append(time.monotonic() - started)
    started = time.monotonic()
    driver.execute_async_script("""
      const done = arguments[arguments.length - 1];
      const gd = document.getElementById('audiobeam-map');
      const [x0, x1] = gd._fullLayout.xaxis.range, [y0, y1] = gd._fullLayout.yaxis.range;
      Plotly.relayout(gd, {'xaxis.range': [x0 + (x1 - x0) / 4, x1 - (x1 - x0) / 4],
                           'yaxis.range': [y0 + (y1 - y0) / 4, y1 - (y1 - y0) / 4]}).then(() => done(true));""")
    zoom = time.monotonic() - started
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
  finally:
    driver.quit()
  return {"points": points, "first_render_seconds": round(render, 2),
          "hover_seconds": [round(h, 3) for h in hovers], "zoom_seconds": round(zoom, 3),
          "console_errors": severe}


def main(argv=None) -> int:
  args = _parse(argv)
  os.makedirs(args.work_dir, exist_ok=True)
  output = _write_output(args.work_dir, args.clips)
  report = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                  "python": platform.python_version(), "load_before": os.getloadavg()},
      "clips": args.clips, "dim": 128, "color_by": args.color_by,
      "note": "synthetic output (explore.testing); each run is a whole `python -m pipelines.map` "
              "process, start-up included (its own CPU time and peak RSS)",
      "runs": [],
  }
  for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
    html = os.path.join(args.work_dir, f"map-{args.clips}-{method}.html")
    run = _run_map(output, html, method, args.color_by)
    report["runs"].append(run)
    print(f"{method:>5}: {run['wall_seconds']:7.1f} s wall, {run['cpu_seconds']:7.1f} s CPU, "
          f"peak RSS {run['peak_rss_mb']:7.1f} MB, HTML {run['html_mb']:5.1f} MB")
    if args.browser and "browser" not in report:
      report["browser"] = {"method": method, **_time_browser(html)}
      b = report["browser"]
      print(f"  chromium: {b['points']:,} points, first render {b['first_render_seconds']} s, "
            f"hover {b['hover_seconds']} s, zoom {b['zoom_seconds']} s, "
            f"console errors: {len(b['console_errors'])}")
  report["machine"]["load_after"] = os.getloadavg()
  if args.report:
    with open(args.report, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
