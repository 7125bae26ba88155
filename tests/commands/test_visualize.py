"""`python -m noisy_mask.visualize`: both pictures from the command line, errors that name the
missing file, and what its --help imports."""



from noisy_mask.commands.visualize import main


def test_cli(noisy_shapes, shapes_runs, tmp_path, capsys):
    out = tmp_path / "noise.png"
    code = main(
        [
            "noise",
            "--clean",
            noisy_shapes["val_json"],
            "--noisy",
            str(noisy_shapes["noisy"]),
            "--images",
            noisy_shapes["val_images"],
            "--output",
            str(out),
            "--num",
            "2",
        ]
    )
    assert code == 0 and out.is_file() and capsys.readouterr().out.strip() == str(out)

    # A run folder without coco_instances_results.json: the folder and the file are named,
    # exit status 1, and no picture is written.
    empty = tmp_path / "untrained"
    empty.mkdir()
    out = tmp_path / "pred.png"
    code = main(
        [
            "predictions",
            str(shapes_runs["bce"]),
            str(empty),
            "--images",
            noisy_shapes["val_images"],
            "--annotations",
            noisy_shapes["val_json"],
            "--output",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert f"run folder '{empty}'" in err and "missing coco_instances_results.json" in err

    code = main(
        [
            "noise",
            "--clean",
            str(tmp_path / "nope.json"),
            "--noisy",
            str(noisy_shapes["noisy"]),
            "--images",
            noisy_shapes["val_images"],
            "--output",
            str(out),
        ]
    )
    assert code == 1 and "nope.json: no such file" in capsys.readouterr().err
