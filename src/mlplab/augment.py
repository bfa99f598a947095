"""Random distortions of training batches: affine maps, Simard's elastic distortions, stroke width and blur, batched.

`Augmentation` distorts a whole batch on the images' own device and dtype, with no Python
loop over images: the stroke width and the blur first, then one ``grid_sample`` for the
geometric kind. Every random number of a batch comes from a generator seeded by ``(seed,
step)`` alone (drawn on the CPU, then moved), so the same seed and optimizer step give the
same distortions on any device, a resumed run repeats them exactly, and the global RNG is
never touched.

Kinds (`mlplab.choices.AUGMENTS`), each image drawing its own parameters:

    affine   about the image centre, in this order: scale U(1 - scale, 1 + scale), shear
             U(-shear, shear) degrees (x moves by tan(shear) * y), rotation U(-rotate,
             rotate) degrees (positive turns counterclockwise as drawn), translation
             U(-translate, translate) pixels on each axis.
    elastic  Simard, Steinkraus & Platt (2003), section 2: per pixel dx, dy ~ U(-1, 1),
             each convolved with a Gaussian of standard deviation sigma pixels (cut at
             3 sigma, zero padding: see `Augmentation._elastic_field`), the field normalised
             ("to a norm of 1"), then multiplied by alpha; the image is resampled bilinearly
             at (x + dx, y + dy). We read the normalisation as: each image's whole field (dx
             and dy over every pixel) scaled to unit L2 norm, so alpha is that norm in pixels
             and the root-mean-square displacement is alpha / side (1.2 pixels for alpha 34
             on 28x28), whatever sigma is. Without it the field's size would fall as 1/sigma
             (the paper's remark that a large sigma gives very small values); the common
             un-normalised recipe happens to give a similar size (about 2 pixels) at the
             paper's sigma 4, alpha 34.
    both     affine, then elastic, composed into one sampling grid: one bilinear resampling
             blurs less than two.

Two more changes apply with any kind, none included (for people's own digits: a bold marker,
a thin pen, a photo out of focus), each before the kind's resampling and in this order:

    stroke   the strokes made bolder or thinner by r ~ U(-stroke, stroke) pixels per side:
             grey-level dilation (r > 0) or erosion (r < 0) by a plus-shaped element, once
             for 1 pixel, twice for 2, a fractional r blending the two nearest whole ones
             (`change_stroke_width`). MNIST's strokes are 2 to 3 pixels wide: erosion by 1
             leaves thin-pen strokes, by 1.5 faint broken ones, by 2 erases most digits.
    blur     a Gaussian blur of standard deviation sigma ~ U(0, blur) pixels, then the image
             scaled so its strongest ink is as strong as before (`blur_keeping_peak`).

Their random numbers are drawn after the kind's (the stroke radii, then the blur sigmas) and
only when they are on, so a config without them distorts exactly as before they existed.

Padding: pixels that come from outside the image take the background value, the
normalised value of a blank (0) pixel (`background_value`): -0.42 for standard MNIST,
not 0. So a blank image stays blank and a digit's surroundings stay blank. Every step works
on the ink, ``images - background`` (blank 0, ink > 0), padded with zeros: erosion treats the
outside as blank too, so a stroke that runs off the image thins at its end as well.

Cost per batch of (B, 784) float32 at the default settings, torch 2.13 CPU, one thread,
measured on the shared 2-core development machine under load (load average about 6):
the fastest of 60 calls, then the median:

    kind      B = 64           B = 256
    affine    0.6 ms (0.7)     4.3 ms (8.6)
    elastic   1.1 ms (1.2)     4.0 ms (8.3)
    both      1.3 ms (1.5)     4.8 ms (10.6)

The elastic part is mostly drawing the (B, 2, 28, 28) uniforms and two batched (28, 28)
matrix products; the rest is building the grid and one ``grid_sample``.

Stroke and blur, measured later the same way (load average about 4), with ``both`` again
beside them for scale:

    setting                           B = 64           B = 256
    both                              1.4 ms (1.5)     4.9 ms (5.6)
    none, stroke 1                    0.6 ms (0.7)     1.8 ms (2.1)
    none, blur 1                      0.5 ms (0.6)     1.4 ms (2.3)
    none, stroke 1, blur 1            1.2 ms (1.5)     3.3 ms (4.8)
    both, stroke 1, blur 1            3.5 ms (4.1)     9.9 ms (12.8)

The stroke is a dilation and an erosion (each the maximum of five shifted copies) per whole
pixel of ``stroke``, then a blend; the blur builds one (28, 28) band per image from a (B, 55)
kernel and makes two batched matrix products.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mlplab.config import DataConfig
from mlplab.data.registry import DatasetSpec
from mlplab.errors import MlplabError

# Mixed into every generator seed so the augmentation stream never repeats another stream
# seeded from the run's seed (`mlplab.data.batches.epoch_seed` mixes (seed, epoch)).
_STREAM = int.from_bytes(b"augment", "big")

# The smoothing Gaussian is cut at 3 sigma: 0.3% of its mass lies beyond.
KERNEL_SIGMAS = 3.0


def background_value(config: DataConfig, spec: DatasetSpec | None = None) -> float:
    """The value a blank (0) pixel has once normalised as ``config.normalize`` says (-0.4242 for standard MNIST).

    Args:
        config: its ``normalize`` (and its ``dataset``, when ``spec`` is not given).
        spec: the dataset whose mean and std ``standard`` uses; default: ``config.dataset``'s.
    """
    from mlplab.data.loading import scale_pixels
    from mlplab.data.registry import DATASET_SPECS

    spec = spec or DATASET_SPECS[config.dataset]
    return float(scale_pixels(torch.zeros(1, dtype=torch.uint8), config.normalize, spec).item())


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, step)`` alone: nearby pairs give unrelated streams."""
    mixed = np.random.SeedSequence([seed, step, _STREAM]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


def _uniform(generator: torch.Generator, count: int, low: float, high: float) -> torch.Tensor:
    """``count`` draws of U(low, high), (B,) float64 on the CPU."""
    return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)


