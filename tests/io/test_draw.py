"""Drawing: boxes land where the detections say, in their class colour; copies leave input alone."""
import numpy as np
import pytest

from trtssd.core.detections import Detections, LabelMap
from trtssd.io.draw import class_colour, draw_detections, draw_fps
from trtssd.core.errors import InputError

pytest.importorskip("cv2", reason="drawing needs OpenCV (opencv-python-headless)")


def frame(seed=0, h=481, w=643):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_box_edges_in_class_colour_inside_untouched():
    img = frame()
    orig = img.copy()
    d = Detections([[100, 200, 300, 400]], [0.9], [18], ["dog"])
    out = draw_detections(img, d, thickness=1)
    assert out is img                                    # in place
    c = np.array(class_colour(18), np.uint8)
    # The four edges (thickness 1): every pixel on them has the colour.
    assert np.all(img[400, 100:301] == c) and np.all(img[210:401, 100] == c)
    assert np.all(img[210:401, 300] == c)
    # Inside the box, away from the edges and the label tag: untouched.
    np.testing.assert_array_equal(img[230:399, 101:300], orig[230:399, 101:300])
    # Far outside: untouched.
    np.testing.assert_array_equal(img[420:, :], orig[420:, :])
    np.testing.assert_array_equal(img[:, 320:], orig[:, 320:])
    # The label tag is above the box, filled with the colour where no text is.
    tag = img[180:200, 100:110].reshape(-1, 3)
    assert np.mean(np.all(tag == c, axis=1)) > 0.5


def test_copy_leaves_input_and_colours_stable_and_distinct():
    img = frame(1)
    orig = img.copy()
    d = Detections([[10, 10, 50, 60], [300, 100, 400, 200]], [0.5, 0.7], [1, 3])
    out = draw_detections(img, d, labels=LabelMap(["???", "person", "bicycle", "car"]), copy=True)
    np.testing.assert_array_equal(img, orig)
    assert out is not img and not np.array_equal(out, orig)
    assert class_colour(3) == class_colour(3)
    assert len({class_colour(i) for i in range(1, 91)}) == 90
    assert np.all(out[200, 300:401] == np.array(class_colour(3), np.uint8))


def test_fps_overlay_changes_only_its_corner():
    img = frame(2)
    orig = img.copy()
    draw_fps(img, 123.4)
    assert not np.array_equal(img[:60, :200], orig[:60, :200])
    np.testing.assert_array_equal(img[80:], orig[80:])


def test_bad_frame_is_a_clear_error():
    d = Detections.empty()
    with pytest.raises(InputError, match="BGR uint8"):
        draw_detections(np.zeros((10, 10), np.uint8), d)
    with pytest.raises(InputError, match="BGR uint8"):
        draw_fps(np.zeros((10, 10, 3), np.float32), 1.0)
    ro = frame(3)
    ro.flags.writeable = False
    with pytest.raises(InputError, match="copy=True"):
        draw_detections(ro, d)
    draw_detections(ro, d, copy=True)


def test_overlay_choices_and_scaled_sizes():
    from trtssd.io.draw import parse_overlay, scaled_sizes
    assert parse_overlay(None) == {"box", "labels", "conf"}
    assert parse_overlay("box,conf") == {"box", "conf"} and parse_overlay("none") == set()
    with pytest.raises(InputError, match="--overlay"):
        parse_overlay("boxes")
    with pytest.raises(InputError, match="alone"):
        parse_overlay("none,box")
    img = frame(4)
    orig = img.copy()
    d = Detections([[100, 200, 300, 400]], [0.9], [18], ["dog"])
    draw_detections(img, d, overlay="none")
    np.testing.assert_array_equal(img, orig)
    draw_detections(img, d, overlay="box", thickness=1)
    assert np.array_equal(img[180:199, 100:110], orig[180:199, 100:110])   # no label tag
    assert scaled_sizes(480, 640)[0] == 2 and scaled_sizes(2160, 3840)[0] == 9
