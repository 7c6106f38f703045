import io

import numpy as np
import pytest
from helpers import PHOTOS, UNKNOWN, photo
from PIL import Image, ImageFilter, ImageOps

from picorigin._features import fingerprint as fp

IDENTITY = (False, False, False)


@pytest.fixture(scope="module")
def coffee():
    return np.asarray(photo("coffee"))  # 400 x 600: not square, so transposes are real


@pytest.mark.parametrize("element", fp.ORIENTATIONS)
def test_dct_domain_transform_equals_transforming_the_image(coffee, element):
    spatial = fp.coefficients(np.ascontiguousarray(fp.apply_spatial(coffee, element)))
    spectral = fp.transform(fp.coefficients(coffee), element)
    np.testing.assert_allclose(spatial, spectral, atol=1e-3 * np.abs(spectral).max())


@pytest.mark.parametrize("name", PHOTOS)
def test_every_orientation_has_the_same_canonical_code(name):
    image = np.asarray(photo(name))
    reference = fp.compute(image)
    for element in fp.ORIENTATIONS:
        rotated = fp.compute(np.ascontiguousarray(fp.apply_spatial(image, element)))
        assert fp.hamming(rotated.code, reference.code) == 0
        # The stored orientations tell how the two images relate.
        relation = fp.compose(reference.orientation, fp.inverse(rotated.orientation))
        assert relation == element


def test_orientation_names_match_numpy_rotations(coffee):
    named = {
        "rot90": np.rot90(coffee, -1),
        "rot180": np.rot90(coffee, 2),
        "rot270": np.rot90(coffee, 1),
        "mirror": coffee[:, ::-1],
        "mirror_rot90": np.rot90(coffee[:, ::-1], -1),
    }
    for name, array in named.items():
        element = next(g for g in fp.ORIENTATIONS if np.array_equal(fp.apply_spatial(coffee, g), array))
        assert fp.orientation_name(element) == name


def test_group_laws():
    for a in fp.ORIENTATIONS:
        assert fp.compose(a, fp.inverse(a)) == IDENTITY
        assert fp.compose(IDENTITY, a) == a
        for b in fp.ORIENTATIONS:
            for c in fp.ORIENTATIONS:
                assert fp.compose(fp.compose(a, b), c) == fp.compose(a, fp.compose(b, c))
    assert len({fp.orientation_name(g) for g in fp.ORIENTATIONS}) == 8


def test_probes_start_with_the_canonical_orientation(coffee):
    coeffs = fp.coefficients(coffee)
    probes = fp.probes(coeffs)
    canonical = fp.canonical(coeffs)
    assert probes[0][0] == canonical.orientation
    assert np.array_equal(probes[0][1], canonical.code)
    assert 1 <= len(probes) <= 8


def _jpeg(image, quality):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


EDITS = {
    "half size": lambda im: im.resize((im.width // 2, im.height // 2)),
    "jpeg q10": lambda im: _jpeg(im, 10),
    "greyscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "stretch": lambda im: im.resize((int(im.width * 1.3), im.height)),
    "brightness": lambda im: im.point(lambda x: min(255, int(x * 0.7 + 40))),
    "border": lambda im: ImageOps.expand(im, im.width // 16, fill=(255, 255, 255)),
}


@pytest.mark.parametrize("edit", EDITS)
def test_edited_copies_stay_close(edit):
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = photo(name)
        original = fp.compute(image).code
        edited = fp.coefficients(EDITS[edit](image))
        best = min(fp.hamming(code, original) for _, code in fp.probes(edited))
        assert best <= 40, (name, best)


def test_different_photos_are_far_apart():
    names = PHOTOS + UNKNOWN
    codes = {name: fp.compute(photo(name)) for name in names}
    for i, a in enumerate(names):
        probes = fp.probes(fp.coefficients(photo(a)))
        for b in names[i + 1 :]:
            best = min(fp.hamming(code, codes[b].code) for _, code in probes)
            assert best > 80, (a, b, best)


def test_brightness_and_contrast_do_not_change_the_signs(coffee):
    coeffs = fp.coefficients(coffee)
    brighter = fp.coefficients(np.clip(coffee.astype(np.float32) * 0.5 + 60, 0, 255))
    assert fp.hamming(fp.pack(coeffs), fp.pack(brighter)) <= 4


def test_flat_border_is_trimmed(coffee):
    bordered = np.pad(coffee, ((30, 30), (45, 45), (0, 0)), constant_values=0)
    assert fp.hamming(fp.compute(bordered).code, fp.compute(coffee).code) <= 8


def test_code_shape_and_dc_bit():
    code = fp.compute(photo("rocket")).code
    assert code.dtype == np.uint8 and code.shape == (fp.BITS // 8,)
    assert np.unpackbits(code)[0] == 0