class Augmentation:
    """Distort training batches as a `DataConfig` says: ``augmentation(images, step) -> images``.

    ``augment="none"`` gives an augmentation that returns its input unchanged, as does any
    kind whose parameters are all zero (``rotate = scale = shear = translate = 0`` for
    affine, ``elastic_alpha = 0`` for elastic), unless ``stroke`` or ``blur`` is above 0:
    those two apply with any kind, none included. `active` says whether a call changes anything.

    Args:
        config: ``augment`` (the kind), ``rotate``, ``scale``, ``shear``, ``translate``,
            ``elastic_alpha``, ``elastic_sigma``, ``stroke`` and ``blur`` (see `mlplab.config.DataConfig`).
        seed: the run's seed; with the step it fixes every draw.
        background: the normalised value of a blank pixel (`background_value`), used for
            whatever comes into view from outside the image.
        side: the images are ``side`` x ``side`` (28 for MNIST).
    """

    def __init__(self, config: DataConfig, seed: int, background: float, side: int = 28) -> None:
        self.kind = config.augment
        self.rotate = config.rotate  # degrees either way
        self.scale = config.scale  # fraction either way
        self.shear = config.shear  # degrees either way
        self.translate = config.translate  # pixels either way, on each axis
        self.alpha = config.elastic_alpha  # pixels: the norm of each image's displacement field
        self.sigma = config.elastic_sigma  # pixels: the smoothing Gaussian's standard deviation
        self.stroke = config.stroke  # pixels per side either way: the largest dilation or erosion
        self.blur = config.blur  # pixels: the largest standard deviation of the blurring Gaussian
        self.seed = seed
        self.background = background
        self.side = side

    @property
    def affine(self) -> bool:
        """Whether the kind includes a random affine map."""
        return self.kind in ("affine", "both")

    @property
    def elastic(self) -> bool:
        """Whether the kind includes an elastic distortion."""
        return self.kind in ("elastic", "both")

    @property
    def active(self) -> bool:
        """Whether a call changes the images (False for ``none`` and all-zero settings, stroke and blur included)."""
        moves = self.affine and any((self.rotate, self.scale, self.shear, self.translate))
        return moves or (self.elastic and self.alpha > 0) or self.stroke > 0 or self.blur > 0

    def __call__(self, images: torch.Tensor, step: int) -> torch.Tensor:
        """``images`` distorted with the draws of optimizer step ``step`` (0-based): same shape, dtype and device.

        Args:
            images: (B, side * side) or (B, 1, side, side) floats, normalised.
            step: the global optimizer step; the draws depend on ``(seed, step)`` only.
        """
        self._check(images)
        if not self.active:
            return images
        return self._distort(images, step)

    def _check(self, images: torch.Tensor) -> None:
        pixels = self.side * self.side
        flat = images.dim() == 2 and images.shape[1] == pixels
        if not (flat or (images.dim() == 4 and tuple(images.shape[1:]) == (1, self.side, self.side))):
            raise MlplabError(
                f"augmentation takes images of shape (B, {pixels}) or (B, 1, {self.side}, "
                f"{self.side}); got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise MlplabError(f"augmentation takes normalised float images; got {images.dtype}")

    def _distort(self, images: torch.Tensor, step: int) -> torch.Tensor:
        """The whole path, with no short cut for zero parameters: stroke width, blur, then one resampling.

        With zero geometric parameters the resampling is the identity to 1e-6 in float64; in float32
        to about 1e-5, since the grid's pixel centres ((2i + 1) / side - 1) are not exact binary fractions.
        Kind ``none`` skips it. A zero stroke radius or blur sigma leaves an image exactly as it was.
        """
        count, device = images.shape[0], images.device
        # grid_sample computes in float32 or float64; half types go through float32.
        dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
        # The draws, in this order: the affine parameters, the elastic field, the stroke radii, the blur sigmas.
        # The last two come after, and only when asked for, so every older config's batches stay bit for bit.
        generator = step_generator(self.seed, step)
        affine = self._affine_draws(generator, count) if self.affine else None
        field = self._elastic_field(generator, count, device) if self.elastic else None
        radii = _uniform(generator, count, -self.stroke, self.stroke) if self.stroke > 0 else None  # (B,) pixels
        sigmas = _uniform(generator, count, 0.0, self.blur) if self.blur > 0 else None  # (B,) pixels
        ink = images.reshape(count, 1, self.side, self.side).to(dtype) - self.background  # blank -> 0, ink > 0
        if radii is not None:
            ink = change_stroke_width(ink, radii.to(device, dtype), self.stroke)
        if sigmas is not None:
            ink = blur_keeping_peak(ink, sigmas.to(device, dtype))
        if self.affine or self.elastic:
            ink = self._resample(ink, affine, field)
        return (ink + self.background).reshape(images.shape).to(images.dtype)

    def _resample(
        self, ink: torch.Tensor, affine: tuple[torch.Tensor, torch.Tensor] | None, field: torch.Tensor | None
    ) -> torch.Tensor:
        """``ink`` (B, 1, S, S), blank 0, resampled bilinearly through the elastic ``field`` (pixels), then
        ``affine``."""
        count, device, dtype = ink.shape[0], ink.device, ink.dtype
        # Output pixel centres in grid_sample's units (align_corners=False): -1 and 1 are the image's outer edges.
        centres = ((torch.arange(self.side, dtype=torch.float64) * 2 + 1) / self.side - 1).to(device, dtype)
        x, y = centres.view(1, 1, -1), centres.view(1, -1, 1)  # broadcast to (B, S, S) as pixel (row, column)
        if field is not None:  # the elastic field moves each output point ...
            field = field.to(dtype) * (2.0 / self.side)  # (B, 2, S, S) in normalised units
            x, y = x + field[:, 0], y + field[:, 1]
        if affine is not None:  # ... and the inverse affine map carries it into the source image
            inverse, shift = (tensor.to(device, dtype).reshape(count, -1, 1, 1) for tensor in affine)
            x, y = x - shift[:, 0], y - shift[:, 1]
            x, y = inverse[:, 0] * x + inverse[:, 1] * y, inverse[:, 2] * x + inverse[:, 3] * y
        grid = torch.stack(torch.broadcast_tensors(x, y), dim=-1).expand(count, -1, -1, -1)  # (B, S, S, 2)
        # Zero padding: whatever comes into view from outside is blank.
        return F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _affine_draws(self, generator: torch.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's inverse linear map (B, 2, 2) and translation (B, 2), in normalised units (float64, CPU)."""
        uniform = torch.rand(count, 5, generator=generator, dtype=torch.float64) * 2 - 1  # (B, 5) in [-1, 1)
        angle = torch.deg2rad(uniform[:, 0] * self.rotate)
        size = 1 + uniform[:, 1] * self.scale
        slant = torch.tan(torch.deg2rad(uniform[:, 2] * self.shear))
        shift = uniform[:, 3:] * self.translate * (2.0 / self.side)  # pixels -> normalised units (2 / side each)
        cos, sin, one, zero = torch.cos(angle), torch.sin(angle), torch.ones(count, dtype=torch.float64), 0 * angle
        # y points down the image, so [[cos, sin], [-sin, cos]] turns counterclockwise as drawn.
        rotation = torch.stack([cos, sin, -sin, cos], dim=1).view(count, 2, 2)
        shearing = torch.stack([one, slant, zero, one], dim=1).view(count, 2, 2)
        forward = rotation @ shearing @ (size.view(count, 1, 1) * torch.eye(2, dtype=torch.float64))
        return torch.linalg.inv(forward), shift

    def _elastic_field(self, generator: torch.Generator, count: int, device: torch.device) -> torch.Tensor:
        """Each image's displacement (B, 2, S, S), dx then dy, in pixels: smoothed, and of L2 norm alpha.

        The smoothing pads with zeros (no values exist outside the image): the field's
        spread falls near the border, to 0.71 of its inner value at the edge, but stays
        within 3% of it from 4 pixels in, where MNIST's inked 20x20 box begins. Reflect
        padding would count mirrored values twice and inflate the field at the edges by as
        much; drawing the values on a canvas wider by the kernel's radius would be exact but
        draws 3.4 times as many numbers (measured 5 to 7 times slower for sigma 4).
        """
        noise = torch.empty(count, 2, self.side, self.side).uniform_(-1, 1, generator=generator)  # (B, 2, S, S)
        # The separable Gaussian convolution with zero padding, as products with an (S, S) banded matrix
        # whose entry (i, j) is the kernel at j - i: the same sums as conv2d, several times faster on the CPU.
        radius = math.ceil(KERNEL_SIGMAS * self.sigma)
        pixel = torch.arange(self.side, dtype=torch.float32)
        lag = pixel.view(1, -1) - pixel.view(-1, 1)  # (S, S): j - i
        band = torch.exp(-(lag**2) / (2 * self.sigma**2)) * (lag.abs() <= radius)
        band = (band / band[self.side // 2].sum()).to(device)  # an inner row sums to 1 (the scale is normalised away)
        smooth = band @ noise.to(device) @ band.T  # (B, 2, S, S): columns smoothed, then rows
        norm = smooth.flatten(1).norm(dim=1).clamp_min(1e-12).view(count, 1, 1, 1)
        return smooth * (self.alpha / norm)


def change_stroke_width(ink: torch.Tensor, radii: torch.Tensor, largest: float) -> torch.Tensor:
    """Each image's strokes made bolder (radius > 0, dilation) or thinner (< 0, erosion) by ``radii`` pixels per side.

    Grey-level morphology with a plus-shaped structuring element (the pixel and its four
    neighbours): applied once it is the digital disc of radius 1, twice exactly the disc of
    radius 2 (the pixels within distance 2). Each step widens an upright stroke by 1 pixel per
    side and a diagonal one by 0.71; a 3x3 square would widen the diagonal by 1.41, further
    from a round pen's 1, and turn dots into squares. A fractional radius blends the two
    nearest whole ones: r = 1.4 gives 0.6 D1 + 0.4 D2, and r = 0 the image itself, exactly.

    Args:
        ink: (B, 1, S, S) ink above the background: blank pixels 0, ink > 0.
        radii: (B,) pixels, each in [-largest, largest], on the images' device and dtype.
        largest: pixels, the config's ``stroke``: how many whole dilations and erosions to
            compute (given, not read from ``radii``, so that no GPU value is waited for).

    Returns:
        (B, 1, S, S) ink, blank pixels still 0.
    """
    reach = max(1, math.ceil(largest))  # whole steps needed each way
    bolder, thinner = [ink], [ink]
    for _ in range(reach):
        bolder.append(_plus_maximum(bolder[-1]))
        thinner.append(-_plus_maximum(-thinner[-1]))  # erosion; the zeros outside are blank, so edges erode too
    levels = torch.stack(thinner[:0:-1] + bolder)  # (2 reach + 1, B, 1, S, S): E_reach ... E_1, ink, D_1 ... D_reach
    position = radii + reach  # where each image sits among the levels, in [0, 2 reach]
    lower = position.floor().long().clamp(0, 2 * reach - 1)  # (B,): the level below, with one above it
    weight = (position - lower).view(-1, 1, 1, 1)  # (B, 1, 1, 1): how far towards the level above
    images = torch.arange(ink.shape[0], device=ink.device)
    return (1 - weight) * levels[lower, images] + weight * levels[lower + 1, images]


def _plus_maximum(ink: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) -> each pixel's maximum over itself and its four neighbours, zero outside the image."""
    padded = F.pad(ink, (1, 1, 1, 1))  # zeros: outside the image is blank (max_pool2d would pad with -inf)
    centre = padded[..., 1:-1, 1:-1]
    up, down, left, right = padded[..., :-2, 1:-1], padded[..., 2:, 1:-1], padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]
    return torch.maximum(torch.maximum(torch.maximum(centre, up), torch.maximum(down, left)), right)


def blur_keeping_peak(ink: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Each image blurred by a Gaussian of standard deviation ``sigmas`` pixels, then scaled back to its peak.

    The separable convolution (cut at 3 sigma, zero padding) is a product with a banded
    (S, S) matrix per image, as in `Augmentation._elastic_field`. Blurring lowers a stroke's
    core; the image is then scaled so its strongest ink is as strong as before (clamped to
    it), because the own-digit preprocessing (`mlplab.digits`) brings stroke cores back to
    full intensity: the model should see soft edges, never faded strokes. A sigma of 0 leaves
    an image exactly as it was, and a blank image stays blank.

    Args:
        ink: (B, 1, S, S) ink above the background: blank pixels 0, ink > 0.
        sigmas: (B,) pixels, each >= 0, on the images' device and dtype.

    Returns:
        (B, 1, S, S) ink, blank far from any stroke.
    """
    side = ink.shape[-1]
    lags = torch.arange(1 - side, side, device=ink.device, dtype=ink.dtype)  # (2S - 1,): every j - i
    sigma = sigmas.clamp_min(1e-3).view(-1, 1)  # (B, 1); at 1e-3 the kernel is exactly [..., 0, 1, 0, ...]
    kernel = torch.exp(-(lags**2) / (2 * sigma**2)) * (lags.abs() <= torch.ceil(KERNEL_SIGMAS * sigma))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, 2S - 1), summing to 1: inner ink's mass is kept
    pixel = torch.arange(side, device=ink.device)
    band = kernel[:, pixel.view(1, -1) - pixel.view(-1, 1) + side - 1]  # (B, S, S): entry (i, j) is the kernel at j - i
    blurred = (band @ ink[:, 0] @ band.transpose(1, 2)).unsqueeze(1)  # columns smoothed, then rows
    peak = ink.amax(dim=(2, 3), keepdim=True)  # (B, 1, 1, 1)
    gain = peak / blurred.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)  # 0 for a blank image
    return torch.minimum(blurred * gain, peak)
