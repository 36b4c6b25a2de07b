"""Drawing lesion-like blobs whose colour, shape and texture depend on the class. NOT medical data.

The look is loosely borrowed from dermoscopy textbooks so that a model has something class-specific
to learn (pigment network for nevi, dark irregular multi-coloured blobs with dots for melanoma,
sharp tan "stuck-on" blobs with milia-like specks for keratoses, pink blobs with branching vessels
for basal cell carcinoma, red lacunae for vascular lesions, a pale centre for dermatofibroma), on a
noisy skin-coloured background with the dark corners of a dermoscope. Nothing here is a faithful
model of any disease.

All randomness comes from the `numpy.random.Generator` passed in, so a seed fixes every pixel.
Drawing uses OpenCV primitives and whole-array NumPy noise: a 200x150 image takes about a millisecond.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class LesionStyle:
    """How one class looks. Colours are RGB."""

    colour: tuple[int, int, int]
    irregularity: float  # amplitude of the border's harmonics: 0 = smooth ellipse
    border_blur: float  # soft edge width as a fraction of the radius
    texture: str  # none, network, dots, globules, vessels, specks
    size: float  # mean radius as a fraction of min(width, height)
    second_colour: tuple[int, int, int] | None = None  # patches of another colour (melanoma: blue-grey)
    centre_colour: tuple[int, int, int] | None = None  # a central patch (dermatofibroma: white scar)
    texture_colour: tuple[int, int, int] = (40, 25, 20)


STYLES = {
    "nevus": LesionStyle((135, 88, 60), 0.04, 0.18, "network", 0.26, texture_colour=(80, 50, 35)),
    "melanoma": LesionStyle(
        (62, 38, 32), 0.28, 0.04, "dots", 0.33, second_colour=(85, 95, 130), texture_colour=(15, 10, 10)
    ),
    "keratosis": LesionStyle((172, 132, 92), 0.12, 0.02, "specks", 0.29, texture_colour=(235, 225, 190)),
    "bcc": LesionStyle((214, 152, 150), 0.14, 0.22, "vessels", 0.24, texture_colour=(170, 20, 35)),
    "akiec": LesionStyle((198, 108, 92), 0.2, 0.3, "specks", 0.27, texture_colour=(245, 240, 235)),
    "df": LesionStyle((160, 112, 84), 0.05, 0.3, "none", 0.2, centre_colour=(236, 222, 212)),
    "vascular": LesionStyle((150, 28, 52), 0.07, 0.05, "globules", 0.21, texture_colour=(95, 10, 35)),
    "misc": LesionStyle((122, 100, 138), 0.1, 0.12, "none", 0.24),
}

SKIN_TONES = np.array(
    [(232, 190, 172), (224, 172, 150), (205, 150, 125), (240, 205, 185), (190, 135, 105)], dtype=np.float32
)


@dataclasses.dataclass(frozen=True)
class Lesion:
    """One lesion's fixed appearance; several images of it differ only by `render` jitter."""

    style: LesionStyle
    colour: np.ndarray  # float32 RGB
    skin: np.ndarray  # float32 RGB
    size: float
    aspect: float
    harmonics: np.ndarray  # (k, 2): amplitude, phase
    seed: int  # for the texture layout, the same in every image of the lesion


def make_lesion(rng: np.random.Generator, style_name: str) -> Lesion:
    return lesion_of_style(rng, STYLES[style_name])


def lesion_of_style(rng: np.random.Generator, style: LesionStyle) -> Lesion:
    """One lesion drawn around `style` (any style, e.g. a `blend_styles` mix, not only a named one)."""
    colour = np.clip(np.array(style.colour, np.float32) + rng.normal(0, 10, 3), 0, 255)
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 6, 3).astype(np.float32)
    orders = np.arange(2, 8)
    amplitudes = style.irregularity * rng.uniform(0.3, 1.0, len(orders)) / np.sqrt(orders - 1)
    harmonics = np.stack([amplitudes, rng.uniform(0, 2 * np.pi, len(orders))], axis=1)
    return Lesion(
        style=style,
        colour=colour.astype(np.float32),
        skin=skin.astype(np.float32),
        size=float(style.size * rng.uniform(0.8, 1.2)),
        aspect=float(rng.uniform(0.7, 1.0)),
        harmonics=harmonics,
        seed=int(rng.integers(2**31)),
    )


CATEGORICAL_FIELDS = ("texture", "second_colour", "centre_colour")


