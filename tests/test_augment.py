"""`mlplab.augment`: shapes, determinism per (seed, step), the global RNG untouched, exact identities
for zero settings, blank padding, displacement sizes, stroke width and blur, digits that stay
recognisable, `mlplab show augment`, and a run trained with stroke and blur."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mlplab.augment import Augmentation, background_value, blur_keeping_peak, change_stroke_width, step_generator
from mlplab.cli.main import main
from mlplab.config import DataConfig
from mlplab.data import get_spec, load_data
from mlplab.errors import MlplabError
from helpers import cli_status

KINDS = ("affine", "elastic", "both")
STILL = dict(rotate=0.0, scale=0.0, shear=0.0, translate=0.0, elastic_alpha=0.0)  # every distortion off
BACKGROUND = background_value(DataConfig())  # standard MNIST: (0 - 0.1307) / 0.3081


@pytest.fixture(scope="module")
def mnist():
    """The bundled MNIST, standardised as training sees it."""
    return load_data(DataConfig(download=False))


@pytest.fixture(scope="module")
def digits(mnist):
    """64 training digits, (64, 784) float32."""
    return mnist.train.images[:64].reshape(64, 784)


def augmentation(kind: str, seed: int = 0, **settings) -> Augmentation:
    return Augmentation(DataConfig(augment=kind, **settings), seed, BACKGROUND)


def ink(images: torch.Tensor) -> torch.Tensor:
    """Each image's ink above the background, (B, 28, 28), the blank pixels 0."""
    return images.reshape(-1, 28, 28) - BACKGROUND


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(B, 2): each image's ink-weighted mean (x, y) in pixels."""
    weights = ink(images)
    pixel = torch.arange(28, dtype=weights.dtype)
    total = weights.sum(dim=(1, 2))
    return torch.stack([(weights * pixel.view(1, 1, 28)).sum(dim=(1, 2)) / total,
                        (weights * pixel.view(1, 28, 1)).sum(dim=(1, 2)) / total], dim=1)


# --- the background ----------------------------------------------------------------------

def test_background_is_a_blank_pixel_normalised():
    spec = get_spec("mnist")
    assert BACKGROUND == pytest.approx(-spec.mean / spec.std, rel=1e-6)
    assert background_value(DataConfig(normalize="unit")) == 0.0
    assert background_value(DataConfig(normalize="symmetric")) == -1.0
    fashion = get_spec("fashion-mnist")
    assert background_value(DataConfig(dataset="fashion-mnist")) == pytest.approx(-fashion.mean / fashion.std, rel=1e-6)


# --- shapes, dtypes, determinism ---------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_shape_dtype_and_device_are_kept_in_both_layouts(kind, digits):
    distort = augmentation(kind)
    flat = distort(digits, 3)
    square = distort(digits.view(64, 1, 28, 28), 3)
    assert flat.shape == (64, 784) and square.shape == (64, 1, 28, 28)
    assert flat.dtype == square.dtype == torch.float32 and flat.device == digits.device
    assert torch.equal(flat, square.view(64, 784))  # the layout changes nothing else
    assert distort(digits.double(), 3).dtype == torch.float64


def test_wrong_shapes_and_integer_images_are_refused(digits):
    distort = augmentation("both")
    with pytest.raises(MlplabError, match=r"shape \(B, 784\) or \(B, 1, 28, 28\); got \(64, 28, 28\)"):
        distort(digits.view(64, 28, 28), 0)
    with pytest.raises(MlplabError, match="float images; got torch.uint8"):
        distort(torch.zeros(2, 784, dtype=torch.uint8), 0)


@pytest.mark.parametrize("kind", KINDS)
def test_draws_depend_on_seed_and_step_only(kind, digits):
    first = augmentation(kind, seed=5)(digits, 17)
    again = augmentation(kind, seed=5)(digits, 17)  # a new object, as after a resume
    assert torch.equal(first, again)
    assert (first - augmentation(kind, seed=5)(digits, 18)).abs().max() > 0.5
    assert (first - augmentation(kind, seed=6)(digits, 17)).abs().max() > 0.5
    assert not torch.equal(first, digits)


