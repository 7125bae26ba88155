"""The validator's test cases: small COCO datasets (samples.small_dataset) changed one defect at a
time, and the exact lines the validator reports for them."""

import json

from samples import small_dataset, write_dataset

from noisy_mask.coco.checks import format_problem, validate_coco

J = "instances.json"
A1 = f"{J}: annotation 1 (image 1)"
A2 = f"{J}: annotation 2 (image 2)"
DELETE = object()


def lines(json_path, image_dir) -> list:
    return [format_problem(p) for p in validate_coco(str(json_path), str(image_dir))]


def set_value(path: str, value):
    """A mutation that sets data[k0][k1]...[kn] = value; path is 'annotations.0.bbox'."""

    def mutate(data, image_dir):
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in parents:
            data = data[key]
        if value is DELETE:
            del data[last]
        else:
            data[last] = value

    return mutate


def check_case(tmp_path, mutate, expected) -> None:
    """The validator reports exactly the `expected` lines ({image_dir} filled in) on
    samples.small_dataset changed by `mutate(data, image_dir)`."""
    data = small_dataset()
    json_path, image_dir = write_dataset(tmp_path, data)
    mutate(data, image_dir)
    json_path.write_text(json.dumps(data))
    assert lines(json_path, image_dir) == [line.format(image_dir=image_dir) for line in expected]
