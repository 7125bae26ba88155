"""audit.html in a real headless browser (Chromium, driven by selenium): it loads without a console
error, shows one row per annotation with its thumbnail, and a click on a score's header sorts the
rows by it; at 10,000 rows it stays usable (slow test)."""

import shutil
import time

import numpy as np
import pytest
from audit_cases import hand_case, write_case
from samples import coco_dict, rle, square, square_annotation

from noisy_mask.audit.predict import Predictions
from noisy_mask.audit.run import run_audit

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Chromium and its driver: apt-get install chromium chromium-driver",
)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def errors(browser):
    """The console's errors since the last call: uncaught exceptions, failed loads,
    console.error."""
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def column(browser, table, index):
    """The data-v values of column `index` of a table's body, in the order shown."""
    return browser.execute_script(
        "var index = arguments[1];"
        "return Array.prototype.map.call(document.querySelectorAll('#' + arguments[0] +"
        " ' tbody tr'), function (r) { return r.cells[index].getAttribute('data-v'); });",
        table,
        index,
    )


def click_header(browser, table, name):
    from selenium.webdriver.common.by import By

    header = browser.find_element(By.XPATH, f"//table[@id='{table}']//th[.='{name}']")
    header.click()
    return header.get_attribute("aria-sort")


def test_the_console_errors_are_seen(browser, tmp_path):
    """The check below can fail: a script error and a missing image both reach the log."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><img src="nowhere.png"><script>notDefined();</script>')
    browser.get(page.as_uri())
    messages = " ".join(entry["message"] for entry in errors(browser))
    assert "notDefined" in messages and "nowhere.png" in messages


def test_page_loads_shows_every_annotation_and_sorts(browser, tmp_path):
    gt_path, image_dir, results_path = write_case(tmp_path, *hand_case())
    run_audit(gt_path, image_dir, tmp_path / "out", Predictions(detections=results_path))
    browser.get((tmp_path / "out" / "audit.html").as_uri())
    assert errors(browser) == []
    # columns: 0 rank, 1 picture, 2 annotation, ..., 4 class, 7 mask IoU, 11 class margin,
    # 12 suspicion, 13 area
    assert column(browser, "annotations", 2) == ["3", "2", "1", "4"]  # by rank
    loaded = browser.execute_script(
        "return Array.prototype.map.call(document.images,"
        " function (i) { return i.complete && i.naturalWidth > 0; });"
    )
    assert loaded == [True] * 5  # 4 annotations and the missing instance

    assert click_header(browser, "annotations", "mask IoU") == "ascending"
    assert column(browser, "annotations", 2) == ["3", "1", "2", "4"]  # 0, 2/3, 1, 1
    assert column(browser, "annotations", 7) == ["0.0", "0.666667", "1.0", "1.0"]
    assert click_header(browser, "annotations", "mask IoU") == "descending"
    assert column(browser, "annotations", 2) == ["2", "4", "1", "3"]  # ties keep their order
    assert click_header(browser, "annotations", "suspicion") == "descending"
    assert column(browser, "annotations", 12) == ["1.0", "0.6", "0.333333", "0.0"]
    # other class - annotated class: 0.8 - 0.2 (2, the flip), 0 - 0 (3, no match), 0 - 0.9 (1),
    # 0 - 0.95 (4)
    assert click_header(browser, "annotations", "class margin") == "descending"
    assert column(browser, "annotations", 2) == ["2", "3", "1", "4"]
    assert column(browser, "annotations", 11) == ["0.6", "0.0", "-0.9", "-0.95"]
    assert click_header(browser, "annotations", "class") == "ascending"
    assert column(browser, "annotations", 4) == ["circle", "circle", "circle", "star"]
    assert click_header(browser, "annotations", "area") == "ascending"
    assert column(browser, "annotations", 13) == ["400.0"] * 4
    assert column(browser, "missing", 4) == ["0.7"]
    assert errors(browser) == []


def many_squares(num_images: int, per_side: int, seed: int = 0):
    """(gt, results): num_images 64 x 64 images, each with per_side^2 squares of 5 px on a 6 px
    grid, annotated; each predicted shifted by 0 to 3 px right, score and class at random."""
    rng = np.random.default_rng(seed)
    annotations, results = [], []
    for image_id in range(1, num_images + 1):
        for row in range(per_side):
            for col in range(per_side):
                x, y = 2 + 6 * col, 2 + 6 * row
                ann = square_annotation(len(annotations) + 1, image_id, x, y, side=5)
                annotations.append(ann)
                shift = int(rng.integers(0, 4))
                results.append({
                    "image_id": image_id, "category_id": int(rng.integers(1, 3)),
                    "segmentation": rle(square(64, 64, y, x + shift, 5)),
                    "score": round(float(rng.uniform(0.05, 1)), 3),
                })  # fmt: skip
    gt = coco_dict(annotations, num_images, ((1, "circle"), (2, "star")))
    return gt, results


def wait_for_images(browser, done, timeout: float = 20.0) -> int:
    """The number of images loaded, once `done(number)` or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        loaded = browser.execute_script(
            "return Array.prototype.filter.call(document.images,"
            " function (i) { return i.complete && i.naturalWidth > 0; }).length;"
        )
        if done(loaded) or time.monotonic() > deadline:
            return loaded
        time.sleep(0.2)


@pytest.mark.slow
def test_ten_thousand_rows_stay_usable(browser, tmp_path):
    gt, results = many_squares(num_images=100, per_side=10)
    gt_path, image_dir, results_path = write_case(tmp_path, gt, results)
    run_audit(gt_path, image_dir, tmp_path / "out", Predictions(detections=results_path),
              num_pictures=0)
    started = time.perf_counter()
    browser.get((tmp_path / "out" / "audit.html").as_uri())
    load = time.perf_counter() - started
    rows = browser.execute_script(
        "return document.querySelectorAll('#annotations tbody tr').length;"
    )
    assert rows == 10_000 and errors(browser) == []
    # lazy loading: the images in and near the window load, those far below it do not
    fetched = wait_for_images(browser, lambda n: n > 0)
    assert 0 < fetched < 1_000
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    assert wait_for_images(browser, lambda n: n > fetched) > fetched
    started = time.perf_counter()
    assert click_header(browser, "annotations", "mask IoU") == "ascending"
    sort = time.perf_counter() - started
    values = [float(v) for v in column(browser, "annotations", 7)]
    assert values == sorted(values)
    print(f"10,000 rows: page loaded in {load:.2f} s, sorted in {sort:.2f} s, {fetched} images")
    assert load < 30 and sort < 10