def test_each_image_of_a_batch_gets_its_own_draw(digits):
    same = digits[:1].expand(8, 784)
    distorted = augmentation("both")(same, 0)
    assert all((distorted[0] - distorted[i]).abs().max() > 0.5 for i in range(1, 8))


def test_nearby_seeds_and_steps_give_unrelated_generators():
    draws = {(seed, step): torch.rand(4, generator=step_generator(seed, step)) for seed in (0, 1) for step in (0, 1)}
    values = torch.stack(list(draws.values()))
    assert len({tuple(row.tolist()) for row in values}) == 4


@pytest.mark.parametrize("kind", KINDS)
def test_the_global_rng_is_untouched(kind, digits):
    before = torch.random.get_rng_state()
    augmentation(kind)(digits, 2)
    assert torch.equal(torch.random.get_rng_state(), before)


# --- identities ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ("none", *KINDS))
def test_zero_settings_return_the_input_itself(kind, digits):
    distort = augmentation(kind, **STILL)
    assert not distort.active
    assert distort(digits, 9) is digits


def test_none_is_inactive_whatever_the_settings(digits):
    distort = augmentation("none")
    assert not distort.active and distort(digits, 0) is digits


@pytest.mark.parametrize("kind", KINDS)
def test_the_sampling_path_with_zero_settings_is_the_identity(kind, digits):
    """The real path, without the short cut: within 1e-6 in float64. In float32 the grid's own
    rounding (its pixel centres are not exact binary fractions: about 2e-6 pixel) times a jump of
    up to 3.2 between neighbouring standardised pixels bounds the difference by about 1e-5."""
    distort = augmentation(kind, **STILL)
    exact = digits.double()
    assert (distort._distort(exact, 4) - exact).abs().max() < 1e-6
    assert (distort._distort(digits, 4) - digits).abs().max() < 2e-5


# --- padding, geometry and sizes -------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_blank_image_stays_blank(kind):
    """What comes into view from outside the image is background, however far the image moves."""
    blank = torch.full((16, 784), BACKGROUND)
    distort = augmentation(kind, rotate=180.0, scale=0.9, shear=60.0, translate=14.0, elastic_alpha=300.0)
    assert torch.equal(distort(blank, 0), blank)


def test_a_translation_moves_the_centre_of_mass_by_at_most_translate(digits):
    """Bilinear sampling moves a digit's centre of mass by exactly the shift, when no ink leaves the
    image: the test keeps the digits with no ink within 2 pixels of the edge (most of them)."""
    border = ink(digits).clone()
    border[:, 2:-2, 2:-2] = 0
    inside = (border == 0).all(dim=2).all(dim=1)
    assert inside.sum() > 48
    digits = digits[inside]
    shifted = augmentation("affine", **{**STILL, "translate": 2.0})(digits, 0)
    moved = centre_of_mass(shifted) - centre_of_mass(digits)
    assert moved.abs().max() <= 2.0 + 1e-3
    assert moved.abs().max() > 1.5 and moved.std() > 0.5  # the shifts span most of [-2, 2]
    assert torch.allclose(ink(shifted).sum(dim=(1, 2)), ink(digits).sum(dim=(1, 2)), rtol=1e-4)  # no ink lost


