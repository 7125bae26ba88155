"""COCO instance files, shared by every tool: reading them (`io`), the one validator (`checks`),
RLE masks (`rle`) and JSON values (`values`). No torch or detectron2 import."""
