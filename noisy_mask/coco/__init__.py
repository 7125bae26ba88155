"""COCO instance files: reading, checking and RLE masks, shared by every tool."""