def test_elastic_fields_have_norm_alpha_and_are_smooth():
    """Simard's normalisation: each image's field (dx and dy over every pixel) has L2 norm alpha."""
    for alpha in (1.0, 34.0, 100.0):
        field = augmentation("elastic", elastic_alpha=alpha)._elastic_field(step_generator(0, 0), 8, torch.device("cpu"))
        assert field.shape == (8, 2, 28, 28)
        assert torch.allclose(field.flatten(1).norm(dim=1), torch.full((8,), alpha), rtol=1e-5)
    # sigma 4: neighbouring pixels move almost together; sigma 0.5: nearly independently.
    def neighbour_correlation(sigma: float) -> float:
        field = augmentation("elastic", elastic_sigma=sigma)._elastic_field(step_generator(0, 0), 8,
                                                                            torch.device("cpu"))
        return float(torch.corrcoef(torch.stack([field[..., :-1].flatten(), field[..., 1:].flatten()]))[0, 1])
    assert neighbour_correlation(4.0) > 0.9 and neighbour_correlation(0.5) < 0.5


def test_elastic_changes_grow_with_alpha(digits):
    change = [float((augmentation("elastic", elastic_alpha=alpha)(digits, 0) - digits).abs().mean())
              for alpha in (4.0, 16.0, 64.0)]
    assert change[0] < change[1] < change[2]


def test_digits_stay_recognisable(mnist):
    """1-nearest-neighbour on 2000 training digits: the distorted validation digits are still
    mostly recognised, while a wrong transform (x and y swapped) or a far too strong one is not."""
    references = mnist.train.images[:2000].reshape(-1, 784)
    reference_labels = mnist.train.labels[:2000]
    images, labels = mnist.val.images[:300].reshape(-1, 784), mnist.val.labels[:300]

    def accuracy(distorted: torch.Tensor) -> float:
        return float((reference_labels[torch.cdist(distorted, references).argmin(dim=1)] == labels).double().mean())

    assert accuracy(images) > 0.85
    for kind in KINDS:
        assert accuracy(augmentation(kind)(images, 0)) > 0.5, kind
    assert accuracy(augmentation("none", stroke=1.0, blur=1.0)(images, 0)) > 0.7
    assert accuracy(images.view(-1, 28, 28).transpose(1, 2).reshape(-1, 784)) < 0.25
    assert accuracy(augmentation("elastic", elastic_alpha=300.0)(images, 0)) < 0.25


# --- stroke width and blur ------------------------------------------------------------------

# Per-image sums of the first 4 of the 64 digits distorted at seed 5, step 17 (float64), as
# mlplab computed them before stroke and blur existed (commit 621ed22). Any change to the
# order or number of the geometric draws moves these by whole units, not by 1e-9.
OLD_SUMS = {"affine": (54.6719948688, 13.5187921031, -72.1320432346, -64.3900656881),
            "elastic": (8.5545594496, 51.3760523907, -92.0638337151, -147.1438863935),
            "both": (56.1998517273, 10.8230334710, -65.0153966323, -76.9058005849)}


def canvas(*boxes: tuple[int, int, int, int]) -> torch.Tensor:
    """(1, 1, 28, 28) float64 ink: 1 inside each (top, bottom, left, right) box, ends included, else 0."""
    ink = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    for top, bottom, left, right in boxes:
        ink[..., top:bottom + 1, left:right + 1] = 1.0
    return ink


