"""A synthetic COCO instance-segmentation dataset of filled shapes, made from a seed.

Each image shows 1 to 5 shapes (circle, triangle, rectangle, 5-point star) on a plain or mildly
textured background. The class is the outline; the fill colour is random, with contrast to the
background and to the other shapes. Shapes are drawn in order, later ones occluding earlier ones.

Masks are exact. The segmentation of instance i is the polygon of its visible region,

    V_i = P_i minus (P_{i+1} union ... union P_{n-1}),

computed with shapely from the full outlines P_j; placements that leave some V_i with a hole, in
several pieces, smaller than half of P_i or smaller than MIN_VISIBLE_AREA are redrawn. The image is
painted from the pycocotools rasterization of exactly the polygons written to the json (the
rasterizer of Detectron2's PolygonMasks and of COCO evaluation), and the rasterized V_i must not
overlap, so the pixels of instance i are exactly the rasterization of its polygon. `area` is that
pixel count (pycocotools `area` of the rasterized polygon), `bbox` the [x, y, w, h] of the polygon.

In that "plain" variant the image edges are exactly the outlines. The "hard" variant parts them,
with the same guarantees on the masks:
- textured shapes: a flat fill, stripes or patches of two colours, so edges run inside shapes;
- low contrast: 30% of the shapes are flat and only 6 to 16 (RGB distance) from the background
  under them;
- a background with edges of its own: a gradient, a smooth texture, stripes for some images,
  and clutter (lines, elongated ellipses) that is no instance;
- touching shapes: 2 to 5 per image, and a shape after the first is, with probability 0.6,
  pushed 1 to 3 px into an earlier one, which it cuts: the two share a boundary, and scenes
  whose rasterized regions leave a pixel unpainted between them are redrawn;
- the same sensor noise over the whole image.

Layout under DIR: annotations/instances_{train,val}.json, train/*.png, val/*.png and a manifest
(written last) holding the parameters and the variant, so that a complete dataset is not made
twice nor mistaken for one of another variant.


    python -m noisy_mask.data.shapes --output datasets/shapes --num-train 200 --num-val 50
    python -m noisy_mask.data.shapes --output datasets/shapes_hard --variant hard

The parameters are in `params`, the outlines and their regions in `geometry`, the drawing both
variants share in `scenes`, each variant's sampling in `plain` and `hard`, the files in `writing`;
the command line is `noisy_mask.commands.make_shapes`.
"""

from .params import SHAPE_CLASSES, VARIANTS
from .writing import GENERATOR_VERSION, MANIFEST_NAME, dataset_paths, generate_shapes_dataset

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "SHAPE_CLASSES",
    "VARIANTS",
    "dataset_paths",
    "generate_shapes_dataset",
]
