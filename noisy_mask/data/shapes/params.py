"""The parameters of the shapes dataset: its classes and variants, then the sizes, contrasts,
probabilities and retry counts of the scenes, those both variants use first, then the plain
variant's, then the hard variant's. Sizes are in pixels of a 192 x 192 image and scale with it.
"""

from typing import Tuple

SHAPE_CLASSES: Tuple[str, ...] = ("circle", "triangle", "rectangle", "star")
VARIANTS = ("plain", "hard")  # see the package docstring

# ---------------------------------------------------------------------------------------------
# Both variants: the image, the outlines and their placement.

MIN_IMAGE_SIZE = 64
REFERENCE_SIZE = 192  # sizes below are in pixels of a 192 x 192 image and scale with the image
SIZE_RANGE = (24.0, 90.0)  # diameter of the shape's circumscribed circle
MIN_VISIBLE_AREA = 150.0  # px^2, of the visible region
MIN_VISIBLE_FRACTION = 0.5  # of the shape's full area
CIRCLE_VERTICES = 48  # sagitta r (1 - cos(pi / 48)) < 0.1 px for r <= 45: below a pixel
RECTANGLE_ASPECT = (1.0, 1.6)
STAR_INNER_RATIO = (0.42, 0.55)
BORDER = 1.0  # px kept free at the image border: no shape is clipped by it

BACKGROUND_AMPLITUDE = 12.0  # max per-channel deviation of the background texture from its base
BACKGROUND_GRID = 6  # texture: a 6 x 6 grid of random values, bilinearly upsampled

PLACEMENT_TRIES = 50  # per shape; when all fail the image gets fewer shapes
SCENE_TRIES = 20
JITTER_TRIES = 10  # sub-pixel shifts of a scene whose rasterized regions overlap

# ---------------------------------------------------------------------------------------------
# The plain variant.

MAX_OBJECTS = 5
# Euclidean RGB distances. A background pixel lies within 12 sqrt(3) + 1 < 22 of the base colour,
# so a fill colour 90 away never occurs in the background, and 70 keeps shapes apart.
MIN_BACKGROUND_CONTRAST = 90.0
MIN_SHAPE_CONTRAST = 70.0

# ---------------------------------------------------------------------------------------------
# The hard variant.

HARD_OBJECTS = (2, 5)  # shapes per image, both ends included: touching takes two
TOUCH_PROBABILITY = 0.6  # a shape after the first is pressed against an earlier one
TOUCH_DEPTH = (1.0, 3.0)  # px it is pushed into that one, cutting it: a shared boundary
GAP_MARGIN = 1.0  # px; pixel centres this far inside the union of the outlines must be painted
LOW_CONTRAST_PROBABILITY = 0.3
# RGB distance of a low-contrast fill from the background under it; its grey step is at most
# |(0.299, 0.587, 0.114)| * 16 = 0.67 * 16 < 11 levels
LOW_CONTRAST = (6.0, 16.0)
MIN_HARD_BACKGROUND_CONTRAST = 50.0  # the same distance for every other fill (its mean colour)
MIN_HARD_SHAPE_CONTRAST = 30.0  # between the mean colours of one image's fills, when possible
COLOUR_TRIES = 20
TEXTURES = ("flat", "stripes", "patches")
TEXTURE_WEIGHTS = (0.2, 0.4, 0.4)  # of the fills that are not low-contrast (those are flat)
TEXTURE_CONTRAST = (50.0, 130.0)  # RGB distance between the two colours of stripes or patches
# They differ along grey + GREY_TILT * (a random direction): mostly in brightness, which is what
# grey-level edge detectors see, partly in hue.
GREY_TILT = 0.5
STRIPE_WIDTH = (5.0, 14.0)  # px, of one stripe
PATCH_GRID = 16  # patches: the sign of a 16 x 16 random grid, upsampled: nodes 192 / 15 = 13 px
GRADIENT_AMPLITUDE = 60.0  # max per-channel change of the background over one image side
BACKGROUND_STRIPES_PROBABILITY = 0.3
BACKGROUND_STRIPE_AMPLITUDE = (8.0, 20.0)  # per channel, between the two stripe shades
CLUTTER_LINES = (2, 6)  # lines across the background, both ends included
LINE_WIDTH = (1, 3)  # px, both ends included
CLUTTER_BLOBS = (1, 4)  # filled ellipses, elongated so that none reads as a circle
BLOB_AXIS = (6.0, 24.0)  # px, the long semi-axis
BLOB_ASPECT = (0.25, 0.6)  # short semi-axis / long one
# Max standard deviation of the noise on every pixel, shapes and background. The 3x3 Sobel
# response of such noise has a standard deviation of 4 sqrt(1 + 4 + 1 + 1 + 4 + 1) < 14 per axis,
# texture for the eye but no edge.
SENSOR_NOISE = 4.0