def radii(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_stroke_and_blur_give_the_old_batches(kind, digits):
    """Stroke and blur off (their defaults, or 0 given): the geometric draws and arithmetic of before."""
    distorted = augmentation(kind, seed=5, stroke=0.0, blur=0.0)(digits.double(), 17)
    assert distorted[:4].sum(dim=1).tolist() == pytest.approx(OLD_SUMS[kind], rel=1e-9, abs=1e-9)
    assert torch.equal(distorted, augmentation(kind, seed=5)(digits.double(), 17))


def test_stroke_and_blur_are_drawn_after_the_geometric_draws(digits):
    """The same affine map and elastic field as with stroke and blur off; the radii, then the sigmas, next."""
    distort = augmentation("both", seed=2, stroke=1.5, blur=2.0)
    generator = step_generator(2, 9)
    affine, field = distort._affine_draws(generator, 64), distort._elastic_field(generator, 64, torch.device("cpu"))
    stroke = torch.rand(64, generator=generator, dtype=torch.float64) * 3.0 - 1.5
    sigma = torch.rand(64, generator=generator, dtype=torch.float64) * 2.0
    ink = change_stroke_width(ink_of(digits), stroke.float(), 1.5)
    expected = distort._resample(blur_keeping_peak(ink, sigma.float()), affine, field) + BACKGROUND
    assert torch.equal(distort(digits, 9), expected.view(64, 784))


def ink_of(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) ink above the background."""
    return images.reshape(-1, 1, 28, 28) - BACKGROUND


@pytest.mark.parametrize("settings", [dict(stroke=1.0), dict(blur=1.0), dict(stroke=2.0, blur=3.0)])
def test_stroke_and_blur_apply_with_augment_none(settings, digits):
    distort = augmentation("none", **settings)
    assert distort.active
    changed = distort(digits, 0)
    assert (changed - digits).abs().max() > 0.5


def test_the_runner_builds_the_augmentation_for_augment_none(mnist):
    from mlplab.training.runner import build_augmentation

    assert build_augmentation(DataConfig(), mnist, seed=0) is None
    assert build_augmentation(DataConfig(augment="both", **STILL), mnist, seed=0) is None
    built = build_augmentation(DataConfig(stroke=1.0), mnist, seed=0)
    assert isinstance(built, Augmentation) and built.active


@pytest.mark.parametrize("kind", ("none", *KINDS))
def test_stroke_and_blur_keep_shape_dtype_and_layout(kind, digits):
    distort = augmentation(kind, stroke=1.5, blur=1.5)
    flat = distort(digits, 3)
    square = distort(digits.view(64, 1, 28, 28), 3)
    assert flat.shape == (64, 784) and square.shape == (64, 1, 28, 28) and flat.dtype == torch.float32
    assert torch.equal(flat, square.view(64, 784))
    exact = distort(digits.double(), 3)
    assert exact.dtype == torch.float64 and (exact - flat.double()).abs().max() < 1e-4


@pytest.mark.parametrize("kind", ("none", *KINDS))
def test_stroke_and_blur_depend_on_seed_and_step_only(kind, digits):
    first = augmentation(kind, seed=5, stroke=1.5, blur=1.5)(digits, 17)
    assert torch.equal(first, augmentation(kind, seed=5, stroke=1.5, blur=1.5)(digits, 17))
    assert (first - augmentation(kind, seed=5, stroke=1.5, blur=1.5)(digits, 18)).abs().max() > 0.5
    before = torch.random.get_rng_state()
    augmentation(kind, stroke=1.5, blur=1.5)(digits, 2)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("kind", ("none", *KINDS))
def test_stroke_and_blur_keep_a_blank_image_blank(kind):
    blank = torch.full((16, 784), BACKGROUND)
    assert torch.equal(augmentation(kind, stroke=2.0, blur=3.0)(blank, 0), blank)


def test_a_dilated_pixel_becomes_a_disc():
    """Radius 1: the pixel and its four neighbours (the disc of radius 1); radius 2: the pixels within
    distance 2 (a diamond of 13); radius 0.5: halfway between the pixel and the radius 1 disc."""
    point = canvas((14, 14, 14, 14))
    plus = change_stroke_width(point, radii(1.0), 2.0)
    assert torch.equal(plus, canvas((13, 15, 14, 14), (14, 14, 13, 15)))
    rows, columns = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    disc = (((rows - 14) ** 2 + (columns - 14) ** 2) <= 4).double().view(1, 1, 28, 28)
    assert torch.equal(change_stroke_width(point, radii(2.0), 2.0), disc)
    assert torch.equal(change_stroke_width(point, radii(0.5), 1.0), 0.5 * point + 0.5 * plus)
    assert torch.equal(change_stroke_width(point, radii(0.0), 2.0), point)


def test_dilation_adds_ink_only_near_strokes(digits):
    """Each digit gains ink (r forced into (0, 2]), never loses any, and none appears more than 2 px
    (a plus twice) from where it was."""
    ink = ink_of(digits.double())
    bolder = change_stroke_width(ink, torch.linspace(0.1, 2.0, 64, dtype=torch.float64), 2.0)
    assert (bolder >= ink - 1e-12).all()
    gain = bolder.sum(dim=(1, 2, 3)) / ink.sum(dim=(1, 2, 3))  # (64,): radius 0.1 first, 2 last
    assert (gain > 1.02).all() and gain[-8:].min() > 1.5 > gain[:8].max()
    reach = change_stroke_width(ink, radii(*[2.0] * 64), 2.0)  # the radius 2 disc around every inked pixel
    assert ((bolder > 0) <= (reach > 0)).all()
    assert torch.allclose(bolder.amax(dim=(1, 2, 3)), ink.amax(dim=(1, 2, 3)), rtol=1e-12)  # none stronger than before


def test_erosion_removes_a_line_and_thins_a_bar():
    line = canvas((14, 14, 4, 23))
    assert torch.equal(change_stroke_width(line, radii(-1.0), 1.0), torch.zeros_like(line))
    bar = canvas((12, 16, 4, 23))  # 5 px thick
    assert torch.equal(change_stroke_width(bar, radii(-1.0), 2.0), canvas((13, 15, 5, 22)))
    assert torch.equal(change_stroke_width(bar, radii(-2.0), 2.0), canvas((14, 14, 6, 21)))
    assert torch.equal(change_stroke_width(bar, radii(-0.5), 1.0), 0.5 * bar + 0.5 * canvas((13, 15, 5, 22)))


def test_erosion_treats_outside_the_image_as_blank():
    """A bar that runs off both sides of the image is eaten at its ends too: the outside is background."""
    bar = canvas((12, 16, 0, 27))
    assert torch.equal(change_stroke_width(bar, radii(-1.0), 1.0), canvas((13, 15, 1, 26)))


def test_each_image_gets_its_own_radius():
    bars = canvas((12, 16, 4, 23)).expand(3, -1, -1, -1)
    changed = change_stroke_width(bars, radii(-1.0, 0.0, 1.0), 1.0)
    assert changed.sum(dim=(1, 2, 3)).tolist() == [3 * 18, 5 * 20, 5 * 20 + 2 * 20 + 2 * 5]


def test_blur_spreads_a_point_as_a_gaussian_and_keeps_its_peak():
    point = canvas((14, 14, 14, 14)) * 2.5
    blurred = blur_keeping_peak(point, radii(1.0))
    assert blurred[0, 0, 14, 14] == pytest.approx(2.5) and blurred.max() == blurred[0, 0, 14, 14]
    assert blurred[0, 0, 14, 15] / blurred[0, 0, 14, 14] == pytest.approx(math.exp(-0.5))
    assert blurred[0, 0, 15, 15] / blurred[0, 0, 14, 14] == pytest.approx(math.exp(-1.0))
    assert blurred[0, 0, 14, 17] > 0 and blurred[0, 0, 14, 18] == 0  # cut at 3 sigma
    window = blurred[0, 0, 10:19, 10:19]  # centred on the point
    assert torch.allclose(window, window.flip(0)) and torch.allclose(window, window.T)


def test_blur_keeps_each_digits_strongest_ink(digits):
    ink = ink_of(digits.double())
    blurred = blur_keeping_peak(ink, torch.linspace(0.3, 3.0, 64, dtype=torch.float64))
    assert torch.allclose(blurred.amax(dim=(1, 2, 3)), ink.amax(dim=(1, 2, 3)), rtol=1e-12)
    assert ((blurred > 0).sum(dim=(1, 2, 3)) > (ink > 0).sum(dim=(1, 2, 3))).all()  # spread wider
    assert (blurred >= 0).all()


def test_blur_of_sigma_zero_is_the_identity(digits):
    ink = ink_of(digits)
    assert torch.equal(blur_keeping_peak(ink, torch.zeros(64)), ink)
    assert torch.equal(blur_keeping_peak(ink.double(), torch.full((64,), 1e-4, dtype=torch.float64)), ink.double())


# --- the CLI -------------------------------------------------------------------------------

def test_show_augment_writes_a_figure(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "augment.png"
    assert main(["show", "augment", "--index", "7", "--count", "4", "--augment", "affine", "--rotate", "30",
                 "--seed", "3", "--out", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {path}"
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float) / 255
    # one row of 5 images at 1.25 in, and the title wrapped to that width on two lines (0.6 in + 0.25 in)
    assert pixels.shape == (int(100 * (1.25 + 0.6 + 0.25)), int(100 * 5 * 1.25)) and pixels.var() > 1e-3


def test_show_augment_titles_the_settings():
    from mlplab.plots import augment_figure
    from mlplab.plots.backend import pyplot

    figure = augment_figure(DataConfig(augment="elastic", download=False), index=0, seed=1, count=3)
    assert [axis.get_xlabel() for axis in figure.axes if axis.get_images()] == ["original", "step 0", "step 1",
                                                                                "step 2"]
    title = figure.texts[0].get_text().replace("\n", " ")  # wrapped to the figure's width
    assert "augment elastic: elastic α 34 px, σ 4 px, seed 1" in title and "rotate" not in title
    pyplot().close(figure)


@pytest.mark.parametrize("flags, fragment", [
    (["--scale", "1"], "scale must be a number in [0, 1); got 1.0"),
    (["--index", "50000"], "--index must be in [0, 49999]"),
    (["--count", "0"], "argument --count: must be a whole number in [1, 100]; got 0"),
    (["--out", "grid.jpg"], "--out must name a .png or .svg file"),
])
def test_show_augment_mistakes_are_one_line_errors(flags, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_status(["show", "augment", *flags]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlplab") and fragment in lines[0], lines
    assert not list(tmp_path.iterdir())


def test_settings_fields_are_the_config_fields():
    from mlplab.cli.plot_cmd import AUGMENT_SETTINGS

    names = {field.name for field in dataclasses.fields(DataConfig)}
    assert set(AUGMENT_SETTINGS) <= names and set(STILL) <= names


def test_show_augment_takes_stroke_and_blur_with_augment_none(tmp_path, capsys):
    from mlplab.plots import augment_figure
    from mlplab.plots.backend import pyplot

    path = tmp_path / "augment.png"
    assert main(["show", "augment", "--count", "2", "--augment", "none", "--stroke", "1.5", "--blur", "1.5",
                 "--out", str(path)]) == 0
    assert path.is_file()
    figure = augment_figure(DataConfig(stroke=1.5, blur=2.0, download=False), index=0, count=1)
    assert "augment none: stroke ±1.5 px, blur σ ≤ 2 px, seed 0" in figure.texts[0].get_text().replace("\n", " ")
    pyplot().close(figure)


def test_a_run_trains_with_stroke_and_blur_and_saves_them(mnist_dir, tmp_path, capsys):
    from mlplab.config import load_config

    run_dir = tmp_path / "run"
    assert main(["train", "--augment", "none", "--stroke", "1", "--blur", "1", "--epochs", "1", "--hidden", "16",
                 "--data-dir", str(mnist_dir), "--device", "cpu", "--no-progress", "--out", str(run_dir)]) == 0
    saved = (run_dir / "config.toml").read_text()
    assert "stroke = 1.0" in saved and "blur = 1.0" in saved and 'augment = "none"' in saved
    assert load_config(run_dir / "config.toml").data.stroke == 1.0