def blend_styles(true: LesionStyle, other: LesionStyle, weight: float, rng: np.random.Generator) -> LesionStyle:
    """A style between `true` (share `weight`) and `other`: numbers and colours interpolated, each
    categorical field (texture, second / centre colour) `true`'s with probability `weight`, else
    `other`'s. A view drawn from it carries graded evidence for the true class: low weights mislead."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in 0..1. Received: {weight}")
    fields = {}
    for field in dataclasses.fields(LesionStyle):
        a, b = getattr(true, field.name), getattr(other, field.name)
        if field.name in CATEGORICAL_FIELDS:
            fields[field.name] = a if rng.random() < weight else b
        elif isinstance(a, tuple):
            fields[field.name] = tuple(int(round(weight * x + (1 - weight) * y)) for x, y in zip(a, b))
        else:
            fields[field.name] = float(weight * a + (1 - weight) * b)
    return LesionStyle(**fields)


def _outline(lesion: Lesion, centre, radius: float, rotation: float, points: int = 96) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    orders = np.arange(2, 2 + len(lesion.harmonics))[:, None]
    wobble = (lesion.harmonics[:, :1] * np.cos(orders * theta + lesion.harmonics[:, 1:])).sum(axis=0)
    r = radius * np.clip(1.0 + wobble, 0.35, None)
    x = r * np.cos(theta)
    y = r * np.sin(theta) * lesion.aspect
    c, s = np.cos(rotation), np.sin(rotation)
    xy = np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y], axis=1)
    return np.round(xy * 16).astype(np.int32)  # 4 fractional bits for cv2's sub-pixel drawing


def _texture(lesion: Lesion, shape, centre, radius: float, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    """(layer uint8 HxWx3, coverage float HxW in 0..1) of the class texture around the lesion."""
    height, width = shape
    layer = np.zeros((height, width, 3), np.uint8)
    cover = np.zeros((height, width), np.uint8)
    style = lesion.style
    rng = np.random.default_rng(lesion.seed)
    colour = tuple(int(v) for v in style.texture_colour)
    cx, cy = centre
    if style.texture == "network":
        spacing = max(radius / 4.0, 3.0)
        for angle in (rotation, rotation + np.pi / 2):
            direction = np.array([np.cos(angle), np.sin(angle)])
            normal = np.array([-direction[1], direction[0]])
            for offset in np.arange(-2 * radius, 2 * radius, spacing):
                p = np.array([cx, cy]) + normal * offset
                a = tuple(int(v) for v in p - direction * 2 * radius)
                b = tuple(int(v) for v in p + direction * 2 * radius)
                cv2.line(cover, a, b, 255, 1, cv2.LINE_AA)
        layer[:] = colour
    elif style.texture in ("dots", "globules", "specks"):
        count = {"dots": 25, "globules": 14, "specks": 30}[style.texture]
        scale = {"dots": 0.05, "globules": 0.14, "specks": 0.04}[style.texture]
        spots = rng.uniform(-1, 1, (count, 2)) * radius * 0.85
        sizes = np.maximum(1, radius * scale * rng.uniform(0.6, 1.4, count))
        for (dx, dy), size in zip(spots, sizes):
            cv2.circle(cover, (int(cx + dx), int(cy + dy)), int(round(size)), 255, -1, cv2.LINE_AA)
        layer[:] = colour
    elif style.texture == "vessels":
        for _ in range(5):
            point = np.array([cx, cy]) + rng.uniform(-0.5, 0.5, 2) * radius
            angle = rng.uniform(0, 2 * np.pi)
            for _ in range(8):
                angle += rng.normal(0, 0.6)
                step = radius * 0.18 * np.array([np.cos(angle), np.sin(angle)])
                nxt = point + step
                cv2.line(cover, tuple(int(v) for v in point), tuple(int(v) for v in nxt), 255, 1, cv2.LINE_AA)
                point = nxt
        layer[:] = colour
    return layer, cover.astype(np.float32) / 255.0


def render(
    lesion: Lesion,
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    clinical: bool = False,
    hair_probability: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """One image of `lesion`: (RGB uint8 HxWx3, mask uint8 HxW with 0/255).

    Each call jitters position, rotation, scale and lighting. `clinical=True` draws the wider,
    blurrier view of a clinical photograph (small lesion, no dermoscope vignette, no fine texture,
    non-skin background at a side, coloured light, variable blur: see `_clinical_scene`).
    """
    shape = (height, width)
    short = min(width, height)
    scale = CLINICAL_SCALE if clinical else 1.0
    radius = lesion.size * short * scale * rng.uniform(0.92, 1.08)
    centre = (width / 2 + rng.normal(0, 0.05) * width, height / 2 + rng.normal(0, 0.05) * height)
    rotation = rng.uniform(0, 2 * np.pi)

    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [_outline(lesion, centre, radius, rotation)], 255, cv2.LINE_AA, shift=4)
    mask = np.where(mask >= 128, 255, 0).astype(np.uint8)

    blur = max(1, int(lesion.style.border_blur * radius)) * 2 + 1
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (blur, blur), 0)[..., None]

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Lesion body: darker towards the centre, as pigment is densest there.
    distance = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / max(radius, 1.0)
    body = lesion.colour[None, None, :] * (0.85 + 0.2 * np.clip(distance, 0, 1))[..., None]
    style = lesion.style
    if style.second_colour is not None:
        patch = np.zeros(shape, np.uint8)
        patch_rng = np.random.default_rng(lesion.seed + 1)
        for _ in range(3):
            offset = patch_rng.uniform(-0.5, 0.5, 2) * radius
            cv2.circle(patch, (int(centre[0] + offset[0]), int(centre[1] + offset[1])),
                       int(radius * patch_rng.uniform(0.2, 0.4)), 255, -1)
        patch = cv2.GaussianBlur(patch.astype(np.float32) / 255.0, (0, 0), max(radius * 0.1, 1.0))[..., None]
        body = body * (1 - patch) + np.array(style.second_colour, np.float32) * patch
    if style.centre_colour is not None:
        spot = np.clip(1.6 - 2.4 * distance, 0, 1)[..., None]
        body = body * (1 - spot) + np.array(style.centre_colour, np.float32) * spot
    if not clinical:
        layer, cover = _texture(lesion, shape, centre, radius, rotation)
        cover = (cover * 0.8)[..., None]
        body = body * (1 - cover) + layer.astype(np.float32) * cover

    # Skin: base tone, a lighting gradient, and (dermoscopy) dark corners.
    light = rng.uniform(0.9, 1.08) + 0.08 * ((xx / width - 0.5) * rng.normal() + (yy / height - 0.5) * rng.normal())
    skin = lesion.skin[None, None, :] * light[..., None]
    if not clinical:
        corner = np.sqrt(((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2)
        skin = skin * np.clip(1.25 - 0.45 * corner, 0.35, 1.0)[..., None]
    image = skin * (1 - alpha) + body * alpha * light[..., None]
    if clinical:
        image = _clinical_scene(image, rng, centre, radius)

    if rng.random() < hair_probability:
        hair = np.zeros(shape, np.uint8)
        for _ in range(rng.integers(1, 5)):
            points = np.cumsum(rng.normal(0, short * 0.08, (6, 2)), axis=0) + rng.uniform(0, 1, 2) * (width, height)
            cv2.polylines(hair, [points.astype(np.int32)], False, 255, 1, cv2.LINE_AA)
        hair_alpha = (hair.astype(np.float32) / 255.0 * 0.85)[..., None]
        image = image * (1 - hair_alpha) + np.float32(30) * hair_alpha

    image = image + rng.normal(0, 3.5, image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if clinical:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.8))  # focus varies from photo to photo
    return image, mask


BACKGROUNDS = np.array(
    [(40, 45, 70), (200, 200, 195), (120, 30, 35), (60, 90, 60), (225, 215, 190), (25, 25, 28)], dtype=np.float32
)  # clothing, wall, curtain... whatever a clinical photograph catches beside the skin


# The clinical view's lesion size relative to the dermoscopic one: a wider field, yet a lesion a
# 128 px model can still read (at 0.45 a clinical-only TinyCNN reached test mAP 0.36 against
# dermoscopy's 0.55 on 1,011 generated cases; the paper's clinical images reach 0.60 against 0.67).
CLINICAL_SCALE = 0.65


def _clinical_scene(image: np.ndarray, rng: np.random.Generator, centre, radius: float) -> np.ndarray:
    """What a clinical photograph adds to the lesion on skin: a patch of non-skin background at one
    side (never over the lesion), another overall skin tone, and a strong coloured light with a
    steep gradient. Only the clinical view draws these, so dermoscopic images keep their pixels."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = image * rng.uniform(0.92, 1.08, 3).astype(np.float32)  # skin tone / white balance of this camera
    if rng.random() < 0.7:
        angle = rng.uniform(0, 2 * np.pi)
        along = (xx - centre[0]) * np.cos(angle) + (yy - centre[1]) * np.sin(angle)
        start = radius * 1.6 + rng.uniform(0.1, 0.35) * min(width, height)
        edge = np.clip((along - start) / 2.0, 0, 1)[..., None]
        colour = BACKGROUNDS[rng.integers(len(BACKGROUNDS))] + rng.normal(0, 12, 3).astype(np.float32)
        folds = 1.0 + 0.12 * np.sin(along / rng.uniform(4, 12) + rng.uniform(0, 2 * np.pi))[..., None]
        image = image * (1 - edge) + np.clip(colour, 0, 255) * folds * edge
    cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)  # tungsten, fluorescent, daylight...
    slope = rng.normal(0, 0.35, 2)
    gradient = 1.0 + slope[0] * (xx / width - 0.5) + slope[1] * (yy / height - 0.5)
    return image * np.clip(gradient, 0.4, 1.6)[..., None] * cast * np.float32(rng.uniform(0.8, 1.15))


def encode(image_rgb: np.ndarray, suffix: str = ".jpg", quality: int = 92) -> bytes:
    """Encode an RGB image (cv2 writes BGR, so the channels are swapped first)."""
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR) if image_rgb.ndim == 3 else image_rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {suffix} image")
    return data.tobytes()


def write_image(path, image_rgb: np.ndarray, quality: int = 92) -> None:
    with open(path, "wb") as handle:
        handle.write(encode(image_rgb, str(path)[str(path).rfind("."):].lower(), quality))
